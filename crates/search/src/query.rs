//! A search request read into what the index looks up and what is checked exactly afterwards.
//!
//! Repeated parameters are ANDed, comma-separated values ORed (R4 §3.1.1.3). Every parameter
//! becomes a [`Clause`]: the tags of which a matching resource holds at least one (or, negated,
//! none), and, where tags only narrow (dates, long prefixes, `:contains`), a [`Check`] run on the
//! decrypted resource.

use serde_json::Value;

use crate::blind::{Form, IndexKey, Tag};
use crate::date::{self, DateTest, Prefix, Range};
use crate::extract::{Values, values};
use crate::normalize::fold;
use crate::params::{Kind, Param, param, sortable};
use crate::tokens::{GRAM, MAX_PREFIX};

/// Most entries one page holds.
pub const MAX_COUNT: u32 = 1000;
/// Entries per page without `_count`.
pub const DEFAULT_COUNT: u32 = 50;

/// Why a request cannot be searched.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SearchError {
    /// A parameter (or modifier) this server does not serve on the type.
    #[error("unknown or unsupported search parameter '{0}'")]
    Unknown(String),
    /// A served parameter with a value it cannot take.
    #[error("{0}")]
    Invalid(String),
}

impl medledger_error::Categorized for SearchError {
    fn category(&self) -> medledger_error::Category {
        medledger_error::Category::Invalid
    }
}

/// One ANDed condition.
#[derive(Debug, Clone, PartialEq)]
pub struct Clause {
    /// The parameter, for messages.
    pub param: String,
    /// A match holds at least one of these tags (none of them, when `negate`).
    pub any_of: Vec<Tag>,
    /// Whether a match must hold none of `any_of`.
    pub negate: bool,
    /// What the decrypted resource must satisfy as well, where tags only narrow.
    pub check: Option<Check>,
}

/// A test on the decrypted resource.
#[derive(Debug, Clone, PartialEq)]
pub enum Check {
    /// Some value satisfies one of the tests.
    Dates(&'static Param, Vec<DateTest>),
    /// Some folded value starts with one of the prefixes.
    Prefix(&'static Param, Vec<String>),
    /// Some folded value contains one of the needles.
    Contains(&'static Param, Vec<String>),
}

impl Check {
    /// Whether `resource` satisfies the check.
    pub fn matches(&self, resource: &Value) -> bool {
        match self {
            Check::Dates(p, tests) => match values(resource, p) {
                Values::Dates(ds) => ds.iter().any(|d| tests.iter().any(|t| t.matches(*d))),
                _ => false,
            },
            Check::Prefix(p, wanted) | Check::Contains(p, wanted) => {
                let Values::Strings(ss) = values(resource, p) else {
                    return false;
                };
                let prefix = matches!(self, Check::Prefix(..));
                ss.iter().map(|s| fold(s)).any(|f| {
                    wanted.iter().any(|w| {
                        if prefix {
                            f.starts_with(w.as_str())
                        } else {
                            f.contains(w.as_str())
                        }
                    })
                })
            }
        }
    }
}

/// `_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Total {
    /// Counted exactly (the default: hidden records are never counted).
    #[default]
    Accurate,
    /// Not reported.
    None,
}

/// `_sort`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sort {
    /// `_lastUpdated`, `_id` or a date parameter of the type.
    pub key: String,
    /// `-` before the key.
    pub descending: bool,
}

impl Default for Sort {
    fn default() -> Self {
        Self {
            key: "_lastUpdated".to_owned(),
            descending: false,
        }
    }
}

impl Sort {
    /// Whether the sort key is stored in clear (version metadata), so the index sorts.
    pub fn in_index(&self) -> bool {
        matches!(self.key.as_str(), "_lastUpdated" | "_id")
    }
}

/// `_include` or `_revinclude`: `Source:param`, optionally `:Target`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Link {
    /// The resource type holding the reference.
    pub source: String,
    /// The reference parameter.
    pub param: &'static Param,
    /// The referenced type, when narrowed.
    pub target: Option<String>,
}

/// A parsed search.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Search {
    /// The type searched.
    pub resource_type: String,
    /// ANDed conditions answered by the tags (and checks).
    pub clauses: Vec<Clause>,
    /// `_id`: each an OR of ids, ANDed.
    pub ids: Vec<Vec<String>>,
    /// `_lastUpdated`: each an OR of tests, ANDed; answered from the version metadata.
    pub last_updated: Vec<Vec<DateTest>>,
    /// `_count`.
    pub count: u32,
    /// `_total`.
    pub total: Total,
    /// `_sort` (one key).
    pub sort: Sort,
    /// `_summary=count`: the total only.
    pub summary_count: bool,
    /// `_elements`.
    pub elements: Option<Vec<String>>,
    /// `_include`.
    pub include: Vec<Link>,
    /// `_revinclude`.
    pub revinclude: Vec<Link>,
    /// `_page`: where the page starts (an opaque cursor from a previous page's links).
    pub page: Option<String>,
    /// Parameters ignored under `Prefer: handling=lenient`, with why.
    pub ignored: Vec<String>,
}

/// What the index itself answers of a search: tag sets to hold one of (or none of) and ids.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct IndexTerms {
    /// Each: the record holds at least one of these tags.
    pub all_of: Vec<Vec<Tag>>,
    /// Each: the record holds none of these tags.
    pub none_of: Vec<Vec<Tag>>,
    /// `_id`s (their ANDed ORs intersected), when given.
    pub ids: Option<Vec<String>>,
}

impl Search {
    /// The terms the index answers.
    pub fn index_terms(&self) -> IndexTerms {
        let mut t = IndexTerms::default();
        for c in &self.clauses {
            if c.negate {
                t.none_of.push(c.any_of.clone());
            } else {
                t.all_of.push(c.any_of.clone());
            }
        }
        t.ids = self.ids.split_first().map(|(first, rest)| {
            first
                .iter()
                .filter(|id| rest.iter().all(|r| r.contains(id)))
                .cloned()
                .collect()
        });
        t
    }

    /// Whether the index answers this search exactly, with nothing to check on plaintext and
    /// no result control: what conditional interactions may use as criteria.
    pub fn exact_criteria(&self) -> bool {
        !self.needs_plaintext()
            && self.last_updated.is_empty()
            && (!self.clauses.is_empty() || !self.ids.is_empty())
            && self.include.is_empty()
            && self.revinclude.is_empty()
            && self.elements.is_none()
            && self.page.is_none()
            && !self.summary_count
    }

    /// Whether some clause needs the decrypted resource.
    pub fn needs_plaintext(&self) -> bool {
        self.clauses.iter().any(|c| c.check.is_some()) || !self.sort.in_index()
    }

    /// Whether `resource` passes every check.
    pub fn checks_pass(&self, resource: &Value) -> bool {
        self.clauses
            .iter()
            .filter_map(|c| c.check.as_ref())
            .all(|c| c.matches(resource))
    }

    /// Whether a version last updated at `instant` passes the `_lastUpdated` tests.
    pub fn last_updated_passes(&self, instant: &str) -> bool {
        if self.last_updated.is_empty() {
            return true;
        }
        let Ok(r) = date::parse_value(instant) else {
            return false;
        };
        self.last_updated
            .iter()
            .all(|any| any.iter().any(|t| t.matches(r)))
    }

    /// Whether `id` passes the `_id` tests.
    pub fn id_passes(&self, id: &str) -> bool {
        self.ids.iter().all(|any| any.iter().any(|i| i == id))
    }

    /// The sort key of a decrypted resource for a date `_sort`: its earliest start ascending,
    /// its latest end descending; `None` without a value (sorted last).
    pub fn date_sort_key(&self, resource: &Value) -> Option<i64> {
        let p = param(&self.resource_type, &self.sort.key)?;
        let Values::Dates(ds) = values(resource, p) else {
            return None;
        };
        if self.sort.descending {
            ds.iter().map(|d| d.end).max()
        } else {
            ds.iter().map(|d| d.start).min()
        }
    }
}

/// Reads `pairs` (the query string or form body, in order) as a search of `resource_type`.
/// `lenient`: unknown parameters are ignored and named in [`Search::ignored`] instead of
/// refused.
pub fn parse(
    key: &IndexKey,
    resource_type: &str,
    pairs: &[(String, String)],
    lenient: bool,
) -> Result<Search, SearchError> {
    let mut s = Search {
        resource_type: resource_type.to_owned(),
        count: DEFAULT_COUNT,
        ..Search::default()
    };
    for (name, value) in pairs {
        match parse_one(key, &mut s, name, value) {
            Ok(()) => {}
            Err(SearchError::Unknown(n)) if lenient => s.ignored.push(n),
            Err(e) => return Err(e),
        }
    }
    Ok(s)
}

fn invalid(msg: impl Into<String>) -> SearchError {
    SearchError::Invalid(msg.into())
}

fn parse_one(key: &IndexKey, s: &mut Search, name: &str, value: &str) -> Result<(), SearchError> {
    let rt = s.resource_type.clone();
    match name {
        "_count" => {
            let n: u32 = value
                .parse()
                .map_err(|_| invalid("_count must be a non-negative number"))?;
            s.count = n.min(MAX_COUNT);
            if n == 0 {
                s.summary_count = true;
            }
            return Ok(());
        }
        "_total" => {
            s.total = match value {
                "accurate" | "estimate" => Total::Accurate,
                "none" => Total::None,
                _ => return Err(invalid("_total must be none, estimate or accurate")),
            };
            return Ok(());
        }
        "_summary" => {
            match value {
                "count" => s.summary_count = true,
                "false" => {}
                _ => return Err(SearchError::Unknown(format!("_summary={value}"))),
            }
            return Ok(());
        }
        "_sort" => {
            let keys: Vec<&str> = value.split(',').collect();
            if keys.len() != 1 {
                return Err(SearchError::Unknown(
                    "_sort with more than one key".to_owned(),
                ));
            }
            let (descending, key) = match keys[0].strip_prefix('-') {
                Some(k) => (true, k),
                None => (false, keys[0]),
            };
            if !sortable(&rt, key) {
                return Err(SearchError::Unknown(format!("_sort={key}")));
            }
            s.sort = Sort {
                key: key.to_owned(),
                descending,
            };
            return Ok(());
        }
        "_elements" => {
            s.elements = Some(
                value
                    .split(',')
                    .map(|e| e.trim().to_owned())
                    .filter(|e| !e.is_empty())
                    .collect(),
            );
            return Ok(());
        }
        "_include" | "_revinclude" => {
            let link = parse_link(value)?;
            if name == "_include" {
                if link.source != rt {
                    return Err(invalid(format!("_include={value} does not start at {rt}")));
                }
                s.include.push(link);
            } else {
                s.revinclude.push(link);
            }
            return Ok(());
        }
        "_page" => {
            s.page = Some(value.to_owned());
            return Ok(());
        }
        // The response format is always JSON; pretty-printing is the client's affair.
        "_format" | "_pretty" => return Ok(()),
        _ => {}
    }
    let (base, modifier) = match name.split_once(':') {
        Some((b, m)) => (b, Some(m)),
        None => (name, None),
    };
    let alternatives: Vec<&str> = split_or(value);
    if alternatives.iter().any(|a| a.is_empty()) {
        return Err(invalid(format!("{name} has an empty value")));
    }
    match base {
        "_id" if modifier.is_none() => {
            s.ids
                .push(alternatives.iter().map(|v| (*v).to_owned()).collect());
            return Ok(());
        }
        "_lastUpdated" if modifier.is_none() => {
            s.last_updated.push(
                alternatives
                    .iter()
                    .map(|v| date_test(name, v))
                    .collect::<Result<_, _>>()?,
            );
            return Ok(());
        }
        _ => {}
    }
    let p = param(&rt, base).ok_or_else(|| SearchError::Unknown(name.to_owned()))?;
    let tag = |form, v: &str| key.tag(&rt, p.name, form, v);
    if modifier == Some("missing") {
        let missing = match value {
            "true" => true,
            "false" => false,
            _ => return Err(invalid(format!("{name} must be true or false"))),
        };
        if crate::params::is_required(&rt, p.name) {
            // Every stored version has it: `true` matches nothing (a clause with no tag to
            // find), `false` adds no condition.
            if missing {
                s.clauses.push(Clause {
                    param: name.to_owned(),
                    any_of: Vec::new(),
                    negate: false,
                    check: None,
                });
            }
            return Ok(());
        }
        s.clauses.push(Clause {
            param: name.to_owned(),
            any_of: vec![tag(Form::Present, "")],
            negate: missing,
            check: None,
        });
        return Ok(());
    }
    let unsupported = || SearchError::Unknown(name.to_owned());
    let clause = |any_of, negate, check| Clause {
        param: name.to_owned(),
        any_of,
        negate,
        check,
    };
    match p.kind {
        Kind::Token => {
            let negate = match modifier {
                None => false,
                Some("not") => true,
                Some(_) => return Err(unsupported()),
            };
            let tags = alternatives
                .iter()
                .map(|v| token_tag(v, &tag))
                .collect::<Result<_, _>>()?;
            s.clauses.push(clause(tags, negate, None));
        }
        Kind::Reference => {
            let narrowed = match modifier {
                None => None,
                Some(t) if p.targets.contains(&t) => Some(t),
                Some(_) => return Err(unsupported()),
            };
            let mut tags = Vec::new();
            for v in &alternatives {
                for r in reference_values(p, narrowed, v)? {
                    tags.push(reference_tag(key, &rt, p, &r));
                }
            }
            s.clauses.push(clause(tags, false, None));
        }
        Kind::String => match modifier {
            None => {
                let folded: Vec<String> = alternatives.iter().map(|v| fold(v)).collect();
                let long = folded.iter().any(|f| f.chars().count() > MAX_PREFIX);
                let tags = folded
                    .iter()
                    .map(|f| {
                        tag(
                            Form::Prefix,
                            &f.chars().take(MAX_PREFIX).collect::<String>(),
                        )
                    })
                    .collect();
                let check = long.then(|| Check::Prefix(p, folded.clone()));
                s.clauses.push(clause(tags, false, check));
            }
            Some("exact") => {
                let tags = alternatives.iter().map(|v| tag(Form::Exact, v)).collect();
                s.clauses.push(clause(tags, false, None));
            }
            Some("contains") => {
                let folded: Vec<String> = alternatives.iter().map(|v| fold(v)).collect();
                let grams: Vec<Vec<String>> = folded.iter().map(|f| grams_of(f)).collect();
                let exact = grams
                    .iter()
                    .zip(&folded)
                    .all(|(g, f)| g.len() == 1 && g[0] == *f);
                if let [only] = grams.as_slice() {
                    // One needle: every run of it must be there.
                    for g in only {
                        s.clauses
                            .push(clause(vec![tag(Form::Substring, g)], false, None));
                    }
                    if !exact && let Some(last) = s.clauses.last_mut() {
                        last.check = Some(Check::Contains(p, folded));
                    }
                } else {
                    // Several: each is found by its first run, then checked.
                    let tags = grams.iter().map(|g| tag(Form::Substring, &g[0])).collect();
                    let check = (!exact).then(|| Check::Contains(p, folded.clone()));
                    s.clauses.push(clause(tags, false, check));
                }
            }
            Some(_) => return Err(unsupported()),
        },
        Kind::Date => {
            if modifier.is_some() {
                return Err(unsupported());
            }
            let tests: Vec<DateTest> = alternatives
                .iter()
                .map(|v| date_test(name, v))
                .collect::<Result<_, _>>()?;
            let mut units: Vec<String> = Vec::new();
            let mut anything = false;
            for t in &tests {
                match t.window() {
                    Some(w) => units.extend(date::cover(w)),
                    None => anything = true,
                }
            }
            // `ne` can match any value: only the presence of one narrows.
            let tags = if anything {
                vec![tag(Form::Present, "")]
            } else {
                units.sort_unstable();
                units.dedup();
                units.iter().map(|u| tag(Form::DateUnit, u)).collect()
            };
            s.clauses
                .push(clause(tags, false, Some(Check::Dates(p, tests))));
        }
    }
    Ok(())
}

/// Splits on commas not escaped with `\`.
fn split_or(value: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut start = 0;
    let bytes = value.as_bytes();
    for (i, b) in bytes.iter().enumerate() {
        if *b == b',' && (i == 0 || bytes[i - 1] != b'\\') {
            out.push(&value[start..i]);
            start = i + 1;
        }
    }
    out.push(&value[start..]);
    out
}

fn unescape(v: &str) -> String {
    v.replace("\\,", ",")
        .replace("\\|", "|")
        .replace("\\$", "$")
}

fn token_tag(v: &str, tag: &impl Fn(Form, &str) -> Tag) -> Result<Tag, SearchError> {
    let v = unescape(v);
    Ok(match v.split_once('|') {
        None => tag(Form::Code, &v),
        Some(("", code)) => tag(Form::NoSystem, code),
        Some((system, "")) => tag(Form::System, system),
        Some((system, code)) => tag(Form::SystemCode, &format!("{system}|{code}")),
    })
}

/// The tag a record of `resource_type` referring to `reference` (`Type/id`) through `p` holds:
/// filed under the broader parameter when `p` narrows one (`params::filed_under`). Searches and
/// `_revinclude` look references up by it.
pub fn reference_tag(
    key: &IndexKey,
    resource_type: &str,
    p: &'static Param,
    reference: &str,
) -> Tag {
    key.tag(
        resource_type,
        crate::params::filed_under(resource_type, p).name,
        Form::Reference,
        reference,
    )
}

/// The `Type/id`s a reference search value stands for.
fn reference_values(
    p: &Param,
    narrowed: Option<&str>,
    v: &str,
) -> Result<Vec<String>, SearchError> {
    if let Some(r) = crate::extract::normalize_reference(v) {
        let rt = r.split('/').next().unwrap_or_default();
        if !p.targets.contains(&rt) || narrowed.is_some_and(|n| n != rt) {
            return Err(invalid(format!(
                "{} cannot refer to {rt} (it refers to {})",
                p.name,
                p.targets.join(", ")
            )));
        }
        return Ok(vec![r]);
    }
    if v.contains('/') || v.contains(':') {
        return Err(invalid(format!(
            "'{v}' is not a reference this server holds"
        )));
    }
    // A bare id: any type the parameter may refer to (just the one when narrowed).
    Ok(match narrowed {
        Some(t) => vec![format!("{t}/{v}")],
        None => p.targets.iter().map(|t| format!("{t}/{v}")).collect(),
    })
}

fn date_test(name: &str, v: &str) -> Result<DateTest, SearchError> {
    let (prefix, rest) = Prefix::split(v);
    let range: Range = date::parse_value(rest).map_err(|e| invalid(format!("{name}: {e}")))?;
    Ok(DateTest { prefix, range })
}

/// The runs a `:contains` needle is looked up by: itself when at most [`GRAM`] characters, else
/// every run of [`GRAM`].
fn grams_of(f: &str) -> Vec<String> {
    let chars: Vec<char> = f.chars().collect();
    if chars.len() <= GRAM {
        return vec![f.to_owned()];
    }
    let mut out: Vec<String> = chars.windows(GRAM).map(|w| w.iter().collect()).collect();
    out.sort_unstable();
    out.dedup();
    out
}

fn parse_link(value: &str) -> Result<Link, SearchError> {
    let mut parts = value.split(':');
    let (Some(source), Some(name)) = (parts.next(), parts.next()) else {
        return Err(invalid(format!("'{value}' is not Type:parameter[:Target]")));
    };
    let target = parts.next().map(str::to_owned);
    let p = param(source, name)
        .filter(|p| p.kind == Kind::Reference)
        .ok_or_else(|| SearchError::Unknown(format!("_include/_revinclude {value}")))?;
    if let Some(t) = &target
        && !p.targets.contains(&t.as_str())
    {
        return Err(invalid(format!("{source}:{name} does not refer to {t}")));
    }
    Ok(Link {
        source: source.to_owned(),
        param: p,
        target,
    })
}

#[cfg(test)]
mod tests {
    use medledger_crypto::Key;
    use serde_json::json;

    use super::*;
    use crate::tokens::index_tags;

    fn key() -> IndexKey {
        IndexKey::derive(&Key::from_bytes([3; 32]), 1)
    }

    fn pairs(q: &str) -> Vec<(String, String)> {
        q.split('&')
            .filter(|kv| !kv.is_empty())
            .map(|kv| {
                let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
                (k.to_owned(), v.to_owned())
            })
            .collect()
    }

    /// Whether the parsed search selects `resource` by its tags and checks alone.
    fn selects(rt: &str, q: &str, resource: &serde_json::Value) -> bool {
        let k = key();
        let s = parse(&k, rt, &pairs(q), false).expect(q);
        let tags = index_tags(std::slice::from_ref(&k), rt, resource);
        s.clauses.iter().all(|c| {
            let any = c.any_of.iter().any(|t| tags.contains(t));
            any != c.negate
        }) && s.checks_pass(resource)
    }

    #[test]
    fn token_forms_and_modifiers() {
        let o = json!({"resourceType": "Observation", "status": "final",
            "code": {"coding": [{"system": "http://loinc.org", "code": "8302-2"}]}});
        assert!(selects("Observation", "code=8302-2", &o));
        assert!(selects("Observation", "code=http://loinc.org|8302-2", &o));
        assert!(selects("Observation", "code=http://loinc.org|", &o));
        assert!(!selects("Observation", "code=|8302-2", &o));
        assert!(selects("Observation", "status=|final", &o));
        assert!(selects("Observation", "code=x,8302-2", &o));
        assert!(!selects("Observation", "code=x&code=8302-2", &o));
        assert!(selects("Observation", "code:not=x", &o));
        assert!(!selects("Observation", "code:not=8302-2", &o));
        assert!(selects("Observation", "category:missing=true", &o));
        assert!(!selects("Observation", "code:missing=true", &o));
        assert!(selects("Observation", "code:missing=false", &o));
        assert!(selects(
            "Observation",
            "category:missing=true&code:missing=false",
            &o
        ));
    }

    #[test]
    fn strings_prefix_exact_contains() {
        let p = json!({"resourceType": "Patient", "name": [{"family": "Ñúñez-García", "given": ["José"]}]});
        assert!(selects("Patient", "family=nun", &p));
        assert!(selects("Patient", "name=JOSE", &p));
        assert!(!selects("Patient", "family=garcia", &p));
        assert!(selects("Patient", "family:contains=garc", &p));
        assert!(selects("Patient", "family:contains=z-g", &p));
        assert!(!selects("Patient", "family:contains=garz", &p));
        assert!(selects("Patient", "family:exact=Ñúñez-García", &p));
        assert!(!selects("Patient", "family:exact=nunez-garcia", &p));
    }

    #[test]
    fn dates_with_prefixes() {
        let o = json!({"resourceType": "Observation", "effectiveDateTime": "2020-03-15T10:00:00Z"});
        for (q, want) in [
            ("date=2020", true),
            ("date=2020-03-15", true),
            ("date=2020-03-16", false),
            ("date=ge2020-03-15", true),
            ("date=gt2020-03-15", false),
            ("date=lt2020-03-16", true),
            ("date=le2020-03-14", false),
            ("date=ne2020-03-16", true),
            ("date=sa2020-03-14T23:00:00Z", true),
            ("date=eb2020-03-15T09:00:00Z", false),
            ("date=ge2020-01-01&date=lt2021-01-01", true),
            ("date=2019,2020", true),
        ] {
            assert_eq!(selects("Observation", q, &o), want, "{q}");
        }
    }

    #[test]
    fn references_and_control() {
        let o = json!({"resourceType": "Observation", "subject": {"reference": "Patient/p1"},
            "encounter": {"reference": "Encounter/e1"}});
        assert!(selects("Observation", "patient=p1", &o));
        assert!(selects("Observation", "patient=Patient/p1", &o));
        assert!(selects("Observation", "subject:Patient=p1", &o));
        assert!(selects("Observation", "encounter=e1", &o));
        assert!(!selects("Observation", "subject=p2", &o));
        assert!(selects("Observation", "patient:missing=false", &o));
        // `patient` is filed under `subject`: one reference tag, found by both parameters; a
        // Group subject is no patient.
        let k = key();
        let tags = index_tags(std::slice::from_ref(&k), "Observation", &o);
        assert!(!tags.contains(&k.tag("Observation", "patient", Form::Reference, "Patient/p1")));
        assert!(tags.contains(&k.tag("Observation", "subject", Form::Reference, "Patient/p1")));
        let g = json!({"resourceType": "Observation", "subject": {"reference": "Group/p1"}});
        assert!(selects("Observation", "subject=p1", &g));
        assert!(!selects("Observation", "patient=p1", &g));
        assert!(selects("Observation", "patient:missing=true", &g));
        assert!(!selects("Observation", "subject:missing=true", &g));
        assert!(parse(&k, "Observation", &pairs("patient=Encounter/e1"), false).is_err());
        assert_eq!(
            parse(&k, "Observation", &pairs("bogus=1"), false),
            Err(SearchError::Unknown("bogus".into()))
        );
        let lenient =
            parse(&k, "Observation", &pairs("bogus=1&code:text=x"), true).expect("lenient");
        assert_eq!(
            lenient.ignored,
            vec!["bogus".to_owned(), "code:text".to_owned()]
        );
        let s = parse(
            &k,
            "Patient",
            &pairs("_count=5&_sort=-birthdate&_total=none&_revinclude=Observation:patient"),
            false,
        )
        .expect("control");
        assert_eq!(
            (s.count, s.total, s.sort.descending),
            (5, Total::None, true)
        );
        assert!(!s.sort.in_index());
        assert_eq!(s.revinclude[0].source, "Observation");
        assert!(parse(&k, "Patient", &pairs("_sort=code"), false).is_err());
        assert!(parse(&k, "Observation", &pairs("date=2020-99"), false).is_err());
    }
}
