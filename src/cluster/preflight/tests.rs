use super::*;
use crate::cluster::permissions::REQUIRED;

fn target() -> Target {
    Target {
        server: "https://10.0.0.1:443".into(),
        namespace: "claude-jobs".into(),
        tenants: Vec::new(),
    }
}

fn reached(namespace: NamespaceSeen, denied: &[&str]) -> Observation {
    Observation::Reached {
        version: "v1.33.0".into(),
        namespace,
        access: Some(
            REQUIRED
                .iter()
                .map(|p| {
                    let a = if denied.contains(&p.to_string().as_str()) {
                        AccessSeen::Denied(String::new())
                    } else {
                        AccessSeen::Allowed
                    };
                    (*p, a)
                })
                .collect(),
        ),
        tenants: Vec::new(),
    }
}

fn failed_messages(r: &Report) -> Vec<String> {
    r.failures().map(|c| c.message.clone()).collect()
}

#[test]
fn all_good_passes_and_lists_every_permission() {
    let r = evaluate(&target(), &reached(NamespaceSeen::Exists, &[]));
    assert!(r.passed());
    assert_eq!(r.checks.len(), 2 + REQUIRED.len());
    assert!(r.checks.iter().all(|c| c.result == Outcome::Ok));
}

#[test]
fn missing_namespace_is_named() {
    let r = evaluate(&target(), &reached(NamespaceSeen::Missing, &[]));
    assert!(!r.passed());
    assert_eq!(
        failed_messages(&r),
        vec![r#"namespace "claude-jobs" does not exist"#]
    );
    let fix = r.failures().next().and_then(|c| c.fix.clone());
    assert!(fix.is_some_and(|f| f.contains("kubectl create namespace claude-jobs")));
}

#[test]
fn a_denied_permission_names_verb_resource_and_namespace() {
    let r = evaluate(
        &target(),
        &reached(
            NamespaceSeen::Exists,
            &["create jobs.batch", "get pods/log"],
        ),
    );
    assert_eq!(
        failed_messages(&r),
        vec![
            r#"cannot create jobs.batch in namespace "claude-jobs""#,
            r#"cannot get pods/log in namespace "claude-jobs""#,
        ]
    );
    let c = r.failures().next().expect("a failure");
    assert_eq!(
        (c.verb, c.resource.as_deref()),
        (Some("create"), Some("jobs.batch"))
    );
}

#[test]
fn unreachable_server_is_the_only_check() {
    let r = evaluate(
        &target(),
        &Observation::Unreachable("connection refused".into()),
    );
    assert!(r.unreachable());
    assert_eq!(
        failed_messages(&r),
        vec!["API server unreachable at https://10.0.0.1:443: connection refused"]
    );
}

#[test]
fn unknowns_do_not_fail() {
    let seen = Observation::Reached {
        version: "v1".into(),
        namespace: NamespaceSeen::Unknown("forbidden".into()),
        access: None,
        tenants: Vec::new(),
    };
    let r = evaluate(&target(), &seen);
    assert!(r.passed());
    let unknown: Vec<&str> = r
        .checks
        .iter()
        .filter(|c| c.result == Outcome::Unknown)
        .map(|c| c.check)
        .collect();
    assert_eq!(unknown, vec!["namespace", "permissions"]);
}

#[test]
fn a_failure_is_a_change_once_then_again_on_recovery() {
    let bad = evaluate(&target(), &reached(NamespaceSeen::Missing, &[]));
    let good = evaluate(&target(), &reached(NamespaceSeen::Exists, &[]));

    let first = changes(None, &bad);
    assert_eq!(first.len(), 1);
    assert!(matches!(first[0], Change::Failing(c) if c.check == "namespace"));
    assert!(
        changes(Some(&bad), &bad).is_empty(),
        "still failing: no change"
    );

    let back = changes(Some(&bad), &good);
    assert_eq!(back.len(), 1);
    assert!(matches!(back[0], Change::Recovered(c) if c.message.contains("exists")));
    assert!(changes(Some(&good), &good).is_empty());
    assert!(changes(None, &good).is_empty(), "a good start logs nothing");
}

#[test]
fn other_words_for_the_same_failure_are_not_a_change() {
    let a = evaluate(
        &target(),
        &Observation::Unreachable("connection refused".into()),
    );
    let b = evaluate(&target(), &Observation::Unreachable("timed out".into()));
    assert!(changes(Some(&a), &b).is_empty());
}

#[test]
fn permission_checks_are_told_apart() {
    let one = evaluate(
        &target(),
        &reached(NamespaceSeen::Exists, &["create jobs.batch"]),
    );
    let other = evaluate(
        &target(),
        &reached(NamespaceSeen::Exists, &["delete jobs.batch"]),
    );
    let ch = changes(Some(&one), &other);
    assert_eq!(ch.len(), 2, "{ch:?}");
    assert!(ch.contains(&Change::Failing(
        other.failures().next().expect("delete denied")
    )));
}

#[test]
fn report_serialises_with_words() {
    let r = evaluate(&target(), &reached(NamespaceSeen::Missing, &[]));
    let v = serde_json::to_value(&r).expect("serialises");
    assert_eq!(v["checks"][1]["check"], "namespace");
    assert_eq!(v["checks"][1]["result"], "failed");
    assert_eq!(v["checks"][2]["verb"], "create");
    assert_eq!(v["checks"][2]["resource"], "jobs.batch");
}

#[test]
fn the_public_report_names_no_address_and_keeps_the_rest() {
    let r = evaluate(
        &target(),
        &Observation::Unreachable(
            "error trying to connect: tcp connect error to 10.0.0.1:443: connection refused".into(),
        ),
    );
    let public = r.public();
    assert_eq!(
        failed_messages(&public),
        vec!["API server unreachable: error trying to connect: tcp connect error: connection refused"]
    );
    assert!(
        failed_messages(&r)[0].contains("https://10.0.0.1:443"),
        "the full report keeps it"
    );
    assert_eq!(public.checks[0].fix, r.checks[0].fix);

    let r = evaluate(&target(), &reached(NamespaceSeen::Missing, &[]));
    let public = r.public();
    assert_eq!(
        public.checks[0].message,
        "API server answers (version v1.33.0)"
    );
    assert_eq!(
        failed_messages(&public),
        vec![r#"namespace "claude-jobs" does not exist"#]
    );
    for c in &public.checks[1..] {
        assert_eq!(c, &r.checks[c_index(&r, c)]);
    }
    for text in [
        "refused by [::1]:6443 and fe80::1, or kubernetes.default.svc:443 (http://api.internal/x)",
        "at 192.168.1.20",
    ] {
        let out = without_addresses(text);
        for addr in [
            "::1",
            "6443",
            "fe80",
            "kubernetes.default",
            "api.internal",
            "192.168",
        ] {
            assert!(!out.contains(addr), "{addr} in {out:?}");
        }
    }
}

fn c_index(r: &Report, c: &Check) -> usize {
    r.checks.iter().position(|x| x.key() == c.key()).unwrap()
}
