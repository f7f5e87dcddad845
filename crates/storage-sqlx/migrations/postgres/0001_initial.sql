-- One schema per service: ingest owns the record index, owner keys and its outbox; the ledger
-- writer owns the Merkle log and tree heads. Never plaintext.
CREATE SCHEMA IF NOT EXISTS ingest;
CREATE SCHEMA IF NOT EXISTS ledger;

CREATE TABLE ingest.record_versions (
    resource_type TEXT NOT NULL,
    id TEXT NOT NULL,
    version BIGINT NOT NULL,
    cid TEXT,
    wrapped_key BYTEA NOT NULL,
    owner TEXT NOT NULL,
    commitment BYTEA,
    deleted BOOLEAN NOT NULL,
    last_updated TEXT NOT NULL,
    actor TEXT NOT NULL,
    PRIMARY KEY (resource_type, id, version)
);

CREATE TABLE ingest.record_heads (
    resource_type TEXT NOT NULL,
    id TEXT NOT NULL,
    version BIGINT NOT NULL,
    deleted BOOLEAN NOT NULL,
    owner TEXT NOT NULL,
    PRIMARY KEY (resource_type, id)
);

CREATE TABLE ingest.owner_keys (
    owner TEXT PRIMARY KEY,
    wrapped BYTEA NOT NULL
);

-- Transactional outbox: written in the same transaction as the index rows; a relay publishes
-- the rows in `seq` order and marks them published.
CREATE TABLE ingest.outbox (
    seq BIGSERIAL PRIMARY KEY,
    topic TEXT NOT NULL,
    key BYTEA NOT NULL,
    payload BYTEA NOT NULL,
    published_at TIMESTAMPTZ
);
CREATE INDEX outbox_unpublished ON ingest.outbox (seq) WHERE published_at IS NULL;

CREATE TABLE ledger.leaves (
    leaf_index BIGINT PRIMARY KEY,
    kind SMALLINT NOT NULL,
    subject TEXT NOT NULL,
    version BIGINT NOT NULL,
    leaf BYTEA NOT NULL,
    UNIQUE (kind, subject, version)
);

CREATE TABLE ledger.tree_heads (
    tree_size BIGINT PRIMARY KEY,
    root BYTEA NOT NULL,
    chain_id BIGINT NOT NULL,
    contract TEXT NOT NULL,
    chain_index BIGINT NOT NULL,
    block_number BIGINT NOT NULL,
    block_hash TEXT NOT NULL,
    tx_hash TEXT NOT NULL
);
