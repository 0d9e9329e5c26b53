//! JSON bodies for the errors actix's HTTP/1 dispatcher answers before any
//! route runs: a request it cannot parse (malformed request line, bad
//! `Content-Length`, both `Content-Length` and `Transfer-Encoding`, …) gets
//! `400`, a header block over its limit `431`, a client too slow to send its
//! head `408` — each with an empty body, built inside actix-http with no hook.
//!
//! [`JsonErrors`] wraps each connection's socket. Every answer our routes
//! give carries a body, so a write that *starts* a response with one of those
//! three status lines and `content-length: 0` can only be the dispatcher's;
//! it is replaced by the same status with our JSON error body (the
//! dispatcher closes the connection after it). Anything else passes through
//! untouched.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// The dispatcher's own answers: (status line start, our code, message).
const ANSWERS: [(&[u8], &str, &str); 3] = [
    (
        b"HTTP/1.1 400 ",
        "bad_request",
        "the request could not be parsed as HTTP/1.1 (request line, headers, Content-Length or Transfer-Encoding)",
    ),
    (
        b"HTTP/1.1 431 ",
        "headers_too_large",
        "the request's header block is larger than this service accepts",
    ),
    (
        b"HTTP/1.1 408 ",
        "request_timeout",
        "the request's head did not arrive in time",
    ),
];

/// The JSON answer replacing `buf`, if `buf` is one of the dispatcher's
/// empty-bodied error responses (a complete head and nothing after it).
pub fn rewrite(buf: &[u8]) -> Option<Vec<u8>> {
    let (_, code, message) = ANSWERS.iter().find(|(start, ..)| buf.starts_with(start))?;
    let head_end = buf.windows(4).position(|w| w == b"\r\n\r\n")? + 4;
    if head_end != buf.len() {
        return None;
    }
    let head = std::str::from_utf8(&buf[..head_end]).ok()?;
    let mut status_line = None;
    let mut empty = false;
    let mut kept = Vec::new();
    for (i, line) in head.split("\r\n").enumerate() {
        if i == 0 {
            status_line = Some(line);
            continue;
        }
        if line.is_empty() {
            continue;
        }
        let name = line.split(':').next().unwrap_or("").trim();
        if name.eq_ignore_ascii_case("content-length") {
            empty = line.split(':').nth(1).map(str::trim) == Some("0");
        } else if !name.eq_ignore_ascii_case("content-type") {
            kept.push(line);
        }
    }
    if !empty {
        return None;
    }
    let body =
        serde_json::json!({"status": "error", "error": code, "message": message}).to_string();
    let mut out = format!("{}\r\n", status_line?);
    for line in kept {
        out.push_str(line);
        out.push_str("\r\n");
    }
    out.push_str(&format!(
        "content-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    ));
    Some(out.into_bytes())
}

/// A connection whose parser-level error answers get JSON bodies.
pub struct JsonErrors<T> {
    io: T,
    /// Bytes of a rewritten answer still to be written.
    pending: Vec<u8>,
    written: usize,
}

impl<T> JsonErrors<T> {
    pub fn new(io: T) -> Self {
        JsonErrors {
            io,
            pending: Vec::new(),
            written: 0,
        }
    }
}

impl<T> JsonErrors<T> {
    /// The wrapped connection.
    pub fn get_ref(&self) -> &T {
        &self.io
    }
}

impl<T: AsyncWrite + Unpin> JsonErrors<T> {
    /// Writes what is left of a rewritten answer.
    fn poll_pending(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while self.written < self.pending.len() {
            let n = match Pin::new(&mut self.io).poll_write(cx, &self.pending[self.written..]) {
                Poll::Ready(Ok(n)) => n,
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Pending => return Poll::Pending,
            };
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.written += n;
        }
        self.pending.clear();
        self.written = 0;
        Poll::Ready(Ok(()))
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for JsonErrors<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for JsonErrors<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        match this.poll_pending(cx) {
            Poll::Ready(Ok(())) => {}
            Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
            Poll::Pending => return Poll::Pending,
        }
        if let Some(answer) = rewrite(buf) {
            this.pending = answer;
            // The dispatcher's bytes are taken; ours go out now or on the
            // next write/flush/shutdown.
            if let Poll::Ready(Err(e)) = this.poll_pending(cx) {
                return Poll::Ready(Err(e));
            }
            return Poll::Ready(Ok(buf.len()));
        }
        Pin::new(&mut this.io).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = &mut *self;
        match this.poll_pending(cx) {
            Poll::Ready(Ok(())) => Pin::new(&mut this.io).poll_flush(cx),
            other => other,
        }
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = &mut *self;
        match this.poll_pending(cx) {
            Poll::Ready(Ok(())) => Pin::new(&mut this.io).poll_shutdown(cx),
            other => other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_dispatcher_s_empty_answers_become_json_and_nothing_else_changes() {
        let head = b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\nconnection: close\r\ndate: Tue, 01 Dec 2026 19:00:00 GMT\r\n\r\n";
        let out = String::from_utf8(rewrite(head).expect("rewritten")).expect("utf-8");
        assert!(out.starts_with("HTTP/1.1 400 Bad Request\r\n"), "{out}");
        assert!(out.contains("connection: close\r\n"), "{out}");
        let (h, body) = out.split_once("\r\n\r\n").expect("head and body");
        assert!(
            h.contains(&format!("content-length: {}", body.len())),
            "{out}"
        );
        let v: serde_json::Value = serde_json::from_str(body).expect("JSON");
        assert_eq!(v["error"], "bad_request");
        let big = b"HTTP/1.1 431 Request Header Fields Too Large\r\ncontent-length: 0\r\n\r\n";
        assert!(String::from_utf8(rewrite(big).expect("431"))
            .expect("utf-8")
            .contains("headers_too_large"));
        // Our own answers have bodies; other statuses and partial heads pass.
        for untouched in [
            &b"HTTP/1.1 400 Bad Request\r\ncontent-length: 2\r\n\r\n{}"[..],
            b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n",
            b"HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\n\r\n",
            b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n",
            b"1a\r\nHTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n\r\n",
        ] {
            assert!(
                rewrite(untouched).is_none(),
                "{:?}",
                String::from_utf8_lossy(untouched)
            );
        }
    }
}
