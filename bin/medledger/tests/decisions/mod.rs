//! The consent decision table (services/consent/tests/table) driven through HTTP: each case's
//! facts are set up through the public API (the custodian writes the record, an authority
//! verifies the practitioner, the patient posts the consents, the decision clock is the case's),
//! then the actor performs the interaction with its own token and headers, and the HTTP answer
//! must be the case's verdict: 200/201 when permitted; 404 (reads, as if unknown) or 403
//! (writes, or scopes that cannot reach the type) when denied. Run against `medledger dev`
//! (`decisions_http.rs`) and the distributed services (`distributed.rs`).
//!
//! Every case gets its own patient and practitioners (ids suffixed with the case number), so
//! cases share one server without sharing facts. A search across patients has no HTTP form
//! (there is no search endpoint yet); that case alone is left to the in-process and gRPC runs.

#![allow(dead_code)]

pub(crate) mod access;
#[path = "../../../../services/consent/tests/table/mod.rs"]
mod table;

use std::path::Path;
use std::time::{Duration, Instant};

use medledger_access::Interaction;
use reqwest::Method;
use serde_json::{Value, json};

/// Renames the table's actors and patients to this case's.
fn rename(reference: &str, case: usize) -> String {
    match reference.split_once('/') {
        Some((kind, id)) => format!("{kind}/{id}-c{case}"),
        None => reference.to_owned(),
    }
}

/// `rename` on every reference string in a JSON value.
fn rename_all(v: &mut Value, case: usize) {
    match v {
        Value::Object(m) => {
            for (k, x) in m.iter_mut() {
                if k == "reference"
                    && let Some(s) = x.as_str()
                {
                    *x = json!(rename(s, case));
                } else {
                    rename_all(x, case);
                }
            }
        }
        Value::Array(a) => a.iter_mut().for_each(|x| rename_all(x, case)),
        _ => {}
    }
}

/// The table's consents carry only what the decision reads; a stored Consent must be valid FHIR
/// R4: category, coded scope, a policy rule, and a role for each provision actor.
fn complete(consent: &mut Value) {
    consent["scope"] = json!({"coding": [{"system": "http://terminology.hl7.org/CodeSystem/consentscope", "code": "patient-privacy"}]});
    consent["category"] = json!([{"coding": [{"system": "http://loinc.org", "code": "59284-0"}]}]);
    consent["policyRule"] = json!({"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "OPTIN"}]});
    fn roles(p: &mut Value) {
        // `get_mut`, not indexing: `v["k"]` on a missing key inserts a null.
        if let Some(actors) = p.get_mut("actor").and_then(Value::as_array_mut) {
            for a in actors {
                a["role"] = json!({"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ParticipationType", "code": "IRCP"}]});
            }
        }
        if let Some(nested) = p.get_mut("provision").and_then(Value::as_array_mut) {
            nested.iter_mut().for_each(roles);
        }
    }
    if let Some(p) = consent.get_mut("provision") {
        roles(p);
    }
}

/// A FHIR base URL to drive the table against.
pub(crate) struct Http {
    /// The client.
    pub(crate) client: reqwest::Client,
    /// `…/fhir`, no trailing slash.
    pub(crate) base: String,
}

impl Http {
    /// A new client against `base` (`…/fhir`).
    pub(crate) fn new(base: String) -> Self {
        Self {
            client: reqwest::Client::new(),
            base,
        }
    }

    /// One request; a 503 (not committed yet, a service still starting) is retried for up to a
    /// minute, since neither mode promises read-your-write before the ledger commits.
    pub(crate) async fn request(
        &self,
        token: &str,
        method: Method,
        path: &str,
        body: Option<&Value>,
        headers: &[(&str, &str)],
    ) -> reqwest::Response {
        let url = match path.trim_start_matches('/') {
            "" => self.base.clone(),
            path => format!("{}/{path}", self.base),
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let mut rb = self.client.request(method.clone(), &url).bearer_auth(token);
            if let Some(b) = body {
                rb = rb
                    .header("content-type", "application/fhir+json")
                    .body(serde_json::to_vec(b).unwrap());
            }
            for (k, v) in headers {
                rb = rb.header(*k, *v);
            }
            let resp = rb.send().await.unwrap();
            if resp.status() != 503 || Instant::now() > deadline {
                return resp;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// [`Http::request`], answering the status and the JSON body (`Null` if none).
    async fn call(
        &self,
        token: &str,
        method: Method,
        path: &str,
        body: Option<&Value>,
        headers: &[(&str, String)],
    ) -> (u16, Value) {
        let headers: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let resp = self.request(token, method, path, body, &headers).await;
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap();
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }
}

fn observation(patient: &str) -> Value {
    json!({"resourceType": "Observation", "status": "final", "code": {"text": "pulse"},
        "subject": {"reference": patient}})
}

/// Runs every case with an HTTP form against `http`; `mint` makes tokens the services accept;
/// `clock` is the file the consent decisions read "now" from. Returns how many cases ran.
pub(crate) async fn run(
    http: &Http,
    mint: impl Fn(&str, &str, &str) -> String,
    clock: &Path,
) -> usize {
    std::fs::write(clock, table::NOW.to_string()).unwrap();
    let authority = mint("Organization/board", "authority", "system/*.*");
    let mut ran = 0;
    for (i, c) in table::table().into_iter().enumerate() {
        let owner = match c.owner {
            Some(o) => o,
            // The whole audit trail is one search; a search over every patient's records has
            // no HTTP form yet (see the module comment).
            None if c.rt == "AuditEvent" => "none",
            None => continue,
        };
        std::fs::write(clock, table::NOW.to_string()).unwrap();
        let who = rename(c.who, i);
        let custodian_ref = c.custodian.map(|r| rename(r, i));
        let writer = custodian_ref
            .clone()
            .unwrap_or_else(|| rename("Practitioner/dr-9", i));
        let writer_role = if writer.starts_with("Organization/") {
            "organization"
        } else {
            "practitioner"
        };
        let writer_token = mint(&writer, writer_role, "user/*.cruds");
        let patient = rename("Patient/p1", i);

        // The record: a patient and an observation (or a directory entry) by its custodian.
        let pid = patient.trim_start_matches("Patient/");
        let (s, _) = http
            .call(
                &writer_token,
                Method::PUT,
                &patient,
                Some(&json!({"resourceType": "Patient", "id": pid})),
                &[],
            )
            .await;
        assert_eq!(s, 201, "{}: setting up the patient", c.name);
        let target = if owner == "Organization" && c.rt == "Practitioner" {
            let id = format!("directory-c{i}");
            let (s, _) = http
                .call(
                    &writer_token,
                    Method::PUT,
                    &format!("Practitioner/{id}"),
                    Some(&json!({"resourceType": "Practitioner", "id": id})),
                    &[],
                )
                .await;
            assert_eq!(s, 201, "{}: setting up the directory entry", c.name);
            format!("Practitioner/{id}")
        } else {
            let (s, body) = http
                .call(
                    &writer_token,
                    Method::POST,
                    "Observation",
                    Some(&observation(&patient)),
                    &[],
                )
                .await;
            assert_eq!(s, 201, "{}: setting up the record", c.name);
            format!("Observation/{}", body["id"].as_str().unwrap())
        };

        // The actor's account: enrolled by a first request, then verified by an authority.
        let actor_token = mint(&who, c.role, c.scope);
        if c.role == "practitioner" && c.verified {
            let enrol = mint(&who, c.role, "user/*.rs");
            http.call(&enrol, Method::GET, &target, None, &[]).await;
            let (s, _) = http
                .call(
                    &authority,
                    Method::POST,
                    "$verify-practitioner",
                    Some(&json!({"resourceType": "Parameters", "parameter": [
                        {"name": "practitioner", "valueReference": {"reference": who}}]})),
                    &[],
                )
                .await;
            assert_eq!(s, 204, "{}: verifying {who}", c.name);
        }

        // The consents, each posted by the patient it is about (revoked ones revoked).
        for stored in &c.consents {
            let mut consent = stored.json.clone();
            rename_all(&mut consent, i);
            complete(&mut consent);
            let about = consent["patient"]["reference"].as_str().unwrap().to_owned();
            let as_patient = mint(&about, "patient", "patient/*.cruds");
            let inactive = consent["status"] == "inactive";
            consent["status"] = json!("active");
            let (s, body) = http
                .call(&as_patient, Method::POST, "Consent", Some(&consent), &[])
                .await;
            assert_eq!(s, 201, "{}: posting a consent: {body}", c.name);
            if inactive {
                let id = body["id"].as_str().unwrap();
                let (s, _) = http
                    .call(
                        &as_patient,
                        Method::DELETE,
                        &format!("Consent/{id}"),
                        None,
                        &[],
                    )
                    .await;
                assert_eq!(s, 204, "{}: revoking", c.name);
            }
        }

        // The interaction, at the case's time, with its headers.
        std::fs::write(clock, c.now.to_string()).unwrap();
        let mut headers = Vec::new();
        if let Some(p) = c.purpose {
            headers.push(("x-purpose-of-use", p.to_owned()));
        }
        if let Some(b) = c.break_glass {
            headers.push(("x-break-glass-reason", b.to_owned()));
        }
        let allowed = c.want.is_ok();
        let (status, body) = match (c.rt, c.interaction) {
            ("AuditEvent", _) => {
                let path = match c.owner {
                    Some(_) => format!("AuditEvent?patient={patient}"),
                    None => "AuditEvent".to_owned(),
                };
                let (s, body) = http
                    .call(&actor_token, Method::GET, &path, None, &headers)
                    .await;
                // A search answers 200 either way; permitted means events were returned (the
                // record's creation at least is in the trail).
                let found = body["entry"].as_array().is_some_and(|e| !e.is_empty());
                let s = if s == 200 && !found { 404 } else { s };
                (s, body)
            }
            (_, Interaction::Read) => {
                http.call(&actor_token, Method::GET, &target, None, &headers)
                    .await
            }
            (_, Interaction::Create) => {
                http.call(
                    &actor_token,
                    Method::POST,
                    "Observation",
                    Some(&observation(&patient)),
                    &headers,
                )
                .await
            }
            (_, Interaction::Update) => {
                let mut changed = observation(&patient);
                changed["id"] = json!(target.trim_start_matches("Observation/"));
                changed["status"] = json!("amended");
                http.call(&actor_token, Method::PUT, &target, Some(&changed), &headers)
                    .await
            }
            (rt, other) => panic!("{}: no HTTP form for {other:?} on {rt}", c.name),
        };
        let ok = matches!(status, 200 | 201);
        assert_eq!(
            ok, allowed,
            "{} (case {i}): HTTP {status} {body}, expected {:?}",
            c.name, c.want
        );
        if !allowed {
            let denial = match c.interaction {
                Interaction::Read | Interaction::Search => [403, 404].contains(&status),
                _ => status == 403,
            };
            assert!(denial, "{}: a denial answered HTTP {status} {body}", c.name);
        }
        ran += 1;
    }
    ran
}

/// One caller: a token against an [`Http`] base.
pub(crate) struct Client<'a> {
    pub(crate) http: &'a Http,
    pub(crate) token: String,
}

impl Client<'_> {
    /// [`Http::request`] with this caller's token.
    pub(crate) async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
        headers: &[(&str, &str)],
    ) -> reqwest::Response {
        self.http
            .request(&self.token, method, path, body, headers)
            .await
    }

    /// Only the status.
    pub(crate) async fn status(&self, method: Method, path: &str, body: Option<&Value>) -> u16 {
        self.call(method, path, body, &[]).await.status().as_u16()
    }
}

/// A FHIR `Parameters` resource with `params` as its `parameter` list.
pub(crate) fn parameters(params: Value) -> Value {
    json!({"resourceType": "Parameters", "parameter": params})
}
