//! `medledger consent`: `CheckAccess` over gRPC, deciding on the consent store (PostgreSQL,
//! schema `consent`), and the FHIR API for Consents and role administration over HTTP.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use medledger_consent::{AccessControlService, ConsentApi, ConsentPolicy, Enrolment};

use super::config::ConsentServiceConfig;

pub(crate) async fn run(cfg: ConsentServiceConfig) -> anyhow::Result<()> {
    let verifier = super::verifier(&cfg.auth).await?;
    let store = super::postgres(&cfg.postgres).await?;
    let enrolment = if cfg.enrol_from_tokens {
        Enrolment::FromTokens
    } else {
        Enrolment::AdminOnly
    };
    let test_clock = Some(cfg.test_clock_file.clone()).filter(|f| !f.as_os_str().is_empty());
    if let Some(f) = &test_clock {
        tracing::warn!(file = %f.display(), "consent decisions use a test clock file: never in production");
    }
    let clock = crate::dev::consent_clock(test_clock);
    let service = AccessControlService::new(
        verifier.clone(),
        Arc::new(ConsentPolicy::with_clock(
            store.clone(),
            enrolment,
            clock.clone(),
        )),
    );
    super::serve_admin(cfg.admin_listen, || Ok(()), crate::web::no_gauges()).await?;
    // The FHIR API (Consent, $set-role, $verify-practitioner) beside the gRPC server; both stop
    // on SIGTERM.
    let app = crate::web::fhir_app(
        medledger_consent::http::routes(
            ConsentApi::new(
                store.clone(),
                store.clone(),
                enrolment,
                Arc::new(medledger_auth::unix_now),
                medledger_audit::Auditor::new(store.clone()),
            )
            .with_registry(store),
        ),
        super::gate_with(verifier, &cfg.http),
        cfg.http.max_body_bytes,
    );
    let http = tokio::spawn(super::serve_until_signal(cfg.http.listen, app, "consent"));
    let listener = tokio::net::TcpListener::bind(cfg.grpc_listen)
        .await
        .with_context(|| format!("binding {}", cfg.grpc_listen))?;
    tracing::info!(addr = %listener.local_addr()?, "consent serving gRPC CheckAccess");
    tonic::transport::Server::builder()
        .timeout(Duration::from_millis(cfg.request_timeout_ms))
        .concurrency_limit_per_connection(cfg.max_concurrent_per_connection)
        .add_service(service.into_server())
        .serve_with_incoming_shutdown(
            // The builder's `tcp_nodelay` applies only to listeners tonic binds itself; on
            // accepted sockets Nagle's algorithm stalled a few CheckAccess calls by ~40 ms.
            tokio_stream::StreamExt::map(
                tokio_stream::wrappers::TcpListenerStream::new(listener),
                |accepted| {
                    accepted.and_then(|s| {
                        s.set_nodelay(true)?;
                        Ok(s)
                    })
                },
            ),
            crate::web::shutdown_signal(),
        )
        .await
        .context("gRPC server")?;
    match tokio::time::timeout(Duration::from_secs(10), http).await {
        Ok(Ok(r)) => r,
        Ok(Err(e)) => Err(e.into()),
        Err(_) => {
            tracing::warn!("the consent HTTP server did not stop in time");
            Ok(())
        }
    }
}
