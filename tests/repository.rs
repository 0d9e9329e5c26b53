//! What a clone of the repository must hold on its own: the license its
//! manifests and OpenAPI document name, the architecture document the README
//! links, working relative links, and no reference to files outside the
//! repository.

use std::path::{Path, PathBuf};

use utoipa::OpenApi;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Text files of the repository that people read (sources, docs, manifests).
fn text_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("readable directory") {
        let path = entry.expect("entry").path();
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if path.is_dir() {
            // Vendored third-party fixtures keep their own notes.
            if !matches!(name, "target" | "fixtures") && !name.starts_with('.') || name == ".ci" {
                text_files(&path, out);
            }
        } else if ["rs", "md", "toml", "sh", "yaml", "lua"]
            .iter()
            .any(|ext| name.ends_with(&format!(".{ext}")))
            || name == "run"
        {
            out.push(path);
        }
    }
}

#[test]
fn the_license_is_the_apache_2_0_text_the_manifests_name() {
    let license = std::fs::read_to_string(repo().join("LICENSE")).expect("a LICENSE file");
    let words: Vec<&str> = license.split_whitespace().collect();
    assert_eq!(
        words[..5],
        ["Apache", "License", "Version", "2.0,", "January"]
    );
    assert!(
        license.contains("END OF TERMS AND CONDITIONS"),
        "the full text"
    );
    for manifest in ["Cargo.toml", "crates/kube-api-sim/Cargo.toml"] {
        let text = std::fs::read_to_string(repo().join(manifest)).expect("manifest");
        assert!(text.contains("license = \"Apache-2.0\""), "{manifest}");
    }
    let openapi =
        serde_json::to_value(orchestrator::http::openapi::ApiDoc::openapi()).expect("JSON");
    assert_eq!(openapi["info"]["license"]["name"], "Apache-2.0");
}

#[test]
fn nothing_refers_to_files_outside_the_repository() {
    let mut files = Vec::new();
    text_files(&repo(), &mut files);
    assert!(files.len() > 50, "found the sources: {}", files.len());
    let outside = [
        concat!("../", "shared"),
        concat!("DESIGN", ".md"),
        concat!("/work", "/"),
    ];
    let mut found = Vec::new();
    for file in &files {
        let text = std::fs::read_to_string(file).unwrap_or_default();
        for (n, line) in text.lines().enumerate() {
            if outside.iter().any(|o| line.contains(o)) {
                found.push(format!("{}:{}: {line}", file.display(), n + 1));
            }
        }
    }
    assert!(found.is_empty(), "{}", found.join("\n"));
}

#[test]
fn the_readme_links_the_architecture_and_every_relative_link_resolves() {
    let readme = std::fs::read_to_string(repo().join("README.md")).expect("README");
    assert!(readme.contains("](docs/architecture.md)"));
    let architecture =
        std::fs::read_to_string(repo().join("docs/architecture.md")).expect("the document");
    for topic in [
        "suspended",
        "Deterministic Job names",
        "Lease",
        "failure domains",
        "kube-api-sim",
    ] {
        assert!(architecture.contains(topic), "architecture covers {topic}");
    }
    let mut broken = Vec::new();
    for doc in [
        "README.md",
        "docs/architecture.md",
        "crates/kube-api-sim/README.md",
    ] {
        let path = repo().join(doc);
        let text = std::fs::read_to_string(&path).expect("document");
        for target in text.split("](").skip(1).filter_map(|s| s.split(')').next()) {
            if target.contains("://") || target.starts_with('#') {
                continue;
            }
            let file = target.split('#').next().unwrap_or(target);
            if !path.parent().expect("dir").join(file).exists() {
                broken.push(format!("{doc}: {target}"));
            }
        }
    }
    assert!(broken.is_empty(), "{broken:?}");
}
