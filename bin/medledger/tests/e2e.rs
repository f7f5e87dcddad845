//! End-to-end: `medledger dev` on a temporary data dir, driven over real HTTP.

#![allow(clippy::unwrap_used, missing_docs)]

mod support;

use std::collections::HashMap;

use serde_json::{Value, json};
use support::{Dev, outcome, token};

fn patient() -> Value {
    json!({"resourceType": "Patient", "name": [{"family": "Quixote", "given": ["Alonso"]}], "gender": "male", "birthDate": "1947-03-04"})
}

fn observation(patient_id: &str) -> Value {
    json!({"resourceType": "Observation", "status": "final",
        "code": {"coding": [{"system": "http://loinc.org", "code": "8302-2", "display": "Body height"}]},
        "subject": {"reference": format!("Patient/{patient_id}")},
        "valueQuantity": {"value": 180.5, "unit": "cm", "system": "http://unitsofmeasure.org", "code": "cm"}})
}

/// Drops what the server owns (id, meta) so sent and stored resources compare. Numbers compare
/// as written: serde_json keeps their literals (`arbitrary_precision`), so `10.0` is not `10`.
fn strip(mut v: Value) -> Value {
    if let Some(o) = v.as_object_mut() {
        o.remove("id");
        o.remove("meta");
    }
    v
}

#[tokio::test]
async fn every_capability_interaction_works() {
    let dir = tempfile::tempdir().unwrap();
    let dev = Dev::start(dir.path()).await;

    // metadata is open and lists what the router serves.
    let r = dev.http.get(dev.url("metadata")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let cs: Value = r.json().await.unwrap();
    assert_eq!(cs["resourceType"], "CapabilityStatement");
    assert_eq!(cs["fhirVersion"], "4.0.1");
    let patient_rest = cs["rest"][0]["resource"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["type"] == "Patient")
        .unwrap()
        .clone();
    let listed: Vec<String> = patient_rest["interaction"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["code"].as_str().unwrap().to_owned())
        .collect();
    for want in [
        "read",
        "vread",
        "create",
        "update",
        "delete",
        "search-type",
        "history-instance",
        "history-type",
    ] {
        assert!(
            listed.contains(&want.to_owned()),
            "{want} missing from {listed:?}"
        );
    }
    let system: Vec<&str> = cs["rest"][0]["interaction"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["code"].as_str().unwrap())
        .collect();
    assert_eq!(system, vec!["transaction", "batch", "history-system"]);

    // create
    let r = dev.post("Patient", &patient()).await;
    assert_eq!(r.status(), 201);
    let loc = r.headers()["location"].to_str().unwrap().to_owned();
    assert_eq!(r.headers()["etag"], "W/\"1\"");
    let created: Value = r.json().await.unwrap();
    let id = created["id"].as_str().unwrap().to_owned();
    assert!(
        loc.ends_with(&format!("/fhir/Patient/{id}/_history/1")),
        "{loc}"
    );
    assert_eq!(created["meta"]["versionId"], "1");
    assert!(
        created["meta"]["lastUpdated"]
            .as_str()
            .unwrap()
            .ends_with('Z')
    );
    assert_eq!(strip(created.clone()), strip(patient()));

    // read
    let r = dev.get(&format!("Patient/{id}")).await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["etag"], "W/\"1\"");
    let read: Value = r.json().await.unwrap();
    assert_eq!(read, created);

    // search-type, history-instance, history-type, history-system
    for (path, entries) in [
        (format!("Patient?_id={id}"), 1),
        (format!("Patient/{id}/_history"), 1),
        ("Patient/_history".to_owned(), 1),
        ("_history".to_owned(), 1),
    ] {
        let r = dev.get(&path).await;
        assert_eq!(r.status(), 200, "{path}");
        let b: Value = r.json().await.unwrap();
        assert_eq!(b["resourceType"], "Bundle");
        assert_eq!(b["entry"].as_array().unwrap().len(), entries, "{path}: {b}");
    }

    // update with If-Match, and a stale If-Match
    let mut changed = read.clone();
    changed["gender"] = json!("other");
    let r = dev
        .put(
            &format!("Patient/{id}"),
            &changed,
            &[("if-match", "W/\"1\"")],
        )
        .await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["etag"], "W/\"2\"");
    let r = dev
        .put(
            &format!("Patient/{id}"),
            &changed,
            &[("if-match", "W/\"1\"")],
        )
        .await;
    outcome(r, 412).await;

    // vread both versions
    let v1: Value = dev
        .get(&format!("Patient/{id}/_history/1"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(v1["gender"], "male");
    let v2: Value = dev
        .get(&format!("Patient/{id}/_history/2"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(v2["gender"], "other");
    assert_eq!(v2["meta"]["versionId"], "2");
    outcome(dev.get(&format!("Patient/{id}/_history/3")).await, 404).await;

    // an update may not move a record to another patient
    let other: Value = dev.post("Patient", &patient()).await.json().await.unwrap();
    let obs: Value = dev
        .post("Observation", &observation(&id))
        .await
        .json()
        .await
        .unwrap();
    let mut moved = obs.clone();
    moved["subject"]["reference"] = json!(format!("Patient/{}", other["id"].as_str().unwrap()));
    let r = dev
        .put(
            &format!("Observation/{}", obs["id"].as_str().unwrap()),
            &moved,
            &[],
        )
        .await;
    outcome(r, 422).await;

    // $verify on a version
    let proof = dev.proof(&format!("Patient/{id}/_history/2")).await;
    assert_eq!(proof["format"], "medledger.proof.v1");
    assert_eq!(proof["leaf"]["version"], 2);

    // Metrics: requests counted by route template (never by id), the ledger's progress.
    let metrics = dev
        .http
        .get(dev.url("").replace("/fhir", "/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("medledger_http_requests_total{route=\"/fhir/{rt}/{id}\",status=\"200\"}"),
        "{metrics}"
    );
    assert!(!metrics.contains(id.as_str()), "an id leaked into a label");
    let committed: f64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("medledger_ledger_committed_tree_size "))
        .unwrap()
        .parse()
        .unwrap();
    assert!(committed >= 2.0, "{metrics}");
    assert!(
        metrics.contains("medledger_ledger_anchored_tree_size "),
        "{metrics}"
    );

    // delete → 410 on read, history still readable
    let r = dev
        .send(
            reqwest::Method::DELETE,
            &format!("Patient/{id}"),
            &json!({}),
            &[],
        )
        .await;
    assert_eq!(r.status(), 204);
    outcome(dev.get(&format!("Patient/{id}")).await, 410).await;
    assert_eq!(
        dev.get(&format!("Patient/{id}/_history/1")).await.status(),
        200
    );
    outcome(dev.get("Patient/does-not-exist").await, 404).await;
    // Interactions not served here, and malformed paths, still answer with an OperationOutcome.
    outcome(
        dev.send(reqwest::Method::PATCH, "Patient/x", &json!({}), &[])
            .await,
        405,
    )
    .await;
    // The search of the deleted record finds nothing.
    let r = dev.get(&format!("Patient?_id={id}")).await;
    assert_eq!(r.json::<Value>().await.unwrap()["total"], 0);
    outcome(dev.get("Patient/%FF").await, 400).await;
}

#[tokio::test]
async fn authentication_is_required() {
    let dir = tempfile::tempdir().unwrap();
    let dev = Dev::start(dir.path()).await;
    let url = dev.url("Patient/x");
    let r = dev.http.get(&url).send().await.unwrap();
    assert_eq!(
        r.headers()["www-authenticate"],
        "Bearer realm=\"medledger\""
    );
    outcome(r, 401).await;
    outcome(
        dev.http
            .get(&url)
            .bearer_auth("not-a-jwt")
            .send()
            .await
            .unwrap(),
        401,
    )
    .await;
    // A token from another deployment's issuer.
    let elsewhere = tempfile::tempdir().unwrap();
    let foreign = token(
        elsewhere.path(),
        "Practitioner/dr-1",
        "practitioner",
        "user/*.cruds",
    );
    outcome(
        dev.http
            .get(&url)
            .bearer_auth(&foreign)
            .send()
            .await
            .unwrap(),
        401,
    )
    .await;
    // Valid token, scopes too narrow: 403 before anything is looked up.
    let reader = token(dir.path(), "Practitioner/dr-2", "practitioner", "user/*.rs");
    let r = dev
        .http
        .post(dev.url("Patient"))
        .bearer_auth(&reader)
        .header("content-type", "application/fhir+json")
        .body(patient().to_string())
        .send()
        .await
        .unwrap();
    outcome(r, 403).await;
    // A patient reading a record that is not theirs learns nothing, not even that it exists.
    let pat = token(dir.path(), "Patient/p-1", "patient", "user/*.cruds");
    outcome(
        dev.http.get(&url).bearer_auth(&pat).send().await.unwrap(),
        404,
    )
    .await;
    assert_eq!(dev.count("record_versions").await, 0);
}

/// A dev server for bad-input tests, with a body-size limit small enough to reach.
async fn bad_input_dev() -> (tempfile::TempDir, Dev) {
    let dir = tempfile::tempdir().unwrap();
    let dev = Dev::start_with(dir.path(), &["--max-body-bytes", "20000"]).await;
    (dir, dev)
}

/// Nothing was written: no version, head, record event or leaf; whatever the trail holds is
/// the refusals, every one refused.
async fn nothing_stored_but_refusals(dev: &Dev) {
    for table in [
        "record_versions",
        "record_heads",
        "bus_log WHERE topic = 'medledger.records.v1'",
        "ledger_leaves WHERE kind = 1",
    ] {
        assert_eq!(dev.count(table).await, 0, "{table}");
    }
    let refused = dev.count("audit_events WHERE outcome = '4'").await;
    assert_eq!(dev.count("audit_events").await, refused);
}

#[tokio::test]
async fn bodies_that_are_not_one_fhir_json_resource_are_refused() {
    let (_dir, dev) = bad_input_dev().await;
    let raw = |body: &'static str, ct: &'static str| {
        dev.http
            .post(dev.url("Patient"))
            .bearer_auth(&dev.token)
            .header("content-type", ct)
            .body(body)
            .send()
    };
    assert!(
        outcome(
            raw("{not json", "application/fhir+json").await.unwrap(),
            400
        )
        .await
        .contains("malformed JSON")
    );
    outcome(raw("{}", "text/plain").await.unwrap(), 415).await;
    let big = json!({"resourceType": "Patient", "name": [{"text": "x".repeat(30000)}]});
    outcome(dev.post("Patient", &big).await, 413).await;
    // A member named twice: RFC 8259 leaves its meaning open, FHIR forbids it.
    for twice in [
        r#"{"resourceType":"Patient","gender":"male","gender":"female"}"#,
        r#"{"resourceType":"Patient","resourceType":"Observation","status":"final","code":{"text":"x"}}"#,
        r#"{"resourceType":"Patient","name":[{"family":"A","family":"B"}]}"#,
    ] {
        let diag = outcome(raw(twice, "application/fhir+json").await.unwrap(), 400).await;
        assert!(diag.contains("appears twice"), "{diag}");
    }
    nothing_stored_but_refusals(&dev).await;
}

#[tokio::test]
async fn resources_of_the_wrong_type_or_content_are_refused() {
    let (_dir, dev) = bad_input_dev().await;
    outcome(
        dev.post("Spaceship", &json!({"resourceType": "Spaceship"}))
            .await,
        400,
    )
    .await;
    outcome(
        dev.post(
            "Patient",
            &json!({"resourceType": "Observation", "status": "final", "code": {"text": "x"}}),
        )
        .await,
        400,
    )
    .await;
    assert!(
        outcome(
            dev.post(
                "Patient",
                &json!({"resourceType": "Patient", "gender": "robot"})
            )
            .await,
            422
        )
        .await
        .contains("invalid Patient")
    );
    assert!(
        outcome(
            dev.post(
                "Patient",
                &json!({"resourceType": "Patient", "favouriteColour": "blue"})
            )
            .await,
            422
        )
        .await
        .contains("favouriteColour")
    );
    // A reference whose id is no FHIR id names no resource, wherever it is.
    outcome(dev.post("Observation", &observation("..")).await, 422).await;
    let mut performer = observation("p-1");
    performer["performer"] = json!([{"reference": "Practitioner/.."}]);
    let diag = outcome(dev.post("Observation", &performer).await, 422).await;
    assert!(diag.contains("performer.reference"), "{diag}");
    nothing_stored_but_refusals(&dev).await;
    assert!(dev.count("audit_events WHERE outcome = '4'").await > 0);
}

#[tokio::test]
async fn a_failed_transaction_stores_nothing_and_a_batch_answers_per_entry() {
    let (_dir, dev) = bad_input_dev().await;
    // A transaction with one invalid entry stores nothing at all, blobs included.
    let blobs_before = dev.blob_files();
    let tx = json!({"resourceType": "Bundle", "type": "transaction", "entry": [
        {"fullUrl": "urn:uuid:11111111-1111-1111-1111-111111111111", "resource": patient(), "request": {"method": "POST", "url": "Patient"}},
        {"resource": {"resourceType": "Observation", "status": "final", "code": {"text": "x"},
            "subject": {"reference": "urn:uuid:11111111-1111-1111-1111-111111111111"}}, "request": {"method": "POST", "url": "Observation"}},
        {"resource": {"resourceType": "Patient", "gender": "robot"}, "request": {"method": "POST", "url": "Patient"}}
    ]});
    let diag = outcome(dev.post("", &tx).await, 422).await;
    assert!(diag.starts_with("entry 2:"), "{diag}");
    // An unresolvable urn reference fails the whole transaction too.
    let dangling = json!({"resourceType": "Bundle", "type": "transaction", "entry": [
        {"resource": observation("x"), "request": {"method": "POST", "url": "Observation"}},
        {"resource": {"resourceType": "Observation", "status": "final", "code": {"text": "x"},
            "subject": {"reference": "urn:uuid:22222222-2222-2222-2222-222222222222"}}, "request": {"method": "POST", "url": "Observation"}}
    ]});
    outcome(dev.post("", &dangling).await, 400).await;
    outcome(
        dev.post("", &json!({"resourceType": "Bundle", "type": "collection"}))
            .await,
        400,
    )
    .await;
    for table in [
        "record_versions",
        "record_heads",
        "bus_log WHERE topic = 'medledger.records.v1'",
        "ledger_leaves WHERE kind = 1",
    ] {
        assert_eq!(dev.count(table).await, 0, "{table}");
    }
    // What was stored is the audit trail of the refusals, every one refused.
    let refused = dev.count("audit_events WHERE outcome = '4'").await;
    assert!(refused > 0);
    assert_eq!(dev.count("audit_events").await, refused);
    assert_eq!(
        dev.blob_files(),
        blobs_before,
        "orphaned blobs were left behind"
    );

    // Two entries sharing one fullUrl make references to it ambiguous.
    let shared = "urn:uuid:33333333-3333-3333-3333-333333333333";
    let twice = json!({"resourceType": "Bundle", "type": "transaction", "entry": [
        {"fullUrl": shared, "resource": patient(), "request": {"method": "POST", "url": "Patient"}},
        {"fullUrl": shared, "resource": patient(), "request": {"method": "POST", "url": "Patient"}}
    ]});
    let diag = outcome(dev.post("", &twice).await, 400).await;
    assert!(diag.starts_with("entry 1:"), "{diag}");
    nothing_stored_but_refusals(&dev).await;

    // A batch answers per entry: one good, one bad.
    let batch = json!({"resourceType": "Bundle", "type": "batch", "entry": [
        {"resource": patient(), "request": {"method": "POST", "url": "Patient"}},
        {"resource": {"resourceType": "Patient", "gender": "robot"}, "request": {"method": "POST", "url": "Patient"}}
    ]});
    let r = dev.post("", &batch).await;
    assert_eq!(r.status(), 200);
    let b: Value = r.json().await.unwrap();
    assert_eq!(b["type"], "batch-response");
    assert_eq!(b["entry"][0]["response"]["status"], "201 Created");
    assert!(
        b["entry"][1]["response"]["status"]
            .as_str()
            .unwrap()
            .starts_with("422")
    );
    assert_eq!(
        b["entry"][1]["response"]["outcome"]["resourceType"],
        "OperationOutcome"
    );
    assert_eq!(dev.count("record_versions").await, 1);
    // A delete whose If-Match names another version changes nothing.
    let stored = b["entry"][0]["response"]["location"].as_str().unwrap();
    let target = stored.split("/_history").next().unwrap();
    let r = dev
        .send(
            reqwest::Method::DELETE,
            target,
            &json!({}),
            &[("if-match", "W/\"7\"")],
        )
        .await;
    outcome(r, 412).await;
    let r = dev
        .send(
            reqwest::Method::DELETE,
            "Patient/never-was",
            &json!({}),
            &[("if-match", "W/\"1\"")],
        )
        .await;
    outcome(r, 412).await;
    assert_eq!(dev.count("record_versions").await, 1);
}

#[tokio::test]
async fn consent_ids_and_access_requests_nobody_could_decide_are_refused() {
    let (_dir, dev) = bad_input_dev().await;
    // A Consent id that is no FHIR id, and access requests nobody could decide.
    let consent = json!({"resourceType": "Consent", "id": "a b", "status": "active"});
    outcome(dev.put("Consent/a%20b", &consent, &[]).await, 400).await;
    let end = (time::OffsetDateTime::now_utc() + time::Duration::days(30))
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap();
    let ask = json!({"resourceType": "Parameters", "parameter": [
        {"name": "purpose", "valueCode": "TREAT"},
        {"name": "end", "valueDateTime": end}
    ]});
    outcome(dev.post("Patient/nobody/$request-access", &ask).await, 404).await;
    outcome(dev.post("Patient/a%20b/$request-access", &ask).await, 400).await;
    for table in ["consent_access_requests", "consent_versions"] {
        assert_eq!(dev.count(table).await, 0, "{table}");
    }
}

/// Posts a corpus bundle as a transaction; returns fullUrl → `Type/id` and the sent entries.
async fn post_as_transaction(dev: &Dev, file: &str) -> (HashMap<String, String>, Vec<Value>) {
    let path = support::corpus().join("fhir/synthea").join(file);
    let mut bundle: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    bundle["type"] = json!("transaction");
    let entries = bundle["entry"].as_array().unwrap().clone();
    let r = dev.post("", &bundle).await;
    let status = r.status();
    let body: Value = r.json().await.unwrap();
    assert_eq!(status, 200, "{file}: {body}");
    assert_eq!(body["type"], "transaction-response");
    let resp = body["entry"].as_array().unwrap();
    assert_eq!(resp.len(), entries.len());
    let mut ids = HashMap::new();
    for (sent, got) in entries.iter().zip(resp) {
        assert_eq!(got["response"]["status"], "201 Created", "{got}");
        let loc = got["response"]["location"].as_str().unwrap();
        let key = loc.split("/_history/").next().unwrap().to_owned();
        ids.insert(sent["fullUrl"].as_str().unwrap().to_owned(), key);
    }
    (ids, entries)
}

/// How many decimals in `v` a double would spell differently or could not hold: a trailing zero
/// after the point (`0.0`, which ECMAScript writes `0`) or 17 significant digits
/// (`112.41600000000001`, which a fast float parser rounds to `112.416`).
fn literals_a_double_would_change(v: &Value) -> usize {
    match v {
        Value::Number(n) => {
            let literal = n.to_string();
            let digits = literal.chars().filter(char::is_ascii_digit).count();
            usize::from(literal.contains('.') && (literal.ends_with('0') || digits >= 17))
        }
        Value::Array(a) => a.iter().map(literals_a_double_would_change).sum(),
        Value::Object(o) => o.values().map(literals_a_double_would_change).sum(),
        _ => 0,
    }
}

#[tokio::test]
async fn synthea_bundles_round_trip_and_no_plaintext_touches_disk() {
    let dir = tempfile::tempdir().unwrap();
    let dev = Dev::start(dir.path()).await;
    let patient_file = "Bibi254_Schowalter414_475d72ca-91c7-7211-97e3-f000af33fc04.json";
    let mut total = 0;
    let mut last = String::new();
    let mut decimals = 0;
    // Every corpus bundle, the organisations and practitioners first (the patients refer to them).
    let mut files: Vec<String> = std::fs::read_dir(support::corpus().join("fhir/synthea"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|f| f.ends_with(".json"))
        .collect();
    files.sort_by_key(|f| (!f.contains("Information"), f.clone()));
    assert_eq!(files.len(), 7, "{files:?}");
    for file in &files {
        let (ids, entries) = post_as_transaction(&dev, file).await;
        for e in &entries {
            let key = &ids[e["fullUrl"].as_str().unwrap()];
            let r = dev.get(key).await;
            assert_eq!(r.status(), 200, "{key}");
            let body = r.bytes().await.unwrap();
            let got: Value = serde_json::from_slice(&body).unwrap();
            let mut want = e["resource"].clone();
            support::rewrite(&mut want, &ids);
            assert_eq!(
                strip(got.clone()),
                strip(want.clone()),
                "{key} differs from what was sent"
            );
            // Byte for byte: the body is the canonical form of what was sent plus the server's id
            // and meta, every decimal spelled as the sender spelled it (Synthea writes
            // `112.41600000000001` and `0.0`, which a double would shorten).
            want["id"] = got["id"].clone();
            want["meta"] = got["meta"].clone();
            assert_eq!(
                String::from_utf8_lossy(&body),
                String::from_utf8_lossy(&medledger_fhir::canonical_json(&want)),
                "{key}"
            );
            decimals += literals_a_double_would_change(&e["resource"]);
            last = key.clone();
        }
        total += entries.len();
    }
    // The corpus does exercise it.
    assert!(decimals > 100, "{decimals}");
    assert_eq!(dev.count("record_versions").await as usize, total);

    // Every version reaches the ledger and the last one verifies against the chain.
    let proof = dev.proof(&format!("{last}/_history/1")).await;
    let (ok, out) = dev.verify(&proof, None);
    assert!(ok, "{out}");
    assert_eq!(
        dev.count("ledger_leaves WHERE kind = 1").await as usize,
        total
    );

    // Names, addresses and identifiers of the patient appear in no file of the data dir (the
    // SQLite WAL included).
    let bundle: Value = serde_json::from_slice(
        &std::fs::read(support::corpus().join("fhir/synthea").join(patient_file)).unwrap(),
    )
    .unwrap();
    let p = &bundle["entry"][0]["resource"];
    let needles = [
        p["name"][0]["family"].as_str().unwrap().to_owned(),
        p["name"][0]["given"][0].as_str().unwrap().to_owned(),
        p["address"][0]["line"][0].as_str().unwrap().to_owned(),
        p["identifier"][1]["value"].as_str().unwrap().to_owned(),
        "Body Height".to_owned(),
    ];
    let files = support::files_under(dir.path());
    assert!(
        files
            .iter()
            .any(|f| f.ends_with("state.db-wal") || f.ends_with("state.db"))
    );
    for f in files {
        let data = std::fs::read(&f).unwrap();
        for n in &needles {
            assert!(
                !data.windows(n.len()).any(|w| w == n.as_bytes()),
                "plaintext '{n}' found in {}",
                f.display()
            );
        }
    }
}

#[tokio::test]
async fn acknowledged_writes_survive_sigkill() {
    let dir = tempfile::tempdir().unwrap();
    let mut dev = Dev::start(dir.path()).await;
    let mut written = Vec::new();
    for _ in 0..5 {
        let r = dev.post("Patient", &patient()).await;
        assert_eq!(r.status(), 201);
        written.push(r.json::<Value>().await.unwrap());
    }
    // Killed right after the last 2xx: before the ledger writer has necessarily seen it.
    dev.kill9();
    // A blob written by a write that crashed before its index commit is garbage.
    let store = medledger_blobstore::LocalBlockstore::open(&dir.path().join("blobs")).unwrap();
    let orphan = medledger_blobstore::Cid::of(
        medledger_blobstore::cid::RAW,
        b"ciphertext of a write that never committed",
    );
    let orphan_path = store.block_path(&orphan);
    std::fs::create_dir_all(orphan_path.parent().unwrap()).unwrap();
    std::fs::write(&orphan_path, b"ciphertext of a write that never committed").unwrap();
    let blobs_before = dev.blob_files();
    dev.restart().await;
    assert!(!orphan_path.exists(), "orphaned blob survived the restart");
    assert_eq!(dev.blob_files(), blobs_before - 1);
    for w in &written {
        let id = w["id"].as_str().unwrap();
        let got: Value = dev
            .get(&format!("Patient/{id}"))
            .await
            .json()
            .await
            .unwrap();
        assert_eq!(&got, w);
    }
    let last = written.last().unwrap()["id"].as_str().unwrap().to_owned();
    let proof = dev.proof(&format!("Patient/{last}/_history/1")).await;
    assert!(dev.verify(&proof, None).0);
    // Exactly once: one leaf per version despite the crash.
    // Five record versions; the audit events of the reads share the log as leaves of their own.
    assert_eq!(dev.count("ledger_leaves WHERE kind = 1").await, 5);
}

#[tokio::test]
async fn each_caller_is_rate_limited() {
    let dir = tempfile::tempdir().unwrap();
    let dev = Dev::start_with(dir.path(), &["--rate-limit", "1", "--rate-burst", "3"]).await;
    let mut statuses = Vec::new();
    for _ in 0..6 {
        statuses.push(dev.get("Patient/x").await);
    }
    let limited = statuses
        .into_iter()
        .find(|r| r.status() == 429)
        .expect("no request was limited");
    assert!(limited.headers().contains_key("retry-after"));
    outcome(limited, 429).await;
    // Another caller has its own budget.
    let other = token(
        dir.path(),
        "Practitioner/dr-2",
        "practitioner",
        "user/*.cruds",
    );
    let r = dev
        .http
        .get(dev.url("Patient/x"))
        .bearer_auth(&other)
        .send()
        .await
        .unwrap();
    outcome(r, 404).await;
}

#[tokio::test]
async fn start_up_fails_closed_when_state_is_lost_or_replaced() {
    let dir = tempfile::tempdir().unwrap();
    let mut dev = Dev::start(dir.path()).await;
    let p: Value = dev.post("Patient", &patient()).await.json().await.unwrap();
    dev.proof(&format!("Patient/{}/_history/1", p["id"].as_str().unwrap()))
        .await;
    dev.kill9();
    let blobs = dev.blob_files();
    let aside = tempfile::tempdir().unwrap();
    let mv = |name: &str| {
        std::fs::rename(
            dir.path().join(name),
            aside.path().join(name.replace('/', "_")),
        )
        .unwrap()
    };
    let back = |name: &str| {
        std::fs::rename(
            aside.path().join(name.replace('/', "_")),
            dir.path().join(name),
        )
        .unwrap()
    };

    // A missing master key is not silently replaced by a new one.
    mv("keys/master.key");
    let err = support::start_refused(dir.path());
    assert!(err.contains("master key"), "{err}");
    assert!(
        !dir.path().join("keys/master.key").exists(),
        "a replacement key was left behind"
    );
    back("keys/master.key");

    // A lost state database must not turn every blob into garbage. (SQLite keeps committed pages
    // in the WAL until a checkpoint, so the database is the three files together.)
    let db_files = ["state.db", "state.db-wal", "state.db-shm"];
    let present: Vec<&str> = db_files
        .into_iter()
        .filter(|f| dir.path().join(f).exists())
        .collect();
    present.iter().for_each(|f| mv(f));
    let err = support::start_refused(dir.path());
    assert!(err.contains("inconsistent"), "{err}");
    assert_eq!(dev.blob_files(), blobs, "blobs were deleted");
    for f in db_files {
        let _ = std::fs::remove_file(dir.path().join(f));
    }
    present.iter().for_each(|f| back(f));

    // A replaced chain (new sealer, so a new RecordLog) is not the chain the public anchors
    // vouch for.
    mv("chain");
    let err = support::start_refused(dir.path());
    assert!(
        err.contains("wrong chain") && err.contains("anchors RecordLog"),
        "{err}"
    );
    std::fs::remove_dir_all(dir.path().join("chain")).unwrap();
    back("chain");

    // With the public chain replaced as well, the private chain still lacks the recorded heads.
    mv("chain");
    mv("public-chain");
    let err = support::start_refused(dir.path());
    assert!(err.contains("replaced or truncated"), "{err}");
    std::fs::remove_dir_all(dir.path().join("chain")).unwrap();
    std::fs::remove_dir_all(dir.path().join("public-chain")).unwrap();
    back("chain");
    back("public-chain");

    // Everything restored: it starts and serves the record again.
    dev.restart().await;
    assert_eq!(
        dev.get(&format!("Patient/{}", p["id"].as_str().unwrap()))
            .await
            .status(),
        200
    );
}

#[tokio::test]
async fn verify_waits_then_answers_503_when_not_committed() {
    let dir = tempfile::tempdir().unwrap();
    let dev = Dev::start_with(dir.path(), &["--commit-interval-ms", "600000"]).await;
    let p: Value = dev.post("Patient", &patient()).await.json().await.unwrap();
    let r = dev
        .get(&format!(
            "Patient/{}/_history/1/$verify",
            p["id"].as_str().unwrap()
        ))
        .await;
    assert!(r.headers().contains_key("retry-after"));
    outcome(r, 503).await;
}

#[tokio::test]
async fn proofs_verify_offline_and_detect_forgery() {
    let dir = tempfile::tempdir().unwrap();
    let dev = Dev::start(dir.path()).await;
    let p: Value = dev.post("Patient", &patient()).await.json().await.unwrap();
    let id = p["id"].as_str().unwrap();
    let o: Value = dev
        .post("Observation", &observation(id))
        .await
        .json()
        .await
        .unwrap();
    let path = format!("Observation/{}/_history/1", o["id"].as_str().unwrap());
    let proof = dev.proof(&path).await;
    let resource: Value = dev.get(&path).await.json().await.unwrap();

    let (ok, out) = dev.verify_with(&proof, Some(&resource), &["--require-anchor"]);
    assert!(ok, "{out}");
    assert!(out.contains("VERIFIED"));
    // The simulated public chain anchors a checkpoint covering the head, checked offline too.
    assert!(
        out.contains("extends the tree head (consistency proof)"),
        "{out}"
    );
    assert!(out.contains("on public chain 1338"), "{out}");
    let anchor = &proof["anchor"];
    assert!(
        anchor["checkpoint"]["treeSize"].as_u64().unwrap()
            >= proof["treeHead"]["treeSize"].as_u64().unwrap()
    );

    // Anchor sections that lie are caught: offline, or against the public chain.
    let mut bad_root = proof.clone();
    bad_root["anchor"]["checkpoint"]["rootHash"] = json!("11".repeat(32));
    let (ok, out) = dev.verify(&bad_root, None);
    assert!(!ok && out.contains("anchor consistency proof"), "{out}");
    let mut bad_block = proof.clone();
    bad_block["anchor"]["blockHash"] = json!(format!("0x{}", "cd".repeat(32)));
    let (ok, out) = dev.verify(&bad_block, None);
    assert!(!ok && out.contains("Anchor.checkpointAt"), "{out}");
    let mut bad_source = proof.clone();
    bad_source["anchor"]["sourceBlockNumber"] = json!(999_999);
    let (ok, out) = dev.verify(&bad_source, None);
    assert!(!ok && out.contains("public anchor"), "{out}");
    // Without an anchor the proof still verifies, unless one is required.
    let mut unanchored = proof.clone();
    unanchored.as_object_mut().unwrap().remove("anchor");
    let (ok, out) = dev.verify(&unanchored, None);
    assert!(ok && out.contains("no public anchor"), "{out}");
    let (ok, out) = dev.verify_with(&unanchored, None, &["--require-anchor"]);
    assert!(!ok && out.contains("public anchor"), "{out}");

    let mut altered = resource.clone();
    altered["valueQuantity"]["value"] = json!(181.5);
    let (ok, out) = dev.verify(&proof, Some(&altered));
    assert!(!ok && out.contains("resource commitment"), "{out}");

    let mut forged = proof.clone();
    forged["leaf"]["cid"] = json!("bafkreicysg23kiwv34eg2d7qweipxwosdo2py4ldv42nbauguluen5v6am");
    let (ok, out) = dev.verify(&forged, None);
    assert!(!ok && out.contains("leaf"), "{out}");

    let mut wrong_block = proof.clone();
    wrong_block["chain"]["blockHash"] = json!(format!("0x{}", "ab".repeat(32)));
    let (ok, out) = dev.verify(&wrong_block, None);
    assert!(!ok && out.contains("commit block"), "{out}");
    let mut wrong_chain = proof.clone();
    wrong_chain["chain"]["chainId"] = json!(1);
    assert!(!dev.verify(&wrong_chain, None).0);

    let mut wrong_index = proof.clone();
    wrong_index["chain"]["recordLogIndex"] = json!(0);
    wrong_index["treeHead"]["treeSize"] = json!(proof["treeHead"]["treeSize"].as_u64().unwrap());
    if proof["chain"]["recordLogIndex"] != json!(0) {
        let (ok, out) = dev.verify(&wrong_index, None);
        assert!(!ok, "{out}");
    }
}

#[tokio::test]
async fn tampering_is_detected_and_never_served() {
    let dir = tempfile::tempdir().unwrap();
    let dev = Dev::start(dir.path()).await;
    let mut ids = Vec::new();
    for _ in 0..4 {
        let p: Value = dev.post("Patient", &patient()).await.json().await.unwrap();
        ids.push(p["id"].as_str().unwrap().to_owned());
    }
    let clean: Value = dev.post("Patient", &patient()).await.json().await.unwrap();
    let rolled = ids[3].clone();
    let mut v2: Value = dev
        .get(&format!("Patient/{rolled}"))
        .await
        .json()
        .await
        .unwrap();
    v2["gender"] = json!("female");
    assert_eq!(
        dev.put(&format!("Patient/{rolled}"), &v2, &[])
            .await
            .status(),
        200
    );
    for id in &ids {
        dev.proof(&format!("Patient/{id}/_history/1")).await;
    }
    dev.proof(&format!("Patient/{rolled}/_history/2")).await;
    let clean_proof = dev
        .proof(&format!(
            "Patient/{}/_history/1",
            clean["id"].as_str().unwrap()
        ))
        .await;
    let db = dev.db().await;
    let cid_of = |id: String| {
        let db = db.clone();
        async move {
            sqlx::query_scalar::<_, String>(
                "SELECT cid FROM record_versions WHERE id = ? AND version = 1",
            )
            .bind(id)
            .fetch_one(&db)
            .await
            .unwrap()
        }
    };

    // 1. A flipped byte in a stored object.
    let cid = cid_of(ids[0].clone()).await;
    let shard = &cid[cid.len() - 3..cid.len() - 1];
    let file = dir.path().join("blobs/blocks").join(shard).join(&cid);
    let mut bytes = std::fs::read(&file).unwrap();
    bytes[40] ^= 0x01;
    std::fs::write(&file, bytes).unwrap();
    let d = outcome(dev.get(&format!("Patient/{}", ids[0])).await, 500).await;
    assert!(d.contains("integrity"), "{d}");

    // 2. Two records' CIDs swapped in the index.
    let (a, b) = (cid_of(ids[1].clone()).await, cid_of(ids[2].clone()).await);
    sqlx::query("UPDATE record_versions SET cid = ? WHERE id = ?")
        .bind(&b)
        .bind(&ids[1])
        .execute(&db)
        .await
        .unwrap();
    sqlx::query("UPDATE record_versions SET cid = ? WHERE id = ?")
        .bind(&a)
        .bind(&ids[2])
        .execute(&db)
        .await
        .unwrap();
    outcome(dev.get(&format!("Patient/{}", ids[1])).await, 500).await;
    outcome(dev.get(&format!("Patient/{}", ids[2])).await, 500).await;

    // 3. A version rolled back in the index.
    sqlx::query("UPDATE record_heads SET version = 1 WHERE id = ?")
        .bind(&rolled)
        .execute(&db)
        .await
        .unwrap();
    let d = outcome(dev.get(&format!("Patient/{rolled}")).await, 500).await;
    assert!(d.contains("ledger holds version 2"), "{d}");

    // 4. An index row deleted.
    sqlx::query("DELETE FROM record_heads WHERE id = ?")
        .bind(&rolled)
        .execute(&db)
        .await
        .unwrap();
    sqlx::query("DELETE FROM record_versions WHERE id = ?")
        .bind(&rolled)
        .execute(&db)
        .await
        .unwrap();
    let d = outcome(dev.get(&format!("Patient/{rolled}")).await, 500).await;
    assert!(d.contains("missing from the index"), "{d}");

    // 5. One byte of the stored chain edited: verification fails.
    let (ok, out) = dev.verify(&clean_proof, None);
    assert!(ok, "{out}");
    db.close().await;
    let mut dev = dev;
    dev.kill9();
    let chain_file = dir.path().join("chain/blocks.log");
    let mut chain = std::fs::read(&chain_file).unwrap();
    let at = chain.len() / 2;
    chain[at] ^= 0x01;
    std::fs::write(&chain_file, chain).unwrap();
    let (ok, out) = dev.verify(&clean_proof, None);
    assert!(!ok, "verification passed on an edited chain: {out}");
    assert!(out.contains("chain integrity"), "{out}");
}
