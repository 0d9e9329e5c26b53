//! The embedded API server as the real `kubectl` sees it. Each test starts a
//! simulator in-process, writes its kubeconfig to a temp file and runs the
//! `kubectl` binary (from PATH, or `$KUBECTL`) as a subprocess, always with
//! `--kubeconfig`, a fresh `--cache-dir` and a `--request-timeout`, and with
//! validation on (no `--validate=false`). Every wait is bounded.

mod kubectl_support;

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use kubectl_support::*;
use serde_json::json;

const JOB_COLUMNS: [&str; 5] = ["NAME", "STATUS", "COMPLETIONS", "DURATION", "AGE"];

/// The table row of `name` (first cell) in `kubectl get` output.
fn row<'a>(out: &'a str, name: &str) -> Vec<&'a str> {
    out.lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>())
        .find(|cells| cells.first() == Some(&name))
        .unwrap_or_else(|| panic!("no row for {name} in:\n{out}"))
}

fn header(out: &str) -> Vec<&str> {
    out.lines()
        .next()
        .unwrap_or("")
        .split("  ")
        .map(str::trim)
        .filter(|c| !c.is_empty())
        .collect()
}

#[test]
fn a_job_created_from_yaml_is_listed_by_get_jobs_and_get_jobs_o_json() {
    let c = Cluster::start();
    let out = c.create_job("hello", "30", false, "demo");
    assert_eq!(out.trim(), "job.batch/hello created");

    let table = c.ok(&["get", "jobs"]);
    assert_eq!(header(&table), JOB_COLUMNS, "{table}");
    assert_eq!(row(&table, "hello")[1..3], ["Running", "0/1"], "{table}");

    let list = c.json(&["get", "jobs"]);
    assert_eq!(list["kind"], "List");
    let items = list["items"].as_array().expect("items");
    assert_eq!(items.len(), 1, "{list}");
    let job = &items[0];
    assert_eq!(
        (job["apiVersion"].as_str(), job["kind"].as_str()),
        (Some("batch/v1"), Some("Job"))
    );
    assert_eq!(job["metadata"]["name"], "hello");
    for f in ["uid", "resourceVersion", "creationTimestamp"] {
        assert!(
            job["metadata"][f].as_str().is_some_and(|s| !s.is_empty()),
            "{f} unset: {job}"
        );
    }
    assert_eq!(
        job["spec"]["template"]["spec"]["containers"][0]["image"],
        "registry.example/agent:1.0"
    );
    assert_eq!(
        c.json(&["get", "job", "hello"])["metadata"]["uid"],
        job["metadata"]["uid"]
    );
}

#[test]
fn kubectl_wait_returns_once_the_job_is_complete_and_get_shows_1_of_1() {
    let c = Cluster::start();
    c.create_job("quick", "0.3", false, "demo");
    c.wait_for("complete", &["quick"]);
    let table = c.ok(&["get", "jobs"]);
    assert_eq!(row(&table, "quick")[1..3], ["Complete", "1/1"], "{table}");
    assert_eq!(
        c.ok(&["get", "job", "quick", "-o", "jsonpath={.status.succeeded}"]),
        "1"
    );
    let wide = c.ok(&["get", "jobs", "-o", "wide"]);
    assert!(
        header(&wide).ends_with(&["CONTAINERS", "IMAGES", "SELECTOR"]),
        "{wide}"
    );
    assert_eq!(
        row(&wide, "quick")[5..7],
        ["agent", "registry.example/agent:1.0"],
        "{wide}"
    );
}

#[test]
fn kubectl_get_jobs_watch_prints_the_job_s_changes_until_its_request_timeout() {
    let c = Cluster::start();
    let state = c.server.state().clone();
    let watcher = std::thread::scope(|s| {
        let w = s.spawn(|| {
            c.run(
                &["get", "jobs", "-w", "--request-timeout=4s"],
                Duration::from_secs(15),
            )
        });
        let deadline = Instant::now() + Duration::from_secs(10);
        while state.open_watches.load(Ordering::Relaxed) == 0 {
            assert!(
                Instant::now() < deadline,
                "kubectl get -w never opened a watch"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        c.create_job("watched", "0.3", false, "demo");
        w.join().expect("watch thread")
    });
    assert!(
        !watcher.timed_out,
        "kubectl get -w outlived its --request-timeout"
    );
    assert!(watcher.success, "kubectl get -w failed: {}", watcher.stderr);
    let out = &watcher.stdout;
    assert_eq!(
        out.lines().filter(|l| l.starts_with("NAME")).count(),
        1,
        "one header:\n{out}"
    );
    assert_eq!(header(out), JOB_COLUMNS, "{out}");
    let rows: Vec<&str> = out.lines().filter(|l| l.starts_with("watched ")).collect();
    assert!(
        rows.len() >= 2,
        "the job's changes should each print a row:\n{out}"
    );
    assert!(
        rows[0].contains("Running") && rows[0].contains("0/1"),
        "{out}"
    );
    let last = rows.last().copied().unwrap_or_default();
    assert!(last.contains("Complete") && last.contains("1/1"), "{out}");
}

#[test]
fn kubectl_patch_unsuspends_a_suspended_job_by_strategic_merge_and_by_merge_patch() {
    let c = Cluster::start();
    c.create_job("smp", "0.3", true, "s1");
    c.create_job("merge", "0.3", true, "s2");
    c.wait_for("Suspended", &["smp", "merge"]);
    let table = c.ok(&["get", "jobs"]);
    for j in ["smp", "merge"] {
        assert_eq!(row(&table, j)[1..3], ["Suspended", "0/1"], "{table}");
    }
    assert_eq!(
        c.json(&["get", "pods"])["items"],
        json!([]),
        "a suspended Job has no pods"
    );

    let unsuspend = r#"{"spec":{"suspend":false}}"#;
    assert_eq!(
        c.ok(&["patch", "job", "smp", "-p", unsuspend]).trim(),
        "job.batch/smp patched"
    );
    let out = c.ok(&["patch", "job", "merge", "--type=merge", "-p", unsuspend]);
    assert_eq!(out.trim(), "job.batch/merge patched");
    c.wait_for("complete", &["smp", "merge"]);
    for j in ["smp", "merge"] {
        assert_eq!(
            c.ok(&["get", "job", j, "-o", "jsonpath={.spec.suspend}"]),
            "false"
        );
    }
}

#[test]
fn kubectl_logs_job_shows_the_fake_kubelet_lines_with_command_args_and_env_names() {
    let c = Cluster::start();
    c.create_job("logged", "0.2", false, "demo");
    c.wait_for("complete", &["logged"]);
    let logs = c.ok(&["logs", "job/logged"]);
    assert!(logs.lines().all(|l| l.starts_with("[sim] ")), "{logs}");
    for want in ["/bin/agent", "--task", "fix-the-bug", "TASK_ID"] {
        assert!(logs.contains(want), "logs should mention {want}:\n{logs}");
    }
    assert!(
        !logs.contains("value-that-must-not-be-logged"),
        "env values leak:\n{logs}"
    );
}

#[test]
fn kubectl_delete_removes_the_job_and_its_pods() {
    let c = Cluster::start();
    c.create_job("doomed", "0.2", false, "demo");
    c.wait_for("complete", &["doomed"]);
    assert_eq!(
        c.ok(&["delete", "job", "doomed"]).trim(),
        "job.batch \"doomed\" deleted"
    );
    let err = c.fails(&["get", "job", "doomed"]);
    assert!(
        err.contains("NotFound") && err.contains("not found"),
        "{err}"
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    while !c.json(&["get", "pods", "-l", "job-name=doomed"])["items"]
        .as_array()
        .is_some_and(Vec::is_empty)
    {
        assert!(
            Instant::now() < deadline,
            "the Job's pods were not garbage-collected"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn creating_the_same_job_twice_fails_with_already_exists() {
    let c = Cluster::start();
    c.create_job("twice", "30", false, "demo");
    let f = c.file("again.yaml", &job_yaml("twice", "30", false, "demo"));
    let err = c.fails(&["create", "-f", &f]);
    assert!(err.contains("AlreadyExists"), "{err}");
    assert!(
        err.contains(r#"jobs.batch "twice" already exists"#),
        "{err}"
    );
}

#[test]
fn a_job_name_of_64_characters_fails_with_invalid_and_63_are_accepted() {
    let c = Cluster::start();
    let long = "a".repeat(64);
    let f = c.file("long.yaml", &job_yaml(&long, "30", true, "demo"));
    let err = c.fails(&["create", "-f", &f]);
    assert!(
        err.contains("is invalid") && err.contains("Invalid value"),
        "{err}"
    );
    assert!(err.contains("must be no more than 63 characters"), "{err}");
    assert_eq!(c.json(&["get", "jobs"])["items"], json!([]));
    let out = c.create_job(&"b".repeat(63), "30", true, "demo");
    assert!(out.contains(" created"), "{out}");
}

#[test]
fn kubectl_apply_twice_creates_then_updates_the_changed_label() {
    let c = Cluster::start();
    let f = c.file("applied.yaml", &job_yaml("applied", "30", true, "v1"));
    assert_eq!(
        c.ok(&["apply", "-f", &f]).trim(),
        "job.batch/applied created"
    );
    assert_eq!(
        c.ok(&["apply", "-f", &f]).trim(),
        "job.batch/applied unchanged"
    );
    let uid = c.json(&["get", "job", "applied"])["metadata"]["uid"].clone();

    let f = c.file("applied.yaml", &job_yaml("applied", "30", true, "v2"));
    let r = c.run(&["apply", "-f", &f], RUN_LIMIT);
    assert!(r.success, "second apply failed: {}", r.stderr);
    assert_eq!(r.stdout.trim(), "job.batch/applied configured");
    assert!(!r.stderr.contains("Warning"), "{}", r.stderr);
    let job = c.json(&["get", "job", "applied"]);
    assert_eq!(
        job["metadata"]["uid"], uid,
        "apply must update, not recreate"
    );
    assert_eq!(job["metadata"]["labels"]["app"], "v2");
    let last =
        job["metadata"]["annotations"]["kubectl.kubernetes.io/last-applied-configuration"].as_str();
    assert!(last.is_some_and(|a| a.contains(r#""app":"v2""#)), "{job}");
    assert!(c.ok(&["get", "jobs", "-l", "app=v2"]).contains("applied"));
    let r = c.run(&["get", "jobs", "-l", "app=v1"], RUN_LIMIT);
    assert!(
        r.success && r.stderr.contains("No resources found"),
        "{}",
        r.stderr
    );
}

#[test]
fn kubectl_get_pods_with_a_label_selector_lists_only_the_matching_pods() {
    let c = Cluster::start();
    c.create_job("red", "0.2", false, "red");
    c.create_job("blue", "0.2", false, "blue");
    c.wait_for("complete", &["red", "blue"]);
    let red = c.ok(&["get", "pods", "-l", "app=red"]);
    assert_eq!(
        header(&red),
        ["NAME", "READY", "STATUS", "RESTARTS", "AGE"],
        "{red}"
    );
    let lines: Vec<&str> = red.lines().skip(1).collect();
    assert_eq!(lines.len(), 1, "{red}");
    let cells: Vec<&str> = lines[0].split_whitespace().collect();
    assert!(cells[0].starts_with("red-"), "{red}");
    assert_eq!(cells[1..4], ["0/1", "Completed", "0"], "{red}");
    let all = c.ok(&["get", "all", "-l", "app=red", "-o", "name"]);
    assert!(
        all.contains("pod/red-") && all.contains("job.batch/red"),
        "{all}"
    );
    for sel in ["app!=red", "app in (blue)", "job-name=blue"] {
        let out = c.ok(&["get", "pods", "-l", sel, "-o", "name"]);
        assert!(
            out.trim().starts_with("pod/blue-") && out.trim().lines().count() == 1,
            "{sel}: {out}"
        );
    }
}

#[test]
fn kubectl_get_prints_the_real_columns_for_namespaces_configmaps_and_leases() {
    let c = Cluster::start();
    let ns = c.ok(&["get", "namespaces"]);
    assert_eq!(header(&ns), ["NAME", "STATUS", "AGE"], "{ns}");
    assert_eq!(row(&ns, "default")[1], "Active", "{ns}");

    // From YAML: `kubectl create configmap` writes protobuf, which the simulator does not speak.
    let cm = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: settings\ndata:\n  a: \"1\"\n  b: \"2\"\n";
    c.ok(&["create", "-f", &c.file("cm.yaml", cm)]);
    let cm = c.ok(&["get", "configmap", "settings"]);
    assert_eq!(header(&cm), ["NAME", "DATA", "AGE"], "{cm}");
    assert_eq!(row(&cm, "settings")[1], "2", "{cm}");

    let lease = "apiVersion: coordination.k8s.io/v1\nkind: Lease\nmetadata:\n  name: leader\nspec:\n  holderIdentity: replica-1\n  leaseDurationSeconds: 15\n";
    c.ok(&["create", "-f", &c.file("lease.yaml", lease)]);
    let leases = c.ok(&["get", "leases"]);
    assert_eq!(header(&leases), ["NAME", "HOLDER", "AGE"], "{leases}");
    assert_eq!(row(&leases, "leader")[1], "replica-1", "{leases}");
}

#[test]
fn an_unknown_field_fails_strict_validation_and_is_dropped_with_a_warning_otherwise() {
    let c = Cluster::start();
    let yaml =
        job_yaml("typo", "30", true, "demo").replace("  backoffLimit: 0", "  backofLimit: 0");
    let f = c.file("typo.yaml", &yaml);
    let err = c.fails(&["create", "-f", &f]);
    assert!(err.contains("BadRequest"), "{err}");
    assert!(
        err.contains(r#"strict decoding error: unknown field "spec.backofLimit""#),
        "{err}"
    );

    let r = c.run(&["create", "-f", &f, "--validate=warn"], RUN_LIMIT);
    assert!(r.success, "{}", r.stderr);
    assert!(
        r.stderr
            .contains(r#"Warning: unknown field "spec.backofLimit""#),
        "{}",
        r.stderr
    );
    let spec = &c.json(&["get", "job", "typo"])["spec"];
    assert!(
        spec.get("backofLimit").is_none(),
        "unknown fields are not stored: {spec}"
    );
    assert_eq!(
        spec["backoffLimit"], 6,
        "the misspelt field left the default"
    );
}
