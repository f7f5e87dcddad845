//! Storage ports: the record index, the ledger state and the types they exchange.
