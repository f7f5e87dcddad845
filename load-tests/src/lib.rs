//! Load driver for MedLedger: posts Synthea bundles and reports throughput.
