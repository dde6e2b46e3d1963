//! `loadtest serve`: the built-in target on loopback, until Ctrl-C or
//! `--exit-after`.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use anyhow::{Context, bail};
use contracts::units::Dist;
use loadgen::target::{Stall, TargetConfig, TargetStats};

use crate::Outcome;
use crate::cli::ServeArgs;

pub fn serve(a: ServeArgs) -> anyhow::Result<Outcome> {
    let ip: IpAddr = a.host.trim_matches(['[', ']']).parse().with_context(|| {
        format!(
            "bad --host `{}`: give a loopback address such as 127.0.0.1 or ::1",
            a.host
        )
    })?;
    if !ip.is_loopback() {
        bail!(
            "--host {ip} is not a loopback address: the built-in target only listens on 127.0.0.0/8 or ::1"
        );
    }
    let cfg = TargetConfig {
        workers: a.workers,
        service_time: Dist::parse(&a.service_time).context("--service-time")?,
        error_rate: a.error_rate,
        stall: a
            .stall
            .as_deref()
            .map(Stall::parse)
            .transpose()
            .context("--stall")?,
        seed: a.seed,
        tls: a.tls,
    };
    cfg.check()?;
    let exit_after = a.exit_after;
    let mut rt = tokio::runtime::Builder::new_multi_thread();
    if let Some(n) = a.threads {
        rt.worker_threads(n.max(1));
    }
    let rt = rt.enable_all().build()?;
    rt.block_on(async {
        let listener = tokio::net::TcpListener::bind(SocketAddr::new(ip, a.port))
            .await
            .with_context(|| format!("cannot listen on {ip}:{}: is the port in use? try --port 0", a.port))?;
        let addr = listener.local_addr()?;
        let scheme = if a.tls { "https" } else { "http" };
        let host = if ip.is_ipv6() { format!("[{ip}]") } else { ip.to_string() };
        println!(
            "loadtest serve: listening on {scheme}://{host}:{}/ ({} workers, service time {}, error rate {}{})",
            addr.port(),
            cfg.workers,
            a.service_time,
            cfg.error_rate,
            a.stall.as_deref().map(|s| format!(", stall {s}")).unwrap_or_default()
        );
        use std::io::Write as _;
        let _ = std::io::stdout().flush();
        let stats = Arc::new(TargetStats::default());
        let shutdown = async move {
            match exit_after {
                Some(d) => {
                    tokio::select! { _ = tokio::signal::ctrl_c() => {}, _ = tokio::time::sleep(d) => {} }
                }
                None => {
                    let _ = tokio::signal::ctrl_c().await;
                }
            }
        };
        loadgen::target::serve(listener, cfg, stats.clone(), shutdown).await?;
        println!("loadtest serve: served {} responses ({} injected errors)", stats.served() + stats.errors(), stats.errors());
        anyhow::Ok(())
    })?;
    Ok(Outcome::Passed)
}

/// The built-in target running in-process on a free loopback port, for
/// `run --builtin` and scenarios with `[target] builtin`. Stops when dropped.
pub struct Background {
    pub url: String,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Background {
    /// The built-in target as a scenario's `[target] builtin` describes it.
    pub fn builtin(b: &crate::scenario::Builtin, seed: u64) -> anyhow::Result<Background> {
        Background::start(TargetConfig {
            workers: b.workers,
            service_time: b.service_time.clone(),
            error_rate: b.error_rate,
            stall: b.stall,
            seed,
            tls: false,
        })
    }

    pub fn start(cfg: TargetConfig) -> anyhow::Result<Background> {
        cfg.check()?;
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("builtin-target".into())
            .spawn(move || {
                let rt = match tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(1)
                    .enable_all()
                    .build()
                {
                    Ok(rt) => rt,
                    Err(e) => return drop(ready_tx.send(Err(anyhow::Error::from(e)))),
                };
                rt.block_on(async move {
                    let listener = match tokio::net::TcpListener::bind("127.0.0.1:0").await {
                        Ok(l) => l,
                        Err(e) => return drop(ready_tx.send(Err(e.into()))),
                    };
                    let url = listener
                        .local_addr()
                        .map(|a| format!("http://{a}/"))
                        .map_err(anyhow::Error::from);
                    let _ = ready_tx.send(url);
                    let stats = Arc::new(TargetStats::default());
                    let _ = loadgen::target::serve(listener, cfg, stats, async {
                        let _ = stopped.await;
                    })
                    .await;
                });
            })?;
        let url = ready_rx
            .recv()
            .context("the built-in target did not start")??;
        Ok(Background {
            url,
            stop: Some(stop),
            thread: Some(thread),
        })
    }
}

impl Drop for Background {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
