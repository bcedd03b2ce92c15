//! Lists come a page at a time (`?limit=`, `?after=`), never unbounded.

use serde_json::Value;

use crate::helpers::{eventually, spawn_app};

fn ids(answer: &crate::helpers::Answer) -> Vec<String> {
    answer
        .body
        .as_array()
        .unwrap()
        .iter()
        .map(|item| {
            item.get("id")
                .or_else(|| item.get("reservationId"))
                .and_then(Value::as_str)
                .unwrap()
                .to_owned()
        })
        .collect()
}

#[tokio::test]
async fn every_list_pages_with_limit_and_after_and_refuses_bad_cursors() {
    let app = spawn_app().await;
    let admin = app.admin_token().await;
    let customer = app.customer("pager").await;
    let mut movies = Vec::new();
    for n in 0..5 {
        movies.push(app.movie(&admin, &format!("Sequel {n}"), 10).await);
    }
    let mut bookings = Vec::new();
    for movie in &movies {
        let answer = app.book(&customer, movie, 1).await;
        bookings.push(answer.body["id"].as_str().unwrap().to_owned());
    }
    for id in &bookings {
        app.settled(&customer, id).await;
    }

    // Listings oldest first, reservations newest first; pages join up
    // without gaps or repeats.
    for (path, expected) in [
        ("/listings", movies.clone()),
        ("/reservations", bookings.iter().rev().cloned().collect()),
    ] {
        let mut seen = Vec::new();
        let mut after = String::new();
        for expected_len in [2, 2, 1] {
            let page = app
                .get(&format!("{path}?limit=2{after}"), Some(&customer))
                .await;
            assert_eq!(page.status, 200, "{page:?}");
            let page_ids = ids(&page);
            assert_eq!(page_ids.len(), expected_len, "{path}: {page_ids:?}");
            after = format!("&after={}", page_ids.last().unwrap());
            seen.extend(page_ids);
        }
        assert_eq!(seen, expected, "{path}");
    }
    // My page and notifications page the same way, once the events of
    // all five bookings have reached them (a settled booking is not yet
    // one my page or the notifier has seen).
    for path in ["/mypage/reservations", "/notifications"] {
        let all = eventually(|| async {
            let all = app.list(path, &customer).await;
            (all.len() == 5).then_some(all)
        })
        .await;
        assert_eq!(all.len(), 5, "{path}");
        let first = app.get(&format!("{path}?limit=3"), Some(&customer)).await;
        let rest = app
            .get(
                &format!("{path}?after={}", ids(&first).last().unwrap()),
                Some(&customer),
            )
            .await;
        assert_eq!(ids(&first).len() + ids(&rest).len(), 5, "{path}");
    }

    // The default page is 100; more than 1000 or less than 1 is refused,
    // and so is a cursor that names nothing.
    for path in [
        "/listings",
        "/reservations",
        "/notifications",
        "/mypage/reservations",
    ] {
        for (query, detail) in [
            ("limit=0", "limit must be"),
            ("limit=1001", "limit must be"),
            ("limit=many", "limit must be"),
            ("after=not-an-id", "after must be an id"),
            (
                "after=01a1fdc6-4669-7224-80ee-bed2440fa4c3",
                "after names no",
            ),
        ] {
            let answer = app.get(&format!("{path}?{query}"), Some(&customer)).await;
            assert_eq!(answer.status, 422, "{path}?{query}: {answer:?}");
            assert_eq!(answer.content_type, "application/problem+json");
            assert!(
                answer.detail().contains(detail),
                "{path}?{query}: {answer:?}"
            );
        }
    }
}
