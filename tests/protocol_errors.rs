//! Requests actix's HTTP/1 parser refuses before any route runs are
//! answered like every other error: the right status and a JSON body
//! saying what is wrong. Other clients keep being served.

mod common;

use common::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Sends `raw` on a fresh connection and reads until the server closes it
/// (bounded).
async fn exchange(app: &TestApp, raw: &[u8]) -> String {
    let addr = app.address.trim_start_matches("http://").to_string();
    let mut s = TcpStream::connect(&addr).await.expect("connect");
    s.write_all(raw).await.expect("write");
    let mut buf = Vec::new();
    bounded("the answer and close", WAIT, async {
        let mut chunk = [0u8; 4096];
        // Until the server closes; a reset after the answer (the server
        // closed with part of an oversized request unread) ends it too.
        while let Ok(n @ 1..) = s.read(&mut chunk).await {
            buf.extend_from_slice(&chunk[..n]);
        }
    })
    .await;
    String::from_utf8_lossy(&buf).into_owned()
}

fn assert_json_error(answer: &str, status: u16, code: &str, what: &str) {
    assert!(
        answer.starts_with(&format!("HTTP/1.1 {status} ")),
        "{what}: status {status}: {answer:?}"
    );
    let (head, body) = answer.split_once("\r\n\r\n").expect("head and body");
    assert!(
        head.to_lowercase()
            .contains("content-type: application/json"),
        "{answer:?}"
    );
    let v: serde_json::Value =
        serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {answer:?}"));
    assert_eq!(v["status"], "error", "{answer:?}");
    assert_eq!(v["error"], code, "{answer:?}");
    assert!(v["message"].as_str().is_some_and(|m| !m.is_empty()));
}

#[actix_rt::test]
async fn parser_level_errors_answer_json() {
    let app = spawn_app(&[]).await;
    let cases: [(&str, Vec<u8>, u16, &str); 5] = [
        ("garbage", b"\x16\x03\x01 hello\r\n\r\n".to_vec(), 400, "bad_request"),
        (
            "bad Content-Length",
            b"POST /webhook/github HTTP/1.1\r\nhost: x\r\ncontent-length: abc\r\n\r\n".to_vec(),
            400,
            "bad_request",
        ),
        (
            "Content-Length and Transfer-Encoding",
            b"POST /webhook/github HTTP/1.1\r\nhost: x\r\ncontent-length: 3\r\ntransfer-encoding: chunked\r\n\r\n0\r\n\r\n".to_vec(),
            400,
            "bad_request",
        ),
        (
            "malformed request line",
            b"GET /health HTTP/9.9 extra\r\nhost: x\r\n\r\n".to_vec(),
            400,
            "bad_request",
        ),
        (
            "header block over the limit",
            format!("GET /health HTTP/1.1\r\nhost: x\r\nx-big: {}\r\n\r\n", "a".repeat(130 * 1024)).into_bytes(),
            431,
            "headers_too_large",
        ),
    ];
    for (what, raw, status, code) in cases {
        let answer = exchange(&app, &raw).await;
        assert_json_error(&answer, status, code, what);
    }
    // Well-formed requests, including several on one connection, are
    // answered as before.
    let answer = exchange(
        &app,
        b"GET /health HTTP/1.1\r\nhost: x\r\n\r\nGET /health HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n",
    )
    .await;
    assert_eq!(answer.matches("HTTP/1.1 200 OK").count(), 2, "{answer:?}");
    app.stop().await.expect("a clean stop");
}
