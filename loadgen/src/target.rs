//! The built-in target: a service with K concurrent workers, a service-time
//! distribution, injected errors and periodic stalls, so that every part of
//! loadtest can run with nothing else installed, and tests know the truth.
//!
//! It counts what it receives (arrivals per second, requests served) and
//! reports it at `GET /__stats`, which tests compare with what the generator
//! measured. The listener and the shutdown signal are injected, so tests
//! bind `127.0.0.1:0` and stop it when they are done.

use std::convert::Infallible;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio::time::Instant;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls;

use crate::LoadgenError;
use crate::spec::{Dist, parse_duration};

/// A periodic stall: every `every`, the last `length` of the period holds
/// every response until the period ends (a GC pause or a lock convoy).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Stall {
    /// How long each stall lasts.
    pub length: Duration,
    /// The period.
    pub every: Duration,
}

impl Stall {
    /// Parses `1s/5s`.
    pub fn parse(text: &str) -> Result<Self, LoadgenError> {
        let bad = || {
            LoadgenError::BadLoad(format!(
                "bad stall `{text}`: write LENGTH/PERIOD, e.g. 1s/5s"
            ))
        };
        let (l, e) = text.split_once('/').ok_or_else(bad)?;
        let s = Stall {
            length: parse_duration(l).map_err(|_| bad())?,
            every: parse_duration(e).map_err(|_| bad())?,
        };
        if s.length.is_zero() || s.length >= s.every {
            return Err(bad());
        }
        Ok(s)
    }

    /// If `elapsed` falls in a stall, when that stall ends.
    pub fn hold_until(&self, elapsed: Duration) -> Option<Duration> {
        let every = self.every.as_nanos();
        let phase = elapsed.as_nanos() % every;
        let start = every - self.length.as_nanos();
        (phase >= start).then(|| elapsed + Duration::from_nanos((every - phase) as u64))
    }
}

/// How the target behaves.
#[derive(Debug, Clone)]
pub struct TargetConfig {
    /// Requests served at once; the rest queue FIFO.
    pub workers: usize,
    /// Time each request holds a worker.
    pub service_time: Dist,
    /// Probability of answering 500.
    pub error_rate: f64,
    /// Optional periodic stall.
    pub stall: Option<Stall>,
    /// Seed of the service-time and error draws.
    pub seed: u64,
    /// Serve HTTPS with a self-signed certificate.
    pub tls: bool,
}

impl Default for TargetConfig {
    fn default() -> Self {
        TargetConfig {
            workers: 8,
            service_time: Dist::Exponential { mean_ms: 20.0 },
            error_rate: 0.0,
            stall: None,
            seed: 1,
            tls: false,
        }
    }
}

impl TargetConfig {
    /// Checks ranges.
    pub fn check(&self) -> Result<(), LoadgenError> {
        if self.workers == 0 {
            return Err(LoadgenError::BadLoad("--workers must be >= 1".into()));
        }
        if !(0.0..=1.0).contains(&self.error_rate) {
            return Err(LoadgenError::BadLoad(format!(
                "--error-rate must be between 0 and 1, got {}",
                self.error_rate
            )));
        }
        if !self.service_time.is_valid() {
            return Err(LoadgenError::BadLoad(format!(
                "--service-time {:?} cannot be drawn from",
                self.service_time
            )));
        }
        Ok(())
    }
}

/// Draws one service time in milliseconds from two uniforms in [0, 1).
pub fn sample_ms(st: &Dist, u1: f64, u2: f64) -> f64 {
    match st {
        Dist::Exponential { mean_ms } => -mean_ms * (1.0 - u1).ln(),
        Dist::Constant { ms } => *ms,
        Dist::Lognormal { mean_ms, p95_ms } => {
            let (mu, sigma) =
                contracts::units::lognormal_params(*mean_ms, *p95_ms).unwrap_or((0.0, 0.0));
            // Box-Muller: one standard normal from two uniforms.
            let z = (-2.0 * (1.0 - u1).ln()).sqrt() * (std::f64::consts::TAU * u2).cos();
            (mu + sigma * z).exp()
        }
        // The value whose cumulative count first passes u1 × the total.
        Dist::Empirical { points } => {
            let total: u64 = points.iter().map(|p| p.1).sum();
            let mut left = u1 * total as f64;
            for &(ms, n) in points {
                left -= n as f64;
                if left < 0.0 {
                    return ms;
                }
            }
            points.last().map_or(0.0, |p| p.0)
        }
    }
}

/// What the target saw.
#[derive(Debug)]
pub struct TargetStats {
    started: Instant,
    served: AtomicU64,
    errors: AtomicU64,
    arrivals: Mutex<Vec<u64>>,
}

impl Default for TargetStats {
    fn default() -> Self {
        TargetStats {
            started: Instant::now(),
            served: AtomicU64::new(0),
            errors: AtomicU64::new(0),
            arrivals: Mutex::new(Vec::new()),
        }
    }
}

impl TargetStats {
    /// Responses sent (including injected errors).
    pub fn served(&self) -> u64 {
        self.served.load(Ordering::Relaxed)
    }

    /// Injected 500s sent.
    pub fn errors(&self) -> u64 {
        self.errors.load(Ordering::Relaxed)
    }

    /// Requests received in each second since the target started.
    pub fn arrivals_per_second(&self) -> Vec<u64> {
        self.arrivals.lock().map(|a| a.clone()).unwrap_or_default()
    }

    fn arrive(&self) -> u64 {
        let s = self.started.elapsed().as_secs() as usize;
        if let Ok(mut a) = self.arrivals.lock() {
            if a.len() <= s {
                a.resize(s + 1, 0);
            }
            a[s] += 1;
        }
        self.served.load(Ordering::Relaxed) + self.errors.load(Ordering::Relaxed)
    }

    fn json(&self) -> String {
        let arrivals: Vec<String> = self
            .arrivals_per_second()
            .iter()
            .map(u64::to_string)
            .collect();
        format!(
            "{{\"served\":{},\"errors\":{},\"arrivals_per_second\":[{}]}}",
            self.served(),
            self.errors(),
            arrivals.join(",")
        )
    }
}

struct Ctx {
    cfg: TargetConfig,
    stats: Arc<TargetStats>,
    workers: Semaphore,
    draws: AtomicU64,
}

/// Serves until `shutdown` completes.
pub async fn serve(
    listener: TcpListener,
    cfg: TargetConfig,
    stats: Arc<TargetStats>,
    shutdown: impl Future<Output = ()>,
) -> Result<(), LoadgenError> {
    cfg.check()?;
    let tls = if cfg.tls {
        Some(self_signed_acceptor()?)
    } else {
        None
    };
    let ctx = Arc::new(Ctx {
        workers: Semaphore::new(cfg.workers),
        cfg,
        stats,
        draws: AtomicU64::new(0),
    });
    tokio::pin!(shutdown);
    loop {
        let (stream, _) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                // Out of descriptors or a reset during accept: keep serving.
                Err(_) => { tokio::time::sleep(Duration::from_millis(5)).await; continue }
            },
            _ = &mut shutdown => return Ok(()),
        };
        let _ = stream.set_nodelay(true);
        let (ctx, tls) = (ctx.clone(), tls.clone());
        tokio::spawn(async move {
            let svc = service_fn(move |req| handle(req, ctx.clone()));
            let mut builder = auto::Builder::new(TokioExecutor::new());
            builder.http2().max_concurrent_streams(10_000);
            match tls {
                None => {
                    let _ = builder.serve_connection(TokioIo::new(stream), svc).await;
                }
                Some(acceptor) => {
                    if let Ok(s) = acceptor.accept(stream).await {
                        let _ = builder.serve_connection(TokioIo::new(s), svc).await;
                    }
                }
            }
        });
    }
}

async fn handle(
    req: Request<hyper::body::Incoming>,
    ctx: Arc<Ctx>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    if req.uri().path() == "/__stats" {
        return Ok(Response::new(Full::new(Bytes::from(ctx.stats.json()))));
    }
    ctx.stats.arrive();
    let mut rng = ChaCha8Rng::seed_from_u64(ctx.cfg.seed);
    rng.set_stream(ctx.draws.fetch_add(1, Ordering::Relaxed));
    let service_ms = sample_ms(&ctx.cfg.service_time, rng.random(), rng.random());
    let fail = rng.random::<f64>() < ctx.cfg.error_rate;
    if let Ok(_worker) = ctx.workers.acquire().await {
        tokio::time::sleep(Duration::from_secs_f64(service_ms.max(0.0) / 1e3)).await;
    }
    if let Some(end) = ctx
        .cfg
        .stall
        .and_then(|s| s.hold_until(ctx.stats.started.elapsed()))
    {
        tokio::time::sleep_until(ctx.stats.started + end).await;
    }
    let (status, body, counter) = if fail {
        (
            StatusCode::INTERNAL_SERVER_ERROR,
            "injected error\n",
            &ctx.stats.errors,
        )
    } else {
        (StatusCode::OK, "ok\n", &ctx.stats.served)
    };
    counter.fetch_add(1, Ordering::Relaxed);
    let mut resp = Response::new(Full::new(Bytes::from_static(body.as_bytes())));
    *resp.status_mut() = status;
    Ok(resp)
}

fn self_signed_acceptor() -> Result<TlsAcceptor, LoadgenError> {
    let tls_err = |e: &dyn std::fmt::Display| LoadgenError::Tls(e.to_string());
    let ck = rcgen::generate_simple_self_signed(vec!["localhost".into(), "127.0.0.1".into()])
        .map_err(|e| tls_err(&e))?;
    let key = rustls::pki_types::PrivateKeyDer::Pkcs8(ck.signing_key.serialize_der().into());
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| tls_err(&e))?
        .with_no_client_auth()
        .with_single_cert(vec![ck.cert.der().clone()], key)
        .map_err(|e| tls_err(&e))?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(TlsAcceptor::from(Arc::new(config)))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An empirical service time (a measured histogram, issue 15: the
    /// target and the simulator take the same type) draws each value with
    /// its count's share.
    #[test]
    fn empirical_service_times_draw_by_count() {
        let d = Dist::Empirical {
            points: vec![(1.0, 1), (9.0, 3)],
        };
        let draws: Vec<f64> = (0..1000)
            .map(|i| sample_ms(&d, (i as f64 + 0.5) / 1000.0, 0.0))
            .collect();
        let nines = draws.iter().filter(|&&x| x == 9.0).count();
        assert_eq!(nines, 750);
        assert!(draws.iter().all(|&x| x == 1.0 || x == 9.0));
        assert_eq!(d.mean_ms(), 7.0);
    }

    #[test]
    fn stall_windows_close_each_period() {
        let s = Stall::parse("1s/5s").unwrap();
        assert_eq!(s.hold_until(Duration::from_millis(3999)), None);
        assert_eq!(
            s.hold_until(Duration::from_millis(4000)),
            Some(Duration::from_secs(5))
        );
        assert_eq!(
            s.hold_until(Duration::from_millis(9500)),
            Some(Duration::from_secs(10))
        );
        assert_eq!(s.hold_until(Duration::from_millis(10_000)), None);
        assert!(Stall::parse("5s/5s").is_err());
        assert!(Stall::parse("1s").is_err());
    }
}
