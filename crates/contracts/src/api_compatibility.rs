//! What a change to the public HTTP API breaks, measured against the
//! released OpenAPI document (`contracts/released/<version>/openapi.json`).
//!
//! A client built against the released document keeps sending what it
//! sent and reading what it read, so these break it:
//! - an operation (a method on a path) removed;
//! - security tightened: a public operation that now needs a token, or one
//!   any signed-in user could call that is now for admins only;
//! - a parameter added as required, or made required; a parameter or a
//!   request field retyped, or its enumeration narrowed;
//! - a request body now required where there was none;
//! - a request field added as required, or made required; a request field
//!   removed (bodies refuse unknown fields) or no longer taking `null`;
//! - a success status no longer answered, or a content type of it;
//! - a response field removed, no longer always present, retyped, made
//!   nullable, or given values its enumeration did not have (a client's
//!   exhaustive match would miss them), including a new variant of a
//!   tagged union.
//!
//! Adding an operation, an optional parameter or request field, a
//! response field, an error status, or a value a request may take is
//! compatible. Paths compare by their shape: `/a/{id}` is `/a/{x}`.
//! A breaking change is accepted only with a new major version of the
//! document (`info.version`) and a `## API <version>` entry in
//! `contracts/CHANGELOG.md` ([`check_api_release`]).

use std::collections::BTreeMap;

use serde_json::Value;

use crate::compatibility::Version;
use crate::shape::{Field, Shape};

const METHODS: [&str; 5] = ["get", "put", "post", "delete", "patch"];

/// Every breaking difference from `released` to `current` (two OpenAPI
/// documents), one message each, naming the operation and what broke.
pub fn api_breaking_changes(released: &Value, current: &Value) -> Vec<String> {
    let mut breaks = Vec::new();
    let now = operations(current);
    for (key, old) in operations(released) {
        let name = format!("{} {}", key.0, old.path);
        let Some(new) = now.get(&key) else {
            breaks.push(format!("{name}: operation removed"));
            continue;
        };
        let mut found = Vec::new();
        compare_security(
            &old.operation,
            &new.operation,
            released,
            current,
            &mut found,
        );
        compare_parameters(
            &old.operation,
            &new.operation,
            released,
            current,
            &mut found,
        );
        compare_request(
            &old.operation,
            &new.operation,
            released,
            current,
            &mut found,
        );
        compare_responses(
            &old.operation,
            &new.operation,
            released,
            current,
            &mut found,
        );
        breaks.extend(
            found
                .into_iter()
                .map(|problem| format!("{name}: {problem}")),
        );
    }
    breaks
}

struct Operation {
    path: String,
    operation: Value,
}

/// `(METHOD, path shape)` → the operation.
fn operations(document: &Value) -> BTreeMap<(String, String), Operation> {
    let mut found = BTreeMap::new();
    for (path, item) in document["paths"].as_object().into_iter().flatten() {
        for method in METHODS {
            if let Some(operation) = item.get(method) {
                found.insert(
                    (method.to_uppercase(), path_shape(path)),
                    Operation {
                        path: path.clone(),
                        operation: operation.clone(),
                    },
                );
            }
        }
    }
    found
}

/// `/a/{id}/b` → `/a/{}/b`: a path parameter's name is no part of the call.
fn path_shape(path: &str) -> String {
    path.split('/')
        .map(|segment| {
            if segment.starts_with('{') && segment.ends_with('}') {
                "{}"
            } else {
                segment
            }
        })
        .collect::<Vec<_>>()
        .join("/")
}

/// Who may call: anyone, any signed-in user, or only some roles.
#[derive(Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Access {
    Public,
    SignedIn,
    Roles(Vec<String>),
}

fn access(operation: &Value, document: &Value) -> Access {
    let requirements = operation
        .get("security")
        .or_else(|| document.get("security"))
        .and_then(Value::as_array);
    let Some(requirements) = requirements else {
        return Access::Public;
    };
    if requirements.is_empty() || requirements.iter().any(|r| r == &serde_json::json!({})) {
        return Access::Public;
    }
    let mut roles: Vec<String> = requirements
        .iter()
        .filter_map(Value::as_object)
        .flat_map(|requirement| requirement.values())
        .filter_map(Value::as_array)
        .flatten()
        .filter_map(Value::as_str)
        .map(str::to_owned)
        .collect();
    if roles.is_empty() {
        Access::SignedIn
    } else {
        roles.sort();
        Access::Roles(roles)
    }
}

fn compare_security(
    old: &Value,
    new: &Value,
    released: &Value,
    current: &Value,
    breaks: &mut Vec<String>,
) {
    match (access(old, released), access(new, current)) {
        (Access::Public, Access::Public) | (Access::SignedIn, Access::SignedIn) => {}
        (Access::Public, _) => {
            breaks.push("security tightened: a public operation now needs a token".to_owned())
        }
        (Access::SignedIn, Access::Roles(roles)) => breaks.push(format!(
            "security tightened: now only for the role(s) {}",
            roles.join(", ")
        )),
        (Access::Roles(old), Access::Roles(new)) if new.iter().any(|role| !old.contains(role)) => {
            breaks.push(format!(
                "security tightened: roles {} instead of {}",
                new.join(", "),
                old.join(", ")
            ))
        }
        _ => {}
    }
}

fn resolve<'a>(value: &'a Value, document: &'a Value) -> &'a Value {
    match value.get("$ref").and_then(Value::as_str) {
        Some(target) => document
            .pointer(target.trim_start_matches('#'))
            .unwrap_or(value),
        None => value,
    }
}

/// `(in, name)` → the parameter, path parameters by their position.
fn parameters(operation: &Value, document: &Value) -> BTreeMap<(String, String), Value> {
    let mut path_index = 0;
    operation["parameters"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|parameter| resolve(parameter, document).clone())
        .map(|parameter| {
            let place = parameter["in"].as_str().unwrap_or_default().to_owned();
            let name = match place.as_str() {
                "path" => {
                    path_index += 1;
                    format!("#{path_index}")
                }
                // Header names are case-insensitive.
                "header" => parameter["name"]
                    .as_str()
                    .unwrap_or_default()
                    .to_ascii_lowercase(),
                _ => parameter["name"].as_str().unwrap_or_default().to_owned(),
            };
            ((place, name), parameter)
        })
        .collect()
}

fn compare_parameters(
    old: &Value,
    new: &Value,
    released: &Value,
    current: &Value,
    breaks: &mut Vec<String>,
) {
    let before = parameters(old, released);
    for ((place, key), parameter) in parameters(new, current) {
        let name = parameter["name"].as_str().unwrap_or(&key).to_owned();
        let required = parameter["required"].as_bool().unwrap_or(false);
        match before.get(&(place.clone(), key)) {
            None if required => breaks.push(format!("required {place} parameter {name:?} added")),
            None => {}
            Some(was) => {
                if required && !was["required"].as_bool().unwrap_or(false) {
                    breaks.push(format!("{place} parameter {name:?} became required"));
                }
                let subject = format!("{place} parameter {name:?}");
                compare_shapes(
                    &subject,
                    &Shape::of(&was["schema"], released),
                    &Shape::of(&parameter["schema"], current),
                    Direction::Request,
                    breaks,
                );
            }
        }
    }
}

/// The JSON schema of a body, by content type.
fn contents(body: &Value) -> BTreeMap<String, Value> {
    body["content"]
        .as_object()
        .into_iter()
        .flatten()
        .map(|(kind, content)| (kind.clone(), content["schema"].clone()))
        .collect()
}

fn compare_request(
    old: &Value,
    new: &Value,
    released: &Value,
    current: &Value,
    breaks: &mut Vec<String>,
) {
    let (old_body, new_body) = (
        old.get("requestBody").map(|b| resolve(b, released)),
        new.get("requestBody").map(|b| resolve(b, current)),
    );
    let Some(new_body) = new_body else {
        return;
    };
    let required = new_body["required"].as_bool().unwrap_or(false);
    let Some(old_body) = old_body else {
        if required {
            breaks.push("a request body is now required".to_owned());
        }
        return;
    };
    let now = contents(new_body);
    for (kind, old_schema) in contents(old_body) {
        match now.get(&kind) {
            None => breaks.push(format!("request body {kind} no longer accepted")),
            Some(new_schema) => compare_shapes(
                "the request body",
                &Shape::of(&old_schema, released),
                &Shape::of(new_schema, current),
                Direction::Request,
                breaks,
            ),
        }
    }
}

fn compare_responses(
    old: &Value,
    new: &Value,
    released: &Value,
    current: &Value,
    breaks: &mut Vec<String>,
) {
    let now = new["responses"].as_object();
    for (status, response) in old["responses"].as_object().into_iter().flatten() {
        // Error answers may come and go; a client handles them by status class.
        if !status.starts_with('2') {
            continue;
        }
        let Some(new_response) = now.and_then(|now| now.get(status)) else {
            breaks.push(format!("response {status} removed"));
            continue;
        };
        let new_contents = contents(resolve(new_response, current));
        for (kind, old_schema) in contents(resolve(response, released)) {
            match new_contents.get(&kind) {
                None => breaks.push(format!("response {status} is no longer {kind}")),
                Some(new_schema) => compare_shapes(
                    &format!("response {status}"),
                    &Shape::of(&old_schema, released),
                    &Shape::of(new_schema, current),
                    Direction::Response,
                    breaks,
                ),
            }
        }
    }
}

/// Which way a value travels: a client writes requests and reads
/// responses, so what is safe to widen in one is a break in the other.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Direction {
    Request,
    Response,
}

/// `subject` one level down: `.name` or `[]` inside the quoted field path
/// it ends with, or a first field of it.
fn nested(subject: &str, step: &str) -> String {
    match subject.strip_suffix('"') {
        Some(open) => format!("{open}{step}\""),
        None if step == "[]" => format!("{subject}[]"),
        None => format!("{subject} field \"{}\"", step.trim_start_matches('.')),
    }
}

fn field_at(subject: &str, name: &str) -> String {
    nested(subject, &format!(".{name}"))
}

/// The breaks between what a value of `subject` was and is.
fn compare_shapes(
    subject: &str,
    old: &Shape,
    new: &Shape,
    direction: Direction,
    breaks: &mut Vec<String>,
) {
    use Direction::{Request, Response};
    match (old, new) {
        (Shape::Any, _) | (_, Shape::Any) => {}
        (Shape::Object(old), Shape::Object(new)) => {
            compare_fields(subject, old, new, direction, breaks)
        }
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
                    None if direction == Request => {
                        breaks.push(format!("{subject}: variant {value:?} no longer accepted"))
                    }
                    None => {}
                    Some(new_fields) => compare_fields(
                        &format!("{subject} [{old_tag} {value:?}]"),
                        old_fields,
                        new_fields,
                        direction,
                        breaks,
                    ),
                }
            }
            if direction == Response {
                for value in new.keys().filter(|value| !old.contains_key(*value)) {
                    breaks.push(format!("{subject}: new variant {value:?} in a response"));
                }
            }
        }
        (
            Shape::Values {
                kind: k1,
                values: old,
            },
            Shape::Values {
                kind: k2,
                values: new,
            },
        ) if k1 == k2 => match direction {
            Request => {
                let gone: Vec<&String> = old.difference(new).collect();
                if !gone.is_empty() {
                    breaks.push(format!(
                        "{subject}: enum narrowed, {gone:?} no longer accepted"
                    ));
                }
            }
            Response => {
                let added: Vec<&String> = new.difference(old).collect();
                if !added.is_empty() {
                    breaks.push(format!(
                        "{subject}: enum value(s) {added:?} added to a response"
                    ));
                }
            }
        },
        // An enumeration opened to any value of its type: more to read.
        (Shape::Values { kind, .. }, Shape::Scalar { kind: new_kind, .. }) if kind == new_kind => {
            if direction == Response {
                breaks.push(format!(
                    "{subject}: no longer limited to its enumerated values"
                ));
            }
        }
        // Any value of a type narrowed to some: less may be written.
        (
            Shape::Scalar { kind, .. },
            Shape::Values {
                kind: new_kind,
                values,
            },
        ) if kind == new_kind => {
            if direction == Request {
                breaks.push(format!("{subject}: enum narrowed to {values:?}"));
            }
        }
        (Shape::Array(old), Shape::Array(new)) => {
            compare_shapes(&nested(subject, "[]"), old, new, direction, breaks)
        }
        (Shape::Nullable(old), Shape::Nullable(new)) => {
            compare_shapes(subject, old, new, direction, breaks)
        }
        (Shape::Nullable(old), new) => {
            if direction == Request {
                breaks.push(format!("{subject}: no longer takes null"));
            }
            compare_shapes(subject, old, new, direction, breaks)
        }
        (old, Shape::Nullable(new)) => {
            if direction == Response {
                breaks.push(format!("{subject}: may now be null"));
            }
            compare_shapes(subject, old, new, direction, breaks)
        }
        (old, new) if old.kind() == new.kind() => {}
        (old, new) => breaks.push(format!(
            "{subject}: retyped from {} to {}",
            old.kind(),
            new.kind()
        )),
    }
}

fn compare_fields(
    subject: &str,
    old: &BTreeMap<String, Field>,
    new: &BTreeMap<String, Field>,
    direction: Direction,
    breaks: &mut Vec<String>,
) {
    for (name, old_field) in old {
        let field = field_at(subject, name);
        match (new.get(name), direction) {
            (None, Direction::Response) => breaks.push(format!("{field} removed")),
            (None, Direction::Request) => {
                breaks.push(format!("{field} removed (a body naming it is refused)"))
            }
            (Some(new_field), _) => {
                if direction == Direction::Response && old_field.required && !new_field.required {
                    breaks.push(format!("{field} no longer always present"));
                }
                if direction == Direction::Request && !old_field.required && new_field.required {
                    breaks.push(format!("{field} became required"));
                }
                compare_shapes(
                    &field,
                    &old_field.shape,
                    &new_field.shape,
                    direction,
                    breaks,
                );
            }
        }
    }
    if direction == Direction::Request {
        for (name, new_field) in new.iter().filter(|(name, _)| !old.contains_key(*name)) {
            if new_field.required {
                breaks.push(format!("required {} added", field_at(subject, name)));
            }
        }
    }
}

/// Whether the current API document may be published over the released
/// one: its version never goes back, a new version has a `## API
/// <version>` changelog entry, and a breaking change comes with a new
/// major version.
pub fn check_api_release(
    released: Version,
    current: Version,
    breaks: &[String],
    changelog: &str,
) -> Result<(), String> {
    if current < released {
        return Err(format!(
            "the API version {current} is lower than the released {released}"
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
            "breaking changes to the released API {released}:\n  {}\n\
             Undo them, or make the break deliberate: set the API document's info.version \
             to {next} and add a \"## API {next}\" entry to contracts/CHANGELOG.md saying \
             what broke and what clients must do",
            breaks.join("\n  "),
        ));
    }
    if current != released && !has_api_entry(changelog, current) {
        problems.push(format!(
            "contracts/CHANGELOG.md has no \"## API {current}\" entry for the new API version"
        ));
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems.join("\n"))
    }
}

/// Whether `changelog` has a `## API <version>` heading.
pub fn has_api_entry(changelog: &str, version: Version) -> bool {
    changelog.lines().any(|line| {
        line.strip_prefix("## API ").is_some_and(|title| {
            title
                .trim()
                .strip_prefix(version.to_string().as_str())
                .is_some_and(|rest| !rest.starts_with(|c: char| c.is_ascii_digit() || c == '.'))
        })
    })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    /// A document with one operation, `GET /things/{id}` unless `path`
    /// and `method` say otherwise, and the schemas given.
    fn document(path: &str, method: &str, operation: Value, schemas: Value) -> Value {
        json!({
            "openapi": "3.1.0",
            "info": {"title": "t", "version": "1.0.0"},
            "security": [{"bearerAuth": []}],
            "paths": {path: {method: operation}},
            "components": {"schemas": schemas},
        })
    }

    fn thing() -> Value {
        json!({
            "type": "object",
            "required": ["id", "status", "tags"],
            "properties": {
                "id": {"type": "string"},
                "status": {"type": "string", "enum": ["open", "shut"]},
                "tags": {"type": "array", "items": {"type": "string"}},
                "note": {"type": "string"},
            },
        })
    }

    fn read(thing: Value) -> Value {
        document(
            "/things/{id}",
            "get",
            json!({
                "parameters": [
                    {"name": "id", "in": "path", "required": true, "schema": {"type": "string"}},
                    {"name": "view", "in": "query", "required": false,
                     "schema": {"type": "string", "enum": ["short", "full"]}},
                ],
                "responses": {"200": {"description": "ok",
                    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Thing"}}}}},
            }),
            json!({"Thing": thing}),
        )
    }

    fn write(body: Value) -> Value {
        document(
            "/things",
            "post",
            json!({
                "requestBody": {"required": true, "content": {"application/json": {"schema": body}}},
                "responses": {"201": {"description": "ok"}},
            }),
            json!({}),
        )
    }

    fn new_thing() -> Value {
        json!({
            "type": "object", "additionalProperties": false,
            "required": ["name"],
            "properties": {
                "name": {"type": "string"},
                "size": {"type": "integer"},
                "colour": {"type": "string", "enum": ["red", "blue"]},
                "note": {"type": ["string", "null"]},
            },
        })
    }

    fn breaks(released: &Value, current: &Value) -> Vec<String> {
        api_breaking_changes(released, current)
    }

    #[test]
    fn the_same_document_breaks_nothing_and_additions_break_nothing() {
        assert!(breaks(&read(thing()), &read(thing())).is_empty());
        let mut more = read(thing());
        more["paths"]["/others"] = json!({"get": {"responses": {"200": {"description": "ok"}}}});
        more["components"]["schemas"]["Thing"]["properties"]["extra"] = json!({"type": "string"});
        more["paths"]["/things/{id}"]["get"]["responses"]["404"] = json!({"description": "gone"});
        more["paths"]["/things/{id}"]["get"]["parameters"]
            .as_array_mut()
            .unwrap()
            .push(json!({"name": "page", "in": "query", "required": false, "schema": {"type": "integer"}}));
        assert_eq!(breaks(&read(thing()), &more), Vec::<String>::new());
        let mut wider = new_thing();
        wider["properties"]["colour"]["enum"] = json!(["red", "blue", "green"]);
        wider["properties"]["extra"] = json!({"type": "string"});
        assert_eq!(
            breaks(&write(new_thing()), &write(wider)),
            Vec::<String>::new()
        );
    }

    #[test]
    fn a_removed_operation_is_named() {
        let mut current = read(thing());
        current["paths"] =
            json!({"/things/{id}": {"put": current["paths"]["/things/{id}"]["get"].clone()}});
        assert_eq!(
            breaks(&read(thing()), &current),
            ["GET /things/{id}: operation removed"]
        );
    }

    #[test]
    fn a_renamed_path_parameter_is_the_same_operation() {
        let current = document(
            "/things/{thingId}",
            "get",
            read(thing())["paths"]["/things/{id}"]["get"].clone(),
            json!({"Thing": thing()}),
        );
        assert!(breaks(&read(thing()), &current).is_empty());
    }

    #[test]
    fn a_response_field_removed_optional_retyped_or_nullable_breaks_readers() {
        let mut current = thing();
        current["properties"].as_object_mut().unwrap().remove("id");
        current["required"] = json!(["status"]);
        current["properties"]["tags"] = json!({"type": "string"});
        current["properties"]["note"] = json!({"type": ["string", "null"]});
        assert_eq!(
            breaks(&read(thing()), &read(current)),
            [
                r#"GET /things/{id}: response 200 field "id" removed"#,
                r#"GET /things/{id}: response 200 field "note": may now be null"#,
                r#"GET /things/{id}: response 200 field "tags" no longer always present"#,
                r#"GET /things/{id}: response 200 field "tags": retyped from array<string> to string"#,
            ]
        );
    }

    #[test]
    fn a_response_enum_value_added_breaks_readers_and_one_removed_does_not() {
        let mut more = thing();
        more["properties"]["status"]["enum"] = json!(["open", "shut", "lost"]);
        assert_eq!(
            breaks(&read(thing()), &read(more)),
            [
                r#"GET /things/{id}: response 200 field "status": enum value(s) ["lost"] added to a response"#
            ]
        );
        let mut fewer = thing();
        fewer["properties"]["status"]["enum"] = json!(["open"]);
        assert!(breaks(&read(thing()), &read(fewer)).is_empty());
    }

    #[test]
    fn a_success_status_or_content_type_removed_breaks_readers() {
        let mut current = read(thing());
        let responses = &mut current["paths"]["/things/{id}"]["get"]["responses"];
        responses["202"] = responses["200"].take();
        responses.as_object_mut().unwrap().remove("200");
        assert_eq!(
            breaks(&read(thing()), &current),
            ["GET /things/{id}: response 200 removed"]
        );
        let mut current = read(thing());
        let content = &mut current["paths"]["/things/{id}"]["get"]["responses"]["200"]["content"];
        *content = json!({"text/plain": {"schema": {"type": "string"}}});
        assert_eq!(
            breaks(&read(thing()), &current),
            ["GET /things/{id}: response 200 is no longer application/json"]
        );
    }

    #[test]
    fn a_required_request_field_added_or_made_required_breaks_writers() {
        let mut current = new_thing();
        current["properties"]["weight"] = json!({"type": "integer"});
        current["required"] = json!(["name", "size", "weight"]);
        assert_eq!(
            breaks(&write(new_thing()), &write(current)),
            [
                r#"POST /things: the request body field "size" became required"#,
                r#"POST /things: required the request body field "weight" added"#,
            ]
        );
    }

    #[test]
    fn a_request_field_retyped_narrowed_removed_or_not_nullable_breaks_writers() {
        let mut current = new_thing();
        current["properties"]["size"] = json!({"type": "string"});
        current["properties"]["colour"]["enum"] = json!(["red"]);
        current["properties"]["note"] = json!({"type": "string"});
        current["properties"]
            .as_object_mut()
            .unwrap()
            .remove("name");
        current["required"] = json!([]);
        assert_eq!(
            breaks(&write(new_thing()), &write(current)),
            [
                r#"POST /things: the request body field "colour": enum narrowed, ["blue"] no longer accepted"#,
                r#"POST /things: the request body field "name" removed (a body naming it is refused)"#,
                r#"POST /things: the request body field "note": no longer takes null"#,
                r#"POST /things: the request body field "size": retyped from integer to string"#,
            ]
        );
    }

    #[test]
    fn a_body_newly_required_breaks_writers() {
        let released = document(
            "/things",
            "post",
            json!({"responses": {"201": {"description": "ok"}}}),
            json!({}),
        );
        assert_eq!(
            breaks(&released, &write(new_thing())),
            ["POST /things: a request body is now required"]
        );
    }

    #[test]
    fn a_parameter_made_required_added_as_required_or_narrowed_breaks_callers() {
        let mut current = read(thing());
        let parameters = current["paths"]["/things/{id}"]["get"]["parameters"]
            .as_array_mut()
            .unwrap();
        parameters[1]["required"] = json!(true);
        parameters[1]["schema"]["enum"] = json!(["short"]);
        parameters.push(json!({"name": "Tenant", "in": "header", "required": true, "schema": {"type": "string"}}));
        assert_eq!(
            breaks(&read(thing()), &current),
            [
                r#"GET /things/{id}: required header parameter "Tenant" added"#,
                r#"GET /things/{id}: query parameter "view" became required"#,
                r#"GET /things/{id}: query parameter "view": enum narrowed, ["full"] no longer accepted"#,
            ]
        );
    }

    #[test]
    fn security_tightened_breaks_callers_and_loosened_does_not() {
        let public = |mut doc: Value| {
            doc["paths"]["/things/{id}"]["get"]["security"] = json!([]);
            doc
        };
        let admin = |mut doc: Value| {
            doc["paths"]["/things/{id}"]["get"]["security"] = json!([{"bearerAuth": ["admin"]}]);
            doc
        };
        assert_eq!(
            breaks(&public(read(thing())), &read(thing())),
            ["GET /things/{id}: security tightened: a public operation now needs a token"]
        );
        assert_eq!(
            breaks(&read(thing()), &admin(read(thing()))),
            ["GET /things/{id}: security tightened: now only for the role(s) admin"]
        );
        assert!(breaks(&admin(read(thing())), &public(read(thing()))).is_empty());
    }

    #[test]
    fn a_tagged_union_may_take_new_variants_in_requests_but_not_in_responses() {
        let union = |variants: &[&str]| {
            json!({"oneOf": variants.iter().map(|v| json!({
                "type": "object", "required": ["type"],
                "properties": {"type": {"type": "string", "enum": [v]}, "n": {"type": "integer"}},
            })).collect::<Vec<_>>()})
        };
        assert_eq!(
            breaks(&read(union(&["a", "b"])), &read(union(&["a", "b", "c"]))),
            [r#"GET /things/{id}: response 200: new variant "c" in a response"#]
        );
        assert!(breaks(&write(union(&["a", "b"])), &write(union(&["a", "b", "c"]))).is_empty());
        assert_eq!(
            breaks(&write(union(&["a", "b", "c"])), &write(union(&["a", "b"]))),
            [r#"POST /things: the request body: variant "c" no longer accepted"#]
        );
    }

    #[test]
    fn a_break_passes_only_with_a_new_major_version_and_its_changelog_entry() {
        let v = |text: &str| text.parse::<Version>().unwrap();
        let broke = ["GET /a: operation removed".to_owned()];
        let error =
            check_api_release(v("1.0.0"), v("1.1.0"), &broke, "## API 1.1.0\n").unwrap_err();
        assert!(
            error.contains("GET /a: operation removed") && error.contains("2.0.0"),
            "{error}"
        );
        let error = check_api_release(v("1.0.0"), v("2.0.0"), &broke, "## 2.0.0\n").unwrap_err();
        assert!(error.contains("## API 2.0.0"), "{error}");
        assert!(check_api_release(v("1.0.0"), v("2.0.0"), &broke, "## API 2.0.0\nGone.\n").is_ok());
        assert!(check_api_release(v("1.0.0"), v("1.0.0"), &[], "").is_ok());
        assert!(check_api_release(v("2.0.0"), v("1.0.0"), &[], "").is_err());
    }
}
