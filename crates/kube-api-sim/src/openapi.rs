//! OpenAPI v3 documents, enough for kubectl: the index at `/openapi/v3` and
//! one document per group/version whose PATCH operations carry the
//! `x-kubernetes-group-version-kind` extension and the `fieldValidation`
//! parameter, so kubectl uses server-side field validation.

use serde_json::{json, Map, Value};

use super::resources::{group_versions, RESOURCES};

/// Changes whenever the documents change, for kubectl's discovery cache.
const DOC_HASH: &str = "sim-v1";

fn gv_path(group: &str, version: &str) -> String {
    if group.is_empty() {
        format!("api/{version}")
    } else {
        format!("apis/{group}/{version}")
    }
}

/// `GET /openapi/v3`.
pub fn index() -> Value {
    let mut paths = Map::new();
    for (g, v) in group_versions() {
        let p = gv_path(g, v);
        paths.insert(
            p.clone(),
            json!({"serverRelativeURL": format!("/openapi/v3/{p}?hash={DOC_HASH}")}),
        );
    }
    json!({ "paths": paths })
}

fn param(name: &str, location: &str) -> Value {
    json!({"name": name, "in": location, "schema": {"type": "string", "uniqueItems": true}})
}

/// `GET /openapi/v3/<api/v1 | apis/group/version>`.
pub fn document(gv: &str) -> Option<Value> {
    let (group, version) = group_versions()
        .into_iter()
        .find(|(g, v)| gv_path(g, v) == gv)?;
    let mut paths = Map::new();
    let mut schemas = Map::new();
    for r in RESOURCES
        .iter()
        .filter(|r| r.group == group && r.version == version)
    {
        let gvk = json!({"group": r.group, "version": r.version, "kind": r.kind});
        let schema_name = format!(
            "io.k8s.sim.{}.{}.{}",
            if r.group.is_empty() { "core" } else { r.group },
            r.version,
            r.kind
        );
        let ok = json!({"200": {"description": "OK", "content": {"application/json": {"schema": {"$ref": format!("#/components/schemas/{schema_name}")}}}}});
        let base = if r.namespaced {
            format!(
                "/{}/namespaces/{{namespace}}/{}",
                gv_path(group, version),
                r.plural
            )
        } else {
            format!("/{}/{}", gv_path(group, version), r.plural)
        };
        let mut item_params = vec![param("name", "path")];
        if r.namespaced {
            item_params.push(param("namespace", "path"));
        }
        let op = |action: &str, extra: Vec<Value>| {
            let mut params = vec![param("dryRun", "query"), param("fieldManager", "query")];
            params.extend(extra);
            json!({
                "operationId": format!("{action}{}", r.kind),
                "x-kubernetes-action": action,
                "x-kubernetes-group-version-kind": gvk,
                "parameters": params,
                "responses": ok,
            })
        };
        paths.insert(
            base.clone(),
            json!({
                "get": op("list", vec![param("labelSelector", "query"), param("fieldSelector", "query")]),
                "post": op("post", vec![param("fieldValidation", "query")]),
                "parameters": if r.namespaced { vec![param("namespace", "path")] } else { vec![] },
            }),
        );
        paths.insert(
            format!("{base}/{{name}}"),
            json!({
                "get": op("get", vec![]),
                "put": op("put", vec![param("fieldValidation", "query")]),
                "patch": op("patch", vec![param("fieldValidation", "query"), param("force", "query")]),
                "delete": op("delete", vec![param("propagationPolicy", "query")]),
                "parameters": item_params,
            }),
        );
        schemas.insert(
            schema_name,
            json!({
                "type": "object",
                "description": format!("{} ({}) as served by the simulator; the API server validates fields.", r.kind, r.api_version()),
                "x-kubernetes-group-version-kind": [gvk],
                "properties": {
                    "apiVersion": {"type": "string"},
                    "kind": {"type": "string"},
                    "metadata": {"type": "object"},
                    "spec": {"type": "object"},
                    "status": {"type": "object"},
                    "data": {"type": "object"},
                },
            }),
        );
    }
    Some(json!({
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes (orchestrator simulator)", "version": "v1.32.0"},
        "paths": paths,
        "components": {"schemas": schemas},
    }))
}
