//! Unauthenticated bodies cannot hold the service's memory: bytes buffered
//! before a webhook's signature is checked are bounded across all requests
//! (beyond: 503 with `Retry-After`), and a body must arrive within the read
//! deadline (beyond: 408). Its own binary: the budget is process-wide.

mod common;

use common::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Opens a connection and sends the head of a GitHub delivery declaring
/// `len` body bytes plus `sent` bytes of it, then holds the connection.
async fn start_delivery(app: &TestApp, len: usize, sent: usize) -> TcpStream {
    let addr = app.address.trim_start_matches("http://");
    let mut s = TcpStream::connect(addr).await.expect("connect");
    let head = format!(
        "POST /webhook/github HTTP/1.1\r\nhost: {addr}\r\ncontent-type: application/json\r\n\
         x-github-event: issues\r\nx-github-delivery: d-1\r\n\
         x-hub-signature-256: sha256={}\r\ncontent-length: {len}\r\n\r\n",
        "0".repeat(64)
    );
    s.write_all(head.as_bytes()).await.expect("write head");
    s.write_all(&vec![b' '; sent]).await.expect("write body");
    s
}

/// Reads the status line, headers and body of the answer on `s` (by its
/// Content-Length: the connection may stay open).
async fn answer(mut s: TcpStream) -> (u16, String) {
    let mut buf = Vec::new();
    bounded("the answer", WAIT, async {
        let mut chunk = [0u8; 4096];
        loop {
            let text = String::from_utf8_lossy(&buf).into_owned();
            if let Some(end) = text.find("\r\n\r\n") {
                let len = text[..end]
                    .lines()
                    .find_map(|l| {
                        let (k, v) = l.split_once(':')?;
                        k.eq_ignore_ascii_case("content-length")
                            .then(|| v.trim().parse::<usize>().ok())?
                    })
                    .unwrap_or(0);
                if buf.len() >= end + 4 + len {
                    return;
                }
            }
            match s.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        }
    })
    .await;
    let text = String::from_utf8_lossy(&buf).into_owned();
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("an HTTP answer: {text:?}"));
    (status, text)
}

#[actix_rt::test]
async fn bodies_of_unauthenticated_senders_share_a_bounded_budget_and_a_read_deadline() {
    let app = spawn_app(&[]).await;
    let big = 25 * 1024 * 1024 - 1;
    // Three bodies of 25 MiB do not fit in the 64 MiB budget. Whichever
    // the server reads third (connections are served concurrently, so the
    // order is not the clients') is refused at once; the other two are held
    // until the read deadline and then answered 408.
    let a = start_delivery(&app, big, 1024).await;
    let b = start_delivery(&app, big, 1024).await;
    let c = start_delivery(&app, big, 0).await;
    let answers = futures::future::join_all([answer(a), answer(b), answer(c)]).await;
    let refused: Vec<_> = answers.iter().filter(|(s, _)| *s == 503).collect();
    let timed_out: Vec<_> = answers.iter().filter(|(s, _)| *s == 408).collect();
    assert_eq!(refused.len(), 1, "exactly one body refused: {answers:?}");
    assert_eq!(
        timed_out.len(),
        2,
        "two bodies held to the deadline: {answers:?}"
    );
    let text = &refused[0].1;
    assert!(text.to_lowercase().contains("retry-after"), "{text}");
    assert!(text.contains("\"status\":\"error\""), "{text}");
    for (_, text) in timed_out {
        assert!(text.contains("request_timeout"), "{text}");
    }
    // The budget is free again: a small signed delivery is served.
    let r = app
        .deliver("ping", "d-after", br#"{"zen":"ok","hook_id":1}"#.to_vec())
        .await;
    assert!(r.status < 500, "served after the burst: {}", r.status);
    app.stop().await.expect("clean stop");
}
