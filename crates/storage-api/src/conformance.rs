//! The contract every storage backend must meet, as test functions. Each backend's tests call
//! these against a fresh, empty store, so SQLite (embedded) and PostgreSQL (distributed) are held
//! to the same behaviour.

#![allow(clippy::unwrap_used, clippy::panic, missing_docs)]

use crate::{
    AccessRequestRow, AccessRequestStore, AccountRow, AnchorRow, AuditFilter, AuditRow, AuditStore,
    ConsentRow, ConsentStore, DeadLetter, Hl7MessageLog, LeafRow, LedgerStore, OutboxEvent,
    OwnerKeyStore, RecordIndex, RegistryQueue, StoreError, TreeHeadRow, VersionRow, VersionWrite,
};
use crate::{CompartmentQuery, HistoryKey, HistoryQuery, IndexOrder, IndexQuery, SearchIndex};

fn row(id: &str, version: u64) -> VersionRow {
    VersionRow {
        resource_type: "Observation".into(),
        id: id.into(),
        version,
        cid: Some(format!("bafy{id}{version}")),
        wrapped_key: vec![1, 2, 3],
        owner: "Patient/p".into(),
        commitment: Some([7; 32]),
        deleted: false,
        last_updated: "2026-01-01T00:00:00.000Z".into(),
        actor: "Practitioner/x".into(),
    }
}

/// Commits are all-or-nothing, check the expected version, and are read back exactly.
pub async fn record_index(s: &dyn RecordIndex) {
    let ev = OutboxEvent {
        topic: "t".into(),
        key: b"k".to_vec(),
        payload: b"p".to_vec(),
    };
    s.commit(
        &[VersionWrite {
            row: row("a", 1),
            expected: None,
            tags: Vec::new(),
            unless: None,
        }],
        std::slice::from_ref(&ev),
        &[],
    )
    .await
    .unwrap();
    let stale = VersionWrite {
        row: row("a", 2),
        expected: None,
        tags: Vec::new(),
        unless: None,
    };
    let fresh = VersionWrite {
        row: row("b", 1),
        expected: None,
        tags: Vec::new(),
        unless: None,
    };
    let e = s
        .commit(&[fresh, stale], std::slice::from_ref(&ev), &[])
        .await
        .unwrap_err();
    assert!(
        matches!(
            e,
            StoreError::Conflict {
                found: Some(1),
                expected: None,
                ..
            }
        ),
        "{e}"
    );
    assert!(
        s.head("Observation", "b").await.unwrap().is_none(),
        "a failed commit stored a row"
    );
    s.commit(
        &[VersionWrite {
            row: row("a", 2),
            expected: Some(1),
            tags: Vec::new(),
            unless: None,
        }],
        &[],
        &[],
    )
    .await
    .unwrap();
    let e = s
        .commit(
            &[VersionWrite {
                row: row("a", 3),
                expected: Some(1),
                tags: Vec::new(),
                unless: None,
            }],
            &[],
            &[],
        )
        .await
        .unwrap_err();
    assert!(
        matches!(e, StoreError::Conflict { found: Some(2), .. }),
        "{e}"
    );
    let head = s.head("Observation", "a").await.unwrap().unwrap();
    assert_eq!(
        (head.version, head.deleted, head.owner.as_str()),
        (2, false, "Patient/p")
    );
    assert_eq!(
        s.version("Observation", "a", 1).await.unwrap().unwrap(),
        row("a", 1)
    );
    assert!(s.version("Observation", "a", 9).await.unwrap().is_none());
    let deletion = VersionRow {
        cid: None,
        commitment: None,
        deleted: true,
        wrapped_key: Vec::new(),
        ..row("a", 3)
    };
    s.commit(
        &[VersionWrite {
            row: deletion.clone(),
            expected: Some(2),
            tags: Vec::new(),
            unless: None,
        }],
        &[],
        &[],
    )
    .await
    .unwrap();
    assert!(s.head("Observation", "a").await.unwrap().unwrap().deleted);
    assert_eq!(
        s.version("Observation", "a", 3).await.unwrap().unwrap(),
        deletion
    );
    let mut cids = s.referenced_cids().await.unwrap();
    cids.sort();
    assert_eq!(cids, vec!["bafya1".to_owned(), "bafya2".to_owned()]);
}

/// The first owner key stored wins; later inserts get it back.
pub async fn owner_keys(s: &dyn OwnerKeyStore) {
    assert!(s.wrapped_owner_key("Patient/a").await.unwrap().is_none());
    assert_eq!(
        s.insert_owner_key("Patient/a", b"first").await.unwrap(),
        b"first"
    );
    assert_eq!(
        s.insert_owner_key("Patient/a", b"second").await.unwrap(),
        b"first"
    );
    assert_eq!(
        s.wrapped_owner_key("Patient/a").await.unwrap().unwrap(),
        b"first"
    );
}

/// Leaves are appended once, in order; tree heads are found by the leaves they cover.
pub async fn ledger_store(s: &dyn LedgerStore) {
    let leaf = |subject: &str, version| LeafRow {
        index: 0,
        kind: 1,
        subject: subject.into(),
        version,
        leaf: vec![9, version as u8],
    };
    let got = s
        .append_leaves(&[leaf("A/1", 1), leaf("A/1", 2)])
        .await
        .unwrap();
    assert_eq!(got.iter().map(|l| l.index).collect::<Vec<_>>(), vec![0, 1]);
    let again = s
        .append_leaves(&[leaf("A/1", 2), leaf("B/1", 1)])
        .await
        .unwrap();
    assert_eq!(again.len(), 1, "a duplicate leaf was appended");
    assert_eq!(again[0].index, 2);
    assert_eq!(s.latest_logged_version(1, "A/1").await.unwrap(), Some(2));
    assert_eq!(s.latest_logged_version(1, "C/1").await.unwrap(), None);
    assert_eq!(
        s.leaf_for(1, "A/1", 2).await.unwrap().unwrap().leaf,
        vec![9, 2]
    );
    assert_eq!(
        s.leaves_from(1)
            .await
            .unwrap()
            .iter()
            .map(|l| l.index)
            .collect::<Vec<_>>(),
        vec![1, 2]
    );
    assert!(s.latest_tree_head().await.unwrap().is_none());
    let head = |size: u64| TreeHeadRow {
        tree_size: size,
        root: [size as u8; 32],
        chain_id: 1337,
        contract: "0xabc".into(),
        chain_index: size,
        block_number: size,
        block_hash: "0xb".into(),
        tx_hash: "0xt".into(),
    };
    s.insert_tree_head(&head(2)).await.unwrap();
    s.insert_tree_head(&head(3)).await.unwrap();
    s.insert_tree_head(&head(3)).await.unwrap();
    assert_eq!(s.latest_tree_head().await.unwrap().unwrap(), head(3));
    assert_eq!(s.tree_head_covering(1).await.unwrap().unwrap().tree_size, 2);
    assert_eq!(s.tree_head_covering(2).await.unwrap().unwrap().tree_size, 3);
    assert!(s.tree_head_covering(3).await.unwrap().is_none());

    assert!(s.latest_anchor().await.unwrap().is_none());
    assert!(s.anchor_covering(1).await.unwrap().is_none());
    let anchor = |size: u64| AnchorRow {
        tree_size: size,
        root: [size as u8; 32],
        source_block_number: size * 10,
        source_block_hash: format!("0x{size:064x}"),
        chain_id: 1338,
        contract: "0xanchor".into(),
        chain_index: size,
        block_number: size + 100,
        block_hash: "0xpb".into(),
        tx_hash: "0xpt".into(),
    };
    s.insert_anchor(&anchor(2)).await.unwrap();
    s.insert_anchor(&anchor(5)).await.unwrap();
    // A second insert of a size changes nothing.
    s.insert_anchor(&AnchorRow {
        tx_hash: "0xother".into(),
        ..anchor(5)
    })
    .await
    .unwrap();
    assert_eq!(s.latest_anchor().await.unwrap().unwrap(), anchor(5));
    assert_eq!(s.anchor_covering(1).await.unwrap().unwrap(), anchor(2));
    assert_eq!(s.anchor_covering(2).await.unwrap().unwrap(), anchor(2));
    assert_eq!(s.anchor_covering(3).await.unwrap().unwrap(), anchor(5));
    assert!(s.anchor_covering(6).await.unwrap().is_none());
}

/// Against an empty consent store.
pub async fn consent_store(s: &dyn ConsentStore) {
    assert!(s.account("Practitioner/dr-1").await.unwrap().is_none());
    let created = s
        .ensure_account("Practitioner/dr-1", "practitioner")
        .await
        .unwrap();
    assert_eq!(
        created,
        AccountRow {
            account: "Practitioner/dr-1".into(),
            role: "practitioner".into(),
            verified: false
        }
    );
    // An existing account is not changed by a later token claiming another role.
    let again = s
        .ensure_account("Practitioner/dr-1", "admin")
        .await
        .unwrap();
    assert_eq!(again.role, "practitioner");
    s.put_account(&AccountRow {
        verified: true,
        ..created.clone()
    })
    .await
    .unwrap();
    assert!(
        s.account("Practitioner/dr-1")
            .await
            .unwrap()
            .unwrap()
            .verified
    );

    let row = |id: &str, version: u64, patient: &str, status: &str| ConsentRow {
        id: id.into(),
        version,
        patient: patient.into(),
        status: status.into(),
        resource: format!("{{\"v\":{version}}}").into_bytes(),
        actor: patient.into(),
        recorded_at_ms: 1_000 + version as i64,
    };
    s.put_consent(&row("c1", 1, "Patient/p1", "active"), None)
        .await
        .unwrap();
    s.put_consent(&row("c2", 1, "Patient/p1", "active"), None)
        .await
        .unwrap();
    s.put_consent(&row("c3", 1, "Patient/p2", "active"), None)
        .await
        .unwrap();
    // A stale writer loses.
    assert!(matches!(
        s.put_consent(&row("c1", 1, "Patient/p1", "active"), None)
            .await,
        Err(StoreError::Conflict { .. })
    ));
    s.put_consent(&row("c1", 2, "Patient/p1", "inactive"), Some(1))
        .await
        .unwrap();
    assert!(matches!(
        s.put_consent(&row("c1", 3, "Patient/p1", "active"), Some(1))
            .await,
        Err(StoreError::Conflict { .. })
    ));
    let latest = s.consent("c1").await.unwrap().unwrap();
    assert_eq!((latest.version, latest.status.as_str()), (2, "inactive"));
    let mut of_p1: Vec<(String, u64)> = s
        .consents_of("Patient/p1")
        .await
        .unwrap()
        .into_iter()
        .map(|c| (c.id, c.version))
        .collect();
    of_p1.sort();
    assert_eq!(of_p1, vec![("c1".into(), 2), ("c2".into(), 1)]);
    assert!(s.consent("nope").await.unwrap().is_none());
}

/// Against an empty access-request store.
pub async fn access_requests(s: &dyn AccessRequestStore) {
    let row = |id: &str, patient: &str, at: i64| AccessRequestRow {
        id: id.into(),
        requester: "Practitioner/dr-1".into(),
        patient: patient.into(),
        purpose: "TREAT".into(),
        start: 100,
        end: 200,
        status: "pending".into(),
        consent: None,
        requested_at_ms: at,
    };
    s.put_request(&row("r2", "Patient/p1", 2)).await.unwrap();
    s.put_request(&row("r1", "Patient/p1", 1)).await.unwrap();
    s.put_request(&row("r3", "Patient/p2", 3)).await.unwrap();
    assert!(
        s.put_request(&row("r1", "Patient/p1", 9)).await.is_err(),
        "ids are unique"
    );
    let ids: Vec<String> = s
        .requests_for("Patient/p1")
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.id)
        .collect();
    assert_eq!(ids, vec!["r1", "r2"]);
    s.decide_request("r1", "approved", Some("Consent/c9"))
        .await
        .unwrap();
    let r1 = s.request("r1").await.unwrap().unwrap();
    assert_eq!(
        (r1.status.as_str(), r1.consent.as_deref()),
        ("approved", Some("Consent/c9"))
    );
    // Decided once only.
    assert!(matches!(
        s.decide_request("r1", "denied", None).await,
        Err(StoreError::Conflict { .. })
    ));
    assert!(matches!(
        s.decide_request("nope", "denied", None).await,
        Err(StoreError::Conflict { .. })
    ));
    assert!(s.request("nope").await.unwrap().is_none());
}

fn audit_row(id: &str, at: i64, patient: Option<&str>, actor: &str) -> AuditRow {
    AuditRow {
        also_about: Vec::new(),
        id: id.into(),
        recorded_at_ms: at,
        patient: patient.map(str::to_owned),
        actor: actor.into(),
        outcome: "0".into(),
        resource: format!(r#"{{"id":"{id}","resourceType":"AuditEvent"}}"#).into_bytes(),
        salt: [u8::try_from(at % 256).unwrap(); 32],
    }
}

/// The audit trail: rows are stored with the write they audit or not at all, listed newest first
/// by patient, actor and time, and a repeated id is ignored.
pub async fn audit_trail(index: &dyn RecordIndex, audit: &dyn AuditStore) {
    let ev = OutboxEvent {
        topic: "t".into(),
        key: b"k".to_vec(),
        payload: b"p".to_vec(),
    };
    index
        .commit(
            &[VersionWrite {
                row: row("w", 1),
                expected: None,
                tags: Vec::new(),
                unless: None,
            }],
            std::slice::from_ref(&ev),
            &[audit_row(
                "a-write",
                10,
                Some("Patient/p"),
                "Practitioner/x",
            )],
        )
        .await
        .unwrap();
    // A commit that fails stores its audit rows no more than its versions.
    index
        .commit(
            &[VersionWrite {
                row: row("w", 2),
                expected: None,
                tags: Vec::new(),
                unless: None,
            }],
            &[],
            &[audit_row("a-lost", 11, Some("Patient/p"), "Practitioner/x")],
        )
        .await
        .unwrap_err();
    assert!(audit.audit_event("a-lost").await.unwrap().is_none());
    audit
        .record_audit(
            &[
                audit_row("a-read", 20, Some("Patient/p"), "Practitioner/y"),
                audit_row("a-other", 30, Some("Patient/q"), "Practitioner/x"),
                audit_row("a-none", 40, None, "Practitioner/x"),
            ],
            std::slice::from_ref(&ev),
        )
        .await
        .unwrap();
    // The same id again (a retried request) changes nothing.
    let mut changed = audit_row("a-read", 99, Some("Patient/q"), "Practitioner/z");
    changed.outcome = "4".into();
    audit.record_audit(&[changed], &[]).await.unwrap();
    assert_eq!(
        audit.audit_event("a-read").await.unwrap().unwrap(),
        audit_row("a-read", 20, Some("Patient/p"), "Practitioner/y")
    );
    let ids = |rows: Vec<AuditRow>| rows.into_iter().map(|r| r.id).collect::<Vec<_>>();
    let all = AuditFilter {
        limit: 100,
        ..AuditFilter::default()
    };
    assert_eq!(
        ids(audit.audit_events(&all).await.unwrap()),
        ["a-none", "a-other", "a-read", "a-write"]
    );
    let of_p = AuditFilter {
        patient: Some("Patient/p".into()),
        ..all.clone()
    };
    assert_eq!(
        ids(audit.audit_events(&of_p).await.unwrap()),
        ["a-read", "a-write"]
    );
    let by_x = AuditFilter {
        actor: Some("Practitioner/x".into()),
        since_ms: Some(15),
        ..all.clone()
    };
    assert_eq!(
        ids(audit.audit_events(&by_x).await.unwrap()),
        ["a-none", "a-other"]
    );
    let newest = AuditFilter {
        limit: 1,
        ..all.clone()
    };
    assert_eq!(ids(audit.audit_events(&newest).await.unwrap()), ["a-none"]);
    // An event about several patients is in each one's trail, once.
    let mut several = audit_row("a-search", 50, Some("Patient/q"), "Practitioner/x");
    several.also_about = vec!["Patient/p".into(), "Patient/r".into()];
    audit.record_audit(&[several], &[]).await.unwrap();
    for (patient, want) in [
        ("Patient/p", vec!["a-search", "a-read", "a-write"]),
        ("Patient/q", vec!["a-search", "a-other"]),
        ("Patient/r", vec!["a-search"]),
    ] {
        let f = AuditFilter {
            patient: Some(patient.into()),
            ..all.clone()
        };
        assert_eq!(
            ids(audit.audit_events(&f).await.unwrap()),
            want,
            "{patient}"
        );
    }
}

/// Against an empty store that is both the consent store and its registry queue.
pub async fn registry_queue<S: ConsentStore + RegistryQueue>(s: &S) {
    assert!(s.unregistered_accounts(10).await.unwrap().is_empty());
    s.ensure_account("Practitioner/dr-r", "practitioner")
        .await
        .unwrap();
    s.ensure_account("Patient/p-r", "patient").await.unwrap();
    let queued = s.unregistered_accounts(10).await.unwrap();
    assert_eq!(queued.len(), 2);
    let dr = s
        .account_registration("Practitioner/dr-r")
        .await
        .unwrap()
        .unwrap();
    assert_eq!((dr.revision, dr.registered_revision), (1, 0));
    let p = s
        .account_registration("Patient/p-r")
        .await
        .unwrap()
        .unwrap();
    assert_ne!(dr.salt, p.salt, "accounts share a salt");
    assert_ne!(dr.salt, [0; 32]);
    // Registered, the account leaves the queue; a real change brings it back with a new
    // revision and the same salt; a put that changes nothing does not.
    s.account_registered("Practitioner/dr-r", 1).await.unwrap();
    s.account_registered("Patient/p-r", 1).await.unwrap();
    assert!(s.unregistered_accounts(10).await.unwrap().is_empty());
    s.put_account(&AccountRow {
        verified: false,
        ..dr.account.clone()
    })
    .await
    .unwrap();
    assert!(s.unregistered_accounts(10).await.unwrap().is_empty());
    s.put_account(&AccountRow {
        verified: true,
        ..dr.account.clone()
    })
    .await
    .unwrap();
    let queued = s.unregistered_accounts(10).await.unwrap();
    assert_eq!(queued.len(), 1);
    assert_eq!(queued[0].revision, 2);
    assert_eq!(queued[0].salt, dr.salt);
    assert!(queued[0].account.verified);
    // A stale registration (of revision 1) does not hide revision 2.
    s.account_registered("Practitioner/dr-r", 1).await.unwrap();
    assert_eq!(s.unregistered_accounts(10).await.unwrap().len(), 1);
    s.account_registered("Practitioner/dr-r", 2).await.unwrap();
    assert!(s.unregistered_accounts(10).await.unwrap().is_empty());

    // Consent versions queue in the order stored, each with its own salt and one subject salt
    // per Consent.
    let row = |id: &str, version: u64, status: &str| ConsentRow {
        id: id.into(),
        version,
        patient: "Patient/p-r".into(),
        status: status.into(),
        resource: format!("{{\"id\":\"{id}\",\"v\":{version}}}").into_bytes(),
        actor: "Patient/p-r".into(),
        recorded_at_ms: 5_000 + version as i64,
    };
    s.put_consent(&row("rc1", 1, "active"), None).await.unwrap();
    s.put_consent(&row("rc2", 1, "active"), None).await.unwrap();
    s.put_consent(&row("rc1", 2, "inactive"), Some(1))
        .await
        .unwrap();
    let queued = s.unregistered_consents(10).await.unwrap();
    let order: Vec<(String, u64)> = queued
        .iter()
        .map(|r| (r.consent.id.clone(), r.consent.version))
        .collect();
    assert_eq!(
        order,
        [("rc1".into(), 1), ("rc2".into(), 1), ("rc1".into(), 2)]
    );
    assert_eq!(queued[0].subject_salt, queued[2].subject_salt);
    assert_ne!(queued[0].subject_salt, queued[1].subject_salt);
    assert_ne!(queued[0].salt, queued[2].salt);
    assert!(queued.iter().all(|r| r.registration.is_none()));
    assert_eq!(queued[2].consent, row("rc1", 2, "inactive"));
    // The limit keeps the order.
    assert_eq!(
        s.unregistered_consents(1).await.unwrap()[0].consent.id,
        "rc1"
    );

    s.consent_registered("rc1", 1, b"{\"tx\":1}").await.unwrap();
    let queued = s.unregistered_consents(10).await.unwrap();
    assert_eq!(queued.len(), 2);
    assert_eq!(queued[0].consent.id, "rc2");
    let got = s.consent_registration("rc1", 1).await.unwrap().unwrap();
    assert_eq!(got.registration.as_deref(), Some(&b"{\"tx\":1}"[..]));
    assert!(s.consent_registration("rc1", 9).await.unwrap().is_none());
}

/// Accepted messages are remembered per sender and control id, the first acknowledgement wins,
/// and dead letters are kept exactly, newest first.
pub async fn hl7_message_log(s: &dyn Hl7MessageLog) {
    let accepted = |digest: &str, ack: &str| crate::AcceptedMessage {
        digest: digest.into(),
        ack: ack.into(),
    };
    assert_eq!(s.accepted("LAB|HOSP", "M1").await.unwrap(), None);
    s.record_accepted("LAB|HOSP", "M1", &accepted("d1", "MSH|ack-1"), 10)
        .await
        .unwrap();
    s.record_accepted("LAB|HOSP", "M1", &accepted("d2", "MSH|ack-2"), 11)
        .await
        .unwrap();
    assert_eq!(
        s.accepted("LAB|HOSP", "M1").await.unwrap(),
        Some(accepted("d1", "MSH|ack-1"))
    );
    // The control id is the sender's: another sender's M1 is another message.
    assert_eq!(s.accepted("ADT|HOSP", "M1").await.unwrap(), None);
    assert_eq!(s.accepted("LAB|HOSP", "M2").await.unwrap(), None);

    assert!(s.dead_letters(10).await.unwrap().is_empty());
    let letter = |id: &str, at: i64| DeadLetter {
        id: id.into(),
        received_at_ms: at,
        sender: "LAB|HOSP".into(),
        control_id: format!("C-{id}"),
        code: 102,
        reason: "OBX-5 is not a number (OBX-2 is NM)".into(),
        sealed: vec![0, 1, 2, 255],
    };
    s.dead_letter(&letter("d1", 100)).await.unwrap();
    s.dead_letter(&letter("d2", 200)).await.unwrap();
    let mut unparsed = letter("d3", 300);
    (unparsed.sender, unparsed.control_id, unparsed.code) = (String::new(), String::new(), 100);
    s.dead_letter(&unparsed).await.unwrap();
    assert_eq!(
        s.dead_letters(10).await.unwrap(),
        vec![unparsed, letter("d2", 200), letter("d1", 100)]
    );
    assert_eq!(s.dead_letters(1).await.unwrap().len(), 1);
}

/// The blind search index: tags are written with their version and replaced by the next,
/// searches combine tag sets, owners and ids, and keyset paging neither skips nor repeats.
pub async fn search_index<S: RecordIndex + SearchIndex>(s: &S) {
    let tag = |n: u8| [n; 16];
    let write = |id: &str, version: u64, at: &str, owner: &str, tags: Vec<[u8; 16]>| {
        let mut r = row(id, version);
        r.last_updated = at.into();
        r.owner = owner.into();
        VersionWrite {
            row: r,
            expected: version.checked_sub(1).filter(|v| *v > 0),
            tags,
            unless: None,
        }
    };
    s.commit(
        &[
            write(
                "o1",
                1,
                "2026-01-01T00:00:01.000Z",
                "Patient/a",
                vec![tag(1), tag(2)],
            ),
            write(
                "o2",
                1,
                "2026-01-01T00:00:02.000Z",
                "Patient/a",
                vec![tag(1)],
            ),
            write(
                "o3",
                1,
                "2026-01-01T00:00:02.000Z",
                "Patient/b",
                vec![tag(2), tag(3)],
            ),
            write("o4", 1, "2026-01-01T00:00:03.000Z", "Patient/b", vec![]),
        ],
        &[],
        &[],
    )
    .await
    .unwrap();
    let ids = |hits: Vec<VersionRow>| hits.into_iter().map(|h| h.id).collect::<Vec<_>>();
    let q = |all_of: Vec<Vec<[u8; 16]>>, none_of: Vec<Vec<[u8; 16]>>| IndexQuery {
        resource_type: "Observation".into(),
        all_of,
        none_of,
        limit: 100,
        ..IndexQuery::default()
    };
    let found = async |all_of: Vec<Vec<[u8; 16]>>, none_of: Vec<Vec<[u8; 16]>>| {
        ids(s.search(&q(all_of, none_of)).await.unwrap())
    };
    // What searches over these records answer, whether their tags are pending or merged.
    let answers = async || {
        assert_eq!(found(vec![], vec![]).await, ["o1", "o2", "o3", "o4"]);
        assert_eq!(found(vec![vec![tag(1)]], vec![]).await, ["o1", "o2"]);
        assert_eq!(
            found(vec![vec![tag(1), tag(3)]], vec![]).await,
            ["o1", "o2", "o3"]
        );
        assert_eq!(
            found(vec![vec![tag(1)], vec![tag(2)]], vec![]).await,
            ["o1"]
        );
        assert_eq!(found(vec![], vec![vec![tag(2)]]).await, ["o2", "o4"]);
        assert!(found(vec![vec![]], vec![]).await.is_empty());
    };
    answers().await;
    let mut other_type = q(vec![vec![tag(1)]], vec![]);
    other_type.resource_type = "Condition".into();
    assert!(s.search(&other_type).await.unwrap().is_empty());
    // Merging moves the pending tags into the index proper and answers nothing differently;
    // a second merge has nothing left.
    assert_eq!(s.merge_pending(2).await.unwrap(), 2);
    assert_eq!(
        found(vec![vec![tag(2)]], vec![]).await,
        ["o1", "o3"],
        "half merged"
    );
    assert_eq!(s.merge_pending(100).await.unwrap(), 1, "o4 has no tags");
    assert_eq!(s.merge_pending(100).await.unwrap(), 0);
    answers().await;
    let mut mine = q(vec![], vec![]);
    mine.owner = Some("Patient/b".into());
    mine.ids = Some(vec!["o1".into(), "o4".into()]);
    assert_eq!(ids(s.search(&mine).await.unwrap()), ["o4"]);

    // Keyset pages, both directions, with a tie on last_updated broken by id.
    let mut page = q(vec![], vec![]);
    page.limit = 2;
    let first = s.search(&page).await.unwrap();
    page.order.after = Some(first[1].keyset());
    assert_eq!(ids(s.search(&page).await.unwrap()), ["o3", "o4"]);
    page.order = IndexOrder {
        descending: true,
        after: Some(first[1].keyset()),
        by_id: false,
    };
    assert_eq!(ids(s.search(&page).await.unwrap()), ["o1"]);
    page.order = IndexOrder {
        by_id: true,
        descending: true,
        after: None,
    };
    assert_eq!(ids(s.search(&page).await.unwrap()), ["o4", "o3"]);

    // A new version replaces the tags; a deletion removes the record from every search.
    s.commit(
        &[write(
            "o1",
            2,
            "2026-01-01T00:00:04.000Z",
            "Patient/a",
            vec![tag(3)],
        )],
        &[],
        &[],
    )
    .await
    .unwrap();
    assert_eq!(
        ids(s.search(&q(vec![vec![tag(1)]], vec![])).await.unwrap()),
        ["o2"]
    );
    assert_eq!(
        ids(s.search(&q(vec![vec![tag(3)]], vec![])).await.unwrap()),
        ["o3", "o1"]
    );
    let mut gone = write("o3", 2, "2026-01-01T00:00:05.000Z", "Patient/b", vec![]);
    gone.row.deleted = true;
    gone.row.cid = None;
    gone.row.commitment = None;
    s.commit(&[gone], &[], &[]).await.unwrap();
    assert_eq!(
        ids(s.search(&q(vec![vec![tag(3)]], vec![])).await.unwrap()),
        ["o1"]
    );
    let hit = &s.search(&q(vec![vec![tag(3)]], vec![])).await.unwrap()[0];
    assert_eq!((hit.version, hit.owner.as_str()), (2, "Patient/a"));
    // A transaction of one record files its tags directly: nothing to merge, the same answers.
    assert_eq!(s.merge_pending(100).await.unwrap(), 0);
    assert_eq!(
        ids(s.search(&q(vec![vec![tag(1)]], vec![])).await.unwrap()),
        ["o2"]
    );
    assert_eq!(
        ids(s.search(&q(vec![vec![tag(3)]], vec![])).await.unwrap()),
        ["o1"]
    );

    // Retagging applies to the version it was computed from, never to a newer one.
    assert!(s.retag("Observation", "o2", 1, &[tag(9)]).await.unwrap());
    assert_eq!(
        ids(s.search(&q(vec![vec![tag(9)]], vec![])).await.unwrap()),
        ["o2"]
    );
    assert!(!s.retag("Observation", "o1", 1, &[tag(9)]).await.unwrap());
    assert!(!s.retag("Observation", "o3", 2, &[tag(9)]).await.unwrap());
    assert_eq!(
        ids(s.search(&q(vec![vec![tag(9)]], vec![])).await.unwrap()),
        ["o2"]
    );
    assert_eq!(s.merge_pending(100).await.unwrap(), 1);
    assert_eq!(
        ids(s.search(&q(vec![vec![tag(9)]], vec![])).await.unwrap()),
        ["o2"]
    );
    assert!(
        s.search(&q(vec![vec![tag(1)]], vec![]))
            .await
            .unwrap()
            .is_empty()
    );

    // A conditional create commits only while nothing matches its criteria.
    let criteria = |t: u8| IndexQuery {
        resource_type: "Observation".into(),
        all_of: vec![vec![tag(t)]],
        ..IndexQuery::default()
    };
    let mut guarded = write(
        "o5",
        1,
        "2026-01-01T00:00:06.000Z",
        "Patient/a",
        vec![tag(9)],
    );
    guarded.unless = Some(criteria(9));
    let e = s.commit(&[guarded.clone()], &[], &[]).await.unwrap_err();
    assert!(matches!(e, StoreError::Matched(_)), "{e}");
    assert!(s.head("Observation", "o5").await.unwrap().is_none());
    guarded.unless = Some(criteria(8));
    s.commit(&[guarded], &[], &[]).await.unwrap();
    assert_eq!(
        ids(s.search(&q(vec![vec![tag(9)]], vec![])).await.unwrap()),
        ["o2", "o5"]
    );

    // History: every version, deletions included, newest first; by type, record, owner, time.
    let hist = |q: HistoryQuery| async move {
        s.history(&HistoryQuery { limit: 100, ..q })
            .await
            .unwrap()
            .into_iter()
            .map(|r| format!("{}/{}", r.id, r.version))
            .collect::<Vec<_>>()
    };
    assert_eq!(
        hist(HistoryQuery::default()).await,
        ["o5/1", "o3/2", "o1/2", "o4/1", "o3/1", "o2/1", "o1/1"]
    );
    assert_eq!(
        hist(HistoryQuery {
            id: Some("o1".into()),
            resource_type: Some("Observation".into()),
            ..HistoryQuery::default()
        })
        .await,
        ["o1/2", "o1/1"]
    );
    assert!(
        hist(HistoryQuery {
            resource_type: Some("Condition".into()),
            ..HistoryQuery::default()
        })
        .await
        .is_empty()
    );
    assert_eq!(
        hist(HistoryQuery {
            owner: Some("Patient/b".into()),
            since: Some("2026-01-01T00:00:03.000Z".into()),
            ..HistoryQuery::default()
        })
        .await,
        ["o3/2", "o4/1"]
    );
    // Current at 00:00:03.5: o1 and o3 at version 1 (replaced later), o2 and o4.
    assert_eq!(
        hist(HistoryQuery {
            at: Some("2026-01-01T00:00:03.500Z".into()),
            ..HistoryQuery::default()
        })
        .await,
        ["o4/1", "o3/1", "o2/1", "o1/1"]
    );
    let all = s
        .history(&HistoryQuery {
            limit: 100,
            ..HistoryQuery::default()
        })
        .await
        .unwrap();
    assert!(all[1].deleted, "the deletion is in the history");
    let after = HistoryKey::of(&all[3]);
    assert_eq!(
        hist(HistoryQuery {
            after: Some(after),
            ..HistoryQuery::default()
        })
        .await,
        ["o3/1", "o2/1", "o1/1"]
    );

    // A compartment: current, undeleted versions of one owner, by type then id.
    let comp = |q: CompartmentQuery| async move {
        s.compartment(&CompartmentQuery { limit: 100, ..q })
            .await
            .unwrap()
            .into_iter()
            .map(|r| format!("{}/{}", r.id, r.version))
            .collect::<Vec<_>>()
    };
    let of = |owner: &str| CompartmentQuery {
        owner: Some(owner.into()),
        ..CompartmentQuery::default()
    };
    assert_eq!(
        comp(CompartmentQuery::default()).await,
        ["o1/2", "o2/1", "o4/1", "o5/1"],
        "every current record"
    );
    assert_eq!(comp(of("Patient/a")).await, ["o1/2", "o2/1", "o5/1"]);
    assert_eq!(
        comp(of("Patient/b")).await,
        ["o4/1"],
        "the deleted o3 is not in it"
    );
    assert_eq!(
        comp(CompartmentQuery {
            after: Some(("Observation".into(), "o1".into())),
            since: Some("2026-01-01T00:00:02.000Z".into()),
            ..of("Patient/a")
        })
        .await,
        ["o2/1", "o5/1"]
    );
    assert!(
        comp(CompartmentQuery {
            types: Some(vec!["Condition".into()]),
            ..of("Patient/a")
        })
        .await
        .is_empty()
    );

    // o2 was retagged from tag 1 to tag 9: tag 1 no longer finds it, and its next version
    // replaces what the retag filed (the head keeps the list of the tags to remove).
    assert!(
        !ids(s.search(&q(vec![vec![tag(1)]], vec![])).await.unwrap()).contains(&"o2".to_owned())
    );
    s.commit(
        &[write(
            "o2",
            2,
            "2026-01-01T00:00:09.000Z",
            "Patient/a",
            vec![tag(7)],
        )],
        &[],
        &[],
    )
    .await
    .unwrap();
    assert_eq!(
        ids(s.search(&q(vec![vec![tag(9)]], vec![])).await.unwrap()),
        ["o5"]
    );
    assert_eq!(
        ids(s.search(&q(vec![vec![tag(7)]], vec![])).await.unwrap()),
        ["o2"]
    );
}
