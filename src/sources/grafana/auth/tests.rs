use super::*;
use crate::config::grafana::DEFAULT_SIGNATURE_HEADER;

const BODY: &[u8] = br#"{"version":"1","alerts":[]}"#;
const NOW: i64 = 1_750_000_000;

fn cfg(vars: &[(&str, &str)]) -> GrafanaConfig {
    GrafanaConfig::from_lookup(|name| {
        vars.iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.to_string())
    })
    .unwrap()
}

/// Lowercase hex HMAC-SHA256, as Grafana's `http/hmac.go` computes it.
fn sign(secret: &str, data: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(data);
    hex::encode(mac.finalize().into_bytes())
}

fn basic(user_pass: &str) -> String {
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(user_pass)
    )
}

fn auth(
    cfg: &GrafanaConfig,
    authorization: Option<&str>,
    signature: Option<&str>,
    timestamp: Option<&str>,
) -> Result<(), AuthError> {
    authenticate(
        cfg,
        authorization.map(str::as_bytes),
        signature.map(str::as_bytes),
        timestamp.map(str::as_bytes),
        BODY,
        NOW,
    )
}

#[test]
fn nothing_configured_is_reported_not_accepted() {
    assert_eq!(
        auth(&cfg(&[]), Some("Bearer x"), None, None),
        Err(AuthError::NotConfigured)
    );
}

#[test]
fn basic_auth_needs_the_right_user_and_password() {
    let c = cfg(&[("GRAFANA_BASIC_AUTH", "grafana:s3cret")]);
    assert_eq!(auth(&c, Some(&basic("grafana:s3cret")), None, None), Ok(()));
    // The scheme is case-insensitive.
    let lower = basic("grafana:s3cret").replacen("Basic", "basic", 1);
    assert_eq!(auth(&c, Some(&lower), None, None), Ok(()));
    assert_eq!(
        auth(&c, None, None, None),
        Err(AuthError::MissingAuthorization)
    );
    for wrong in [
        basic("grafana:wrong"),
        basic("other:s3cret"),
        basic("grafana:s3cret "),
        "Basic not-base64!".to_string(),
    ] {
        assert_eq!(
            auth(&c, Some(&wrong), None, None),
            Err(AuthError::BadCredentials),
            "{wrong}"
        );
    }
    assert_eq!(
        auth(&c, Some("Bearer grafana:s3cret"), None, None),
        Err(AuthError::WrongScheme {
            expected: "Basic".into()
        })
    );
}

#[test]
fn scheme_credentials_need_the_scheme_and_the_credential() {
    let c = cfg(&[("GRAFANA_AUTH_CREDENTIALS", "tok-123")]);
    assert_eq!(auth(&c, Some("Bearer tok-123"), None, None), Ok(()));
    assert_eq!(auth(&c, Some("bearer  tok-123"), None, None), Ok(()));
    assert_eq!(
        auth(&c, None, None, None),
        Err(AuthError::MissingAuthorization)
    );
    assert_eq!(
        auth(&c, Some("Bearer tok-124"), None, None),
        Err(AuthError::BadCredentials)
    );
    assert_eq!(
        auth(&c, Some("Bearer tok-1234"), None, None),
        Err(AuthError::BadCredentials)
    );
    for wrong_scheme in ["Token tok-123", "tok-123", "Bearertok-123"] {
        assert_eq!(
            auth(&c, Some(wrong_scheme), None, None),
            Err(AuthError::WrongScheme {
                expected: "Bearer".into()
            }),
            "{wrong_scheme}"
        );
    }
    let c = cfg(&[
        ("GRAFANA_AUTH_SCHEME", "Token"),
        ("GRAFANA_AUTH_CREDENTIALS", "tok-123"),
    ]);
    assert_eq!(auth(&c, Some("Token tok-123"), None, None), Ok(()));
    assert!(auth(&c, Some("Bearer tok-123"), None, None).is_err());
}

#[test]
fn hmac_over_the_body_in_grafanas_default_header() {
    let c = cfg(&[("GRAFANA_HMAC_SECRET", "new,old")]);
    let header = DEFAULT_SIGNATURE_HEADER;
    assert_eq!(header, "X-Grafana-Alerting-Signature");
    for secret in ["new", "old"] {
        assert_eq!(auth(&c, None, Some(&sign(secret, BODY)), None), Ok(()));
    }
    // Uppercase hex is still the same bytes.
    assert_eq!(
        auth(&c, None, Some(&sign("new", BODY).to_uppercase()), None),
        Ok(())
    );
    assert_eq!(
        auth(&c, None, Some(&sign("other", BODY)), None),
        Err(AuthError::SignatureMismatch {
            header: header.into()
        })
    );
    assert_eq!(
        auth(&c, None, None, None),
        Err(AuthError::MissingSignature {
            header: header.into()
        })
    );
    for malformed in ["sha256=00", "abc", ""] {
        assert_eq!(
            auth(&c, None, Some(malformed), None),
            Err(AuthError::MalformedSignature {
                header: header.into()
            }),
            "{malformed}"
        );
    }
    // A signature of a different body does not verify this one.
    assert!(auth(&c, None, Some(&sign("new", b"{}")), None).is_err());
}

fn timestamped() -> GrafanaConfig {
    cfg(&[
        ("GRAFANA_HMAC_SECRET", "k"),
        ("GRAFANA_TIMESTAMP_HEADER", "X-Grafana-Alerting-Timestamp"),
        ("GRAFANA_MAX_SKEW_SECONDS", "300"),
    ])
}

fn signed_at(ts: i64) -> String {
    let mut data = format!("{ts}:").into_bytes();
    data.extend_from_slice(BODY);
    sign("k", &data)
}

#[test]
fn hmac_over_timestamp_and_body_within_the_skew() {
    let c = timestamped();
    let ts = NOW - 10;
    assert_eq!(
        auth(&c, None, Some(&signed_at(ts)), Some(&ts.to_string())),
        Ok(())
    );
    // Slightly in the future is clock skew too.
    let ts = NOW + 300;
    assert_eq!(
        auth(&c, None, Some(&signed_at(ts)), Some(&ts.to_string())),
        Ok(())
    );
    // A body-only signature does not verify when a timestamp is expected.
    assert!(matches!(
        auth(&c, None, Some(&sign("k", BODY)), Some(&NOW.to_string())),
        Err(AuthError::SignatureMismatch { .. })
    ));
    // Another timestamp than the signed one.
    assert!(matches!(
        auth(
            &c,
            None,
            Some(&signed_at(NOW)),
            Some(&(NOW - 1).to_string())
        ),
        Err(AuthError::SignatureMismatch { .. })
    ));
    assert_eq!(
        auth(&c, None, Some(&signed_at(NOW)), None),
        Err(AuthError::MissingTimestamp {
            header: "X-Grafana-Alerting-Timestamp".into()
        })
    );
    for bad in ["-5", "12.5", "soon", "", "99999999999999999999"] {
        assert!(
            matches!(
                auth(&c, None, Some(&signed_at(NOW)), Some(bad)),
                Err(AuthError::MalformedTimestamp { .. })
            ),
            "{bad}"
        );
    }
}

#[test]
fn a_stale_or_future_timestamp_is_refused_with_a_clear_message() {
    let c = timestamped();
    let ts = NOW - 301;
    let err = auth(&c, None, Some(&signed_at(ts)), Some(&ts.to_string())).unwrap_err();
    assert_eq!(
        err,
        AuthError::StaleTimestamp {
            header: "X-Grafana-Alerting-Timestamp".into(),
            age_seconds: 301,
            max_skew_seconds: 300,
        }
    );
    let msg = err.to_string();
    assert!(msg.contains("301 s in the past"), "{msg}");
    assert!(msg.contains("at most 300 s"), "{msg}");
    let ts = NOW + 3600;
    let msg = auth(&c, None, Some(&signed_at(ts)), Some(&ts.to_string()))
        .unwrap_err()
        .to_string();
    assert!(msg.contains("3600 s in the future"), "{msg}");
}

#[test]
fn every_configured_mechanism_must_pass() {
    let c = cfg(&[("GRAFANA_BASIC_AUTH", "u:p"), ("GRAFANA_HMAC_SECRET", "k")]);
    let good_auth = basic("u:p");
    let good_sig = sign("k", BODY);
    assert_eq!(auth(&c, Some(&good_auth), Some(&good_sig), None), Ok(()));
    assert_eq!(
        auth(&c, None, Some(&good_sig), None),
        Err(AuthError::MissingAuthorization)
    );
    assert!(matches!(
        auth(&c, Some(&good_auth), None, None),
        Err(AuthError::MissingSignature { .. })
    ));
    assert!(matches!(
        auth(&c, Some(&good_auth), Some(&sign("x", BODY)), None),
        Err(AuthError::SignatureMismatch { .. })
    ));
}

#[test]
fn errors_never_contain_the_secrets() {
    let c = cfg(&[
        ("GRAFANA_AUTH_CREDENTIALS", "hunter2"),
        ("GRAFANA_HMAC_SECRET", "hunter3"),
    ]);
    for (a, s) in [
        (Some("Bearer nope"), None),
        (Some("Bearer hunter2"), Some("00")),
        (None, None),
    ] {
        let e = auth(&c, a, s, None).unwrap_err();
        let text = format!("{e} {e:?}");
        assert!(!text.contains("hunter"), "{text}");
    }
}
