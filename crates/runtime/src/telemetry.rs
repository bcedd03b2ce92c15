//! Traces across services: the W3C trace context (`traceparent`,
//! `tracestate`) read from every request, written into every call to
//! another service and into every event the outbox stores, and read back
//! by the consumer that handles the event, so one booking is one trace
//! from the gateway through the saga.
//!
//! Spans are `tracing` spans; the binary bridges them to OpenTelemetry and
//! exports them over OTLP when an endpoint is configured, and only then
//! calls [`switch_on`]. Until it does, every function here returns at once
//! (a disabled span, no header, no attribute): a deployment without a
//! collector pays one relaxed atomic load per request and per event.
//!
//! How a consumer continues the trace: its handling span is a *child* of
//! the span that wrote the event (not a link). Each event has exactly one
//! cause and its handling is the next step of the same booking, so the
//! booking reads as one tree in a trace viewer; a link would split the saga
//! into one trace per hop. Events are handled in batches, but each event
//! gets its own span under its own parent, so batching does not merge
//! unrelated bookings.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::http::{HeaderMap, Method};
use kernel::bus::Outgoing;
use kernel::Envelope;
use opentelemetry::propagation::TextMapPropagator;
use opentelemetry::trace::TraceContextExt;
use opentelemetry_http::{HeaderExtractor, HeaderInjector};
use opentelemetry_sdk::propagation::TraceContextPropagator;
use tracing::Span;
use tracing_opentelemetry::OpenTelemetrySpanExt;

static ON: AtomicBool = AtomicBool::new(false);

/// Spans are exported from now on (the binary installed an exporter).
pub fn switch_on() {
    ON.store(true, Ordering::Relaxed);
}

/// Whether spans are exported.
pub fn is_on() -> bool {
    ON.load(Ordering::Relaxed)
}

/// The span a service answers a request in, continuing the caller's trace
/// when the request carries a `traceparent` (else it starts one). Named
/// `METHOD route` (the matched route, never the raw path: few distinct
/// names).
pub fn request_span(
    service: &'static str,
    method: &Method,
    route: &str,
    headers: &HeaderMap,
) -> Span {
    if !is_on() {
        return Span::none();
    }
    let span = tracing::info_span!(
        "request",
        otel.name = format!("{method} {route}"),
        otel.kind = "server",
        boxoffice.service = service,
        http.request.method = %method,
        http.route = route,
        http.response.status_code = tracing::field::Empty,
        boxoffice.upstream = tracing::field::Empty,
    );
    let parent = TraceContextPropagator::new().extract(&HeaderExtractor(headers));
    // Fails only when the span is disabled, which `is_on` rules out.
    let _ = span.set_parent(parent);
    span
}

/// A span for a step of the business (`place reservation`), made only
/// while traces are on: `tracing`'s own spans cost a few microseconds each
/// even when nothing exports them (the log layer records them too).
#[macro_export]
macro_rules! business_span {
    ($name:literal $(, $($fields:tt)*)?) => {
        if $crate::telemetry::is_on() {
            ::tracing::info_span!($name $(, $($fields)*)?)
        } else {
            ::tracing::Span::none()
        }
    };
}

/// Names the current request span after the route that took the request
/// when the router only knew it as a fallback (the gateway's proxied
/// routes), with the service it goes to.
pub fn name_request(method: &Method, route: &str, upstream: &str) {
    if !is_on() {
        return;
    }
    let span = Span::current();
    // The OpenTelemetry span has started by now, so its name is changed on
    // it (recording `otel.name` only names a span not yet started).
    span.context()
        .span()
        .update_name(format!("{method} {route}"));
    span.record("http.route", route);
    span.record("boxoffice.upstream", upstream);
}

/// Writes the current span's trace context into `headers` (replacing what
/// a caller sent), for a call to another service.
pub fn inject(headers: &mut HeaderMap) {
    if !is_on() {
        return;
    }
    let context = Span::current().context();
    TraceContextPropagator::new().inject_context(&context, &mut HeaderInjector(headers));
}

/// The trace context headers for a call made from the current span (empty
/// when traces are off).
pub fn outgoing_headers() -> HeaderMap {
    let mut headers = HeaderMap::new();
    inject(&mut headers);
    headers
}

/// Records the current span's trace context in each event that has none
/// yet, so that its consumers continue the trace. Called where the events
/// are written ([`crate::outbox::append`]), and where they are made by a
/// request but written by another task (group commit).
pub fn stamp(events: &mut [Outgoing]) {
    if !is_on() || events.iter().all(|e| e.envelope.traceparent.is_some()) {
        return;
    }
    let mut carrier = HashMap::new();
    TraceContextPropagator::new().inject_context(&Span::current().context(), &mut carrier);
    let Some(traceparent) = carrier.remove("traceparent") else {
        return;
    };
    let tracestate = carrier.remove("tracestate").filter(|s| !s.is_empty());
    for event in events
        .iter_mut()
        .filter(|e| e.envelope.traceparent.is_none())
    {
        event.envelope.traceparent = Some(traceparent.clone());
        event.envelope.tracestate = tracestate.clone();
    }
}

/// The span `group` handles `event` in: `handle ReservationPlaced`, a
/// child of the span that wrote the event (see the module's documentation
/// for why a child and not a link), with the reservation's id when the
/// event is about one.
pub fn handling_span(group: &str, event: &Envelope) -> Span {
    if !is_on() {
        return Span::none();
    }
    let span = tracing::info_span!(
        "handle",
        otel.name = format!("handle {}", event_name(&event.event_type)),
        otel.kind = "consumer",
        boxoffice.consumer = group,
        messaging.message.id = %event.id,
        cloudevents.event_type = %event.event_type,
        cloudevents.event_subject = %event.subject,
        reservation.id = tracing::field::Empty,
    );
    if let Some(id) = reservation_of(&event.data) {
        span.record("reservation.id", id);
    }
    continue_from(
        &span,
        event.traceparent.as_deref(),
        event.tracestate.as_deref(),
    );
    span
}

/// The current span's W3C `traceparent` (`None` when traces are off), for
/// work that is recorded now and carried out later by another task — a
/// settlement the settler does — so that it continues this trace.
pub fn traceparent() -> Option<String> {
    if !is_on() {
        return None;
    }
    let mut carrier = HashMap::new();
    TraceContextPropagator::new().inject_context(&Span::current().context(), &mut carrier);
    carrier.remove("traceparent")
}

/// Makes `span` a child of the span a stored `traceparent` names (nothing
/// when there is none, or traces are off).
pub fn continue_from(span: &Span, traceparent: Option<&str>, tracestate: Option<&str>) {
    let Some(traceparent) = traceparent.filter(|_| is_on()) else {
        return;
    };
    let mut carrier = HashMap::from([("traceparent".to_owned(), traceparent.to_owned())]);
    if let Some(tracestate) = tracestate {
        carrier.insert("tracestate".to_owned(), tracestate.to_owned());
    }
    let _ = span.set_parent(TraceContextPropagator::new().extract(&carrier));
}

/// The name of an event type as the contract's types spell it:
/// `boxoffice.reservation.placed` → `ReservationPlaced`,
/// `boxoffice.catalog.tickets-reserved` → `TicketsReserved`. A one-word
/// event name takes its context's name in front, as its variant does.
pub fn event_name(event_type: &str) -> String {
    let mut parts = event_type.rsplit('.');
    let name = parts.next().unwrap_or_default();
    let context = parts.next().unwrap_or_default();
    let words: Vec<&str> = if name.contains('-') || context.is_empty() {
        name.split('-').collect()
    } else {
        vec![context, name]
    };
    words
        .iter()
        .map(|word| {
            let mut chars = word.chars();
            chars.next().map_or_else(String::new, |first| {
                first.to_uppercase().chain(chars).collect()
            })
        })
        .collect()
}

/// The booking an event's payload is about: `booking.reservationId`
/// (reservation events), `reservationId` (catalog, wallet) or
/// `charge.reservationId` (payment).
fn reservation_of(data: &serde_json::Value) -> Option<&str> {
    [
        "/booking/reservationId",
        "/reservationId",
        "/charge/reservationId",
    ]
    .iter()
    .find_map(|pointer| data.pointer(pointer)?.as_str())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_names_follow_the_contracts_variants() {
        assert_eq!(
            event_name("boxoffice.reservation.placed"),
            "ReservationPlaced"
        );
        assert_eq!(
            event_name("boxoffice.payment.authorised"),
            "PaymentAuthorised"
        );
        assert_eq!(
            event_name("boxoffice.catalog.tickets-reserved"),
            "TicketsReserved"
        );
        assert_eq!(event_name("boxoffice.wallet.points-earned"), "PointsEarned");
        assert_eq!(event_name("odd"), "Odd");
    }

    #[test]
    fn the_reservation_is_found_wherever_the_payload_keeps_it() {
        let booking = serde_json::json!({"booking": {"reservationId": "r-1"}});
        let charge = serde_json::json!({"charge": {"reservationId": "r-2"}});
        let held = serde_json::json!({"reservationId": "r-3", "listingId": "l"});
        assert_eq!(reservation_of(&booking), Some("r-1"));
        assert_eq!(reservation_of(&charge), Some("r-2"));
        assert_eq!(reservation_of(&held), Some("r-3"));
        assert_eq!(reservation_of(&serde_json::json!({"listingId": "l"})), None);
    }

    #[test]
    fn while_off_nothing_is_traced_or_stamped() {
        // Nothing in this test binary switches traces on.
        let mut events = vec![Outgoing {
            topic: "t".into(),
            envelope: Envelope::new("/a", "a.b", 1, "k", "k", serde_json::json!({})),
        }];
        stamp(&mut events);
        assert_eq!(events[0].envelope.traceparent, None);
        assert!(outgoing_headers().is_empty());
        assert!(handling_span("g", &events[0].envelope).is_none());
    }
}
