//! What the fake kubelet "prints" for a container.

use serde_json::Value;

use crate::store::Store;

/// The lines the fake kubelet "prints" for a container: image, the command
/// and args *after* Kubernetes' `$(VAR)` expansion (what the process would
/// get as argv, see [`crate::expansion`]), and env *names* (values are
/// never printed).
pub(super) fn describe(
    store: &Store,
    pod: &Value,
    c: &Value,
    run: Option<(f64, i32)>,
) -> Vec<String> {
    let ns = pod["metadata"]["namespace"].as_str().unwrap_or("");
    let env_values = crate::expansion::environment(store, ns, pod, c);
    let list = |v: &Value| {
        serde_json::to_string(&crate::expansion::expand_list(v, &env_values)).unwrap_or_default()
    };
    let env: Vec<String> = c["env"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|e| {
            let n = e["name"].as_str()?;
            let src = if e["valueFrom"]["secretKeyRef"].is_object() {
                " (from secret)"
            } else if e["valueFrom"].is_object() {
                " (from reference)"
            } else {
                ""
            };
            Some(format!("{n}{src}"))
        })
        .collect();
    let env_from: Vec<String> = c["envFrom"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|e| {
            e["secretRef"]["name"]
                .as_str()
                .map(|s| format!("secret/{s}"))
                .or_else(|| {
                    e["configMapRef"]["name"]
                        .as_str()
                        .map(|s| format!("configmap/{s}"))
                })
        })
        .collect();
    let mut out = vec![
        format!(
            "[sim] simulated container {:?}: no process runs",
            c["name"].as_str().unwrap_or("")
        ),
        format!("[sim] image: {}", c["image"].as_str().unwrap_or("")),
        format!("[sim] command: {}", list(&c["command"])),
        format!("[sim] args: {}", list(&c["args"])),
        format!(
            "[sim] workingDir: {}",
            c["workingDir"].as_str().unwrap_or("")
        ),
        format!("[sim] env: {}", env.join(", ")),
    ];
    if !env_from.is_empty() {
        out.push(format!("[sim] envFrom: {}", env_from.join(", ")));
    }
    if let Some((secs, code)) = run {
        out.push(format!(
            "[sim] running for {secs}s, then exiting with code {code}"
        ));
    }
    out
}
