//! kubectl's typed `create` commands send protobuf bodies
//! (`Content-Type: application/vnd.kubernetes.protobuf`, observed on the wire
//! from kubectl 1.32); a real API server accepts them and answers 201.
//! Source: kubectl's `create secret|configmap|namespace|job` reference pages
//! (kubernetes.io/docs/reference/kubectl/generated/kubectl_create/), whose
//! examples print `<kind>/<name> created`.

use base64::Engine;

use super::kubectl_support::Cluster;

#[test]
fn create_secret_generic_stores_the_literal_base64_encoded() {
    let c = Cluster::start();
    let out = c.ok(&[
        "create",
        "secret",
        "generic",
        "agent-token",
        "--from-literal=token=s3cr3t",
        "--from-literal=empty=",
    ]);
    assert_eq!(out.trim(), "secret/agent-token created");
    let s = c.json(&["get", "secret", "agent-token"]);
    let b64 = |v: &str| base64::engine::general_purpose::STANDARD.encode(v);
    assert_eq!(s["data"]["token"], b64("s3cr3t"), "{s}");
    assert_eq!(s["data"]["empty"], "", "{s}");
    // The API server defaults the type (SetDefaults_Secret).
    assert_eq!(s["type"], "Opaque", "{s}");
    assert!(s["metadata"]["uid"].as_str().is_some_and(|u| !u.is_empty()));
}

#[test]
fn create_configmap_from_literals_and_a_file() {
    let c = Cluster::start();
    let f = c.file("settings.ini", "[a]\nb = c\n");
    let from_file = format!("--from-file={f}");
    let out = c.ok(&[
        "create",
        "configmap",
        "agent-settings",
        "--from-literal=mode=fast",
        &from_file,
    ]);
    assert_eq!(out.trim(), "configmap/agent-settings created");
    let cm = c.json(&["get", "configmap", "agent-settings"]);
    assert_eq!(cm["data"]["mode"], "fast", "{cm}");
    assert_eq!(cm["data"]["settings.ini"], "[a]\nb = c\n", "{cm}");
}

#[test]
fn create_namespace_then_a_configmap_in_it() {
    let c = Cluster::start();
    assert_eq!(
        c.ok(&["create", "ns", "agents"]).trim(),
        "namespace/agents created"
    );
    let ns = c.json(&["get", "ns", "agents"]);
    assert_eq!(ns["status"]["phase"], "Active", "{ns}");
    // The `kubernetes` finalizer every namespace gets (NamespaceSpec docs).
    assert_eq!(ns["spec"]["finalizers"][0], "kubernetes", "{ns}");
    c.ok(&[
        "create",
        "configmap",
        "x",
        "-n",
        "agents",
        "--from-literal=a=b",
    ]);
    // A name that is not a DNS-1123 label is refused by the server with 422.
    let err = c.fails(&["create", "ns", "Not_Valid"]);
    assert!(err.contains("is invalid"), "{err}");
}

#[test]
fn create_job_from_an_image_runs_to_completion() {
    let c = Cluster::start();
    let out = c.ok(&[
        "create",
        "job",
        "hello",
        "--image=busybox:1.36",
        "--",
        "echo",
        "hi",
    ]);
    assert_eq!(out.trim(), "job.batch/hello created");
    let job = c.json(&["get", "job", "hello"]);
    let pod = &job["spec"]["template"]["spec"];
    assert_eq!(pod["restartPolicy"], "Never", "{job}");
    assert_eq!(pod["containers"][0]["image"], "busybox:1.36", "{job}");
    assert_eq!(
        pod["containers"][0]["command"],
        serde_json::json!(["echo", "hi"]),
        "{job}"
    );
    // Defaults a real server applies to such a Job (SetDefaults_Job).
    assert_eq!(job["spec"]["backoffLimit"], 6, "{job}");
    assert_eq!(job["spec"]["completions"], 1, "{job}");
    assert_eq!(job["spec"]["parallelism"], 1, "{job}");
    c.wait_for("Complete", &["hello"]);
}
