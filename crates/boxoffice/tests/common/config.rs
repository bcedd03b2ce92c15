//! The configuration a platform started in a test process runs with.

use std::path::Path;

use boxoffice::Config;

use super::gateway::ADMIN_PASSWORD;

/// A free port, `data_dir`, the tests' admin password, and payment calls
/// patient enough for an unoptimised build: many platforms run at once
/// here on a few cores, and the production 610 ms would time out calls
/// that are merely queued (the breaker tests set their own timeout).
pub fn for_tests(data_dir: &Path) -> Config {
    let mut config = Config {
        port: 0,
        data_dir: data_dir.to_path_buf(),
        admin_password: Some(ADMIN_PASSWORD.to_owned()),
        ..Config::default()
    };
    config.reservation.payment.timeout_ms = 5_000;
    config.wallet.settings.payment.timeout_ms = 5_000;
    config
}
