-- Checkpoints of the private chain's tree heads anchored on the public chain.
CREATE TABLE ledger_anchors (
    tree_size INTEGER PRIMARY KEY,
    root BLOB NOT NULL,
    source_block_number INTEGER NOT NULL,
    source_block_hash TEXT NOT NULL,
    chain_id INTEGER NOT NULL,
    contract TEXT NOT NULL,
    chain_index INTEGER NOT NULL,
    block_number INTEGER NOT NULL,
    block_hash TEXT NOT NULL,
    tx_hash TEXT NOT NULL
);
