//! The web UI in a real browser: `web/tests/ui.test.mjs` (playwright-core
//! driving Debian's headless `chromium`, axe-core for accessibility) runs
//! the product lines' walkthroughs against a platform started here, on a
//! free loopback port in a temporary data dir. Screenshots of every main
//! screen land in `target/ui-screenshots/`.
//!
//! Needs `node`, `chromium` (or `CHROMIUM=<path>`) and `npm ci` run in
//! `web/tests`; without them the test says so and passes, except under
//! `CI=true`, where it fails (`.ci/run` installs all three).

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use boxoffice::Platform;
use common::gateway::ADMIN_PASSWORD;

#[path = "common/mod.rs"]
mod common;
/// The whole browser run; it takes about a minute.
const PATIENCE: Duration = Duration::from_secs(15 * 60);

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// What is missing to run the browser tests, if anything.
fn missing_tools(tests: &Path, chromium: &Path) -> Vec<String> {
    let mut missing = Vec::new();
    if std::process::Command::new("node")
        .arg("--version")
        .output()
        .is_err()
    {
        missing.push("node (Debian's nodejs)".to_owned());
    }
    if !chromium.exists() {
        missing.push(format!("chromium at {}", chromium.display()));
    }
    if !tests.join("node_modules/playwright-core").exists() {
        missing.push(format!("playwright-core (npm ci in {})", tests.display()));
    }
    missing
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_product_line_walkthrough_passes_in_a_real_browser() {
    let root = repo_root();
    let tests = root.join("web/tests");
    let chromium =
        PathBuf::from(std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into()));
    let missing = missing_tools(&tests, &chromium);
    if !missing.is_empty() {
        let why = format!("the browser tests need {}", missing.join(", "));
        assert!(std::env::var("CI").is_err(), "{why}");
        eprintln!("skipped: {why}");
        return;
    }

    let dir = tempfile::tempdir().expect("a temp dir");
    let config = common::config::for_tests(dir.path());
    let platform = Platform::start(&config).await.expect("the platform starts");

    let run = tokio::process::Command::new("node")
        .args(["--test", "--test-concurrency=1", "ui.test.mjs"])
        .current_dir(&tests)
        .env("BOXOFFICE_UI_URL", &platform.url)
        .env("BOXOFFICE_ADMIN_PASSWORD", ADMIN_PASSWORD)
        .env(
            "BOXOFFICE_UI_SCREENSHOTS",
            root.join("target/ui-screenshots"),
        )
        .env("CHROMIUM", &chromium)
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .output();
    let output = tokio::time::timeout(PATIENCE, run)
        .await
        .expect("the browser tests finish within 15 minutes")
        .expect("node runs");
    platform.stop().await.expect("a clean stop");

    let report = String::from_utf8_lossy(&output.stdout);
    println!("{report}");
    eprintln!("{}", String::from_utf8_lossy(&output.stderr));
    assert!(
        output.status.success(),
        "the browser tests failed ({}); their report is above",
        output.status
    );
    assert!(
        report.contains("# fail 0") && !report.contains("# pass 0"),
        "every browser test ran and passed"
    );
}
