-- Record index: ids, versions, CIDs, wrapped keys and commitments only; never plaintext.
CREATE TABLE record_versions (
    resource_type TEXT NOT NULL,
    id TEXT NOT NULL,
    version INTEGER NOT NULL,
    cid TEXT,
    wrapped_key BLOB NOT NULL,
    owner TEXT NOT NULL,
    commitment BLOB,
    deleted INTEGER NOT NULL,
    last_updated TEXT NOT NULL,
    actor TEXT NOT NULL,
    PRIMARY KEY (resource_type, id, version)
) WITHOUT ROWID;

CREATE TABLE record_heads (
    resource_type TEXT NOT NULL,
    id TEXT NOT NULL,
    version INTEGER NOT NULL,
    deleted INTEGER NOT NULL,
    owner TEXT NOT NULL,
    PRIMARY KEY (resource_type, id)
) WITHOUT ROWID;

-- Per-owner keys wrapped by the master key. Deleting a row crypto-shreds that owner's records.
CREATE TABLE owner_keys (
    owner TEXT PRIMARY KEY,
    wrapped BLOB NOT NULL
) WITHOUT ROWID;

-- The ledger writer's Merkle log and the tree heads it committed to the chain.
CREATE TABLE ledger_leaves (
    leaf_index INTEGER PRIMARY KEY,
    kind INTEGER NOT NULL,
    subject TEXT NOT NULL,
    version INTEGER NOT NULL,
    leaf BLOB NOT NULL,
    UNIQUE (kind, subject, version)
);

CREATE TABLE ledger_tree_heads (
    tree_size INTEGER PRIMARY KEY,
    root BLOB NOT NULL,
    chain_id INTEGER NOT NULL,
    contract TEXT NOT NULL,
    chain_index INTEGER NOT NULL,
    block_number INTEGER NOT NULL,
    block_hash TEXT NOT NULL,
    tx_hash TEXT NOT NULL
);
