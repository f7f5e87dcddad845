//! `medledger consent`: `CheckAccess` over gRPC, deciding on the consent store (PostgreSQL,
//! schema `consent`), and the FHIR API for Consents, roles and access requests over HTTP.

use std::time::Duration;

use anyhow::Context;
use medledger_audit::Auditor;
use medledger_http::Shell;

use crate::process::Process;
use crate::wiring;

pub(crate) async fn run(cfg: medledger_consent::Config) -> anyhow::Result<()> {
    let mut process = Process::new(true);
    let verifier = super::verifier(&cfg.auth, &process).await?;
    let store = super::postgres(&cfg.postgres).await?;
    let test_clock = Some(cfg.test_clock_file.clone()).filter(|f| !f.as_os_str().is_empty());
    let consent = medledger_consent::Service::new(
        medledger_consent::Ports {
            store: store.clone(),
            requests: store.clone(),
            registry: store.clone(),
            // The record index lives in the same database (schema `ingest`).
            records: store.clone(),
            audit: Auditor::new(store),
            clock: wiring::consent_clock(test_clock),
        },
        cfg.enrolment(),
    );
    let shell = Shell::new(
        cfg.http.gate(verifier.clone()),
        cfg.http.max_body_bytes,
        wiring::capability(Some(&cfg.auth)),
        process.readiness(),
    )
    .with_smart_configuration(cfg.auth.smart_configuration());
    process
        .serve("admin listener", cfg.admin_listen, shell.probes())
        .await?;
    let grpc = tokio::net::TcpListener::bind(cfg.grpc_listen)
        .await
        .with_context(|| format!("binding {}", cfg.grpc_listen))?;
    tracing::info!(addr = %grpc.local_addr()?, "consent serving gRPC CheckAccess");
    let serving = consent.clone();
    let stop = process.shutdown();
    process.spawn("gRPC CheckAccess", async move {
        serving
            .serve_grpc(
                grpc,
                verifier,
                Duration::from_millis(cfg.request_timeout_ms),
                cfg.max_concurrent_per_connection,
                stop,
            )
            .await
            .map_err(anyhow::Error::from_boxed)
    });
    let addr = process
        .serve("FHIR listener", cfg.http.listen, consent.app(&shell))
        .await?;
    tracing::info!(%addr, "consent serving FHIR");
    process.run().await
}
