//! The web dashboard under `/ui/`: "what happened to my event?" answered
//! from this replica's events log, the watch store and the Jobs facade —
//! server-rendered HTML ([`pages`], minijinja with auto-escaping; the
//! templates, stylesheet and script are embedded, [`assets`]), no CDN and
//! no inline script.
//!
//! Access: a login form (`POST /ui/login`) takes any `API_TOKENS` token
//! once and sets a signed session cookie ([`session`]: HttpOnly,
//! SameSite=Strict, Secure over TLS or when `PUBLIC_URL` is https, 12 h),
//! which carries the token's kind and a hash of it, never the token; a
//! session ends when its token leaves `API_TOKENS`. `DASHBOARD_PUBLIC=true`
//! lets anyone read the pages without one. Cancelling or retrying a Job needs a `cli`
//! session and the session's CSRF token. A `pm-agent` session sees only
//! `pm-agent` Jobs and deliveries, like its token on the API. A client
//! address gets [`LOGINS_PER_MINUTE`] login attempts a minute.
//!
//! Every `/ui` response carries a strict Content-Security-Policy,
//! `X-Content-Type-Options: nosniff` and `Referrer-Policy: no-referrer`
//! ([`SECURITY_HEADERS`]); pages are `Cache-Control: no-store`, the
//! content-hashed assets are cached for a year.
//!
//! Following a Job's log is bounded: one follow per session (a second is
//! refused 429), [`MAX_FOLLOWS`] in all (503), each ending with the pod's
//! log or after [`FOLLOW_MAX`]; started and refused follows are counted
//! (the system page shows them).

pub mod assets;
pub mod pages;
pub mod session;

use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use actix_web::http::header;
use actix_web::middleware::DefaultHeaders;
use actix_web::{web, HttpRequest, HttpResponse};
use chrono::Utc;
use futures::StreamExt;
use serde::Deserialize;

use self::pages::Frame;
use self::session::{Keys, Session};
use super::auth::{ApiCaller, TokenKind};
use super::jobs::{locate, JobRef};
use super::AppState;
use crate::cluster::jobs::JobsError;
use crate::config::Config;
use crate::events::NewEvent;
use crate::job::JobState;

/// The headers of every `/ui` response.
pub const SECURITY_HEADERS: [(&str, &str); 3] = [
    (
        "Content-Security-Policy",
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
         frame-ancestors 'none'; base-uri 'none'; form-action 'self'",
    ),
    ("X-Content-Type-Options", "nosniff"),
    ("Referrer-Policy", "no-referrer"),
];

/// Log follows open at once, over all sessions.
pub const MAX_FOLLOWS: usize = 32;
/// Longest one follow lasts.
pub const FOLLOW_MAX: Duration = Duration::from_secs(3600);
/// Lines of the log the Job page (and a follow's start) shows.
pub const TAIL_LINES: i64 = 100;
/// Most bytes of log tail on the Job page.
pub const TAIL_BYTES: usize = 64 * 1024;

/// The dashboard's state: the session key, the configured tokens' hashes
/// and the follows in progress.
#[derive(Debug)]
pub struct Dashboard {
    pub keys: Keys,
    /// `(kind, token hash)` of each configured token: a session whose pair
    /// is not here any more is refused.
    tokens: Vec<(TokenKind, String)>,
    follows: Mutex<HashSet<String>>,
    pub follows_started: AtomicU64,
    pub follows_refused: AtomicU64,
    /// Login attempts per client address ([`LOGINS_PER_MINUTE`]).
    logins: LoginLimits,
    /// Login attempts refused by that limit.
    pub logins_refused: AtomicU64,
}

/// Login attempts one client address may make per minute (in a burst or
/// spread): plenty for a person, few for a guesser. Counted whether the
/// token was right or not, before it is checked.
pub const LOGINS_PER_MINUTE: u32 = 10;

/// Addresses tracked before the idle ones are forgotten.
const LOGIN_ADDRESSES_KEPT: usize = 10_000;

/// The login limit, keyed by client address.
struct LoginLimits {
    limiter: governor::DefaultKeyedRateLimiter<std::net::IpAddr>,
}

impl std::fmt::Debug for LoginLimits {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoginLimits")
            .field("addresses", &self.limiter.len())
            .finish()
    }
}

impl LoginLimits {
    fn new() -> Self {
        let per = std::num::NonZeroU32::new(LOGINS_PER_MINUTE).unwrap_or(std::num::NonZeroU32::MIN);
        LoginLimits {
            limiter: governor::RateLimiter::keyed(governor::Quota::per_minute(per)),
        }
    }

    /// Takes one attempt from `addr`'s allowance; how long to wait if none
    /// is left.
    fn check(&self, addr: std::net::IpAddr) -> Result<(), Duration> {
        if self.limiter.len() > LOGIN_ADDRESSES_KEPT {
            self.limiter.retain_recent();
        }
        self.limiter.check_key(&addr).map_err(|not_until| {
            use governor::clock::Clock;
            not_until
                .wait_time_from(governor::clock::DefaultClock::default().now())
                .max(Duration::from_secs(1))
        })
    }
}

impl Dashboard {
    pub fn new(config: &Config) -> Dashboard {
        let keys = match &config.dashboard.session_secret {
            Some(s) => Keys::from_secret(s),
            None => Keys::random(),
        };
        let tokens = config
            .api_tokens
            .iter()
            .filter_map(|t| {
                let text = std::str::from_utf8(t.token.expose()).ok()?;
                Some((t.kind, session::token_hash(text)))
            })
            .collect();
        Dashboard {
            keys,
            tokens,
            follows: Mutex::new(HashSet::new()),
            follows_started: AtomicU64::new(0),
            follows_refused: AtomicU64::new(0),
            logins: LoginLimits::new(),
            logins_refused: AtomicU64::new(0),
        }
    }

    fn still_valid(&self, s: &Session) -> bool {
        self.tokens
            .iter()
            .any(|(k, h)| *k == s.kind && *h == s.token_hash)
    }
}

/// Registers `/` (a redirect) and everything under `/ui`.
pub fn routes(cfg: &mut web::ServiceConfig) {
    let mut headers = DefaultHeaders::new();
    for h in SECURITY_HEADERS {
        headers = headers.add(h);
    }
    cfg.service(
        web::resource("/")
            .route(web::get().to(to_ui))
            .route(web::head().to(to_ui)),
    )
    .service(
        web::scope("/ui")
            .wrap(headers)
            .service(web::resource("").route(web::get().to(to_ui)))
            .service(web::resource("/").route(web::get().to(deliveries)))
            .service(
                web::resource("/login")
                    .route(web::get().to(login_form))
                    .route(web::post().to(login)),
            )
            .service(web::resource("/logout").route(web::post().to(logout)))
            .service(web::resource("/jobs").route(web::get().to(jobs)))
            .service(web::resource("/jobs/{name}").route(web::get().to(job)))
            .service(web::resource("/jobs/{name}/cancel").route(web::post().to(cancel)))
            .service(web::resource("/jobs/{name}/retry").route(web::post().to(retry)))
            .service(web::resource("/jobs/{name}/log/stream").route(web::get().to(log_stream)))
            .service(web::resource("/system").route(web::get().to(system)))
            .service(web::resource("/static/{file}").route(web::get().to(asset)))
            .default_service(web::to(not_found)),
    );
}

async fn to_ui() -> HttpResponse {
    HttpResponse::Found()
        .insert_header((header::LOCATION, "/ui/"))
        .finish()
}

fn html(status: actix_web::http::StatusCode, body: String) -> HttpResponse {
    HttpResponse::build(status)
        .content_type("text/html; charset=utf-8")
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .body(body)
}

fn page(body: String) -> HttpResponse {
    html(actix_web::http::StatusCode::OK, body)
}

fn see_other(to: &str) -> HttpResponse {
    HttpResponse::SeeOther()
        .insert_header((header::LOCATION, to))
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .finish()
}

async fn not_found(state: web::Data<AppState>, req: HttpRequest) -> HttpResponse {
    let frame = match viewer(&req, &state) {
        Ok(v) => v.frame(&state),
        Err(_) => Frame::default(),
    };
    html(
        actix_web::http::StatusCode::NOT_FOUND,
        pages::message(&frame, "Not found", "There is no such page."),
    )
}

/// Who is asking: a session, or nobody on a public dashboard.
struct Viewer {
    session: Option<Session>,
}

impl Viewer {
    /// The API caller the session stands for (scope of what it sees).
    fn caller(&self) -> ApiCaller {
        match &self.session {
            Some(s) => ApiCaller {
                kind: s.kind,
                identity: format!(
                    "{}-token:{}",
                    s.kind.as_str(),
                    s.token_hash.get(..8).unwrap_or(&s.token_hash)
                ),
            },
            None => ApiCaller {
                kind: TokenKind::Viewer,
                identity: "dashboard-public".into(),
            },
        }
    }

    fn frame(&self, state: &AppState) -> Frame {
        match &self.session {
            Some(s) => Frame {
                who: Some(s.kind.as_str()),
                csrf: Some(state.dashboard.keys.csrf(s)),
            },
            None => Frame::default(),
        }
    }
}

fn cookie<'a>(req: &'a HttpRequest, name: &str) -> Option<&'a str> {
    req.headers()
        .get_all(header::COOKIE)
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.trim())
}

fn now_unix() -> i64 {
    Utc::now().timestamp()
}

/// Where to go back to after logging in: this request's path and query.
fn here(req: &HttpRequest) -> String {
    match req.uri().query() {
        Some(q) => format!("{}?{q}", req.path()),
        None => req.path().to_string(),
    }
}

/// The viewer of a page request; without a valid session (and not
/// public), the redirect to the login form.
fn viewer(req: &HttpRequest, state: &AppState) -> Result<Viewer, ToLogin> {
    let found = cookie(req, session::COOKIE)
        .map(|c| state.dashboard.keys.open(c, now_unix()))
        .map(|r| r.ok().filter(|s| state.dashboard.still_valid(s)));
    match found {
        Some(Some(s)) => return Ok(Viewer { session: Some(s) }),
        Some(None) => {
            tracing::info!("dashboard session cookie refused (forged, expired or revoked)")
        }
        None => {}
    }
    if state.config.dashboard.public {
        return Ok(Viewer { session: None });
    }
    Err(ToLogin(format!(
        "/ui/login?next={}",
        url_encode(&here(req))
    )))
}

/// The way to the login form, back to the page asked for afterwards.
struct ToLogin(String);

impl ToLogin {
    fn response(&self) -> HttpResponse {
        see_other(&self.0)
    }
}

fn url_encode(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

/// Only a path of this dashboard (no scheme, host or `//`) is followed
/// after login.
fn safe_next(next: Option<&str>) -> &str {
    match next {
        Some(n)
            if n.starts_with("/ui/")
                && !n.contains("//")
                && !n.contains('\\')
                && !n.chars().any(char::is_control) =>
        {
            n
        }
        _ => "/ui/",
    }
}

#[derive(Deserialize)]
struct NextQuery {
    next: Option<String>,
}

async fn login_form(q: web::Query<NextQuery>) -> HttpResponse {
    page(pages::login(None, safe_next(q.next.as_deref())))
}

#[derive(Deserialize)]
struct LoginForm {
    token: String,
    next: Option<String>,
}

/// Whether the session cookie must be `Secure`: the request came over TLS
/// (or a trusted proxy says so), or `PUBLIC_URL` is https.
fn secure(req: &HttpRequest, config: &Config) -> bool {
    req.connection_info().scheme() == "https"
        || config
            .github_api
            .public_url
            .as_ref()
            .is_some_and(|u| u.scheme() == "https")
}

fn set_cookie(value: &str, max_age: i64, secure: bool) -> String {
    format!(
        "{}={value}; Path=/ui; HttpOnly; SameSite=Strict; Max-Age={max_age}{}",
        session::COOKIE,
        if secure { "; Secure" } else { "" }
    )
}

async fn login(
    req: HttpRequest,
    form: web::Form<LoginForm>,
    state: web::Data<AppState>,
) -> HttpResponse {
    let next = safe_next(form.next.as_deref());
    let addr = super::client_addr(
        req.peer_addr(),
        req.headers(),
        &state.config.trusted_proxies,
    );
    if let Err(wait) = state.dashboard.logins.check(addr) {
        state
            .dashboard
            .logins_refused
            .fetch_add(1, Ordering::Relaxed);
        tracing::info!(client = %addr, "dashboard login refused: too many attempts");
        let mut r = html(
            actix_web::http::StatusCode::TOO_MANY_REQUESTS,
            pages::login(
                Some(&format!(
                    "Too many login attempts from your address; try again in {} s.",
                    wait.as_secs()
                )),
                next,
            ),
        );
        if let Ok(v) = header::HeaderValue::from_str(&wait.as_secs().to_string()) {
            r.headers_mut().insert(header::RETRY_AFTER, v);
        }
        return r;
    }
    let token = form.token.trim();
    let Some(kind) = super::auth::token_kind(&state.config.api_tokens, token) else {
        tracing::info!("dashboard login refused: unknown token");
        return html(
            actix_web::http::StatusCode::UNAUTHORIZED,
            pages::login(Some("That token is not one of API_TOKENS."), next),
        );
    };
    let keys = &state.dashboard.keys;
    let s = keys.start(kind, token, now_unix());
    tracing::info!(kind = kind.as_str(), "dashboard login");
    let mut res = see_other(next);
    if let Ok(v) = header::HeaderValue::from_str(&set_cookie(
        &keys.seal(&s),
        session::SESSION_SECONDS,
        secure(&req, &state.config),
    )) {
        res.headers_mut().insert(header::SET_COOKIE, v);
    }
    res
}

#[derive(Deserialize)]
struct CsrfForm {
    csrf: Option<String>,
}

async fn logout(req: HttpRequest, state: web::Data<AppState>) -> HttpResponse {
    let mut res = see_other("/ui/login");
    if let Ok(v) = header::HeaderValue::from_str(&set_cookie("", 0, secure(&req, &state.config))) {
        res.headers_mut().insert(header::SET_COOKIE, v);
    }
    res
}

async fn deliveries(
    req: HttpRequest,
    q: web::Query<pages::DeliveryFilter>,
    state: web::Data<AppState>,
) -> HttpResponse {
    let v = match viewer(&req, &state) {
        Ok(v) => v,
        Err(r) => return r.response(),
    };
    let caller = v.caller();
    page(pages::deliveries(
        &state.events,
        &q,
        caller.only_source(),
        &v.frame(&state),
        Utc::now(),
    ))
}

async fn jobs(
    req: HttpRequest,
    q: web::Query<pages::JobsFilter>,
    state: web::Data<AppState>,
) -> HttpResponse {
    let v = match viewer(&req, &state) {
        Ok(v) => v,
        Err(r) => return r.response(),
    };
    let caller = v.caller();
    page(pages::jobs(
        state.jobs.store(),
        &q,
        caller.only_source(),
        &v.frame(&state),
        Utc::now(),
    ))
}

#[derive(Deserialize)]
struct JobQuery {
    cancelled: Option<String>,
    /// Set on the new Job's page after a retry: the Job it retried.
    retry_of: Option<String>,
}

fn valid_name(name: &str) -> bool {
    crate::config::parse::is_dns1123_subdomain(name)
}

fn no_such_job(frame: &Frame, name: &str) -> HttpResponse {
    html(
        actix_web::http::StatusCode::NOT_FOUND,
        pages::message(
            frame,
            "No such Job",
            &format!(
                "This replica knows no Job named {name:?} (or it is outside your token's scope)."
            ),
        ),
    )
}

async fn job(
    req: HttpRequest,
    path: web::Path<String>,
    q: web::Query<JobQuery>,
    state: web::Data<AppState>,
) -> HttpResponse {
    let v = match viewer(&req, &state) {
        Ok(v) => v,
        Err(r) => return r.response(),
    };
    let frame = v.frame(&state);
    let name = path.into_inner();
    if !valid_name(&name) {
        return no_such_job(&frame, &name);
    }
    let caller = v.caller();
    let Some(known) = locate(&state, &caller, JobRef::Name(&name)) else {
        return no_such_job(&frame, &name);
    };
    let Some(record) = known.stored else {
        return page(pages::message(
            &frame,
            "Job just created",
            "This Job was created a moment ago and the watch has not delivered it yet; reload in a second.",
        ));
    };
    let deadline = Instant::now() + Duration::from_secs(3);
    let fetch = state.jobs.fetch(name.clone(), deadline);
    let log = async {
        if record.state == JobState::Queued {
            return Err("The Job is queued: it has no pod, so no log, yet.".to_string());
        }
        state
            .jobs
            .log_tail(name.clone(), TAIL_LINES, TAIL_BYTES, deadline)
            .await
            .map_err(|e| match e {
                JobsError::NotFound => "The Job has no pod (any more), so no log.".to_string(),
                other => format!("The log could not be read: {other}"),
            })
    };
    let (fetched, log) = futures::join!(fetch, log);
    let prompt = fetched
        .ok()
        .flatten()
        .and_then(|view| view.task)
        .and_then(|t| t.get("prompt").and_then(|p| p.as_str()).map(str::to_string));
    let may_act = v.session.as_ref().is_some_and(|s| s.kind == TokenKind::Cli);
    // The retry a finished Job's form asks for: numbered now, so the form
    // sent twice makes one Job.
    let next_retry = (may_act && !record.state.is_live())
        .then(|| record.dedup_key.as_deref())
        .flatten()
        .map(|key| {
            super::commands::next_retry(key, |k| {
                state.jobs.stored_by_dedup_key(k).is_some()
                    || state.record.contains(k, Utc::now().timestamp())
            })
        });
    let notice = match (&q.cancelled, &q.retry_of) {
        (Some(_), _) => Some("Cancel requested; the state below is the Job's now.".to_string()),
        (None, Some(of)) if valid_name(of) => Some(format!("This Job is the retry of {of}.")),
        _ => None,
    };
    let extras = pages::JobExtras {
        prompt,
        log,
        github_host: state.config.github_host.clone(),
        may_cancel: may_act,
        next_retry,
        notice,
    };
    page(pages::job(&record, &extras, &frame, Utc::now()))
}

/// Refuses an action (cancel, retry) unless the session is a `cli` one and
/// the form carries its CSRF token.
fn may_act(v: &Viewer, state: &AppState, csrf: Option<&str>, what: &str) -> Option<HttpResponse> {
    let forbidden = |text: &str| {
        html(
            actix_web::http::StatusCode::FORBIDDEN,
            pages::message(&v.frame(state), "Refused", text),
        )
    };
    let Some(s) = v.session.as_ref().filter(|s| s.kind == TokenKind::Cli) else {
        return Some(forbidden(&format!(
            "{what} a Job needs a session of a cli token."
        )));
    };
    if !csrf.is_some_and(|c| state.dashboard.keys.csrf_ok(s, c)) {
        tracing::info!("dashboard {what} refused: missing or wrong CSRF token");
        return Some(forbidden(
            "The form's CSRF token is missing or wrong; reload the Job's page and try again.",
        ));
    }
    None
}

async fn cancel(
    req: HttpRequest,
    path: web::Path<String>,
    form: web::Form<CsrfForm>,
    state: web::Data<AppState>,
) -> HttpResponse {
    let v = match viewer(&req, &state) {
        Ok(v) => v,
        Err(r) => return r.response(),
    };
    let frame = v.frame(&state);
    if let Some(refused) = may_act(&v, &state, form.csrf.as_deref(), "Cancelling") {
        return refused;
    }
    let name = path.into_inner();
    let caller = v.caller();
    if !valid_name(&name) || locate(&state, &caller, JobRef::Name(&name)).is_none() {
        return no_such_job(&frame, &name);
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    let by = crate::cluster::audit::CancelledBy::Api {
        identity: format!("{} (dashboard)", caller.identity),
    };
    match state
        .jobs
        .cancel(name.clone(), false, deadline, true, by)
        .await
    {
        Ok(Some(view)) => {
            if view.state == JobState::Cancelled {
                tracing::info!(job = %name, by = %caller.identity, "job cancelled from the dashboard");
                state.events.record(NewEvent {
                    source: caller.label(),
                    event: "cancel",
                    decision: "cancelled",
                    job: Some(&name),
                    reason: Some("from the dashboard"),
                    ..Default::default()
                });
            }
            see_other(&format!("/ui/jobs/{name}?cancelled=1"))
        }
        Ok(None) => no_such_job(&frame, &name),
        Err(e) => html(
            actix_web::http::StatusCode::SERVICE_UNAVAILABLE,
            pages::message(
                &frame,
                "Not cancelled",
                &format!("Kubernetes did not take the cancel: {e}. Try again."),
            ),
        ),
    }
}

#[derive(Deserialize)]
struct RetryForm {
    csrf: Option<String>,
    /// The retry number the Job's page offered.
    retry: Option<String>,
}

/// A new run of an ended (finished or cancelled) Job's task, numbered by the form: the form sent
/// twice (a double click, a reload) finds its first Job.
async fn retry(
    req: HttpRequest,
    path: web::Path<String>,
    form: web::Form<RetryForm>,
    state: web::Data<AppState>,
    span: tracing_actix_web::RootSpan,
) -> HttpResponse {
    let v = match viewer(&req, &state) {
        Ok(v) => v,
        Err(r) => return r.response(),
    };
    let frame = v.frame(&state);
    if let Some(refused) = may_act(&v, &state, form.csrf.as_deref(), "Retrying") {
        return refused;
    }
    let name = path.into_inner();
    let caller = v.caller();
    if !valid_name(&name) {
        return no_such_job(&frame, &name);
    }
    let Some(known) = locate(&state, &caller, JobRef::Name(&name)) else {
        return no_such_job(&frame, &name);
    };
    let not_retried =
        |status, text: &str| html(status, pages::message(&frame, "Not retried", text));
    let live = known.stored.as_ref().is_none_or(|r| r.state.is_live());
    if live {
        return not_retried(
            actix_web::http::StatusCode::CONFLICT,
            "The Job has not finished: cancel it first, or wait for it to end.",
        );
    }
    let Some(n) = form
        .retry
        .as_deref()
        .and_then(|n| n.parse::<u32>().ok())
        .filter(|n| super::commands::valid_retry(*n))
    else {
        return not_retried(
            actix_web::http::StatusCode::BAD_REQUEST,
            "The form's retry number is missing or wrong; reload the Job's page and try again.",
        );
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    let view = match state.jobs.fetch(name.clone(), deadline).await {
        Ok(Some(view)) => view,
        Ok(None) => return no_such_job(&frame, &name),
        Err(e) => {
            return not_retried(
                actix_web::http::StatusCode::SERVICE_UNAVAILABLE,
                &format!("Kubernetes did not answer: {e}. Try again."),
            )
        }
    };
    let Some(original) = view
        .task
        .and_then(|t| serde_json::from_value::<crate::task::Task>(t).ok())
    else {
        return not_retried(
            actix_web::http::StatusCode::CONFLICT,
            "The Job's task document is unreadable, so it cannot be run again.",
        );
    };
    let task = super::commands::retried(
        original,
        &name,
        n,
        format!("{} (dashboard)", caller.identity),
        None,
        Utc::now(),
    );
    let to_job = |job: &str| see_other(&format!("/ui/jobs/{job}?retry_of={name}"));
    if let Some(made) = state.jobs.stored_by_dedup_key(&task.dedup_key) {
        return to_job(&made.name);
    }
    let source = match task.source {
        crate::task::TaskSource::Github => &state.github,
        crate::task::TaskSource::Grafana => &state.grafana,
        crate::task::TaskSource::PmAgent => &state.pm_agent,
        crate::task::TaskSource::Cli => &state.cli,
    };
    let submitted = super::github::submit(
        &state,
        source,
        Box::new(task),
        crate::job::JobExtras::default(),
        &span,
        deadline,
    )
    .await;
    match submitted {
        Ok(answer) if answer.gone => not_retried(
            actix_web::http::StatusCode::CONFLICT,
            "This retry was made before and its Job is deleted; reload the Job's page for a new one.",
        ),
        Ok(answer) => match answer.job {
            Some(job) => {
                tracing::info!(job = %name, retry = %job, by = %caller.identity, "job retried from the dashboard");
                state.events.record(NewEvent {
                    source: caller.label(),
                    event: "retry",
                    decision: answer.decision,
                    job: Some(&job),
                    reason: Some("from the dashboard"),
                    ..Default::default()
                });
                to_job(&job)
            }
            None => not_retried(
                actix_web::http::StatusCode::SERVICE_UNAVAILABLE,
                "The retry was not persisted. Try again.",
            ),
        },
        Err(e) => not_retried(
            actix_web::http::StatusCode::SERVICE_UNAVAILABLE,
            &format!("The retry was not persisted: {e}. Try again."),
        ),
    }
}

/// Frees a follow's slot when its stream ends or the browser goes away.
struct FollowSlot {
    key: String,
    state: web::Data<AppState>,
}

impl Drop for FollowSlot {
    fn drop(&mut self) {
        self.state
            .dashboard
            .follows
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .remove(&self.key);
    }
}

fn sse_event(kind: Option<&str>, data: &str) -> web::Bytes {
    let mut out = String::with_capacity(data.len() + 16);
    if let Some(k) = kind {
        out.push_str("event: ");
        out.push_str(k);
        out.push('\n');
    }
    for line in data.split(['\n', '\r']) {
        out.push_str("data: ");
        out.push_str(line);
        out.push('\n');
    }
    out.push('\n');
    web::Bytes::from(out)
}

fn sse_end(text: &str) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/event-stream")
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .body(sse_event(Some("end"), text))
}

async fn log_stream(
    req: HttpRequest,
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> HttpResponse {
    let v = match viewer(&req, &state) {
        Ok(v) => v,
        Err(_) => return HttpResponse::Unauthorized().finish(),
    };
    let name = path.into_inner();
    let caller = v.caller();
    let record = if valid_name(&name) {
        locate(&state, &caller, JobRef::Name(&name)).and_then(|k| k.stored)
    } else {
        None
    };
    let Some(record) = record else {
        return HttpResponse::NotFound().finish();
    };
    if record.state != JobState::Running {
        return sse_end(&format!(
            "The Job is {}; there is nothing to follow.",
            record.state.as_str()
        ));
    }
    // One follow per session (per client address on a public dashboard).
    let key = match &v.session {
        Some(s) => s.nonce.clone(),
        None => super::client_addr(
            req.peer_addr(),
            req.headers(),
            &state.config.trusted_proxies,
        )
        .to_string(),
    };
    let d = &state.dashboard;
    {
        let mut open = d
            .follows
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if open.contains(&key) || open.len() >= MAX_FOLLOWS {
            d.follows_refused.fetch_add(1, Ordering::Relaxed);
            let busy = open.len() >= MAX_FOLLOWS;
            drop(open);
            let mut r = if busy {
                HttpResponse::ServiceUnavailable()
            } else {
                HttpResponse::TooManyRequests()
            };
            return r
                .insert_header((header::RETRY_AFTER, "5"))
                .body("one log follow per session: stop the other one first");
        }
        open.insert(key.clone());
    }
    let slot = FollowSlot {
        key,
        state: state.clone(),
    };
    d.follows_started.fetch_add(1, Ordering::Relaxed);
    let deadline = Instant::now() + Duration::from_secs(10);
    let lines = match state.jobs.follow_tail(name, TAIL_LINES, deadline).await {
        Ok(l) => l,
        Err(JobsError::NotFound) => return sse_end("The Job has no pod yet."),
        Err(e) => return sse_end(&format!("The log could not be read: {e}")),
    };
    let until = tokio::time::sleep(FOLLOW_MAX);
    let body = lines
        .take_until(until)
        .map(|l| match l {
            Ok(line) => sse_event(None, &line),
            Err(e) => sse_event(Some("end"), &format!("The log stream failed: {e}")),
        })
        .chain(futures::stream::once(async move {
            drop(slot);
            sse_event(Some("end"), "The log ended.")
        }))
        .map(Ok::<_, actix_web::Error>);
    HttpResponse::Ok()
        .content_type("text/event-stream")
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .insert_header(("X-Accel-Buffering", "no"))
        .streaming(body)
}

/// The actors and supervised tasks the system page lists.
const ACTORS: [&str; 11] = [
    "github",
    "grafana",
    "pm-agent",
    "cli",
    "scheduler",
    "kube",
    "job_watcher",
    "job_watch",
    "lease",
    "report_sweep",
    "preflight",
];

/// The system page's facts.
pub fn system_view(state: &AppState) -> pages::SystemView {
    let c = &state.config;
    let actors = ACTORS
        .iter()
        .map(|&name| {
            let m = state.metrics.actor(name);
            pages::ActorRow {
                name,
                depth: m.mailbox_depth.get(),
                messages: m.messages.get(),
                overflows: m.overflow.get(),
                restarts: m.restarts.get(),
            }
        })
        .collect();
    let report = state.health.preflight.read().ok().and_then(|r| r.clone());
    let checks = report
        .as_ref()
        .map(|r| {
            r.public()
                .checks
                .into_iter()
                .map(|ch| pages::CheckRow {
                    check: ch.key(),
                    result: serde_json::to_value(ch.result)
                        .ok()
                        .and_then(|v| v.as_str().map(str::to_string))
                        .unwrap_or_default(),
                    message: ch.message,
                    fix: ch.fix,
                })
                .collect()
        })
        .unwrap_or_default();
    let count = |k: TokenKind| c.api_tokens.iter().filter(|t| t.kind == k).count();
    let set = |b: bool| if b { "set" } else { "unset" }.to_string();
    let config = vec![
        ("KUBERNETES_NAMESPACE", c.namespace.clone()),
        ("MAX_CONCURRENT_JOBS", c.max_concurrent_jobs.to_string()),
        ("JOB_TIMEOUT_SECONDS", c.job_timeout_seconds.to_string()),
        ("GITHUB_HOST", c.github_host.clone()),
        ("GITHUB_API_URL", c.github_api.api_url.to_string()),
        (
            "GitHub reporting credential",
            set(c.github_api.credential.is_some()),
        ),
        (
            "GITHUB_WEBHOOK_SECRET",
            set(!c.github_webhook_secrets.is_empty()),
        ),
        (
            "API_TOKENS",
            format!(
                "{} cli, {} pm-agent, {} viewer",
                count(TokenKind::Cli),
                count(TokenKind::PmAgent),
                count(TokenKind::Viewer)
            ),
        ),
        ("CALLBACK_SECRET", set(c.callbacks.enabled())),
        (
            "PUBLIC_URL",
            c.github_api
                .public_url
                .as_ref()
                .map_or("unset".into(), |u| u.to_string()),
        ),
        ("DASHBOARD_PUBLIC", c.dashboard.public.to_string()),
        (
            "DASHBOARD_SESSION_SECRET",
            set(c.dashboard.session_secret.is_some()),
        ),
    ];
    pages::SystemView {
        replica: state.leader.identity().to_string(),
        leader: state.leader.is_leader(),
        holder: state.leader.holder(),
        actors,
        checks,
        preflight_done: report.is_some(),
        synced: state.health.synced.load(Ordering::SeqCst),
        watch: state.health.watch.unhealthy(
            tokio::time::Instant::now(),
            c.job_watch_failing,
            &c.namespace,
        ),
        draining: state.health.draining.load(Ordering::SeqCst),
        config,
        version: env!("CARGO_PKG_VERSION"),
        git_sha: crate::metrics::service::GIT_SHA,
        follows: state.dashboard.follows_started.load(Ordering::Relaxed),
        follows_refused: state.dashboard.follows_refused.load(Ordering::Relaxed),
        logins_refused: state.dashboard.logins_refused.load(Ordering::Relaxed),
        jobs: state.jobs.store().len(),
        events: state.events.len(),
        session_key: if state.dashboard.keys.shared {
            "DASHBOARD_SESSION_SECRET (replicas agree)"
        } else {
            "random, this process only"
        },
    }
}

async fn system(req: HttpRequest, state: web::Data<AppState>) -> HttpResponse {
    let v = match viewer(&req, &state) {
        Ok(v) => v,
        Err(r) => return r.response(),
    };
    page(pages::system(&system_view(&state), &v.frame(&state)))
}

async fn asset(path: web::Path<String>) -> HttpResponse {
    match assets::find(&path) {
        Some(a) => HttpResponse::Ok()
            .content_type(a.content_type)
            .insert_header((header::CACHE_CONTROL, "public, max-age=31536000, immutable"))
            .body(a.body),
        None => HttpResponse::NotFound()
            .content_type("text/plain; charset=utf-8")
            .body("no such file"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_dashboard_paths_are_followed_after_login() {
        assert_eq!(
            safe_next(Some("/ui/jobs?state=queued")),
            "/ui/jobs?state=queued"
        );
        for bad in [
            "https://evil.example/",
            "//evil.example/ui/",
            "/ui//evil",
            "/ui/\\evil",
            "/api/v1/jobs",
            "javascript:alert(1)",
            "/ui/\nSet-Cookie:x",
        ] {
            assert_eq!(safe_next(Some(bad)), "/ui/", "{bad:?}");
        }
        assert_eq!(safe_next(None), "/ui/");
    }

    #[test]
    fn sse_lines_cannot_inject_fields() {
        let e = sse_event(None, "a\nevent: end\r\ndata: x");
        let text = std::str::from_utf8(&e).expect("utf8");
        assert!(
            text.lines()
                .all(|l| l.is_empty() || l.starts_with("data: ")),
            "{text}"
        );
    }

    #[test]
    fn the_assets_are_found_by_their_hashed_names() {
        let css = assets::CSS.path().rsplit('/').next().expect("a name");
        assert!(assets::find(css).is_some());
        assert!(assets::find("dashboard.css").is_none());
    }
}
