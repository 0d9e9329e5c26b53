//! Start-up and shutdown of the service: wires the actors, the Job watch,
//! the scheduler Lease and the HTTP server, then waits for a shutdown signal
//! or for a critical task to die (the Job watch, the HTTP server, the Lease
//! loop, or an actor that could not be restarted — see [`crate::actors`]
//! for the failure domains): then `/ready` turns 503 and `run` returns an
//! error, so the process exits non-zero and Kubernetes restarts it.
//!
//! `run` takes its edges as arguments (listener, cluster config, shutdown
//! future) so tests bind port 0 and point it at the embedded simulator.

use std::future::Future;
use std::net::TcpListener;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use actix_service::{IntoServiceFactory, ServiceFactoryExt as _};
use actix_web::{web, App};
use anyhow::Context as _;
use tracing::Instrument;
use tracing_actix_web::TracingLogger;

use crate::actors::{Mailbox, Runtime};
use crate::cluster::kube_actor::{self, KubeActor, KubeGate};
use crate::cluster::lease::{self, Elector, Leader};
use crate::cluster::store::JobStore;
use crate::config::Config;
use crate::events::EventLog;
use crate::http::{self, AppState, Health, RootSpan};
use crate::metrics::Metrics;
use crate::rules::Rules;
use crate::scheduler::{self, Leadership, Scheduler};
use crate::sources::actor::SourceActor;
use crate::sources::github::TrustConfig;
use crate::sources::intake::{DedupCache, RateLimits};
use crate::task::TaskSource;

/// Events kept for `GET /api/v1/events`.
const EVENT_LOG_CAPACITY: usize = 1000;

/// How long before the end of a graceful stop's grace the requests still
/// in flight answer (at most a quarter of the grace).
const ANSWER_MARGIN: Duration = Duration::from_secs(1);

/// Longest a graceful shutdown spends releasing the scheduler Lease.
const RELEASE_BUDGET: Duration = Duration::from_secs(2);

/// A client connection: pipelining bounded, parser errors answered in JSON.
type Connection = http::parser_errors::JsonErrors<http::pipeline::Paced<actix_rt::net::TcpStream>>;

/// The running service's actors and shared state, for in-process tests
/// (fault injection, metrics) — [`run_with`] hands them out once started.
#[derive(Clone)]
pub struct Handles {
    pub github: Mailbox<SourceActor>,
    pub grafana: Mailbox<SourceActor>,
    pub pm_agent: Mailbox<SourceActor>,
    pub cli: Mailbox<SourceActor>,
    pub scheduler: Mailbox<Scheduler>,
    pub kube: Mailbox<KubeActor>,
    pub leader: Leader,
    pub metrics: Arc<Metrics>,
    /// What unauthenticated request bodies hold now.
    pub bodies: Arc<http::body::BodyBudget>,
}

/// The reporters the configuration asks for (GitHub with a credential,
/// callbacks with `CALLBACK_SECRET`), and the GitHub client.
fn reporting(
    config: &Config,
    jobs: &crate::cluster::jobs::Jobs,
    leader: &Leader,
    metrics: &Arc<Metrics>,
) -> anyhow::Result<(crate::report::Reporting, Option<crate::github::Github>)> {
    let api = &config.github_api;
    let client = crate::github::Github::new(api, metrics.reports().clone())
        .map_err(anyhow::Error::msg)
        .context("setting up the GitHub client")?;
    let github = client.clone().map(|client| {
        tracing::info!(api = %api.api_url, app = client.is_app(), "reporting to GitHub");
        crate::report::github::GithubReporter::new(
            client,
            jobs.clone(),
            leader.clone(),
            metrics.reports().clone(),
            api.public_url.clone(),
            api.give_up,
        )
    });
    if github.is_none() {
        tracing::info!(
            "no GITHUB_TOKEN or GitHub App configured: tasks from GitHub are not reported back"
        );
    }
    let callbacks = crate::report::callback::CallbackReporter::new(
        &config.callbacks,
        jobs.clone(),
        leader.clone(),
        metrics.reports().clone(),
        config.github_api.give_up,
    );
    Ok((crate::report::Reporting::new(github, callbacks), client))
}

/// The recovery of missed deliveries, when the GitHub client is an App and
/// `DELIVERY_RECOVERY_INTERVAL_SECONDS` is not 0.
fn delivery_recovery(
    config: &Config,
    github: Option<crate::github::Github>,
    parts: (
        &crate::cluster::jobs::Jobs,
        &DedupCache,
        &crate::cluster::dedup::DedupRecord,
        &Leader,
    ),
    events: &Arc<EventLog>,
    metrics: &Arc<Metrics>,
) -> Option<(crate::report::recovery::Recovery, Duration)> {
    let recovery = &config.github_api.recovery;
    let github = github?;
    if !github.is_app() {
        tracing::info!(
            "GITHUB_TOKEN: missed GitHub deliveries are not recovered (that needs a GitHub App)"
        );
        return None;
    }
    let Some(interval) = recovery.interval else {
        tracing::info!(
            "DELIVERY_RECOVERY_INTERVAL_SECONDS=0: missed GitHub deliveries are not recovered"
        );
        return None;
    };
    let (jobs, dedup, record, leader) = (
        parts.0.clone(),
        parts.1.clone(),
        parts.2.clone(),
        parts.3.clone(),
    );
    let store = jobs.store().clone();
    let ready: crate::report::recovery::Ready = Arc::new(move || store.is_ready());
    let processed: crate::report::recovery::Processed = Arc::new(move |guid: &str| {
        crate::sources::intake::delivery_processed(guid, &jobs, &dedup, &record)
    });
    tracing::info!(
        interval_seconds = interval.as_secs(),
        window_seconds = recovery.window.as_secs(),
        max_per_cycle = recovery.max_per_cycle,
        "recovering missed GitHub deliveries"
    );
    Some((
        crate::report::recovery::Recovery::new(
            github,
            leader,
            events.clone(),
            metrics.reports().clone(),
            recovery.clone(),
            (processed, ready),
        ),
        interval,
    ))
}

/// Runs the service until `shutdown` resolves (graceful stop, `Ok`) or a
/// critical part fails (`Err`, the process should exit non-zero). Must run
/// inside an actix `System`.
pub async fn run(
    config: Config,
    listener: TcpListener,
    kube_config: kube::Config,
    shutdown: impl Future<Output = ()>,
) -> anyhow::Result<()> {
    run_with(config, listener, kube_config, shutdown, |_| {}).await
}

/// [`run`], handing the actors to `started` once they run.
pub async fn run_with(
    config: Config,
    listener: TcpListener,
    kube_config: kube::Config,
    shutdown: impl Future<Output = ()>,
    started: impl FnOnce(Handles),
) -> anyhow::Result<()> {
    let config = Arc::new(config);
    let rules = Arc::new(
        Rules::load(config.rules_path.as_deref())
            .context("loading the routing rules (ORCHESTRATOR_RULES)")?,
    );
    crate::scheduler::kueue::check_rules(&config, &rules)?;
    // The API server's address goes on every log line of the watch and the
    // Lease (the client's own errors, e.g. a refused connection, omit it).
    // At error level so that every filter that shows their warnings keeps it.
    let api_url = kube_config.cluster_url.to_string();
    let preflight_target = crate::cluster::preflight::Target {
        server: api_url.trim_end_matches('/').to_string(),
        namespace: config.namespace.clone(),
        tenants: crate::cluster::preflight::Tenant::of_rules(&rules, &config.namespace),
    };
    let api_server = tracing::error_span!("kube", api_server = %api_url);
    let watch_config = kube_config.clone();
    let metrics = Metrics::new();
    let runtime = Runtime::new(metrics.clone());
    let health = Arc::new(Health::default());
    let ns = config.namespace.clone();
    // The Job watch covers the service's namespace and every tenant
    // namespace a rule names (one watch each; src/cluster/metered.rs).
    let tenants = rules.tenant_namespaces(&ns);
    let watched: Vec<String> = std::iter::once(ns.clone())
        .chain(tenants.iter().cloned())
        .collect();
    if !tenants.is_empty() {
        tracing::info!(namespaces = ?watched, "running Jobs in tenant namespaces named by the rules");
    }

    // One gate (rate bound, timeouts, retries, metrics) for every call.
    let gate = KubeGate::from_config(
        kube_config,
        config.kube_api_qps,
        config.kube_api_burst,
        metrics.clone(),
    )
    .context("Failed to initialize Kubernetes client")?;
    let kube = runtime.start(
        "kube",
        kube_actor::MAILBOX,
        KubeActor::new(gate.clone(), &ns).with_kueue(config.scheduler.kueue.clone().map(Arc::new)),
    );
    let leader = Leader::new(lease::identity_from_env());

    let reader = JobStore::new();
    // One event budget per replica for the audit trail (Events on Jobs).
    let audit = crate::cluster::audit::Audit::new(kube.clone(), reader.clone(), metrics.clone());
    let jobs = crate::cluster::jobs::Jobs::new(reader.clone(), kube.clone(), audit.clone());
    let (reporting, github_client) = reporting(&config, &jobs, &leader, &metrics)?;
    let scheduler = runtime.start(
        "scheduler",
        scheduler::MAILBOX,
        Scheduler::new(
            kube.clone(),
            config.clone(),
            reader.clone(),
            leader.clone(),
            metrics.clone(),
            audit.clone(),
        ),
    );

    let persister =
        crate::scheduler::Persister::new(kube.clone(), config.clone(), audit, reader.clone())
            .with_waits(reader.waits().clone());
    let dedup = DedupCache::new(Duration::from_secs(config.dedup_cache_ttl_seconds));
    let limits = Arc::new(
        RateLimits::new(
            config.rate_limit_per_repo_per_minute,
            config.rate_limit_per_sender_per_minute,
        )
        .with_rule_limit(config.grafana.rate_limit_per_rule_per_minute),
    );
    // The dedup record (accepted keys within DEDUP_RETENTION_SECONDS, in
    // ConfigMap shards), read and written by a supervised task below.
    let record = crate::cluster::dedup::DedupRecord::new(Duration::from_secs(
        config.dedup_retention_seconds,
    ));
    let source = |kind: TaskSource, name: &'static str| {
        let actor = SourceActor::new(
            kind,
            dedup.clone(),
            record.clone(),
            limits.clone(),
            persister.clone(),
            reader.clone(),
        );
        runtime.start(name, config.source_mailbox_capacity, actor)
    };
    let github = source(TaskSource::Github, "github");
    let grafana = source(TaskSource::Grafana, "grafana");
    let pm_agent = source(TaskSource::PmAgent, "pm-agent");
    let cli = source(TaskSource::Cli, "cli");
    if config.api_tokens.is_empty() {
        tracing::warn!("API_TOKENS is not set: the task and operator APIs answer 401 to everyone");
    }

    // The watch's own client: its lists and watches wait for the same gate.
    // Decoded slim: the watch reads a small projection of each Job.
    let first_events = crate::cluster::metered::job_events(
        &gate,
        watch_config.clone(),
        &watched,
        health.watch.clone(),
    )
    .context("Failed to initialize Kubernetes client")?;
    // The long-lived tasks run under the runtime's supervision: restarted
    // with backoff when they end or panic, fatal when they keep failing.
    let _watch = {
        let mut first = Some(first_events);
        let watch_health = health.watch.clone();
        let reporting = reporting.clone();
        let (store, scheduler, runtime_, synced, metrics, gate, watched, span) = (
            reader.clone(),
            scheduler.clone(),
            runtime.clone(),
            health.synced.clone(),
            metrics.clone(),
            gate.clone(),
            watched.clone(),
            api_server.clone(),
        );
        runtime.supervise("job_watch", move || {
            // A restart watches anew (and relists).
            let events = first.take().map(Ok).unwrap_or_else(|| {
                crate::cluster::metered::job_events(
                    &gate,
                    watch_config.clone(),
                    &watched,
                    watch_health.clone(),
                )
            });
            let run = events.map(|events| {
                crate::watcher::run(
                    events,
                    crate::watcher::WatchParts {
                        store: store.clone(),
                        scheduler: scheduler.clone(),
                        runtime: runtime_.clone(),
                        synced: synced.clone(),
                        metrics: metrics.clone(),
                        gate: gate.clone(),
                        health: watch_health.clone(),
                        reporting: reporting.clone(),
                        namespaces: watched.clone(),
                    },
                )
            });
            async move {
                match run {
                    Ok(run) => run.await,
                    Err(e) => tracing::error!(error = %e, "could not start the Job watch"),
                }
            }
            .instrument(span.clone())
        })
    };
    let lease_task = {
        let (gate, ns, leader_config, leader, metrics, nudge, span) = (
            gate.clone(),
            ns.clone(),
            config.leader.clone(),
            leader.clone(),
            metrics.clone(),
            scheduler.clone(),
            api_server.clone(),
        );
        runtime.supervise("lease", move || {
            let nudge = nudge.clone();
            Elector::new(
                gate.clone(),
                &ns,
                leader_config.clone(),
                leader.clone(),
                metrics.clone(),
            )
            .run(move |leading| {
                // The scheduler also reads leadership at every admission;
                // this only makes it act at once (a full mailbox loses
                // nothing).
                let _ = nudge.tell(Leadership(leading));
            })
            .instrument(span.clone())
        })
    };
    let _dedup_record = {
        let (gate, ns, record, leader, metrics, store, span) = (
            gate.clone(),
            ns.clone(),
            record.clone(),
            leader.clone(),
            metrics.clone(),
            reader.clone(),
            api_server.clone(),
        );
        runtime.supervise("dedup_record", move || {
            crate::cluster::dedup::Recorder::new(
                &gate,
                &ns,
                record.clone(),
                leader.clone(),
                metrics.clone(),
            )
            .with_store(store.clone())
            .run()
            .instrument(span.clone())
        })
    };
    let bodies = http::body::BodyBudget::new();
    started(Handles {
        github: github.clone(),
        grafana: grafana.clone(),
        pm_agent: pm_agent.clone(),
        cli: cli.clone(),
        scheduler: scheduler.clone(),
        kube: kube.clone(),
        leader: leader.clone(),
        metrics: metrics.clone(),
        bodies: bodies.clone(),
    });

    let _report_sweep = {
        let (reporting, store, leader) = (reporting.clone(), reader.clone(), leader.clone());
        runtime.supervise("report_sweep", move || {
            reporting
                .clone()
                .sweep_forever(store.clone(), leader.clone())
        })
    };

    let events = Arc::new(EventLog::new(EVENT_LOG_CAPACITY));
    let recovery_task = delivery_recovery(
        &config,
        github_client,
        (&jobs, &dedup, &record, &leader),
        &events,
        &metrics,
    )
    .map(|(recovery, interval)| {
        runtime.supervise("delivery_recovery", move || {
            recovery.clone().run_forever(interval)
        })
    });

    let preflight = {
        let (kube, period, latest) = (
            kube.clone(),
            config.preflight_interval,
            health.preflight.clone(),
        );
        runtime.supervise("preflight", move || {
            crate::cluster::preflight::runner::run(
                kube.clone(),
                preflight_target.clone(),
                period,
                latest.clone(),
            )
        })
    };

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
        events,
        jobs,
        reporting: reporting.clone(),
        leader: leader.clone(),
        bodies,
        token_limits: http::auth::TokenLimits::new(config.api_rate_limit_per_token_per_minute),
        recent: Default::default(),
        dedup: dedup.clone(),
        record: record.clone(),
        dashboard: http::dashboard::Dashboard::new(&config),
    });
    let addr = listener.local_addr().ok();
    // Built from actix-server and actix-http (what `HttpServer` does inside)
    // so each connection's socket can be wrapped: the errors actix's HTTP/1
    // parser answers itself get JSON bodies (`http::parser_errors`).
    let stopping = Arc::new(tokio::sync::Notify::new());
    let on_stop = stopping.clone();
    let local = addr.unwrap_or_else(|| std::net::SocketAddr::from(([127, 0, 0, 1], 0)));
    let server = actix_server::Server::build()
        .workers(config.server_workers)
        .max_concurrent_connections(config.server_max_connections)
        .disable_signals()
        .shutdown_timeout(config.shutdown_timeout_seconds)
        .listen("orchestrator-http", listener, move || {
            let state = state.clone();
            let app = move || {
                App::new()
                    // Pipelining gauge, request id, request metrics.
                    .wrap(http::request_metrics::Front::new(
                        state.metrics.service().clone(),
                    ))
                    .wrap(TracingLogger::<RootSpan>::new())
                    .app_data(state.clone())
                    .configure(http::routes)
            };
            let stop = on_stop.clone();
            let service = actix_http::HttpService::build()
                // Idle keep-alive connections close when the server stops.
                .graceful_shutdown_signal(move || {
                    let stop = stop.clone();
                    async move { stop.notified().await }
                })
                .keep_alive(actix_http::KeepAlive::Timeout(Duration::from_secs(5)))
                .client_request_timeout(Duration::from_secs(5))
                .client_disconnect_timeout(Duration::from_secs(1))
                // A client that hangs up ends its streaming answer (log follow).
                .h1_allow_half_closed(false)
                // Each connection's pipelining gauge, for the `Front` middleware.
                .on_connect_ext(|io: &Connection, ext: &mut actix_http::Extensions| {
                    ext.insert(io.get_ref().gauge());
                })
                .local_addr(local)
                .finish(actix_service::map_config(
                    app()
                        .into_factory()
                        .map_err(|e: actix_web::Error| e.error_response()),
                    |_| actix_web::dev::AppConfig::default(),
                ));
            actix_service::fn_service(|io: actix_rt::net::TcpStream| async move {
                let peer = io.peer_addr().ok();
                let _ = io.set_nodelay(true);
                Ok::<_, actix_http::error::DispatchError>((
                    http::parser_errors::JsonErrors::new(http::pipeline::Paced::new(io)),
                    actix_http::Protocol::Http1,
                    peer,
                ))
            })
            .and_then(service)
        })
        .context("starting the HTTP server")?
        .run();
    let handle = server.handle();
    tracing::info!(address = addr.map(tracing::field::display), namespace = %ns, api_server = %api_url, max_concurrent_jobs = config.max_concurrent_jobs, "orchestrator serving");
    let server_task = actix_rt::spawn(server);

    tokio::pin!(shutdown);
    let outcome = tokio::select! {
        _ = &mut shutdown => Ok(()),
        r = server_task => match r {
            Ok(Ok(())) => Err(anyhow::anyhow!("the HTTP server stopped unexpectedly")),
            Ok(Err(e)) => Err(anyhow::Error::new(e).context("the HTTP server failed")),
            Err(e) => Err(anyhow::anyhow!("the HTTP server task died: {e}")),
        },
        name = runtime.dead() => Err(anyhow::anyhow!("{name} failed for good (an actor that could not be restarted, or a task that kept failing); exiting instead of running half-alive")),
    };
    // Graceful part: refuse readiness; stop admitting and release the Lease
    // (so another replica admits at once) while in-flight requests finish.
    health.draining.store(true, Ordering::SeqCst);
    // Requests still in flight answer (503 if they must) a moment before
    // the grace ends and the server closes their connections.
    {
        let grace = Duration::from_secs(config.shutdown_timeout_seconds.max(1));
        let margin = (grace / 4).min(ANSWER_MARGIN);
        health.stop_answering_by(tokio::time::Instant::now() + grace - margin);
    }
    lease_task.abort();
    preflight.abort();
    if let Some(t) = &recovery_task {
        t.abort();
    }
    let release = Elector::release(&gate, &ns, &leader, &metrics, RELEASE_BUDGET);
    let drain_http = async {
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
        stopping.notify_waiters();
        let drained = tokio::time::timeout(grace, handle.stop(true)).await;
        if drained.is_err() {
            tracing::warn!("in-flight requests did not finish within SHUTDOWN_TIMEOUT_SECONDS");
        }
    };
    tokio::join!(release, drain_http);
    tracing::info!("stopped");
    outcome
}
