//! Single-resource writes (FHIR R4 §3.1.0.4 create, §3.1.0.5 update, §3.1.0.7 delete), and the
//! preparation step that bundles reuse.

use std::sync::Arc;

use bytes::Bytes;
use medledger_access::{AccessPolicy, AccessQuery, Interaction, Scopes};
use medledger_audit::{Action, Audit, Auditor, Entry};
use medledger_auth::Caller;
use medledger_blobstore::{BlobStore, Cid};
use medledger_crypto::{commitment, new_salt, seal_version, version_aad};
use medledger_fhir::{Owner, canonical_json, owner_of, validate_resource};
use medledger_fhir::{now_instant, valid_id};
use medledger_keys::OwnerKeys;
use medledger_proto::{Message, RECORDS_TOPIC};
use medledger_storage_api::{
    IndexQuery, OutboxEvent, RecordIndex, SearchIndex, VersionRow, VersionWrite,
};
use serde_json::{Value, json};

use crate::IngestError;

/// How much one request may ask of the write path.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Most entries accepted in one batch or transaction Bundle (413 beyond).
    pub max_bundle_entries: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_bundle_entries: 10_000,
        }
    }
}

/// The ingest service's domain object.
#[derive(Clone)]
pub struct Ingest {
    pub(crate) index: Arc<dyn RecordIndex>,
    /// Finds the records conditional interactions' criteria match.
    pub(crate) search: Arc<dyn SearchIndex>,
    pub(crate) blobs: Arc<dyn BlobStore>,
    pub(crate) keys: OwnerKeys,
    pub(crate) policy: Arc<dyn AccessPolicy>,
    pub(crate) audit: Auditor,
    pub(crate) limits: Limits,
    /// Files each version's search values as blind tags.
    pub(crate) index_key: medledger_search::IndexKey,
    /// What new versions are tagged under: `index_key`, and the next generation's during a
    /// rotation.
    pub(crate) write_keys: Vec<medledger_search::IndexKey>,
}

/// A version ready to commit: encrypted and in the blob store, not yet in the index.
#[derive(Debug, Clone)]
pub struct Prepared {
    /// The index row and the version it replaces.
    pub write: VersionWrite,
    /// Its event.
    pub event: OutboxEvent,
    /// The stored resource (what reads return); `None` for a deletion.
    pub resource: Option<Value>,
    /// Blob written for it (removed again if the commit fails).
    pub blob: Option<Cid>,
    /// Whether this created the resource (201) rather than updating it (200).
    pub created: bool,
}

/// What a write did.
#[derive(Debug, Clone)]
pub struct WriteOutcome {
    /// Resource type.
    pub resource_type: String,
    /// Logical id.
    pub id: String,
    /// New version.
    pub version: u64,
    /// `meta.lastUpdated`.
    pub last_updated: String,
    /// Created (201) or updated (200).
    pub created: bool,
    /// The stored resource, `None` for deletions.
    pub resource: Option<Value>,
    /// A conditional create found this existing record instead of writing (200, no body).
    pub matched: bool,
}

/// A new server-assigned logical id.
pub(crate) fn new_id() -> String {
    uuid::Uuid::new_v4().to_string()
}

/// One write, as a single request or a Bundle entry asks for it.
#[derive(Debug, Clone)]
pub(crate) enum Op {
    Create {
        rt: String,
        id: String,
        value: Value,
        /// Conditional create: commit only while no record matches these criteria.
        unless: Option<IndexQuery>,
    },
    Update {
        rt: String,
        id: String,
        value: Value,
        if_match: Option<u64>,
    },
    Delete {
        rt: String,
        id: String,
        if_match: Option<u64>,
    },
    /// A conditional create in a Bundle whose criteria matched this record, owned by `owner`:
    /// nothing to write, and a read of it in the trail.
    Matched {
        outcome: WriteOutcome,
        owner: String,
    },
}

impl Op {
    pub(crate) fn key(&self) -> String {
        match self {
            Op::Create { rt, id, .. } | Op::Update { rt, id, .. } | Op::Delete { rt, id, .. } => {
                format!("{rt}/{id}")
            }
            Op::Matched { outcome: o, .. } => format!("{}/{}", o.resource_type, o.id),
        }
    }
}

impl Ingest {
    /// Wires the service to its ports.
    pub fn new(
        index: Arc<dyn RecordIndex>,
        search: Arc<dyn SearchIndex>,
        blobs: Arc<dyn BlobStore>,
        keys: OwnerKeys,
        policy: Arc<dyn AccessPolicy>,
        audit: Auditor,
        limits: Limits,
    ) -> Self {
        Self {
            index_key: keys.search_index_key(),
            write_keys: keys.search_write_keys(),
            index,
            search,
            blobs,
            keys,
            policy,
            audit,
            limits,
        }
    }

    /// 403 unless some scope of the caller could cover `interaction` on `rt` (before anything
    /// is looked up).
    pub(crate) fn scope_precheck(
        &self,
        caller: &Caller,
        interaction: Interaction,
        rt: &str,
    ) -> Result<(), IngestError> {
        if rt == "Consent" {
            // Consents are the consent service's, where they take effect on every decision;
            // stored here they would be records that decide nothing.
            return Err(IngestError::NotSupported(
                "Consent resources are kept by the consent service (/fhir/Consent through the gateway)".into(),
            ));
        }
        if rt == "AuditEvent" {
            // The audit trail is written by the servers that saw the interactions; an event a
            // client could write would prove nothing.
            return Err(IngestError::NotAllowed(
                "AuditEvents are recorded by MedLedger itself and cannot be written".into(),
            ));
        }
        medledger_access::require_reach(&Scopes::parse(&caller.claims.scope), rt, interaction)?;
        Ok(())
    }

    /// Denies (403) unless the policy permits this write on a record of `owner` whose current
    /// version `custodian` wrote; 503 when no decision can be had.
    pub(crate) async fn authorize(
        &self,
        caller: &Caller,
        interaction: Interaction,
        rt: &str,
        owner: &str,
        custodian: Option<&str>,
    ) -> Result<(), IngestError> {
        self.policy
            .permit(AccessQuery {
                caller,
                interaction,
                resource_type: rt,
                owner: Some(owner),
                custodian,
                categories: None,
            })
            .await?;
        Ok(())
    }

    /// Who wrote the current version of `rt/id`.
    async fn custodian_of(
        &self,
        rt: &str,
        id: &str,
        version: u64,
    ) -> Result<Option<String>, IngestError> {
        Ok(self.index.version(rt, id, version).await?.map(|r| r.actor))
    }

    /// Checks that `value` is a valid resource of type `rt`.
    pub(crate) fn validate_as(&self, rt: &str, value: &Value) -> Result<(), IngestError> {
        let body_type = validate_resource(value)?;
        if body_type != rt {
            return Err(IngestError::Invalid(format!(
                "resourceType '{body_type}' does not match the URL type '{rt}'"
            )));
        }
        Ok(())
    }

    /// Encrypts and stores a new version of `rt/id` (already validated, references final).
    /// `expected` is the version it replaces; `prev_owner` that version's owner.
    pub(crate) async fn prepare_version(
        &self,
        caller: &Caller,
        rt: &str,
        id: &str,
        mut value: Value,
        expected: Option<u64>,
        prev_owner: Option<&str>,
    ) -> Result<Prepared, IngestError> {
        let version = expected.map_or(1, |v| v + 1);
        let owner = owner_of(rt, id, &value).label();
        let interaction = if expected.is_some() {
            Interaction::Update
        } else {
            Interaction::Create
        };
        let custodian = match expected {
            Some(current) => self.custodian_of(rt, id, current).await?,
            None => None,
        };
        // An update is decided on the record as it is: its owner and its custodian.
        self.authorize(
            caller,
            interaction,
            rt,
            prev_owner.unwrap_or(&owner),
            custodian.as_deref(),
        )
        .await?;
        if owner
            .strip_prefix("Patient/")
            .is_some_and(|pid| !valid_id(pid))
        {
            // The owner names a key and is stored in clear: it must be a real id, not free text.
            return Err(IngestError::Unprocessable(
                "the patient reference is not a valid FHIR id (Patient/[A-Za-z0-9-.]{1,64})".into(),
            ));
        }
        if let Some(prev) = prev_owner
            && prev != owner
        {
            return Err(IngestError::Unprocessable(format!(
                "an update may not move {rt}/{id} to another patient compartment (owner would change)"
            )));
        }
        let (last_updated, now_ms) = now_instant();
        let obj = value
            .as_object_mut()
            .ok_or_else(|| IngestError::Invalid("a resource must be a JSON object".into()))?;
        obj.insert("id".into(), Value::String(id.to_owned()));
        let meta = obj.entry("meta").or_insert_with(|| json!({}));
        if !meta.is_object() {
            return Err(IngestError::Unprocessable("meta must be an object".into()));
        }
        meta["versionId"] = Value::String(version.to_string());
        meta["lastUpdated"] = Value::String(last_updated.clone());

        let canonical = canonical_json(&value);
        // Filed with the version in one transaction: what is answered 201 is found by the next
        // search.
        let tags = medledger_search::index_tags(&self.write_keys, rt, &value);
        let salt = new_salt();
        let commit = commitment(&salt, &canonical);
        let key = self.keys.get_or_create(&owner).await?;
        let aad = version_aad(rt, id, version, &owner);
        let sealed = seal_version(&key, &aad, &salt, &canonical);
        let cid = self.blobs.put(Bytes::from(sealed.blob)).await?;

        let row = VersionRow {
            resource_type: rt.to_owned(),
            id: id.to_owned(),
            version,
            cid: Some(cid.to_string()),
            wrapped_key: sealed.wrapped_data_key,
            owner: owner.clone(),
            commitment: Some(commit),
            deleted: false,
            last_updated,
            actor: caller.claims.sub.clone(),
        };
        let event = self.event_for(&row, now_ms);
        Ok(Prepared {
            write: VersionWrite {
                row,
                expected,
                tags,
                unless: None,
            },
            event,
            resource: Some(value),
            blob: Some(cid),
            created: expected.is_none(),
        })
    }

    /// A deletion version of `rt/id`, replacing `current`.
    pub(crate) fn prepare_delete(
        &self,
        caller: &Caller,
        rt: &str,
        id: &str,
        current: u64,
        owner: &str,
    ) -> Prepared {
        let (last_updated, now_ms) = now_instant();
        let row = VersionRow {
            resource_type: rt.to_owned(),
            id: id.to_owned(),
            version: current + 1,
            cid: None,
            wrapped_key: Vec::new(),
            owner: owner.to_owned(),
            commitment: None,
            deleted: true,
            last_updated,
            actor: caller.claims.sub.clone(),
        };
        let event = self.event_for(&row, now_ms);
        Prepared {
            write: VersionWrite {
                row,
                expected: Some(current),
                // A deleted record is found by no search.
                tags: Vec::new(),
                unless: None,
            },
            event,
            resource: None,
            blob: None,
            created: false,
        }
    }

    fn event_for(&self, row: &VersionRow, now_ms: i64) -> OutboxEvent {
        let pseudonym = self.keys.pseudonym(&row.owner);
        let ev = medledger_ledger::events::record_event(row, new_id(), pseudonym.clone(), now_ms);
        OutboxEvent {
            topic: RECORDS_TOPIC.to_owned(),
            key: pseudonym.into_bytes(),
            payload: ev.encode_to_vec(),
        }
    }

    /// Commits prepared versions atomically, each with its AuditEvent, and the entries `also`
    /// (the reads of a transaction's matched conditional creates); on failure removes their
    /// blobs.
    pub(crate) async fn commit(
        &self,
        caller: &Caller,
        prepared: Vec<Prepared>,
        also: Vec<Entry>,
    ) -> Result<Vec<WriteOutcome>, IngestError> {
        let writes: Vec<VersionWrite> = prepared.iter().map(|p| p.write.clone()).collect();
        let mut events: Vec<OutboxEvent> = prepared.iter().map(|p| p.event.clone()).collect();
        let entries: Vec<Entry> = prepared
            .iter()
            .map(|p| {
                let row = &p.write.row;
                let (interaction, action) = if row.deleted {
                    ("delete", Action::Delete)
                } else if p.created {
                    ("create", Action::Create)
                } else {
                    ("update", Action::Update)
                };
                Entry::by(caller, "ingest", interaction, action)
                    .about(Some(&row.owner))
                    .touching(format!("{}/_history/{}", row.key(), row.version))
            })
            .chain(also)
            .collect();
        let (audit_rows, audit_events) = Auditor::prepare(&entries);
        events.extend(audit_events);
        if let Err(e) = self.index.commit(&writes, &events, &audit_rows).await {
            self.discard(&prepared).await;
            return Err(e.into());
        }
        Ok(prepared
            .into_iter()
            .map(|p| WriteOutcome {
                resource_type: p.write.row.resource_type,
                id: p.write.row.id,
                version: p.write.row.version,
                last_updated: p.write.row.last_updated,
                created: p.created,
                resource: p.resource,
                matched: false,
            })
            .collect())
    }

    /// Removes the blobs of versions that will not be committed.
    pub(crate) async fn discard(&self, prepared: &[Prepared]) {
        for cid in prepared.iter().filter_map(|p| p.blob) {
            if let Err(e) = self.blobs.remove(&cid).await {
                // Left for the start-up sweep; never referenced by the index.
                tracing::warn!(%cid, error = %e, "could not remove blob of a failed write");
            }
        }
    }

    /// Validates, authorises and encrypts one write; `None` for a delete of a deleted record.
    /// Single requests and Bundle entries both come through here.
    pub(crate) async fn prepare_op(
        &self,
        caller: &Caller,
        op: Op,
    ) -> Result<Option<Prepared>, IngestError> {
        match op {
            Op::Create {
                rt,
                id,
                value,
                unless,
            } => {
                self.scope_precheck(caller, Interaction::Create, &rt)?;
                self.validate_as(&rt, &value)?;
                let mut p = self
                    .prepare_version(caller, &rt, &id, value, None, None)
                    .await?;
                p.write.unless = unless;
                Ok(Some(p))
            }
            Op::Update {
                rt,
                id,
                value,
                if_match,
            } => {
                self.scope_precheck(caller, Interaction::Update, &rt)?;
                if !valid_id(&id) {
                    return Err(IngestError::Invalid(format!(
                        "'{id}' is not a valid FHIR id"
                    )));
                }
                self.validate_as(&rt, &value)?;
                match value.get("id").and_then(Value::as_str) {
                    Some(body_id) if body_id == id => {}
                    Some(_) => {
                        return Err(IngestError::Invalid(
                            "the resource id does not match the id in the URL".into(),
                        ));
                    }
                    None => {
                        return Err(IngestError::Invalid(
                            "an update must carry the resource id in the body".into(),
                        ));
                    }
                }
                let head = self.index.head(&rt, &id).await?;
                if let Some(want) = if_match {
                    check_if_match(want, head.as_ref().map(|h| h.version), &rt, &id)?;
                }
                let (expected, owner) = (
                    head.as_ref().map(|h| h.version),
                    head.as_ref().map(|h| h.owner.as_str()),
                );
                Ok(Some(
                    self.prepare_version(caller, &rt, &id, value, expected, owner)
                        .await?,
                ))
            }
            Op::Matched { .. } => Ok(None),
            Op::Delete { rt, id, if_match } => {
                self.scope_precheck(caller, Interaction::Delete, &rt)?;
                let head = self.index.head(&rt, &id).await?;
                if let Some(want) = if_match {
                    check_if_match(want, head.as_ref().map(|h| h.version), &rt, &id)?;
                }
                // FHIR R4 §3.1.0.7.1: deleting a resource that does not exist, or is already
                // deleted, succeeds (204) and changes nothing.
                let Some(head) = head else {
                    return Ok(None);
                };
                if head.deleted {
                    return Ok(None);
                }
                let custodian = self.custodian_of(&rt, &id, head.version).await?;
                self.authorize(
                    caller,
                    Interaction::Delete,
                    &rt,
                    &head.owner,
                    custodian.as_deref(),
                )
                .await?;
                Ok(Some(self.prepare_delete(
                    caller,
                    &rt,
                    &id,
                    head.version,
                    &head.owner,
                )))
            }
        }
    }

    /// Prepares and commits one write, audited: a committed version's AuditEvent is stored
    /// with it, a refusal's by `audit`.
    async fn write(
        &self,
        caller: &Caller,
        op: Op,
        audit: &mut Audit,
    ) -> Result<Option<WriteOutcome>, IngestError> {
        let target = op.key();
        let result = match self.prepare_op(caller, op).await {
            Ok(Some(p)) => self
                .commit(caller, vec![p], Vec::new())
                .await
                .and_then(one)
                .map(Some),
            Ok(None) => Ok(None),
            Err(e) => Err(e),
        };
        match &result {
            Ok(Some(_)) => {
                audit.written();
            }
            _ if audit.patient().is_none() => {
                // So the patient sees the attempt too: the record's owner, when it exists.
                if let Some((rt, id)) = target.split_once('/')
                    && let Ok(Some(head)) = self.index.head(rt, id).await
                {
                    audit.about(Some(&head.owner));
                }
            }
            _ => {}
        }
        result
    }

    /// Prepares and commits one write (for conditional interactions), audited like the rest.
    pub(crate) async fn write_audited(
        &self,
        caller: &Caller,
        op: Op,
        audit: &mut Audit,
    ) -> Result<Option<WriteOutcome>, IngestError> {
        self.write(caller, op, audit).await
    }

    /// `POST /{type}`.
    pub async fn create(
        &self,
        caller: &Caller,
        rt: &str,
        value: Value,
    ) -> Result<WriteOutcome, IngestError> {
        let mut audit = self
            .audit
            .begin(Entry::by(caller, "ingest", "create", Action::Create).touching(rt));
        if rt != "Patient" {
            // The owner the body names, so a refused create reaches the patient's trail (a new
            // Patient has no owner to tell yet).
            audit.about(Some(&owner_label(rt, "", &value)));
        }
        let op = Op::Create {
            rt: rt.to_owned(),
            id: new_id(),
            value,
            unless: None,
        };
        let result = self.write(caller, op, &mut audit).await.and_then(|o| {
            o.ok_or_else(|| IngestError::Internal("create produced no version".into()))
        });
        audit.finish(result).await
    }

    /// `PUT /{type}/{id}` (update, or create with a client-chosen id).
    pub async fn update(
        &self,
        caller: &Caller,
        rt: &str,
        id: &str,
        value: Value,
        if_match: Option<u64>,
    ) -> Result<WriteOutcome, IngestError> {
        let mut audit = self.audit.begin(
            Entry::by(caller, "ingest", "update", Action::Update).touching(format!("{rt}/{id}")),
        );
        let op = Op::Update {
            rt: rt.to_owned(),
            id: id.to_owned(),
            value,
            if_match,
        };
        let result = self.write(caller, op, &mut audit).await.and_then(|o| {
            o.ok_or_else(|| IngestError::Internal("update produced no version".into()))
        });
        audit.finish(result).await
    }

    /// `DELETE /{type}/{id}`. Deleting a deleted or unknown resource is a no-op (204), unless
    /// `if_match` names a version that is not the current one (412).
    pub async fn delete(
        &self,
        caller: &Caller,
        rt: &str,
        id: &str,
        if_match: Option<u64>,
    ) -> Result<Option<WriteOutcome>, IngestError> {
        let mut audit = self.audit.begin(
            Entry::by(caller, "ingest", "delete", Action::Delete).touching(format!("{rt}/{id}")),
        );
        let op = Op::Delete {
            rt: rt.to_owned(),
            id: id.to_owned(),
            if_match,
        };
        let result = self.write(caller, op, &mut audit).await;
        audit.finish(result).await
    }

    /// Removes blobs no index row refers to (left by a crash between blob write and commit).
    /// Run at start-up, before writes are accepted. If any referenced object cannot be walked (a
    /// damaged DAG node), nothing is removed: its children would look unreferenced, and evidence
    /// must not be collected as garbage.
    pub async fn collect_orphans<E: std::fmt::Display>(
        &self,
        all_blocks: Vec<Cid>,
        blocks_of: impl Fn(&Cid) -> Result<Vec<Cid>, E>,
    ) -> Result<usize, IngestError> {
        let mut live = std::collections::HashSet::new();
        for cid in self.index.referenced_cids().await? {
            let c: Cid = cid.parse().map_err(|_| {
                IngestError::Integrity(format!("the index holds an unparseable CID '{cid}'"))
            })?;
            match blocks_of(&c) {
                Ok(blocks) => live.extend(blocks),
                Err(e) => {
                    tracing::warn!(%c, error = %e, "not collecting garbage: a referenced object cannot be walked");
                    return Ok(0);
                }
            }
        }
        if live.is_empty() && !all_blocks.is_empty() {
            tracing::warn!(
                blocks = all_blocks.len(),
                "not collecting garbage: the index refers to no blob at all"
            );
            return Ok(0);
        }
        let mut removed = 0;
        for cid in all_blocks.into_iter().filter(|c| !live.contains(c)) {
            self.blobs.remove(&cid).await?;
            removed += 1;
        }
        Ok(removed)
    }
}

fn one(mut v: Vec<WriteOutcome>) -> Result<WriteOutcome, IngestError> {
    v.pop()
        .ok_or_else(|| IngestError::Internal("write produced no outcome".into()))
}

/// `If-Match: W/"want"` against the current version (`None`: the record does not exist).
fn check_if_match(want: u64, current: Option<u64>, rt: &str, id: &str) -> Result<(), IngestError> {
    match current {
        Some(v) if v == want => Ok(()),
        Some(v) => Err(IngestError::PreconditionFailed(format!(
            "If-Match W/\"{want}\" but the current version is {v}"
        ))),
        None => Err(IngestError::PreconditionFailed(format!(
            "If-Match W/\"{want}\" but {rt}/{id} does not exist"
        ))),
    }
}

/// The owner of a not-yet-stored resource, for callers that need it before preparing.
pub fn owner_label(rt: &str, id: &str, value: &Value) -> String {
    let o: Owner = owner_of(rt, id, value);
    o.label()
}
