//! `orchestrator doctor`: runs the service's preflight checks once, from
//! wherever it is run (a workstation with a kubeconfig, or inside the pod
//! with `kubectl exec`, where it checks the service account), and prints
//! each check with the fix for what failed.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;

use crate::cluster::gate::KubeGate;
use crate::cluster::preflight::{self, Outcome, Report, Target, Tenant};
use crate::metrics::Metrics;

/// Requests per second (and burst) of `doctor`'s probes: one round is a
/// few dozen calls, made at once.
const DOCTOR_QPS: u32 = 100;
use crate::config::is_dns1123_label;

/// The exit-code table shown in `doctor --help`.
pub const EXIT_CODES_HELP: &str = "\
Exit codes:
  0  every check passed (checks that could not run are shown with '?')
  1  a check failed (each failure is printed with its fix)
  2  usage or configuration error (bad namespace, unreadable kubeconfig)
  3  the API server is unreachable";

/// A check failed (like `--wait`'s 1: what was asked about failed).
pub const CHECK_FAILED: u8 = 1;

#[derive(Debug, Clone, Args)]
pub struct DoctorArgs {
    /// The namespace the service creates Jobs in.
    #[arg(long, env = "KUBERNETES_NAMESPACE", default_value = "default")]
    pub namespace: String,
    /// Kubeconfig file to use (default: KUBECONFIG, ~/.kube/config, or the
    /// pod's service account when run in a cluster).
    #[arg(long)]
    pub kubeconfig: Option<PathBuf>,
    /// Print the checks as JSON instead of text.
    #[arg(long)]
    pub json: bool,
    /// The rules file the service runs with: the tenant namespaces its
    /// rules name are checked too.
    #[arg(long, env = "ORCHESTRATOR_RULES", value_name = "FILE")]
    pub rules: Option<PathBuf>,
}

/// Runs the checks and prints them; the exit code says how they went.
pub fn run(args: DoctorArgs) -> ExitCode {
    if !is_dns1123_label(&args.namespace) {
        eprintln!(
            "Error: --namespace/KUBERNETES_NAMESPACE must be a DNS-1123 label (lower-case letters, digits and '-', at most 63), got {:?}",
            args.namespace
        );
        return ExitCode::from(crate::client::exit::USAGE);
    }
    let tenants = match &args.rules {
        None => Vec::new(),
        Some(path) => match crate::rules::Rules::load(Some(path)) {
            Ok(rules) => Tenant::of_rules(&rules, &args.namespace),
            Err(e) => {
                eprintln!("Error: --rules/ORCHESTRATOR_RULES: {e}");
                return ExitCode::from(crate::client::exit::USAGE);
            }
        },
    };
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("Error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(check(args, tenants))
}

async fn check(args: DoctorArgs, tenants: Vec<Tenant>) -> ExitCode {
    let config = match &args.kubeconfig {
        Some(path) => match kube::config::Kubeconfig::read_from(path) {
            Ok(kc) => kube::Config::from_custom_kubeconfig(kc, &Default::default())
                .await
                .map_err(|e| e.to_string()),
            Err(e) => Err(format!("cannot read {}: {e}", path.display())),
        },
        None => kube::Config::infer().await.map_err(|e| e.to_string()),
    };
    let config = match config {
        Ok(c) => c,
        Err(e) => {
            eprintln!("Error: Failed to initialize Kubernetes client: {e}\nHint: set KUBECONFIG or --kubeconfig, or check ~/.kube/config (`kubectl cluster-info` should work).");
            if args.kubeconfig.is_none() {
                for path in sim_kubeconfigs(std::path::Path::new(".")) {
                    eprintln!("Hint: this directory has a simulator's kubeconfig: orchestrator doctor --kubeconfig {path}");
                }
            }
            return ExitCode::from(crate::client::exit::USAGE);
        }
    };
    let target = Target {
        server: config
            .cluster_url
            .to_string()
            .trim_end_matches('/')
            .to_string(),
        namespace: args.namespace.clone(),
        tenants,
    };
    // A gate of its own: the probes' rate bound, deadlines and metrics
    // (not exported: `doctor` serves nothing).
    let gate = match KubeGate::from_config(config, DOCTOR_QPS, DOCTOR_QPS, Metrics::new()) {
        Ok(g) => g,
        Err(e) => {
            eprintln!("Error: Failed to initialize Kubernetes client: {e}");
            return ExitCode::from(crate::client::exit::USAGE);
        }
    };
    let names: Vec<String> = target.tenants.iter().map(|t| t.namespace.clone()).collect();
    let seen = crate::cluster::probe::observe(&gate, &args.namespace, &names).await;
    let mut report = preflight::evaluate(&target, &seen);
    // With SCHEDULER=kueue in the environment (as the service has it), the
    // Kueue checks too.
    let env = |name: &str| std::env::var(name).ok().filter(|v| !v.trim().is_empty());
    let kueue = match crate::config::kueue::KueueSettings::from_lookup(&env) {
        Ok(k) => k,
        Err(e) => {
            eprintln!("Error: {e}");
            return ExitCode::from(crate::client::exit::USAGE);
        }
    };
    if let (Some(k), preflight::Observation::Reached { .. }) = (&kueue, &seen) {
        let seen =
            crate::cluster::probe::kueue::observe(&gate, &args.namespace, k, &target.tenants).await;
        report.checks.extend(preflight::kueue::evaluate(&seen));
    }
    if args.json {
        match serde_json::to_string_pretty(&report) {
            Ok(s) => println!("{s}"),
            Err(e) => eprintln!("Error: {e}"),
        }
    } else {
        print!("{}", render(&target, &report));
    }
    ExitCode::from(exit_code(&report))
}

/// The kubeconfigs `serve --embedded-cluster` writes
/// (`orchestrator-sim-PORT.kubeconfig`) that are in `dir`, sorted.
pub fn sim_kubeconfigs(dir: &std::path::Path) -> Vec<String> {
    let mut found: Vec<String> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| e.file_name().into_string().ok())
        .filter(|n| n.starts_with("orchestrator-sim-") && n.ends_with(".kubeconfig"))
        .collect();
    found.sort();
    found
}

/// The exit code of a report.
pub fn exit_code(report: &Report) -> u8 {
    if report.unreachable() {
        crate::client::exit::UNREACHABLE
    } else if report.failures().next().is_none() {
        crate::client::exit::OK
    } else {
        CHECK_FAILED
    }
}

/// The report as text: one line per check, the fix under each failure,
/// and a summary line.
pub fn render(target: &Target, report: &Report) -> String {
    let mut out = format!(
        "Preflight checks for namespace {:?} on {}:\n",
        target.namespace, target.server
    );
    if !target.tenants.is_empty() {
        let names: Vec<String> = target
            .tenants
            .iter()
            .map(|t| format!("{:?}", t.namespace))
            .collect();
        out.push_str(&format!("and tenant namespaces {}:\n", names.join(", ")));
    }
    for c in &report.checks {
        let mark = match c.result {
            Outcome::Ok => "ok",
            Outcome::Failed => "FAILED",
            Outcome::Unknown => "?",
        };
        out.push_str(&format!("  {mark:<7} {}\n", c.message));
        if let (Outcome::Failed, Some(fix)) = (c.result, &c.fix) {
            out.push_str(&format!("          fix: {fix}\n"));
        }
    }
    let failed = report.failures().count();
    out.push_str(&match failed {
        0 => "All checks passed.\n".to_string(),
        1 => "1 check failed.\n".to_string(),
        n => format!("{n} checks failed.\n"),
    });
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::preflight::{evaluate, NamespaceSeen, Observation};

    fn target() -> Target {
        Target {
            server: "https://k8s:6443".into(),
            namespace: "claude-jobs".into(),
            tenants: Vec::new(),
        }
    }

    #[test]
    fn a_missing_namespace_prints_the_failure_and_its_fix() {
        let seen = Observation::Reached {
            version: "v1.33.0".into(),
            namespace: NamespaceSeen::Missing,
            access: None,
            tenants: Vec::new(),
        };
        let r = evaluate(&target(), &seen);
        let text = render(&target(), &r);
        assert!(
            text.contains("  FAILED  namespace \"claude-jobs\" does not exist\n"),
            "{text}"
        );
        assert!(
            text.contains("fix: create it (kubectl create namespace claude-jobs)"),
            "{text}"
        );
        assert!(
            text.contains("  ?       could not check permissions"),
            "{text}"
        );
        assert!(text.ends_with("1 check failed.\n"), "{text}");
        assert_eq!(exit_code(&r), CHECK_FAILED);
    }

    #[test]
    fn unreachable_is_exit_3_and_all_good_is_0() {
        let down = evaluate(
            &target(),
            &Observation::Unreachable("connection refused".into()),
        );
        assert_eq!(exit_code(&down), 3);
        let up = Observation::Reached {
            version: "v1".into(),
            namespace: NamespaceSeen::Exists,
            access: None,
            tenants: Vec::new(),
        };
        let r = evaluate(&target(), &up);
        assert_eq!(exit_code(&r), 0);
        assert!(render(&target(), &r).ends_with("All checks passed.\n"));
    }
}
