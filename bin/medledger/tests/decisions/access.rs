//! The access-request flow over HTTP, with expiry on the consent service's test clock: a
//! verified practitioner asks, the patient lists and approves, access is time-boxed and for the
//! purpose asked, it ends by itself, and a denied request grants nothing. Run against
//! `medledger dev` (`consent.rs`) and the distributed services (`distributed.rs`).

use std::path::Path;

use reqwest::Method;
use serde_json::{Value, json};

use super::{Client, Http, parameters};

fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// RFC 3339, UTC.
fn time_fmt(secs: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(secs)
        .unwrap()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap()
}

/// Runs the flow against `http`; `mint` makes tokens; `clock` is the consent clock file.
pub(crate) async fn access_request_flow(
    http: &Http,
    mint: impl Fn(&str, &str, &str) -> String,
    clock: &Path,
) {
    let now = unix_now();
    std::fs::write(clock, now.to_string()).unwrap();
    let as_ = |sub: &str, role: &str, scope: &str| Client {
        http,
        token: mint(sub, role, scope),
    };
    let dr1 = as_("Practitioner/dr-1", "practitioner", "user/*.cruds");
    let dr2 = as_("Practitioner/dr-2", "practitioner", "user/*.rs");
    let r = dr1
        .call(
            Method::POST,
            "Patient",
            Some(&json!({"resourceType": "Patient", "gender": "other"})),
            &[],
        )
        .await;
    let pid = r.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let obs = json!({"resourceType": "Observation", "status": "final",
        "code": {"text": "heart rate"}, "subject": {"reference": format!("Patient/{pid}")}});
    let r = dr1.call(Method::POST, "Observation", Some(&obs), &[]).await;
    let obs_path = format!(
        "Observation/{}",
        r.json::<Value>().await.unwrap()["id"].as_str().unwrap()
    );
    let patient = as_(&format!("Patient/{pid}"), "patient", "patient/*.cruds");
    // dr-2 is verified, but has no consent yet.
    assert_eq!(dr2.status(Method::GET, &obs_path, None).await, 404);
    let authority = as_("Organization/board", "authority", "system/*.*");
    let verify = parameters(
        json!([{"name": "practitioner", "valueReference": {"reference": "Practitioner/dr-2"}}]),
    );
    assert_eq!(
        authority
            .status(Method::POST, "$verify-practitioner", Some(&verify))
            .await,
        204
    );

    // dr-2 asks for one hour of treatment access.
    let iso = |secs: i64| time_fmt(secs);
    let ask = |end: i64| {
        parameters(json!([
            {"name": "purpose", "valueCode": "TREAT"},
            {"name": "end", "valueDateTime": iso(end)}
        ]))
    };
    let r = dr2
        .call(
            Method::POST,
            &format!("Patient/{pid}/$request-access"),
            Some(&ask(now + 3600)),
            &[],
        )
        .await;
    assert_eq!(r.status(), 201);
    let task: Value = r.json().await.unwrap();
    assert_eq!(task["resourceType"], "Task");
    assert_eq!(task["status"], "requested");
    let request = task["id"].as_str().unwrap().to_owned();
    // Bad requests are refused, and a patient cannot ask on a practitioner's behalf.
    assert_eq!(
        dr2.status(
            Method::POST,
            &format!("Patient/{pid}/$request-access"),
            Some(&ask(now - 10))
        )
        .await,
        422
    );
    assert_eq!(
        patient
            .status(
                Method::POST,
                &format!("Patient/{pid}/$request-access"),
                Some(&ask(now + 60))
            )
            .await,
        403
    );

    // The patient lists the pending request; dr-2 cannot list them.
    let list: Value = patient
        .call(
            Method::GET,
            &format!("Patient/{pid}/$access-requests"),
            None,
            &[],
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(list["total"], 1);
    assert_eq!(
        list["entry"][0]["resource"]["requester"]["reference"],
        "Practitioner/dr-2"
    );
    let theirs: Value = dr2
        .call(
            Method::GET,
            &format!("Patient/{pid}/$access-requests"),
            None,
            &[],
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(theirs["total"], 0);
    // Still no access before the patient decides; dr-2 cannot approve its own request.
    assert_eq!(dr2.status(Method::GET, &obs_path, None).await, 404);
    let decide = |decision: &str| {
        parameters(json!([
            {"name": "request", "valueString": request},
            {"name": "decision", "valueCode": decision}
        ]))
    };
    assert_eq!(
        dr2.status(
            Method::POST,
            &format!("Patient/{pid}/$decide-access"),
            Some(&decide("approve"))
        )
        .await,
        403
    );

    // Approved: a time-boxed Consent permits dr-2, for treatment.
    let r = patient
        .call(
            Method::POST,
            &format!("Patient/{pid}/$decide-access"),
            Some(&decide("approve")),
            &[],
        )
        .await;
    assert_eq!(r.status(), 200);
    let decided: Value = r.json().await.unwrap();
    assert_eq!(decided["status"], "accepted");
    let consent = decided["output"][0]["valueReference"]["reference"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(consent.starts_with("Consent/access-"));
    let treat = [("x-purpose-of-use", "TREAT")];
    assert_eq!(
        dr2.call(Method::GET, &obs_path, None, &treat)
            .await
            .status(),
        200
    );
    // For the purpose asked only.
    assert_eq!(
        dr2.call(
            Method::GET,
            &obs_path,
            None,
            &[("x-purpose-of-use", "HMARKT")]
        )
        .await
        .status(),
        404
    );
    // Deciding twice is refused.
    assert_eq!(
        patient
            .status(
                Method::POST,
                &format!("Patient/{pid}/$decide-access"),
                Some(&decide("deny"))
            )
            .await,
        409
    );

    // Two hours later the grant has expired, without anyone acting.
    std::fs::write(clock, (now + 7200).to_string()).unwrap();
    assert_eq!(
        dr2.call(Method::GET, &obs_path, None, &treat)
            .await
            .status(),
        404
    );

    // A denied request grants nothing.
    let r = dr2
        .call(
            Method::POST,
            &format!("Patient/{pid}/$request-access"),
            Some(&ask(now + 3 * 3600)),
            &[],
        )
        .await;
    let second = r.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let deny = parameters(json!([
        {"name": "request", "valueString": second},
        {"name": "decision", "valueCode": "deny"}
    ]));
    let r = patient
        .call(
            Method::POST,
            &format!("Patient/{pid}/$decide-access"),
            Some(&deny),
            &[],
        )
        .await;
    assert_eq!(r.json::<Value>().await.unwrap()["status"], "rejected");
    assert_eq!(
        dr2.call(Method::GET, &obs_path, None, &treat)
            .await
            .status(),
        404
    );
}
