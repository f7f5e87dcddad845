//! `medledger query`: verified FHIR reads from PostgreSQL (index and ledger) and IPFS,
//! decisions from the consent service.

use medledger_audit::Auditor;
use medledger_http::Shell;

use crate::process::Process;
use crate::wiring;

pub(crate) async fn run(cfg: medledger_query::Config) -> anyhow::Result<()> {
    let mut process = Process::new(true);
    let (store, keys, blobs) = super::records(
        &cfg.postgres,
        &cfg.master_key_file,
        &cfg.ipfs,
        cfg.search_key,
    )
    .await?;
    let verifier = super::verifier(&cfg.auth, &process).await?;
    let query = medledger_query::Service::new(
        medledger_query::Ports {
            index: store.clone(),
            search: store.clone(),
            blobs,
            keys,
            ledger: store.clone(),
            policy: super::consent_policy(&cfg.consent)?,
            audit: Auditor::new(store),
        },
        medledger_query::Settings::of(&cfg),
    );
    let shell = Shell::new(
        cfg.http.gate(verifier),
        cfg.http.max_body_bytes,
        wiring::capability(Some(&cfg.auth)),
        process.readiness(),
    )
    .with_smart_configuration(cfg.auth.smart_configuration());
    process
        .serve("admin listener", cfg.admin_listen, shell.probes())
        .await?;
    let addr = process
        .serve("FHIR listener", cfg.http.listen, query.app(&shell))
        .await?;
    tracing::info!(%addr, "query serving FHIR");
    process.run().await
}
