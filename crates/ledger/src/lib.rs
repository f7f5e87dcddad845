//! Proof bundles: the leaf format shared by every event kind, and offline verification.
