//! FHIR history (R4 §3.1.0.9): of a record (`/{type}/{id}/_history`), a type
//! (`/{type}/_history`) and the whole server (`/_history`), newest first, deletions included,
//! with `_since`, `_at` and `_count` paging; every version decided by the consent policy like a
//! search result, and the whole history one AuditEvent.

use medledger_access::{Interaction, Scopes};
use medledger_audit::{Action, Audit, Entry};
use medledger_auth::Caller;
use medledger_search::Search;
use medledger_search::date::parse_value;
use medledger_storage_api::{HistoryKey, HistoryQuery, VersionRow};
use serde_json::Value;

use super::Query;
use super::search::{Walk, search_owner};
use crate::QueryError;

/// Versions per page without `_count`.
pub const DEFAULT_COUNT: u32 = 50;
/// Most versions per page.
pub const MAX_COUNT: u32 = 1000;

/// Whose history.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HistoryOf {
    /// Every record the caller may see.
    System,
    /// Every record of a type.
    Type(String),
    /// One record.
    Instance(String, String),
}

/// One version in a history page.
#[derive(Debug, Clone)]
pub struct HistoryEntry {
    /// The index row (what the Bundle's `request` and `response` say).
    pub row: VersionRow,
    /// The version's content; `None` for a deletion.
    pub resource: Option<Value>,
    /// Whether it is the record's first version (a create).
    pub created: bool,
}

/// A page of history.
#[derive(Debug, Clone, Default)]
pub struct HistoryPage {
    /// Versions, newest first.
    pub entries: Vec<HistoryEntry>,
    /// The next (older) page's cursor.
    pub next: Option<String>,
}

/// `_since` and `_at` as the stored instant format, so the index compares them as text.
pub(crate) fn instant(name: &str, v: &str, end: bool) -> Result<String, QueryError> {
    let r = parse_value(v).map_err(|e| QueryError::Invalid(format!("{name}: {e}")))?;
    let ms = if end { r.end } else { r.start };
    let t = time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .map_err(|_| QueryError::Invalid(format!("{name} is out of range")))?;
    let fmt = time::macros::format_description!(
        "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z"
    );
    t.format(&fmt)
        .map_err(|_| QueryError::Invalid(format!("{name} is out of range")))
}

/// A `_count` value: a number, held to 1..=`max`.
pub(crate) fn page_size(v: &str, max: u32) -> Result<u32, QueryError> {
    v.parse::<u32>()
        .map(|n| n.clamp(1, max))
        .map_err(|_| QueryError::Invalid("_count must be a number".into()))
}

fn encode(k: &HistoryKey) -> String {
    format!(
        "h\n{}\n{}\n{}\n{}",
        k.last_updated, k.resource_type, k.id, k.version
    )
}

fn decode(s: &str) -> Option<HistoryKey> {
    let mut p = s.split('\n');
    (p.next()? == "h").then_some(())?;
    Some(HistoryKey {
        last_updated: p.next()?.to_owned(),
        resource_type: p.next()?.to_owned(),
        id: p.next()?.to_owned(),
        version: p.next()?.parse().ok()?,
    })
}

impl Query {
    /// One page of `of`'s history for `caller`, audited as one event naming every patient whose
    /// versions it holds.
    pub async fn history(
        &self,
        caller: &Caller,
        of: HistoryOf,
        pairs: &[(String, String)],
    ) -> Result<HistoryPage, QueryError> {
        let (interaction, target) = match &of {
            HistoryOf::System => ("history-system", "_history".to_owned()),
            HistoryOf::Type(rt) => ("history-type", format!("{rt}/_history")),
            HistoryOf::Instance(rt, id) => ("history-instance", format!("{rt}/{id}/_history")),
        };
        let mut audit = self
            .audit
            .begin(Entry::by(caller, "query", interaction, Action::Read).touching(target));
        let result = self.history_checked(caller, of, pairs, &mut audit).await;
        audit.finish(result).await
    }

    async fn history_checked(
        &self,
        caller: &Caller,
        of: HistoryOf,
        pairs: &[(String, String)],
        audit: &mut Audit,
    ) -> Result<HistoryPage, QueryError> {
        let scopes = Scopes::parse(&caller.claims.scope);
        let mut q = HistoryQuery {
            limit: 200,
            ..HistoryQuery::default()
        };
        let rt = match &of {
            HistoryOf::System => None,
            HistoryOf::Type(rt) | HistoryOf::Instance(rt, _) => Some(rt.clone()),
        };
        if let Some(rt) = &rt {
            medledger_access::require_reach(&scopes, rt, Interaction::Read)?;
            if medledger_fhir::accepted_type(rt) != medledger_fhir::AcceptedType::Yes {
                return Err(QueryError::NotFound(format!(
                    "resource type '{rt}' is not served here"
                )));
            }
        }
        let mut count = DEFAULT_COUNT;
        for (k, v) in pairs {
            match k.as_str() {
                "_since" => q.since = Some(instant("_since", v, false)?),
                "_at" => q.at = Some(instant("_at", v, true)?),
                "_count" => count = page_size(v, MAX_COUNT)?,
                "_page" => {
                    q.after = Some(
                        self.index_key
                            .open_cursor(v)
                            .and_then(|p| decode(&p))
                            .ok_or_else(|| {
                                QueryError::Invalid("_page is not a cursor of this server".into())
                            })?,
                    );
                }
                "_format" | "_pretty" => {}
                other => {
                    return Err(QueryError::Invalid(format!(
                        "unsupported history parameter '{other}' (_since, _at, _count)"
                    )));
                }
            }
        }
        if let HistoryOf::Instance(_, id) = &of {
            q.id = Some(id.clone());
        } else {
            q.owner = search_owner(caller, None)?;
        }
        q.resource_type = rt;
        let search = Search::default();
        let mut walk = Walk::new(self, caller, &scopes, &search);
        let mut entries = Vec::new();
        let mut more = false;
        'pages: loop {
            let rows = self.search_index.history(&q).await?;
            let exhausted = rows.len() < q.limit as usize;
            for row in rows {
                q.after = Some(HistoryKey::of(&row));
                if entries.len() == count as usize {
                    if walk.visible(&row).await? {
                        more = true;
                        break 'pages;
                    }
                    continue;
                }
                if !walk.visible(&row).await? {
                    continue;
                }
                let resource = if row.deleted {
                    self.logged_leaf(&row).await?;
                    None
                } else {
                    Some(walk.open(&row).await?)
                };
                entries.push(HistoryEntry {
                    created: row.version == 1,
                    row,
                    resource,
                });
            }
            if exhausted {
                break;
            }
        }
        if let HistoryOf::Instance(rt, id) = &of
            && entries.is_empty()
            && q.since.is_none()
            && q.at.is_none()
        {
            // Like a read: a record one may not see is not known.
            return Err(QueryError::NotFound(format!("{rt}/{id} is not known")));
        }
        audit.about_all(entries.iter().map(|e| e.row.owner.as_str()));
        let next = match (more, entries.last()) {
            (true, Some(last)) => Some(
                self.index_key
                    .seal_cursor(&encode(&HistoryKey::of(&last.row))),
            ),
            _ => None,
        };
        Ok(HistoryPage { entries, next })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_and_instants() {
        let k = HistoryKey {
            last_updated: "2026-01-01T00:00:00.000Z".into(),
            resource_type: "Patient".into(),
            id: "p".into(),
            version: 3,
        };
        assert_eq!(decode(&encode(&k)), Some(k));
        assert_eq!(
            instant("_since", "2026-01-02", false).expect("since"),
            "2026-01-02T00:00:00.000Z"
        );
        assert_eq!(
            instant("_at", "2026-01-02", true).expect("at"),
            "2026-01-02T23:59:59.999Z"
        );
        assert!(instant("_at", "soon", true).is_err());
    }
}
