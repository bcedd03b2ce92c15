//! What a payload schema allows, reduced to what compatibility and
//! consumers care about: fields, whether they are always there, their
//! types, and the values an enumeration may take. Read from the JSON
//! Schemas the documents carry (as schemars writes them for serde's
//! representation), references resolved against the document they are in.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use serde_json::Value;

/// A field of an object.
#[derive(Debug, Clone, PartialEq)]
pub struct Field {
    pub shape: Shape,
    /// Present on every event (a reader may rely on it).
    pub required: bool,
}

/// The shape of a JSON value.
#[derive(Debug, Clone, PartialEq)]
pub enum Shape {
    /// Anything at all.
    Any,
    /// A scalar of one JSON type (`string`, `integer`, `number`,
    /// `boolean`), with its format (`uuid`, `date-time`, `uint32`, …).
    Scalar {
        kind: String,
        format: Option<String>,
    },
    /// One of fixed values (a unit-only enum, a `const`).
    Values {
        kind: String,
        values: BTreeSet<String>,
    },
    Array(Box<Shape>),
    Object(BTreeMap<String, Field>),
    /// Objects told apart by the value of a tag field (a serde internally
    /// tagged enum): tag value → the variant's other fields.
    Tagged {
        tag: String,
        variants: BTreeMap<String, BTreeMap<String, Field>>,
    },
    /// The inner shape, or `null`.
    Nullable(Box<Shape>),
}

impl Shape {
    /// Reads `schema`, following `$ref`s into `root` (the document holding it).
    pub fn of(schema: &Value, root: &Value) -> Shape {
        read(schema, root, 0)
    }

    /// The type as a consumer names it: `string`, `uuid`, `date-time`,
    /// `integer`, `boolean`, `object`, `array<…>`; integer widths and
    /// enumerated values are left out, a consumer reads them the same way.
    pub fn kind(&self) -> String {
        match self {
            Shape::Any => "any".to_owned(),
            Shape::Scalar { kind, format } => match format.as_deref() {
                Some(format @ ("uuid" | "date-time")) if kind == "string" => format.to_owned(),
                _ => kind.clone(),
            },
            Shape::Values { kind, .. } => kind.clone(),
            Shape::Array(items) => format!("array<{}>", items.kind()),
            Shape::Object(_) | Shape::Tagged { .. } => "object".to_owned(),
            Shape::Nullable(inner) => inner.kind(),
        }
    }

    /// The field at `path` (`booking.amount`): found in any variant of a
    /// tagged object, and required only when every variant requires it.
    pub fn field(&self, path: &str) -> Option<Field> {
        let mut current = Field {
            shape: self.clone(),
            required: true,
        };
        for name in path.split('.') {
            current = current.shape.child(name).map(|child| Field {
                required: current.required && child.required,
                shape: child.shape,
            })?;
        }
        Some(current)
    }

    fn child(&self, name: &str) -> Option<Field> {
        match self {
            Shape::Object(fields) => fields.get(name).cloned(),
            Shape::Tagged { tag, variants } if name == tag => Some(Field {
                shape: Shape::Values {
                    kind: "string".to_owned(),
                    values: variants.keys().cloned().collect(),
                },
                required: true,
            }),
            Shape::Tagged { variants, .. } => {
                let found: Vec<&Field> = variants
                    .values()
                    .filter_map(|fields| fields.get(name))
                    .collect();
                let first = found.first()?;
                Some(Field {
                    shape: first.shape.clone(),
                    required: found.len() == variants.len() && found.iter().all(|f| f.required),
                })
            }
            Shape::Nullable(inner) => inner.child(name).map(|field| Field {
                required: false,
                ..field
            }),
            _ => None,
        }
    }
}

impl Shape {
    /// Where `value` does not have this shape, one message each; strict
    /// about fields the shape does not name, so a test can tell that a
    /// schema describes exactly what serde writes.
    pub fn mismatches(&self, value: &Value) -> Vec<String> {
        let mut found = Vec::new();
        self.check(value, "", &mut found);
        found
    }

    fn check(&self, value: &Value, path: &str, found: &mut Vec<String>) {
        let here = if path.is_empty() { "the payload" } else { path };
        match (self, value) {
            (Shape::Any, _) => {}
            (Shape::Nullable(_), Value::Null) => {}
            (Shape::Nullable(inner), value) => inner.check(value, path, found),
            (Shape::Values { values, .. }, value) => {
                if !values.contains(&literal(value)) {
                    found.push(format!("{here}: {value} is not one of {values:?}"));
                }
            }
            (Shape::Scalar { kind, format }, value) => {
                let of_kind = json_kind(value) == *kind || (kind == "number" && value.is_number());
                if !of_kind || !formatted(format.as_deref(), value) {
                    found.push(format!("{here}: {value} is not {self}"));
                }
            }
            (Shape::Array(items), Value::Array(values)) => {
                for item in values {
                    items.check(item, &format!("{path}[]"), found);
                }
            }
            (Shape::Object(fields), Value::Object(map)) => check_fields(fields, map, path, found),
            (Shape::Tagged { tag, variants }, Value::Object(map)) => {
                let value = map.get(tag).map(literal).unwrap_or_default();
                match variants.get(&value) {
                    None => found.push(format!("{here}: {tag} {value:?} is no variant")),
                    Some(fields) => {
                        let mut rest = map.clone();
                        rest.remove(tag);
                        check_fields(fields, &rest, path, found);
                    }
                }
            }
            (_, value) => found.push(format!("{here}: {value} is not {self}")),
        }
    }
}

fn check_fields(
    fields: &BTreeMap<String, Field>,
    map: &serde_json::Map<String, Value>,
    path: &str,
    found: &mut Vec<String>,
) {
    let at = |name: &str| {
        if path.is_empty() {
            name.to_owned()
        } else {
            format!("{path}.{name}")
        }
    };
    for (name, field) in fields {
        match map.get(name) {
            Some(value) => field.shape.check(value, &at(name), found),
            None if field.required => found.push(format!("{} is missing", at(name))),
            None => {}
        }
    }
    for name in map.keys().filter(|name| !fields.contains_key(*name)) {
        found.push(format!("{} is not in the schema", at(name)));
    }
}

/// Whether a value is written in `format` (the formats the contract uses).
fn formatted(format: Option<&str>, value: &Value) -> bool {
    let text = value.as_str();
    match format {
        Some("uuid") => text.is_some_and(|text| {
            text.len() == 36
                && text.char_indices().all(|(i, c)| match i {
                    8 | 13 | 18 | 23 => c == '-',
                    _ => c.is_ascii_hexdigit(),
                })
        }),
        Some("date-time") => text.is_some_and(|text| {
            time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339)
                .is_ok()
        }),
        Some("uint8" | "uint32" | "uint64") => value.is_u64(),
        _ => true,
    }
}

impl fmt::Display for Shape {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Shape::Scalar {
                kind,
                format: Some(format),
            } => write!(f, "{kind} ({format})"),
            Shape::Nullable(inner) => write!(f, "{inner} or null"),
            Shape::Array(items) => write!(f, "array of {items}"),
            Shape::Tagged { tag, .. } => write!(f, "object tagged by {tag:?}"),
            Shape::Values { kind, .. } => write!(f, "{kind} (enumeration)"),
            other => f.write_str(&other.kind()),
        }
    }
}

/// Deep enough for any payload; a reference cycle would end here.
const MAX_DEPTH: usize = 32;

fn read(schema: &Value, root: &Value, depth: usize) -> Shape {
    if depth > MAX_DEPTH {
        return Shape::Any;
    }
    let Some(map) = schema.as_object() else {
        return Shape::Any;
    };
    if let Some(target) = map.get("$ref").and_then(Value::as_str) {
        return match root.pointer(target.trim_start_matches('#')) {
            Some(resolved) => read(resolved, root, depth + 1),
            None => Shape::Any,
        };
    }
    if let Some(value) = map.get("const") {
        return Shape::Values {
            kind: json_kind(value),
            values: BTreeSet::from([literal(value)]),
        };
    }
    if let Some(values) = map.get("enum").and_then(Value::as_array) {
        return Shape::Values {
            kind: values.first().map(json_kind).unwrap_or_default(),
            values: values.iter().map(literal).collect(),
        };
    }
    if let Some(parts) = map.get("allOf").and_then(Value::as_array) {
        return all_of(parts, root, depth);
    }
    if let Some(branches) = map
        .get("oneOf")
        .or_else(|| map.get("anyOf"))
        .and_then(Value::as_array)
    {
        return alternatives(branches, root, depth);
    }
    let types: Vec<&str> = match map.get("type") {
        Some(Value::String(kind)) => vec![kind.as_str()],
        Some(Value::Array(kinds)) => kinds.iter().filter_map(Value::as_str).collect(),
        _ => return Shape::Any,
    };
    let nullable = types.contains(&"null");
    let kind = types.iter().find(|kind| **kind != "null").copied();
    let shape = match kind {
        None => Shape::Any,
        Some("object") => Shape::Object(fields(map, root, depth)),
        Some("array") => Shape::Array(Box::new(
            map.get("items")
                .map_or(Shape::Any, |items| read(items, root, depth + 1)),
        )),
        Some(kind) => Shape::Scalar {
            kind: kind.to_owned(),
            format: map.get("format").and_then(Value::as_str).map(str::to_owned),
        },
    };
    if nullable {
        Shape::Nullable(Box::new(shape))
    } else {
        shape
    }
}

fn fields(
    map: &serde_json::Map<String, Value>,
    root: &Value,
    depth: usize,
) -> BTreeMap<String, Field> {
    let required: BTreeSet<&str> = map
        .get("required")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    map.get("properties")
        .and_then(Value::as_object)
        .into_iter()
        .flatten()
        .map(|(name, schema)| {
            (
                name.clone(),
                Field {
                    shape: read(schema, root, depth + 1),
                    required: required.contains(name.as_str()),
                },
            )
        })
        .collect()
}

/// A `oneOf`: enumerated values (each branch a `const`), a tagged union
/// (each branch an object with the same `const` field), or something and
/// `null`.
fn alternatives(branches: &[Value], root: &Value, depth: usize) -> Shape {
    let shapes: Vec<Shape> = branches
        .iter()
        .map(|branch| read(branch, root, depth + 1))
        .collect();
    if let [one] = shapes.as_slice() {
        return one.clone();
    }
    let is_null = |shape: &Shape| matches!(shape, Shape::Scalar { kind, .. } if kind == "null");
    if let [one, other] = shapes.as_slice() {
        if is_null(other) {
            return Shape::Nullable(Box::new(one.clone()));
        }
        if is_null(one) {
            return Shape::Nullable(Box::new(other.clone()));
        }
    }
    if shapes
        .iter()
        .all(|shape| matches!(shape, Shape::Values { .. }))
    {
        let mut values = BTreeSet::new();
        let mut kind = String::new();
        for shape in shapes {
            if let Shape::Values { kind: k, values: v } = shape {
                kind = k;
                values.extend(v);
            }
        }
        return Shape::Values { kind, values };
    }
    if let Some(tagged) = tagged(&shapes) {
        return tagged;
    }
    Shape::Any
}

/// Every one of `parts` at once: objects' fields together (required where
/// any part requires them); anything else is read as the one part.
fn all_of(parts: &[Value], root: &Value, depth: usize) -> Shape {
    let shapes: Vec<Shape> = parts
        .iter()
        .map(|part| read(part, root, depth + 1))
        .collect();
    if let [one] = shapes.as_slice() {
        return one.clone();
    }
    let mut merged: BTreeMap<String, Field> = BTreeMap::new();
    for shape in shapes {
        let Shape::Object(fields) = shape else {
            return Shape::Any;
        };
        for (name, field) in fields {
            match merged.get_mut(&name) {
                Some(known) => known.required |= field.required,
                None => {
                    merged.insert(name, field);
                }
            }
        }
    }
    Shape::Object(merged)
}

/// Objects that all have one required single-value field: serde's tag.
fn tagged(shapes: &[Shape]) -> Option<Shape> {
    let objects: Vec<&BTreeMap<String, Field>> = shapes
        .iter()
        .map(|shape| match shape {
            Shape::Object(fields) => Some(fields),
            _ => None,
        })
        .collect::<Option<_>>()?;
    let tag_value = |fields: &BTreeMap<String, Field>, name: &str| match fields.get(name) {
        Some(Field {
            shape: Shape::Values { values, .. },
            required: true,
        }) if values.len() == 1 => values.first().cloned(),
        _ => None,
    };
    let first = objects.first()?;
    let tag = first
        .keys()
        .find(|name| {
            objects
                .iter()
                .all(|fields| tag_value(fields, name).is_some())
        })?
        .clone();
    let variants = objects
        .iter()
        .map(|fields| {
            let value = tag_value(fields, &tag).unwrap_or_default();
            let mut rest = (*fields).clone();
            rest.remove(&tag);
            (value, rest)
        })
        .collect();
    Some(Shape::Tagged { tag, variants })
}

fn json_kind(value: &Value) -> String {
    match value {
        Value::String(_) => "string",
        Value::Number(number) if number.is_i64() || number.is_u64() => "integer",
        Value::Number(_) => "number",
        Value::Bool(_) => "boolean",
        Value::Null => "null",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
    .to_owned()
}

/// A value as it is named in messages: strings bare, others as JSON.
fn literal(value: &Value) -> String {
    value
        .as_str()
        .map_or_else(|| value.to_string(), str::to_owned)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn shape(schema: Value) -> Shape {
        Shape::of(&schema, &json!({}))
    }

    #[test]
    fn an_optional_nullable_field_is_neither_required_nor_plain() {
        let booking = shape(json!({
            "type": "object",
            "properties": {
                "amount": {"type": "integer", "format": "int64"},
                "startsAt": {"type": ["string", "null"], "format": "date-time"}
            },
            "required": ["amount"]
        }));
        let amount = booking.field("amount").unwrap();
        assert!(amount.required);
        assert_eq!(amount.shape.kind(), "integer");
        let starts = booking.field("startsAt").unwrap();
        assert!(!starts.required);
        assert_eq!(starts.shape.kind(), "date-time");
        assert!(matches!(starts.shape, Shape::Nullable(_)));
        assert_eq!(booking.field("missing"), None);
    }

    #[test]
    fn references_are_followed_into_the_document() {
        let root = json!({"components": {"schemas": {
            "Booking": {"type": "object", "properties": {"seats": {
                "type": "array", "items": {"type": "string"}}}}
        }}});
        let event = Shape::of(
            &json!({"type": "object", "properties": {
                "booking": {"$ref": "#/components/schemas/Booking"}},
                "required": ["booking"]}),
            &root,
        );
        let seats = event.field("booking.seats").unwrap();
        assert_eq!(seats.shape.kind(), "array<string>");
        assert!(!seats.required, "seats is not required inside booking");
    }

    #[test]
    fn a_one_of_of_constants_is_an_enumeration() {
        let kind = shape(json!({"oneOf": [
            {"type": "string", "const": "movie", "description": "A film."},
            {"type": "string", "const": "bike"}
        ]}));
        assert_eq!(
            kind,
            Shape::Values {
                kind: "string".into(),
                values: ["bike".to_owned(), "movie".to_owned()].into()
            }
        );
    }

    #[test]
    fn a_value_of_another_shape_is_told_where() {
        let booking = shape(json!({
            "type": "object",
            "properties": {
                "reservationId": {"type": "string", "format": "uuid"},
                "at": {"type": "string", "format": "date-time"},
                "kind": {"type": "string", "enum": ["movie", "bike"]},
                "seats": {"type": "array", "items": {"type": "string"}},
                "note": {"type": ["string", "null"]}
            },
            "required": ["reservationId", "at", "kind"]
        }));
        let good = json!({
            "reservationId": "01a1fdc6-4669-7224-80ee-bed2440fa4c3",
            "at": "2026-11-21T10:00:00.5Z",
            "kind": "bike",
            "note": null
        });
        assert_eq!(booking.mismatches(&good), Vec::<String>::new());
        let bad = json!({
            "reservationId": "r-1",
            "at": "tomorrow",
            "kind": "concert",
            "seats": ["A-1", 2],
            "colour": "red"
        });
        assert_eq!(
            booking.mismatches(&bad),
            [
                r#"at: "tomorrow" is not string (date-time)"#,
                r#"kind: "concert" is not one of {"bike", "movie"}"#,
                r#"reservationId: "r-1" is not string (uuid)"#,
                "seats[]: 2 is not string",
                "colour is not in the schema",
            ]
        );
        assert_eq!(
            booking.mismatches(&json!({"at": "2026-11-21T10:00:00Z", "kind": "movie"})),
            ["reservationId is missing"]
        );
    }

    #[test]
    fn objects_sharing_a_constant_field_are_a_tagged_union() {
        let capacity = shape(json!({"oneOf": [
            {"type": "object", "properties": {
                "type": {"type": "string", "const": "quota"},
                "total": {"type": "integer"}}, "required": ["type", "total"]},
            {"type": "object", "properties": {
                "type": {"type": "string", "const": "unit"}}, "required": ["type"]}
        ]}));
        let Shape::Tagged { tag, variants } = &capacity else {
            panic!("{capacity:?}")
        };
        assert_eq!(tag, "type");
        assert_eq!(variants.keys().collect::<Vec<_>>(), ["quota", "unit"]);
        let total = capacity.field("total").unwrap();
        assert!(!total.required, "only quotas have a total");
        assert_eq!(capacity.field("type").unwrap().shape.kind(), "string");
    }
}
