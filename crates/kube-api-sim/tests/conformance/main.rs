//! A conformance-style suite: the simulator driven by the real `kubectl`
//! (as a subprocess, fresh `--cache-dir` per run) and by the `kube` client,
//! each case stating the answer a real kube-apiserver (1.32) gives and where
//! that answer is documented or was observed.

#[path = "../kubectl_support/mod.rs"]
mod kubectl_support;

mod apply;
mod discovery;
mod http;
mod job_policies;
mod jobs;
mod lifecycle;
mod lists;
mod protobuf;
mod terminating;
mod validation;
