//! The Kubernetes REST surface: path parsing, verbs, query parameters, bodies
//! and content negotiation, dispatched to the store.

// `ApiError` is a whole `Status` (about 160 bytes); errors are the cold path.
#![allow(clippy::result_large_err)]

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use actix_web::http::Method;
use actix_web::{web, HttpRequest, HttpResponse};
use serde_json::{json, Value};

use super::error::ApiError;
use super::listopts::{ListQuery, WAIT_FOR_RV};
use super::negotiate::{self, Output, Read};
use super::patch::{self, PatchType};
use super::request::{
    content_type, decode_object, delete_options, dry_run, flag, query_map, read_body,
};
use super::resources::{self, RESOURCES};
use super::selector::{FieldSelector, LabelSelector};
use super::server::SimState;
use super::ssa;
use super::strict::{self, FieldValidation};
use super::typecheck;
use super::watch::{self, error_response, WatchRequest};

/// Largest request body accepted, as the real API server (3 MiB).
pub const MAX_BODY_BYTES: usize = 3 * 1024 * 1024;

/// A parsed resource path.
#[derive(Debug)]
struct Target {
    res: usize,
    namespace: Option<String>,
    name: Option<String>,
    sub: Option<String>,
}

fn parse_target(path: &str) -> Result<Target, ApiError> {
    let nf = || ApiError::not_found_path(path);
    let segs: Vec<&str> = path.trim_matches('/').split('/').collect();
    let (group, version, rest) = match segs.as_slice() {
        ["api", v, rest @ ..] => ("", *v, rest),
        ["apis", g, v, rest @ ..] => (*g, *v, rest),
        _ => return Err(nf()),
    };
    let find = |plural: &str| resources::find(group, version, plural).ok_or_else(nf);
    let t = |res, ns: Option<&&str>, name: Option<&&str>, sub: Option<&&str>| Target {
        res,
        namespace: ns.map(|s| s.to_string()),
        name: name.map(|s| s.to_string()),
        sub: sub.map(|s| s.to_string()),
    };
    match rest {
        [plural] => Ok(t(find(plural)?, None, None, None)),
        ["namespaces", ns, plural, tail @ ..]
            if group.is_empty() && !matches!(*plural, "status" | "finalize")
                || !group.is_empty() =>
        {
            let res = find(plural)?;
            if !RESOURCES[res].namespaced {
                return Err(nf());
            }
            match tail {
                [] => Ok(t(res, Some(ns), None, None)),
                [name] => Ok(t(res, Some(ns), Some(name), None)),
                [name, sub] => Ok(t(res, Some(ns), Some(name), Some(sub))),
                _ => Err(nf()),
            }
        }
        [plural, name, tail @ ..] => {
            let res = find(plural)?;
            if RESOURCES[res].namespaced {
                return Err(nf());
            }
            match tail {
                [] => Ok(t(res, None, Some(name), None)),
                [sub] => Ok(t(res, None, Some(name), Some(sub))),
                _ => Err(nf()),
            }
        }
        _ => Err(nf()),
    }
}

fn json_response(status: u16, v: &impl serde::Serialize) -> HttpResponse {
    let code =
        actix_web::http::StatusCode::from_u16(status).unwrap_or(actix_web::http::StatusCode::OK);
    HttpResponse::build(code)
        .content_type("application/json")
        .body(serde_json::to_vec(v).unwrap_or_default())
}

fn list_response(res: usize, page: &super::store::ListPage, out: Output) -> HttpResponse {
    let mut meta = json!({"resourceVersion": page.resource_version.to_string()});
    if let Some(c) = &page.continue_token {
        meta["continue"] = json!(c);
    }
    if let Some(n) = page.remaining {
        meta["remainingItemCount"] = json!(n);
    }
    negotiate::list_stored(out, res, &page.items, meta)
}

fn verb_of(method: &Method, t: &Target, q: &HashMap<String, String>) -> &'static str {
    match (method.as_str(), t.name.is_some()) {
        ("GET", true) if t.sub.as_deref() == Some("log") => "get",
        ("GET", true) => "get",
        ("GET", false) if flag(q, "watch") => "watch",
        ("GET", false) => "list",
        ("POST", _) => "create",
        ("PUT", _) => "update",
        ("PATCH", _) => "patch",
        ("DELETE", true) => "delete",
        ("DELETE", false) => "deletecollection",
        _ => "unknown",
    }
}

/// Entry point for every `/api/...` and `/apis/...` resource path.
pub async fn resource(
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<SimState>,
) -> HttpResponse {
    let state = state.into_inner();
    let target = match parse_target(req.path()) {
        Ok(t) => t,
        Err(e) => {
            state.faults.record("unknown", "unknown", e.code);
            return error_response(&e);
        }
    };
    if resources::is_kueue(target.res) && state.config.kueue.is_none() {
        let e = ApiError::not_found_path(req.path());
        state.faults.record("unknown", "unknown", e.code);
        return error_response(&e);
    }
    let q = query_map(&req);
    let verb = verb_of(req.method(), &target, &q);
    let plural = match &target.sub {
        Some(s) => format!("{}/{s}", RESOURCES[target.res].plural),
        None => RESOURCES[target.res].plural.to_string(),
    };
    if let Err(e) = authorize(&req, &target, verb) {
        state.faults.record(verb, &plural, e.code);
        return error_response(&e);
    }
    let flight = state.faults.begin(verb, &plural);
    let (delay, fault) = state.faults.decide(verb, RESOURCES[target.res].plural);
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    let resp = match fault {
        Some(e) => error_response(&e),
        None => match dispatch(&req, payload, &state, &target, &q, verb).await {
            Ok(r) => r,
            Err(e) => error_response(&e),
        },
    };
    flight.done(resp.status().as_u16());
    resp
}

/// Checks the caller's allow-list (see [`crate::authz`]).
fn authorize(req: &HttpRequest, t: &Target, verb: &str) -> Result<(), ApiError> {
    use actix_web::HttpMessage;
    let Some(who) = req
        .extensions()
        .get::<Arc<super::authz::Identity>>()
        .cloned()
    else {
        return Ok(());
    };
    let res = &RESOURCES[t.res];
    super::authz::authorize(
        &who,
        &super::authz::Attributes {
            verb: verb.to_string(),
            group: res.group.to_string(),
            resource: res.plural.to_string(),
            subresource: t.sub.clone().unwrap_or_default(),
            namespace: t.namespace.clone().unwrap_or_default(),
            name: t.name.clone().unwrap_or_default(),
        },
    )
}

async fn dispatch(
    req: &HttpRequest,
    payload: web::Payload,
    state: &Arc<SimState>,
    t: &Target,
    q: &HashMap<String, String>,
    verb: &'static str,
) -> Result<HttpResponse, ApiError> {
    let store = &state.store;
    let res = &RESOURCES[t.res];
    let ns = t.namespace.as_deref().unwrap_or("");
    if res.namespaced && t.namespace.is_none() && !matches!(verb, "list" | "watch") {
        return Err(ApiError::method_not_allowed(format!(
            "the server does not allow this method on the requested resource: {verb} {} needs a namespace",
            res.plural
        )));
    }
    if resources::is_kueue(t.res) && !matches!(verb, "get" | "list" | "watch") {
        return Err(ApiError::method_not_allowed(format!(
            "{verb} is not allowed: the simulator serves {}.{} read-only (built from SimConfig::kueue)",
            res.plural, res.group
        )));
    }
    match &t.sub {
        None => {}
        Some(s) if s == "status" && res.has_status => {}
        Some(s) if s == "log" && t.res == resources::PODS && verb == "get" => {
            return super::logs::pod_log(state, ns, t.name.as_deref().unwrap_or(""), q);
        }
        Some(_) => return Err(ApiError::not_found_path(req.path())),
    }
    let status_only = t.sub.is_some();
    let user_agent = req
        .headers()
        .get("user-agent")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let (manager, api_version) = (ssa::manager(user_agent, q), res.api_version());
    let labels = LabelSelector::parse(q.get("labelSelector").map_or("", String::as_str))?;
    let fields = FieldSelector::parse(
        q.get("fieldSelector").map_or("", String::as_str),
        resources::field_paths(t.res),
    )?;
    let name = t.name.as_deref().unwrap_or("");
    let validation = FieldValidation::parse(q.get("fieldValidation").map(String::as_str))?;
    let resource = match &t.sub {
        Some(s) => format!("{}/{s}", res.plural),
        None => res.plural.to_string(),
    };
    let log = |body: &[u8], content_type: &str| {
        state
            .writes
            .record(verb, &resource, ns, name, &manager, content_type, body)
    };
    match verb {
        "get" => {
            let out = negotiate::negotiate(req, q, Read::Get)?;
            Ok(negotiate::object(
                out,
                t.res,
                store.get(t.res, ns, name)?.as_ref(),
            ))
        }
        "list" => {
            let out = negotiate::negotiate(req, q, Read::List)?;
            let limit = match q.get("limit").filter(|s| !s.is_empty()) {
                Some(l) => Some(
                    l.parse::<usize>()
                        .map_err(|_| ApiError::bad_request(format!("invalid limit {l:?}")))?,
                )
                .filter(|l| *l > 0),
                None => None,
            };
            let opts = ListQuery::parse(q, false)?;
            let at = opts.list_at(limit.is_some())?;
            if let Some(rv) = opts.wait_for() {
                if !store.wait_for_rv(rv, WAIT_FOR_RV).await {
                    return Err(ApiError::resource_version_too_large(rv, store.current_rv()));
                }
            }
            let page = store.list_at(
                t.res,
                t.namespace.as_deref(),
                &labels,
                &fields,
                limit,
                opts.continue_token.as_deref(),
                at,
            )?;
            Ok(list_response(t.res, &page, out))
        }
        "watch" => {
            let out = negotiate::negotiate(req, q, Read::Watch)?;
            let opts = ListQuery::parse(q, true)?;
            if let Some(rv) = opts.wait_for() {
                if !store.wait_for_rv(rv, WAIT_FOR_RV).await {
                    return Err(ApiError::resource_version_too_large(rv, store.current_rv()));
                }
            }
            let timeout = match q.get("timeoutSeconds").filter(|s| !s.is_empty()) {
                Some(s) => Some(Duration::from_secs(s.parse::<u64>().map_err(|_| {
                    ApiError::bad_request(format!("invalid timeoutSeconds {s:?}"))
                })?)),
                None => None,
            };
            let resp = watch::serve(
                state.clone(),
                WatchRequest {
                    res: t.res,
                    namespace: t.namespace.clone(),
                    labels,
                    fields,
                    resource_version: opts.resource_version,
                    bookmarks: flag(q, "allowWatchBookmarks"),
                    initial_events: opts.initial_events(),
                    initial_events_end: opts.send_initial_events == Some(true),
                    timeout,
                },
            );
            Ok(negotiate::watch(out, t.res, resp))
        }
        "create" => {
            if t.name.is_some() {
                return Err(ApiError::method_not_allowed(
                    "POST is not allowed on a named resource",
                ));
            }
            let body = read_body(payload).await?;
            log(&body, "");
            let mut obj = decode_object(req, &body)?;
            let warnings = strict::check(t.res, &mut obj, validation)?;
            typecheck::check(t.res, &obj)?;
            admit_create(state, t.res, &mut obj);
            ssa::record_update(None, &mut obj, &manager, &api_version);
            let out = store.create(t.res, ns, obj, dry_run(q)?)?;
            Ok(strict::with_warnings(
                json_response(201, out.as_ref()),
                &warnings,
            ))
        }
        "update" => {
            let body = read_body(payload).await?;
            log(&body, "");
            let mut obj = decode_object(req, &body)?;
            let warnings = strict::check(t.res, &mut obj, validation)?;
            typecheck::check(t.res, &obj)?;
            let out = store.modify(t.res, ns, name, status_only, dry_run(q)?, |cur| {
                if !status_only {
                    ssa::record_update(Some(cur), &mut obj, &manager, &api_version);
                }
                Ok(obj)
            })?;
            Ok(strict::with_warnings(
                json_response(200, out.as_ref()),
                &warnings,
            ))
        }
        "patch" => {
            let ct = content_type(req);
            let pt = PatchType::from_content_type(&ct)?;
            let body = read_body(payload).await?;
            log(&body, &ct);
            let dry = dry_run(q)?;
            let mut warnings = Vec::new();
            let server_side = pt == PatchType::Apply && !status_only;
            let force = ssa::patch_options(q, pt == PatchType::Apply)?;
            let result = store.modify(t.res, ns, name, status_only, dry, |cur| {
                let mut v = if server_side {
                    let applied = ssa::decode_applied(&body)?;
                    ssa::apply(Some(cur), &applied, &manager, force, &api_version)?
                } else {
                    let mut v = cur.clone();
                    patch::apply(&mut v, pt, &body)?;
                    if !status_only {
                        ssa::record_update(Some(cur), &mut v, &manager, &api_version);
                    }
                    v
                };
                warnings = strict::check_patched(t.res, cur, &mut v, validation)?;
                typecheck::check(t.res, &v)?;
                Ok(v)
            });
            match result {
                Err(e) if e.code == 404 && pt == PatchType::Apply && !status_only => {
                    // Server-side apply creates what does not exist.
                    let applied = ssa::decode_applied(&body)?;
                    let mut obj = ssa::apply(None, &applied, &manager, force, &api_version)?;
                    obj["metadata"]["name"] = json!(name);
                    let warnings = strict::check(t.res, &mut obj, validation)?;
                    typecheck::check(t.res, &obj)?;
                    admit_create(state, t.res, &mut obj);
                    let out = store.create(t.res, ns, obj, dry)?;
                    Ok(strict::with_warnings(
                        json_response(201, out.as_ref()),
                        &warnings,
                    ))
                }
                r => Ok(strict::with_warnings(
                    json_response(200, r?.as_ref()),
                    &warnings,
                )),
            }
        }
        "delete" | "deletecollection" => {
            let body = read_body(payload).await?;
            log(&body, "");
            let opts = delete_options(q, &body)?;
            if verb == "delete" {
                let out = store.delete(t.res, ns, name, &opts)?;
                // 202 only for a pending deletion that asked for cascading
                // with the old orphanDependents=false (the API server's
                // delete handler); graceful and finalized deletions are 200.
                let still_there = store.get(t.res, ns, name).is_ok();
                let code = if still_there && opts.accepted_when_pending {
                    202
                } else {
                    200
                };
                Ok(json_response(code, out.as_ref()))
            } else {
                let items = store.delete_collection(
                    t.res,
                    t.namespace.as_deref(),
                    &labels,
                    &fields,
                    &opts,
                )?;
                let meta = json!({"resourceVersion": store.current_rv().to_string()});
                let items: Vec<&Value> = items.iter().map(|a| a.as_ref()).collect();
                Ok(negotiate::list(Output::Plain, t.res, &items, meta))
            }
        }
        _ => Err(ApiError::method_not_allowed(format!(
            "the server does not allow this method on the requested resource ({})",
            req.method()
        ))),
    }
}

/// Mutating admission on create: Kueue's webhook suspends a queued Job.
fn admit_create(state: &SimState, res: usize, obj: &mut Value) {
    if res == resources::JOBS && state.config.kueue.is_some() {
        super::kueue::on_job_create(obj);
    }
}
