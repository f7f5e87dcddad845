//! Ledger writer: consumes record events, appends leaves to the Merkle log and commits tree heads to the chain.
