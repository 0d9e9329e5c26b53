//! The self-review APIs every authenticated user may call, answered from the
//! token tables in [`crate::authz`]:
//!
//! - `POST /apis/authorization.k8s.io/v1/selfsubjectaccessreviews`
//!   (`kubectl auth can-i VERB RESOURCE`): `status.allowed` for one request;
//! - `POST /apis/authorization.k8s.io/v1/selfsubjectrulesreviews`
//!   (`kubectl auth can-i --list`): the caller's rules;
//! - `POST /apis/authentication.k8s.io/v1/selfsubjectreviews`
//!   (`kubectl auth whoami`): the caller's user name, uid and groups;
//!
//! plus their discovery documents. They store nothing.

use std::sync::Arc;

use actix_web::{web, HttpMessage, HttpRequest, HttpResponse};
use serde_json::{json, Value};

use super::authz::{self, Attributes, Identity};
use super::error::ApiError;
use super::server::SimState;
use super::watch::error_response;

const AUTHZ: &str = "authorization.k8s.io";
const AUTHN: &str = "authentication.k8s.io";

/// The review groups' discovery entries for `GET /apis`.
pub fn extend_group_list(list: &mut Value) {
    if let Some(groups) = list["groups"].as_array_mut() {
        for g in [AUTHN, AUTHZ] {
            if let Some(doc) = api_group(g) {
                let mut doc = doc;
                if let Some(m) = doc.as_object_mut() {
                    m.remove("kind");
                    m.remove("apiVersion");
                }
                groups.push(doc);
            }
        }
    }
}

/// `GET /apis/authorization.k8s.io` and `/apis/authentication.k8s.io`.
pub fn api_group(group: &str) -> Option<Value> {
    if group != AUTHZ && group != AUTHN {
        return None;
    }
    let gv = json!({"groupVersion": format!("{group}/v1"), "version": "v1"});
    Some(json!({
        "kind": "APIGroup", "apiVersion": "v1", "name": group,
        "versions": [gv.clone()], "preferredVersion": gv,
    }))
}

/// `GET /apis/<review group>/v1`.
pub fn api_resource_list(group: &str, version: &str) -> Option<Value> {
    let kinds: &[(&str, &str)] = match (group, version) {
        (AUTHZ, "v1") => &[
            ("selfsubjectaccessreviews", "SelfSubjectAccessReview"),
            ("selfsubjectrulesreviews", "SelfSubjectRulesReview"),
        ],
        (AUTHN, "v1") => &[("selfsubjectreviews", "SelfSubjectReview")],
        _ => return None,
    };
    let resources: Vec<Value> = kinds
        .iter()
        .map(|(plural, kind)| {
            json!({
                "name": plural, "singularName": kind.to_lowercase(), "namespaced": false,
                "kind": kind, "verbs": ["create"],
            })
        })
        .collect();
    Some(json!({
        "kind": "APIResourceList", "apiVersion": "v1",
        "groupVersion": format!("{group}/v1"), "resources": resources,
    }))
}

fn identity(req: &HttpRequest) -> Arc<Identity> {
    req.extensions()
        .get::<Arc<Identity>>()
        .cloned()
        .unwrap_or_else(|| {
            Arc::new(Identity {
                username: "system:anonymous".into(),
                uid: String::new(),
                groups: vec!["system:unauthenticated".into()],
                rules: None,
                namespace: None,
                namespaced: Vec::new(),
            })
        })
}

fn parse_body(req: &HttpRequest, body: &[u8], kind: &str) -> Result<Value, ApiError> {
    let ct = req
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if ct.starts_with(super::protobuf::MEDIA_TYPE) {
        return super::reviews_pb::decode_review(body, kind).map_err(|e| {
            ApiError::bad_request(format!(
                "the body of the request could not be decoded as a protobuf {kind}: {e}"
            ))
        });
    }
    let v: Value = serde_json::from_slice(body)
        .or_else(|_| serde_yaml_ng::from_slice(body))
        .map_err(|e| {
            ApiError::bad_request(format!(
                "the body of the request could not be decoded as {kind}: {e}"
            ))
        })?;
    if !v.is_object() {
        return Err(ApiError::bad_request(format!(
            "the body of the request must be a {kind} object"
        )));
    }
    if let Some(k) = v["kind"].as_str().filter(|k| *k != kind) {
        return Err(ApiError::bad_request(format!(
            "the body of the request is a {k:?}, expected {kind:?}"
        )));
    }
    Ok(v)
}

fn answer(r: Result<Value, ApiError>) -> HttpResponse {
    match r {
        Ok(v) => HttpResponse::Created().json(v),
        Err(e) => error_response(&e),
    }
}

fn invalid(kind: &str, field: &str, why: &str) -> ApiError {
    ApiError::invalid(
        kind,
        AUTHZ,
        "",
        vec![super::error::Cause::invalid(field, "", why)],
    )
}

fn access_review(req: &HttpRequest, body: &[u8]) -> Result<Value, ApiError> {
    const KIND: &str = "SelfSubjectAccessReview";
    let who = identity(req);
    let mut v = parse_body(req, body, KIND)?;
    let spec = &v["spec"];
    let s = |p: &str| {
        spec.pointer(p)
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string()
    };
    let (allowed, reason) = if spec.get("resourceAttributes").is_some_and(Value::is_object) {
        let a = Attributes {
            verb: s("/resourceAttributes/verb"),
            group: s("/resourceAttributes/group"),
            resource: s("/resourceAttributes/resource"),
            subresource: s("/resourceAttributes/subresource"),
            namespace: s("/resourceAttributes/namespace"),
            name: s("/resourceAttributes/name"),
        };
        if a.verb.is_empty() {
            return Err(invalid(
                KIND,
                "spec.resourceAttributes.verb",
                "must not be empty",
            ));
        }
        match authz::decide(&who, &a) {
            Ok(why) => (true, why),
            Err(why) => (false, why),
        }
    } else if spec
        .get("nonResourceAttributes")
        .is_some_and(Value::is_object)
    {
        let path = s("/nonResourceAttributes/path");
        let verb = s("/nonResourceAttributes/verb");
        let allowed = match &who.rules {
            None => true,
            Some(rules) => rules.iter().any(|r| {
                r.verbs.iter().any(|x| x == "*" || *x == verb)
                    && r.non_resource_urls
                        .as_deref()
                        .unwrap_or_default()
                        .iter()
                        .any(|u| {
                            u == "*"
                                || *u == path
                                || u.strip_suffix('*').is_some_and(|p| path.starts_with(p))
                        })
            }),
        };
        (allowed, String::new())
    } else {
        return Err(invalid(
            KIND,
            "spec.resourceAttributes",
            "exactly one of nonResourceAttributes or resourceAttributes must be specified",
        ));
    };
    let mut status = json!({"allowed": allowed});
    if !reason.is_empty() {
        status["reason"] = json!(reason);
    }
    v["apiVersion"] = json!(format!("{AUTHZ}/v1"));
    v["kind"] = json!(KIND);
    v["metadata"] = json!({"creationTimestamp": null});
    v["status"] = status;
    Ok(v)
}

fn rules_review(req: &HttpRequest, body: &[u8]) -> Result<Value, ApiError> {
    const KIND: &str = "SelfSubjectRulesReview";
    let who = identity(req);
    let mut v = parse_body(req, body, KIND)?;
    let ns = v
        .pointer("/spec/namespace")
        .and_then(Value::as_str)
        .unwrap_or("");
    let rules = authz::effective_rules_in(&who, ns);
    let resource_rules: Vec<Value> = rules
        .iter()
        .filter(|r| r.resources.as_ref().is_some_and(|x| !x.is_empty()))
        .map(|r| {
            let mut o =
                json!({"verbs": r.verbs, "apiGroups": r.api_groups, "resources": r.resources});
            if let Some(n) = &r.resource_names {
                o["resourceNames"] = json!(n);
            }
            o
        })
        .collect();
    let non_resource: Vec<Value> = rules
        .iter()
        .filter_map(|r| {
            r.non_resource_urls
                .as_ref()
                .map(|u| json!({"verbs": r.verbs, "nonResourceURLs": u}))
        })
        .collect();
    v["apiVersion"] = json!(format!("{AUTHZ}/v1"));
    v["kind"] = json!(KIND);
    v["metadata"] = json!({"creationTimestamp": null});
    v["status"] = json!({"resourceRules": resource_rules, "nonResourceRules": non_resource, "incomplete": false});
    Ok(v)
}

fn self_review(req: &HttpRequest, body: &[u8]) -> Result<Value, ApiError> {
    const KIND: &str = "SelfSubjectReview";
    let mut v = if body.iter().all(u8::is_ascii_whitespace) {
        json!({})
    } else {
        parse_body(req, body, KIND)?
    };
    let who = identity(req);
    let mut user = json!({"username": who.username, "groups": who.groups});
    if !who.uid.is_empty() {
        user["uid"] = json!(who.uid);
    }
    v["apiVersion"] = json!(format!("{AUTHN}/v1"));
    v["kind"] = json!(KIND);
    v["metadata"] = json!({"creationTimestamp": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)});
    v["status"] = json!({"userInfo": user});
    Ok(v)
}

/// `POST .../selfsubjectaccessreviews`.
pub async fn ssar(req: HttpRequest, body: web::Bytes, s: web::Data<SimState>) -> HttpResponse {
    let resp = answer(access_review(&req, &body));
    s.faults
        .record("create", "selfsubjectaccessreviews", resp.status().as_u16());
    resp
}

/// `POST .../selfsubjectrulesreviews`.
pub async fn ssrr(req: HttpRequest, body: web::Bytes, s: web::Data<SimState>) -> HttpResponse {
    let resp = answer(rules_review(&req, &body));
    s.faults
        .record("create", "selfsubjectrulesreviews", resp.status().as_u16());
    resp
}

/// `POST .../selfsubjectreviews`.
pub async fn ssr(req: HttpRequest, body: web::Bytes, s: web::Data<SimState>) -> HttpResponse {
    let resp = answer(self_review(&req, &body));
    s.faults
        .record("create", "selfsubjectreviews", resp.status().as_u16());
    resp
}
