//! The README's commands as a new user runs them from a fresh clone.
//!
//! * Consistency: every command in a ```sh block is one this test knows how
//!   to run; the binary is always invoked as `cargo run --release -- …`
//!   (never a bare `orchestrator` that is not on `PATH`); its arguments parse;
//!   files and benches it names exist; every kubeconfig kubectl is given is
//!   one an earlier command writes; every flag in the Commands table exists.
//! * Walkthroughs: each block runs once, whole, as written (bash, `set -e`),
//!   in order, with no retries — so a block that goes on before a server it
//!   started is ready fails here as it would for a reader. The quick start's
//!   server runs in a terminal of its own, and the next block, "in a second
//!   terminal", starts at once beside it. A block that starts its own server
//!   runs in a fresh directory once the others have stopped. Every block
//!   sees a fresh directory like a clone's (`tests/`, `examples/`), a free
//!   port in `SERVER_PORT` and `ORCHESTRATOR_URL` (the README's other-port
//!   variant), and `cargo` standing in for `cargo run --release --` with the
//!   binary under test. A `# → TEXT` line after a command is the start of a
//!   line the block must print. Servers are stopped with SIGTERM and must
//!   remove their kubeconfigs; no output shows a development secret or token.

mod common;
#[path = "../crates/kube-api-sim/tests/tool_support/mod.rs"]
mod tool_support;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use clap::{CommandFactory, Parser};
use common::free_port;

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

/// The ```sh blocks of a Markdown document, as written.
fn sh_block_texts(markdown: &str) -> Vec<String> {
    let (mut blocks, mut current) = (Vec::new(), None::<String>);
    for raw in markdown.lines() {
        match &mut current {
            None if raw.trim() == "```sh" => current = Some(String::new()),
            None => {}
            Some(_) if raw.trim() == "```" => blocks.extend(current.take()),
            Some(text) => {
                text.push_str(raw);
                text.push('\n');
            }
        }
    }
    blocks
}

/// A block's command lines (continuations joined, comments cut).
fn parse_block(text: &str) -> Vec<Line> {
    let (mut lines, mut pending) = (Vec::<Line>::new(), String::new());
    for raw in text.lines() {
        let trimmed = raw.trim();
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
        let words = shlex::split(text).unwrap_or_else(|| panic!("unbalanced quotes: {text}"));
        lines.push(Line {
            words,
            expect: None,
            background,
        });
    }
    lines
}

/// The ```sh blocks of a Markdown document, as command lines.
fn sh_blocks(markdown: &str) -> Vec<Vec<Line>> {
    sh_block_texts(markdown)
        .iter()
        .map(|t| parse_block(t))
        .collect()
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
                // `${SERVER_PORT:-8080}`: the port the server was given.
                let kubeconfig = value_after(w, "--kubeconfig")
                    .map(|k| k.replace("${SERVER_PORT:-8080}", "8080"));
                match kubeconfig.as_deref() {
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
            // Reads of the quick start's fake GitHub API, on loopback.
            Some("curl") if w.iter().any(|a| a.starts_with("http://127.0.0.1:")) => {}
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

/// The quick start's test command runs in CI: `.ci/run` calls it as written.
#[test]
fn ci_runs_the_quick_start_test_command() {
    let quick_start = sh_blocks(&read("README.md"))
        .into_iter()
        .next()
        .expect("the README has a quick start");
    let test_command = quick_start
        .iter()
        .find(|l| binary_args(&l.words).is_none())
        .map(|l| l.words.join(" "))
        .expect("the quick start shows the test command");
    let ci = read(".ci/run");
    assert!(
        ci.lines().any(|l| l.trim() == test_command),
        ".ci/run does not run the README's test command `{test_command}`"
    );
}

/// Upper bound for one README block (a build is not part of it: the binary
/// under test stands in for `cargo run --release --`).
const BLOCK_LIMIT: Duration = Duration::from_secs(240);

/// How much later than at once the stand-in `cargo` starts a server
/// (`serve`, `sim`): the moment cargo takes to check the build before it
/// runs the binary. It widens the window in which a block that does not
/// wait for its server would fail, so such a block fails every time here.
const SERVER_START_DELAY: &str = "1.5";

/// How a README block is run.
enum Kind {
    /// The quick start: its server line runs in a terminal of its own; the
    /// test command beside it is not run here (this is that command).
    Terminal(String),
    /// Run whole, as written.
    Walkthrough,
    /// Test, bench and load commands: checked above, not run.
    Listing,
}

fn kind(text: &str) -> Kind {
    let lines = parse_block(text);
    let foreground_server = lines.iter().find(|l| {
        !l.background
            && binary_args(&l.words)
                .and_then(|a| a.first())
                .is_some_and(|c| c == "serve" || c == "sim")
    });
    if let Some(server) = foreground_server {
        let raw = text
            .lines()
            .find(|raw| shlex::split(strip_comment(raw)).as_ref() == Some(&server.words))
            .expect("the server line is one line");
        return Kind::Terminal(raw.to_string());
    }
    if lines.iter().any(|l| binary_args(&l.words).is_some()) {
        Kind::Walkthrough
    } else {
        Kind::Listing
    }
}

/// A process group running a shell script, killed when dropped.
struct Group {
    child: std::process::Child,
    out: PathBuf,
    err: PathBuf,
}

impl Group {
    fn pgid(&self) -> String {
        format!("-{}", self.child.id())
    }

    fn signal(&self, sig: &str) {
        let _ = std::process::Command::new("kill")
            .args([sig, "--", &self.pgid()])
            .stderr(Stdio::null())
            .status();
    }

    /// Waits for the shell to exit (bounded); its status.
    fn wait(&mut self, limit: Duration) -> Option<std::process::ExitStatus> {
        let deadline = std::time::Instant::now() + limit;
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return Some(status);
            }
            if std::time::Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn output(&self) -> (String, String) {
        let read = |p: &Path| std::fs::read_to_string(p).unwrap_or_default();
        (read(&self.out), read(&self.err))
    }
}

impl Drop for Group {
    fn drop(&mut self) {
        self.signal("-KILL");
        let _ = self.child.wait();
    }
}

/// Where the README's blocks run: a fresh directory like a clone's
/// (`tests/` and `examples/` visible), a free port in `SERVER_PORT` and
/// `ORCHESTRATOR_URL` (which every block follows, as the README says), and
/// `cargo` on `PATH` standing in for `cargo run --release --` with the
/// binary under test.
struct Shell {
    dir: tempfile::TempDir,
    logs: tempfile::TempDir,
    bin: PathBuf,
    port: u16,
    runs: usize,
}

impl Shell {
    fn new() -> Shell {
        let dir = tempfile::tempdir().expect("tempdir");
        for shared in ["tests", "examples"] {
            std::os::unix::fs::symlink(repo().join(shared), dir.path().join(shared))
                .expect("symlink");
        }
        let logs = tempfile::tempdir().expect("tempdir");
        let bin = logs.path().join("bin");
        std::fs::create_dir(&bin).expect("mkdir");
        let cargo = bin.join("cargo");
        std::fs::write(
            &cargo,
            format!(
                "#!/bin/sh\n\
                 # Stands in for `cargo run --release -- ARGS`: the binary under test.\n\
                 [ \"$1 $2 $3\" = \"run --release --\" ] || {{ echo \"README test: only `cargo run --release -- ...` runs here, not: cargo $*\" >&2; exit 97; }}\n\
                 shift 3\n\
                 # A server starts late, as under cargo (which checks the build\n\
                 # first): a block that goes on without waiting for it fails.\n\
                 case \"$1\" in serve|sim) sleep {SERVER_START_DELAY} ;; esac\n\
                 exec '{}' \"$@\"\n",
                env!("CARGO_BIN_EXE_orchestrator")
            ),
        )
        .expect("write the cargo stand-in");
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&cargo, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        Shell {
            dir,
            logs,
            bin,
            port: free_port(),
            runs: 0,
        }
    }

    /// Starts `script` under bash (`set -e`, as one piece), in its own
    /// process group; `after` runs after it (stopping what it started).
    fn spawn(&mut self, script: &str, after: &str) -> Group {
        self.runs += 1;
        let file = self.logs.path().join(format!("block-{}.sh", self.runs));
        std::fs::write(&file, script).expect("write the block");
        let out = self.logs.path().join(format!("block-{}.out", self.runs));
        let err = self.logs.path().join(format!("block-{}.err", self.runs));
        let kubectl = tool_support::tool("kubectl");
        let path = std::env::join_paths(
            [
                self.bin.clone(),
                kubectl.parent().expect("a directory").into(),
            ]
            .into_iter()
            .chain(std::env::split_paths(
                &std::env::var_os("PATH").unwrap_or_default(),
            )),
        )
        .expect("PATH");
        use std::os::unix::process::CommandExt;
        let child = std::process::Command::new("bash")
            .arg("-c")
            .arg(format!(
                "set -e -o pipefail\n. '{}'\n{after}",
                file.display()
            ))
            .current_dir(self.dir.path())
            .env_clear()
            .env("PATH", path)
            .env("HOME", self.dir.path())
            .env("SERVER_PORT", self.port.to_string())
            .env(
                "ORCHESTRATOR_URL",
                format!("http://127.0.0.1:{}", self.port),
            )
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(&out).expect("out"))
            .stderr(std::fs::File::create(&err).expect("err"))
            .process_group(0)
            .spawn()
            .expect("bash starts");
        Group { child, out, err }
    }

    fn file(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// The development secret and token this directory holds: no output may show them.
    fn secrets(&self) -> Vec<String> {
        [
            "orchestrator-dev-webhook-secret",
            "orchestrator-dev-api-token",
        ]
        .iter()
        .filter_map(|f| std::fs::read_to_string(self.file(f)).ok())
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .collect()
    }
}

/// Runs one walkthrough block whole and once; stops what it started in the
/// background (SIGTERM, as Ctrl-C or `kill %1`) and waits for it to end.
fn run_block(shell: &mut Shell, text: &str) -> String {
    let mut group = shell.spawn(text, "kill -TERM $(jobs -p) 2>/dev/null || true\nwait\n");
    let status = group.wait(BLOCK_LIMIT);
    let (out, err) = group.output();
    match status {
        Some(s) if s.success() => {}
        other => panic!(
            "this README block failed ({other:?}) when run as written:\n{text}\n--- stdout\n{out}--- stderr\n{err}"
        ),
    }
    for line in parse_block(text) {
        if let Some(expect) = &line.expect {
            assert!(
                out.lines().any(|l| l.starts_with(expect.as_str())),
                "`{}` should print {expect:?}…; the block printed:\n{out}",
                line.words.join(" ")
            );
        }
    }
    for secret in shell.secrets() {
        assert!(
            !out.contains(&secret) && !err.contains(&secret),
            "a development secret or token is in the output of:\n{text}"
        );
    }
    format!("{out}{err}")
}

/// Stops the quick start's server as Ctrl-C would (SIGTERM to its
/// terminal) and checks how it ended; its log, if one was running.
fn stop(terminal: &mut Option<(Group, PathBuf)>, shell: &Shell) -> Option<String> {
    let (mut group, kubeconfig) = terminal.take()?;
    group.signal("-TERM");
    // The server removes its kubeconfig as it stops.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while kubeconfig.exists() && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    group.wait(Duration::from_secs(30));
    let (out, err) = group.output();
    assert!(
        !kubeconfig.exists(),
        "the quick-start server left {} behind when it stopped:\n{err}",
        kubeconfig.display()
    );
    for secret in shell.secrets() {
        assert!(
            !out.contains(&secret) && !err.contains(&secret),
            "the server logged a development secret or token"
        );
    }
    Some(err)
}

#[test]
fn readme_blocks_run_as_written_once_each() {
    let readme = read("README.md");
    let mut shell: Option<Shell> = None;
    let mut terminal: Option<(Group, PathBuf)> = None;
    let mut outputs = Vec::new();
    for text in sh_block_texts(&readme) {
        match kind(&text) {
            Kind::Listing => {}
            Kind::Terminal(line) => {
                if let Some(log) = shell.as_ref().and_then(|s| stop(&mut terminal, s)) {
                    outputs.push(("quick-start server".to_string(), log));
                }
                let mut s = Shell::new();
                let group = s.spawn(&line, "");
                let kubeconfig = s.file(&format!("orchestrator-sim-{}.kubeconfig", s.port));
                terminal = Some((group, kubeconfig));
                shell = Some(s);
            }
            Kind::Walkthrough => {
                // A block that starts its own server runs after the others
                // have stopped, in a directory of its own; one that does not
                // talks to the quick start's server, from its directory.
                let starts_server = parse_block(&text).iter().any(|l| l.background);
                if starts_server || shell.is_none() {
                    if let Some(log) = shell.as_ref().and_then(|s| stop(&mut terminal, s)) {
                        outputs.push(("quick-start server".to_string(), log));
                    }
                    shell = Some(Shell::new());
                }
                let s = shell.as_mut().expect("a shell");
                let out = run_block(s, &text);
                if text.contains("--kubeconfig-out sim.kubeconfig") {
                    assert!(
                        !s.file("sim.kubeconfig").exists(),
                        "sim.kubeconfig is still there after its simulator stopped"
                    );
                }
                outputs.push((text, out));
            }
        }
    }
    if let Some(log) = shell.as_ref().and_then(|s| stop(&mut terminal, s)) {
        outputs.push(("quick-start server".to_string(), log));
    }
    let find = |needle: &str| {
        outputs
            .iter()
            .find(|(t, _)| t.contains(needle))
            .map(|(_, out)| out.as_str())
            .unwrap_or_else(|| panic!("no README block runs `{needle}`"))
    };
    // "What the agent was given": the prompt, expanded from the Job's env
    // (the fixture's issue title is in it), not `$(PROMPT)`.
    let given = find("logs \\\n  job/");
    assert!(
        given.contains("Spelling error in the README file") && !given.contains("$(PROMPT)"),
        "{given}"
    );
    // The operator commands work against the quick start (its development token).
    assert!(
        given.contains("HOLDER") && given.contains("succeeded"),
        "{given}"
    );
    // The quick start's task reported back: its status comment, found by
    // the marker, on the fake GitHub API.
    let comments = find("issues/1/comments");
    assert!(
        comments.contains("orchestrator:task=gh-implement-codertocat-hello-world-1-9c7903ecae"),
        "{comments}"
    );
    find("submit --repo");
    find("create -f examples/job.yaml");
    let server = find("quick-start server");
    assert!(
        server.contains("listening on http://127.0.0.1:"),
        "the quick-start server says where it listens:\n{server}"
    );
    assert!(
        !server.contains("force shutdown worker"),
        "actix's worker shutdown line is not logged at INFO:\n{server}"
    );
}
