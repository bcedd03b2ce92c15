//! The gateway's route table: the aliases of the public API answer what
//! their canonical paths answer, under the same access rules; a table in
//! the configuration is checked before anything starts.

use boxoffice::config::RouteConfig;
use boxoffice::{Config, Platform};
use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::helpers::{eventually, spawn_app, spawn_app_with, TestApp, ADMIN_PASSWORD};

/// Asks `alias` and `canonical` with the same token; both answer 200 with
/// the same JSON, which is returned.
async fn same_answer(app: &TestApp, alias: &str, canonical: &str, token: Option<&str>) -> Value {
    let (by_alias, by_canonical) = (app.get(alias, token).await, app.get(canonical, token).await);
    assert_eq!(
        by_canonical.status,
        StatusCode::OK,
        "{canonical}: {by_canonical:?}"
    );
    assert_eq!(by_alias.status, StatusCode::OK, "{alias}: {by_alias:?}");
    assert_eq!(by_alias.body, by_canonical.body, "{alias} and {canonical}");
    by_alias.body
}

#[tokio::test]
async fn the_aliases_answer_what_their_canonical_routes_answer() {
    let app = spawn_app().await;
    let admin = app.admin_token().await;
    let customer = app.customer("alias-user").await;
    let movie = app.movie(&admin, "Aliased", 10).await;
    let showing = app.showing(&admin, "Aliased in seats", 2, 3).await;

    // Browsing needs no token, by either name.
    let items = same_answer(&app, "/items", "/listings?kind=musical", None).await;
    assert!(items
        .as_array()
        .unwrap()
        .iter()
        .all(|item| item["kind"] == "musical"));
    // The alias's own query wins over the client's, the rest goes along.
    same_answer(
        &app,
        "/items?kind=movie&limit=5",
        "/listings?kind=musical&limit=5",
        None,
    )
    .await;
    let item = same_answer(
        &app,
        &format!("/items/{movie}"),
        &format!("/listings/{movie}"),
        None,
    )
    .await;
    assert_eq!(item["title"], "Aliased");
    let seats = same_answer(
        &app,
        &format!("/seats/{showing}"),
        &format!("/listings/{showing}/seats"),
        None,
    )
    .await;
    assert!(seats[0]["label"].is_string(), "{seats}");
    let unknown = app
        .get(&format!("/items/{}", uuid::Uuid::now_v7()), None)
        .await;
    assert_eq!(unknown.status, StatusCode::NOT_FOUND);

    // My pages: the caller's own, and never without a token.
    let booked = app.book(&customer, &movie, 2).await;
    let id = booked.body["id"].as_str().unwrap().to_owned();
    app.settled(&customer, &id).await;
    let mine = eventually(|| async {
        let rows = app.get("/myPages", Some(&customer)).await.body;
        (rows[0]["status"] == "confirmed").then_some(rows)
    })
    .await;
    assert_eq!(mine[0]["reservationId"], id.as_str());
    // Compared once the booking has settled on my page (captured, points
    // earned), so that nothing changes between the two reads.
    eventually(|| async {
        let detail = app
            .get(&format!("/mypage/reservations/{id}"), Some(&customer))
            .await
            .body;
        (detail["payment"]["status"] == "captured" && detail["points"]["earned"] != 0).then_some(())
    })
    .await;
    same_answer(&app, "/myPages", "/mypage/reservations", Some(&customer)).await;
    same_answer(
        &app,
        &format!("/myPages/{id}"),
        &format!("/mypage/reservations/{id}"),
        Some(&customer),
    )
    .await;
    for path in ["/myPages".to_owned(), format!("/myPages/{id}")] {
        let anonymous = app.get(&path, None).await;
        assert_eq!(anonymous.status, StatusCode::UNAUTHORIZED, "{path}");
    }

    // Changing the catalog stays an admin's, by any name.
    let refused = app
        .post(
            "/items",
            Some(&customer),
            json!({"title": "x", "price": 1, "tickets": 1}),
        )
        .await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN, "{refused:?}");
}

#[tokio::test]
async fn a_configured_route_is_served_and_paths_for_services_stay_closed() {
    let app = spawn_app_with(|config| {
        config.gateway.routes.push(RouteConfig {
            prefix: "/films".into(),
            service: "catalog".into(),
            rewrite: Some("/listings?kind=movie".into()),
        });
        // Everything else to payment: still not its paths for services.
        config.gateway.routes.push(RouteConfig {
            prefix: "/".into(),
            service: "payment".into(),
            rewrite: None,
        });
    })
    .await;
    let admin = app.admin_token().await;
    app.movie(&admin, "Configured", 10).await;
    // A path the access policy does not name is for signed-in users, even
    // when it leads to a public one.
    assert_eq!(
        app.get("/films", None).await.status,
        StatusCode::UNAUTHORIZED
    );
    let customer = app.customer("prober").await;
    let films = same_answer(&app, "/films", "/listings?kind=movie", Some(&customer)).await;
    assert_eq!(films[0]["title"], "Configured");
    for path in ["/internal/authorisations", "//internal/authorisations"] {
        let probe = app.post(path, Some(&customer), json!({})).await;
        assert_eq!(probe.status, StatusCode::NOT_FOUND, "{path}: {probe:?}");
    }
}

#[tokio::test]
async fn a_route_to_a_service_that_does_not_exist_stops_the_start_and_names_it() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = Config {
        port: 0,
        data_dir: dir.path().to_path_buf(),
        admin_password: Some(ADMIN_PASSWORD.to_owned()),
        ..Config::default()
    };
    config.gateway.routes.push(RouteConfig {
        prefix: "/tickets".into(),
        service: "ticketing".into(),
        rewrite: None,
    });
    let error = match Platform::start(&config).await {
        Ok(_) => panic!("a platform started with a route to nowhere"),
        Err(error) => format!("{error:#}"),
    };
    assert!(error.contains("\"ticketing\""), "{error}");
    assert!(error.contains("\"/tickets\""), "{error}");

    // A prefix twice, or one that is not a path, is refused as clearly.
    config.gateway.routes.pop();
    for (prefix, expected) in [("/listings", "twice"), ("listings", "must start with '/'")] {
        let mut config = config.clone();
        config.gateway.routes.push(RouteConfig {
            prefix: prefix.into(),
            service: "catalog".into(),
            rewrite: None,
        });
        let error = match Platform::start(&config).await {
            Ok(_) => panic!("a platform started with the route {prefix:?}"),
            Err(error) => format!("{error:#}"),
        };
        assert!(error.contains(expected), "{error}");
    }
}
