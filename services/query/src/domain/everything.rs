//! `Patient/{id}/$everything` (R4 OperationDefinition Patient-everything): the patient's whole
//! compartment that the caller may read, paged, with the Practitioners, Organizations,
//! Locations and Medications it refers to; `_since`, `_type` and `_count`. Each record is
//! decided by the consent policy as a read, and the whole operation is one AuditEvent.

use std::collections::HashSet;

use medledger_access::{Interaction, Scopes};
use medledger_audit::{Action, Entry};
use medledger_auth::Caller;
use medledger_search::Search;
use medledger_storage_api::CompartmentQuery;
use serde_json::Value;

use super::Query;
use super::search::{Page, Walk};
use crate::QueryError;

/// Records per page without `_count`.
pub const DEFAULT_COUNT: u32 = 100;
/// Most records per page.
pub const MAX_COUNT: u32 = 1000;
/// The directory types a compartment's references are followed to.
pub const REFERENCED: &[&str] = &["Practitioner", "Organization", "Location", "Medication"];

impl Query {
    /// One page of `Patient/{id}/$everything` for `caller`.
    pub async fn everything(
        &self,
        caller: &Caller,
        id: &str,
        pairs: &[(String, String)],
    ) -> Result<Page, QueryError> {
        let owner = format!("Patient/{id}");
        let audit = self.audit.begin(
            Entry::by(caller, "query", "operation", Action::Execute)
                .about(Some(&owner))
                .touching(format!("{owner}/$everything")),
        );
        let result = self.everything_checked(caller, &owner, pairs).await;
        audit.finish(result).await
    }

    async fn everything_checked(
        &self,
        caller: &Caller,
        owner: &str,
        pairs: &[(String, String)],
    ) -> Result<Page, QueryError> {
        let scopes = Scopes::parse(&caller.claims.scope);
        medledger_access::require_reach(&scopes, "Patient", Interaction::Read)?;
        if !medledger_fhir::valid_id(&owner["Patient/".len()..]) {
            return Err(QueryError::NotFound(format!("{owner} is not known")));
        }
        let mut q = CompartmentQuery {
            owner: Some(owner.to_owned()),
            limit: 500,
            ..CompartmentQuery::default()
        };
        let mut count = DEFAULT_COUNT;
        for (k, v) in pairs {
            match k.as_str() {
                "_since" => q.since = Some(super::history::instant("_since", v, false)?),
                "_type" => {
                    let types: Vec<String> = v.split(',').map(|t| t.trim().to_owned()).collect();
                    if let Some(bad) = types.iter().find(|t| {
                        medledger_fhir::accepted_type(t) != medledger_fhir::AcceptedType::Yes
                    }) {
                        return Err(QueryError::Invalid(format!(
                            "_type: '{bad}' is not a type served here"
                        )));
                    }
                    q.types = Some(types);
                }
                "_count" => count = super::history::page_size(v, MAX_COUNT)?,
                "_page" => {
                    let pos = self
                        .index_key
                        .open_cursor(v)
                        .and_then(|p| {
                            let mut parts = p.splitn(3, '\n');
                            (parts.next()? == "e").then_some(())?;
                            Some((parts.next()?.to_owned(), parts.next()?.to_owned()))
                        })
                        .ok_or_else(|| {
                            QueryError::Invalid("_page is not a cursor of this server".into())
                        })?;
                    q.after = Some(pos);
                }
                "_format" | "_pretty" => {}
                other => {
                    return Err(QueryError::Invalid(format!(
                        "unsupported $everything parameter '{other}' (_since, _type, _count)"
                    )));
                }
            }
        }
        let search = Search::default();
        let mut walk = Walk::new(self, caller, &scopes, &search);
        let mut page = Page::default();
        let mut seen: HashSet<String> = HashSet::new();
        let mut last: Option<(String, String)> = None;
        'pages: loop {
            let rows = self.search_index.compartment(&q).await?;
            let exhausted = rows.len() < q.limit as usize;
            for row in rows {
                q.after = Some((row.resource_type.clone(), row.id.clone()));
                if !walk.visible(&row).await? {
                    continue;
                }
                if page.matches.len() == count as usize {
                    page.next = last
                        .as_ref()
                        .map(|(rt, id)| self.index_key.seal_cursor(&format!("e\n{rt}\n{id}")));
                    break 'pages;
                }
                seen.insert(row.key());
                last = Some((row.resource_type.clone(), row.id.clone()));
                page.matches.push(walk.open(&row).await?);
            }
            if exhausted {
                break;
            }
        }
        if page.matches.is_empty() && q.after.is_none() {
            return Err(QueryError::NotFound(format!("{owner} is not known")));
        }
        // What the compartment refers to, among the directory types (and `_type`, if given).
        let wanted: Vec<&str> = REFERENCED
            .iter()
            .copied()
            .filter(|t| q.types.as_ref().is_none_or(|ts| ts.iter().any(|x| x == t)))
            .collect();
        let mut refs: Vec<String> = Vec::new();
        for m in &page.matches {
            collect_references(m, &wanted, &mut refs);
        }
        for r in refs {
            if !seen.insert(r.clone()) {
                continue;
            }
            if let Some((rt, id)) = r.split_once('/')
                && let Some(v) = walk.fetch_visible(rt, id).await?
            {
                page.included.push(v);
            }
        }
        Ok(page)
    }
}

/// References in `v` to a type in `types`, as `Type/id`, in the order found.
fn collect_references(v: &Value, types: &[&str], out: &mut Vec<String>) {
    match v {
        Value::Object(o) => {
            for (k, x) in o {
                if k == "reference" {
                    if let Some(r) = x
                        .as_str()
                        .and_then(medledger_search::extract::normalize_reference)
                        && types.iter().any(|t| r.split('/').next() == Some(*t))
                        && !out.contains(&r)
                    {
                        out.push(r);
                    }
                } else {
                    collect_references(x, types, out);
                }
            }
        }
        Value::Array(a) => a.iter().for_each(|x| collect_references(x, types, out)),
        _ => {}
    }
}
