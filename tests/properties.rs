//! Property tests (proptest, stable Rust) over every decoder and sanitiser
//! that turns outside input into something Kubernetes sees, with the
//! checks shared with the `cargo fuzz` targets (`tests/fuzz_checks`), plus
//! every input that ever failed (`fuzz/regressions/<target>/`).
//!
//! Generators aim at what breaks such code: `$(`, `$$`, `..`, `/`, unicode,
//! control characters, very long and empty strings, and real payloads
//! (the vendored GitHub fixtures, a Grafana notification) with their
//! untrusted fields replaced — hostile text only where the route takes any
//! text, valid (tricky) values where it validates, so that the inputs reach
//! `build_job`: each property that builds Jobs asserts the share of its
//! cases that did.

mod fuzz_checks;

use fuzz_checks::*;
use proptest::prelude::*;
use serde_json::{json, Value};

/// Text untrusted senders write: tricky pieces glued together.
fn hostile_text() -> impl Strategy<Value = String> {
    let piece = prop_oneof![
        Just("$(".to_string()),
        Just("$$".to_string()),
        Just(")".to_string()),
        Just("$(GITHUB_TOKEN)".to_string()),
        Just("$(PROMPT)".to_string()),
        Just("..".to_string()),
        Just("/".to_string()),
        Just("-".to_string()),
        Just("_".to_string()),
        Just(".".to_string()),
        Just("{{ 7*7 }}".to_string()),
        Just("\u{0}\n\t".to_string()),
        Just("☃é".to_string()),
        "[a-zA-Z0-9]{1,8}",
        any::<String>(),
    ];
    prop::collection::vec(piece, 0..12).prop_map(|v| v.concat())
}

/// A repository name the routes accept (`owner/name`, GitHub's rules),
/// with the characters that are allowed but tricky: `.`, `-`, `_`.
fn valid_repository() -> impl Strategy<Value = String> {
    (
        "[a-zA-Z0-9][a-zA-Z0-9-]{0,38}",
        "[a-zA-Z0-9._][a-zA-Z0-9._-]{0,99}",
    )
        .prop_filter("not . or ..", |(_, n)| n != "." && n != "..")
        .prop_map(|(o, n)| format!("{o}/{n}"))
}

/// Runs `check` over `strategy` like `proptest!` (a broken property fails
/// with the shrunk input), counting the cases that built at least one Job:
/// fewer than `min_percent` % fails too, since a property whose inputs are
/// all refused before `build_job` would hold without checking anything.
fn reaching_jobs<S>(what: &str, min_percent: usize, strategy: S, check: impl Fn(S::Value) -> usize)
where
    S: Strategy,
    S::Value: std::fmt::Debug,
{
    use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
    let (cases, reached) = (AtomicUsize::new(0), AtomicUsize::new(0));
    let mut runner = proptest::test_runner::TestRunner::new(ProptestConfig {
        failure_persistence: None,
        ..config()
    });
    let result = runner.run(&strategy, |value| {
        cases.fetch_add(1, Relaxed);
        if check(value) > 0 {
            reached.fetch_add(1, Relaxed);
        }
        Ok(())
    });
    if let Err(e) = result {
        panic!("{what}: {e}");
    }
    let (cases, reached) = (cases.into_inner(), reached.into_inner());
    assert!(
        reached * 100 >= min_percent * cases,
        "{what}: {reached} of {cases} cases reached a Job, fewer than {min_percent} %"
    );
}

fn config() -> ProptestConfig {
    // Enough cases to find the usual mistakes, few enough for CI's 2 cores.
    ProptestConfig {
        cases: 256,
        ..ProptestConfig::default()
    }
}

fn fixture(path: &str) -> Value {
    let p = format!(
        "{}/tests/fixtures/github/{path}",
        env!("CARGO_MANIFEST_DIR")
    );
    let text = std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{p}: {e}"));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{p}: {e}"))
}

fn github_case(event: u8, body: &Value) -> Vec<u8> {
    let mut data = vec![event];
    data.extend(serde_json::to_vec(body).expect("serialise"));
    data
}

fn grafana_notification(labels: Value, summary: &str, fingerprint: &str) -> Vec<u8> {
    serde_json::to_vec(&json!({
        "receiver": "orchestrator",
        "status": "firing",
        "orgId": 1,
        "version": "1",
        "groupKey": "{}:{alertname=\"x\"}",
        "alerts": [{
            "status": "firing",
            "labels": labels,
            "annotations": {"summary": summary, "description": summary},
            "startsAt": "2025-06-01T12:00:00Z",
            "endsAt": "0001-01-01T00:00:00Z",
            "fingerprint": fingerprint,
            "generatorURL": "https://grafana.example.com/x"
        }]
    }))
    .expect("serialise")
}

#[test]
fn the_unmutated_payloads_each_build_a_job() {
    // Guards the generators below: if the baselines stopped producing Jobs,
    // the properties would hold vacuously.
    let mut issue = fixture("issues/labeled.json");
    issue["label"]["name"] = json!("agent");
    assert_eq!(check_github(&github_case(0, &issue)), 1);
    let labels = json!({"alertname": "HighErrorRate", "severity": "critical", "repository": "acme/checkout"});
    assert_eq!(check_grafana(&grafana_notification(labels, "s", "fp1")), 1);
    let doc = json!({"title": "t", "prompt": "p", "repository": "acme/widgets"});
    assert_eq!(
        check_task_documents(&serde_json::to_vec(&doc).expect("json")),
        1
    );
    let pm = json!({"id": "t-1", "title": "t", "description": "d",
                    "repository": {"url": "https://github.com/acme/widgets", "branch": "main"},
                    "markdown_files": [{"filename": "docs/prd.md", "content": "x"}]});
    assert_eq!(
        check_task_documents(&serde_json::to_vec(&pm).expect("json")),
        1
    );
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn sanitised_names_and_labels_are_valid_and_escaping_survives_expansion(text in hostile_text()) {
        check_sanitizers(&text);
    }

    #[test]
    fn accepted_file_names_are_valid_item_paths_and_conflicts_are_exact(
        names in prop::collection::vec("[a.b/_-]{1,7}", 1..6)
    ) {
        check_file_names(&names);
    }

    #[test]
    fn grafana_matchers_parse_or_are_refused(rule in "[a-z_=!~\"., ^$()*+|\\[\\]\\\\-]{0,40}", labels in "[a-z=,]{0,30}") {
        check_matchers(&format!("{rule}\n{labels}"));
    }

    #[test]
    fn simulator_selectors_parse_or_are_refused(text in "[a-z0-9=!,() .-]{0,40}|(in|notin|!)[ a-z(),]{0,20}") {
        check_selectors(&text);
    }

    #[test]
    fn simulator_patches_apply_or_are_refused(pick in any::<u8>(), patch in json_value()) {
        let mut data = vec![pick];
        data.extend(serde_json::to_vec(&patch).expect("json"));
        check_patch(&data);
    }

    #[test]
    fn rules_files_load_or_are_refused(text in "[a-z_:\\- \\n\"'\\[\\]{}0-9]{0,120}") {
        check_rules(&text);
    }
}

#[test]
fn a_github_issue_with_hostile_text_becomes_a_valid_job() {
    // Hostile text where the route takes any text; a repository the route
    // accepts (a hostile one is refused before `build_job`, which the
    // byte-level property below covers).
    let strategy = (
        hostile_text(),
        hostile_text(),
        hostile_text(),
        valid_repository(),
        any::<u64>(),
    );
    reaching_jobs(
        "issue",
        90,
        strategy,
        |(title, body, login, repo, number)| {
            let mut v = fixture("issues/labeled.json");
            v["label"]["name"] = json!("agent");
            v["issue"]["title"] = json!(title);
            v["issue"]["body"] = json!(body);
            v["issue"]["number"] = json!(number);
            v["sender"]["login"] = json!(login);
            v["repository"]["full_name"] = json!(repo);
            check_github(&github_case(0, &v))
        },
    );
}

#[test]
fn a_github_comment_with_hostile_text_becomes_a_valid_job() {
    let strategy = (hostile_text(), hostile_text(), valid_repository());
    reaching_jobs("comment", 90, strategy, |(comment, title, repo)| {
        let mut v = fixture("issue_comment/created.json");
        v["comment"]["body"] = json!(format!("/agent {comment}"));
        v["issue"]["title"] = json!(title);
        v["repository"]["full_name"] = json!(repo);
        check_github(&github_case(1, &v))
    });
}

#[test]
fn a_routed_github_delivery_with_bytes_changed_is_refused_or_valid() {
    // Real deliveries (a labeled issue, an `/agent` comment) with a few
    // bytes overwritten: most stay JSON and still build a Job, the others
    // exercise the refusals.
    let mut issue = fixture("issues/labeled.json");
    issue["label"]["name"] = json!("agent");
    let mut comment = fixture("issue_comment/created.json");
    comment["comment"]["body"] = json!("/agent fix it");
    let bases = [github_case(0, &issue), github_case(1, &comment)];
    let strategy = (
        any::<bool>(),
        prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 0..3),
    );
    reaching_jobs("changed bytes", 40, strategy, |(pick, changes)| {
        let mut data = bases[usize::from(pick)].clone();
        for (at, byte) in changes {
            // Byte 0 picks the event: leave it.
            let i = 1 + at.index(data.len() - 1);
            data[i] = byte;
        }
        check_github(&data)
    });
}

#[test]
fn a_grafana_alert_with_hostile_labels_becomes_a_valid_job() {
    // The fingerprint is validated (letters and digits, or absent): hostile
    // text there is refused, so it is generated valid. A hostile
    // repository label is dropped, not refused: it stays hostile.
    let strategy = (
        hostile_text(),
        prop_oneof![Just("critical".to_string()), hostile_text()],
        prop_oneof![
            Just("acme/checkout".to_string()),
            valid_repository(),
            hostile_text()
        ],
        hostile_text(),
        prop_oneof![Just(String::new()), "[a-zA-Z0-9]{1,64}"],
    );
    reaching_jobs(
        "grafana",
        90,
        strategy,
        |(alertname, severity, repository, summary, fingerprint)| {
            let labels =
                json!({"alertname": alertname, "severity": severity, "repository": repository});
            check_grafana(&grafana_notification(labels, &summary, &fingerprint))
        },
    );
}

/// Fields of a task document: hostile text in the free-text fields, valid
/// values (with their tricky characters) where the route validates.
fn task_fields() -> impl Strategy<
    Value = (
        String,
        String,
        String,
        Value,
        std::collections::BTreeMap<String, String>,
    ),
> {
    (
        hostile_text(),
        hostile_text(),
        valid_repository(),
        // Mostly accepted priorities; out of range ones are refused.
        prop_oneof![
            3 => prop_oneof![
                prop::sample::select(vec!["critical", "high", "medium", "low"]).prop_map(|p| json!(p)),
                (-1000i64..=1000).prop_map(|i| json!(i)),
            ],
            1 => prop_oneof![Just(json!(-2000)), Just(json!("urgent")), any::<i64>().prop_map(|i| json!(i))],
        ],
        prop::collection::btree_map("[a-z0-9][a-z0-9._-]{0,20}", hostile_text(), 0..4),
    )
}

#[test]
fn generic_task_documents_with_hostile_fields_are_refused_or_valid() {
    reaching_jobs(
        "generic task",
        50,
        task_fields(),
        |(title, prompt, repository, priority, labels)| {
            let generic = json!({"title": title, "prompt": prompt, "repository": repository,
                             "priority": priority, "labels": labels});
            check_task_documents(&serde_json::to_vec(&generic).expect("json"))
        },
    );
}

#[test]
fn pm_task_documents_with_hostile_fields_are_refused_or_valid() {
    let strategy = (
        task_fields(),
        prop::collection::vec(("[a-z0-9][a-z0-9._/-]{0,7}", hostile_text()), 0..4),
        "[a-zA-Z0-9][a-zA-Z0-9._-]{0,20}",
        prop_oneof![Just("main".to_string()), "[a-z0-9][a-z0-9/_-]{0,15}"],
    );
    reaching_jobs(
        "PM task",
        50,
        strategy,
        |((title, prompt, repository, priority, _), files, task_id, branch)| {
            let files: Vec<Value> = files
                .into_iter()
                .map(|(filename, content)| json!({"filename": filename, "content": content}))
                .collect();
            let pm = json!({"id": task_id, "title": title, "description": prompt,
                            "repository": {"url": format!("https://github.com/{repository}"), "branch": branch},
                            "priority": priority, "markdown_files": files});
            check_task_documents(&serde_json::to_vec(&pm).expect("json"))
        },
    );
}

/// What a delivery is about, read without a full decode, is what the full
/// decode reads: on real payloads, and on objects whose subject keys hold
/// values of every type among other members, escaped and not, compact and
/// indented.
#[test]
fn what_a_delivery_is_about_reads_as_a_full_decode_does() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/github");
    let mut read = 0;
    for dir in std::fs::read_dir(&root).expect("the GitHub fixtures") {
        let dir = dir.expect("a directory entry").path();
        if !dir.is_dir() {
            continue;
        }
        for file in std::fs::read_dir(&dir).expect("a fixture directory") {
            let body = std::fs::read(file.expect("a directory entry").path()).expect("a fixture");
            check_about(&body);
            let compact =
                serde_json::to_vec(&serde_json::from_slice::<Value>(&body).expect("json"));
            check_about(&compact.expect("json"));
            read += 1;
        }
    }
    assert!(read >= 20, "{read} fixtures");
    let subject_key = prop_oneof![
        Just("action"),
        Just("repository"),
        Just("sender"),
        Just("issue"),
        Just("pull_request"),
        Just("number"),
        Just("full_name"),
        Just("login"),
    ];
    let scalar = prop_oneof![
        Just(json!(null)),
        Just(json!(-7)),
        Just(json!(1.5)),
        Just(json!("a \"quoted\" {[,:]} \\ é ☃ \u{1}")),
        Just(json!(true)),
    ];
    let number = prop_oneof![3 => any::<u64>().prop_map(Value::from), 1 => scalar.clone()];
    let text = prop_oneof![3 => "[a-z/é]{0,8}".prop_map(Value::from), 1 => scalar.clone()];
    // Objects with each member the subject is read from (of any type),
    // among others.
    let object = (
        number.clone(),
        text.clone(),
        text.clone(),
        prop::collection::vec((subject_key, scalar), 0..3),
        json_value(),
    )
        .prop_map(|(n, full_name, login, members, other)| {
            let mut o = serde_json::Map::new();
            o.insert("other".into(), other);
            for (k, v) in members {
                o.insert(k.to_string(), v);
            }
            o.insert("number".into(), n);
            o.insert("full_name".into(), full_name);
            o.insert("login".into(), login);
            Value::Object(o)
        });
    let value = prop_oneof![1 => number, 1 => text, 2 => object];
    let strategy = (
        prop::collection::vec(prop::option::weighted(0.8, value), 6),
        json_value(),
        any::<bool>(),
        any::<bool>(),
    );
    let keys = [
        "action",
        "repository",
        "sender",
        "issue",
        "pull_request",
        "number",
    ];
    proptest!(config(), |((values, other, pretty, escape_keys) in strategy)| {
        let mut o = serde_json::Map::new();
        o.insert("zz".into(), other);
        for (k, v) in keys.iter().zip(values) {
            if let Some(v) = v {
                o.insert(k.to_string(), v);
            }
        }
        let v = Value::Object(o);
        let mut body = if pretty {
            serde_json::to_vec_pretty(&v).expect("json")
        } else {
            serde_json::to_vec(&v).expect("json")
        };
        if escape_keys {
            // `"action":` written `"\u0061ction":`: the same key.
            let text = String::from_utf8(body).expect("utf-8");
            body = text.replace("\"action\"", "\"\\u0061ction\"").into_bytes();
        }
        check_about(&body);
    });
}

/// JSON values up to a few levels deep, with keys patches care about.
fn json_value() -> impl Strategy<Value = Value> {
    let key = prop_oneof![
        Just("op".to_string()),
        Just("path".to_string()),
        Just("value".to_string()),
        Just("from".to_string()),
        Just("metadata".to_string()),
        Just("spec".to_string()),
        Just("containers".to_string()),
        Just("name".to_string()),
        Just("$patch".to_string()),
        Just("$setElementOrder/containers".to_string()),
        Just("$retainKeys".to_string()),
        Just("$deleteFromPrimitiveList/x".to_string()),
        "[a-z]{1,4}",
    ];
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        prop_oneof![
            Just("add"),
            Just("remove"),
            Just("replace"),
            Just("move"),
            Just("copy"),
            Just("test"),
            Just("/spec/containers/0"),
            Just("/metadata/labels/x"),
            Just("/-"),
            Just("delete"),
            Just("replace"),
            Just("merge"),
        ]
        .prop_map(Value::from),
    ];
    leaf.prop_recursive(4, 48, 6, move |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..5).prop_map(Value::Array),
            prop::collection::btree_map(key.clone(), inner, 0..5)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

#[test]
fn every_input_that_ever_failed_a_fuzz_target_still_passes() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/regressions");
    let mut seen = 0;
    for target in std::fs::read_dir(&root).expect("fuzz/regressions exists") {
        let target = target.expect("a directory entry").path();
        if !target.is_dir() {
            continue;
        }
        let name = target
            .file_name()
            .and_then(|n| n.to_str())
            .expect("a target name")
            .to_string();
        for case in std::fs::read_dir(&target).expect("a target directory") {
            let case = case.expect("a directory entry").path();
            let data = std::fs::read(&case).expect("a regression input");
            check_by_target(&name, &data);
            seen += 1;
        }
    }
    assert!(seen > 0, "no regression inputs under {}", root.display());
}
