//! The OpenAPI document at `/api/v1/openapi.json`: it parses, lists every
//! route the service serves with its methods, and documents the status
//! codes of the task endpoints.

mod api_support;
mod common;

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
        ("/webhook/grafana", &["post"]),
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
        ("/webhook/grafana", "post", &["202", "400", "401"][..]),
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
