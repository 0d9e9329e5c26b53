//! The `orchestrator` CLI as a black box: the real binary, run as a
//! subprocess against the real service on loopback (embedded Kubernetes
//! simulator). Checks exit codes, the table and `-o json` outputs, `--wait`
//! on succeeding and failing Jobs, logs, cancel, the one-line errors for a
//! wrong token, an unknown Job and an unreachable server, and completions.
//! Every subprocess is bounded and killed if it overruns.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::*;
use kube_api_sim::{SimConfig, SimServer};
use serde_json::Value;

const TOKEN: &str = "cli-token-for-tests-0123456789";
/// Upper bound of one CLI run.
const RUN_LIMIT: Duration = Duration::from_secs(60);

/// What one CLI run did.
#[derive(Debug)]
struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

impl Run {
    fn json(&self) -> Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("stdout is JSON ({e}): {self:?}"))
    }
}

/// Runs the binary with `args`; `token` goes in ORCHESTRATOR_TOKEN.
async fn cli(args: &[&str], token: Option<&str>) -> Run {
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_orchestrator"));
    cmd.args(args)
        .env_remove("ORCHESTRATOR_URL")
        .env_remove("ORCHESTRATOR_TOKEN")
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true);
    if let Some(t) = token {
        cmd.env("ORCHESTRATOR_TOKEN", t);
    }
    let out = bounded(&format!("orchestrator {args:?}"), RUN_LIMIT, cmd.output())
        .await
        .expect("the CLI runs");
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// Splits a command line on spaces; `'…'` groups words.
fn words(line: &str) -> Vec<String> {
    let mut out = Vec::new();
    for (i, part) in line.split('\'').enumerate() {
        if i % 2 == 1 {
            out.push(part.to_string());
        } else {
            out.extend(part.split_whitespace().map(str::to_string));
        }
    }
    out
}

/// Runs `line` (see [`words`]) against `app` with the right token.
async fn cli_on(app: &TestApp, line: &str) -> Run {
    let mut all = words(line);
    all.extend(["--server".to_string(), app.address.clone()]);
    let args: Vec<&str> = all.iter().map(String::as_str).collect();
    cli(&args, Some(TOKEN)).await
}

/// A service whose tokens include the CLI's, on a simulator whose pods run
/// `run_seconds` and exit with `exit_code`.
async fn app(run_seconds: f64, exit_code: i32) -> TestApp {
    init_logging();
    let sim = SimServer::start_local(SimConfig {
        default_run_seconds: run_seconds,
        default_exit_code: exit_code,
        ..SimConfig::default()
    })
    .expect("the simulator starts");
    let tokens = format!("cli={TOKEN},pm-agent=pm-agent-token-0123456789");
    spawn_app_on(Arc::new(sim), &[("API_TOKENS", tokens.as_str())]).await
}

/// The Job name of a `submit -o json` run.
fn job_of(run: &Run) -> String {
    assert_eq!(run.code, 0, "{run:?}");
    let v = run.json();
    assert_eq!(v["status"], "queued", "{run:?}");
    v["job"].as_str().expect("a job name").to_string()
}

/// Waits until `jobs get NAME -o json` shows a Job for which `ok` holds
/// (the server's reads follow a watch, a moment behind its writes).
async fn job_where(app: &TestApp, name: &str, ok: impl Fn(&Value) -> bool) -> Value {
    wait_for(&format!("job {name} as expected"), WAIT, || async {
        let run = cli_on(app, &format!("jobs get {name} -o json")).await;
        assert!(run.code == 0 || run.code == 5, "{run:?}");
        let job = if run.code == 0 {
            run.json()
        } else {
            Value::Null
        };
        ok(&job).then_some(job)
    })
    .await
}

#[tokio::test]
async fn submit_wait_exits_0_when_the_job_succeeds_and_shows_progress() {
    let app = app(1.5, 0).await;
    let run = cli_on(
        &app,
        "submit --repo octo/repo --prompt 'Fix the flaky test' --issue 7 --wait -o json",
    )
    .await;
    assert_eq!(run.code, 0, "{run:?}");
    let job = run.json();
    assert_eq!(job["state"], "succeeded", "{run:?}");
    assert_eq!(job["task"]["repository"], "octo/repo");
    assert_eq!(job["task"]["issue_number"], 7);
    assert_eq!(job["task"]["title"], "Fix the flaky test");
    let name = job["name"].as_str().expect("name");
    let progress = &run.stderr;
    let started = [
        format!("job {name}: queued"),
        format!("job {name}: running"),
    ];
    assert!(started.iter().any(|s| progress.contains(s)), "{progress}");
    assert!(
        progress.contains(&format!("job {name}: succeeded after")),
        "{progress}"
    );

    // The table form of the same: a header and one row with the final state.
    let run = cli_on(&app, "submit --repo octo/repo --prompt again --wait").await;
    assert_eq!(run.code, 0, "{run:?}");
    let lines: Vec<&str> = run.stdout.lines().collect();
    assert_eq!(lines.len(), 2, "{run:?}");
    assert!(
        lines[0].starts_with("NAME") && lines[0].contains("STATE"),
        "{run:?}"
    );
    assert!(
        lines[1].contains("succeeded") && lines[1].contains("octo/repo"),
        "{run:?}"
    );
}

#[tokio::test]
async fn submit_wait_exits_1_when_the_job_fails() {
    let app = app(0.3, 1).await;
    let run = cli_on(
        &app,
        "submit --repo octo/repo --prompt 'this fails' --wait -o json",
    )
    .await;
    assert_eq!(run.code, 1, "{run:?}");
    assert_eq!(run.json()["state"], "failed", "{run:?}");
    assert!(run.stderr.contains("ended failed"), "{}", run.stderr);
}

#[tokio::test]
async fn jobs_list_get_and_logs_show_a_submitted_job_in_tables_and_json() {
    let app = app(1.0, 0).await;
    let submit = "submit --repo octo/repo --prompt p --title 'List me' -o json";
    let name = job_of(&cli_on(&app, submit).await);
    // A second submission with the same idempotency key is the same Job.
    let keyed = "submit --repo octo/other --prompt q --idempotency-key k-1 -o json";
    let first = cli_on(&app, keyed).await;
    let again = cli_on(&app, keyed).await;
    assert_eq!(again.code, 0, "{again:?}");
    assert_eq!(again.json()["status"], "duplicate");
    assert_eq!(again.json()["job"], first.json()["job"]);

    let other = first.json()["job"].as_str().expect("job").to_string();
    for job in [&name, &other] {
        job_where(&app, job, Value::is_object).await;
    }
    // `logs -f` waits for the Job to start and streams until its pod ends.
    let run = cli_on(&app, &format!("jobs logs {name} -f")).await;
    assert_eq!(run.code, 0, "{run:?}");
    assert!(run.stdout.contains("exited with code 0"), "{run:?}");

    let run = cli_on(&app, "jobs list -o json").await;
    assert_eq!(run.code, 0, "{run:?}");
    let list = run.json();
    let items = list["items"].as_array().expect("items");
    assert_eq!(items.len(), 2, "{list}");
    assert!(items.iter().any(|j| j["name"] == name.as_str()), "{list}");

    let run = cli_on(&app, "jobs list --repo octo/repo --all").await;
    assert_eq!(run.code, 0, "{run:?}");
    let lines: Vec<&str> = run.stdout.lines().collect();
    assert_eq!(lines.len(), 2, "a header and one row: {run:?}");
    assert!(lines[0].starts_with("NAME "), "{run:?}");
    assert!(
        lines[1].contains(&name) && lines[1].contains("List me"),
        "{run:?}"
    );

    let run = cli_on(&app, "jobs list --limit 1").await;
    assert_eq!(run.code, 0, "{run:?}");
    assert!(
        run.stderr.contains("--all"),
        "a hint at the next page: {run:?}"
    );

    // Its pod has ended; the Job follows.
    let job = job_where(&app, &name, |j| j["state"] == "succeeded").await;
    assert_eq!(job["name"], name.as_str());
    let run = cli_on(&app, &format!("jobs get {name}")).await;
    assert_eq!(run.code, 0, "{run:?}");
    assert!(
        run.stdout.contains("State:") && run.stdout.contains("succeeded"),
        "{run:?}"
    );

    let run = cli_on(&app, &format!("jobs logs {name}")).await;
    assert_eq!(run.code, 0, "{run:?}");
    assert!(run.stdout.contains("[sim]"), "{run:?}");

    let run = cli_on(&app, "events -o json --source cli").await;
    assert_eq!(run.code, 0, "{run:?}");
    let events = run.json();
    let queued = |e: &Value| e["job"] == name.as_str() && e["decision"] == "queued";
    assert!(
        events.as_array().is_some_and(|e| e.iter().any(queued)),
        "{events}"
    );
    let run = cli_on(&app, "events").await;
    assert_eq!(run.code, 0, "{run:?}");
    assert!(
        run.stdout.starts_with("AT ") && run.stdout.contains("duplicate"),
        "{run:?}"
    );
}

#[tokio::test]
async fn jobs_cancel_stops_a_job_and_wait_on_it_exits_1() {
    let app = app(30.0, 0).await;
    let name = job_of(&cli_on(&app, "submit --repo octo/repo --prompt long -o json").await);
    let run = cli_on(&app, &format!("jobs cancel {name} -o json")).await;
    assert_eq!(run.code, 0, "{run:?}");
    assert_eq!(run.json()["state"], "cancelled", "{run:?}");
    // Idempotent, in table form.
    let run = cli_on(&app, &format!("jobs cancel {name}")).await;
    assert_eq!(run.code, 0, "{run:?}");
    assert!(
        run.stdout.contains(&name) && run.stdout.contains("cancelled"),
        "{run:?}"
    );
    job_where(&app, &name, |j| j["state"] == "cancelled").await;
    // --wait on a submission that comes back as the cancelled Job exits 1.
    let keyed = "submit --repo octo/repo --prompt x --idempotency-key c-1";
    let second = job_of(&cli_on(&app, &format!("{keyed} -o json")).await);
    assert_eq!(cli_on(&app, &format!("jobs cancel {second}")).await.code, 0);
    let run = cli_on(&app, &format!("{keyed} --wait")).await;
    assert_eq!(run.code, 1, "{run:?}");
    assert!(run.stderr.contains("ended cancelled"), "{run:?}");
}

/// One line on stderr, with no trace of `secret`.
fn one_line_error(run: &Run, secret: &str) -> String {
    let line = run.stderr.trim_end();
    assert_eq!(line.lines().count(), 1, "one line: {run:?}");
    assert!(line.starts_with("Error: "), "{run:?}");
    let leaked = run.stderr.contains(secret) || run.stdout.contains(secret);
    assert!(!leaked, "the token is never printed: {run:?}");
    line.to_string()
}

#[tokio::test]
async fn errors_are_one_line_with_what_to_do_and_distinct_exit_codes() {
    let app = app(0.3, 0).await;
    let server = app.address.as_str();
    let wrong = "wrong-token-0123456789abcdef";
    let run = cli(
        &["jobs", "list", "--server", server, "--token", wrong],
        None,
    )
    .await;
    assert_eq!(run.code, 4, "{run:?}");
    let line = one_line_error(&run, wrong);
    assert!(
        line.contains("check --token or ORCHESTRATOR_TOKEN"),
        "{line}"
    );
    let submit = [
        "submit", "--server", server, "--repo", "o/r", "--prompt", "p",
    ];
    let run = cli(&submit, Some(wrong)).await;
    assert_eq!(run.code, 4, "{run:?}");
    one_line_error(&run, wrong);
    let run = cli(&["jobs", "list", "--server", server], None).await;
    assert_eq!(run.code, 4, "no token: {run:?}");

    let run = cli_on(&app, "jobs get no-such-job").await;
    assert_eq!(run.code, 5, "{run:?}");
    let line = one_line_error(&run, TOKEN);
    assert!(line.contains("no job named \"no-such-job\""), "{line}");
    assert!(line.contains("orchestrator jobs list"), "{line}");
    assert_eq!(cli_on(&app, "jobs cancel no-such-job").await.code, 5);
    assert_eq!(cli_on(&app, "jobs logs no-such-job").await.code, 5);

    let run = cli_on(&app, "submit --repo not-a-repo --prompt p --timeout 5").await;
    assert_eq!(run.code, 6, "{run:?}");
    for field in ["repository:", "timeout_seconds:"] {
        assert!(run.stderr.contains(field), "each field: {run:?}");
    }

    let gone = format!("http://127.0.0.1:{}", free_port());
    let run = cli(&["jobs", "list", "--server", &gone], Some(TOKEN)).await;
    assert_eq!(run.code, 3, "{run:?}");
    let line = one_line_error(&run, TOKEN);
    assert!(line.contains(&format!("cannot reach {gone}")), "{line}");
    assert!(line.contains("ORCHESTRATOR_URL"), "{line}");

    let run = cli(&["jobs", "list", "--state", "sleeping"], Some(TOKEN)).await;
    assert_eq!(run.code, 2, "usage error: {run:?}");
    let run = cli(&["jobs", "list", "--server", "localhost:8080"], Some(TOKEN)).await;
    assert_eq!(run.code, 2, "{run:?}");
}

#[tokio::test]
async fn help_documents_exit_codes_and_hides_the_token() {
    let run = cli(&["submit", "--help"], Some(TOKEN)).await;
    assert_eq!(run.code, 0, "{run:?}");
    assert!(run.stdout.contains("Exit codes:"), "{run:?}");
    assert!(run.stdout.contains("3  server unreachable"), "{run:?}");
    assert!(run.stdout.contains("ORCHESTRATOR_TOKEN"), "{run:?}");
    assert!(!run.stdout.contains(TOKEN), "{run:?}");
}

#[tokio::test]
async fn completions_bash_prints_a_completion_script() {
    let run = cli(&["completions", "bash"], None).await;
    assert_eq!(run.code, 0, "{run:?}");
    assert!(run.stdout.contains("complete -F"), "{}", run.stdout);
    for sub in ["orchestrator", "submit", "jobs", "events", "completions"] {
        assert!(run.stdout.contains(sub), "{sub} in the script");
    }
    assert_eq!(cli(&["completions", "tcsh"], None).await.code, 2);
}

#[tokio::test]
async fn leader_shows_the_lease_holder_in_a_table_and_json() {
    let app = app(0.3, 0).await;
    let me = app.handles.leader.identity().to_string();
    wait_for("this replica to lead", WAIT, || async {
        app.handles.leader.is_leader().then_some(())
    })
    .await;
    let run = cli_on(&app, "leader -o json").await;
    assert_eq!(run.code, 0, "{run:?}");
    let v = run.json();
    assert_eq!(v["identity"], me.as_str(), "{run:?}");
    assert_eq!(v["holder"], me.as_str(), "{run:?}");
    assert_eq!(v["leader"], true, "{run:?}");
    let run = cli_on(&app, "leader").await;
    assert_eq!(run.code, 0, "{run:?}");
    let rows: Vec<Vec<String>> = run.stdout.lines().map(words).collect();
    assert_eq!(rows.len(), 2, "{run:?}");
    assert_eq!(rows[1], vec![me.clone(), me, "yes".to_string()], "{run:?}");
}
