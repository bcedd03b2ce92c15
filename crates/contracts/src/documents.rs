//! The contract as documents, generated from the event types: one JSON
//! Schema per event type (a whole structured-mode CloudEvent: the envelope
//! with that type's payload as `data`), the envelope's own schema, and an
//! AsyncAPI 3.0 document (topics, messages, Kafka headers and key, payload
//! schemas).
//!
//! They are committed under `contracts/` at the repository root (so other
//! languages and tools can read them, and a review shows every change to
//! the wire) and served by the gateway. `cargo run -p contracts --example
//! contracts -- write` regenerates them; a test fails while the committed
//! ones differ from what the types say.

use std::collections::{BTreeMap, BTreeSet};

use kernel::Envelope;
use schemars::generate::SchemaSettings;
use schemars::JsonSchema;
use serde_json::{json, Map, Value};

use crate::catalog::CatalogEvent;
use crate::payment::PaymentEvent;
use crate::reservation::ReservationEvent;
use crate::wallet::WalletEvent;
use crate::{IntegrationEvent, Routing, CONTRACT_VERSION, SCHEMA_VERSION};

/// The command that writes the documents, for messages that ask for it.
pub const REGENERATE: &str = "cargo run -p boxoffice --example contracts -- write";

/// One CloudEvents attribute as a Kafka record header (binary content
/// mode), as the Kafka adapter writes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    pub name: &'static str,
    /// Written on every record; the others only when the envelope has them.
    pub always: bool,
    pub description: &'static str,
}

/// Every header the Kafka adapter writes (its tests check the list).
pub const KAFKA_HEADERS: &[Header] = &[
    Header {
        name: "ce_specversion",
        always: true,
        description: "CloudEvents version: 1.0.",
    },
    Header {
        name: "ce_id",
        always: true,
        description: "The event's id (UUID); consumers de-duplicate on it.",
    },
    Header {
        name: "ce_source",
        always: true,
        description: "The producing context.",
    },
    Header {
        name: "ce_type",
        always: true,
        description: "The event type.",
    },
    Header {
        name: "ce_time",
        always: true,
        description: "When the event happened (RFC 3339).",
    },
    Header {
        name: "ce_subject",
        always: true,
        description: "The aggregate the event is about; the same value as the record key.",
    },
    Header {
        name: "content-type",
        always: true,
        description: "The CloudEvents datacontenttype of the record value.",
    },
    Header {
        name: "ce_correlationid",
        always: true,
        description: "The saga (or aggregate) the event belongs to.",
    },
    Header {
        name: "ce_schemaversion",
        always: true,
        description: "The payload schema version (the contract's major version).",
    },
    Header {
        name: "ce_causationid",
        always: false,
        description: "The id of the event that caused this one, when one did.",
    },
    Header {
        name: "ce_subjectversion",
        always: false,
        description: "The subject's version after this event, when its producer versions \
                      it (reservation events do): lets a read model tell a late event \
                      from a newer one.",
    },
    Header {
        name: "ce_traceparent",
        always: false,
        description: "The W3C trace context of the work that wrote the event \
                      (CloudEvents distributed-tracing extension), when its producer \
                      traces: a consumer's handling continues that trace.",
    },
    Header {
        name: "ce_tracestate",
        always: false,
        description: "The W3C tracestate that goes with ce_traceparent, when there is one.",
    },
];

/// One event type of the contract.
#[derive(Debug, Clone)]
pub struct EventContract {
    pub event_type: &'static str,
    pub topic: &'static str,
    pub source: &'static str,
    /// What the event means (its variant's doc comment).
    pub description: String,
    pub routing: Routing,
    /// The JSON Schema of the payload (`data`); refers to [`Catalogue::defs`].
    pub payload: Value,
}

/// The events one context publishes to its topic.
#[derive(Debug, Clone)]
pub struct Family {
    /// The publishing context, e.g. `catalog`.
    pub context: &'static str,
    pub topic: &'static str,
    pub description: String,
    pub events: Vec<EventContract>,
}

/// Every event family, and the schemas their payloads share (by name).
#[derive(Debug, Clone)]
pub struct Catalogue {
    pub families: Vec<Family>,
    pub defs: BTreeMap<String, Value>,
}

impl Catalogue {
    pub fn events(&self) -> impl Iterator<Item = &EventContract> {
        self.families.iter().flat_map(|family| family.events.iter())
    }

    pub fn event(&self, event_type: &str) -> Option<&EventContract> {
        self.events().find(|event| event.event_type == event_type)
    }
}

/// The contract as the types define it.
pub fn catalogue() -> Catalogue {
    let mut defs = BTreeMap::new();
    let families = vec![
        family::<CatalogEvent>("catalog", &mut defs),
        family::<ReservationEvent>("reservation", &mut defs),
        family::<PaymentEvent>("payment", &mut defs),
        family::<WalletEvent>("wallet", &mut defs),
    ];
    Catalogue { families, defs }
}

fn generate<T: JsonSchema>() -> Value {
    let schema = SchemaSettings::draft2020_12()
        .into_generator()
        .into_root_schema_for::<T>();
    serde_json::to_value(schema).expect("a schema is JSON")
}

/// Splits a family's schema (a `oneOf` of `{type, data}`, as serde tags it)
/// into one payload schema per event type.
fn family<E: IntegrationEvent>(
    context: &'static str,
    defs: &mut BTreeMap<String, Value>,
) -> Family {
    let schema = generate::<E>();
    for (name, def) in schema["$defs"].as_object().into_iter().flatten() {
        // Families share types (a booking names its listing's kind); one
        // name must mean one shape everywhere.
        if let Some(known) = defs.insert(name.clone(), def.clone()) {
            assert_eq!(&known, def, "two different types are both named {name}");
        }
    }
    let variants = schema["oneOf"]
        .as_array()
        .expect("an event family is an enum");
    let events = E::TYPES
        .iter()
        .zip(E::ROUTING)
        .map(|(event_type, routing)| {
            assert_eq!(
                routing.event_type, *event_type,
                "{context}: ROUTING is not in the order of TYPES"
            );
            let variant = variants
                .iter()
                .find(|variant| variant["properties"]["type"]["const"] == *event_type)
                .unwrap_or_else(|| panic!("{event_type} is in TYPES but no variant has it"));
            EventContract {
                event_type,
                topic: E::TOPIC,
                source: E::SOURCE,
                description: text(&variant["description"]),
                routing: *routing,
                payload: variant["properties"]["data"].clone(),
            }
        })
        .collect::<Vec<_>>();
    assert_eq!(
        events.len(),
        variants.len(),
        "{context}: a variant's type is missing from TYPES"
    );
    assert_eq!(E::ROUTING.len(), E::TYPES.len(), "{context}: ROUTING");
    Family {
        context,
        topic: E::TOPIC,
        description: text(&schema["description"]),
        events,
    }
}

/// A doc comment as one paragraph (rustdoc wraps lines at 80 columns).
fn text(description: &Value) -> String {
    description
        .as_str()
        .unwrap_or_default()
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}

/// The first sentence, for tables and summaries.
pub fn summary(description: &str) -> &str {
    match description.find(". ") {
        Some(end) => &description[..=end],
        None => description,
    }
}

/// `/booking/reservationId` as people read it: `booking.reservationId`.
fn field_name(pointer: &str) -> String {
    pointer.trim_start_matches('/').replace('/', ".")
}

/// Where a value comes from, in words: the first field present.
pub fn describe_source(pointers: &[&str]) -> String {
    let mut names = pointers.iter().map(|pointer| field_name(pointer));
    let first = names.next().unwrap_or_default();
    names.fold(format!("`{first}`"), |text, other| {
        format!("{text}, else `{other}`")
    })
}

/// The schema names `schema` refers to, with those they refer to in turn.
fn reachable(schema: &Value, defs: &BTreeMap<String, Value>) -> BTreeSet<String> {
    fn refs(value: &Value, into: &mut Vec<String>) {
        match value {
            Value::Object(map) => {
                if let Some(name) = map
                    .get("$ref")
                    .and_then(Value::as_str)
                    .and_then(|target| target.strip_prefix("#/$defs/"))
                {
                    into.push(name.to_owned());
                }
                map.values().for_each(|value| refs(value, into));
            }
            Value::Array(items) => items.iter().for_each(|value| refs(value, into)),
            _ => {}
        }
    }
    let mut found = BTreeSet::new();
    let mut pending = Vec::new();
    refs(schema, &mut pending);
    while let Some(name) = pending.pop() {
        if found.insert(name.clone()) {
            if let Some(def) = defs.get(&name) {
                refs(def, &mut pending);
            }
        }
    }
    found
}

/// Rewrites `#/$defs/X` references to `#/components/schemas/X`.
fn refs_to_components(value: &Value) -> Value {
    match value {
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(key, value)| {
                    let value = match (key.as_str(), value.as_str()) {
                        ("$ref", Some(target)) => match target.strip_prefix("#/$defs/") {
                            Some(name) => Value::String(format!("#/components/schemas/{name}")),
                            None => value.clone(),
                        },
                        _ => refs_to_components(value),
                    };
                    (key.clone(), value)
                })
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.iter().map(refs_to_components).collect()),
        other => other.clone(),
    }
}

/// The envelope's schema: what every event on the wire is, in structured mode.
pub fn envelope_schema() -> Value {
    generate::<Envelope>()
}

/// The schema of one whole event: the envelope, its `type`, `source` and
/// `schemaversion` fixed, its `data` the event's payload.
pub fn event_schema(catalogue: &Catalogue, event: &EventContract) -> Value {
    let mut schema = envelope_schema();
    schema["title"] = json!(event.event_type);
    schema["description"] = json!(event.description);
    let properties = &mut schema["properties"];
    properties["type"] = json!({"type": "string", "const": event.event_type});
    properties["source"] = json!({"type": "string", "const": event.source});
    properties["schemaversion"] = json!({"type": "integer", "const": SCHEMA_VERSION});
    properties["subject"]["description"] = json!(format!(
        "The partition key: {}.",
        describe_source(event.routing.key)
    ));
    properties["correlationid"]["description"] = json!(format!(
        "The saga this event belongs to: {}.",
        describe_source(event.routing.correlation)
    ));
    properties["data"] = event.payload.clone();
    let defs: Map<String, Value> = reachable(&event.payload, &catalogue.defs)
        .into_iter()
        .map(|name| {
            let def = catalogue.defs[&name].clone();
            (name, def)
        })
        .collect();
    if !defs.is_empty() {
        schema["$defs"] = Value::Object(defs);
    }
    schema
}

/// The Kafka headers of one event type's records.
fn headers(event: &EventContract) -> Value {
    let mut properties = Map::new();
    for header in KAFKA_HEADERS {
        let fixed = match header.name {
            "ce_specversion" => Some(kernel::envelope::SPEC_VERSION.to_owned()),
            "ce_source" => Some(event.source.to_owned()),
            "ce_type" => Some(event.event_type.to_owned()),
            "content-type" => Some(kernel::envelope::DATA_CONTENT_TYPE.to_owned()),
            "ce_schemaversion" => Some(SCHEMA_VERSION.to_string()),
            _ => None,
        };
        let description = match header.name {
            "ce_subject" => format!(
                "{} Here: {}.",
                header.description,
                describe_source(event.routing.key)
            ),
            "ce_correlationid" => format!(
                "{} Here: {}.",
                header.description,
                describe_source(event.routing.correlation)
            ),
            _ => header.description.to_owned(),
        };
        let mut schema = json!({"type": "string", "description": description});
        if let Some(value) = fixed {
            schema["const"] = json!(value);
        }
        properties.insert(header.name.to_owned(), schema);
    }
    let required: Vec<&str> = KAFKA_HEADERS
        .iter()
        .filter(|header| header.always)
        .map(|header| header.name)
        .collect();
    json!({"type": "object", "properties": properties, "required": required})
}

/// The AsyncAPI 3.0 document of every topic and event.
pub fn asyncapi(catalogue: &Catalogue) -> Value {
    let mut channels = Map::new();
    let mut operations = Map::new();
    let mut messages = Map::new();
    let mut schemas: Map<String, Value> = catalogue
        .defs
        .iter()
        .map(|(name, def)| (name.clone(), refs_to_components(def)))
        .collect();
    for family in &catalogue.families {
        let mut channel_messages = Map::new();
        let mut operation_messages = Vec::new();
        for event in &family.events {
            let name = event.event_type;
            schemas.insert(name.to_owned(), refs_to_components(&event.payload));
            messages.insert(
                name.to_owned(),
                json!({
                    "name": name,
                    "title": name,
                    "summary": summary(&event.description),
                    "description": event.description,
                    "contentType": kernel::envelope::DATA_CONTENT_TYPE,
                    "headers": headers(event),
                    "payload": {"$ref": format!("#/components/schemas/{name}")},
                    // The key as data, for the compatibility check: a
                    // consumer relies on one key's events coming in order.
                    "x-partition-key": event.routing.key,
                    "correlationId": {
                        "description": format!(
                            "The saga this event belongs to: {}.",
                            describe_source(event.routing.correlation)
                        ),
                        "location": "$message.header#/ce_correlationid",
                    },
                    "bindings": {
                        "kafka": {
                            "key": {
                                "type": "string",
                                "description": format!(
                                    "The partition key (the event's subject): {}. \
                                     One key's events are delivered in order.",
                                    describe_source(event.routing.key)
                                ),
                            },
                            "bindingVersion": "0.5.0",
                        }
                    },
                }),
            );
            channel_messages.insert(
                name.to_owned(),
                json!({"$ref": format!("#/components/messages/{name}")}),
            );
            operation_messages.push(json!({
                "$ref": format!("#/channels/{}/messages/{name}", family.context)
            }));
        }
        channels.insert(
            family.context.to_owned(),
            json!({
                "address": family.topic,
                "title": family.topic,
                "description": family.description,
                "messages": channel_messages,
            }),
        );
        operations.insert(
            format!("{}.publish", family.context),
            json!({
                "action": "send",
                "title": format!("The {} context publishes", family.context),
                "channel": {"$ref": format!("#/channels/{}", family.context)},
                "messages": operation_messages,
            }),
        );
    }
    json!({
        "asyncapi": "3.0.0",
        "info": {
            "title": "boxoffice integration events",
            "version": CONTRACT_VERSION,
            "description": "The events boxoffice's contexts publish to each other. One topic \
                per publishing context; each record is a CloudEvent in binary content mode: \
                the attributes are `ce_*` headers, the value is the payload (JSON), the key \
                is the event's subject. Consumers must ignore fields they do not know.",
        },
        "defaultContentType": kernel::envelope::DATA_CONTENT_TYPE,
        "channels": channels,
        "operations": operations,
        "components": {"messages": messages, "schemas": schemas},
    })
}

/// The committed documents: path under `contracts/` → content.
pub fn files() -> BTreeMap<String, String> {
    let catalogue = catalogue();
    let mut files = BTreeMap::new();
    files.insert("asyncapi.json".to_owned(), pretty(&asyncapi(&catalogue)));
    files.insert(
        "envelope.schema.json".to_owned(),
        pretty(&envelope_schema()),
    );
    for event in catalogue.events() {
        files.insert(
            format!("events/{}.schema.json", event.event_type),
            pretty(&event_schema(&catalogue, event)),
        );
    }
    files
}

/// JSON as committed: indented, ending in a newline.
pub fn pretty(value: &Value) -> String {
    let mut text = serde_json::to_string_pretty(value).expect("JSON prints");
    text.push('\n');
    text
}

/// The event catalogue as a Markdown table, for the architecture document.
pub fn catalogue_table(catalogue: &Catalogue) -> String {
    let mut table = String::from(
        "| Event type | Topic | Key (subject) | Correlation | What it means |\n\
         | --- | --- | --- | --- | --- |\n",
    );
    for event in catalogue.events() {
        table.push_str(&format!(
            "| `{}` | `{}` | {} | {} | {} |\n",
            event.event_type,
            event.topic,
            describe_source(event.routing.key),
            describe_source(event.routing.correlation),
            summary(&event.description).replace('|', "\\|"),
        ));
    }
    table
}

/// Marks the generated table in the architecture document.
pub const TABLE_START: &str = "<!-- event catalogue: generated, do not edit -->";
pub const TABLE_END: &str = "<!-- end of event catalogue -->";

/// `document` with the part between the table's markers replaced by
/// `table`; `None` when the markers are missing.
pub fn with_table(document: &str, table: &str) -> Option<String> {
    let start = document.find(TABLE_START)? + TABLE_START.len();
    let end = start + document[start..].find(TABLE_END)?;
    Some(format!(
        "{}\n{table}{}",
        &document[..start],
        &document[end..]
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_published_type_has_one_payload_schema() {
        let catalogue = catalogue();
        let types: Vec<&str> = catalogue.events().map(|event| event.event_type).collect();
        let published = [
            CatalogEvent::TYPES,
            ReservationEvent::TYPES,
            PaymentEvent::TYPES,
            WalletEvent::TYPES,
        ]
        .concat();
        assert_eq!(types, published);
        for event in catalogue.events() {
            assert_eq!(event.payload["type"], "object", "{}", event.event_type);
            assert!(
                !event.description.is_empty(),
                "{} is undocumented",
                event.event_type
            );
        }
    }

    #[test]
    fn an_event_schema_fixes_its_type_and_carries_the_shapes_it_uses() {
        let catalogue = catalogue();
        let placed = catalogue.event("boxoffice.reservation.placed").unwrap();
        let schema = event_schema(&catalogue, placed);
        assert_eq!(
            schema["properties"]["type"]["const"],
            "boxoffice.reservation.placed"
        );
        assert_eq!(
            schema["properties"]["source"]["const"],
            "/boxoffice/reservation"
        );
        let defs: Vec<&String> = schema["$defs"].as_object().unwrap().keys().collect();
        assert_eq!(defs, ["Booking", "ListingKind", "PaymentMethod"]);
        assert!(schema["required"]
            .as_array()
            .unwrap()
            .contains(&json!("data")));
    }

    #[test]
    fn the_asyncapi_document_refers_only_to_what_it_defines() {
        let document = asyncapi(&catalogue());
        let mut dangling = Vec::new();
        fn walk(value: &Value, root: &Value, dangling: &mut Vec<String>) {
            match value {
                Value::Object(map) => {
                    if let Some(target) = map.get("$ref").and_then(Value::as_str) {
                        let pointer = target.trim_start_matches('#');
                        if root.pointer(pointer).is_none() {
                            dangling.push(target.to_owned());
                        }
                    }
                    map.values().for_each(|value| walk(value, root, dangling));
                }
                Value::Array(items) => items.iter().for_each(|value| walk(value, root, dangling)),
                _ => {}
            }
        }
        walk(&document, &document, &mut dangling);
        assert!(dangling.is_empty(), "{dangling:?}");
        assert_eq!(document["info"]["version"], CONTRACT_VERSION);
        assert_eq!(
            document["channels"]["payment"]["address"],
            crate::topics::PAYMENT
        );
        let captured = &document["components"]["messages"]["boxoffice.payment.captured"];
        assert_eq!(
            captured["headers"]["properties"]["ce_type"]["const"],
            "boxoffice.payment.captured"
        );
        assert_eq!(
            captured["correlationId"]["location"],
            "$message.header#/ce_correlationid"
        );
    }

    #[test]
    fn a_key_taken_from_one_of_two_fields_says_so() {
        assert_eq!(describe_source(&["/listingId"]), "`listingId`");
        assert_eq!(
            describe_source(&["/charge/reservationId", "/charge/paymentId"]),
            "`charge.reservationId`, else `charge.paymentId`"
        );
    }

    #[test]
    fn the_table_replaces_only_what_is_between_its_markers() {
        let document = format!("# Doc\n{TABLE_START}\nold\n{TABLE_END}\nafter\n");
        assert_eq!(
            with_table(&document, "| new |\n").unwrap(),
            format!("# Doc\n{TABLE_START}\n| new |\n{TABLE_END}\nafter\n")
        );
        assert_eq!(with_table("# no markers", "| new |\n"), None);
    }

    #[test]
    fn the_contract_major_is_the_payload_schema_version() {
        let major: u32 = CONTRACT_VERSION.split('.').next().unwrap().parse().unwrap();
        assert_eq!(major, SCHEMA_VERSION);
    }
}
