//! `medledger gateway`: one FHIR base URL in front of ingest, query and consent.

use crate::process::Process;

pub(crate) async fn run(cfg: medledger_gateway::Config) -> anyhow::Result<()> {
    let routing = cfg.routing().map_err(anyhow::Error::msg)?;
    let mut process = Process::new(true);
    process
        .serve(
            "admin listener",
            cfg.admin_listen,
            medledger_http::probes(process.readiness(), medledger_http::no_gauges()),
        )
        .await?;
    let addr = process
        .serve(
            "FHIR listener",
            cfg.listen,
            medledger_http::with_request_spans(medledger_gateway::app(routing)),
        )
        .await?;
    tracing::info!(%addr, "gateway serving FHIR");
    process.run().await
}
