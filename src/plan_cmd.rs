//! `loadtest plan`: measure → calibrate → forecast → optimize → report in
//! one command, every stage's output kept in `--out` so any stage can be
//! re-run alone; `--verify` checks the calibrated model against runs it was
//! not calibrated on. `loadtest validate` checks a scenario for every stage
//! without running anything.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::Context;
use loadgen::StopHandle;
use simulator::model::SimConfig;

use crate::capacity::Verdict;
use crate::cli::{PlanArgs, RunArgs, ValidateArgs};
use crate::run_cmd::Settings;
use crate::scenario::{Builtin, OptimizeSection, Scenario};
use crate::serve_cmd::Background;
use crate::verify::Replicas;
use crate::{Outcome, write_json};

/// Every stage's input, checked before anything runs.
struct Checked {
    scn: Scenario,
    cfg: SimConfig,
    /// `[optimize]`, and its catalog read once.
    optimize: OptimizeSection,
    catalog: optimizer::Catalog,
    builtin: Option<Builtin>,
    url: Option<String>,
}

/// Checks a scenario for every stage; returns every problem found.
fn check(path: &Path) -> (Option<Checked>, Vec<String>) {
    let mut problems = Vec::new();
    let scn = match Scenario::load(path) {
        Ok(s) => s,
        Err(e) => {
            // A file that parses badly in several sections: each of them.
            let all = std::fs::read_to_string(path)
                .map(|t| crate::scenario::parse_errors(&t))
                .unwrap_or_default();
            let problems = if all.len() > 1 {
                all.iter()
                    .map(|p| format!("{}:{p}", path.display()))
                    .collect()
            } else {
                vec![format!("{e:#}")]
            };
            return (None, problems);
        }
    };
    let cfg = match crate::simulate_cmd::sim_config(&scn).and_then(|c| c.check().map(|()| c)) {
        Ok(c) => Some(c),
        Err(e) => {
            problems.push(scn.placed(&e.to_string()));
            None
        }
    };
    let catalog = check_optimize(&scn, path, &mut problems);
    let target = scn.target.as_ref();
    let url = target.and_then(|t| t.url.clone());
    let builtin = match (&url, target.and_then(|t| t.builtin.clone())) {
        (Some(_), _) => None,
        (None, Some(b)) => Some(b),
        (None, None) => cfg.as_ref().map(builtin_from_service),
    };
    if let Some(u) = &url
        && loadgen::net::parse_url(u).is_err()
    {
        problems.push(scn.placed(&format!("[target] url `{u}` is not an http(s) URL")));
    }
    // The run settings the measurement steps will use (the built-in
    // target's address is known once it starts: a stand-in for the check).
    let check_url = url.as_deref().unwrap_or("http://127.0.0.1:1/");
    if let Err(e) = run_settings(&scn, check_url) {
        problems.push(scn.placed(&format!("[load] {e:#}")));
    }
    if !problems.is_empty() {
        return (None, problems);
    }
    let (Some(cfg), Some(catalog), Some(optimize)) = (cfg, catalog, scn.optimize.clone()) else {
        return (None, problems);
    };
    (
        Some(Checked {
            scn,
            cfg,
            optimize,
            catalog,
            builtin,
            url,
        }),
        problems,
    )
}

/// `[optimize]`: its options, its catalog (read once, kept), and what
/// each replica requests. The catalog, when it reads.
fn check_optimize(
    scn: &Scenario,
    path: &Path,
    problems: &mut Vec<String>,
) -> Option<optimizer::Catalog> {
    let file = path.display().to_string();
    let mut catalog = None;
    match &scn.optimize {
        None => problems.push(format!(
            "{file}: no [optimize] section: `plan` needs catalog, replica_vcpu and replica_memory_gib"
        )),
        Some(o) => {
            let opts = crate::optimize_cmd::options(None, Some(o));
            if let Err(e) = &opts {
                problems.push(scn.placed(&format!("[optimize] {e:#}")));
            }
            match crate::optimize_cmd::catalog_path(None, Some((o, path))) {
                Ok(c) => match std::fs::read_to_string(&c) {
                    Ok(text) => match optimizer::parse_catalog(&c.display().to_string(), &text) {
                        Ok(cat) => {
                            // arch, families and exclude against this catalog.
                            if let Ok(o) = &opts
                                && let Err(e) = optimizer::select::select(&cat, o) {
                                problems.push(scn.placed(&format!("[optimize] {e}")));
                            }
                            catalog = Some(cat);
                        }
                        Err(e) => problems.push(e.to_string()),
                    },
                    Err(e) => problems.push(scn.placed(&format!("[optimize] catalog: cannot read {}: {e}", c.display()))),
                },
                Err(e) => problems.push(scn.placed(&format!("[optimize] {e:#}"))),
            }
            if o.replica_vcpu.is_none_or(|v| v <= 0.0) || o.replica_memory_gib.is_none_or(|v| v <= 0.0) {
                problems.push(scn.placed(
                    "[optimize] replica_vcpu and replica_memory_gib must be set above 0 (what each replica requests)",
                ));
            }
        }
    }
    catalog
}

/// The built-in target set up as the scenario's service: its workers
/// and its service-time distribution (the same type both take).
fn builtin_from_service(c: &SimConfig) -> Builtin {
    Builtin {
        workers: c.service.workers_per_replica as usize,
        service_time: c.service.service_time.clone(),
        error_rate: 0.0,
        stall: None,
    }
}

/// The scenario's run settings (requests, timeout, thresholds) against
/// `url`, as `run --find-capacity` takes them with no other flag: the
/// capacity search sets the load of each step and judges it itself (no
/// abort-on-fail).
fn run_settings(scn: &Scenario, url: &str) -> anyhow::Result<Settings> {
    let args = RunArgs {
        url: Some(url.to_string()),
        find_capacity: true,
        quiet: true,
        ..RunArgs::default()
    };
    crate::run_cmd::resolve(&args, scn, None)
}

pub fn validate(a: ValidateArgs) -> anyhow::Result<Outcome> {
    let (_, problems) = check(&a.scenario);
    if problems.is_empty() {
        println!(
            "{}: ok for run, simulate, optimize and plan",
            a.scenario.display()
        );
        return Ok(Outcome::Passed);
    }
    for p in &problems {
        eprintln!("{}", crate::cut(p, 400));
    }
    anyhow::bail!("{}: {} problem(s)", a.scenario.display(), problems.len())
}

struct Progress {
    started: Instant,
    quiet: bool,
}

impl Progress {
    fn stage(&self, n: usize, what: &str) {
        if !self.quiet {
            eprintln!(
                "[{n}/5 {:>5.1}s] {what}",
                self.started.elapsed().as_secs_f64()
            );
        }
    }
}

fn start_target(c: &Checked, seed: u64) -> anyhow::Result<(Option<Background>, String)> {
    match (&c.url, &c.builtin) {
        (Some(u), _) => Ok((None, u.clone())),
        (None, Some(b)) => {
            let bg = Background::builtin(b, seed)?;
            let url = bg.url.clone();
            Ok((Some(bg), url))
        }
        (None, None) => anyhow::bail!("no target: give [target] url or builtin"),
    }
}

/// The multi-replica case `--verify` measures, checked before any request.
fn verify_replicas(a: &PlanArgs, c: &Checked) -> anyhow::Result<Option<Replicas>> {
    if !a.verify {
        return Ok(None);
    }
    let check = |u: &str, flag: &str| -> anyhow::Result<()> {
        loadgen::net::parse_url(u).with_context(|| format!("--{flag} `{u}`"))?;
        reachable(u).with_context(|| format!("--{flag}"))
    };
    match (&c.url, &a.verify_url, a.replica_urls.as_slice()) {
        (_, Some(u), _) => {
            if a.verify_replicas < 2 {
                anyhow::bail!(
                    "--verify-replicas must be at least 2 (the replicas behind --verify-url)"
                );
            }
            check(u, "verify-url")?;
            Ok(Some(Replicas::Balancer(u.clone(), a.verify_replicas)))
        }
        (_, None, urls) if urls.len() >= 2 => {
            for u in urls {
                check(u, "replica-url")?;
            }
            Ok(Some(Replicas::Each(urls.to_vec())))
        }
        (_, None, [_]) => anyhow::bail!(
            "--replica-url names one replica: give one --replica-url per replica (at least 2), or --verify-url with --verify-replicas"
        ),
        (Some(_), None, []) => anyhow::bail!(
            "--verify with [target] url needs the replicas to check the multi-replica forecast against: --replica-url URL for each (at least 2), or --verify-url LB --verify-replicas N"
        ),
        // The built-in target: two more are started for the check.
        (None, None, []) => Ok(None),
        _ => unreachable!("slices of every length are matched above"),
    }
}

/// Whether a URL's host accepts a TCP connection (within 3 s).
fn reachable(url: &str) -> anyhow::Result<()> {
    use std::net::ToSocketAddrs;
    let uri = loadgen::net::parse_url(url)?;
    let host = uri.host().unwrap_or("127.0.0.1").trim_matches(['[', ']']);
    let port = uri
        .port_u16()
        .unwrap_or(if uri.scheme_str() == Some("https") {
            443
        } else {
            80
        });
    let addr = (host, port)
        .to_socket_addrs()
        .with_context(|| format!("cannot resolve {host}"))?
        .next()
        .with_context(|| format!("{host} has no address"))?;
    std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(3))
        .map(|_| ())
        .with_context(|| format!("cannot connect to {url}; is the service running?"))
}

fn parse_levels(text: &str) -> anyhow::Result<Vec<f64>> {
    text.split(',')
        .map(|t| {
            let v: f64 = t.trim().parse().ok().filter(|v: &f64| *v > 0.0 && *v <= 2.0).with_context(|| {
                format!("--verify-levels: `{t}` is not a fraction of capacity in (0, 2]: write e.g. 0.4,0.8")
            })?;
            Ok(v)
        })
        .collect()
}

/// One run of the pipeline: the checked scenario, the flags, where the
/// files go, the stop handle and the progress line.
struct Pipeline {
    a: PlanArgs,
    c: Checked,
    stop: StopHandle,
    progress: Progress,
}

/// What the capacity search measured.
struct Capacity {
    found: crate::capacity::Found,
    runs: Vec<loadgen::RunResult>,
    /// The run settings of every step.
    base: Settings,
    limits: crate::capacity::Limits,
}

/// The model fitted to the measurement, and the config it set.
struct Calibrated {
    cfg: SimConfig,
    fit: simulator::calibrate::Fit,
}

/// measure → calibrate → (verify) → forecast → optimize → report.
pub fn plan(a: PlanArgs) -> anyhow::Result<Outcome> {
    let (checked, problems) = check(&a.scenario);
    let Some(c) = checked else {
        for p in &problems[..problems.len().saturating_sub(1)] {
            eprintln!("loadtest: {p}");
        }
        anyhow::bail!("{}", problems.last().cloned().unwrap_or_default());
    };
    // Flags that can be wrong are read before anything is measured.
    let (step, warmup) = (a.step, a.warmup);
    let levels = parse_levels(&a.verify_levels)?;
    let replicas = verify_replicas(&a, &c)?;
    std::fs::create_dir_all(&a.out)
        .with_context(|| format!("cannot create {}", a.out.display()))?;
    crate::run_cmd::raise_fd_limit();
    let stop = StopHandle::default();
    crate::run_cmd::stop_on_ctrl_c(stop.clone());
    let progress = Progress {
        started: Instant::now(),
        quiet: a.quiet,
    };
    let p = Pipeline {
        a,
        c,
        stop,
        progress,
    };
    let Some(m) = p.measure()? else {
        return Ok(Outcome::Interrupted);
    };
    let cal = p.calibrate(&m)?;
    let (mut verdict, verified) = if p.a.verify {
        match p.verify(&m, &cal, &replicas, step, warmup, &levels)? {
            Some((v, doc)) => (v, Some(doc)),
            None => return Ok(Outcome::Interrupted),
        }
    } else {
        (Outcome::Passed, None)
    };
    if !p.fit_is_usable(&cal.fit)? {
        return Ok(Outcome::Failed);
    }
    let f = p.forecast(cal)?;
    let (opt_outcome, plan) = p.optimize(&f)?;
    p.report(&m, &f, plan.as_ref(), verified)?;
    if opt_outcome == Outcome::Failed {
        verdict = Outcome::Failed;
    }
    Ok(verdict)
}

impl Pipeline {
    fn out(&self, name: &str) -> std::path::PathBuf {
        self.a.out.join(name)
    }

    /// Stage 1: start the target and find its capacity; None when
    /// interrupted (what was measured is on disk).
    fn measure(&self) -> anyhow::Result<Option<Capacity>> {
        let a = &self.a;
        let (target, url) = start_target(&self.c, 1)?;
        let base = run_settings(&self.c.scn, &url)?;
        let limits = crate::run_cmd::search_limits(
            Some(a.step),
            Some(a.warmup),
            &base,
            a.max_rate,
            a.probe,
        )?;
        self.progress.stage(
            1,
            &format!(
                "find the capacity of {url} (at most {:.0} rps): concurrency sweep, then {}-step rates at 20%..110%",
                limits.max_rate_rps,
                humantime::format_duration(a.step)
            ),
        );
        let capacity_json = self.out("capacity.json");
        let mut n = 0;
        let (found, runs) =
            crate::capacity::search(&base, &limits, &self.stop, a.quiet, |f, r| {
                n += 1;
                write_json(&self.out(&format!("run_step{n}.json")), r)?;
                crate::write_json(&capacity_json, f)
            })?;
        drop(target);
        if self.stop.is_stopped() {
            eprintln!(
                "loadtest: interrupted during the capacity search: the {} steps measured are in {} (capacity.json, run_step*.json)",
                found.steps.len(),
                a.out.display()
            );
            return Ok(None);
        }
        if !a.quiet {
            eprint!("{}", crate::capacity::render(&found));
        }
        Ok(Some(Capacity {
            found,
            runs,
            base,
            limits,
        }))
    }

    /// Stage 2: fit the service model to the rate steps (not those with
    /// errors over the limit).
    fn calibrate(&self, m: &Capacity) -> anyhow::Result<Calibrated> {
        self.progress
            .stage(2, "fit the service model to the measured steps");
        let mut steps = Vec::new();
        let rate_steps = m.found.steps.iter().zip(&m.runs);
        for (st, r) in rate_steps.filter(|(s, _)| s.phase == "rate") {
            if st.verdict == Verdict::Errors {
                eprintln!(
                    "loadtest: the step at {:.0} rps had {:.2}% errors, over the limit of {}%: not used as a capacity measurement",
                    st.offered_rps.unwrap_or(0.0),
                    100.0 * st.error_rate,
                    100.0 * m.limits.error_limit
                );
                continue;
            }
            steps.extend(crate::simulate_cmd::step_of(r));
        }
        if steps.is_empty() {
            anyhow::bail!(
                "the capacity search measured no usable rate step; see {}",
                self.out("capacity.json").display()
            );
        }
        let mut cfg = self.c.cfg.clone();
        let max_workers = m
            .found
            .saturating_connections
            .map_or(64, |n| (2 * n as u32).clamp(8, 256));
        let fit_below = if self.a.verify {
            crate::verify::FIT_BELOW
        } else {
            simulator::calibrate::BELOW_KNEE
        };
        let capacity = m.found.capacity_rps;
        let fit =
            crate::simulate_cmd::fit_steps(&mut cfg, &steps, capacity, max_workers, fit_below)?;
        if !self.a.quiet {
            eprintln!(
                "{}\n          ({})",
                crate::simulate_cmd::fit_line(&fit),
                fit.assumes
            );
        }
        Ok(Calibrated { cfg, fit })
    }

    /// `--verify`: the fit against the steps it did not see and against
    /// several replicas. The verdict (VerifyMiss when a case missed) and
    /// the document; None when interrupted.
    fn verify(
        &self,
        m: &Capacity,
        cal: &Calibrated,
        given: &Option<Replicas>,
        step: Duration,
        warmup: Duration,
        levels: &[f64],
    ) -> anyhow::Result<Option<(Outcome, contracts::Verify)>> {
        // The built-in target: two more, one per replica, while they are needed.
        let (_extra, many) = match given {
            Some(r) => (None, r.clone()),
            None => {
                let b = self
                    .c
                    .builtin
                    .as_ref()
                    .context("--verify: no built-in target to start")?;
                let (t1, t2) = (Background::builtin(b, 11)?, Background::builtin(b, 12)?);
                let urls = vec![t1.url.clone(), t2.url.clone()];
                (Some((t1, t2)), Replicas::Each(urls))
            }
        };
        let check = crate::verify::Check {
            cfg: &cal.cfg,
            fit: &cal.fit,
            base: &m.base,
            step,
            warmup,
            out: &self.a.out,
            stop: &self.stop,
            quiet: self.a.quiet,
        };
        let doc = check.run(&many, levels)?;
        write_json(&self.out("verify.json"), &doc)?;
        eprint!("{}", crate::verify::render(&doc));
        let misses: Vec<String> = doc.misses().map(|c| c.case.clone()).collect();
        if self.stop.is_stopped() {
            return Ok(None);
        }
        if misses.is_empty() {
            return Ok(Some((Outcome::Passed, doc)));
        }
        eprintln!(
            "loadtest: --verify: {} case(s) outside tolerance: {}; exit 4 once the plan is written (the forecast's model does not predict this service well enough)",
            misses.len(),
            misses.join("; ")
        );
        Ok(Some((Outcome::VerifyMiss, doc)))
    }

    /// Whether to forecast from the fit: it predicts the steps below 90%
    /// of capacity within tolerance, or `--allow-bad-fit` says go on. When
    /// not, the fit is written for a look and the run exits 1.
    fn fit_is_usable(&self, fit: &simulator::calibrate::Fit) -> anyhow::Result<bool> {
        let bad_fit = fit.max_p95_error > crate::verify::P95_TOL
            || fit.max_goodput_error > crate::verify::RPS_TOL;
        if !bad_fit || self.a.allow_bad_fit {
            return Ok(true);
        }
        eprintln!(
            "loadtest: no model fits the measurements: the best ({}) misses p95 by {:.0}% or goodput by {:.0}% on the steps below 90% of capacity (tolerance 15% and 5%); not forecasting from it. The steps and the fit are in {}; --allow-bad-fit forecasts anyway. Exit 1",
            fit.concurrency(),
            100.0 * fit.max_p95_error,
            100.0 * fit.max_goodput_error,
            self.a.out.display()
        );
        write_json(&self.out("fit.json"), fit)?;
        Ok(false)
    }

    /// Stage 3: forecast the growth under the autoscaling policy.
    fn forecast(&self, cal: Calibrated) -> anyhow::Result<simulator::Forecast> {
        self.progress
            .stage(3, "forecast the growth under the autoscaling policy");
        let started = crate::Started::now();
        let mut f = simulator::forecast(&cal.cfg);
        f.calibration = Some(cal.fit);
        crate::simulate_cmd::stamp(&mut f, &started);
        write_json(&self.out("forecast.json"), &f)?;
        std::fs::write(self.out("forecast.csv"), simulator::series_csv(&f))
            .context("cannot write forecast.csv")?;
        Ok(f)
    }

    /// Stage 4: the purchase plan for the forecast, against the catalog.
    fn optimize(
        &self,
        f: &simulator::Forecast,
    ) -> anyhow::Result<(Outcome, Option<optimizer::Plan>)> {
        self.progress
            .stage(4, "optimize the purchase plan against the catalog");
        let prepared = crate::optimize_cmd::prepare_forecast(
            &self.c.optimize,
            self.c.catalog.clone(),
            f,
            &self.out("forecast.json").display().to_string(),
        )?;
        crate::optimize_cmd::execute(&prepared, Some(&self.out("plan.json")))
    }

    /// Stage 5: the report of the highest rate step that held, the
    /// forecast, the plan and the check, and the terminal summary.
    fn report(
        &self,
        m: &Capacity,
        f: &simulator::Forecast,
        plan: Option<&optimizer::Plan>,
        verified: Option<contracts::Verify>,
    ) -> anyhow::Result<()> {
        self.progress.stage(5, "write the reports");
        let held = m
            .found
            .steps
            .iter()
            .enumerate()
            .filter(|(_, s)| s.phase == "rate" && s.verdict == Verdict::Held)
            .map(|(i, _)| i)
            .next_back()
            .unwrap_or(m.runs.len() - 1);
        let mut docs = vec![
            contracts::Doc::Run(Box::new(m.runs[held].clone())),
            contracts::Doc::Forecast(Box::new(f.clone())),
        ];
        docs.extend(plan.map(|p| contracts::Doc::Plan(Box::new(p.clone()))));
        docs.extend(verified.map(|v| contracts::Doc::Verify(Box::new(v))));
        let name = &self.c.scn.name;
        let ropts = reports::Options {
            out: self.a.out.clone(),
            format: reports::Format::Html,
            export_csv: true,
            export_parquet: false,
            regression: 0.1,
            start_date: self.a.start_date.clone(),
            title: format!(
                "Capacity plan: {}",
                if name.is_empty() { "scenario" } else { name }
            ),
        };
        let w = reports::write(&docs, &ropts)?;
        print!("{}", summary(f, plan, self.c.cfg.slo.p95_ms));
        let found = &m.found;
        println!(
            "measured capacity: {:.1} rps per replica; knee {}",
            found.capacity_rps,
            found
                .knee_rps
                .map(|k| format!("{k:.0} rps"))
                .unwrap_or_else(|| "none".into())
        );
        println!(
            "report: {} ({:.0} s in all)",
            w.page.display(),
            self.progress.started.elapsed().as_secs_f64()
        );
        Ok(())
    }
}

/// The terminal summary: servers at the marks, when p95 breaks, the cost.
fn summary(f: &simulator::Forecast, plan: Option<&optimizer::Plan>, p95_target_ms: f64) -> String {
    use std::fmt::Write as _;
    let mut s = String::new();
    let _ = writeln!(
        s,
        "\nservers needed (the autoscaler's steady state at the busiest hour of the day the users are reached; simulated peak in brackets):"
    );
    if f.hourly.is_some() {
        for mark in reports::sections::USER_MARKS {
            match reports::sections::servers_needed(f, mark) {
                Some(n) => {
                    let sim = n
                        .simulated_peak
                        .map(|p| format!(" [{p}]"))
                        .unwrap_or_default();
                    let cache = n
                        .cache
                        .as_ref()
                        .map(|c| {
                            let needed = c
                                .memory_needed_mb
                                .map(|m| format!(", {m:.0} MB keeps the minimum"))
                                .unwrap_or_default();
                            format!(
                                "; cache hit ratio {:.2} ({:.0}% of the working set held{needed})",
                                c.hit_ratio,
                                100.0 * c.held_share
                            )
                        })
                        .unwrap_or_default();
                    let _ = writeln!(
                        s,
                        "  {:>7} users: {} servers{sim}{cache}",
                        short_users(mark),
                        n.servers
                    );
                }
                None => {
                    let _ = writeln!(
                        s,
                        "  {:>7} users: not reached in the horizon",
                        short_users(mark)
                    );
                }
            }
        }
    } else {
        let _ = writeln!(
            s,
            "  (constant-rate scenario: {} to {} replicas)",
            f.replicas.min, f.replicas.max
        );
    }
    match f.crossings.iter().find(|x| x.threshold.starts_with("p95")) {
        Some(x) => {
            let _ = writeln!(s, "p95 target: {}", x.note);
        }
        None => {
            let _ = writeln!(
                s,
                "p95 target: holds over the whole horizon ({} ms)",
                p95_target_ms
            );
        }
    }
    if let Some(p) = plan {
        let _ = writeln!(
            s,
            "cost: ${:.0}/month (all on-demand ${:.0}/month): saves {:.1}%, within {:.2}% of the LP lower bound",
            p.monthly_cost,
            p.monthly_baseline,
            100.0 * p.savings_share,
            100.0 * p.gap
        );
        s.push_str(&crate::optimize_cmd::month_and_commitment_lines(p, ""));
    }
    s
}

fn short_users(x: f64) -> String {
    if x >= 1000.0 {
        format!("{:.0}k", x / 1000.0)
    } else {
        format!("{x:.0}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A mark reached in the last, quiet hours of the horizon still reports
    /// the servers that day's peak needs.
    #[test]
    fn servers_at_a_mark_are_the_days_peak() {
        let hours = 48;
        let users: Vec<f64> = (0..hours).map(|h| 150_000.0 + 1_100.0 * h as f64).collect();
        let replicas: Vec<u32> = (0..hours)
            .map(|h| if h % 24 == 14 { 40 } else { 20 })
            .collect();
        let f = simulator::Forecast {
            hourly: Some(simulator::forecast::Hourly {
                note: String::new(),
                replicas,
                rps: vec![0.0; hours],
                users,
            }),
            ..Default::default()
        };
        let s = summary(&f, None, 200.0);
        assert!(s.contains("200k users: 40 servers"), "{s}");
    }
}
