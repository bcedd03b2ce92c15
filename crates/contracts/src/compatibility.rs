//! What a change to the contract breaks, measured against the released one.
//!
//! Events outlive the code that wrote them: a consumer built on the
//! released contract reads events of the new one, and a consumer built on
//! the new one reads events still in a topic or replayed from dead letters
//! that the released one wrote. A change is compatible only when both
//! work, so these break:
//! - an event type or a topic removed, an event moved to another topic, or
//!   keyed by another field (consumers rely on one key's events in order);
//! - a field removed, or no longer always present;
//! - a field retyped (including made nullable or given another format);
//! - a required field added (old events lack it);
//! - a value removed from an enumeration, or a variant from a tagged union.
//!
//! Adding an optional field, an event type, a topic, an enumeration value
//! or a variant is compatible. A breaking change is accepted only with the
//! contract's major version bumped and a changelog entry for the new
//! version ([`check_release`]).

use std::collections::BTreeMap;

use serde_json::Value;

use crate::shape::{Field, Shape};

/// Every breaking difference from `released` to `current` (two AsyncAPI
/// documents), one message each, naming the event and the field.
pub fn breaking_changes(released: &Value, current: &Value) -> Vec<String> {
    let mut breaks = Vec::new();
    let (old_topics, new_topics) = (topics_of(released), topics_of(current));
    for topic in old_topics.values() {
        if !new_topics.values().any(|t| t == topic) {
            breaks.push(format!("topic {topic:?} removed"));
        }
    }
    let new_events = events_of(current);
    for (event_type, old) in events_of(released) {
        let Some(new) = new_events.get(&event_type) else {
            breaks.push(format!("event {event_type} removed"));
            continue;
        };
        if new.topic != old.topic {
            breaks.push(format!(
                "event {event_type}: moved from topic {:?} to {:?}",
                old.topic, new.topic
            ));
        }
        if new.key != old.key {
            breaks.push(format!(
                "event {event_type}: partition key changed from {} to {}",
                old.key, new.key
            ));
        }
        let mut found = Vec::new();
        compare(
            "",
            &Shape::of(&old.payload, released),
            &Shape::of(&new.payload, current),
            &mut found,
        );
        breaks.extend(
            found
                .into_iter()
                .map(|problem| format!("event {event_type}: {problem}")),
        );
    }
    breaks
}

/// Channel id → topic (its address).
fn topics_of(document: &Value) -> BTreeMap<String, String> {
    document["channels"]
        .as_object()
        .into_iter()
        .flatten()
        .map(|(id, channel)| {
            let address = channel["address"].as_str().unwrap_or(id).to_owned();
            (id.clone(), address)
        })
        .collect()
}

/// What the contract says of one event type.
struct Published {
    topic: String,
    /// The fields the partition key is taken from, as JSON.
    key: Value,
    payload: Value,
}

/// Event type → what is published of it.
fn events_of(document: &Value) -> BTreeMap<String, Published> {
    let topics = topics_of(document);
    let mut events = BTreeMap::new();
    for (channel_id, channel) in document["channels"].as_object().into_iter().flatten() {
        for message in channel["messages"]
            .as_object()
            .into_iter()
            .flatten()
            .map(|(_, m)| m)
        {
            let message = resolve(message, document);
            let Some(event_type) = message["name"].as_str() else {
                continue;
            };
            events.insert(
                event_type.to_owned(),
                Published {
                    topic: topics[channel_id].clone(),
                    key: message["x-partition-key"].clone(),
                    payload: message["payload"].clone(),
                },
            );
        }
    }
    events
}

fn resolve<'a>(value: &'a Value, document: &'a Value) -> &'a Value {
    match value["$ref"].as_str() {
        Some(target) => document
            .pointer(target.trim_start_matches('#'))
            .unwrap_or(value),
        None => value,
    }
}

fn at(path: &str, name: &str) -> String {
    if path.is_empty() {
        name.to_owned()
    } else {
        format!("{path}.{name}")
    }
}

/// The breaks between two shapes of the field at `path` (empty: the payload).
fn compare(path: &str, old: &Shape, new: &Shape, breaks: &mut Vec<String>) {
    let subject = if path.is_empty() {
        "the payload".to_owned()
    } else {
        format!("field {path:?}")
    };
    match (old, new) {
        (Shape::Object(old), Shape::Object(new)) => compare_fields(path, old, new, breaks),
        (
            Shape::Tagged {
                tag: old_tag,
                variants: old,
            },
            Shape::Tagged {
                tag: new_tag,
                variants: new,
            },
        ) if old_tag == new_tag => {
            for (value, old_fields) in old {
                match new.get(value) {
                    None => breaks.push(format!("{subject}: variant {value:?} removed")),
                    Some(new_fields) => {
                        compare_fields(&format!("{path}[{value}]"), old_fields, new_fields, breaks)
                    }
                }
            }
        }
        (
            Shape::Values {
                kind: old_kind,
                values: old,
            },
            Shape::Values {
                kind: new_kind,
                values: new,
            },
        ) if old_kind == new_kind => {
            for value in old.difference(new) {
                breaks.push(format!("{subject}: enum value {value:?} removed"));
            }
        }
        (Shape::Array(old), Shape::Array(new)) => compare(&format!("{path}[]"), old, new, breaks),
        (Shape::Nullable(old), Shape::Nullable(new)) => compare(path, old, new, breaks),
        (old, new) if old == new => {}
        (old, new) => breaks.push(format!("{subject} retyped from {old} to {new}")),
    }
}

fn compare_fields(
    path: &str,
    old: &BTreeMap<String, Field>,
    new: &BTreeMap<String, Field>,
    breaks: &mut Vec<String>,
) {
    for (name, old_field) in old {
        let field = at(path, name);
        match new.get(name) {
            None => breaks.push(format!("field {field:?} removed")),
            Some(new_field) => {
                if old_field.required && !new_field.required {
                    breaks.push(format!("field {field:?} became optional"));
                }
                if !old_field.required && new_field.required {
                    breaks.push(format!("field {field:?} became required"));
                }
                compare(&field, &old_field.shape, &new_field.shape, breaks);
            }
        }
    }
    for (name, new_field) in new {
        if new_field.required && !old.contains_key(name) {
            breaks.push(format!("required field {:?} added", at(path, name)));
        }
    }
}

/// A semantic version, `major.minor.patch`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Version {
    pub major: u64,
    pub minor: u64,
    pub patch: u64,
}

impl std::str::FromStr for Version {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let parts: Vec<u64> = text
            .split('.')
            .map(str::parse)
            .collect::<Result<_, _>>()
            .map_err(|_| format!("{text:?} is not a version (major.minor.patch)"))?;
        match parts.as_slice() {
            [major, minor, patch] => Ok(Version {
                major: *major,
                minor: *minor,
                patch: *patch,
            }),
            _ => Err(format!("{text:?} is not a version (major.minor.patch)")),
        }
    }
}

impl std::fmt::Display for Version {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}.{}", self.major, self.minor, self.patch)
    }
}

/// Whether `changelog` (Markdown) has a `## <version>` heading (anything
/// may follow the version on the line, e.g. a date).
pub fn has_entry(changelog: &str, version: Version) -> bool {
    let version = version.to_string();
    changelog.lines().any(|line| {
        line.strip_prefix("## ")
            .map(|title| title.trim().trim_start_matches('[').trim_start_matches('v'))
            .is_some_and(|title| {
                title
                    .strip_prefix(version.as_str())
                    .is_some_and(|rest| !rest.starts_with(|c: char| c.is_ascii_digit() || c == '.'))
            })
    })
}

/// Whether the current contract may be published over the released one:
/// a version never goes back, a new version has a changelog entry, and a
/// breaking change comes with a new major version.
pub fn check_release(
    released: Version,
    current: Version,
    breaks: &[String],
    changelog: &str,
) -> Result<(), String> {
    if current < released {
        return Err(format!(
            "the contract version {current} is lower than the released {released}"
        ));
    }
    let mut problems = Vec::new();
    if !breaks.is_empty() && current.major <= released.major {
        let next = Version {
            major: released.major + 1,
            minor: 0,
            patch: 0,
        };
        problems.push(format!(
            "breaking changes to the released contract {released}:\n  {}\n\
             Undo them, or make the break deliberate: set CONTRACT_VERSION to {next} \
             (and SCHEMA_VERSION to {}) and add a \"## {next}\" entry to \
             contracts/CHANGELOG.md saying what broke and what consumers must do",
            breaks.join("\n  "),
            next.major,
        ));
    }
    if current != released && !has_entry(changelog, current) {
        problems.push(format!(
            "contracts/CHANGELOG.md has no \"## {current}\" entry for the new contract version"
        ));
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems.join("\n"))
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    /// A one-topic contract whose `boxoffice.reservation.confirmed` carries
    /// `payload`, with `Booking` as a shared schema.
    fn contract(payload: Value) -> Value {
        contract_with(
            "boxoffice.reservation",
            &[("boxoffice.reservation.confirmed", payload)],
        )
    }

    fn contract_with(topic: &str, events: &[(&str, Value)]) -> Value {
        let messages: serde_json::Map<String, Value> = events
            .iter()
            .map(|(name, _)| {
                (
                    name.to_string(),
                    json!({"$ref": format!("#/components/messages/{name}")}),
                )
            })
            .collect();
        let components: serde_json::Map<String, Value> = events
            .iter()
            .map(|(name, payload)| (name.to_string(), json!({"name": name, "payload": payload})))
            .collect();
        json!({
            "info": {"version": "1.0.0"},
            "channels": {"reservation": {"address": topic, "messages": messages}},
            "components": {
                "messages": components,
                "schemas": {
                    "Booking": {"type": "object", "properties": {
                        "amount": {"type": "integer", "format": "int64"},
                        "kind": {"type": "string", "enum": ["movie", "musical", "bike"]}
                    }, "required": ["amount", "kind"]}
                }
            }
        })
    }

    fn confirmed() -> Value {
        json!({
            "type": "object",
            "properties": {
                "booking": {"$ref": "#/components/schemas/Booking"},
                "amount": {"type": "integer", "format": "int64"},
                "confirmedAt": {"type": "string", "format": "date-time"},
                "note": {"type": ["string", "null"]},
                "capacity": {"oneOf": [
                    {"type": "object", "properties": {
                        "type": {"type": "string", "const": "quota"},
                        "total": {"type": "integer"}}, "required": ["type", "total"]},
                    {"type": "object", "properties": {
                        "type": {"type": "string", "const": "unit"}}, "required": ["type"]}
                ]}
            },
            "required": ["booking", "amount", "confirmedAt", "capacity"]
        })
    }

    fn changed(edit: impl FnOnce(&mut Value)) -> Vec<String> {
        let mut payload = confirmed();
        edit(&mut payload);
        breaking_changes(&contract(confirmed()), &contract(payload))
    }

    #[test]
    fn the_same_contract_breaks_nothing() {
        assert_eq!(changed(|_| {}), Vec::<String>::new());
    }

    #[test]
    fn a_removed_field_is_named() {
        let breaks = changed(|payload| {
            payload["properties"]
                .as_object_mut()
                .unwrap()
                .remove("amount");
            payload["required"] = json!(["booking", "confirmedAt", "capacity"]);
        });
        assert_eq!(
            breaks,
            [r#"event boxoffice.reservation.confirmed: field "amount" removed"#]
        );
    }

    #[test]
    fn a_retyped_field_is_named_with_both_types() {
        let breaks = changed(|payload| {
            payload["properties"]["amount"] = json!({"type": "string"});
        });
        assert_eq!(
            breaks,
            [
                r#"event boxoffice.reservation.confirmed: field "amount" retyped from integer (int64) to string"#
            ]
        );
    }

    #[test]
    fn a_field_made_nullable_is_retyped() {
        let breaks = changed(|payload| {
            payload["properties"]["confirmedAt"] =
                json!({"type": ["string", "null"], "format": "date-time"});
        });
        assert_eq!(
            breaks,
            [
                r#"event boxoffice.reservation.confirmed: field "confirmedAt" retyped from string (date-time) to string (date-time) or null"#
            ]
        );
    }

    #[test]
    fn a_new_required_field_breaks_and_a_new_optional_one_does_not() {
        let breaks = changed(|payload| {
            payload["properties"]["seats"] = json!({"type": "array", "items": {"type": "string"}});
            payload["properties"]["venue"] = json!({"type": "string"});
            payload["required"]
                .as_array_mut()
                .unwrap()
                .push(json!("venue"));
        });
        assert_eq!(
            breaks,
            [r#"event boxoffice.reservation.confirmed: required field "venue" added"#]
        );
    }

    #[test]
    fn a_field_no_longer_always_there_breaks() {
        let breaks = changed(|payload| {
            payload["required"] = json!(["booking", "confirmedAt", "capacity"]);
        });
        assert_eq!(
            breaks,
            [r#"event boxoffice.reservation.confirmed: field "amount" became optional"#]
        );
    }

    #[test]
    fn changes_inside_a_shared_schema_are_named_by_their_path() {
        let released = contract(confirmed());
        let mut current = released.clone();
        current["components"]["schemas"]["Booking"]["properties"]["amount"] =
            json!({"type": "number"});
        assert_eq!(
            breaking_changes(&released, &current),
            [
                r#"event boxoffice.reservation.confirmed: field "booking.amount" retyped from integer (int64) to number"#
            ]
        );
    }

    #[test]
    fn a_removed_enum_value_breaks_and_an_added_one_does_not() {
        let released = contract(confirmed());
        let mut current = released.clone();
        current["components"]["schemas"]["Booking"]["properties"]["kind"]["enum"] =
            json!(["movie", "musical", "concert"]);
        assert_eq!(
            breaking_changes(&released, &current),
            [
                r#"event boxoffice.reservation.confirmed: field "booking.kind": enum value "bike" removed"#
            ]
        );
    }

    #[test]
    fn a_removed_variant_breaks_and_a_variant_changed_inside_is_named() {
        let breaks = changed(|payload| {
            let variants = payload["properties"]["capacity"]["oneOf"]
                .as_array_mut()
                .unwrap();
            variants.remove(1);
            variants[0]["properties"]["total"] = json!({"type": "string"});
            variants.push(json!({"type": "object", "properties": {
                "type": {"type": "string", "const": "seated"}}, "required": ["type"]}));
        });
        assert_eq!(
            breaks,
            [
                r#"event boxoffice.reservation.confirmed: field "capacity[quota].total" retyped from integer to string"#,
                r#"event boxoffice.reservation.confirmed: field "capacity": variant "unit" removed"#,
            ]
        );
    }

    #[test]
    fn a_removed_event_type_and_topic_are_named() {
        let released = contract(confirmed());
        let current = contract_with(
            "boxoffice.bookings",
            &[("boxoffice.reservation.placed", confirmed())],
        );
        assert_eq!(
            breaking_changes(&released, &current),
            [
                r#"topic "boxoffice.reservation" removed"#,
                "event boxoffice.reservation.confirmed removed",
            ]
        );
    }

    #[test]
    fn an_event_keyed_by_another_field_breaks() {
        let released = contract(confirmed());
        let mut current = released.clone();
        let message = &mut current["components"]["messages"]["boxoffice.reservation.confirmed"];
        message["x-partition-key"] = json!(["/booking/userId"]);
        let mut released = released;
        released["components"]["messages"]["boxoffice.reservation.confirmed"]["x-partition-key"] =
            json!(["/booking/reservationId"]);
        assert_eq!(
            breaking_changes(&released, &current),
            [
                r#"event boxoffice.reservation.confirmed: partition key changed from ["/booking/reservationId"] to ["/booking/userId"]"#
            ]
        );
    }

    #[test]
    fn a_new_event_type_is_compatible() {
        let released = contract(confirmed());
        let current = contract_with(
            "boxoffice.reservation",
            &[
                ("boxoffice.reservation.confirmed", confirmed()),
                ("boxoffice.reservation.placed", confirmed()),
            ],
        );
        assert_eq!(breaking_changes(&released, &current), Vec::<String>::new());
    }

    fn version(text: &str) -> Version {
        text.parse().unwrap()
    }

    const CHANGELOG: &str = "# Changelog\n\n## 2.0.0 — 2026-12-01\n\nRemoved amount.\n\n## 1.0.0\n";

    #[test]
    fn a_break_without_a_new_major_fails_naming_the_break_and_the_remedy() {
        let breaks = vec![r#"event x: field "amount" removed"#.to_owned()];
        let error =
            check_release(version("1.0.0"), version("1.1.0"), &breaks, CHANGELOG).unwrap_err();
        assert!(error.contains(r#"field "amount" removed"#), "{error}");
        assert!(error.contains("set CONTRACT_VERSION to 2.0.0"), "{error}");
        assert!(error.contains(r###"no "## 1.1.0" entry"###), "{error}");
    }

    #[test]
    fn a_break_with_a_new_major_and_its_changelog_entry_passes() {
        let breaks = vec![r#"event x: field "amount" removed"#.to_owned()];
        assert_eq!(
            check_release(version("1.0.0"), version("2.0.0"), &breaks, CHANGELOG),
            Ok(())
        );
        let error = check_release(version("1.0.0"), version("2.0.0"), &breaks, "# Changelog\n")
            .unwrap_err();
        assert!(error.contains(r###"no "## 2.0.0" entry"###), "{error}");
    }

    #[test]
    fn compatible_changes_pass_at_the_released_version_and_a_version_never_goes_back() {
        assert_eq!(
            check_release(version("1.0.0"), version("1.0.0"), &[], ""),
            Ok(())
        );
        assert!(check_release(version("2.0.0"), version("1.0.0"), &[], CHANGELOG).is_err());
    }

    #[test]
    fn a_changelog_entry_is_a_heading_naming_exactly_that_version() {
        assert!(has_entry("## 2.0.0 — 2026-12-01", version("2.0.0")));
        assert!(has_entry("## [2.0.0]", version("2.0.0")));
        assert!(!has_entry("## 2.0.0", version("2.0.1")));
        assert!(!has_entry("## 2.0.10", version("2.0.1")));
        assert!(!has_entry("2.0.0 mentioned in passing", version("2.0.0")));
        assert!("1.0".parse::<Version>().is_err());
    }
}
