//! Screens and seated movie showings, through the gateway.

use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::helpers::{spawn_app, Answer, TestApp};

fn assert_problem(answer: &Answer, status: u16, detail_contains: &str) {
    assert_eq!(answer.status.as_u16(), status, "{answer:?}");
    assert_eq!(
        answer.content_type, "application/problem+json",
        "{answer:?}"
    );
    assert!(
        answer.detail().contains(detail_contains),
        "detail {:?} should mention {detail_contains:?}",
        answer.detail()
    );
}

fn names(screens: &[Value]) -> Vec<&str> {
    screens
        .iter()
        .map(|screen| screen["name"].as_str().unwrap())
        .collect()
}

async fn seated_movie(app: &TestApp, admin: &str, seating: Value) -> Answer {
    app.post(
        "/listings",
        Some(admin),
        json!({"title": "Dune", "price": 1800, "seating": seating, "startsAt": "2026-12-24T19:30:00Z"}),
    )
    .await
}

#[tokio::test]
async fn the_default_screens_are_listed_and_an_admin_registers_another() {
    let mut app = spawn_app().await;
    let admin = app.admin_token().await;
    let screens = app.list("/screens", &admin).await;
    assert_eq!(names(&screens), ["Hall 1", "Hall 2", "Hall 3"]);
    assert_eq!(screens[0]["rows"], 10);
    assert_eq!(screens[0]["seatsPerRow"], 12);
    assert_eq!(screens[0]["seats"], 120);

    let studio = app
        .post(
            "/screens",
            Some(&admin),
            json!({"name": " Studio ", "rows": 3, "seatsPerRow": 4, "blocked": ["a-1", "C-4"]}),
        )
        .await;
    assert_eq!(studio.status, StatusCode::CREATED, "{studio:?}");
    assert_eq!(studio.body["name"], "Studio");
    assert_eq!(studio.body["seats"], 10);
    assert_eq!(studio.body["blocked"], json!(["A-1", "C-4"]));
    let id = studio.body["id"].as_str().unwrap();
    let read = app.get(&format!("/screens/{id}"), Some(&admin)).await;
    assert_eq!(read.body, studio.body);
    assert_eq!(
        names(&app.list("/screens", &admin).await),
        ["Hall 1", "Hall 2", "Hall 3", "Studio"]
    );

    // A restart adds no second set of halls.
    app.restart().await;
    let admin = app.admin_token().await;
    assert_eq!(app.list("/screens", &admin).await.len(), 4);
    app.stop().await;
}

#[tokio::test]
async fn bad_screens_are_refused_precisely_and_nothing_is_stored() {
    let mut app = spawn_app().await;
    let admin = app.admin_token().await;
    let cases = [
        (
            json!({"name": "Zero", "rows": 0, "seatsPerRow": 5}),
            422,
            "rows must be between 1 and 26",
        ),
        (
            json!({"name": "Deep", "rows": 27, "seatsPerRow": 5}),
            422,
            "(got 27)",
        ),
        (
            json!({"name": "Wide", "rows": 2, "seatsPerRow": 100}),
            422,
            "seatsPerRow",
        ),
        (
            json!({"name": "Odd", "rows": 2, "seatsPerRow": 2, "blocked": ["C-1", "A-1"]}),
            422,
            "C-1 outside the 2 × 2 grid",
        ),
        (
            json!({"name": "Typo", "rows": 2, "seatsPerRow": 2, "blocked": ["A1x"]}),
            422,
            "\"A1x\"",
        ),
        (
            json!({"name": "Dark", "rows": 1, "seatsPerRow": 1, "blocked": ["A-1"]}),
            422,
            "every seat is blocked",
        ),
        (
            json!({"name": "  ", "rows": 2, "seatsPerRow": 2}),
            422,
            "name",
        ),
        (
            json!({"name": "Hall 1", "rows": 2, "seatsPerRow": 2}),
            409,
            "Hall 1",
        ),
        (
            json!({"name": "Extra", "rows": 2, "seatsPerRow": 2, "balcony": true}),
            400,
            "balcony",
        ),
    ];
    for (body, status, detail) in cases {
        let answer = app.post("/screens", Some(&admin), body.clone()).await;
        assert_problem(&answer, status, detail);
    }
    assert_eq!(app.list("/screens", &admin).await.len(), 3);
    app.stop().await;
}

#[tokio::test]
async fn customers_may_not_see_or_change_the_screens() {
    let mut app = spawn_app().await;
    let customer = app.customer("curious").await;
    assert_eq!(app.get("/screens", Some(&customer)).await.status, 403);
    let answer = app
        .post(
            "/screens",
            Some(&customer),
            json!({"name": "Mine", "rows": 2, "seatsPerRow": 2}),
        )
        .await;
    assert_eq!(answer.status, 403);
    assert_eq!(app.get("/screens", None).await.status, 401);
    app.stop().await;
}

#[tokio::test]
async fn a_seated_movie_gets_the_smallest_free_screen_and_shows_every_seat_available() {
    let mut app = spawn_app().await;
    let admin = app.admin_token().await;
    let movie = seated_movie(&app, &admin, json!({"rows": 5, "seatsPerRow": 8})).await;
    assert_eq!(movie.status, StatusCode::CREATED, "{movie:?}");
    assert_eq!(movie.body["screen"]["name"], "Hall 3");
    assert_eq!(
        movie.body["capacity"],
        json!({"type": "seated", "total": 48, "available": 48})
    );
    assert_eq!(movie.body["startsAt"], "2026-12-24T19:30:00.000000Z");
    let id = movie.body["id"].as_str().unwrap();
    let seats = app.get(&format!("/listings/{id}/seats"), None).await;
    assert_eq!(seats.status, 200, "{seats:?}");
    let seats = seats.body.as_array().unwrap();
    assert_eq!(seats.len(), 48);
    assert_eq!(seats[0], json!({"label": "A-1", "status": "available"}));
    assert_eq!(seats[8]["label"], "B-1");
    assert!(seats.iter().all(|seat| seat["status"] == "available"));

    // An hour later Hall 3 is busy: the next smallest fitting screen.
    let later = app
        .post(
            "/listings",
            Some(&admin),
            json!({"title": "Dune", "price": 1800, "seating": {"rows": 5, "seatsPerRow": 8},
                   "startsAt": "2026-12-24T20:30:00Z"}),
        )
        .await;
    assert_eq!(later.body["screen"]["name"], "Hall 2", "{later:?}");
    let read = app.get(&format!("/listings/{id}"), None).await;
    assert_eq!(read.body, movie.body);
    app.stop().await;
}

#[tokio::test]
async fn a_named_screen_is_used_unless_it_is_busy_or_unknown() {
    let mut app = spawn_app().await;
    let admin = app.admin_token().await;
    let screens = app.list("/screens", &admin).await;
    let hall1 = screens[0]["id"].as_str().unwrap();
    let movie = seated_movie(&app, &admin, json!({"screenId": hall1})).await;
    assert_eq!(movie.status, StatusCode::CREATED, "{movie:?}");
    assert_eq!(movie.body["screen"], json!({"id": hall1, "name": "Hall 1"}));
    assert_eq!(movie.body["capacity"]["total"], 120);

    let busy = seated_movie(&app, &admin, json!({"screenId": hall1})).await;
    assert_problem(&busy, 409, movie.body["id"].as_str().unwrap());
    let unknown = "0196b5c3-1b2a-7000-8000-000000000000";
    let missing = seated_movie(&app, &admin, json!({"screenId": unknown})).await;
    assert_problem(&missing, 422, unknown);
    app.stop().await;
}

#[tokio::test]
async fn seated_movies_that_cannot_be_placed_are_refused_and_quotas_work_as_before() {
    let mut app = spawn_app().await;
    let admin = app.admin_token().await;
    let huge = seated_movie(&app, &admin, json!({"rows": 30, "seatsPerRow": 40})).await;
    assert_problem(
        &huge,
        422,
        "no free screen fits a showing of 30 rows × 40 seats (largest: Hall 1, 10 × 12)",
    );
    let both = app
        .post(
            "/listings",
            Some(&admin),
            json!({"title": "Both", "price": 1800, "tickets": 10, "seating": {"rows": 2, "seatsPerRow": 2}}),
        )
        .await;
    assert_problem(&both, 422, "not both");
    let neither = app
        .post(
            "/listings",
            Some(&admin),
            json!({"title": "Neither", "price": 1800}),
        )
        .await;
    assert_problem(&neither, 422, "`tickets`");
    let half = seated_movie(&app, &admin, json!({"rows": 2})).await;
    assert_problem(&half, 422, "seatsPerRow");
    let stray = seated_movie(&app, &admin, json!({"rows": 2, "seatsPerRow": 2, "vip": 1})).await;
    assert_problem(&stray, 400, "vip");
    let bad_time = app
        .post(
            "/listings",
            Some(&admin),
            json!({"title": "When", "price": 1800, "tickets": 5, "startsAt": "soon"}),
        )
        .await;
    assert_problem(&bad_time, 422, "startsAt");
    let small = seated_movie(&app, &admin, json!({"rows": 2, "seatsPerRow": 2})).await;
    assert_eq!(small.status, 201, "{small:?}");
    let negative = app
        .post(
            "/listings",
            Some(&admin),
            json!({"title": "Cheap", "price": -1, "seating": {"rows": 2, "seatsPerRow": 2}}),
        )
        .await;
    assert_problem(&negative, 422, "price");

    // Quota movies: unchanged, and without a seat map.
    let quota = app.movie(&admin, "LALALand", 100).await;
    let listing = app.get(&format!("/listings/{quota}"), None).await;
    assert_eq!(
        listing.body["capacity"],
        json!({"type": "quota", "total": 100, "available": 100})
    );
    assert!(listing.body.get("screen").is_none());
    assert!(listing.body.get("startsAt").is_none());
    let seats = app.get(&format!("/listings/{quota}/seats"), None).await;
    assert_problem(&seats, 404, "sells tickets by quota and has no seat map");
    let nowhere = app
        .get("/listings/0196b5c3-1b2a-7000-8000-000000000000/seats", None)
        .await;
    assert_problem(&nowhere, 404, "no listing");
    // Only the small seated showing and the quota movie were stored.
    assert_eq!(app.list("/listings", &admin).await.len(), 2);
    app.stop().await;
}
