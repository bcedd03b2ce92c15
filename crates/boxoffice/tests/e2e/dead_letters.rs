//! `boxoffice dead-letters`: signs in to the gateway as admin and reports a
//! refusal with the problem's detail and a failing exit code.

use crate::helpers::{spawn_app, ADMIN_PASSWORD};

/// Runs the binary's `dead-letters` command against `url`.
async fn dead_letters(url: &str, password: &str, args: &[&str]) -> (bool, String, String) {
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_boxoffice"))
        .arg("dead-letters")
        .args(args)
        .args(["--url", url])
        .env("BOXOFFICE_ADMIN_PASSWORD", password)
        .env("RUST_LOG", "warn")
        .output()
        .await
        .expect("the binary runs");
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[tokio::test]
async fn the_dead_letter_command_fails_with_the_problems_detail() {
    let mut app = spawn_app().await;

    let (ok, _, stderr) = dead_letters(&app.url, "not the password", &["list"]).await;
    assert!(!ok);
    assert!(
        stderr.contains("signing in as admin") && stderr.contains("invalid username or password"),
        "{stderr}"
    );

    let (ok, _, stderr) = dead_letters(&app.url, ADMIN_PASSWORD, &["replay", "billing", "7"]).await;
    assert!(!ok);
    assert!(
        stderr.contains("404") && stderr.contains("no service named \"billing\""),
        "{stderr}"
    );

    let (ok, _, stderr) = dead_letters(&app.url, ADMIN_PASSWORD, &["list", "billing"]).await;
    assert!(!ok);
    assert!(stderr.contains("no service named \"billing\""), "{stderr}");
    app.stop().await;
}
