//! OpenAPI documents with the real Kubernetes schemas (vendored in
//! `openapi/definitions.json`, see its README): the v3 index at
//! `/openapi/v3`, one v3 document per group/version, and `/openapi/v2`.
//! Operations carry `x-kubernetes-group-version-kind` and the
//! `fieldValidation` parameter, so kubectl uses server-side field
//! validation, and `kubectl explain` prints the official field docs.

use std::sync::OnceLock;

use serde_json::{json, Map, Value};

use super::resources::{group_versions, Resource, KUEUE_GROUP, RESOURCES};

/// Changes whenever the documents change, for kubectl's discovery cache.
const DOC_HASH: &str = "sim-v2";

/// Types every document carries besides the served kinds.
const META_TYPES: [&str; 4] = [
    "io.k8s.apimachinery.pkg.apis.meta.v1.Status",
    "io.k8s.apimachinery.pkg.apis.meta.v1.DeleteOptions",
    "io.k8s.apimachinery.pkg.apis.meta.v1.WatchEvent",
    "io.k8s.apimachinery.pkg.apis.meta.v1.Patch",
];

/// The vendored definitions, by name.
fn definitions() -> &'static Map<String, Value> {
    static DEFS: OnceLock<Map<String, Value>> = OnceLock::new();
    DEFS.get_or_init(|| {
        let doc: Value =
            serde_json::from_str(include_str!("../openapi/definitions.json")).unwrap_or_default();
        doc.get("definitions")
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default()
    })
}

/// `io.k8s.api.batch.v1.Job` for a served resource.
pub fn schema_name(r: &Resource) -> String {
    let pkg = match r.group {
        "" => "core",
        g => g.split('.').next().unwrap_or(g),
    };
    format!("io.k8s.api.{pkg}.{}.{}", r.version, r.kind)
}

fn gv_path(group: &str, version: &str) -> String {
    if group.is_empty() {
        format!("api/{version}")
    } else {
        format!("apis/{group}/{version}")
    }
}

/// The named definitions and everything they reference, with `$ref`s
/// rewritten from `#/definitions/` to `prefix`.
fn closure(roots: &[String], prefix: &str) -> Map<String, Value> {
    fn refs(v: &Value, out: &mut Vec<String>) {
        match v {
            Value::Object(m) => {
                for (k, x) in m {
                    match (k.as_str(), x) {
                        ("$ref", Value::String(r)) => {
                            out.push(r.rsplit('/').next().unwrap_or("").to_string())
                        }
                        _ => refs(x, out),
                    }
                }
            }
            Value::Array(a) => a.iter().for_each(|x| refs(x, out)),
            _ => {}
        }
    }
    fn rewrite(v: &mut Value, prefix: &str) {
        match v {
            Value::Object(m) => {
                for (k, x) in m.iter_mut() {
                    match (k.as_str(), x) {
                        ("$ref", Value::String(r)) => {
                            let name = r.rsplit('/').next().unwrap_or("").to_string();
                            *r = format!("{prefix}{name}");
                        }
                        (_, x) => rewrite(x, prefix),
                    }
                }
            }
            Value::Array(a) => a.iter_mut().for_each(|x| rewrite(x, prefix)),
            _ => {}
        }
    }
    let defs = definitions();
    let mut out = Map::new();
    let mut todo: Vec<String> = roots.to_vec();
    while let Some(name) = todo.pop() {
        if out.contains_key(&name) {
            continue;
        }
        let Some(def) = defs.get(&name) else { continue };
        refs(def, &mut todo);
        let mut def = def.clone();
        rewrite(&mut def, prefix);
        out.insert(name, def);
    }
    out
}

fn served(group: &'static str, version: &'static str) -> impl Iterator<Item = &'static Resource> {
    builtin().filter(move |r| r.group == group && r.version == version)
}

/// The types with vendored schemas (Kueue's have none: not in OpenAPI).
fn builtin() -> impl Iterator<Item = &'static Resource> {
    RESOURCES.iter().filter(|r| r.group != KUEUE_GROUP)
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

/// Paths of one resource; `param` builds a parameter, `schema_ref` a
/// reference to a named schema.
fn resource_paths(
    r: &Resource,
    paths: &mut Map<String, Value>,
    param: &dyn Fn(&str, &str) -> Value,
    responses: &dyn Fn(&str) -> Value,
) {
    let gvk = json!({"group": r.group, "version": r.version, "kind": r.kind});
    let base = if r.namespaced {
        format!(
            "/{}/namespaces/{{namespace}}/{}",
            gv_path(r.group, r.version),
            r.plural
        )
    } else {
        format!("/{}/{}", gv_path(r.group, r.version), r.plural)
    };
    let mut item_params = vec![param("name", "path")];
    if r.namespaced {
        item_params.push(param("namespace", "path"));
    }
    let name = schema_name(r);
    let list_name = format!("{name}List");
    let op = |action: &str, extra: Vec<Value>, schema: &str| {
        let mut params = vec![param("dryRun", "query"), param("fieldManager", "query")];
        params.extend(extra);
        json!({
            "operationId": format!("{action}{}", r.kind),
            "x-kubernetes-action": action,
            "x-kubernetes-group-version-kind": gvk,
            "parameters": params,
            "responses": responses(schema),
        })
    };
    paths.insert(
        base.clone(),
        json!({
            "get": op("list", vec![param("labelSelector", "query"), param("fieldSelector", "query")], &list_name),
            "post": op("post", vec![param("fieldValidation", "query")], &name),
            "parameters": if r.namespaced { vec![param("namespace", "path")] } else { vec![] },
        }),
    );
    paths.insert(
        format!("{base}/{{name}}"),
        json!({
            "get": op("get", vec![], &name),
            "put": op("put", vec![param("fieldValidation", "query")], &name),
            "patch": op("patch", vec![param("fieldValidation", "query"), param("force", "query")], &name),
            "delete": op("delete", vec![param("propagationPolicy", "query")], "io.k8s.apimachinery.pkg.apis.meta.v1.Status"),
            "parameters": item_params,
        }),
    );
}

fn roots<'a>(resources: impl Iterator<Item = &'a Resource>) -> Vec<String> {
    let mut roots: Vec<String> = META_TYPES.iter().map(|s| s.to_string()).collect();
    for r in resources {
        roots.push(schema_name(r));
        roots.push(format!("{}List", schema_name(r)));
    }
    roots
}

/// `GET /openapi/v3/<api/v1 | apis/group/version>`.
pub fn document(gv: &str) -> Option<Value> {
    let (group, version) = group_versions()
        .into_iter()
        .find(|(g, v)| gv_path(g, v) == gv)?;
    let param = |name: &str, location: &str| json!({"name": name, "in": location, "schema": {"type": "string", "uniqueItems": true}});
    let responses = |schema: &str| json!({"200": {"description": "OK", "content": {"application/json": {"schema": {"$ref": format!("#/components/schemas/{schema}")}}}}});
    let mut paths = Map::new();
    for r in served(group, version) {
        resource_paths(r, &mut paths, &param, &responses);
    }
    Some(json!({
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes", "version": "v1.32.0"},
        "paths": paths,
        "components": {"schemas": closure(&roots(served(group, version)), "#/components/schemas/")},
    }))
}

/// `GET /openapi/v2` (JSON; the protobuf form is not served).
pub fn swagger() -> &'static Value {
    static DOC: OnceLock<Value> = OnceLock::new();
    DOC.get_or_init(|| {
        let param = |name: &str, location: &str| {
            let mut p =
                json!({"name": name, "in": location, "type": "string", "uniqueItems": true});
            if location == "path" {
                p["required"] = json!(true);
            }
            p
        };
        let responses = |schema: &str| {
            json!({"200": {"description": "OK", "schema": {"$ref": format!("#/definitions/{schema}")}}})
        };
        let mut paths = Map::new();
        for r in builtin() {
            resource_paths(r, &mut paths, &param, &responses);
        }
        json!({
            "swagger": "2.0",
            "info": {"title": "Kubernetes", "version": "v1.32.0"},
            "paths": paths,
            "definitions": closure(&roots(builtin()), "#/definitions/"),
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_batch_document_holds_the_real_job_schema_and_what_it_references() {
        let doc = document("apis/batch/v1").expect("served");
        let schemas = &doc["components"]["schemas"];
        let job = &schemas["io.k8s.api.batch.v1.Job"];
        assert_eq!(
            job["x-kubernetes-group-version-kind"][0],
            json!({"group": "batch", "kind": "Job", "version": "v1"})
        );
        assert_eq!(
            job["properties"]["spec"]["$ref"],
            "#/components/schemas/io.k8s.api.batch.v1.JobSpec"
        );
        let spec = &schemas["io.k8s.api.batch.v1.JobSpec"];
        assert!(spec["properties"]["backoffLimit"]["description"]
            .as_str()
            .is_some_and(|d| d.contains("retries")));
        // Referenced core types come along.
        assert!(schemas["io.k8s.api.core.v1.PodSpec"].is_object());
        assert!(!doc.to_string().contains("#/definitions/"));
    }

    #[test]
    fn swagger_v2_resolves_every_reference() {
        let doc = swagger();
        let text = doc.to_string();
        let defs = doc["definitions"].as_object().expect("definitions");
        for piece in text.split("\"$ref\":\"#/definitions/").skip(1) {
            let name = piece.split('"').next().unwrap_or("");
            assert!(defs.contains_key(name), "unresolved {name}");
        }
        assert!(defs.len() > 100, "{}", defs.len());
    }
}
