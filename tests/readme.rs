//! The README's commands as a new user runs them from a fresh clone.
//!
//! * Consistency: every command in a ```sh block is one this test knows how
//!   to run; the binary is always invoked as `cargo run --release -- …`
//!   (never a bare `orchestrator` that is not on `PATH`); its arguments parse;
//!   files and benches it names exist; every kubeconfig kubectl is given is
//!   one an earlier command writes; every flag in the Commands table exists.
//! * Walkthroughs: the blocks run as written, in order — the built binary
//!   stands in for `cargo run --release --`, on a free port instead of 8080,
//!   in a temporary directory that sees the clone's `tests/` and `examples/`.
//!   A `# → TEXT` line after a command is the start of what it must print.

mod common;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use clap::{CommandFactory, Parser};
use common::{bounded, free_port, wait_for};
use tokio::process::{Child, Command};

const RUN_LIMIT: Duration = Duration::from_secs(60);

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn read(path: &str) -> String {
    std::fs::read_to_string(repo().join(path)).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// One command line of a ```sh block, and what it must print (`# → …`).
#[derive(Debug, Clone)]
struct Line {
    words: Vec<String>,
    expect: Option<String>,
    background: bool,
}

/// Cuts a `#` comment that is outside quotes and starts a word.
fn strip_comment(line: &str) -> &str {
    let (mut quote, mut prev_space) = (None, true);
    for (i, c) in line.char_indices() {
        match (quote, c) {
            (None, '\'' | '"') => quote = Some(c),
            (Some(q), c) if c == q => quote = None,
            (None, '#') if prev_space => return &line[..i],
            _ => {}
        }
        prev_space = c.is_whitespace();
    }
    line
}

/// The ```sh blocks of a Markdown document, as command lines.
fn sh_blocks(markdown: &str) -> Vec<Vec<Line>> {
    let (mut blocks, mut current, mut pending) = (Vec::new(), None::<Vec<Line>>, String::new());
    for raw in markdown.lines() {
        let trimmed = raw.trim();
        match &mut current {
            None if trimmed == "```sh" => current = Some(Vec::new()),
            None => {}
            Some(_) if trimmed == "```" => blocks.extend(current.take()),
            Some(lines) => {
                if let Some(expect) = trimmed.strip_prefix("# → ") {
                    let last = lines.last_mut().expect("a `# →` line follows a command");
                    last.expect = Some(expect.split('…').next().unwrap_or("").to_string());
                    continue;
                }
                pending.push_str(strip_comment(raw));
                if let Some(cont) = pending.trim_end().strip_suffix('\\') {
                    pending = format!("{cont} ");
                    continue;
                }
                let text = std::mem::take(&mut pending);
                let text = text.trim();
                if text.is_empty() {
                    continue;
                }
                let (text, background) = match text.strip_suffix('&') {
                    Some(t) => (t.trim(), true),
                    None => (text, false),
                };
                let words =
                    shlex::split(text).unwrap_or_else(|| panic!("unbalanced quotes: {text}"));
                lines.push(Line {
                    words,
                    expect: None,
                    background,
                });
            }
        }
    }
    blocks
}

/// The binary's arguments if `words` is `cargo run --release -- ARGS`.
fn binary_args(words: &[String]) -> Option<&[String]> {
    match words {
        [cargo, run, release, dashdash, rest @ ..]
            if cargo == "cargo" && run == "run" && release == "--release" && dashdash == "--" =>
        {
            Some(rest)
        }
        _ => None,
    }
}

fn value_after<'a>(words: &'a [String], flag: &str) -> Option<&'a str> {
    let i = words.iter().position(|w| w == flag)?;
    words.get(i + 1).map(String::as_str)
}

/// Checks one README's commands; returns every problem found.
fn check_commands(readme: &str) -> Vec<String> {
    let mut problems = Vec::new();
    let mut kubeconfigs: BTreeSet<String> = BTreeSet::new();
    for line in sh_blocks(&read(readme)).into_iter().flatten() {
        let w = &line.words;
        let shown = w.join(" ");
        if let Some(args) = binary_args(w) {
            let argv = std::iter::once("orchestrator").chain(args.iter().map(String::as_str));
            if let Err(e) = orchestrator::cli::Cli::try_parse_from(argv) {
                problems.push(format!("{readme}: `{shown}` does not parse: {e}"));
            }
            if let Some(file) = value_after(args, "--file") {
                if !repo().join(file).is_file() {
                    problems.push(format!("{readme}: `{shown}`: no file {file} in the clone"));
                }
            }
            match (
                args.first().map(String::as_str),
                value_after(args, "--kubeconfig-out"),
            ) {
                (_, Some(out)) => {
                    kubeconfigs.insert(out.to_string());
                }
                (Some("serve"), None) if args.iter().any(|a| a == "--embedded-cluster") => {
                    kubeconfigs.insert("orchestrator-sim-8080.kubeconfig".into());
                }
                _ => {}
            }
            continue;
        }
        match w.first().map(String::as_str) {
            Some("export") => {}
            Some("kubectl") => {
                match value_after(w, "--kubeconfig") {
                    Some(k) if kubeconfigs.contains(k) => {}
                    other => problems.push(format!(
                        "{readme}: `{shown}` uses kubeconfig {other:?}, which no earlier command writes"
                    )),
                }
                if let Some(file) = value_after(w, "-f") {
                    if !repo().join(file).is_file() {
                        problems.push(format!("{readme}: `{shown}`: no file {file} in the clone"));
                    }
                }
            }
            Some("cargo") if matches!(w.get(1).map(String::as_str), Some("test" | "bench")) => {
                let text = match value_after(w, "-p") {
                    None | Some("orchestrator") => read("Cargo.toml"),
                    Some("kube-api-sim") => read("crates/kube-api-sim/Cargo.toml"),
                    Some(p) => {
                        problems.push(format!("{readme}: `{shown}`: no package {p}"));
                        continue;
                    }
                };
                if let Some(bench) = value_after(w, "--bench") {
                    if !text.contains(&format!("name = \"{bench}\"")) {
                        problems.push(format!("{readme}: `{shown}`: no bench {bench}"));
                    }
                }
            }
            Some(script) if script.ends_with(".sh") && repo().join(script).is_file() => {}
            _ => problems.push(format!(
                "{readme}: `{shown}` does not run as written from a clone \
                 (run the binary as `cargo run --release -- …`)"
            )),
        }
    }
    problems
}

#[test]
fn readme_commands_run_the_binary_one_way_and_name_what_exists() {
    let mut problems = check_commands("README.md");
    problems.extend(check_commands("crates/kube-api-sim/README.md"));
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn every_flag_in_the_commands_table_exists() {
    let readme = read("README.md");
    let mut problems = Vec::new();
    for row in readme.lines().filter(|l| l.starts_with("| `orchestrator ")) {
        // The first column only (escaped `\|` inside it is not a separator).
        let first = row[2..].split(" | ").next().unwrap_or("");
        for span in first.split('`').skip(1).step_by(2) {
            let mut cmd = orchestrator::cli::Cli::command();
            let words: Vec<&str> = span.split_whitespace().collect();
            let words = words.strip_prefix(&["orchestrator"]).unwrap_or(&words);
            for word in words {
                if let Some(sub) = cmd.find_subcommand(word) {
                    cmd = sub.clone();
                    continue;
                }
                let flag = word
                    .trim_start_matches('[')
                    .trim_end_matches([']', ',', '|']);
                if let Some(long) = flag.strip_prefix("--") {
                    let long = long.split('=').next().unwrap_or(long);
                    if !cmd.get_arguments().any(|a| a.get_long() == Some(long)) {
                        problems.push(format!("`{span}`: `{}` has no --{long}", cmd.get_name()));
                    }
                }
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// The processes of one walkthrough, in a directory like the clone's.
struct Session {
    dir: tempfile::TempDir,
    port: u16,
    env: Vec<(String, String)>,
    background: Vec<Child>,
    last_job: Option<String>,
}

impl Session {
    fn new() -> Session {
        let dir = tempfile::tempdir().expect("tempdir");
        for shared in ["tests", "examples"] {
            std::os::unix::fs::symlink(repo().join(shared), dir.path().join(shared))
                .expect("symlink");
        }
        Session {
            dir,
            port: free_port(),
            env: Vec::new(),
            background: Vec::new(),
            last_job: None,
        }
    }

    fn command(&self, program: impl AsRef<std::ffi::OsStr>, args: &[String]) -> Command {
        let mut cmd = Command::new(program);
        cmd.args(args)
            .current_dir(self.dir.path())
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", self.dir.path())
            .env("RUST_LOG", "warn")
            .env("SERVER_HOST", "127.0.0.1")
            .env("SERVER_PORT", self.port.to_string())
            .env("SERVER_WORKERS", "1")
            .env(
                "ORCHESTRATOR_URL",
                format!("http://127.0.0.1:{}", self.port),
            )
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .kill_on_drop(true);
        cmd
    }

    /// This session's stand-ins: its port for 8080, a free one for 6443,
    /// the last Job for `<name>`.
    fn adapt(&self, words: &[String]) -> Vec<String> {
        words
            .iter()
            .map(|w| {
                let w = w.replace(
                    "orchestrator-sim-8080",
                    &format!("orchestrator-sim-{}", self.port),
                );
                let w = w.replace("127.0.0.1:6443", "127.0.0.1:0");
                match &self.last_job {
                    Some(job) => w.replace("<name>", job),
                    None => w,
                }
            })
            .collect()
    }

    async fn start(&mut self, args: Vec<String>) {
        // Only one server at a time, as the README says.
        for mut child in self.background.drain(..) {
            let _ = child.kill().await;
        }
        let child = self
            .command(env!("CARGO_BIN_EXE_orchestrator"), &args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("the binary starts");
        self.background.push(child);
        if args.first().map(String::as_str) == Some("serve") {
            let url = format!("http://127.0.0.1:{}/ready", self.port);
            wait_for(&format!("{url} to answer 200"), RUN_LIMIT, || {
                let url = url.clone();
                async move {
                    reqwest::get(&url)
                        .await
                        .ok()
                        .filter(|r| r.status().is_success())
                }
            })
            .await;
        } else if let Some(out) = value_after(&args, "--kubeconfig-out") {
            let path = self.dir.path().join(out);
            wait_for(&format!("{out} to be written"), RUN_LIMIT, || {
                let path = path.clone();
                async move { std::fs::metadata(&path).ok().filter(|m| m.len() > 0) }
            })
            .await;
        }
    }

    async fn run(&mut self, line: &Line) -> String {
        let args = self.adapt(&line.words);
        let (program, args): (PathBuf, Vec<String>) = match binary_args(&args) {
            Some(rest) => (env!("CARGO_BIN_EXE_orchestrator").into(), rest.to_vec()),
            None => (args[0].clone().into(), args[1..].to_vec()),
        };
        let shown = args.join(" ");
        // kubectl is run until it succeeds: the README's reader waits a
        // moment for a pod to exist; this waits for it, bounded.
        let retry = program == Path::new("kubectl");
        let output = wait_for(&format!("`{shown}` to succeed"), RUN_LIMIT, || {
            let mut cmd = self.command(&program, &args);
            async move {
                let out = bounded("a README command", RUN_LIMIT, cmd.output())
                    .await
                    .expect("the command runs");
                let text = String::from_utf8_lossy(&out.stdout).into_owned();
                if out.status.success() {
                    return Some(Ok(text));
                }
                let err = String::from_utf8_lossy(&out.stderr);
                (!retry).then(|| Err(format!("{:?}: {text}{err}", out.status.code())))
            }
        })
        .await
        .unwrap_or_else(|e| panic!("`{shown}` failed: {e}"));
        if let Some(expect) = &line.expect {
            assert!(
                output.starts_with(expect.as_str()),
                "`{shown}` printed {output:?}, the README says {expect:?}"
            );
        }
        if let Some(job) = regex::Regex::new(r#""job":\s*"([a-z0-9-]+)""#)
            .expect("regex")
            .captures(&output)
        {
            self.last_job = Some(job[1].to_string());
        }
        output
    }
}

#[tokio::test]
async fn readme_walkthroughs_run_as_written() {
    let mut session = Session::new();
    let mut outputs = Vec::new();
    for line in sh_blocks(&read("README.md")).into_iter().flatten() {
        let w = &line.words;
        if let Some(args) = binary_args(w) {
            let args = session.adapt(args);
            if line.background || matches!(args[0].as_str(), "serve" | "sim") {
                session.start(args).await;
                continue;
            }
        }
        match w[0].as_str() {
            "export" => {
                for pair in &w[1..] {
                    let (k, v) = pair.split_once('=').expect("export K=V");
                    session.env.push((k.to_string(), v.to_string()));
                }
            }
            // The test suite, benches and the load script are not run here.
            "cargo" if binary_args(w).is_none() => {}
            s if s.ends_with(".sh") => {}
            _ => outputs.push((w.join(" "), session.run(&line).await)),
        }
    }
    let shown: Vec<&str> = outputs.iter().map(|(c, _)| c.as_str()).collect();
    assert!(
        shown.iter().any(|c| c.contains("send-webhook")),
        "{shown:?}"
    );
    assert!(shown.iter().any(|c| c.contains("submit")), "{shown:?}");
    assert!(
        shown
            .iter()
            .any(|c| c.contains("create -f examples/job.yaml")),
        "{shown:?}"
    );
    // "What the agent was given": the prompt, expanded from the Job's env
    // (the fixture's issue title is in it), not `$(PROMPT)`.
    let given = outputs
        .iter()
        .find(|(c, _)| c.contains("logs job/"))
        .map(|(_, out)| out.as_str())
        .expect("the README shows the agent's log");
    assert!(
        given.contains("Spelling error in the README file") && !given.contains("$(PROMPT)"),
        "{given}"
    );
}
