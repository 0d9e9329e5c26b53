//! Properties of every decoder and sanitiser that turns outside input into
//! something Kubernetes sees. One definition, two drivers: `tests/properties.rs`
//! (proptest, stable Rust, runs in `cargo test`) and the `cargo fuzz`
//! targets in `fuzz/` (nightly, on demand), which include this file by path.
//!
//! Each `check_*` takes raw input, never panics on bad input (it is refused
//! or ignored), and panics only when a property is broken: what we would
//! send to Kubernetes is invalid there, or untrusted text would change on
//! its way into the container.
#![allow(dead_code)]

use kube_api_sim::resources::{CONFIGMAPS, JOBS, RESOURCES};
use kube_api_sim::validate;
use orchestrator::cluster::build_job;
use orchestrator::cluster::files;
use orchestrator::cluster::jobspec::{escape_expansion, unescape_expansion};
use orchestrator::config::Config;
use orchestrator::task::files::{self as task_files, TaskFile};
use orchestrator::task::{label_value, name_with_hash, Task, TaskSource};
use serde_json::Value;

/// The configuration the checks build Jobs with.
pub fn config() -> Config {
    Config::from_lookup(|k| match k {
        "GITHUB_WEBHOOK_SECRET" => Some("fuzz-secret-0123456789".into()),
        "GRAFANA_BASIC_AUTH" => Some("user:password-0123456789".into()),
        _ => None,
    })
    .expect("a valid configuration for the checks")
}

/// Panics with the simulator's causes unless `obj` of resource `res_id`
/// passes the same validation a real API server applies.
fn assert_valid(res_id: usize, obj: &Value) {
    let name = obj
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let meta = obj.get("metadata").cloned().unwrap_or(Value::Null);
    let mut causes = validate::metadata(&RESOURCES[res_id], res_id, name, &meta);
    causes.extend(validate::object(res_id, obj));
    assert!(
        causes.is_empty(),
        "Kubernetes would refuse {name:?}: {causes:?}"
    );
}

/// A Task's Job (with its files, if any) is valid for Kubernetes, and
/// every env value survives the kubelet's `$(VAR)` expansion unchanged.
/// Returns whether a Job was built.
pub fn check_task(task: &Task, files: &[TaskFile], cfg: &Config) -> bool {
    let Ok(mut job) = build_job(task, cfg) else {
        return false;
    };
    files::attach(&mut job, files);
    let value = serde_json::to_value(&job).expect("a Job serialises");
    assert_valid(JOBS, &value);
    if let Some(cm) = files::configmap(&job, files) {
        assert_valid(
            CONFIGMAPS,
            &serde_json::to_value(&cm).expect("a ConfigMap serialises"),
        );
    }
    let pod = job
        .spec
        .and_then(|s| s.template.spec)
        .expect("a Job has a pod spec");
    for c in pod
        .containers
        .iter()
        .chain(pod.init_containers.iter().flatten())
    {
        for e in c.env.iter().flatten() {
            if let Some(v) = &e.value {
                let seen = kube_api_sim::expansion::expand(v, &|_| Some("LEAK".into()));
                assert_eq!(
                    seen,
                    unescape_expansion(v),
                    "env {} changes under expansion",
                    e.name
                );
            }
        }
    }
    true
}

/// Label values and Job names made from any text are valid for
/// Kubernetes; escaped text reaches the container byte for byte.
pub fn check_sanitizers(text: &str) {
    let v = label_value(text);
    assert!(
        validate::label_value_problem(&v).is_none(),
        "label value {v:?} from {text:?}"
    );
    let n = name_with_hash(text, text);
    assert!(
        validate::dns_label_problem(&n).is_none(),
        "Job name {n:?} from {text:?}"
    );
    assert_eq!(name_with_hash(text, text), n, "names are deterministic");
    let escaped = escape_expansion(text);
    assert_eq!(unescape_expansion(&escaped), text);
    let seen = kube_api_sim::expansion::expand(&escaped, &|_| Some("LEAK".into()));
    assert_eq!(seen, text, "escaped text must survive expansion");
}

/// File names the service accepts together are accepted by Kubernetes as
/// volume item paths, and never conflict in the mount.
pub fn check_file_names(names: &[String]) {
    let accepted: Vec<&String> = names
        .iter()
        .filter(|n| {
            task_files::file_problem(&TaskFile {
                filename: (*n).clone(),
                content: String::new(),
                file_type: None,
            })
            .is_none()
        })
        .collect();
    for n in &accepted {
        assert!(
            validate::item_path_problem(n).is_none(),
            "accepted file name {n:?} is refused by Kubernetes"
        );
    }
    for (i, a) in accepted.iter().enumerate() {
        for b in &accepted[i + 1..] {
            let nested = a == b
                || a.strip_prefix(b.as_str())
                    .is_some_and(|r| r.starts_with('/'))
                || b.strip_prefix(a.as_str())
                    .is_some_and(|r| r.starts_with('/'));
            assert_eq!(
                task_files::files_conflict(a, b).is_some(),
                nested,
                "conflict of {a:?} and {b:?}"
            );
        }
    }
}

/// A GitHub delivery (`data[0]` picks the event) decodes or is refused;
/// a Task it yields becomes a valid Job. Returns the Jobs checked.
pub fn check_github(data: &[u8]) -> usize {
    use orchestrator::rules::Rules;
    use orchestrator::sources::github::{route, TrustConfig};
    use orchestrator::sources::Decision;
    let Some((pick, body)) = data.split_first() else {
        return 0;
    };
    let events = [
        "issues",
        "issue_comment",
        "pull_request",
        "pull_request_review_comment",
        "ping",
    ];
    let event = events[usize::from(*pick) % events.len()];
    check_about(body);
    let cfg = config();
    let trust = TrustConfig::from_config(&cfg);
    if let Ok(Decision::Task(task)) = route(event, "fuzz-delivery", body, &Rules::builtin(), &trust)
    {
        return usize::from(check_task(&task, &[], &cfg));
    }
    0
}

/// What a delivery is about, read without a full decode
/// (`sources::github::about`): never fails, and on valid JSON it is what a
/// full decode reads.
pub fn check_about(body: &[u8]) {
    let about = orchestrator::sources::github::about(body);
    if let Ok(v) = serde_json::from_slice::<Value>(body) {
        assert_eq!(
            about,
            about_of(&v),
            "{:?}",
            String::from_utf8_lossy(&body[..body.len().min(2000)])
        );
    }
}

/// What a delivery is about, from its full decode.
pub fn about_of(v: &Value) -> orchestrator::sources::github::About {
    let text = |v: Option<&Value>| v.and_then(Value::as_str).map(str::to_string);
    let number = |v: Option<&Value>| v.and_then(Value::as_u64);
    let member = |key: &str, name: &str| {
        v.get(key)
            .filter(|o| o.is_object())
            .and_then(|o| o.get(name))
    };
    orchestrator::sources::github::About {
        repository: text(member("repository", "full_name")),
        number: number(member("issue", "number"))
            .or(number(member("pull_request", "number")))
            .or(number(v.get("number"))),
        sender: text(member("sender", "login")),
        action: text(v.get("action")),
    }
}

/// A Grafana or Alertmanager notification decodes or is refused; each
/// firing alert's Task becomes a valid Job. Returns the Jobs checked.
pub fn check_grafana(body: &[u8]) -> usize {
    use orchestrator::sources::grafana::{route, AlertDecision};
    let cfg = config();
    let mut jobs = 0;
    if let Ok(decisions) = route(body, &cfg.grafana, chrono::Utc::now()) {
        for d in decisions {
            if let AlertDecision::Fire(task) = d {
                jobs += usize::from(check_task(&task, &[], &cfg));
            }
        }
    }
    jobs
}

/// The generic and PM task documents: any JSON is accepted or refused
/// field by field; an accepted one becomes a valid Job with valid files.
/// Returns the Jobs checked.
pub fn check_task_documents(body: &[u8]) -> usize {
    use orchestrator::sources::api::{generic_task, pm_task};
    let Ok(doc) = serde_json::from_slice::<Value>(body) else {
        return 0;
    };
    let mut jobs = 0;
    let cfg = config();
    let now = chrono::Utc::now();
    if let Ok(a) = generic_task(
        &doc,
        TaskSource::Cli,
        "cli-token:fuzz",
        Some("k"),
        "github.com",
        now,
    ) {
        jobs += usize::from(check_task(&a.task, &a.files, &cfg));
    }
    if let Ok(a) = pm_task(&doc, "pm-agent-token:fuzz", "github.com", now) {
        jobs += usize::from(check_task(&a.task, &a.files, &cfg));
    }
    jobs
}

/// The rules file: any text loads or is refused with an error.
pub fn check_rules(text: &str) {
    let _ = orchestrator::rules::Rules::from_yaml(text);
}

/// Grafana matchers (`rule` line, then `k=v,…` labels): any text parses or
/// is refused; parsed matchers evaluate on any labels.
pub fn check_matchers(text: &str) {
    use orchestrator::config::grafana::matchers::Matchers;
    let (rule, labels) = text.split_once('\n').unwrap_or((text, "a=b"));
    if let Ok(m) = Matchers::parse(rule) {
        let labels = labels
            .split(',')
            .filter_map(|kv| kv.split_once('='))
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let _ = m.first_failing(&labels);
    }
}

/// The simulator's label and field selectors: any text parses or is
/// refused; parsed selectors evaluate.
pub fn check_selectors(text: &str) {
    use kube_api_sim::selector::{FieldSelector, LabelSelector};
    if let Ok(s) = LabelSelector::parse(text) {
        let labels = serde_json::json!({"app": "x", "tier": "web"});
        let _ = s.matches(labels.as_object());
    }
    if let Ok(s) = FieldSelector::parse(text, &["metadata.name", "status.phase"]) {
        let _ = s.matches(&serde_json::json!({"metadata": {"name": "a"}}));
    }
}

/// The simulator's patches (`data[0]` picks JSON, merge or strategic
/// merge): any patch applies or is refused.
pub fn check_patch(data: &[u8]) {
    use kube_api_sim::patch::{apply, PatchType};
    let Some((pick, patch)) = data.split_first() else {
        return;
    };
    let ct = [
        "application/json-patch+json",
        "application/merge-patch+json",
        "application/strategic-merge-patch+json",
    ][usize::from(*pick) % 3];
    let Ok(pt) = PatchType::from_content_type(ct) else {
        return;
    };
    let mut target = serde_json::json!({
        "metadata": {"name": "a", "labels": {"x": "y"}},
        "spec": {"containers": [{"name": "c", "image": "i"}]}
    });
    let _ = apply(&mut target, pt, patch);
}

/// Runs the check a fuzz target is named after on one input (the
/// regression cases under `fuzz/regressions/<target>/`).
pub fn check_by_target(target: &str, data: &[u8]) {
    let text = std::str::from_utf8(data).ok();
    match target {
        "github_route" => {
            let _ = check_github(data);
        }
        "grafana_route" => {
            let _ = check_grafana(data);
        }
        "task_documents" => {
            let _ = check_task_documents(data);
        }
        "rules_file" => text.map_or((), check_rules),
        "grafana_matchers" => text.map_or((), check_matchers),
        "sanitizers" => text.map_or((), check_sanitizers),
        "sim_selectors" => text.map_or((), check_selectors),
        "sim_patch" => check_patch(data),
        "file_names" => text.map_or((), |t| {
            check_file_names(&t.lines().map(str::to_string).collect::<Vec<_>>())
        }),
        other => panic!("no check for fuzz target {other:?}"),
    }
}
