//! `GET .../pods/NAME/log`: the lines the fake kubelet "printed" for a
//! container, optionally only the last `tailLines`, or followed.

// `ApiError` is a whole `Status` (about 160 bytes); errors are the cold path.
#![allow(clippy::result_large_err)]

use std::collections::HashMap;
use std::sync::Arc;

use actix_web::HttpResponse;

use super::error::ApiError;
use super::request::flag;
use super::resources;
use super::server::SimState;
use super::watch;

/// Serves a container's log of one pod.
pub fn pod_log(
    state: &Arc<SimState>,
    ns: &str,
    name: &str,
    q: &HashMap<String, String>,
) -> Result<HttpResponse, ApiError> {
    let pod = state.store.get(resources::PODS, ns, name)?;
    let containers: Vec<String> = ["initContainers", "containers"]
        .iter()
        .flat_map(|f| pod["spec"][f].as_array().cloned().unwrap_or_default())
        .filter_map(|c| c["name"].as_str().map(str::to_string))
        .collect();
    let main: Vec<&String> = pod["spec"]["containers"]
        .as_array()
        .map(|cs| {
            cs.iter()
                .filter_map(|c| c["name"].as_str())
                .filter_map(|n| containers.iter().find(|x| x.as_str() == n))
                .collect()
        })
        .unwrap_or_default();
    let container = match q.get("container").filter(|c| !c.is_empty()) {
        Some(c) if containers.contains(c) => c.clone(),
        Some(c) => {
            return Err(ApiError::bad_request(format!(
                "container {c} is not valid for pod {name}"
            )))
        }
        None if main.len() == 1 => main[0].clone(),
        None => {
            return Err(ApiError::bad_request(format!(
                "a container name must be specified for pod {name}, choose one of: [{}]",
                containers.join(" ")
            )))
        }
    };
    let (first, all) = state.store.log_window(ns, name, &container);
    let skip = match q.get("tailLines").and_then(|t| t.parse::<usize>().ok()) {
        Some(n) => all.len().saturating_sub(n),
        None => 0,
    };
    if flag(q, "follow") {
        return Ok(watch::follow_logs(
            state.clone(),
            ns.to_string(),
            name.to_string(),
            container,
            first + skip,
        ));
    }
    let mut text = String::new();
    for l in &all[skip..] {
        text.push_str(l);
        text.push('\n');
    }
    Ok(HttpResponse::Ok().content_type("text/plain").body(text))
}
