//! Synchronous calls to another service, with a timeout and behind a
//! circuit breaker, for callers that make a customer wait on them (a
//! booking's authorisation, a purchase of points).
//!
//! While the dependency answers, each call waits at most the timeout. When
//! it stops answering (timeouts, refused connections, 5xx), the breaker
//! opens after a few consecutive failures and calls are refused at once
//! with "<dependency> is unavailable, try again later" instead of piling up
//! behind a dead dependency; after a pause it lets calls through again
//! (half-open) and closes on the first success. A refusal (402, a declined
//! card) is an answer, not a failure: it never opens the breaker.
//!
//! The breaker is `failsafe`'s; its state is the gauge
//! `boxoffice_circuit_breaker_state{dependency, caller}` (0 closed,
//! 1 half-open, 2 open), its refusals the counter
//! `boxoffice_circuit_breaker_rejected_total{dependency, caller}`, and
//! every change is logged. `caller` tells apart the breakers of services
//! sharing one process (and one metrics registry) in `boxoffice up`.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use failsafe::backoff::{self, Constant};
use failsafe::failure_policy::{consecutive_failures, ConsecutiveFailures};
use failsafe::futures::CircuitBreaker;
use failsafe::{Config, Instrument, StateMachine};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::http::{timestamp, ApiError, Caller};

use crate::replicas::Replicas;
use crate::telemetry;

/// How a call is guarded (e.g. `[reservation.payment]`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct CallSettings {
    /// Longest wait for an answer.
    pub timeout_ms: u64,
    /// Consecutive failures that open the breaker.
    pub failures_to_open: u32,
    /// How long the breaker stays open before letting a call through.
    pub open_for_ms: u64,
}

impl Default for CallSettings {
    fn default() -> Self {
        CallSettings {
            timeout_ms: 610,
            failures_to_open: 5,
            open_for_ms: 2_000,
        }
    }
}

/// Who calls whom, for the breaker's metrics and logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Dependency {
    /// The service called, e.g. `payment`.
    pub name: &'static str,
    /// The service calling, e.g. `reservation`.
    pub caller: &'static str,
    /// What customers see while the breaker is open, for the log, e.g.
    /// "bookings by card are refused at once until payment answers again".
    pub while_open: &'static str,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CallError {
    /// The dependency said no (402, e.g. a declined card), with its reason.
    #[error("{0}")]
    Declined(String),
    /// It did not answer in time, failed, or the breaker is open.
    #[error("{detail}")]
    Unavailable {
        detail: String,
        retry_after_secs: u32,
        /// The request may have reached the dependency and been carried
        /// out (a timeout, an unexpected answer): the caller must take it
        /// back rather than assume nothing happened.
        maybe_done: bool,
    },
}

type Breaker = StateMachine<ConsecutiveFailures<Constant>, BreakerLog>;

/// Where a breaker stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "kebab-case")]
pub enum BreakerState {
    /// Calls go through.
    Closed,
    /// Calls are refused at once.
    Open,
    /// The pause is over: the next call is a trial.
    HalfOpen,
}

/// A breaker as an admin sees it (`GET /admin/circuit-breakers`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = CircuitBreaker)]
pub struct BreakerStatus {
    /// The service called.
    #[schema(examples("payment"))]
    pub dependency: &'static str,
    /// The service calling.
    #[schema(examples("reservation"))]
    pub caller: &'static str,
    #[schema(inline)]
    pub state: BreakerState,
    /// When it last changed state (its start, if never).
    #[schema(format = DateTime)]
    pub since: String,
    /// What customers see while it is open.
    pub while_open: &'static str,
    /// Longest wait for an answer.
    pub timeout_ms: u64,
    /// Consecutive failures that open it.
    #[schema(minimum = 1)]
    pub failures_to_open: u32,
    /// How long it stays open before a trial call.
    pub open_for_ms: u64,
}

/// An HTTP client of one dependency: every guarded call has a timeout and
/// goes through the breaker. The dependency may have several replicas
/// (base URLs separated by commas): calls take them in turn, and one that
/// refuses the connection is passed over for the next ([`Replicas`]).
/// Clones share the breaker and the replicas.
#[derive(Clone)]
pub struct GuardedClient {
    http: reqwest::Client,
    replicas: Arc<Replicas>,
    breaker: Breaker,
    dependency: Dependency,
    settings: CallSettings,
    /// The breaker's last change, as its instrument saw it.
    changed: Changes,
    /// Whether a call whose connection broke after it was sent may be sent
    /// again to another replica: only when the dependency answers a repeat
    /// with what the first request got.
    repeatable: bool,
}

impl std::fmt::Debug for GuardedClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GuardedClient")
            .field("replicas", &self.replicas.urls())
            .field("dependency", &self.dependency)
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

#[derive(Deserialize)]
struct Problem {
    detail: String,
}

impl GuardedClient {
    /// A client of the dependency at `base_url` (or at each of a
    /// comma-separated list of replicas).
    pub fn new(base_url: &str, dependency: Dependency, settings: CallSettings) -> GuardedClient {
        // The metrics recorder must exist before the breaker reports its
        // first state (closed), or that report is lost until the first change.
        crate::http::metrics_handle();
        let http = reqwest::Client::builder()
            .timeout(Duration::from_millis(settings.timeout_ms))
            .build()
            .expect("a plain HTTP client always builds");
        let policy = consecutive_failures(
            settings.failures_to_open.max(1),
            backoff::constant(Duration::from_millis(settings.open_for_ms)),
        );
        let changed = Changes::default();
        let breaker = Config::new()
            .failure_policy(policy)
            .instrument(BreakerLog {
                dependency,
                changed: changed.clone(),
            })
            .build();
        GuardedClient {
            http,
            replicas: Arc::new(Replicas::new(base_url)),
            breaker,
            dependency,
            settings,
            changed,
            repeatable: false,
        }
    }

    /// Where the breaker stands. An open breaker whose pause is over is
    /// half-open: the next call is let through as a trial. (The breaker
    /// itself only notices when that call comes.)
    pub fn status(&self) -> BreakerStatus {
        let (state, since) = *self.changed.0.lock().expect("never poisoned");
        let pause = time::Duration::milliseconds(
            i64::try_from(self.settings.open_for_ms).unwrap_or(i64::MAX),
        );
        let state = match state {
            BreakerState::Open if OffsetDateTime::now_utc() - since >= pause => {
                BreakerState::HalfOpen
            }
            state => state,
        };
        BreakerStatus {
            dependency: self.dependency.name,
            caller: self.dependency.caller,
            state,
            since: timestamp(since),
            while_open: self.dependency.while_open,
            timeout_ms: self.settings.timeout_ms,
            failures_to_open: self.settings.failures_to_open,
            open_for_ms: self.settings.open_for_ms,
        }
    }

    /// Calls that may be sent again when their connection broke before an
    /// answer: the dependency answers a repeat with what the first request
    /// got (it is idempotent by a key in the request).
    pub fn repeatable(mut self) -> GuardedClient {
        self.repeatable = true;
        self
    }

    pub fn settings(&self) -> CallSettings {
        self.settings
    }

    /// The client without the breaker (same timeout), for calls that must
    /// get through whatever its state: taking back what a timed-out call
    /// may have done.
    pub fn http(&self) -> &reqwest::Client {
        &self.http
    }

    /// The full url of `path` (which starts with `/`) on the replica whose
    /// turn it is.
    pub fn url(&self, path: &str) -> String {
        let replica = self.replicas.plan(Instant::now())[0];
        format!("{}{path}", self.replicas.url(replica))
    }

    /// The fallback answer while the dependency cannot be used, e.g.
    /// "payment is unavailable, try again later".
    pub fn unavailable(&self) -> String {
        format!("{} is unavailable, try again later", self.dependency.name)
    }

    /// When to try again while the breaker is open: its pause, in whole
    /// seconds, at least one.
    pub fn retry_after_secs(&self) -> u32 {
        u32::try_from(self.settings.open_for_ms.div_ceil(1000))
            .unwrap_or(u32::MAX)
            .max(1)
    }

    /// Posts `body` as JSON to `path` through the breaker and reads the
    /// JSON answer, or says why not.
    pub async fn post<B, T>(&self, path: &str, body: &B) -> Result<T, CallError>
    where
        B: Serialize + Sync,
        T: DeserializeOwned,
    {
        // Only failures to answer count against the dependency; a refusal
        // is an answer.
        let counts = |error: &CallError| matches!(error, CallError::Unavailable { .. });
        match self
            .breaker
            .call_with(counts, self.request(path, body))
            .await
        {
            Ok(answer) => Ok(answer),
            Err(failsafe::Error::Inner(error)) => Err(error),
            Err(failsafe::Error::Rejected) => Err(CallError::Unavailable {
                detail: self.unavailable(),
                retry_after_secs: self.retry_after_secs(),
                maybe_done: false,
            }),
        }
    }

    /// The call, its answer read, within the timeout. The client's own
    /// timeout bounds calls over the network; this one bounds a call to a
    /// service of this process too, which never touches the client
    /// ([`crate::in_process`]).
    async fn request<B, T>(&self, path: &str, body: &B) -> Result<T, CallError>
    where
        B: Serialize + Sync,
        T: DeserializeOwned,
    {
        let within = Duration::from_millis(self.settings.timeout_ms);
        match tokio::time::timeout(within, self.exchange(path, body)).await {
            Ok(answer) => answer,
            Err(_) => Err(CallError::Unavailable {
                detail: format!(
                    "{} (no answer within {} ms)",
                    self.unavailable(),
                    self.settings.timeout_ms
                ),
                retry_after_secs: 1,
                // It may still be carried out later.
                maybe_done: true,
            }),
        }
    }

    async fn exchange<B, T>(&self, path: &str, body: &B) -> Result<T, CallError>
    where
        B: Serialize + Sync,
        T: DeserializeOwned,
    {
        let unavailable = |why: String, maybe_done: bool| CallError::Unavailable {
            detail: format!("{} ({why})", self.unavailable()),
            retry_after_secs: 1,
            maybe_done,
        };
        let response = self.send(path, body).await.map_err(|error| {
            // A request that timed out may still be carried out later.
            let maybe = !error.is_connect();
            let why = if error.is_timeout() {
                format!("no answer within {} ms", self.settings.timeout_ms)
            } else {
                "it cannot be reached".to_owned()
            };
            unavailable(why, maybe)
        })?;
        let status = response.status();
        if status.is_success() {
            return response.json::<T>().await.map_err(|error| {
                let why = if error.is_timeout() {
                    format!("no answer within {} ms", self.settings.timeout_ms)
                } else {
                    format!("its answer could not be read: {error}")
                };
                unavailable(why, true)
            });
        }
        let detail = response
            .json::<Problem>()
            .await
            .map(|p| p.detail)
            .unwrap_or_else(|_| status.to_string());
        match status.as_u16() {
            402 => Err(CallError::Declined(detail)),
            // 503: the dependency says it could not do it (its own
            // dependency is down); nothing was done.
            503 => Err(unavailable(detail, false)),
            _ => Err(unavailable(format!("it answered {status}: {detail}"), true)),
        }
    }
}

impl GuardedClient {
    /// Posts to one replica after the other: on to the next when the
    /// connection was refused (nothing was sent), or, for a
    /// [`repeatable`](GuardedClient::repeatable) call, when it broke
    /// before any answer. A timeout is not retried: the wait is spent.
    async fn send<B: Serialize + Sync>(
        &self,
        path: &str,
        body: &B,
    ) -> Result<reqwest::Response, reqwest::Error> {
        let move_on = |error: &reqwest::Error| {
            let broken = error.is_request() && !error.is_timeout();
            error.is_connect() || (self.repeatable && broken)
        };
        self.replicas
            .send_until(
                |base| {
                    crate::in_process::send(
                        self.http
                            .post(format!("{base}{path}"))
                            .headers(telemetry::outgoing_headers())
                            .json(body),
                    )
                },
                move_on,
            )
            .await
    }
}

/// `GET /admin/circuit-breakers` (admins): where the service's breakers
/// stand, for the operator steering a demo or an incident.
pub fn status_router(breakers: Vec<GuardedClient>) -> Router {
    async fn list(
        State(breakers): State<Arc<Vec<GuardedClient>>>,
        caller: Caller,
    ) -> Result<Json<Vec<BreakerStatus>>, ApiError> {
        caller.require_admin()?;
        Ok(Json(breakers.iter().map(GuardedClient::status).collect()))
    }
    Router::new()
        .route("/admin/circuit-breakers", get(list))
        .with_state(Arc::new(breakers))
}

/// A breaker's state and when it took it, shared with its instrument.
#[derive(Debug, Clone)]
struct Changes(Arc<Mutex<(BreakerState, OffsetDateTime)>>);

impl Default for Changes {
    fn default() -> Self {
        Changes(Arc::new(Mutex::new((
            BreakerState::Closed,
            OffsetDateTime::now_utc(),
        ))))
    }
}

/// Logs and measures the breaker's changes of state.
#[derive(Debug, Clone)]
pub struct BreakerLog {
    dependency: Dependency,
    changed: Changes,
}

impl BreakerLog {
    fn state(&self, state: BreakerState) {
        *self.changed.0.lock().expect("never poisoned") = (state, OffsetDateTime::now_utc());
        let value = match state {
            BreakerState::Closed => 0.0,
            BreakerState::HalfOpen => 1.0,
            BreakerState::Open => 2.0,
        };
        let Dependency { name, caller, .. } = self.dependency;
        metrics::gauge!("boxoffice_circuit_breaker_state", "dependency" => name, "caller" => caller)
            .set(value);
    }
}

impl Instrument for BreakerLog {
    fn on_call_rejected(&self) {
        let Dependency { name, caller, .. } = self.dependency;
        metrics::counter!("boxoffice_circuit_breaker_rejected_total", "dependency" => name, "caller" => caller)
            .increment(1);
    }

    fn on_open(&self) {
        let Dependency {
            name,
            caller,
            while_open,
        } = self.dependency;
        tracing::warn!(
            dependency = name,
            caller,
            "circuit breaker opened: {while_open}"
        );
        self.state(BreakerState::Open);
    }

    fn on_half_open(&self) {
        let Dependency { name, caller, .. } = self.dependency;
        tracing::info!(
            dependency = name,
            caller,
            "circuit breaker half-open: trying {name} again"
        );
        self.state(BreakerState::HalfOpen);
    }

    fn on_closed(&self) {
        let Dependency { name, caller, .. } = self.dependency;
        tracing::info!(dependency = name, caller, "circuit breaker closed");
        self.state(BreakerState::Closed);
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU32, Ordering};
    use std::sync::Arc;

    use axum::extract::State;
    use axum::http::StatusCode;
    use axum::response::{IntoResponse, Response};
    use axum::routing::post;
    use axum::{Json, Router};

    use super::*;
    use crate::http::ApiError;

    /// What the fake dependency answers next, and how often it was called.
    #[derive(Clone, Default)]
    struct Fake {
        answer: Arc<AtomicU32>,
        calls: Arc<AtomicU32>,
    }

    const OK: u32 = 0;
    const DECLINE: u32 = 1;
    const DOWN: u32 = 2;
    const SLOW: u32 = 3;
    const BROKEN: u32 = 4;

    async fn answer(State(fake): State<Fake>) -> Response {
        fake.calls.fetch_add(1, Ordering::SeqCst);
        match fake.answer.load(Ordering::SeqCst) {
            OK => (StatusCode::CREATED, Json(serde_json::json!({"n": 7}))).into_response(),
            DECLINE => ApiError::PaymentRequired("the card was declined".into()).into_response(),
            DOWN => ApiError::Unavailable {
                detail: "the provider is down".into(),
                retry_after_secs: 1,
            }
            .into_response(),
            SLOW => {
                tokio::time::sleep(Duration::from_millis(500)).await;
                Json(serde_json::json!({"n": 7})).into_response()
            }
            _ => ApiError::Conflict("no such thing".into()).into_response(),
        }
    }

    async fn serve(fake: Fake) -> String {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let router = Router::new()
            .route("/internal/do", post(answer))
            .with_state(fake);
        tokio::spawn(async move { axum::serve(listener, router).await });
        url
    }

    fn guarded(url: &str, caller: &'static str) -> GuardedClient {
        GuardedClient::new(
            url,
            Dependency {
                name: "payment",
                caller,
                while_open: "tests are refused at once",
            },
            CallSettings {
                timeout_ms: 100,
                failures_to_open: 2,
                open_for_ms: 1_500,
            },
        )
    }

    #[derive(Debug, Deserialize, PartialEq)]
    struct Answer {
        n: u32,
    }

    async fn call(client: &GuardedClient) -> Result<Answer, CallError> {
        client.post("/internal/do", &serde_json::json!({})).await
    }

    fn gauge(caller: &str) -> Option<String> {
        let text = crate::http::metrics_handle().render();
        let prefix = format!(
            "boxoffice_circuit_breaker_state{{dependency=\"payment\",caller=\"{caller}\"}} "
        );
        text.lines()
            .find_map(|line| line.strip_prefix(&prefix).map(str::to_owned))
    }

    #[tokio::test]
    async fn answers_and_refusals_pass_and_never_open_the_breaker() {
        let fake = Fake::default();
        let client = guarded(&serve(fake.clone()).await, "answers");
        assert_eq!(
            gauge("answers").as_deref(),
            Some("0"),
            "closed from the start"
        );
        assert_eq!(call(&client).await, Ok(Answer { n: 7 }));
        fake.answer.store(DECLINE, Ordering::SeqCst);
        for _ in 0..5 {
            assert_eq!(
                call(&client).await,
                Err(CallError::Declined("the card was declined".into()))
            );
        }
        assert_eq!(fake.calls.load(Ordering::SeqCst), 6);
        assert_eq!(gauge("answers").as_deref(), Some("0"));
    }

    #[tokio::test]
    async fn a_replica_that_refuses_the_connection_is_passed_over_without_opening_the_breaker() {
        let fake = Fake::default();
        let replicas = format!("http://127.0.0.1:9,{}", serve(fake.clone()).await);
        let client = guarded(&replicas, "replicas");
        // More calls than the failures that open the breaker: none fails.
        for _ in 0..5 {
            assert_eq!(call(&client).await, Ok(Answer { n: 7 }));
        }
        assert_eq!(fake.calls.load(Ordering::SeqCst), 5);
        assert_eq!(gauge("replicas").as_deref(), Some("0"));
    }

    #[tokio::test]
    async fn failures_to_answer_say_whether_the_call_may_have_been_carried_out() {
        let fake = Fake::default();
        let client = guarded(&serve(fake.clone()).await, "failures");
        fake.answer.store(DOWN, Ordering::SeqCst);
        assert_eq!(
            call(&client).await,
            Err(CallError::Unavailable {
                detail: "payment is unavailable, try again later (the provider is down)".into(),
                retry_after_secs: 1,
                maybe_done: false,
            })
        );
        fake.answer.store(SLOW, Ordering::SeqCst);
        assert_eq!(
            call(&client).await,
            Err(CallError::Unavailable {
                detail: "payment is unavailable, try again later (no answer within 100 ms)".into(),
                retry_after_secs: 1,
                maybe_done: true,
            })
        );
        let nobody = guarded("http://127.0.0.1:9", "failures");
        assert!(matches!(
            call(&nobody).await,
            Err(CallError::Unavailable { maybe_done: false, detail, .. })
                if detail.ends_with("(it cannot be reached)")
        ));
    }

    #[tokio::test]
    async fn consecutive_failures_open_the_breaker_which_refuses_at_once_until_its_pause_is_over() {
        let fake = Fake::default();
        let client = guarded(&serve(fake.clone()).await, "opening");
        fake.answer.store(BROKEN, Ordering::SeqCst);
        for _ in 0..2 {
            assert!(matches!(
                call(&client).await,
                Err(CallError::Unavailable { maybe_done: true, detail, .. })
                    if detail.contains("it answered 409 Conflict: no such thing")
            ));
        }
        assert_eq!(gauge("opening").as_deref(), Some("2"));
        assert_eq!(client.status().state, BreakerState::Open);
        fake.answer.store(OK, Ordering::SeqCst);
        assert_eq!(
            call(&client).await,
            Err(CallError::Unavailable {
                detail: "payment is unavailable, try again later".into(),
                retry_after_secs: 2,
                maybe_done: false,
            })
        );
        assert_eq!(
            fake.calls.load(Ordering::SeqCst),
            2,
            "refused without a call"
        );
        tokio::time::sleep(Duration::from_millis(1_600)).await;
        assert_eq!(
            client.status().state,
            BreakerState::HalfOpen,
            "the pause is over: the next call is a trial"
        );
        assert_eq!(call(&client).await, Ok(Answer { n: 7 }));
        assert_eq!(gauge("opening").as_deref(), Some("0"));
        assert_eq!(client.status().state, BreakerState::Closed);
    }
}
