//! Dead letters through the gateway, in front of fake services that answer
//! as the services do.

mod support;

use std::sync::{Arc, Mutex};

use axum::extract::{Path, Request};
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::{Json, Router};
use runtime::http::{problem_response, ROLE_HEADER, USERNAME_HEADER, USER_ID_HEADER};
use serde_json::{json, Value};

use support::{gateway, serve};

fn letter(id: &str, at: &str, status: &str) -> Value {
    json!({
        "id": id, "consumer": "policy", "eventId": format!("event-{id}"),
        "eventType": "boxoffice.reservation.placed", "topic": "boxoffice.reservation",
        "error": "boom", "attempts": 5, "at": at, "status": status,
    })
}

/// The identity headers each fake service last received.
type Seen = Arc<Mutex<Vec<HeaderMap>>>;

/// A service with these dead letters; it refuses callers without the
/// admin role, as the services do.
fn service(letters: Vec<Value>, seen: Seen) -> Router {
    let admin_only = |headers: &HeaderMap| headers.get(ROLE_HEADER).is_some_and(|r| r == "admin");
    let list = {
        let seen = seen.clone();
        move |request: Request| async move {
            seen.lock().unwrap().push(request.headers().clone());
            if !admin_only(request.headers()) {
                return problem_response(StatusCode::FORBIDDEN, "forbidden", "admins only");
            }
            Json(letters).into_response()
        }
    };
    let replay = move |Path(id): Path<String>, headers: HeaderMap| async move {
        seen.lock().unwrap().push(headers.clone());
        if !admin_only(&headers) {
            return problem_response(StatusCode::FORBIDDEN, "forbidden", "admins only");
        }
        match id.as_str() {
            "7" => (
                StatusCode::ACCEPTED,
                Json(letter("7", "2026-01-01T00:00:00Z", "replayed")),
            )
                .into_response(),
            "stubborn" => problem_response(
                StatusCode::CONFLICT,
                "conflict",
                "the handler rejected the event again: boom",
            ),
            _ => problem_response(StatusCode::NOT_FOUND, "not-found", "no dead letter"),
        }
    };
    Router::new()
        .route("/admin/dead-letters", get(list))
        .route("/admin/dead-letters/{id}/replay", post(replay))
}

async fn json_of(response: reqwest::Response) -> (u16, String, Value) {
    let status = response.status().as_u16();
    let content_type = response
        .headers()
        .get("content-type")
        .map_or(String::new(), |v| v.to_str().unwrap().to_owned());
    (
        status,
        content_type,
        response.json().await.unwrap_or(Value::Null),
    )
}

#[tokio::test]
async fn the_admin_sees_every_services_dead_letters_in_one_list_oldest_first() {
    let seen = Seen::default();
    let catalog = serve(service(
        vec![
            letter("1", "2026-03-01T10:00:00Z", "dead"),
            letter("2", "2026-03-01T12:00:00+01:00", "replayed"),
        ],
        seen.clone(),
    ))
    .await;
    let mypage = serve(service(
        vec![letter("1", "2026-03-01T10:30:00Z", "dead")],
        seen.clone(),
    ))
    .await;
    let notification = serve(service(vec![], seen.clone())).await;
    let gateway = gateway(&[
        ("catalog", "/listings", &catalog),
        ("mypage", "/mypage", &mypage),
        ("notification", "/notifications", &notification),
    ])
    .await;
    let admin = gateway.admin_token().await;

    let (status, _, all) = json_of(
        gateway
            .http
            .get(format!("{}/admin/dead-letters", gateway.url))
            .bearer_auth(&admin)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 200, "{all}");
    let order: Vec<(String, String)> = all
        .as_array()
        .unwrap()
        .iter()
        .map(|l| {
            (
                l["service"].as_str().unwrap().to_owned(),
                l["id"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    // 12:00+01:00 is 11:00Z: after mypage's 10:30Z.
    assert_eq!(
        order,
        [("catalog", "1"), ("mypage", "1"), ("catalog", "2")]
            .map(|(s, i)| (s.to_owned(), i.to_owned()))
    );
    assert_eq!(all[0]["eventType"], "boxoffice.reservation.placed");
    assert_eq!(all[0]["attempts"], 5);
    for headers in seen.lock().unwrap().iter() {
        assert_eq!(headers[ROLE_HEADER], "admin");
        assert_eq!(headers[USERNAME_HEADER], "admin");
        assert!(headers.contains_key(USER_ID_HEADER));
        assert!(headers.contains_key("x-request-id"));
    }

    let (status, _, only) = json_of(
        gateway
            .http
            .get(format!("{}/admin/dead-letters?service=mypage", gateway.url))
            .bearer_auth(&admin)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(only.as_array().unwrap().len(), 1);
    assert_eq!(only[0]["service"], "mypage");
}

#[tokio::test]
async fn a_service_that_does_not_answer_is_named_in_a_503() {
    let seen = Seen::default();
    let catalog = serve(service(vec![], seen)).await;
    // Nothing listens here any more.
    let gone = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}", listener.local_addr().unwrap())
    };
    // And this one answers, but has no dead-letter endpoint.
    let old = serve(Router::new().route("/mypage/reservations", get(|| async { "[]" }))).await;
    let gateway = gateway(&[
        ("catalog", "/listings", &catalog),
        ("reservation", "/reservations", &gone),
    ])
    .await;
    let admin = gateway.admin_token().await;
    let response = gateway
        .http
        .get(format!("{}/admin/dead-letters", gateway.url))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap();
    assert!(response.headers().contains_key("retry-after"));
    let (status, content_type, problem) = json_of(response).await;
    assert_eq!(status, 503);
    assert_eq!(content_type, "application/problem+json");
    assert!(
        problem["detail"].as_str().unwrap().contains("reservation"),
        "{problem}"
    );

    let gateway = support::gateway(&[("mypage", "/mypage", &old)]).await;
    let admin = gateway.admin_token().await;
    for (method, path) in [
        ("GET", "/admin/dead-letters"),
        ("POST", "/admin/dead-letters/mypage/7/replay"),
    ] {
        let (status, _, problem) = json_of(
            gateway
                .http
                .request(method.parse().unwrap(), format!("{}{path}", gateway.url))
                .bearer_auth(&admin)
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(status, 503, "{method} {path}: {problem}");
        assert!(problem["detail"].as_str().unwrap().contains("mypage"));
    }
}

#[tokio::test]
async fn a_replay_goes_to_the_named_service_with_the_callers_identity() {
    let seen = Seen::default();
    let catalog = serve(service(vec![], seen.clone())).await;
    let gateway = gateway(&[("catalog", "/listings", &catalog)]).await;
    let admin = gateway.admin_token().await;
    let replay = |service: &str, id: &str| {
        gateway
            .http
            .post(format!(
                "{}/admin/dead-letters/{service}/{id}/replay",
                gateway.url
            ))
            .bearer_auth(&admin)
            .send()
    };

    let (status, _, replayed) = json_of(replay("catalog", "7").await.unwrap()).await;
    assert_eq!(status, 202, "{replayed}");
    assert_eq!(replayed["status"], "replayed");
    let headers = seen.lock().unwrap().pop().unwrap();
    assert_eq!(headers[ROLE_HEADER], "admin");
    assert_eq!(headers[USERNAME_HEADER], "admin");

    let (status, content_type, problem) =
        json_of(replay("catalog", "stubborn").await.unwrap()).await;
    assert_eq!(
        (status, content_type.as_str()),
        (409, "application/problem+json")
    );
    assert!(problem["detail"].as_str().unwrap().contains("rejected"));

    let (status, _, _) = json_of(replay("catalog", "unknown").await.unwrap()).await;
    assert_eq!(status, 404);

    let (status, content_type, problem) = json_of(replay("billing", "7").await.unwrap()).await;
    assert_eq!(
        (status, content_type.as_str()),
        (404, "application/problem+json")
    );
    assert!(
        problem["detail"].as_str().unwrap().contains("billing"),
        "{problem}"
    );
}

#[tokio::test]
async fn only_admins_may_list_or_replay_dead_letters() {
    let seen = Seen::default();
    let catalog = serve(service(
        vec![letter("1", "2026-01-01T00:00:00Z", "dead")],
        seen.clone(),
    ))
    .await;
    let gateway = gateway(&[("catalog", "/listings", &catalog)]).await;
    let customer = gateway.customer("curious").await;
    for (method, path) in [
        ("GET", "/admin/dead-letters"),
        ("POST", "/admin/dead-letters/catalog/1/replay"),
    ] {
        let url = format!("{}{path}", gateway.url);
        let anonymous = gateway
            .http
            .request(method.parse().unwrap(), &url)
            .send()
            .await
            .unwrap();
        assert_eq!(anonymous.status(), 401, "{method} {path}");
        let (status, content_type, _) = json_of(
            gateway
                .http
                .request(method.parse().unwrap(), &url)
                .bearer_auth(&customer)
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(
            (status, content_type.as_str()),
            (403, "application/problem+json")
        );
    }
    assert!(
        seen.lock().unwrap().is_empty(),
        "nothing reached the service"
    );
}
