//! FHIR search against `medledger dev`: the conformance table over the Synthea corpus
//! (`searches/mod.rs`), consent on every result (hidden records never counted or paged),
//! paging while others write, and no search value in clear anywhere in the data dir.

#![allow(clippy::unwrap_used, missing_docs)]

mod searches;
mod support;

use serde_json::{Value, json};
use support::Dev;

fn fhir(dev: &Dev) -> searches::Fhir {
    searches::Fhir {
        client: dev.http.clone(),
        base: dev.base.clone(),
        token: dev.token.clone(),
    }
}

#[tokio::test]
async fn the_search_conformance_table_holds_on_the_corpus() {
    let dir = tempfile::tempdir().unwrap();
    let dev = Dev::start(dir.path()).await;
    let since = medledger_now();
    let f = fhir(&dev);
    let stored = searches::load(&f, &support::corpus()).await;
    let checked = searches::run(&f, &stored, &since).await;
    assert!(checked >= 80, "only {checked} queries checked");
}

/// Now as a FHIR instant (UTC, milliseconds), as the server stamps versions.
fn medledger_now() -> String {
    let t = time::OffsetDateTime::now_utc();
    t.format(&time::format_description::well_known::Rfc3339)
        .unwrap()
}

/// A resource created by `token`'s holder; its id.
async fn create(dev: &Dev, token: &str, body: &Value) -> String {
    let r = dev
        .request_as(
            token,
            reqwest::Method::POST,
            body["resourceType"].as_str().unwrap(),
            Some(body),
            &[],
        )
        .await;
    assert_eq!(r.status(), 201);
    r.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned()
}

async fn search_as(dev: &Dev, token: &str, path: &str) -> Value {
    let r = dev
        .request_as(token, reqwest::Method::GET, path, None, &[])
        .await;
    assert_eq!(r.status(), 200, "{path}");
    r.json().await.unwrap()
}

/// The path (below `/fhir/`) of a Bundle's `next` link, if it has one.
fn next_path(bundle: &Value) -> Option<String> {
    let next = bundle["link"]
        .as_array()?
        .iter()
        .find(|l| l["relation"] == "next")?;
    Some(next["url"].as_str()?.split_once("/fhir/")?.1.to_owned())
}

/// Every page of a search or history from `path` on, following `next` links.
async fn pages(dev: &Dev, token: &str, path: &str) -> Vec<Value> {
    let mut out = vec![search_as(dev, token, path).await];
    while let Some(next) = out.last().and_then(next_path) {
        out.push(search_as(dev, token, &next).await);
    }
    out
}

fn ids(bundle: &Value) -> Vec<String> {
    bundle["entry"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|e| e["search"]["mode"] == "match")
        .map(|e| e["resource"]["id"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn results_are_only_what_the_caller_may_read_and_hidden_ones_are_never_counted() {
    let dir = tempfile::tempdir().unwrap();
    let dev = Dev::start(dir.path()).await;
    let dr1 = dev.token.clone();
    let obs = |patient: &str| {
        json!({"resourceType": "Observation", "status": "final",
        "code": {"coding": [{"system": "http://loinc.org", "code": "8867-4"}]},
        "subject": {"reference": patient}})
    };
    let mut patients = Vec::new();
    let mut mine = Vec::new();
    for family in ["Shown", "Hidden"] {
        let pid = create(
            &dev,
            &dr1,
            &json!({"resourceType": "Patient", "name": [{"family": family}]}),
        )
        .await;
        let p = format!("Patient/{pid}");
        let ids: Vec<String> = create_n(&dev, &dr1, &obs(&p), 3).await;
        patients.push(p);
        mine.push(ids);
    }
    // dr-2 sees nothing of theirs; is verified, and only the first patient consents to them.
    let dr2 = support::token(dir.path(), "Practitioner/dr-2", "practitioner", "user/*.rs");
    let before = search_as(&dev, &dr2, "Observation?code=8867-4").await;
    assert_eq!(
        (before["total"].as_u64(), ids(&before).len()),
        (Some(0), 0),
        "{before}"
    );
    let board = support::token(dir.path(), "Organization/board", "authority", "system/*.*");
    let r = dev
        .request_as(&board, reqwest::Method::POST, "$verify-practitioner", Some(&json!({
            "resourceType": "Parameters",
            "parameter": [{"name": "practitioner", "valueReference": {"reference": "Practitioner/dr-2"}}]
        })), &[])
        .await;
    assert!(r.status().is_success(), "{}", r.text().await.unwrap());
    let shown = support::token(dir.path(), &patients[0], "patient", "patient/*.cruds");
    let consent = json!({
        "resourceType": "Consent",
        "status": "active",
        "scope": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/consentscope", "code": "patient-privacy"}]},
        "category": [{"coding": [{"system": "http://loinc.org", "code": "59284-0"}]}],
        "patient": {"reference": patients[0]},
        "policyRule": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "OPTIN"}]},
        "provision": {"type": "permit", "actor": [{"role": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ParticipationType", "code": "IRCP"}]}, "reference": {"reference": "Practitioner/dr-2"}}]}
    });
    create(&dev, &shown, &consent).await;

    // Pages of one: the hidden patient's three never show, in the total or in the pages.
    let mut seen = Vec::new();
    for page in pages(&dev, &dr2, "Observation?code=8867-4&_count=1").await {
        assert_eq!(page["total"], 3, "{page}");
        seen.extend(ids(&page));
    }
    seen.sort();
    let mut want = mine[0].clone();
    want.sort();
    assert_eq!(seen, want);
    // The custodian sees both patients' records; each patient only their own.
    assert_eq!(
        search_as(&dev, &dr1, "Observation?code=8867-4").await["total"],
        6
    );
    let hidden = support::token(dir.path(), &patients[1], "patient", "patient/*.cruds");
    let theirs = search_as(&dev, &hidden, "Observation").await;
    let mut got = ids(&theirs);
    got.sort();
    let mut want = mine[1].clone();
    want.sort();
    assert_eq!(got, want);
    // Someone who is neither may not search across patients.
    let auditor = support::token(dir.path(), "Practitioner/aud", "auditor", "user/*.rs");
    let r = dev
        .request_as(&auditor, reqwest::Method::GET, "Observation", None, &[])
        .await;
    assert_eq!(r.status(), 403);

    // The search is one AuditEvent, in the trail of the patient whose data it returned, and
    // not in the trail of the one whose data it did not.
    let trail = |token: String| {
        let dev = &dev;
        async move { search_as(dev, &token, "AuditEvent?_count=1000").await }
    };
    let searches_in = |trail: &Value| {
        trail["entry"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|e| {
                let ev = &e["resource"];
                ev["subtype"][0]["code"] == "search-type"
                    && ev["agent"][0]["who"]["reference"] == "Practitioner/dr-2"
                    && ev["outcome"] == "0"
            })
            .count()
    };
    let shown_trail = trail(shown.clone()).await;
    assert!(searches_in(&shown_trail) >= 3, "{shown_trail}");
    assert_eq!(searches_in(&trail(hidden.clone()).await), 0);
    // The custodian's search returned both patients: one event, in both trails.
    let both = |t: &Value| {
        t["entry"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|e| {
                let ev = &e["resource"];
                ev["subtype"][0]["code"] == "search-type"
                    && ev["agent"][0]["who"]["reference"] == "Practitioner/dr-1"
                    && ev["entity"].as_array().is_some_and(|es| {
                        es.iter().filter(|x| x["role"]["code"] == "1").count() == 2
                    })
            })
            .map(|e| e["resource"]["id"].as_str().unwrap().to_owned())
            .collect::<Vec<_>>()
    };
    let a = both(&trail(shown).await);
    let b = both(&trail(hidden).await);
    assert!(!a.is_empty() && a == b, "{a:?} {b:?}");
}

/// `n` copies of `body` created by `token`'s holder, one after another (their ids in order).
async fn create_n(dev: &Dev, token: &str, body: &Value, n: usize) -> Vec<String> {
    let mut out = Vec::new();
    for _ in 0..n {
        out.push(create(dev, token, body).await);
    }
    out
}

#[tokio::test]
async fn a_page_cursor_stays_correct_while_others_write() {
    let dir = tempfile::tempdir().unwrap();
    let dev = Dev::start(dir.path()).await;
    let token = dev.token.clone();
    let obs = json!({"resourceType": "Observation", "status": "final",
        "code": {"coding": [{"system": "http://loinc.org", "code": "29463-7"}]},
        "subject": {"reference": "Patient/paging"}});
    let first: Vec<String> = create_n(&dev, &token, &obs, 6).await;
    let page = search_as(
        &dev,
        &token,
        "Observation?code=29463-7&_count=4&_total=none",
    )
    .await;
    assert_eq!(ids(&page), first[..4]);
    // Writes land between the pages: two new records, and an update that moves one of the
    // first page's records to the end of the order.
    let later = create_n(&dev, &token, &obs, 2).await;
    let mut moved = obs.clone();
    moved["id"] = json!(first[0]);
    let r = dev
        .put(&format!("Observation/{}", first[0]), &moved, &[])
        .await;
    assert_eq!(r.status(), 200);
    let next = next_path(&page).unwrap();
    let rest: Vec<String> = pages(&dev, &token, &next)
        .await
        .iter()
        .flat_map(ids)
        .collect();
    // Nothing unchanged is skipped or repeated; what was written meanwhile comes after.
    let mut want: Vec<String> = first[4..].to_vec();
    want.extend(later);
    want.push(first[0].clone());
    assert_eq!(rest, want);
}

#[tokio::test]
async fn no_search_value_of_the_corpus_is_in_clear_in_the_data_dir() {
    let dir = tempfile::tempdir().unwrap();
    let dev = Dev::start(dir.path()).await;
    let f = fhir(&dev);
    let stored = searches::load(&f, &support::corpus()).await;
    let needles = searches::searchable_values(&stored);
    assert!(
        needles.len() > 200,
        "only {} values to look for",
        needles.len()
    );
    let files = support::files_under(dir.path());
    for file in files {
        let data = std::fs::read(&file).unwrap();
        if let Some(n) = searches::first_found(&needles, &data) {
            panic!("'{n}' is in clear in {}", file.display());
        }
    }
}

#[tokio::test]
async fn history_after_update_and_delete_at_every_level() {
    let dir = tempfile::tempdir().unwrap();
    let dev = Dev::start(dir.path()).await;
    let token = dev.token.clone();
    let pid = create(
        &dev,
        &token,
        &json!({"resourceType": "Patient", "gender": "female"}),
    )
    .await;
    let p = json!({"resourceType": "Patient", "id": pid, "gender": "male"});
    assert_eq!(
        dev.put(&format!("Patient/{pid}"), &p, &[]).await.status(),
        200
    );
    let between = search_as(&dev, &token, &format!("Patient/{pid}")).await["meta"]["lastUpdated"]
        .as_str()
        .unwrap()
        .to_owned();
    let r = dev
        .request_as(
            &token,
            reqwest::Method::DELETE,
            &format!("Patient/{pid}"),
            None,
            &[],
        )
        .await;
    assert!(r.status().is_success());
    let obs = create(
        &dev,
        &token,
        &json!({"resourceType": "Observation", "status": "final",
        "code": {"text": "x"}, "subject": {"reference": format!("Patient/{pid}")}}),
    )
    .await;

    let h = search_as(&dev, &token, &format!("Patient/{pid}/_history")).await;
    assert_eq!(h["type"], "history");
    let steps: Vec<(&str, &str)> = h["entry"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["request"]["method"].as_str().unwrap(),
                e["response"]["etag"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        steps,
        [
            ("DELETE", "W/\"3\""),
            ("PUT", "W/\"2\""),
            ("POST", "W/\"1\"")
        ]
    );
    let entries = h["entry"].as_array().unwrap();
    assert!(entries[0].get("resource").is_none());
    assert_eq!(entries[1]["resource"]["gender"], "male");
    assert_eq!(entries[2]["resource"]["gender"], "female");
    // The deleted record is found by no search, but its history stays.
    assert_eq!(
        search_as(&dev, &token, &format!("Patient?_id={pid}")).await["total"],
        0
    );

    // `_since`: the update and what came after; `_at`: what was current then.
    let since = search_as(
        &dev,
        &token,
        &format!("Patient/{pid}/_history?_since={between}"),
    )
    .await;
    assert_eq!(since["entry"].as_array().unwrap().len(), 2);
    let at = search_as(
        &dev,
        &token,
        &format!("Patient/{pid}/_history?_at={between}"),
    )
    .await;
    let at: Vec<&str> = at["entry"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["response"]["etag"].as_str().unwrap())
        .collect();
    assert_eq!(at, ["W/\"2\""]);

    // Type and system level, paged by one.
    let t = search_as(&dev, &token, "Observation/_history").await;
    assert_eq!(t["entry"][0]["resource"]["id"], obs.as_str());
    let n: usize = pages(&dev, &token, "_history?_count=1")
        .await
        .iter()
        .map(|p| p["entry"].as_array().unwrap().len())
        .sum();
    assert_eq!(n, 4, "three versions of the patient and the observation");

    // Someone without consent sees no version; an unknown record is unknown.
    let dr2 = support::token(dir.path(), "Practitioner/dr-2", "practitioner", "user/*.rs");
    let r = dev
        .request_as(
            &dr2,
            reqwest::Method::GET,
            &format!("Patient/{pid}/_history"),
            None,
            &[],
        )
        .await;
    assert_eq!(r.status(), 404);
    assert_eq!(
        search_as(&dev, &dr2, "_history").await["entry"]
            .as_array()
            .unwrap()
            .len(),
        0
    );
    let r = dev
        .request_as(
            &token,
            reqwest::Method::GET,
            "Patient/nobody/_history",
            None,
            &[],
        )
        .await;
    assert_eq!(r.status(), 404);
    let r = dev
        .request_as(
            &token,
            reqwest::Method::GET,
            "_history?_since=soon",
            None,
            &[],
        )
        .await;
    assert_eq!(r.status(), 400);
}

async fn post_with(dev: &Dev, path: &str, body: &Value, headers: &[(&str, &str)]) -> (u16, String) {
    let r = dev.send(reqwest::Method::POST, path, body, headers).await;
    let status = r.status().as_u16();
    let location = r
        .headers()
        .get("location")
        .map(|l| {
            l.to_str()
                .unwrap()
                .split("/_history/")
                .next()
                .unwrap()
                .rsplit('/')
                .next()
                .unwrap()
                .to_owned()
        })
        .unwrap_or_default();
    (status, location)
}

fn patient_with(mrn: &str) -> Value {
    json!({"resourceType": "Patient", "identifier": [{"system": "urn:mrn", "value": mrn}]})
}

#[tokio::test]
async fn conditional_create_update_and_references() {
    let dir = tempfile::tempdir().unwrap();
    let dev = Dev::start(dir.path()).await;
    let token = dev.token.clone();
    let cond = [("if-none-exist", "identifier=urn:mrn|A-1")];
    let (s1, id1) = post_with(&dev, "Patient", &patient_with("A-1"), &cond).await;
    let (s2, id2) = post_with(&dev, "Patient", &patient_with("A-1"), &cond).await;
    assert_eq!((s1, s2), (201, 200));
    assert_eq!(id1, id2, "the second create answers the first record");
    // The patient's trail shows one create and, for the match, a read of that record (not a
    // second create that did not happen).
    let patient = support::token(
        dir.path(),
        &format!("Patient/{id1}"),
        "patient",
        "patient/*.rs",
    );
    let trail = search_as(&dev, &patient, "AuditEvent?_count=1000").await;
    // The events of `trail` with `action` that touch the first record.
    let about = |trail: &Value, action: &str| {
        trail["entry"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|e| {
                let ev = &e["resource"];
                ev["action"] == action
                    && ev["entity"].as_array().into_iter().flatten().any(|x| {
                        x["what"]["reference"]
                            .as_str()
                            .is_some_and(|r| r.starts_with(&format!("Patient/{id1}")))
                    })
            })
            .map(|e| e["resource"].clone())
            .collect::<Vec<_>>()
    };
    let matched_reads = |trail: &Value| {
        about(trail, "R")
            .iter()
            .filter(|ev| {
                ev["outcomeDesc"]
                    .as_str()
                    .is_some_and(|d| d.contains("conditional create matched"))
                    && ev["entity"].as_array().into_iter().flatten().any(|x| {
                        x["what"]["reference"].as_str()
                            == Some(format!("Patient/{id1}/_history/1").as_str())
                    })
            })
            .count()
    };
    assert_eq!(about(&trail, "C").len(), 1, "{trail}");
    assert_eq!(about(&trail, "R").len(), 1, "{trail}");
    assert_eq!(matched_reads(&trail), 1, "{trail}");
    for _ in 0..2 {
        post_with(&dev, "Patient", &patient_with("DUP"), &[]).await;
    }
    let (s, _) = post_with(
        &dev,
        "Patient",
        &patient_with("DUP"),
        &[("if-none-exist", "identifier=urn:mrn|DUP")],
    )
    .await;
    assert_eq!(s, 412);
    let (s, _) = post_with(
        &dev,
        "Patient",
        &patient_with("B"),
        &[("if-none-exist", "birthdate=2020")],
    )
    .await;
    assert_eq!(s, 400, "a criterion only plaintext can answer is refused");

    // Eight concurrent conditional creates make one record.
    let race = patient_with("RACE");
    let race_cond = [("if-none-exist", "identifier=urn:mrn|RACE")];
    let creates = (0..8).map(|_| post_with(&dev, "Patient", &race, &race_cond));
    let answers = futures::future::join_all(creates).await;
    let ids: std::collections::BTreeSet<&String> = answers.iter().map(|(_, id)| id).collect();
    assert_eq!(ids.len(), 1, "{answers:?}");
    assert_eq!(
        answers.iter().filter(|(s, _)| *s == 201).count(),
        1,
        "{answers:?}"
    );
    assert!(
        answers.iter().all(|(s, _)| *s == 201 || *s == 200),
        "{answers:?}"
    );
    assert_eq!(
        search_as(&dev, &token, "Patient?identifier=urn:mrn|RACE").await["total"],
        1
    );

    // Conditional update: none creates, one updates, several refuse.
    let mut p = patient_with("U-1");
    let r = dev.put("Patient?identifier=urn:mrn|U-1", &p, &[]).await;
    assert_eq!(r.status(), 201);
    p["gender"] = json!("female");
    let r = dev.put("Patient?identifier=urn:mrn|U-1", &p, &[]).await;
    assert_eq!(r.status(), 200);
    let found = search_as(&dev, &token, "Patient?identifier=urn:mrn|U-1").await;
    assert_eq!(found["total"], 1);
    assert_eq!(found["entry"][0]["resource"]["meta"]["versionId"], "2");
    assert_eq!(found["entry"][0]["resource"]["gender"], "female");
    assert_eq!(
        dev.put("Patient?identifier=urn:mrn|DUP", &patient_with("DUP"), &[])
            .await
            .status(),
        412
    );

    // A transaction: an ifNoneExist entry that matches (and is referred to by its fullUrl), one
    // that does not, and a conditional reference.
    let bundle = json!({"resourceType": "Bundle", "type": "transaction", "entry": [
        {"fullUrl": "urn:uuid:0b5c1a8e-8a4c-4b43-9f55-1f1d8a1f0a01", "resource": patient_with("A-1"),
         "request": {"method": "POST", "url": "Patient", "ifNoneExist": "identifier=urn:mrn|A-1"}},
        {"fullUrl": "urn:uuid:0b5c1a8e-8a4c-4b43-9f55-1f1d8a1f0a02", "resource": patient_with("T-NEW"),
         "request": {"method": "POST", "url": "Patient", "ifNoneExist": "identifier=urn:mrn|T-NEW"}},
        {"resource": {"resourceType": "Observation", "status": "final", "code": {"text": "t"},
            "subject": {"reference": "urn:uuid:0b5c1a8e-8a4c-4b43-9f55-1f1d8a1f0a01"}},
         "request": {"method": "POST", "url": "Observation"}},
        {"resource": {"resourceType": "Observation", "status": "final", "code": {"text": "u"},
            "subject": {"reference": "Patient?identifier=urn:mrn|U-1"}},
         "request": {"method": "POST", "url": "Observation"}}
    ]});
    let r = dev.post("", &bundle).await;
    assert_eq!(r.status(), 200);
    let out: Value = r.json().await.unwrap();
    let statuses: Vec<&str> = out["entry"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["response"]["status"].as_str().unwrap())
        .collect();
    assert_eq!(
        statuses,
        ["200 OK", "201 Created", "201 Created", "201 Created"],
        "{out}"
    );
    assert_eq!(
        search_as(&dev, &token, &format!("Observation?subject=Patient/{id1}")).await["total"],
        1
    );
    let u1 = found["entry"][0]["resource"]["id"].as_str().unwrap();
    assert_eq!(
        search_as(&dev, &token, &format!("Observation?subject=Patient/{u1}")).await["total"],
        1
    );
    // The transaction's match, and a batch's, are each a read of the record in its trail.
    let batch = json!({"resourceType": "Bundle", "type": "batch", "entry": [
        {"resource": patient_with("A-1"),
         "request": {"method": "POST", "url": "Patient", "ifNoneExist": "identifier=urn:mrn|A-1"}}
    ]});
    let r = dev.post("", &batch).await;
    assert_eq!(r.status(), 200);
    let out: Value = r.json().await.unwrap();
    assert_eq!(out["entry"][0]["response"]["status"], "200 OK", "{out}");
    let trail = search_as(&dev, &patient, "AuditEvent?_count=1000").await;
    assert_eq!(matched_reads(&trail), 3, "{trail}");
    let bad = json!({"resourceType": "Bundle", "type": "transaction", "entry": [
        {"resource": {"resourceType": "Observation", "status": "final", "code": {"text": "v"},
            "subject": {"reference": "Patient?identifier=urn:mrn|NOBODY"}},
         "request": {"method": "POST", "url": "Observation"}}]});
    assert_eq!(dev.post("", &bad).await.status(), 412);
}

#[tokio::test]
async fn reindex_rebuilds_the_index_from_the_ciphertexts_while_the_server_runs() {
    let dir = tempfile::tempdir().unwrap();
    let dev = Dev::start(dir.path()).await;
    let token = dev.token.clone();
    let pid = create(
        &dev,
        &token,
        &json!({"resourceType": "Patient", "name": [{"family": "Reindexed"}]}),
    )
    .await;
    create(
        &dev,
        &token,
        &json!({"resourceType": "Observation", "status": "final",
        "code": {"coding": [{"system": "http://loinc.org", "code": "8867-4"}]},
        "subject": {"reference": format!("Patient/{pid}")}}),
    )
    .await;
    let gone = format!("Patient/{pid}");
    let r = dev
        .request_as(&token, reqwest::Method::DELETE, &gone, None, &[])
        .await;
    assert!(r.status().is_success());
    // The index is lost (or was filed under an old key): searches find nothing.
    let db = dev.db().await;
    for table in ["search_tags", "record_tags"] {
        sqlx::query(sqlx::AssertSqlSafe(format!("DELETE FROM {table}")))
            .execute(&db)
            .await
            .unwrap();
    }
    db.close().await;
    assert_eq!(
        search_as(&dev, &token, "Observation?code=8867-4").await["total"],
        0
    );
    let said = reindex(dir.path(), &[]).unwrap();
    assert!(said.contains("reindexed 1 records"), "{said}");
    // Found again, without a restart; the deleted Patient stays unfound.
    assert_eq!(
        search_as(&dev, &token, "Observation?code=8867-4").await["total"],
        1
    );
    assert_eq!(
        search_as(&dev, &token, "Patient?family=reindexed").await["total"],
        0
    );
}

/// Every tag in the data dir's index: its rows, and the records' lists (merged or pending).
async fn all_tags(dev: &Dev) -> std::collections::BTreeSet<Vec<u8>> {
    let db = dev.db().await;
    let rows: Vec<(Vec<u8>,)> = sqlx::query_as("SELECT tag FROM search_tags")
        .fetch_all(&db)
        .await
        .unwrap();
    let lists: Vec<(Vec<u8>,)> = sqlx::query_as("SELECT tags FROM record_tags")
        .fetch_all(&db)
        .await
        .unwrap();
    db.close().await;
    let listed = lists
        .iter()
        .flat_map(|(l,)| l.chunks(16).map(<[u8]>::to_vec));
    rows.into_iter().map(|(t,)| t).chain(listed).collect()
}

/// Runs `medledger reindex --data-dir dir flags…`; `Ok(stdout)` when it succeeds, else
/// `Err(stderr)`.
fn reindex(dir: &std::path::Path, flags: &[&str]) -> Result<String, String> {
    let out = std::process::Command::new(support::BIN)
        .args(["reindex", "--data-dir"])
        .arg(dir)
        .args(flags)
        .output()
        .unwrap();
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    if out.status.success() {
        Ok(text(&out.stdout))
    } else {
        Err(text(&out.stderr))
    }
}

#[tokio::test]
async fn the_index_key_rotates_by_reindexing_while_the_server_serves() {
    let dir = tempfile::tempdir().unwrap();
    let mut dev = Dev::start(dir.path()).await;
    let token = dev.token.clone();
    let patient = |i: usize| {
        json!({"resourceType": "Patient", "name": [{"family": format!("Rotated{i}")}],
            "identifier": [{"system": "urn:rot", "value": format!("R-{i}")}]})
    };
    for i in 0..3 {
        create(&dev, &token, &patient(i)).await;
    }
    let old = all_tags(&dev).await;
    assert!(!old.is_empty());

    // 1. Servers write under both generations; records written now carry both.
    dev.restart_with(&["--index-next-generation", "2"]).await;
    create(&dev, &token, &patient(3)).await;
    // 2. Everything earlier is filed under both too, while the server runs and still searches
    //    generation 1.
    let said = reindex(
        dir.path(),
        &["--index-generation", "1", "--index-next-generation", "2"],
    )
    .unwrap();
    assert!(
        said.contains("reindexed 4 records under index key generation [1, 2]"),
        "{said}"
    );
    let both = all_tags(&dev).await;
    assert!(old.is_subset(&both));
    assert!(
        both.len() > 2 * old.len(),
        "{} of {}",
        both.len(),
        old.len()
    );
    assert_eq!(
        search_as(&dev, &token, "Patient?family=rotated").await["total"],
        4
    );
    // 3. The servers move to generation 2: every record is found, the one written during the
    //    rotation included.
    dev.restart_with(&["--index-generation", "2"]).await;
    assert_eq!(
        search_as(&dev, &token, "Patient?family=rotated").await["total"],
        4
    );
    assert_eq!(
        search_as(&dev, &token, "Patient?identifier=urn:rot|R-0").await["total"],
        1
    );
    // 4. The old generation's tags are dropped; no tag of generation 1 remains.
    let said = reindex(dir.path(), &["--index-generation", "2"]).unwrap();
    assert!(said.contains("under index key generation [2]"), "{said}");
    let new = all_tags(&dev).await;
    assert!(
        new.is_disjoint(&old),
        "a generation-1 tag survived the rotation"
    );
    // During the rotation each record had as many tags under each key; now only generation 2's.
    assert_eq!(both.len(), 2 * new.len());
    assert_eq!(
        search_as(&dev, &token, "Patient?identifier=urn:rot|R-3").await["total"],
        1
    );
    // A server still on generation 1 would find nothing now: the key really changed.
    dev.restart_with(&[]).await;
    assert_eq!(
        search_as(&dev, &token, "Patient?family=rotated").await["total"],
        0
    );
    // Nonsense is refused at start.
    let r = reindex(
        dir.path(),
        &["--index-generation", "2", "--index-next-generation", "2"],
    )
    .unwrap_err();
    assert!(r.contains("must differ"), "{r}");
}

#[tokio::test]
async fn the_server_merges_the_pending_tags_of_a_transaction_in_the_background() {
    let dir = tempfile::tempdir().unwrap();
    let dev = Dev::start(dir.path()).await;
    let token = dev.token.clone();
    let patient = "urn:uuid:6f1c2d3e-4a5b-4c6d-8e9f-0a1b2c3d4e5f";
    let observation = |code: &str| {
        json!({"resource": {"resourceType": "Observation", "status": "final",
            "code": {"coding": [{"system": "http://loinc.org", "code": code}]},
            "subject": {"reference": patient}},
         "request": {"method": "POST", "url": "Observation"}})
    };
    let bundle = json!({"resourceType": "Bundle", "type": "transaction", "entry": [
        {"fullUrl": patient, "resource": {"resourceType": "Patient"},
         "request": {"method": "POST", "url": "Patient"}},
        observation("8867-4"), observation("8310-5")]});
    assert_eq!(dev.post("", &bundle).await.status(), 200);
    // Found at once (its tags pending), merged within a few merge intervals, found the same.
    assert_eq!(
        search_as(&dev, &token, "Observation?code=8867-4,8310-5").await["total"],
        2
    );
    let pending = async || -> i64 {
        let db = dev.db().await;
        let (n,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM record_tags WHERE merged = 0")
            .fetch_one(&db)
            .await
            .unwrap();
        db.close().await;
        n
    };
    let mut left = pending().await;
    for _ in 0..100 {
        if left == 0 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        left = pending().await;
    }
    assert_eq!(left, 0, "the pending tag lists were never merged");
    let db = dev.db().await;
    let (rows,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM search_tags")
        .fetch_one(&db)
        .await
        .unwrap();
    db.close().await;
    assert!(rows > 0);
    assert_eq!(
        search_as(&dev, &token, "Observation?code=8867-4,8310-5").await["total"],
        2
    );
}
