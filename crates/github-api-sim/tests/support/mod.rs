//! Shared by the tests: starting a simulator, raw HTTP calls, App JWTs signed
//! with the test key pair (tests/fixtures/keys of the workspace root) and a
//! loopback webhook receiver.
#![allow(dead_code)]

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine;
use github_api_sim::{GithubSimConfig, GithubSimServer};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

pub const APP_ID: u64 = 424242;
pub const PAT: &str = "pat-test-token";

pub fn key_path(name: &str) -> String {
    format!(
        "{}/../../tests/fixtures/keys/{name}",
        env!("CARGO_MANIFEST_DIR")
    )
}

pub fn public_pem() -> String {
    std::fs::read_to_string(key_path("github-app-test.pub.pem")).expect("test public key")
}

fn pem_der(pem: &str) -> Vec<u8> {
    let body: String = pem
        .lines()
        .filter(|l| !l.starts_with("-----"))
        .map(str::trim)
        .collect();
    base64::engine::general_purpose::STANDARD
        .decode(body)
        .expect("PEM base64")
}

/// The test App's private key (PKCS#1 DER).
pub fn private_der() -> Vec<u8> {
    pem_der(&std::fs::read_to_string(key_path("github-app-test.pem")).expect("test private key"))
}

pub fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_secs() as i64
}

/// An RS256 JWT with `claims`, signed with the PKCS#1 private key `der`.
pub fn jwt_with(der: &[u8], claims: Value) -> String {
    let enc = |b: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b);
    let header = enc(br#"{"alg":"RS256","typ":"JWT"}"#);
    let payload = enc(claims.to_string().as_bytes());
    let signing_input = format!("{header}.{payload}");
    let key = ring::signature::RsaKeyPair::from_der(der).expect("PKCS#1 key");
    let mut sig = vec![0u8; key.public().modulus_len()];
    key.sign(
        &ring::signature::RSA_PKCS1_SHA256,
        &ring::rand::SystemRandom::new(),
        signing_input.as_bytes(),
        &mut sig,
    )
    .expect("sign");
    format!("{signing_input}.{}", enc(&sig))
}

/// A valid App JWT for [`APP_ID`] (iat 30 s back, exp 9 minutes ahead).
pub fn app_jwt() -> String {
    let t = now();
    jwt_with(
        &private_der(),
        json!({"iss": APP_ID.to_string(), "iat": t - 30, "exp": t + 540}),
    )
}

pub fn config() -> GithubSimConfig {
    GithubSimConfig {
        app_id: Some(APP_ID),
        app_public_key_pem: Some(public_pem()),
        tokens: vec![PAT.into()],
        ..Default::default()
    }
}

pub fn start(config: GithubSimConfig) -> GithubSimServer {
    GithubSimServer::start_local(config).expect("github-api-sim starts")
}

pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .expect("client")
}

/// One answer: status, headers, parsed JSON body (Null when empty).
pub struct Answer {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub body: Value,
}

impl Answer {
    pub fn header(&self, name: &str) -> Option<String> {
        self.headers
            .get(name)
            .map(|v| v.to_str().expect("ascii header").to_string())
    }
}

/// `method url` with `Authorization: token <token>` (when given) and a JSON body.
pub async fn call(
    sim: &GithubSimServer,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<Value>,
) -> Answer {
    call_with(sim, method, path, token, body, &[]).await
}

pub async fn call_with(
    sim: &GithubSimServer,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<Value>,
    headers: &[(&str, &str)],
) -> Answer {
    let url = if path.starts_with("http") {
        path.to_string()
    } else {
        format!("{}{path}", sim.url())
    };
    let mut req = client().request(method.parse().expect("method"), url);
    if let Some(t) = token {
        req = req.header("Authorization", format!("token {t}"));
    }
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    if let Some(b) = body {
        req = req.json(&b);
    }
    let resp = req.send().await.expect("request");
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let bytes = resp.bytes().await.expect("body");
    let body = if bytes.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&bytes)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into()))
    };
    Answer {
        status,
        headers,
        body,
    }
}

/// `Bearer <jwt>` calls.
pub async fn call_jwt(sim: &GithubSimServer, method: &str, path: &str, jwt: &str) -> Answer {
    let url = if path.starts_with("http") {
        path.to_string()
    } else {
        format!("{}{path}", sim.url())
    };
    let resp = client()
        .request(method.parse().expect("method"), url)
        .header("Authorization", format!("Bearer {jwt}"))
        .send()
        .await
        .expect("request");
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let bytes = resp.bytes().await.expect("body");
    let body = if bytes.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&bytes).expect("JSON body")
    };
    Answer {
        status,
        headers,
        body,
    }
}

/// An installation token for installation 1, through the real JWT route.
pub async fn installation_token(sim: &GithubSimServer) -> String {
    let a = call_jwt(
        sim,
        "POST",
        "/app/installations/1/access_tokens",
        &app_jwt(),
    )
    .await;
    assert_eq!(a.status, 201, "{}", a.body);
    a.body["token"].as_str().expect("token").to_string()
}

/// The `<url>; rel="<rel>"` target of a Link header.
pub fn link(header: &str, rel: &str) -> Option<String> {
    header.split(',').find_map(|part| {
        let (url, params) = part.split_once(';')?;
        params.contains(&format!("rel=\"{rel}\"")).then(|| {
            url.trim()
                .trim_start_matches('<')
                .trim_end_matches('>')
                .to_string()
        })
    })
}

/// A request the loopback receiver got.
#[derive(Debug)]
pub struct Received {
    pub head: String,
    pub body: Vec<u8>,
}

impl Received {
    pub fn header(&self, name: &str) -> Option<String> {
        self.head.lines().skip(1).find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.trim()
                .eq_ignore_ascii_case(name)
                .then(|| v.trim().to_string())
        })
    }
}

/// A one-shot-per-connection HTTP receiver on 127.0.0.1:0 answering
/// `status`; what it receives comes out of the channel.
pub async fn receiver(status: u16) -> (String, tokio::sync::mpsc::UnboundedReceiver<Received>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("http://{}/webhook", listener.local_addr().expect("addr"));
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        loop {
            let Ok((mut sock, _)) = listener.accept().await else {
                return;
            };
            let tx = tx.clone();
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 8192];
                let head_end = loop {
                    let n = sock.read(&mut chunk).await.unwrap_or(0);
                    if n == 0 {
                        return;
                    }
                    buf.extend_from_slice(&chunk[..n]);
                    if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                        break i + 4;
                    }
                };
                let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
                let len = head
                    .lines()
                    .find_map(|l| {
                        let (k, v) = l.split_once(':')?;
                        k.trim()
                            .eq_ignore_ascii_case("content-length")
                            .then(|| v.trim().parse::<usize>().ok())?
                    })
                    .unwrap_or(0);
                while buf.len() < head_end + len {
                    let n = sock.read(&mut chunk).await.unwrap_or(0);
                    if n == 0 {
                        break;
                    }
                    buf.extend_from_slice(&chunk[..n]);
                }
                let body = buf[head_end..].to_vec();
                let answer = format!(
                    "HTTP/1.1 {status} Status\r\ncontent-length: 2\r\ncontent-type: text/plain\r\nconnection: close\r\n\r\nok"
                );
                let _ = sock.write_all(answer.as_bytes()).await;
                let _ = sock.shutdown().await;
                let _ = tx.send(Received { head, body });
            });
        }
    });
    (url, rx)
}
