//! Builds the Kubernetes Job that runs an agent for one [`Task`].
//!
//! ```text
//!  Pod (uid 1000, no SA token, seccomp RuntimeDefault, caps dropped)
//!   ├─ init git-init   git init --initial-branch=$(GIT_BRANCH) /workspace
//!   ├─ init git-fetch  git -C /workspace pull --depth=1 $(GIT_CLONE_URL) $(GIT_REF)
//!   └─ agent           JOB_COMMAND in /workspace, task as env (PROMPT, TASK_JSON, …)
//!  volumes: workspace (emptyDir, /workspace), home (emptyDir, /home/agent)
//! ```
//!
//! Task text reaches containers only as env values and through Kubernetes
//! `$(VAR)` expansion in `command`/`args` — no shell ever sees it. Every env
//! value is escaped (`$` → `$$`), so text like `$(GITHUB_TOKEN)` in an issue
//! arrives as that text, never as the value of another variable. The clone
//! token is read from the Job's Secret by `secretKeyRef` into `GIT_TOKEN` and
//! handed to git by a constant credential helper, so it appears in neither
//! the Job object, nor argv, nor logs. The helper is scoped to
//! `https://<GITHUB_HOST>` and only configured when the clone URL is on that
//! host: a clone URL elsewhere is cloned without credentials. The Job is created suspended; the
//! scheduler admits it by clearing `spec.suspend`.

use crate::config::Config;
use crate::rules::MAX_PROMPT_BYTES;
use crate::task::{git, label_value, priority_label, truncate_with_marker, Task};
use k8s_openapi::api::batch::v1::{Job, JobSpec};
use k8s_openapi::api::core::v1::{
    Capabilities, Container, EmptyDirVolumeSource, EnvFromSource, EnvVar, EnvVarSource,
    PodSecurityContext, PodSpec, PodTemplateSpec, ResourceRequirements, SeccompProfile,
    SecretEnvSource, SecretKeySelector, SecurityContext, Volume, VolumeMount,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use std::collections::BTreeMap;

/// Label on every Job (and its pods) this service manages; the watch selects on it.
pub const LABEL_MANAGED_BY: &str = "app.kubernetes.io/managed-by";
/// Value of [`LABEL_MANAGED_BY`].
pub const MANAGED_BY: &str = "orchestrator";
/// Label selector matching every managed Job.
pub const MANAGED_SELECTOR: &str = "app.kubernetes.io/managed-by=orchestrator";
/// Label: task source (`github`, `grafana`, `pm-agent`, `cli`).
pub const LABEL_SOURCE: &str = "orchestrator.dev/source";
/// Label: task kind.
pub const LABEL_KIND: &str = "orchestrator.dev/kind";
/// Label: repository as a label value (`owner.name`), if any.
pub const LABEL_REPOSITORY: &str = "orchestrator.dev/repository";
/// Label: priority, see [`crate::task::priority_label`].
pub const LABEL_PRIORITY: &str = "orchestrator.dev/priority";
/// Label: per-issue/PR concurrency key as a label value, if any.
pub const LABEL_CONCURRENCY_KEY: &str = "orchestrator.dev/concurrency-key";
/// Annotation: delivery id of the triggering event.
/// Annotation set (to the time) when a Job is cancelled.
pub const ANNOTATION_CANCELLED: &str = "orchestrator.dev/cancelled-at";
/// Annotation set, with the cancel, on a Job a newer run of its issue / PR
/// superseded (`on_repeat: supersede`): the new Job's name.
pub const ANNOTATION_SUPERSEDED_BY: &str = "orchestrator.dev/superseded-by";

pub const ANNOTATION_DELIVERY_ID: &str = "orchestrator.dev/delivery-id";
/// Annotation: URL of the issue, PR, comment or alert.
pub const ANNOTATION_URL: &str = "orchestrator.dev/url";
/// Annotation: the task's full dedup key (the name only carries its hash).
pub const ANNOTATION_DEDUP_KEY: &str = "orchestrator.dev/dedup-key";
/// Annotation: the task's repository as `owner/name` (the label value
/// cannot hold the `/`).
pub const ANNOTATION_REPOSITORY: &str = "orchestrator.dev/repository";
/// Annotation: SHA-256 of the request that created the Job under an
/// `Idempotency-Key` (its JSON with keys sorted), so a later request with
/// the same key is compared with it — on any replica, after restarts.
pub const ANNOTATION_REQUEST_HASH: &str = "orchestrator.dev/request-sha256";

/// Annotation: what was last reported of the Job back to GitHub and where
/// (JSON: state, comment id, check-run id; written by `src/report/`).
pub const ANNOTATION_REPORT: &str = "orchestrator.dev/report";
/// Annotation: the task's callback URL (API and PM tasks).
pub const ANNOTATION_CALLBACK_URL: &str = "orchestrator.dev/callback-url";
/// Annotation: the last state the callback receiver acknowledged.
pub const ANNOTATION_CALLBACK_STATE: &str = "orchestrator.dev/callback-state";

/// Label: a hash of the dedup key (see [`dedup_hash`]), so one task's Job
/// can be found by label when the watch has not seen it yet.
pub const LABEL_DEDUP_HASH: &str = "orchestrator.dev/dedup-hash";
/// Name of the container that runs the agent.
pub const AGENT_CONTAINER: &str = "agent";
/// The agent's env var holding the task document.
pub const TASK_ENV: &str = "TASK_JSON";

/// The [`LABEL_DEDUP_HASH`] value of a dedup key as stored in the
/// [`ANNOTATION_DEDUP_KEY`] annotation: 40 hex digits of its SHA-256.
pub fn dedup_hash(annotation_value: &str) -> String {
    use sha2::Digest;
    let mut hex = hex::encode(sha2::Sha256::digest(annotation_value.as_bytes()));
    hex.truncate(40);
    hex
}

/// The dedup key as the annotation stores it (bounded).
pub fn dedup_annotation(key: &str) -> String {
    truncate_with_marker(key, 4096)
}

/// Upper bound of the `TASK_JSON` env value, bytes.
pub const TASK_JSON_MAX_BYTES: usize = 64 * 1024;
/// Where the repository is cloned and the agent runs.
pub const WORKSPACE: &str = "/workspace";
/// `HOME` of every container (an emptyDir: the root filesystem may be read-only).
pub const HOME: &str = "/home/agent";
/// UID and GID the pod runs as.
pub const RUN_AS: i64 = 1000;

/// Git credential helper: answers `get` with the token from `GIT_TOKEN`.
/// A constant — no task data — run by git's own `sh -c`.
const CREDENTIAL_HELPER: &str =
    "!f() { test \"$1\" = get && printf 'username=x-access-token\\npassword=%s\\n' \"$GIT_TOKEN\"; }; f";

/// True if this service manages `job` (it carries [`LABEL_MANAGED_BY`]).
pub fn is_managed(job: &Job) -> bool {
    job.metadata
        .labels
        .as_ref()
        .and_then(|l| l.get(LABEL_MANAGED_BY))
        .is_some_and(|v| v == MANAGED_BY)
}

/// A Task that cannot be turned into a safe Job.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("cannot build a Job: invalid {field}: {reason}")]
pub struct JobSpecError {
    /// The Task field at fault.
    pub field: &'static str,
    /// What is wrong with it.
    pub reason: String,
}

/// Builds the suspended Job for `task`. Fails only if the task carries a
/// repository, clone URL or ref that is unsafe to hand to git.
pub fn build_job(task: &Task, cfg: &Config) -> Result<Job, JobSpecError> {
    build_job_in(task, cfg, &cfg.namespace, None)
}

/// [`build_job`] in `namespace`, the agent getting Secret `secret` (its
/// keys as env, the clone token from it) instead of `JOB_SECRET_NAME`: a
/// rule's tenant namespace and Secret (`src/rules/placement.rs`).
pub fn build_job_in(
    task: &Task,
    cfg: &Config,
    namespace: &str,
    secret: Option<&str>,
) -> Result<Job, JobSpecError> {
    let secret = secret.or(cfg.job_secret_name.as_deref());
    if let Some(repo) = &task.repository {
        if !git::is_valid_repository(repo) {
            return Err(invalid("repository", format!("{repo:?} is not owner/name")));
        }
    }
    let mut labels = BTreeMap::from([
        (LABEL_MANAGED_BY.to_string(), MANAGED_BY.to_string()),
        (LABEL_SOURCE.to_string(), task.source.as_str().to_string()),
        (LABEL_KIND.to_string(), label_value(&task.kind)),
        (LABEL_PRIORITY.to_string(), priority_label(task.priority)),
    ]);
    if let Some(repo) = &task.repository {
        labels.insert(LABEL_REPOSITORY.to_string(), label_value(repo));
    }
    if let Some(key) = task.concurrency_key() {
        labels.insert(LABEL_CONCURRENCY_KEY.to_string(), label_value(&key));
    }
    let dedup = dedup_annotation(&task.dedup_key);
    labels.insert(LABEL_DEDUP_HASH.to_string(), dedup_hash(&dedup));
    let mut annotations = BTreeMap::from([(ANNOTATION_DEDUP_KEY.to_string(), dedup)]);
    if let Some(d) = &task.delivery_id {
        annotations.insert(ANNOTATION_DELIVERY_ID.to_string(), d.clone());
    }
    if let Some(u) = &task.url {
        annotations.insert(ANNOTATION_URL.to_string(), truncate_with_marker(u, 2048));
    }
    if let Some(r) = &task.repository {
        annotations.insert(ANNOTATION_REPOSITORY.to_string(), r.clone());
    }
    // A GitHub task starts with an empty report mark: "nothing reported, no
    // comment made", so its first report needs no search for a comment.
    if task.source == crate::task::TaskSource::Github {
        annotations.insert(ANNOTATION_REPORT.to_string(), "{}".to_string());
    }

    let (init_containers, git_config) = match &task.checkout {
        Some(c) => clone_containers(c, cfg, secret)?,
        None => (
            Vec::new(),
            vec![("safe.directory".into(), WORKSPACE.into())],
        ),
    };
    let pod = PodSpec {
        restart_policy: Some("Never".into()),
        automount_service_account_token: Some(false),
        enable_service_links: Some(false),
        service_account_name: cfg.job_service_account.clone(),
        security_context: Some(PodSecurityContext {
            run_as_non_root: Some(true),
            run_as_user: Some(RUN_AS),
            run_as_group: Some(RUN_AS),
            fs_group: Some(RUN_AS),
            seccomp_profile: Some(runtime_default()),
            ..Default::default()
        }),
        init_containers: (!init_containers.is_empty()).then_some(init_containers),
        containers: vec![agent_container(task, cfg, git_config, secret)],
        volumes: Some(vec![empty_dir("workspace"), empty_dir("home")]),
        ..Default::default()
    };
    Ok(Job {
        metadata: ObjectMeta {
            name: Some(task.job_name()),
            namespace: Some(namespace.to_string()),
            labels: Some(labels.clone()),
            annotations: Some(annotations),
            ..Default::default()
        },
        spec: Some(JobSpec {
            suspend: Some(true),
            backoff_limit: Some(cfg.job_backoff_limit),
            active_deadline_seconds: Some(cfg.job_timeout_seconds),
            ttl_seconds_after_finished: Some(cfg.job_ttl_seconds),
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(labels),
                    ..Default::default()
                }),
                spec: Some(pod),
            },
            ..Default::default()
        }),
        status: None,
    })
}

fn invalid(field: &'static str, reason: String) -> JobSpecError {
    JobSpecError { field, reason }
}

/// Git configuration entries `(key, value)`, passed through `GIT_CONFIG_*` env.
type GitConfig = Vec<(String, String)>;

/// The two init containers that clone `checkout` into the workspace, and
/// the git config the agent container shares with them.
fn clone_containers(
    checkout: &crate::task::Checkout,
    cfg: &Config,
    secret: Option<&str>,
) -> Result<(Vec<Container>, GitConfig), JobSpecError> {
    let origin = git::https_origin(&checkout.clone_url).ok_or_else(|| {
        invalid(
            "checkout.clone_url",
            format!("{:?} is not a plain https:// URL", checkout.clone_url),
        )
    })?;
    if !git::is_valid_git_ref(&checkout.git_ref) {
        return Err(invalid(
            "checkout.git_ref",
            format!("{:?} is not a valid git ref", checkout.git_ref),
        ));
    }
    let branch = git::local_branch(&checkout.git_ref);
    let mut config = vec![("safe.directory".to_string(), WORKSPACE.to_string())];
    // The token is for the configured GitHub host only: the helper is
    // scoped to it, and a clone URL on any other host (a PM task's or a
    // tampered payload's) is cloned without credentials.
    let github = format!("https://{}", cfg.github_host);
    if secret.is_some() && origin.eq_ignore_ascii_case(&github) {
        config.push((
            format!("credential.{github}.helper"),
            CREDENTIAL_HELPER.to_string(),
        ));
    }
    let mut env = vec![
        env("GIT_CLONE_URL", &checkout.clone_url),
        env("GIT_REF", &checkout.git_ref),
        env("GIT_BRANCH", &branch),
        env("GIT_TERMINAL_PROMPT", "0"),
    ];
    env.extend(common_env(cfg, &config, secret));
    let container = |name: &str, args: &[&str]| Container {
        name: name.into(),
        image: Some(cfg.job_git_image.clone()),
        command: Some(vec!["git".into()]),
        args: Some(args.iter().map(|s| s.to_string()).collect()),
        env: Some(env.clone()),
        resources: Some(resources(cfg)),
        security_context: Some(container_security(true)),
        volume_mounts: Some(mounts()),
        ..Default::default()
    };
    let init = container(
        "git-init",
        &[
            "init",
            "--quiet",
            "--initial-branch=$(GIT_BRANCH)",
            WORKSPACE,
        ],
    );
    let fetch = container(
        "git-fetch",
        &[
            "-C",
            WORKSPACE,
            "pull",
            "--quiet",
            "--depth=1",
            "--no-rebase",
            "$(GIT_CLONE_URL)",
            "$(GIT_REF)",
        ],
    );
    // The agent can `git fetch origin` / push without setting a remote up.
    config.push(("remote.origin.url".into(), checkout.clone_url.clone()));
    config.push((
        "remote.origin.fetch".into(),
        "+refs/heads/*:refs/remotes/origin/*".into(),
    ));
    Ok((vec![init, fetch], config))
}

fn agent_container(
    task: &Task,
    cfg: &Config,
    git_config: GitConfig,
    secret: Option<&str>,
) -> Container {
    let mut vars = vec![
        env("TASK_SOURCE", task.source.as_str()),
        env("TASK_KIND", &task.kind),
        env("TASK_NAME", &task.job_name()),
    ];
    if let Some(r) = &task.repository {
        vars.push(env("REPOSITORY", r));
    }
    if let Some(n) = task.issue_number {
        vars.push(env("ISSUE_NUMBER", &n.to_string()));
    }
    if let Some(n) = task.pr_number {
        vars.push(env("PR_NUMBER", &n.to_string()));
    }
    if let Some(u) = &task.url {
        vars.push(env("TASK_URL", u));
    }
    vars.push(env(
        "PROMPT",
        &truncate_with_marker(&task.prompt, MAX_PROMPT_BYTES),
    ));
    vars.push(env(TASK_ENV, &task.to_bounded_json(TASK_JSON_MAX_BYTES)));
    vars.extend(common_env(cfg, &git_config, secret));
    Container {
        name: AGENT_CONTAINER.into(),
        image: Some(cfg.job_image.clone()),
        command: Some(cfg.job_command.clone()),
        working_dir: Some(WORKSPACE.into()),
        env: Some(vars),
        env_from: secret.map(|name| {
            vec![EnvFromSource {
                secret_ref: Some(SecretEnvSource {
                    name: name.to_string(),
                    optional: Some(false),
                }),
                ..Default::default()
            }]
        }),
        resources: Some(resources(cfg)),
        // Agents install tools and write caches all over the filesystem.
        security_context: Some(container_security(false)),
        volume_mounts: Some(mounts()),
        ..Default::default()
    }
}

/// `HOME`, git config via `GIT_CONFIG_COUNT`/`KEY_n`/`VALUE_n` (command-line
/// scope, so `safe.directory` is honoured), and the token by reference.
fn common_env(cfg: &Config, git_config: &[(String, String)], secret: Option<&str>) -> Vec<EnvVar> {
    let mut vars = vec![
        env("HOME", HOME),
        env("GIT_CONFIG_COUNT", &git_config.len().to_string()),
    ];
    for (i, (k, v)) in git_config.iter().enumerate() {
        vars.push(env(&format!("GIT_CONFIG_KEY_{i}"), k));
        vars.push(env(&format!("GIT_CONFIG_VALUE_{i}"), v));
    }
    if let Some(secret) = secret {
        vars.push(EnvVar {
            name: "GIT_TOKEN".into(),
            value_from: Some(EnvVarSource {
                secret_key_ref: Some(SecretKeySelector {
                    name: secret.to_string(),
                    key: cfg.job_git_token_key.clone(),
                    // Public repositories clone without a token.
                    optional: Some(true),
                }),
                ..Default::default()
            }),
            ..Default::default()
        });
    }
    vars
}

/// An env var whose value reaches the container byte for byte: every `$`
/// is written `$$`, so Kubernetes' `$(VAR)` expansion (which would pull in
/// earlier variables and everything `envFrom` brings, secrets included)
/// turns it back into exactly the text given.
fn env(name: &str, value: &str) -> EnvVar {
    EnvVar {
        name: name.into(),
        value: Some(escape_expansion(value)),
        ..Default::default()
    }
}

/// Escapes `s` for a Kubernetes env value, command or argument: `$` → `$$`.
pub fn escape_expansion(s: &str) -> String {
    s.replace('$', "$$")
}

/// The text an env value written by [`escape_expansion`] stands for
/// (`$$` → `$`), as the container sees it.
pub fn unescape_expansion(s: &str) -> String {
    s.replace("$$", "$")
}

fn resources(cfg: &Config) -> ResourceRequirements {
    let pair = |cpu: &str, mem: &str| {
        BTreeMap::from([
            ("cpu".to_string(), Quantity(cpu.to_string())),
            ("memory".to_string(), Quantity(mem.to_string())),
        ])
    };
    ResourceRequirements {
        requests: Some(pair(&cfg.job_cpu_request, &cfg.job_memory_request)),
        limits: Some(pair(&cfg.job_cpu_limit, &cfg.job_memory_limit)),
        ..Default::default()
    }
}

fn runtime_default() -> SeccompProfile {
    SeccompProfile {
        type_: "RuntimeDefault".into(),
        ..Default::default()
    }
}

fn container_security(read_only_root: bool) -> SecurityContext {
    SecurityContext {
        allow_privilege_escalation: Some(false),
        privileged: Some(false),
        run_as_non_root: Some(true),
        run_as_user: Some(RUN_AS),
        read_only_root_filesystem: Some(read_only_root),
        capabilities: Some(Capabilities {
            drop: Some(vec!["ALL".into()]),
            ..Default::default()
        }),
        seccomp_profile: Some(runtime_default()),
        ..Default::default()
    }
}

fn empty_dir(name: &str) -> Volume {
    Volume {
        name: name.into(),
        empty_dir: Some(EmptyDirVolumeSource::default()),
        ..Default::default()
    }
}

fn mounts() -> Vec<VolumeMount> {
    vec![
        VolumeMount {
            name: "workspace".into(),
            mount_path: WORKSPACE.into(),
            ..Default::default()
        },
        VolumeMount {
            name: "home".into(),
            mount_path: HOME.into(),
            ..Default::default()
        },
    ]
}

#[cfg(test)]
mod tests;
