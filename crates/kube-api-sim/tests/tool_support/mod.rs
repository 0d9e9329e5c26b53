//! The external programs the tests run — kubectl, prometheus, promtool,
//! openapi-spec-validator — found in one place: `$VAR` if set (`KUBECTL`,
//! `PROMETHEUS`, `PROMTOOL`, `OPENAPI_SPEC_VALIDATOR`), else on `PATH`, else
//! in the tool directory `scripts/test.sh` installs them in
//! (`~/.cache/orchestrator-ci-tools/bin`). A
//! test whose tool is missing fails naming the tool and the command that
//! installs it, never with a bare `NotFound`.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

/// (name, variable that may name it, the command that installs it)
const TOOLS: &[(&str, &str, &str)] = &[
    (
        "kubectl",
        "KUBECTL",
        "mkdir -p ~/.cache/orchestrator-ci-tools/bin && curl -fsSLo \
         ~/.cache/orchestrator-ci-tools/bin/kubectl \
         https://dl.k8s.io/release/v1.32.4/bin/linux/amd64/kubectl && \
         chmod +x ~/.cache/orchestrator-ci-tools/bin/kubectl \
         (any kubectl 1.27 or later; scripts/test.sh also checks the download's SHA-256)",
    ),
    (
        "prometheus",
        "PROMETHEUS",
        "sudo apt-get install -y prometheus",
    ),
    ("promtool", "PROMTOOL", "sudo apt-get install -y prometheus"),
    (
        "openapi-spec-validator",
        "OPENAPI_SPEC_VALIDATOR",
        "python3 -m venv ~/.cache/orchestrator-ci-tools && \
         ~/.cache/orchestrator-ci-tools/bin/pip install openapi-spec-validator==0.9.0",
    ),
];

fn entry(name: &str) -> (&'static str, &'static str, &'static str) {
    *TOOLS
        .iter()
        .find(|(n, _, _)| *n == name)
        .unwrap_or_else(|| panic!("tool_support knows no tool {name:?}"))
}

/// The virtualenv `scripts/test.sh` (and `.ci/run`) install Python tools in.
fn tools_dir() -> Option<PathBuf> {
    std::env::var_os("ORCHESTRATOR_CI_TOOLS")
        .filter(|p| !p.is_empty())
        .map(PathBuf::from)
        .or_else(|| {
            std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache/orchestrator-ci-tools"))
        })
}

fn executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// Where `name` is, or why it is not there.
pub fn find(name: &str) -> Result<PathBuf, String> {
    let (name, var, _) = entry(name);
    if let Some(p) = std::env::var_os(var).filter(|p| !p.is_empty()) {
        let p = PathBuf::from(p);
        return if executable(&p) {
            Ok(p)
        } else {
            Err(format!(
                "${var} is {}, which is not an executable file",
                p.display()
            ))
        };
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    let venv = tools_dir().map(|d| d.join("bin"));
    let shown = venv.as_ref().map(|d| d.display().to_string());
    std::env::split_paths(&path)
        .chain(venv)
        .map(|d| d.join(name))
        .find(|c| executable(c))
        .ok_or_else(|| match shown {
            Some(dir) => format!("not on PATH nor in {dir}, and ${var} is unset"),
            None => format!("not on PATH, and ${var} is unset"),
        })
}

/// The path of `name`; panics naming the tool and its install command when
/// it is missing.
pub fn tool(name: &str) -> PathBuf {
    find(name).unwrap_or_else(|why| {
        let (name, var, install) = entry(name);
        panic!(
            "{name} is needed by this test and was not found ({why}).\n\
             Install it: {install}\n\
             or run scripts/test.sh, which lists every missing tool and installs them \
             (or set ${var} to its path)."
        )
    })
}
