//! Verified reads.

use std::sync::Arc;
use std::time::Duration;

use medledger_audit::{Action, Auditor, Entry, Outcome};
use medledger_auth::Caller;
use medledger_blobstore::{BlobStore, Cid};
use medledger_consent::{AccessError, AccessPolicy, AccessQuery, Interaction};
use medledger_crypto::{commitment, open_version, version_aad};
use medledger_http::ApiError;
use medledger_keys::OwnerKeys;
use medledger_ledger::{LeafKind, RecordLeaf};
use medledger_merkle::MerkleTree;
use medledger_storage_api::{LeafRow, LedgerStore, RecordIndex, VersionRow};
use tokio::sync::Mutex;
use tokio::time::Instant;
use zeroize::Zeroizing;

use crate::QueryConfig;

const RECORD: u8 = LeafKind::RecordVersion as u8;

/// The query service's domain object.
#[derive(Clone)]
pub struct Query {
    pub(crate) index: Arc<dyn RecordIndex>,
    pub(crate) blobs: Arc<dyn BlobStore>,
    pub(crate) keys: OwnerKeys,
    pub(crate) ledger: Arc<dyn LedgerStore>,
    pub(crate) policy: Arc<dyn AccessPolicy>,
    pub(crate) audit: Auditor,
    pub(crate) config: QueryConfig,
    /// The log's Merkle tree, extended from the ledger store as proofs are requested.
    pub(crate) tree: Arc<Mutex<MerkleTree>>,
}

/// What a read found out on the way, for its AuditEvent.
#[derive(Debug, Default)]
struct ReadTrace {
    /// The record's owner, once the index row was read.
    owner: Option<String>,
    /// Whether the consent decision refused it.
    denied: bool,
}

/// A version that passed every check.
pub struct VerifiedVersion {
    /// The index row.
    pub row: VersionRow,
    /// The stored resource bytes (RFC 8785 canonical JSON).
    pub body: Zeroizing<Vec<u8>>,
    /// The commitment salt.
    pub salt: [u8; 32],
    /// The log leaf of this version.
    pub leaf: LeafRow,
}

impl Query {
    /// Wires the service to its ports.
    pub fn new(
        index: Arc<dyn RecordIndex>,
        blobs: Arc<dyn BlobStore>,
        keys: OwnerKeys,
        ledger: Arc<dyn LedgerStore>,
        policy: Arc<dyn AccessPolicy>,
        audit: Auditor,
        config: QueryConfig,
    ) -> Self {
        Self {
            index,
            blobs,
            keys,
            ledger,
            policy,
            audit,
            config,
            tree: Arc::default(),
        }
    }

    /// The decision on reading a record of `owner` whose version `custodian` wrote. A denial
    /// answers exactly like an unknown record (404): a caller who may not read a record does
    /// not learn that it exists. 503 when no decision can be had.
    async fn authorize(
        &self,
        caller: &Caller,
        subject: &str,
        rt: &str,
        owner: &str,
        custodian: &str,
        categories: Option<&[String]>,
    ) -> Result<bool, ApiError> {
        let query = AccessQuery {
            caller,
            interaction: Interaction::Read,
            resource_type: rt,
            owner: Some(owner),
            custodian: Some(custodian),
            categories,
        };
        match self.policy.permit(query).await {
            Ok(()) => Ok(true),
            Err(AccessError::Denied(_)) => Ok(false),
            Err(e) => {
                tracing::debug!(%subject, "no access decision");
                Err(ApiError::from(e))
            }
        }
    }

    /// Reads `rt/id` at version `vid`, or the current version when `vid` is `None`, as
    /// `interaction` (`read`, `vread`, `operation`). The AuditEvent of the attempt, whatever
    /// its outcome, is stored before this returns; if it cannot be, the answer is 503 and no
    /// data goes out.
    pub async fn read(
        &self,
        caller: &Caller,
        interaction: &str,
        rt: &str,
        id: &str,
        vid: Option<u64>,
    ) -> Result<VerifiedVersion, ApiError> {
        let mut trace = ReadTrace::default();
        let result = self.read_checked(caller, rt, id, vid, &mut trace).await;
        let target = match (&result, vid) {
            (Ok(v), _) => format!("{rt}/{id}/_history/{}", v.row.version),
            (Err(_), Some(v)) => format!("{rt}/{id}/_history/{v}"),
            (Err(_), None) => format!("{rt}/{id}"),
        };
        let action = if interaction == "operation" {
            Action::Execute
        } else {
            Action::Read
        };
        let mut entry = Entry::by(caller, "query", interaction, action)
            .about(trace.owner.as_deref())
            .touching(target);
        if let Err(e) = &result {
            // A denial answers like an unknown record; the trail says what really happened.
            let detail = if trace.denied {
                "access denied by the consent decision".to_owned()
            } else {
                e.message.clone()
            };
            entry = entry.ended(Outcome::of_status(e.status.as_u16()), Some(detail));
        }
        if let Err(e) = self.audit.record(&[entry]).await {
            tracing::warn!(error = %e, "could not record the audit event of a read");
            return Err(ApiError::unavailable("the audit trail is unavailable", 1));
        }
        result
    }

    async fn read_checked(
        &self,
        caller: &Caller,
        rt: &str,
        id: &str,
        vid: Option<u64>,
        trace: &mut ReadTrace,
    ) -> Result<VerifiedVersion, ApiError> {
        // Before any lookup: scopes that cannot reach the type at all give 403 and reveal
        // nothing about which records exist.
        medledger_consent::require_scope_reach(caller, rt, Interaction::Read)?;
        if medledger_fhir::accepted_type(rt) != medledger_fhir::AcceptedType::Yes {
            return Err(ApiError::not_found(format!(
                "resource type '{rt}' is not served here"
            )));
        }
        let subject = format!("{rt}/{id}");
        // The ledger is read before the index: an honest index is never behind what the log
        // already holds, so "log ahead of index" can only mean the index lost or rolled back rows.
        let logged = self.ledger.latest_logged_version(RECORD, &subject).await?;
        let head = self.index.head(rt, id).await?;
        let head = match (head, logged) {
            (None, None) => return Err(ApiError::not_found(format!("{subject} is not known"))),
            (None, Some(_)) => {
                return Err(ApiError::integrity(format!(
                    "{subject} is in the ledger but missing from the index"
                )));
            }
            (Some(h), Some(l)) if l > h.version => {
                return Err(ApiError::integrity(format!(
                    "the index says version {} of {subject} is current but the ledger holds version {l}",
                    h.version
                )));
            }
            (Some(h), _) => h,
        };
        let version = vid.unwrap_or(head.version);
        if version == 0 || version > head.version {
            return Err(ApiError::not_found(format!(
                "{subject} has no version {version}"
            )));
        }
        let row = self.index.version(rt, id, version).await?.ok_or_else(|| {
            ApiError::integrity(format!(
                "{subject} version {version} is missing from the index"
            ))
        })?;
        trace.owner = Some(row.owner.clone());
        let unknown = || ApiError::not_found(format!("{subject} is not known"));
        // Decided before the record is touched further; a caller whose only chance is a
        // `?category=` scope is decided again once the categories are known (after decryption,
        // nothing of which is returned unless that second decision allows it).
        let permitted = self
            .authorize(caller, &subject, rt, &row.owner, &row.actor, None)
            .await?;
        let needs_categories = !permitted && has_category_scope(&caller.claims.scope, rt);
        if !permitted && !needs_categories {
            trace.denied = true;
            return Err(unknown());
        }
        let leaf = self.wait_for_leaf(&subject, version).await?;
        let logged_leaf = RecordLeaf::decode(&leaf.leaf)
            .map_err(|e| ApiError::integrity(format!("ledger leaf unreadable: {e}")))?;
        let row_commitment = row
            .commitment
            .map(hex::encode)
            .unwrap_or_else(|| hex::encode([0u8; 32]));
        if logged_leaf.cid != row.cid.clone().unwrap_or_default()
            || logged_leaf.commitment != row_commitment
            || logged_leaf.deleted != row.deleted
        {
            return Err(ApiError::integrity(format!(
                "the index entry of {subject} version {version} does not match the ledger"
            )));
        }
        if row.deleted {
            if needs_categories {
                trace.denied = true;
                return Err(unknown());
            }
            return Err(ApiError::gone(format!("{subject} was deleted")));
        }
        let cid: Cid = row
            .cid
            .as_deref()
            .unwrap_or_default()
            .parse()
            .map_err(|_| {
                ApiError::integrity(format!(
                    "{subject} version {version} has an unparseable CID"
                ))
            })?;
        let blob = self.blobs.get(&cid).await?;
        let key = self
            .keys
            .get(&row.owner)
            .await?
            .ok_or_else(|| ApiError::gone(format!("{subject} has been erased")))?;
        let aad = version_aad(rt, id, version, &row.owner);
        let opened = open_version(&key, &aad, &blob, &row.wrapped_key).map_err(|_| {
            ApiError::integrity(format!(
                "{subject} version {version} does not decrypt under its own identity"
            ))
        })?;
        if Some(commitment(&opened.salt, &opened.body)) != row.commitment {
            return Err(ApiError::integrity(format!(
                "{subject} version {version} does not match its commitment"
            )));
        }
        if needs_categories {
            let categories = categories_of(&opened.body);
            if !self
                .authorize(
                    caller,
                    &subject,
                    rt,
                    &row.owner,
                    &row.actor,
                    Some(&categories),
                )
                .await?
            {
                trace.denied = true;
                return Err(unknown());
            }
        }
        Ok(VerifiedVersion {
            row,
            body: opened.body,
            salt: opened.salt,
            leaf,
        })
    }

    /// The leaf of a version, waiting briefly for a write that has not reached the log yet.
    async fn wait_for_leaf(&self, subject: &str, version: u64) -> Result<LeafRow, ApiError> {
        let deadline = Instant::now() + self.config.ledger_wait;
        loop {
            if let Some(l) = self.ledger.leaf_for(RECORD, subject, version).await? {
                return Ok(l);
            }
            if Instant::now() >= deadline {
                return Err(ApiError::unavailable(
                    format!("{subject} version {version} is not in the ledger yet"),
                    1,
                ));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// Whether some scope restricts `rt` by `?category=` (only then can categories change a denial).
fn has_category_scope(scopes: &str, rt: &str) -> bool {
    scopes.split_whitespace().any(|s| {
        s.contains("?category=")
            && s.split_once('/')
                .and_then(|(_, rest)| rest.split_once('.'))
                .is_some_and(|(t, _)| t == "*" || t == rt)
    })
}

/// A resource's `category` codings as `code` and `system|code`.
fn categories_of(body: &[u8]) -> Vec<String> {
    let Ok(v) = serde_json::from_slice::<serde_json::Value>(body) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    let categories = match &v["category"] {
        serde_json::Value::Array(a) => a.clone(),
        single @ serde_json::Value::Object(_) => vec![single.clone()],
        _ => Vec::new(),
    };
    for c in categories {
        for coding in c["coding"].as_array().into_iter().flatten() {
            if let Some(code) = coding["code"].as_str() {
                out.push(code.to_owned());
                if let Some(system) = coding["system"].as_str() {
                    out.push(format!("{system}|{code}"));
                }
            }
        }
    }
    out
}
