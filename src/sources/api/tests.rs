use super::*;
use serde_json::json;

fn now() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2026-11-29T10:00:00Z")
        .unwrap()
        .with_timezone(&Utc)
}

#[test]
fn a_generic_task_becomes_a_task_with_a_checkout() {
    let body = json!({"title": "Fix it", "prompt": "Fix the flaky test", "repository": "octo/repo",
        "issue": 42, "priority": 5, "labels": {"team": "infra"}, "timeout_seconds": 600});
    let a = generic_task(
        &body,
        TaskSource::Cli,
        "cli-token:abcd",
        Some("key-1"),
        "github.com",
        now(),
    )
    .unwrap();
    assert_eq!(a.task.repository.as_deref(), Some("octo/repo"));
    assert_eq!(a.task.issue_number, Some(42));
    assert_eq!(
        a.task.checkout.as_ref().unwrap().clone_url,
        "https://github.com/octo/repo.git"
    );
    assert_eq!(a.task.dedup_key, "cli:idempotency:cli-token:abcd:key-1");
    assert_eq!(a.timeout_seconds, Some(600));
    let again = generic_task(
        &body,
        TaskSource::Cli,
        "cli-token:abcd",
        Some("key-1"),
        "github.com",
        now(),
    )
    .unwrap();
    assert_eq!(
        a.task.job_name(),
        again.task.job_name(),
        "same idempotency key, same Job"
    );
    let fresh = generic_task(
        &body,
        TaskSource::Cli,
        "cli-token:abcd",
        None,
        "github.com",
        now(),
    )
    .unwrap();
    assert_ne!(a.task.job_name(), fresh.task.job_name());
}

#[test]
fn every_bad_field_of_a_generic_task_is_named() {
    let body = json!({"prompt": 3, "repository": "not a repo", "issue": -1, "kind": "Bad Kind",
        "priority": 5000, "timeout_seconds": 1, "ref": "-x", "extra": true});
    let errs = generic_task(&body, TaskSource::Cli, "c", None, "github.com", now()).unwrap_err();
    let fields: Vec<&str> = errs.iter().map(|e| e.field.as_str()).collect();
    for f in [
        "title",
        "prompt",
        "repository",
        "issue",
        "kind",
        "priority",
        "timeout_seconds",
        "ref",
        "extra",
    ] {
        assert!(fields.contains(&f), "{f} missing from {fields:?}");
    }
    let errs =
        generic_task(&json!([1]), TaskSource::Cli, "c", None, "github.com", now()).unwrap_err();
    assert_eq!(errs[0].field, "(body)");
}

fn pm_doc() -> Value {
    json!({
        "id": 7, "title": "Add login", "description": "Users log in", "details": "Use OAuth",
        "test_strategy": "Integration tests", "priority": "high", "dependencies": [3, 4],
        "subtasks": [{"id": 1, "title": "Form", "description": "The form"}],
        "service_name": "web", "agent_name": "rex", "model": "claude-sonnet",
        "repository": {"url": "https://github.com/octo/web.git", "branch": "main", "github_user": "octo-bot"},
        "working_directory": ".", "agent_tools": ["git", "npm"],
        "markdown_files": [{"filename": "prd.md", "content": "# PRD", "file_type": "prd"},
                           {"filename": "docs/arch.md", "content": "# Arch"}],
        "prompt_modification": "Keep commits small.", "prompt_mode": "append"
    })
}

#[test]
fn a_pm_task_carries_its_files_and_a_prompt_built_from_its_fields() {
    let a = pm_task(&pm_doc(), "pm-agent-token:1234", "github.com", now()).unwrap();
    assert_eq!(a.task.source, TaskSource::PmAgent);
    assert_eq!(a.task.dedup_key, "pm-agent:task:7");
    assert_eq!(a.task.repository.as_deref(), Some("octo/web"));
    assert_eq!(a.task.checkout.as_ref().unwrap().git_ref, "main");
    assert_eq!(a.task.priority, 50);
    assert_eq!(a.files.len(), 2);
    for part in [
        "Implement task 7: Add login",
        "Use OAuth",
        "- Form: The form",
        "3, 4",
        "Keep commits small.",
        "/task/files",
    ] {
        assert!(
            a.task.prompt.contains(part),
            "{part} not in {}",
            a.task.prompt
        );
    }
    assert_eq!(
        a.task.labels.get("model").map(String::as_str),
        Some("claude-sonnet")
    );
}

#[test]
fn invalid_pm_documents_name_each_bad_field() {
    let mut doc = pm_doc();
    doc["id"] = json!({"x": 1});
    doc["priority"] = json!("sometime");
    doc["repository"]["url"] = json!("ssh://example.com/x");
    doc["markdown_files"][1]["filename"] = json!("../etc/passwd");
    doc["prompt_mode"] = json!("shout");
    let errs = pm_task(&doc, "p", "github.com", now()).unwrap_err();
    let fields: Vec<&str> = errs.iter().map(|e| e.field.as_str()).collect();
    for f in [
        "id",
        "priority",
        "repository.url",
        "markdown_files[1].filename",
        "prompt_mode",
    ] {
        assert!(fields.contains(&f), "{f} missing from {fields:?}");
    }
    let errs = pm_task(&json!({"title": "x"}), "p", "github.com", now()).unwrap_err();
    assert!(errs.iter().any(|e| e.field == "id"));
}

#[test]
fn tasks_clone_from_the_configured_github_host() {
    let ghe = "ghe.example.com";
    let mut doc = pm_doc();
    doc["repository"]["url"] = json!("https://GHE.example.com/octo/web.git");
    let a = pm_task(&doc, "p", ghe, now()).unwrap();
    assert_eq!(
        a.task.checkout.as_ref().unwrap().clone_url,
        "https://ghe.example.com/octo/web.git"
    );
    assert_eq!(a.task.repository.as_deref(), Some("octo/web"));
    // github.com is another host when GITHUB_HOST names an Enterprise server.
    let errs = pm_task(&pm_doc(), "p", ghe, now()).unwrap_err();
    assert!(
        errs.iter()
            .any(|e| e.field == "repository.url" && e.message.contains(ghe)),
        "{errs:?}"
    );
    let body = json!({"title": "t", "prompt": "p", "repository": "octo/repo"});
    let a = generic_task(&body, TaskSource::Cli, "c", None, ghe, now()).unwrap();
    assert_eq!(
        a.task.checkout.as_ref().unwrap().clone_url,
        "https://ghe.example.com/octo/repo.git"
    );
}
