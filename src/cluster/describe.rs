//! One-line descriptions of Kubernetes client errors for logs and checks:
//! the API server's own message for an error answer, the root cause for a
//! transport failure — never a `Debug` dump of a `Status` object.

/// Describes `e` in one line: `404 NotFound: namespaces "x" not found`,
/// or for a connection problem its root cause (`connection refused`).
pub fn describe(e: &kube::Error) -> String {
    match e {
        kube::Error::Api(s) => {
            let message = one_line(&s.message);
            match (s.code, s.reason.is_empty(), message.is_empty()) {
                (_, _, true) => format!("{} {}", s.code, s.reason),
                (_, true, false) => format!("{}: {message}", s.code),
                _ => format!("{} {}: {message}", s.code, s.reason),
            }
        }
        other => root_cause(other),
    }
}

/// The innermost cause of an error, without the `(os error N)` suffix and
/// starting in lower case, e.g. `connection refused`.
pub fn root_cause(e: &(dyn std::error::Error + 'static)) -> String {
    let mut cur = e;
    while let Some(next) = cur.source() {
        cur = next;
    }
    let mut text = one_line(&cur.to_string());
    if let Some(i) = text.find(" (os error ") {
        text.truncate(i);
    }
    let mut chars = text.chars();
    match chars.next() {
        Some(first) => first.to_lowercase().chain(chars).collect(),
        None => "unknown error".into(),
    }
}

fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn api_errors_are_the_servers_message() {
        let s =
            kube::core::Status::failure(r#"namespaces "x" not found"#, "NotFound").with_code(404);
        assert_eq!(
            describe(&kube::Error::Api(s.boxed())),
            r#"404 NotFound: namespaces "x" not found"#
        );
    }

    #[test]
    fn transport_errors_are_their_root_cause() {
        let io = std::io::Error::from_raw_os_error(111);
        let e = kube::Error::Service(Box::new(io));
        assert_eq!(describe(&e), "connection refused");
    }
}
