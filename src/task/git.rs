//! Validation of the repository names, clone URLs and refs a Task carries.
//!
//! They end up as arguments of `git` in the clone init container (through
//! Kubernetes `$(VAR)` expansion, never a shell), so anything git could
//! read as an option (a leading `-`) or a transport other than HTTPS
//! (`ext::`, `file://`, `ssh://…-oProxyCommand`) is refused.

/// `owner/name` as GitHub allows it: owner 1–39 of `[A-Za-z0-9-]`, name
/// 1–100 of `[A-Za-z0-9._-]`, not `.`/`..`.
pub fn is_valid_repository(s: &str) -> bool {
    let Some((owner, name)) = s.split_once('/') else {
        return false;
    };
    let owner_ok = (1..=39).contains(&owner.len())
        && owner
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        && !owner.starts_with('-');
    let name_ok = (1..=100).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
        && name != "."
        && name != ".."
        && !name.starts_with('-');
    owner_ok && name_ok
}

/// An `https://host[:port]/path` URL without credentials, whitespace,
/// control characters or quotes. Returns the `https://host[:port]` origin,
/// which scopes the git credential helper.
pub fn https_origin(url: &str) -> Option<&str> {
    let rest = url.strip_prefix("https://")?;
    if url.len() > 2048
        || url
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || matches!(c, '"' | '\'' | '\\' | '`'))
    {
        return None;
    }
    let host_end = rest.find('/').unwrap_or(rest.len());
    let host = &rest[..host_end];
    let host_ok = !host.is_empty()
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b':'))
        && !host.starts_with(['-', '.']);
    host_ok.then(|| &url[..("https://".len() + host_end)])
}

/// A ref git accepts and cannot mistake for an option: roughly
/// `git check-ref-format` (no `..`, `@{`, `//`, control characters, spaces or
/// `~^:?*[\`; no leading `-` or `/`; no trailing `/`, `.` or `.lock`).
pub fn is_valid_git_ref(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 255
        && !s.starts_with(['-', '/', '.'])
        && !s.ends_with(['/', '.'])
        && !s.ends_with(".lock")
        && !s.contains("..")
        && !s.contains("@{")
        && !s.contains("//")
        && !s.contains("/.")
        && s != "@"
        && !s
            .chars()
            .any(|c| c.is_control() || c.is_whitespace() || "~^:?*[\\".contains(c))
}

/// The local branch name for a checkout of `git_ref`: the branch itself, or
/// `pr-<n>` for `refs/pull/<n>/head`.
pub fn local_branch(git_ref: &str) -> String {
    if let Some(n) = git_ref
        .strip_prefix("refs/pull/")
        .and_then(|r| r.strip_suffix("/head"))
    {
        return format!("pr-{n}");
    }
    git_ref
        .strip_prefix("refs/heads/")
        .unwrap_or(git_ref)
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repositories() {
        assert!(is_valid_repository("Codertocat/Hello-World"));
        assert!(is_valid_repository("octo-org/octo.repo_2"));
        for bad in [
            "", "octo", "a/b/c", "-x/y", "x/..", "x/-y", "o o/r", "x/y;rm",
        ] {
            assert!(!is_valid_repository(bad), "{bad}");
        }
    }

    #[test]
    fn clone_urls_must_be_plain_https() {
        assert_eq!(
            https_origin("https://github.com/octo/repo.git"),
            Some("https://github.com")
        );
        assert_eq!(
            https_origin("https://ghe.example:8443/o/r.git"),
            Some("https://ghe.example:8443")
        );
        for bad in [
            "http://github.com/o/r.git",
            "ext::sh -c touch% /tmp/pwned",
            "file:///etc",
            "ssh://-oProxyCommand=x/r",
            "https://user:pw@github.com/o/r",
            "https://github.com/o/r\n.git",
            "https:///o/r",
        ] {
            assert_eq!(https_origin(bad), None, "{bad}");
        }
    }

    #[test]
    fn refs() {
        for ok in [
            "main",
            "feature/x",
            "refs/pull/42/head",
            "v1.2.3",
            "changes",
        ] {
            assert!(is_valid_git_ref(ok), "{ok}");
        }
        for bad in [
            "",
            "-c",
            "--upload-pack=x",
            "a..b",
            "a b",
            "a~1",
            "x.lock",
            "/x",
            "x/",
            "a@{1}",
            "a:b",
            "a\nb",
            ".hidden",
            "a/.b",
        ] {
            assert!(!is_valid_git_ref(bad), "{bad:?}");
        }
    }

    #[test]
    fn local_branches() {
        assert_eq!(local_branch("refs/pull/7/head"), "pr-7");
        assert_eq!(local_branch("main"), "main");
        assert_eq!(local_branch("refs/heads/dev"), "dev");
    }
}
