//! Batch and transaction Bundles (FHIR R4 §3.1.0.11).
//!
//! Both kinds assign ids to every `POST` entry first and rewrite `urn:uuid:` references between
//! entries to those ids, so Synthea-style bundles whose entries refer to each other work as batch
//! too. A transaction then commits every entry in one index transaction or none; a batch commits
//! each entry on its own and reports per entry.

use std::collections::{HashMap, HashSet};

use medledger_audit::{Action, Audit, Entry, Outcome};
use medledger_auth::Caller;
use medledger_error::Categorized;
use medledger_fhir::valid_id;
use medledger_fhir::{rewrite_references, unresolved_urn_references};
use serde_json::Value;

use super::conditional::Matches;
use super::write::{Ingest, Op, Prepared, WriteOutcome, new_id};
use crate::IngestError;

/// Whether a Bundle is processed atomically.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BundleKind {
    /// All or nothing.
    Transaction,
    /// Each entry on its own.
    Batch,
}

/// What a Bundle did, entry by entry, for the edge to render (`transaction-response` or
/// `batch-response` over HTTP, an acknowledgement over MLLP).
#[derive(Debug)]
pub struct BundleOutcome {
    /// Transaction or batch.
    pub kind: BundleKind,
    /// Per entry, in Bundle order: the version written (`None` for a delete that changed
    /// nothing), or why the entry failed (batch only: a failed transaction is an error).
    pub entries: Vec<Result<Option<WriteOutcome>, IngestError>>,
}

impl Ingest {
    /// `POST /` with a Bundle of type `batch` or `transaction` (FHIR R4 §3.1.0.11), audited: each
    /// committed version's AuditEvent is stored with it, each refused batch entry's and a
    /// refused Bundle's before this returns.
    pub async fn bundle(
        &self,
        caller: &Caller,
        bundle: Value,
    ) -> Result<BundleOutcome, IngestError> {
        let interaction = match bundle.get("type").and_then(Value::as_str) {
            Some("batch") => "batch",
            _ => "transaction",
        };
        let mut audit = self
            .audit
            .begin(Entry::by(caller, "ingest", interaction, Action::Execute).touching("Bundle"));
        let result = self.bundle_in(caller, bundle, &mut audit).await;
        audit.finish(result).await
    }

    async fn bundle_in(
        &self,
        caller: &Caller,
        bundle: Value,
        audit: &mut Audit,
    ) -> Result<BundleOutcome, IngestError> {
        if bundle.get("resourceType").and_then(Value::as_str) != Some("Bundle") {
            return Err(IngestError::Invalid(
                "POST to the base URL takes a Bundle".into(),
            ));
        }
        let kind = match bundle.get("type").and_then(Value::as_str) {
            Some("transaction") => BundleKind::Transaction,
            Some("batch") => BundleKind::Batch,
            other => {
                return Err(IngestError::Invalid(format!(
                    "Bundle.type must be 'batch' or 'transaction', not {}",
                    other.map_or("missing".to_owned(), |t| format!("'{t}'"))
                )));
            }
        };
        let entries = match bundle.get("entry") {
            None => Vec::new(),
            Some(Value::Array(e)) => e.clone(),
            Some(_) => return Err(IngestError::Invalid("Bundle.entry must be an array".into())),
        };
        if entries.len() > self.limits.max_bundle_entries {
            return Err(IngestError::TooLarge(format!(
                "a Bundle may hold at most {} entries",
                self.limits.max_bundle_entries
            )));
        }
        // bdl-7: a fullUrl names one entry; a second would make references to it ambiguous.
        let mut full_urls = HashSet::new();
        for (i, e) in entries.iter().enumerate() {
            if let Some(full) = e.get("fullUrl").and_then(Value::as_str)
                && !full_urls.insert(full)
            {
                return Err(IngestError::entry(
                    i,
                    IngestError::Invalid("its fullUrl is another entry's too".into()),
                ));
            }
        }
        let conditions = self.conditions(&entries).await?;
        let planned = self.plan(&entries, &conditions);
        let entries = match kind {
            BundleKind::Transaction => {
                let ops = planned
                    .into_iter()
                    .enumerate()
                    .map(|(i, r)| r.map_err(|e| IngestError::entry(i, e)))
                    .collect::<Result<Vec<_>, _>>()?;
                let written = self.transaction(caller, ops).await?;
                audit.written();
                written.into_iter().map(Ok).collect()
            }
            BundleKind::Batch => {
                // A matched entry's answer is a read of its record, whatever the others do.
                for op in planned.iter().flatten() {
                    if let Some(read) = read_of_match(caller, op) {
                        audit.also(read);
                    }
                }
                let out = self.batch(caller, planned, &links(&entries)).await;
                // The committed entries were audited with their commits; the refused ones are
                // recorded with this Bundle's audit, before the response reports them.
                for (i, r) in out.iter().enumerate() {
                    if let Err(e) = r {
                        audit.also(
                            Entry::by(caller, "ingest", "batch", Action::Execute)
                                .touching(format!("Bundle.entry[{i}]"))
                                .ended(Outcome::of(e.category()), Some(e.diagnostics())),
                        );
                    }
                }
                audit.written();
                out
            }
        };
        Ok(BundleOutcome { kind, entries })
    }

    /// The Bundle's conditions, looked up before anything is planned: each entry's
    /// `ifNoneExist` (what its criteria match) and every conditional reference
    /// (`Patient?identifier=…`, which must match exactly one record, else 412).
    async fn conditions(&self, entries: &[Value]) -> Result<Conditions, IngestError> {
        let mut c = Conditions::default();
        for (i, e) in entries.iter().enumerate() {
            let found = match (
                e.pointer("/request/ifNoneExist").and_then(Value::as_str),
                e.pointer("/resource/resourceType").and_then(Value::as_str),
            ) {
                (Some(criteria), Some(rt)) => Some(self.matches(rt, criteria).await),
                _ => None,
            };
            c.if_none_exist.push(found);
            let mut refs = Vec::new();
            if let Some(r) = e.get("resource") {
                conditional_references(r, &mut refs);
            }
            for r in refs {
                if c.references.contains_key(&r) {
                    continue;
                }
                let (rt, criteria) = r.split_once('?').unwrap_or((&r, ""));
                let target = match self
                    .matches(rt, criteria)
                    .await
                    .map_err(|e| IngestError::entry(i, e))?
                {
                    Matches::One { id, .. } => format!("{rt}/{id}"),
                    Matches::None(_) => {
                        return Err(IngestError::entry(
                            i,
                            IngestError::PreconditionFailed(format!(
                                "the conditional reference '{r}' matches no record"
                            )),
                        ));
                    }
                    Matches::Several => {
                        return Err(IngestError::entry(
                            i,
                            IngestError::PreconditionFailed(format!(
                                "the conditional reference '{r}' matches more than one record"
                            )),
                        ));
                    }
                };
                c.references.insert(r, target);
            }
        }
        Ok(c)
    }

    /// Turns entries into operations, assigning ids and resolving `urn:uuid:` and conditional
    /// references.
    fn plan(&self, entries: &[Value], conditions: &Conditions) -> Vec<Result<Op, IngestError>> {
        // Pass 1: ids for every entry with a fullUrl, so references can be rewritten; an entry
        // whose `ifNoneExist` matched a record takes that record's id.
        let mut ids: HashMap<String, String> = conditions.references.clone();
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
            let existing = match conditions.if_none_exist.get(assigned.len()) {
                Some(Some(Ok(Matches::One { id, .. }))) => Some(id.clone()),
                _ => None,
            };
            let id = match method {
                "POST" => Some(existing.unwrap_or_else(new_id)),
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
            .zip(&conditions.if_none_exist)
            .map(|((e, id), condition)| {
                let method = e
                    .pointer("/request/method")
                    .and_then(Value::as_str)
                    .ok_or_else(|| IngestError::Invalid("request.method is required".into()))?;
                let url = e
                    .pointer("/request/url")
                    .and_then(Value::as_str)
                    .ok_or_else(|| IngestError::Invalid("request.url is required".into()))?;
                if e.pointer("/request/ifMatch").is_some() && method != "PUT" {
                    return Err(IngestError::Invalid(
                        "ifMatch applies to PUT entries only".into(),
                    ));
                }
                let mut unless = None;
                match condition {
                    Some(_) if method != "POST" => {
                        return Err(IngestError::Invalid(
                            "ifNoneExist applies to POST entries only".into(),
                        ));
                    }
                    Some(Err(e)) => return Err(IngestError::Invalid(e.to_string())),
                    Some(Ok(Matches::Several)) => {
                        return Err(IngestError::PreconditionFailed(
                            "the ifNoneExist criteria match more than one record".into(),
                        ));
                    }
                    Some(Ok(Matches::One {
                        id,
                        version,
                        last_updated,
                        owner,
                    })) => {
                        return Ok(Op::Matched {
                            outcome: WriteOutcome {
                                resource_type: url.trim_matches('/').to_owned(),
                                id: id.clone(),
                                version: *version,
                                last_updated: last_updated.clone(),
                                created: false,
                                resource: None,
                                matched: true,
                            },
                            owner: owner.clone(),
                        });
                    }
                    Some(Ok(Matches::None(guard))) => unless = Some(guard.clone()),
                    None => {}
                }
                let path = url.split('?').next().unwrap_or(url).trim_matches('/');
                let resource = || -> Result<Value, IngestError> {
                    let mut v = e.get("resource").cloned().ok_or_else(|| {
                        IngestError::Invalid(format!("{method} needs entry.resource"))
                    })?;
                    rewrite_references(&mut v, &ids);
                    let mut missing = Vec::new();
                    unresolved_urn_references(&v, &ids, &mut missing);
                    if let Some(m) = missing.first() {
                        return Err(IngestError::Invalid(format!(
                            "reference '{m}' matches no entry's fullUrl"
                        )));
                    }
                    Ok(v)
                };
                match method {
                    "POST" => {
                        if path.contains('/') {
                            return Err(IngestError::Invalid(
                                "POST url must be a resource type".into(),
                            ));
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
                            unless,
                        })
                    }
                    "PUT" => {
                        let (rt, id) = path.split_once('/').ok_or_else(|| {
                            IngestError::Invalid("PUT url must be Type/id".into())
                        })?;
                        // `ifNoneMatch: *` (HTTP's "only if none exists"): a create with this
                        // id, which conflicts (409) when the record exists by commit time.
                        match e.pointer("/request/ifNoneMatch").and_then(Value::as_str) {
                            Some("*") if e.pointer("/request/ifMatch").is_none() => {
                                if !valid_id(id) {
                                    return Err(IngestError::Invalid(format!(
                                        "'{id}' is not a valid FHIR id"
                                    )));
                                }
                                let value = resource()?;
                                if value.get("id").and_then(Value::as_str) != Some(id) {
                                    return Err(IngestError::Invalid(
                                        "the resource id must match the id in the URL".into(),
                                    ));
                                }
                                return Ok(Op::Create {
                                    rt: rt.to_owned(),
                                    id: id.to_owned(),
                                    value,
                                    unless: None,
                                });
                            }
                            Some(_) => {
                                return Err(IngestError::Invalid(
                                    "ifNoneMatch on PUT must be \"*\" (and without ifMatch)".into(),
                                ));
                            }
                            None => {}
                        }
                        let if_match = match e.pointer("/request/ifMatch").and_then(Value::as_str) {
                            Some(v) => {
                                Some(medledger_fhir::etag_version(v).ok_or_else(|| {
                                    IngestError::Invalid("malformed ifMatch".into())
                                })?)
                            }
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
                        let (rt, id) = path.split_once('/').ok_or_else(|| {
                            IngestError::Invalid("DELETE url must be Type/id".into())
                        })?;
                        Ok(Op::Delete {
                            rt: rt.to_owned(),
                            id: id.to_owned(),
                            if_match: None,
                        })
                    }
                    other => Err(IngestError::Invalid(format!(
                        "request.method '{other}' is not supported in Bundles"
                    ))),
                }
            })
            .collect()
    }

    async fn transaction(
        &self,
        caller: &Caller,
        ops: Vec<Op>,
    ) -> Result<Vec<Option<WriteOutcome>>, IngestError> {
        let mut seen = HashSet::new();
        for op in &ops {
            if !seen.insert(op.key()) {
                return Err(IngestError::Invalid(format!(
                    "{} appears more than once in the transaction",
                    op.key()
                )));
            }
        }
        // Conditional creates that matched write nothing; they answer their record.
        let mut matched: Vec<Option<WriteOutcome>> = ops
            .iter()
            .map(|op| match op {
                Op::Matched { outcome, .. } => Some(outcome.clone()),
                _ => None,
            })
            .collect();
        // Each is a read of the record it answers, stored with the transaction's writes.
        let reads: Vec<Entry> = ops
            .iter()
            .filter_map(|op| read_of_match(caller, op))
            .collect();
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
                    failure.get_or_insert(IngestError::entry(i, e));
                    slots.push(None);
                }
            }
        }
        if let Some(e) = failure {
            self.discard(&prepared).await;
            return Err(e);
        }
        let mut outcomes: Vec<Option<WriteOutcome>> = self
            .commit(caller, prepared, reads)
            .await?
            .into_iter()
            .map(Some)
            .collect();
        Ok(slots
            .into_iter()
            .enumerate()
            .map(|(n, slot)| {
                slot.and_then(|i| outcomes[i].take())
                    .or_else(|| matched[n].take())
            })
            .collect())
    }

    /// Batch entries commit one by one, each referenced entry before the entries that refer to
    /// it; an entry whose referenced entry failed fails too, so no stored resource points at a
    /// resource that was never stored (or at an id someone else could later claim).
    async fn batch(
        &self,
        caller: &Caller,
        planned: Vec<Result<Op, IngestError>>,
        links: &[(Option<String>, Vec<String>)],
    ) -> Vec<Result<Option<WriteOutcome>, IngestError>> {
        let prepared = futures::future::join_all(planned.into_iter().map(|r| async move {
            match r {
                Ok(Op::Matched { outcome, .. }) => Slot::Done(Some(outcome)),
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
                        Slot::Failed(IngestError::Invalid(format!(
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
                Slot::Done(v) => Ok(v),
                Slot::Failed(e) => Err(e),
                Slot::Ready(_) => Err(IngestError::Internal(
                    "an entry was left uncommitted".into(),
                )),
            })
            .collect()
    }

    async fn commit_slot(&self, caller: &Caller, slot: Slot) -> Slot {
        match slot {
            Slot::Ready(Some(p)) => match self.commit(caller, vec![*p], Vec::new()).await {
                Ok(mut o) => o.pop().map_or_else(
                    || Slot::Failed(IngestError::Internal("no outcome".into())),
                    |o| Slot::Done(Some(o)),
                ),
                Err(e) => Slot::Failed(e),
            },
            Slot::Ready(None) => Slot::Done(None),
            other => other,
        }
    }
}

/// What a Bundle's conditions matched, found before it is planned.
#[derive(Default)]
struct Conditions {
    /// Per entry: what its `ifNoneExist` criteria match, when it has them.
    if_none_exist: Vec<Option<Result<Matches, IngestError>>>,
    /// Each conditional reference and the `Type/id` it resolves to.
    references: HashMap<String, String>,
}

/// The conditional references (`Type?criteria`) in `v`.
fn conditional_references(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::Object(o) => {
            for (k, x) in o {
                match (k.as_str(), x.as_str()) {
                    ("reference", Some(r))
                        if r.split_once('?').is_some_and(|(t, _)| {
                            !t.contains('/') && t.starts_with(|c: char| c.is_ascii_uppercase())
                        }) =>
                    {
                        out.push(r.to_owned());
                    }
                    _ => conditional_references(x, out),
                }
            }
        }
        Value::Array(a) => a.iter().for_each(|x| conditional_references(x, out)),
        _ => {}
    }
}

/// A batch entry on its way through.
enum Slot {
    /// Prepared (blob stored), not committed; `None` for a no-op delete.
    Ready(Option<Box<Prepared>>),
    /// Committed (`None`: a delete that changed nothing).
    Done(Option<WriteOutcome>),
    /// Refused.
    Failed(IngestError),
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

/// The audit entry of a Bundle entry whose `ifNoneExist` matched a record: a read of it.
fn read_of_match(caller: &Caller, op: &Op) -> Option<Entry> {
    let Op::Matched { outcome: o, owner } = op else {
        return None;
    };
    Some(Entry::by(caller, "ingest", "read", Action::Read).matched(
        format!("{}/{}/_history/{}", o.resource_type, o.id, o.version),
        owner,
    ))
}
