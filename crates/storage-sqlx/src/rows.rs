//! Rows as both backends return them, and their conversion into the port types. A value the
//! port type cannot hold (a commitment that is not 32 bytes, a negative version) is
//! [`StoreError::Corrupt`]: the data is wrong, and retrying will not make it right.

use medledger_storage_api::{self as api, StoreError};

/// A stored integer that must fit `T` (versions, indexes, sizes are never negative).
pub(crate) fn int<T: TryFrom<i64>>(v: i64, what: &str) -> Result<T, StoreError> {
    T::try_from(v).map_err(|_| StoreError::Corrupt(format!("{what} {v} is out of range")))
}

/// Stored bytes that must be exactly 32 (hashes, commitments, salts).
fn bytes32(v: Vec<u8>, what: &str) -> Result<[u8; 32], StoreError> {
    let n = v.len();
    v.try_into()
        .map_err(|_| StoreError::Corrupt(format!("{what} is {n} bytes, not 32")))
}

/// A version as stored for its argument: `i64`, which both backends hold natively.
pub(crate) fn stored(v: u64) -> i64 {
    // Versions, indexes and block numbers stay far below 2^63.
    i64::try_from(v).unwrap_or(i64::MAX)
}

/// A `record_versions` row.
#[derive(sqlx::FromRow)]
pub struct Version {
    resource_type: String,
    id: String,
    version: i64,
    cid: Option<String>,
    wrapped_key: Vec<u8>,
    owner: String,
    commitment: Option<Vec<u8>>,
    deleted: bool,
    last_updated: String,
    actor: String,
}

impl TryFrom<Version> for api::VersionRow {
    type Error = StoreError;
    fn try_from(r: Version) -> Result<Self, StoreError> {
        Ok(Self {
            version: int(r.version, "version")?,
            commitment: r
                .commitment
                .map(|c| bytes32(c, "a commitment"))
                .transpose()?,
            resource_type: r.resource_type,
            id: r.id,
            cid: r.cid,
            wrapped_key: r.wrapped_key,
            owner: r.owner,
            deleted: r.deleted,
            last_updated: r.last_updated,
            actor: r.actor,
        })
    }
}

/// A `record_heads` row.
#[derive(sqlx::FromRow)]
pub struct Head {
    version: i64,
    deleted: bool,
    owner: String,
}

impl TryFrom<Head> for api::RecordHead {
    type Error = StoreError;
    fn try_from(r: Head) -> Result<Self, StoreError> {
        Ok(Self {
            version: int(r.version, "version")?,
            deleted: r.deleted,
            owner: r.owner,
        })
    }
}

/// A `ledger_leaves` row.
#[derive(sqlx::FromRow)]
pub struct Leaf {
    leaf_index: i64,
    kind: i16,
    subject: String,
    version: i64,
    leaf: Vec<u8>,
}

impl TryFrom<Leaf> for api::LeafRow {
    type Error = StoreError;
    fn try_from(r: Leaf) -> Result<Self, StoreError> {
        Ok(Self {
            index: int(r.leaf_index, "leaf index")?,
            kind: int(i64::from(r.kind), "leaf kind")?,
            subject: r.subject,
            version: int(r.version, "version")?,
            leaf: r.leaf,
        })
    }
}

/// A `ledger_tree_heads` row.
#[derive(sqlx::FromRow)]
pub struct TreeHead {
    tree_size: i64,
    root: Vec<u8>,
    chain_id: i64,
    contract: String,
    chain_index: i64,
    block_number: i64,
    block_hash: String,
    tx_hash: String,
}

impl TryFrom<TreeHead> for api::TreeHeadRow {
    type Error = StoreError;
    fn try_from(r: TreeHead) -> Result<Self, StoreError> {
        Ok(Self {
            tree_size: int(r.tree_size, "tree size")?,
            root: bytes32(r.root, "a tree head's root")?,
            chain_id: int(r.chain_id, "chain id")?,
            contract: r.contract,
            chain_index: int(r.chain_index, "chain index")?,
            block_number: int(r.block_number, "block number")?,
            block_hash: r.block_hash,
            tx_hash: r.tx_hash,
        })
    }
}

/// A `ledger_anchors` row.
#[derive(sqlx::FromRow)]
pub struct Anchor {
    tree_size: i64,
    root: Vec<u8>,
    source_block_number: i64,
    source_block_hash: String,
    chain_id: i64,
    contract: String,
    chain_index: i64,
    block_number: i64,
    block_hash: String,
    tx_hash: String,
}

impl TryFrom<Anchor> for api::AnchorRow {
    type Error = StoreError;
    fn try_from(r: Anchor) -> Result<Self, StoreError> {
        Ok(Self {
            tree_size: int(r.tree_size, "tree size")?,
            root: bytes32(r.root, "an anchor's root")?,
            source_block_number: int(r.source_block_number, "block number")?,
            source_block_hash: r.source_block_hash,
            chain_id: int(r.chain_id, "chain id")?,
            contract: r.contract,
            chain_index: int(r.chain_index, "chain index")?,
            block_number: int(r.block_number, "block number")?,
            block_hash: r.block_hash,
            tx_hash: r.tx_hash,
        })
    }
}

/// A `consent_accounts` row (role and verification).
#[derive(sqlx::FromRow)]
pub struct Account {
    account: String,
    role: String,
    verified: bool,
}

impl TryFrom<Account> for api::AccountRow {
    type Error = StoreError;
    fn try_from(r: Account) -> Result<Self, StoreError> {
        Ok(Self {
            account: r.account,
            role: r.role,
            verified: r.verified,
        })
    }
}

/// A `consent_accounts` row with its salt and revisions.
#[derive(sqlx::FromRow)]
pub struct AccountRegistration {
    #[sqlx(flatten)]
    account: Account,
    salt: Vec<u8>,
    revision: i64,
    registered_revision: i64,
}

impl TryFrom<AccountRegistration> for api::AccountRegistration {
    type Error = StoreError;
    fn try_from(r: AccountRegistration) -> Result<Self, StoreError> {
        Ok(Self {
            account: r.account.try_into()?,
            salt: bytes32(r.salt, "an account's salt")?,
            revision: int(r.revision, "revision")?,
            registered_revision: int(r.registered_revision, "revision")?,
        })
    }
}

/// A `consent_versions` row.
#[derive(sqlx::FromRow)]
pub struct Consent {
    id: String,
    version: i64,
    patient: String,
    status: String,
    resource: Vec<u8>,
    actor: String,
    recorded_at_ms: i64,
}

impl TryFrom<Consent> for api::ConsentRow {
    type Error = StoreError;
    fn try_from(r: Consent) -> Result<Self, StoreError> {
        Ok(Self {
            id: r.id,
            version: int(r.version, "version")?,
            patient: r.patient,
            status: r.status,
            resource: r.resource,
            actor: r.actor,
            recorded_at_ms: r.recorded_at_ms,
        })
    }
}

/// A `consent_versions` row joined with its subject salt.
#[derive(sqlx::FromRow)]
pub struct ConsentRegistration {
    #[sqlx(flatten)]
    consent: Consent,
    salt: Vec<u8>,
    subject_salt: Vec<u8>,
    registration: Option<Vec<u8>>,
}

impl TryFrom<ConsentRegistration> for api::ConsentRegistration {
    type Error = StoreError;
    fn try_from(r: ConsentRegistration) -> Result<Self, StoreError> {
        Ok(Self {
            consent: r.consent.try_into()?,
            salt: bytes32(r.salt, "a consent version's salt")?,
            subject_salt: bytes32(r.subject_salt, "a consent's salt")?,
            registration: r.registration,
        })
    }
}

/// A `consent_access_requests` row.
#[derive(sqlx::FromRow)]
pub struct AccessRequest {
    id: String,
    requester: String,
    patient: String,
    purpose: String,
    period_start: i64,
    period_end: i64,
    status: String,
    consent: Option<String>,
    requested_at_ms: i64,
}

impl TryFrom<AccessRequest> for api::AccessRequestRow {
    type Error = StoreError;
    fn try_from(r: AccessRequest) -> Result<Self, StoreError> {
        Ok(Self {
            id: r.id,
            requester: r.requester,
            patient: r.patient,
            purpose: r.purpose,
            start: r.period_start,
            end: r.period_end,
            status: r.status,
            consent: r.consent,
            requested_at_ms: r.requested_at_ms,
        })
    }
}

/// An `audit_events` row.
#[derive(sqlx::FromRow)]
pub struct Audit {
    id: String,
    recorded_at_ms: i64,
    patient: Option<String>,
    actor: String,
    outcome: String,
    resource: Vec<u8>,
    salt: Vec<u8>,
}

impl TryFrom<Audit> for api::AuditRow {
    type Error = StoreError;
    fn try_from(r: Audit) -> Result<Self, StoreError> {
        Ok(Self {
            also_about: Vec::new(),
            salt: bytes32(r.salt, "an audit event's salt")?,
            id: r.id,
            recorded_at_ms: r.recorded_at_ms,
            patient: r.patient,
            actor: r.actor,
            outcome: r.outcome,
            resource: r.resource,
        })
    }
}

/// An `hl7_accepted` row.
#[derive(sqlx::FromRow)]
pub struct Accepted {
    digest: String,
    ack: String,
}

impl TryFrom<Accepted> for api::AcceptedMessage {
    type Error = StoreError;
    fn try_from(r: Accepted) -> Result<Self, StoreError> {
        Ok(Self {
            digest: r.digest,
            ack: r.ack,
        })
    }
}

/// An `hl7_dead_letters` row.
#[derive(sqlx::FromRow)]
pub struct DeadLetter {
    id: String,
    received_at_ms: i64,
    sender: String,
    control_id: String,
    code: i32,
    reason: String,
    sealed: Vec<u8>,
}

impl TryFrom<DeadLetter> for api::DeadLetter {
    type Error = StoreError;
    fn try_from(r: DeadLetter) -> Result<Self, StoreError> {
        Ok(Self {
            code: int(i64::from(r.code), "dead letter code")?,
            id: r.id,
            received_at_ms: r.received_at_ms,
            sender: r.sender,
            control_id: r.control_id,
            reason: r.reason,
            sealed: r.sealed,
        })
    }
}
