//! A small client of the orchestrator's task and operator API
//! (`/api/v1/tasks`, `/api/v1/jobs…`, `/api/v1/events`), used by the CLI
//! commands `submit`, `jobs` and `events`. Answers are kept as the server's
//! JSON so `-o json` prints exactly what the server said; failures become a
//! [`ClientError`] with a one-line message and an exit code.

pub mod error;
pub mod render;
pub mod wait;

use std::time::Duration;

use reqwest::header::{HeaderValue, AUTHORIZATION};
use reqwest::{Method, RequestBuilder, Response};
use serde_json::Value;
use url::Url;

pub use error::{exit, ClientError, EXIT_CODES_HELP};

/// Bound of one ordinary request (not of a followed log stream).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// Bound of opening a connection.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Filters of `GET /api/v1/jobs`.
#[derive(Debug, Clone, Default)]
pub struct JobFilter {
    pub source: Option<String>,
    pub state: Option<String>,
    pub repository: Option<String>,
    pub namespace: Option<String>,
    pub limit: Option<usize>,
    pub continue_token: Option<String>,
}

/// Filters of `GET /api/v1/events`.
#[derive(Debug, Clone, Default)]
pub struct EventFilter {
    pub limit: Option<usize>,
    pub source: Option<String>,
    pub decision: Option<String>,
}

/// A connection to one orchestrator server with one bearer token.
pub struct ApiClient {
    base: Url,
    /// The server as the user gave it, for messages.
    server: String,
    auth: HeaderValue,
    http: reqwest::Client,
}

impl ApiClient {
    /// Checks `server` and `token` (never echoing the token) and builds a
    /// client.
    pub fn new(server: &str, token: Option<&str>) -> Result<ApiClient, ClientError> {
        let server = server.trim().trim_end_matches('/').to_string();
        let base = Url::parse(&server)
            .ok()
            .filter(|u| matches!(u.scheme(), "http" | "https") && u.host().is_some())
            .ok_or_else(|| {
                ClientError::Usage(format!(
                    "--server {server:?} is not an http(s) URL such as http://127.0.0.1:8080"
                ))
            })?;
        let token = token
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .ok_or(ClientError::NoToken)?;
        let mut auth = HeaderValue::from_str(&format!("Bearer {token}")).map_err(|_| {
            ClientError::Usage("the token has characters an HTTP header cannot carry; check --token or ORCHESTRATOR_TOKEN".into())
        })?;
        auth.set_sensitive(true);
        let http = reqwest::Client::builder()
            .connect_timeout(CONNECT_TIMEOUT)
            .user_agent(concat!("orchestrator-cli/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| ClientError::Usage(format!("cannot build an HTTP client: {e}")))?;
        Ok(ApiClient {
            base,
            server,
            auth,
            http,
        })
    }

    /// The server as given (for messages).
    pub fn server(&self) -> &str {
        &self.server
    }

    /// `base` + `/api/v1/<segments…>`, each segment percent-encoded.
    fn url(&self, segments: &[&str]) -> Url {
        let mut url = self.base.clone();
        if let Ok(mut path) = url.path_segments_mut() {
            path.pop_if_empty().extend(["api", "v1"]).extend(segments);
        }
        url
    }

    fn request(&self, method: Method, url: Url) -> RequestBuilder {
        self.http
            .request(method, url)
            .header(AUTHORIZATION, self.auth.clone())
    }

    /// Sends `req`; a transport failure or a non-2xx answer becomes an
    /// error (`job` names the Job a 404 is about).
    async fn send(&self, req: RequestBuilder, job: Option<&str>) -> Result<Response, ClientError> {
        let resp = req.send().await.map_err(|e| self.transport(&e))?;
        let status = resp.status().as_u16();
        if (200..300).contains(&status) {
            return Ok(resp);
        }
        let body = tokio::time::timeout(REQUEST_TIMEOUT, resp.text())
            .await
            .ok()
            .and_then(Result::ok)
            .unwrap_or_default();
        Err(ClientError::from_answer(status, &body, job))
    }

    /// Sends `req` and reads a JSON answer: (status, body).
    async fn json(
        &self,
        req: RequestBuilder,
        job: Option<&str>,
    ) -> Result<(u16, Value), ClientError> {
        let resp = self.send(req.timeout(REQUEST_TIMEOUT), job).await?;
        let status = resp.status().as_u16();
        let text = resp.text().await.map_err(|e| self.transport(&e))?;
        let value = serde_json::from_str(&text).map_err(|_| ClientError::Server {
            status,
            message: format!(
                "the answer is not JSON ({} bytes); is {} an orchestrator server?",
                text.len(),
                self.server
            ),
        })?;
        Ok((status, value))
    }

    /// Describes a transport failure.
    fn transport(&self, e: &reqwest::Error) -> ClientError {
        ClientError::Unreachable {
            server: self.server.clone(),
            reason: transport_reason(e),
        }
    }

    /// `POST /api/v1/tasks`: (202 queued | 200 duplicate, answer).
    pub async fn submit(
        &self,
        task: &Value,
        idempotency_key: &str,
    ) -> Result<(u16, Value), ClientError> {
        let req = self
            .request(Method::POST, self.url(&["tasks"]))
            .header("idempotency-key", idempotency_key)
            .json(task);
        self.json(req, None).await
    }

    /// `GET /api/v1/jobs`: one page `{"items":[…],"next":…}`.
    pub async fn list_jobs(&self, f: &JobFilter) -> Result<Value, ClientError> {
        let mut query: Vec<(&str, String)> = Vec::new();
        let opts = [
            ("source", &f.source),
            ("state", &f.state),
            ("repository", &f.repository),
            ("namespace", &f.namespace),
            ("continue", &f.continue_token),
        ];
        for (k, v) in opts {
            if let Some(v) = v {
                query.push((k, v.clone()));
            }
        }
        if let Some(l) = f.limit {
            query.push(("limit", l.to_string()));
        }
        let req = self.request(Method::GET, self.url(&["jobs"])).query(&query);
        Ok(self.json(req, None).await?.1)
    }

    /// `GET /api/v1/jobs/{name}`.
    pub async fn get_job(&self, name: &str) -> Result<Value, ClientError> {
        let req = self.request(Method::GET, self.url(&["jobs", name]));
        Ok(self.json(req, Some(name)).await?.1)
    }

    /// `DELETE /api/v1/jobs/{name}`: the Job after cancelling.
    pub async fn cancel_job(&self, name: &str) -> Result<Value, ClientError> {
        let req = self.request(Method::DELETE, self.url(&["jobs", name]));
        Ok(self.json(req, Some(name)).await?.1)
    }

    /// `GET /api/v1/jobs/{name}/logs`: the streaming answer (no overall
    /// timeout when following).
    pub async fn logs(&self, name: &str, follow: bool) -> Result<Response, ClientError> {
        let mut req = self.request(Method::GET, self.url(&["jobs", name, "logs"]));
        if follow {
            req = req.query(&[("follow", "true")]);
        } else {
            req = req.timeout(REQUEST_TIMEOUT);
        }
        self.send(req, Some(name)).await
    }

    /// Reads the next chunk of a log stream.
    pub async fn chunk(&self, resp: &mut Response) -> Result<Option<bytes::Bytes>, ClientError> {
        resp.chunk().await.map_err(|e| self.transport(&e))
    }

    /// `GET /api/v1/events`: newest first.
    pub async fn events(&self, f: &EventFilter) -> Result<Value, ClientError> {
        let mut query: Vec<(&str, String)> = Vec::new();
        if let Some(l) = f.limit {
            query.push(("limit", l.to_string()));
        }
        if let Some(s) = &f.source {
            query.push(("source", s.clone()));
        }
        if let Some(d) = &f.decision {
            query.push(("decision", d.clone()));
        }
        let req = self
            .request(Method::GET, self.url(&["events"]))
            .query(&query);
        Ok(self.json(req, None).await?.1)
    }

    /// `GET /api/v1/leader`.
    pub async fn leader(&self) -> Result<Value, ClientError> {
        let req = self.request(Method::GET, self.url(&["leader"]));
        Ok(self.json(req, None).await?.1)
    }
}

/// A short reason for a transport failure: "connection refused", "timed
/// out", or the innermost cause.
fn transport_reason(e: &reqwest::Error) -> String {
    if e.is_timeout() {
        return "timed out".into();
    }
    let mut cause: &dyn std::error::Error = e;
    let mut innermost = e.to_string();
    while let Some(next) = cause.source() {
        if let Some(io) = next.downcast_ref::<std::io::Error>() {
            match io.kind() {
                std::io::ErrorKind::ConnectionRefused => return "connection refused".into(),
                std::io::ErrorKind::ConnectionReset => return "connection reset".into(),
                std::io::ErrorKind::TimedOut => return "timed out".into(),
                _ => {}
            }
        }
        innermost = next.to_string();
        cause = next;
    }
    innermost
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_encode_segments_and_keep_a_path_prefix() {
        let c = ApiClient::new("http://h:1/prefix/", Some("t0123456789abcdef")).expect("client");
        assert_eq!(
            c.url(&["jobs", "a/b"]).as_str(),
            "http://h:1/prefix/api/v1/jobs/a%2Fb"
        );
        let c = ApiClient::new("http://h:1", Some("t0123456789abcdef")).expect("client");
        assert_eq!(c.url(&["jobs"]).as_str(), "http://h:1/api/v1/jobs");
    }

    #[test]
    fn bad_servers_and_missing_tokens_are_refused_without_echoing_the_token() {
        assert!(matches!(
            ApiClient::new("localhost:8080", Some("t")),
            Err(ClientError::Usage(_))
        ));
        assert!(matches!(
            ApiClient::new("http://h", None),
            Err(ClientError::NoToken)
        ));
        assert!(matches!(
            ApiClient::new("http://h", Some("  ")),
            Err(ClientError::NoToken)
        ));
        let Err(e) = ApiClient::new("http://h", Some("secret\nvalue")) else {
            panic!("a token with a newline is refused")
        };
        assert!(!e.to_string().contains("secret"), "{e}");
    }
}
