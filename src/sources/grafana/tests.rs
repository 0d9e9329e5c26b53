use super::*;
use chrono::TimeZone;
use serde_json::{json, Value};

const AM_FIRING: &str = "prometheus-msteams-prom_post_request.firing.json";
const AM_RESOLVED: &str = "prom2teams-with_common_items.resolved.json";

fn fixture(name: &str) -> Value {
    let path = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/alertmanager")
        .join(name);
    let raw = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_slice(&raw).unwrap()
}

fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2025, 6, 1, 10, 5, 0).unwrap()
}

fn route_with(v: &Value, cfg: &GrafanaConfig) -> Vec<AlertDecision> {
    route(&serde_json::to_vec(v).unwrap(), cfg, now()).unwrap()
}

fn route_value(v: &Value) -> Vec<AlertDecision> {
    route_with(v, &GrafanaConfig::default())
}

fn fired(d: &AlertDecision) -> &Task {
    match d {
        AlertDecision::Fire(t) => t,
        other => panic!("expected Fire, got {other:?}"),
    }
}

fn cfg(vars: &[(&str, &str)]) -> GrafanaConfig {
    GrafanaConfig::from_lookup(|name| {
        vars.iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.to_string())
    })
    .unwrap()
}

/// A Grafana webhook contact-point body (`version: "1"`), shaped as
/// grafana/alerting `receivers/webhook/v1` sends it (see fixtures/grafana/NOTES.md).
fn grafana_body(status: &str) -> Value {
    let resolved = status == "resolved";
    json!({
        "receiver": "orchestrator",
        "status": status,
        "alerts": [{
            "status": status,
            "labels": {
                "alertname": "HighLatency",
                "grafana_folder": "Payments",
                "repository": "octo-org/payments",
                "severity": "critical",
                "team": "payments"
            },
            "annotations": {
                "summary": "p99 latency above 2s",
                "description": "checkout p99 is 2.31s",
                "runbook_url": "https://runbooks.example.com/high-latency"
            },
            "startsAt": "2025-06-01T10:00:00Z",
            "endsAt": if resolved { "2025-06-01T10:04:00Z" } else { "0001-01-01T00:00:00Z" },
            "generatorURL": "https://grafana.example.com/alerting/grafana/dea1b7/view?orgId=1",
            "fingerprint": "57c6d9296de2ad39",
            "silenceURL": "https://grafana.example.com/alerting/silence/new?alertmanager=grafana",
            "dashboardURL": "https://grafana.example.com/d/payments?orgId=1",
            "panelURL": "https://grafana.example.com/d/payments?orgId=1&viewPanel=4",
            "values": { "B": 2.31, "C": 1 },
            "valueString": "[ var='B' labels={} value=2.31 ], [ var='C' labels={} value=1 ]"
        }],
        "groupLabels": { "alertname": "HighLatency" },
        "commonLabels": { "alertname": "HighLatency", "severity": "critical" },
        "commonAnnotations": { "summary": "p99 latency above 2s" },
        "externalURL": "https://grafana.example.com/",
        "version": "1",
        "groupKey": "{}/{}:{alertname=\"HighLatency\"}",
        "truncatedAlerts": 0,
        "orgId": 1,
        "title": if resolved { "[RESOLVED] HighLatency" } else { "[FIRING:1] HighLatency" },
        "state": if resolved { "ok" } else { "alerting" },
        "message": "**Firing**\n\nValue: B=2.31"
    })
}

// ---- Alertmanager fixtures -----------------------------------------------------

#[test]
fn alertmanager_firing_fixture_fires_one_investigation() {
    let decisions = route_value(&fixture(AM_FIRING));
    assert_eq!(decisions.len(), 1);
    let t = fired(&decisions[0]);
    // This old Alertmanager sent neither `status` nor `fingerprint` per alert.
    let fp = label_fingerprint(&fixture_labels(&fixture(AM_FIRING), 0));
    assert_eq!(t.source, TaskSource::Grafana);
    assert_eq!(t.kind, "investigate");
    assert_eq!(t.priority, 10, "severity=warning");
    assert_eq!(t.title, "high_memory_load: Server High Memory usage");
    assert_eq!(
        t.dedup_key,
        format!("grafana:{fp}:2018-03-07T11:33:21.873077559Z"),
        "startsAt is normalized to UTC"
    );
    assert_eq!(t.repository, None);
    assert_eq!(t.checkout, None);
    assert_eq!(t.url, None, "the fixture has no generatorURL");
    assert_eq!(t.requested_by.as_deref(), Some("alertmanager"));
    assert_eq!(t.labels["fingerprint"], fp);
    assert_eq!(t.labels["alertname"], "high_memory_load");
    assert_eq!(t.labels["receiver"], "teams_proxy");
    assert_eq!(t.created_at, now());
    assert!(t.prompt.contains("reported by Alertmanager.\n"));
    assert!(t.prompt.contains("rule and dashboards. Report"));
    assert!(
        !t.prompt.contains("Alertmanager: http"),
        "without GRAFANA_URL no payload link reaches the prompt"
    );
    let d = route_with(
        &fixture(AM_FIRING),
        &cfg(&[("GRAFANA_URL", "http://docker.for.mac.host.internal:9093")]),
    );
    assert!(fired(&d[0])
        .prompt
        .contains("Alertmanager: http://docker.for.mac.host.internal:9093\n"));
    assert!(t
        .prompt
        .contains("- instance=instance-with-hyphen_and_underscore"));
    assert!(t
        .prompt
        .contains("- description: 10.80.40.11 reported high memory usage with 23.28%."));
    let name = t.job_name();
    assert!(name.starts_with("gf-investigate-"), "{name}");
    assert_eq!(name, alert_job_name(&fp, &t.labels["starts_at"], None));
}

fn fixture_labels(v: &Value, i: usize) -> BTreeMap<String, String> {
    serde_json::from_value(v["alerts"][i]["labels"].clone()).unwrap()
}

#[test]
fn derived_fingerprints_follow_prometheus_label_set_fingerprint() {
    // The vectors of prometheus/common `model/signature_test.go`
    // (TestMetricToFingerprint), printed as Alertmanager prints them.
    let labels = BTreeMap::from([
        ("name".to_string(), "garland, briggs".to_string()),
        ("fear".to_string(), "love is not enough".to_string()),
    ]);
    assert_eq!(
        label_fingerprint(&labels),
        format!("{:016x}", 5799056148416392346u64)
    );
    assert_eq!(label_fingerprint(&labels), "507a62d79ee76c9a");
    assert_eq!(label_fingerprint(&BTreeMap::new()), "cbf29ce484222325");
}

#[test]
fn alertmanager_resolved_fixture_resolves_the_job_its_firing_created() {
    let resolved = fixture(AM_RESOLVED);
    let decisions = route_value(&resolved);
    let [AlertDecision::Resolve {
        fingerprint,
        starts_at,
        job_name,
        dedup_key,
    }] = decisions.as_slice()
    else {
        panic!("expected one Resolve, got {decisions:?}");
    };
    assert_eq!(fingerprint, "dd19ae3d4e06ac55");
    assert_eq!(starts_at, "2019-01-28T20:26:23.868893Z");
    assert_eq!(
        dedup_key,
        "grafana:dd19ae3d4e06ac55:2019-01-28T20:26:23.868893Z"
    );

    // The same alert while it was firing.
    let mut firing = resolved.clone();
    firing["status"] = json!("firing");
    firing["alerts"][0]["status"] = json!("firing");
    firing["alerts"][0]["endsAt"] = json!("0001-01-01T00:00:00Z");
    let firing_decisions = route_value(&firing);
    let task = fired(&firing_decisions[0]);
    assert_eq!(&task.job_name(), job_name);
    assert_eq!(&task.dedup_key, dedup_key);

    // Without fingerprints (old Alertmanagers) firing and resolved still
    // agree. The fixture's fingerprint is not the Prometheus hash of the
    // labels it shows (the capture was likely edited), so the derived one
    // differs from it; that is why it is not asserted here.
    let strip = |mut v: Value| {
        v["alerts"][0]
            .as_object_mut()
            .unwrap()
            .remove("fingerprint");
        v
    };
    let old_resolved = route_value(&strip(resolved));
    let old_firing = route_value(&strip(firing));
    let AlertDecision::Resolve {
        job_name,
        fingerprint,
        ..
    } = &old_resolved[0]
    else {
        panic!("expected Resolve, got {old_resolved:?}");
    };
    assert_eq!(&fired(&old_firing[0]).job_name(), job_name);
    assert_eq!(fingerprint, &fired(&old_firing[0]).labels["fingerprint"]);
}

#[test]
fn without_a_status_an_ended_alert_or_a_resolved_group_is_resolved() {
    let mut v = fixture(AM_FIRING);
    v["alerts"][0]["endsAt"] = json!("2018-03-07T07:00:00-05:00");
    assert!(matches!(route_value(&v)[0], AlertDecision::Resolve { .. }));
    let mut v = fixture(AM_FIRING);
    v["status"] = json!("resolved");
    assert!(matches!(route_value(&v)[0], AlertDecision::Resolve { .. }));
    // An end in the future (Prometheus' resend horizon) is still firing.
    let mut v = fixture(AM_FIRING);
    v["alerts"][0]["endsAt"] = json!("2999-01-01T00:00:00Z");
    assert!(matches!(route_value(&v)[0], AlertDecision::Fire(_)));
}

// ---- Grafana bodies ------------------------------------------------------------

#[test]
fn a_grafana_firing_alert_becomes_a_prioritised_investigation() {
    let decisions = route_with(
        &grafana_body("firing"),
        &cfg(&[("GRAFANA_URL", "https://grafana.example.com")]),
    );
    assert_eq!(decisions.len(), 1);
    let t = fired(&decisions[0]);
    assert_eq!(t.priority, 100, "severity=critical");
    assert_eq!(t.title, "HighLatency: p99 latency above 2s");
    assert_eq!(t.repository.as_deref(), Some("octo-org/payments"));
    assert_eq!(t.checkout, None);
    assert_eq!(
        t.url.as_deref(),
        Some("https://grafana.example.com/alerting/grafana/dea1b7/view?orgId=1")
    );
    assert_eq!(t.dedup_key, "grafana:57c6d9296de2ad39:2025-06-01T10:00:00Z");
    assert_eq!(t.requested_by.as_deref(), Some("grafana"));
    assert_eq!(t.labels["org_id"], "1");
    assert_eq!(t.labels["severity"], "critical");
    assert_eq!(t.labels["sender"], "grafana");
    assert!(t
        .job_name()
        .starts_with("gf-investigate-octo-org-payments-"));
    for needle in [
        "for the repository octo-org/payments",
        "dashboards, and the code of octo-org/payments. Report",
        "Alert: HighLatency",
        "Started at: 2025-06-01T10:00:00Z",
        "Dashboard: https://grafana.example.com/d/payments?orgId=1\n",
        "Panel: https://grafana.example.com/d/payments?orgId=1&viewPanel=4",
        "Silence: https://grafana.example.com/alerting/silence/new",
        "Grafana: https://grafana.example.com/",
        "- team=payments",
        "- runbook_url: https://runbooks.example.com/high-latency",
        "- B = 2.31",
        "- C = 1",
    ] {
        assert!(
            t.prompt.contains(needle),
            "{needle:?} not in:\n{}",
            t.prompt
        );
    }
    assert!(!t.prompt.contains("&amp;"), "no HTML escaping");
}

#[test]
fn a_grafana_resolved_alert_names_the_job_of_its_firing() {
    let firing = route_value(&grafana_body("firing"));
    let resolved = route_value(&grafana_body("resolved"));
    let AlertDecision::Resolve {
        job_name,
        fingerprint,
        ..
    } = &resolved[0]
    else {
        panic!("expected Resolve, got {resolved:?}");
    };
    assert_eq!(fingerprint, "57c6d9296de2ad39");
    assert_eq!(job_name, &fired(&firing[0]).job_name());
}

#[test]
fn the_same_notification_again_gets_the_same_job_name() {
    // A repeat notification a repeat_interval later, or the HA peer's copy.
    let body = serde_json::to_vec(&grafana_body("firing")).unwrap();
    let cfg = GrafanaConfig::default();
    let first = route(&body, &cfg, now()).unwrap();
    let later = now() + chrono::Duration::hours(4);
    let again = route(&body, &cfg, later).unwrap();
    assert_eq!(fired(&first[0]).job_name(), fired(&again[0]).job_name());
    assert_eq!(fired(&first[0]).dedup_key, fired(&again[0]).dedup_key);
    // The same instant written with another offset is the same episode.
    let mut shifted = grafana_body("firing");
    shifted["alerts"][0]["startsAt"] = json!("2025-06-01T12:00:00+02:00");
    assert_eq!(
        fired(&route_value(&shifted)[0]).job_name(),
        fired(&first[0]).job_name()
    );
    // A new firing episode of the same alert is a new task.
    let mut next = grafana_body("firing");
    next["alerts"][0]["startsAt"] = json!("2025-06-01T11:00:00Z");
    assert_ne!(
        fired(&route_value(&next)[0]).job_name(),
        fired(&first[0]).job_name()
    );
}

#[test]
fn label_and_annotation_text_reaches_the_prompt_verbatim() {
    let mut v = grafana_body("firing");
    v["alerts"][0]["annotations"]["description"] = json!("{{ 7*7 }}");
    v["alerts"][0]["labels"]["team"] = json!("{% for i in range(3) %}x{% endfor %}");
    v["alerts"][0]["labels"]["alertname"] = json!("<b>{{ config }}</b>");
    let decisions = route_value(&v);
    let t = fired(&decisions[0]);
    assert!(
        t.prompt.contains("- description: {{ 7*7 }}"),
        "{}",
        t.prompt
    );
    assert!(!t.prompt.contains("49"));
    assert!(t
        .prompt
        .contains("- team={% for i in range(3) %}x{% endfor %}"));
    assert!(t.prompt.contains("Alert: <b>{{ config }}</b>"));
    assert_eq!(t.title, "<b>{{ config }}</b>: p99 latency above 2s");
}

// ---- selection, priority, repository --------------------------------------------

#[test]
fn matchers_select_alerts_and_explain_the_rest() {
    let c = cfg(&[("GRAFANA_ALERT_MATCHERS", "severity=critical,team!=infra")]);
    assert!(matches!(
        route_with(&grafana_body("firing"), &c)[0],
        AlertDecision::Fire(_)
    ));
    let warning = route_with(&fixture(AM_FIRING), &c);
    let [AlertDecision::Ignored {
        fingerprint,
        reason,
    }] = warning.as_slice()
    else {
        panic!("expected Ignored, got {warning:?}");
    };
    assert_eq!(fingerprint.len(), 16);
    assert!(reason.contains("severity=\"critical\""), "{reason}");
    // Resolved alerts the matchers never selected cancel nothing.
    assert!(matches!(
        route_with(&fixture(AM_RESOLVED), &c)[0],
        AlertDecision::Ignored { .. }
    ));
    let mut infra = grafana_body("firing");
    infra["alerts"][0]["labels"]["team"] = json!("infra");
    assert!(matches!(
        route_with(&infra, &c)[0],
        AlertDecision::Ignored { .. }
    ));
}

#[test]
fn each_alert_of_a_group_is_decided_on_its_own() {
    let mut v = grafana_body("firing");
    let mut second = v["alerts"][0].clone();
    second["labels"]["severity"] = json!("info");
    second["fingerprint"] = json!("0123456789abcdef");
    let mut third = v["alerts"][0].clone();
    third["status"] = json!("resolved");
    third["fingerprint"] = json!("fedcba9876543210");
    v["alerts"].as_array_mut().unwrap().extend([second, third]);
    let c = cfg(&[("GRAFANA_ALERT_MATCHERS", "severity!=info")]);
    let d = route_with(&v, &c);
    assert_eq!(d.len(), 3);
    assert!(matches!(d[0], AlertDecision::Fire(_)));
    assert!(
        matches!(&d[1], AlertDecision::Ignored { fingerprint, .. } if fingerprint == "0123456789abcdef")
    );
    assert!(
        matches!(&d[2], AlertDecision::Resolve { fingerprint, .. } if fingerprint == "fedcba9876543210")
    );
}

#[test]
fn priority_comes_from_the_configured_label() {
    for (value, want) in [
        ("critical", 100),
        ("CRITICAL", 100),
        ("high", 50),
        ("error", 50),
        ("warning", 10),
        ("info", 0),
        ("42", 42),
        ("-3", -3),
        ("whatever", 0),
        ("99999999999", 0),
    ] {
        assert_eq!(priority_from_label(value), want, "{value}");
    }
    let c = cfg(&[("GRAFANA_PRIORITY_LABEL", "prio")]);
    let mut v = grafana_body("firing");
    v["alerts"][0]["labels"]["prio"] = json!("7");
    assert_eq!(fired(&route_with(&v, &c)[0]).priority, 7);
    let v = grafana_body("firing");
    assert_eq!(fired(&route_with(&v, &c)[0]).priority, 0, "no prio label");
}

#[test]
fn the_repository_comes_from_a_label_or_annotation_if_it_is_owner_name() {
    let c = cfg(&[("GRAFANA_REPOSITORY_LABEL", "repo")]);
    let mut v = grafana_body("firing");
    v["alerts"][0]["annotations"]["repo"] = json!("octo-org/api");
    assert_eq!(
        fired(&route_with(&v, &c)[0]).repository.as_deref(),
        Some("octo-org/api")
    );
    v["alerts"][0]["labels"]["repo"] = json!("octo-org/web");
    assert_eq!(
        fired(&route_with(&v, &c)[0]).repository.as_deref(),
        Some("octo-org/web"),
        "labels win"
    );
    for bad in ["not a repo", "--upload-pack=x/y", "a/b/c"] {
        v["alerts"][0]["labels"]["repo"] = json!(bad);
        let decisions = route_with(&v, &c);
        let t = fired(&decisions[0]);
        assert_eq!(t.repository, None, "{bad}");
        assert!(!t.prompt.contains("for the repository"));
    }
}

// ---- refused bodies ------------------------------------------------------------

fn decode_error(body: &[u8]) -> DecodeError {
    match route(body, &GrafanaConfig::default(), now()) {
        Ok(d) => panic!("expected an error, got {d:?}"),
        Err(e) => e,
    }
}

#[test]
fn unusable_bodies_are_refused_naming_the_problem() {
    let body = |v: Value| serde_json::to_vec(&v).unwrap();
    let mut no_alerts = fixture(AM_FIRING);
    no_alerts.as_object_mut().unwrap().remove("alerts");
    let mut no_start = grafana_body("firing");
    no_start["alerts"][0]
        .as_object_mut()
        .unwrap()
        .remove("startsAt");
    let mut bad_start = grafana_body("firing");
    bad_start["alerts"][0]["startsAt"] = json!("yesterday");
    let mut bad_status = grafana_body("firing");
    bad_status["alerts"][0]["status"] = json!("pending");
    let mut bad_fp = grafana_body("firing");
    bad_fp["alerts"][0]["fingerprint"] = json!("../../etc");
    let mut bad_labels = grafana_body("firing");
    bad_labels["alerts"][0]["labels"] = json!(["severity"]);
    let cases: Vec<(Vec<u8>, &str)> = vec![
        (b"not json".to_vec(), "malformed payload"),
        (b"[]".to_vec(), "malformed payload"),
        (body(no_alerts), "no `alerts`"),
        (body(json!({"alerts": []})), "no `version`"),
        (
            body(json!({"version": "2", "alerts": []})),
            "unsupported payload version \"2\"",
        ),
        (
            body(json!({"version": 4, "alerts": []})),
            "unsupported payload version 4",
        ),
        (body(no_start), "alerts[0].startsAt: missing"),
        (
            body(bad_start),
            "alerts[0].startsAt: expected an RFC 3339 time",
        ),
        (
            body(bad_status),
            "alerts[0].status: expected \"firing\" or \"resolved\", got \"pending\"",
        ),
        (body(bad_fp), "alerts[0].fingerprint"),
        (body(bad_labels), "malformed payload"),
    ];
    for (b, needle) in cases {
        let e = decode_error(&b);
        assert!(e.is_client_error());
        assert!(e.to_string().contains(needle), "{needle:?} vs {e}");
    }
}

#[test]
fn bodies_over_the_limit_are_refused_before_parsing() {
    let c = cfg(&[("GRAFANA_MAX_BODY_BYTES", "1KiB")]);
    let big = vec![b' '; 1025];
    let e = route(&big, &c, now()).unwrap_err();
    assert!(
        matches!(
            e,
            DecodeError::TooLarge {
                size: 1025,
                limit: 1024
            }
        ),
        "{e}"
    );
}

#[test]
fn an_empty_alerts_array_decides_nothing() {
    assert!(route_value(&json!({"version": "4", "alerts": []})).is_empty());
}

#[test]
fn only_links_under_grafana_url_reach_the_prompt_and_none_without_it() {
    let mut body = grafana_body("firing");
    let a = &mut body["alerts"][0];
    a["panelURL"] = json!("http://169.254.169.254/latest/meta-data/iam/");
    a["dashboardURL"] = json!("https://grafana.example.com.attacker.example/d/x");
    a["silenceURL"] = json!("https://grafana.example.com:8443/alerting/silence/new");
    a["generatorURL"] = json!("http://grafana.example.com/alerting/grafana/dea1b7/view");
    body["externalURL"] = json!("https://GRAFANA.example.com:443/grafana/d/ok");

    let with = |url: &str| {
        let d = route_with(&body, &cfg(&[("GRAFANA_URL", url)]));
        fired(&d[0]).clone()
    };
    let t = with("https://grafana.example.com/grafana");
    for hostile in [
        "169.254.169.254",
        "attacker.example",
        ":8443",
        "http://grafana.example.com",
    ] {
        assert!(!t.prompt.contains(hostile), "{hostile} in:\n{}", t.prompt);
    }
    // Same origin (default port, host case) and under the path: kept.
    assert!(
        t.prompt
            .contains("Grafana: https://GRAFANA.example.com:443/grafana/d/ok"),
        "{}",
        t.prompt
    );
    assert_eq!(t.url, None, "TASK_URL only from a link under GRAFANA_URL");
    // Not under the path: dropped.
    let t = with("https://grafana.example.com/other/");
    assert!(!t.prompt.contains("Grafana: "), "{}", t.prompt);

    // Without GRAFANA_URL no payload link at all.
    let d = route_value(&grafana_body("firing"));
    let t = fired(&d[0]);
    assert!(!t.prompt.contains("Panel:") && !t.prompt.contains("Dashboard:"));
    assert_eq!(t.url, None);
}

#[test]
fn grafana_url_must_be_a_plain_http_url() {
    for bad in [
        "grafana.example.com",
        "ftp://grafana.example.com/",
        "https://user:pw@grafana.example.com/",
        "https://grafana.example.com/?x=1",
    ] {
        let e = GrafanaConfig::from_lookup(|k| (k == "GRAFANA_URL").then(|| bad.to_string()))
            .unwrap_err();
        assert_eq!(e.var, "GRAFANA_URL", "{bad}");
    }
}

#[test]
fn a_notification_over_the_alert_cap_is_refused_whole() {
    let mut body = grafana_body("firing");
    let alert = body["alerts"][0].clone();
    body["alerts"] = json!(vec![alert; 3]);
    let c = cfg(&[("GRAFANA_MAX_ALERTS_PER_NOTIFICATION", "2")]);
    let e = route(&serde_json::to_vec(&body).unwrap(), &c, now()).unwrap_err();
    assert!(
        matches!(e, DecodeError::TooManyAlerts { count: 3, limit: 2 }),
        "{e}"
    );
    let text = e.to_string();
    assert!(text.contains("3 alerts") && text.contains("(2)"), "{text}");
    body["alerts"].as_array_mut().unwrap().pop();
    assert_eq!(route_with(&body, &c).len(), 2, "at the cap: accepted");
    for bad in ["0", "10001", "many"] {
        let e = GrafanaConfig::from_lookup(|k| {
            (k == "GRAFANA_MAX_ALERTS_PER_NOTIFICATION").then(|| bad.to_string())
        })
        .unwrap_err();
        assert_eq!(e.var, "GRAFANA_MAX_ALERTS_PER_NOTIFICATION");
    }
}

#[test]
fn alerts_of_one_rule_share_a_rule_key_and_other_rules_do_not() {
    let key = |labels: Value, receiver: &str| {
        let labels: BTreeMap<String, String> = serde_json::from_value(labels).unwrap();
        rule_key(Some(receiver), &labels)
    };
    let a = key(
        json!({"alertname": "HighLatency", "grafana_folder": "Payments", "pod": "a"}),
        "r",
    );
    let b = key(
        json!({"alertname": "HighLatency", "grafana_folder": "Payments", "pod": "b"}),
        "r",
    );
    assert_eq!(a, b, "instances of one rule");
    assert_ne!(
        a,
        key(
            json!({"alertname": "HighLatency", "grafana_folder": "Other"}),
            "r"
        )
    );
    assert_ne!(
        a,
        key(
            json!({"alertname": "HighLatency", "grafana_folder": "Payments"}),
            "r2"
        )
    );
    let uid = key(
        json!({"alertname": "X", "__alert_rule_uid__": "dea1b7"}),
        "r",
    );
    assert_eq!(
        uid,
        key(
            json!({"alertname": "Y", "__alert_rule_uid__": "dea1b7"}),
            "r"
        )
    );
    let d = route_value(&grafana_body("firing"));
    assert_eq!(
        fired(&d[0]).labels[RULE_LABEL],
        key(
            json!({"alertname": "HighLatency", "grafana_folder": "Payments"}),
            "orchestrator"
        )
    );
}
