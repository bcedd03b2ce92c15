//! A gateway on a free port in front of fake services, for the gateway's
//! own integration tests.
#![allow(dead_code)]

use std::time::Duration;

use axum::Router;
use gateway::{RateLimits, Route, Settings};
use kernel::shutdown::{self, ShutdownTrigger};
use serde_json::{json, Value};
use tokio::net::TcpListener;

pub const ADMIN_PASSWORD: &str = "gateway-test-admin-password";

/// Serves `router` on a free loopback port until the test ends; its url.
pub async fn serve(router: Router) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, router).await });
    url
}

pub struct TestGateway {
    pub url: String,
    pub http: reqwest::Client,
    _trigger: ShutdownTrigger,
    _dir: tempfile::TempDir,
}

/// A gateway whose routes and dead-letter services point at `services`
/// (name, path prefix, base url).
pub async fn gateway(services: &[(&str, &str, &str)]) -> TestGateway {
    let dir = tempfile::tempdir().unwrap();
    let settings = Settings {
        database_url: runtime::store::sqlite_url(dir.path(), "identity"),
        jwt_secret: "a-test-signing-secret-of-at-least-32-bytes".to_owned(),
        token_ttl: Duration::from_secs(600),
        admin_password: ADMIN_PASSWORD.to_owned(),
        routes: services
            .iter()
            .map(|(name, prefix, url)| Route {
                prefix: (*prefix).to_owned(),
                service: (*name).to_owned(),
                upstream: (*url).to_owned(),
                rewrite: None,
            })
            .collect(),
        services: services
            .iter()
            .map(|(name, _, url)| ((*name).to_owned(), (*url).to_owned()))
            .collect(),
        rate_limits: RateLimits::default(),
        // The gateway's own part: these tests stand in for the services.
        api_document: gateway::api::ApiDocument::new(
            &gateway::api::document(vec![], &[], &[]).unwrap(),
        ),
    };
    let app = gateway::build(settings).await.unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let (trigger, shutdown) = shutdown::channel();
    tokio::spawn(app.serve(listener, shutdown));
    TestGateway {
        url,
        http: reqwest::Client::new(),
        _trigger: trigger,
        _dir: dir,
    }
}

impl TestGateway {
    /// Shuts the gateway down, as SIGTERM would.
    pub fn shut_down(&self) {
        self._trigger.fire();
    }

    pub async fn token(&self, username: &str, password: &str) -> String {
        let answer: Value = self
            .http
            .post(format!("{}/auth/token", self.url))
            .json(&json!({"username": username, "password": password}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        answer["accessToken"].as_str().unwrap().to_owned()
    }

    pub async fn admin_token(&self) -> String {
        self.token("admin", ADMIN_PASSWORD).await
    }

    /// Signs a customer up; their token.
    pub async fn customer(&self, username: &str) -> String {
        let created = self
            .http
            .post(format!("{}/auth/signup", self.url))
            .json(&json!({"username": username, "password": "correct horse"}))
            .send()
            .await
            .unwrap();
        assert_eq!(created.status(), 201);
        self.token(username, "correct horse").await
    }
}
