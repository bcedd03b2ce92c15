//! Logs, and traces exported over OTLP when a collector is configured.
//!
//! Logs always go to stdout (text or JSON, filtered by `RUST_LOG`). Traces
//! are off until an endpoint is set: `[telemetry] otlp_endpoint` (or
//! `BOXOFFICE_TELEMETRY__OTLP_ENDPOINT`), else the standard
//! `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` / `OTEL_EXPORTER_OTLP_ENDPOINT`.
//! Spans then go, in batches from a background thread, as OTLP/HTTP
//! protobuf to `{endpoint}/v1/traces`. The service name is
//! `OTEL_SERVICE_NAME`, else `[telemetry] service_name`, else `boxoffice`
//! (`up`) or `boxoffice-<service>` (`serve`). The SDK reads the rest of the
//! usual variables itself (`OTEL_RESOURCE_ATTRIBUTES`, `OTEL_TRACES_SAMPLER`,
//! `OTEL_BSP_*`).

use anyhow::Context;
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::{Protocol, WithExportConfig};
use opentelemetry_sdk::trace::SdkTracerProvider;
use opentelemetry_sdk::Resource;
use serde::{Deserialize, Serialize};
use tracing_subscriber::filter::LevelFilter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

/// `[telemetry]`: where traces go. Nothing is exported by default.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct TelemetrySettings {
    /// An OTLP/HTTP receiver's base URL (`http://collector:4318`); spans go
    /// to its `/v1/traces`. Absent (and no `OTEL_EXPORTER_OTLP_*ENDPOINT`):
    /// no traces.
    pub otlp_endpoint: Option<String>,
    /// The `service.name` spans are reported under, unless
    /// `OTEL_SERVICE_NAME` says otherwise.
    pub service_name: Option<String>,
}

/// Where spans are sent, if anywhere: `traces` is the standard
/// `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` (a full URL, taken as it is),
/// `base` the configured endpoint or `OTEL_EXPORTER_OTLP_ENDPOINT` (a base
/// URL, `/v1/traces` added), as the OTLP specification has it.
pub fn traces_url(
    configured: Option<&str>,
    env: impl Fn(&str) -> Option<String>,
) -> Option<String> {
    let present = |value: Option<String>| value.filter(|v| !v.trim().is_empty());
    if let Some(full) = present(env("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")) {
        return Some(full);
    }
    let base = present(configured.map(str::to_owned))
        .or_else(|| present(env("OTEL_EXPORTER_OTLP_ENDPOINT")))?;
    Some(format!("{}/v1/traces", base.trim_end_matches('/')))
}

/// The process's telemetry: keep it until the end, then [`Telemetry::shutdown`]
/// sends what is still buffered.
#[derive(Debug, Default)]
pub struct Telemetry {
    provider: Option<SdkTracerProvider>,
}

impl Telemetry {
    /// Installs the process's subscriber: logs, and the span exporter when
    /// an endpoint is configured (which also switches trace propagation
    /// on, [`runtime::telemetry::switch_on`]).
    pub fn init(
        settings: &TelemetrySettings,
        log_format: &str,
        default_service_name: &str,
    ) -> anyhow::Result<Telemetry> {
        let logs =
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info,sqlx=warn"));
        let logs = if log_format == "json" {
            tracing_subscriber::fmt::layer()
                .json()
                .with_filter(logs)
                .boxed()
        } else {
            tracing_subscriber::fmt::layer().with_filter(logs).boxed()
        };
        let service_name = settings
            .service_name
            .as_deref()
            .unwrap_or(default_service_name);
        let url = traces_url(settings.otlp_endpoint.as_deref(), |name| {
            std::env::var(name).ok()
        });
        let provider = url
            .map(|url| exporting_to(&url, service_name))
            .transpose()?;
        let traces = provider
            .as_ref()
            .map(|provider| spans_layer(provider).with_filter(LevelFilter::INFO));
        tracing_subscriber::registry()
            .with(logs)
            .with(traces)
            .try_init()
            .context("installing the log subscriber")?;
        if provider.is_some() {
            runtime::telemetry::switch_on();
        }
        if let Some(url) = traces_url(settings.otlp_endpoint.as_deref(), |name| {
            std::env::var(name).ok()
        }) {
            tracing::info!(%url, service_name, "traces are exported over OTLP");
        }
        Ok(Telemetry { provider })
    }

    /// Sends the spans still buffered, and stops the exporter.
    pub async fn shutdown(self) {
        if let Some(provider) = self.provider {
            // The exporter blocks its own thread while it sends.
            let _ = tokio::task::spawn_blocking(move || provider.shutdown()).await;
        }
    }
}

/// A tracer provider sending spans in batches, as OTLP/HTTP protobuf, to
/// `url` (the full `/v1/traces` URL), reported as `service_name` unless
/// `OTEL_SERVICE_NAME` names another.
pub fn exporting_to(url: &str, service_name: &str) -> anyhow::Result<SdkTracerProvider> {
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_protocol(Protocol::HttpBinary)
        .with_endpoint(url)
        .build()
        .with_context(|| format!("the OTLP exporter to {url}"))?;
    let mut resource = Resource::builder();
    if std::env::var_os("OTEL_SERVICE_NAME").is_none() {
        resource = resource.with_service_name(service_name.to_owned());
    }
    Ok(SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_resource(resource.build())
        .build())
}

/// The layer that turns `tracing` spans into OpenTelemetry spans of
/// `provider`.
pub fn spans_layer<S>(provider: &SdkTracerProvider) -> impl Layer<S> + Send + Sync
where
    S: tracing::Subscriber
        + for<'span> tracing_subscriber::registry::LookupSpan<'span>
        + Send
        + Sync,
{
    tracing_opentelemetry::layer()
        .with_tracer(provider.tracer("boxoffice"))
        // Busy and idle times would cost two clock reads on every poll of
        // every traced future; a span's duration is enough.
        .with_tracked_inactivity(false)
        .with_threads(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env<'a>(pairs: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
        move |name| {
            pairs
                .iter()
                .find(|(n, _)| *n == name)
                .map(|(_, v)| (*v).to_owned())
        }
    }

    #[test]
    fn without_an_endpoint_nothing_is_exported() {
        assert_eq!(traces_url(None, env(&[])), None);
        assert_eq!(
            traces_url(Some(" "), env(&[("OTEL_EXPORTER_OTLP_ENDPOINT", "")])),
            None
        );
    }

    #[test]
    fn a_base_endpoint_gets_the_traces_path_and_a_full_one_is_taken_as_it_is() {
        assert_eq!(
            traces_url(Some("http://collector:4318/"), env(&[])).as_deref(),
            Some("http://collector:4318/v1/traces")
        );
        assert_eq!(
            traces_url(
                None,
                env(&[("OTEL_EXPORTER_OTLP_ENDPOINT", "http://otel:4318")])
            )
            .as_deref(),
            Some("http://otel:4318/v1/traces")
        );
        // The configured endpoint wins over the generic variable…
        assert_eq!(
            traces_url(
                Some("http://mine:4318"),
                env(&[("OTEL_EXPORTER_OTLP_ENDPOINT", "http://otel:4318")])
            )
            .as_deref(),
            Some("http://mine:4318/v1/traces")
        );
        // …and the signal-specific one over both, as the specification says.
        assert_eq!(
            traces_url(
                Some("http://mine:4318"),
                env(&[(
                    "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
                    "http://tempo:4318/otlp/v1/traces"
                )])
            )
            .as_deref(),
            Some("http://tempo:4318/otlp/v1/traces")
        );
    }
}
