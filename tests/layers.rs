//! The floor plan: imports only point down. Reads every `src/**/*.rs` and
//! fails, naming the file and line, on a `crate::…` path that points from a
//! lower layer to a higher one, and on a top-level module the table does
//! not place. Unit tests (`tests.rs`, `*_tests.rs`, `#[cfg(test)] mod
//! tests`) may import anything. `docs/architecture.md` shows this table.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Top to bottom; a module may use its own layer and the ones below it.
const LAYERS: &[(&str, &[&str])] = &[
    ("cli", &["cli", "client", "main"]),
    ("app", &["app"]),
    ("http", &["http"]),
    ("sources", &["sources"]),
    ("scheduler / watcher", &["scheduler", "watcher"]),
    ("report", &["report"]),
    ("cluster", &["cluster", "github"]),
    ("domain", &["task", "job", "rules", "config", "events"]),
    ("runtime", &["actors", "metrics", "telemetry"]),
];

/// The layer (index into [`LAYERS`]) of a top-level module.
fn layer_of(module: &str) -> Option<usize> {
    LAYERS
        .iter()
        .position(|(_, modules)| modules.contains(&module))
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("read src/") {
        let path = entry.expect("dir entry").path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// `src/http/jobs.rs` → `http`; `src/metrics.rs` → `metrics`.
fn module_of(src: &Path, file: &Path) -> String {
    let rel = file.strip_prefix(src).expect("under src/");
    let first = rel.components().next().expect("a component");
    let name = first.as_os_str().to_string_lossy();
    name.strip_suffix(".rs").unwrap_or(&name).to_string()
}

fn is_unit_test_file(src: &Path, file: &Path) -> bool {
    let name = file.file_name().unwrap_or_default().to_string_lossy();
    let rel = file.strip_prefix(src).expect("under src/");
    name == "tests.rs"
        || name.ends_with("_tests.rs")
        || rel
            .parent()
            .is_some_and(|p| p.components().any(|c| c.as_os_str() == "tests"))
}

/// The text before a `#[cfg(test)] mod tests` block (which comes last).
fn without_unit_tests(text: &str) -> &str {
    let mut at = 0;
    while let Some(i) = text[at..].find("#[cfg(test)]") {
        let start = at + i;
        let rest = text[start + "#[cfg(test)]".len()..].trim_start();
        if rest.starts_with("mod tests") {
            return &text[..start];
        }
        at = start + 1;
    }
    text
}

fn ident_at(s: &str) -> &str {
    let end = s
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .unwrap_or(s.len());
    &s[..end]
}

/// Every module named right after `crate::` on this line, including each
/// first segment of a `crate::{a, b::c}` group (which may span lines: the
/// group's text is `rest`).
fn targets(line: &str, rest: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut at = 0;
    while let Some(i) = line[at..].find("crate::") {
        let start = at + i;
        let before = line[..start].chars().last();
        at = start + "crate::".len();
        if before.is_some_and(|c| c.is_ascii_alphanumeric() || c == '_') {
            continue;
        }
        let after = &line[at..];
        if after.starts_with('{') {
            // The group, from the whole remaining text of the file.
            let offset = line.as_ptr() as usize - rest.as_ptr() as usize + at + 1;
            let mut depth = 1;
            let mut expect_ident = true;
            for (j, c) in rest[offset..].char_indices() {
                match c {
                    '{' => depth += 1,
                    '}' => {
                        depth -= 1;
                        if depth == 0 {
                            break;
                        }
                    }
                    ',' if depth == 1 => expect_ident = true,
                    c if expect_ident && depth == 1 && !c.is_whitespace() => {
                        expect_ident = false;
                        let id = ident_at(&rest[offset + j..]);
                        if !id.is_empty() {
                            out.push(id.to_string());
                        }
                    }
                    _ => {}
                }
            }
        } else {
            let id = ident_at(after);
            if !id.is_empty() {
                out.push(id.to_string());
            }
        }
    }
    out
}

#[test]
fn imports_only_point_down_the_layers() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    files.sort();
    let mut problems = Vec::new();
    let mut unplaced = BTreeMap::new();
    for file in &files {
        let module = module_of(&src, file);
        if module == "lib" {
            continue;
        }
        let Some(own) = layer_of(&module) else {
            unplaced.insert(module, file.display().to_string());
            continue;
        };
        if is_unit_test_file(&src, file) {
            continue;
        }
        let text = std::fs::read_to_string(file).expect("read a source file");
        let text = without_unit_tests(&text);
        for (n, line) in text.lines().enumerate() {
            for target in targets(line, text) {
                let Some(theirs) = layer_of(&target) else {
                    continue; // `crate::tracked_handlers!` and the like
                };
                if theirs < own {
                    problems.push(format!(
                        "{}:{}: `{module}` ({}) uses `crate::{target}` ({}), a higher layer: {}",
                        file.strip_prefix(src.parent().expect("the crate"))
                            .unwrap_or(file)
                            .display(),
                        n + 1,
                        LAYERS[own].0,
                        LAYERS[theirs].0,
                        line.trim()
                    ));
                }
            }
        }
    }
    assert!(
        unplaced.is_empty(),
        "top-level modules the layer table (tests/layers.rs, docs/architecture.md) does not place: {unplaced:?}"
    );
    assert!(
        problems.is_empty(),
        "imports that point up the layers:\n{}",
        problems.join("\n")
    );
}

#[test]
fn the_checker_sees_plain_and_grouped_paths() {
    let text = "use crate::{http::AppState,\n    metrics::{self, Metrics}};\nlet x = crate::app::run();\n$crate::actors::Tracked";
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(targets(lines[0], text), ["http", "metrics"]);
    assert_eq!(targets(lines[2], text), ["app"]);
    assert_eq!(targets(lines[3], text), ["actors"]);
    assert_eq!(layer_of("http"), Some(2));
    assert!(layer_of("app") < layer_of("http"));
}

/// The Job domain and the scheduler's queue know nothing of Kubernetes:
/// no `kube` or `k8s_openapi` path in `src/job/` or `src/scheduler/queue.rs`
/// (the cluster layer turns Job objects into `job::JobRecord`).
#[test]
fn the_job_domain_and_the_queue_use_no_kubernetes_types() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src.join("job"), &mut files);
    files.push(src.join("job.rs"));
    files.push(src.join("scheduler/queue.rs"));
    let mut found = Vec::new();
    for file in &files {
        let text = std::fs::read_to_string(file).expect("read a source file");
        for (n, line) in without_unit_tests(&text).lines().enumerate() {
            if line.contains("k8s_openapi") || line.contains("kube::") {
                found.push(format!("{}:{}: {}", file.display(), n + 1, line.trim()));
            }
        }
    }
    assert!(
        found.is_empty(),
        "Kubernetes types in the domain:\n{}",
        found.join("\n")
    );
}
