//! Event bus port and the embedded durable bus with per-key ordering and committed consumer offsets.
