use super::*;

fn facts<'a>(
    event: &'a str,
    action: &'a str,
    label: Option<&'a str>,
    comment: Option<&'a str>,
) -> EventFacts<'a> {
    EventFacts {
        event,
        action,
        label,
        comment,
    }
}

#[test]
fn builtin_defaults_route_the_documented_events() {
    let r = Rules::builtin();
    let m = r
        .find(&facts("issues", "labeled", Some("agent"), None))
        .unwrap();
    assert_eq!(
        (m.rule.name.as_str(), m.rule.kind.as_str()),
        ("issue-agent", "implement")
    );
    let m = r
        .find(&facts("issues", "labeled", Some("Agent"), None))
        .unwrap();
    assert_eq!(m.rule.kind, "implement", "labels are case-insensitive");
    let m = r
        .find(&facts(
            "issue_comment",
            "created",
            None,
            Some("  /agent fix the typo\n"),
        ))
        .unwrap();
    assert_eq!(m.rule.kind, "comment");
    assert_eq!(m.instruction, Some("fix the typo"));
    let m = r
        .find(&facts(
            "pull_request_review_comment",
            "created",
            None,
            Some("/agent"),
        ))
        .unwrap();
    assert_eq!(m.instruction, Some(""));
    let m = r
        .find(&facts(
            "pull_request",
            "labeled",
            Some("agent-review"),
            None,
        ))
        .unwrap();
    assert_eq!(m.rule.kind, "review");
}

#[test]
fn builtin_defaults_ignore_everything_else() {
    let r = Rules::builtin();
    for f in [
        facts("issues", "labeled", Some("bug"), None),
        facts("issues", "opened", None, None),
        facts("issues", "unlabeled", Some("agent"), None),
        facts(
            "issue_comment",
            "created",
            None,
            Some("You are right /agent"),
        ),
        facts("issue_comment", "created", None, Some("/agents please")),
        facts("issue_comment", "edited", None, Some("/agent do it")),
        facts("pull_request", "labeled", Some("agent"), None),
        facts("pull_request", "opened", None, None),
    ] {
        assert!(r.find(&f).is_none(), "{f:?}");
    }
    assert!(r.routes_event("issues") && r.routes_event("issue_comment"));
    assert!(!r.routes_event("push") && !r.routes_event("ping"));
}

#[test]
fn template_syntax_in_user_text_reaches_the_prompt_verbatim() {
    let r = Rules::builtin();
    let hostile = "{{ 7*7 }} {% for x in range(3) %}loop{% endfor %} {# c #} {{ config }}";
    let ctx = PromptContext {
        repository: "octo/repo",
        number: 1,
        title: hostile,
        body: hostile,
        instruction: hostile,
        comment: hostile,
        ..Default::default()
    };
    for rule in r.rules() {
        let prompt = r.render(rule, &ctx).unwrap();
        assert!(prompt.contains(hostile), "{}: {prompt}", rule.name);
        assert!(!prompt.contains("49"), "{}", rule.name);
        assert!(!prompt.contains("looploop"), "{}", rule.name);
    }
}

#[test]
fn prompts_are_size_bounded() {
    let r = Rules::builtin();
    let huge = "x".repeat(200_000);
    let ctx = PromptContext {
        body: &huge,
        ..Default::default()
    };
    let prompt = r.render(&r.rules()[0], &ctx).unwrap();
    assert!(prompt.len() <= MAX_PROMPT_BYTES + 100);
    assert!(prompt.ends_with("bytes omitted]"));
}

const CUSTOM: &str = r#"
rules:
  - name: triage-bug
    event: issues
    label: bug
    kind: investigate
    priority: 5
    prompt: "Investigate {{ repository }}#{{ number }}: {{ title }}"
  - name: comment-agent
    events: [issue_comment]
    actions: [created, edited]
    command: /bot
    kind: comment
    trust: any
    prompt: "{{ instruction }}"
"#;

#[test]
fn a_rules_file_adds_rules_and_replaces_defaults_by_name() {
    let r = Rules::from_yaml(CUSTOM).unwrap();
    let names: Vec<_> = r.rules().iter().map(|r| r.name.as_str()).collect();
    assert_eq!(
        names,
        ["triage-bug", "comment-agent", "issue-agent", "pr-review"]
    );
    let m = r
        .find(&facts("issues", "labeled", Some("bug"), None))
        .unwrap();
    assert_eq!((m.rule.kind.as_str(), m.rule.priority), ("investigate", 5));
    let m = r
        .find(&facts("issue_comment", "edited", None, Some("/bot go")))
        .unwrap();
    assert_eq!(m.rule.trust, Trust::Any);
    assert!(r
        .find(&facts("issue_comment", "created", None, Some("/agent go")))
        .is_none());
    let ctx = PromptContext {
        repository: "o/r",
        number: 3,
        title: "t",
        ..Default::default()
    };
    assert_eq!(r.render(m.rule, &ctx).unwrap(), "");
    assert_eq!(
        r.render(&r.rules()[0], &ctx).unwrap(),
        "Investigate o/r#3: t"
    );
}

#[test]
fn replace_defaults_drops_the_builtin_rules() {
    let text = format!("replace_defaults: true\n{CUSTOM}");
    let r = Rules::from_yaml(&text).unwrap();
    assert_eq!(r.rules().len(), 2);
    assert!(!r.routes_event("pull_request"));
}

fn load_err(yaml: &str) -> String {
    Rules::from_yaml(yaml).unwrap_err().to_string()
}

#[test]
fn bad_rules_files_fail_at_load_time_naming_the_rule() {
    let base = "  - name: r1\n    event: issues\n    label: agent\n    kind: implement\n";
    let cases = [
        (
            format!("{base}    prompt: hi\n    colour: red\n"),
            "rule 'r1'",
            "colour",
        ),
        (
            format!("{base}    prompt: \"{{{{ body \"\n"),
            "rule 'r1'",
            "template",
        ),
        (
            format!("{base}    prompt: \"{{{{ secret_sauce }}}}\"\n"),
            "rule 'r1'",
            "undefined",
        ),
        (
            format!("{base}    prompt: \"{{{{ body | nosuchfilter }}}}\"\n"),
            "rule 'r1'",
            "filter",
        ),
        (
            "  - name: r2\n    event: push\n    kind: x\n    prompt: p\n".into(),
            "rule 'r2'",
            "push",
        ),
        (
            "  - name: r3\n    event: issue_comment\n    kind: x\n    prompt: p\n".into(),
            "rule 'r3'",
            "command",
        ),
        (
            "  - name: r4\n    event: issues\n    kind: Bad Kind\n    prompt: p\n".into(),
            "rule 'r4'",
            "kind",
        ),
        (
            "  - name: r5\n    event: issues\n    kind: x\n    trust: everyone\n    prompt: p\n"
                .into(),
            "rule 'r5'",
            "everyone",
        ),
        (
            "  - event: issues\n    kind: x\n    prompt: p\n".into(),
            "rule '#1'",
            "name",
        ),
    ];
    for (rules, who, what) in cases {
        let msg = load_err(&format!("rules:\n{rules}"));
        assert!(msg.starts_with(who), "{msg}");
        assert!(msg.contains(what), "{what} not in: {msg}");
    }
    let dup = "rules:\n  - {name: a, event: issues, kind: x, prompt: p}\n  - {name: a, event: issues, kind: y, prompt: p}\n";
    assert!(load_err(dup).contains("duplicate"));
    assert!(load_err("rulez: []").starts_with("rules file:"));
}

#[test]
fn command_prefix_needs_a_word_boundary() {
    assert_eq!(command_instruction("/agent do it", "/agent"), Some("do it"));
    assert_eq!(
        command_instruction("\n/agent\tdo it ", "/agent"),
        Some("do it")
    );
    assert_eq!(command_instruction("/agent", "/agent"), Some(""));
    assert_eq!(command_instruction("/agentic", "/agent"), None);
    assert_eq!(command_instruction("please /agent", "/agent"), None);
}

#[test]
fn load_reads_the_file_or_reports_the_path() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("rules.yaml");
    std::fs::write(&path, CUSTOM).unwrap();
    assert_eq!(Rules::load(Some(&path)).unwrap().rules().len(), 4);
    assert_eq!(Rules::load(None).unwrap().rules().len(), 3);
    let missing = dir.path().join("nope.yaml");
    let msg = Rules::load(Some(&missing)).unwrap_err().to_string();
    assert!(msg.contains("nope.yaml"), "{msg}");
}

#[test]
fn comment_events_list_the_commands_a_delivery_must_contain() {
    let r = Rules::from_yaml(CUSTOM).unwrap();
    assert_eq!(
        r.commands_needed("issue_comment"),
        Some(&["/bot".to_string()][..])
    );
    assert_eq!(
        Rules::builtin().commands_needed("issue_comment"),
        Some(&["/agent".to_string()][..])
    );
    // Label rules need no command: such events are always decoded.
    assert_eq!(r.commands_needed("issues"), None);
    assert_eq!(r.commands_needed("push"), None);
}

#[test]
fn on_repeat_has_documented_defaults_and_is_read_from_the_file() {
    let r = Rules::builtin();
    let of = |name: &str| r.get(name).map(|rule| rule.on_repeat);
    assert_eq!(of("issue-agent"), Some(OnRepeat::Ignore));
    assert_eq!(of("comment-agent"), Some(OnRepeat::Queue));
    assert_eq!(of("pr-review"), Some(OnRepeat::Supersede));
    let yaml = "rules:\n  - name: again\n    events: [issues]\n    label: redo\n    kind: implement\n    on_repeat: supersede\n    prompt: x\n  - name: plain\n    events: [issues]\n    label: plain\n    kind: implement\n    prompt: x\n";
    let r = Rules::from_yaml(yaml).unwrap();
    assert_eq!(
        r.get("again").map(|x| x.on_repeat),
        Some(OnRepeat::Supersede)
    );
    assert_eq!(r.get("plain").map(|x| x.on_repeat), Some(OnRepeat::Queue));
    let bad = "rules:\n  - name: bad\n    events: [issues]\n    label: x\n    kind: implement\n    on_repeat: restart\n    prompt: x\n";
    let e = Rules::from_yaml(bad).unwrap_err().to_string();
    assert!(
        e.contains("'bad'") && e.contains("on_repeat") || e.contains("restart"),
        "{e}"
    );
}
