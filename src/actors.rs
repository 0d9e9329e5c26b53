//! The actor runtime: supervision that survives panics, bounded mailboxes
//! and per-actor metrics, shared by every actor of the service.
//!
//! # Failure domains
//!
//! Every actor runs under [`start`]: a handler that panics (or an actor that
//! stops) is restarted in place by its supervisor, which calls
//! [`actix::Supervised::restarting`] to rebuild derived state and counts
//! `orchestrator_actor_restarts_total{actor}`. The message being handled is
//! lost: a request gets [`Refused::Failed`], which the HTTP edge answers 503
//! (the sender retries). The mailbox survives, so queued messages and every
//! address stay valid.
//!
//! | actor | owns | lost when it dies | rebuilt from |
//! |---|---|---|---|
//! | source (`github`, `grafana`, `pm-agent`, `cli`) | nothing of its own: the dedup cache and rate limits live outside it | the one Task being handled | — |
//! | `scheduler` | the admission queue and the admissions in flight | its queue and in-flight bookkeeping | the watch's Job store (the API server is the queue) |
//! | `kube` | the client, its rate limiter | the call being started | nothing to rebuild |
//! | `job_watcher` (one per live Job, [`Runtime::start_transient`]) | the Job's last reported state | the change being handled | the Job's record in the watch store, re-read and reported again; after repeated panics the Job is marked dirty for the scheduler's resync and the watcher ends (the next event starts a new one) |
//!
//! Long-running tasks (the Job watch, the Lease loop, the preflight runner)
//! run under [`Runtime::supervise`]: one that ends or panics is started
//! again after a backoff and counted as a restart of its own label
//! (`job_watch`, `lease`, `preflight`); one that fails
//! [`TASK_MAX_FAILURES`] times within [`TASK_FAILURE_WINDOW`] stops the
//! process with an error (exit code 1) after it marked itself not ready, and
//! Kubernetes restarts it. The HTTP server is watched by `app::run` the
//! same way (its end is fatal at once).
//!
//! # Bounded mailboxes
//!
//! [`Mailbox`] is the only way messages reach an actor: it holds a fixed
//! number of slots (the capacity) and refuses beyond it
//! ([`Refused::Full`], counted in
//! `orchestrator_actor_mailbox_overflow_total{actor}`). A slot is taken when
//! a message is sent and given back when the handler takes the message up
//! ([`Mailbox::tell`]) or when the answer arrives ([`Mailbox::ask`]), so
//! `orchestrator_actor_mailbox_depth{actor}` shows the messages waiting.

use std::future::Future;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::pin::Pin;
use std::sync::Arc;
use std::task::Poll;
use std::time::Instant;

use actix::dev::{ContextFut, ToEnvelope};
use actix::prelude::*;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::metrics::{ActorMetrics, Metrics};

/// Why a message was not delivered or not answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    /// The mailbox is at capacity (counted as an overflow).
    #[error("the {0} actor is at capacity")]
    Full(&'static str),
    /// The handler failed (panicked) before answering; the actor restarts.
    #[error("the {0} actor failed handling the message")]
    Failed(&'static str),
}

/// A message on its way through a [`Mailbox`]: carries the slot it holds
/// and the actor's metrics, so the handler is counted and timed. Handlers
/// for it come from [`tracked_handlers!`](crate::tracked_handlers).
pub struct Tracked<M> {
    msg: M,
    slot: Option<Slot>,
    metrics: Arc<ActorMetrics>,
}

impl<M: Message> Message for Tracked<M> {
    type Result = M::Result;
}

impl<M> Tracked<M> {
    /// Takes the message up: gives its slot back and starts the handling
    /// timer (which records when dropped).
    pub fn begin(self) -> (M, HandlingTimer) {
        drop(self.slot);
        (
            self.msg,
            HandlingTimer {
                metrics: self.metrics,
                started: Instant::now(),
            },
        )
    }
}

/// Counts a handled message and records its handling time when dropped.
pub struct HandlingTimer {
    metrics: Arc<ActorMetrics>,
    started: Instant,
}

impl Drop for HandlingTimer {
    fn drop(&mut self) {
        self.metrics.messages.inc();
        self.metrics
            .handling
            .observe(self.started.elapsed().as_secs_f64());
    }
}

/// Implements `Handler<Tracked<M>>` for an actor and each listed message
/// type by forwarding to its `Handler<M>`.
#[macro_export]
macro_rules! tracked_handlers {
    ($actor:ty => $($msg:ty),+ $(,)?) => {$(
        impl ::actix::Handler<$crate::actors::Tracked<$msg>> for $actor {
            type Result = <$actor as ::actix::Handler<$msg>>::Result;
            fn handle(
                &mut self,
                msg: $crate::actors::Tracked<$msg>,
                ctx: &mut <$actor as ::actix::Actor>::Context,
            ) -> Self::Result {
                let (msg, _timer) = msg.begin();
                <$actor as ::actix::Handler<$msg>>::handle(self, msg, ctx)
            }
        }
    )+};
}

/// One message slot; gives itself back (and lowers the depth) when dropped.
struct Slot {
    _permit: OwnedSemaphorePermit,
    metrics: Arc<ActorMetrics>,
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.metrics.mailbox_depth.dec();
    }
}

/// A bounded, metered address of a supervised actor.
pub struct Mailbox<A: Actor> {
    addr: Addr<A>,
    name: &'static str,
    slots: Arc<Semaphore>,
    metrics: Arc<ActorMetrics>,
}

impl<A: Actor> Clone for Mailbox<A> {
    fn clone(&self) -> Self {
        Mailbox {
            addr: self.addr.clone(),
            name: self.name,
            slots: self.slots.clone(),
            metrics: self.metrics.clone(),
        }
    }
}

impl<A: Actor> std::fmt::Debug for Mailbox<A> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mailbox")
            .field("actor", &self.name)
            .finish()
    }
}

/// First wait before a supervised task is started again.
pub const TASK_BACKOFF: std::time::Duration = std::time::Duration::from_millis(500);
/// Longest wait between restarts of a supervised task.
pub const TASK_BACKOFF_MAX: std::time::Duration = std::time::Duration::from_secs(30);
/// A task that ran this long before failing restarts after the first wait again.
pub const TASK_HEALTHY: std::time::Duration = std::time::Duration::from_secs(60);
/// Failures of one supervised task within [`TASK_FAILURE_WINDOW`] after
/// which the process stops (Kubernetes restarts it).
pub const TASK_MAX_FAILURES: usize = 5;
/// See [`TASK_MAX_FAILURES`].
pub const TASK_FAILURE_WINDOW: std::time::Duration = std::time::Duration::from_secs(600);

/// The message of a panic payload (empty when it is neither text nor a string).
pub fn panic_text(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_default()
}

/// Starts supervised actors and reports one that could not be restarted.
#[derive(Clone)]
pub struct Runtime {
    metrics: Arc<Metrics>,
    dead: Arc<tokio::sync::watch::Sender<Option<&'static str>>>,
}

impl std::fmt::Debug for Runtime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Runtime")
    }
}

impl Runtime {
    /// A runtime recording actor metrics in `metrics`.
    pub fn new(metrics: Arc<Metrics>) -> Self {
        Runtime {
            metrics,
            dead: Arc::new(tokio::sync::watch::Sender::new(None)),
        }
    }

    /// Starts `actor` under a panic-catching supervisor with a mailbox of
    /// `capacity` slots; its metrics are labelled `name`. Must run inside an
    /// actix `System`.
    pub fn start<A>(&self, name: &'static str, capacity: usize, actor: A) -> Mailbox<A>
    where
        A: Supervised + Actor<Context = Context<A>>,
    {
        let metrics = self.actor_metrics(name);
        self.spawn(name, metrics, capacity, actor, false)
    }

    /// The metrics of the actors labelled `name` (one set shared by all of
    /// them), for [`Runtime::start_transient`].
    pub fn actor_metrics(&self, name: &'static str) -> Arc<ActorMetrics> {
        Arc::new(self.metrics.actor(name))
    }

    /// Starts an actor that ends with its work (a per-Job watcher): like
    /// [`Runtime::start`], a panicking handler is restarted in place
    /// (`Supervised::restarting`) and counted, but an actor that stops is
    /// done, not restarted. The supervisor keeps one address of its own, so
    /// a panic can always be restarted, even after every sender let go;
    /// such an actor must therefore stop itself. Many actors may share one
    /// `metrics` (from [`Runtime::actor_metrics`]).
    pub fn start_transient<A>(
        &self,
        name: &'static str,
        metrics: &Arc<ActorMetrics>,
        capacity: usize,
        actor: A,
    ) -> Mailbox<A>
    where
        A: Supervised + Actor<Context = Context<A>>,
    {
        self.spawn(name, metrics.clone(), capacity, actor, true)
    }

    fn spawn<A>(
        &self,
        name: &'static str,
        metrics: Arc<ActorMetrics>,
        capacity: usize,
        actor: A,
        transient: bool,
    ) -> Mailbox<A>
    where
        A: Supervised + Actor<Context = Context<A>>,
    {
        let ctx = Context::new();
        let addr = ctx.address();
        let fut = ctx.into_future(actor);
        actix_rt::spawn(Supervisor {
            fut: Box::pin(fut),
            name,
            metrics: metrics.clone(),
            dead: self.dead.clone(),
            keep: transient.then(|| addr.clone()),
        });
        Mailbox {
            addr,
            name,
            slots: Arc::new(Semaphore::new(capacity.max(1))),
            metrics,
        }
    }

    /// Runs a long-lived task (the Job watch, the Lease loop, the preflight
    /// runner) under supervision, like an actor: when the future `make`
    /// returns ends or panics, it is counted in
    /// `orchestrator_actor_restarts_total{actor=name}` and started again
    /// after a backoff ([`TASK_BACKOFF`], doubling to [`TASK_BACKOFF_MAX`],
    /// back to the start after it ran [`TASK_HEALTHY`]). After
    /// [`TASK_MAX_FAILURES`] failures within [`TASK_FAILURE_WINDOW`] it is
    /// reported dead ([`Runtime::dead`]) and the process stops. Aborting the
    /// returned handle stops the task (shutdown). Must run inside an actix
    /// `System`.
    pub fn supervise<F, Fut>(
        &self,
        name: &'static str,
        mut make: F,
    ) -> actix_rt::task::JoinHandle<()>
    where
        F: FnMut() -> Fut + 'static,
        Fut: Future<Output = ()> + 'static,
    {
        use futures::FutureExt as _;
        let metrics = self.actor_metrics(name);
        let dead = self.dead.clone();
        actix_rt::spawn(async move {
            let mut failures: std::collections::VecDeque<tokio::time::Instant> =
                std::collections::VecDeque::new();
            let mut backoff = TASK_BACKOFF;
            loop {
                let started = tokio::time::Instant::now();
                let ended = AssertUnwindSafe(make()).catch_unwind().await;
                let now = tokio::time::Instant::now();
                match ended {
                    Ok(()) => tracing::error!(task = name, "task ended; restarting it"),
                    Err(panic) => {
                        tracing::error!(task = name, panic = %panic_text(&*panic), "task panicked; restarting it");
                    }
                }
                metrics.restarts.inc();
                if now.duration_since(started) >= TASK_HEALTHY {
                    backoff = TASK_BACKOFF;
                }
                failures.push_back(now);
                while failures
                    .front()
                    .is_some_and(|t| now.duration_since(*t) > TASK_FAILURE_WINDOW)
                {
                    failures.pop_front();
                }
                if failures.len() >= TASK_MAX_FAILURES {
                    tracing::error!(
                        task = name,
                        failures = failures.len(),
                        "task keeps failing; giving up"
                    );
                    dead.send_replace(Some(name));
                    return;
                }
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(TASK_BACKOFF_MAX);
            }
        })
    }

    /// Resolves with the name of the first actor that died for good (its
    /// restart itself failed); the process must then stop.
    pub async fn dead(&self) -> &'static str {
        let mut rx = self.dead.subscribe();
        loop {
            if let Some(name) = *rx.borrow_and_update() {
                return name;
            }
            if rx.changed().await.is_err() {
                std::future::pending::<()>().await;
            }
        }
    }
}

impl<A: Actor<Context = Context<A>>> Mailbox<A> {
    /// The actor's label in metrics.
    pub fn name(&self) -> &'static str {
        self.name
    }

    fn slot(&self) -> Result<Slot, Refused> {
        match self.slots.clone().try_acquire_owned() {
            Ok(permit) => {
                self.metrics.mailbox_depth.inc();
                Ok(Slot {
                    _permit: permit,
                    metrics: self.metrics.clone(),
                })
            }
            Err(_) => {
                self.metrics.overflow.inc();
                Err(Refused::Full(self.name))
            }
        }
    }

    /// Sends `msg` without waiting for an answer; refused when full.
    pub fn tell<M>(&self, msg: M) -> Result<(), Refused>
    where
        M: Message + Send + 'static,
        M::Result: Send,
        A: Handler<Tracked<M>>,
        A::Context: ToEnvelope<A, Tracked<M>>,
    {
        let slot = self.slot()?;
        self.addr.do_send(Tracked {
            msg,
            slot: Some(slot),
            metrics: self.metrics.clone(),
        });
        Ok(())
    }

    /// Sends a control message past the bound: it takes no slot and is
    /// never refused. Only for the few messages that must arrive whatever
    /// the mailbox holds (telling a watcher to stop).
    pub fn tell_past_bound<M>(&self, msg: M)
    where
        M: Message + Send + 'static,
        M::Result: Send,
        A: Handler<M>,
        A::Context: ToEnvelope<A, M>,
    {
        self.addr.do_send(msg);
    }

    /// Sends `msg` and waits for the answer; refused at once when full. The
    /// slot is held until the answer arrives.
    pub fn ask<M>(&self, msg: M) -> impl Future<Output = Result<M::Result, Refused>> + 'static
    where
        M: Message + Send + 'static,
        M::Result: Send,
        A: Handler<Tracked<M>>,
        A::Context: ToEnvelope<A, Tracked<M>>,
    {
        let name = self.name;
        let sent = self.slot().map(|slot| {
            let req = self.addr.send(Tracked {
                msg,
                slot: None,
                metrics: self.metrics.clone(),
            });
            (slot, req)
        });
        async move {
            let (slot, req) = sent?;
            let answer = req.await.map_err(|_| Refused::Failed(name));
            drop(slot);
            answer
        }
    }

    /// The raw address (for tests and fault injection; feature `test-hooks`).
    #[cfg(feature = "test-hooks")]
    pub fn addr(&self) -> &Addr<A> {
        &self.addr
    }

    /// Whether the actor still runs (a transient actor that stopped, or any
    /// actor after shutdown, takes no more messages: they would be dropped).
    pub fn is_alive(&self) -> bool {
        self.addr.connected()
    }
}

/// Runs an actor's context; when a handler panics or the actor stops, the
/// actor is restarted in place (`Supervised::restarting`) and counted. A
/// transient actor (`keep` set) that stops is done instead.
struct Supervisor<A>
where
    A: Supervised + Actor<Context = Context<A>>,
{
    fut: Pin<Box<ContextFut<A, Context<A>>>>,
    name: &'static str,
    metrics: Arc<ActorMetrics>,
    dead: Arc<tokio::sync::watch::Sender<Option<&'static str>>>,
    /// A transient actor's own address: keeps its mailbox connected so a
    /// panic can be restarted whoever still holds an address.
    keep: Option<Addr<A>>,
}

impl<A> Future for Supervisor<A>
where
    A: Supervised + Actor<Context = Context<A>>,
{
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut std::task::Context<'_>) -> Poll<()> {
        loop {
            let polled = catch_unwind(AssertUnwindSafe(|| self.fut.as_mut().poll(cx)));
            match polled {
                Ok(Poll::Pending) => return Poll::Pending,
                Ok(Poll::Ready(())) if self.keep.is_some() => {
                    // A transient actor finished its work.
                    self.keep = None;
                    return Poll::Ready(());
                }
                Ok(Poll::Ready(())) => {
                    tracing::warn!(actor = self.name, "actor stopped; restarting it");
                }
                Err(panic) => {
                    let what = panic_text(&*panic);
                    tracing::error!(actor = self.name, panic = %what, "actor handler panicked; restarting it");
                }
            }
            // Gone only when every address is dropped (shutdown), or when
            // rebuilding the actor's state panics too.
            match catch_unwind(AssertUnwindSafe(|| self.fut.as_mut().get_mut().restart())) {
                Ok(true) => {
                    self.metrics.restarts.inc();
                }
                Ok(false) => return Poll::Ready(()),
                Err(_) => {
                    tracing::error!(actor = self.name, "actor could not be restarted");
                    self.dead.send_replace(Some(self.name));
                    return Poll::Ready(());
                }
            }
        }
    }
}

/// Makes the receiving actor's handler panic (a Job watcher panics while
/// handling its next change, so that change's message is the one lost;
/// each `Crash` arms one such panic).
/// Fault injection for the supervision tests: no route, input or
/// configuration sends it.
/// Only with the `test-hooks` feature.
#[cfg(feature = "test-hooks")]
#[derive(Message, Debug, Clone, Copy)]
#[rtype(result = "()")]
pub struct Crash;

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::Cell;
    use std::rc::Rc;

    #[actix_rt::test]
    async fn a_supervised_task_that_ends_or_panics_is_restarted_with_backoff_and_counted() {
        tokio::time::pause();
        let metrics = Metrics::new();
        let runtime = Runtime::new(metrics.clone());
        let runs = Rc::new(Cell::new(0u32));
        let counted = runs.clone();
        let started = tokio::time::Instant::now();
        let (done_tx, done_rx) = tokio::sync::oneshot::channel::<tokio::time::Instant>();
        let mut done_tx = Some(done_tx);
        let _task = runtime.supervise("test_task", move || {
            let run = counted.get() + 1;
            counted.set(run);
            let done = if run == 3 { done_tx.take() } else { None };
            async move {
                match run {
                    1 => panic!("first run panics"),
                    2 => {} // the second ends
                    _ => {
                        if let Some(tx) = done {
                            let _ = tx.send(tokio::time::Instant::now());
                        }
                        std::future::pending::<()>().await;
                    }
                }
            }
        });
        let third = done_rx.await.expect("a third run");
        assert_eq!(runs.get(), 3);
        assert_eq!(metrics.restarts("test_task"), 2);
        // Waited 0.5 s, then 1 s.
        assert!(
            third.duration_since(started) >= TASK_BACKOFF * 3,
            "{:?}",
            third.duration_since(started)
        );
    }

    #[actix_rt::test]
    async fn a_task_that_keeps_failing_is_reported_dead() {
        tokio::time::pause();
        let runtime = Runtime::new(Metrics::new());
        let _task = runtime.supervise("always_failing", || async {});
        assert_eq!(runtime.dead().await, "always_failing");
    }
}
