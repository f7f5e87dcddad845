//! Storage ports: the record index, owner keys and the ledger's leaves and tree heads, with the
//! types they exchange. One implementation serves both backends: `medledger-storage-sqlx`, on
//! SQLite (embedded) and PostgreSQL (distributed).
//!
//! Nothing here ever holds resource plaintext: rows carry ids, versions, CIDs, wrapped keys and
//! commitments only.

#[cfg(any(test, feature = "test-utils"))]
pub mod conformance;

/// Where a service's PostgreSQL store is (the `postgres` section of its configuration in
/// distributed mode; `medledger-storage-sqlx` connects to it).
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PostgresConfig {
    /// `postgres://user@host:port/db`; the service's schema is created by its migrations.
    pub url: String,
    /// Pool size.
    pub max_connections: u32,
}

impl Default for PostgresConfig {
    fn default() -> Self {
        Self {
            url: "postgres://postgres@127.0.0.1:5432/medledger".to_owned(),
            max_connections: 16,
        }
    }
}

/// A storage failure.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A write lost a race: the record's current version is not the one the writer expected.
    #[error("version conflict on {resource}: expected {expected:?}, found {found:?}")]
    Conflict {
        /// `Type/id`.
        resource: String,
        /// The version the writer based its change on (`None`: must not exist).
        expected: Option<u64>,
        /// The version found.
        found: Option<u64>,
    },
    /// The database failed or is unreachable; trying again later may succeed.
    #[error("store unavailable: {0}")]
    Unavailable(String),
    /// A conditional create found, at commit time, a record matching its criteria.
    #[error("{0} matches an existing record")]
    Matched(String),
    /// A stored row holds what its type cannot (a commitment that is not 32 bytes, a negative
    /// version): the data is damaged, and trying again will not help.
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
}

impl medledger_error::Categorized for StoreError {
    fn category(&self) -> medledger_error::Category {
        use medledger_error::Category;
        match self {
            Self::Conflict { .. } | Self::Matched(_) => Category::Conflict,
            Self::Unavailable(_) => Category::UNAVAILABLE,
            Self::Corrupt(_) => Category::Integrity,
        }
    }

    fn diagnostics(&self) -> String {
        match self {
            // The database's own message names hosts and statements: for the log, not clients.
            Self::Unavailable(_) => "the store is unavailable".to_owned(),
            Self::Corrupt(why) => format!("integrity check failed: stored data is corrupt ({why})"),
            Self::Conflict { .. } | Self::Matched(_) => self.to_string(),
        }
    }
}

/// The current state of one logical resource.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordHead {
    /// Latest version id.
    pub version: u64,
    /// Whether the latest version is a deletion.
    pub deleted: bool,
    /// Owner label (`Patient/{id}` or `Organization`).
    pub owner: String,
}

/// One stored version of a resource.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VersionRow {
    /// Resource type.
    pub resource_type: String,
    /// Logical id.
    pub id: String,
    /// Version id.
    pub version: u64,
    /// CID of the ciphertext; `None` for a deletion.
    pub cid: Option<String>,
    /// Data key wrapped by the owner key; empty for a deletion.
    pub wrapped_key: Vec<u8>,
    /// Owner label.
    pub owner: String,
    /// Salted commitment of the canonical plaintext; `None` for a deletion.
    pub commitment: Option<[u8; 32]>,
    /// Whether this version is a deletion.
    pub deleted: bool,
    /// `meta.lastUpdated` (FHIR instant).
    pub last_updated: String,
    /// Who wrote it.
    pub actor: String,
}

impl VersionRow {
    /// `Type/id`.
    pub fn key(&self) -> String {
        format!("{}/{}", self.resource_type, self.id)
    }

    /// Where this version sits in a search's keyset order.
    pub fn keyset(&self) -> Keyset {
        Keyset {
            last_updated: self.last_updated.clone(),
            id: self.id.clone(),
        }
    }
}

/// A version to write, with the version the writer expects to replace.
#[derive(Debug, Clone)]
pub struct VersionWrite {
    /// The new row.
    pub row: VersionRow,
    /// Current version the change is based on; `None` when the resource must not exist yet.
    pub expected: Option<u64>,
    /// The blind search tags of the new version (`medledger-search`); they replace the
    /// record's previous tags in the same transaction. Empty for a deletion.
    pub tags: Vec<IndexTag>,
    /// A conditional create's criteria (`If-None-Exist`): the write commits only if no current
    /// record matches them when it does, checked under a lock so racing creates make one.
    pub unless: Option<IndexQuery>,
}

/// A blind index tag: a truncated keyed HMAC of one search value (`medledger-search`).
pub type IndexTag = [u8; 16];

/// What a search asks of the record index: current, undeleted versions of one type, holding
/// tags, in a keyset order. The caller narrows further on what only plaintext can answer.
#[derive(Debug, Clone, Default)]
pub struct IndexQuery {
    /// The type searched.
    pub resource_type: String,
    /// Each entry: the record holds at least one of these tags.
    pub all_of: Vec<Vec<IndexTag>>,
    /// Each entry: the record holds none of these tags.
    pub none_of: Vec<Vec<IndexTag>>,
    /// Only these logical ids.
    pub ids: Option<Vec<String>>,
    /// Only records of this owner (`Patient/{id}`): a patient-compartment search.
    pub owner: Option<String>,
    /// The order and where in it to start.
    pub order: IndexOrder,
    /// Most hits returned.
    pub limit: u32,
}

/// The keyset order of search hits: by `last_updated` then id, or by id alone.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IndexOrder {
    /// Order by id alone (`_sort=_id`) rather than by last update.
    pub by_id: bool,
    /// Descending.
    pub descending: bool,
    /// Start after this hit (exclusive), in the order's direction.
    pub after: Option<Keyset>,
}

/// A position in a keyset order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Keyset {
    /// `last_updated` of the hit (ignored when ordering by id).
    pub last_updated: String,
    /// Its logical id.
    pub id: String,
}

/// A patient's compartment as `$everything` reads it: current, undeleted versions of one
/// owner, across types, ordered by type then id (of every owner, for `reindex`).
#[derive(Debug, Clone, Default)]
pub struct CompartmentQuery {
    /// The owner (`Patient/{id}`); `None`: every record.
    pub owner: Option<String>,
    /// Only these types (`_type`); every type when `None`.
    pub types: Option<Vec<String>>,
    /// `_since`: versions last updated at or after this instant (the stored format).
    pub since: Option<String>,
    /// Start after this `(type, id)`.
    pub after: Option<(String, String)>,
    /// Most versions returned.
    pub limit: u32,
}

/// What a history asks of the record index: versions (deletions included), newest first.
#[derive(Debug, Clone, Default)]
pub struct HistoryQuery {
    /// One type (type and instance history); every type when `None` (system history).
    pub resource_type: Option<String>,
    /// One record (instance history).
    pub id: Option<String>,
    /// Only versions of records of this owner.
    pub owner: Option<String>,
    /// `_since`: versions last updated at or after this instant (the stored format).
    pub since: Option<String>,
    /// `_at`: versions that were current at this instant (the stored format).
    pub at: Option<String>,
    /// Start after (older than) this version.
    pub after: Option<HistoryKey>,
    /// Most versions returned.
    pub limit: u32,
}

/// A position in a history: versions are ordered by last update, then type, id and version,
/// newest first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HistoryKey {
    /// `last_updated` of the version.
    pub last_updated: String,
    /// Its type.
    pub resource_type: String,
    /// Its id.
    pub id: String,
    /// Its version.
    pub version: u64,
}

impl HistoryKey {
    /// The position of `row`.
    pub fn of(row: &VersionRow) -> Self {
        Self {
            last_updated: row.last_updated.clone(),
            resource_type: row.resource_type.clone(),
            id: row.id.clone(),
            version: row.version,
        }
    }
}

/// The blind search index over the record index's current versions (ingest writes tags with
/// each version through [`RecordIndex::commit`]; the query service searches).
#[async_trait::async_trait]
pub trait SearchIndex: Send + Sync + 'static {
    /// The current versions `query` finds, in its order, at most `query.limit`.
    async fn search(&self, query: &IndexQuery) -> Result<Vec<VersionRow>, StoreError>;

    /// The current versions of the compartment `query` names, in its order.
    async fn compartment(&self, query: &CompartmentQuery) -> Result<Vec<VersionRow>, StoreError>;

    /// The versions `query` selects, newest first, at most `query.limit`.
    async fn history(&self, query: &HistoryQuery) -> Result<Vec<VersionRow>, StoreError>;

    /// Replaces the tags of the current version of `resource_type/id` if it is still
    /// `version` (for `reindex`, which runs beside writers); `false` when a newer version
    /// arrived meanwhile (its writer filed its own tags).
    async fn retag(
        &self,
        resource_type: &str,
        id: &str,
        version: u64,
        tags: &[IndexTag],
    ) -> Result<bool, StoreError>;

    /// Moves up to `limit` records' pending tags (filed by their writes, found by searches
    /// already) into the index proper, oldest first, in one transaction; how many records'.
    /// Writers call it in the background: searches answer the same before and after, only
    /// faster and with fewer pages written per write.
    async fn merge_pending(&self, limit: u32) -> Result<u64, StoreError>;
}

/// An event to publish with the write, atomically (the outbox).
#[derive(Debug, Clone)]
pub struct OutboxEvent {
    /// Topic.
    pub topic: String,
    /// Partition key.
    pub key: Vec<u8>,
    /// Protobuf payload.
    pub payload: Vec<u8>,
}

/// The record index (ingest writes, query reads).
#[async_trait::async_trait]
pub trait RecordIndex: Send + Sync + 'static {
    /// The current head of `Type/id`.
    async fn head(&self, resource_type: &str, id: &str) -> Result<Option<RecordHead>, StoreError>;

    /// One version.
    async fn version(
        &self,
        resource_type: &str,
        id: &str,
        version: u64,
    ) -> Result<Option<VersionRow>, StoreError>;

    /// Writes all versions, their events and the audit rows of the write in one transaction,
    /// or nothing (so an acknowledged write is never missing from the audit trail).
    async fn commit(
        &self,
        writes: &[VersionWrite],
        events: &[OutboxEvent],
        audit: &[AuditRow],
    ) -> Result<(), StoreError>;

    /// Every CID the index refers to (the pin set, for garbage collection).
    async fn referenced_cids(&self) -> Result<Vec<String>, StoreError>;
}

/// Owner keys, each wrapped by the master key.
#[async_trait::async_trait]
pub trait OwnerKeyStore: Send + Sync + 'static {
    /// The wrapped key of `owner`, if one exists.
    async fn wrapped_owner_key(&self, owner: &str) -> Result<Option<Vec<u8>>, StoreError>;

    /// Stores `wrapped` unless a key already exists; returns the key that is stored (so two
    /// racing writers end up using the same key).
    async fn insert_owner_key(&self, owner: &str, wrapped: &[u8]) -> Result<Vec<u8>, StoreError>;
}

/// A leaf of the Merkle log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeafRow {
    /// Position in the log.
    pub index: u64,
    /// Leaf kind tag (record version, consent change, audit event).
    pub kind: u8,
    /// What the leaf is about, e.g. `Observation/123`.
    pub subject: String,
    /// Version of the subject.
    pub version: u64,
    /// The leaf's bytes (hashed with the `0x00` prefix).
    pub leaf: Vec<u8>,
}

/// A tree head and where the chain holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TreeHeadRow {
    /// Leaves covered.
    pub tree_size: u64,
    /// Root hash.
    pub root: [u8; 32],
    /// Chain id.
    pub chain_id: u64,
    /// RecordLog contract address.
    pub contract: String,
    /// RecordLog index of this head.
    pub chain_index: u64,
    /// Block number.
    pub block_number: u64,
    /// Block hash.
    pub block_hash: String,
    /// Transaction hash.
    pub tx_hash: String,
}

/// A checkpoint (a private-chain tree head) anchored on the public chain, and where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AnchorRow {
    /// Leaves covered by the anchored head.
    pub tree_size: u64,
    /// Its root hash.
    pub root: [u8; 32],
    /// Private-chain block that committed the head.
    pub source_block_number: u64,
    /// That block's hash, `0x…`.
    pub source_block_hash: String,
    /// Public chain id.
    pub chain_id: u64,
    /// Anchor contract address.
    pub contract: String,
    /// Anchor index of this checkpoint.
    pub chain_index: u64,
    /// Public block number.
    pub block_number: u64,
    /// Public block hash.
    pub block_hash: String,
    /// Public transaction hash.
    pub tx_hash: String,
}

/// The ledger writer's state.
#[async_trait::async_trait]
pub trait LedgerStore: Send + Sync + 'static {
    /// All leaves in order (loaded once at start to rebuild the tree).
    async fn leaves(&self) -> Result<Vec<LeafRow>, StoreError> {
        self.leaves_from(0).await
    }

    /// Leaves with index `start` and above, in order.
    async fn leaves_from(&self, start: u64) -> Result<Vec<LeafRow>, StoreError>;

    /// Appends leaves, skipping any whose (kind, subject, version) is already logged; returns the
    /// leaves actually appended, with their indexes.
    async fn append_leaves(&self, leaves: &[LeafRow]) -> Result<Vec<LeafRow>, StoreError>;

    /// The leaf for a subject version.
    async fn leaf_for(
        &self,
        kind: u8,
        subject: &str,
        version: u64,
    ) -> Result<Option<LeafRow>, StoreError>;

    /// Highest logged version of a subject.
    async fn latest_logged_version(
        &self,
        kind: u8,
        subject: &str,
    ) -> Result<Option<u64>, StoreError>;

    /// Records a tree head committed to the chain.
    async fn insert_tree_head(&self, head: &TreeHeadRow) -> Result<(), StoreError>;

    /// The latest committed tree head.
    async fn latest_tree_head(&self) -> Result<Option<TreeHeadRow>, StoreError>;

    /// The first committed tree head that includes leaf `index`.
    async fn tree_head_covering(&self, index: u64) -> Result<Option<TreeHeadRow>, StoreError>;

    /// Records a checkpoint anchored on the public chain (a second insert of the same tree
    /// size is ignored).
    async fn insert_anchor(&self, anchor: &AnchorRow) -> Result<(), StoreError>;

    /// The latest anchored checkpoint.
    async fn latest_anchor(&self) -> Result<Option<AnchorRow>, StoreError>;

    /// The first anchored checkpoint of at least `tree_size` leaves.
    async fn anchor_covering(&self, tree_size: u64) -> Result<Option<AnchorRow>, StoreError>;
}

/// An account known to the consent service and the role an admin gave it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccountRow {
    /// The account's FHIR reference (`Practitioner/dr-1`, `Patient/p1`, …).
    pub account: String,
    /// patient, practitioner, organization, auditor, authority or admin.
    pub role: String,
    /// Whether an authority verified this practitioner (always false for other roles).
    pub verified: bool,
}

/// One stored version of a patient's `Consent` resource.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsentRow {
    /// The Consent's logical id.
    pub id: String,
    /// Version id (1, 2, …).
    pub version: u64,
    /// `Patient/{id}` it is about.
    pub patient: String,
    /// `Consent.status`.
    pub status: String,
    /// The resource as stored (RFC 8785 JSON).
    pub resource: Vec<u8>,
    /// Who stored this version.
    pub actor: String,
    /// When, Unix milliseconds.
    pub recorded_at_ms: i64,
}

/// The consent service's state: accounts and roles, and patients' consents. Authoritative: a
/// change takes effect for every decision after it commits here.
#[async_trait::async_trait]
pub trait ConsentStore: Send + Sync + 'static {
    /// The account, if known.
    async fn account(&self, account: &str) -> Result<Option<AccountRow>, StoreError>;

    /// Creates or replaces an account (admin and authority actions).
    async fn put_account(&self, row: &AccountRow) -> Result<(), StoreError>;

    /// The account; created with `role`, unverified, when it does not exist yet.
    async fn ensure_account(&self, account: &str, role: &str) -> Result<AccountRow, StoreError>;

    /// The latest version of every consent about `patient`.
    async fn consents_of(&self, patient: &str) -> Result<Vec<ConsentRow>, StoreError>;

    /// The latest version of consent `id`.
    async fn consent(&self, id: &str) -> Result<Option<ConsentRow>, StoreError>;

    /// Stores a version; `expected` is the current version it replaces (`None`: must not
    /// exist). [`StoreError::Conflict`] when another change came first.
    async fn put_consent(&self, row: &ConsentRow, expected: Option<u64>) -> Result<(), StoreError>;
}

/// An account's current role and verification with what the registrar needs to commit them to
/// the Roles contract: the account's salt (its on-chain identity is a salted commitment) and
/// the revision of its latest change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccountRegistration {
    /// The account as stored.
    pub account: AccountRow,
    /// Random salt of the account's commitment, fixed when the account is created.
    pub salt: [u8; 32],
    /// Counts the account's changes (1 when created).
    pub revision: u64,
    /// The revision the chain reflects (0: none yet).
    pub registered_revision: u64,
}

/// One Consent version with what the registrar needs to commit it to ConsentRegistry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsentRegistration {
    /// The version as stored.
    pub consent: ConsentRow,
    /// Random salt of this version's content commitment and authorisation commitment.
    pub salt: [u8; 32],
    /// Random salt of the Consent's id and patient commitments, the same for every version.
    pub subject_salt: [u8; 32],
    /// Where the chain recorded the change (the registrar's JSON), once it has.
    pub registration: Option<Vec<u8>>,
}

/// The queue of role and consent changes to commit to the chain, kept in the consent store:
/// a change is queued by the same transaction that stores it, so none is lost between the
/// store and the chain.
#[async_trait::async_trait]
pub trait RegistryQueue: Send + Sync + 'static {
    /// Accounts whose latest change the chain does not reflect yet, least recently changed
    /// first.
    async fn unregistered_accounts(
        &self,
        limit: u32,
    ) -> Result<Vec<AccountRegistration>, StoreError>;

    /// Marks `account` as reflected on chain up to `revision` (a later change stays queued).
    async fn account_registered(&self, account: &str, revision: u64) -> Result<(), StoreError>;

    /// One account with its salt and revisions.
    async fn account_registration(
        &self,
        account: &str,
    ) -> Result<Option<AccountRegistration>, StoreError>;

    /// Consent versions not on chain yet, in the order they were stored (a version is never
    /// listed before an earlier version of the same Consent).
    async fn unregistered_consents(
        &self,
        limit: u32,
    ) -> Result<Vec<ConsentRegistration>, StoreError>;

    /// Records where the chain holds version `version` of Consent `id`.
    async fn consent_registered(
        &self,
        id: &str,
        version: u64,
        registration: &[u8],
    ) -> Result<(), StoreError>;

    /// One Consent version with its salts and registration.
    async fn consent_registration(
        &self,
        id: &str,
        version: u64,
    ) -> Result<Option<ConsentRegistration>, StoreError>;
}

/// A practitioner's request for access to a patient's records.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessRequestRow {
    /// Request id.
    pub id: String,
    /// Who asks (`Practitioner/dr-1`).
    pub requester: String,
    /// Whose records (`Patient/p1`).
    pub patient: String,
    /// Purpose of use code (`TREAT`).
    pub purpose: String,
    /// Requested period, Unix seconds: `[start, end)`.
    pub start: i64,
    /// End of the requested period.
    pub end: i64,
    /// `pending`, `approved` or `denied`.
    pub status: String,
    /// The Consent an approval created (`Consent/{id}`).
    pub consent: Option<String>,
    /// When it was asked, Unix milliseconds.
    pub requested_at_ms: i64,
}

/// Access requests, kept by the consent service beside the consents they turn into.
#[async_trait::async_trait]
pub trait AccessRequestStore: Send + Sync + 'static {
    /// Stores a new request.
    async fn put_request(&self, row: &AccessRequestRow) -> Result<(), StoreError>;

    /// One request.
    async fn request(&self, id: &str) -> Result<Option<AccessRequestRow>, StoreError>;

    /// Every request about `patient`, oldest first.
    async fn requests_for(&self, patient: &str) -> Result<Vec<AccessRequestRow>, StoreError>;

    /// Decides a pending request: `status` and the Consent it produced. [`StoreError::Conflict`]
    /// when it is no longer pending (decided twice, or concurrently).
    async fn decide_request(
        &self,
        id: &str,
        status: &str,
        consent: Option<&str>,
    ) -> Result<(), StoreError>;
}

/// One FHIR `AuditEvent`, as kept by the audit trail. Audit rows are never deleted, not even
/// when the patient they are about is erased: they hold references and codes, never resource
/// content, and they are not encrypted under the patient's key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditRow {
    /// The AuditEvent's id (a UUID).
    pub id: String,
    /// When the audited interaction happened, Unix milliseconds.
    pub recorded_at_ms: i64,
    /// The patient the event is about (`Patient/{id}`), when there is one: what a patient's
    /// `GET /fhir/AuditEvent?patient=` selects on.
    pub patient: Option<String>,
    /// Further patients the event is about (a search that returned several patients' data):
    /// their trails select it too. Written with the row; the resource names them all.
    pub also_about: Vec<String>,
    /// Who acted (the token subject).
    pub actor: String,
    /// `AuditEvent.outcome`: `0` success, `4` refused, `8` failed.
    pub outcome: String,
    /// The AuditEvent resource (RFC 8785 JSON).
    pub resource: Vec<u8>,
    /// Salt of the ledger commitment `HMAC-SHA256(salt, resource)`.
    pub salt: [u8; 32],
}

/// Which audit rows to list.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuditFilter {
    /// Only events about this patient.
    pub patient: Option<String>,
    /// Only events by this actor.
    pub actor: Option<String>,
    /// Only events recorded at or after this time (Unix ms).
    pub since_ms: Option<i64>,
    /// Newest first, at most this many.
    pub limit: u32,
}

/// The audit trail: append-only, written before the audited response is sent.
#[async_trait::async_trait]
pub trait AuditStore: Send + Sync + 'static {
    /// Stores `rows` and their ledger events in one transaction (a second insert of an id
    /// already stored is ignored, so a retried request cannot fork an event).
    async fn record_audit(
        &self,
        rows: &[AuditRow],
        events: &[OutboxEvent],
    ) -> Result<(), StoreError>;

    /// Rows matching `filter`, newest first.
    async fn audit_events(&self, filter: &AuditFilter) -> Result<Vec<AuditRow>, StoreError>;

    /// One row.
    async fn audit_event(&self, id: &str) -> Result<Option<AuditRow>, StoreError>;
}

/// An HL7 v2 message refused over MLLP, kept so nothing a sender transmitted is lost: an
/// operator can read why and replay it once the cause is fixed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadLetter {
    /// Random id.
    pub id: String,
    /// When it arrived (Unix ms).
    pub received_at_ms: i64,
    /// MSH-3 and MSH-4 as sent (`""` when the message did not parse).
    pub sender: String,
    /// MSH-10 (`""` when the message did not parse).
    pub control_id: String,
    /// HL7 table 0357 error code of the NAK.
    pub code: u16,
    /// The NAK's reason (names segments and fields, never values).
    pub reason: String,
    /// The message as received, encrypted (it is PHI).
    pub sealed: Vec<u8>,
}

/// An accepted HL7 v2 message as remembered for duplicate detection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AcceptedMessage {
    /// Keyed digest of the message as received: the same control id on other content is not a
    /// duplicate.
    pub digest: String,
    /// The acknowledgement sent.
    pub ack: String,
}

/// What the MLLP listener remembers: the acknowledgement of each accepted message, so a message
/// sent again (same MSH-10 from the same sender) is acknowledged without a second write, and
/// the refused messages.
#[async_trait::async_trait]
pub trait Hl7MessageLog: Send + Sync + 'static {
    /// What was remembered when `control_id` from `sender` was accepted, if it was.
    async fn accepted(
        &self,
        sender: &str,
        control_id: &str,
    ) -> Result<Option<AcceptedMessage>, StoreError>;

    /// Remembers an accepted message; a second call for the same sender and control id keeps
    /// the first.
    async fn record_accepted(
        &self,
        sender: &str,
        control_id: &str,
        accepted: &AcceptedMessage,
        at_ms: i64,
    ) -> Result<(), StoreError>;

    /// Keeps a refused message.
    async fn dead_letter(&self, letter: &DeadLetter) -> Result<(), StoreError>;

    /// Refused messages, newest first, at most `limit`.
    async fn dead_letters(&self, limit: u32) -> Result<Vec<DeadLetter>, StoreError>;
}
