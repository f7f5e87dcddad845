//! Tracing setup shared by every binary: log lines, and OTLP trace export when configured.
//!
//! `RUST_LOG` selects levels (default `info`); `MEDLEDGER_LOG_FORMAT=json` switches to JSON lines
//! for log shippers. With `OTEL_EXPORTER_OTLP_ENDPOINT` set (e.g. `http://otel-collector:4318`),
//! spans are also exported over OTLP/HTTP (protobuf) in batches, named by `service.name` (or
//! `OTEL_SERVICE_NAME`); without it nothing leaves the process. Nothing in MedLedger logs or
//! traces resource content, keys or tokens: spans carry route templates, never request URIs.

pub mod metrics;

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::WithExportConfig;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer as _};

/// Keeps the OTLP exporter alive; dropping it flushes the spans still queued.
#[must_use = "dropping the guard stops trace export"]
#[derive(Debug, Default)]
pub struct Telemetry {
    provider: Option<SdkTracerProvider>,
}

impl Telemetry {
    /// Whether spans are exported over OTLP.
    pub fn exporting(&self) -> bool {
        self.provider.is_some()
    }
}

impl Drop for Telemetry {
    fn drop(&mut self) {
        if let Some(p) = self.provider.take()
            && let Err(e) = p.shutdown()
        {
            eprintln!("warning: flushing traces at exit failed: {e}");
        }
    }
}

/// The OTLP/HTTP trace endpoint from the standard variables, if export is configured.
fn otlp_traces_endpoint() -> Option<String> {
    if let Ok(traces) = std::env::var("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
        && !traces.trim().is_empty()
    {
        return Some(traces.trim().to_owned());
    }
    let base = std::env::var("OTEL_EXPORTER_OTLP_ENDPOINT").ok()?;
    let base = base.trim().trim_end_matches('/');
    (!base.is_empty()).then(|| format!("{base}/v1/traces"))
}

fn provider(service: &str, endpoint: String) -> Result<SdkTracerProvider, String> {
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_endpoint(endpoint)
        .with_timeout(std::time::Duration::from_secs(10))
        .build()
        .map_err(|e| e.to_string())?;
    let name = std::env::var("OTEL_SERVICE_NAME").unwrap_or_else(|_| service.to_owned());
    let resource = opentelemetry_sdk::Resource::builder()
        .with_service_name(name)
        .build();
    Ok(SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_resource(resource)
        .build())
}

/// Installs the global subscriber for `service` (e.g. `medledger-ingest`), exporting to the
/// endpoint the OTLP environment variables name; later calls are no-ops. Keep the returned
/// guard for the life of the process.
pub fn init(service: &str) -> Telemetry {
    init_with(service, otlp_traces_endpoint())
}

/// [`init`] with the OTLP/HTTP traces endpoint (`…/v1/traces`) given, `None` for no export.
pub fn init_with(service: &str, traces_endpoint: Option<String>) -> Telemetry {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let json = std::env::var("MEDLEDGER_LOG_FORMAT").is_ok_and(|f| f.eq_ignore_ascii_case("json"));
    let fmt = tracing_subscriber::fmt::layer().with_writer(std::io::stderr);
    let fmt = if json {
        fmt.json().boxed()
    } else {
        fmt.boxed()
    };
    let (otel, provider) = match traces_endpoint.map(|e| provider(service, e)) {
        Some(Ok(p)) => {
            let layer = tracing_opentelemetry::layer().with_tracer(p.tracer("medledger"));
            (Some(layer), Some(p))
        }
        Some(Err(e)) => {
            eprintln!("warning: OTLP trace export is not available: {e}");
            (None, None)
        }
        None => (None, None),
    };
    let installed = tracing_subscriber::registry()
        .with(filter)
        .with(fmt)
        .with(otel)
        .try_init()
        .is_ok();
    Telemetry {
        provider: provider.filter(|_| installed),
    }
}
