//! Batch and transaction Bundles (FHIR R4 §3.1.0.11).
//!
//! Both kinds assign ids to every `POST` entry first and rewrite `urn:uuid:` references between
//! entries to those ids, so Synthea-style bundles whose entries refer to each other work as batch
//! too. A transaction then commits every entry in one index transaction or none; a batch commits
//! each entry on its own and reports per entry.

use std::collections::{HashMap, HashSet};

use medledger_audit::{Action, Entry, Outcome};
use medledger_auth::Caller;
use medledger_fhir::{rewrite_references, unresolved_urn_references};
use medledger_http::{ApiError, etag};
use serde_json::{Value, json};

use super::write::{Ingest, Op, Prepared, WriteOutcome, new_id};
use medledger_fhir::{now_instant, valid_id};

/// Whether a Bundle is processed atomically.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BundleKind {
    /// All or nothing.
    Transaction,
    /// Each entry on its own.
    Batch,
}

fn entry_error(i: usize, e: &ApiError) -> ApiError {
    ApiError {
        message: format!("entry {i}: {}", e.message),
        ..e.clone()
    }
}

fn status_line(code: u16) -> String {
    let reason = axum::http::StatusCode::from_u16(code)
        .ok()
        .and_then(|s| s.canonical_reason())
        .unwrap_or("");
    format!("{code} {reason}")
}

fn success_entry(o: &WriteOutcome) -> Value {
    match &o.resource {
        Some(_) => json!({"response": {
            "status": status_line(if o.created { 201 } else { 200 }),
            "location": format!("{}/{}/_history/{}", o.resource_type, o.id, o.version),
            "etag": etag(o.version),
            "lastModified": o.last_updated,
        }}),
        None => json!({"response": {"status": status_line(204), "etag": etag(o.version)}}),
    }
}

impl Ingest {
    /// `POST /` with a Bundle of type `batch` or `transaction`; returns the response Bundle.
    pub async fn bundle(&self, caller: &Caller, bundle: Value) -> Result<Value, ApiError> {
        if bundle.get("resourceType").and_then(Value::as_str) != Some("Bundle") {
            return Err(ApiError::bad_request("POST to the base URL takes a Bundle"));
        }
        let kind = match bundle.get("type").and_then(Value::as_str) {
            Some("transaction") => BundleKind::Transaction,
            Some("batch") => BundleKind::Batch,
            other => {
                return Err(ApiError::bad_request(format!(
                    "Bundle.type must be 'batch' or 'transaction', not {}",
                    other.map_or("missing".to_owned(), |t| format!("'{t}'"))
                )));
            }
        };
        let entries = match bundle.get("entry") {
            None => Vec::new(),
            Some(Value::Array(e)) => e.clone(),
            Some(_) => return Err(ApiError::bad_request("Bundle.entry must be an array")),
        };
        if entries.len() > self.config.max_bundle_entries {
            return Err(ApiError::new(
                axum::http::StatusCode::PAYLOAD_TOO_LARGE,
                medledger_fhir::IssueCode::TooCostly,
                format!(
                    "a Bundle may hold at most {} entries",
                    self.config.max_bundle_entries
                ),
            ));
        }
        let planned = self.plan(&entries);
        let response_type = match kind {
            BundleKind::Transaction => "transaction-response",
            BundleKind::Batch => "batch-response",
        };
        let out_entries = match kind {
            BundleKind::Transaction => {
                let ops = planned
                    .into_iter()
                    .enumerate()
                    .map(|(i, r)| r.map_err(|e| entry_error(i, &e)))
                    .collect::<Result<Vec<_>, _>>()?;
                self.transaction(caller, ops).await?
            }
            BundleKind::Batch => {
                let out = self.batch(caller, planned, &links(&entries)).await;
                self.audit_refused_entries(caller, &out).await?;
                out
            }
        };
        let (now, _) = now_instant();
        Ok(
            json!({"resourceType": "Bundle", "id": new_id(), "type": response_type, "timestamp": now, "entry": out_entries}),
        )
    }

    /// Turns entries into operations, assigning ids and resolving `urn:uuid:` references.
    fn plan(&self, entries: &[Value]) -> Vec<Result<Op, ApiError>> {
        // Pass 1: ids for every entry with a fullUrl, so references can be rewritten.
        let mut ids: HashMap<String, String> = HashMap::new();
        let mut assigned: Vec<Option<String>> = Vec::with_capacity(entries.len());
        for e in entries {
            let method = e
                .pointer("/request/method")
                .and_then(Value::as_str)
                .unwrap_or("");
            let url = e
                .pointer("/request/url")
                .and_then(Value::as_str)
                .unwrap_or("");
            let rt = e.pointer("/resource/resourceType").and_then(Value::as_str);
            let id = match method {
                "POST" => Some(new_id()),
                "PUT" => url
                    .split('?')
                    .next()
                    .map(|u| u.trim_matches('/'))
                    .and_then(|u| u.split_once('/'))
                    .map(|(_, id)| id.to_owned()),
                _ => None,
            };
            if let (Some(full), Some(rt), Some(id)) =
                (e.get("fullUrl").and_then(Value::as_str), rt, id.as_ref())
                && (full.starts_with("urn:uuid:") || full.starts_with("urn:oid:"))
            {
                ids.insert(full.to_owned(), format!("{rt}/{id}"));
            }
            assigned.push(id);
        }
        entries
            .iter()
            .zip(assigned)
            .map(|(e, id)| {
                let method = e
                    .pointer("/request/method")
                    .and_then(Value::as_str)
                    .ok_or_else(|| ApiError::bad_request("request.method is required"))?;
                let url = e
                    .pointer("/request/url")
                    .and_then(Value::as_str)
                    .ok_or_else(|| ApiError::bad_request("request.url is required"))?;
                if e.pointer("/request/ifNoneExist").is_some()
                    || e.pointer("/request/ifMatch").is_some() && method != "PUT"
                {
                    return Err(ApiError::bad_request(
                        "conditional requests in Bundles are not supported yet",
                    ));
                }
                let path = url.split('?').next().unwrap_or(url).trim_matches('/');
                let resource = || -> Result<Value, ApiError> {
                    let mut v = e.get("resource").cloned().ok_or_else(|| {
                        ApiError::bad_request(format!("{method} needs entry.resource"))
                    })?;
                    rewrite_references(&mut v, &ids);
                    let mut missing = Vec::new();
                    unresolved_urn_references(&v, &ids, &mut missing);
                    if let Some(m) = missing.first() {
                        return Err(ApiError::bad_request(format!(
                            "reference '{m}' matches no entry's fullUrl"
                        )));
                    }
                    Ok(v)
                };
                match method {
                    "POST" => {
                        if path.contains('/') {
                            return Err(ApiError::bad_request("POST url must be a resource type"));
                        }
                        let id = id.unwrap_or_else(new_id);
                        let mut value = resource()?;
                        if let Some(obj) = value.as_object_mut() {
                            obj.insert("id".into(), Value::String(id.clone()));
                        }
                        Ok(Op::Create {
                            rt: path.to_owned(),
                            id,
                            value,
                        })
                    }
                    "PUT" => {
                        let (rt, id) = path
                            .split_once('/')
                            .ok_or_else(|| ApiError::bad_request("PUT url must be Type/id"))?;
                        // `ifNoneMatch: *` (HTTP's "only if none exists"): a create with this
                        // id, which conflicts (409) when the record exists by commit time.
                        match e.pointer("/request/ifNoneMatch").and_then(Value::as_str) {
                            Some("*") if e.pointer("/request/ifMatch").is_none() => {
                                if !valid_id(id) {
                                    return Err(ApiError::bad_request(format!(
                                        "'{id}' is not a valid FHIR id"
                                    )));
                                }
                                let value = resource()?;
                                if value.get("id").and_then(Value::as_str) != Some(id) {
                                    return Err(ApiError::bad_request(
                                        "the resource id must match the id in the URL",
                                    ));
                                }
                                return Ok(Op::Create {
                                    rt: rt.to_owned(),
                                    id: id.to_owned(),
                                    value,
                                });
                            }
                            Some(_) => {
                                return Err(ApiError::bad_request(
                                    "ifNoneMatch on PUT must be \"*\" (and without ifMatch)",
                                ));
                            }
                            None => {}
                        }
                        let if_match = match e.pointer("/request/ifMatch").and_then(Value::as_str) {
                            Some(v) => Some(
                                medledger_http::parse_if_match(v)
                                    .ok_or_else(|| ApiError::bad_request("malformed ifMatch"))?,
                            ),
                            None => None,
                        };
                        Ok(Op::Update {
                            rt: rt.to_owned(),
                            id: id.to_owned(),
                            value: resource()?,
                            if_match,
                        })
                    }
                    "DELETE" => {
                        let (rt, id) = path
                            .split_once('/')
                            .ok_or_else(|| ApiError::bad_request("DELETE url must be Type/id"))?;
                        Ok(Op::Delete {
                            rt: rt.to_owned(),
                            id: id.to_owned(),
                        })
                    }
                    other => Err(ApiError::bad_request(format!(
                        "request.method '{other}' is not supported in Bundles"
                    ))),
                }
            })
            .collect()
    }

    async fn transaction(&self, caller: &Caller, ops: Vec<Op>) -> Result<Vec<Value>, ApiError> {
        let mut seen = HashSet::new();
        for op in &ops {
            if !seen.insert(op.key()) {
                return Err(ApiError::bad_request(format!(
                    "{} appears more than once in the transaction",
                    op.key()
                )));
            }
        }
        // Encrypt and store blobs concurrently; they only become visible with the commit.
        let results =
            futures::future::join_all(ops.into_iter().map(|op| self.prepare_op(caller, op))).await;
        let mut prepared = Vec::new();
        let mut slots = Vec::new();
        let mut failure = None;
        for (i, r) in results.into_iter().enumerate() {
            match r {
                Ok(Some(p)) => {
                    slots.push(Some(prepared.len()));
                    prepared.push(p);
                }
                Ok(None) => slots.push(None),
                Err(e) => {
                    failure.get_or_insert(entry_error(i, &e));
                    slots.push(None);
                }
            }
        }
        if let Some(e) = failure {
            self.discard(&prepared).await;
            return Err(e);
        }
        let outcomes = self.commit(caller, prepared).await?;
        Ok(slots
            .into_iter()
            .map(|slot| match slot {
                Some(i) => success_entry(&outcomes[i]),
                None => json!({"response": {"status": status_line(204)}}),
            })
            .collect())
    }

    /// Batch entries commit one by one, each referenced entry before the entries that refer to
    /// it; an entry whose referenced entry failed fails too, so no stored resource points at a
    /// resource that was never stored (or at an id someone else could later claim).
    async fn batch(
        &self,
        caller: &Caller,
        planned: Vec<Result<Op, ApiError>>,
        links: &[(Option<String>, Vec<String>)],
    ) -> Vec<Value> {
        let prepared = futures::future::join_all(planned.into_iter().map(|r| async move {
            match r {
                Ok(op) => self
                    .prepare_op(caller, op)
                    .await
                    .map(|p| Slot::Ready(p.map(Box::new)))
                    .unwrap_or_else(Slot::Failed),
                Err(e) => Slot::Failed(e),
            }
        }))
        .await;
        let mut slots = prepared;
        let index_of: HashMap<&str, usize> = links
            .iter()
            .enumerate()
            .filter_map(|(i, (full, _))| full.as_deref().map(|f| (f, i)))
            .collect();
        let deps: Vec<Vec<usize>> = links
            .iter()
            .enumerate()
            .map(|(i, (_, refs))| {
                refs.iter()
                    .filter_map(|r| index_of.get(r.as_str()).copied())
                    .filter(|&j| j != i)
                    .collect()
            })
            .collect();
        loop {
            let mut progress = false;
            for i in 0..slots.len() {
                if !matches!(slots[i], Slot::Ready(_)) {
                    continue;
                }
                if let Some(&j) = deps[i]
                    .iter()
                    .find(|&&j| matches!(slots[j], Slot::Failed(_)))
                {
                    let failed = std::mem::replace(
                        &mut slots[i],
                        Slot::Failed(ApiError::bad_request(format!(
                            "refers to entry {j}, which failed"
                        ))),
                    );
                    if let Slot::Ready(Some(p)) = failed {
                        self.discard(std::slice::from_ref(&*p)).await;
                    }
                    progress = true;
                } else if deps[i].iter().all(|&j| matches!(slots[j], Slot::Done(_))) {
                    slots[i] = self
                        .commit_slot(caller, std::mem::replace(&mut slots[i], Slot::Ready(None)))
                        .await;
                    progress = true;
                }
            }
            if !progress {
                break;
            }
        }
        // Entries left refer to each other in a cycle: commit them in Bundle order.
        for slot in &mut slots {
            if matches!(slot, Slot::Ready(_)) {
                *slot = self
                    .commit_slot(caller, std::mem::replace(slot, Slot::Ready(None)))
                    .await;
            }
        }
        slots
            .into_iter()
            .map(|s| match s {
                Slot::Done(v) => v,
                Slot::Failed(e) => json!({"response": {"status": status_line(e.status.as_u16()), "outcome": e.outcome()}}),
                Slot::Ready(_) => json!({"response": {"status": status_line(500)}}),
            })
            .collect()
    }

    /// Records the refused entries of a batch (the committed ones were audited with their
    /// commit), before the response reports them.
    async fn audit_refused_entries(&self, caller: &Caller, out: &[Value]) -> Result<(), ApiError> {
        let entries: Vec<Entry> = out
            .iter()
            .enumerate()
            .filter_map(|(i, e)| {
                let status = e["response"]["status"].as_str()?;
                let code: u16 = status.split(' ').next()?.parse().ok()?;
                (code >= 400).then(|| {
                    Entry::by(caller, "ingest", "batch", Action::Execute)
                        .touching(format!("Bundle.entry[{i}]"))
                        .ended(
                            Outcome::of_status(code),
                            e["response"]["outcome"]["issue"][0]["diagnostics"]
                                .as_str()
                                .map(str::to_owned),
                        )
                })
            })
            .collect();
        self.audit.record(&entries).await.map_err(|e| {
            tracing::warn!(error = %e, "could not record the audit events of refused batch entries");
            ApiError::unavailable("the audit trail is unavailable", 1)
        })
    }

    async fn commit_slot(&self, caller: &Caller, slot: Slot) -> Slot {
        match slot {
            Slot::Ready(Some(p)) => match self.commit(caller, vec![*p]).await {
                Ok(mut o) => o.pop().map_or_else(
                    || Slot::Failed(ApiError::internal("no outcome")),
                    |o| Slot::Done(success_entry(&o)),
                ),
                Err(e) => Slot::Failed(e),
            },
            Slot::Ready(None) => Slot::Done(json!({"response": {"status": status_line(204)}})),
            other => other,
        }
    }
}

/// A batch entry on its way through.
enum Slot {
    /// Prepared (blob stored), not committed; `None` for a no-op delete.
    Ready(Option<Box<Prepared>>),
    /// Committed; the response entry.
    Done(Value),
    /// Refused.
    Failed(ApiError),
}

/// Each entry's `fullUrl` and the `urn:` references its resource makes.
fn links(entries: &[Value]) -> Vec<(Option<String>, Vec<String>)> {
    let none = HashMap::new();
    entries
        .iter()
        .map(|e| {
            let mut refs = Vec::new();
            if let Some(r) = e.get("resource") {
                unresolved_urn_references(r, &none, &mut refs);
            }
            (
                e.get("fullUrl").and_then(Value::as_str).map(str::to_owned),
                refs,
            )
        })
        .collect()
}
