//! Verified reads.

use std::sync::Arc;
use std::time::Duration;

use medledger_access::{AccessError, AccessPolicy, AccessQuery, Interaction, Scopes};
use medledger_audit::{Action, Audit, Auditor, Entry};
use medledger_auth::Caller;
use medledger_blobstore::{BlobStore, Cid};
use medledger_crypto::{OpenedVersion, commitment, open_version, version_aad};
use medledger_keys::OwnerKeys;
use medledger_ledger::{LeafKind, RecordLeaf};
use medledger_merkle::MerkleTree;
use medledger_storage_api::{LeafRow, LedgerStore, RecordIndex, SearchIndex, VersionRow};
use tokio::sync::Mutex;
use tokio::time::Instant;
use zeroize::Zeroizing;

use crate::{QueryError, Settings};

const RECORD: u8 = LeafKind::RecordVersion as u8;

/// The query service's domain object.
#[derive(Clone)]
pub struct Query {
    pub(crate) index: Arc<dyn RecordIndex>,
    pub(crate) search_index: Arc<dyn SearchIndex>,
    /// The blind index key searches are tagged with (and page cursors sealed by).
    pub(crate) index_key: medledger_search::IndexKey,
    pub(crate) blobs: Arc<dyn BlobStore>,
    pub(crate) keys: OwnerKeys,
    pub(crate) ledger: Arc<dyn LedgerStore>,
    pub(crate) policy: Arc<dyn AccessPolicy>,
    pub(crate) audit: Auditor,
    pub(crate) config: Settings,
    /// The log's Merkle tree, extended from the ledger store as proofs are requested.
    pub(crate) tree: Arc<Mutex<MerkleTree>>,
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
    pub fn new(ports: crate::Ports, config: Settings) -> Self {
        let crate::Ports {
            index,
            search,
            blobs,
            keys,
            ledger,
            policy,
            audit,
        } = ports;
        Self {
            index_key: keys.search_index_key(),
            index,
            search_index: search,
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
    ) -> Result<bool, QueryError> {
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
                Err(e.into())
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
    ) -> Result<VerifiedVersion, QueryError> {
        let action = if interaction == "operation" {
            Action::Execute
        } else {
            Action::Read
        };
        let target = match vid {
            Some(v) => format!("{rt}/{id}/_history/{v}"),
            None => format!("{rt}/{id}"),
        };
        let mut audit = self
            .audit
            .begin(Entry::by(caller, "query", interaction, action).touching(target));
        let result = self.read_checked(caller, rt, id, vid, &mut audit).await;
        if let Ok(v) = &result {
            audit.touching(format!("{rt}/{id}/_history/{}", v.row.version));
        }
        audit.finish(result).await
    }

    async fn read_checked(
        &self,
        caller: &Caller,
        rt: &str,
        id: &str,
        vid: Option<u64>,
        audit: &mut Audit,
    ) -> Result<VerifiedVersion, QueryError> {
        // Parsed once for both scope questions of this read.
        let scopes = Scopes::parse(&caller.claims.scope);
        // Before any lookup: scopes that cannot reach the type at all give 403 and reveal
        // nothing about which records exist.
        medledger_access::require_reach(&scopes, rt, Interaction::Read)?;
        if medledger_fhir::accepted_type(rt) != medledger_fhir::AcceptedType::Yes {
            return Err(QueryError::NotFound(format!(
                "resource type '{rt}' is not served here"
            )));
        }
        let subject = format!("{rt}/{id}");
        // The ledger is read before the index: an honest index is never behind what the log
        // already holds, so "log ahead of index" can only mean the index lost or rolled back rows.
        let logged = self.ledger.latest_logged_version(RECORD, &subject).await?;
        let head = self.index.head(rt, id).await?;
        let head = match (head, logged) {
            (None, None) => return Err(QueryError::NotFound(format!("{subject} is not known"))),
            (None, Some(_)) => {
                return Err(QueryError::Integrity(format!(
                    "{subject} is in the ledger but missing from the index"
                )));
            }
            (Some(h), Some(l)) if l > h.version => {
                return Err(QueryError::Integrity(format!(
                    "the index says version {} of {subject} is current but the ledger holds version {l}",
                    h.version
                )));
            }
            (Some(h), _) => h,
        };
        let version = vid.unwrap_or(head.version);
        if version == 0 || version > head.version {
            return Err(QueryError::NotFound(format!(
                "{subject} has no version {version}"
            )));
        }
        let row = self.index.version(rt, id, version).await?.ok_or_else(|| {
            QueryError::Integrity(format!(
                "{subject} version {version} is missing from the index"
            ))
        })?;
        audit.about(Some(&row.owner));
        let unknown = || QueryError::NotFound(format!("{subject} is not known"));
        // A denial answers like an unknown record; the trail says what really happened.
        let denied = |audit: &mut Audit| {
            audit.refused("access denied by the consent decision");
            unknown()
        };
        // Decided before the record is touched further; a caller whose only chance is a
        // `?category=` scope is decided again once the categories are known (after decryption,
        // nothing of which is returned unless that second decision allows it).
        let permitted = self
            .authorize(caller, &subject, rt, &row.owner, &row.actor, None)
            .await?;
        let needs_categories = !permitted && scopes.restricted_by_category(rt, Interaction::Read);
        if !permitted && !needs_categories {
            return Err(denied(audit));
        }
        let leaf = self.logged_leaf(&row).await?;
        if row.deleted {
            if needs_categories {
                return Err(denied(audit));
            }
            return Err(QueryError::Gone(format!("{subject} was deleted")));
        }
        let opened = self.decrypt(&row).await?;
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
                return Err(denied(audit));
            }
        }
        Ok(VerifiedVersion {
            row,
            body: opened.body,
            salt: opened.salt,
            leaf,
        })
    }

    /// The ledger leaf of `row`'s version, checked against the row.
    pub(crate) async fn logged_leaf(&self, row: &VersionRow) -> Result<LeafRow, QueryError> {
        let subject = row.key();
        let version = row.version;
        let leaf = self.wait_for_leaf(&subject, version).await?;
        let logged_leaf = RecordLeaf::decode(&leaf.leaf)
            .map_err(|e| QueryError::Integrity(format!("ledger leaf unreadable: {e}")))?;
        if !logged_leaf.matches_row(row) {
            return Err(QueryError::Integrity(format!(
                "the index entry of {subject} version {version} does not match the ledger"
            )));
        }
        Ok(leaf)
    }

    /// The plaintext of `row`'s (undeleted) version: fetched by CID, decrypted under its own
    /// identity and checked against its commitment.
    pub(crate) async fn decrypt(&self, row: &VersionRow) -> Result<OpenedVersion, QueryError> {
        decrypt(self.blobs.as_ref(), &self.keys, row).await
    }

    /// The leaf of a version, waiting briefly for a write that has not reached the log yet.
    async fn wait_for_leaf(&self, subject: &str, version: u64) -> Result<LeafRow, QueryError> {
        let deadline = Instant::now() + self.config.ledger_wait;
        loop {
            if let Some(l) = self.ledger.leaf_for(RECORD, subject, version).await? {
                return Ok(l);
            }
            if Instant::now() >= deadline {
                return Err(QueryError::NotYet {
                    message: format!("{subject} version {version} is not in the ledger yet"),
                    retry_after_secs: 1,
                });
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// The plaintext of `row`'s (undeleted) version: fetched by CID from `blobs`, decrypted under
/// its own identity with its owner's key and checked against its commitment.
pub(crate) async fn decrypt(
    blobs: &dyn BlobStore,
    keys: &OwnerKeys,
    row: &VersionRow,
) -> Result<OpenedVersion, QueryError> {
    let subject = row.key();
    let version = row.version;
    let cid: Cid = row
        .cid
        .as_deref()
        .unwrap_or_default()
        .parse()
        .map_err(|_| {
            QueryError::Integrity(format!(
                "{subject} version {version} has an unparseable CID"
            ))
        })?;
    let blob = blobs.get(&cid).await?;
    let key = keys
        .get(&row.owner)
        .await?
        .ok_or_else(|| QueryError::Gone(format!("{subject} has been erased")))?;
    let aad = version_aad(&row.resource_type, &row.id, version, &row.owner);
    let opened = open_version(&key, &aad, &blob, &row.wrapped_key).map_err(|_| {
        QueryError::Integrity(format!(
            "{subject} version {version} does not decrypt under its own identity"
        ))
    })?;
    if Some(commitment(&opened.salt, &opened.body)) != row.commitment {
        return Err(QueryError::Integrity(format!(
            "{subject} version {version} does not match its commitment"
        )));
    }
    Ok(opened)
}

/// A resource's `category` codings as `code` and `system|code`.
pub(crate) fn categories_of(body: &[u8]) -> Vec<String> {
    serde_json::from_slice::<serde_json::Value>(body)
        .map_or_else(|_| Vec::new(), |v| categories_in(&v))
}

/// The `category` codings of a parsed resource, as [`categories_of`] gives them.
pub(crate) fn categories_in(v: &serde_json::Value) -> Vec<String> {
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
