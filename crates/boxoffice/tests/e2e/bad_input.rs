//! Bad input gets a precise 4xx problem and changes nothing.

use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::helpers::{answer, spawn_app, Answer, TestApp};

fn assert_problem(answer: &Answer, status: u16, detail_contains: &str) {
    assert_eq!(answer.status.as_u16(), status, "{answer:?}");
    assert_eq!(
        answer.content_type, "application/problem+json",
        "{answer:?}"
    );
    assert_eq!(answer.body["status"], status);
    assert!(
        answer.detail().contains(detail_contains),
        "detail {:?} should mention {detail_contains:?}",
        answer.detail()
    );
}

async fn raw(
    app: &TestApp,
    path: &str,
    token: &str,
    content_type: Option<&str>,
    body: String,
) -> Answer {
    let mut request = app
        .http
        .post(format!("{}{path}", app.url))
        .bearer_auth(token)
        .body(body);
    if let Some(content_type) = content_type {
        request = request.header("content-type", content_type);
    }
    answer(request.send().await.unwrap()).await
}

#[tokio::test]
async fn bad_bookings_are_refused_precisely_and_change_nothing() {
    let mut app = spawn_app().await;
    let admin = app.admin_token().await;
    let customer = app.customer("careless").await;
    let movie = app.movie(&admin, "Edge Cases", 10).await;
    let json_type = Some("application/json");

    let cases: Vec<(Answer, u16, &str)> = vec![
        (
            raw(
                &app,
                "/reservations",
                &customer,
                json_type,
                "{not json".into(),
            )
            .await,
            400,
            "not valid JSON",
        ),
        (
            raw(
                &app,
                "/reservations",
                &customer,
                json_type,
                json!({"listingId": movie, "quantity": "two"}).to_string(),
            )
            .await,
            400,
            "quantity",
        ),
        (
            raw(
                &app,
                "/reservations",
                &customer,
                json_type,
                json!({"listingId": movie, "quantity": 1, "extra": true}).to_string(),
            )
            .await,
            400,
            "unknown field `extra`",
        ),
        (
            raw(
                &app,
                "/reservations",
                &customer,
                json_type,
                format!("{{\"listingId\":\"{movie}\",\"quantity\":99999999999999999999999}}"),
            )
            .await,
            400,
            "quantity",
        ),
        (
            raw(
                &app,
                "/reservations",
                &customer,
                None,
                json!({"listingId": movie}).to_string(),
            )
            .await,
            415,
            "application/json",
        ),
        (
            raw(
                &app,
                "/reservations",
                &customer,
                json_type,
                format!(
                    "{{\"listingId\":\"{movie}\",\"pad\":\"{}\"}}",
                    "x".repeat(100_000)
                ),
            )
            .await,
            413,
            "larger than",
        ),
        (
            app.book(&customer, &movie, 0).await,
            422,
            "quantity must be between 1 and 1000 (got 0)",
        ),
        (
            app.post(
                "/reservations",
                Some(&customer),
                json!({"listingId": movie, "quantity": -5}),
            )
            .await,
            422,
            "(got -5)",
        ),
        (
            app.book(&customer, &movie, 1_000_000).await,
            422,
            "(got 1000000)",
        ),
        (
            app.post(
                "/reservations",
                Some(&customer),
                json!({"listingId": "01a1fdc6-0000-7000-8000-000000000000", "quantity": 1}),
            )
            .await,
            422,
            "no listing with id",
        ),
        (
            app.post(
                "/reservations",
                Some(&customer),
                json!({"listingId": "no-such-thing", "quantity": 1}),
            )
            .await,
            422,
            "no listing with id",
        ),
        (
            app.post(
                "/reservations",
                Some(&customer),
                json!({"listingId": movie, "quantity": 1, "paymentMethod": "bitcoin"}),
            )
            .await,
            400,
            "paymentMethod",
        ),
    ];
    for (answer, status, detail) in &cases {
        assert_problem(answer, *status, detail);
    }

    // Nothing was booked, nothing was held.
    assert!(app.list("/reservations", &customer).await.is_empty());
    assert_eq!(app.available(&movie).await, 10);
    app.stop().await;
}

#[tokio::test]
async fn missing_forged_or_insufficient_credentials_are_refused() {
    let mut app = spawn_app().await;
    let admin = app.admin_token().await;
    let customer = app.customer("mallory").await;
    let listing = json!({"kind": "movie", "title": "Heist", "price": 1000, "tickets": 5});

    assert_problem(
        &app.post("/reservations", None, json!({})).await,
        401,
        "authentication is required",
    );
    assert_problem(
        &app.get("/mypage/reservations", Some("not.a.token")).await,
        401,
        "token is invalid",
    );
    let mut forged: Vec<String> = customer.split('.').map(str::to_owned).collect();
    forged[1] = forged[1].chars().rev().collect();
    assert_problem(
        &app.get("/notifications", Some(&forged.join("."))).await,
        401,
        "token is invalid",
    );
    assert_problem(
        &app.post("/listings", Some(&customer), listing.clone())
            .await,
        403,
        "admin role",
    );

    // A customer cannot claim the admin role by sending the gateway's own headers.
    let spoofed = app
        .http
        .post(format!("{}/listings", app.url))
        .bearer_auth(&customer)
        .header("x-boxoffice-role", "admin")
        .header(
            "x-boxoffice-user-id",
            "01a1fdc6-0000-7000-8000-000000000000",
        )
        .json(&listing)
        .send()
        .await
        .unwrap();
    assert_eq!(spoofed.status(), StatusCode::FORBIDDEN);
    let anonymous_spoof = app
        .http
        .get(format!("{}/mypage/reservations", app.url))
        .header("x-boxoffice-role", "admin")
        .header(
            "x-boxoffice-user-id",
            "01a1fdc6-0000-7000-8000-000000000000",
        )
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous_spoof.status(), StatusCode::UNAUTHORIZED);

    assert!(app
        .get("/listings", None)
        .await
        .body
        .as_array()
        .unwrap()
        .is_empty());
    // The admin can, of course.
    assert_eq!(
        app.post("/listings", Some(&admin), listing).await.status,
        201
    );
    app.stop().await;
}

#[tokio::test]
async fn bad_listings_and_accounts_are_refused_precisely() {
    let mut app = spawn_app().await;
    let admin = app.admin_token().await;
    let cases: Vec<(Value, u16, &str)> = vec![
        (
            json!({"kind": "movie", "title": "  ", "price": 1, "tickets": 5}),
            422,
            "title must not be empty",
        ),
        (
            json!({"kind": "movie", "title": "T", "price": -1, "tickets": 5}),
            422,
            "must not be negative",
        ),
        (
            json!({"kind": "movie", "title": "T", "price": 1, "tickets": 0}),
            422,
            "tickets must be between",
        ),
        (
            json!({"kind": "movie", "title": "T", "price": 1}),
            422,
            "needs `tickets`",
        ),
        (
            json!({"kind": "opera", "title": "T", "price": 1, "tickets": 5}),
            400,
            "kind",
        ),
        (
            json!({"title": "T", "price": "free", "tickets": 5}),
            400,
            "price",
        ),
    ];
    for (body, status, detail) in cases {
        assert_problem(
            &app.post("/listings", Some(&admin), body).await,
            status,
            detail,
        );
    }
    assert!(app
        .get("/listings", None)
        .await
        .body
        .as_array()
        .unwrap()
        .is_empty());
    assert_problem(&app.get("/listings/nope", None).await, 404, "no listing");
    assert_problem(
        &app.get("/listings?kind=opera", None).await,
        400,
        "kind must be one of",
    );

    assert_problem(
        &app.post(
            "/auth/signup",
            None,
            json!({"username": "ok-name", "password": "short"}),
        )
        .await,
        422,
        "password must be",
    );
    assert_problem(
        &app.post(
            "/auth/signup",
            None,
            json!({"username": "x", "password": "long enough"}),
        )
        .await,
        422,
        "username must be",
    );
    assert_problem(
        &app.post(
            "/auth/signup",
            None,
            json!({"username": "admin", "password": "long enough"}),
        )
        .await,
        409,
        "taken",
    );
    assert_problem(
        &app.post(
            "/auth/token",
            None,
            json!({"username": "admin", "password": "wrong password"}),
        )
        .await,
        401,
        "invalid username or password",
    );
    assert_problem(&app.get("/nowhere", Some(&admin)).await, 404, "no route");
    app.stop().await;
}
