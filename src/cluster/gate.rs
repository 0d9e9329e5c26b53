//! The one door to the API server: every Kubernetes call of the service
//! (Jobs, Pods, logs, ConfigMaps, Leases) goes through a [`KubeGate`], which
//! shares one request-rate bound (like client-go's QPS/burst) across its
//! users, gives every attempt a timeout, retries 429/5xx/transport errors
//! with exponential backoff inside the caller's deadline, counts each call
//! in `orchestrator_kube_requests_total{verb,outcome}` and
//! `orchestrator_kube_request_seconds`, and maps API errors to
//! [`KubeError`]. The Kube actor, the Lease loop and the dedup record's
//! writer hold clones of the same gate; the Job watch's client waits for its rate limit and is counted in
//! its metrics too (no timeout or retry from the gate: see
//! [`super::metered`]). The preflight probes and the start-up `/version`
//! check make single attempts through [`KubeGate::probe`] (rate bound,
//! deadline, metrics; the client's own error handed back for inspection).
//!
//! The gate is the door: the `kube::Client` inside it is visible to
//! `cluster/` only ([`KubeGate::client`] is `pub(in crate::cluster)`), so no
//! other module can make a Kubernetes call around it.
//!
//! Reads the HTTP routes ask for (one Job's document, logs, the lookups of
//! an operator's cancel) take a gate from [`KubeGate::for_reads`]: they
//! wait for a second, smaller limiter first — half the QPS and half the
//! burst — and only then for the shared one. However many reads clients
//! send, they use at most half of the rate, so the other half is always
//! there for Job creates, admissions, the Lease and the watch: reads can
//! be slowed (and answered 503 at their deadline), creates are not
//! starved by them.

use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::{Duration, Instant};

use backon::{ExponentialBuilder, Retryable};
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};

use crate::metrics::Metrics;

/// A failed Kubernetes call, typed for the callers' decisions.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum KubeError {
    #[error("already exists")]
    AlreadyExists,
    #[error("conflict: {0}")]
    Conflict(String),
    #[error("not found")]
    NotFound,
    /// The namespace (named) does not exist: the API server refused a create in it.
    #[error("namespace {0:?} does not exist")]
    NamespaceMissing(String),
    #[error("invalid: {0}")]
    Invalid(String),
    #[error("forbidden: {0}")]
    Forbidden(String),
    /// The API server could not be reached or kept failing until the deadline.
    #[error("Kubernetes API unavailable: {0}")]
    Unavailable(String),
}

impl KubeError {
    /// Label for metrics.
    pub fn metric_label(&self) -> &'static str {
        match self {
            KubeError::AlreadyExists => "already_exists",
            KubeError::Conflict(_) => "conflict",
            KubeError::NotFound => "not_found",
            KubeError::NamespaceMissing(_) => "namespace_missing",
            KubeError::Invalid(_) => "invalid",
            KubeError::Forbidden(_) => "forbidden",
            KubeError::Unavailable(_) => "unavailable",
        }
    }

    fn retryable(&self) -> bool {
        matches!(self, KubeError::Unavailable(_))
    }
}

impl From<kube::Error> for KubeError {
    fn from(e: kube::Error) -> Self {
        KubeError::classify(&e)
    }
}

impl KubeError {
    /// The typed form of a client error.
    pub fn classify(e: &kube::Error) -> Self {
        match e {
            kube::Error::Api(s) => match (s.code, s.reason.as_str()) {
                (409, "AlreadyExists") => KubeError::AlreadyExists,
                (409, _) => KubeError::Conflict(s.message.clone()),
                (404, _) => match &s.details {
                    Some(d) if d.kind == "namespaces" => {
                        KubeError::NamespaceMissing(d.name.clone())
                    }
                    _ => KubeError::NotFound,
                },
                (403, _) | (401, _) => KubeError::Forbidden(s.message.clone()),
                (429, _) | (500..=599, _) => {
                    KubeError::Unavailable(format!("{} {}", s.code, s.reason))
                }
                _ => KubeError::Invalid(s.message.clone()),
            },
            other => KubeError::Unavailable(other.to_string()),
        }
    }
}

/// A shared, rate-limited, metered handle on the API server.
#[derive(Clone)]
pub struct KubeGate {
    client: kube::Client,
    limiter: Arc<DefaultDirectRateLimiter>,
    /// The smaller share reads wait for first (see the module docs).
    read_limiter: Arc<DefaultDirectRateLimiter>,
    /// Whether this handle's calls are reads ([`KubeGate::for_reads`]).
    reads: bool,
    metrics: Arc<Metrics>,
    forbidden: Arc<super::forbidden::ForbiddenLog>,
}

impl std::fmt::Debug for KubeGate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("KubeGate")
    }
}

impl KubeGate {
    /// A gate over a client built from `config` (see [`new`](Self::new)).
    pub fn from_config(
        config: kube::Config,
        qps: u32,
        burst: u32,
        metrics: Arc<Metrics>,
    ) -> Result<Self, kube::Error> {
        Ok(KubeGate::new(
            kube::Client::try_from(config)?,
            qps,
            burst,
            metrics,
        ))
    }

    /// A gate allowing `qps` requests per second, `burst` above it; reads
    /// ([`for_reads`](Self::for_reads)) half of each (at least one).
    pub fn new(client: kube::Client, qps: u32, burst: u32, metrics: Arc<Metrics>) -> Self {
        let qps = NonZeroU32::new(qps.max(1)).unwrap_or(NonZeroU32::MIN);
        let burst = NonZeroU32::new(burst.max(qps.get())).unwrap_or(qps);
        let half = |n: NonZeroU32| NonZeroU32::new(n.get() / 2).unwrap_or(NonZeroU32::MIN);
        KubeGate {
            client,
            limiter: Arc::new(RateLimiter::direct(
                Quota::per_second(qps).allow_burst(burst),
            )),
            read_limiter: Arc::new(RateLimiter::direct(
                Quota::per_second(half(qps)).allow_burst(half(burst)),
            )),
            reads: false,
            metrics,
            forbidden: Arc::default(),
        }
    }

    /// The same gate for reads the HTTP routes ask for: each call first
    /// waits for the reads' share of the rate, then for the shared bound,
    /// so reads never take the capacity creates need.
    pub fn for_reads(&self) -> KubeGate {
        KubeGate {
            reads: true,
            ..self.clone()
        }
    }

    /// The metrics this gate counts its calls in.
    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }

    /// Waits for this gate's rate limit (the Job watch's requests,
    /// [`super::metered`]).
    pub(in crate::cluster) async fn until_ready(&self) {
        self.limiter.until_ready().await;
    }

    /// The client, for building `Api`s whose calls go through this gate
    /// (only inside `cluster/`: this is what makes the gate the one door).
    pub(in crate::cluster) fn client(&self) -> kube::Client {
        self.client.clone()
    }

    /// One attempt of `f` for callers that need the client's error as it is
    /// (the preflight probes, the start-up check): waits for the rate
    /// limit, then runs `f` with the client, both within `deadline`;
    /// counted under `verb`. `None` when the deadline passed first.
    pub(in crate::cluster) async fn probe<T, Fut>(
        &self,
        deadline: Instant,
        verb: &'static str,
        f: impl FnOnce(kube::Client) -> Fut,
    ) -> Option<Result<T, kube::Error>>
    where
        Fut: std::future::Future<Output = Result<T, kube::Error>>,
    {
        let left = deadline.saturating_duration_since(Instant::now());
        tokio::time::timeout(left, self.limiter.until_ready())
            .await
            .ok()?;
        let left = deadline.saturating_duration_since(Instant::now());
        let started = Instant::now();
        let r = tokio::time::timeout(left, f(self.client.clone())).await;
        let outcome = match &r {
            Ok(Ok(_)) => "ok",
            Ok(Err(e)) => KubeError::classify(e).metric_label(),
            Err(_) => "unavailable",
        };
        self.metrics.kube_request(verb, outcome, started.elapsed());
        r.ok()
    }

    /// One attempt of `f`: waits for the rate limit, then runs it, both
    /// within `deadline`; counted under `verb`.
    pub async fn once<T, Fut>(
        &self,
        deadline: Instant,
        verb: &'static str,
        f: impl FnOnce() -> Fut,
    ) -> Result<T, KubeError>
    where
        Fut: std::future::Future<Output = Result<T, kube::Error>>,
    {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(KubeError::Unavailable("deadline exceeded".into()));
        }
        let ready = async {
            if self.reads {
                self.read_limiter.until_ready().await;
            }
            self.limiter.until_ready().await;
        };
        if tokio::time::timeout(left, ready).await.is_err() {
            return Err(KubeError::Unavailable(
                "client rate limit wait exceeded the deadline".into(),
            ));
        }
        let left = deadline.saturating_duration_since(Instant::now());
        let started = Instant::now();
        let r = match tokio::time::timeout(left, f()).await {
            Ok(r) => r.map_err(KubeError::from),
            Err(_) => Err(KubeError::Unavailable("request timed out".into())),
        };
        self.metrics.kube_request(
            verb,
            r.as_ref().err().map_or("ok", |e| e.metric_label()),
            started.elapsed(),
        );
        if let Err(KubeError::Forbidden(m)) = &r {
            self.forbidden.report(m);
        }
        r
    }

    /// Reports a 403 seen outside [`once`](Self::once) (the Job watch).
    pub fn forbidden(&self, message: &str) {
        self.forbidden.report(message);
    }

    /// Runs `f` through [`once`](Self::once), retrying retryable failures
    /// with backoff until `deadline`.
    pub async fn call<T, F, Fut>(
        &self,
        deadline: Instant,
        verb: &'static str,
        f: F,
    ) -> Result<T, KubeError>
    where
        F: Fn() -> Fut,
        Fut: std::future::Future<Output = Result<T, kube::Error>>,
    {
        let attempt = || self.once(deadline, verb, &f);
        let policy = ExponentialBuilder::default()
            .with_min_delay(Duration::from_millis(50))
            .with_max_delay(Duration::from_secs(2))
            .with_jitter()
            .without_max_times();
        attempt
            .retry(policy)
            .when(|e: &KubeError| e.retryable() && Instant::now() < deadline)
            .notify(|e, wait| tracing::debug!(error = %e, ?wait, verb, "retrying Kubernetes call"))
            .await
    }
}
