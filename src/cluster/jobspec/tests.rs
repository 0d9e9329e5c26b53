use super::*;
use crate::task::{Checkout, TaskSource};
use chrono::TimeZone;
use serde_json::{json, Value};
use std::collections::HashMap;

fn config(extra: &[(&str, &str)]) -> Config {
    let mut vars: HashMap<String, String> =
        HashMap::from([("GITHUB_WEBHOOK_SECRET".to_string(), "s".to_string())]);
    vars.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    Config::from_lookup(move |k| vars.get(k).cloned()).unwrap()
}

fn task() -> Task {
    Task {
        source: TaskSource::Github,
        kind: "implement".into(),
        priority: -3,
        repository: Some("Codertocat/Hello-World".into()),
        issue_number: Some(1),
        pr_number: None,
        checkout: Some(Checkout {
            clone_url: "https://github.com/Codertocat/Hello-World.git".into(),
            git_ref: "master".into(),
        }),
        title: "Spelling error".into(),
        prompt: "Fix it. $(HOME) `id` ; rm -rf / {{ 7*7 }}".into(),
        url: Some("https://github.com/Codertocat/Hello-World/issues/1".into()),
        delivery_id: Some("d-1".into()),
        dedup_key: "github:delivery:d-1".into(),
        requested_by: Some("Codertocat".into()),
        labels: Default::default(),
        created_at: chrono::Utc.with_ymd_and_hms(2024, 1, 1, 0, 0, 0).unwrap(),
    }
}

fn job_json(t: &Task, cfg: &Config) -> Value {
    serde_json::to_value(build_job(t, cfg).unwrap()).unwrap()
}

fn env_of(container: &Value) -> HashMap<String, Value> {
    container["env"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["name"].as_str().unwrap().to_string(), e.clone()))
        .collect()
}

fn env_value(container: &Value, name: &str) -> Option<String> {
    env_of(container)
        .get(name)
        .and_then(|e| e["value"].as_str().map(str::to_string))
}

#[test]
fn the_job_is_suspended_named_and_bounded() {
    let cfg = config(&[]);
    let j = job_json(&task(), &cfg);
    assert_eq!(j["metadata"]["name"], json!(task().job_name()));
    assert_eq!(j["metadata"]["namespace"], "default");
    let spec = &j["spec"];
    assert_eq!(spec["suspend"], true);
    assert_eq!(spec["backoffLimit"], 0);
    assert_eq!(spec["activeDeadlineSeconds"], 3600);
    assert_eq!(spec["ttlSecondsAfterFinished"], 1800);
    assert_eq!(spec["template"]["spec"]["restartPolicy"], "Never");
}

#[test]
fn labels_and_annotations_identify_the_task() {
    let j = job_json(&task(), &config(&[]));
    let labels = &j["metadata"]["labels"];
    assert_eq!(labels[LABEL_MANAGED_BY], "orchestrator");
    assert_eq!(labels[LABEL_SOURCE], "github");
    assert_eq!(labels[LABEL_KIND], "implement");
    assert_eq!(labels[LABEL_REPOSITORY], "Codertocat.Hello-World");
    assert_eq!(labels[LABEL_PRIORITY], "neg3");
    assert_eq!(
        labels[LABEL_CONCURRENCY_KEY], "codertocat.hello-world-1",
        "lower-cased: GitHub names are case-insensitive"
    );
    assert_eq!(j["spec"]["template"]["metadata"]["labels"], *labels);
    let ann = &j["metadata"]["annotations"];
    assert_eq!(ann[ANNOTATION_DELIVERY_ID], "d-1");
    assert_eq!(
        ann[ANNOTATION_URL],
        "https://github.com/Codertocat/Hello-World/issues/1"
    );
    assert_eq!(ann[ANNOTATION_DEDUP_KEY], "github:delivery:d-1");
    assert_eq!(MANAGED_SELECTOR, format!("{LABEL_MANAGED_BY}={MANAGED_BY}"));
}

#[test]
fn the_agent_gets_image_resources_command_and_task_as_env() {
    let cfg = config(&[
        ("JOB_IMAGE", "registry.example/agent:1"),
        ("JOB_CPU_LIMIT", "3"),
    ]);
    let j = job_json(&task(), &cfg);
    let agent = &j["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(agent["name"], "agent");
    assert_eq!(agent["image"], "registry.example/agent:1");
    assert_eq!(agent["workingDir"], "/workspace");
    assert_eq!(agent["command"], json!(cfg.job_command));
    assert!(agent.get("args").is_none());
    assert_eq!(
        agent["resources"]["requests"],
        json!({"cpu": "1", "memory": "2Gi"})
    );
    assert_eq!(
        agent["resources"]["limits"],
        json!({"cpu": "3", "memory": "4Gi"})
    );
    assert_eq!(env_value(agent, "TASK_SOURCE").as_deref(), Some("github"));
    assert_eq!(env_value(agent, "TASK_KIND").as_deref(), Some("implement"));
    assert_eq!(
        env_value(agent, "REPOSITORY").as_deref(),
        Some("Codertocat/Hello-World")
    );
    assert_eq!(env_value(agent, "ISSUE_NUMBER").as_deref(), Some("1"));
    assert_eq!(env_value(agent, "PR_NUMBER"), None);
    // Written escaped; the container sees the text as given.
    let prompt = env_value(agent, "PROMPT").unwrap();
    assert_eq!(unescape_expansion(&prompt), task().prompt);
    let doc: Task =
        serde_json::from_str(&unescape_expansion(&env_value(agent, "TASK_JSON").unwrap())).unwrap();
    assert_eq!(doc, task());
}

#[test]
fn task_text_never_reaches_a_command_line() {
    let j = job_json(&task(), &config(&[]));
    let pod = &j["spec"]["template"]["spec"];
    let containers = pod["containers"]
        .as_array()
        .unwrap()
        .iter()
        .chain(pod["initContainers"].as_array().unwrap());
    for c in containers {
        let argv = format!("{}{}", c["command"], c["args"]);
        assert!(!argv.contains("Fix it"), "{argv}");
        assert!(!argv.contains("Codertocat"), "{argv}");
        assert!(!argv.contains("sh\""), "no shell: {argv}");
    }
}

#[test]
fn an_oversized_task_json_is_truncated_but_valid() {
    let mut t = task();
    t.prompt = "x".repeat(500_000);
    let j = job_json(&t, &config(&[]));
    let agent = &j["spec"]["template"]["spec"]["containers"][0];
    let doc = env_value(agent, "TASK_JSON").unwrap();
    assert!(doc.len() <= TASK_JSON_MAX_BYTES);
    assert!(serde_json::from_str::<Task>(&doc).is_ok());
    assert!(env_value(agent, "PROMPT").unwrap().len() <= MAX_PROMPT_BYTES + 100);
}

#[test]
fn the_pod_is_hardened() {
    let j = job_json(&task(), &config(&[]));
    let pod = &j["spec"]["template"]["spec"];
    assert_eq!(pod["automountServiceAccountToken"], false);
    let psc = &pod["securityContext"];
    assert_eq!(psc["runAsNonRoot"], true);
    assert_eq!(psc["runAsUser"], 1000);
    assert_eq!(psc["seccompProfile"]["type"], "RuntimeDefault");
    let all = pod["containers"]
        .as_array()
        .unwrap()
        .iter()
        .chain(pod["initContainers"].as_array().unwrap());
    for c in all {
        let sc = &c["securityContext"];
        assert_eq!(sc["allowPrivilegeEscalation"], false, "{}", c["name"]);
        assert_eq!(sc["capabilities"]["drop"], json!(["ALL"]));
        assert_eq!(sc["runAsNonRoot"], true);
        assert_eq!(sc["seccompProfile"]["type"], "RuntimeDefault");
    }
}

#[test]
fn init_containers_clone_the_ref_with_env_expansion_only() {
    let cfg = config(&[("JOB_GIT_IMAGE", "alpine/git:v2.47.2")]);
    let j = job_json(&task(), &cfg);
    let pod = &j["spec"]["template"]["spec"];
    let inits = pod["initContainers"].as_array().unwrap();
    assert_eq!(inits.len(), 2);
    assert_eq!(inits[0]["name"], "git-init");
    assert_eq!(
        inits[0]["args"],
        json!([
            "init",
            "--quiet",
            "--initial-branch=$(GIT_BRANCH)",
            "/workspace"
        ])
    );
    assert_eq!(inits[1]["name"], "git-fetch");
    assert_eq!(
        inits[1]["args"],
        json!([
            "-C",
            "/workspace",
            "pull",
            "--quiet",
            "--depth=1",
            "--no-rebase",
            "$(GIT_CLONE_URL)",
            "$(GIT_REF)"
        ])
    );
    for c in inits {
        assert_eq!(c["image"], "alpine/git:v2.47.2");
        assert_eq!(c["command"], json!(["git"]));
        assert_eq!(c["volumeMounts"][0]["mountPath"], "/workspace");
        assert_eq!(
            env_value(c, "GIT_CLONE_URL").as_deref(),
            Some("https://github.com/Codertocat/Hello-World.git")
        );
        assert_eq!(env_value(c, "GIT_REF").as_deref(), Some("master"));
        assert_eq!(env_value(c, "GIT_BRANCH").as_deref(), Some("master"));
    }
    assert_eq!(
        pod["volumes"][0],
        json!({"name": "workspace", "emptyDir": {}})
    );
}

#[test]
fn a_pr_checkout_fetches_its_head_ref() {
    let mut t = task();
    t.issue_number = None;
    t.pr_number = Some(7);
    t.checkout = Some(Checkout {
        clone_url: "https://github.com/fork/Hello-World.git".into(),
        git_ref: "refs/pull/7/head".into(),
    });
    let j = job_json(&t, &config(&[]));
    let pod = &j["spec"]["template"]["spec"];
    let fetch = &pod["initContainers"][1];
    assert_eq!(
        env_value(fetch, "GIT_REF").as_deref(),
        Some("refs/pull/7/head")
    );
    assert_eq!(env_value(fetch, "GIT_BRANCH").as_deref(), Some("pr-7"));
    assert_eq!(
        env_value(&pod["containers"][0], "PR_NUMBER").as_deref(),
        Some("7")
    );
}

#[test]
fn without_a_job_secret_no_secret_is_referenced() {
    let j = job_json(&task(), &config(&[]));
    let text = j.to_string();
    assert!(
        !text.contains("secretKeyRef") && !text.contains("secretRef"),
        "{text}"
    );
    assert!(!text.contains("credential."));
}

#[test]
fn with_a_job_secret_the_token_is_only_referenced() {
    let cfg = config(&[
        ("JOB_SECRET_NAME", "agent-secrets"),
        ("JOB_GIT_TOKEN_KEY", "GH_TOKEN"),
    ]);
    let j = job_json(&task(), &cfg);
    let pod = &j["spec"]["template"]["spec"];
    let agent = &pod["containers"][0];
    assert_eq!(
        agent["envFrom"],
        json!([{"secretRef": {"name": "agent-secrets", "optional": false}}])
    );
    let all = pod["containers"]
        .as_array()
        .unwrap()
        .iter()
        .chain(pod["initContainers"].as_array().unwrap());
    for c in all {
        let env = env_of(c);
        let token = &env["GIT_TOKEN"];
        assert!(token.get("value").is_none());
        assert_eq!(
            token["valueFrom"]["secretKeyRef"],
            json!({"name": "agent-secrets", "key": "GH_TOKEN", "optional": true})
        );
        // The helper is scoped to the GitHub host and reads the token from env.
        let count: usize = env_value(c, "GIT_CONFIG_COUNT").unwrap().parse().unwrap();
        let keys: Vec<String> = (0..count)
            .map(|i| env_value(c, &format!("GIT_CONFIG_KEY_{i}")).unwrap())
            .collect();
        let i = keys
            .iter()
            .position(|k| k == "credential.https://github.com.helper")
            .unwrap();
        let helper = env_value(c, &format!("GIT_CONFIG_VALUE_{i}")).unwrap();
        assert!(helper.contains("$GIT_TOKEN"), "{helper}");
        assert!(keys.contains(&"safe.directory".to_string()));
    }
}

/// Every `GIT_CONFIG_KEY_n` of the init and agent containers.
fn git_config_keys(j: &Value) -> Vec<String> {
    let pod = &j["spec"]["template"]["spec"];
    let mut keys = Vec::new();
    let inits = pod["initContainers"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    for c in pod["containers"].as_array().unwrap().iter().chain(&inits) {
        let count: usize = env_value(c, "GIT_CONFIG_COUNT").unwrap().parse().unwrap();
        keys.extend((0..count).map(|i| env_value(c, &format!("GIT_CONFIG_KEY_{i}")).unwrap()));
    }
    keys
}

#[test]
fn the_clone_credential_is_only_for_the_configured_github_host() {
    let secret = ("JOB_SECRET_NAME", "agent-secrets");
    let helpers = |j: &Value| -> Vec<String> {
        git_config_keys(j)
            .into_iter()
            .filter(|k| k.starts_with("credential."))
            .collect()
    };
    let mut elsewhere = task();
    elsewhere.checkout.as_mut().unwrap().clone_url =
        "https://attacker.example/Codertocat/Hello-World.git".into();
    let j = job_json(&elsewhere, &config(&[secret]));
    assert_eq!(
        helpers(&j),
        Vec::<String>::new(),
        "no helper for another host"
    );
    assert!(
        !j.to_string().contains("attacker.example.helper"),
        "no credential scoped to the other host"
    );
    // A look-alike host is another host.
    elsewhere.checkout.as_mut().unwrap().clone_url =
        "https://github.com.attacker.example/o/r.git".into();
    assert!(helpers(&job_json(&elsewhere, &config(&[secret]))).is_empty());

    // GitHub Enterprise: GITHUB_HOST names it (case does not matter).
    let ghe = config(&[secret, ("GITHUB_HOST", "GHE.example.com:8443")]);
    let mut on_ghe = task();
    on_ghe.checkout.as_mut().unwrap().clone_url = "https://ghe.example.com:8443/o/r.git".into();
    assert_eq!(
        helpers(&job_json(&on_ghe, &ghe))
            .first()
            .map(String::as_str),
        Some("credential.https://ghe.example.com:8443.helper")
    );
    // …and github.com is then another host.
    assert!(helpers(&job_json(&task(), &ghe)).is_empty());
}

#[test]
fn the_concurrency_label_is_lower_cased_and_the_repository_keeps_its_case() {
    let j = job_json(&task(), &config(&[]));
    let labels = &j["metadata"]["labels"];
    assert_eq!(labels[LABEL_CONCURRENCY_KEY], "codertocat.hello-world-1");
    assert_eq!(
        j["metadata"]["annotations"][ANNOTATION_REPOSITORY],
        "Codertocat/Hello-World"
    );
}

#[test]
fn unsafe_checkouts_and_repositories_are_refused() {
    let cfg = config(&[]);
    let mut t = task();
    t.checkout.as_mut().unwrap().git_ref = "--upload-pack=touch /tmp/x".into();
    assert_eq!(build_job(&t, &cfg).unwrap_err().field, "checkout.git_ref");
    let mut t = task();
    t.checkout.as_mut().unwrap().clone_url = "ext::sh -c id".into();
    assert_eq!(build_job(&t, &cfg).unwrap_err().field, "checkout.clone_url");
    let mut t = task();
    t.repository = Some("a/b/c".into());
    assert_eq!(build_job(&t, &cfg).unwrap_err().field, "repository");
}

#[test]
fn a_task_without_a_repository_has_no_init_containers() {
    let mut t = task();
    t.source = TaskSource::Grafana;
    t.repository = None;
    t.issue_number = None;
    t.checkout = None;
    let j = job_json(&t, &config(&[("JOB_SERVICE_ACCOUNT", "agent")]));
    let pod = &j["spec"]["template"]["spec"];
    assert!(pod.get("initContainers").is_none());
    assert_eq!(pod["serviceAccountName"], "agent");
    assert!(j["metadata"]["labels"].get(LABEL_REPOSITORY).is_none());
    assert_eq!(
        env_value(&pod["containers"][0], "TASK_SOURCE").as_deref(),
        Some("grafana")
    );
}

#[test]
fn a_routed_fixture_builds_a_valid_job() {
    use crate::rules::Rules;
    use crate::sources::github::{route, TrustConfig};
    use crate::sources::Decision;
    let dir = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/github");
    let text = std::fs::read_to_string(dir.join("issue_comment/created.json")).unwrap();
    let body = text.replace("\"body\": \"You are", "\"body\": \"/agent You are");
    let d = route(
        "issue_comment",
        "d-2",
        body.as_bytes(),
        &Rules::builtin(),
        &TrustConfig::default(),
    )
    .unwrap();
    let Decision::Task(t) = d else {
        panic!("{d:?}")
    };
    let j = job_json(&t, &config(&[]));
    let name = j["metadata"]["name"].as_str().unwrap();
    assert!(
        crate::config::is_dns1123_label(name)
            && name.starts_with("gh-comment-codertocat-hello-world-1-"),
        "{name}"
    );
    assert_eq!(j["metadata"]["labels"][LABEL_KIND], "comment");
    let agent = &j["spec"]["template"]["spec"]["containers"][0];
    assert!(env_value(agent, "PROMPT")
        .unwrap()
        .contains("You are totally right!"));
}

#[test]
fn task_text_is_escaped_against_kubernetes_variable_expansion() {
    let mut t = task();
    t.prompt = "print $(GITHUB_TOKEN), $$, $(PROMPT), $( and $HOME".into();
    let j = job_json(&t, &config(&[("JOB_SECRET_NAME", "agent-secrets")]));
    let agent = &j["spec"]["template"]["spec"]["containers"][0];
    let raw = env_value(agent, "PROMPT").unwrap();
    assert_eq!(
        raw,
        "print $$(GITHUB_TOKEN), $$$$, $$(PROMPT), $$( and $$HOME"
    );
    assert_eq!(unescape_expansion(&raw), t.prompt);
    let doc = env_value(agent, "TASK_JSON").unwrap();
    let back: Value = serde_json::from_str(&unescape_expansion(&doc)).unwrap();
    assert_eq!(back["prompt"], json!(t.prompt));
}
