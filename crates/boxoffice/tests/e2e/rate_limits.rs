//! Rate limits: one client flooding sign-ins, or one user flooding changes,
//! is answered 429 with `Retry-After`, and nobody else notices.

use futures::future::join_all;
use serde_json::json;

use crate::helpers::{spawn_app_with, Answer};

fn assert_rate_limited(answer: &Answer, retry_after: Option<&str>, detail_contains: &str) {
    assert_eq!(answer.status, 429, "{answer:?}");
    assert_eq!(answer.content_type, "application/problem+json");
    assert_eq!(answer.body["type"], "/problems/rate-limited");
    assert!(
        answer.detail().contains(detail_contains) && answer.detail().contains("retry in"),
        "{answer:?}"
    );
    let seconds: u64 = retry_after
        .expect("a Retry-After header")
        .parse()
        .expect("Retry-After in whole seconds");
    assert!(seconds >= 1);
}

async fn call_with_retry_after(request: reqwest::RequestBuilder) -> (Answer, Option<String>) {
    let response = request.send().await.expect("the gateway answers");
    let retry_after = response
        .headers()
        .get("retry-after")
        .map(|v| v.to_str().unwrap().to_owned());
    (crate::helpers::answer(response).await, retry_after)
}

#[tokio::test]
async fn a_login_flood_gets_429_and_others_are_still_served() {
    let mut app = spawn_app_with(|config| {
        config.rate_limits.auth_per_second = 1;
        config.rate_limits.auth_burst = 20;
    })
    .await;
    let admin = app.admin_token().await;
    let bystander = app.customer("bystander").await;
    let movie = app.movie(&admin, "Quiet Evening", 10).await;

    let flood = (0..300).map(|_| {
        let request = app
            .http
            .post(format!("{}/auth/token", app.url))
            .json(&json!({"username": "bystander", "password": "guessing wildly"}));
        call_with_retry_after(request)
    });
    let answers = join_all(flood).await;
    let limited: Vec<_> = answers.iter().filter(|(a, _)| a.status == 429).collect();
    assert!(
        limited.len() >= 200,
        "{} of 300 attempts were limited",
        limited.len()
    );
    for (answer, retry_after) in &limited {
        assert_rate_limited(answer, retry_after.as_deref(), "sign-in attempts");
    }
    // The rest were checked (a wrong password), or, on a machine too busy
    // to check them within the wait, answered busy.
    assert!(answers
        .iter()
        .all(|(a, _)| [401, 429, 503].contains(&a.status.as_u16())));

    // Browsing and booking with a token in hand go on as usual.
    let listings = app.get("/listings", None).await;
    assert_eq!(listings.status, 200, "{listings:?}");
    let booked = app.book(&bystander, &movie, 1).await;
    assert_eq!(booked.status, 202, "{booked:?}");
    let metrics = app.get("/metrics", None).await;
    assert!(metrics
        .body
        .as_str()
        .unwrap()
        .contains("boxoffice_rate_limited_total{limit=\"auth\"}"));
    app.stop().await;
}

#[tokio::test]
async fn a_user_over_the_write_limit_gets_429_while_another_user_is_unaffected() {
    let mut app = spawn_app_with(|config| {
        config.rate_limits.writes_per_second = 1;
        config.rate_limits.writes_burst = 5;
    })
    .await;
    let admin = app.admin_token().await;
    let eager = app.customer("eager").await;
    let calm = app.customer("calm").await;
    let movie = app.movie(&admin, "Limited Run", 100).await;

    let mut outcomes = Vec::new();
    for _ in 0..20 {
        let request = app
            .http
            .post(format!("{}/reservations", app.url))
            .bearer_auth(&eager)
            .json(&json!({"listingId": movie, "quantity": 1}));
        outcomes.push(call_with_retry_after(request).await);
    }
    let accepted = outcomes.iter().filter(|(a, _)| a.status == 202).count();
    let limited: Vec<_> = outcomes.iter().filter(|(a, _)| a.status == 429).collect();
    assert!(accepted >= 5, "the burst is let through: {accepted}");
    assert!(
        !limited.is_empty(),
        "20 bookings at once exceed a burst of 5"
    );
    assert_eq!(accepted + limited.len(), 20);
    for (answer, retry_after) in &limited {
        assert_rate_limited(answer, retry_after.as_deref(), "changes by this user");
    }

    // Reading is not limited; another user books as usual.
    assert_eq!(app.get("/reservations", Some(&eager)).await.status, 200);
    let booked = app.book(&calm, &movie, 1).await;
    assert_eq!(booked.status, 202, "{booked:?}");
    app.stop().await;
}
