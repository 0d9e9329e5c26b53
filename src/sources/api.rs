//! The task APIs' documents: the generic task (`POST /api/v1/tasks`, used by
//! the CLI and automation) and the PM Agent's Task Master task
//! (`POST /api/v1/pm/tasks`). Each is validated field by field and turned
//! into a [`Task`] (plus files for the agent). Text is data: it reaches the
//! Job only through env and mounted files.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde_json::Value;

use super::fields::{FieldError, Fields};
use crate::config::callback::{CallbackConfig, MAX_CALLBACK_URL};
use crate::rules::MAX_PROMPT_BYTES;
use crate::task::files::{file_problem, files_conflict, TaskFile, MAX_FILES_BYTES};
use crate::task::git::{https_origin, is_valid_git_ref, is_valid_repository};
use crate::task::{Checkout, Task, TaskSource};

/// A valid document: the Task, its files and its own timeout.
#[derive(Debug)]
pub struct Accepted {
    pub task: Box<Task>,
    pub files: Vec<TaskFile>,
    pub timeout_seconds: Option<i64>,
    /// Where the task's state changes are posted (`callback_url`), as
    /// given; [`with_callback`] checks it against the configuration and
    /// writes it back normalised. It goes on the Job as an annotation,
    /// never into the task document the agent sees.
    pub callback_url: Option<String>,
}

fn kind_ok(k: &str) -> bool {
    (1..=30).contains(&k.len())
        && k.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

fn checkout_for(github_host: &str, repo: &str, git_ref: Option<&str>) -> Checkout {
    Checkout {
        clone_url: format!("https://{github_host}/{repo}.git"),
        git_ref: git_ref.unwrap_or("HEAD").to_string(),
    }
}

/// Fields of the generic task document.
pub const TASK_FIELDS: &[&str] = &[
    "title",
    "prompt",
    "repository",
    "issue",
    "pr",
    "kind",
    "priority",
    "labels",
    "timeout_seconds",
    "ref",
    "callback_url",
];

/// Validates a generic task document from `source` (`cli` or `pm-agent`
/// token). `idempotency_key` makes retries of the same request one Task;
/// the repository is cloned from `github_host` (`GITHUB_HOST`).
pub fn generic_task(
    body: &Value,
    source: TaskSource,
    requested_by: &str,
    idempotency_key: Option<&str>,
    github_host: &str,
    now: DateTime<Utc>,
) -> Result<Accepted, Vec<FieldError>> {
    let mut f = Fields::new(body, "").map_err(|e| vec![e])?;
    f.only(TASK_FIELDS);
    let title = f.req_str("title", 1024);
    let prompt = f.req_str("prompt", MAX_PROMPT_BYTES);
    let repository = f.opt_str("repository", 140);
    if let Some(r) = &repository {
        if !is_valid_repository(r) {
            f.error("repository", "must be a GitHub repository as owner/name");
        }
    }
    let issue = f.opt_int("issue", 1..=i64::from(u32::MAX));
    let pr = f.opt_int("pr", 1..=i64::from(u32::MAX));
    if issue.is_some() && pr.is_some() {
        f.error("pr", "give either issue or pr, not both");
    }
    if (issue.is_some() || pr.is_some()) && repository.is_none() {
        f.error("repository", "is required with issue or pr");
    }
    let kind = f.opt_str("kind", 30).unwrap_or_else(|| "task".into());
    if !kind_ok(&kind) {
        f.error("kind", "must be 1 to 30 lowercase letters, digits or '-'");
    }
    let priority = priority_field(&mut f, 0);
    let labels = f.opt_string_map("labels", 20).unwrap_or_default();
    let timeout = f.opt_int("timeout_seconds", 60..=7 * 24 * 3600);
    let git_ref = f.opt_str("ref", 255);
    if let Some(r) = &git_ref {
        if !is_valid_git_ref(r) {
            f.error("ref", "must be a valid git ref name");
        }
    }
    let callback_url = f.opt_str("callback_url", MAX_CALLBACK_URL);
    if !f.errors.is_empty() {
        return Err(f.errors);
    }
    let (Some(title), Some(prompt)) = (title, prompt) else {
        return Err(f.errors);
    };
    let dedup_key = match idempotency_key {
        Some(k) => format!("{}:idempotency:{requested_by}:{k}", source.as_str()),
        None => format!("{}:request:{}", source.as_str(), uuid::Uuid::new_v4()),
    };
    let checkout = repository.as_deref().map(|r| match pr {
        Some(n) if git_ref.is_none() => {
            checkout_for(github_host, r, Some(&format!("refs/pull/{n}/head")))
        }
        _ => checkout_for(github_host, r, git_ref.as_deref()),
    });
    let task = Task {
        source,
        kind,
        priority,
        repository,
        issue_number: issue.map(|n| n as u64),
        pr_number: pr.map(|n| n as u64),
        checkout,
        title,
        prompt,
        url: None,
        delivery_id: idempotency_key.map(str::to_string),
        dedup_key,
        requested_by: Some(requested_by.to_string()),
        labels: labels.into_iter().collect(),
        created_at: now,
    };
    Ok(Accepted {
        task: Box::new(task),
        files: Vec::new(),
        timeout_seconds: timeout,
        callback_url,
    })
}

/// Fields of the PM Agent's task document.
pub const PM_FIELDS: &[&str] = &[
    "id",
    "title",
    "description",
    "details",
    "test_strategy",
    "testStrategy",
    "priority",
    "status",
    "dependencies",
    "subtasks",
    "service_name",
    "agent_name",
    "model",
    "repository",
    "working_directory",
    "markdown_files",
    "agent_tools",
    "prompt_modification",
    "prompt_mode",
    "callback_url",
];

/// The dedup key of a PM task id: the id alone identifies the task.
pub fn pm_dedup_key(id: &str) -> String {
    format!("pm-agent:task:{id}")
}

/// A priority given as a word ([`crate::task::PRIORITY_WORDS`]) or an
/// integer from -1000 to 1000.
fn priority_of(v: Option<&Value>) -> Option<i32> {
    match v? {
        Value::String(s) => crate::task::parse_priority(s),
        Value::Number(n) => n
            .as_i64()
            .filter(|n| (-1000..=1000).contains(n))
            .map(|n| n as i32),
        _ => None,
    }
}

/// The `priority` field of a task document: `default` if absent.
fn priority_field(f: &mut Fields, default: i32) -> i32 {
    match f.get("priority") {
        None => default,
        Some(v) => priority_of(Some(v)).unwrap_or_else(|| {
            f.error("priority", crate::task::PRIORITY_EXPECTED);
            default
        }),
    }
}

/// Validates a PM Agent task document; its repository URL must be on
/// `github_host` (`GITHUB_HOST`).
pub fn pm_task(
    body: &Value,
    requested_by: &str,
    github_host: &str,
    now: DateTime<Utc>,
) -> Result<Accepted, Vec<FieldError>> {
    let mut f = Fields::new(body, "").map_err(|e| vec![e])?;
    f.only(PM_FIELDS);
    let id = f.opt_id("id");
    if f.get("id").is_none() {
        f.error("id", "is required");
    }
    if let Some(id) = &id {
        if !id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
        {
            f.error("id", "may contain only letters, digits, '-', '_' and '.'");
        }
    }
    let title = f.req_str("title", 1024);
    let description = f.opt_str("description", 16 * 1024).unwrap_or_default();
    let details = f.opt_str("details", 64 * 1024).unwrap_or_default();
    let test_strategy = f
        .opt_str("test_strategy", 16 * 1024)
        .or_else(|| f.opt_str("testStrategy", 16 * 1024))
        .unwrap_or_default();
    let priority = priority_field(&mut f, 10);
    let deps: Vec<String> = f
        .opt_array("dependencies", 200)
        .map(|a| {
            a.iter()
                .map(|d| d.to_string().trim_matches('"').to_string())
                .collect()
        })
        .unwrap_or_default();
    let mut subtasks = Vec::new();
    for (i, s) in f
        .opt_array("subtasks", 200)
        .cloned()
        .unwrap_or_default()
        .iter()
        .enumerate()
    {
        match Fields::new(s, &format!("subtasks[{i}]")) {
            Ok(mut sf) => {
                let t = sf.req_str("title", 1024);
                let d = sf.opt_str("description", 16 * 1024).unwrap_or_default();
                if let Some(t) = t {
                    subtasks.push(if d.is_empty() { t } else { format!("{t}: {d}") });
                }
                f.absorb(sf);
            }
            Err(e) => f.errors.push(e),
        }
    }
    let mut labels = BTreeMap::new();
    for key in [
        "service_name",
        "agent_name",
        "model",
        "working_directory",
        "status",
    ] {
        if let Some(v) = f.opt_str(key, 256) {
            labels.insert(key.to_string(), v);
        }
    }
    if let Some(tools) = f.opt_array("agent_tools", 100) {
        let names: Vec<String> = tools
            .iter()
            .filter_map(|t| t.as_str().map(str::to_string))
            .collect();
        labels.insert("agent_tools".into(), names.join(","));
    }
    let (mut repository, mut checkout) = (None, None);
    if let Some(r) = f.get("repository") {
        match Fields::new(r, "repository") {
            Ok(mut rf) => {
                rf.only(&["url", "branch", "github_user"]);
                let url = rf.req_str("url", 2048);
                let branch = rf.opt_str("branch", 255);
                if let Some(u) = rf.opt_str("github_user", 39) {
                    labels.insert("github_user".into(), u);
                }
                if let Some(b) = &branch {
                    if !is_valid_git_ref(b) {
                        rf.error("branch", "must be a valid git branch name");
                    }
                }
                if let Some(url) = url {
                    let prefix = format!("https://{github_host}/");
                    let name = url
                        .get(..prefix.len())
                        .filter(|p| p.eq_ignore_ascii_case(&prefix))
                        .map(|_| &url[prefix.len()..])
                        .map(|r| r.trim_end_matches('/').trim_end_matches(".git").to_string());
                    match name.filter(|n| is_valid_repository(n)) {
                        Some(n) if https_origin(&url).is_some() => {
                            checkout = Some(checkout_for(github_host, &n, branch.as_deref()));
                            repository = Some(n);
                        }
                        _ => rf.error(
                            "url",
                            format!("must be https://{github_host}/OWNER/NAME(.git)"),
                        ),
                    }
                }
                f.absorb(rf);
            }
            Err(e) => f.errors.push(e),
        }
    }
    let mut files = Vec::new();
    let mut total = 0usize;
    for (i, m) in f
        .opt_array("markdown_files", 100)
        .cloned()
        .unwrap_or_default()
        .iter()
        .enumerate()
    {
        let path = format!("markdown_files[{i}]");
        match serde_json::from_value::<TaskFile>(m.clone()) {
            Ok(file) => {
                if let Some(why) = file_problem(&file) {
                    f.errors.push(FieldError {
                        field: format!("{path}.filename"),
                        message: why,
                    });
                }
                if let Some(why) = files
                    .iter()
                    .find_map(|x: &TaskFile| files_conflict(&x.filename, &file.filename))
                {
                    f.errors.push(FieldError {
                        field: format!("{path}.filename"),
                        message: why,
                    });
                }
                total += file.content.len();
                files.push(file);
            }
            Err(e) => f.errors.push(FieldError {
                field: path,
                message: format!("must be {{filename, content, file_type}}: {e}"),
            }),
        }
    }
    if total > MAX_FILES_BYTES {
        f.error(
            "markdown_files",
            format!("total content must be at most {MAX_FILES_BYTES} bytes"),
        );
    }
    let callback_url = f.opt_str("callback_url", MAX_CALLBACK_URL);
    let modification = f.opt_str("prompt_modification", 16 * 1024);
    let mode = f
        .opt_str("prompt_mode", 16)
        .unwrap_or_else(|| "append".into());
    if !["append", "replace", "prepend"].contains(&mode.as_str()) {
        f.error("prompt_mode", "must be append, prepend or replace");
    }
    if mode == "replace" && modification.is_none() {
        f.error(
            "prompt_modification",
            "is required when prompt_mode is replace",
        );
    }
    if !f.errors.is_empty() {
        return Err(f.errors);
    }
    let (Some(id), Some(title)) = (id, title) else {
        return Err(f.errors);
    };
    let mut prompt = format!("Implement task {id}: {title}\n");
    for (head, text) in [
        ("Description", &description),
        ("Details", &details),
        ("Test strategy", &test_strategy),
    ] {
        if !text.is_empty() {
            prompt.push_str(&format!("\n## {head}\n{text}\n"));
        }
    }
    if !subtasks.is_empty() {
        prompt.push_str("\n## Subtasks\n");
        for s in &subtasks {
            prompt.push_str(&format!("- {s}\n"));
        }
    }
    if !deps.is_empty() {
        prompt.push_str(&format!("\nDepends on tasks: {}\n", deps.join(", ")));
    }
    if !files.is_empty() {
        prompt.push_str(&format!(
            "\nProject documents are in {}.\n",
            crate::task::files::FILES_DIR
        ));
    }
    let prompt = match (mode.as_str(), modification) {
        ("replace", Some(m)) => m,
        ("prepend", Some(m)) => format!("{m}\n\n{prompt}"),
        (_, Some(m)) => format!("{prompt}\n{m}\n"),
        (_, None) => prompt,
    };
    let task = Task {
        source: TaskSource::PmAgent,
        kind: "implement".into(),
        priority,
        repository,
        issue_number: None,
        pr_number: None,
        checkout,
        title,
        prompt: crate::task::truncate_with_marker(&prompt, MAX_PROMPT_BYTES),
        url: None,
        delivery_id: Some(id.clone()),
        dedup_key: pm_dedup_key(&id),
        requested_by: Some(requested_by.to_string()),
        labels,
        created_at: now,
    };
    Ok(Accepted {
        task: Box::new(task),
        files,
        timeout_seconds: None,
        callback_url,
    })
}

/// Checks a task document's `callback_url` against the callback
/// configuration (`CALLBACK_SECRET` set, the host on
/// `CALLBACK_ALLOWED_HOSTS`): a refused one is a field error beside the
/// document's others; an accepted one is kept normalised.
pub fn with_callback(
    body: &Value,
    callbacks: &CallbackConfig,
    accepted: Result<Accepted, Vec<FieldError>>,
) -> Result<Accepted, Vec<FieldError>> {
    let checked = match body.get("callback_url") {
        Some(Value::String(s)) if s.len() <= MAX_CALLBACK_URL => Some(callbacks.check_url(s)),
        // Absent, or already named by the document's own checks.
        _ => None,
    };
    let field_error = |message: String| FieldError {
        field: "callback_url".into(),
        message,
    };
    match (accepted, checked) {
        (Ok(mut a), Some(Ok(url))) => {
            a.callback_url = Some(url.to_string());
            Ok(a)
        }
        (Ok(_), Some(Err(m))) => Err(vec![field_error(m)]),
        (Err(mut errors), Some(Err(m))) => {
            errors.push(field_error(m));
            Err(errors)
        }
        (other, _) => other,
    }
}

#[cfg(test)]
mod tests;
