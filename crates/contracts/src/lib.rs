//! The public integration events of boxoffice: the wire contract between
//! bounded contexts. Every context may publish or consume only these types.
//!
//! Each event has a stable CloudEvents `type` (e.g.
//! `boxoffice.reservation.placed`) and a schema version; its payload is the
//! variant's fields in camelCase JSON. Changing a payload incompatibly means
//! a new schema version, never an in-place edit: contract tests pin the
//! current shapes (see `tests/`).
//!
//! # Layout
//! - [`catalog`]: listings and inventory (tickets held, rejected, released).
//! - [`reservation`]: the reservation lifecycle.
//! - [`payment`]: card payments (authorised, declined, captured, voided, refunded).
//! - [`wallet`]: loyalty points earned and withdrawn.
//! - [`IntegrationEvent`]: turning events into envelopes and back.
//! - [`documents`]: the JSON Schemas and the AsyncAPI document generated
//!   from these types (committed under `contracts/`, served by the gateway).
//! - [`compatibility`]: what a change to them breaks, against the released
//!   contract.
//! - [`api_compatibility`]: what a change to the public HTTP API (its
//!   OpenAPI document) breaks, against the released one.
//! - [`expectations`]: the fields each consuming context reads, checked
//!   against the producers' schemas.

pub mod api_compatibility;
pub mod catalog;
pub mod compatibility;
pub mod documents;
pub mod expectations;
pub mod payment;
pub mod reservation;
pub mod shape;
pub mod wallet;

use kernel::bus::Outgoing;
use kernel::Envelope;
use schemars::JsonSchema;
use serde::de::value::MapDeserializer;
use serde::de::DeserializeOwned;
use serde::Serialize;

/// Topics, one per producing context.
pub mod topics {
    pub const CATALOG: &str = "boxoffice.catalog";
    pub const RESERVATION: &str = "boxoffice.reservation";
    pub const PAYMENT: &str = "boxoffice.payment";
    pub const WALLET: &str = "boxoffice.wallet";
    /// Every topic; a distributed deployment creates them at start.
    pub const ALL: &[&str] = &[CATALOG, RESERVATION, PAYMENT, WALLET];
}

/// Whether `event_type` is one that some context publishes, for
/// consumers that name the types they act on (see their tests).
pub fn is_published_type(event_type: &str) -> bool {
    [
        catalog::CatalogEvent::TYPES,
        reservation::ReservationEvent::TYPES,
        payment::PaymentEvent::TYPES,
        wallet::WalletEvent::TYPES,
    ]
    .iter()
    .any(|types| types.contains(&event_type))
}

/// Every payload is at schema version 1 today. It is the major version of
/// [`CONTRACT_VERSION`]: a breaking change to any payload bumps both, so a
/// build never reads a payload shaped for another major as its own.
pub const SCHEMA_VERSION: u32 = 1;

/// The version of the published contract (the AsyncAPI document's
/// `info.version`), semantic: a breaking change bumps the major (and
/// [`SCHEMA_VERSION`] with it), an addition the minor. See
/// [`compatibility`] for what counts as breaking.
pub const CONTRACT_VERSION: &str = "1.0.0";

/// Where an event's partition key (its `subject`) and its correlation id
/// come from: JSON pointers into its payload, the first one present wins.
/// Written next to [`IntegrationEvent::subject`] for the contract documents;
/// the wire-shape tests check each against real events.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Routing {
    pub event_type: &'static str,
    pub key: &'static [&'static str],
    pub correlation: &'static [&'static str],
}

impl Routing {
    /// The value the pointers name in `data`: the first one present.
    pub fn resolve<'a>(pointers: &[&str], data: &'a serde_json::Value) -> Option<&'a str> {
        pointers
            .iter()
            .find_map(|pointer| data.pointer(pointer).and_then(serde_json::Value::as_str))
    }
}

/// An event family published by one context to one topic.
///
/// The enums are serialised adjacently tagged (`{"type": ..., "data": ...}`)
/// so the tag becomes the CloudEvents `type` and the content its `data`.
pub trait IntegrationEvent: Serialize + DeserializeOwned + JsonSchema + Sized {
    /// The topic this family is published to.
    const TOPIC: &'static str;
    /// The CloudEvents `source` of this family.
    const SOURCE: &'static str;
    /// Every `type` of this family, so consumers can tell "not mine" from "broken".
    const TYPES: &'static [&'static str];
    /// For each of [`Self::TYPES`], in the same order: what
    /// [`Self::subject`] and [`Self::correlation`] are taken from.
    const ROUTING: &'static [Routing];

    /// The aggregate this event is about (the partitioning key).
    fn subject(&self) -> String;
    /// The saga this event belongs to.
    fn correlation(&self) -> String;

    /// Wraps the event in a fresh envelope.
    fn to_envelope(&self) -> Envelope {
        let mut tagged = serde_json::to_value(self).expect("integration events always serialise");
        let event_type = tagged["type"].as_str().unwrap_or_default().to_owned();
        let data = tagged
            .as_object_mut()
            .and_then(|tagged| tagged.remove("data"))
            .unwrap_or(serde_json::Value::Null);
        Envelope::new(
            Self::SOURCE,
            &event_type,
            SCHEMA_VERSION,
            self.subject(),
            self.correlation(),
            data,
        )
    }

    /// Wraps the event for publication, caused by `cause` when there is one.
    fn outgoing(&self, cause: Option<&Envelope>) -> Outgoing {
        let mut envelope = self.to_envelope();
        if let Some(cause) = cause {
            envelope = envelope.caused_by(cause);
            // The correlation of a reservation event is its own reservation;
            // keep the one the event names rather than the cause's.
            envelope.correlationid = self.correlation();
        }
        Outgoing {
            topic: Self::TOPIC.to_owned(),
            envelope,
        }
    }

    /// Reads an envelope of this family. `Ok(None)` means the type is not one
    /// of this family's (another producer's event on a shared topic); an
    /// error means the type is ours but the payload breaks the contract.
    fn from_envelope(envelope: &Envelope) -> Result<Option<Self>, ContractError> {
        if !Self::TYPES.contains(&envelope.event_type.as_str()) {
            return Ok(None);
        }
        if envelope.schemaversion != SCHEMA_VERSION {
            return Err(ContractError::UnsupportedVersion {
                event_type: envelope.event_type.clone(),
                version: envelope.schemaversion,
            });
        }
        // Read in place, the tag first: a JSON object built from the two
        // would copy the payload and put "data" before "type", and serde
        // buffers an adjacently tagged enum's content whose tag comes
        // after it (once per event per consumer group).
        let event_type = serde_json::Value::String(envelope.event_type.clone());
        let tagged = [("type", &event_type), ("data", &envelope.data)];
        Self::deserialize(MapDeserializer::new(tagged.into_iter()))
            .map(Some)
            .map_err(|source| ContractError::Malformed {
                event_type: envelope.event_type.clone(),
                source,
            })
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ContractError {
    #[error("{event_type} has schema version {version}, this build reads {SCHEMA_VERSION}")]
    UnsupportedVersion { event_type: String, version: u32 },
    #[error("{event_type} payload does not match its schema: {source}")]
    Malformed {
        event_type: String,
        source: serde_json::Error,
    },
}
