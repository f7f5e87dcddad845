//! FHIR search over encrypted records: which parameters are served (`params`), the values a
//! resource holds for each (`extract`), the blind index tags filed for them (`blind`,
//! `tokens`), and requests read into tags to look up and checks to run on the decrypted
//! candidates (`query`, `date`, `normalize`).
//!
//! The database sees only tags: keyed HMACs of search values, never the values. Storage and the
//! query service use this crate; neither knows a search parameter by name.

pub mod blind;
pub mod date;
pub mod extract;
pub mod normalize;
pub mod params;
pub mod query;
pub mod tokens;

pub use blind::{IndexGenerations, IndexKey, TAG_LEN, Tag};
pub use params::{Kind, Param, params_of};
pub use query::{Check, Clause, IndexTerms, Link, Search, SearchError, Sort, Total, parse};
pub use tokens::index_tags;
