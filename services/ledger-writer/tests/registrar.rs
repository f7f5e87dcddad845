//! The registrar against the real embedded backends: role and consent changes stored in SQLite
//! reach Roles and ConsentRegistry on the in-process chain as salted commitments, once each,
//! across restarts, and every registered version carries a proof the chain confirms.

#![allow(clippy::unwrap_used, missing_docs)]

use std::sync::Arc;
use std::time::Duration;

use medledger_chain::Registry;
use medledger_chain_evm::EmbeddedChain;
use medledger_ledger::registry::{
    Authorization, CONSENT_PROOF_FORMAT, ConsentProof, RecordedChange, account_commitment,
    consent_id_commitment,
};
use medledger_ledger_writer::Registrar;
use medledger_storage_api::{AccountRow, ConsentRow, ConsentStore, RegistryQueue};
use medledger_storage_sqlx::SqliteStore;

async fn open_chain(dir: &std::path::Path) -> Arc<EmbeddedChain> {
    let path = dir.join("chain");
    Arc::new(
        tokio::task::spawn_blocking(move || EmbeddedChain::open(&path))
            .await
            .unwrap()
            .unwrap(),
    )
}

/// A SQLite store and an embedded private chain in a fresh dir, and a registrar between them.
async fn embedded() -> (
    tempfile::TempDir,
    Arc<SqliteStore>,
    Arc<EmbeddedChain>,
    Registrar,
) {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(
        SqliteStore::open(&dir.path().join("state.db"))
            .await
            .unwrap(),
    );
    let chain = open_chain(dir.path()).await;
    let registrar = Registrar::new(store.clone(), chain.clone(), Duration::from_millis(10));
    (dir, store, chain, registrar)
}

fn consent(id: &str, version: u64, status: &str) -> ConsentRow {
    let resource = format!(
        r#"{{"id":"{id}","meta":{{"versionId":"{version}"}},"patient":{{"reference":"Patient/p1"}},"resourceType":"Consent","status":"{status}"}}"#
    );
    ConsentRow {
        id: id.into(),
        version,
        patient: "Patient/p1".into(),
        status: status.into(),
        resource: resource.into_bytes(),
        actor: "Patient/p1".into(),
        recorded_at_ms: 1_700_000_000_000 + version as i64,
    }
}

/// The proof of a registered version, as the consent API builds it.
async fn proof_of(store: &SqliteStore, id: &str, version: u64) -> ConsentProof {
    let r = store
        .consent_registration(id, version)
        .await
        .unwrap()
        .unwrap();
    let recorded: RecordedChange =
        serde_json::from_slice(r.registration.as_deref().unwrap()).unwrap();
    ConsentProof {
        format: CONSENT_PROOF_FORMAT.into(),
        consent: format!("Consent/{id}"),
        version,
        patient: r.consent.patient.clone(),
        status: r.consent.status.clone(),
        authorization: Authorization::for_version(
            id,
            version,
            &r.consent.actor,
            r.consent.recorded_at_ms,
            &r.salt,
            &r.consent.resource,
        ),
        salt: hex::encode(r.salt),
        subject_salt: hex::encode(r.subject_salt),
        recorded,
    }
}

#[tokio::test]
async fn role_and_consent_changes_reach_the_chain_as_commitments_with_proofs() {
    let (_dir, store, chain, registrar) = embedded().await;
    registrar.sync_once().await.unwrap();
    chain.ensure_authority().await.unwrap();

    // Roles: a practitioner, verified, then made an auditor (which clears the verification).
    let dr = store
        .ensure_account("Practitioner/dr-1", "practitioner")
        .await
        .unwrap();
    store.ensure_account("Patient/p1", "patient").await.unwrap();
    store
        .put_account(&AccountRow {
            verified: true,
            ..dr.clone()
        })
        .await
        .unwrap();
    assert_eq!(registrar.sync_once().await.unwrap(), 2);
    let salt = store
        .account_registration("Practitioner/dr-1")
        .await
        .unwrap()
        .unwrap()
        .salt;
    let dr_on_chain = account_commitment(&salt, "Practitioner/dr-1");
    let s = chain.role_state(dr_on_chain).await.unwrap();
    assert!(s.has(2) && s.verified && !s.has(4), "{s:?}");
    // The chain holds the commitment, not the reference.
    let bare = account_commitment(&[0; 32], "Practitioner/dr-1");
    assert!(!chain.role_state(bare).await.unwrap().has(2));
    store
        .put_account(&AccountRow {
            account: "Practitioner/dr-1".into(),
            role: "auditor".into(),
            verified: false,
        })
        .await
        .unwrap();
    assert_eq!(registrar.sync_once().await.unwrap(), 1);
    let s = chain.role_state(dr_on_chain).await.unwrap();
    assert!(s.has(4) && !s.has(2) && !s.verified, "{s:?}");
    // Nothing queued: a pass sends nothing.
    let head = chain.head().number;
    assert_eq!(registrar.sync_once().await.unwrap(), 0);
    assert_eq!(chain.head().number, head);

    // Consents: grant, update, revoke, and a draft of another consent that never was in force.
    store
        .put_consent(&consent("c1", 1, "active"), None)
        .await
        .unwrap();
    store
        .put_consent(&consent("c1", 2, "active"), Some(1))
        .await
        .unwrap();
    store
        .put_consent(&consent("c1", 3, "inactive"), Some(2))
        .await
        .unwrap();
    store
        .put_consent(&consent("c2", 1, "draft"), None)
        .await
        .unwrap();
    assert_eq!(registrar.sync_once().await.unwrap(), 4);
    assert!(store.unregistered_consents(10).await.unwrap().is_empty());

    let subject = store
        .consent_registration("c1", 1)
        .await
        .unwrap()
        .unwrap()
        .subject_salt;
    let on_chain = chain
        .consent_state(consent_id_commitment(&subject, "c1"))
        .await
        .unwrap();
    assert_eq!((on_chain.version, on_chain.active), (3, false));
    for version in 1..=3 {
        let p = proof_of(&store, "c1", version).await;
        let resource = consent(
            "c1",
            version,
            if version < 3 { "active" } else { "inactive" },
        );
        p.verify_resource(&resource.resource).unwrap();
        assert_eq!(p.recorded.chain_version, version);
        let tx = p.recorded.tx_hash.parse().unwrap();
        let found = chain.consent_change(tx).await.unwrap().unwrap();
        p.check_on_chain(&found).unwrap();
        // Another version's resource does not pass for this one.
        let other = consent("c1", version % 3 + 1, "active");
        assert!(p.verify_resource(&other.resource).is_err());
    }
    // The draft was not in force: nothing was sent, and its proof says so.
    let draft = proof_of(&store, "c2", 1).await;
    assert!(draft.recorded.tx_hash.is_empty());
    draft
        .verify_resource(&consent("c2", 1, "draft").resource)
        .unwrap();
    let subject2 = store
        .consent_registration("c2", 1)
        .await
        .unwrap()
        .unwrap()
        .subject_salt;
    assert_eq!(
        chain
            .consent_state(consent_id_commitment(&subject2, "c2"))
            .await
            .unwrap()
            .version,
        0
    );
}

#[tokio::test]
async fn a_change_sent_but_not_recorded_before_a_crash_is_not_sent_twice() {
    let (_dir, store, chain, registrar) = embedded().await;
    store
        .put_consent(&consent("c9", 1, "active"), None)
        .await
        .unwrap();
    registrar.sync_once().await.unwrap();
    let first = store.consent_registration("c9", 1).await.unwrap().unwrap();

    // The crash: version 2 went to the chain, and the store never heard back.
    store
        .put_consent(&consent("c9", 2, "inactive"), Some(1))
        .await
        .unwrap();
    let queued = store.unregistered_consents(1).await.unwrap().remove(0);
    let id = consent_id_commitment(&queued.subject_salt, "c9");
    let patient =
        medledger_ledger::registry::patient_commitment(&queued.subject_salt, "Patient/p1");
    let authorization = Authorization::for_version(
        "c9",
        2,
        "Patient/p1",
        queued.consent.recorded_at_ms,
        &queued.salt,
        &queued.consent.resource,
    )
    .commitment(&queued.salt);
    let sent = chain
        .record_revocation(id, patient, authorization)
        .await
        .unwrap();

    // After the restart the registrar finds it on chain instead of revoking again (which the
    // contract would refuse, blocking the queue).
    let registrar = Registrar::new(store.clone(), chain.clone(), Duration::from_millis(10));
    assert_eq!(registrar.sync_once().await.unwrap(), 1);
    let p = proof_of(&store, "c9", 2).await;
    assert_eq!(p.recorded.tx_hash, sent.tx_hash);
    assert_eq!(chain.consent_state(id).await.unwrap().version, 2);
    assert!(first.registration.is_some());
    p.verify_resource(&consent("c9", 2, "inactive").resource)
        .unwrap();
}
