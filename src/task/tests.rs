use super::*;
use chrono::TimeZone;

fn is_dns_label(s: &str) -> bool {
    crate::config::is_dns1123_label(s)
}

fn is_label_value(s: &str) -> bool {
    s.is_empty()
        || (s.len() <= 63
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
            && s.starts_with(|c: char| c.is_ascii_alphanumeric())
            && s.ends_with(|c: char| c.is_ascii_alphanumeric()))
}

pub(crate) fn sample() -> Task {
    Task {
        source: TaskSource::Github,
        kind: "implement".into(),
        priority: 0,
        repository: Some("octo/repo".into()),
        issue_number: Some(42),
        pr_number: None,
        checkout: Some(Checkout {
            clone_url: "https://github.com/octo/repo.git".into(),
            git_ref: "main".into(),
        }),
        title: "Fix the thing".into(),
        prompt: "Implement issue #42".into(),
        url: Some("https://github.com/octo/repo/issues/42".into()),
        delivery_id: Some("72d3162e-cc78-11e3-81ab-4c9367dc0958".into()),
        dedup_key: "github:delivery:72d3162e-cc78-11e3-81ab-4c9367dc0958".into(),
        requested_by: Some("octocat".into()),
        labels: BTreeMap::new(),
        created_at: Utc.with_ymd_and_hms(2024, 5, 1, 12, 0, 0).unwrap(),
    }
}

/// Deterministic pseudo-random strings over an alphabet full of edge cases.
fn odd_strings() -> Vec<String> {
    let alphabet: Vec<char> = "aZ09-_./ \t\n#@:ÄéΩ🦀\u{0}\u{200b}--..__//"
        .chars()
        .collect();
    let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let mut out = vec![
        String::new(),
        "-".into(),
        "---".into(),
        "..".into(),
        "🦀🦀🦀".into(),
        "A".repeat(300),
        "-a-".into(),
        "UPPER/Case".into(),
    ];
    for _ in 0..2000 {
        let len = (next() % 120) as usize;
        out.push(
            (0..len)
                .map(|_| alphabet[(next() % alphabet.len() as u64) as usize])
                .collect(),
        );
    }
    out
}

#[test]
fn job_name_is_readable_and_deterministic() {
    let t = sample();
    let name = t.job_name();
    assert!(name.starts_with("gh-implement-octo-repo-42-"), "{name}");
    assert_eq!(name.len(), "gh-implement-octo-repo-42-".len() + 10);
    assert_eq!(name, sample().job_name());
    let mut other = sample();
    other.dedup_key.push('x');
    assert_ne!(other.job_name(), name);
}

#[test]
fn job_name_is_a_dns_label_for_odd_inputs() {
    for s in odd_strings() {
        let mut t = sample();
        t.kind = s.clone();
        t.repository = Some(s.clone());
        t.dedup_key = s.clone();
        let name = t.job_name();
        assert!(is_dns_label(&name), "{s:?} -> {name:?}");
        let name = name_with_hash(&s, &s);
        assert!(is_dns_label(&name), "{s:?} -> {name:?}");
    }
}

#[test]
fn job_name_keeps_the_hash_when_the_prefix_is_long() {
    let mut t = sample();
    t.repository = Some(format!("{}/{}", "o".repeat(39), "r".repeat(100)));
    let name = t.job_name();
    assert_eq!(name.len(), 63);
    let hash = &hex::encode(Sha256::digest(t.dedup_key.as_bytes()))[..10];
    assert!(name.ends_with(hash));
}

#[test]
fn label_value_maps_repositories_readably() {
    assert_eq!(label_value("octo/repo"), "octo.repo");
    assert_eq!(
        label_value("Codertocat/Hello-World"),
        "Codertocat.Hello-World"
    );
    assert_eq!(label_value("implement"), "implement");
    assert_eq!(label_value(""), "");
    assert_eq!(label_value("-x-"), "x");
}

#[test]
fn label_value_is_valid_for_odd_inputs() {
    for s in odd_strings() {
        let v = label_value(&s);
        assert!(is_label_value(&v), "{s:?} -> {v:?}");
    }
}

#[test]
fn long_label_values_stay_distinct() {
    let a = label_value(&format!("{}/a", "x".repeat(100)));
    let b = label_value(&format!("{}/b", "x".repeat(100)));
    assert_ne!(a, b);
    assert!(is_label_value(&a) && is_label_value(&b));
}

#[test]
fn priority_labels_round_trip() {
    for p in [0, 1, 100, -1, -100, i32::MAX, i32::MIN] {
        let v = priority_label(p);
        assert!(is_label_value(&v), "{v}");
        assert_eq!(parse_priority_label(&v), Some(p));
    }
}

#[test]
fn task_json_round_trips_with_wire_names() {
    let t = sample();
    let json = serde_json::to_string(&t).unwrap();
    assert!(json.contains(r#""source":"github""#));
    assert!(json.contains(r#""created_at":"2024-05-01T12:00:00.000Z""#));
    let back: Task = serde_json::from_str(&json).unwrap();
    assert_eq!(back, t);
    let mut pm = sample();
    pm.source = TaskSource::PmAgent;
    assert!(serde_json::to_string(&pm)
        .unwrap()
        .contains(r#""pm-agent""#));
}

#[test]
fn bounded_json_stays_valid_and_within_the_limit() {
    let mut t = sample();
    t.prompt = "\"quoted\" \u{1}\n🦀 ".repeat(20_000);
    t.title = "title ".repeat(1000);
    for limit in [1024, 4096, 65_536] {
        let json = t.to_bounded_json(limit);
        assert!(json.len() <= limit, "{} > {limit}", json.len());
        let back: Task = serde_json::from_str(&json).expect("valid task JSON");
        assert_eq!(back.dedup_key, t.dedup_key);
        assert!(back.prompt.contains("truncated by orchestrator"));
    }
    let small = sample();
    assert_eq!(
        small.to_bounded_json(65_536),
        serde_json::to_string(&small).unwrap()
    );
}

#[test]
fn truncation_respects_char_boundaries() {
    let s = "ééééé";
    let t = truncate_with_marker(s, 3);
    assert!(t.starts_with('é') && t.contains("8 bytes omitted"));
    assert_eq!(truncate_with_marker("abc", 3), "abc");
}

#[test]
fn concurrency_key_names_the_issue_or_pr() {
    assert_eq!(sample().concurrency_key().as_deref(), Some("octo/repo#42"));
    let mut t = sample();
    t.repository = None;
    assert_eq!(t.concurrency_key(), None);
}

#[test]
fn concurrency_keys_ignore_the_case_of_the_repository_which_the_task_keeps() {
    let mut t = sample();
    t.repository = Some("Octo/Repo".into());
    assert_eq!(t.concurrency_key().as_deref(), Some("octo/repo#42"));
    assert_eq!(t.repository.as_deref(), Some("Octo/Repo"));
}
