//! Files a task delivers to its agent (PM Agent markdown files): what one
//! is and which names and sizes are accepted. How they reach the Job (a
//! ConfigMap it owns) is `src/cluster/files.rs`.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// Where the files appear in the agent container.
pub const FILES_DIR: &str = "/task/files";
/// Largest total size of a task's files (ConfigMaps are capped at 1 MiB).
pub const MAX_FILES_BYTES: usize = 900 * 1024;

/// One file for the agent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct TaskFile {
    /// Relative path under `/task/files` (no `..`, no leading `/`).
    pub filename: String,
    pub content: String,
    /// Free-form type (e.g. `prd`, `architecture`, `task`).
    #[serde(default)]
    pub file_type: Option<String>,
}

/// Why a file cannot be delivered.
pub fn file_problem(f: &TaskFile) -> Option<String> {
    let name = &f.filename;
    if name.is_empty() || name.len() > 253 {
        return Some("must be 1 to 253 characters".into());
    }
    if name.starts_with('/')
        || name
            .split('/')
            .any(|p| p.is_empty() || p == "." || p == "..")
    {
        return Some("must be a relative path without '.', '..' or empty segments".into());
    }
    if !name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || "-._/".contains(c))
    {
        return Some("may contain only letters, digits, '-', '_', '.' and '/'".into());
    }
    // The API server refuses item paths starting with `..`, and the kubelet
    // keeps its own `..data` entries in the mount: no segment may start so.
    if name.split('/').any(|p| p.starts_with("..")) {
        return Some("no path segment may start with '..'".into());
    }
    if name.split('/').any(|p| p.len() > 255) {
        return Some("each path segment must be at most 255 characters".into());
    }
    None
}

/// Why two files cannot be mounted together: the same path, or one is a
/// directory of the other (`a` and `a/b`), which stops the pod from starting.
pub fn files_conflict(a: &str, b: &str) -> Option<String> {
    if a == b {
        return Some("duplicate file name".into());
    }
    let (short, long) = if a.len() < b.len() { (a, b) } else { (b, a) };
    if long
        .strip_prefix(short)
        .is_some_and(|rest| rest.starts_with('/'))
    {
        return Some(format!("{short:?} is a file and a directory of {long:?}"));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f(name: &str) -> TaskFile {
        TaskFile {
            filename: name.into(),
            content: "x".into(),
            file_type: None,
        }
    }

    #[test]
    fn files_that_would_collide_in_the_mount_conflict() {
        assert!(files_conflict("a", "a").is_some());
        assert!(files_conflict("a", "a/b").is_some());
        assert!(files_conflict("docs/x/y.md", "docs/x").is_some());
        assert!(files_conflict("a", "ab").is_none());
        assert!(files_conflict("a.md", "a.md.bak").is_none());
        assert!(files_conflict("docs/a", "docs/b").is_none());
    }

    #[test]
    fn file_names_must_stay_inside_the_mount() {
        for ok in ["prd.md", "docs/arch.md", "a_b-c.1.md"] {
            assert!(file_problem(&f(ok)).is_none(), "{ok}");
        }
        for bad in [
            "",
            "/etc/passwd",
            "../x",
            "a/../b",
            "a//b",
            "a b.md",
            "x/./y",
            "..hidden",
            "a/..b",
        ] {
            assert!(file_problem(&f(bad)).is_some(), "{bad:?}");
        }
    }
}
