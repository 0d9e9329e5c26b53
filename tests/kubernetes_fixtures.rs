//! Real Job objects (captured from clusters, and the Kubernetes API test
//! data's all-fields Job, in `tests/fixtures/kubernetes/`) against the two
//! things that read Jobs here: the service's Job-state mapping, and the
//! simulator, which must store a Job with every field and give it back.

mod common;

use k8s_openapi::api::batch::v1::Job;
use kube::api::{Api, PostParams};
use orchestrator::cluster::jobspec::ANNOTATION_CANCELLED;
use orchestrator::cluster::view::job_state;
use orchestrator::job::JobState;
use serde_json::{json, Value};

fn fixture_path(name: &str) -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/kubernetes")
        .join(name)
}

/// A captured Job (YAML).
fn captured(name: &str) -> Job {
    let text = std::fs::read_to_string(fixture_path(name)).expect("the fixture");
    serde_yaml_ng::from_str(&text).unwrap_or_else(|e| panic!("{name} is a Job: {e}"))
}

/// The API test data's all-fields Job, as JSON.
fn all_fields() -> Value {
    let bytes = std::fs::read(fixture_path(
        "k8s-api-testdata-batch.v1.Job.all-fields.json",
    ))
    .expect("the fixture");
    serde_json::from_slice(&bytes).expect("JSON")
}

#[test]
fn the_job_state_mapping_classifies_each_captured_job() {
    for (fixture, want) in [
        ("gitops-engine-job-running.yaml", JobState::Running),
        ("gitops-engine-job-succeeded.yaml", JobState::Succeeded),
        ("gitops-engine-job-failed.yaml", JobState::Failed),
        // Suspended with a `Suspended` condition: waiting for admission.
        ("gitops-engine-job-suspended.yaml", JobState::Queued),
    ] {
        assert_eq!(job_state(&captured(fixture)), want, "{fixture}");
    }
    // The all-fields Job is suspended; its one condition is of no known type.
    let job: Job = serde_json::from_value(all_fields()).expect("the all-fields Job");
    assert_eq!(job_state(&job), JobState::Queued, "all-fields Job");
}

#[test]
fn a_captured_job_marked_cancelled_or_failed_by_its_deadline_is_classified_as_such() {
    // Cancelling suspends and marks the Job; the mark decides.
    let mut job = captured("gitops-engine-job-suspended.yaml");
    job.metadata
        .annotations
        .get_or_insert_default()
        .insert(ANNOTATION_CANCELLED.into(), "2025-06-01T12:00:00Z".into());
    assert_eq!(job_state(&job), JobState::Cancelled);
    // A finished Job stays finished even if marked later.
    let mut done = captured("gitops-engine-job-succeeded.yaml");
    done.metadata.annotations = job.metadata.annotations.clone();
    assert_eq!(job_state(&done), JobState::Succeeded);
    // The failed capture, had it run past activeDeadlineSeconds.
    let mut late = captured("gitops-engine-job-failed.yaml");
    for c in late
        .status
        .as_mut()
        .and_then(|s| s.conditions.as_mut())
        .expect("conditions")
    {
        c.reason = Some("DeadlineExceeded".into());
    }
    assert_eq!(job_state(&late), JobState::TimedOut);
}

/// The all-fields Job made acceptable to an API server with the fewest
/// edits: DNS-label names (object and containers, which must also differ)
/// and a Job's restart policy; namespace `default`.
fn all_fields_acceptable() -> Value {
    let mut job = all_fields();
    job["metadata"]["name"] = json!("all-fields");
    job["metadata"]["namespace"] = json!("default");
    job["metadata"]["generateName"] = json!("all-fields-");
    // Finalizers of core kinds are standard or domain-qualified.
    job["metadata"]["finalizers"] = json!(["example.com/finalizersValue"]);
    // The manual selector uses a real operator and selects the template's
    // labels (ValidateLabelSelector, ValidateJobSpec).
    job["spec"]["selector"]["matchExpressions"][0]["operator"] = json!("In");
    let labels = &mut job["spec"]["template"]["metadata"]["labels"];
    labels["matchLabelsKey"] = json!("matchLabelsValue");
    labels["keyValue"] = json!("valuesValue");
    let pod = &mut job["spec"]["template"]["spec"];
    pod["restartPolicy"] = json!("Never");
    pod["serviceAccountName"] = json!("service-account-name");
    pod["nodeName"] = json!("node-name");
    pod["containers"][0]["name"] = json!("main");
    pod["initContainers"][0]["name"] = json!("init");
    // A volume has exactly one source (validateVolumeSource): the fixture's
    // one volume with every source becomes one volume per source, so every
    // field is still sent; mounts name the first, ports are valid.
    let all = pod["volumes"][0].take();
    let volumes: Vec<Value> = all
        .as_object()
        .expect("a volume")
        .iter()
        .filter(|(k, _)| *k != "name")
        .enumerate()
        .map(|(i, (k, v))| json!({"name": format!("vol{i}"), k.clone(): v}))
        .collect();
    pod["volumes"] = Value::Array(volumes);
    for c in ["containers", "initContainers"] {
        pod[c][0]["ports"][0]["name"] = json!("http");
        pod[c][0]["ports"][0]["protocol"] = json!("TCP");
        pod[c][0]["volumeMounts"][0]["name"] = json!("vol0");
        pod[c][0]["imagePullPolicy"] = json!("IfNotPresent");
        // One source per variable, none next to a value (validateEnvVarValueFrom),
        // one per envFrom entry (ValidateEnvFrom), referenced names subdomains.
        let env = pod[c][0]["env"][0].take();
        let mut vars = vec![json!({"name": env["name"], "value": env["value"]})];
        for (i, (src, sel)) in env["valueFrom"]
            .as_object()
            .expect("sources")
            .iter()
            .enumerate()
        {
            let mut sel = sel.clone();
            if sel.get("name").is_some() {
                sel["name"] = json!("name-value");
            }
            vars.push(json!({"name": format!("FROM_{i}"), "valueFrom": {src.clone(): sel}}));
        }
        pod[c][0]["env"] = Value::Array(vars);
        let from = pod[c][0]["envFrom"][0].take();
        pod[c][0]["envFrom"] = json!([
            {"prefix": from["prefix"], "configMapRef": {"name": "name-value",
                "optional": from["configMapRef"]["optional"]}},
            {"secretRef": {"name": "name-value", "optional": from["secretRef"]["optional"]}},
        ]);
        pod[c][0]["terminationMessagePolicy"] = json!("File");
    }
    // The completion mode and policies get values a real API server accepts
    // (validateJobSpec): every field stays present.
    let spec = &mut job["spec"];
    spec["completionMode"] = json!("Indexed");
    spec["maxFailedIndexes"] = json!(1);
    spec["podReplacementPolicy"] = json!("Failed");
    spec["successPolicy"]["rules"][0]["succeededIndexes"] = json!("0-1");
    let rule = spec["podFailurePolicy"]["rules"][0].take();
    spec["podFailurePolicy"]["rules"] = json!([
        {"action": "FailIndex", "onExitCodes": {"containerName": "main", "operator": "In",
            "values": rule["onExitCodes"]["values"]}},
        {"action": "Ignore", "onPodConditions": [{"type": rule["onPodConditions"][0]["type"],
            "status": "True"}]},
    ]);
    job
}

/// Differences between `sent` and `got` under `path`, one line each.
fn differences(sent: &Value, got: &Value) -> Vec<String> {
    let mut out = Vec::new();
    diff("", sent, got, &mut out);
    out
}

#[tokio::test]
async fn the_simulator_refuses_the_all_fields_job_as_is_like_an_api_server() {
    let sim = common::start_sim(60.0);
    let url = format!("{}/apis/batch/v1/namespaces/default/jobs", sim.url());
    let mut job = all_fields();
    job["metadata"]["namespace"] = json!("default");
    let resp = reqwest::Client::new()
        .post(&url)
        .json(&job)
        .send()
        .await
        .expect("POST");
    assert_eq!(resp.status().as_u16(), 422);
    let status: Value = resp.json().await.expect("a Status");
    assert_eq!(status["reason"], "Invalid", "{status}");
    let fields: Vec<&str> = status["details"]["causes"]
        .as_array()
        .expect("causes")
        .iter()
        .filter_map(|c| c["field"].as_str())
        .collect();
    for f in ["metadata.name", "spec.template.spec.restartPolicy"] {
        assert!(fields.contains(&f), "422 names {f}: {status}");
    }
}

#[tokio::test]
async fn the_simulator_stores_the_all_fields_job_and_gives_every_field_back() {
    let sim = common::start_sim(60.0);
    let raw = reqwest::Client::new();
    let url = format!("{}/apis/batch/v1/namespaces/default/jobs", sim.url());
    let sent = all_fields_acceptable();
    let resp = raw.post(&url).json(&sent).send().await.expect("POST");
    assert_eq!(resp.status().as_u16(), 201);
    assert!(
        resp.headers().get("warning").is_none(),
        "no field is unknown: {:?}",
        resp.headers().get_all("warning").iter().collect::<Vec<_>>()
    );
    let got: Value = raw
        .get(format!("{url}/all-fields"))
        .send()
        .await
        .expect("GET")
        .json()
        .await
        .expect("JSON");

    // Every field of the spec, the pod template included, comes back as sent.
    let spec = differences(&sent["spec"], &got["spec"]);
    assert!(spec.is_empty(), "the spec changed:\n{}", spec.join("\n"));
    // So do the client's metadata fields.
    for field in [
        "name",
        "namespace",
        "generateName",
        "labels",
        "annotations",
        "ownerReferences",
        "finalizers",
    ] {
        assert_eq!(
            got["metadata"][field], sent["metadata"][field],
            "metadata.{field}"
        );
    }
    // The server's own fields are the server's, as on a real API server.
    let meta = &got["metadata"];
    assert!(
        meta["uid"]
            .as_str()
            .is_some_and(|u| !u.is_empty() && u != "uidValue"),
        "{meta}"
    );
    assert!(
        meta["resourceVersion"]
            .as_str()
            .is_some_and(|rv| rv.parse::<u64>().is_ok()),
        "{meta}"
    );
    assert_ne!(
        meta["creationTimestamp"],
        sent["metadata"]["creationTimestamp"]
    );
    assert_eq!(meta["generation"], 1);
    for cleared in [
        "deletionTimestamp",
        "deletionGracePeriodSeconds",
        "selfLink",
    ] {
        assert!(
            meta.get(cleared).is_none(),
            "metadata.{cleared} is not kept: {meta}"
        );
    }
    // Status is not written by create; the Job controller writes its own.
    for counter in [
        "active",
        "succeeded",
        "failed",
        "startTime",
        "completionTime",
    ] {
        assert!(
            got["status"].get(counter).is_none(),
            "status.{counter}: {}",
            got["status"]
        );
    }

    // The typed client reads every field, and a replace keeps them all.
    let jobs: Api<Job> = Api::namespaced(sim.client().await.expect("a client"), "default");
    let typed = jobs.get("all-fields").await.expect("GET with kube");
    let as_json = serde_json::to_value(&typed).expect("serialize");
    let read = differences(&got["spec"], &as_json["spec"]);
    assert!(read.is_empty(), "the typed Job lost:\n{}", read.join("\n"));
    assert_eq!(job_state(&typed), JobState::Queued, "suspended: queued");
    let replaced = jobs
        .replace("all-fields", &PostParams::default(), &typed)
        .await
        .expect("replace");
    let replaced = serde_json::to_value(&replaced).expect("serialize");
    let kept = differences(&sent["spec"], &replaced["spec"]);
    assert!(kept.is_empty(), "the replace changed:\n{}", kept.join("\n"));
}

fn diff(path: &str, a: &Value, b: &Value, out: &mut Vec<String>) {
    // Objects key by key, arrays of equal length item by item.
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            for (k, v) in x {
                match y.get(k) {
                    Some(w) => diff(&format!("{path}.{k}"), v, w, out),
                    None => out.push(format!("missing {path}.{k}")),
                }
            }
            for k in y.keys() {
                if !x.contains_key(k) {
                    out.push(format!("added {path}.{k} = {}", y[k]));
                }
            }
        }
        (Value::Array(x), Value::Array(y)) if x.len() == y.len() => {
            for (i, (v, w)) in x.iter().zip(y).enumerate() {
                diff(&format!("{path}[{i}]"), v, w, out);
            }
        }
        _ if a == b => {}
        _ => out.push(format!("changed {path}: {a} -> {b}")),
    }
}
