//! The test-only control API under `/_sim/` (no authentication) and the same
//! operations for in-process callers ([`crate::GithubSimServer`]).

use actix_web::{HttpRequest, HttpResponse};
use chrono::{DateTime, Utc};
use serde_json::{json, Value};

use crate::api::delivery_headers;
use crate::server::SimState;
use crate::store::{insert_capped, Delivery, Pull, Store};

fn lock(s: &SimState) -> std::sync::MutexGuard<'_, Store> {
    s.store.lock().unwrap_or_else(|e| e.into_inner())
}

fn faults(s: &SimState) -> std::sync::MutexGuard<'_, crate::faults::Faults> {
    s.faults.lock().unwrap_or_else(|e| e.into_inner())
}

/// The whole state, as `GET /_sim/state` shows it.
pub fn snapshot(s: &SimState) -> Value {
    let f = faults(s).show();
    lock(s).snapshot(f)
}

pub fn set_faults(s: &SimState, spec: Value) -> Result<Value, String> {
    let mut f = faults(s);
    f.set(spec)?;
    Ok(f.show())
}

pub fn clear_faults(s: &SimState) {
    faults(s).clear();
}

/// Drops every stored object, token, rate-limit bucket, fault, seed, the
/// delivery target, the request log and the counts.
pub fn reset(s: &SimState) {
    lock(s).reset();
    faults(s).clear();
}

fn req_str(v: &Value, k: &str) -> Result<String, String> {
    match v.get(k) {
        Some(Value::String(s)) if !s.trim().is_empty() => Ok(s.clone()),
        _ => Err(format!("{k:?} (a non-empty string) is required")),
    }
}

fn opt_str(v: &Value, k: &str) -> Result<Option<String>, String> {
    match v.get(k) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(format!("{k:?} must be a string")),
    }
}

fn req_u64(v: &Value, k: &str) -> Result<u64, String> {
    v.get(k)
        .and_then(Value::as_u64)
        .ok_or_else(|| format!("{k:?} (a non-negative integer) is required"))
}

fn opt_u64(v: &Value, k: &str) -> Result<Option<u64>, String> {
    match v.get(k) {
        None | Some(Value::Null) => Ok(None),
        Some(x) => x
            .as_u64()
            .map(Some)
            .ok_or_else(|| format!("{k:?} must be a non-negative integer")),
    }
}

fn repo_of(v: &Value) -> Result<String, String> {
    let repo = req_str(v, "repo")?;
    match repo.split_once('/') {
        Some((o, r)) if !o.is_empty() && !r.is_empty() && !r.contains('/') => Ok(repo),
        _ => Err(format!("\"repo\" must be \"owner/name\", not {repo:?}")),
    }
}

/// Seeds (or replaces) a pull request: `{repo, number, head_sha, head_ref,
/// base_ref, state?, title?}`; returns its REST JSON.
pub fn seed_pull(s: &SimState, v: &Value) -> Result<Value, String> {
    let p = Pull {
        repo: repo_of(v)?,
        number: req_u64(v, "number")?,
        head_sha: req_str(v, "head_sha")?,
        head_ref: req_str(v, "head_ref")?,
        base_ref: opt_str(v, "base_ref")?.unwrap_or_else(|| "main".into()),
        state: opt_str(v, "state")?.unwrap_or_else(|| "open".into()),
        title: opt_str(v, "title")?
            .unwrap_or_else(|| format!("Pull request #{}", req_u64(v, "number").unwrap_or(0))),
    };
    let mut st = lock(s);
    let key = (p.repo.clone(), p.number);
    let cap = st.limits.max_seeded;
    Store::seeded_room(&mut st.pulls, cap, &key);
    let out = crate::api::pull_json(&s.base_url, &p);
    st.pulls.insert(key, p);
    Ok(out)
}

/// Sets the installation id of a repository: `{repo, id}`.
pub fn set_installation(s: &SimState, v: &Value) -> Result<Value, String> {
    let repo = repo_of(v)?;
    let id = req_u64(v, "id")?;
    let mut st = lock(s);
    let cap = st.limits.max_seeded;
    Store::seeded_room(&mut st.installations, cap, &repo);
    st.installations.insert(repo.clone(), id);
    Ok(json!({"repo": repo, "id": id}))
}

/// Records a delivery as if GitHub had made it: `{event, guid?, action?,
/// status_code?, payload?, installation_id?, repository_id?, redelivery?,
/// delivered_at?, duration?}`; returns it in the detail form.
pub fn seed_delivery(s: &SimState, v: &Value) -> Result<Value, String> {
    if !v.is_object() {
        return Err("a delivery is a JSON object".into());
    }
    let event = req_str(v, "event")?;
    let guid = opt_str(v, "guid")?.unwrap_or_else(random_guid);
    let status_code = match opt_u64(v, "status_code")? {
        None => 200,
        Some(c) if c <= 599 => c as u16,
        Some(c) => return Err(format!("\"status_code\" {c} is not an HTTP status")),
    };
    let delivered_at = match opt_str(v, "delivered_at")? {
        None => Utc::now(),
        Some(t) => DateTime::parse_from_rfc3339(&t)
            .map_err(|e| format!("\"delivered_at\": {e}"))?
            .with_timezone(&Utc),
    };
    let installation_id = opt_u64(v, "installation_id")?;
    let payload = v.get("payload").cloned().unwrap_or_else(|| json!({}));
    let action = match opt_str(v, "action")? {
        Some(a) => Some(a),
        None => payload
            .get("action")
            .and_then(Value::as_str)
            .map(str::to_string),
    };
    let d = Delivery {
        id: 0,
        request_headers: delivery_headers(&guid, &event, s.config.app_id),
        guid,
        delivered_at,
        redelivery: v
            .get("redelivery")
            .and_then(Value::as_bool)
            .unwrap_or(false),
        duration: v.get("duration").and_then(Value::as_f64).unwrap_or(0.05),
        status_code,
        error: None,
        event,
        action,
        installation_id,
        repository_id: opt_u64(v, "repository_id")?,
        payload,
        response_headers: Default::default(),
        response_body: opt_str(v, "response_body")?.unwrap_or_default(),
    };
    let mut st = lock(s);
    let id = st.next_id();
    let d = Delivery { id, ..d };
    let out = d.detail(&s.base_url);
    let cap = st.limits.max_deliveries;
    insert_capped(&mut st.deliveries, cap, id, d);
    Ok(out)
}

/// Where redelivery attempts are POSTed, with the webhook secret that signs
/// them (`None` clears it).
pub fn set_delivery_target(s: &SimState, target: Option<(String, String)>) -> Result<(), String> {
    if let Some((url, _)) = &target {
        if !(url.starts_with("http://") || url.starts_with("https://")) {
            return Err(format!("\"url\" must be an http(s) URL, not {url:?}"));
        }
    }
    lock(s).target = target;
    Ok(())
}

fn random_guid() -> String {
    let h = crate::auth::random_token(32).to_ascii_lowercase();
    // Lowercase alphanumerics in the 8-4-4-4-12 shape of GitHub's GUIDs.
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

fn ok(v: Value) -> HttpResponse {
    HttpResponse::Ok().json(v)
}

fn bad(msg: String) -> HttpResponse {
    HttpResponse::BadRequest().json(json!({"error": msg}))
}

fn parse(body: &[u8]) -> Result<Value, String> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(Value::Null);
    }
    serde_json::from_slice(body).map_err(|e| format!("invalid JSON: {e}"))
}

/// `/_sim/…` requests.
pub async fn handle(s: &SimState, req: &HttpRequest, body: &[u8]) -> HttpResponse {
    let path = req.path().trim_end_matches('/');
    let method = req.method().as_str();
    let v = match method {
        "PUT" | "POST" => match parse(body) {
            Ok(v) => v,
            Err(e) => return bad(e),
        },
        _ => Value::Null,
    };
    match (method, path) {
        ("GET", "/_sim/state") => ok(snapshot(s)),
        ("GET", "/_sim/faults") => ok(faults(s).show()),
        ("PUT", "/_sim/faults") => match set_faults(s, v) {
            Ok(shown) => {
                tracing::debug!(faults = %shown, "github-api-sim faults changed");
                ok(shown)
            }
            Err(e) => bad(e),
        },
        ("DELETE", "/_sim/faults") => {
            clear_faults(s);
            ok(faults(s).show())
        }
        ("POST", "/_sim/pulls") => created(seed_pull(s, &v)),
        ("POST", "/_sim/installations") => created(set_installation(s, &v)),
        ("POST", "/_sim/deliveries") => match v {
            Value::Array(items) => {
                let mut out = Vec::new();
                for item in &items {
                    match seed_delivery(s, item) {
                        Ok(d) => out.push(d),
                        Err(e) => return bad(e),
                    }
                }
                HttpResponse::Created().json(out)
            }
            v => created(seed_delivery(s, &v)),
        },
        ("PUT", "/_sim/deliveries/target") => {
            let target = match v.get("url") {
                None | Some(Value::Null) => None,
                Some(Value::String(u)) => {
                    let secret = v.get("secret").and_then(Value::as_str).unwrap_or("");
                    Some((u.clone(), secret.to_string()))
                }
                Some(_) => return bad("\"url\" must be a string or null".into()),
            };
            match set_delivery_target(s, target) {
                Ok(()) => ok(json!({"url": v.get("url")})),
                Err(e) => bad(e),
            }
        }
        ("DELETE", "/_sim/deliveries/target") => {
            lock(s).target = None;
            ok(json!({"url": null}))
        }
        ("POST", "/_sim/reset") => {
            reset(s);
            ok(json!({"reset": true}))
        }
        _ => HttpResponse::NotFound()
            .json(json!({"error": format!("no simulator control endpoint {method} {path}")})),
    }
}

fn created(r: Result<Value, String>) -> HttpResponse {
    match r {
        Ok(v) => HttpResponse::Created().json(v),
        Err(e) => bad(e),
    }
}
