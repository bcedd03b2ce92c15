//! The envelope every integration event travels in.
//!
//! Its attributes are CloudEvents 1.0 (`id`, `source`, `type`, `time`,
//! `subject`, `datacontenttype`) plus three extension attributes:
//! `correlationid` (the reservation a saga step belongs to), `causationid`
//! (the event that caused this one) and `schemaversion` (the version of the
//! payload schema), and one optional one: `subjectversion`, the version of
//! the subject (the aggregate) this event brought it to, so a read model can
//! tell a late event from a newer one. Two more optional ones follow the
//! CloudEvents distributed-tracing extension: `traceparent` and `tracestate`,
//! the W3C trace context of the work that wrote the event, so a consumer's
//! handling continues the same trace. Serialised as JSON it is a CloudEvent in structured mode;
//! the Kafka adapter carries the same attributes as headers (binary mode).

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::ids::EventId;

pub const SPEC_VERSION: &str = "1.0";
/// The only content type events are written in.
pub const DATA_CONTENT_TYPE: &str = "application/json";

/// The JSON Schema of a time written with `time::serde::rfc3339`, for
/// `#[schemars(with = "Rfc3339")]` on such fields.
#[derive(Debug)]
pub struct Rfc3339;

impl schemars::JsonSchema for Rfc3339 {
    fn inline_schema() -> bool {
        true
    }

    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Rfc3339".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({"type": "string", "format": "date-time"})
    }
}

/// A CloudEvent in structured mode: the attributes and the `data`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Envelope {
    #[schemars(extend("const" = SPEC_VERSION))]
    pub specversion: String,
    /// Unique per event; consumers de-duplicate on it.
    pub id: EventId,
    /// The producing context, e.g. `/boxoffice/reservation`.
    pub source: String,
    /// The event type, e.g. `boxoffice.reservation.placed`.
    #[serde(rename = "type")]
    pub event_type: String,
    #[serde(with = "time::serde::rfc3339")]
    #[schemars(with = "Rfc3339")]
    pub time: OffsetDateTime,
    /// The aggregate the event is about; also the partitioning key, so one
    /// aggregate's events stay in order.
    pub subject: String,
    #[schemars(extend("const" = DATA_CONTENT_TYPE))]
    pub datacontenttype: String,
    /// The saga (or aggregate) this event belongs to, for tracing a
    /// booking across contexts.
    pub correlationid: String,
    /// The event that caused this one, when one did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub causationid: Option<EventId>,
    /// The version of the payload schema (`data`).
    pub schemaversion: u32,
    /// The subject's version after this event (1 for the event that created
    /// it, then one more per event), when its producer versions it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subjectversion: Option<u64>,
    /// The W3C `traceparent` of the span that wrote this event (CloudEvents
    /// distributed-tracing extension), when traces are on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub traceparent: Option<String>,
    /// The W3C `tracestate` that goes with `traceparent`, when there is one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tracestate: Option<String>,
    pub data: serde_json::Value,
}

impl Envelope {
    /// A new event about `subject`, correlated to `correlation`.
    pub fn new(
        source: &str,
        event_type: &str,
        schema_version: u32,
        subject: impl Into<String>,
        correlation: impl Into<String>,
        data: serde_json::Value,
    ) -> Self {
        Envelope {
            specversion: SPEC_VERSION.to_owned(),
            id: EventId::new(),
            source: source.to_owned(),
            event_type: event_type.to_owned(),
            time: crate::now(),
            subject: subject.into(),
            datacontenttype: DATA_CONTENT_TYPE.to_owned(),
            correlationid: correlation.into(),
            causationid: None,
            schemaversion: schema_version,
            subjectversion: None,
            traceparent: None,
            tracestate: None,
            data,
        }
    }

    /// Marks this event as bringing its subject to `version`.
    pub fn at_version(mut self, version: u64) -> Self {
        self.subjectversion = Some(version);
        self
    }

    /// Records the trace context (W3C `traceparent`, `tracestate`) of the
    /// work that wrote this event.
    pub fn traced(mut self, traceparent: &str, tracestate: Option<&str>) -> Self {
        self.traceparent = Some(traceparent.to_owned());
        self.tracestate = tracestate.map(str::to_owned);
        self
    }

    /// Marks this event as caused by `cause`, inheriting its correlation id.
    pub fn caused_by(mut self, cause: &Envelope) -> Self {
        self.causationid = Some(cause.id);
        self.correlationid = cause.correlationid.clone();
        self
    }

    /// The partitioning key: events with the same key are delivered in order.
    pub fn key(&self) -> &str {
        &self.subject
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serialises_as_a_structured_cloudevent() {
        let env = Envelope::new(
            "/boxoffice/reservation",
            "boxoffice.reservation.placed",
            1,
            "r-1",
            "r-1",
            serde_json::json!({"quantity": 2}),
        );
        let json = serde_json::to_value(&env).unwrap();
        assert_eq!(json["specversion"], "1.0");
        assert_eq!(json["type"], "boxoffice.reservation.placed");
        assert_eq!(json["correlationid"], "r-1");
        assert!(json.get("causationid").is_none());
        assert!(json.get("subjectversion").is_none());
        assert!(json.get("traceparent").is_none());
        let back: Envelope = serde_json::from_value(json).unwrap();
        assert_eq!(back, env);
    }

    #[test]
    fn a_caused_event_carries_the_cause_and_its_correlation() {
        let cause = Envelope::new("/a", "a.happened", 1, "k", "corr-7", serde_json::json!({}));
        let effect = Envelope::new(
            "/b",
            "b.happened",
            1,
            "k2",
            "ignored",
            serde_json::json!({}),
        )
        .caused_by(&cause);
        assert_eq!(effect.causationid, Some(cause.id));
        assert_eq!(effect.correlationid, "corr-7");
    }
}
