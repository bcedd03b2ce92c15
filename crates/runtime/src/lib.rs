//! The adapter toolkit every boxoffice service is assembled from.
//!
//! Services keep their domain pure and write only their own adapters; the
//! plumbing that would otherwise be copied into each of them lives here,
//! written once:
//!
//! # Layout
//! - [`store`]: one SQL layer over SQLite (embedded) and PostgreSQL
//!   (distributed), with embedded migrations and a single SQLite writer.
//! - [`sqlite`]: SQLite's statements run on the caller's thread, behind
//!   sqlx's `Executor`, so the store's one SQL layer serves both engines.
//! - [`outbox`]: events appended in the state change's transaction, and the
//!   relay that publishes them to the [`kernel::bus::EventBus`].
//! - [`inbox`]: processed-event ids, so at-least-once delivery has
//!   exactly-once effects.
//! - [`consumer`]: the one generic consumer loop (batching, commit after the
//!   transaction, passing faults waited out, rejections dead-lettered).
//! - [`dead_letters`]: what could not be applied or read, listed and
//!   replayed by an admin.
//! - [`group_commit`]: many small writes stored in one transaction.
//! - [`retry`]: telling a passing fault from a rejection, and waiting one out.
//! - [`http`]: problem+json errors, the caller's identity, JSON bodies with
//!   precise rejections, health and metrics routes.
//! - [`breaker`]: synchronous calls to another service with a timeout and
//!   a circuit breaker, its state a gauge per dependency and caller.
//! - [`replicas`]: several base URLs for one service, taken in turn, the
//!   unreachable ones set aside for a moment.
//! - [`in_process`]: a call to a service this process serves goes
//!   through its router, without the network.
//! - [`tokens`]: access tokens (HS256 JWTs), issued by the gateway and
//!   checked wherever a caller arrives.
//! - [`telemetry`]: the W3C trace context carried through requests, calls
//!   and events; spans named from the business.
//! - [`app`]: a service assembled from a router and background workers,
//!   served until shutdown.

pub mod api;
pub mod app;
pub mod breaker;
pub mod consumer;
pub mod dead_letters;
pub mod group_commit;
pub mod http;
pub mod in_process;
pub mod inbox;
pub mod outbox;
pub mod replicas;
pub mod retry;
pub mod sqlite;
pub mod store;
pub mod telemetry;
pub mod tokens;

pub use app::App;
pub use store::Store;
