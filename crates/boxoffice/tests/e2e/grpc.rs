//! Reservations over gRPC, with the generated client: the same bookings as
//! REST, the same token, the same rules, the REST problem's detail as the
//! status message.

use reservation::grpc_api::reservations_client::ReservationsClient;
use reservation::grpc_api::{
    CancelReservationRequest, GetReservationRequest, ListReservationsRequest, PaymentMethod,
    PlaceReservationRequest, Status,
};
use tonic::transport::Channel;
use tonic::{Code, Request};

use crate::helpers::{eventually, spawn_app_with, TestApp};

async fn spawn_app_with_grpc() -> (TestApp, ReservationsClient<Channel>) {
    let app = spawn_app_with(|config| config.reservation.grpc_port = Some(0)).await;
    let url = app
        .platform
        .as_ref()
        .and_then(|p| p.grpc_url.clone())
        .expect("the gRPC API is served when a port is configured");
    let channel = Channel::from_shared(url)
        .unwrap()
        .connect()
        .await
        .expect("the gRPC API answers");
    (app, ReservationsClient::new(channel))
}

/// `message` with the caller's access token, as the metadata carries it.
fn as_caller<T>(token: &str, message: T) -> Request<T> {
    let mut request = Request::new(message);
    request.metadata_mut().insert(
        "authorization",
        format!("Bearer {token}").parse().expect("a token is ASCII"),
    );
    request
}

fn booking(listing: &str, quantity: i64, key: &str) -> PlaceReservationRequest {
    PlaceReservationRequest {
        listing_id: listing.to_owned(),
        quantity: Some(quantity),
        seats: vec![],
        payment_method: PaymentMethod::Card.into(),
        idempotency_key: key.to_owned(),
    }
}

#[tokio::test]
async fn a_customer_books_reads_lists_and_cancels_over_grpc() {
    let (mut app, mut client) = spawn_app_with_grpc().await;
    let admin = app.admin_token().await;
    let alice = app.customer("grpc-alice").await;
    let movie = app.movie(&admin, "Wire Protocols", 10).await;

    let placed = client
        .place_reservation(as_caller(&alice, booking(&movie, 2, "grpc-order-1")))
        .await
        .expect("the booking is taken")
        .into_inner();
    assert_eq!(placed.status(), Status::Pending);
    assert_eq!(placed.quantity, 2);
    assert_eq!(placed.listing_id, movie);
    assert!(
        placed.deadline.is_some(),
        "a pending booking has a deadline"
    );
    // The same key again: the same booking, not a second one.
    let again = client
        .place_reservation(as_caller(&alice, booking(&movie, 2, "grpc-order-1")))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(again.id, placed.id);

    let confirmed = eventually(|| {
        let mut client = client.clone();
        let request = as_caller(
            &alice,
            GetReservationRequest {
                id: placed.id.clone(),
            },
        );
        async move {
            let r = client.get_reservation(request).await.unwrap().into_inner();
            (r.status() != Status::Pending).then_some(r)
        }
    })
    .await;
    assert_eq!(confirmed.status(), Status::Confirmed);
    assert_eq!(confirmed.deadline, None);
    assert_eq!(confirmed.payment_method(), PaymentMethod::Card);
    // One booking, seen alike by both APIs.
    let rest = app
        .get(&format!("/reservations/{}", placed.id), Some(&alice))
        .await;
    assert_eq!(rest.body["status"], "confirmed");
    assert_eq!(rest.body["amount"], confirmed.amount);
    assert_eq!(rest.body["createdAt"], confirmed.created_at.as_str());
    assert_eq!(app.available(&movie).await, 8);

    let second = client
        .place_reservation(as_caller(&alice, booking(&movie, 1, "")))
        .await
        .unwrap()
        .into_inner();
    let listed = client
        .list_reservations(as_caller(&alice, ListReservationsRequest::default()))
        .await
        .unwrap()
        .into_inner()
        .reservations;
    let ids: Vec<&str> = listed.iter().map(|r| r.id.as_str()).collect();
    assert_eq!(
        ids,
        [second.id.as_str(), placed.id.as_str()],
        "newest first"
    );
    let next_page = client
        .list_reservations(as_caller(
            &alice,
            ListReservationsRequest {
                limit: Some(1),
                after: Some(second.id.clone()),
            },
        ))
        .await
        .unwrap()
        .into_inner()
        .reservations;
    assert_eq!(next_page.len(), 1);
    assert_eq!(next_page[0].id, placed.id);

    // Another customer: someone else's booking is as if it did not exist.
    let bob = app.customer("grpc-bob").await;
    let peek = client
        .get_reservation(as_caller(
            &bob,
            GetReservationRequest {
                id: placed.id.clone(),
            },
        ))
        .await
        .unwrap_err();
    assert_eq!(peek.code(), Code::NotFound, "{peek:?}");
    let cancel = client
        .cancel_reservation(as_caller(
            &bob,
            CancelReservationRequest {
                id: placed.id.clone(),
            },
        ))
        .await
        .unwrap_err();
    assert_eq!(cancel.code(), Code::NotFound, "{cancel:?}");
    let bobs = client
        .list_reservations(as_caller(&bob, ListReservationsRequest::default()))
        .await
        .unwrap()
        .into_inner();
    assert!(bobs.reservations.is_empty());
    // An admin sees everyone's.
    let all = client
        .list_reservations(as_caller(&admin, ListReservationsRequest::default()))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(all.reservations.len(), 2);

    let cancelled = client
        .cancel_reservation(as_caller(
            &alice,
            CancelReservationRequest {
                id: placed.id.clone(),
            },
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(cancelled.id, placed.id);
    eventually(|| async {
        let status = app.reservation_status(&alice, &placed.id).await;
        (status == "cancelled").then_some(())
    })
    .await;
    app.stop().await;
}

#[tokio::test]
async fn grpc_refuses_what_rest_refuses_with_the_same_words() {
    let (mut app, mut client) = spawn_app_with_grpc().await;
    let admin = app.admin_token().await;
    let alice = app.customer("grpc-carol").await;
    let movie = app.movie(&admin, "Status Codes", 10).await;

    let anonymous = client
        .list_reservations(Request::new(ListReservationsRequest::default()))
        .await
        .unwrap_err();
    assert_eq!(anonymous.code(), Code::Unauthenticated);
    assert!(
        anonymous.message().contains("authentication is required"),
        "{anonymous:?}"
    );
    let forged = client
        .list_reservations(as_caller("not.a.token", ListReservationsRequest::default()))
        .await
        .unwrap_err();
    assert_eq!(forged.code(), Code::Unauthenticated);
    assert_eq!(forged.message(), "the token is invalid");

    let no_tickets = client
        .place_reservation(as_caller(&alice, booking(&movie, 0, "")))
        .await
        .unwrap_err();
    assert_eq!(no_tickets.code(), Code::InvalidArgument);
    let rest = app.book(&alice, &movie, 0).await;
    assert_eq!(rest.status, 422);
    assert_eq!(
        no_tickets.message(),
        rest.detail(),
        "the REST problem's detail"
    );

    let bad_key = client
        .place_reservation(as_caller(&alice, booking(&movie, 1, &"k".repeat(201))))
        .await
        .unwrap_err();
    assert_eq!(bad_key.code(), Code::InvalidArgument);
    assert!(
        bad_key
            .message()
            .contains("Idempotency-Key must be 1 to 200"),
        "{bad_key:?}"
    );
    let bad_page = client
        .list_reservations(as_caller(
            &alice,
            ListReservationsRequest {
                limit: Some(0),
                after: None,
            },
        ))
        .await
        .unwrap_err();
    assert_eq!(bad_page.code(), Code::InvalidArgument);
    assert!(bad_page.message().contains("limit must be"), "{bad_page:?}");
    let unknown = client
        .get_reservation(as_caller(
            &alice,
            GetReservationRequest {
                id: "no-such-booking".to_owned(),
            },
        ))
        .await
        .unwrap_err();
    assert_eq!(unknown.code(), Code::NotFound);

    // A booking already cancelled cannot be cancelled again.
    let placed = client
        .place_reservation(as_caller(&alice, booking(&movie, 1, "")))
        .await
        .unwrap()
        .into_inner();
    let cancel = || {
        as_caller(
            &alice,
            CancelReservationRequest {
                id: placed.id.clone(),
            },
        )
    };
    client.cancel_reservation(cancel()).await.unwrap();
    eventually(|| async {
        let status = app.reservation_status(&alice, &placed.id).await;
        (status == "cancelled").then_some(())
    })
    .await;
    let twice = client.cancel_reservation(cancel()).await.unwrap_err();
    assert_eq!(twice.code(), Code::FailedPrecondition, "{twice:?}");
    app.stop().await;
}
