//! One booking is one trace: the platform, started in this process with
//! its spans exported over OTLP/HTTP to a receiver the test runs on
//! loopback, books a card-paid ticket under a client's `traceparent`, and
//! every span of it — the gateway, reservation, payment, each consumer
//! that handled the saga's events, and the capture the settler does in the
//! background afterwards — must share the client's trace id, each under
//! the span that caused it.
//!
//! Its own test binary: traces are switched on for the whole process.

#[path = "common/mod.rs"]
mod common;

use std::collections::HashMap;

use boxoffice::telemetry::{exporting_to, spans_layer};
use boxoffice::Platform;
use common::gateway::{eventually, Gateway};
use common::otlp::{Received, Receiver};
use tracing_subscriber::filter::LevelFilter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::Layer;

const CLIENT_TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const CLIENT_SPAN: &str = "00f067aa0ba902b7";

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_card_booking_is_one_trace_from_the_gateway_through_the_saga() {
    let receiver = Receiver::start().await;
    let provider = exporting_to(&receiver.traces_url(), "boxoffice").unwrap();
    let subscriber =
        tracing_subscriber::registry().with(spans_layer(&provider).with_filter(LevelFilter::INFO));
    tracing::subscriber::set_global_default(subscriber).unwrap();
    runtime::telemetry::switch_on();

    let dir = tempfile::tempdir().unwrap();
    let platform = Platform::start(&common::config::for_tests(dir.path()))
        .await
        .unwrap();
    let app = Gateway::new(platform.url.clone());
    let admin = app.admin_token().await;
    let movie = app.movie(&admin, "Traced", 10).await;
    let customer = app.customer("tracy").await;

    // The client starts the trace; the gateway continues it.
    let traceparent = format!("00-{CLIENT_TRACE}-{CLIENT_SPAN}-01");
    let reservation = app.book_traced(&customer, &movie, &traceparent).await;

    // The saga goes on after the booking is confirmed (capture, points,
    // read models): wait for its last steps' spans.
    let wanted = [
        ("reservation.saga", "handle TicketsReserved"),
        ("payment.settlement", "handle ReservationConfirmed"),
        ("catalog.inventory", "handle ReservationConfirmed"),
        ("mypage.projection", "handle ReservationConfirmed"),
        ("notification.sender", "handle ReservationConfirmed"),
        ("wallet.points", "handle PaymentCaptured"),
        ("mypage.projection", "handle PointsEarned"),
    ];
    let trace = eventually(|| {
        let (receiver, provider) = (&receiver, provider.clone());
        async move {
            tokio::task::spawn_blocking(move || provider.force_flush())
                .await
                .unwrap()
                .unwrap();
            let trace: Vec<Received> = receiver.trace(CLIENT_TRACE);
            let has = |(consumer, name): &(&str, &str)| {
                trace
                    .iter()
                    .any(|s| s.name == *name && s.attr("boxoffice.consumer") == *consumer)
            };
            wanted.iter().all(has).then_some(trace)
        }
    })
    .await;

    let ids: HashMap<&str, &Received> = trace.iter().map(|s| (s.span_id.as_str(), s)).collect();
    let one = |name: &str, key: &str, value: &str| -> &Received {
        let found: Vec<&Received> = trace
            .iter()
            .filter(|s| s.name == name && s.attr(key) == value)
            .collect();
        assert_eq!(
            found.len(),
            1,
            "one span {name} with {key}={value}: {trace:#?}"
        );
        found[0]
    };

    // The synchronous part: client → gateway → reservation → payment.
    let gateway = one("POST /reservations", "boxoffice.service", "gateway");
    assert_eq!(
        gateway.parent, CLIENT_SPAN,
        "the gateway continues the client's span"
    );
    assert_eq!(gateway.attr("boxoffice.upstream"), "reservation");
    let served = one("POST /reservations", "boxoffice.service", "reservation");
    assert_eq!(served.parent, gateway.span_id);
    let place = one("place reservation", "reservation.id", &reservation);
    assert_eq!(place.parent, served.span_id);
    let authorisation = one(
        "POST /internal/authorisations",
        "boxoffice.service",
        "payment",
    );
    assert_eq!(
        authorisation.parent, place.span_id,
        "reservation's call to payment"
    );
    let authorise = one("authorise payment", "reservation.id", &reservation);
    assert_eq!(authorise.parent, authorisation.span_id);

    // The events: each handling is a child of the span that wrote the event.
    let held = one(
        "handle ReservationPlaced",
        "boxoffice.consumer",
        "catalog.inventory",
    );
    assert_eq!(
        held.parent, place.span_id,
        "ReservationPlaced was written by place"
    );
    assert_eq!(held.attr("reservation.id"), reservation);
    let answered = one(
        "handle TicketsReserved",
        "boxoffice.consumer",
        "reservation.saga",
    );
    assert_eq!(
        answered.parent, held.span_id,
        "TicketsReserved was written by catalog"
    );
    for consumer in [
        "payment.settlement",
        "catalog.inventory",
        "mypage.projection",
        "notification.sender",
    ] {
        let confirmed = one(
            "handle ReservationConfirmed",
            "boxoffice.consumer",
            consumer,
        );
        assert_eq!(
            confirmed.parent, answered.span_id,
            "ReservationConfirmed, as {consumer} got it, was written by the saga's step"
        );
    }
    // Payment's authorisation event reached the read models under the
    // authorisation's span.
    let authorised = one(
        "handle PaymentAuthorised",
        "boxoffice.consumer",
        "mypage.projection",
    );
    assert_eq!(authorised.parent, authorise.span_id);

    // The capture is done later by payment's settler, but continues the
    // trace of the confirmation that asked for it; the points it earns, and
    // my page's record of them, follow from it.
    let asked = one(
        "handle ReservationConfirmed",
        "boxoffice.consumer",
        "payment.settlement",
    );
    let capture = one("capture payment", "reservation.id", &reservation);
    assert_eq!(
        capture.parent, asked.span_id,
        "the settler continues the trace"
    );
    let earning = one(
        "handle PaymentCaptured",
        "boxoffice.consumer",
        "wallet.points",
    );
    assert_eq!(
        earning.parent, capture.span_id,
        "PaymentCaptured was written by the capture"
    );
    let earned = one(
        "handle PointsEarned",
        "boxoffice.consumer",
        "mypage.projection",
    );
    assert_eq!(earned.parent, earning.span_id);

    // No span of the booking hangs loose: each one's parent is in the trace
    // (or is the client's).
    for span in &trace {
        assert!(
            span.parent == CLIENT_SPAN || ids.contains_key(span.parent.as_str()),
            "{} ({}) has a parent outside the trace",
            span.name,
            span.attr("boxoffice.consumer")
        );
    }
    let mut shape: Vec<String> = trace
        .iter()
        .map(|s| {
            let who = [s.attr("boxoffice.service"), s.attr("boxoffice.consumer")].concat();
            let parent = ids
                .get(s.parent.as_str())
                .map_or("client", |p| p.name.as_str());
            format!("{} [{who}] ← {parent}", s.name)
        })
        .collect();
    shape.sort();
    println!(
        "{} spans in the booking's trace:\n  {}",
        trace.len(),
        shape.join("\n  ")
    );

    platform.stop().await.unwrap();
    tokio::task::spawn_blocking(move || provider.shutdown())
        .await
        .unwrap()
        .unwrap();
}
