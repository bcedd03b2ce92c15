//! `spawn_app()`: the whole platform in this process, on a temp data dir.

use std::ops::Deref;

use boxoffice::{Config, Platform};

pub use crate::common::gateway::{answer, eventually, Answer, Gateway, ADMIN_PASSWORD};

pub struct TestApp {
    pub platform: Option<Platform>,
    pub gateway: Gateway,
    pub dir: tempfile::TempDir,
    /// What the platform was started with; a restart starts it again so.
    pub config: Config,
}

impl Deref for TestApp {
    type Target = Gateway;

    fn deref(&self) -> &Gateway {
        &self.gateway
    }
}

pub async fn spawn_app() -> TestApp {
    spawn_app_with(|_| {}).await
}

/// Starts the platform with the test defaults changed by `configure`
/// (an admin password, a token key, rate limits…).
pub async fn spawn_app_with(configure: impl FnOnce(&mut Config)) -> TestApp {
    let dir = tempfile::tempdir().expect("a temp dir");
    let mut config = crate::common::config::for_tests(dir.path());
    configure(&mut config);
    let platform = Platform::start(&config).await.expect("the platform starts");
    TestApp {
        gateway: Gateway::new(platform.url.clone()),
        platform: Some(platform),
        dir,
        config,
    }
}

impl TestApp {
    /// Stops the platform and starts a new one on the same data dir.
    pub async fn restart(&mut self) {
        self.restart_with(|_| {}).await;
    }

    /// Stops the platform and starts it again on the same data dir, with
    /// its configuration changed by `configure` (kept for later restarts).
    pub async fn restart_with(&mut self, configure: impl FnOnce(&mut Config)) {
        self.stop().await;
        configure(&mut self.config);
        let platform = Platform::start(&self.config)
            .await
            .expect("the platform starts");
        self.gateway.url = platform.url.clone();
        self.platform = Some(platform);
    }

    pub async fn stop(&mut self) {
        if let Some(platform) = self.platform.take() {
            platform.stop().await.expect("a clean stop");
        }
    }
}
