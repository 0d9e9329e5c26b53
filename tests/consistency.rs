//! What a user notices when the parts disagree (issue 10, point 7): the
//! priority vocabulary is the same on every route and in the CLI; the
//! operator API shows the task's `owner/name` repository; `send-webhook`
//! to an unreachable server exits 3 like every client command; the jobs
//! commands describe their `<NAME>`; `jobs logs -f` says how a Job ended.

mod api_support;
mod common;

use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use api_support::*;
use clap::Parser;
use common::*;
use kube_api_sim::{SimConfig, SimServer};
use serde_json::json;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;

const RUN_LIMIT: Duration = Duration::from_secs(60);

fn binary(args: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_orchestrator"));
    cmd.args(args)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .stdin(Stdio::null())
        .kill_on_drop(true);
    cmd
}

async fn output(mut cmd: Command) -> (Option<i32>, String, String) {
    let out = bounded("the CLI", RUN_LIMIT, cmd.output())
        .await
        .expect("runs");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test]
async fn the_priority_words_are_accepted_by_the_task_api_and_the_cli_and_the_repository_is_owner_slash_name(
) {
    let app = spawn_app(&[("API_TOKENS", API_TOKENS)]).await;
    for (word, number) in [("critical", 100), ("high", 50), ("medium", 10), ("low", 0)] {
        let mut body = task(&format!("prio {word}"), "octo/repo");
        body["priority"] = json!(word);
        let r = submit_task(&app, &body, None).await;
        r.expect(202, word);
        let name = job_of(&r);
        let job = wait_for("the job in the API", WAIT, || async {
            let r = get_job(&app, &name).await;
            (r.status == 200).then_some(r.json)
        })
        .await;
        assert_eq!(job["priority"], number, "{word}: {job}");
        assert_eq!(job["repository"], "octo/repo", "{job}");
    }
    let mut body = task("prio bad", "octo/repo");
    body["priority"] = json!("whenever");
    let r = submit_task(&app, &body, None).await;
    r.expect(422, "an unknown word");
    assert_eq!(r.bad_fields(), ["priority"], "{}", r.text);
    // Lists come from the watch store's slim records (which may be a moment
    // behind the API server the Jobs were read from): they show it too.
    let items = wait_for("the four Jobs in the filtered list", WAIT, || async {
        let r = call(&app, "GET", "/api/v1/jobs?repository=octo/repo")
            .token(CLI_TOKEN)
            .send()
            .await;
        let items = r.expect(200, "filtered list")["items"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        (items.len() == 4).then_some(items)
    })
    .await;
    for item in &items {
        assert_eq!(item["repository"], "octo/repo", "{item}");
    }

    for (arg, want) in [
        ("high", Some(50)),
        ("-3", Some(-3)),
        ("CRITICAL", Some(100)),
    ] {
        let cli = submit_with_priority(arg).unwrap_or_else(|e| panic!("--priority {arg}: {e}"));
        let orchestrator::cli::Command::Submit(s) = cli.command else {
            panic!("submit")
        };
        assert_eq!(s.priority, want, "{arg}");
    }
    let err = submit_with_priority("soon").expect_err("an unknown word is refused");
    assert!(
        err.to_string().contains("critical, high, medium, low"),
        "{err}"
    );
    app.stop().await.expect("a clean stop");
}

/// `orchestrator submit … --priority ARG` as the CLI parses it.
fn submit_with_priority(arg: &str) -> Result<orchestrator::cli::Cli, clap::Error> {
    orchestrator::cli::Cli::try_parse_from([
        "orchestrator",
        "submit",
        "--repo",
        "o/r",
        "--prompt",
        "p",
        "--priority",
        arg,
    ])
}

#[tokio::test]
async fn send_webhook_to_an_unreachable_server_exits_3() {
    let mut cmd = binary(&[
        "send-webhook",
        "--event",
        "ping",
        "--url",
        &format!("http://127.0.0.1:{}", free_port()),
    ]);
    cmd.arg("--file")
        .arg(fixtures_dir().join("ping/ping.json"))
        .env("GITHUB_WEBHOOK_SECRET", "a-secret");
    let (code, _, err) = output(cmd).await;
    assert_eq!(code, Some(3), "{err}");
    assert!(err.contains("cannot reach"), "{err}");
}

#[tokio::test]
async fn the_jobs_commands_describe_their_name_argument() {
    for sub in ["get", "logs", "cancel"] {
        let (code, out, err) = output(binary(&["jobs", sub, "--help"])).await;
        assert_eq!(code, Some(0), "{err}");
        let arguments = out
            .split("Arguments:")
            .nth(1)
            .and_then(|a| a.split("Options:").next())
            .unwrap_or_else(|| panic!("jobs {sub} --help has arguments: {out}"));
        assert!(
            arguments.contains("<NAME>") && arguments.contains("The Job's name"),
            "jobs {sub}: {arguments:?}"
        );
    }
}

#[tokio::test]
async fn jobs_logs_follow_on_a_job_cancelled_mid_run_says_it_was_cancelled_and_exits_1() {
    let sim = SimServer::start_local(SimConfig {
        default_run_seconds: 60.0,
        ..SimConfig::default()
    })
    .expect("the simulator starts");
    let app = spawn_app_on(Arc::new(sim), &[("API_TOKENS", API_TOKENS)]).await;
    let r = submit_task(&app, &task("long", "octo/repo"), None).await;
    r.expect(202, "submit");
    let name = job_of(&r);
    wait_state(&app, &name, "running", WAIT).await;
    let mut follow = binary(&["jobs", "logs", &name, "-f", "--server", &app.address]);
    follow
        .env("ORCHESTRATOR_TOKEN", CLI_TOKEN)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut follow = follow.spawn().expect("jobs logs -f starts");
    // Cancel once the log is being followed (its first line is out).
    let stdout = follow.stdout.take().expect("stdout");
    let mut lines = BufReader::new(stdout).lines();
    let first = bounded("the first log line", WAIT, lines.next_line()).await;
    assert!(matches!(first, Ok(Some(_))), "{first:?}");
    call(&app, "DELETE", &format!("/api/v1/jobs/{name}"))
        .token(CLI_TOKEN)
        .send()
        .await
        .expect(200, "cancel");
    let out = bounded("jobs logs -f to end", RUN_LIMIT, follow.wait_with_output())
        .await
        .expect("wait");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains(&format!("job {name} ended: cancelled")),
        "{err}"
    );
    app.stop().await.expect("a clean stop");
}
