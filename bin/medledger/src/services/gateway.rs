//! `medledger gateway`: one FHIR base URL in front of ingest, query and consent.

use std::time::Duration;

use anyhow::Context;
use axum::http::Uri;
use medledger_gateway::GatewayConfig;

use super::config::GatewayServiceConfig;

fn upstream(what: &str, url: &str) -> anyhow::Result<Uri> {
    let uri: Uri = url
        .parse()
        .with_context(|| format!("{what} is not a URL: {url:?}"))?;
    anyhow::ensure!(
        uri.scheme_str() == Some("http") && uri.authority().is_some(),
        "{what} must be http://host:port, got {url:?}"
    );
    Ok(uri)
}

pub(crate) async fn run(cfg: GatewayServiceConfig) -> anyhow::Result<()> {
    let config = GatewayConfig {
        ingest: upstream("ingest_url", &cfg.ingest_url)?,
        query: upstream("query_url", &cfg.query_url)?,
        consent: match cfg.consent_url.trim() {
            "" => None,
            url => Some(upstream("consent_url", url)?),
        },
        max_body_bytes: cfg.max_body_bytes,
        timeout: Duration::from_millis(cfg.upstream_timeout_ms),
    };
    super::serve_admin(cfg.admin_listen, || Ok(()), crate::web::no_gauges()).await?;
    let listener = tokio::net::TcpListener::bind(cfg.listen)
        .await
        .with_context(|| format!("binding {}", cfg.listen))?;
    tracing::info!(addr = %listener.local_addr()?, "gateway serving FHIR");
    axum::serve(
        listener,
        crate::web::with_request_spans(medledger_gateway::app(config)),
    )
    .with_graceful_shutdown(crate::web::shutdown_signal())
    .await?;
    Ok(())
}
