-- Checkpoints of the private chain's tree heads anchored on the public chain (ledger writer).
CREATE TABLE ledger.anchors (
    tree_size BIGINT PRIMARY KEY,
    root BYTEA NOT NULL,
    source_block_number BIGINT NOT NULL,
    source_block_hash TEXT NOT NULL,
    chain_id BIGINT NOT NULL,
    contract TEXT NOT NULL,
    chain_index BIGINT NOT NULL,
    block_number BIGINT NOT NULL,
    block_hash TEXT NOT NULL,
    tx_hash TEXT NOT NULL
);
