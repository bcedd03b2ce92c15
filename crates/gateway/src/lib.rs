//! The edge of boxoffice: one entry point for the API and the web UI.
//!
//! It authenticates callers (signup, tokens, JWT validation), decides who
//! may call what ([`access`]), routes by path prefix to the service that
//! owns the path ([`proxy`]), passes the caller's identity downstream in
//! headers it strips from every incoming request (so no client can speak
//! for another), and adds `x-request-id` to every request.
//!
//! # Layout
//! - [`api`]: the public API document, put together from the handlers.
//! - [`access`]: the access policy, pure.
//! - [`dead_letters`]: every service's dead letters in one list; replays.
//! - [`event_contracts`]: the AsyncAPI document and the events' JSON Schemas.
//! - [`identity`]: users, tokens and the `/auth/*` handlers (its own database).
//! - [`limits`]: rate limits per client address (sign-in) and per user (changes).
//! - [`passwords`]: Argon2id hashing, bounded to one per core.
//! - [`proxy`]: the route table and request forwarding.
//! - [`services`]: lists gathered from every service (dead letters,
//!   circuit breakers).
//! - `ui`: the web UI's files, built into the binary.

pub mod access;
pub mod api;
pub mod dead_letters;
pub mod event_contracts;
pub mod identity;
pub mod limits;
pub mod passwords;
pub mod proxy;
pub mod services;
mod ui;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use axum::middleware;
use axum::routing::{get, post};
use axum::Router;
use runtime::{App, Store};

pub use identity::MIGRATIONS;
pub use limits::RateLimits;
pub use proxy::Route;

/// How the gateway is configured.
#[derive(Debug, Clone)]
pub struct Settings {
    pub database_url: String,
    /// Key for signing tokens (HS256). Keep it secret; at least 32 bytes.
    pub jwt_secret: String,
    pub token_ttl: Duration,
    /// The admin's password: the `admin` user is created or updated with it.
    pub admin_password: String,
    /// Path prefix → service base URL (and the path asked of it).
    pub routes: Vec<Route>,
    /// Services that keep dead letters: name → base URL.
    pub services: BTreeMap<String, String>,
    /// Sign-in attempts per client address, changes per user.
    pub rate_limits: RateLimits,
    /// The public API document served at `/openapi.json` ([`api::document`]).
    pub api_document: api::ApiDocument,
}

pub async fn build(settings: Settings) -> anyhow::Result<App> {
    anyhow::ensure!(
        settings.jwt_secret.len() >= 32,
        "the token signing secret must be at least 32 bytes"
    );
    let table = proxy::RouteTable::new(settings.routes.clone())?;
    for route in &settings.routes {
        match &route.rewrite {
            Some(rewrite) => tracing::info!(
                prefix = %route.prefix, service = %route.service, %rewrite,
                "route {} → {} as {rewrite}", route.prefix, route.service
            ),
            None => tracing::info!(
                prefix = %route.prefix, service = %route.service,
                "route {} → {}", route.prefix, route.service
            ),
        }
    }
    let store = Store::connect(&settings.database_url, MIGRATIONS).await?;
    let passwords = passwords::Passwords::for_this_machine().await?;
    let users = identity::Users::new(store.clone(), passwords);
    users.ensure_admin(&settings.admin_password).await?;
    let tokens = identity::Tokens::new(settings.jwt_secret.as_bytes(), settings.token_ttl);
    let routes = Arc::new(table);
    let limiter = limits::Limiter::new(settings.rate_limits);
    let upstream = proxy::Upstream::new(routes.clone(), tokens.clone(), limiter.clone());
    let auth = Router::new()
        .route("/auth/signup", post(identity::signup))
        .route("/auth/token", post(identity::token))
        .route_layer(middleware::from_fn_with_state(
            limiter.clone(),
            limits::limit_auth,
        ))
        .with_state(identity::AuthState { users, tokens });
    let admin = Router::new()
        .route("/admin/dead-letters", get(dead_letters::list))
        .route(
            "/admin/dead-letters/{service}/{id}/replay",
            post(dead_letters::replay),
        )
        .route("/admin/circuit-breakers", get(services::circuit_breakers))
        .with_state(services::Services::new(upstream.clone(), settings.services));
    let router = Router::new()
        .route("/", get(ui::index))
        .route("/docs", get(ui::docs))
        .route("/ui/{*path}", get(ui::asset))
        .route(
            "/openapi.json",
            get(api::openapi).with_state(settings.api_document.clone()),
        )
        .route("/asyncapi.json", get(event_contracts::asyncapi))
        .route(
            "/contracts/events/{file}",
            get(event_contracts::event_schema),
        )
        .merge(auth)
        .merge(admin)
        .fallback(proxy::forward)
        .with_state(upstream.clone())
        .layer(middleware::from_fn(proxy::reject_ambiguous_paths));
    let streams = upstream.clone();
    Ok(App::new("gateway", router)
        .readiness(move || {
            let (store, upstream) = (store.clone(), upstream.clone());
            async move {
                if !store.is_ready().await {
                    return Err("the identity database does not answer".to_owned());
                }
                upstream.check_ready().await
            }
        })
        .worker("event-streams", move |mut shutdown| async move {
            shutdown.wait().await;
            streams.close_streams();
            Ok(())
        })
        .worker("rate-limit-sweeper", move |mut shutdown| async move {
            loop {
                tokio::select! {
                    () = tokio::time::sleep(limits::SWEEP_EVERY) => limiter.retain_recent(),
                    () = shutdown.wait() => return Ok(()),
                }
            }
        }))
}
