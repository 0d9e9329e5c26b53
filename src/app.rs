//! Start-up and shutdown of the service: wires the actors, the Job watch,
//! the scheduler Lease and the HTTP server, then waits for a shutdown signal
//! or for a critical task to die.
//!
//! `run` takes its edges as arguments (listener, cluster config, shutdown
//! future) so tests bind port 0 and point it at the embedded simulator.

use std::future::Future;
use std::net::TcpListener;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use actix::Supervisor;
use actix_web::{web, App, HttpServer};
use anyhow::Context as _;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::coordination::v1::Lease;
use kube::runtime::reflector;
use kube::Api;
use tokio::sync::Semaphore;
use tracing::Instrument;
use tracing_actix_web::TracingLogger;

use crate::admission::{DedupCache, RateLimits};
use crate::cluster::kube_actor::{KubeActor, KubeSettings};
use crate::cluster::lease::{self, LeaseSettings};
use crate::config::Config;
use crate::events::EventLog;
use crate::http::{self, AppState, Health, RootSpan, SourceHandle};
use crate::metrics::Metrics;
use crate::rules::Rules;
use crate::scheduler::Scheduler;
use crate::sources::actor::{SourceActor, MAILBOX};
use crate::sources::github::TrustConfig;
use crate::task::TaskSource;

/// Events kept for `GET /api/v1/events`.
const EVENT_LOG_CAPACITY: usize = 1000;

/// How long the scheduler Lease lasts without renewal.
const LEASE_DURATION: Duration = Duration::from_secs(15);

/// Runs the service until `shutdown` resolves (graceful stop, `Ok`) or a
/// critical part fails (`Err`, the process should exit non-zero). Must run
/// inside an actix `System`.
pub async fn run(
    config: Config,
    listener: TcpListener,
    kube_config: kube::Config,
    shutdown: impl Future<Output = ()>,
) -> anyhow::Result<()> {
    let config = Arc::new(config);
    let rules = Arc::new(
        Rules::load(config.rules_path.as_deref())
            .context("loading the routing rules (ORCHESTRATOR_RULES)")?,
    );
    // The API server's address goes on every log line of the watch and the
    // Lease (the client's own errors, e.g. a refused connection, omit it).
    // At error level so that every filter that shows their warnings keeps it.
    let api_url = kube_config.cluster_url.to_string();
    let api_server = tracing::error_span!("kube", api_server = %api_url);
    let client =
        kube::Client::try_from(kube_config).context("Failed to initialize Kubernetes client")?;
    let metrics = Metrics::new();
    let health = Arc::new(Health::default());
    let ns = config.namespace.clone();

    let settings = KubeSettings {
        namespace: ns.clone(),
        qps: config.kube_api_qps,
        burst: config.kube_api_burst,
    };
    let (kube_client, kube_metrics) = (client.clone(), metrics.clone());
    let kube = Supervisor::start(move |_| KubeActor::new(kube_client, &settings, kube_metrics));

    let (reader, writer) = reflector::store::<Job>();
    let (sched_kube, sched_cfg, sched_metrics, sched_jobs) = (
        kube.clone(),
        config.clone(),
        metrics.clone(),
        reader.clone(),
    );
    let scheduler = Supervisor::start(move |_| {
        Scheduler::new(sched_kube, sched_cfg, sched_jobs, sched_metrics)
    });

    let dedup = DedupCache::new(Duration::from_secs(config.dedup_cache_ttl_seconds));
    let limits = Arc::new(RateLimits::new(
        config.rate_limit_per_repo_per_minute,
        config.rate_limit_per_sender_per_minute,
    ));
    let source = |kind: TaskSource, name: &'static str| {
        let (dedup, limits, sched, m) = (
            dedup.clone(),
            limits.clone(),
            scheduler.clone(),
            metrics.clone(),
        );
        SourceHandle {
            addr: Supervisor::start(move |_| SourceActor::new(kind, dedup, limits, sched, m)),
            permits: Arc::new(Semaphore::new(MAILBOX)),
            name,
        }
    };
    let github = source(TaskSource::Github, "github");
    let grafana = source(TaskSource::Grafana, "grafana");
    let pm_agent = source(TaskSource::PmAgent, "pm-agent");
    let cli = source(TaskSource::Cli, "cli");
    if config.api_tokens.is_empty() {
        tracing::warn!("API_TOKENS is not set: the task and operator APIs answer 401 to everyone");
    }

    let jobs_api: Api<Job> = Api::namespaced(client.clone(), &ns);
    let watch = actix_rt::spawn(
        crate::watcher::run(
            jobs_api,
            writer,
            scheduler.clone(),
            health.synced.clone(),
            metrics.clone(),
        )
        .instrument(api_server.clone()),
    );
    let lease_api: Api<Lease> = Api::namespaced(client.clone(), &ns);
    let lease_settings = LeaseSettings::from_env(LEASE_DURATION);
    let lease_task = actix_rt::spawn(
        lease::run(lease_api.clone(), lease_settings.clone(), scheduler.clone())
            .instrument(api_server.clone()),
    );

    let state = web::Data::new(AppState {
        config: config.clone(),
        rules,
        trust: TrustConfig::from_config(&config),
        github,
        grafana,
        pm_agent,
        cli,
        health: health.clone(),
        metrics: metrics.clone(),
        events: Arc::new(EventLog::new(EVENT_LOG_CAPACITY)),
        jobs: reader,
        kube: kube.clone(),
    });
    let addr = listener.local_addr().ok();
    let server = HttpServer::new(move || {
        App::new()
            .wrap(TracingLogger::<RootSpan>::new())
            .app_data(state.clone())
            .configure(http::routes)
    })
    .workers(config.server_workers)
    .disable_signals()
    // A client that hangs up ends its streaming answer (log follow).
    .h1_allow_half_closed(false)
    .shutdown_timeout(config.shutdown_timeout_seconds)
    .listen(listener)
    .context("starting the HTTP server")?
    .run();
    let handle = server.handle();
    tracing::info!(address = addr.map(tracing::field::display), namespace = %ns, api_server = %api_url, max_concurrent_jobs = config.max_concurrent_jobs, "orchestrator serving");
    let server_task = actix_rt::spawn(server);

    tokio::pin!(shutdown);
    let outcome = tokio::select! {
        _ = &mut shutdown => Ok(()),
        r = watch => Err(anyhow::anyhow!("the Job watch stopped ({r:?}); exiting instead of running half-alive")),
        r = server_task => match r {
            Ok(Ok(())) => Err(anyhow::anyhow!("the HTTP server stopped unexpectedly")),
            Ok(Err(e)) => Err(anyhow::Error::new(e).context("the HTTP server failed")),
            Err(e) => Err(anyhow::anyhow!("the HTTP server task died: {e}")),
        },
    };
    // Graceful part: refuse readiness, finish in-flight requests, release
    // the Lease so another replica admits at once.
    health.draining.store(true, Ordering::SeqCst);
    let grace = Duration::from_secs(config.shutdown_timeout_seconds.max(1));
    let drain = Duration::from_secs(config.shutdown_drain_seconds).min(grace / 2);
    if outcome.is_ok() && !drain.is_zero() {
        tracing::info!(
            seconds = drain.as_secs(),
            "shutting down: /ready is 503, still serving while endpoints update"
        );
        tokio::time::sleep(drain).await;
    }
    let grace = grace.saturating_sub(drain);
    tracing::info!("shutting down: draining in-flight requests");
    let drained = tokio::time::timeout(grace, handle.stop(true)).await;
    if drained.is_err() {
        tracing::warn!("in-flight requests did not finish within SHUTDOWN_TIMEOUT_SECONDS");
    }
    lease_task.abort();
    let _ = tokio::time::timeout(
        Duration::from_secs(2),
        lease::release(&lease_api, &lease_settings),
    )
    .await;
    tracing::info!("stopped");
    outcome
}
