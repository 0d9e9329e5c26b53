//! The cells of the API server's built-in printers (`kubectl get` columns),
//! by type: Jobs, Pods, Events, Namespaces, ConfigMaps, Secrets, Leases,
//! Kueue's queues and priority classes; any other type prints NAME and AGE.

use chrono::{DateTime, Utc};
use serde_json::{json, Map, Value};

use super::resources;

/// `duration.HumanDuration` of the Kubernetes printers, for whole seconds.
pub fn human_duration(secs: i64) -> String {
    if secs < -1 {
        return "<invalid>".into();
    }
    if secs < 0 {
        return "0s".into();
    }
    if secs < 120 {
        return format!("{secs}s");
    }
    let (m, h) = (secs / 60, secs / 3600);
    let d = h / 24;
    let with = |big: i64, unit: &str, small: i64, sunit: &str| {
        if small == 0 {
            format!("{big}{unit}")
        } else {
            format!("{big}{unit}{small}{sunit}")
        }
    };
    match () {
        _ if m < 10 => with(m, "m", secs % 60, "s"),
        _ if m < 180 => format!("{m}m"),
        _ if h < 8 => with(h, "h", m % 60, "m"),
        _ if h < 48 => format!("{h}h"),
        _ if h < 24 * 8 => with(d, "d", h % 24, "h"),
        _ if d < 365 * 2 => format!("{d}d"),
        _ if d < 365 * 8 => with(d / 365, "y", d % 365, "d"),
        _ => format!("{}y", d / 365),
    }
}

fn time(v: &Value) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(v.as_str()?)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

/// Age of a timestamp field, `<unknown>` when unset (as the printers say).
fn since(v: &Value, now: DateTime<Utc>) -> String {
    match time(v) {
        Some(t) => human_duration((now - t).num_seconds()),
        None => "<unknown>".into(),
    }
}

fn s(v: &Value) -> &str {
    v.as_str().unwrap_or("")
}

fn or_none(v: &str) -> String {
    if v.is_empty() {
        "<none>".into()
    } else {
        v.to_string()
    }
}

fn has_condition(obj: &Value, kind: &str) -> bool {
    obj["status"]["conditions"].as_array().is_some_and(|cs| {
        cs.iter()
            .any(|c| c["type"] == kind && c["status"] == "True")
    })
}

fn job_cells(job: &Value, now: DateTime<Utc>) -> Vec<Value> {
    let succeeded = job["status"]["succeeded"].as_i64().unwrap_or(0);
    let completions = match job["spec"]["completions"].as_i64() {
        Some(c) => format!("{succeeded}/{c}"),
        None => match job["spec"]["parallelism"].as_i64().unwrap_or(0) {
            p if p > 1 => format!("{succeeded}/1 of {p}"),
            _ => format!("{succeeded}/1"),
        },
    };
    let st = &job["status"];
    let duration = match (time(&st["startTime"]), time(&st["completionTime"])) {
        (None, _) => String::new(),
        (Some(start), None) => human_duration((now - start).num_seconds()),
        (Some(start), Some(end)) => human_duration((end - start).num_seconds()),
    };
    let status = if has_condition(job, "Complete") {
        "Complete"
    } else if has_condition(job, "Failed") {
        "Failed"
    } else if !job["metadata"]["deletionTimestamp"].is_null() {
        "Terminating"
    } else if has_condition(job, "Suspended") {
        "Suspended"
    } else if has_condition(job, "FailureTarget") {
        "FailureTarget"
    } else if has_condition(job, "SuccessCriteriaMet") {
        "SuccessCriteriaMet"
    } else {
        "Running"
    };
    let containers = job["spec"]["template"]["spec"]["containers"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let join = |field: &str| {
        let v: Vec<&str> = containers.iter().map(|c| s(&c[field])).collect();
        v.join(",")
    };
    let selector = match job["spec"]["selector"]["matchLabels"].as_object() {
        Some(m) if !m.is_empty() => {
            let parts: Vec<String> = m.iter().map(|(k, v)| format!("{k}={}", s(v))).collect();
            parts.join(",")
        }
        _ => "<none>".into(),
    };
    let meta = &job["metadata"];
    vec![
        json!(s(&meta["name"])),
        json!(status),
        json!(completions),
        json!(duration),
        json!(since(&meta["creationTimestamp"], now)),
        json!(join("name")),
        json!(join("image")),
        json!(selector),
    ]
}

/// The pod's STATUS cell and restart count, by the printer's rules.
fn pod_reason(pod: &Value) -> (String, i64, i64) {
    let st = &pod["status"];
    let mut reason = match s(&st["reason"]) {
        "" => s(&st["phase"]).to_string(),
        r => r.to_string(),
    };
    let mut restarts = 0;
    let mut ready = 0;
    let inits = st["initContainerStatuses"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let total_inits = pod["spec"]["initContainers"].as_array().map_or(0, Vec::len);
    let mut initializing = false;
    for (i, c) in inits.iter().enumerate() {
        restarts += c["restartCount"].as_i64().unwrap_or(0);
        let term = &c["state"]["terminated"];
        let wait_reason = s(&c["state"]["waiting"]["reason"]);
        if term.is_object() && term["exitCode"].as_i64() == Some(0) {
            continue;
        }
        initializing = true;
        reason = if term.is_object() {
            match (s(&term["reason"]), term["signal"].as_i64().unwrap_or(0)) {
                ("", 0) => format!("Init:ExitCode:{}", term["exitCode"].as_i64().unwrap_or(0)),
                ("", sig) => format!("Init:Signal:{sig}"),
                (r, _) => format!("Init:{r}"),
            }
        } else if !wait_reason.is_empty() && wait_reason != "PodInitializing" {
            format!("Init:{wait_reason}")
        } else {
            format!("Init:{i}/{total_inits}")
        };
        break;
    }
    if !initializing {
        restarts = 0;
        let mut running = false;
        let statuses = st["containerStatuses"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        for c in statuses.iter().rev() {
            restarts += c["restartCount"].as_i64().unwrap_or(0);
            let state = &c["state"];
            let term = &state["terminated"];
            if !s(&state["waiting"]["reason"]).is_empty() {
                reason = s(&state["waiting"]["reason"]).to_string();
            } else if term.is_object() {
                reason = match (s(&term["reason"]), term["signal"].as_i64().unwrap_or(0)) {
                    ("", 0) => format!("ExitCode:{}", term["exitCode"].as_i64().unwrap_or(0)),
                    ("", sig) => format!("Signal:{sig}"),
                    (r, _) => r.to_string(),
                };
            } else if c["ready"] == true && state["running"].is_object() {
                running = true;
                ready += 1;
            }
        }
        if reason == "Completed" && running {
            reason = if has_condition(pod, "Ready") {
                "Running"
            } else {
                "NotReady"
            }
            .into();
        }
    }
    let terminal = matches!(s(&st["phase"]), "Succeeded" | "Failed");
    if !pod["metadata"]["deletionTimestamp"].is_null() && !terminal {
        reason = "Terminating".into();
    }
    (reason, restarts, ready)
}

fn pod_cells(pod: &Value, now: DateTime<Utc>) -> Vec<Value> {
    let (reason, restarts, ready) = pod_reason(pod);
    let total = pod["spec"]["containers"].as_array().map_or(0, Vec::len);
    let st = &pod["status"];
    let ip = match s(&st["podIPs"][0]["ip"]) {
        "" => s(&st["podIP"]),
        ip => ip,
    };
    let gates = pod["spec"]["readinessGates"].as_array().map_or(0, Vec::len);
    let gates = if gates == 0 {
        "<none>".to_string()
    } else {
        let passed = pod["spec"]["readinessGates"].as_array().map_or(0, |g| {
            g.iter()
                .filter(|g| has_condition(pod, s(&g["conditionType"])))
                .count()
        });
        format!("{passed}/{gates}")
    };
    vec![
        json!(s(&pod["metadata"]["name"])),
        json!(format!("{ready}/{total}")),
        json!(reason),
        json!(restarts.to_string()),
        json!(since(&pod["metadata"]["creationTimestamp"], now)),
        json!(or_none(ip)),
        json!(or_none(s(&pod["spec"]["nodeName"]))),
        json!(or_none(s(&st["nominatedNodeName"]))),
        json!(gates),
    ]
}

fn count(v: &Value) -> usize {
    v.as_object().map_or(0, Map::len)
}

fn event_cells(ev: &Value, now: DateTime<Utc>) -> Vec<Value> {
    let last = [
        &ev["lastTimestamp"],
        &ev["eventTime"],
        &ev["metadata"]["creationTimestamp"],
    ]
    .into_iter()
    .find(|t| time(t).is_some())
    .map_or_else(|| "<unknown>".to_string(), |t| since(t, now));
    let io = &ev["involvedObject"];
    vec![
        json!(last),
        json!(s(&ev["type"])),
        json!(s(&ev["reason"])),
        json!(format!(
            "{}/{}",
            s(&io["kind"]).to_lowercase(),
            s(&io["name"])
        )),
        json!(s(&ev["message"]).trim()),
        json!(ev["count"].as_i64().unwrap_or(1).to_string()),
        json!(s(&ev["metadata"]["name"])),
    ]
}

/// The cells of one object's row.
pub fn cells(res: usize, obj: &Value, now: DateTime<Utc>) -> Vec<Value> {
    let meta = &obj["metadata"];
    let name = json!(s(&meta["name"]));
    let age = json!(since(&meta["creationTimestamp"], now));
    match res {
        resources::JOBS => job_cells(obj, now),
        resources::PODS => pod_cells(obj, now),
        resources::EVENTS => event_cells(obj, now),
        resources::NAMESPACES => vec![name, json!(s(&obj["status"]["phase"])), age],
        resources::CONFIGMAPS => {
            vec![
                name,
                json!(count(&obj["data"]) + count(&obj["binaryData"])),
                age,
            ]
        }
        resources::SECRETS => vec![
            name,
            json!(s(&obj["type"])),
            json!(count(&obj["data"])),
            age,
        ],
        resources::LEASES => vec![name, json!(s(&obj["spec"]["holderIdentity"])), age],
        // Kueue's printer columns (its CRDs' additionalPrinterColumns).
        resources::LOCALQUEUES => vec![
            name,
            json!(s(&obj["spec"]["clusterQueue"])),
            obj["status"]["pendingWorkloads"].clone(),
            obj["status"]["admittedWorkloads"].clone(),
        ],
        resources::CLUSTERQUEUES => vec![
            name,
            json!(s(&obj["spec"]["cohort"])),
            json!(s(&obj["spec"]["queueingStrategy"])),
            obj["status"]["pendingWorkloads"].clone(),
            obj["status"]["admittedWorkloads"].clone(),
        ],
        resources::WORKLOADPRIORITYCLASSES => vec![name, obj["value"].clone(), age],
        _ => vec![name, age],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn human_duration_matches_the_kubernetes_printer() {
        let cases = [
            (-5, "<invalid>"),
            (-1, "0s"),
            (0, "0s"),
            (119, "119s"),
            (120, "2m"),
            (150, "2m30s"),
            (600, "10m"),
            (3 * 3600, "3h"),
            (3 * 3600 + 60, "3h1m"),
            (9 * 3600, "9h"),
            (50 * 3600, "2d2h"),
            (10 * 86400, "10d"),
            (800 * 86400, "2y70d"),
            (3000 * 86400, "8y"),
        ];
        for (secs, want) in cases {
            assert_eq!(human_duration(secs), want, "{secs}s");
        }
    }

    #[test]
    fn pod_status_follows_container_states() {
        let pod = json!({"spec": {"containers": [{"name": "a"}]}, "status": {"phase": "Succeeded",
            "containerStatuses": [{"restartCount": 1, "state": {"terminated": {"exitCode": 0, "reason": "Completed"}}}]}});
        assert_eq!(pod_reason(&pod), ("Completed".into(), 1, 0));
        let pod = json!({"spec": {"containers": [{"name": "a"}]}, "status": {"phase": "Running",
            "containerStatuses": [{"ready": true, "state": {"running": {}}}]}});
        assert_eq!(pod_reason(&pod), ("Running".into(), 0, 1));
    }
}
