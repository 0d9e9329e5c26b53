use super::matchers::MatchOp;
use super::*;

fn load(vars: &[(&str, &str)]) -> Result<GrafanaConfig, ConfigError> {
    let vars: Vec<(String, String)> = vars
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    GrafanaConfig::from_lookup(move |name| {
        vars.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone())
    })
}

fn error(vars: &[(&str, &str)]) -> ConfigError {
    match load(vars) {
        Ok(cfg) => panic!("expected an error for {vars:?}, got {cfg:?}"),
        Err(e) => e,
    }
}

#[test]
fn nothing_configured_gives_the_defaults_and_no_auth() {
    let cfg = load(&[]).unwrap();
    assert!(!cfg.auth_configured());
    assert!(cfg.matchers.is_empty());
    assert_eq!(cfg.priority_label, "severity");
    assert_eq!(cfg.repository_label, "repository");
    assert!(!cfg.cancel_running_on_resolve);
    assert_eq!(cfg.max_body_bytes, 5 * 1024 * 1024);
    assert_eq!(cfg.signature_header(), None);
    assert_eq!(cfg.timestamp_header(), None);
    // Empty values count as unset.
    assert!(!load(&[("GRAFANA_HMAC_SECRET", " ")])
        .unwrap()
        .auth_configured());
}

#[test]
fn every_variable_is_read() {
    let cfg = load(&[
        ("GRAFANA_BASIC_AUTH", "grafana:pa:ss"),
        ("GRAFANA_HMAC_SECRET", "new, old"),
        ("GRAFANA_SIGNATURE_HEADER", "X-Signature"),
        ("GRAFANA_TIMESTAMP_HEADER", "X-Timestamp"),
        ("GRAFANA_MAX_SKEW_SECONDS", "60"),
        ("GRAFANA_ALERT_MATCHERS", "severity=critical,team!=infra"),
        ("GRAFANA_PRIORITY_LABEL", "priority"),
        ("GRAFANA_CANCEL_RUNNING_ON_RESOLVE", "true"),
        ("GRAFANA_REPOSITORY_LABEL", "repo"),
        ("GRAFANA_MAX_BODY_BYTES", "1MiB"),
    ])
    .unwrap();
    assert!(cfg.auth_configured());
    assert_eq!(
        cfg.basic_auth.as_ref().unwrap().user_password.expose(),
        b"grafana:pa:ss"
    );
    let hmac = cfg.hmac.as_ref().unwrap();
    assert_eq!(hmac.secrets, vec![Secret::new("new"), Secret::new("old")]);
    assert_eq!(cfg.signature_header(), Some("X-Signature"));
    assert_eq!(cfg.timestamp_header(), Some("X-Timestamp"));
    assert_eq!(hmac.max_skew_seconds, 60);
    assert_eq!(cfg.matchers.0.len(), 2);
    assert_eq!(cfg.matchers.0[1].op, MatchOp::NotEqual);
    assert_eq!(cfg.priority_label, "priority");
    assert!(cfg.cancel_running_on_resolve);
    assert_eq!(cfg.repository_label, "repo");
    assert_eq!(cfg.max_body_bytes, 1 << 20);
}

#[test]
fn credentials_default_to_the_bearer_scheme_and_hmac_to_grafanas_header() {
    let cfg = load(&[
        ("GRAFANA_AUTH_CREDENTIALS", "tok"),
        ("GRAFANA_HMAC_SECRET", "s"),
    ])
    .unwrap();
    assert_eq!(cfg.authorization.as_ref().unwrap().scheme, "Bearer");
    assert_eq!(cfg.signature_header(), Some(DEFAULT_SIGNATURE_HEADER));
    assert_eq!(cfg.timestamp_header(), None);
    let cfg = load(&[
        ("GRAFANA_AUTH_CREDENTIALS", "tok"),
        ("GRAFANA_AUTH_SCHEME", "Token"),
    ])
    .unwrap();
    assert_eq!(cfg.authorization.unwrap().scheme, "Token");
}

#[test]
fn bad_values_name_the_variable_and_the_expected_form() {
    // (variables, the variable blamed, text the message must contain)
    type Case<'a> = (&'a [(&'a str, &'a str)], &'a str, &'a str);
    let cases: &[Case<'_>] = &[
        (
            &[("GRAFANA_BASIC_AUTH", "nocolon")],
            "GRAFANA_BASIC_AUTH",
            "user:password",
        ),
        (
            &[("GRAFANA_BASIC_AUTH", ":pw")],
            "GRAFANA_BASIC_AUTH",
            "user:password",
        ),
        (
            &[
                ("GRAFANA_BASIC_AUTH", "u:p"),
                ("GRAFANA_AUTH_CREDENTIALS", "t"),
            ],
            "GRAFANA_AUTH_CREDENTIALS",
            "not both",
        ),
        (
            &[("GRAFANA_AUTH_SCHEME", "Bearer")],
            "GRAFANA_AUTH_SCHEME",
            "GRAFANA_AUTH_CREDENTIALS",
        ),
        (
            &[
                ("GRAFANA_AUTH_CREDENTIALS", "t"),
                ("GRAFANA_AUTH_SCHEME", "Bear er"),
            ],
            "GRAFANA_AUTH_SCHEME",
            "auth scheme",
        ),
        (
            &[("GRAFANA_HMAC_SECRET", ",,")],
            "GRAFANA_HMAC_SECRET",
            "comma-separated",
        ),
        (
            &[("GRAFANA_SIGNATURE_HEADER", "X-Sig")],
            "GRAFANA_SIGNATURE_HEADER",
            "GRAFANA_HMAC_SECRET",
        ),
        (
            &[("GRAFANA_TIMESTAMP_HEADER", "X-Ts")],
            "GRAFANA_TIMESTAMP_HEADER",
            "GRAFANA_HMAC_SECRET",
        ),
        (
            &[
                ("GRAFANA_HMAC_SECRET", "s"),
                ("GRAFANA_SIGNATURE_HEADER", "X Sig"),
            ],
            "GRAFANA_SIGNATURE_HEADER",
            "header name",
        ),
        (
            &[
                ("GRAFANA_HMAC_SECRET", "s"),
                ("GRAFANA_MAX_SKEW_SECONDS", "30"),
            ],
            "GRAFANA_MAX_SKEW_SECONDS",
            "GRAFANA_TIMESTAMP_HEADER",
        ),
        (
            &[
                ("GRAFANA_HMAC_SECRET", "s"),
                ("GRAFANA_TIMESTAMP_HEADER", "X-Ts"),
                ("GRAFANA_MAX_SKEW_SECONDS", "-1"),
            ],
            "GRAFANA_MAX_SKEW_SECONDS",
            "from 1 to 86400",
        ),
        (
            &[("GRAFANA_ALERT_MATCHERS", "severity=~crit(")],
            "GRAFANA_ALERT_MATCHERS",
            "regex",
        ),
        (
            &[("GRAFANA_ALERT_MATCHERS", "severity")],
            "GRAFANA_ALERT_MATCHERS",
            "severity=critical",
        ),
        (
            &[("GRAFANA_PRIORITY_LABEL", "a b")],
            "GRAFANA_PRIORITY_LABEL",
            "label name",
        ),
        (
            &[("GRAFANA_REPOSITORY_LABEL", "a=b")],
            "GRAFANA_REPOSITORY_LABEL",
            "label name",
        ),
        (
            &[("GRAFANA_CANCEL_RUNNING_ON_RESOLVE", "maybe")],
            "GRAFANA_CANCEL_RUNNING_ON_RESOLVE",
            "true or false",
        ),
        (
            &[("GRAFANA_MAX_BODY_BYTES", "12")],
            "GRAFANA_MAX_BODY_BYTES",
            "1024 to 1GiB",
        ),
        (
            &[("GRAFANA_MAX_BODY_BYTES", "5 furlongs")],
            "GRAFANA_MAX_BODY_BYTES",
            "KiB/MiB/GiB",
        ),
    ];
    for (vars, var, needle) in cases {
        let e = error(vars);
        assert_eq!(e.var, *var, "{vars:?}: {e}");
        assert!(e.to_string().contains(needle), "{vars:?}: {e}");
    }
}

#[test]
fn secrets_never_appear_in_debug_or_errors() {
    let cfg = load(&[
        ("GRAFANA_AUTH_CREDENTIALS", "hunter2-token"),
        ("GRAFANA_HMAC_SECRET", "hmac-hunter2"),
    ])
    .unwrap();
    let debug = format!("{cfg:?}");
    assert!(!debug.contains("hunter2"), "{debug}");
    assert!(debug.contains("[redacted]"));
    let cfg = load(&[("GRAFANA_BASIC_AUTH", "user:hunter2")]).unwrap();
    assert!(!format!("{cfg:?}").contains("hunter2"));
    for vars in [
        &[("GRAFANA_BASIC_AUTH", "hunter2")][..],
        &[("GRAFANA_AUTH_CREDENTIALS", " hunter2 ")][..],
        &[
            ("GRAFANA_BASIC_AUTH", "u:hunter2"),
            ("GRAFANA_AUTH_CREDENTIALS", "hunter2"),
        ][..],
    ] {
        let e = error(vars);
        assert!(!e.to_string().contains("hunter2"), "{e}");
        assert!(!format!("{e:?}").contains("hunter2"), "{e:?}");
    }
}
