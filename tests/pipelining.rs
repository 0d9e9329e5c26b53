//! Pipelined requests that are never read cannot eat the service's memory:
//! each connection passes at most a few requests ahead of the application
//! (the rest wait in the client's own socket), and an honest pipelining
//! client still gets every answer. Its own binary: it measures the
//! process's resident memory, which other tests would disturb.

mod common;

use std::time::Duration;

use common::exposition::Exposition;
use common::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Resident and peak resident memory of this process, in bytes.
fn rss() -> (u64, u64) {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|kb| kb.parse::<u64>().ok())
            .map(|kb| kb * 1024)
            .unwrap_or_else(|| panic!("{name} in /proc/self/status"))
    };
    (field("VmRSS:"), field("VmHWM:"))
}

/// Requests the service has answered on `route`.
async fn answered(app: &TestApp, route: &str) -> f64 {
    let text = app.get("/metrics").await.text;
    let e = Exposition::parse(&text).expect("exposition");
    e.matching("orchestrator_http_requests_total", &[("route", route)])
        .iter()
        .map(|s| s.value)
        .sum()
}

/// Connections and requests per connection of the attack (the run that
/// found it: 30 x 3,000 took the process from 34 to 529 MiB).
const CONNECTIONS: usize = 30;
const REQUESTS: usize = 3000;

/// Most the attack may add to the process's peak resident memory.
const BOUND: u64 = 96 * 1024 * 1024;

#[actix_rt::test]
async fn pipelined_requests_that_are_never_read_leave_memory_bounded() {
    let app = spawn_app(&[]).await;
    let addr = app.address.trim_start_matches("http://").to_string();
    // Warm up the route (its document is built once) and take the baseline.
    assert_eq!(app.get("/api/v1/openapi.json").await.status, 200);
    let (before, _) = rss();

    let request = format!("GET /api/v1/openapi.json HTTP/1.1\r\nhost: {addr}\r\n\r\n");
    let burst = request.repeat(REQUESTS).into_bytes();
    let held = futures::future::join_all((0..CONNECTIONS).map(|_| async {
        let mut s = TcpStream::connect(&addr).await.expect("connect");
        // The server stops reading once the bound is reached: the rest stays
        // in the socket buffers, so the write may not finish.
        let _ = tokio::time::timeout(Duration::from_secs(2), s.write_all(&burst)).await;
        s
    }))
    .await;
    // Every connection has had its first requests answered (until the
    // unread answers filled its socket).
    wait_for("every connection answered", WAIT, || async {
        (answered(&app, "/api/v1/openapi.json").await >= (1 + CONNECTIONS) as f64).then_some(())
    })
    .await;
    let (during, peak) = rss();
    assert!(
        peak.saturating_sub(before) < BOUND,
        "30 pipelining connections took the peak from {before} to {peak} bytes (now {during})"
    );
    drop(held);

    // An honest pipelining client gets every answer, in order.
    let mut s = TcpStream::connect(&addr).await.expect("connect");
    let health = format!("GET /health HTTP/1.1\r\nhost: {addr}\r\n\r\n").repeat(500);
    let (mut rd, mut wr) = s.split();
    let write = async {
        wr.write_all(health.as_bytes()).await.expect("write");
    };
    let read = async {
        let mut got = Vec::new();
        let mut buf = [0u8; 16 * 1024];
        while got.windows(12).filter(|w| w == b"HTTP/1.1 200").count() < 500 {
            match rd.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => got.extend_from_slice(&buf[..n]),
            }
        }
        got.windows(12).filter(|w| w == b"HTTP/1.1 200").count()
    };
    let (_, answers) = bounded("500 pipelined answers", WAIT, async {
        tokio::join!(write, read)
    })
    .await;
    assert_eq!(answers, 500);
    app.stop().await.expect("clean stop");
}
