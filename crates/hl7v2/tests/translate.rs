//! The translation of hand-written ADT and ORU messages: value types, stable ids, escapes and
//! character sets, and each refusal's HL7 error code and position.

#![allow(clippy::unwrap_used, missing_docs)]

use medledger_hl7v2::{IdScheme, Message, translate};
use serde_json::{Value, json};

/// Stands in for the keyed pseudonym: any injective function shows stability.
struct Plain;
impl IdScheme for Plain {
    fn stable_id(&self, label: &str) -> String {
        label.to_owned()
    }
}

const ORU: &str = "MSH|^~\\&|LIS|LAB^1.2.3.4^ISO|EHR|HOSP|20240305101500+0100||ORU^R01^ORU_R01|LAB-0001|P|2.5.1\r\
PID|1||555-44^^^HOSP&2.16.840.1.113883.19.5&ISO^MR||O\\T\\Brien^Mary^Ann||19700131|F\r\
OBR|1|ORD1|FIL1|58410-2^CBC panel^LN|||202403050900+0100\r\
OBX|1|NM|718-7^Hemoglobin^LN||13.2|g/dL^grams per deciliter^UCUM|12.0-15.5|N|||F\r\
OBX|2|CWE|600-7^Blood culture^LN||27268008^Salmonella^SCT||||||P|||202403051000+0100\r\
OBX|3|ST|8251-1^Comment^LN||Sample slightly haemolysed||||||F\r\
OBX|4|SN|2160-0^Creatinine^LN||<^0.5|mg/dL^^UCUM|||||F\r";

fn oru() -> Message {
    Message::parse(ORU).unwrap()
}

#[test]
fn an_oru_result_becomes_observations_of_the_patient() {
    let t = translate(&oru(), &Plain).unwrap();
    assert_eq!(
        t.create_only,
        vec![format!("Patient/{}", t.patient_id)],
        "a lab result does not own demographics"
    );
    assert_eq!(t.patient["name"][0]["family"], "O&Brien", "escape decoded");
    assert_eq!(t.patient["name"][0]["given"], json!(["Mary", "Ann"]));
    assert_eq!(t.patient["birthDate"], "1970-01-31");
    assert_eq!(t.patient["gender"], "female");
    assert_eq!(
        t.patient["identifier"][0],
        json!({"system": "urn:oid:2.16.840.1.113883.19.5", "value": "555-44", "assigner": {"display": "HOSP"},
               "type": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v2-0203", "code": "MR"}]}})
    );
    let obs: Vec<&Value> = t.resources.iter().collect();
    assert_eq!(obs.len(), 4);
    let subject = json!({"reference": format!("Patient/{}", t.patient_id)});
    assert!(
        obs.iter()
            .all(|o| o["resourceType"] == "Observation" && o["subject"] == subject)
    );
    assert_eq!(
        obs[0]["code"]["coding"][0],
        json!({"system": "http://loinc.org", "code": "718-7", "display": "Hemoglobin"})
    );
    assert_eq!(
        obs[0]["valueQuantity"],
        json!({"value": 13.2, "unit": "grams per deciliter", "system": "http://unitsofmeasure.org", "code": "g/dL"})
    );
    assert_eq!(obs[0]["referenceRange"], json!([{"text": "12.0-15.5"}]));
    assert_eq!(obs[0]["interpretation"][0]["coding"][0]["code"], "N");
    assert_eq!(obs[0]["status"], "final");
    // No OBX-14: the request's observation time (OBR-7).
    assert_eq!(obs[0]["effectiveDateTime"], "2024-03-05T09:00:00+01:00");
    assert_eq!(
        obs[1]["valueCodeableConcept"]["coding"][0]["system"],
        "http://snomed.info/sct"
    );
    assert_eq!(obs[1]["status"], "preliminary");
    assert_eq!(obs[1]["effectiveDateTime"], "2024-03-05T10:00:00+01:00");
    assert_eq!(obs[2]["valueString"], "Sample slightly haemolysed");
    assert_eq!(obs[3]["valueQuantity"]["comparator"], "<");
    assert_eq!(obs[3]["valueQuantity"]["value"], json!(0.5));
}

#[test]
fn ids_are_stable_per_natural_key() {
    let a = translate(&oru(), &Plain).unwrap();
    let b = translate(&oru(), &Plain).unwrap();
    let ids = |t: &medledger_hl7v2::Translation| -> Vec<Value> {
        t.resources.iter().map(|r| r["id"].clone()).collect()
    };
    assert_eq!(ids(&a), ids(&b), "the same message, the same ids");
    let mut distinct = ids(&a);
    distinct.dedup();
    assert_eq!(distinct.len(), 4, "one id per OBX");

    // An ADT from another application about the same MRN of the same authority: same patient.
    let adt_text = "MSH|^~\\&|ADT|HOSP|MEDLEDGER|HOSP|20240301080000||ADT^A01|ADT-9|P|2.5\r\
         PID|1||555-44^^^HOSP&2.16.840.1.113883.19.5&ISO^MR~999^^^OTHER^PI||O'Brien^Mary\r\
         PV1|1|I|||||||||||||||||V-77^^^HOSP|||||||||||||||||||||||||20240301075500+0100\r";
    let adt = Message::parse(adt_text).unwrap();
    let t = translate(&adt, &Plain).unwrap();
    assert!(t.create_only.is_empty());
    assert_eq!(t.patient_id, a.patient_id);
    let e = &t.resources[0];
    assert_eq!(e["resourceType"], "Encounter");
    assert_eq!(e["status"], "in-progress");
    assert_eq!(e["class"]["code"], "IMP");
    assert_eq!(e["period"]["start"], "2024-03-01T07:55:00+01:00");
    assert_eq!(e["identifier"][0]["value"], "V-77");
    // The discharge of the same visit updates the same Encounter.
    let discharge = adt_text.replace("ADT^A01|ADT-9", "ADT^A03|ADT-10");
    let d = translate(&Message::parse(&discharge).unwrap(), &Plain).unwrap();
    assert_eq!(d.resources[0]["id"], e["id"]);
    assert_eq!(d.resources[0]["status"], "finished");

    // The same MRN value from another authority is another patient.
    let other = ORU.replace("HOSP&2.16.840.1.113883.19.5&ISO", "CLINIC");
    assert_ne!(
        translate(&Message::parse(&other).unwrap(), &Plain)
            .unwrap()
            .patient_id,
        a.patient_id
    );
}

#[test]
fn the_bundle_is_a_transaction_of_puts_to_the_stable_ids() {
    let t = translate(&oru(), &Plain).unwrap();
    let b = t.bundle(&[]);
    assert_eq!(b["type"], "transaction");
    let entries = b["entry"].as_array().unwrap();
    assert_eq!(entries.len(), 5);
    // The result's Patient: created only if none exists when the transaction commits.
    assert_eq!(entries[0]["request"]["ifNoneMatch"], "*");
    for e in &entries[1..] {
        let url = format!(
            "{}/{}",
            e["resource"]["resourceType"].as_str().unwrap(),
            e["resource"]["id"].as_str().unwrap()
        );
        assert_eq!(e["request"], json!({"method": "PUT", "url": url}));
    }
    let stored = [format!("Patient/{}", t.patient_id)];
    assert_eq!(t.bundle(&stored)["entry"].as_array().unwrap().len(), 4);
    // An ORU's visit is the ADT feed's too: written only when none is stored.
    let with_visit = ORU.replace("\rOBR|", "\rPV1|1|I|||||||||||||||||V-9^^^HOSP\rOBR|");
    let t = translate(&Message::parse(&with_visit).unwrap(), &Plain).unwrap();
    assert_eq!(t.create_only.len(), 2);
    assert_eq!(
        t.bundle(&t.create_only)["entry"].as_array().unwrap().len(),
        4
    );
    assert_eq!(t.bundle(&[])["entry"].as_array().unwrap().len(), 6);
}

#[test]
fn latin1_bytes_are_read_as_latin1() {
    let mut bytes = ORU.replace("Mary", "M\u{e9}lanie").into_bytes();
    // Re-encode the one non-ASCII character as ISO 8859-1.
    let at = bytes.windows(2).position(|w| w == [0xc3, 0xa9]).unwrap();
    bytes.splice(at..at + 2, [0xe9]);
    let t = translate(&Message::from_bytes(&bytes).unwrap(), &Plain).unwrap();
    assert_eq!(t.patient["name"][0]["given"][0], "M\u{e9}lanie");
}

#[test]
fn refusals_name_the_hl7_error_and_where_it_is() {
    type Case = (String, u16, Option<(&'static str, usize)>);
    let cases: [Case; 9] = [
        (
            ORU.replace(
                "PID|1||555-44^^^HOSP&2.16.840.1.113883.19.5&ISO^MR",
                "PID|1||",
            ),
            101,
            Some(("PID", 3)),
        ),
        (
            ORU.replace("|19700131|", "|19701331|"),
            102,
            Some(("PID", 7)),
        ),
        (ORU.replace("||13.2|", "||high|"), 102, Some(("OBX", 5))),
        (ORU.replace("|2.5.1\r", "|3.0\r"), 203, Some(("MSH", 12))),
        (
            ORU.replace("ORU^R01^ORU_R01", "ORU^R30"),
            200,
            Some(("MSH", 9)),
        ),
        (
            ORU.replace("|718-7^Hemoglobin^LN|", "||"),
            101,
            Some(("OBX", 3)),
        ),
        (ORU.replace("\rPID|", "\rZPI|"), 100, Some(("PID", 0))),
        (ORU.replace("|P|2.5.1", "|T|2.5.1"), 202, Some(("MSH", 11))),
        (
            format!("{ORU}PID|2||777^^^HOSP^MR\r"),
            100,
            Some(("PID", 0)),
        ),
    ];
    for (text, code, at) in cases {
        let e = translate(&Message::parse(&text).unwrap(), &Plain).unwrap_err();
        assert_eq!(e.code, code, "{}", e.text);
        assert_eq!(e.location, at.map(|(s, f)| (s.to_owned(), f)), "{}", e.text);
        assert!(
            !e.text.contains("555-44") && !e.text.contains("Brien"),
            "no PHI in {}",
            e.text
        );
    }
}

#[test]
fn messages_that_do_not_parse_say_why() {
    use medledger_hl7v2::ParseError;
    assert_eq!(Message::parse("\r\n").unwrap_err(), ParseError::Empty);
    assert_eq!(Message::parse("PID|1").unwrap_err(), ParseError::NoHeader);
    assert_eq!(
        Message::parse("MSH|^~|a").unwrap_err(),
        ParseError::BadEncodingCharacters
    );
    assert_eq!(
        Message::parse(&ORU.replace("\rOBR", "\robr")).unwrap_err(),
        ParseError::BadSegmentId(3)
    );
    assert!(matches!(
        Message::parse(&ORU.replace("|LAB-0001|", "||")).unwrap_err(),
        ParseError::MissingHeaderField(_)
    ));
}

#[test]
fn a_final_result_replaces_its_preliminary_version_and_repeats_collapse() {
    let preliminary = translate(&oru(), &Plain).unwrap();
    // The lab sends the final result later, as a new message of the same order (OBR-3).
    let final_text = ORU
        .replace("LAB-0001", "LAB-0002")
        .replace("|P|||202403051000", "|F|||202403051000");
    let fin = translate(&Message::parse(&final_text).unwrap(), &Plain).unwrap();
    let ids = |t: &medledger_hl7v2::Translation| -> Vec<Value> {
        t.resources.iter().map(|r| r["id"].clone()).collect()
    };
    assert_eq!(
        ids(&fin),
        ids(&preliminary),
        "same order, same Observations"
    );
    assert_eq!(fin.resources[1]["status"], "final");
    // A segment repeated in one message (the same allergen twice) is one entry.
    let twice = format!(
        "{ORU}AL1|1|DA|70618^Penicillin^RXNORM|SV|hives\rAL1|2|DA|70618^Penicillin^RXNORM|MO|rash\r"
    );
    let t = translate(&Message::parse(&twice).unwrap(), &Plain).unwrap();
    let allergies: Vec<&Value> = t
        .resources
        .iter()
        .filter(|r| r["resourceType"] == "AllergyIntolerance")
        .collect();
    assert_eq!(allergies.len(), 1);
    assert_eq!(
        allergies[0]["reaction"][0]["manifestation"][0]["text"], "rash",
        "the later one"
    );
    assert_eq!(allergies[0]["category"], json!(["medication"]));
    assert_eq!(allergies[0]["criticality"], "low");
    assert_eq!(
        t.bundle(&[])["entry"].as_array().unwrap().len(),
        t.resources.len() + 1
    );
}
