//! Protobuf event payloads from proto/, compiled with prost.
