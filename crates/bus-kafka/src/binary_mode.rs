//! CloudEvents' Kafka protocol binding, binary content mode: the event's
//! attributes travel as `ce_*` headers, `datacontenttype` as
//! `content-type`, and the record value is the data itself. Any Kafka tool
//! or language can read the attributes without parsing the payload.
//!
//! Pure functions between an [`Envelope`] and header/value pairs, so the
//! mapping is tested without a broker.

use anyhow::Context;
use kernel::ids::EventId;
use kernel::Envelope;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

pub const CONTENT_TYPE: &str = "content-type";

/// The headers and value of one record.
#[derive(Debug, Clone, PartialEq)]
pub struct Record {
    pub headers: Vec<(&'static str, String)>,
    pub value: Vec<u8>,
}

/// Splits an envelope into headers and a value.
pub fn encode(envelope: &Envelope) -> anyhow::Result<Record> {
    let time = envelope
        .time
        .format(&Rfc3339)
        .context("formatting the event time")?;
    let mut headers = vec![
        ("ce_specversion", envelope.specversion.clone()),
        ("ce_id", envelope.id.to_string()),
        ("ce_source", envelope.source.clone()),
        ("ce_type", envelope.event_type.clone()),
        ("ce_time", time),
        ("ce_subject", envelope.subject.clone()),
        (CONTENT_TYPE, envelope.datacontenttype.clone()),
        ("ce_correlationid", envelope.correlationid.clone()),
        ("ce_schemaversion", envelope.schemaversion.to_string()),
    ];
    if let Some(cause) = envelope.causationid {
        headers.push(("ce_causationid", cause.to_string()));
    }
    if let Some(version) = envelope.subjectversion {
        headers.push(("ce_subjectversion", version.to_string()));
    }
    if let Some(traceparent) = &envelope.traceparent {
        headers.push(("ce_traceparent", traceparent.clone()));
    }
    if let Some(tracestate) = &envelope.tracestate {
        headers.push(("ce_tracestate", tracestate.clone()));
    }
    Ok(Record {
        headers,
        value: serde_json::to_vec(&envelope.data)?,
    })
}

/// Puts an envelope back together from a record's headers and value.
/// A record that lacks a required attribute is an error naming it.
pub fn decode<'a>(
    headers: impl IntoIterator<Item = (&'a str, Option<&'a [u8]>)>,
    value: Option<&[u8]>,
) -> anyhow::Result<Envelope> {
    let mut found: Vec<(&str, &str)> = Vec::new();
    for (name, bytes) in headers {
        if let Some(bytes) = bytes {
            let text = std::str::from_utf8(bytes)
                .with_context(|| format!("header {name} is not UTF-8"))?;
            found.push((name, text));
        }
    }
    let get = |name: &str| {
        found
            .iter()
            .rev()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| *v)
    };
    let need = |name: &str| get(name).with_context(|| format!("header {name} is missing"));

    let id: EventId = need("ce_id")?.parse().context("ce_id is not a UUID")?;
    let time = OffsetDateTime::parse(need("ce_time")?, &Rfc3339).context("ce_time")?;
    let causationid = get("ce_causationid")
        .map(|cause| cause.parse::<EventId>())
        .transpose()
        .context("ce_causationid is not a UUID")?;
    let schemaversion: u32 = need("ce_schemaversion")?
        .parse()
        .context("ce_schemaversion is not a number")?;
    let subjectversion = get("ce_subjectversion")
        .map(str::parse::<u64>)
        .transpose()
        .context("ce_subjectversion is not a number")?;
    let data = match value {
        Some(bytes) if !bytes.is_empty() => {
            serde_json::from_slice(bytes).context("the record value is not JSON")?
        }
        _ => serde_json::Value::Null,
    };
    Ok(Envelope {
        specversion: need("ce_specversion")?.to_owned(),
        id,
        source: need("ce_source")?.to_owned(),
        event_type: need("ce_type")?.to_owned(),
        time,
        subject: need("ce_subject")?.to_owned(),
        datacontenttype: get(CONTENT_TYPE).unwrap_or("application/json").to_owned(),
        correlationid: need("ce_correlationid")?.to_owned(),
        causationid,
        schemaversion,
        subjectversion,
        traceparent: get("ce_traceparent").map(str::to_owned),
        tracestate: get("ce_tracestate").map(str::to_owned),
        data,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn placed() -> Envelope {
        let cause = Envelope::new(
            "/boxoffice/catalog",
            "boxoffice.catalog.listing-registered",
            1,
            "l-1",
            "l-1",
            serde_json::json!({}),
        );
        Envelope::new(
            "/boxoffice/reservation",
            "boxoffice.reservation.placed",
            1,
            "r-1",
            "r-1",
            serde_json::json!({"quantity": 2, "title": "Dune"}),
        )
        .caused_by(&cause)
        .at_version(3)
        .traced(
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            Some("vendor=1"),
        )
    }

    fn as_pairs(record: &Record) -> Vec<(&str, Option<&[u8]>)> {
        record
            .headers
            .iter()
            .map(|(n, v)| (*n, Some(v.as_bytes())))
            .collect()
    }

    #[test]
    fn attributes_travel_as_ce_headers_and_data_as_the_value() {
        let envelope = placed();
        let record = encode(&envelope).unwrap();
        let header = |name: &str| {
            record
                .headers
                .iter()
                .find(|(n, _)| *n == name)
                .map(|(_, v)| v.as_str())
        };
        assert_eq!(header("ce_type"), Some("boxoffice.reservation.placed"));
        assert_eq!(header("ce_subject"), Some("r-1"));
        assert_eq!(header(CONTENT_TYPE), Some("application/json"));
        assert_eq!(header("ce_schemaversion"), Some("1"));
        assert_eq!(header("ce_subjectversion"), Some("3"));
        assert_eq!(
            header("ce_traceparent"),
            Some("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
        );
        assert_eq!(header("ce_tracestate"), Some("vendor=1"));
        let value: serde_json::Value = serde_json::from_slice(&record.value).unwrap();
        assert_eq!(value, serde_json::json!({"quantity": 2, "title": "Dune"}));
    }

    /// The AsyncAPI document lists the headers a record carries; it must
    /// be these, with the optional ones only when the envelope has them.
    #[test]
    fn the_headers_written_are_the_ones_the_event_contract_documents() {
        use std::collections::BTreeSet;

        use contracts::documents::KAFKA_HEADERS;

        let names = |record: &Record| -> BTreeSet<&'static str> {
            record.headers.iter().map(|(name, _)| *name).collect()
        };
        assert_eq!(
            names(&encode(&placed()).unwrap()),
            KAFKA_HEADERS.iter().map(|header| header.name).collect()
        );
        let bare = Envelope::new("/a", "a.b", 1, "k", "k", serde_json::json!({}));
        assert_eq!(
            names(&encode(&bare).unwrap()),
            KAFKA_HEADERS
                .iter()
                .filter(|header| header.always)
                .map(|header| header.name)
                .collect()
        );
    }

    #[test]
    fn decoding_an_encoded_envelope_gives_it_back() {
        let envelope = placed();
        let record = encode(&envelope).unwrap();
        let back = decode(as_pairs(&record), Some(&record.value)).unwrap();
        assert_eq!(back, envelope);
    }

    #[test]
    fn an_event_without_a_cause_has_no_causation_header() {
        let envelope = Envelope::new("/a", "a.b", 1, "k", "k", serde_json::json!(null));
        let record = encode(&envelope).unwrap();
        assert!(record.headers.iter().all(|(n, _)| *n != "ce_causationid"));
        assert_eq!(
            decode(as_pairs(&record), Some(&record.value)).unwrap(),
            envelope
        );
    }

    #[test]
    fn a_record_without_an_id_is_rejected_by_name() {
        let record = encode(&placed()).unwrap();
        let pairs: Vec<_> = as_pairs(&record)
            .into_iter()
            .filter(|(n, _)| *n != "ce_id")
            .collect();
        let error = decode(pairs, Some(&record.value)).unwrap_err();
        assert!(
            format!("{error:#}").contains("ce_id is missing"),
            "{error:#}"
        );
    }
}
