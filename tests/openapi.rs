//! The OpenAPI document at `/api/v1/openapi.json`: it parses, lists every
//! route the service serves with its methods (and no method it does not
//! serve), its operationIds are unique, it documents the status codes of the
//! task endpoints, and the maintained `openapi-spec-validator` accepts it.

mod api_support;
mod common;
#[path = "../crates/kube-api-sim/tests/tool_support/mod.rs"]
mod tool_support;

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::Command;

use api_support::*;
use common::*;
use serde_json::Value;

async fn document(app: &TestApp) -> Value {
    let r = call(app, "GET", "/api/v1/openapi.json").send().await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert!(
        r.content_type.starts_with("application/json"),
        "{}",
        r.content_type
    );
    serde_json::from_str(&r.text).expect("the OpenAPI document is JSON")
}

fn codes(doc: &Value, path: &str, method: &str) -> Vec<String> {
    doc["paths"][path][method]["responses"]
        .as_object()
        .unwrap_or_else(|| panic!("responses of {method} {path}"))
        .keys()
        .cloned()
        .collect()
}

#[tokio::test]
async fn the_openapi_document_parses_and_lists_every_route_with_its_methods() {
    let app = spawn_app(&[("API_TOKENS", API_TOKENS)]).await;
    let doc = document(&app).await;
    assert!(
        doc["openapi"].as_str().is_some_and(|v| v.starts_with("3.")),
        "an OpenAPI 3 document: {}",
        doc["openapi"]
    );
    assert!(doc["info"]["title"].is_string());
    let expected: &[(&str, &[&str])] = &[
        ("/webhook/github", &["post"]),
        ("/webhook/grafana", &["post", "put"]),
        ("/api/v1/tasks", &["post"]),
        ("/api/v1/pm/tasks", &["post"]),
        ("/api/v1/pm/tasks/{id}", &["get"]),
        ("/api/v1/jobs", &["get"]),
        ("/api/v1/jobs/{name}", &["get", "delete"]),
        ("/api/v1/jobs/{name}/logs", &["get"]),
        ("/api/v1/events", &["get"]),
        ("/api/v1/leader", &["get"]),
        ("/health", &["get"]),
        ("/ready", &["get"]),
        ("/metrics", &["get"]),
    ];
    let paths = doc["paths"].as_object().expect("paths");
    for (path, methods) in expected {
        let item = paths
            .get(*path)
            .unwrap_or_else(|| panic!("{path} is documented; paths: {:?}", paths.keys()));
        for m in *methods {
            assert!(
                item.get(*m).is_some_and(Value::is_object),
                "{m} {path} is documented"
            );
        }
    }
    // Every documented path is served (no route is invented), and a method
    // it does not document is answered 405, not "no such route".
    for (path, item) in paths {
        let concrete = path.replace("{id}", "1").replace("{name}", "x");
        let r = call(&app, "PATCH", &concrete).send().await;
        assert_eq!(r.status, 405, "PATCH {path}: {}", r.text);
        assert_eq!(r.json["error"], "method_not_allowed", "PATCH {path}");
        let documented = item.as_object().expect("a path item");
        for m in ["get", "post", "put", "delete"] {
            if !documented.contains_key(m) {
                continue;
            }
            let r = call(&app, &m.to_uppercase(), &concrete).send().await;
            assert!(
                r.status != 404
                    || r.json["error"] != "not_found"
                    || r.json["message"] != "no such route",
                "{m} {path} is documented but not routed"
            );
            assert_ne!(r.status, 405, "{m} {path} is documented but refused");
        }
    }
    let r = call(&app, "GET", "/api/v1/tasks").send().await;
    assert_eq!(r.status, 405, "{}", r.text);
    r.expect_json("405");
}

#[tokio::test]
async fn the_openapi_document_lists_the_status_codes_of_the_task_endpoints() {
    let app = spawn_app(&[]).await;
    let doc = document(&app).await;
    for (path, method, want) in [
        (
            "/api/v1/tasks",
            "post",
            &["202", "200", "400", "401", "422", "429", "503"][..],
        ),
        (
            "/api/v1/pm/tasks",
            "post",
            &["202", "200", "400", "401", "403", "422", "503"][..],
        ),
        ("/api/v1/pm/tasks/{id}", "get", &["200", "401", "404"][..]),
        ("/api/v1/jobs", "get", &["200", "400", "401"][..]),
        ("/api/v1/jobs/{name}", "get", &["200", "401", "404"][..]),
        ("/api/v1/jobs/{name}", "delete", &["200", "401", "404"][..]),
        (
            "/api/v1/jobs/{name}/logs",
            "get",
            &["200", "401", "404"][..],
        ),
        ("/api/v1/events", "get", &["200", "401"][..]),
        (
            "/webhook/grafana",
            "post",
            &["202", "400", "401", "413", "503"][..],
        ),
        (
            "/webhook/grafana",
            "put",
            &["202", "400", "401", "413", "503"][..],
        ),
    ] {
        let have = codes(&doc, path, method);
        for c in want {
            assert!(
                have.iter().any(|h| h == c),
                "{method} {path} documents {c}: {have:?}"
            );
        }
    }
    // The bodies the task endpoints take and the 422 field list are described.
    let schemas = doc["components"]["schemas"].as_object().expect("schemas");
    for s in [
        "TaskRequest",
        "PmTaskRequest",
        "ErrorBody",
        "FieldError",
        "JobView",
        "JobList",
    ] {
        assert!(schemas.contains_key(s), "schema {s}: {:?}", schemas.keys());
    }
    assert!(
        doc["components"]["securitySchemes"]["bearer"].is_object(),
        "the bearer scheme is described"
    );
    assert!(
        doc["paths"]["/api/v1/tasks"]["post"]["security"].is_array(),
        "the task API needs a token"
    );
}

/// The `openapi-spec-validator` executable (PyPI `openapi-spec-validator`):
/// `$OPENAPI_SPEC_VALIDATOR`, on `PATH`, or in the virtualenv
/// `scripts/test.sh` installs it in; absent, the test fails saying how to
/// install it.
fn validator() -> PathBuf {
    tool_support::tool("openapi-spec-validator")
}

/// Runs the validator on `doc`: its exit status and what it printed.
fn validate(doc: &str) -> (bool, String) {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let file = dir.path().join("openapi.json");
    std::fs::write(&file, doc).expect("write the document");
    let out = Command::new(validator())
        .args(["--validation-errors", "all"])
        .arg(&file)
        .output()
        .expect("run openapi-spec-validator");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

#[tokio::test]
async fn the_served_document_passes_openapi_spec_validator_and_a_broken_one_does_not() {
    let app = spawn_app(&[]).await;
    let r = call(&app, "GET", "/api/v1/openapi.json").send().await;
    assert_eq!(r.status, 200, "{}", r.text);
    let (ok, out) = validate(&r.text);
    assert!(
        ok,
        "openapi-spec-validator refuses the served document:\n{out}"
    );

    // The same check fails on a document with a repeated operationId, so the
    // pass above means something.
    let mut doc: Value = serde_json::from_str(&r.text).expect("JSON");
    let github = doc["paths"]["/webhook/github"]["post"]["operationId"].clone();
    assert!(
        github.is_string(),
        "POST /webhook/github has an operationId"
    );
    doc["paths"]["/webhook/grafana"]["post"]["operationId"] = github.clone();
    let (ok, out) = validate(&doc.to_string());
    assert!(!ok, "a repeated operationId {github} passes:\n{out}");
    assert!(
        out.contains(github.as_str().unwrap_or_default()),
        "the validator names the repeated operationId: {out}"
    );
}

#[tokio::test]
async fn every_operation_id_is_unique_and_every_served_method_is_documented() {
    let app = spawn_app(&[("API_TOKENS", API_TOKENS)]).await;
    let doc = document(&app).await;
    let paths = doc["paths"].as_object().expect("paths");
    let mut seen: HashMap<String, String> = HashMap::new();
    for (path, item) in paths {
        for (method, op) in item.as_object().expect("a path item") {
            let id = op["operationId"]
                .as_str()
                .unwrap_or_else(|| panic!("{method} {path} has an operationId"));
            if let Some(other) = seen.insert(id.to_string(), format!("{method} {path}")) {
                panic!("operationId {id} is used by {other} and {method} {path}");
            }
        }
        // A method the route serves is not answered 405; it must be listed.
        let concrete = path.replace("{id}", "1").replace("{name}", "x");
        for m in ["get", "post", "put", "delete"] {
            if item.get(m).is_some() {
                continue;
            }
            let r = call(&app, &m.to_uppercase(), &concrete).send().await;
            assert_eq!(
                r.status, 405,
                "{m} {path} is served ({}) but not documented",
                r.status
            );
        }
    }
}
