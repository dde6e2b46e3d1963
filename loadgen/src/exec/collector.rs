//! The collector: merges each second of every worker into one row, in
//! order, calls the observer, and sums the totals when the workers end.
use super::*;

/// One merged interval as a row of the time series.
pub fn second_row(iv: &Interval, target_rps: Option<f64>) -> SecondRow {
    let q = |p: f64| iv.latency_us.value_at_quantile(p) as f64 / 1e3;
    let c = &iv.counts;
    SecondRow {
        t_s: iv.second,
        requests: c.requests(),
        ok: c.get(Class::Ok),
        errors: c.errors(),
        rps: c.requests() as f64,
        p50_ms: q(0.5),
        p95_ms: q(0.95),
        p99_ms: q(0.99),
        dropped: c.dropped,
        target_rps,
        errors_by_class: Class::ERRORS.map(|o| c.get(o)),
    }
}

pub(super) fn collect(
    sh: &Shared,
    workers: usize,
    rx: mpsc::Receiver<Msg>,
    stop: &StopHandle,
    on_second: &mut impl FnMut(&Interval, &SecondRow) -> ControlFlow<String>,
) -> RunOutcome {
    let mut pending: BTreeMap<u64, Interval> = BTreeMap::new();
    // Seconds below progress[w] are complete for worker w.
    let mut progress = vec![0u64; workers];
    let mut out = RunOutcome {
        totals: Recorder::default(),
        series: Vec::new(),
        elapsed: Duration::ZERO,
        sending: Duration::ZERO,
        connections_opened: 0,
        kernel_timed: 0,
        peak_connections: 0,
        idle_waits: 0,
        stopped: None,
        start_offset_ms: None,
        second_histograms: Vec::new(),
    };
    let keep_histograms = sh.plan.distributed();
    let (mut last, mut last_send): (Option<Instant>, Option<Instant>) = (None, None);
    let mut emit = |iv: Interval, out: &mut RunOutcome| {
        let row = second_row(&iv, target_in_second(&sh.plan, iv.second));
        if out.stopped.is_none()
            && let ControlFlow::Break(reason) = on_second(&iv, &row)
        {
            out.stopped = Some(reason);
            stop.stop();
        }
        out.series.push(row);
        if keep_histograms {
            out.second_histograms
                .push(crate::result::histogram_to_base64_plain(&iv.latency_us));
        }
    };
    for msg in rx {
        match msg {
            Msg::Interval(w, iv) => {
                progress[w] = iv.second + 1;
                let s = iv.second;
                pending
                    .entry(s)
                    .or_insert_with(|| Interval::empty(s))
                    .merge(&iv);
            }
            Msg::Done(w, end) => {
                progress[w] = u64::MAX;
                out.totals.merge(&end.rec);
                out.connections_opened += end.opened;
                out.kernel_timed += end.kernel_timed;
                out.peak_connections += end.peak;
                out.idle_waits += end.idle_waits;
                last = last.max(end.last_completion);
                last_send = last_send.max(end.last_send);
            }
        }
        let done_below = progress.iter().copied().min().unwrap_or(u64::MAX);
        while let Some(entry) = pending.first_entry() {
            if *entry.key() >= done_below {
                break;
            }
            emit(entry.remove(), &mut out);
        }
    }
    let since_t0 = |t: Option<Instant>| {
        t.map(|l| l.saturating_duration_since(sh.t0))
            .unwrap_or_default()
    };
    out.elapsed = since_t0(last);
    out.sending = since_t0(last_send);
    if out.stopped.is_none() && stop.is_stopped() {
        out.stopped = Some("interrupted".into());
    }
    out
}

fn target_in_second(plan: &RunPlan, s: u64) -> Option<f64> {
    match &plan.load {
        Load::Open { schedule, .. } => {
            let t = s as f64;
            let n = f64::from(plan.shard.count.max(1));
            Some((schedule.due_by(t + 1.0) - schedule.due_by(t)) / n)
        }
        Load::Closed { .. } => None,
    }
}
