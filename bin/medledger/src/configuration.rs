//! Loading a service's configuration: defaults, then an optional TOML file, then
//! `MEDLEDGER_<SERVICE>_…` environment variables, which win. Unknown keys are refused, in the
//! file and in the environment, so a typo fails at start-up instead of silently falling back to
//! a default. Each service's `Config` lives beside the code it configures
//! (`medledger_ingest::Config`, …).
//!
//! Environment names: the service prefix, `_`, then the key path with `__` between levels, in
//! capitals: `postgres.url` of ingest is `MEDLEDGER_INGEST_POSTGRES__URL`. `medledger config
//! keys SERVICE` lists them all; docs/configuration.md documents each.

use std::path::Path;

use anyhow::Context;
use serde::Serialize;
use serde::de::DeserializeOwned;

pub(crate) use medledger_consent::Config as ConsentServiceConfig;
pub(crate) use medledger_gateway::Config as GatewayServiceConfig;
pub(crate) use medledger_ingest::Config as IngestServiceConfig;
pub(crate) use medledger_ledger_writer::Config as LedgerWriterServiceConfig;
pub(crate) use medledger_query::Config as QueryServiceConfig;

/// Loads `T`: defaults, then the TOML file if given, then `MEDLEDGER_<PREFIX>_…` variables.
pub(crate) fn load<T: DeserializeOwned>(prefix: &str, file: Option<&Path>) -> anyhow::Result<T> {
    load_from(prefix, file, None)
}

/// [`load`] with the environment given as a map (`None`: the process environment).
fn load_from<T: DeserializeOwned>(
    prefix: &str,
    file: Option<&Path>,
    environment: Option<config::Map<String, String>>,
) -> anyhow::Result<T> {
    let mut builder = config::Config::builder();
    if let Some(f) = file {
        builder = builder.add_source(
            config::File::from(f)
                .format(config::FileFormat::Toml)
                .required(true),
        );
    }
    let env = config::Environment::with_prefix(&format!("MEDLEDGER_{prefix}"))
        .prefix_separator("_")
        .separator("__")
        .try_parsing(true)
        .source(environment);
    builder
        .add_source(env)
        .build()
        .context("reading the configuration")?
        .try_deserialize()
        .with_context(|| {
            format!(
                "invalid configuration (see `medledger config keys {}`)",
                prefix.to_lowercase().replace('_', "-")
            )
        })
}

/// Every configuration key of `T` as its environment variable name, e.g.
/// `MEDLEDGER_INGEST_POSTGRES__URL`, with the default value.
pub(crate) fn env_keys<T: Serialize + Default>(prefix: &str) -> Vec<(String, String)> {
    fn walk(prefix: &str, v: &serde_json::Value, out: &mut Vec<(String, String)>) {
        match v {
            serde_json::Value::Object(m) => {
                for (k, v) in m {
                    walk(&format!("{prefix}__{}", k.to_uppercase()), v, out);
                }
            }
            serde_json::Value::String(s) => out.push((prefix.to_owned(), s.clone())),
            other => out.push((prefix.to_owned(), other.to_string())),
        }
    }
    let mut out = Vec::new();
    let root = serde_json::to_value(T::default()).unwrap_or_default();
    if let serde_json::Value::Object(m) = root {
        for (k, v) in m {
            walk(
                &format!("MEDLEDGER_{prefix}_{}", k.to_uppercase()),
                &v,
                &mut out,
            );
        }
    }
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Option<config::Map<String, String>> {
        Some(
            pairs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
        )
    }

    /// Every key of every service, as `medledger config keys` lists them.
    fn all_keys() -> Vec<String> {
        [
            env_keys::<IngestServiceConfig>("INGEST"),
            env_keys::<QueryServiceConfig>("QUERY"),
            env_keys::<ConsentServiceConfig>("CONSENT"),
            env_keys::<LedgerWriterServiceConfig>("LEDGER_WRITER"),
            env_keys::<GatewayServiceConfig>("GATEWAY"),
        ]
        .into_iter()
        .flatten()
        .map(|(k, _)| k)
        .collect()
    }

    #[test]
    fn docs_configuration_lists_exactly_the_keys_that_exist() {
        let doc = include_str!("../../../docs/configuration.md");
        let keys = all_keys();
        for k in &keys {
            assert!(
                doc.contains(&format!("`{k}`")),
                "{k} is not documented in docs/configuration.md"
            );
        }
        for word in doc.split('`') {
            let service_var = ["INGEST", "QUERY", "CONSENT", "LEDGER_WRITER", "GATEWAY"]
                .iter()
                .any(|s| word.starts_with(&format!("MEDLEDGER_{s}_")));
            if service_var && !word.contains(' ') {
                assert!(
                    keys.iter().any(|k| k == word),
                    "docs/configuration.md names {word}, which is no configuration key"
                );
            }
        }
    }

    #[test]
    fn environment_overrides_the_file_and_unknown_keys_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("ingest.toml");
        std::fs::write(
            &file,
            "relay_batch = 7\n[postgres]\nurl = \"postgres://file/db\"\nmax_connections = 3\n",
        )
        .unwrap();
        let cfg: IngestServiceConfig = load_from(
            "INGEST",
            Some(&file),
            env(&[("MEDLEDGER_INGEST_POSTGRES__URL", "postgres://env/db")]),
        )
        .unwrap();
        assert_eq!(
            cfg.postgres.url, "postgres://env/db",
            "the environment wins"
        );
        assert_eq!(
            cfg.postgres.max_connections, 3,
            "the file beats the default"
        );
        assert_eq!(cfg.relay_batch, 7);
        assert_eq!(
            cfg.kafka.partitions, 6,
            "untouched keys keep their defaults"
        );

        for (var, value) in [
            ("MEDLEDGER_INGEST_POSTGRES__ULR", "x"),
            ("MEDLEDGER_INGEST_NOPE", "1"),
            ("MEDLEDGER_INGEST_HTTP__LISTEN", "not an address"),
            ("MEDLEDGER_INGEST_RELAY_BATCH", "many"),
        ] {
            let r: anyhow::Result<IngestServiceConfig> =
                load_from("INGEST", None, env(&[(var, value)]));
            assert!(r.is_err(), "{var}={value} was accepted");
        }
        std::fs::write(&file, "[postgres]\nurll = \"x\"\n").unwrap();
        let r: anyhow::Result<IngestServiceConfig> = load_from("INGEST", Some(&file), env(&[]));
        assert!(r.is_err(), "an unknown key in the file was accepted");
        // Another service's variables are not this one's business.
        let cfg: GatewayServiceConfig = load_from(
            "GATEWAY",
            None,
            env(&[
                ("MEDLEDGER_INGEST_RELAY_BATCH", "9"),
                ("MEDLEDGER_GATEWAY_QUERY_URL", "http://q:1"),
            ]),
        )
        .unwrap();
        assert_eq!(cfg.query_url, "http://q:1");
    }
}
