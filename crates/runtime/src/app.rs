//! A service assembled from its router, its readiness check and its
//! background workers (consumers, the outbox relay), served until shutdown.
//!
//! Shutdown (SIGTERM) drains the instance in three steps:
//! 1. `/health/ready` answers 503 "draining" at once, while requests are
//!    still served for the drain window ([`App::draining_for`], none by
//!    default): a balancer that probes readiness stops sending new work
//!    before the door closes.
//! 2. The listener closes (new connections are refused, so callers move to
//!    another replica without anything having been sent); requests in
//!    flight finish, for at most [`IN_FLIGHT_GRACE`].
//! 3. Meanwhile the workers are told to stop: consumers finish the batch in
//!    hand and commit its position, the outbox relay publishes what it
//!    holds; they get [`WORKER_GRACE`].

use std::future::{Future, IntoFuture};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::{DefaultBodyLimit, MatchedPath, Request};
use axum::http::StatusCode;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use kernel::shutdown::{self, Shutdown};
use tokio::net::TcpListener;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tracing::Instrument;

use crate::consumer::{Consumer, UnitOfWork};
use crate::dead_letters::Replayers;
use crate::http::{metrics_router, problem_response, MAX_BODY_BYTES};
use crate::telemetry;

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;
type Worker = Box<dyn FnOnce(Shutdown) -> BoxFuture<anyhow::Result<()>> + Send>;
type Readiness = Arc<dyn Fn() -> BoxFuture<Result<(), String>> + Send + Sync>;

/// What `/health/ready` asks: the service's own check, unless it drains.
#[derive(Clone)]
struct Probe {
    readiness: Readiness,
    draining: Arc<AtomicBool>,
}

/// The health routes every service (and the gateway) answers, for the
/// API document.
#[derive(utoipa::OpenApi)]
#[openapi(paths(live, ready, crate::http::metrics))]
pub struct HealthApi;

/// What a health route answers when all is well: one word.
struct HealthWord<const READY: bool>;

impl<const READY: bool> utoipa::PartialSchema for HealthWord<READY> {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::Schema> {
        crate::api::string_enum(&[if READY { "ready" } else { "live" }])
    }
}

impl<const READY: bool> utoipa::ToSchema for HealthWord<READY> {}

#[utoipa::path(get, path = "/health/live", tag = "operations", operation_id = "live",
    summary = "Liveness", security(()),
    responses((status = 200, description = "The process is up.",
        content((inline(HealthWord<false>) = "text/plain")))))]
async fn live() -> &'static str {
    "live"
}

#[utoipa::path(get, path = "/health/ready", tag = "operations", operation_id = "ready",
    summary = "Readiness",
    description = "Ready when what the process needs answers (for the gateway: every service behind it); not while it drains before stopping.",
    security(()),
    responses(
        (status = 200, description = "Ready.", content((inline(HealthWord<true>) = "text/plain"))),
        (status = 503, description = "Not ready; `detail` names what is not.",
            body = crate::http::Problem, content_type = "application/problem+json"),
    ))]
async fn ready(axum::extract::State(probe): axum::extract::State<Probe>) -> Response {
    if probe.draining.load(Ordering::Relaxed) {
        return problem_response(
            StatusCode::SERVICE_UNAVAILABLE,
            "not-ready",
            "draining: this instance is shutting down and takes no new work",
        );
    }
    match (probe.readiness)().await {
        Ok(()) => (StatusCode::OK, "ready").into_response(),
        Err(why) => problem_response(StatusCode::SERVICE_UNAVAILABLE, "not-ready", &why),
    }
}

/// The longest requests in flight may take to finish once the listener
/// closed; longer ones are cut off (a pod's grace period is 30 s).
pub const IN_FLIGHT_GRACE: Duration = Duration::from_secs(20);

/// The longest workers may take to finish their batch on shutdown.
pub const WORKER_GRACE: Duration = Duration::from_secs(10);

pub struct App {
    name: &'static str,
    router: Router,
    readiness: Readiness,
    workers: Vec<(String, Worker)>,
    replayers: Replayers,
    /// How long requests are still taken after shutdown was asked for,
    /// while readiness already says "draining".
    drain_for: Duration,
    /// Set when shutdown was asked for: readiness answers 503 from then.
    draining: Arc<AtomicBool>,
}

impl App {
    pub fn new(name: &'static str, router: Router) -> App {
        App {
            name,
            router,
            readiness: Arc::new(|| Box::pin(async { Ok(()) })),
            workers: Vec::new(),
            replayers: Replayers::default(),
            drain_for: Duration::ZERO,
            draining: Arc::new(AtomicBool::new(false)),
        }
    }

    /// Keeps taking requests for `window` after shutdown was asked for,
    /// with readiness answering 503 "draining" meanwhile, so that a
    /// balancer probing readiness moves new work elsewhere first. Needless
    /// where the orchestrator stops routing before it signals (Kubernetes
    /// with a `preStop` pause).
    pub fn draining_for(mut self, window: Duration) -> App {
        self.drain_for = window;
        self
    }

    /// What `/health/ready` checks: `Err` names what is not ready.
    pub fn readiness<F, Fut>(mut self, check: F) -> App
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), String>> + Send + 'static,
    {
        self.readiness = Arc::new(move || Box::pin(check()));
        self
    }

    /// The usual readiness: the service's database and the bus answer.
    pub fn ready_when_reachable(
        self,
        store: crate::Store,
        bus: std::sync::Arc<dyn kernel::bus::EventBus>,
    ) -> App {
        self.readiness(move || {
            let (store, bus) = (store.clone(), bus.clone());
            async move { check_ready(&store, bus.as_ref()).await }
        })
    }

    /// A background task that runs while the service runs and is told to
    /// finish on shutdown.
    pub fn worker<F, Fut>(mut self, name: impl Into<String>, work: F) -> App
    where
        F: FnOnce(Shutdown) -> Fut + Send + 'static,
        Fut: Future<Output = anyhow::Result<()>> + Send + 'static,
    {
        self.workers.push((
            name.into(),
            Box::new(move |shutdown| Box::pin(work(shutdown))),
        ));
        self
    }

    /// Runs a consumer group while the service runs, and lets an admin
    /// list and replay its dead letters (`/admin/dead-letters`).
    pub fn consumer<S: UnitOfWork>(
        mut self,
        name: impl Into<String>,
        consumer: Consumer<S>,
    ) -> App {
        consumer
            .store
            .offer_replays(&mut self.replayers, &consumer.group, &consumer.handler);
        self.worker(name, move |shutdown| consumer.run(shutdown))
    }

    pub fn name(&self) -> &'static str {
        self.name
    }

    /// The full router: the service's routes plus health and metrics, with
    /// request ids, body limits and request metrics.
    pub fn router(&self) -> Router {
        let service = self.name;
        let probe = Probe {
            readiness: self.readiness.clone(),
            draining: self.draining.clone(),
        };
        let mut routes = self.router.clone();
        if !self.replayers.is_empty() {
            routes = routes.merge(self.replayers.clone().router());
        }
        routes
            .route("/health/live", get(live))
            .route("/health/ready", get(ready).with_state(probe))
            .merge(metrics_router())
            .layer(middleware::from_fn(move |req, next| {
                record(service, req, next)
            }))
            .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
            .layer(PropagateRequestIdLayer::x_request_id())
            .layer(SetRequestIdLayer::x_request_id(MakeRequestUuid))
    }

    /// Serves on `listener` and runs the workers until `shutdown` fires,
    /// then drains (see the module's documentation): readiness says
    /// "draining", the drain window passes, the listener closes, requests
    /// in flight and the workers' batches finish.
    pub async fn serve(self, listener: TcpListener, mut shutdown: Shutdown) -> anyhow::Result<()> {
        let router = self.router();
        let service = self.name;
        // Fired once the drain window is over: the listener closes and the
        // workers finish.
        let (close, closing) = shutdown::channel();
        let mut tasks = tokio::task::JoinSet::new();
        for (name, work) in self.workers {
            let closing = closing.clone();
            tasks.spawn(async move {
                if let Err(error) = work(closing).await {
                    tracing::error!(service, worker = %name, error = format!("{error:#}"), "worker stopped with an error");
                }
            });
        }
        let mut stop = closing.clone();
        // Calls from this process to this address skip the socket while
        // the listener accepts (see `in_process`).
        let addr = listener.local_addr()?;
        crate::in_process::offer(addr, router.clone());
        // The peer's address reaches handlers as `ConnectInfo<SocketAddr>`
        // (the gateway limits sign-in attempts per client address).
        let mut server = tokio::spawn(
            axum::serve(
                listener,
                router.into_make_service_with_connect_info::<std::net::SocketAddr>(),
            )
            .with_graceful_shutdown(async move { stop.wait().await })
            .into_future(),
        );
        tokio::select! {
            () = shutdown.wait() => {}
            served = &mut server => {
                // The server stopped by itself: an error, which stops the rest.
                crate::in_process::withdraw(addr);
                close.fire();
                served??;
                anyhow::bail!("{service}: the server stopped without being asked to");
            }
        }
        self.draining.store(true, Ordering::Relaxed);
        tracing::info!(
            service,
            drain_ms = self.drain_for.as_millis() as u64,
            "draining: no longer ready"
        );
        tokio::time::sleep(self.drain_for).await;
        crate::in_process::withdraw(addr);
        close.fire();
        tracing::info!(
            service,
            "listener closed; finishing the requests in flight and the workers' batches"
        );
        let in_flight = async {
            match tokio::time::timeout(IN_FLIGHT_GRACE, &mut server).await {
                Ok(served) => served.map_err(anyhow::Error::from).and_then(|r| Ok(r?)),
                Err(_) => {
                    tracing::warn!(
                        service,
                        "requests still in flight after {IN_FLIGHT_GRACE:?} were cut off"
                    );
                    server.abort();
                    Ok(())
                }
            }
        };
        // Workers finish their batch; do not wait forever on a stuck one.
        let workers = async {
            let drained = tokio::time::timeout(WORKER_GRACE, async {
                while tasks.join_next().await.is_some() {}
            })
            .await;
            if drained.is_err() {
                tracing::warn!(service, "workers did not stop within {WORKER_GRACE:?}");
            }
        };
        let (served, ()) = tokio::join!(in_flight, workers);
        tracing::info!(service, "stopped");
        served
    }
}

async fn record(service: &'static str, req: Request, next: Next) -> Response {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_else(|| "unmatched".to_owned());
    let method = req.method().to_string();
    let started = Instant::now();
    // Probes and scrapes are not part of any booking: no span for them.
    let traced = !(route.starts_with("/health/") || route == "/metrics");
    let response = if traced {
        let span = telemetry::request_span(service, req.method(), &route, req.headers());
        let response = next.run(req).instrument(span.clone()).await;
        span.record("http.response.status_code", response.status().as_u16());
        response
    } else {
        next.run(req).await
    };
    let status = response.status().as_u16().to_string();
    metrics::histogram!("boxoffice_http_request_duration_seconds",
        "service" => service, "route" => route, "method" => method, "status" => status)
    .record(started.elapsed().as_secs_f64());
    response
}

/// The usual readiness of a service: its database and the bus answer.
pub async fn check_ready(
    store: &crate::Store,
    bus: &dyn kernel::bus::EventBus,
) -> Result<(), String> {
    if !store.is_ready().await {
        return Err("the database does not answer".to_owned());
    }
    if !bus.is_ready().await {
        return Err("the event bus does not answer".to_owned());
    }
    Ok(())
}
