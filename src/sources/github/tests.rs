use super::*;
use serde_json::{json, Value};
use std::borrow::Cow;
use std::path::PathBuf;

const DELIVERY: &str = "72d3162e-cc78-11e3-81ab-4c9367dc0958";

fn fixtures_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/github")
}

fn raw(path: &str) -> Vec<u8> {
    std::fs::read(fixtures_dir().join(path)).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn fixture(path: &str) -> Value {
    serde_json::from_slice(&raw(path)).unwrap()
}

fn route_value(event: &str, v: &Value, trust: &TrustConfig) -> Decision {
    let body = serde_json::to_vec(v).unwrap();
    route(event, DELIVERY, &body, &Rules::builtin(), trust).unwrap()
}

fn task_of(d: Decision) -> Task {
    match d {
        Decision::Task(t) => *t,
        other => panic!("expected a task, got {other:?}"),
    }
}

fn ignored(reason: &str) -> Decision {
    Decision::ignored(reason)
}

// ---- every fixture under the default rules ------------------------------------

#[test]
fn every_fixture_gets_the_expected_decision_under_default_rules() {
    let not_routed = |e: &str| ignored(&format!("event '{e}' is not routed"));
    let cases: Vec<(&str, &str, Decision)> = vec![
        ("ping", "ping/ping.json", Decision::Ping),
        ("ping", "ping/ping.with-app_id.json", Decision::Ping),
        ("ping", "ping/ping.with-organization.json", Decision::Ping),
        ("push", "push/push.json", not_routed("push")),
        (
            "push",
            "push/push.with-installation.json",
            not_routed("push"),
        ),
        ("push", "push/push.with-new-branch.json", not_routed("push")),
        (
            "workflow_run",
            "workflow_run/completed.json",
            not_routed("workflow_run"),
        ),
        (
            "workflow_run",
            "workflow_run/completed.with-pull-requests.json",
            not_routed("workflow_run"),
        ),
        (
            "check_run",
            "check_run/completed.json",
            not_routed("check_run"),
        ),
        (
            "installation",
            "installation/created.json",
            not_routed("installation"),
        ),
        (
            "pull_request_review",
            "pull_request_review/submitted.json",
            not_routed("pull_request_review"),
        ),
    ];
    let no_rule = [
        ("issues", "issues/opened.json"),
        ("issues", "issues/opened.with-empty-body.json"),
        ("issues", "issues/labeled.json"),
        ("issues", "issues/assigned.json"),
        ("issues", "issues/assigned.with-installation.json"),
        ("issues", "issues/edited.json"),
        ("issue_comment", "issue_comment/created.json"),
        (
            "issue_comment",
            "issue_comment/created.with-installation.json",
        ),
        ("issue_comment", "issue_comment/edited.json"),
        ("pull_request", "pull_request/opened.json"),
        ("pull_request", "pull_request/opened.with-null-body.json"),
        ("pull_request", "pull_request/synchronize.json"),
        ("pull_request", "pull_request/labeled.json"),
        ("pull_request", "pull_request/closed.json"),
        ("pull_request", "pull_request/reopened.json"),
        (
            "pull_request_review_comment",
            "pull_request_review_comment/created.json",
        ),
    ];
    let rules = Rules::builtin();
    let trust = TrustConfig::default();
    let all = cases.into_iter().chain(
        no_rule
            .into_iter()
            .map(|(e, p)| (e, p, ignored("no rule matched"))),
    );
    for (event, path, expected) in all {
        let got = route(event, DELIVERY, &raw(path), &rules, &trust).unwrap();
        assert_eq!(got, expected, "{path}");
    }
}

#[test]
fn events_no_rule_names_are_ignored_without_parsing_the_body() {
    let d = route(
        "push",
        "",
        b"not json at all",
        &Rules::builtin(),
        &TrustConfig::default(),
    );
    assert_eq!(d.unwrap(), ignored("event 'push' is not routed"));
}

// ---- routed, from modified fixtures --------------------------------------------

#[test]
fn an_issue_labeled_agent_becomes_an_implement_task() {
    let mut v = fixture("issues/labeled.json");
    v["label"]["name"] = json!("agent");
    let t = task_of(route_value("issues", &v, &TrustConfig::default()));
    assert_eq!(t.source, TaskSource::Github);
    assert_eq!(t.kind, "implement");
    assert_eq!(t.repository.as_deref(), Some("Codertocat/Hello-World"));
    assert_eq!((t.issue_number, t.pr_number), (Some(1), None));
    assert_eq!(
        t.checkout,
        Some(Checkout {
            clone_url: "https://github.com/Codertocat/Hello-World.git".into(),
            git_ref: "master".into()
        })
    );
    assert_eq!(t.title, "Spelling error in the README file");
    assert_eq!(t.dedup_key, format!("github:delivery:{DELIVERY}"));
    assert_eq!(t.delivery_id.as_deref(), Some(DELIVERY));
    assert_eq!(t.requested_by.as_deref(), Some("Codertocat"));
    assert_eq!(
        t.url.as_deref(),
        Some("https://github.com/Codertocat/Hello-World/issues/1")
    );
    assert_eq!(t.labels["rule"], "issue-agent");
    assert!(t
        .prompt
        .contains("Implement issue #1: Spelling error in the README file"));
    assert!(t.prompt.contains("It looks like you accidently spelled"));
    assert!(t
        .job_name()
        .starts_with("gh-implement-codertocat-hello-world-1-"));
}

fn agent_comment(path: &str, body: &str) -> Value {
    let mut v = fixture(path);
    v["comment"]["body"] = json!(body);
    v
}

#[test]
fn an_agent_comment_becomes_a_comment_task_keyed_by_the_comment() {
    let v = agent_comment("issue_comment/created.json", "/agent fix the typo, please");
    let t = task_of(route_value("issue_comment", &v, &TrustConfig::default()));
    assert_eq!(t.kind, "comment");
    assert_eq!(t.dedup_key, "github:issue_comment:186853002:492700400");
    assert!(t
        .prompt
        .contains("<request>\nfix the typo, please\n</request>"));
    assert!(t
        .prompt
        .contains("with its default branch (master) checked out"));
    assert_eq!(
        t.url.as_deref(),
        Some("https://github.com/Codertocat/Hello-World/issues/1#issuecomment-492700400")
    );
    // The same comment under another delivery id is the same task.
    let body = serde_json::to_vec(&v).unwrap();
    let again = route(
        "issue_comment",
        "another-delivery",
        &body,
        &Rules::builtin(),
        &TrustConfig::default(),
    );
    let again = task_of(again.unwrap());
    assert_eq!(again.job_name(), t.job_name());
}

#[test]
fn a_comment_on_a_pull_request_checks_out_the_pr_head() {
    let mut v = agent_comment("issue_comment/created.json", "/agent rebase this");
    v["issue"]["pull_request"] =
        json!({"url": "https://api.github.com/repos/Codertocat/Hello-World/pulls/1"});
    let t = task_of(route_value("issue_comment", &v, &TrustConfig::default()));
    assert_eq!((t.issue_number, t.pr_number), (None, Some(1)));
    let c = t.checkout.unwrap();
    assert_eq!(c.git_ref, "refs/pull/1/head");
    assert_eq!(c.clone_url, "https://github.com/Codertocat/Hello-World.git");
    assert!(t.prompt.contains("pull request #1"));
}

#[test]
fn a_review_comment_with_the_command_checks_out_the_head_branch() {
    let v = agent_comment(
        "pull_request_review_comment/created.json",
        "/agent add emoji",
    );
    let t = task_of(route_value(
        "pull_request_review_comment",
        &v,
        &TrustConfig::default(),
    ));
    assert_eq!((t.kind.as_str(), t.pr_number), ("comment", Some(2)));
    assert_eq!(t.checkout.unwrap().git_ref, "changes");
    assert!(t
        .dedup_key
        .starts_with("github:pull_request_review_comment:186853002:"));
}

#[test]
fn a_pr_labeled_agent_review_becomes_a_review_task() {
    let mut v = fixture("pull_request/labeled.json");
    v["label"]["name"] = json!("agent-review");
    let t = task_of(route_value("pull_request", &v, &TrustConfig::default()));
    assert_eq!(
        (t.kind.as_str(), t.pr_number, t.issue_number),
        ("review", Some(2), None)
    );
    let c = t.checkout.unwrap();
    assert_eq!(
        (c.git_ref.as_str(), c.clone_url.as_str()),
        ("changes", "https://github.com/Codertocat/Hello-World.git")
    );
    assert!(t.prompt.contains("head branch changes, base branch master"));
    assert_eq!(t.labels["head_repository"], "Codertocat/Hello-World");
    // A deleted fork leaves no head repository: fall back to refs/pull/N/head.
    v["pull_request"]["head"]["repo"] = Value::Null;
    let t = task_of(route_value("pull_request", &v, &TrustConfig::default()));
    assert_eq!(t.checkout.unwrap().git_ref, "refs/pull/2/head");
}

#[test]
fn template_syntax_in_a_comment_reaches_the_prompt_verbatim() {
    let hostile = "{{ 7*7 }} {% for i in range(3) %}x{% endfor %}";
    let v = agent_comment("issue_comment/created.json", &format!("/agent {hostile}"));
    let t = task_of(route_value("issue_comment", &v, &TrustConfig::default()));
    assert!(t.prompt.contains(hostile), "{}", t.prompt);
    assert!(!t.prompt.contains("xxx"));
}

// ---- trust ------------------------------------------------------------------------

#[test]
fn comments_from_untrusted_authors_are_ignored_unless_allowlisted() {
    let mut v = agent_comment("issue_comment/created.json", "/agent do it");
    v["comment"]["author_association"] = json!("NONE");
    assert_eq!(
        route_value("issue_comment", &v, &TrustConfig::default()),
        ignored("untrusted")
    );
    let allow = TrustConfig {
        allowlist: vec!["codertocat".into()],
    };
    assert!(matches!(
        route_value("issue_comment", &v, &allow),
        Decision::Task(_)
    ));
    for assoc in ["OWNER", "MEMBER", "COLLABORATOR"] {
        v["comment"]["author_association"] = json!(assoc);
        assert!(matches!(
            route_value("issue_comment", &v, &TrustConfig::default()),
            Decision::Task(_)
        ));
    }
    for assoc in [
        "CONTRIBUTOR",
        "FIRST_TIME_CONTRIBUTOR",
        "FIRST_TIMER",
        "MANNEQUIN",
    ] {
        v["comment"]["author_association"] = json!(assoc);
        assert_eq!(
            route_value("issue_comment", &v, &TrustConfig::default()),
            ignored("untrusted")
        );
    }
}

#[test]
fn label_trust_follows_who_applied_the_label() {
    let mut v = fixture("issues/labeled.json");
    v["label"]["name"] = json!("agent");
    v["issue"]["author_association"] = json!("NONE");
    // The untrusted author labeled their own issue (e.g. via an issue template).
    assert_eq!(
        route_value("issues", &v, &TrustConfig::default()),
        ignored("untrusted")
    );
    // Someone else labeled it: only triage+ users can label others' issues.
    v["sender"]["login"] = json!("maintainer");
    assert!(matches!(
        route_value("issues", &v, &TrustConfig::default()),
        Decision::Task(_)
    ));
}

#[test]
fn a_rule_with_trust_any_accepts_anyone() {
    let rules = Rules::from_yaml(
        "rules:\n  - {name: open, event: issues, actions: [opened], kind: triage, trust: any, prompt: '{{ title }}'}\n",
    )
    .unwrap();
    let mut v = fixture("issues/opened.json");
    v["issue"]["author_association"] = json!("NONE");
    let body = serde_json::to_vec(&v).unwrap();
    let d = route("issues", DELIVERY, &body, &rules, &TrustConfig::default()).unwrap();
    assert_eq!(task_of(d).prompt, "Spelling error in the README file");
}

// ---- decode errors -------------------------------------------------------------------

fn route_err(event: &str, delivery: &str, body: &[u8]) -> DecodeError {
    route(
        event,
        delivery,
        body,
        &Rules::builtin(),
        &TrustConfig::default(),
    )
    .unwrap_err()
}

#[test]
fn malformed_payloads_are_decode_errors_naming_the_problem() {
    let e = route_err("issues", DELIVERY, b"{\"action\": ");
    assert!(
        matches!(e, DecodeError::Json(_)) && e.is_client_error(),
        "{e}"
    );
    let e = route_err("issues", DELIVERY, br#"{"issue": {"number": "one"}}"#);
    assert!(e.to_string().contains("invalid type"), "{e}");
    let e = route_err("issues", DELIVERY, b"{}");
    assert_eq!(
        e.to_string(),
        "payload has no `action`, which a 'issues' event needs"
    );
    // (A comment event's body is decoded only if it holds a rule's command.)
    let e = route_err(
        "issue_comment",
        DELIVERY,
        br#"{"action":"created","note":"/agent"}"#,
    );
    assert!(e.to_string().contains("`comment`"), "{e}");

    let mut v = fixture("issues/labeled.json");
    v["label"]["name"] = json!("agent");
    let mut no_repo = v.clone();
    no_repo.as_object_mut().unwrap().remove("repository");
    let e = route_err("issues", DELIVERY, &serde_json::to_vec(&no_repo).unwrap());
    assert!(e.to_string().contains("`repository`"), "{e}");

    let e = route_err("issues", "", &serde_json::to_vec(&v).unwrap());
    assert!(e.to_string().contains("X-GitHub-Delivery"), "{e}");

    let mut bad_repo = v.clone();
    bad_repo["repository"]["full_name"] = json!("../../etc");
    let e = route_err("issues", DELIVERY, &serde_json::to_vec(&bad_repo).unwrap());
    assert!(e.to_string().contains("repository.full_name"), "{e}");
}

#[test]
fn refs_and_clone_urls_that_could_inject_are_refused() {
    let mut v = fixture("pull_request/labeled.json");
    v["label"]["name"] = json!("agent-review");
    let mut bad_ref = v.clone();
    bad_ref["pull_request"]["head"]["ref"] = json!("--upload-pack=touch /tmp/x");
    let e = route_err(
        "pull_request",
        DELIVERY,
        &serde_json::to_vec(&bad_ref).unwrap(),
    );
    assert!(e.to_string().starts_with("invalid ref"), "{e}");
    let mut bad_url = v;
    bad_url["pull_request"]["head"]["repo"]["clone_url"] = json!("ext::sh -c id");
    let e = route_err(
        "pull_request",
        DELIVERY,
        &serde_json::to_vec(&bad_url).unwrap(),
    );
    assert!(e.to_string().starts_with("invalid clone_url"), "{e}");
}

#[test]
fn decoding_borrows_unescaped_strings_from_the_body() {
    let body = raw("issue_comment/created.json");
    let p: Payload<'_> = serde_json::from_slice(&body).unwrap();
    let login = &p.sender.as_ref().unwrap().login.0;
    assert!(matches!(login, Cow::Borrowed(_)), "{login:?}");
    assert!(matches!(
        p.repository.as_ref().unwrap().full_name.0,
        Cow::Borrowed(_)
    ));
}

// ---- the command pre-filter of comment events --------------------------------

#[test]
fn a_comment_body_without_any_command_is_ignored_before_it_is_parsed() {
    let rules = Rules::builtin();
    assert!(rules.commands_needed("issue_comment").is_some());
    let trust = TrustConfig::default();
    // Not JSON at all, and no command in it: never decoded.
    let d = route("issue_comment", DELIVERY, b"{ not json", &rules, &trust).unwrap();
    assert_eq!(d, ignored("no rule matched"));
    // The same garbage with the command in it is decoded, and refused.
    let e = route("issue_comment", DELIVERY, b"{ /agent", &rules, &trust).unwrap_err();
    assert!(e.is_client_error(), "{e}");
    // A real comment without the command: the same answer as a full decode.
    let v = agent_comment("issue_comment/created.json", "Thanks, looks good!");
    assert_eq!(
        route_value("issue_comment", &v, &trust),
        ignored("no rule matched")
    );
}

#[test]
fn a_command_spelled_with_json_escapes_still_reaches_the_rules() {
    let trust = TrustConfig::default();
    let v = agent_comment("issue_comment/created.json", "/agent fix the typo");
    let text = serde_json::to_string(&v).unwrap();
    assert!(text.contains("\"/agent fix the typo\""));
    for spelled in [
        "\\u002fagent fix the typo",
        "\\/agent fix the typo",
        "/\\u0061gent fix the typo",
    ] {
        let body = text.replace("/agent fix the typo", spelled);
        let d = route(
            "issue_comment",
            DELIVERY,
            body.as_bytes(),
            &Rules::builtin(),
            &trust,
        )
        .unwrap();
        let t = task_of(d);
        assert!(t.prompt.contains("fix the typo"), "{spelled}");
    }
}

#[test]
fn events_with_rules_that_need_no_command_are_always_parsed() {
    let rules = Rules::builtin();
    assert!(rules.commands_needed("issues").is_none());
    let e = route(
        "issues",
        DELIVERY,
        b"{ not json",
        &rules,
        &TrustConfig::default(),
    )
    .unwrap_err();
    assert!(e.is_client_error(), "{e}");
}

// ---- slash commands --------------------------------------------------------------

fn command_of(d: Decision) -> Command {
    match d {
        Decision::Command(c) => *c,
        other => panic!("expected a command, got {other:?}"),
    }
}

#[test]
fn slash_commands_are_the_whole_first_line_of_a_new_comment() {
    use command::parse;
    assert_eq!(parse("/agent status"), Some(CommandKind::Status));
    assert_eq!(parse("/agent cancel"), Some(CommandKind::Cancel));
    assert_eq!(parse("/agent retry"), Some(CommandKind::Retry));
    // The word in any case, whitespace around and between, later lines ignored.
    assert_eq!(parse("  /agent   RETRY \r\n"), Some(CommandKind::Retry));
    assert_eq!(parse("\n\n/agent\tCancel"), Some(CommandKind::Cancel));
    assert_eq!(
        parse("/agent status\nand some words after"),
        Some(CommandKind::Status)
    );
    // Anything else on the line, another word, or not on the first line.
    for body in [
        "/agent status please",
        "/agent retry it",
        "/agent restart",
        "/agent",
        "/agentstatus",
        "/agent status.",
        "please /agent status",
        "Thanks!\n/agent cancel",
        "/Agent status",
        "",
    ] {
        assert_eq!(parse(body), None, "{body:?}");
    }
}

#[test]
fn a_slash_command_becomes_a_command_before_the_comment_rule() {
    let mut v = agent_comment("issue_comment/created.json", "/agent Cancel\n");
    v["installation"] = json!({"id": 2_311_213});
    let c = command_of(route_value("issue_comment", &v, &TrustConfig::default()));
    assert_eq!(
        c,
        Command {
            command: CommandKind::Cancel,
            repository: "Codertocat/Hello-World".into(),
            number: 1,
            is_pr: false,
            comment_id: 492_700_400,
            sender: "Codertocat".into(),
            installation: Some(2_311_213),
            delivery: DELIVERY.into(),
        }
    );
    // On a pull request.
    v["issue"]["pull_request"] = json!({"url": "https://api.github.com/x"});
    v["comment"]["body"] = json!("/agent status");
    let c = command_of(route_value("issue_comment", &v, &TrustConfig::default()));
    assert_eq!((c.command, c.is_pr), (CommandKind::Status, true));
    // Extra words: the comment rule's instruction, as before.
    v["comment"]["body"] = json!("/agent retry the build");
    let t = task_of(route_value("issue_comment", &v, &TrustConfig::default()));
    assert!(t.prompt.contains("<request>\nretry the build\n</request>"));
}

#[test]
fn only_new_comments_carry_commands() {
    let mut v = agent_comment("issue_comment/edited.json", "/agent cancel");
    v["action"] = json!("edited");
    assert_eq!(
        route_value("issue_comment", &v, &TrustConfig::default()),
        ignored("no rule matched")
    );
    v["action"] = json!("deleted");
    assert_eq!(
        route_value("issue_comment", &v, &TrustConfig::default()),
        ignored("no rule matched")
    );
}

#[test]
fn a_slash_command_from_an_untrusted_author_is_untrusted_unless_allowlisted() {
    let mut v = agent_comment("issue_comment/created.json", "/agent retry");
    v["comment"]["author_association"] = json!("NONE");
    assert_eq!(
        route_value("issue_comment", &v, &TrustConfig::default()),
        Decision::UntrustedCommand {
            command: CommandKind::Retry,
            login: "Codertocat".into()
        }
    );
    let allow = TrustConfig {
        allowlist: vec!["CODERTOCAT".into()],
    };
    assert_eq!(
        command_of(route_value("issue_comment", &v, &allow)).command,
        CommandKind::Retry
    );
    for assoc in ["OWNER", "MEMBER", "COLLABORATOR"] {
        v["comment"]["author_association"] = json!(assoc);
        assert!(matches!(
            route_value("issue_comment", &v, &TrustConfig::default()),
            Decision::Command(_)
        ));
    }
    // The comment's author counts, not the sender (an edit is no command anyway).
    v["comment"]["author_association"] = json!("CONTRIBUTOR");
    v["sender"]["login"] = json!("maintainer");
    assert!(matches!(
        route_value("issue_comment", &v, &TrustConfig::default()),
        Decision::UntrustedCommand { .. }
    ));
}

#[test]
fn slash_commands_work_whatever_the_rules_route() {
    let trust = TrustConfig::default();
    // No rule routes issue comments at all.
    let rules = Rules::from_yaml(
        "replace_defaults: true\nrules:\n  - {name: open, event: issues, actions: [opened], kind: triage, prompt: '{{ title }}'}\n",
    )
    .unwrap();
    assert!(!rules.routes_event("issue_comment"));
    let v = agent_comment("issue_comment/created.json", "/agent status");
    let body = serde_json::to_vec(&v).unwrap();
    let d = route("issue_comment", DELIVERY, &body, &rules, &trust).unwrap();
    assert_eq!(command_of(d).command, CommandKind::Status);
    // Other comments there are still not routed, parsed or not.
    let v = agent_comment("issue_comment/created.json", "/agent fix it");
    let body = serde_json::to_vec(&v).unwrap();
    let d = route("issue_comment", DELIVERY, &body, &rules, &trust).unwrap();
    assert_eq!(d, ignored("event 'issue_comment' is not routed"));
    let d = route("issue_comment", DELIVERY, b"{ not json", &rules, &trust).unwrap();
    assert_eq!(d, ignored("event 'issue_comment' is not routed"));
    // A rule whose command is not /agent: its pre-filter lets commands through.
    let rules = Rules::from_yaml(
        "replace_defaults: true\nrules:\n  - {name: bot, event: issue_comment, actions: [created], command: /bot, kind: comment, prompt: '{{ instruction }}'}\n",
    )
    .unwrap();
    assert_eq!(
        rules.commands_needed("issue_comment"),
        Some(&["/bot".to_string()][..])
    );
    let v = agent_comment("issue_comment/created.json", "/agent cancel");
    let body = serde_json::to_vec(&v).unwrap();
    let d = route("issue_comment", DELIVERY, &body, &rules, &trust).unwrap();
    assert_eq!(command_of(d).command, CommandKind::Cancel);
    // Review comments carry no commands: the comment rule takes them.
    let v = agent_comment("pull_request_review_comment/created.json", "/agent status");
    let t = task_of(route_value("pull_request_review_comment", &v, &trust));
    assert_eq!(t.kind, "comment");
}
