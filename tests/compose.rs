//! `compose.yaml` says what the README and `serve --help` say: its command
//! parses as the binary's own command line, every environment variable is
//! one the service reads, the ports it publishes are the ones the command
//! listens on, the folder it mounts is where the command writes the
//! development files, and the README's Docker Compose section names them.
//! (No container engine runs here; `.ci/run` validates the file against
//! the Compose specification's schema.)

use clap::Parser;
use serde_json::Value;

fn read(path: &str) -> String {
    std::fs::read_to_string(format!("{}/{path}", env!("CARGO_MANIFEST_DIR")))
        .unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn compose() -> Value {
    serde_yaml_ng::from_str(&read("compose.yaml")).expect("compose.yaml is YAML")
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .expect("a list")
        .iter()
        .map(|s| s.as_str().expect("a string").to_string())
        .collect()
}

fn after<'a>(words: &'a [String], flag: &str) -> &'a str {
    let i = words
        .iter()
        .position(|w| w == flag)
        .unwrap_or_else(|| panic!("{flag} in {words:?}"));
    &words[i + 1]
}

fn port_of(addr: &str) -> u16 {
    addr.rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .expect("ADDR:PORT")
}

#[test]
fn the_service_in_compose_runs_a_command_the_binary_accepts_with_what_the_readme_says() {
    let c = compose();
    let svc = &c["services"]["orchestrator"];
    let command = strings(&svc["command"]);
    let argv = std::iter::once("orchestrator").chain(command.iter().map(String::as_str));
    let cli = orchestrator::cli::Cli::try_parse_from(argv).expect("the command parses");
    assert!(matches!(cli.command, orchestrator::cli::Command::Serve(_)));
    assert!(command.contains(&"--embedded-cluster".to_string()));

    // The image it builds has the simulators in.
    assert_eq!(svc["build"]["args"]["FEATURES"], "embedded-cluster");
    assert!(read("Dockerfile").contains("ARG FEATURES="));

    // Every variable set is one the service reads.
    let env = svc["environment"].as_object().expect("a map of variables");
    let known: Vec<&str> = orchestrator::config::VARIABLES
        .iter()
        .map(|v| v.name)
        .collect();
    for k in env.keys() {
        assert!(
            known.contains(&k.as_str()),
            "{k} is not a variable of `serve --help`"
        );
    }

    // The ports published are the ones listened on, on 127.0.0.1 only.
    let published: Vec<(u16, u16)> = strings(&svc["ports"])
        .iter()
        .map(|p| {
            let parts: Vec<&str> = p.split(':').collect();
            assert_eq!(parts.len(), 3, "{p}: HOST_IP:HOST:CONTAINER");
            assert_eq!(parts[0], "127.0.0.1", "{p} is published on loopback only");
            (
                parts[1].parse().expect("a port"),
                parts[2].parse().expect("a port"),
            )
        })
        .collect();
    let server_port: u16 = env["SERVER_PORT"]
        .as_str()
        .and_then(|p| p.parse().ok())
        .expect("SERVER_PORT");
    for listened in [
        server_port,
        port_of(after(&command, "--embedded-cluster-listen")),
        port_of(after(&command, "--embedded-github-listen")),
    ] {
        assert!(
            published
                .iter()
                .any(|(_, container)| *container == listened),
            "port {listened} is listened on but not published: {published:?}"
        );
    }

    // The development files land in the mounted folder.
    let workdir = svc["working_dir"].as_str().expect("working_dir");
    let volumes = strings(&svc["volumes"]);
    let (host_dir, _) = volumes
        .iter()
        .find_map(|v| v.split_once(':').filter(|(_, inside)| *inside == workdir))
        .expect("the working directory is a mounted folder");
    let kubeconfig = after(&command, "--kubeconfig-out");
    assert!(
        kubeconfig.starts_with(&format!("{workdir}/")),
        "{kubeconfig}"
    );

    // The README's section says how to run it and where things are.
    let readme = read("README.md");
    let section = readme
        .split("\n## Docker Compose\n")
        .nth(1)
        .and_then(|s| s.split("\n## ").next())
        .expect("a Docker Compose section in the README");
    let host_dir = host_dir.trim_start_matches("./");
    let kubeconfig_file = kubeconfig.rsplit('/').next().unwrap_or_default();
    for needle in [
        "docker compose up --build".to_string(),
        format!("mkdir -p {host_dir}"),
        format!("{host_dir}/{kubeconfig_file}"),
        "--profile monitoring".to_string(),
    ] {
        assert!(
            section.contains(&needle),
            "the README's Docker Compose section names {needle:?}"
        );
    }
    for (host, _) in published {
        assert!(
            section.contains(&format!("127.0.0.1:{host}")),
            "the section names port {host}"
        );
    }
}
