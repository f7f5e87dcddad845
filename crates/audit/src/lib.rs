//! The audit trail: a FHIR R4 `AuditEvent` for every read, write, consent change and refusal,
//! stored before the response goes out and committed to the ledger.
//!
//! Services describe what happened as an [`Entry`] (who, what, about which patient, why, with
//! what outcome); [`Auditor`] turns entries into AuditEvent resources, stores them in the
//! [`AuditStore`] together with an [`AuditRecorded`](medledger_proto::v1::AuditRecorded) event for the ledger writer, and only then
//! lets the caller answer. A write stores its audit rows in the write's own transaction
//! ([`Auditor::prepare`]), so an acknowledged write is never missing from the trail.
//!
//! Every service audits the same way, at its domain boundary: an operation opens an [`Audit`]
//! ([`Auditor::begin`]), tells it what it learns on the way (the patient, the version touched,
//! why a refusal looks as it does), and ends with [`Audit::finish`], which derives the outcome
//! from the operation's result (its error's [`Category`]) and stores the event before the result
//! may be answered.
//!
//! What is kept: references (`Practitioner/dr-1`, `Observation/o1/_history/2`), codes, the
//! stated purpose and break-glass reason. Never resource content. Rows are not encrypted under
//! the patient's key, so erasing a patient leaves their access history readable. The ledger gets
//! only `HMAC-SHA256(salt, canonical JSON)`, salted so the log cannot be searched for guessed
//! events.

use std::sync::Arc;

use medledger_auth::Caller;
use medledger_error::{Categorized, Category};
use medledger_proto::{AUDIT_TOPIC, Message};
use medledger_storage_api::{AuditFilter, AuditRow, AuditStore, OutboxEvent, StoreError};
use rand::RngCore;
use serde_json::{Value, json};

/// `AuditEvent.action` (R4 value set `audit-event-action`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Create.
    Create,
    /// Read, vread, search.
    Read,
    /// Update.
    Update,
    /// Delete.
    Delete,
    /// An operation (`$verify`, `$decide-access`, …).
    Execute,
}

impl Action {
    fn code(self) -> &'static str {
        match self {
            Self::Create => "C",
            Self::Read => "R",
            Self::Update => "U",
            Self::Delete => "D",
            Self::Execute => "E",
        }
    }
}

/// `AuditEvent.outcome`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// `0`: the interaction succeeded.
    Success,
    /// `4`: refused (access denied, bad request, not found).
    Refused,
    /// `8`: the server failed (integrity error, a backend down).
    Failed,
}

impl Outcome {
    /// The R4 code.
    pub fn code(self) -> &'static str {
        match self {
            Self::Success => "0",
            Self::Refused => "4",
            Self::Failed => "8",
        }
    }

    /// The outcome of an interaction that failed with `category`.
    pub fn of(category: Category) -> Self {
        if category.is_failure() {
            Self::Failed
        } else {
            Self::Refused
        }
    }
}

/// One audited interaction, as a service saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// The FHIR restful-interaction code (`read`, `vread`, `create`, `update`, `delete`,
    /// `search-type`, `transaction`, `batch`, `operation`).
    pub interaction: String,
    /// The action.
    pub action: Action,
    /// Who acted (the token subject).
    pub actor: String,
    /// The role the token claimed.
    pub role: String,
    /// The patient the interaction was about (`Patient/{id}`), when there is one.
    pub patient: Option<String>,
    /// Further patients it was about (a search returning several patients' data).
    pub also_about: Vec<String>,
    /// What was touched: references, versioned where a version is known.
    pub what: Vec<String>,
    /// How it ended.
    pub outcome: Outcome,
    /// Why it ended so, safe to show (an OperationOutcome's diagnostics, never PHI).
    pub detail: Option<String>,
    /// Stated purpose of use (`TREAT`, …).
    pub purpose: Option<String>,
    /// Stated break-glass reason: the interaction is marked as an emergency access.
    pub break_glass_reason: Option<String>,
    /// The service that saw it (`ingest`, `query`, `consent`).
    pub source: &'static str,
}

impl Entry {
    /// An interaction by `caller`, seen by `source`; successful until told otherwise.
    pub fn by(caller: &Caller, source: &'static str, interaction: &str, action: Action) -> Self {
        Self {
            interaction: interaction.to_owned(),
            action,
            actor: caller.claims.sub.clone(),
            role: caller.claims.role.clone(),
            patient: None,
            also_about: Vec::new(),
            what: Vec::new(),
            outcome: Outcome::Success,
            detail: None,
            purpose: caller.purpose.clone(),
            break_glass_reason: caller.break_glass_reason.clone(),
            source,
        }
    }

    /// About the record owner `owner`: a patient when it is `Patient/{id}`, no one otherwise
    /// (directory data owned by `Organization`).
    pub fn about(mut self, owner: Option<&str>) -> Self {
        self.patient = patient_of(owner);
        self
    }

    /// Adds a touched resource.
    pub fn touching(mut self, reference: impl Into<String>) -> Self {
        self.what.push(reference.into());
        self
    }

    /// Sets the outcome.
    pub fn ended(mut self, outcome: Outcome, detail: Option<String>) -> Self {
        self.outcome = outcome;
        self.detail = detail;
        self
    }

    /// A conditional create (`If-None-Exist`, or a Bundle entry's `ifNoneExist`) found
    /// `reference`, owned by `owner`, instead of creating: a read of it, not a create that did
    /// not happen.
    pub fn matched(mut self, reference: impl Into<String>, owner: &str) -> Self {
        self.set_matched(reference.into(), owner);
        self
    }

    fn set_matched(&mut self, reference: String, owner: &str) {
        self.action = Action::Read;
        self.what = vec![reference];
        self.patient = patient_of(Some(owner));
        self.detail =
            Some("the conditional create matched an existing record; nothing was created".into());
    }
}

/// The patient a record of `owner` is about: `Patient/{id}`, or no one for directory data
/// (owned by `Organization`).
fn patient_of(owner: Option<&str>) -> Option<String> {
    owner
        .filter(|o| o.starts_with("Patient/"))
        .map(str::to_owned)
}

/// The AuditEvent resource for `entry`.
pub fn audit_event(entry: &Entry, id: &str, recorded: &str) -> Value {
    let mut purposes = Vec::new();
    if let Some(p) = &entry.purpose {
        purposes.push(json!({"coding": [{
            "system": "http://terminology.hl7.org/CodeSystem/v3-ActReason",
            "code": p
        }]}));
    }
    if entry.break_glass_reason.is_some() {
        purposes.push(json!({"coding": [{
            "system": "http://terminology.hl7.org/CodeSystem/v3-ActReason",
            "code": "BTG",
            "display": "break the glass"
        }]}));
    }
    let mut entities = Vec::new();
    if let Some(p) = &entry.patient {
        let mut patient = json!({
            "what": {"reference": p},
            "type": {"system": "http://terminology.hl7.org/CodeSystem/audit-entity-type", "code": "1", "display": "Person"},
            "role": {"system": "http://terminology.hl7.org/CodeSystem/object-role", "code": "1", "display": "Patient"}
        });
        if let Some(reason) = &entry.break_glass_reason {
            patient["detail"] = json!([{"type": "break-glass-reason", "valueString": reason}]);
        }
        entities.push(patient);
    }
    for p in &entry.also_about {
        entities.push(json!({
            "what": {"reference": p},
            "type": {"system": "http://terminology.hl7.org/CodeSystem/audit-entity-type", "code": "1", "display": "Person"},
            "role": {"system": "http://terminology.hl7.org/CodeSystem/object-role", "code": "1", "display": "Patient"}
        }));
    }
    for w in &entry.what {
        if entry.patient.as_deref() == Some(w.as_str()) {
            continue;
        }
        entities.push(json!({
            "what": {"reference": w},
            "type": {"system": "http://terminology.hl7.org/CodeSystem/audit-entity-type", "code": "2", "display": "System Object"}
        }));
    }
    let mut event = json!({
        "resourceType": "AuditEvent",
        "id": id,
        "type": {"system": "http://terminology.hl7.org/CodeSystem/audit-event-type", "code": "rest", "display": "RESTful Operation"},
        "subtype": [{"system": "http://hl7.org/fhir/restful-interaction", "code": entry.interaction}],
        "action": entry.action.code(),
        "recorded": recorded,
        "outcome": entry.outcome.code(),
        "agent": [{
            "who": {"reference": entry.actor},
            "role": [{"text": entry.role}],
            "requestor": true
        }],
        "source": {
            "observer": {"display": format!("MedLedger {}", entry.source)},
            "type": [{"system": "http://terminology.hl7.org/CodeSystem/security-source-type", "code": "4", "display": "Application Server"}]
        }
    });
    if let Some(d) = &entry.detail {
        event["outcomeDesc"] = json!(d);
    }
    if !purposes.is_empty() {
        event["purposeOfEvent"] = json!(purposes);
    }
    if !entities.is_empty() {
        event["entity"] = json!(entities);
    }
    event
}

/// Whether `row`'s resource matches the commitment a ledger leaf holds (hex).
pub fn matches_commitment(row: &AuditRow, commitment_hex: &str) -> bool {
    medledger_crypto::commitment(&row.salt, &row.resource)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect::<String>()
        == commitment_hex
}

/// Most events one group commit stores.
const MAX_GROUP: usize = 512;

/// One caller's events, waiting for the group commit that stores them.
struct Job {
    rows: Vec<AuditRow>,
    events: Vec<OutboxEvent>,
    done: tokio::sync::oneshot::Sender<Result<(), String>>,
}

/// Stores audit events and lists them.
///
/// Every audited request waits for its event to be durable, and on SQLite each transaction is
/// an fsync; one writer task therefore stores whatever has queued up meanwhile in a single
/// transaction (group commit), and answers every waiting caller with that transaction's
/// outcome. A lone request costs one transaction, as before; concurrent ones share them.
#[derive(Clone)]
pub struct Auditor {
    store: Arc<dyn AuditStore>,
    queue: Arc<std::sync::OnceLock<tokio::sync::mpsc::Sender<Job>>>,
}

/// The group-commit loop: runs until every `Auditor` clone is gone.
async fn flush(store: Arc<dyn AuditStore>, mut jobs: tokio::sync::mpsc::Receiver<Job>) {
    while let Some(first) = jobs.recv().await {
        let mut batch = vec![first];
        while batch.len() < MAX_GROUP {
            match jobs.try_recv() {
                Ok(j) => batch.push(j),
                Err(_) => break,
            }
        }
        let rows: Vec<AuditRow> = batch.iter().flat_map(|j| j.rows.iter().cloned()).collect();
        let events: Vec<OutboxEvent> = batch
            .iter()
            .flat_map(|j| j.events.iter().cloned())
            .collect();
        let outcome = store
            .record_audit(&rows, &events)
            .await
            .map_err(|e| e.to_string());
        for j in batch {
            // A caller that stopped waiting (its request was dropped) needs no answer.
            let _ = j.done.send(outcome.clone());
        }
    }
}

impl std::fmt::Debug for Auditor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Auditor").finish_non_exhaustive()
    }
}

impl Auditor {
    /// An auditor storing into `store`.
    pub fn new(store: Arc<dyn AuditStore>) -> Self {
        Self {
            store,
            queue: Arc::default(),
        }
    }

    /// The writer task's queue, started on first use (inside the caller's runtime).
    fn queue(&self) -> &tokio::sync::mpsc::Sender<Job> {
        self.queue.get_or_init(|| {
            let (tx, rx) = tokio::sync::mpsc::channel(4 * MAX_GROUP);
            tokio::spawn(flush(self.store.clone(), rx));
            tx
        })
    }

    /// The rows and ledger events for `entries`, stamped now, for a caller that stores them in
    /// a transaction of its own.
    pub fn prepare(entries: &[Entry]) -> (Vec<AuditRow>, Vec<OutboxEvent>) {
        let (recorded, ms) = medledger_fhir::now_instant();
        let mut rows = Vec::with_capacity(entries.len());
        let mut events = Vec::with_capacity(entries.len());
        for e in entries {
            let id = uuid::Uuid::new_v4().to_string();
            let resource = medledger_fhir::canonical_json(&audit_event(e, &id, &recorded));
            let mut salt = [0u8; 32];
            rand::rngs::OsRng.fill_bytes(&mut salt);
            let commitment = medledger_crypto::commitment(&salt, &resource);
            events.push(OutboxEvent {
                topic: AUDIT_TOPIC.to_owned(),
                // Keyed by the event, not the patient: audit events need no order among
                // themselves, and a key must not name anyone.
                key: id.as_bytes().to_vec(),
                payload: medledger_ledger::events::audit_event(id.clone(), commitment, ms)
                    .encode_to_vec(),
            });
            rows.push(AuditRow {
                id,
                recorded_at_ms: ms,
                patient: e.patient.clone(),
                also_about: e.also_about.clone(),
                actor: e.actor.clone(),
                outcome: e.outcome.code().to_owned(),
                resource,
                salt,
            });
        }
        (rows, events)
    }

    /// Stores `entries`; the audited response may go out once this returns `Ok`.
    pub async fn record(&self, entries: &[Entry]) -> Result<(), StoreError> {
        if entries.is_empty() {
            return Ok(());
        }
        let (rows, events) = Self::prepare(entries);
        let (done, stored) = tokio::sync::oneshot::channel();
        let gone = || StoreError::Unavailable("the audit writer stopped".into());
        self.queue()
            .send(Job { rows, events, done })
            .await
            .map_err(|_| gone())?;
        stored
            .await
            .map_err(|_| gone())?
            .map_err(StoreError::Unavailable)
    }

    /// Events matching `filter`, newest first.
    pub async fn list(&self, filter: &AuditFilter) -> Result<Vec<AuditRow>, StoreError> {
        self.store.audit_events(filter).await
    }

    /// One event.
    pub async fn get(&self, id: &str) -> Result<Option<AuditRow>, StoreError> {
        self.store.audit_event(id).await
    }
}

/// The audit trail could not store an event: the audited answer must not go out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the audit trail is unavailable")]
pub struct AuditUnavailable;

impl Categorized for AuditUnavailable {
    fn category(&self) -> Category {
        Category::UNAVAILABLE
    }
}

/// One audited interaction at a domain boundary, from [`Auditor::begin`] to [`Audit::finish`].
#[must_use = "an interaction is audited only when its Audit is finished"]
#[derive(Debug)]
pub struct Audit {
    auditor: Auditor,
    entry: Entry,
    /// Why the interaction was refused, when its answer does not say (or says otherwise).
    refusal: Option<String>,
    /// Whether a success is already in the trail (stored with the write it describes).
    written: bool,
    more: Vec<Entry>,
}

impl Audit {
    /// The interaction is about the record owner `owner` (see [`Entry::about`]).
    pub fn about(&mut self, owner: Option<&str>) -> &mut Self {
        self.entry.patient = patient_of(owner);
        self
    }

    /// The interaction was about every patient among `owners` (a search's results): the first
    /// (or the one already named) is its patient, the others are named beside it, and each
    /// finds the event in their trail.
    pub fn about_all<'a>(&mut self, owners: impl IntoIterator<Item = &'a str>) -> &mut Self {
        let mut all: Vec<String> = self.entry.patient.iter().cloned().collect();
        for o in owners {
            if let Some(p) = patient_of(Some(o))
                && !all.contains(&p)
            {
                all.push(p);
            }
        }
        let mut all = all.into_iter();
        self.entry.patient = all.next();
        self.entry.also_about = all.collect();
        self
    }

    /// The patient the interaction is about, once known.
    pub fn patient(&self) -> Option<&str> {
        self.entry.patient.as_deref()
    }

    /// What the interaction touched, replacing what was said before (a read learns the
    /// version it served).
    pub fn touching(&mut self, reference: impl Into<String>) -> &mut Self {
        self.entry.what = vec![reference.into()];
        self
    }

    /// A conditional create found `reference` (owned by `owner`) instead of creating (see
    /// [`Entry::matched`]).
    pub fn matched(&mut self, reference: impl Into<String>, owner: &str) -> &mut Self {
        self.entry.set_matched(reference.into(), owner);
        self
    }

    /// The interaction was refused for `detail`, whatever its answer shows: a denied read
    /// answers like an unknown record, a search over records one may not see answers an empty
    /// result; the trail records the refusal and why.
    pub fn refused(&mut self, detail: impl Into<String>) -> &mut Self {
        self.refusal = Some(detail.into());
        self
    }

    /// A success needs no event of its own: the write stored its events in its own
    /// transaction ([`Auditor::prepare`]).
    pub fn written(&mut self) -> &mut Self {
        self.written = true;
        self
    }

    /// Another event to store with this one, whatever the outcome (a batch's refused entries).
    pub fn also(&mut self, entry: Entry) -> &mut Self {
        self.more.push(entry);
        self
    }

    /// Stores the interaction's event with the outcome of `result` (success, or the error's
    /// category and diagnostics), then returns `result`; if the event cannot be stored, the
    /// answer is [`AuditUnavailable`] instead: nothing goes out unaudited.
    pub async fn finish<T, E>(self, result: Result<T, E>) -> Result<T, E>
    where
        E: Categorized + From<AuditUnavailable>,
    {
        let Self {
            auditor,
            entry,
            refusal,
            written,
            mut more,
        } = self;
        match (&result, refusal) {
            (Ok(_), Some(why)) => more.push(entry.ended(Outcome::Refused, Some(why))),
            (Ok(_), None) if written => {}
            (Ok(_), None) => more.push(entry),
            (Err(e), why) => {
                let detail = why.unwrap_or_else(|| e.diagnostics());
                more.push(entry.ended(Outcome::of(e.category()), Some(detail)));
            }
        }
        match auditor.record(&more).await {
            Ok(()) => result,
            Err(e) => {
                tracing::warn!(error = %e, source = more.first().map_or("", |m| m.source), "could not record an audit event");
                Err(AuditUnavailable.into())
            }
        }
    }
}

impl Auditor {
    /// Opens the audit of one interaction described by `entry`; see [`Audit`].
    pub fn begin(&self, entry: Entry) -> Audit {
        Audit {
            auditor: self.clone(),
            entry,
            refusal: None,
            written: false,
            more: Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use medledger_auth::Claims;
    use medledger_proto::v1::AuditRecorded;

    fn caller(sub: &str, role: &str) -> Caller {
        let claims: Claims = serde_json::from_value(json!({
            "iss": "t", "sub": sub, "aud": "medledger", "exp": 0, "iat": 0,
            "scope": "user/*.rs", "role": role
        }))
        .unwrap();
        let mut c = Caller::new(claims, "token");
        c.purpose = Some("TREAT".into());
        c
    }

    #[test]
    fn an_entry_becomes_an_r4_audit_event_naming_the_patient_and_the_emergency() {
        let mut c = caller("Practitioner/dr-1", "practitioner");
        c.break_glass_reason = Some("unconscious in ER".into());
        let e = Entry::by(&c, "query", "read", Action::Read)
            .about(Some("Patient/p1"))
            .touching("Observation/o1/_history/2")
            .ended(Outcome::Refused, Some("no consent".into()));
        let v = audit_event(&e, "id-1", "2026-12-01T00:00:00.000Z");
        assert_eq!(v["resourceType"], "AuditEvent");
        assert_eq!(v["action"], "R");
        assert_eq!(v["outcome"], "4");
        assert_eq!(v["outcomeDesc"], "no consent");
        assert_eq!(v["agent"][0]["who"]["reference"], "Practitioner/dr-1");
        assert_eq!(v["entity"][0]["what"]["reference"], "Patient/p1");
        assert_eq!(
            v["entity"][0]["detail"][0]["valueString"],
            "unconscious in ER"
        );
        assert_eq!(
            v["entity"][1]["what"]["reference"],
            "Observation/o1/_history/2"
        );
        let codes: Vec<&str> = v["purposeOfEvent"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["coding"][0]["code"].as_str().unwrap())
            .collect();
        assert_eq!(codes, ["TREAT", "BTG"]);
        // Directory data is about no patient.
        let org = Entry::by(&c, "query", "read", Action::Read).about(Some("Organization"));
        assert_eq!(org.patient, None);
    }

    #[tokio::test]
    async fn recorded_events_are_listed_by_patient_and_their_leaf_commitment_matches() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(
            medledger_storage_sqlx::SqliteStore::open(&dir.path().join("db"))
                .await
                .unwrap(),
        );
        let auditor = Auditor::new(store.clone());
        let c = caller("Practitioner/dr-1", "practitioner");
        auditor
            .record(&[
                Entry::by(&c, "query", "read", Action::Read).about(Some("Patient/p1")),
                Entry::by(&c, "query", "read", Action::Read).about(Some("Patient/p2")),
            ])
            .await
            .unwrap();
        let mine = auditor
            .list(&AuditFilter {
                patient: Some("Patient/p1".into()),
                limit: 10,
                ..AuditFilter::default()
            })
            .await
            .unwrap();
        assert_eq!(mine.len(), 1);
        let v: Value = serde_json::from_slice(&mine[0].resource).unwrap();
        assert_eq!(v["id"], mine[0].id.as_str());
        // The event on the bus carries the commitment of exactly the stored resource.
        let (topic, payload): (String, Vec<u8>) = sqlx_first_event(&store).await;
        assert_eq!(topic, AUDIT_TOPIC);
        let ev = AuditRecorded::decode(payload.as_slice()).unwrap();
        let row = auditor.get(&ev.event_id).await.unwrap().unwrap();
        let leaf = medledger_ledger::AuditLeaf {
            id: ev.event_id.clone(),
            commitment: ev.commitment.iter().map(|b| format!("{b:02x}")).collect(),
            recorded_at_ms: ev.recorded_at_ms,
        };
        assert!(matches_commitment(&row, &leaf.commitment));
        let mut tampered = row.clone();
        tampered.resource.push(b' ');
        assert!(!matches_commitment(&tampered, &leaf.commitment));
    }

    /// Fails every write, to show each waiting caller gets the failure.
    struct Broken;

    #[async_trait::async_trait]
    impl AuditStore for Broken {
        async fn record_audit(&self, _: &[AuditRow], _: &[OutboxEvent]) -> Result<(), StoreError> {
            Err(StoreError::Unavailable("disk full".into()))
        }
        async fn audit_events(&self, _: &AuditFilter) -> Result<Vec<AuditRow>, StoreError> {
            Ok(Vec::new())
        }
        async fn audit_event(&self, _: &str) -> Result<Option<AuditRow>, StoreError> {
            Ok(None)
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_callers_are_each_answered_only_once_their_event_is_stored() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(
            medledger_storage_sqlx::SqliteStore::open(&dir.path().join("db"))
                .await
                .unwrap(),
        );
        let auditor = Auditor::new(store.clone());
        let c = caller("Practitioner/dr-1", "practitioner");
        let tasks: Vec<_> = (0..200)
            .map(|i| {
                let (a, c) = (auditor.clone(), c.clone());
                tokio::spawn(async move {
                    let e = Entry::by(&c, "query", "read", Action::Read)
                        .about(Some(&format!("Patient/p{i}")));
                    a.record(&[e]).await.unwrap();
                    // Once answered, the caller's own event is there to read.
                    let mine = a
                        .list(&AuditFilter {
                            patient: Some(format!("Patient/p{i}")),
                            limit: 10,
                            ..AuditFilter::default()
                        })
                        .await
                        .unwrap();
                    assert_eq!(mine.len(), 1);
                })
            })
            .collect();
        for t in tasks {
            t.await.unwrap();
        }
        let all = auditor
            .list(&AuditFilter {
                limit: 1000,
                ..AuditFilter::default()
            })
            .await
            .unwrap();
        assert_eq!(all.len(), 200);

        let broken = Auditor::new(Arc::new(Broken));
        let tasks: Vec<_> = (0..20)
            .map(|_| {
                let (a, c) = (broken.clone(), c.clone());
                tokio::spawn(async move {
                    a.record(&[Entry::by(&c, "query", "read", Action::Read)])
                        .await
                })
            })
            .collect();
        for t in tasks {
            assert!(
                t.await.unwrap().is_err(),
                "a failed store must fail every caller"
            );
        }
    }

    async fn sqlx_first_event(store: &medledger_storage_sqlx::SqliteStore) -> (String, Vec<u8>) {
        use sqlx::Row;
        let r = sqlx::query("SELECT topic, payload FROM bus_log ORDER BY rowid LIMIT 1")
            .fetch_one(store.pool())
            .await
            .unwrap();
        (r.get("topic"), r.get("payload"))
    }
}
