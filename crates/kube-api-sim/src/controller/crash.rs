//! The kubelet's restarts of crashed containers (`restartPolicy:
//! OnFailure`): the container waits in `CrashLoopBackOff` (10 s doubling to
//! 5 minutes, `SimConfig::crash_loop_backoff_base`), its exit is kept in
//! `lastState`, `restartCount` grows, a `BackOff` event says so
//! (pkg/kubelet/kuberuntime), and it runs again in the same pod.

use std::time::Duration;

use serde_json::{json, Value};

use super::kubelet::{containers, KUBELET};
use super::{meta, Controller};
use crate::resources::PODS;
use crate::store::now_rfc3339;

/// The kubelet's longest crash-loop back-off.
const MAX_CRASH_BACKOFF: Duration = Duration::from_secs(300);

/// A duration as Go prints one ("10s", "2m40s", "50ms").
fn go_duration(d: Duration) -> String {
    let ms = d.as_millis();
    if ms < 1000 {
        return format!("{ms}ms");
    }
    let secs = d.as_secs();
    match secs / 60 {
        0 => format!("{secs}s"),
        m => format!("{m}m{}s", secs % 60),
    }
}

/// The wait before restart number `restarts + 1`.
pub(super) fn crash_delay(base: Duration, restarts: u32) -> Duration {
    base.saturating_mul(1 << restarts.min(16))
        .min(MAX_CRASH_BACKOFF)
}

impl Controller {
    /// A crashed container (`OnFailure`): its status waits in
    /// `CrashLoopBackOff` with the exit in `lastState` and one more restart;
    /// the kubelet's `BackOff` event.
    pub(super) fn crash(&self, ns: &str, name: &str, pod: &Value, exit: i32, delay: Duration) {
        let now = now_rfc3339();
        let who = format!("{name}_{ns}({})", meta(pod, "uid"));
        for c in containers(pod, "containers") {
            let cname = c["name"].as_str().unwrap_or("");
            self.store().append_log(
                ns,
                name,
                cname,
                [format!("[sim] container exited with code {exit}")],
            );
            let path = format!("spec.containers{{{cname}}}");
            let msg = format!("Back-off restarting failed container {cname} in pod {who}");
            self.record(pod, Some(&path), KUBELET, "Warning", "BackOff", &msg);
        }
        let back_off = go_duration(delay);
        self.set_containers(ns, name, false, &now, |s| {
            let cname = s["name"].as_str().unwrap_or("").to_string();
            let started = s["state"]["running"]["startedAt"].clone();
            s["lastState"] = json!({"terminated": {"exitCode": exit, "reason": "Error",
                "startedAt": started, "finishedAt": now}});
            s["state"] = json!({"waiting": {"reason": "CrashLoopBackOff", "message":
                format!("back-off {back_off} restarting failed container={cname} pod={who}")}});
            s["restartCount"] = json!(s["restartCount"].as_u64().unwrap_or(0) + 1);
        });
    }

    /// Runs the crashed containers again.
    pub(super) fn restart_containers(
        &self,
        ns: &str,
        name: &str,
        pod: &Value,
        run: f64,
        exit: i32,
    ) {
        let now = now_rfc3339();
        self.run_containers(ns, name, pod, run, exit);
        self.set_containers(ns, name, true, &now, |s| {
            s["state"] = json!({"running": {"startedAt": now}});
        });
    }

    /// Changes each app container's status with `change`, marks them and
    /// the pod `ready` (or not).
    fn set_containers(
        &self,
        ns: &str,
        name: &str,
        ready: bool,
        now: &str,
        change: impl Fn(&mut Value),
    ) {
        let _ = self.store().modify(PODS, ns, name, true, false, |cur| {
            let mut n = cur.clone();
            for s in n["status"]["containerStatuses"]
                .as_array_mut()
                .into_iter()
                .flatten()
            {
                change(s);
                s["ready"] = json!(ready);
                s["started"] = json!(ready);
            }
            set_ready(&mut n, ready, now);
            Ok(n)
        });
    }
}

/// Sets the pod's `Ready` and `ContainersReady` conditions.
fn set_ready(pod: &mut Value, ready: bool, now: &str) {
    for c in pod["status"]["conditions"]
        .as_array_mut()
        .into_iter()
        .flatten()
    {
        if c["type"] == "Ready" || c["type"] == "ContainersReady" {
            c["status"] = json!(if ready { "True" } else { "False" });
            if ready {
                if let Some(m) = c.as_object_mut() {
                    m.remove("reason");
                }
            } else {
                c["reason"] = json!("ContainersNotReady");
            }
            c["lastTransitionTime"] = json!(now);
        }
    }
}
