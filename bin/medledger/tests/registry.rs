//! Role and consent changes on chain, end to end against `medledger dev`: an authority's
//! verification and a patient's grant and revocation are committed to Roles and ConsentRegistry
//! as salted commitments; each Consent version has a `$verify` proof that `medledger verify`
//! checks against the chain in the data dir, and that fails for any other resource.

#![allow(clippy::unwrap_used, missing_docs)]

mod support;

use std::time::{Duration, Instant};

use medledger_chain_evm::ChainReader;
use medledger_ledger::registry::account_commitment;
use reqwest::Method;
use serde_json::{Value, json};
use support::{Dev, token};

fn consent(patient: &str, actor: &str) -> Value {
    json!({
        "resourceType": "Consent",
        "status": "active",
        "scope": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/consentscope", "code": "patient-privacy"}]},
        "category": [{"coding": [{"system": "http://loinc.org", "code": "59284-0"}]}],
        "patient": {"reference": patient},
        "policyRule": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "OPTIN"}]},
        "provision": {"type": "permit", "actor": [{"role": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ParticipationType", "code": "IRCP"}]}, "reference": {"reference": actor}}]}
    })
}

/// Waits for a Consent version's proof (503 until the registrar has committed it).
async fn proof(dev: &Dev, bearer: &str, version_path: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let r = dev
            .request_as(
                bearer,
                Method::GET,
                &format!("{version_path}/$verify"),
                None,
                &[],
            )
            .await;
        match r.status().as_u16() {
            200 => return r.json().await.unwrap(),
            503 => {}
            other => panic!("$verify answered {other}: {}", r.text().await.unwrap()),
        }
        assert!(Instant::now() < deadline, "{version_path} never committed");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn roles_and_consents_are_on_chain_and_each_consent_version_verifies() {
    let dir = tempfile::tempdir().unwrap();
    let dev = Dev::start(dir.path()).await;
    let patient_ref = "Patient/p-chain";
    let patient = token(dir.path(), patient_ref, "patient", "patient/*.cruds");
    let dr = token(
        dir.path(),
        "Practitioner/dr-chain",
        "practitioner",
        "user/*.cruds",
    );
    let authority = token(dir.path(), "Organization/board", "authority", "system/*.*");
    let other = token(dir.path(), "Patient/p-other", "patient", "patient/*.cruds");

    // dr-chain enrols with its first request (a write); the authority verifies it.
    let r = dev
        .request_as(
            &dr,
            Method::POST,
            "Patient",
            Some(&json!({"resourceType": "Patient", "name": [{"family": "Chain"}]})),
            &[],
        )
        .await;
    assert_eq!(r.status(), 201, "{}", r.text().await.unwrap());
    let r = dev
        .request_as(
            &authority,
            Method::POST,
            "$verify-practitioner",
            Some(&json!({"resourceType": "Parameters", "parameter": [
                {"name": "practitioner", "valueReference": {"reference": "Practitioner/dr-chain"}}]})),
            &[],
        )
        .await;
    assert_eq!(r.status(), 204, "{}", r.text().await.unwrap());

    // The patient grants, then revokes.
    let r = dev
        .request_as(
            &patient,
            Method::POST,
            "Consent",
            Some(&consent(patient_ref, "Practitioner/dr-chain")),
            &[],
        )
        .await;
    assert_eq!(r.status(), 201, "{}", r.text().await.unwrap());
    let cid = r.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let r = dev
        .request_as(
            &patient,
            Method::DELETE,
            &format!("Consent/{cid}"),
            None,
            &[],
        )
        .await;
    assert!(r.status().is_success(), "{}", r.status());

    let mut versions = Vec::new();
    for v in 1..=2 {
        let path = format!("Consent/{cid}/_history/{v}");
        let p = proof(&dev, &patient, &path).await;
        let r = dev
            .request_as(&patient, Method::GET, &path, None, &[])
            .await;
        assert_eq!(r.status(), 200);
        let resource: Value = r.json().await.unwrap();
        assert_eq!(resource["meta"]["versionId"], v.to_string());
        // The chain holds commitments only: no id, reference or content in clear.
        let text = p["recorded"].to_string();
        assert!(!text.contains(&cid) && !text.contains("p-chain"), "{text}");
        assert_eq!(p["recorded"]["chainVersion"], v);
        assert_eq!(p["recorded"]["granted"], v == 1);
        let (ok, out) = dev.verify(&p, Some(&resource));
        assert!(ok, "{out}");
        assert!(out.contains("ConsentRegistry recorded the"), "{out}");
        versions.push((p, resource));
    }
    // A proof does not pass for another version, an edited one, or a forged change.
    let (grant, granted) = &versions[0];
    let (_, revoked) = &versions[1];
    let (ok, out) = dev.verify(grant, Some(revoked));
    assert!(!ok, "{out}");
    let mut edited = granted.clone();
    edited["provision"]["type"] = json!("deny");
    let (ok, out) = dev.verify(grant, Some(&edited));
    assert!(!ok, "{out}");
    let mut forged = grant.clone();
    forged["recorded"]["blockNumber"] = json!(1);
    let (ok, out) = dev.verify(&forged, Some(granted));
    assert!(!ok && out.contains("consent change on chain"), "{out}");
    let (ok, out) = dev.verify(grant, None);
    assert!(!ok && out.contains("--resource"), "{out}");

    // Only the patient (or an auditor) gets the proof; to anyone else it does not exist.
    for bearer in [&dr, &other] {
        let r = dev
            .request_as(
                bearer,
                Method::GET,
                &format!("Consent/{cid}/_history/1/$verify"),
                None,
                &[],
            )
            .await;
        assert_eq!(r.status(), 404);
    }
    let r = dev
        .request_as(
            &patient,
            Method::GET,
            &format!("Consent/{cid}/_history/9"),
            None,
            &[],
        )
        .await;
    assert_eq!(r.status(), 404);

    // The CapabilityStatement says so.
    let cs: Value = dev.get("metadata").await.json().await.unwrap();
    let entry = cs["rest"][0]["resource"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["type"] == "Consent")
        .unwrap()
        .clone();
    assert!(
        entry["interaction"].to_string().contains("\"vread\""),
        "{entry}"
    );
    assert_eq!(entry["operation"][0]["name"], "verify");

    // Roles: the verified practitioner's commitment holds the role and the verification.
    let salt: Vec<u8> = sqlx::query_scalar("SELECT salt FROM consent_accounts WHERE account = ?")
        .bind("Practitioner/dr-chain")
        .fetch_one(&dev.db().await)
        .await
        .unwrap();
    let account = account_commitment(&salt.try_into().unwrap(), "Practitioner/dr-chain");
    let chain_dir = dir.path().join("chain");
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let dir = chain_dir.clone();
        let state = tokio::task::spawn_blocking(move || {
            ChainReader::open(&dir)
                .unwrap()
                .role_state(account)
                .unwrap()
        })
        .await
        .unwrap();
        if state.has(2) && state.verified {
            assert!(!state.has(1) && !state.has(6), "{state:?}");
            break;
        }
        assert!(Instant::now() < deadline, "role never on chain: {state:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
