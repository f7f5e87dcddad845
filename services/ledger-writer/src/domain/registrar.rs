//! The registrar: commits the consent store's role and consent changes to the private chain's
//! Roles and ConsentRegistry, as salted commitments, after they took effect in the store.
//!
//! The store queues every change in the transaction that makes it (`RegistryQueue`), so none is
//! lost; the registrar drains the queue in order and records where each change landed, which is
//! what a consent proof names. It runs beside the log writer because both send with the private
//! chain's one key, and one active writer means one registrar.
//!
//! Crash safety: roles are reconciled, not replayed (the chain is brought to the account's
//! current role and verification, which a repeated pass leaves alone); a consent change whose
//! transaction landed but was not recorded is found again in the consent's on-chain history
//! instead of being sent twice.

use std::sync::Arc;
use std::time::Duration;

use medledger_chain::Registry;
use medledger_ledger::registry::{
    Authorization, RecordedChange, account_commitment, consent_id_commitment, patient_commitment,
    role_id,
};
use medledger_storage_api::{AccountRegistration, ConsentRegistration, RegistryQueue};
use tokio_util::sync::CancellationToken;

use super::WriterError;

/// Changes taken from the queue per pass.
const BATCH: u32 = 64;

/// The role practitioners hold (verification applies to it only).
const PRACTITIONER: u8 = 2;

/// Drains the registry queue onto the chain.
pub struct Registrar {
    queue: Arc<dyn RegistryQueue>,
    chain: Arc<dyn Registry>,
    idle: Duration,
}

impl Registrar {
    /// A registrar that looks for new changes every `idle` while the queue is empty.
    pub fn new(queue: Arc<dyn RegistryQueue>, chain: Arc<dyn Registry>, idle: Duration) -> Self {
        Self { queue, chain, idle }
    }

    /// Runs until `shutdown`; chain and store failures are retried with backoff.
    pub async fn run(self, shutdown: CancellationToken) -> Result<(), WriterError> {
        let mut backoff = Duration::from_millis(200);
        let mut authorised = false;
        loop {
            if shutdown.is_cancelled() {
                return Ok(());
            }
            let pass = async {
                if !authorised {
                    self.chain.ensure_authority().await?;
                    authorised = true;
                }
                self.sync_once().await
            };
            let wait = match pass.await {
                Ok(0) => self.idle,
                Ok(_) => {
                    backoff = Duration::from_millis(200);
                    Duration::ZERO
                }
                Err(e @ WriterError::Inconsistent(_)) => return Err(e),
                Err(e) => {
                    tracing::warn!(error = %e, "registering role or consent changes failed; will retry");
                    backoff = (backoff * 2).min(Duration::from_secs(5));
                    backoff
                }
            };
            tokio::select! {
                () = tokio::time::sleep(wait) => {}
                () = shutdown.cancelled() => {}
            }
        }
    }

    /// Commits what is queued now; returns how many changes it registered.
    pub async fn sync_once(&self) -> Result<usize, WriterError> {
        let mut done = 0;
        for account in self.queue.unregistered_accounts(BATCH).await? {
            self.sync_account(&account).await?;
            self.queue
                .account_registered(&account.account.account, account.revision)
                .await?;
            done += 1;
        }
        // In queue order: a failure stops the pass, so no version overtakes an earlier one.
        for consent in self.queue.unregistered_consents(BATCH).await? {
            let change = self.register_consent(&consent).await?;
            let json = serde_json::to_vec(&change)
                .map_err(|e| WriterError::Inconsistent(format!("registration JSON: {e}")))?;
            self.queue
                .consent_registered(&consent.consent.id, consent.consent.version, &json)
                .await?;
            done += 1;
        }
        Ok(done)
    }

    /// Brings the account's commitment on chain to the account's current role and
    /// verification.
    async fn sync_account(&self, a: &AccountRegistration) -> Result<(), WriterError> {
        let account = account_commitment(&a.salt, &a.account.account);
        let want = role_id(&a.account.role);
        if want.is_none() {
            tracing::warn!(role = %a.account.role, "an account holds a role Roles does not know; registering it without one");
        }
        let have = self.chain.role_state(account).await?;
        // Grant first, then revoke: the account never holds fewer roles than either state.
        if let Some(role) = want
            && !have.has(role)
        {
            self.chain.set_role(account, role, true).await?;
        }
        for role in 1..=6u8 {
            if have.has(role) && want != Some(role) {
                self.chain.set_role(account, role, false).await?;
            }
        }
        // Revoking the practitioner role cleared any verification on chain.
        let verified_now = have.verified && want == Some(PRACTITIONER);
        let verified_wanted = a.account.verified && want == Some(PRACTITIONER);
        if verified_now != verified_wanted {
            self.chain.set_verified(account, verified_wanted).await?;
        }
        Ok(())
    }

    /// Records one Consent version: active versions are grants, others revocations.
    async fn register_consent(
        &self,
        c: &ConsentRegistration,
    ) -> Result<RecordedChange, WriterError> {
        let row = &c.consent;
        let consent_id = consent_id_commitment(&c.subject_salt, &row.id);
        let patient = patient_commitment(&c.subject_salt, &row.patient);
        let content = medledger_crypto::commitment(&c.salt, &row.resource);
        let authorization = Authorization::for_version(
            &row.id,
            row.version,
            &row.actor,
            row.recorded_at_ms,
            &c.salt,
            &row.resource,
        )
        .commitment(&c.salt);
        // How many changes the chain should hold for this consent before this one.
        let before = if row.version <= 1 {
            0
        } else {
            let previous = self
                .queue
                .consent_registration(&row.id, row.version - 1)
                .await?
                .and_then(|p| p.registration)
                .ok_or_else(|| {
                    WriterError::Inconsistent(format!(
                        "Consent/{} version {} is queued before version {}",
                        row.id,
                        row.version,
                        row.version - 1
                    ))
                })?;
            serde_json::from_slice::<RecordedChange>(&previous)
                .map_err(|e| WriterError::Inconsistent(format!("stored registration: {e}")))?
                .chain_version
        };
        let state = self.chain.consent_state(consent_id).await?;
        if state.version > before {
            // Sent before a crash and never recorded: take it from the chain's history.
            let history = self.chain.consent_history(consent_id).await?;
            let landed = history
                .into_iter()
                .find(|h| h.chain_version == before + 1)
                .filter(|h| h.authorization == hex::encode(authorization))
                .ok_or_else(|| {
                    WriterError::Inconsistent(format!(
                        "ConsentRegistry holds a change of Consent/{} that this store did not make",
                        row.id
                    ))
                })?;
            return Ok(landed);
        }
        let change = if row.status == "active" {
            self.chain
                .record_grant(consent_id, patient, content, authorization)
                .await?
        } else if state.active {
            self.chain
                .record_revocation(consent_id, patient, authorization)
                .await?
        } else {
            // Not in force, and not in force on chain either: nothing to send. The proof says
            // so, and still binds the version through the salts.
            return Ok(RecordedChange {
                chain_id: 0,
                contract: String::new(),
                block_number: 0,
                block_hash: String::new(),
                tx_hash: String::new(),
                consent_id: hex::encode(consent_id),
                patient: hex::encode(patient),
                chain_version: state.version,
                granted: false,
                commitment: String::new(),
                authorization: hex::encode(authorization),
            });
        };
        Ok(change)
    }
}
