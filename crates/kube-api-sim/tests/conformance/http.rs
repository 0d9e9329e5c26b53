//! Raw HTTP helpers: the simulator's exact status codes and bodies, and watch
//! streams read line by line, every wait bounded.

use std::time::Duration;

use serde_json::Value;

/// Upper bound for one request or one awaited watch line.
pub const WAIT: Duration = Duration::from_secs(15);

/// GET `path`; the status and JSON body.
pub async fn get(base: &str, path: &str) -> (u16, Value) {
    let resp = tokio::time::timeout(WAIT, reqwest::get(format!("{base}{path}")))
        .await
        .expect("answered in time")
        .expect("request");
    let code = resp.status().as_u16();
    let body = tokio::time::timeout(WAIT, resp.json::<Value>())
        .await
        .expect("body in time")
        .expect("JSON body");
    (code, body)
}

/// `method` `path` with a JSON body; the status and JSON body.
pub async fn send(method: reqwest::Method, base: &str, path: &str, body: &Value) -> (u16, Value) {
    let resp = reqwest::Client::new()
        .request(method, format!("{base}{path}"))
        .json(body)
        .send()
        .await
        .expect("request");
    let code = resp.status().as_u16();
    (code, resp.json().await.expect("JSON body"))
}

/// POST `path` with a JSON body; the status and JSON body.
pub async fn post(base: &str, path: &str, body: &Value) -> (u16, Value) {
    send(reqwest::Method::POST, base, path, body).await
}

/// An open watch, read one event at a time.
pub struct Watch {
    resp: reqwest::Response,
    buf: Vec<u8>,
}

impl Watch {
    /// Opens `path` (which carries `watch=true`); 200 expected.
    pub async fn open(base: &str, path: &str) -> Watch {
        let resp = tokio::time::timeout(WAIT, reqwest::get(format!("{base}{path}")))
            .await
            .expect("answered in time")
            .expect("request");
        assert_eq!(resp.status().as_u16(), 200, "watch {path}");
        Watch {
            resp,
            buf: Vec::new(),
        }
    }

    /// The next event, or None when the stream ended.
    pub async fn next(&mut self) -> Option<Value> {
        loop {
            if let Some(i) = self.buf.iter().position(|b| *b == b'\n') {
                let line: Vec<u8> = self.buf.drain(..=i).collect();
                return Some(serde_json::from_slice(&line).expect("one JSON event per line"));
            }
            let chunk = tokio::time::timeout(WAIT, self.resp.chunk())
                .await
                .expect("a watch event in time")
                .expect("stream");
            self.buf.extend_from_slice(&chunk?);
        }
    }
}
