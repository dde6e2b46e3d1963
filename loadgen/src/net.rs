//! The socket side of the generator: resolving the target, opening TCP or
//! TLS connections, HTTP/1.1 (`h1.rs`) or the HTTP/2 handshake
//! (hyper's connection API, driven directly: no pooled client on the hot
//! path), one exchange, and classifying what went wrong. Scheduling and
//! recording are left to `exec.rs`.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http2;
use hyper::header::{
    AUTHORIZATION, CONTENT_LENGTH, HOST, HeaderName, HeaderValue, TRANSFER_ENCODING,
};
use hyper::{HeaderMap, Method, Request, Uri};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::rustls::{self, pki_types::ServerName};

use crate::h1::{self, Http1, Plain, Stream, Tcp};
use crate::stats::Class;
use crate::{LoadgenError, RequestSpec, TargetSpec};

/// A request, parsed and checked once before the run.
#[derive(Debug, Clone)]
pub(crate) struct Prepared {
    pub method: Method,
    /// Absolute form for HTTP/2's pseudo-headers.
    pub absolute: Uri,
    pub headers: HeaderMap,
    pub body: Bytes,
    /// The whole HTTP/1.1 request (origin-form path), encoded once.
    pub wire: Bytes,
    /// The method may be sent twice with the effect of once (RFC 9110
    /// 9.2.2): GET, HEAD, OPTIONS, TRACE, PUT, DELETE.
    pub idempotent: bool,
    /// What a response must satisfy.
    pub check: crate::check::Check,
}

impl Prepared {
    /// The request for hyper's HTTP/2 connection.
    pub fn build_h2(&self) -> Request<Full<Bytes>> {
        let mut req = Request::new(Full::new(self.body.clone()));
        *req.method_mut() = self.method.clone();
        *req.uri_mut() = self.absolute.clone();
        *req.headers_mut() = self.headers.clone();
        // HTTP/2 carries the authority as a pseudo-header.
        req.headers_mut().remove(HOST);
        req
    }
}

/// Parses and checks a URL: http or https, with a host.
pub fn parse_url(url: &str) -> Result<Uri, LoadgenError> {
    let bad = |why: &str| LoadgenError::BadUrl {
        url: url.to_string(),
        why: why.to_string(),
    };
    let uri: Uri = url
        .parse()
        .map_err(|e: hyper::http::uri::InvalidUri| bad(&e.to_string()))?;
    match uri.scheme_str() {
        Some("http") | Some("https") => {}
        _ => return Err(bad("it must start with http:// or https://")),
    }
    if uri.host().is_none_or(str::is_empty) {
        return Err(bad("it has no host"));
    }
    // `http` keeps a port it cannot read as a u16 and then reports none:
    // the default port would be load-tested under this URL's name.
    if let Some(port) = uri.authority().and_then(|a| port_text(a.as_str()))
        && !port.parse::<u16>().is_ok_and(|p| p > 0)
    {
        return Err(bad(&format!("port {port} is out of range (use 1-65535)")));
    }
    Ok(uri)
}

/// The port as written in an authority (`user@host:port`, `[::1]:port`),
/// if one is written.
fn port_text(authority: &str) -> Option<&str> {
    let host_port = authority.rsplit_once('@').map_or(authority, |(_, hp)| hp);
    let after_host = match host_port.strip_prefix('[') {
        Some(v6) => v6.split_once(']').map_or("", |(_, rest)| rest),
        None => host_port,
    };
    let (_, port) = after_host.rsplit_once(':')?;
    (!port.is_empty()).then_some(port)
}

pub(crate) fn prepare(target: &Uri, spec: &RequestSpec) -> Result<Prepared, LoadgenError> {
    let absolute = match &spec.url {
        Some(u) if u.starts_with('/') => {
            let joined = format!(
                "{}://{}{}",
                target.scheme_str().unwrap_or("http"),
                target.authority().map(|a| a.as_str()).unwrap_or(""),
                u
            );
            parse_url(&joined)?
        }
        Some(u) => parse_url(u)?,
        None => target.clone(),
    };
    let method = Method::from_bytes(spec.method.to_ascii_uppercase().as_bytes())
        .map_err(|_| LoadgenError::BadMethod(spec.method.clone()))?;
    let path: Uri = absolute
        .path_and_query()
        .map(|p| p.as_str())
        .unwrap_or("/")
        .parse()
        .map_err(|_| LoadgenError::BadUrl {
            url: absolute.to_string(),
            why: "bad path".into(),
        })?;
    let mut headers = HeaderMap::new();
    if let Some(auth) = absolute.authority() {
        headers.insert(
            HOST,
            HeaderValue::from_str(auth.as_str()).expect("authority is a valid header"),
        );
    }
    for (k, v) in &spec.headers {
        let name = HeaderName::from_bytes(k.trim().as_bytes())
            .map_err(|_| LoadgenError::BadHeader(format!("{k}: ...")))?;
        if name == CONTENT_LENGTH || name == TRANSFER_ENCODING {
            return Err(LoadgenError::FramingHeader(k.trim().to_string()));
        }
        let value = HeaderValue::from_str(v.trim())
            .map_err(|_| LoadgenError::BadHeader(format!("{k}: ...")))?;
        headers.append(name, value);
    }
    let body = Bytes::from(spec.body.clone());
    let wire = h1::encode(&method, &path.to_string(), &headers, &body);
    let idempotent = [
        Method::GET,
        Method::HEAD,
        Method::OPTIONS,
        Method::TRACE,
        Method::PUT,
        Method::DELETE,
    ]
    .contains(&method);
    Ok(Prepared {
        method,
        absolute,
        headers,
        body,
        wire,
        idempotent,
        check: spec.check.clone(),
    })
}

/// Header values shown to people: secrets become `***`.
pub fn redact_header(name: &str, value: &str) -> String {
    let n = name.trim().to_ascii_lowercase();
    let secret = n == AUTHORIZATION.as_str()
        || n == "cookie"
        || [
            "auth",
            "token",
            "api-key",
            "apikey",
            "secret",
            "password",
            "session",
            "credential",
        ]
        .iter()
        .any(|w| n.contains(w));
    if secret {
        "***".to_string()
    } else {
        value.to_string()
    }
}

/// An open client connection.
pub(crate) enum Conn {
    /// HTTP/1.1 on our own hot path ([`crate::h1`]), polled by the task
    /// that sends: a request and its response cost no cross-task wake-ups.
    H1(Box<Http1>),
    /// HTTP/2 (hyper): one spawned connection carries the streams of many tasks.
    H2(http2::SendRequest<Full<Bytes>>),
}

impl Conn {
    /// Whether responses are timed by the kernel's receive timestamps.
    pub fn stamped(&self) -> bool {
        matches!(self, Conn::H1(c) if c.stamped())
    }

    /// See [`Http1::failed_unanswered_on_reuse`]; HTTP/2 never (hyper
    /// itself retries a stream refused by a GOAWAY).
    pub fn failed_unanswered_on_reuse(&self) -> bool {
        matches!(self, Conn::H1(c) if c.failed_unanswered_on_reuse())
    }

    pub fn is_closed(&self) -> bool {
        match self {
            Conn::H1(c) => !c.is_open(),
            Conn::H2(s) => s.is_closed(),
        }
    }

    /// Sends one request and reads the whole body; the status tells the
    /// outcome. Also returns when the response arrived, if the socket says.
    /// With `keep`, the body (up to [`crate::check::MAX_CHECKED_BODY`]) is left there for
    /// the request's checks; `Answer::truncated` says if it was longer.
    pub async fn exchange(
        &mut self,
        req: &Prepared,
        keep: Option<&mut Vec<u8>>,
    ) -> Result<Answer, Class> {
        match self {
            Conn::H1(c) => {
                let before = c.received();
                let head = req.method == Method::HEAD;
                let (status, arrived, truncated) = c.exchange(&req.wire, head, keep).await?;
                Ok(Answer {
                    status,
                    arrived,
                    first_byte: c.first_byte(),
                    received: c.received() - before,
                    truncated,
                })
            }
            Conn::H2(s) => {
                s.ready().await.map_err(classify)?;
                let resp = s.send_request(req.build_h2()).await.map_err(classify)?;
                // The response's headers: its first frame.
                let first_byte = Some(Instant::now());
                let status = resp.status().as_u16();
                let mut body = resp.into_body();
                let (mut received, mut sink) = (0, h1::Sink::new(keep));
                while let Some(frame) = body.frame().await {
                    let frame = frame.map_err(classify)?;
                    let data = frame.data_ref().map_or(&[][..], |d| &d[..]);
                    received += data.len() as u64;
                    sink.take(data);
                }
                Ok(Answer {
                    status,
                    arrived: None,
                    first_byte,
                    received,
                    truncated: sink.truncated,
                })
            }
        }
    }

    /// The bytes one send of `req` puts on this connection: the whole
    /// request on HTTP/1.1; the body on HTTP/2 (its headers go
    /// HPACK-compressed, their size is the connection's business).
    pub fn request_bytes(&self, req: &Prepared) -> u64 {
        match self {
            Conn::H1(_) => req.wire.len() as u64,
            Conn::H2(_) => req.body.len() as u64,
        }
    }
}

/// A response, read whole.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Answer {
    /// Its status code.
    pub status: u16,
    /// When its last byte arrived, if the socket tells (plain TCP on Linux).
    pub arrived: Option<Instant>,
    /// When its first byte arrived (the kernel's time on plain TCP on
    /// Linux; when the generator read it otherwise; HTTP/2: its headers).
    pub first_byte: Option<Instant>,
    /// Bytes it took on the connection: head and body on HTTP/1.1, the
    /// body on HTTP/2.
    pub received: u64,
    /// The body kept for checks was cut at [`crate::check::MAX_CHECKED_BODY`].
    pub truncated: bool,
}

/// Maps a hyper error to its class.
fn classify(e: hyper::Error) -> Class {
    if e.is_timeout() {
        return Class::Timeout;
    }
    if e.is_parse() || e.is_parse_status() || e.is_parse_too_large() || e.is_user() {
        return Class::Protocol;
    }
    if e.is_incomplete_message() || e.is_closed() || e.is_canceled() || e.is_body_write_aborted() {
        return Class::Reset;
    }
    let mut src: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(&e);
    while let Some(s) = src {
        if s.is::<std::io::Error>() {
            return Class::Reset;
        }
        src = s.source();
    }
    Class::Protocol
}

/// Opens connections to one target.
#[derive(Clone)]
pub(crate) struct Connector {
    pub addr: SocketAddr,
    tls: Option<(TlsConnector, ServerName<'static>)>,
    http2: bool,
}

impl Connector {
    /// Resolves the target once, before the run, and sets up TLS.
    pub async fn new(target: &Uri, spec: &TargetSpec) -> Result<Self, LoadgenError> {
        let host = target.host().unwrap_or("").trim_matches(['[', ']']);
        let https = target.scheme_str() == Some("https");
        let port = target.port_u16().unwrap_or(if https { 443 } else { 80 });
        let unreachable = |why: String| LoadgenError::Unreachable {
            url: target.to_string(),
            why,
        };
        let addr = tokio::net::lookup_host((host, port))
            .await
            .map_err(|e| unreachable(e.to_string()))?
            .next()
            .ok_or_else(|| unreachable("the host name has no address".into()))?;
        let tls = if https {
            let name = ServerName::try_from(host.to_string())
                .map_err(|_| unreachable("the host is not a valid TLS server name".into()))?;
            Some((TlsConnector::from(Arc::new(tls_config(spec)?)), name))
        } else {
            None
        };
        Ok(Connector {
            addr,
            tls,
            http2: spec.http2,
        })
    }

    /// TCP, then TLS for https: the part of a connection every request
    /// and the preflight share. Also returns how long each took.
    async fn open(&self) -> Result<(Transport, Phases), OpenError> {
        let t0 = Instant::now();
        let tcp = TcpStream::connect(self.addr)
            .await
            .map_err(OpenError::Tcp)?;
        let t1 = Instant::now();
        let _ = tcp.set_nodelay(true);
        match &self.tls {
            None => Ok((
                Transport::Plain(tcp),
                Phases {
                    tcp: t1 - t0,
                    tls: None,
                },
            )),
            Some((connector, name)) => connector
                .connect(name.clone(), tcp)
                .await
                .map(|t| {
                    (
                        Transport::Tls(Box::new(t)),
                        Phases {
                            tcp: t1 - t0,
                            tls: Some(t1.elapsed()),
                        },
                    )
                })
                .map_err(OpenError::Tls),
        }
    }

    /// Opens one connection as a request would, so that a wrong URL or an
    /// untrusted certificate is one clear error before any load (the
    /// run's own connections only count such failures).
    pub async fn probe(&self, url: &str, timeout: Duration) -> Result<(), LoadgenError> {
        let unreachable = |why: String| LoadgenError::Unreachable {
            url: url.to_string(),
            why,
        };
        match tokio::time::timeout(timeout, self.open()).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(OpenError::Tcp(e))) => Err(unreachable(e.to_string())),
            Ok(Err(OpenError::Tls(e))) => Err(LoadgenError::Refused {
                url: url.to_string(),
                why: tls_refusal(&e),
            }),
            Err(_) => Err(unreachable(format!("no answer within {timeout:?}"))),
        }
    }

    /// Opens one connection and performs the HTTP handshake; also says
    /// how long its TCP connect and TLS handshake took.
    pub async fn connect(&self, timeout: Duration) -> Result<(Conn, Phases), Class> {
        match tokio::time::timeout(timeout, self.connect_inner()).await {
            Ok(r) => r,
            Err(_) => Err(Class::Connect),
        }
    }

    async fn connect_inner(&self) -> Result<(Conn, Phases), Class> {
        let (transport, phases) = self.open().await.map_err(|_| Class::Connect)?;
        let conn = match transport {
            Transport::Plain(tcp) if self.http2 => h2_handshake(tcp).await?,
            Transport::Plain(tcp) => {
                let tcp = Tcp::new(tcp).map_err(|_| Class::Connect)?;
                Conn::H1(Box::new(Http1::new(Stream::Tcp(tcp))))
            }
            Transport::Tls(tls) if tls.get_ref().1.alpn_protocol() == Some(b"h2") => {
                h2_handshake(*tls).await?
            }
            Transport::Tls(tls) => Conn::H1(Box::new(Http1::new(Stream::Tls(Plain(tls))))),
        };
        Ok((conn, phases))
    }
}

/// How long the phases of opening a connection took (k6's
/// `http_req_connecting` and `http_req_tls_handshaking`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Phases {
    /// The TCP connect.
    pub tcp: Duration,
    /// The TLS handshake, for https.
    pub tls: Option<Duration>,
}

/// An opened connection before its HTTP handshake.
enum Transport {
    Plain(TcpStream),
    Tls(Box<tokio_rustls::client::TlsStream<TcpStream>>),
}

/// Why opening one failed: the OS's reason, or the TLS handshake's.
enum OpenError {
    Tcp(std::io::Error),
    Tls(std::io::Error),
}

async fn h2_handshake<T>(io: T) -> Result<Conn, Class>
where
    T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (send, conn) = http2::handshake(TokioExecutor::new(), TokioIo::new(io))
        .await
        .map_err(classify_connect)?;
    tokio::spawn(conn);
    Ok(Conn::H2(send))
}

fn classify_connect(_: hyper::Error) -> Class {
    Class::Connect
}

/// Why a TLS handshake failed, with the way out when it is the certificate.
fn tls_refusal(e: &std::io::Error) -> String {
    let certificate = e
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>())
        .is_some_and(|r| matches!(r, rustls::Error::InvalidCertificate(_)));
    if certificate {
        format!(
            "the TLS certificate is not trusted ({e}): use --insecure for a self-signed staging certificate"
        )
    } else {
        format!("the TLS handshake failed: {e}")
    }
}

fn tls_config(spec: &TargetSpec) -> Result<rustls::ClientConfig, LoadgenError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| LoadgenError::Tls(e.to_string()))?;
    let mut config = if spec.insecure {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AcceptAnyCert(provider)))
            .with_no_client_auth()
    } else {
        let mut roots = rustls::RootCertStore::empty();
        roots.add_parsable_certificates(rustls_native_certs::load_native_certs().certs);
        builder.with_root_certificates(roots).with_no_client_auth()
    };
    config.alpn_protocols = if spec.http2 {
        vec![b"h2".to_vec(), b"http/1.1".to_vec()]
    } else {
        vec![b"http/1.1".to_vec()]
    };
    Ok(config)
}

/// `--insecure`: accepts any certificate (self-signed staging), but still
/// checks that the handshake is signed by the key the server presented.
#[derive(Debug)]
struct AcceptAnyCert(Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for AcceptAnyCert {
    fn verify_server_cert(
        &self,
        _end_entity: &rustls::pki_types::CertificateDer<'_>,
        _intermediates: &[rustls::pki_types::CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_checked() {
        assert!(parse_url("http://127.0.0.1:8080/").is_ok());
        assert!(parse_url("https://staging.example/api?x=1").is_ok());
        for bad in [
            "127.0.0.1:8080",
            "ftp://x/",
            "http://",
            "not a url",
            "http:///path",
        ] {
            assert!(parse_url(bad).is_err(), "{bad} should fail");
        }
    }

    /// An out-of-range port is bad input, not the default port in disguise.
    #[test]
    fn a_port_out_of_range_is_refused() {
        for bad in [
            "http://127.0.0.1:99999/",
            "http://127.0.0.1:65536/",
            "http://127.0.0.1:0/",
            "http://[::1]:70000/",
            "http://u:p@127.0.0.1:123456/",
        ] {
            let e = parse_url(bad).expect_err(bad).to_string();
            assert!(e.contains("out of range (use 1-65535)"), "{bad}: {e}");
        }
        for good in [
            "http://127.0.0.1:65535/",
            "http://[::1]:8080/",
            "http://[::1]/",
            "http://h:/",
        ] {
            assert!(parse_url(good).is_ok(), "{good}");
        }
    }

    #[test]
    fn requests_join_paths_and_keep_host() {
        let target = parse_url("http://127.0.0.1:9/base").unwrap();
        let spec = RequestSpec {
            url: Some("/cart?id=7".into()),
            method: "post".into(),
            headers: vec![("X-Trace".into(), "1".into())],
            body: b"{}".to_vec(),
            ..RequestSpec::default()
        };
        let p = prepare(&target, &spec).unwrap();
        assert_eq!(p.method, Method::POST);
        assert!(
            p.wire
                .starts_with(b"POST /cart?id=7 HTTP/1.1\r\nhost: 127.0.0.1:9\r\n")
        );
        assert_eq!(p.absolute.to_string(), "http://127.0.0.1:9/cart?id=7");
        assert_eq!(p.headers[HOST], "127.0.0.1:9");
        let r = p.build_h2();
        assert!(r.headers().get(HOST).is_none());
        assert_eq!(r.uri().to_string(), "http://127.0.0.1:9/cart?id=7");
    }

    #[test]
    fn secrets_are_redacted() {
        assert_eq!(redact_header("Authorization", "Bearer abc"), "***");
        assert_eq!(redact_header("x-api-key", "abc"), "***");
        for name in [
            "Proxy-Authorization",
            "X-Auth",
            "X-Session-Id",
            "X-Password",
            "X-ApiKey",
        ] {
            assert_eq!(redact_header(name, "abc"), "***", "{name}");
        }
        assert_eq!(redact_header("Accept", "text/html"), "text/html");
    }
}
