//! ADT and ORU messages as FHIR R4 resources: PID → Patient, PV1 → Encounter, OBX → Observation,
//! AL1 → AllergyIntolerance, DG1 → Condition, following the HL7 v2-to-FHIR mapping guide where
//! it is settled (identifiers, names, dates, patient class, value types) and stopping short of it
//! elsewhere (no Practitioner, Location or Organization resources; other segments are not
//! mapped).
//!
//! Ids are stable so a message sent twice, or a later message about the same patient or visit,
//! updates the same resources instead of creating copies: each is a keyed pseudonym
//! ([`IdScheme`]) of the natural key the sender uses (assigning authority and identifier for
//! patients and visits; sender, MSH-10 and position for observations). The pseudonym keeps
//! medical record numbers out of resource ids.

use serde_json::{Map, Value, json};

use crate::ack::{AckCode, ErrorCondition};
use crate::message::{Field, Message, Segment};

/// Turns a natural key into a FHIR resource id (at most 64 characters of `[A-Za-z0-9.-]`).
/// Implementations key it (HMAC), so the id does not reveal the natural key.
pub trait IdScheme {
    /// The id for `label`; the same label always gives the same id.
    fn stable_id(&self, label: &str) -> String;
}

/// Why a message cannot be translated; becomes the NAK's ERR segment.
pub type TranslateError = ErrorCondition;

/// The resources one message yields.
#[derive(Debug, Clone)]
pub struct Translation {
    /// The patient's resource id.
    pub patient_id: String,
    /// The Patient from PID.
    pub patient: Value,
    /// Encounter and Observations, each with its id.
    pub resources: Vec<Value>,
    /// `Type/id` of what this message does not own: a result's Patient and Encounter belong to
    /// the ADT feed, so they are written only when none is stored, never over a stored one.
    /// Empty for ADT messages, which own both.
    pub create_only: Vec<String>,
}

fn key_of(r: &Value) -> String {
    format!(
        "{}/{}",
        r["resourceType"].as_str().unwrap_or_default(),
        r["id"].as_str().unwrap_or_default()
    )
}

impl Translation {
    /// A FHIR transaction Bundle writing everything except the `create_only` resources in
    /// `stored`, each entry a `PUT` to its stable id, so the message is stored all or nothing.
    pub fn bundle(&self, stored: &[String]) -> Value {
        let entries: Vec<Value> = std::iter::once(&self.patient)
            .chain(&self.resources)
            .filter(|r| {
                let key = key_of(r);
                !(self.create_only.contains(&key) && stored.contains(&key))
            })
            .map(|r| {
                let key = key_of(r);
                // Written only if still absent at commit: a concurrent ADT that stores it first
                // makes this a conflict, and the retry leaves it out.
                let request = if self.create_only.contains(&key) {
                    json!({"method": "PUT", "url": key, "ifNoneMatch": "*"})
                } else {
                    json!({"method": "PUT", "url": key})
                };
                json!({"fullUrl": key, "resource": r, "request": request})
            })
            .collect();
        json!({"resourceType": "Bundle", "type": "transaction", "entry": entries})
    }
}

/// ADT events this translation refuses: merges, links and deletions change which records
/// exist, and writing them as plain updates would be wrong.
const UNSUPPORTED_ADT: &[&str] = &[
    "A17", "A18", "A23", "A24", "A29", "A30", "A34", "A35", "A36", "A37", "A39", "A40", "A41",
    "A42", "A43", "A44", "A45", "A46", "A47", "A48", "A49", "A50", "A51",
];

/// Translates `msg`. Supported: ADT (all events but merges, links and deletions) and ORU^R01.
pub fn translate(msg: &Message, ids: &dyn IdScheme) -> Result<Translation, TranslateError> {
    // The sender's type and event are echoed in refusals: only their expected characters.
    let tidy = |t: String| -> String {
        t.chars()
            .filter(|c| c.is_ascii_alphanumeric() || *c == '_')
            .take(7)
            .collect()
    };
    let (code, event) = msg.message_type();
    let (code, event) = (tidy(code), tidy(event));
    let version = msg.value("MSH", 12).component(1).text();
    if !version.starts_with("2.") {
        return Err(
            ErrorCondition::new(AckCode::Reject, 203, "MSH-12 must name HL7 version 2.x")
                .at("MSH", 12),
        );
    }
    let authoritative = match code.as_str() {
        "ADT" => {
            if UNSUPPORTED_ADT.contains(&event.as_str()) {
                return Err(ErrorCondition::new(
                    AckCode::Reject,
                    201,
                    format!("ADT^{event} (merge, link or delete) is not supported"),
                )
                .at("MSH", 9));
            }
            true
        }
        "ORU" if event == "R01" => false,
        _ => {
            return Err(ErrorCondition::new(
                AckCode::Reject,
                200,
                format!("{code}^{event} is not supported (ADT and ORU^R01 are)"),
            )
            .at("MSH", 9));
        }
    };
    // Training and debugging messages (MSH-11 T, D) are not records of care.
    if msg.value("MSH", 11).component(1).text() != "P" {
        return Err(ErrorCondition::new(
            AckCode::Reject,
            202,
            "MSH-11 (processing id) must be P (production); training and debugging messages are not stored",
        )
        .at("MSH", 11));
    }
    let pid = msg.first("PID").ok_or_else(|| {
        ErrorCondition::new(AckCode::Error, 100, "the message has no PID segment").at("PID", 0)
    })?;
    // Everything is filed under one patient: a message about several (an ORU with repeated
    // patient groups) would put results under the wrong one.
    if msg.segments().iter().filter(|s| s.id() == "PID").count() > 1 {
        return Err(ErrorCondition::new(
            AckCode::Error,
            100,
            "messages about more than one patient (several PID segments) are not supported; send one message per patient",
        )
        .at("PID", 0)
        .in_repetition(2));
    }
    let facility = msg.header().raw(4).to_owned();
    let (patient_id, patient) = patient(msg, pid, &facility, ids)?;
    let subject = json!({"reference": format!("Patient/{patient_id}")});
    let mut resources = Vec::new();
    let mut encounter_ref = None;
    if let Some(pv1) = msg.first("PV1") {
        let e = encounter(msg, pv1, &event, &facility, &subject, ids)?;
        encounter_ref = Some(
            json!({"reference": format!("Encounter/{}", e["id"].as_str().unwrap_or_default())}),
        );
        resources.push(e);
    }
    let mut obr_time: Option<String> = None;
    let mut order: Option<String> = None;
    let mut seen: std::collections::HashMap<&str, usize> = std::collections::HashMap::new();
    for seg in msg.segments() {
        let n = {
            let c = seen.entry(seg.id()).or_default();
            *c += 1;
            *c
        };
        let at = |e: ErrorCondition| e.in_repetition(n);
        match seg.id() {
            "OBR" => {
                obr_time = date_time(msg.field(seg, 7).raw())
                    .map_err(|()| at(data_type("OBR", 7, "is not a valid HL7 date/time")))?;
                // The filler's (else the placer's) order number names the results for good:
                // a preliminary result and its final version are one Observation.
                order = [3, 2]
                    .iter()
                    .map(|&f| msg.field(seg, f).raw())
                    .find(|o| !o.is_empty())
                    .map(|o| format!("{facility}|{o}"));
            }
            "OBX" => {
                let label = match &order {
                    Some(o) => format!(
                        "hl7v2/observation|{o}|{}|{}",
                        msg.field(seg, 3).component(1).raw(),
                        msg.field(seg, 4).raw()
                    ),
                    None => format!(
                        "hl7v2/observation-of-message|{}|{}|{n}",
                        msg.sender(),
                        msg.control_id()
                    ),
                };
                let mut o = observation(msg, seg, &subject, obr_time.as_deref()).map_err(at)?;
                o["id"] = json!(ids.stable_id(&label));
                if let Some(e) = &encounter_ref {
                    o["encounter"] = e.clone();
                }
                push_once(&mut resources, o);
            }
            "AL1" => push_once(
                &mut resources,
                allergy(msg, seg, &patient_id, &subject, ids).map_err(at)?,
            ),
            "DG1" => {
                let scope = encounter_ref
                    .as_ref()
                    .and_then(|e| e["reference"].as_str())
                    .unwrap_or(&patient_id)
                    .to_owned();
                let mut c = diagnosis(msg, seg, &scope, &subject, ids).map_err(at)?;
                if let Some(e) = &encounter_ref {
                    c["encounter"] = e.clone();
                }
                push_once(&mut resources, c);
            }
            _ => {}
        }
    }
    let create_only = if authoritative {
        Vec::new()
    } else {
        std::iter::once(&patient)
            .chain(
                resources
                    .iter()
                    .filter(|r| r["resourceType"] == "Encounter"),
            )
            .map(key_of)
            .collect()
    };
    Ok(Translation {
        patient_id,
        patient,
        resources,
        create_only,
    })
}

/// Adds `r`, or replaces the resource with its id when a later segment repeats it (the same
/// allergen twice, one OBX sent again under its order): one Bundle entry per id.
fn push_once(resources: &mut Vec<Value>, r: Value) {
    match resources.iter_mut().find(|x| key_of(x) == key_of(&r)) {
        Some(x) => *x = r,
        None => resources.push(r),
    }
}

fn data_type(segment: &str, field: usize, what: &str) -> ErrorCondition {
    ErrorCondition::new(AckCode::Error, 102, format!("{segment}-{field} {what}")).at(segment, field)
}

fn put(obj: &mut Map<String, Value>, key: &str, value: Value) {
    let empty = match &value {
        Value::Null => true,
        Value::String(s) => s.is_empty(),
        Value::Array(a) => a.is_empty(),
        Value::Object(o) => o.is_empty(),
        _ => false,
    };
    if !empty {
        obj.insert(key.to_owned(), value);
    }
}

/// A URI for an HD (namespace ^ universal id ^ universal id type) or for its sub-components.
fn system_of(namespace: &str, universal: &str, kind: &str) -> Option<String> {
    match kind {
        "ISO" if !universal.is_empty() => Some(format!("urn:oid:{universal}")),
        "UUID" if !universal.is_empty() => Some(format!("urn:uuid:{universal}")),
        "URI" | "DNS" if !universal.is_empty() => Some(universal.to_owned()),
        _ if namespace.starts_with("urn:") || namespace.starts_with("http") => {
            Some(namespace.to_owned())
        }
        _ => None,
    }
}

/// A code system name of HL7 table 0396 as a FHIR system URI.
fn coding_system(name: &str) -> Option<String> {
    let uri = match name {
        "LN" | "LOINC" => "http://loinc.org",
        "SCT" | "SNM" | "SNOMED" | "SNM3" => "http://snomed.info/sct",
        "I10" | "ICD10" => "http://hl7.org/fhir/sid/icd-10",
        "I10C" => "http://hl7.org/fhir/sid/icd-10-cm",
        "I9" | "I9C" | "ICD9" => "http://hl7.org/fhir/sid/icd-9-cm",
        "UCUM" | "ISO+" => "http://unitsofmeasure.org",
        "CVX" => "http://hl7.org/fhir/sid/cvx",
        "RXNORM" | "RXN" => "http://www.nlm.nih.gov/research/umls/rxnorm",
        "NDC" => "http://hl7.org/fhir/sid/ndc",
        "CPT" | "C4" => "http://www.ama-assn.org/go/cpt",
        n if n.len() == 7 && n.starts_with("HL7") && n[3..].chars().all(|c| c.is_ascii_digit()) => {
            return Some(format!(
                "http://terminology.hl7.org/CodeSystem/v2-{}",
                &n[3..]
            ));
        }
        _ => return None,
    };
    Some(uri.to_owned())
}

/// A CWE/CE/CNE (code ^ text ^ system, alternate triplet in 4–6, original text in 9) as a
/// CodeableConcept; `None` when nothing was sent.
fn codeable(v: Field<'_>, default_system: Option<&str>) -> Option<Value> {
    let mut codings = Vec::new();
    for (code, display, system) in [(1, 2, 3), (4, 5, 6)] {
        let code_text = v.component(code).text();
        let display_text = v.component(display).text();
        if code_text.is_empty() && display_text.is_empty() {
            continue;
        }
        let mut c = Map::new();
        let sys = coding_system(&v.component(system).text())
            .or_else(|| default_system.map(str::to_owned));
        put(&mut c, "system", json!(sys));
        put(&mut c, "code", json!(code_text));
        put(&mut c, "display", json!(display_text));
        if c.contains_key("code") {
            codings.push(Value::Object(c));
        }
    }
    let text = Some(v.component(9).text())
        .filter(|t| !t.is_empty())
        .or_else(|| Some(v.component(2).text()).filter(|t| !t.is_empty()))
        .or_else(|| {
            (codings.is_empty() && !v.component(1).is_empty()).then(|| v.component(1).text())
        });
    let mut cc = Map::new();
    put(&mut cc, "coding", Value::Array(codings));
    put(&mut cc, "text", json!(text));
    (!cc.is_empty()).then_some(Value::Object(cc))
}

/// An HL7 DTM split into its parts: `YYYY[MM[DD[HH[MM[SS[.S[S[S[S]]]]]]]]][+/-ZZZZ]`, every
/// part checked (calendar dates included). `Ok(None)` when empty; `Err` when not a DTM.
struct Dtm<'a> {
    year: &'a str,
    month: Option<&'a str>,
    day: Option<&'a str>,
    time: &'a str,
    fraction: &'a str,
    zone: Option<&'a str>,
}

fn dtm(raw: &str) -> Result<Option<Dtm<'_>>, ()> {
    if raw.is_empty() || raw == "\"\"" {
        return Ok(None);
    }
    let (local, zone) = match raw.find(['+', '-']) {
        Some(i) => (&raw[..i], Some(&raw[i..])),
        None => (raw, None),
    };
    let (whole, fraction) = local.split_once('.').unwrap_or((local, ""));
    let digits = |t: &str| t.chars().all(|c| c.is_ascii_digit());
    if !digits(whole) || !matches!(whole.len(), 4 | 6 | 8 | 10 | 12 | 14) {
        return Err(());
    }
    if local.contains('.')
        && (whole.len() != 14 || fraction.is_empty() || fraction.len() > 4 || !digits(fraction))
    {
        return Err(());
    }
    let num = |t: &str| t.parse::<u32>().map_err(|_| ());
    let year = &whole[..4];
    if num(year)? == 0 {
        return Err(());
    }
    let month = whole.get(4..6);
    let day = whole.get(6..8);
    if let Some(m) = month
        && !(1..=12).contains(&num(m)?)
    {
        return Err(());
    }
    if let (Some(m), Some(d)) = (month, day) {
        let y = num(year)?;
        let leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
        let days = match num(m)? {
            2 if leap => 29,
            2 => 28,
            4 | 6 | 9 | 11 => 30,
            _ => 31,
        };
        if !(1..=days).contains(&num(d)?) {
            return Err(());
        }
    }
    let time = whole.get(8..).unwrap_or("");
    let limits = [23, 59, 59];
    for (i, limit) in limits.iter().enumerate() {
        if let Some(part) = time.get(i * 2..i * 2 + 2)
            && num(part)? > *limit
        {
            return Err(());
        }
    }
    if let Some(z) = zone {
        // ±HHMM, at most 14 hours (the widest offset in use) and 59 minutes.
        if z.len() != 5 || !digits(&z[1..]) || num(&z[1..3])? > 14 || num(&z[3..5])? > 59 {
            return Err(());
        }
    }
    Ok(Some(Dtm {
        year,
        month,
        day,
        time,
        fraction,
        zone,
    }))
}

/// An HL7 DTM as a FHIR `date` (`YYYY`, `YYYY-MM` or `YYYY-MM-DD`); time and zone are dropped.
fn date(raw: &str) -> Result<Option<String>, ()> {
    Ok(dtm(raw)?.map(|d| d.day()))
}

impl Dtm<'_> {
    /// The date part as FHIR writes it.
    fn day(&self) -> String {
        let mut out = self.year.to_owned();
        for part in [self.month, self.day].into_iter().flatten() {
            out.push('-');
            out.push_str(part);
        }
        out
    }
}

/// An HL7 DTM as a FHIR `dateTime`. FHIR requires a time zone whenever a time is given, so a
/// time without an offset is cut to its date rather than guessed.
fn date_time(raw: &str) -> Result<Option<String>, ()> {
    let Some(d) = dtm(raw)? else {
        return Ok(None);
    };
    let day = d.day();
    let (Some(zone), false) = (d.zone, d.time.is_empty()) else {
        return Ok(Some(day));
    };
    let part = |i: usize| d.time.get(i..i + 2).unwrap_or("00");
    let mut out = format!("{day}T{}:{}:{}", part(0), part(2), part(4));
    if !d.fraction.is_empty() {
        out.push('.');
        out.push_str(d.fraction);
    }
    out.push_str(&format!("{}:{}", &zone[..3], &zone[3..]));
    Ok(Some(out))
}

/// A CX (id ^ check digit ^ scheme ^ assigning authority ^ type) as an Identifier.
fn identifier(v: Field<'_>) -> Option<Value> {
    let value = v.component(1).text();
    if value.is_empty() {
        return None;
    }
    let authority = v.component(4);
    let mut id = Map::new();
    put(
        &mut id,
        "system",
        json!(system_of(
            &authority.sub(1).text(),
            &authority.sub(2).text(),
            &authority.sub(3).text()
        )),
    );
    put(&mut id, "value", json!(value));
    let kind = v.component(5).text();
    if !kind.is_empty() {
        id.insert(
            "type".into(),
            json!({"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v2-0203", "code": kind}]}),
        );
    }
    let namespace = authority.sub(1).text();
    if !namespace.is_empty() {
        id.insert("assigner".into(), json!({"display": namespace}));
    }
    Some(Value::Object(id))
}

/// The stable natural key of a CX: its value and assigning authority, or the sending facility
/// when the sender names no authority.
fn natural_key(v: Field<'_>, facility: &str) -> String {
    let authority = v.component(4).raw();
    let scope = if authority.is_empty() {
        facility
    } else {
        authority
    };
    format!("{scope}|{}", v.component(1).raw())
}

fn name(v: Field<'_>) -> Option<Value> {
    let mut n = Map::new();
    put(&mut n, "family", json!(v.component(1).sub(1).text()));
    let given: Vec<String> = [2, 3]
        .iter()
        .map(|&c| v.component(c).text())
        .filter(|s| !s.is_empty())
        .collect();
    put(&mut n, "given", json!(given));
    let one = |c: usize| {
        let t = v.component(c).text();
        if t.is_empty() { vec![] } else { vec![t] }
    };
    put(&mut n, "suffix", json!(one(4)));
    put(&mut n, "prefix", json!(one(5)));
    if n.is_empty() {
        return None;
    }
    let usage = match v.component(7).raw() {
        "L" => "official",
        "D" => "usual",
        "M" => "maiden",
        "N" => "nickname",
        "S" => "anonymous",
        "T" => "temp",
        _ => "",
    };
    put(&mut n, "use", json!(usage));
    Some(Value::Object(n))
}

fn address(v: Field<'_>) -> Option<Value> {
    let mut a = Map::new();
    let lines: Vec<String> = [v.component(1).sub(1).text(), v.component(2).text()]
        .into_iter()
        .filter(|s| !s.is_empty())
        .collect();
    put(&mut a, "line", json!(lines));
    put(&mut a, "city", json!(v.component(3).text().trim()));
    put(&mut a, "state", json!(v.component(4).text()));
    put(&mut a, "postalCode", json!(v.component(5).text()));
    put(&mut a, "country", json!(v.component(6).text()));
    if a.is_empty() {
        return None;
    }
    let usage = match v.component(7).raw() {
        "H" | "P" => "home",
        "B" | "O" => "work",
        "C" => "temp",
        "BA" => "old",
        _ => "",
    };
    put(&mut a, "use", json!(usage));
    Some(Value::Object(a))
}

/// An XTN as a ContactPoint: email when the equipment type says Internet, else a phone number
/// (XTN-1, or the v2.5 split area code and local number).
fn telecom(v: Field<'_>, default_use: &str) -> Option<Value> {
    let equipment = v.component(3).raw();
    let mut t = Map::new();
    let (system, value) =
        if equipment.eq_ignore_ascii_case("Internet") || v.component(2).raw() == "NET" {
            let email = v.component(4).text();
            (
                "email",
                if email.is_empty() {
                    v.component(1).text()
                } else {
                    email
                },
            )
        } else {
            let split = format!("{}{}", v.component(6).text(), v.component(7).text());
            let number = if v.component(1).is_empty() {
                split
            } else {
                v.component(1).text()
            };
            let system = match equipment {
                "FX" => "fax",
                "BP" => "pager",
                _ => "phone",
            };
            (system, number)
        };
    if value.is_empty() {
        return None;
    }
    put(&mut t, "system", json!(system));
    put(&mut t, "value", json!(value));
    let usage = match (v.component(2).raw(), equipment) {
        (_, "CP") => "mobile",
        ("WPN", _) => "work",
        ("PRN" | "ORN" | "VHN", _) => "home",
        _ => default_use,
    };
    put(&mut t, "use", json!(usage));
    Some(Value::Object(t))
}

fn patient(
    msg: &Message,
    pid: &Segment,
    facility: &str,
    ids: &dyn IdScheme,
) -> Result<(String, Value), ErrorCondition> {
    let cx: Vec<Field<'_>> = msg
        .repetitions(pid, 3)
        .filter(|v| !v.component(1).is_empty())
        .collect();
    // The medical record number identifies the patient when there is one; else the first id.
    let key = cx
        .iter()
        .find(|v| v.component(5).raw() == "MR")
        .or(cx.first())
        .ok_or_else(|| {
            ErrorCondition::new(
                AckCode::Error,
                101,
                "PID-3 (patient identifier list) is required",
            )
            .at("PID", 3)
        })?;
    let id = ids.stable_id(&format!("hl7v2/patient|{}", natural_key(*key, facility)));
    let mut p = Map::new();
    p.insert("resourceType".into(), json!("Patient"));
    p.insert("id".into(), json!(id));
    put(
        &mut p,
        "identifier",
        Value::Array(cx.iter().filter_map(|v| identifier(*v)).collect()),
    );
    put(
        &mut p,
        "name",
        Value::Array(msg.repetitions(pid, 5).filter_map(name).collect()),
    );
    let mut contact: Vec<Value> = msg
        .repetitions(pid, 13)
        .filter_map(|v| telecom(v, "home"))
        .collect();
    contact.extend(msg.repetitions(pid, 14).filter_map(|v| telecom(v, "work")));
    put(&mut p, "telecom", Value::Array(contact));
    let gender = match msg.field(pid, 8).raw() {
        "" | "\"\"" => "",
        "M" => "male",
        "F" => "female",
        "O" | "A" | "N" => "other",
        _ => "unknown",
    };
    put(&mut p, "gender", json!(gender));
    let birth = date(msg.field(pid, 7).raw())
        .map_err(|()| data_type("PID", 7, "(date of birth) is not a valid HL7 date"))?;
    put(&mut p, "birthDate", json!(birth));
    match msg.field(pid, 30).raw() {
        "Y" => {
            let when = date_time(msg.field(pid, 29).raw())
                .map_err(|()| data_type("PID", 29, "is not a valid HL7 date/time"))?;
            match when {
                Some(w) => p.insert("deceasedDateTime".into(), json!(w)),
                None => p.insert("deceasedBoolean".into(), json!(true)),
            };
        }
        "N" => {
            p.insert("deceasedBoolean".into(), json!(false));
        }
        _ => {}
    }
    put(
        &mut p,
        "address",
        Value::Array(msg.repetitions(pid, 11).filter_map(address).collect()),
    );
    if let Some(ms) = codeable(
        msg.field(pid, 16),
        Some("http://terminology.hl7.org/CodeSystem/v3-MaritalStatus"),
    ) {
        p.insert("maritalStatus".into(), ms);
    }
    Ok((id, Value::Object(p)))
}

fn encounter(
    msg: &Message,
    pv1: &Segment,
    event: &str,
    facility: &str,
    subject: &Value,
    ids: &dyn IdScheme,
) -> Result<Value, ErrorCondition> {
    let visit = msg.field(pv1, 19);
    let label = if visit.component(1).is_empty() {
        // No visit number: the message itself is the only stable key.
        format!(
            "hl7v2/encounter-of-message|{}|{}",
            msg.sender(),
            msg.control_id()
        )
    } else {
        format!("hl7v2/encounter|{}", natural_key(visit, facility))
    };
    // The actual admission and discharge (PV1-44, PV1-45), else the expected ones (PV2-8,
    // PV2-9), which are all a pre-admission has.
    let when = |seg: &str, field: usize, what: &str| match msg.first(seg) {
        Some(s) => date_time(msg.field(s, field).raw()).map_err(|()| {
            data_type(
                seg,
                field,
                &format!("({what}) is not a valid HL7 date/time"),
            )
        }),
        None => Ok(None),
    };
    let start = match when("PV1", 44, "admit date/time")? {
        Some(t) => Some(t),
        None => when("PV2", 8, "expected admit date/time")?,
    };
    let end = match when("PV1", 45, "discharge date/time")? {
        Some(t) => Some(t),
        None => when("PV2", 9, "expected discharge date/time")?,
    };
    let status = match event {
        "A05" | "A14" => "planned",
        "A11" | "A27" | "A38" => "cancelled",
        "A03" => "finished",
        _ if !msg.field(pv1, 45).is_empty() => "finished",
        _ => "in-progress",
    };
    let act = |code: &str, display: &str| json!({"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": code, "display": display});
    let class = match msg.field(pv1, 2).raw() {
        "E" => act("EMER", "emergency"),
        "I" => act("IMP", "inpatient encounter"),
        "O" => act("AMB", "ambulatory"),
        "P" => act("PRENC", "pre-admission"),
        "" | "\"\"" | "U" | "N" => {
            json!({"system": "http://terminology.hl7.org/CodeSystem/v3-NullFlavor", "code": "UNK"})
        }
        other => json!({"system": "http://terminology.hl7.org/CodeSystem/v2-0004", "code": other}),
    };
    let mut e = Map::new();
    e.insert("resourceType".into(), json!("Encounter"));
    e.insert("id".into(), json!(ids.stable_id(&label)));
    put(
        &mut e,
        "identifier",
        json!(identifier(visit).into_iter().collect::<Vec<_>>()),
    );
    e.insert("status".into(), json!(status));
    e.insert("class".into(), class);
    e.insert("subject".into(), subject.clone());
    let mut period = Map::new();
    put(&mut period, "start", json!(start));
    put(&mut period, "end", json!(end));
    put(&mut e, "period", Value::Object(period));
    Ok(Value::Object(e))
}

fn number(text: &str) -> Option<Value> {
    let t = text.trim().trim_start_matches('+');
    let plain = !t.is_empty()
        && t.chars()
            .all(|c| c.is_ascii_digit() || matches!(c, '.' | '-'))
        && t.parse::<f64>().is_ok_and(f64::is_finite);
    if !plain {
        return None;
    }
    // The sender's digits when they are valid JSON; forms JSON lacks (`007`, `.5`, `5.`) by
    // their value.
    serde_json::from_str::<Value>(t)
        .ok()
        .filter(Value::is_number)
        .or_else(|| {
            t.parse::<f64>()
                .ok()
                .and_then(serde_json::Number::from_f64)
                .map(Value::Number)
        })
}

fn observation(
    msg: &Message,
    obx: &Segment,
    subject: &Value,
    obr_time: Option<&str>,
) -> Result<Value, ErrorCondition> {
    let code = codeable(msg.field(obx, 3), None).ok_or_else(|| {
        ErrorCondition::new(
            AckCode::Error,
            101,
            "OBX-3 (observation identifier) is required",
        )
        .at("OBX", 3)
    })?;
    let status = match msg.field(obx, 11).raw() {
        "F" => "final",
        "P" | "S" => "preliminary",
        "C" => "corrected",
        "A" => "amended",
        "X" => "cancelled",
        "D" | "W" => "entered-in-error",
        "R" | "I" => "registered",
        _ => "unknown",
    };
    let mut o = Map::new();
    o.insert("resourceType".into(), json!("Observation"));
    o.insert("status".into(), json!(status));
    o.insert("code".into(), code);
    o.insert("subject".into(), subject.clone());
    let value = msg.field(obx, 5);
    let kind = msg.field(obx, 2).raw();
    if !value.is_empty() {
        match kind {
            "NM" => {
                let mut values = Vec::new();
                for v in msg.repetitions(obx, 5) {
                    let n = number(&v.text())
                        .ok_or_else(|| data_type("OBX", 5, "is not a number (OBX-2 is NM)"))?;
                    values.push(quantity(msg, obx, n));
                }
                if values.len() == 1 {
                    o.insert("valueQuantity".into(), values.remove(0));
                } else {
                    // Several values for one code (a series): one component each, as the
                    // v2-to-FHIR mapping does, so none is dropped.
                    let parts: Vec<Value> = values
                        .into_iter()
                        .map(|q| json!({"code": o["code"].clone(), "valueQuantity": q}))
                        .collect();
                    o.insert("component".into(), Value::Array(parts));
                }
            }
            "SN" => {
                let comparator = value.component(1).text();
                let low = number(&value.component(2).text());
                let sep = value.component(3).text();
                let high = number(&value.component(4).text());
                match (low, sep.as_str(), high) {
                    (Some(l), "-", Some(h)) => {
                        o.insert(
                            "valueRange".into(),
                            json!({"low": quantity(msg, obx, l), "high": quantity(msg, obx, h)}),
                        );
                    }
                    (Some(l), "", None) => {
                        let mut q = quantity(msg, obx, l);
                        if matches!(comparator.as_str(), "<" | "<=" | ">=" | ">") {
                            q["comparator"] = json!(comparator);
                        }
                        o.insert("valueQuantity".into(), q);
                    }
                    _ => {
                        let parts: Vec<String> = (1..=4)
                            .map(|c| value.component(c).text())
                            .filter(|t| !t.is_empty())
                            .collect();
                        o.insert("valueString".into(), json!(parts.join(" ")));
                    }
                }
            }
            "CE" | "CWE" | "CNE" | "CF" => {
                if let Some(cc) = codeable(value, None) {
                    o.insert("valueCodeableConcept".into(), cc);
                }
            }
            "DT" | "TS" | "DTM" => {
                let when = date_time(value.raw())
                    .map_err(|()| data_type("OBX", 5, "is not a valid HL7 date/time"))?;
                put(&mut o, "valueDateTime", json!(when));
            }
            _ => {
                // ST, TX, FT and types without a FHIR counterpart (RP, ED, …): the text as sent,
                // repetitions on separate lines, so nothing the sender said is dropped.
                let text: Vec<String> = msg.repetitions(obx, 5).map(|v| v.text()).collect();
                put(&mut o, "valueString", json!(text.join("\n")));
            }
        }
    }
    let range = msg.field(obx, 7).text();
    if !range.is_empty() {
        o.insert("referenceRange".into(), json!([{"text": range}]));
    }
    let flags: Vec<Value> = msg
        .repetitions(obx, 8)
        .filter_map(|v| codeable(v, Some("http://terminology.hl7.org/CodeSystem/v2-0078")))
        .collect();
    put(&mut o, "interpretation", Value::Array(flags));
    let when = date_time(msg.field(obx, 14).raw())
        .map_err(|()| data_type("OBX", 14, "is not a valid HL7 date/time"))?
        .or(obr_time.map(str::to_owned));
    put(&mut o, "effectiveDateTime", json!(when));
    Ok(Value::Object(o))
}

/// AL1 → AllergyIntolerance: AL1-2 category (table 0127), AL1-3 allergen, AL1-4 severity as
/// criticality (table 0128), AL1-5 reactions, AL1-6 identification date as their onset. Its id
/// is the patient's and the allergen's, so the allergy list every ADT repeats updates in place.
fn allergy(
    msg: &Message,
    al1: &Segment,
    patient_id: &str,
    subject: &Value,
    ids: &dyn IdScheme,
) -> Result<Value, ErrorCondition> {
    let allergen = msg.field(al1, 3);
    let code = codeable(allergen, None).ok_or_else(|| {
        ErrorCondition::new(AckCode::Error, 101, "AL1-3 (allergen) is required").at("AL1", 3)
    })?;
    let category = match msg.field(al1, 2).component(1).raw() {
        "DA" => "medication",
        "FA" => "food",
        "EA" | "AA" | "PA" | "LA" => "environment",
        _ => "",
    };
    let criticality = match msg.field(al1, 4).component(1).raw() {
        "SV" => "high",
        "MO" | "MI" => "low",
        "U" => "unable-to-assess",
        _ => "",
    };
    let onset = date(msg.field(al1, 6).raw())
        .map_err(|()| data_type("AL1", 6, "(identification date) is not a valid HL7 date"))?;
    let reactions: Vec<Value> = msg
        .repetitions(al1, 5)
        .map(|r| r.text())
        .filter(|t| !t.is_empty())
        .map(|t| {
            let mut r = Map::new();
            r.insert("manifestation".into(), json!([{"text": t}]));
            put(&mut r, "onset", json!(onset));
            Value::Object(r)
        })
        .collect();
    let mut a = Map::new();
    a.insert("resourceType".into(), json!("AllergyIntolerance"));
    let label = format!("hl7v2/allergy|{patient_id}|{}", allergen.raw());
    a.insert("id".into(), json!(ids.stable_id(&label)));
    a.insert(
        "clinicalStatus".into(),
        json!({"coding": [{"system": "http://terminology.hl7.org/CodeSystem/allergyintolerance-clinical", "code": "active"}]}),
    );
    a.insert("type".into(), json!("allergy"));
    if !category.is_empty() {
        a.insert("category".into(), json!([category]));
    }
    put(&mut a, "criticality", json!(criticality));
    a.insert("code".into(), code);
    a.insert("patient".into(), subject.clone());
    put(&mut a, "reaction", Value::Array(reactions));
    Ok(Value::Object(a))
}

/// DG1 → Condition, an encounter diagnosis: DG1-3 code (DG1-4 text when no code), DG1-5 as its
/// onset, DG1-6 type as verification (F final → confirmed, A/W → provisional). Its id is the
/// visit's (or, without one, the patient's) and the code's.
fn diagnosis(
    msg: &Message,
    dg1: &Segment,
    scope: &str,
    subject: &Value,
    ids: &dyn IdScheme,
) -> Result<Value, ErrorCondition> {
    let coded = msg.field(dg1, 3);
    let described = msg.field(dg1, 4).text();
    let code = codeable(coded, None)
        .map(|mut c| {
            if c.get("text").is_none() && !described.is_empty() {
                c["text"] = json!(described);
            }
            c
        })
        .or_else(|| (!described.is_empty()).then(|| json!({"text": described})))
        .ok_or_else(|| {
            ErrorCondition::new(AckCode::Error, 101, "DG1-3 (diagnosis code) is required")
                .at("DG1", 3)
        })?;
    let onset = date_time(msg.field(dg1, 5).raw()).map_err(|()| {
        data_type(
            "DG1",
            5,
            "(diagnosis date/time) is not a valid HL7 date/time",
        )
    })?;
    let verification = match msg.field(dg1, 6).component(1).raw() {
        "F" => "confirmed",
        "A" | "W" => "provisional",
        _ => "",
    };
    let key = if coded.is_empty() {
        described.clone()
    } else {
        coded.raw().to_owned()
    };
    let mut c = Map::new();
    c.insert("resourceType".into(), json!("Condition"));
    let label = format!("hl7v2/condition|{scope}|{key}");
    c.insert("id".into(), json!(ids.stable_id(&label)));
    if !verification.is_empty() {
        c.insert(
            "verificationStatus".into(),
            json!({"coding": [{"system": "http://terminology.hl7.org/CodeSystem/condition-ver-status", "code": verification}]}),
        );
    }
    c.insert(
        "category".into(),
        json!([{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/condition-category", "code": "encounter-diagnosis"}]}]),
    );
    c.insert("code".into(), code);
    c.insert("subject".into(), subject.clone());
    put(&mut c, "onsetDateTime", json!(onset));
    Ok(Value::Object(c))
}

fn quantity(msg: &Message, obx: &Segment, value: Value) -> Value {
    let units = msg.field(obx, 6);
    let mut q = Map::new();
    q.insert("value".into(), value);
    let code = units.component(1).text();
    let display = units.component(2).text();
    put(
        &mut q,
        "unit",
        json!(if display.is_empty() {
            code.clone()
        } else {
            display
        }),
    );
    if let Some(system) = coding_system(&units.component(3).text()) {
        q.insert("system".into(), json!(system));
        put(&mut q, "code", json!(code));
    }
    Value::Object(q)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hl7_dates_become_fhir_dates_and_date_times() {
        assert_eq!(date("19880818"), Ok(Some("1988-08-18".into())));
        assert_eq!(date("198808181126+0215"), Ok(Some("1988-08-18".into())));
        assert_eq!(date("1988"), Ok(Some("1988".into())));
        assert_eq!(date(""), Ok(None));
        assert_eq!(date("19881318"), Err(()));
        assert_eq!(date("12"), Err(()));
        assert_eq!(
            date_time("198908181126+0215"),
            Ok(Some("1989-08-18T11:26:00+02:15".into()))
        );
        assert_eq!(
            date_time("20210817151943.4+0200"),
            Ok(Some("2021-08-17T15:19:43.4+02:00".into()))
        );
        // No zone: the time cannot be stated in FHIR without guessing one.
        assert_eq!(date_time("20290801070724"), Ok(Some("2029-08-01".into())));
        assert_eq!(date_time("202908012570+0100"), Err(()));
        for bad in [
            "2024-01-01",
            "20240101xyz",
            "20230231",
            "00000101",
            "20240101120000+9999",
            "202401011200.5",
            "20240101120000.12345",
            "2024010112+01",
        ] {
            assert_eq!(date_time(bad), Err(()), "{bad}");
        }
        assert_eq!(date("20240229"), Ok(Some("2024-02-29".into())));
        assert_eq!(date("21000229"), Err(()), "not a leap year");
        assert_eq!(
            date_time("202401011200-0500"),
            Ok(Some("2024-01-01T12:00:00-05:00".into()))
        );
    }

    #[test]
    fn numbers_keep_their_value() {
        assert_eq!(number("7.5"), Some(json!(7.5)));
        assert_eq!(number("+12"), Some(json!(12)));
        assert_eq!(number("-0.25"), Some(json!(-0.25)));
        assert_eq!(number(".5"), Some(json!(0.5)));
        // The sender's precision survives (serde_json keeps number literals).
        assert_eq!(
            number("7.50").map(|n| n.to_string()).as_deref(),
            Some("7.50")
        );
        assert_eq!(number("0.0").map(|n| n.to_string()).as_deref(), Some("0.0"));
        assert_eq!(number("abc"), None);
        assert_eq!(number("1e400"), None);
        assert_eq!(number(""), None);
    }
}
