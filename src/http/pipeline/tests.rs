use super::*;

/// Scans `input` in pieces of `step` bytes admitting every request;
/// returns how many requests began.
fn count(input: &[u8], step: usize) -> (usize, State) {
    let mut f = Framing::default();
    let mut begun = 0;
    for piece in input.chunks(step) {
        let n = f.scan(piece, &mut || {
            begun += 1;
            true
        });
        assert_eq!(n, piece.len());
    }
    (begun, f.state)
}

const MIXED: &[u8] = b"GET /a HTTP/1.1\r\nHost: x\r\n\r\n\
    POST /b HTTP/1.1\r\nHost: x\r\nContent-Length: 11\r\n\r\nGET / HTTP/\
    POST /c HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n\
    4;ext=1\r\nGET \r\n3\r\n/ H\r\n0\r\nTrailer: t\r\n\r\n\
    \r\nGET /d HTTP/1.1\r\nHost: x\r\n\r\n";

#[test]
fn requests_are_counted_at_their_first_byte_whatever_the_read_sizes() {
    for step in [1, 2, 3, 7, 64, MIXED.len()] {
        assert_eq!(count(MIXED, step), (4, State::Idle), "step {step}");
    }
}

#[test]
fn a_refused_request_stops_the_scan_at_its_first_byte() {
    let mut f = Framing::default();
    let mut allowed = 2;
    let n = f.scan(MIXED, &mut || {
        if allowed == 0 {
            return false;
        }
        allowed -= 1;
        true
    });
    let third = MIXED
        .windows(7)
        .position(|w| w == b"POST /c")
        .expect("third request");
    assert_eq!(n, third);
    // Asked again later, it goes on from there.
    assert_eq!(f.scan(&MIXED[n..], &mut || true), MIXED.len() - n);
}

#[test]
fn streams_and_heads_the_dispatcher_refuses_pass_through_unbounded() {
    for head in [
        &b"GET / HTTP/1.1\r\nUpgrade: websocket\r\nConnection: upgrade\r\n\r\n"[..],
        b"CONNECT x:443 HTTP/1.1\r\nHost: x\r\n\r\n",
        b"POST / HTTP/1.1\r\nContent-Length: 2\r\nContent-Length: 2\r\n\r\n",
        b"POST / HTTP/1.1\r\nContent-Length: 2\r\nTransfer-Encoding: chunked\r\n\r\n",
        b"GET /\x01 HTTP/1.1\r\n\r\n",
    ] {
        let mut input = head.to_vec();
        input.extend_from_slice(&b"GET / HTTP/1.1\r\n\r\n".repeat(50));
        let (begun, state) = count(&input, 5);
        assert_eq!((begun, state), (1, State::Passthrough), "{head:?}");
    }
}

/// Reads `paced` until it fails or ends; `take` is told how many
/// requests have been passed up so far.
async fn drain(
    paced: &mut Paced<tokio::io::DuplexStream>,
    mut take: impl FnMut(usize),
) -> (usize, io::Result<()>) {
    use tokio::io::AsyncReadExt;
    let mut got = Vec::new();
    loop {
        let mut b = [0u8; 512];
        match paced.read(&mut b).await {
            Ok(0) => break,
            Ok(n) => got.extend_from_slice(&b[..n]),
            Err(e) => return (count_gets(&got), Err(e)),
        }
        take(count_gets(&got));
    }
    (count_gets(&got), Ok(()))
}

fn count_gets(bytes: &[u8]) -> usize {
    bytes.windows(4).filter(|w| w == b"GET ").count()
}

#[tokio::test(start_paused = true)]
async fn requests_nobody_takes_stop_at_the_bound_and_the_connection_is_closed_after_the_stall() {
    use tokio::io::AsyncWriteExt;
    let (mut client, server) = tokio::io::duplex(64 * 1024);
    client
        .write_all(&b"GET / HTTP/1.1\r\nHost: x\r\n\r\n".repeat(200))
        .await
        .expect("write");
    let mut paced = Paced::new(server);
    let (passed, end) = drain(&mut paced, |_| {}).await;
    assert_eq!(passed, MAX_QUEUED as usize);
    let err = end.expect_err("closed after the stall");
    assert_eq!(err.kind(), io::ErrorKind::TimedOut);
}

#[tokio::test(start_paused = true)]
async fn requests_the_application_takes_all_pass_in_order() {
    use tokio::io::AsyncWriteExt;
    let (mut client, server) = tokio::io::duplex(64 * 1024);
    let pipelined = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n".repeat(200);
    client.write_all(&pipelined).await.expect("write");
    drop(client);
    let mut paced = Paced::new(server);
    let gauge = paced.gauge();
    // The application takes each request as soon as it is passed up.
    let mut taken = 0;
    let (passed, end) = drain(&mut paced, |passed| {
        while taken < passed {
            gauge.start();
            taken += 1;
        }
    })
    .await;
    end.expect("no stall");
    assert_eq!(passed, 200);
}

#[test]
fn an_endless_head_or_chunk_line_stops_being_followed() {
    let mut input = b"GET / HTTP/1.1\r\nX: ".to_vec();
    input.resize(MAX_HEAD + 10, b'a');
    assert_eq!(count(&input, 4096).1, State::Passthrough);
    let mut input = b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n1".to_vec();
    input.resize(input.len() + MAX_LINE + 10, b'0');
    assert_eq!(count(&input, 1000).1, State::Passthrough);
}
