//! Ledger port and the in-process EVM chain (revm) that executes the committed RecordLog and Roles contracts.
