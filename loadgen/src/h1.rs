//! The HTTP/1.1 hot path: a request encoded once before the run, written
//! with one `write`, and a response head parsed in place with httparse
//! (hyper's own parser) from a buffer the connection keeps for its life.
//! The body is framed (Content-Length, chunked, or until close) and skipped
//! without being copied out, unless the request's checks read it (then it
//! is copied into the caller's buffer). No per-request allocation, no channel between
//! the sender and the connection, no header map built for a response
//! nobody reads.
//!
//! Errors map to the classes hyper's would: a peer that closes or resets
//! mid-exchange is `Reset`, anything that does not parse is `Protocol`.

use std::io::{self, Write};
use std::mem::MaybeUninit;
use std::time::{Duration, Instant, SystemTime};

use bytes::{BufMut, Bytes, BytesMut};
use hyper::{HeaderMap, Method};
use tokio::io::unix::AsyncFd;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;

use crate::check::MAX_CHECKED_BODY;
use crate::stats::Class;

/// Most header lines a response may carry (hyper's default).
const MAX_HEADERS: usize = 100;
/// The read buffer each connection starts with.
const INITIAL_BUF: usize = 16 * 1024;
/// Largest response head accepted (hyper's default read-buffer limit).
const MAX_HEAD: usize = 400 * 1024;

/// Encodes a request in HTTP/1.1 wire form, once, before the run.
/// `headers` carries Host first; a body gets its Content-Length.
pub(crate) fn encode(method: &Method, path: &str, headers: &HeaderMap, body: &[u8]) -> Bytes {
    let mut out = BytesMut::with_capacity(64 + path.len() + body.len());
    out.put_slice(method.as_str().as_bytes());
    out.put_u8(b' ');
    out.put_slice(path.as_bytes());
    out.put_slice(b" HTTP/1.1\r\n");
    for (name, value) in headers {
        out.put_slice(name.as_str().as_bytes());
        out.put_slice(b": ");
        out.put_slice(value.as_bytes());
        out.put_slice(b"\r\n");
    }
    let defines_body = matches!(*method, Method::POST | Method::PUT | Method::PATCH);
    if !body.is_empty() || defines_body {
        out.put_slice(format!("content-length: {}\r\n", body.len()).as_bytes());
    }
    out.put_slice(b"\r\n");
    out.put_slice(body);
    out.freeze()
}

/// A byte stream a connection can send on and read from. A read may say
/// when its last byte reached this host (the kernel's receive timestamp),
/// so that a response is timed at its arrival, not at the moment the
/// generator got round to reading it.
pub(crate) trait Wire {
    /// Whether `recv` gives arrival times.
    fn stamped(&self) -> bool;
    async fn send(&mut self, buf: &[u8]) -> io::Result<()>;
    async fn recv(&mut self, buf: &mut [u8]) -> io::Result<(usize, Option<Instant>)>;
}

/// The byte stream under a connection: plain TCP, or TLS over it.
pub(crate) enum Stream {
    Tcp(Tcp),
    Tls(Plain<Box<TlsStream<TcpStream>>>),
}

impl Wire for Stream {
    fn stamped(&self) -> bool {
        match self {
            Stream::Tcp(s) => s.stamped(),
            Stream::Tls(s) => s.stamped(),
        }
    }

    async fn send(&mut self, buf: &[u8]) -> io::Result<()> {
        match self {
            Stream::Tcp(s) => s.send(buf).await,
            Stream::Tls(s) => s.send(buf).await,
        }
    }

    async fn recv(&mut self, buf: &mut [u8]) -> io::Result<(usize, Option<Instant>)> {
        match self {
            Stream::Tcp(s) => s.recv(buf).await,
            Stream::Tls(s) => s.recv(buf).await,
        }
    }
}

/// Any tokio stream, without receive timestamps (TLS: the timestamp of
/// the ciphertext says little about when the record was complete).
pub(crate) struct Plain<S>(pub S);

impl<S: AsyncRead + AsyncWrite + Unpin> Wire for Plain<S> {
    fn stamped(&self) -> bool {
        false
    }

    async fn send(&mut self, buf: &[u8]) -> io::Result<()> {
        self.0.write_all(buf).await?;
        self.0.flush().await
    }

    async fn recv(&mut self, buf: &mut [u8]) -> io::Result<(usize, Option<Instant>)> {
        Ok((self.0.read(buf).await?, None))
    }
}

/// Room for one `SCM_TIMESTAMPNS` control message, aligned as `cmsghdr`.
#[repr(align(8))]
struct CmsgBuf([u8; 64]);

/// Plain TCP, registered with tokio's reactor directly so that a read can
/// use `recvmsg` and carry the kernel's receive timestamp (`SO_TIMESTAMPNS`).
pub(crate) struct Tcp {
    fd: AsyncFd<std::net::TcpStream>,
    stamps: bool,
    /// Reads with data in a row that came without a timestamp.
    unstamped: u32,
    cmsg: CmsgBuf,
}

/// Reads in a row without a timestamp after which a socket stops asking
/// for them. Linux turns receive timestamps on for the whole host only
/// when the first socket asks, from a deferred work item, so the first
/// responses after that may come without one; a kernel that accepts the
/// option and never delivers a stamp (gVisor, for one) is told apart by
/// never delivering any.
const UNSTAMPED_GIVE_UP: u32 = 8;

impl Tcp {
    pub fn new(s: TcpStream) -> io::Result<Self> {
        let s = s.into_std()?;
        #[cfg(target_os = "linux")]
        let stamps =
            nix::sys::socket::setsockopt(&s, nix::sys::socket::sockopt::ReceiveTimestampns, &true)
                .is_ok();
        #[cfg(not(target_os = "linux"))]
        let stamps = false;
        // `AsyncFd::new` is deprecated because some `AsRawFd` types can
        // close or swap their descriptor while registered (tokio #8587); a
        // std `TcpStream` owns its descriptor for its whole life, which is
        // the condition `register` asks for, without `unsafe` here.
        #[allow(deprecated)]
        let fd = AsyncFd::new(s)?;
        Ok(Tcp {
            fd,
            stamps,
            unstamped: 0,
            cmsg: CmsgBuf([0; 64]),
        })
    }
}

impl Wire for Tcp {
    fn stamped(&self) -> bool {
        self.stamps
    }

    async fn send(&mut self, mut buf: &[u8]) -> io::Result<()> {
        while !buf.is_empty() {
            // A socket is nearly always writable: write first, and wait for
            // room only when the send buffer is full.
            match self.fd.get_ref().write(buf) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => buf = &buf[n..],
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    self.fd.writable().await?.clear_ready()
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    async fn recv(&mut self, buf: &mut [u8]) -> io::Result<(usize, Option<Instant>)> {
        loop {
            let mut ready = self.fd.readable().await?;
            match recv_stamped(ready.get_inner(), buf, self.stamps, &mut self.cmsg) {
                Ok((n, at, stamp_came)) => {
                    // A read without a stamp is timed by the clock; a
                    // socket that never gets one stops claiming them.
                    if stamp_came {
                        self.unstamped = 0;
                    } else if self.stamps && n > 0 {
                        self.unstamped += 1;
                        self.stamps = self.unstamped < UNSTAMPED_GIVE_UP;
                    }
                    // A short read drained the socket (tokio's own rule):
                    // the next read waits for the reactor, not for EAGAIN.
                    if n > 0 && n < buf.len() {
                        ready.clear_ready();
                    }
                    return Ok((n, at));
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => ready.clear_ready(),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
    }
}

/// One `recvmsg`; with `stamps` (Linux only), also when the data arrived,
/// and whether the kernel sent a timestamp at all.
fn recv_stamped(
    s: &std::net::TcpStream,
    buf: &mut [u8],
    stamps: bool,
    cmsg: &mut CmsgBuf,
) -> io::Result<(usize, Option<Instant>, bool)> {
    use nix::sys::socket::{MsgFlags, recvmsg};
    use std::os::fd::AsRawFd;
    let mut iov = [io::IoSliceMut::new(buf)];
    let control = if stamps { Some(&mut cmsg.0[..]) } else { None };
    let msg = recvmsg::<()>(s.as_raw_fd(), &mut iov, control, MsgFlags::empty())
        .map_err(io::Error::from)?;
    #[cfg_attr(not(target_os = "linux"), allow(unused_mut))]
    let (mut at, mut came) = (None, false);
    #[cfg(target_os = "linux")]
    if msg.bytes > 0
        && let Ok(cmsgs) = msg.cmsgs()
    {
        for c in cmsgs {
            if let nix::sys::socket::ControlMessageOwned::ScmTimestampns(ts) = c {
                at = arrival(ts.tv_sec(), ts.tv_nsec());
                came = true;
            }
        }
    }
    Ok((msg.bytes, at, came))
}

/// A kernel timestamp (wall clock) as an `Instant`: now, less the data's age.
/// `None` for a timestamp from the future (the wall clock stepped back).
#[cfg_attr(not(target_os = "linux"), allow(dead_code))]
fn arrival(sec: i64, nsec: i64) -> Option<Instant> {
    let stamp =
        SystemTime::UNIX_EPOCH + Duration::new(u64::try_from(sec).ok()?, u32::try_from(nsec).ok()?);
    let now = Instant::now();
    let age = SystemTime::now().duration_since(stamp).ok()?;
    now.checked_sub(age)
}

/// How a response's body ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Framing {
    Empty,
    Length(u64),
    Chunked,
    /// No length given: the body runs until the server closes.
    UntilClose,
}

/// What the head of a response says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Head {
    status: u16,
    framing: Framing,
    /// The connection cannot carry another request after this one.
    close: bool,
}

/// One HTTP/1.1 client connection.
pub(crate) struct Http1<W = Stream> {
    io: W,
    buf: Box<[u8]>,
    /// Unread bytes are `buf[start..end]`.
    start: usize,
    end: usize,
    open: bool,
    /// When the last bytes read arrived, if the stream can tell.
    arrived: Option<Instant>,
    /// Exchanges completed on this connection.
    served: u64,
    /// A byte of the current exchange's response has come.
    answered: bool,
    /// When the current exchange's first response byte came.
    first_byte: Option<Instant>,
    /// Bytes read from the connection, all exchanges.
    received: u64,
}

impl<W: Wire> Http1<W> {
    pub fn new(io: W) -> Self {
        Http1 {
            io,
            buf: vec![0; INITIAL_BUF].into_boxed_slice(),
            start: 0,
            end: 0,
            open: true,
            arrived: None,
            served: 0,
            answered: false,
            first_byte: None,
            received: 0,
        }
    }

    /// When the last exchange's first response byte arrived.
    pub fn first_byte(&self) -> Option<Instant> {
        self.first_byte
    }

    /// The last exchange failed on a connection that had carried a request
    /// before, with not a byte of a response: the server closed it while
    /// it was idle (a keep-alive timeout, or a limit of requests per
    /// connection), so the request most likely never reached it.
    pub fn failed_unanswered_on_reuse(&self) -> bool {
        !self.open && self.served > 0 && !self.answered
    }

    /// Whether reads carry the kernel's receive timestamps.
    pub fn stamped(&self) -> bool {
        self.io.stamped()
    }

    /// False once the peer closed, the framing ran to the close, or an
    /// exchange failed: the connection must not carry another request.
    /// Bytes read from the connection so far.
    pub fn received(&self) -> u64 {
        self.received
    }

    pub fn is_open(&self) -> bool {
        self.open
    }

    /// Sends one encoded request and reads its whole response; the status
    /// tells the outcome. `head` is true for HEAD requests (no body back).
    /// Also returns when the response's last byte arrived, if the stream
    /// can tell (plain TCP on Linux), and, with `keep`, leaves the body
    /// there (up to [`MAX_CHECKED_BODY`]; true when it was longer).
    pub async fn exchange(
        &mut self,
        request: &[u8],
        head: bool,
        keep: Option<&mut Vec<u8>>,
    ) -> Result<(u16, Option<Instant>, bool), Class> {
        // Closed until the exchange completes: a failure, or a timeout that
        // drops this future halfway, leaves the connection unusable.
        if !std::mem::replace(&mut self.open, false) {
            return Err(Class::Reset);
        }
        if self.start != self.end {
            // The last response carried more than its framing said.
            return Err(Class::Protocol);
        }
        self.arrived = None;
        self.answered = false;
        self.first_byte = None;
        self.io.send(request).await.map_err(io_class)?;
        let head_of = loop {
            let h = self.read_head(head).await?;
            match h.status {
                // 100 Continue and other interim answers precede the real one.
                100 | 102..=199 => continue,
                101 => return Err(Class::Protocol),
                _ => break h,
            }
        };
        let mut sink = Sink::new(keep);
        match head_of.framing {
            Framing::Empty => {}
            Framing::Length(n) => self.skip(n, &mut sink).await?,
            Framing::Chunked => self.skip_chunked(&mut sink).await?,
            // `close` is set for this framing: the connection ends here.
            Framing::UntilClose => self.skip_to_close(&mut sink).await?,
        }
        self.open = !head_of.close;
        self.served += 1;
        Ok((head_of.status, self.arrived, sink.truncated))
    }

    /// Reads and parses a response head, consuming it from the buffer.
    async fn read_head(&mut self, head_request: bool) -> Result<Head, Class> {
        loop {
            if self.end > self.start
                && let Some(h) = parse_head(&self.buf[self.start..self.end], head_request)?
            {
                self.start += h.0;
                return Ok(h.1);
            }
            if self.end - self.start >= MAX_HEAD {
                return Err(Class::Protocol);
            }
            self.fill().await?;
        }
    }

    /// Reads more bytes after the unread ones; the end of the stream here
    /// is a message cut short.
    async fn fill(&mut self) -> Result<(), Class> {
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
        } else if self.end == self.buf.len() {
            if self.start > 0 {
                self.buf.copy_within(self.start..self.end, 0);
                self.end -= self.start;
                self.start = 0;
            } else {
                let mut bigger = vec![0; (self.buf.len() * 2).min(MAX_HEAD)].into_boxed_slice();
                bigger[..self.end].copy_from_slice(&self.buf[..self.end]);
                self.buf = bigger;
            }
        }
        match self.io.recv(&mut self.buf[self.end..]).await {
            Ok((0, _)) => Err(Class::Reset),
            Ok((n, at)) => {
                self.end += n;
                self.received += n as u64;
                self.arrived = at;
                if !self.answered {
                    self.answered = true;
                    self.first_byte = Some(at.unwrap_or_else(Instant::now));
                }
                Ok(())
            }
            Err(e) => Err(io_class(e)),
        }
    }

    /// Consumes `n` body bytes, reading as needed, into `sink`.
    async fn skip(&mut self, mut n: u64, sink: &mut Sink<'_>) -> Result<(), Class> {
        loop {
            let have = (self.end - self.start) as u64;
            if have >= n {
                sink.take(&self.buf[self.start..self.start + n as usize]);
                self.start += n as usize;
                return Ok(());
            }
            n -= have;
            sink.take(&self.buf[self.start..self.end]);
            self.start = self.end;
            self.fill().await?;
        }
    }

    /// Makes at least `n` unread bytes available.
    async fn need(&mut self, n: usize) -> Result<(), Class> {
        while self.end - self.start < n {
            self.fill().await?;
        }
        Ok(())
    }

    /// Consumes a chunked body: sizes, data, the last chunk and trailers.
    async fn skip_chunked(&mut self, sink: &mut Sink<'_>) -> Result<(), Class> {
        loop {
            let size = loop {
                match httparse::parse_chunk_size(&self.buf[self.start..self.end]) {
                    Ok(httparse::Status::Complete((used, size))) => {
                        self.start += used;
                        break size;
                    }
                    Ok(httparse::Status::Partial) if self.end - self.start < 1024 => {
                        self.fill().await?
                    }
                    _ => return Err(Class::Protocol),
                }
            };
            if size == 0 {
                return self.skip_trailers().await;
            }
            self.skip(size, sink).await?;
            self.need(2).await?;
            if &self.buf[self.start..self.start + 2] != b"\r\n" {
                return Err(Class::Protocol);
            }
            self.start += 2;
        }
    }

    /// Consumes trailer lines up to the empty line that ends the message.
    async fn skip_trailers(&mut self) -> Result<(), Class> {
        let mut read = 0;
        loop {
            let unread = &self.buf[self.start..self.end];
            match unread.windows(2).position(|w| w == b"\r\n") {
                Some(0) => {
                    self.start += 2;
                    return Ok(());
                }
                Some(at) => {
                    read += at + 2;
                    self.start += at + 2;
                }
                None if read + unread.len() < MAX_HEAD => self.fill().await?,
                None => return Err(Class::Protocol),
            }
        }
    }

    /// Consumes a body that ends when the server closes.
    async fn skip_to_close(&mut self, sink: &mut Sink<'_>) -> Result<(), Class> {
        sink.take(&self.buf[self.start..self.end]);
        loop {
            self.start = 0;
            self.end = 0;
            match self.io.recv(&mut self.buf[..]).await {
                Ok((0, _)) => return Ok(()),
                Ok((n, at)) => {
                    self.arrived = at;
                    self.received += n as u64;
                    sink.take(&self.buf[..n]);
                }
                Err(e) => return Err(io_class(e)),
            }
        }
    }
}

/// Where a body goes while it is read (HTTP/1.1 here, HTTP/2 in
/// `net.rs`): nowhere, or a buffer for the request's checks, up to
/// [`MAX_CHECKED_BODY`].
pub(crate) struct Sink<'a> {
    keep: Option<&'a mut Vec<u8>>,
    /// Some of the body did not fit.
    pub truncated: bool,
}

impl<'a> Sink<'a> {
    pub fn new(mut keep: Option<&'a mut Vec<u8>>) -> Self {
        if let Some(k) = keep.as_mut() {
            k.clear();
        }
        Sink {
            keep,
            truncated: false,
        }
    }

    /// Keeps what fits of `data`.
    pub fn take(&mut self, data: &[u8]) {
        if let Some(k) = self.keep.as_mut() {
            let n = MAX_CHECKED_BODY.saturating_sub(k.len()).min(data.len());
            k.extend_from_slice(&data[..n]);
            self.truncated |= n < data.len();
        }
    }
}

fn io_class(e: std::io::Error) -> Class {
    if e.kind() == std::io::ErrorKind::TimedOut {
        Class::Timeout
    } else {
        Class::Reset
    }
}

/// Parses a response head at the front of `buf`: `None` while incomplete,
/// else its length and what it says.
fn parse_head(buf: &[u8], head_request: bool) -> Result<Option<(usize, Head)>, Class> {
    let mut headers = [const { MaybeUninit::<httparse::Header<'_>>::uninit() }; MAX_HEADERS];
    let mut resp = httparse::Response::new(&mut []);
    let len = match httparse::ParserConfig::default().parse_response_with_uninit_headers(
        &mut resp,
        buf,
        &mut headers,
    ) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(_) => return Err(Class::Protocol),
    };
    let status = resp.code.ok_or(Class::Protocol)?;
    let http10 = resp.version == Some(0);
    let mut length: Option<u64> = None;
    let mut chunked = false;
    let mut encoded = false;
    let mut close = http10;
    for h in resp.headers.iter() {
        let name = h.name.as_bytes();
        if name.eq_ignore_ascii_case(b"content-length") {
            let n = parse_length(h.value).ok_or(Class::Protocol)?;
            if length.is_some_and(|m| m != n) {
                return Err(Class::Protocol);
            }
            length = Some(n);
        } else if name.eq_ignore_ascii_case(b"transfer-encoding") {
            encoded = true;
            // Only a final `chunked` frames the body.
            chunked = h
                .value
                .rsplit(|&b| b == b',')
                .next()
                .is_some_and(|last| last.trim_ascii().eq_ignore_ascii_case(b"chunked"));
        } else if name.eq_ignore_ascii_case(b"connection") {
            for token in h.value.split(|&b| b == b',') {
                let token = token.trim_ascii();
                if token.eq_ignore_ascii_case(b"close") {
                    close = true;
                } else if http10 && token.eq_ignore_ascii_case(b"keep-alive") {
                    close = false;
                }
            }
        }
    }
    let framing = if head_request || status < 200 || status == 204 || status == 304 {
        Framing::Empty
    } else if encoded {
        // Transfer-Encoding overrides Content-Length (RFC 9112 §6.3).
        if chunked {
            Framing::Chunked
        } else {
            Framing::UntilClose
        }
    } else {
        match length {
            Some(0) => Framing::Empty,
            Some(n) => Framing::Length(n),
            None => Framing::UntilClose,
        }
    };
    let close = close || framing == Framing::UntilClose;
    Ok(Some((
        len,
        Head {
            status,
            framing,
            close,
        },
    )))
}

fn parse_length(v: &[u8]) -> Option<u64> {
    let v = v.trim_ascii();
    if v.is_empty() || v.len() > 19 || !v.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(v.iter().fold(0u64, |n, &d| n * 10 + u64::from(d - b'0')))
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt, duplex};

    /// Runs one exchange against a peer that replies with `reply` in
    /// pieces of `piece` bytes, and returns the result, whether the
    /// connection stays open, and what the peer received.
    async fn exchange(
        reply: &[u8],
        piece: usize,
        head: bool,
        close_after: bool,
    ) -> (Result<u16, Class>, bool, Vec<u8>) {
        let (client, mut server) = duplex(1 << 20);
        let reply = reply.to_vec();
        let peer = tokio::spawn(async move {
            let mut got = vec![0; 4096];
            let n = server.read(&mut got).await.unwrap();
            got.truncate(n);
            for p in reply.chunks(piece.max(1)) {
                // The client may stop reading at an error it has already seen.
                if server.write_all(p).await.is_err() {
                    break;
                }
                tokio::task::yield_now().await;
            }
            if !close_after {
                // Keep the stream open until the client is done.
                let mut rest = [0u8; 1];
                let _ = server.read(&mut rest).await;
            }
            got
        });
        let mut c = Http1::new(Plain(client));
        let mut body = Vec::new();
        let r = c
            .exchange(b"GET / HTTP/1.1\r\nhost: x\r\n\r\n", head, Some(&mut body))
            .await
            .map(|(status, _, truncated)| {
                assert!(!truncated);
                status
            });
        let open = c.is_open();
        drop(c);
        BODY.with(|b| *b.borrow_mut() = body);
        (r, open, peer.await.unwrap())
    }

    thread_local! {
        /// The body the last `exchange` kept.
        static BODY: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
    }

    #[tokio::test]
    async fn frames_bodies_by_length_chunks_and_close() {
        let cases: [(&[u8], Result<u16, Class>, bool); 9] = [
            (b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nhello", Ok(200), true),
            (
                b"HTTP/1.1 503 Busy\r\nContent-Length: 3\r\nConnection: close\r\n\r\nno!",
                Ok(503),
                false,
            ),
            (
                b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n5;x=1\r\nhello\r\n10\r\n0123456789abcdef\r\n0\r\nx-trailer: 1\r\n\r\n",
                Ok(200),
                true,
            ),
            (b"HTTP/1.1 204 No Content\r\n\r\n", Ok(204), true),
            (
                b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 201 Created\r\ncontent-length: 0\r\n\r\n",
                Ok(201),
                true,
            ),
            (b"HTTP/1.0 200 OK\r\n\r\nuntil the end", Ok(200), false),
            (b"HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\nshort", Err(Class::Reset), false),
            (
                b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\ncontent-length: 3\r\n\r\nab",
                Err(Class::Protocol),
                false,
            ),
            (b"SPDY/9 banana\r\n\r\n", Err(Class::Protocol), false),
        ];
        for (reply, want, open) in cases {
            for piece in [1, 7, reply.len()] {
                let close = !open;
                let (got, is_open, _) = exchange(reply, piece, false, close).await;
                let text = String::from_utf8_lossy(reply);
                assert_eq!(got, want, "{text} in pieces of {piece}");
                assert_eq!(is_open, open, "{text} in pieces of {piece}");
                // The body kept for checks is the body, whatever the framing.
                let body: &[u8] = match &text {
                    t if t.contains("hello\r\n10") => b"hello0123456789abcdef",
                    t if t.contains("hello") => b"hello",
                    t if t.contains("no!") => b"no!",
                    t if t.contains("until the end") => b"until the end",
                    _ => b"",
                };
                if got.is_ok() {
                    assert_eq!(BODY.with(|b| b.borrow().clone()), body, "{text}");
                }
            }
        }
    }

    #[tokio::test]
    async fn a_head_response_has_no_body_and_an_empty_peer_is_a_reset() {
        let (got, open, _) = exchange(
            b"HTTP/1.1 200 OK\r\ncontent-length: 1000\r\n\r\n",
            64,
            true,
            false,
        )
        .await;
        assert_eq!((got, open), (Ok(200), true));
        let (got, open, _) = exchange(b"", 1, false, true).await;
        assert_eq!((got, open), (Err(Class::Reset), false));
    }

    #[tokio::test]
    async fn a_head_larger_than_the_buffer_grows_it() {
        let mut reply = b"HTTP/1.1 200 OK\r\n".to_vec();
        for i in 0..60 {
            reply.extend_from_slice(format!("x-pad-{i}: {}\r\n", "v".repeat(500)).as_bytes());
        }
        reply.extend_from_slice(b"content-length: 2\r\n\r\nok");
        assert!(reply.len() > INITIAL_BUF);
        let (got, open, _) = exchange(&reply, 4096, false, false).await;
        assert_eq!((got, open), (Ok(200), true));
    }

    /// A peer on its own thread (it works while the test's thread sleeps),
    /// running `f` on the one connection it accepts.
    fn peer_thread<T: Send + 'static>(
        f: impl FnOnce(std::net::TcpStream) -> T + Send + 'static,
    ) -> (std::net::SocketAddr, std::thread::JoinHandle<T>) {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        (addr, std::thread::spawn(move || f(l.accept().unwrap().0)))
    }

    /// A peer that answers each request at once, and a test that reads each
    /// answer 50 ms later, up to `rounds` times or until one read carries a
    /// timestamp. Returns each read's age at the read (`None`: no stamp)
    /// and whether the socket claims stamps after each.
    async fn read_late(set_option: bool, rounds: usize) -> Vec<(Option<Duration>, bool)> {
        let (addr, peer) = peer_thread(|mut s| {
            use std::io::Read;
            let mut got = [0u8; 1024];
            while s.read(&mut got).is_ok_and(|n| n > 0) {
                s.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")
                    .unwrap();
            }
        });
        let stream = TcpStream::connect(addr).await.unwrap();
        let mut tcp = if set_option {
            Tcp::new(stream).unwrap()
        } else {
            // Claims stamps without asking the kernel: a kernel that
            // accepts the option and never delivers one.
            #[allow(deprecated)]
            let fd = AsyncFd::new(stream.into_std().unwrap()).unwrap();
            Tcp {
                fd,
                stamps: true,
                unstamped: 0,
                cmsg: CmsgBuf([0; 64]),
            }
        };
        let mut reads = Vec::new();
        for _ in 0..rounds {
            tcp.send(b"GET / HTTP/1.1\r\nhost: x\r\n\r\n")
                .await
                .unwrap();
            // The response arrives within microseconds; read it much later.
            std::thread::sleep(Duration::from_millis(50));
            let before_read = Instant::now();
            let mut buf = [0u8; 1024];
            let (n, at) = tcp.recv(&mut buf).await.unwrap();
            assert_eq!(n, 40, "one whole response per read");
            reads.push((at.map(|at| before_read.duration_since(at)), tcp.stamped()));
            if at.is_some() {
                break;
            }
        }
        drop(tcp);
        peer.join().unwrap();
        reads
    }

    /// A response read 50 ms after it arrived is timed at its arrival. The
    /// first reads may come unstamped while Linux turns timestamps on; a
    /// kernel that never stamps makes the socket stop claiming them.
    #[cfg(target_os = "linux")]
    #[tokio::test]
    async fn plain_tcp_reads_carry_the_kernel_receive_time() {
        let reads = read_late(true, UNSTAMPED_GIVE_UP as usize + 1).await;
        match *reads.last().unwrap() {
            (Some(age), stamped) => {
                assert!(
                    age >= Duration::from_millis(40),
                    "timed {age:?} before the read"
                );
                assert!(stamped);
            }
            (None, stamped) => assert!(!stamped, "never a stamp, yet it claims them: {reads:?}"),
        }
    }

    /// A socket that claims stamps and gets none falls back to the clock
    /// for every read, and stops claiming them after a few.
    #[tokio::test]
    async fn a_socket_without_delivered_stamps_stops_claiming_them() {
        let reads = read_late(false, UNSTAMPED_GIVE_UP as usize + 1).await;
        let claims: Vec<bool> = reads
            .iter()
            .map(|&(age, claims)| {
                assert_eq!(age, None);
                claims
            })
            .collect();
        let n = UNSTAMPED_GIVE_UP as usize;
        assert_eq!(claims[..n - 1], vec![true; n - 1]);
        assert_eq!(claims[n - 1..], [false, false]);
    }

    /// A request larger than the socket's send buffer waits for room and
    /// arrives whole.
    #[tokio::test]
    async fn plain_tcp_sends_past_a_full_send_buffer() {
        let (addr, peer) = peer_thread(|mut s| {
            use std::io::Read;
            // Read late, so the sender first fills its buffer.
            std::thread::sleep(Duration::from_millis(50));
            let mut got = Vec::new();
            s.read_to_end(&mut got).unwrap();
            got
        });
        let mut tcp = Tcp::new(TcpStream::connect(addr).await.unwrap()).unwrap();
        let body: Vec<u8> = (0..16 << 20).map(|i: u32| (i % 251) as u8).collect();
        tcp.send(&body).await.unwrap();
        drop(tcp);
        assert!(peer.join().unwrap() == body);
    }

    #[tokio::test]
    async fn keeps_alive_across_requests_and_sends_the_encoded_bytes() {
        let mut headers = HeaderMap::new();
        headers.insert("host", "127.0.0.1:9".parse().unwrap());
        headers.insert("x-trace", "1".parse().unwrap());
        let req = encode(&Method::POST, "/cart?id=7", &headers, b"{}");
        assert_eq!(
            &req[..],
            b"POST /cart?id=7 HTTP/1.1\r\nhost: 127.0.0.1:9\r\nx-trace: 1\r\ncontent-length: 2\r\n\r\n{}"
        );
        let get = encode(&Method::GET, "/", &headers, b"");
        assert!(!get.windows(14).any(|w| w == b"content-length"));

        let (client, mut server) = duplex(1 << 16);
        let peer = tokio::spawn(async move {
            let mut seen = Vec::new();
            for _ in 0..3 {
                let mut got = vec![0; 4096];
                let n = server.read(&mut got).await.unwrap();
                seen.extend_from_slice(&got[..n]);
                server
                    .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")
                    .await
                    .unwrap();
            }
            seen
        });
        let mut c = Http1::new(Plain(client));
        for _ in 0..3 {
            assert_eq!(c.exchange(&req, false, None).await, Ok((200, None, false)));
            assert!(c.is_open());
        }
        let seen = peer.await.unwrap();
        assert_eq!(seen, [&req[..], &req[..], &req[..]].concat());
    }
}
