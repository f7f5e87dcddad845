//! FHIR search (`GET /{type}?…`, `POST /{type}/_search`, `GET /Patient/{id}/{type}?…`) over
//! the blind index, every result decided by the consent policy, checked against the ledger and
//! decrypted, and the whole search one AuditEvent.
//!
//! The index narrows by tags; what only plaintext can answer (dates to the millisecond, long
//! prefixes, `:contains`, a sort by a date) is checked on the decrypted candidates. A record
//! the caller may not read is dropped before anything is counted or paged, so hidden records
//! change neither `_total` nor the pages.

use std::collections::{HashMap, HashSet};

use medledger_access::{AccessError, AccessQuery, Interaction, Scopes};
use medledger_audit::{Action, Audit, Entry};
use medledger_auth::Caller;
use medledger_search::extract::{Values, values};
use medledger_search::query::reference_tag;
use medledger_search::{Link, Search, Total};
use medledger_storage_api::{IndexOrder, IndexQuery, IndexTag, Keyset, VersionRow};
use serde_json::Value;

use super::Query;
use super::read::categories_in;
use crate::QueryError;

/// Index rows read per round trip while walking a result.
const BATCH: u32 = 500;
/// Most matches a search sorted by a date (which only plaintext can order) may have.
pub const MAX_SORTED: usize = 10_000;
/// Most resources `_include` and `_revinclude` add to one page.
pub const MAX_INCLUDED: usize = 1_000;

/// A search as the HTTP edge received it.
#[derive(Debug, Clone)]
pub struct SearchRequest {
    /// The type searched.
    pub resource_type: String,
    /// `Patient/{id}/{type}`: the patient's compartment only.
    pub compartment: Option<String>,
    /// The parameters, in order (query string, then a `_search` form body).
    pub pairs: Vec<(String, String)>,
    /// `Prefer: handling=lenient`.
    pub lenient: bool,
}

/// One page of results.
#[derive(Debug, Clone, Default)]
pub struct Page {
    /// The matches on this page, in order (`_elements` applied).
    pub matches: Vec<Value>,
    /// Resources `_include`d or `_revinclude`d.
    pub included: Vec<Value>,
    /// How many matches there are in all (`_total=accurate`, the default).
    pub total: Option<usize>,
    /// Cursor of the next page.
    pub next: Option<String>,
    /// Cursor of the previous page.
    pub previous: Option<String>,
    /// Parameters ignored under lenient handling.
    pub ignored: Vec<String>,
    /// `_summary=count`: no entries.
    pub summary_count: bool,
    /// `_elements` was applied (entries are marked SUBSETTED).
    pub subsetted: bool,
}

/// A visible match, with its plaintext once it has been needed.
struct Candidate {
    row: VersionRow,
    resource: Option<Value>,
}

/// Where a page starts: after (or, for a previous page, before) a position of the order.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Cursor {
    forward: bool,
    key: Keyset,
}

impl Cursor {
    fn encode(&self) -> String {
        format!(
            "{}\n{}\n{}",
            if self.forward { "f" } else { "b" },
            self.key.last_updated,
            self.key.id
        )
    }

    fn decode(s: &str) -> Option<Self> {
        let mut parts = s.splitn(3, '\n');
        let forward = match parts.next()? {
            "f" => true,
            "b" => false,
            _ => return None,
        };
        Some(Self {
            forward,
            key: Keyset {
                last_updated: parts.next()?.to_owned(),
                id: parts.next()?.to_owned(),
            },
        })
    }
}

/// Decisions already had in this search, by owner and custodian.
type Decisions = HashMap<(String, String), bool>;

impl Query {
    /// Runs `req` for `caller`: one page, with the AuditEvent of the search stored before it
    /// is returned (naming every patient whose data the page holds).
    pub async fn search(&self, caller: &Caller, req: SearchRequest) -> Result<Page, QueryError> {
        let rt = req.resource_type.clone();
        let mut audit = self
            .audit
            .begin(Entry::by(caller, "query", "search-type", Action::Read).touching(rt.clone()));
        let result = self.search_checked(caller, req, &mut audit).await;
        audit.finish(result).await
    }

    async fn search_checked(
        &self,
        caller: &Caller,
        req: SearchRequest,
        audit: &mut Audit,
    ) -> Result<Page, QueryError> {
        let rt = req.resource_type.as_str();
        let scopes = Scopes::parse(&caller.claims.scope);
        medledger_access::require_reach(&scopes, rt, Interaction::Search)?;
        if medledger_fhir::accepted_type(rt) != medledger_fhir::AcceptedType::Yes {
            return Err(QueryError::NotFound(format!(
                "resource type '{rt}' is not served here"
            )));
        }
        let search = medledger_search::parse(&self.index_key, rt, &req.pairs, req.lenient)
            .map_err(|e| QueryError::Invalid(e.to_string()))?;
        let owner = search_owner(caller, req.compartment.as_deref())?;
        if let Some(o) = &owner {
            audit.about(Some(o));
        }
        let cursor = match &search.page {
            Some(c) => Some(
                self.index_key
                    .open_cursor(c)
                    .and_then(|p| Cursor::decode(&p))
                    .ok_or_else(|| {
                        QueryError::Invalid("_page is not a cursor of this server".into())
                    })?,
            ),
            None => None,
        };
        let base = index_query(&search, owner.clone());
        let mut walk = Walk {
            interaction: Interaction::Search,
            ..Walk::new(self, caller, &scopes, &search)
        };
        let (mut page, candidates) = if search.sort.in_index() {
            walk.page_in_index(base, cursor).await?
        } else {
            walk.page_by_date(base, cursor).await?
        };
        page.ignored = search.ignored.clone();
        page.summary_count = search.summary_count;
        if search.summary_count {
            page.next = None;
            page.previous = None;
            return Ok(page);
        }
        let mut patients: Vec<String> = Vec::new();
        let mut seen: HashSet<String> = HashSet::new();
        let mut matches = Vec::with_capacity(candidates.len());
        for c in candidates {
            let resource = match c.resource {
                Some(r) => r,
                None => walk.open(&c.row).await?,
            };
            seen.insert(c.row.key());
            patients.push(c.row.owner.clone());
            matches.push(resource);
        }
        let included = walk.included(&matches, &mut seen, &mut patients).await?;
        audit.about_all(patients.iter().map(String::as_str));
        page.subsetted = search.elements.is_some();
        page.matches = match &search.elements {
            Some(keep) => matches.into_iter().map(|m| subset(m, keep)).collect(),
            None => matches,
        };
        page.included = included;
        Ok(page)
    }
}

/// The compartment a search is confined to: the one asked for, a patient's own (a patient
/// searches nothing else), or none for practitioners and organisations, whose every result is
/// still decided one by one. Other roles may not search across patients.
pub(crate) fn search_owner(
    caller: &Caller,
    compartment: Option<&str>,
) -> Result<Option<String>, QueryError> {
    if let Some(id) = compartment {
        if !medledger_fhir::valid_id(id) {
            return Err(QueryError::NotFound(format!("Patient/{id} is not known")));
        }
        return Ok(Some(format!("Patient/{id}")));
    }
    match caller.claims.role.as_str() {
        "patient" => {
            // The reference the decision knows the patient by: fhirUser, else the subject.
            Ok(Some(
                caller
                    .claims
                    .patient_context()
                    .or_else(|| caller.claims.fhir_user.clone())
                    .unwrap_or_else(|| caller.claims.sub.clone()),
            ))
        }
        "practitioner" | "organization" => Ok(None),
        other => Err(AccessError::Denied(format!(
            "searching across patients needs a practitioner or organization role, not '{other}'"
        ))
        .into()),
    }
}

/// What the index is asked, before paging.
fn index_query(search: &Search, owner: Option<String>) -> IndexQuery {
    let medledger_search::IndexTerms {
        all_of,
        none_of,
        ids,
    } = search.index_terms();
    IndexQuery {
        resource_type: search.resource_type.clone(),
        all_of,
        none_of,
        ids,
        owner,
        order: IndexOrder {
            by_id: search.sort.key == "_id",
            descending: search.sort.descending,
            after: None,
        },
        limit: BATCH,
    }
}

/// One search's walk over the index, with the decisions it has had.
pub(crate) struct Walk<'a> {
    query: &'a Query,
    caller: &'a Caller,
    scopes: &'a Scopes,
    search: &'a Search,
    decisions: Decisions,
    /// What the plaintext of a version (its categories, the search's checks) decided, by
    /// `Type/id`, version and whether the checks applied.
    plaintext_verdicts: HashMap<(String, u64, bool), bool>,
    /// What each record is decided for: a search, or a read (history).
    interaction: Interaction,
}

impl<'a> Walk<'a> {
    /// A walk deciding each record as a read (history, `$everything`), with `search`'s tests.
    pub(crate) fn new(
        query: &'a Query,
        caller: &'a Caller,
        scopes: &'a Scopes,
        search: &'a Search,
    ) -> Self {
        Self {
            query,
            caller,
            scopes,
            search,
            decisions: Decisions::new(),
            plaintext_verdicts: HashMap::new(),
            interaction: Interaction::Read,
        }
    }

    /// Whether the caller may see this version (a deletion included: only its owner and
    /// custodian are needed, unless only a category scope could allow it, which a deletion
    /// has no categories for).
    pub(crate) async fn visible(&mut self, row: &VersionRow) -> Result<bool, QueryError> {
        if row.deleted {
            return self.permitted(row).await;
        }
        Ok(self.admit(row.clone(), false).await?.is_some())
    }

    async fn permitted(&mut self, row: &VersionRow) -> Result<bool, QueryError> {
        let key = (row.owner.clone(), row.actor.clone());
        if let Some(p) = self.decisions.get(&key) {
            return Ok(*p);
        }
        let p = self.allowed(row, None).await?;
        self.decisions.insert(key, p);
        Ok(p)
    }

    /// A page in the index's own order (`_lastUpdated`, `_id`): walked from the cursor until
    /// the page and one more are found; the total from a second walk over everything.
    async fn page_in_index(
        &mut self,
        base: IndexQuery,
        cursor: Option<Cursor>,
    ) -> Result<(Page, Vec<Candidate>), QueryError> {
        let count = self.search.count as usize;
        let forward = cursor.as_ref().is_none_or(|c| c.forward);
        let mut q = base.clone();
        if !forward {
            q.order.descending = !q.order.descending;
        }
        q.order.after = cursor.as_ref().map(|c| c.key.clone());
        let mut found = Vec::new();
        if count > 0 && !self.search.summary_count {
            self.walk(q, Some(count + 1), |c| found.push(c)).await?;
        }
        let more = found.len() > count;
        found.truncate(count);
        if !forward {
            found.reverse();
        }
        let mut page = Page::default();
        // Beyond the page in the direction walked there is more; behind the cursor there is
        // the page it came from.
        let (has_next, has_previous) = if forward {
            (more, cursor.is_some())
        } else {
            (true, more)
        };
        if let (true, Some(last)) = (has_next, found.last()) {
            page.next = Some(self.cursor(true, last.row.keyset()));
        }
        if let (true, Some(first)) = (has_previous, found.first()) {
            page.previous = Some(self.cursor(false, first.row.keyset()));
        }
        if self.search.total == Total::Accurate || self.search.summary_count {
            let mut n = 0usize;
            self.walk(base, None, |_| n += 1).await?;
            page.total = Some(n);
        }
        Ok((page, found))
    }

    /// A page sorted by a date parameter: every match decrypted for its sort key (at most
    /// [`MAX_SORTED`]), sorted, and paged by (key, id).
    async fn page_by_date(
        &mut self,
        base: IndexQuery,
        cursor: Option<Cursor>,
    ) -> Result<(Page, Vec<Candidate>), QueryError> {
        let mut all: Vec<(Keyset, Candidate)> = Vec::new();
        let search = self.search;
        self.walk(base, Some(MAX_SORTED + 1), |mut c| {
            // One walk visits each version once, so each arrives decrypted (needs_plaintext).
            let resource = c.resource.take().unwrap_or(Value::Null);
            // Missing values sort last in either direction; the key is the value's distance
            // from the order's start (never negative, in i128 so dates before 1970 and open
            // ends cannot overflow), fixed-width so that text order is numeric order.
            let key = match search.date_sort_key(&resource).map(i128::from) {
                Some(k) if search.sort.descending => format!("0{:020}", i128::from(i64::MAX) - k),
                Some(k) => format!("0{:020}", k - i128::from(i64::MIN)),
                None => "1".to_owned(),
            };
            c.resource = Some(resource);
            all.push((
                Keyset {
                    last_updated: key,
                    id: c.row.id.clone(),
                },
                c,
            ));
        })
        .await?;
        if all.len() > MAX_SORTED {
            return Err(QueryError::Invalid(format!(
                "too costly: sorting by {} needs at most {MAX_SORTED} matches; narrow the search",
                search.sort.key
            )));
        }
        all.sort_by(|a, b| (&a.0.last_updated, &a.0.id).cmp(&(&b.0.last_updated, &b.0.id)));
        let count = search.count as usize;
        let total = all.len();
        let pos = |k: &Keyset| {
            all.partition_point(|(x, _)| (&x.last_updated, &x.id) <= (&k.last_updated, &k.id))
        };
        let (start, end) = match &cursor {
            None => (0, count.min(total)),
            Some(c) if c.forward => {
                let s = pos(&c.key);
                (s, (s + count).min(total))
            }
            Some(c) => {
                let before = all.partition_point(|(x, _)| {
                    (&x.last_updated, &x.id) < (&c.key.last_updated, &c.key.id)
                });
                (before.saturating_sub(count), before)
            }
        };
        let mut page = Page {
            total: (search.total == Total::Accurate || search.summary_count).then_some(total),
            ..Page::default()
        };
        if end < total && end > start {
            page.next = Some(self.cursor(true, all[end - 1].0.clone()));
        }
        if start > 0 && end > start {
            page.previous = Some(self.cursor(false, all[start].0.clone()));
        }
        let found = if search.summary_count {
            Vec::new()
        } else {
            all.into_iter()
                .skip(start)
                .take(end - start)
                .map(|(_, c)| c)
                .collect()
        };
        Ok((page, found))
    }

    fn cursor(&self, forward: bool, key: Keyset) -> String {
        self.query
            .index_key
            .seal_cursor(&Cursor { forward, key }.encode())
    }

    /// Visits the visible matches of `q` in its order, at most `limit`.
    async fn walk(
        &mut self,
        mut q: IndexQuery,
        limit: Option<usize>,
        mut visit: impl FnMut(Candidate),
    ) -> Result<(), QueryError> {
        let mut seen = 0usize;
        loop {
            let rows = self.query.search_index.search(&q).await?;
            let exhausted = rows.len() < q.limit as usize;
            for row in rows {
                q.order.after = Some(row.keyset());
                if let Some(c) = self.admit(row, true).await? {
                    visit(c);
                    seen += 1;
                    if limit.is_some_and(|l| seen >= l) {
                        return Ok(());
                    }
                }
            }
            if exhausted {
                return Ok(());
            }
        }
    }

    /// `row` if the caller may see it and (when `checked`) it passes the search's own tests;
    /// decrypted only when a decision or a test needs the plaintext.
    async fn admit(
        &mut self,
        row: VersionRow,
        checked: bool,
    ) -> Result<Option<Candidate>, QueryError> {
        let search = self.search;
        if checked && (!search.id_passes(&row.id) || !search.last_updated_passes(&row.last_updated))
        {
            return Ok(None);
        }
        let rt = row.resource_type.clone();
        let permitted = self.permitted(&row).await?;
        let by_category = !permitted && self.scopes.restricted_by_category(&rt, self.interaction);
        if !permitted && !by_category {
            return Ok(None);
        }
        let needs_plaintext = by_category || (checked && search.needs_plaintext());
        if !needs_plaintext {
            return Ok(Some(Candidate {
                row,
                resource: None,
            }));
        }
        // A version decided on its plaintext before, in this search's other walk (`_total`
        // counts what the page walk already decrypted), is not decrypted again.
        let key = (row.key(), row.version, checked);
        if let Some(&passed) = self.plaintext_verdicts.get(&key) {
            return Ok(passed.then_some(Candidate {
                row,
                resource: None,
            }));
        }
        let resource = self.open(&row).await?;
        let passed = (!by_category || self.allowed(&row, Some(&categories_in(&resource))).await?)
            && (!checked || search.checks_pass(&resource));
        self.plaintext_verdicts.insert(key, passed);
        Ok(passed.then_some(Candidate {
            row,
            resource: Some(resource),
        }))
    }

    async fn allowed(
        &self,
        row: &VersionRow,
        categories: Option<&[String]>,
    ) -> Result<bool, QueryError> {
        let q = AccessQuery {
            caller: self.caller,
            interaction: self.interaction,
            resource_type: &row.resource_type,
            owner: Some(&row.owner),
            custodian: Some(&row.actor),
            categories,
        };
        match self.query.policy.permit(q).await {
            Ok(()) => Ok(true),
            Err(AccessError::Denied(_)) => Ok(false),
            Err(e) => Err(e.into()),
        }
    }

    /// The verified plaintext of `row` as JSON.
    pub(crate) async fn open(&self, row: &VersionRow) -> Result<Value, QueryError> {
        self.query.logged_leaf(row).await?;
        let opened = self.query.decrypt(row).await?;
        serde_json::from_slice(&opened.body).map_err(|_| {
            QueryError::Integrity(format!("{} version {} is not JSON", row.key(), row.version))
        })
    }

    /// The `_include`d and `_revinclude`d resources of a page's `matches`, each visible to the
    /// caller and not already on the page.
    async fn included(
        &mut self,
        matches: &[Value],
        seen: &mut HashSet<String>,
        patients: &mut Vec<String>,
    ) -> Result<Vec<Value>, QueryError> {
        let mut out = Vec::new();
        for link in &self.search.include {
            for m in matches {
                let Values::References(refs) = values(m, link.param) else {
                    continue;
                };
                for r in refs {
                    if out.len() >= MAX_INCLUDED || !seen.insert(r.clone()) {
                        continue;
                    }
                    let Some((rt, id)) = r.split_once('/') else {
                        continue;
                    };
                    if link.target.as_deref().is_some_and(|t| t != rt) {
                        continue;
                    }
                    if let Some((row, v)) = self.fetch(rt, id).await? {
                        patients.push(row.owner);
                        out.push(v);
                    }
                }
            }
        }
        let targets: Vec<String> = matches
            .iter()
            .filter_map(|m| {
                Some(format!(
                    "{}/{}",
                    m["resourceType"].as_str()?,
                    m["id"].as_str()?
                ))
            })
            .collect();
        for link in self.search.revinclude.clone() {
            let tags: Vec<IndexTag> = targets
                .iter()
                .filter(|t| link_reaches(&link, t))
                .map(|t| reference_tag(&self.query.index_key, &link.source, link.param, t))
                .collect();
            if tags.is_empty() {
                continue;
            }
            let q = IndexQuery {
                resource_type: link.source.clone(),
                all_of: vec![tags],
                limit: MAX_INCLUDED as u32,
                ..IndexQuery::default()
            };
            for row in self.query.search_index.search(&q).await? {
                if out.len() >= MAX_INCLUDED || seen.contains(&row.key()) {
                    continue;
                }
                if let Some(c) = self.admit(row, false).await? {
                    let v = match c.resource {
                        Some(v) => v,
                        None => self.open(&c.row).await?,
                    };
                    seen.insert(c.row.key());
                    patients.push(c.row.owner);
                    out.push(v);
                }
            }
        }
        Ok(out)
    }

    /// The current version of `rt/id`, decrypted, if it exists and the caller may see it.
    pub(crate) async fn fetch_visible(
        &mut self,
        rt: &str,
        id: &str,
    ) -> Result<Option<Value>, QueryError> {
        Ok(self.fetch(rt, id).await?.map(|(_, v)| v))
    }

    /// The current version of `rt/id` if it exists and the caller may see it.
    async fn fetch(
        &mut self,
        rt: &str,
        id: &str,
    ) -> Result<Option<(VersionRow, Value)>, QueryError> {
        let Some(head) = self.query.index.head(rt, id).await? else {
            return Ok(None);
        };
        if head.deleted {
            return Ok(None);
        }
        let Some(row) = self.query.index.version(rt, id, head.version).await? else {
            return Ok(None);
        };
        let Some(c) = self.admit(row, false).await? else {
            return Ok(None);
        };
        let v = match c.resource {
            Some(v) => v,
            None => self.open(&c.row).await?,
        };
        Ok(Some((c.row, v)))
    }
}

/// Whether `_revinclude` `link` can point at `target` (`Type/id`).
fn link_reaches(link: &Link, target: &str) -> bool {
    let rt = target.split('/').next().unwrap_or_default();
    link.param.targets.contains(&rt) && link.target.as_deref().is_none_or(|t| t == rt)
}

/// `_elements`: the listed top-level elements and what every resource keeps (`resourceType`,
/// `id`, `meta`), with `meta.tag` marked SUBSETTED.
fn subset(resource: Value, keep: &[String]) -> Value {
    let Value::Object(mut o) = resource else {
        return resource;
    };
    o.retain(|k, _| {
        matches!(k.as_str(), "resourceType" | "id" | "meta") || keep.iter().any(|e| e == k)
    });
    let meta = o
        .entry("meta")
        .or_insert_with(|| Value::Object(Default::default()));
    if let Value::Object(m) = meta {
        let tags = m.entry("tag").or_insert_with(|| Value::Array(Vec::new()));
        if let Value::Array(t) = tags {
            t.push(serde_json::json!({
                "system": "http://terminology.hl7.org/CodeSystem/v3-ObservationValue",
                "code": "SUBSETTED"
            }));
        }
    }
    Value::Object(o)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_encode_and_decode() {
        let c = Cursor {
            forward: false,
            key: Keyset {
                last_updated: "2026-01-01T00:00:00.000Z".into(),
                id: "a-b".into(),
            },
        };
        assert_eq!(Cursor::decode(&c.encode()), Some(c));
        assert_eq!(Cursor::decode("x\n1\n2"), None);
    }

    #[test]
    fn elements_keep_what_was_asked_and_mark_the_subset() {
        let r =
            serde_json::json!({"resourceType": "Patient", "id": "p", "gender": "f", "name": []});
        let s = subset(r, &["gender".to_owned()]);
        assert_eq!(s["gender"], "f");
        assert!(s.get("name").is_none());
        assert_eq!(s["meta"]["tag"][0]["code"], "SUBSETTED");
    }
}
