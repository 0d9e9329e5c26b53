//! The first contact with the API server at startup: where the client
//! configuration came from (which kubeconfig, or the in-cluster service
//! account), and a fatal, one-line explanation when the server's certificate
//! is not trusted — a wrong `certificate-authority-data` never heals by
//! retrying. Other failures (server down, slow) are only logged: the watch
//! and the Kube actor retry them.

use std::time::{Duration, Instant};

use super::gate::KubeGate;
use crate::metrics::Metrics;

/// Where `kube::Config::infer()` takes its configuration from, for messages.
pub fn config_source() -> String {
    if let Some(p) = std::env::var_os("KUBECONFIG").filter(|p| !p.is_empty()) {
        return format!("kubeconfig {}", p.to_string_lossy());
    }
    if let Some(home) = std::env::var_os("HOME") {
        let p = std::path::Path::new(&home).join(".kube/config");
        if p.is_file() {
            return format!("kubeconfig {}", p.display());
        }
    }
    "the in-cluster service account (/var/run/secrets/kubernetes.io/serviceaccount)".into()
}

fn chain(e: &(dyn std::error::Error + 'static)) -> Vec<String> {
    let mut out = vec![e.to_string()];
    let mut cur = e;
    while let Some(next) = cur.source() {
        out.push(next.to_string());
        cur = next;
    }
    out
}

/// The certificate problem in `e`'s cause chain, if there is one.
pub fn certificate_problem(e: &(dyn std::error::Error + 'static)) -> Option<String> {
    chain(e)
        .into_iter()
        .rev()
        .find(|m| m.contains("certificate") || m.contains("UnknownIssuer"))
}

/// Asks the API server for `/version` once, through a gate of its own (it
/// runs before the service's metrics exist). `Err` (the line to print) when
/// its certificate is not trusted; other failures are logged and `Ok`.
pub async fn check(config: &kube::Config, source: &str) -> Result<(), String> {
    let url = config.cluster_url.to_string();
    let gate = KubeGate::from_config(config.clone(), 1, 1, Metrics::new())
        .map_err(|e| format!("cannot build a Kubernetes client for {url} from {source}: {e}"))?;
    let deadline = Instant::now() + Duration::from_secs(10);
    let answer = gate
        .probe(deadline, "version", |c| async move {
            c.apiserver_version().await
        })
        .await;
    match answer {
        Some(Ok(_)) => Ok(()),
        Some(Err(e)) => match certificate_problem(&e) {
            Some(why) => Err(format!(
                "the Kubernetes API server at {url} presented a certificate that {source} does not trust ({why}); check the kubeconfig's certificate-authority-data (or certificate-authority) belongs to this cluster"
            )),
            None => {
                tracing::warn!(api = %url, from = %source, error = %e, "the Kubernetes API server is not reachable yet; retrying in the background");
                Ok(())
            }
        },
        None => {
            tracing::warn!(api = %url, from = %source, "the Kubernetes API server did not answer /version within 10 s; retrying in the background");
            Ok(())
        }
    }
}
