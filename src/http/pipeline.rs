//! A bound on pipelined requests per connection.
//!
//! actix-http's HTTP/1 dispatcher parses every complete request in its read
//! buffer (up to 128 KiB) and queues each one, about 7 KB apiece, before it
//! answers the first: a client that pipelines thousands of small requests
//! and never reads the answers holds megabytes per connection, for as long
//! as it keeps the connection open. [`Paced`] wraps each connection's socket
//! and follows the request framing (head, `Content-Length` or chunked body)
//! in the bytes it passes up; it lets a new request through only while
//! fewer than [`MAX_QUEUED`] requests wait for the application to take
//! them ([`Gauge::started`], counted by [`super::request_metrics::Front`]
//! as each request enters the app). Beyond that it stops reading the
//! socket, so the client's
//! own TCP window fills; a connection held like that for [`STALL`] without
//! the application taking a request is closed.
//!
//! ```text
//!  socket ──▶ Paced: framing ──(at most MAX_QUEUED waiting)──▶ dispatcher ──▶ app
//!               ▲                                                             │
//!               └──────────────── Gauge::started (wakes the reader) ◀─────────┘
//! ```
//!
//! Framing follows what the dispatcher itself does (`Transfer-Encoding:
//! chunked`, then `Upgrade: websocket` or `CONNECT` as a stream to the end,
//! then `Content-Length`); a head the dispatcher would refuse makes it
//! answer 400 and close, so such bytes pass through unbounded.

use std::future::Future as _;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use futures::task::AtomicWaker;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// Requests a connection may have waiting in the dispatcher's queue: about
/// 7 KB each there, so a connection holds at most ~60 KB of parsed
/// requests. (actix's own limit, 16, is only checked before it parses a
/// whole read buffer's worth.)
pub const MAX_QUEUED: u64 = 8;

/// How long a connection may keep requests waiting while the application
/// takes none of them (its answers are not being read) before it is closed.
pub const STALL: Duration = Duration::from_secs(10);

/// Longest request head followed; a longer one is refused by the
/// dispatcher (its read buffer is 128 KiB), so the rest passes through.
const MAX_HEAD: usize = 128 * 1024;

/// Longest chunk-size or trailer line followed.
const MAX_LINE: usize = 4096;

/// Headers parsed per request head (the dispatcher refuses more than 96).
const MAX_HEADERS: usize = 100;

/// Where the next byte of a connection's request stream belongs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Between requests (blank lines before a request line are skipped).
    Idle,
    /// Inside a request head (accumulated until complete).
    Head,
    /// This many bytes of a `Content-Length` body remain.
    Body(u64),
    /// Reading a chunk-size line.
    ChunkSize,
    /// This many bytes of chunk data remain.
    ChunkData(u64),
    /// The line break after a chunk's data.
    ChunkEnd,
    /// Trailer lines, up to an empty one.
    Trailers,
    /// The rest of the connection is one stream (upgrade, `CONNECT`) or the
    /// dispatcher will refuse it: no more framing.
    Passthrough,
}

/// Follows HTTP/1.1 request framing across reads.
#[derive(Debug)]
pub struct Framing {
    state: State,
    /// The head (or line) read so far, when it spans reads.
    partial: Vec<u8>,
}

impl Default for Framing {
    fn default() -> Self {
        Framing {
            state: State::Idle,
            partial: Vec::new(),
        }
    }
}

impl Framing {
    /// Consumes a prefix of `bytes` and returns its length: all of `bytes`,
    /// or fewer when the next byte would begin a request that `admit`
    /// refuses. `admit` is asked once per request, at its first byte.
    pub fn scan(&mut self, bytes: &[u8], admit: &mut dyn FnMut() -> bool) -> usize {
        let mut at = 0;
        while at < bytes.len() {
            let rest = &bytes[at..];
            at += match self.state {
                State::Passthrough => rest.len(),
                State::Idle => {
                    let blank = rest
                        .iter()
                        .take_while(|b| **b == b'\r' || **b == b'\n')
                        .count();
                    if blank > 0 {
                        blank
                    } else if admit() {
                        self.state = State::Head;
                        0
                    } else {
                        return at;
                    }
                }
                State::Head => self.head(rest),
                State::Body(left) => {
                    let n = clamp(left, rest.len());
                    self.state = if left == n as u64 {
                        State::Idle
                    } else {
                        State::Body(left - n as u64)
                    };
                    n
                }
                State::ChunkData(left) => {
                    let n = clamp(left, rest.len());
                    self.state = if left == n as u64 {
                        State::ChunkEnd
                    } else {
                        State::ChunkData(left - n as u64)
                    };
                    n
                }
                State::ChunkSize | State::ChunkEnd | State::Trailers => self.line(rest),
            };
        }
        at
    }

    /// Takes head bytes; at the end of the head, picks the body's framing.
    fn head(&mut self, rest: &[u8]) -> usize {
        let before = self.partial.len();
        let parsed = {
            let data: &[u8] = if before == 0 {
                rest
            } else {
                self.partial.extend_from_slice(rest);
                &self.partial
            };
            // Left uninitialised: the parser writes the ones it fills.
            let mut headers = [const { std::mem::MaybeUninit::uninit() }; MAX_HEADERS];
            let mut req = httparse::Request::new(&mut []);
            match req.parse_with_uninit_headers(data, &mut headers) {
                Ok(httparse::Status::Complete(len)) => Some(Ok((len, framing_of(&req)))),
                Ok(httparse::Status::Partial) => None,
                Err(_) => Some(Err(())),
            }
        };
        match parsed {
            Some(Ok((len, next))) => {
                self.partial.clear();
                self.state = next;
                len - before
            }
            Some(Err(())) => {
                self.partial.clear();
                self.state = State::Passthrough;
                rest.len()
            }
            None => {
                if before == 0 {
                    self.partial.extend_from_slice(rest);
                }
                if self.partial.len() > MAX_HEAD {
                    self.partial = Vec::new();
                    self.state = State::Passthrough;
                }
                rest.len()
            }
        }
    }

    /// Takes bytes of a chunk-size, chunk-end or trailer line.
    fn line(&mut self, rest: &[u8]) -> usize {
        let Some(end) = memchr::memchr(b'\n', rest) else {
            self.partial.extend_from_slice(rest);
            if self.partial.len() > MAX_LINE {
                self.partial = Vec::new();
                self.state = State::Passthrough;
            }
            return rest.len();
        };
        self.partial.extend_from_slice(&rest[..end]);
        let line = std::mem::take(&mut self.partial);
        let line = line.strip_suffix(b"\r").unwrap_or(&line);
        self.state = match self.state {
            State::ChunkSize => match chunk_size(line) {
                Some(0) => State::Trailers,
                Some(n) => State::ChunkData(n),
                None => State::Passthrough,
            },
            State::ChunkEnd if line.is_empty() => State::ChunkSize,
            State::Trailers if line.is_empty() => State::Idle,
            State::Trailers => State::Trailers,
            _ => State::Passthrough,
        };
        end + 1
    }
}

fn clamp(left: u64, available: usize) -> usize {
    usize::try_from(left).map_or(available, |l| l.min(available))
}

/// The hexadecimal size at the start of a chunk-size line (extensions after
/// `;` ignored).
fn chunk_size(line: &[u8]) -> Option<u64> {
    let digits = line
        .iter()
        .position(|b| !b.is_ascii_hexdigit())
        .unwrap_or(line.len());
    if digits == 0 || digits > 16 {
        return None;
    }
    let text = std::str::from_utf8(&line[..digits]).ok()?;
    u64::from_str_radix(text, 16).ok()
}

/// What follows a complete head, in the order actix-http decides it.
fn framing_of(req: &httparse::Request<'_, '_>) -> State {
    let header = |name: &'static str| {
        req.headers
            .iter()
            .filter(move |h| h.name.eq_ignore_ascii_case(name))
            .map(|h| std::str::from_utf8(h.value).map(str::trim))
    };
    let http11 = req.version == Some(1);
    let mut te = header("transfer-encoding");
    let chunked = match (te.next(), te.next()) {
        (None, _) => false,
        (Some(Ok(v)), None) if http11 && v.eq_ignore_ascii_case("chunked") => true,
        // Anything else the dispatcher refuses, and closes.
        _ => return State::Passthrough,
    };
    let mut cl = header("content-length");
    let length = match (cl.next(), cl.next()) {
        (None, _) => None,
        (Some(Ok(v)), None) if !v.starts_with('+') => match v.parse::<u64>() {
            Ok(n) => Some(n),
            Err(_) => return State::Passthrough,
        },
        _ => return State::Passthrough,
    };
    if chunked {
        return if length.is_some() {
            State::Passthrough
        } else {
            State::ChunkSize
        };
    }
    let websocket = header("upgrade").any(|v| v.is_ok_and(|v| v.eq_ignore_ascii_case("websocket")));
    if websocket {
        return State::Passthrough;
    }
    match length {
        Some(0) => State::Idle,
        Some(n) => State::Body(n),
        None if req.method == Some("CONNECT") => State::Passthrough,
        None => State::Idle,
    }
}

/// One connection's count of requests the application has taken, shared
/// between its socket wrapper and [`super::request_metrics::Front`].
#[derive(Debug, Default)]
pub struct Gauge {
    started: AtomicU64,
    reader: AtomicWaker,
}

impl Gauge {
    /// Requests of this connection that have entered the application.
    pub fn started(&self) -> u64 {
        self.started.load(Ordering::Acquire)
    }

    /// A request of this connection entered the application (counted by
    /// the [`super::request_metrics::Front`] middleware).
    pub fn start(&self) {
        self.started.fetch_add(1, Ordering::AcqRel);
        self.reader.wake();
    }
}

/// A connection's socket that passes up at most [`MAX_QUEUED`] requests
/// ahead of the application (see the module documentation).
pub struct Paced<T> {
    io: T,
    framing: Framing,
    /// Bytes read from the socket that may not be passed up yet.
    held: Vec<u8>,
    /// Requests passed up (begun) so far.
    passed: u64,
    gauge: Arc<Gauge>,
    /// Armed while held back: (the started count then, its deadline).
    stall: Option<(u64, Pin<Box<tokio::time::Sleep>>)>,
}

impl<T> Paced<T> {
    pub fn new(io: T) -> Self {
        Paced {
            io,
            framing: Framing::default(),
            held: Vec::new(),
            passed: 0,
            gauge: Arc::default(),
            stall: None,
        }
    }

    /// The connection's gauge, for the application's side.
    pub fn gauge(&self) -> Arc<Gauge> {
        self.gauge.clone()
    }

    /// Scans `bytes` for what may be passed up now.
    fn scan(&mut self, bytes: &[u8]) -> usize {
        let gauge = &self.gauge;
        let passed = &mut self.passed;
        self.framing.scan(bytes, &mut || {
            if passed.saturating_sub(gauge.started()) < MAX_QUEUED {
                *passed += 1;
                true
            } else {
                false
            }
        })
    }

    /// Held back: wait for the application to take a request, or close the
    /// connection after [`STALL`] without one.
    fn wait(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.gauge.reader.register(cx.waker());
        let started = self.gauge.started();
        if self.passed.saturating_sub(started) < MAX_QUEUED {
            // Taken meanwhile: the caller scans again.
            cx.waker().wake_by_ref();
            return Poll::Pending;
        }
        let fresh = !matches!(&self.stall, Some((at, _)) if *at == started);
        if fresh {
            self.stall = Some((started, Box::pin(tokio::time::sleep(STALL))));
        }
        if let Some((_, sleep)) = self.stall.as_mut() {
            if sleep.as_mut().poll(cx).is_ready() {
                return Poll::Ready(Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "pipelined requests waited too long: their answers are not being read",
                )));
            }
        }
        Poll::Pending
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for Paced<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        if !this.held.is_empty() {
            let held = std::mem::take(&mut this.held);
            let offer = held.len().min(buf.remaining());
            let n = this.scan(&held[..offer]);
            buf.put_slice(&held[..n]);
            this.held = held;
            this.held.drain(..n);
            if n > 0 {
                this.stall = None;
                return Poll::Ready(Ok(()));
            }
            return this.wait(cx);
        }
        let before = buf.filled().len();
        match Pin::new(&mut this.io).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {}
            other => return other,
        }
        let read = buf.filled().len() - before;
        if read == 0 {
            return Poll::Ready(Ok(()));
        }
        let n = this.scan(&buf.filled()[before..]);
        if n < read {
            this.held.extend_from_slice(&buf.filled()[before + n..]);
            buf.set_filled(before + n);
            if n == 0 {
                return this.wait(cx);
            }
        }
        Poll::Ready(Ok(()))
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Paced<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests;
