//! What each consuming context reads from the events it consumes, as data
//! (`contracts/consumers/<context>.json`), checked against the producers'
//! schemas: a producer cannot drop or retype a field some consumer reads
//! without a test naming the consumer, even when the change would pass
//! the compatibility check (say, after a deliberate major bump).
//!
//! A file looks like:
//!
//! ```json
//! {
//!   "consumer": "notification",
//!   "reads": {
//!     "boxoffice.reservation.confirmed": {
//!       "booking.userId": "uuid",
//!       "booking.seats": "array<string>?"
//!     }
//!   }
//! }
//! ```
//!
//! A type is what [`Shape::kind`] names (`string`, `uuid`, `date-time`,
//! `integer`, `boolean`, `object`, `array<…>`); a trailing `?` says the
//! consumer copes with the field being absent.

use std::collections::{BTreeMap, BTreeSet};

use serde::Deserialize;
use serde_json::Value;

use crate::shape::Shape;

/// One consuming context's expectations.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Consumer {
    pub consumer: String,
    #[serde(default)]
    pub description: String,
    /// Event type → field path → expected type.
    pub reads: BTreeMap<String, BTreeMap<String, String>>,
}

impl Consumer {
    pub fn parse(json: &str) -> Result<Consumer, String> {
        serde_json::from_str(json).map_err(|error| format!("not a consumer file: {error}"))
    }

    /// The event types it reads: the ones its handler wants.
    pub fn event_types(&self) -> BTreeSet<&str> {
        self.reads.keys().map(String::as_str).collect()
    }

    /// The event types it reads from one family (`boxoffice.payment`), for
    /// a context whose handlers each read one family.
    pub fn event_types_of(&self, family: &str) -> BTreeSet<&str> {
        let prefix = format!("{family}.");
        self.reads
            .keys()
            .map(String::as_str)
            .filter(|t| t.starts_with(&prefix))
            .collect()
    }

    /// Every expectation the producers' schemas (the AsyncAPI `document`)
    /// do not meet, one message each.
    pub fn unmet(&self, document: &Value) -> Vec<String> {
        let mut unmet = Vec::new();
        for (event_type, fields) in &self.reads {
            let Some(payload) = payload(document, event_type) else {
                unmet.push(format!(
                    "{} reads {event_type}, which no context publishes",
                    self.consumer
                ));
                continue;
            };
            let shape = Shape::of(payload, document);
            for (path, expected) in fields {
                let (kind, may_be_absent) = match expected.strip_suffix('?') {
                    Some(kind) => (kind, true),
                    None => (expected.as_str(), false),
                };
                let reads = format!("{} reads {event_type} field {path:?}", self.consumer);
                match shape.field(path) {
                    None => unmet.push(format!("{reads}, which the event does not have")),
                    Some(field) => {
                        if field.shape.kind() != kind {
                            unmet.push(format!(
                                "{reads} as {kind}, but it is {}",
                                field.shape.kind()
                            ));
                        }
                        let absent = !field.required || matches!(field.shape, Shape::Nullable(_));
                        if absent && !may_be_absent {
                            unmet.push(format!(
                                "{reads} as always present, but the event may omit it \
                                 (write {kind}? if the consumer copes)"
                            ));
                        }
                    }
                }
            }
        }
        unmet
    }
}

/// The payload schema of `event_type` in an AsyncAPI document.
fn payload<'a>(document: &'a Value, event_type: &str) -> Option<&'a Value> {
    document["components"]["messages"]
        .get(event_type)
        .map(|message| &message["payload"])
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn document() -> Value {
        json!({"components": {
            "messages": {"boxoffice.reservation.confirmed": {
                "payload": {"$ref": "#/components/schemas/confirmed"}}},
            "schemas": {"confirmed": {
                "type": "object",
                "properties": {
                    "booking": {"type": "object", "properties": {
                        "userId": {"type": "string", "format": "uuid"},
                        "seats": {"type": "array", "items": {"type": "string"}}
                    }, "required": ["userId"]},
                    "confirmedAt": {"type": "string", "format": "date-time"}
                },
                "required": ["booking", "confirmedAt"]
            }}
        }})
    }

    fn consumer(reads: Value) -> Consumer {
        Consumer::parse(&json!({"consumer": "notification", "reads": reads}).to_string()).unwrap()
    }

    #[test]
    fn expectations_the_schema_meets_pass() {
        let notification = consumer(json!({"boxoffice.reservation.confirmed": {
            "booking.userId": "uuid",
            "booking.seats": "array<string>?",
            "confirmedAt": "date-time"
        }}));
        assert_eq!(notification.unmet(&document()), Vec::<String>::new());
        assert_eq!(
            notification.event_types(),
            BTreeSet::from(["boxoffice.reservation.confirmed"])
        );
    }

    #[test]
    fn a_missing_field_a_wrong_type_and_an_unsure_field_are_named() {
        let notification = consumer(json!({"boxoffice.reservation.confirmed": {
            "booking.amount": "integer",
            "confirmedAt": "string",
            "booking.seats": "array<string>"
        }}));
        assert_eq!(
            notification.unmet(&document()),
            [
                r#"notification reads boxoffice.reservation.confirmed field "booking.amount", which the event does not have"#,
                r#"notification reads boxoffice.reservation.confirmed field "booking.seats" as always present, but the event may omit it (write array<string>? if the consumer copes)"#,
                r#"notification reads boxoffice.reservation.confirmed field "confirmedAt" as string, but it is date-time"#,
            ]
        );
    }

    #[test]
    fn an_event_nobody_publishes_is_named() {
        let notification = consumer(json!({"boxoffice.reservation.approved": {}}));
        assert_eq!(
            notification.unmet(&document()),
            ["notification reads boxoffice.reservation.approved, which no context publishes"]
        );
    }

    #[test]
    fn a_misspelt_file_is_refused() {
        assert!(Consumer::parse(r#"{"consumer": "x", "read": {}}"#).is_err());
    }
}
