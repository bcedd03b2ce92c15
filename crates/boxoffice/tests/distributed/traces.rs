//! One booking is one trace when every service is its own process: the
//! trace context crosses HTTP between processes (`traceparent`) and the
//! broker between a producer and its consumers (the `ce_traceparent`
//! header of each Kafka record), and the capture the payment service's
//! settler does later continues it too.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use crate::common::gateway::{eventually, set_patience};
use crate::common::otlp::{Received, Receiver};
use crate::deployment::{Deployment, Servers};

const CLIENT_TRACE: &str = "0af7651916cd43dd8448eb211c80319c";
const CLIENT_SPAN: &str = "b7ad6b7169203331";

#[tokio::test]
async fn a_card_booking_is_one_trace_across_the_processes_and_the_broker() {
    set_patience(60);
    let Some(servers) = Servers::from_env("one booking, one trace, across processes") else {
        return;
    };
    let receiver = Receiver::start().await;
    let env = BTreeMap::from([
        (
            "OTEL_EXPORTER_OTLP_ENDPOINT".to_owned(),
            receiver.base.clone(),
        ),
        // Export every tenth of a second, not every five: the test waits.
        ("OTEL_BSP_SCHEDULE_DELAY".to_owned(), "100".to_owned()),
    ]);
    let deployment = Deployment::start_with(servers, env).await;
    let gateway = deployment.gateway.clone();
    let admin = gateway.admin_token().await;
    let movie = gateway.movie(&admin, "Traced Across", 10).await;
    let customer = gateway.customer("tracy-across").await;

    let traceparent = format!("00-{CLIENT_TRACE}-{CLIENT_SPAN}-01");
    let reservation = gateway.book_traced(&customer, &movie, &traceparent).await;

    // The saga's last steps, each in another process than its cause.
    let wanted = [
        ("boxoffice-catalog", "handle ReservationPlaced"),
        ("boxoffice-reservation", "handle TicketsReserved"),
        ("boxoffice-payment", "capture payment"),
        ("boxoffice-wallet", "handle PaymentCaptured"),
        ("boxoffice-mypage", "handle PointsEarned"),
        ("boxoffice-notification", "handle ReservationConfirmed"),
    ];
    let trace = eventually(|| async {
        let trace = receiver.trace(CLIENT_TRACE);
        let has = |(process, name): &(&str, &str)| {
            trace
                .iter()
                .any(|s| s.process == *process && s.name == *name)
        };
        wanted.iter().all(has).then_some(trace)
    })
    .await;

    let one = |process: &str, name: &str| -> &Received {
        let found: Vec<&Received> = trace
            .iter()
            .filter(|s| s.process == process && s.name == name)
            .collect();
        assert_eq!(found.len(), 1, "one span {name} in {process}: {trace:#?}");
        found[0]
    };
    let gateway_span = one("boxoffice-gateway", "POST /reservations");
    assert_eq!(gateway_span.parent, CLIENT_SPAN);
    let served = one("boxoffice-reservation", "POST /reservations");
    assert_eq!(
        served.parent, gateway_span.span_id,
        "gateway → reservation over HTTP"
    );
    let place = one("boxoffice-reservation", "place reservation");
    assert_eq!(place.attr("reservation.id"), reservation);
    let authorise = one("boxoffice-payment", "authorise payment");
    let authorisation = one("boxoffice-payment", "POST /internal/authorisations");
    assert_eq!(
        authorisation.parent, place.span_id,
        "reservation → payment over HTTP"
    );
    assert_eq!(authorise.parent, authorisation.span_id);

    // Across the broker: each handling under the span that wrote the event,
    // in another process.
    let held = one("boxoffice-catalog", "handle ReservationPlaced");
    assert_eq!(held.parent, place.span_id, "ReservationPlaced over Kafka");
    let answered = one("boxoffice-reservation", "handle TicketsReserved");
    assert_eq!(answered.parent, held.span_id, "TicketsReserved over Kafka");
    let asked = one("boxoffice-payment", "handle ReservationConfirmed");
    assert_eq!(
        asked.parent, answered.span_id,
        "ReservationConfirmed over Kafka"
    );
    let capture = one("boxoffice-payment", "capture payment");
    assert_eq!(
        capture.parent, asked.span_id,
        "the settler continues the trace"
    );
    let earning = one("boxoffice-wallet", "handle PaymentCaptured");
    assert_eq!(
        earning.parent, capture.span_id,
        "PaymentCaptured over Kafka"
    );
    let earned = one("boxoffice-mypage", "handle PointsEarned");
    assert_eq!(earned.parent, earning.span_id, "PointsEarned over Kafka");

    let ids: HashMap<&str, &Received> = trace.iter().map(|s| (s.span_id.as_str(), s)).collect();
    for span in &trace {
        assert!(
            span.parent == CLIENT_SPAN || ids.contains_key(span.parent.as_str()),
            "{} in {} has a parent outside the trace",
            span.name,
            span.process
        );
    }
    let processes: BTreeSet<&str> = trace.iter().map(|s| s.process.as_str()).collect();
    println!(
        "{} spans from {} processes in the booking's trace: {processes:?}",
        trace.len(),
        processes.len()
    );
    deployment.tear_down().await;
}
