//! Unauthenticated bodies cannot hold the service's memory or stop its
//! intake: bytes are charged as they are buffered (a declared length holds
//! nothing), a body slower than the minimum rate is cut with 408 after the
//! grace, ordinary deliveries keep a reserve that big bodies cannot take,
//! one client address gets a bounded share, and a stream of tiny chunks
//! reaches its limit early. Its own binary: the attackers use loopback
//! addresses other than 127.0.0.1, and the assertions count bytes in flight.

mod common;

use std::net::SocketAddr;

use common::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

/// Connects to the app from the loopback address `from` (127.0.0.x).
async fn connect_from(app: &TestApp, from: [u8; 4]) -> TcpStream {
    let to: SocketAddr = app
        .address
        .trim_start_matches("http://")
        .parse()
        .expect("address");
    let socket = TcpSocket::new_v4().expect("socket");
    socket
        .bind(SocketAddr::from((from, 0)))
        .expect("bind a loopback address");
    socket.connect(to).await.expect("connect")
}

/// The head of a GitHub delivery with a well-formed but wrong signature.
fn head(app: &TestApp, framing: &str) -> String {
    let addr = app.address.trim_start_matches("http://");
    format!(
        "POST /webhook/github HTTP/1.1\r\nhost: {addr}\r\ncontent-type: application/json\r\n\
         x-github-event: issues\r\nx-github-delivery: d-1\r\n\
         x-hub-signature-256: sha256={}\r\n{framing}\r\n",
        "0".repeat(64)
    )
}

/// Reads the answer on `s` (status line, headers, body by Content-Length).
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

/// Sends `total` bytes of a chunked body in chunks of 64 KiB, then holds.
async fn send_chunked(s: &mut TcpStream, total: usize) -> std::io::Result<()> {
    let chunk = vec![b' '; 64 * 1024];
    let mut sent = 0;
    while sent < total {
        s.write_all(format!("{:x}\r\n", chunk.len()).as_bytes())
            .await?;
        s.write_all(&chunk).await?;
        s.write_all(b"\r\n").await?;
        sent += chunk.len();
    }
    Ok(())
}

/// What the app's unauthenticated bodies hold now.
fn in_use(app: &TestApp) -> usize {
    app.handles.bodies.in_use()
}

#[actix_rt::test]
async fn signed_deliveries_keep_their_202_while_header_only_and_chunked_holders_run() {
    let app = spawn_app(&[]).await;
    let mib = 1024 * 1024;
    // Header-only holders: 25 + 25 + 14 MiB promised, nothing sent. Before,
    // these took the whole 64 MiB budget for 10 s.
    let mut promisers = Vec::new();
    for (i, len) in [25 * mib, 25 * mib, 14 * mib].into_iter().enumerate() {
        let mut s = connect_from(&app, [127, 0, 0, 2 + i as u8]).await;
        let h = head(&app, &format!("content-length: {len}\r\n"));
        s.write_all(h.as_bytes()).await.expect("head");
        promisers.push(s);
    }
    // Chunked holders that really send 24 MiB each, then stall: from three
    // addresses they fill the shared pool.
    let mut holders = Vec::new();
    for i in 0..3u8 {
        let mut s = connect_from(&app, [127, 0, 0, 10 + i]).await;
        let h = head(&app, "transfer-encoding: chunked\r\n");
        s.write_all(h.as_bytes()).await.expect("head");
        // The pool may refuse one of them and stop reading: bounded.
        let _ = tokio::time::timeout(WAIT, send_chunked(&mut s, 24 * mib)).await;
        holders.push(s);
    }
    // Two of them hold 25 MiB each; the third found 14 MiB and was refused.
    wait_for("the holders' bytes to be buffered", WAIT, || async {
        (in_use(&app) >= 48 * mib).then_some(())
    })
    .await;
    // Meanwhile signed deliveries from another address are queued.
    for n in 0..5u64 {
        let body = bytes(&issue_labeled_agent(9000 + n));
        let r = app.deliver("issues", &delivery_id(), body).await;
        assert_eq!(r.status, 202, "a signed delivery during the attack: {r:?}");
        assert_eq!(r.status_field(), "queued", "{r:?}");
    }
    // Promises held nothing, and each is cut once the grace is over.
    for s in promisers {
        let (status, text) = answer(s).await;
        assert_eq!(status, 408, "{text}");
        assert!(text.contains("slower than"), "{text}");
    }
    // The chunked holders are cut at the deadline, or refused when the pool
    // was full; either way the bytes are returned.
    let answers = futures::future::join_all(holders.into_iter().map(answer)).await;
    let mut statuses: Vec<u16> = answers.iter().map(|(status, _)| *status).collect();
    statuses.sort_unstable();
    assert_eq!(
        statuses,
        [408, 408, 503],
        "two holders cut at the deadline, the third refused: {answers:?}"
    );
    wait_for("the budget to be returned", WAIT, || async {
        (in_use(&app) == 0).then_some(())
    })
    .await;
    app.stop().await.expect("clean stop");
}

#[actix_rt::test]
async fn one_client_address_gets_a_bounded_share_and_tiny_chunks_reach_the_limit_early() {
    let app = spawn_app(&[("GITHUB_MAX_BODY_BYTES", "1048576")]).await;
    // 16 bodies in flight from one address; the 17th is refused with 429.
    // Each has sent 99 KB of 100 KB: the minimum rate gives it ~10 s.
    let mut held = Vec::new();
    for _ in 0..16 {
        let mut s = connect_from(&app, [127, 0, 0, 20]).await;
        let h = head(&app, "content-length: 100000\r\n");
        s.write_all(h.as_bytes()).await.expect("head");
        s.write_all(&[b' '; 99_000])
            .await
            .expect("most of the body");
        held.push(s);
    }
    wait_for("16 bodies begun", WAIT, || async {
        (in_use(&app) >= 16 * 99_000).then_some(())
    })
    .await;
    let mut s = connect_from(&app, [127, 0, 0, 20]).await;
    s.write_all(head(&app, "content-length: 2\r\n").as_bytes())
        .await
        .expect("head");
    s.write_all(b"{}").await.expect("body");
    let (status, text) = answer(s).await;
    assert_eq!(status, 429, "{text}");
    assert!(text.to_lowercase().contains("retry-after"), "{text}");
    // Another address is served meanwhile.
    let mut s = connect_from(&app, [127, 0, 0, 21]).await;
    s.write_all(head(&app, "content-length: 2\r\n").as_bytes())
        .await
        .expect("head");
    s.write_all(b"{}").await.expect("body");
    assert_eq!(
        answer(s).await.0,
        401,
        "a wrong signature, read and refused"
    );
    drop(held);

    // One-byte chunks count 64 bytes more each: 1 MiB of limit is reached
    // after about 16,000 of them (16 KB of data), not a million.
    let mut s = connect_from(&app, [127, 0, 0, 22]).await;
    s.write_all(head(&app, "transfer-encoding: chunked\r\n").as_bytes())
        .await
        .expect("head");
    let tiny = b"1\r\n \r\n".repeat(20_000);
    let _ = s.write_all(&tiny).await;
    let (status, text) = answer(s).await;
    assert_eq!(status, 413, "{text}");
    wait_for("the budget to be returned", WAIT, || async {
        (in_use(&app) == 0).then_some(())
    })
    .await;
    app.stop().await.expect("clean stop");
}
