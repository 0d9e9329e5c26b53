//! The GitHub REST routes: matching, authentication, rate limits, ETags and
//! the handlers.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse};
use chrono::{DateTime, Utc};
use serde_json::{json, Value};

use crate::auth::{self, Identity, BOT_USER_ID, PAT_LOGIN, PAT_USER_ID};
use crate::server::SimState;
use crate::store::{
    insert_capped, ts, CheckRun, Comment, Delivery, IssuedToken, Pull, Reaction, Store, Subject,
    User,
};
use crate::DOCS_URL;

/// Longest issue comment body, in characters (GitHub's).
pub const MAX_COMMENT_CHARS: usize = 65_536;
/// Longest check run `output.summary` / `output.text`, in characters.
pub const MAX_OUTPUT_CHARS: usize = 65_535;
/// The reaction contents GitHub accepts.
pub const REACTIONS: [&str; 8] = [
    "+1", "-1", "laugh", "confused", "heart", "hooray", "rocket", "eyes",
];
const CHECK_STATUSES: [&str; 3] = ["queued", "in_progress", "completed"];
const CONCLUSIONS: [&str; 8] = [
    "action_required",
    "cancelled",
    "failure",
    "neutral",
    "success",
    "skipped",
    "stale",
    "timed_out",
];

/// A handler's answer before the ETag and rate-limit headers.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    pub body: Option<Value>,
    pub headers: Vec<(String, String)>,
}

impl Reply {
    pub fn json(status: u16, body: Value) -> Reply {
        Reply {
            status,
            body: Some(body),
            headers: Vec::new(),
        }
    }
    pub fn empty(status: u16) -> Reply {
        Reply {
            status,
            body: None,
            headers: Vec::new(),
        }
    }
    pub fn error(status: u16, message: &str) -> Reply {
        Reply::json(
            status,
            json!({"message": message, "documentation_url": DOCS_URL}),
        )
    }
    fn with_header(mut self, name: &str, value: String) -> Reply {
        self.headers.push((name.to_string(), value));
        self
    }
}

pub fn not_found() -> Reply {
    Reply::error(404, "Not Found")
}

fn validation_failed(resource: &str, field: &str, code: &str, message: &str) -> Reply {
    Reply::json(
        422,
        json!({
            "message": "Validation Failed",
            "errors": [{"resource": resource, "code": code, "field": field, "message": message}],
            "documentation_url": DOCS_URL,
        }),
    )
}

fn invalid_request(detail: &str) -> Reply {
    Reply::error(422, &format!("Invalid request.\n\n{detail}"))
}

/// Converts a reply to an HTTP response (JSON body or none).
pub fn to_http(reply: &Reply, body: Option<Vec<u8>>) -> HttpResponse {
    let status = StatusCode::from_u16(reply.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut b = HttpResponse::build(status);
    for (k, v) in &reply.headers {
        b.insert_header((k.as_str(), v.as_str()));
    }
    match body {
        Some(bytes) => b
            .content_type("application/json; charset=utf-8")
            .body(bytes),
        None => b.finish(),
    }
}

fn encode(body: &Option<Value>) -> Option<Vec<u8>> {
    body.as_ref()
        .map(|v| serde_json::to_vec(v).unwrap_or_default())
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum AuthKind {
    Jwt,
    Token,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Route {
    App,
    AppInstallation(u64),
    AccessTokens(u64),
    RepoInstallation(String),
    IssueComments(String, u64),
    Comment(String, u64),
    IssueReactions(String, u64),
    IssueReaction(String, u64, u64),
    CommentReactions(String, u64),
    CommentReaction(String, u64, u64),
    CheckRuns(String),
    CheckRun(String, u64),
    CommitCheckRuns(String, String),
    Pull(String, u64),
    Deliveries,
    Delivery(u64),
    DeliveryAttempts(u64),
    RateLimit,
}

/// `%XX` decoding of one path segment (invalid escapes are kept).
fn pct_decode(s: &str) -> String {
    let b = s.as_bytes();
    let hex = |c: u8| (c as char).to_digit(16).map(|d| d as u8);
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            if let (Some(h), Some(l)) = (hex(b[i + 1]), hex(b[i + 2])) {
                out.push(h * 16 + l);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

impl Route {
    fn parse(method: &str, path: &str) -> Option<Route> {
        let segs: Vec<String> = path.strip_prefix('/')?.split('/').map(pct_decode).collect();
        let s: Vec<&str> = segs.iter().map(String::as_str).collect();
        let num = |x: &str| x.parse::<u64>().ok().filter(|_| !x.starts_with('+'));
        let get = method == "GET";
        let post = method == "POST";
        let r = match s.as_slice() {
            ["app"] if get => Route::App,
            ["app", "installations", id] if get => Route::AppInstallation(num(id)?),
            ["app", "installations", id, "access_tokens"] if post => Route::AccessTokens(num(id)?),
            ["app", "hook", "deliveries"] if get => Route::Deliveries,
            ["app", "hook", "deliveries", id] if get => Route::Delivery(num(id)?),
            ["app", "hook", "deliveries", id, "attempts"] if post => {
                Route::DeliveryAttempts(num(id)?)
            }
            ["rate_limit"] if get => Route::RateLimit,
            ["repos", o, r, rest @ ..] if !o.is_empty() && !r.is_empty() => {
                let repo = format!("{o}/{r}");
                match rest {
                    ["installation"] if get => Route::RepoInstallation(repo),
                    ["issues", "comments", id] if matches!(method, "GET" | "PATCH" | "DELETE") => {
                        Route::Comment(repo, num(id)?)
                    }
                    ["issues", "comments", id, "reactions"] if get || post => {
                        Route::CommentReactions(repo, num(id)?)
                    }
                    ["issues", "comments", id, "reactions", rid] if method == "DELETE" => {
                        Route::CommentReaction(repo, num(id)?, num(rid)?)
                    }
                    ["issues", n, "comments"] if get || post => Route::IssueComments(repo, num(n)?),
                    ["issues", n, "reactions"] if get || post => {
                        Route::IssueReactions(repo, num(n)?)
                    }
                    ["issues", n, "reactions", rid] if method == "DELETE" => {
                        Route::IssueReaction(repo, num(n)?, num(rid)?)
                    }
                    ["check-runs"] if post => Route::CheckRuns(repo),
                    ["check-runs", id] if get || method == "PATCH" => {
                        Route::CheckRun(repo, num(id)?)
                    }
                    ["commits", refs @ .., "check-runs"] if get && !refs.is_empty() => {
                        Route::CommitCheckRuns(repo, refs.join("/"))
                    }
                    ["pulls", n] if get => Route::Pull(repo, num(n)?),
                    _ => return None,
                }
            }
            _ => return None,
        };
        Some(r)
    }

    fn auth(&self) -> AuthKind {
        match self {
            Route::App
            | Route::AppInstallation(_)
            | Route::AccessTokens(_)
            | Route::RepoInstallation(_)
            | Route::Deliveries
            | Route::Delivery(_)
            | Route::DeliveryAttempts(_) => AuthKind::Jwt,
            _ => AuthKind::Token,
        }
    }
}

fn unix(t: DateTime<Utc>) -> i64 {
    t.timestamp()
}

/// Checks the request's credentials for a route of `kind`; the error is the
/// 401's message.
fn authenticate(
    s: &SimState,
    req: &HttpRequest,
    kind: AuthKind,
    now: DateTime<Utc>,
) -> Result<Identity, String> {
    let header = req
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok());
    let token = auth::credential(header);
    match kind {
        AuthKind::Jwt => {
            let Some(token) = token.filter(|t| auth::looks_like_jwt(t)) else {
                return Err(if token.is_none() {
                    "A JSON web token could not be decoded: this route requires an App JWT (Authorization: Bearer <JWT>)".into()
                } else {
                    "A JSON web token could not be decoded: this route requires an App JWT, not a token".into()
                });
            };
            let (Some(app_id), Some(key)) = (s.config.app_id, s.key_der.as_deref()) else {
                return Err("A JSON web token could not be decoded: the simulator has no App configured (app_id and app_public_key_pem)".into());
            };
            auth::verify_jwt(token, key, app_id, unix(now))?;
            s.store
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .counts
                .jwt_requests += 1;
            Ok(Identity::App)
        }
        AuthKind::Token => {
            // Like GitHub on public repositories: reads need no credentials.
            if header.is_none() && req.method() == actix_web::http::Method::GET {
                return Ok(Identity::Anonymous);
            }
            let token = token.ok_or_else(|| "Bad credentials".to_string())?;
            if s.config.tokens.iter().any(|t| t == token) {
                return Ok(Identity::Pat {
                    token: token.to_string(),
                });
            }
            let st = s.store.lock().unwrap_or_else(|e| e.into_inner());
            match st.tokens.get(token) {
                Some(t) if t.expires_at > now => Ok(Identity::Installation {
                    id: t.installation_id,
                }),
                _ => Err("Bad credentials".into()),
            }
        }
    }
}

/// The user a request acts as.
fn user_of(s: &SimState, id: &Identity) -> User {
    match id {
        Identity::Pat { .. } => User {
            login: PAT_LOGIN.into(),
            id: PAT_USER_ID,
            kind: "User",
        },
        _ => User {
            login: s.config.bot_login.clone(),
            id: BOT_USER_ID,
            kind: "Bot",
        },
    }
}

fn rate_headers(limit: u32, b: crate::store::Bucket) -> Vec<(String, String)> {
    vec![
        ("X-RateLimit-Limit".into(), limit.to_string()),
        (
            "X-RateLimit-Remaining".into(),
            limit.saturating_sub(b.used).to_string(),
        ),
        ("X-RateLimit-Used".into(), b.used.to_string()),
        ("X-RateLimit-Reset".into(), b.reset.to_string()),
        ("X-RateLimit-Resource".into(), "core".into()),
    ]
}

/// The bucket `key` now, starting a new hour when the last one ended.
fn bucket(st: &mut Store, key: &str, now: i64) -> crate::store::Bucket {
    if !st.buckets.contains_key(key) && st.buckets.len() >= 10_000 {
        st.buckets.retain(|_, b| b.reset > now);
    }
    let b = st
        .buckets
        .entry(key.to_string())
        .or_insert(crate::store::Bucket {
            reset: now + 3600,
            used: 0,
        });
    if now >= b.reset {
        *b = crate::store::Bucket {
            reset: now + 3600,
            used: 0,
        };
    }
    *b
}

/// `"<sha256 of the body>"`.
fn etag_of(body: &[u8]) -> String {
    use sha2::Digest;
    format!("\"{}\"", hex::encode(sha2::Sha256::digest(body)))
}

fn if_none_match(req: &HttpRequest, etag: &str) -> bool {
    let Some(h) = req
        .headers()
        .get("if-none-match")
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    h.split(',').any(|t| {
        let t = t.trim();
        t == "*" || t.trim_start_matches("W/") == etag
    })
}

/// Handles a request outside `/_sim/` once faults are applied.
pub async fn handle(
    s: &SimState,
    req: &HttpRequest,
    method: &str,
    path: &str,
    body: &[u8],
) -> HttpResponse {
    let Some(route) = Route::parse(method, path) else {
        let r = not_found();
        return to_http(&r, encode(&r.body));
    };
    let now = Utc::now();
    let ident = match authenticate(s, req, route.auth(), now) {
        Ok(i) => i,
        Err(msg) => {
            let r = Reply::error(401, &msg);
            return to_http(&r, encode(&r.body));
        }
    };
    let limit = match ident {
        // GitHub's limit for unauthenticated requests.
        Identity::Anonymous => 60.min(s.config.rate_limit_per_hour),
        _ => s.config.rate_limit_per_hour,
    };
    let key = ident.bucket();
    let counted = route != Route::RateLimit;
    {
        let mut st = s.store.lock().unwrap_or_else(|e| e.into_inner());
        let b = bucket(&mut st, &key, unix(now));
        if counted && b.used >= limit {
            drop(st);
            let mut r = Reply::json(
                403,
                json!({
                    "message": ident.rate_limit_message(s.config.app_id.unwrap_or(0)),
                    "documentation_url": "https://docs.github.com/rest/overview/rate-limits-for-the-rest-api",
                }),
            );
            r.headers.extend(rate_headers(limit, b));
            return to_http(&r, encode(&r.body));
        }
    }
    let user = user_of(s, &ident);
    let query: Vec<(String, String)> =
        actix_web::web::Query::<Vec<(String, String)>>::from_query(req.query_string())
            .map(|q| q.into_inner())
            .unwrap_or_default();
    let ctx = Ctx {
        s,
        ident: &ident,
        user: &user,
        query: &query,
        method,
        path,
        now,
    };
    let mut reply = match route_body(body) {
        Err(r) => r,
        Ok(json_body) => ctx.run(&route, json_body).await,
    };
    let bytes = encode(&reply.body);
    let mut not_modified = false;
    if method == "GET" && reply.status == 200 {
        if let Some(b) = &bytes {
            let etag = etag_of(b);
            not_modified = if_none_match(req, &etag);
            reply.headers.push(("ETag".into(), etag));
        }
    }
    let b = {
        let mut st = s.store.lock().unwrap_or_else(|e| e.into_inner());
        let b = bucket(&mut st, &key, unix(now));
        if counted && !not_modified {
            if let Some(e) = st.buckets.get_mut(&key) {
                e.used += 1;
            }
        }
        st.buckets.get(&key).copied().unwrap_or(b)
    };
    reply.headers.extend(rate_headers(limit, b));
    if not_modified {
        reply.status = 304;
        return to_http(&reply, None);
    }
    to_http(&reply, bytes)
}

/// The JSON body of a POST/PATCH (empty = `{}`); 400 when not a JSON object.
fn route_body(body: &[u8]) -> Result<Value, Reply> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(json!({}));
    }
    match serde_json::from_slice::<Value>(body) {
        Ok(v @ Value::Object(_)) => Ok(v),
        _ => Err(Reply::error(400, "Problems parsing JSON")),
    }
}

/// `per_page` (default 30, at most 100) and `page` (from 1).
fn paging(query: &[(String, String)]) -> (usize, usize) {
    let get = |k: &str| {
        query
            .iter()
            .find(|(n, _)| n == k)
            .and_then(|(_, v)| v.trim().parse::<usize>().ok())
    };
    let per_page = match get("per_page") {
        Some(0) | None => 30,
        Some(n) => n.min(100),
    };
    (per_page, get("page").unwrap_or(1).max(1))
}

fn q<'a>(query: &'a [(String, String)], key: &str) -> Option<&'a str> {
    query
        .iter()
        .find(|(n, _)| n == key)
        .map(|(_, v)| v.as_str())
}

fn url_escape(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// A URL of `path` with the request's query, `per_page` and `extra` replaced.
fn page_url(
    base: &str,
    path: &str,
    query: &[(String, String)],
    per_page: usize,
    extra: (&str, String),
) -> String {
    let mut parts: Vec<String> = query
        .iter()
        .filter(|(k, _)| k != "per_page" && k != extra.0)
        .map(|(k, v)| format!("{}={}", url_escape(k), url_escape(v)))
        .collect();
    parts.push(format!("per_page={per_page}"));
    parts.push(format!("{}={}", extra.0, url_escape(&extra.1)));
    format!("{base}{path}?{}", parts.join("&"))
}

/// One page of `items` with GitHub's `Link` header (prev, next, last, first).
fn paged(ctx: &Ctx, items: Vec<Value>) -> Reply {
    let (per_page, page) = paging(ctx.query);
    let total = items.len();
    let last = total.div_ceil(per_page).max(1);
    let start = (page - 1).saturating_mul(per_page).min(total);
    let end = (start + per_page).min(total);
    let slice: Vec<Value> = items[start..end].to_vec();
    let mut reply = Reply::json(200, Value::Array(slice));
    if let Some(link) = link_header(ctx, per_page, page, last) {
        reply = reply.with_header("Link", link);
    }
    reply
}

fn link_header(ctx: &Ctx, per_page: usize, page: usize, last: usize) -> Option<String> {
    if last <= 1 && page <= 1 {
        return None;
    }
    let url = |p: usize| {
        page_url(
            &ctx.s.base_url,
            ctx.path,
            ctx.query,
            per_page,
            ("page", p.to_string()),
        )
    };
    let mut rels = Vec::new();
    if page > 1 {
        rels.push(format!("<{}>; rel=\"prev\"", url((page - 1).min(last))));
    }
    if page < last {
        rels.push(format!("<{}>; rel=\"next\"", url(page + 1)));
        rels.push(format!("<{}>; rel=\"last\"", url(last)));
    }
    if page > 1 {
        rels.push(format!("<{}>; rel=\"first\"", url(1)));
    }
    (!rels.is_empty()).then(|| rels.join(", "))
}

fn str_field<'a>(v: &'a Value, k: &str) -> Result<Option<&'a str>, Reply> {
    match v.get(k) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(other) => Err(invalid_request(&format!(
            "For 'properties/{k}', {other} is not a string."
        ))),
    }
}

fn time_field(v: &Value, k: &str) -> Result<Option<DateTime<Utc>>, Reply> {
    match str_field(v, k)? {
        None => Ok(None),
        Some(s) => DateTime::parse_from_rfc3339(s)
            .map(|t| Some(t.with_timezone(&Utc)))
            .map_err(|_| {
                invalid_request(&format!(
                    "For 'properties/{k}', \"{s}\" is not a date-time (ISO 8601 YYYY-MM-DDTHH:MM:SSZ)."
                ))
            }),
    }
}

fn app_slug(bot_login: &str) -> String {
    bot_login.trim_end_matches("[bot]").to_string()
}

fn default_permissions() -> Value {
    json!({"checks": "write", "contents": "read", "issues": "write", "metadata": "read", "pull_requests": "write"})
}

struct Ctx<'a> {
    s: &'a SimState,
    ident: &'a Identity,
    user: &'a User,
    query: &'a [(String, String)],
    method: &'a str,
    path: &'a str,
    now: DateTime<Utc>,
}

impl Ctx<'_> {
    fn store(&self) -> std::sync::MutexGuard<'_, Store> {
        self.s.store.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn base(&self) -> &str {
        &self.s.base_url
    }

    async fn run(&self, route: &Route, body: Value) -> Reply {
        match route {
            Route::App => self.app(),
            Route::AppInstallation(id) => self.app_installation(*id),
            Route::AccessTokens(id) => self.access_token(*id, &body),
            Route::RepoInstallation(repo) => self.repo_installation(repo),
            Route::IssueComments(repo, n) if self.method == "GET" => self.list_comments(repo, *n),
            Route::IssueComments(repo, n) => self.create_comment(repo, *n, &body),
            Route::Comment(repo, id) => self.comment(repo, *id, &body),
            Route::IssueReactions(repo, n) => self.reactions(repo, Subject::Issue(*n), &body),
            Route::CommentReactions(repo, id) => self.reactions(repo, Subject::Comment(*id), &body),
            Route::IssueReaction(repo, n, rid) => {
                self.delete_reaction(repo, Subject::Issue(*n), *rid)
            }
            Route::CommentReaction(repo, id, rid) => {
                self.delete_reaction(repo, Subject::Comment(*id), *rid)
            }
            Route::CheckRuns(repo) => self.create_check_run(repo, &body),
            Route::CheckRun(repo, id) => self.check_run(repo, *id, &body),
            Route::CommitCheckRuns(repo, r) => self.commit_check_runs(repo, r),
            Route::Pull(repo, n) => self.pull(repo, *n),
            Route::Deliveries => self.deliveries(),
            Route::Delivery(id) => self.delivery(*id),
            Route::DeliveryAttempts(id) => self.attempt(*id).await,
            Route::RateLimit => self.rate_limit(),
        }
    }

    // ---- the App -------------------------------------------------------

    fn app(&self) -> Reply {
        let slug = app_slug(&self.s.config.bot_login);
        let installs = {
            let st = self.store();
            let mut ids: Vec<u64> = st.installations.values().copied().collect();
            ids.extend(&self.s.config.installation_ids);
            ids.push(1);
            ids.sort_unstable();
            ids.dedup();
            ids.len()
        };
        Reply::json(
            200,
            json!({
                "id": self.s.config.app_id, "slug": slug, "node_id": format!("A_kwSim{}", self.s.config.app_id.unwrap_or(0)),
                "name": slug, "owner": {"login": "sim-owner", "id": 1, "type": "Organization"},
                "description": "A GitHub App served by github-api-sim",
                "external_url": "https://example.invalid", "html_url": format!("https://github.com/apps/{slug}"),
                "created_at": "2026-01-01T00:00:00Z", "updated_at": "2026-01-01T00:00:00Z",
                "permissions": default_permissions(),
                "events": ["check_run", "issue_comment", "issues", "pull_request", "pull_request_review_comment"],
                "installations_count": installs,
            }),
        )
    }

    fn installation_known(&self, id: u64) -> bool {
        let ids = &self.s.config.installation_ids;
        ids.is_empty() || ids.contains(&id) || self.store().installations.values().any(|v| *v == id)
    }

    fn installation_json(&self, id: u64, account: &str) -> Value {
        json!({
            "id": id, "app_id": self.s.config.app_id, "app_slug": app_slug(&self.s.config.bot_login),
            "account": {"login": account, "id": 1, "type": "Organization"},
            "target_type": "Organization", "repository_selection": "all",
            "access_tokens_url": format!("{}/app/installations/{id}/access_tokens", self.base()),
            "permissions": default_permissions(), "events": [],
            "created_at": "2026-01-01T00:00:00Z", "updated_at": "2026-01-01T00:00:00Z",
        })
    }

    fn app_installation(&self, id: u64) -> Reply {
        if !self.installation_known(id) {
            return not_found();
        }
        Reply::json(200, self.installation_json(id, "sim-owner"))
    }

    fn repo_installation(&self, repo: &str) -> Reply {
        let id = self.store().installation_of(repo);
        let owner = repo.split('/').next().unwrap_or("sim-owner");
        Reply::json(200, self.installation_json(id, owner))
    }

    fn access_token(&self, id: u64, body: &Value) -> Reply {
        if !self.installation_known(id) {
            return not_found();
        }
        let permissions = match body.get("permissions") {
            Some(p @ Value::Object(_)) => p.clone(),
            _ => default_permissions(),
        };
        let ttl = chrono::Duration::from_std(self.s.config.installation_token_ttl)
            .unwrap_or(chrono::Duration::hours(1));
        let expires_at = self.now + ttl;
        let token = format!("ghs_{}", auth::random_token(36));
        let mut st = self.store();
        st.remember_token(
            token.clone(),
            IssuedToken {
                installation_id: id,
                expires_at,
            },
            self.now,
        );
        st.counts.installation_tokens += 1;
        Reply::json(
            201,
            json!({
                "token": token, "expires_at": ts(expires_at),
                "permissions": permissions, "repository_selection": "all",
            }),
        )
    }

    fn rate_limit(&self) -> Reply {
        let limit = self.s.config.rate_limit_per_hour;
        let b = bucket(&mut self.store(), &self.ident.bucket(), unix(self.now));
        let core = json!({
            "limit": limit, "used": b.used, "remaining": limit.saturating_sub(b.used),
            "reset": b.reset, "resource": "core",
        });
        Reply::json(200, json!({"resources": {"core": core}, "rate": core}))
    }

    // ---- issue comments ------------------------------------------------

    fn comment_json(&self, c: &Comment) -> Value {
        json!({
            "id": c.id,
            "node_id": format!("IC_kwDOSim{}", c.id),
            "url": format!("{}/repos/{}/issues/comments/{}", self.base(), c.repo, c.id),
            "html_url": format!("https://github.com/{}/issues/{}#issuecomment-{}", c.repo, c.issue, c.id),
            "issue_url": format!("{}/repos/{}/issues/{}", self.base(), c.repo, c.issue),
            "body": c.body,
            "user": c.user.json(),
            "created_at": ts(c.created_at),
            "updated_at": ts(c.updated_at),
            "author_association": "NONE",
            "performed_via_github_app": null,
        })
    }

    fn list_comments(&self, repo: &str, issue: u64) -> Reply {
        let items: Vec<Value> = {
            let st = self.store();
            st.comments
                .values()
                .filter(|c| c.issue == issue && c.repo == repo)
                .map(|c| self.comment_json(c))
                .collect()
        };
        paged(self, items)
    }

    fn comment_body(body: &Value) -> Result<String, Reply> {
        match body.get("body") {
            Some(Value::String(s)) => {
                if s.chars().count() > MAX_COMMENT_CHARS {
                    Err(validation_failed(
                        "IssueComment",
                        "body",
                        "custom",
                        "body is too long (maximum is 65536 characters)",
                    ))
                } else {
                    Ok(s.clone())
                }
            }
            None | Some(Value::Null) => Err(invalid_request("\"body\" wasn't supplied.")),
            Some(other) => Err(invalid_request(&format!(
                "For 'properties/body', {other} is not a string."
            ))),
        }
    }

    fn create_comment(&self, repo: &str, issue: u64, body: &Value) -> Reply {
        let text = match Self::comment_body(body) {
            Ok(t) => t,
            Err(r) => return r,
        };
        let mut st = self.store();
        let id = st.next_id();
        let c = Comment {
            id,
            repo: repo.to_string(),
            issue,
            body: text,
            user: self.user.clone(),
            created_at: self.now,
            updated_at: self.now,
        };
        let v = self.comment_json(&c);
        let cap = st.limits.max_comments;
        insert_capped(&mut st.comments, cap, id, c);
        let location = v_url(&v);
        Reply::json(201, v).with_header("Location", location)
    }

    fn comment(&self, repo: &str, id: u64, body: &Value) -> Reply {
        let method = self.method;
        let mut st = self.store();
        let Some(c) = st.comments.get_mut(&id).filter(|c| c.repo == repo) else {
            return not_found();
        };
        match method {
            "GET" => Reply::json(200, self.comment_json(c)),
            "PATCH" => {
                let text = match Self::comment_body(body) {
                    Ok(t) => t,
                    Err(r) => return r,
                };
                c.body = text;
                c.updated_at = self.now;
                Reply::json(200, self.comment_json(c))
            }
            _ => {
                st.comments.remove(&id);
                st.reactions
                    .retain(|_, r| !(r.subject == Subject::Comment(id) && r.repo == repo));
                Reply::empty(204)
            }
        }
    }

    fn method(&self) -> &str {
        self.method
    }

    // ---- reactions -----------------------------------------------------

    fn reaction_json(r: &Reaction) -> Value {
        json!({
            "id": r.id, "node_id": format!("REA_lADOSim{}", r.id),
            "user": r.user.json(), "content": r.content, "created_at": ts(r.created_at),
        })
    }

    fn reactions(&self, repo: &str, subject: Subject, body: &Value) -> Reply {
        let mut st = self.store();
        if let Subject::Comment(id) = subject {
            if st.comments.get(&id).is_none_or(|c| c.repo != repo) {
                return not_found();
            }
        }
        if self.method() == "GET" {
            let content = q(self.query, "content");
            let items: Vec<Value> = st
                .reactions
                .values()
                .filter(|r| r.subject == subject && r.repo == repo)
                .filter(|r| content.is_none_or(|c| c == r.content))
                .map(Self::reaction_json)
                .collect();
            drop(st);
            return paged(self, items);
        }
        let content = match body.get("content") {
            Some(Value::String(c)) if REACTIONS.contains(&c.as_str()) => c.clone(),
            None | Some(Value::Null) => return invalid_request("\"content\" wasn't supplied."),
            _ => {
                return validation_failed(
                    "Reaction",
                    "content",
                    "custom",
                    "content is not included in the list",
                )
            }
        };
        if let Some(existing) = st.reactions.values().find(|r| {
            r.subject == subject
                && r.repo == repo
                && r.content == content
                && r.user.login == self.user.login
        }) {
            return Reply::json(200, Self::reaction_json(existing));
        }
        let id = st.next_id();
        let r = Reaction {
            id,
            repo: repo.to_string(),
            subject,
            content,
            user: self.user.clone(),
            created_at: self.now,
        };
        let v = Self::reaction_json(&r);
        let cap = st.limits.max_reactions;
        insert_capped(&mut st.reactions, cap, id, r);
        Reply::json(201, v)
    }

    fn delete_reaction(&self, repo: &str, subject: Subject, id: u64) -> Reply {
        let mut st = self.store();
        match st.reactions.get(&id) {
            Some(r) if r.subject == subject && r.repo == repo => {
                st.reactions.remove(&id);
                Reply::empty(204)
            }
            _ => not_found(),
        }
    }

    // ---- check runs ----------------------------------------------------

    fn check_run_json(&self, st: &Store, c: &CheckRun) -> Value {
        let html = format!("https://github.com/{}/runs/{}", c.repo, c.id);
        let prs: Vec<Value> = st
            .pulls
            .values()
            .filter(|p| p.repo == c.repo && p.head_sha == c.head_sha)
            .map(|p| {
                json!({
                    "number": p.number, "id": p.number,
                    "url": format!("{}/repos/{}/pulls/{}", self.base(), p.repo, p.number),
                    "head": {"ref": p.head_ref, "sha": p.head_sha},
                    "base": {"ref": p.base_ref},
                })
            })
            .collect();
        let mut output = c.output.clone();
        output["annotations_count"] = json!(0);
        output["annotations_url"] = json!(format!(
            "{}/repos/{}/check-runs/{}/annotations",
            self.base(),
            c.repo,
            c.id
        ));
        let slug = app_slug(&self.s.config.bot_login);
        json!({
            "id": c.id,
            "node_id": format!("CR_kwDOSim{}", c.id),
            "head_sha": c.head_sha,
            "external_id": c.external_id.clone().unwrap_or_default(),
            "url": format!("{}/repos/{}/check-runs/{}", self.base(), c.repo, c.id),
            "html_url": html,
            "details_url": c.details_url.clone().unwrap_or_else(|| html.clone()),
            "status": c.status,
            "conclusion": c.conclusion,
            "started_at": ts(c.started_at),
            "completed_at": c.completed_at.map(ts),
            "output": output,
            "name": c.name,
            "check_suite": {"id": c.id},
            "app": {"id": self.s.config.app_id, "slug": slug, "name": slug},
            "pull_requests": prs,
        })
    }

    /// Applies the fields of a create/update body to `c`.
    fn apply_check_fields(c: &mut CheckRun, body: &Value, now: DateTime<Utc>) -> Result<(), Reply> {
        if let Some(name) = str_field(body, "name")? {
            if name.trim().is_empty() {
                return Err(invalid_request("\"name\" can't be blank."));
            }
            c.name = name.to_string();
        }
        if let Some(d) = str_field(body, "details_url")? {
            c.details_url = Some(d.to_string());
        }
        if let Some(e) = str_field(body, "external_id")? {
            c.external_id = Some(e.to_string());
        }
        if let Some(t) = time_field(body, "started_at")? {
            c.started_at = t;
        }
        let completed_at = time_field(body, "completed_at")?;
        if let Some(status) = str_field(body, "status")? {
            if !CHECK_STATUSES.contains(&status) {
                return Err(invalid_request(&format!(
                    "For 'properties/status', \"{status}\" is not one of [\"queued\", \"in_progress\", \"completed\"]."
                )));
            }
            c.status = status.to_string();
        }
        if let Some(conclusion) = str_field(body, "conclusion")? {
            if !CONCLUSIONS.contains(&conclusion) {
                return Err(invalid_request(&format!(
                    "For 'properties/conclusion', \"{conclusion}\" is not one of {CONCLUSIONS:?}."
                )));
            }
            // GitHub: a conclusion sets the status to completed.
            c.conclusion = Some(conclusion.to_string());
            c.status = "completed".into();
        }
        if c.status == "completed" {
            if c.conclusion.is_none() {
                return Err(invalid_request(
                    "\"conclusion\" wasn't supplied. (It is required when \"status\" is \"completed\".)",
                ));
            }
            c.completed_at = Some(completed_at.or(c.completed_at).unwrap_or(now));
        } else {
            c.conclusion = None;
            c.completed_at = None;
        }
        match body.get("output") {
            None | Some(Value::Null) => {}
            Some(o @ Value::Object(_)) => {
                let title = str_field(o, "title")?;
                let summary = str_field(o, "summary")?;
                let text = str_field(o, "text")?;
                let (Some(title), Some(summary)) = (title, summary) else {
                    return Err(invalid_request(
                        "\"title\" and \"summary\" weren't supplied in \"output\".",
                    ));
                };
                for (field, v) in [("summary", Some(summary)), ("text", text)] {
                    if v.is_some_and(|v| v.chars().count() > MAX_OUTPUT_CHARS) {
                        return Err(validation_failed(
                            "CheckRun",
                            &format!("output.{field}"),
                            "custom",
                            &format!("Only {MAX_OUTPUT_CHARS} characters are allowed; {field} is too long."),
                        ));
                    }
                }
                c.output = json!({"title": title, "summary": summary, "text": text});
            }
            Some(other) => {
                return Err(invalid_request(&format!(
                    "For 'properties/output', {other} is not an object."
                )))
            }
        }
        Ok(())
    }

    fn need_app(&self) -> Result<u64, Reply> {
        match self.ident {
            Identity::Installation { id } => Ok(*id),
            _ => Err(Reply::error(403, "You must authenticate via a GitHub App.")),
        }
    }

    fn create_check_run(&self, repo: &str, body: &Value) -> Reply {
        let installation_id = match self.need_app() {
            Ok(i) => i,
            Err(r) => return r,
        };
        let name = match str_field(body, "name") {
            Ok(Some(n)) => n.to_string(),
            Ok(None) => return invalid_request("\"name\" wasn't supplied."),
            Err(r) => return r,
        };
        let head_sha = match str_field(body, "head_sha") {
            Ok(Some(h)) if !h.trim().is_empty() => h.to_string(),
            Ok(_) => return invalid_request("\"head_sha\" wasn't supplied."),
            Err(r) => return r,
        };
        let mut c = CheckRun {
            id: 0,
            repo: repo.to_string(),
            name,
            head_sha,
            status: "queued".into(),
            conclusion: None,
            started_at: self.now,
            completed_at: None,
            output: json!({"title": null, "summary": null, "text": null}),
            details_url: None,
            external_id: None,
            installation_id,
        };
        if let Err(r) = Self::apply_check_fields(&mut c, body, self.now) {
            return r;
        }
        let mut st = self.store();
        c.id = st.next_id();
        let v = self.check_run_json(&st, &c);
        let cap = st.limits.max_check_runs;
        let id = c.id;
        insert_capped(&mut st.check_runs, cap, id, c);
        Reply::json(201, v)
    }

    fn check_run(&self, repo: &str, id: u64, body: &Value) -> Reply {
        let patch = self.method() == "PATCH";
        if patch {
            if let Err(r) = self.need_app() {
                return r;
            }
        }
        let mut st = self.store();
        let Some(existing) = st.check_runs.get(&id).filter(|c| c.repo == repo) else {
            return not_found();
        };
        if !patch {
            return Reply::json(200, self.check_run_json(&st, existing));
        }
        let mut c = existing.clone();
        // head_sha is not updatable on GitHub; it is ignored, as there.
        if let Err(r) = Self::apply_check_fields(&mut c, body, self.now) {
            return r;
        }
        let v = self.check_run_json(&st, &c);
        st.check_runs.insert(id, c);
        Reply::json(200, v)
    }

    fn commit_check_runs(&self, repo: &str, r: &str) -> Reply {
        let st = self.store();
        let sha = st
            .pulls
            .values()
            .find(|p| p.repo == repo && (p.head_ref == r || format!("heads/{}", p.head_ref) == r))
            .map(|p| p.head_sha.clone())
            .unwrap_or_else(|| r.to_string());
        let name = q(self.query, "check_name");
        let status = q(self.query, "status");
        let all = q(self.query, "filter") == Some("all");
        let mut runs: Vec<&CheckRun> = st
            .check_runs
            .values()
            .rev()
            .filter(|c| c.repo == repo && c.head_sha == sha)
            .filter(|c| name.is_none_or(|n| n == c.name))
            .filter(|c| status.is_none_or(|s| s == c.status))
            .collect();
        if !all {
            let mut seen = std::collections::HashSet::new();
            runs.retain(|c| seen.insert(c.name.clone()));
        }
        let total = runs.len();
        let (per_page, page) = paging(self.query);
        let last = total.div_ceil(per_page).max(1);
        let start = (page - 1).saturating_mul(per_page).min(total);
        let end = (start + per_page).min(total);
        let items: Vec<Value> = runs[start..end]
            .iter()
            .map(|c| self.check_run_json(&st, c))
            .collect();
        drop(st);
        let mut reply = Reply::json(200, json!({"total_count": total, "check_runs": items}));
        if let Some(link) = link_header(self, per_page, page, last) {
            reply = reply.with_header("Link", link);
        }
        reply
    }

    // ---- pull requests -------------------------------------------------

    fn pull(&self, repo: &str, n: u64) -> Reply {
        let st = self.store();
        let Some(p) = st.pulls.get(&(repo.to_string(), n)) else {
            return not_found();
        };
        Reply::json(200, pull_json(self.base(), p))
    }

    // ---- hook deliveries -------------------------------------------------

    fn deliveries(&self) -> Reply {
        let (per_page, _) = paging(self.query);
        let cursor = match q(self.query, "cursor") {
            None | Some("") => u64::MAX,
            Some(c) => match c.parse::<u64>() {
                Ok(c) => c,
                Err(_) => return invalid_request("\"cursor\" is not a valid cursor."),
            },
        };
        let st = self.store();
        let mut it = st.deliveries.range(..=cursor).rev();
        let items: Vec<Value> = it
            .by_ref()
            .take(per_page)
            .map(|(_, d)| d.summary())
            .collect();
        let next = it.next().map(|(id, _)| *id);
        drop(st);
        let mut reply = Reply::json(200, Value::Array(items));
        if let Some(next) = next {
            let url = page_url(
                self.base(),
                self.path,
                &[],
                per_page,
                ("cursor", next.to_string()),
            );
            reply = reply.with_header("Link", format!("<{url}>; rel=\"next\""));
        }
        reply
    }

    fn delivery(&self, id: u64) -> Reply {
        let st = self.store();
        match st.deliveries.get(&id) {
            Some(d) => Reply::json(200, d.detail(self.base())),
            None => not_found(),
        }
    }

    async fn attempt(&self, id: u64) -> Reply {
        let (orig, target) = {
            let st = self.store();
            (st.deliveries.get(&id).cloned(), st.target.clone())
        };
        let Some(orig) = orig else {
            return not_found();
        };
        let body = serde_json::to_vec(&orig.payload).unwrap_or_default();
        let mut headers = delivery_headers(&orig.guid, &orig.event, self.s.config.app_id);
        if let Some((_, secret)) = target.as_ref().filter(|(_, s)| !s.is_empty()) {
            headers.insert("X-Hub-Signature-256".into(), signature(secret, &body));
        }
        let started = Instant::now();
        let (status_code, error, response_headers, response_body) = match &target {
            None => (200, None, BTreeMap::new(), String::new()),
            Some((url, _)) => post_delivery(&self.s.http, url, &headers, body).await,
        };
        let duration = (started.elapsed().as_secs_f64() * 1000.0).round() / 1000.0;
        let mut st = self.store();
        let new_id = st.next_id();
        let d = Delivery {
            id: new_id,
            guid: orig.guid.clone(),
            delivered_at: Utc::now(),
            redelivery: true,
            duration,
            status_code,
            error,
            event: orig.event.clone(),
            action: orig.action.clone(),
            installation_id: orig.installation_id,
            repository_id: orig.repository_id,
            payload: orig.payload.clone(),
            request_headers: headers,
            response_headers,
            response_body,
        };
        let cap = st.limits.max_deliveries;
        insert_capped(&mut st.deliveries, cap, new_id, d);
        Reply::json(202, json!({}))
    }
}

fn v_url(v: &Value) -> String {
    v["url"].as_str().unwrap_or_default().to_string()
}

pub fn pull_json(base: &str, p: &Pull) -> Value {
    let owner = p.repo.split('/').next().unwrap_or_default();
    let repo =
        json!({"full_name": p.repo, "name": p.repo.split('/').nth(1), "owner": {"login": owner}});
    json!({
        "url": format!("{base}/repos/{}/pulls/{}", p.repo, p.number),
        "id": p.number, "node_id": format!("PR_kwDOSim{}", p.number),
        "html_url": format!("https://github.com/{}/pull/{}", p.repo, p.number),
        "number": p.number, "state": p.state, "title": p.title, "locked": false,
        "user": {"login": owner, "type": "User"}, "draft": false, "merged": p.state == "merged",
        "head": {"label": format!("{owner}:{}", p.head_ref), "ref": p.head_ref, "sha": p.head_sha, "repo": repo},
        "base": {"label": format!("{owner}:{}", p.base_ref), "ref": p.base_ref, "repo": repo},
    })
}

/// The headers GitHub sends with a webhook delivery (without the signature).
pub fn delivery_headers(guid: &str, event: &str, app_id: Option<u64>) -> BTreeMap<String, String> {
    let mut h = BTreeMap::new();
    h.insert("Accept".into(), "*/*".into());
    h.insert("Content-Type".into(), "application/json".into());
    h.insert("User-Agent".into(), "GitHub-Hookshot/github-api-sim".into());
    h.insert("X-GitHub-Delivery".into(), guid.to_string());
    h.insert("X-GitHub-Event".into(), event.to_string());
    h.insert("X-GitHub-Hook-ID".into(), "1".into());
    h.insert(
        "X-GitHub-Hook-Installation-Target-ID".into(),
        app_id.unwrap_or(0).to_string(),
    );
    h.insert(
        "X-GitHub-Hook-Installation-Target-Type".into(),
        "integration".into(),
    );
    h
}

/// `sha256=<hex HMAC-SHA256 of body with secret>`.
pub fn signature(secret: &str, body: &[u8]) -> String {
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, secret.as_bytes());
    format!(
        "sha256={}",
        hex::encode(ring::hmac::sign(&key, body).as_ref())
    )
}

const MAX_RESPONSE_KEPT: usize = 64 * 1024;

async fn post_delivery(
    http: &reqwest::Client,
    url: &str,
    headers: &BTreeMap<String, String>,
    body: Vec<u8>,
) -> (u16, Option<String>, BTreeMap<String, String>, String) {
    let mut req = http.post(url).timeout(Duration::from_secs(10)).body(body);
    for (k, v) in headers {
        req = req.header(k.as_str(), v.as_str());
    }
    match req.send().await {
        Ok(resp) => {
            let status = resp.status().as_u16();
            let rh: BTreeMap<String, String> = resp
                .headers()
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or("").to_string()))
                .collect();
            let mut text = resp.text().await.unwrap_or_default();
            if text.len() > MAX_RESPONSE_KEPT {
                let mut cut = MAX_RESPONSE_KEPT;
                while !text.is_char_boundary(cut) {
                    cut -= 1;
                }
                text.truncate(cut);
            }
            (status, None, rh, text)
        }
        Err(e) => {
            let what = if e.is_timeout() {
                "timed out".to_string()
            } else {
                "failed to connect to host".to_string()
            };
            (0, Some(what), BTreeMap::new(), String::new())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_parse_like_github() {
        assert_eq!(
            Route::parse("GET", "/repos/o/r/issues/7/comments"),
            Some(Route::IssueComments("o/r".into(), 7))
        );
        assert_eq!(
            Route::parse("PATCH", "/repos/o/r/issues/comments/9"),
            Some(Route::Comment("o/r".into(), 9))
        );
        assert_eq!(
            Route::parse("GET", "/repos/o/r/commits/feature%2Fx/check-runs"),
            Some(Route::CommitCheckRuns("o/r".into(), "feature/x".into()))
        );
        assert_eq!(Route::parse("PUT", "/repos/o/r/issues/7/comments"), None);
        assert_eq!(Route::parse("GET", "/repos/o/r/issues/x/comments"), None);
        assert_eq!(Route::parse("GET", "/nope"), None);
    }

    #[test]
    fn percent_decoding_keeps_bad_escapes() {
        assert_eq!(pct_decode("a%2Fb"), "a/b");
        assert_eq!(pct_decode("a%zz"), "a%zz");
        assert_eq!(pct_decode("a%2"), "a%2");
    }

    #[test]
    fn signatures_are_github_hmac_sha256() {
        // The example of GitHub's "Validating webhook deliveries" page.
        assert_eq!(
            signature("It's a Secret to Everybody", b"Hello, World!"),
            "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"
        );
    }
}
