//! Conditional interactions (R4 §3.1.0.4.1 create with `If-None-Exist`, §3.1.0.5.1 update by
//! criteria): the criteria are search parameters, answered by the blind index alone, so only
//! parameters it answers exactly may be used (tokens, references, strings by prefix or
//! `:exact`, `_id`); a date or `:contains` criterion is refused (400) rather than guessed.
//!
//! A create that finds nothing commits with its criteria as a guard: the store checks them
//! again under a lock inside the write transaction, so racing creates with the same criteria
//! make one record, and the others answer like a match.

use medledger_audit::{Action, Entry};
use medledger_auth::Caller;
use medledger_storage_api::{IndexQuery, StoreError};
use serde_json::Value;

use super::Ingest;
use super::write::{Op, WriteOutcome, new_id};
use crate::IngestError;

/// What criteria match among current records.
#[derive(Debug, Clone)]
pub(crate) enum Matches {
    /// Nothing: the criteria, as a guard for the create.
    None(IndexQuery),
    /// Exactly one record.
    One {
        id: String,
        version: u64,
        last_updated: String,
        /// Its owner, for the audit trail.
        owner: String,
    },
    /// More than one.
    Several,
}

impl Ingest {
    /// The current records of type `rt` matching `criteria` (a query string).
    pub(crate) async fn matches(&self, rt: &str, criteria: &str) -> Result<Matches, IngestError> {
        let pairs: Vec<(String, String)> =
            form_urlencoded::parse(criteria.trim_start_matches('?').as_bytes())
                .into_owned()
                .collect();
        let search = medledger_search::parse(&self.index_key, rt, &pairs, false)
            .map_err(|e| IngestError::Invalid(format!("conditional criteria: {e}")))?;
        if !search.exact_criteria() {
            return Err(IngestError::Invalid(
                "conditional criteria must be search parameters the index answers exactly \
                 (tokens, references, strings by prefix or :exact, _id)"
                    .into(),
            ));
        }
        let t = search.index_terms();
        let q = IndexQuery {
            resource_type: rt.to_owned(),
            all_of: t.all_of,
            none_of: t.none_of,
            ids: t.ids,
            limit: 2,
            ..IndexQuery::default()
        };
        let found = self.search.search(&q).await?;
        Ok(match found.as_slice() {
            [] => Matches::None(q),
            [one] => Matches::One {
                id: one.id.clone(),
                version: one.version,
                last_updated: one.last_updated.clone(),
                owner: one.owner.clone(),
            },
            _ => Matches::Several,
        })
    }

    /// `POST /{type}` with `If-None-Exist: criteria`: no match creates; one answers it (200);
    /// several answer 412.
    pub async fn create_if_none_exist(
        &self,
        caller: &Caller,
        rt: &str,
        value: Value,
        criteria: &str,
    ) -> Result<WriteOutcome, IngestError> {
        let mut audit = self
            .audit
            .begin(Entry::by(caller, "ingest", "create", Action::Create).touching(rt));
        let result = async {
            self.scope_precheck(caller, medledger_access::Interaction::Create, rt)?;
            let guard = match self.matches(rt, criteria).await? {
                Matches::None(q) => q,
                other => return matched(rt, other, &mut audit),
            };
            let op = Op::Create {
                rt: rt.to_owned(),
                id: new_id(),
                value,
                unless: Some(guard),
            };
            match self.write_audited(caller, op, &mut audit).await {
                Ok(Some(o)) => Ok(o),
                Ok(None) => Err(IngestError::Internal("create produced no version".into())),
                // Another create with these criteria committed first: answer its record.
                Err(IngestError::Store(StoreError::Matched(_))) => {
                    matched(rt, self.matches(rt, criteria).await?, &mut audit)
                }
                Err(e) => Err(e),
            }
        }
        .await;
        audit.finish(result).await
    }

    /// `PUT /{type}?criteria`: no match creates (under the body's id, else a new one); one
    /// updates it; several answer 412.
    pub async fn conditional_update(
        &self,
        caller: &Caller,
        rt: &str,
        mut value: Value,
        criteria: &str,
        if_match: Option<u64>,
    ) -> Result<WriteOutcome, IngestError> {
        match self.matches(rt, criteria).await? {
            Matches::None(guard) => {
                let mut audit = self
                    .audit
                    .begin(Entry::by(caller, "ingest", "update", Action::Create).touching(rt));
                let id = value
                    .get("id")
                    .and_then(Value::as_str)
                    .map_or_else(new_id, str::to_owned);
                let op = Op::Create {
                    rt: rt.to_owned(),
                    id,
                    value,
                    unless: Some(guard),
                };
                let result = match self.write_audited(caller, op, &mut audit).await {
                    Ok(Some(o)) => Ok(o),
                    Ok(None) => Err(IngestError::Internal("create produced no version".into())),
                    // Another write matching these criteria came first (409): the caller retries
                    // and finds it.
                    Err(e) => Err(e),
                };
                audit.finish(result).await
            }
            Matches::One { id, .. } => {
                match value.get("id").and_then(Value::as_str) {
                    Some(body) if body != id => {
                        return Err(IngestError::Invalid(format!(
                            "the criteria match {rt}/{id}, not the body's id '{body}'"
                        )));
                    }
                    Some(_) => {}
                    None => {
                        if let Some(o) = value.as_object_mut() {
                            o.insert("id".into(), Value::String(id.clone()));
                        }
                    }
                }
                self.update(caller, rt, &id, value, if_match).await
            }
            Matches::Several => Err(IngestError::PreconditionFailed(format!(
                "the criteria match more than one {rt}"
            ))),
        }
    }
}

/// The answer of a conditional create whose criteria matched.
fn matched(
    rt: &str,
    m: Matches,
    audit: &mut medledger_audit::Audit,
) -> Result<WriteOutcome, IngestError> {
    match m {
        Matches::One {
            id,
            version,
            last_updated,
            owner,
        } => {
            audit.matched(format!("{rt}/{id}/_history/{version}"), &owner);
            Ok(WriteOutcome {
                resource_type: rt.to_owned(),
                id,
                version,
                last_updated,
                created: false,
                resource: None,
                matched: true,
            })
        }
        Matches::Several => Err(IngestError::PreconditionFailed(format!(
            "the If-None-Exist criteria match more than one {rt}"
        ))),
        Matches::None(_) => Err(IngestError::Internal(
            "a matching record vanished; retry".into(),
        )),
    }
}
