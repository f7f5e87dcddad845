//! Blind index tokens: keyed HMAC tags of search values, so the database can answer equality
//! without holding the values.
//!
//! A tag is `HMAC-SHA256(index key, type ‖ parameter ‖ form ‖ value)` truncated to 16 bytes,
//! every field length-prefixed. The index key is derived from the master key and a generation
//! number, apart from every data key, so rotating it (a new generation, then `reindex`) changes
//! every tag without touching a ciphertext.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use medledger_crypto::{Key, commitment, open, seal};
use sha2::Sha256;

/// Associated data of sealed page cursors.
const CURSOR_AAD: &[u8] = b"medledger/v1/search-cursor";

/// The index key generation a deployment starts with. Rotating the key means a new generation
/// and a `reindex` ([`IndexGenerations`]).
pub const GENERATION: u32 = 1;

/// Which index keys are in use (the `search_key` configuration section): searches look tags up
/// under `generation`; while a rotation is under way (`next_generation` set), every write also
/// files its tags under the next one, and `medledger reindex` files every record under both.
/// Then the servers move to the next generation and a last `reindex` drops the old tags
/// (architecture §4.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct IndexGenerations {
    /// The generation searches use.
    pub generation: u32,
    /// The generation being rotated to, also written; 0: none.
    pub next_generation: u32,
}

impl Default for IndexGenerations {
    fn default() -> Self {
        Self {
            generation: GENERATION,
            next_generation: 0,
        }
    }
}

impl IndexGenerations {
    /// Refuses a generation 0 or a next generation equal to the current one.
    pub fn check(&self) -> Result<(), String> {
        if self.generation == 0 {
            return Err("search_key.generation must be at least 1".into());
        }
        if self.next_generation == self.generation {
            return Err("search_key.next_generation must differ from generation".into());
        }
        Ok(())
    }

    /// The generations writes file tags under: the current one, then the next.
    pub fn written(&self) -> Vec<u32> {
        let mut g = vec![self.generation];
        if self.next_generation != 0 {
            g.push(self.next_generation);
        }
        g
    }
}

/// A blind index tag.
pub type Tag = [u8; TAG_LEN];

/// Bytes kept of each HMAC: 128 bits, so tags of different values do not collide in any store
/// this will see, while a tag alone says nothing more than a full HMAC would.
pub const TAG_LEN: usize = 16;

/// What kind of comparison a tag answers; part of the HMAC input, so the tag of a prefix never
/// equals the tag of a whole value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Form {
    /// A token's code alone.
    Code,
    /// A token's `system|code`.
    SystemCode,
    /// A token's code with no system (`|code`).
    NoSystem,
    /// A token's system (`system|`).
    System,
    /// A reference, `Type/id`.
    Reference,
    /// A folded string prefix.
    Prefix,
    /// A folded substring.
    Substring,
    /// A string exactly as written.
    Exact,
    /// A calendar unit of a date.
    DateUnit,
    /// The resource has some value for the parameter (for `:missing`).
    Present,
}

impl Form {
    fn byte(self) -> u8 {
        match self {
            Form::Code => 1,
            Form::SystemCode => 2,
            Form::NoSystem => 3,
            Form::System => 4,
            Form::Reference => 5,
            Form::Prefix => 6,
            Form::Substring => 7,
            Form::Exact => 8,
            Form::DateUnit => 9,
            Form::Present => 10,
        }
    }
}

/// The key tags are made with, and its HMAC state after the key (cloned for each tag, so the
/// key schedule is computed once, not per tag on the write path).
#[derive(Clone)]
pub struct IndexKey(Key, Hmac<Sha256>);

impl std::fmt::Debug for IndexKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("IndexKey(..)")
    }
}

impl IndexKey {
    /// The index key of `generation`, derived from the master key.
    pub fn derive(master: &Key, generation: u32) -> Self {
        let label = format!("medledger/v1/search-index-key/{generation}");
        let key = Key::from_bytes(commitment(master.expose(), label.as_bytes()));
        let mac = <Hmac<Sha256> as Mac>::new_from_slice(key.expose())
            .unwrap_or_else(|_| unreachable!("HMAC-SHA256 accepts keys of every length"));
        Self(key, mac)
    }

    /// The tag of `value` in `form` for `param` of `resource_type`.
    pub fn tag(&self, resource_type: &str, param: &str, form: Form, value: &str) -> Tag {
        let mut mac = self.1.clone();
        for part in [resource_type.as_bytes(), param.as_bytes(), value.as_bytes()] {
            mac.update(&(part.len() as u32).to_be_bytes());
            mac.update(part);
        }
        mac.update(&[form.byte()]);
        let full = mac.finalize().into_bytes();
        let mut tag = [0u8; TAG_LEN];
        tag.copy_from_slice(&full[..TAG_LEN]);
        tag
    }

    fn cursor_key(&self) -> Key {
        Key::from_bytes(commitment(
            self.0.expose(),
            b"medledger/v1/search-cursor-key",
        ))
    }

    /// `position` sealed for a page link: a cursor holds the sort key where a page starts
    /// (a date, for a date sort), which must not travel in clear through URLs and logs.
    pub fn seal_cursor(&self, position: &str) -> String {
        URL_SAFE_NO_PAD.encode(seal(&self.cursor_key(), CURSOR_AAD, position.as_bytes()))
    }

    /// The position a cursor from [`IndexKey::seal_cursor`] holds; `None` for anything else.
    pub fn open_cursor(&self, cursor: &str) -> Option<String> {
        let sealed = URL_SAFE_NO_PAD.decode(cursor).ok()?;
        let plain = open(&self.cursor_key(), CURSOR_AAD, &sealed).ok()?;
        String::from_utf8(plain.to_vec()).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_separate_types_parameters_forms_and_generations() {
        let master = Key::from_bytes([7; 32]);
        let k = IndexKey::derive(&master, 1);
        let t = k.tag("Observation", "code", Form::Code, "1234-5");
        assert_eq!(t, k.tag("Observation", "code", Form::Code, "1234-5"));
        assert_ne!(t, k.tag("Condition", "code", Form::Code, "1234-5"));
        assert_ne!(t, k.tag("Observation", "category", Form::Code, "1234-5"));
        assert_ne!(t, k.tag("Observation", "code", Form::NoSystem, "1234-5"));
        assert_ne!(
            t,
            IndexKey::derive(&master, 2).tag("Observation", "code", Form::Code, "1234-5")
        );
        // Length prefixes: moving a boundary changes the tag.
        assert_ne!(
            k.tag("ab", "c", Form::Code, "d"),
            k.tag("a", "bc", Form::Code, "d")
        );
    }

    #[test]
    fn cursors_round_trip_and_refuse_forgeries() {
        let k = IndexKey::derive(&Key::from_bytes([7; 32]), 1);
        let c = k.seal_cursor("f 2020-01-01 abc");
        assert!(!c.contains("2020"));
        assert_eq!(k.open_cursor(&c).as_deref(), Some("f 2020-01-01 abc"));
        assert_eq!(k.open_cursor("AAAA"), None);
        let other = IndexKey::derive(&Key::from_bytes([8; 32]), 1);
        assert_eq!(other.open_cursor(&c), None);
    }
}
