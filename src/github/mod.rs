//! GitHub's REST API as the service speaks to it (reports, reactions,
//! check runs, the App's webhook deliveries — [`deliveries`]): one client
//! over `GITHUB_API_URL`, authenticated by a token or as a GitHub App
//! ([`app`]; the App's own routes with its JWT, [`Github::call_as_app`]),
//! that honours GitHub's rate limits.
//!
//! * **Waiting, not hammering.** A `403`/`429` with `Retry-After`, a
//!   primary limit (`X-RateLimit-Remaining: 0`, wait until
//!   `X-RateLimit-Reset`) or a secondary limit (the message says so, no
//!   header: wait a minute) puts the credential on hold: until the hold
//!   ends every call with it answers [`GithubError::RateLimited`] at once,
//!   without a request. A success that leaves no requests holds until the
//!   reset too.
//! * **Conditional requests.** GET answers are kept with their `ETag`
//!   (bounded); the next GET of the same path sends `If-None-Match`, and a
//!   `304` (free of quota on GitHub) answers the kept body.
//! * **Errors are classified** so callers retry only what may succeed:
//!   [`GithubError::Unavailable`] (5xx, transport, timeout) and
//!   `RateLimited` are worth retrying, [`GithubError::Refused`] (other
//!   4xx) is not.
//!
//! Why not `octocrab`: its App JWTs are signed by `jsonwebtoken`, whose
//! backends are `aws-lc-rs` (a C build under the OpenSSL licence) or the
//! `rsa` crate (RUSTSEC-2023-0071, no fix), and its errors drop the
//! response headers the rate-limit rules above need. `reqwest` and `ring`
//! are already in the build; the App flow is two requests.

pub mod app;
pub mod deliveries;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use reqwest::header::{HeaderMap, HeaderValue};
use reqwest::Method;
use serde_json::Value;

use crate::config::github::{GithubApiConfig, GithubCredential};
use crate::config::Secret;
use crate::metrics::reports::ReportMetrics;
use app::AppAuth;

/// One call's deadline.
const CALL_TIMEOUT: Duration = Duration::from_secs(10);
/// The hold after a secondary rate limit that named no wait.
const SECONDARY_WAIT: Duration = Duration::from_secs(60);
/// Longest hold honoured from GitHub's headers.
const MAX_HOLD: Duration = Duration::from_secs(3600);
/// GET answers kept for conditional requests.
const ETAG_CACHE: usize = 2048;

/// Why a GitHub call failed.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum GithubError {
    /// GitHub asked to wait this long (or the credential is on hold).
    #[error("GitHub rate limit: retry in {} s", .0.as_secs())]
    RateLimited(Duration),
    /// GitHub did not answer, or answered 5xx: worth retrying.
    #[error("GitHub unavailable: {0}")]
    Unavailable(String),
    /// GitHub refused the call (4xx): retrying the same call will not help.
    #[error("GitHub refused ({status}): {message}")]
    Refused { status: u16, message: String },
}

impl GithubError {
    /// The HTTP status of a refusal.
    pub fn status(&self) -> Option<u16> {
        match self {
            GithubError::Refused { status, .. } => Some(*status),
            _ => None,
        }
    }
}

/// One API call.
pub struct Call<'a> {
    /// What it does, for the metrics (`comment_create`, `reaction`, …).
    pub op: &'static str,
    pub method: Method,
    /// The path under the API URL, e.g. `repos/o/r/issues/1/comments`.
    pub path: String,
    pub body: Option<Value>,
    /// `owner/name` the call is about (finds the App installation).
    pub repo: &'a str,
    /// The App installation named by the delivery, if known.
    pub installation: Option<u64>,
}

/// A kept GET answer: its ETag, body and `Link` header (a 304 may omit it).
type Kept = (HeaderValue, Value, Option<HeaderValue>);

enum Auth {
    Token(Secret),
    App(Box<AppAuth>),
}

struct Inner {
    http: reqwest::Client,
    api: url::Url,
    auth: Auth,
    /// Credential → end of its rate-limit hold.
    holds: Mutex<HashMap<u64, Instant>>,
    /// (credential, path) → (ETag, body, `Link`) of the last GET.
    etags: Mutex<HashMap<(u64, String), Kept>>,
    metrics: ReportMetrics,
}

/// The GitHub API client (clones share the connection pool, tokens and holds).
#[derive(Clone)]
pub struct Github {
    inner: Arc<Inner>,
}

/// The hold key of a token credential (installations use their id).
const TOKEN_KEY: u64 = 0;
/// The hold key of the App's own JWT-authenticated calls (`/app/...`).
const APP_KEY: u64 = u64::MAX;

/// An answer and the API path of its next page (`Link: <…>; rel="next"`,
/// only when it points under the API URL).
#[derive(Debug, Clone)]
pub struct Page {
    pub body: Value,
    pub next: Option<String>,
}

/// The `rel="next"` URL of a `Link` header.
fn next_link(link: &str) -> Option<&str> {
    link.split(',').find_map(|part| {
        let (url, params) = part.split_once(';')?;
        let is_next = params
            .split(';')
            .any(|p| p.trim().eq_ignore_ascii_case("rel=\"next\""));
        let url = url.trim().strip_prefix('<')?.strip_suffix('>')?;
        is_next.then_some(url)
    })
}

fn hold_from(status: u16, headers: &HeaderMap, body: &Value) -> Option<Duration> {
    if !matches!(status, 403 | 429) && headers.get("retry-after").is_none() {
        return None;
    }
    let header = |n: &str| headers.get(n).and_then(|v| v.to_str().ok());
    if let Some(secs) = header("retry-after").and_then(|v| v.trim().parse::<u64>().ok()) {
        return Some(Duration::from_secs(secs.max(1)).min(MAX_HOLD));
    }
    if header("x-ratelimit-remaining") == Some("0") {
        return Some(until_reset(headers));
    }
    let message = body["message"].as_str().unwrap_or("").to_ascii_lowercase();
    (status == 429 || message.contains("rate limit")).then_some(SECONDARY_WAIT)
}

/// Time until `X-RateLimit-Reset` (unix seconds), at least one second.
fn until_reset(headers: &HeaderMap) -> Duration {
    let reset = headers
        .get("x-ratelimit-reset")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<i64>().ok());
    match reset {
        Some(r) => {
            let secs = (r - chrono::Utc::now().timestamp()).clamp(1, MAX_HOLD.as_secs() as i64);
            Duration::from_secs(secs as u64)
        }
        None => SECONDARY_WAIT,
    }
}

/// GitHub's error message, cut short (it is shown in logs).
fn message_of(body: &Value, status: u16) -> String {
    let m = body["message"].as_str().unwrap_or("no message");
    let mut m: String = m.chars().take(200).collect();
    if let Some(errors) = body["errors"].as_array() {
        if let Some(first) = errors.first() {
            let detail = first["message"]
                .as_str()
                .or(first["code"].as_str())
                .unwrap_or("");
            m.push_str(&format!(
                " ({})",
                detail.chars().take(120).collect::<String>()
            ));
        }
    }
    format!("{status} {m}")
}

impl Github {
    /// A client for `cfg`, or `None` when no credential is configured.
    pub fn new(cfg: &GithubApiConfig, metrics: ReportMetrics) -> Result<Option<Github>, String> {
        let auth = match &cfg.credential {
            None => return Ok(None),
            Some(GithubCredential::Token(t)) => Auth::Token(t.clone()),
            Some(GithubCredential::App { app_id, key }) => {
                Auth::App(Box::new(AppAuth::new(*app_id, key)?))
            }
        };
        let mut api = cfg.api_url.clone();
        if !api.path().ends_with('/') {
            let p = format!("{}/", api.path());
            api.set_path(&p);
        }
        let mut headers = HeaderMap::new();
        headers.insert(
            "accept",
            HeaderValue::from_static("application/vnd.github+json"),
        );
        headers.insert(
            "x-github-api-version",
            HeaderValue::from_static("2022-11-28"),
        );
        let http = reqwest::Client::builder()
            .user_agent(concat!("orchestrator/", env!("CARGO_PKG_VERSION")))
            .default_headers(headers)
            .timeout(CALL_TIMEOUT)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| format!("could not build the GitHub client: {e}"))?;
        Ok(Some(Github {
            inner: Arc::new(Inner {
                http,
                api,
                auth,
                holds: Mutex::default(),
                etags: Mutex::default(),
                metrics,
            }),
        }))
    }

    /// Authenticated as a GitHub App (check runs need that).
    pub fn is_app(&self) -> bool {
        matches!(self.inner.auth, Auth::App(_))
    }

    fn url(&self, path: &str) -> Result<url::Url, GithubError> {
        self.inner
            .api
            .join(path.trim_start_matches('/'))
            .map_err(|e| GithubError::Refused {
                status: 400,
                message: format!("bad API path: {e}"),
            })
    }

    fn held(&self, key: u64) -> Option<Duration> {
        let mut holds = self.inner.holds.lock().unwrap_or_else(|p| p.into_inner());
        let until = *holds.get(&key)?;
        let now = Instant::now();
        if until > now {
            Some(until - now)
        } else {
            holds.remove(&key);
            None
        }
    }

    fn hold(&self, key: u64, wait: Duration) {
        let mut holds = self.inner.holds.lock().unwrap_or_else(|p| p.into_inner());
        let until = Instant::now() + wait;
        let entry = holds.entry(key).or_insert(until);
        if *entry < until {
            *entry = until;
        }
    }

    /// Sends `c` with the right credential; retries once with a new
    /// installation token after a 401.
    pub async fn call(&self, c: Call<'_>) -> Result<Value, GithubError> {
        let key = match &self.inner.auth {
            Auth::Token(_) => TOKEN_KEY,
            Auth::App(app) => match c.installation.or_else(|| app.installation_of(c.repo)) {
                Some(id) => id,
                None => self.find_installation(c.repo).await?,
            },
        };
        if let Some(left) = self.held(key) {
            self.inner.metrics.github_call(c.op, "held");
            return Err(GithubError::RateLimited(left));
        }
        for attempt in 0..2 {
            let token = self.token(key, c.repo, attempt > 0).await?;
            match self.send(&c, key, &token).await {
                Err(GithubError::Refused { status: 401, .. }) if attempt == 0 && self.is_app() => {
                    continue
                }
                other => return other,
            }
        }
        Err(GithubError::Refused {
            status: 401,
            message: "401 Bad credentials".into(),
        })
    }

    /// Sends `c` as the App itself (a JWT, not an installation token): the
    /// App's own routes such as `/app/hook/deliveries`. Honours and sets
    /// the App's rate-limit hold like [`Github::call`]. Refused (401)
    /// without App credentials.
    pub async fn call_as_app(&self, c: Call<'_>) -> Result<Page, GithubError> {
        let Auth::App(app) = &self.inner.auth else {
            return Err(GithubError::Refused {
                status: 401,
                message: "the App's routes need GitHub App credentials".into(),
            });
        };
        if let Some(left) = self.held(APP_KEY) {
            self.inner.metrics.github_call(c.op, "held");
            return Err(GithubError::RateLimited(left));
        }
        let jwt = app.jwt().map_err(GithubError::Unavailable)?;
        let (body, headers) = self.send_raw(&c, APP_KEY, &jwt).await?;
        let next = headers
            .get("link")
            .and_then(|v| v.to_str().ok())
            .and_then(next_link)
            .and_then(|url| self.path_under_api(url));
        Ok(Page { body, next })
    }

    /// `url` as a path under the API URL; `None` when it points elsewhere
    /// (a credential is never sent to another host).
    fn path_under_api(&self, url: &str) -> Option<String> {
        let api = self.inner.api.as_str();
        match url.strip_prefix(api) {
            Some(rest) => Some(rest.to_string()),
            None => {
                tracing::warn!("GitHub's next-page link is not under GITHUB_API_URL; not followed");
                None
            }
        }
    }

    /// The bearer for credential `key` (`renew`: buy a new installation token).
    async fn token(&self, key: u64, repo: &str, renew: bool) -> Result<String, GithubError> {
        let app = match &self.inner.auth {
            Auth::Token(t) => return Ok(String::from_utf8_lossy(t.expose()).into_owned()),
            Auth::App(app) => app,
        };
        let slot = app.slot(key);
        let mut cached = slot.lock().await;
        if !renew {
            if let Some(t) = AppAuth::fresh(&cached) {
                return Ok(t);
            }
        }
        let jwt = app.jwt().map_err(GithubError::Unavailable)?;
        let call = Call {
            op: "installation_token",
            method: Method::POST,
            path: format!("app/installations/{key}/access_tokens"),
            body: None,
            repo,
            installation: Some(key),
        };
        let answer = self.send(&call, key, &jwt).await?;
        let (Some(token), Some(expires)) = (
            answer["token"].as_str(),
            answer["expires_at"]
                .as_str()
                .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok()),
        ) else {
            return Err(GithubError::Unavailable(
                "the installation token answer has no token or expires_at".into(),
            ));
        };
        self.inner.metrics.installation_token();
        *cached = Some(app::Cached {
            token: token.to_string(),
            expires_at: expires.with_timezone(&chrono::Utc),
        });
        Ok(token.to_string())
    }

    /// The App's installation on `repo` (`GET /repos/{repo}/installation`).
    async fn find_installation(&self, repo: &str) -> Result<u64, GithubError> {
        let Auth::App(app) = &self.inner.auth else {
            return Ok(TOKEN_KEY);
        };
        let jwt = app.jwt().map_err(GithubError::Unavailable)?;
        let call = Call {
            op: "installation_lookup",
            method: Method::GET,
            path: format!("repos/{repo}/installation"),
            body: None,
            repo,
            installation: None,
        };
        let answer = self.send(&call, APP_KEY, &jwt).await?;
        let id = answer["id"]
            .as_u64()
            .ok_or_else(|| GithubError::Unavailable("the installation answer has no id".into()))?;
        app.remember_installation(repo, id);
        Ok(id)
    }

    async fn send(&self, c: &Call<'_>, key: u64, bearer: &str) -> Result<Value, GithubError> {
        self.send_raw(c, key, bearer).await.map(|(body, _)| body)
    }

    /// [`Github::send`], with the answer's headers.
    async fn send_raw(
        &self,
        c: &Call<'_>,
        key: u64,
        bearer: &str,
    ) -> Result<(Value, HeaderMap), GithubError> {
        let metrics = &self.inner.metrics;
        let url = self.url(&c.path)?;
        let mut req = self
            .inner
            .http
            .request(c.method.clone(), url)
            .bearer_auth(bearer);
        let cache_key = (key, c.path.clone());
        let kept = if c.method == Method::GET {
            self.inner
                .etags
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .get(&cache_key)
                .cloned()
        } else {
            None
        };
        if let Some((etag, _, _)) = &kept {
            req = req.header("if-none-match", etag.clone());
        }
        if let Some(body) = &c.body {
            req = req.json(body);
        }
        let resp = match req.send().await {
            Ok(r) => r,
            Err(e) => {
                metrics.github_call(c.op, "unavailable");
                let what = if e.is_timeout() {
                    "timed out"
                } else {
                    "no answer"
                };
                return Err(GithubError::Unavailable(format!("{} {what}", c.op)));
            }
        };
        let status = resp.status().as_u16();
        let mut headers = resp.headers().clone();
        if status == 304 {
            if let Some((_, body, link)) = kept {
                if let Some(link) = link.filter(|_| !headers.contains_key("link")) {
                    headers.insert("link", link);
                }
                metrics.github_call(c.op, "not_modified");
                return Ok((body, headers));
            }
        }
        let bytes = match resp.bytes().await {
            Ok(b) => b,
            Err(_) => {
                metrics.github_call(c.op, "unavailable");
                return Err(GithubError::Unavailable(format!(
                    "{} answer cut short",
                    c.op
                )));
            }
        };
        let body: Value = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes).unwrap_or(Value::Null)
        };
        if (200..300).contains(&status) {
            metrics.github_call(c.op, "ok");
            if headers
                .get("x-ratelimit-remaining")
                .and_then(|v| v.to_str().ok())
                == Some("0")
            {
                self.hold(key, until_reset(&headers));
            }
            if c.method == Method::GET {
                if let Some(etag) = headers.get("etag") {
                    let mut etags = self.inner.etags.lock().unwrap_or_else(|p| p.into_inner());
                    if etags.len() >= ETAG_CACHE {
                        etags.clear();
                    }
                    let link = headers.get("link").cloned();
                    etags.insert(cache_key, (etag.clone(), body.clone(), link));
                }
            }
            return Ok((body, headers));
        }
        if let Some(wait) = hold_from(status, &headers, &body) {
            metrics.github_call(c.op, "rate_limited");
            self.hold(key, wait);
            return Err(GithubError::RateLimited(wait));
        }
        if status >= 500 {
            metrics.github_call(c.op, "unavailable");
            return Err(GithubError::Unavailable(message_of(&body, status)));
        }
        metrics.github_call(c.op, "refused");
        Err(GithubError::Refused {
            status,
            message: message_of(&body, status),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_next_link_is_found_among_others() {
        let link = r#"<https://api.github.com/app/hook/deliveries?per_page=2&cursor=v1_9>; rel="next", <https://api.github.com/x?page=1>; rel="first""#;
        assert_eq!(
            next_link(link),
            Some("https://api.github.com/app/hook/deliveries?per_page=2&cursor=v1_9")
        );
        assert_eq!(next_link(r#"<https://a/x?page=1>; rel="prev""#), None);
        assert_eq!(next_link(""), None);
    }

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    #[test]
    fn holds_follow_retry_after_then_the_reset_then_the_secondary_message() {
        let none = Value::Null;
        assert_eq!(
            hold_from(403, &headers(&[("retry-after", "2")]), &none),
            Some(Duration::from_secs(2))
        );
        let reset = (chrono::Utc::now().timestamp() + 30).to_string();
        let wait = hold_from(
            403,
            &headers(&[
                ("x-ratelimit-remaining", "0"),
                ("x-ratelimit-reset", &reset),
            ]),
            &none,
        )
        .unwrap();
        assert!((28..=30).contains(&wait.as_secs()), "{wait:?}");
        let secondary = serde_json::json!({"message": "You have exceeded a secondary rate limit."});
        assert_eq!(
            hold_from(403, &headers(&[]), &secondary),
            Some(SECONDARY_WAIT)
        );
        let forbidden = serde_json::json!({"message": "Resource not accessible by integration"});
        assert_eq!(hold_from(403, &headers(&[]), &forbidden), None);
        assert_eq!(hold_from(404, &headers(&[]), &none), None);
        assert_eq!(
            hold_from(429, &headers(&[("retry-after", "999999")]), &none),
            Some(MAX_HOLD)
        );
    }
}
