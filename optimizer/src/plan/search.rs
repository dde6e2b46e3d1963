//! The local search that moves single reservations while the total falls.
use super::*;

/// Wall time the local search over the reservations may take.
pub(super) const LOCAL_SEARCH_BUDGET: Duration = Duration::from_millis(500);

/// Stage 1 decides the reservations against relaxed hourly counts, so they
/// can be one instance off what the integer hours want. A local search
/// fixes that: one more or one fewer reservation of each type the hours
/// may use, every hour re-solved by the exact search, first improvement
/// kept, until no move helps or the budget is spent.
pub(super) fn improve_reservations(
    p: &Problem,
    allowed: &[bool],
    mut reserved: Reserved,
    mut counts: Vec<Counts>,
    report: &mut SolverReport,
) -> (Reserved, Vec<Counts>) {
    let (types, levels, h, opts) = (p.types, &p.levels[..], p.h, p.opts);
    let started = Instant::now();
    let before = plan_cost(types, levels, h, &counts, &reserved);
    let mut best = before;
    let eval = |res: &Reserved| -> Option<Vec<Counts>> {
        let r: Vec<u32> = res.iter().map(|&(a, b)| a + b).collect();
        levels
            .par_iter()
            .map(|l| hour_bb(types, &l.d, opts, allowed, &r))
            .collect()
    };
    let mut moves = 0;
    'search: loop {
        for trial in neighbours(p, allowed, &reserved) {
            if started.elapsed() > LOCAL_SEARCH_BUDGET {
                report.notes.push(format!(
                    "local search over the reservations stopped at its {:?} budget",
                    LOCAL_SEARCH_BUDGET
                ));
                break 'search;
            }
            let Some(c) = eval(&trial) else { continue };
            let cost = plan_cost(types, levels, h, &c, &trial);
            if cost < best - 1e-9 * best.abs().max(1.0) {
                best = cost;
                reserved = trial;
                counts = c;
                moves += 1;
                continue 'search;
            }
        }
        break;
    }
    if moves > 0 {
        report.notes.push(format!(
            "local search over the reservations: {moves} move(s) saved {:.2}",
            before - best
        ));
    }
    (reserved, counts)
}

/// The reservations one instance away from `reserved`: one more, then one
/// fewer, of each term each type offers, for the types the hours may use
/// or that hold a reservation, within the per-type cap.
fn neighbours(p: &Problem, allowed: &[bool], reserved: &Reserved) -> Vec<Reserved> {
    let mut out = Vec::new();
    for (i, t) in p.types.iter().enumerate() {
        if !allowed[i] && reserved[i] == (0, 0) {
            continue;
        }
        let terms = [
            t.reserved_1y_hourly.is_some(),
            t.reserved_3y_hourly.is_some() && p.opts.allow_3y,
        ];
        for (term, offered) in terms.into_iter().enumerate() {
            for delta in [1i32, -1].into_iter().filter(|_| offered) {
                let mut trial = reserved.clone();
                let slot = if term == 0 {
                    &mut trial[i].0
                } else {
                    &mut trial[i].1
                };
                let Some(v) = slot.checked_add_signed(delta) else {
                    continue;
                };
                *slot = v;
                if p.opts
                    .max_per_type
                    .is_none_or(|cap| trial[i].0 + trial[i].1 <= cap)
                {
                    out.push(trial);
                }
            }
        }
    }
    out
}
