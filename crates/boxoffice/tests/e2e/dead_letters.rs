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

#[tokio::test]
async fn a_corrupted_log_entry_is_parked_by_every_consumer_listed_by_the_gateway_and_blocks_nothing(
) {
    let mut app = spawn_app().await;
    let admin = app.admin_token().await;
    let customer = app.customer("unlucky").await;
    let movie = app.movie(&admin, "Data Corruption", 10).await;
    let empty = app.get("/admin/dead-letters", Some(&admin)).await;
    assert_eq!(empty.status, 200, "{empty:?}");
    assert_eq!(empty.body, serde_json::json!([]));
    assert_eq!(
        app.get("/admin/dead-letters", Some(&customer)).await.status,
        403
    );

    // Something writes a record that is not an event into the log.
    app.stop().await;
    let log = sqlx::SqlitePool::connect(&format!(
        "sqlite://{}",
        app.dir.path().join("bus.db").display()
    ))
    .await
    .unwrap();
    sqlx::query(
        "INSERT INTO log (topic, event_key, envelope) VALUES ('boxoffice.reservation', 'x', '{\"cut off')",
    )
    .execute(&log)
    .await
    .unwrap();
    log.close().await;
    app.restart().await;

    // Bookings behind it still go through every consumer.
    let booking = app.book(&customer, &movie, 2).await;
    let id = booking.body["id"].as_str().unwrap().to_owned();
    assert_eq!(app.settled(&customer, &id).await, "confirmed");
    crate::helpers::eventually(|| async {
        let mine = app.list("/mypage/reservations", &customer).await;
        let told = app.list("/notifications", &customer).await;
        (mine.iter().any(|r| r["status"] == "confirmed") && !told.is_empty()).then_some(())
    })
    .await;

    // Each consumer of the topic kept it, with its bytes (the dashboard's
    // consumer is not waited for above: wait for its letter here).
    let letters = crate::helpers::eventually(|| async {
        let letters = app.get("/admin/dead-letters", Some(&admin)).await;
        (letters.body.as_array().map_or(0, Vec::len) >= 5).then_some(letters)
    })
    .await;
    let mut consumers: Vec<&str> = letters
        .body
        .as_array()
        .unwrap()
        .iter()
        .map(|letter| {
            assert_eq!(letter["raw"], "{\"cut off", "{letter}");
            assert_eq!(letter["eventId"], serde_json::Value::Null);
            letter["consumer"].as_str().unwrap()
        })
        .collect();
    consumers.sort();
    assert_eq!(
        consumers,
        vec![
            "catalog.inventory",
            "dashboard.projection",
            "mypage.projection",
            "notification.sender",
            "payment.settlement",
            "wallet.bookings"
        ]
    );
    // There is no event in it to replay: the refusal says so.
    let first = &letters.body[0];
    let replay = app
        .post(
            &format!(
                "/admin/dead-letters/{}/{}/replay",
                first["service"].as_str().unwrap(),
                first["id"].as_str().unwrap()
            ),
            Some(&admin),
            serde_json::json!({}),
        )
        .await;
    assert_eq!(replay.status, 409, "{replay:?}");
    assert!(
        replay.detail().contains("could not be decoded"),
        "{replay:?}"
    );
}
