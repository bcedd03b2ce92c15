//! The boxoffice binary's library: configuration and the ways to run.
//!
//! This is the only crate that decides which adapters run: the embedded
//! log or Kafka, SQLite files or PostgreSQL. Services receive ports
//! (`EventBus`, database urls, peer urls) and never know which.
//!
//! # Layout
//! - [`api`]: the public API document, from every service's handlers.
//! - [`config`]: typed configuration, layered defaults → file → `BOXOFFICE_*` env.
//! - [`dead_letters`]: `boxoffice dead-letters list | replay`, through the gateway.
//! - [`platform`]: `up` — every service in one process, each on its own
//!   loopback port behind the gateway, as it will run distributed.
//! - [`secrets`]: the admin password and token key kept in the data dir.
//! - [`telemetry`]: logs, and traces exported over OTLP when configured.

pub mod api;
pub mod config;
pub mod dead_letters;
pub mod platform;
pub mod secrets;
pub mod telemetry;

pub use config::Config;
pub use platform::{Platform, ServiceName};
