//! `spawn_app()`: the whole platform in this process, on a temp data dir.

use std::ops::Deref;
use std::path::PathBuf;

use boxoffice::{Config, Platform};

pub use crate::common::gateway::{answer, eventually, Answer, Gateway, ADMIN_PASSWORD};

pub struct TestApp {
    pub platform: Option<Platform>,
    pub gateway: Gateway,
    pub dir: tempfile::TempDir,
}

impl Deref for TestApp {
    type Target = Gateway;

    fn deref(&self) -> &Gateway {
        &self.gateway
    }
}

pub async fn spawn_app() -> TestApp {
    let dir = tempfile::tempdir().expect("a temp dir");
    let platform = start_on(dir.path().to_path_buf()).await;
    TestApp {
        gateway: Gateway::new(platform.url.clone()),
        platform: Some(platform),
        dir,
    }
}

async fn start_on(data_dir: PathBuf) -> Platform {
    let config = Config {
        port: 0,
        data_dir,
        admin_password: Some(ADMIN_PASSWORD.to_owned()),
        ..Config::default()
    };
    Platform::start(&config).await.expect("the platform starts")
}

impl TestApp {
    /// Stops the platform and starts a new one on the same data dir.
    pub async fn restart(&mut self) {
        self.stop().await;
        let platform = start_on(self.dir.path().to_path_buf()).await;
        self.gateway.url = platform.url.clone();
        self.platform = Some(platform);
    }

    pub async fn stop(&mut self) {
        if let Some(platform) = self.platform.take() {
            platform.stop().await.expect("a clean stop");
        }
    }
}
