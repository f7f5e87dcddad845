//! The search conformance table: queries over the Synthea corpus covering every parameter type,
//! prefix and modifier served, OR and AND, `_id`, `_lastUpdated`, compartments, includes, sorts,
//! `_summary`, `_total`, paging and lenient handling. Each query's expected result is computed
//! here, from the plaintext JSON the test sent, by predicates written for this table alone (no
//! code of the server's index or matcher is used). Run against `medledger dev` (`search.rs`)
//! and the distributed services (`distributed.rs`).

#![allow(dead_code, unreachable_pub, clippy::unwrap_used)]

use std::collections::{BTreeSet, HashMap};

use serde_json::{Value, json};
use time::format_description::well_known::Rfc3339;
use time::{Date, Month, OffsetDateTime};

/// A FHIR endpoint and a token that reaches every record the table uses.
pub struct Fhir {
    pub client: reqwest::Client,
    /// `http://host:port/fhir`.
    pub base: String,
    pub token: String,
}

impl Fhir {
    /// `GET base/path?query` (the query given as `k=v&…`, each value percent-encoded here).
    pub async fn get(&self, path: &str, query: &str) -> (u16, Value) {
        self.get_with(path, query, &[]).await
    }

    pub async fn get_with(
        &self,
        path: &str,
        query: &str,
        headers: &[(&str, &str)],
    ) -> (u16, Value) {
        let url = format!("{}/{}?{}", self.base, path, encode(query));
        self.fetch(&url, headers).await
    }

    async fn fetch(&self, url: &str, headers: &[(&str, &str)]) -> (u16, Value) {
        let mut rb = self.client.get(url).bearer_auth(&self.token);
        for (k, v) in headers {
            rb = rb.header(*k, *v);
        }
        let r = rb.send().await.unwrap();
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    /// Every match of a search, following `next` links; the first page's `total` with it.
    pub async fn all(&self, path: &str, query: &str) -> (Vec<Value>, Option<u64>, Vec<Value>) {
        let (status, mut page) = self.get(path, query).await;
        assert_eq!(status, 200, "{path}?{query}: {page}");
        let total = page["total"].as_u64();
        let mut matches = Vec::new();
        let mut included = Vec::new();
        loop {
            for e in page["entry"].as_array().into_iter().flatten() {
                match e["search"]["mode"].as_str() {
                    Some("match") => matches.push(e["resource"].clone()),
                    Some("include") => included.push(e["resource"].clone()),
                    _ => {}
                }
            }
            let Some(next) = link(&page, "next") else {
                break;
            };
            let (status, p) = self.fetch(&self.local(&next), &[]).await;
            assert_eq!(status, 200, "{next}: {p}");
            page = p;
        }
        (matches, total, included)
    }

    /// A link the server made (with the Host it was sent) as a URL of this endpoint.
    fn local(&self, url: &str) -> String {
        let path = url.split_once("/fhir").map_or(url, |(_, p)| p);
        format!("{}{}", self.base, path)
    }
}

fn link(page: &Value, relation: &str) -> Option<String> {
    page["link"]
        .as_array()?
        .iter()
        .find(|l| l["relation"] == relation)
        .and_then(|l| l["url"].as_str().map(str::to_owned))
}

fn encode(query: &str) -> String {
    let mut ser = form_urlencoded::Serializer::new(String::new());
    for kv in query.split('&').filter(|s| !s.is_empty()) {
        let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
        ser.append_pair(k, v);
    }
    ser.finish()
}

/// The corpus files the table is run on.
pub const FILES: &[&str] = &[
    "hospitalInformation1603148702656.json",
    "practitionerInformation1603148702656.json",
    "Bibi254_Schowalter414_475d72ca-91c7-7211-97e3-f000af33fc04.json",
    "Denisha680_Keeling57_6a93e0ad-9bd0-6d85-34a7-015186f7880a.json",
    "Les282_Bernier607_4f1ad84a-f8a2-2de6-343d-007efe781585.json",
    "Pablo44_Sporer811_ea2dd5fa-0e9e-4d5b-6384-13f67dc0c142.json",
    "Raymond398_Ziemann98_6aea0b29-c091-8809-bf10-f926c27e1bb7.json",
];

/// Posts the corpus as transactions; returns what is stored (references rewritten to the ids
/// the server gave, `id` set), in the order sent.
pub async fn load(f: &Fhir, corpus: &std::path::Path) -> Vec<Value> {
    let mut stored = Vec::new();
    for file in FILES {
        let path = corpus.join("fhir/synthea").join(file);
        let mut bundle: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        bundle["type"] = json!("transaction");
        let entries = bundle["entry"].as_array().unwrap().clone();
        let r = f
            .client
            .post(&f.base)
            .bearer_auth(&f.token)
            .header("content-type", "application/fhir+json")
            .body(serde_json::to_vec(&bundle).unwrap())
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        let body: Value = r.json().await.unwrap();
        assert_eq!(status, 200, "{file}: {body}");
        let mut ids = HashMap::new();
        for (sent, got) in entries.iter().zip(body["entry"].as_array().unwrap()) {
            let loc = got["response"]["location"].as_str().unwrap();
            let key = loc.split("/_history/").next().unwrap().to_owned();
            ids.insert(sent["fullUrl"].as_str().unwrap().to_owned(), key);
        }
        for e in entries {
            let key = &ids[e["fullUrl"].as_str().unwrap()];
            let mut r = e["resource"].clone();
            crate::support::rewrite(&mut r, &ids);
            r["id"] = json!(key.split('/').nth(1).unwrap());
            stored.push(r);
        }
    }
    stored
}

/// Every string and token value the index files for `stored`, of eight characters or more
/// (shorter ones, like `final`, occur by chance in random bytes), that is not an id or a
/// reference (those are plain by design: record ids, owners): what must not be found in clear
/// at rest.
pub fn searchable_values(stored: &[Value]) -> BTreeSet<String> {
    use medledger_search::extract::{Values, elements, values};
    let mut needles = BTreeSet::new();
    for r in stored {
        let rt = r["resourceType"].as_str().unwrap();
        for p in medledger_search::params_of(rt) {
            let vals: Vec<String> = match values(r, p) {
                Values::Tokens(t) => t.into_iter().map(|t| t.code).collect(),
                Values::Strings(s) => s,
                Values::Dates(_) => p
                    .paths
                    .iter()
                    .flat_map(|path| elements(r, path))
                    .filter_map(|v| v.as_str().map(str::to_owned))
                    .collect(),
                Values::References(_) => Vec::new(),
            };
            needles.extend(vals.into_iter().filter(|v| v.len() >= 8));
        }
    }
    let ids: std::collections::HashSet<&str> =
        stored.iter().filter_map(|r| r["id"].as_str()).collect();
    needles.retain(|n| !ids.contains(n.as_str()));
    needles
}

/// The first of `needles` found in `data`.
pub fn first_found<'a>(needles: &'a BTreeSet<String>, data: &[u8]) -> Option<&'a str> {
    needles
        .iter()
        .find(|n| memchr::memmem::find(data, n.as_bytes()).is_some())
        .map(String::as_str)
}

// ---- the table's own evaluator ----

/// The elements at a dotted path, arrays flattened.
fn at<'a>(r: &'a Value, path: &str) -> Vec<&'a Value> {
    let mut cur = vec![r];
    for step in path.split('.') {
        cur = cur
            .into_iter()
            .filter_map(|v| v.get(step))
            .flat_map(|v| match v {
                Value::Array(a) => a.iter().collect::<Vec<_>>(),
                other => vec![other],
            })
            .collect();
    }
    cur
}

/// (system, code) pairs of codes, Codings, CodeableConcepts, Identifiers, ContactPoints.
fn codes(r: &Value, path: &str) -> Vec<(Option<String>, String)> {
    let mut out = Vec::new();
    for v in at(r, path) {
        let one = |c: &Value| {
            let code = c
                .get("code")
                .or_else(|| c.get("value"))?
                .as_str()?
                .to_owned();
            Some((
                c.get("system").and_then(Value::as_str).map(str::to_owned),
                code,
            ))
        };
        match v {
            Value::String(s) => out.push((None, s.clone())),
            Value::Object(o) if o.contains_key("coding") => {
                out.extend(o["coding"].as_array().unwrap().iter().filter_map(one));
            }
            other => out.extend(one(other)),
        }
    }
    out
}

fn has_code(r: &Value, path: &str, system: Option<&str>, code: &str) -> bool {
    codes(r, path)
        .iter()
        .any(|(s, c)| c == code && system.is_none_or(|want| s.as_deref() == Some(want)))
}

fn has_system(r: &Value, path: &str, system: &str) -> bool {
    codes(r, path)
        .iter()
        .any(|(s, _)| s.as_deref() == Some(system))
}

fn refers(r: &Value, path: &str, target: &str) -> bool {
    at(r, path)
        .iter()
        .any(|v| v["reference"].as_str() == Some(target))
}

fn texts(r: &Value, paths: &[&str]) -> Vec<String> {
    paths
        .iter()
        .flat_map(|p| at(r, p))
        .filter_map(|v| v.as_str().map(str::to_owned))
        .collect()
}

fn starts(r: &Value, paths: &[&str], prefix: &str) -> bool {
    texts(r, paths)
        .iter()
        .any(|t| t.to_lowercase().starts_with(&prefix.to_lowercase()))
}

fn contains(r: &Value, paths: &[&str], needle: &str) -> bool {
    texts(r, paths)
        .iter()
        .any(|t| t.to_lowercase().contains(&needle.to_lowercase()))
}

/// Every `Type/id` reference in `v`.
fn references_in(v: &Value, out: &mut BTreeSet<String>) {
    match v {
        Value::Object(o) => {
            for (k, x) in o {
                match (k.as_str(), x.as_str()) {
                    ("reference", Some(r)) if r.contains('/') => {
                        out.insert(r.to_owned());
                    }
                    _ => references_in(x, out),
                }
            }
        }
        Value::Array(a) => a.iter().for_each(|x| references_in(x, out)),
        _ => {}
    }
}

/// First and last millisecond of a FHIR date, dateTime or instant.
fn span(s: &str) -> (i64, i64) {
    let ms = |t: OffsetDateTime| (t.unix_timestamp_nanos() / 1_000_000) as i64;
    let day =
        |y: i32, m: u8, d: u8| Date::from_calendar_date(y, Month::try_from(m).unwrap(), d).unwrap();
    match s.len() {
        4 => {
            let y: i32 = s.parse().unwrap();
            (
                ms(day(y, 1, 1).midnight().assume_utc()),
                ms(day(y + 1, 1, 1).midnight().assume_utc()) - 1,
            )
        }
        7 => {
            let y: i32 = s[..4].parse().unwrap();
            let m: u8 = s[5..].parse().unwrap();
            let (ny, nm) = if m == 12 { (y + 1, 1) } else { (y, m + 1) };
            (
                ms(day(y, m, 1).midnight().assume_utc()),
                ms(day(ny, nm, 1).midnight().assume_utc()) - 1,
            )
        }
        10 => {
            let d = day(
                s[..4].parse().unwrap(),
                s[5..7].parse().unwrap(),
                s[8..].parse().unwrap(),
            );
            let start = ms(d.midnight().assume_utc());
            (start, start + 86_400_000 - 1)
        }
        _ => {
            let t = OffsetDateTime::parse(s, &Rfc3339).unwrap();
            let start = ms(t);
            // Seconds precision unless a fraction is written.
            let width = if s.contains('.') { 1 } else { 1000 };
            (start, start + width - 1)
        }
    }
}

/// The ranges of date elements (Periods: start to end, open where absent).
fn ranges(r: &Value, paths: &[&str]) -> Vec<(i64, i64)> {
    let mut out = Vec::new();
    for p in paths {
        for v in at(r, p) {
            match v {
                Value::String(s) => out.push(span(s)),
                Value::Object(o) => out.push((
                    o.get("start")
                        .and_then(Value::as_str)
                        .map_or(i64::MIN, |s| span(s).0),
                    o.get("end")
                        .and_then(Value::as_str)
                        .map_or(i64::MAX, |s| span(s).1),
                )),
                _ => {}
            }
        }
    }
    out
}

/// The R4 prefix semantics, written from the specification's table.
fn date_is(r: &Value, paths: &[&str], query: &str) -> bool {
    let (prefix, value) = match &query[..2] {
        p @ ("eq" | "ne" | "gt" | "lt" | "ge" | "le" | "sa" | "eb" | "ap") => (p, &query[2..]),
        _ => ("eq", query),
    };
    let (qs, qe) = span(value);
    ranges(r, paths).iter().any(|&(s, e)| {
        let inside = s >= qs && e <= qe;
        match prefix {
            "eq" => inside,
            "ne" => !inside,
            "gt" => e > qe,
            "lt" => s < qs,
            "ge" => e > qe || inside,
            "le" => s < qs || inside,
            "sa" => s > qe,
            "eb" => e < qs,
            _ => {
                let now = (OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000) as i64;
                let slack = ((now - qs).abs().max((now - qe).abs()) / 10).max(86_400_000);
                s <= qe + slack && e >= qs - slack
            }
        }
    })
}

type Pred = Box<dyn Fn(&Value) -> bool>;

struct Case {
    path: String,
    query: String,
    /// The type whose stored resources the predicate selects among.
    rt: &'static str,
    want: Pred,
}

fn case(
    rt: &'static str,
    query: impl Into<String>,
    want: impl Fn(&Value) -> bool + 'static,
) -> Case {
    Case {
        path: rt.to_owned(),
        query: query.into(),
        rt,
        want: Box::new(want),
    }
}

fn id_of(r: &Value) -> String {
    r["id"].as_str().unwrap().to_owned()
}

/// Runs the table against `f` over `stored` (from [`load`]); returns how many queries it
/// checked. `since` is an instant before the corpus was loaded.
pub async fn run(f: &Fhir, stored: &[Value], since: &str) -> usize {
    let of = |rt: &str| {
        stored
            .iter()
            .filter(|r| r["resourceType"] == rt)
            .collect::<Vec<_>>()
    };
    let mut patients = of("Patient");
    patients.sort_by_key(|p| p["name"][0]["family"].as_str().unwrap().to_owned());
    // Bernier607, Keeling57, Schowalter414, Sporer811, Ziemann98.
    let pid: Vec<String> = patients.iter().map(|p| id_of(p)).collect();
    let pref = |i: usize| format!("Patient/{}", pid[i]);
    let bibi = patients[2];
    let mrn = bibi["identifier"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["system"] == "http://hospital.smarthealthit.org")
        .unwrap()["value"]
        .as_str()
        .unwrap()
        .to_owned();
    let ssn = bibi["identifier"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["system"] == "http://hl7.org/fhir/sid/us-ssn")
        .unwrap()["value"]
        .as_str()
        .unwrap()
        .to_owned();
    // An encounter of this patient that has observations.
    let enc = of("Encounter")
        .into_iter()
        .find(|e| {
            let r = format!("Encounter/{}", id_of(e));
            refers(e, "subject", &pref(2))
                && of("Observation").iter().any(|o| refers(o, "encounter", &r))
        })
        .unwrap()
        .clone();
    let enc_ref = format!("Encounter/{}", id_of(&enc));
    let performer = enc["participant"][0]["individual"]["reference"]
        .as_str()
        .unwrap()
        .to_owned();
    let provider = enc["serviceProvider"]["reference"]
        .as_str()
        .unwrap()
        .to_owned();

    let p = |i: usize| pref(i);
    let mut cases: Vec<Case> = vec![
        // Patient: tokens, strings, dates, contact points, identifiers.
        case("Patient", "gender=male", |r| {
            has_code(r, "gender", None, "male")
        }),
        case("Patient", "gender=female,male", |r| {
            r["gender"] == "female" || r["gender"] == "male"
        }),
        case("Patient", "gender:not=male", |r| {
            !has_code(r, "gender", None, "male")
        }),
        case("Patient", "family=Schow", |r| {
            starts(r, &["name.family"], "schow")
        }),
        case("Patient", "family=schowalter414", |r| {
            starts(r, &["name.family"], "schowalter414")
        }),
        case("Patient", "family:exact=Schowalter414", |r| {
            texts(r, &["name.family"]).contains(&"Schowalter414".to_owned())
        }),
        case("Patient", "family:exact=schowalter414", |r| {
            texts(r, &["name.family"]).contains(&"schowalter414".to_owned())
        }),
        case("Patient", "family:contains=walt", |r| {
            contains(r, &["name.family"], "walt")
        }),
        case("Patient", "family:contains=er", |r| {
            contains(r, &["name.family"], "er")
        }),
        case("Patient", "given=Bibi", |r| {
            starts(r, &["name.given"], "bibi")
        }),
        case("Patient", "name=Sporer", |r| {
            starts(r, &["name.family", "name.given", "name.prefix"], "sporer")
        }),
        case("Patient", "name=pablo", |r| {
            starts(r, &["name.family", "name.given"], "pablo")
        }),
        case("Patient", "name=ze,ke", |r| {
            starts(r, &["name.family", "name.given"], "ze")
                || starts(r, &["name.family", "name.given"], "ke")
        }),
        case("Patient", "birthdate=2009-04-29", |r| {
            date_is(r, &["birthDate"], "2009-04-29")
        }),
        case("Patient", "birthdate=2010", |r| {
            date_is(r, &["birthDate"], "2010")
        }),
        case("Patient", "birthdate=ge2011-01-01", |r| {
            date_is(r, &["birthDate"], "ge2011-01-01")
        }),
        case("Patient", "birthdate=lt2011", |r| {
            date_is(r, &["birthDate"], "lt2011")
        }),
        case("Patient", "birthdate=gt2015-10-20", |r| {
            date_is(r, &["birthDate"], "gt2015-10-20")
        }),
        case("Patient", "birthdate=le2015-10-20", |r| {
            date_is(r, &["birthDate"], "le2015-10-20")
        }),
        case("Patient", "birthdate=ne2015-10-20", |r| {
            date_is(r, &["birthDate"], "ne2015-10-20")
        }),
        case("Patient", "birthdate=sa2011-12-12", |r| {
            date_is(r, &["birthDate"], "sa2011-12-12")
        }),
        case("Patient", "birthdate=eb2010-05-01", |r| {
            date_is(r, &["birthDate"], "eb2010-05-01")
        }),
        case("Patient", "birthdate=ap2011-12-12", |r| {
            date_is(r, &["birthDate"], "ap2011-12-12")
        }),
        case("Patient", "birthdate=ge2010&birthdate=lt2016", |r| {
            date_is(r, &["birthDate"], "ge2010") && date_is(r, &["birthDate"], "lt2016")
        }),
        case("Patient", "birthdate=2009,2017", |r| {
            date_is(r, &["birthDate"], "2009") || date_is(r, &["birthDate"], "2017")
        }),
        case("Patient", "phone=555-259-9533", |r| {
            has_code(r, "telecom", Some("phone"), "555-259-9533")
        }),
        case("Patient", "telecom=555-446-1996", |r| {
            has_code(r, "telecom", None, "555-446-1996")
        }),
        case("Patient", "telecom=phone|555-446-1996", |r| {
            has_code(r, "telecom", Some("phone"), "555-446-1996")
        }),
        case(
            "Patient",
            format!("identifier=http://hospital.smarthealthit.org|{mrn}"),
            {
                let mrn = mrn.clone();
                move |r| {
                    has_code(
                        r,
                        "identifier",
                        Some("http://hospital.smarthealthit.org"),
                        &mrn,
                    )
                }
            },
        ),
        case("Patient", format!("identifier={ssn}"), {
            let ssn = ssn.clone();
            move |r| has_code(r, "identifier", None, &ssn)
        }),
        case(
            "Patient",
            "identifier=http://hl7.org/fhir/sid/us-ssn|",
            |r| has_system(r, "identifier", "http://hl7.org/fhir/sid/us-ssn"),
        ),
        case("Patient", "address-postalcode=015", |r| {
            starts(r, &["address.postalCode"], "015")
        }),
        case("Patient", "address-city=north", |r| {
            starts(r, &["address.city"], "north")
        }),
        case("Patient", format!("_id={}", pid[0]), {
            let id = pid[0].clone();
            move |r| id_of(r) == id
        }),
        case("Patient", format!("_id={},{}", pid[0], pid[3]), {
            let ids = [pid[0].clone(), pid[3].clone()];
            move |r| ids.contains(&id_of(r))
        }),
        case("Patient", "email:missing=true", |r| {
            !at(r, "telecom").iter().any(|t| t["system"] == "email")
        }),
        case("Patient", "phone:missing=false", |r| {
            at(r, "telecom").iter().any(|t| t["system"] == "phone")
        }),
        case("Patient", "gender=male&name=s", |r| {
            r["gender"] == "male" && starts(r, &["name.family", "name.given"], "s")
        }),
        // Directory types.
        case("Practitioner", "name=Dr", |r| {
            starts(r, &["name.prefix", "name.family", "name.given"], "dr")
        }),
        case("Practitioner", "family=Cormier", |r| {
            starts(r, &["name.family"], "cormier")
        }),
        case("Practitioner", "given=ger", |r| {
            starts(r, &["name.given"], "ger")
        }),
        case("Practitioner", "name:contains=ther", |r| {
            contains(r, &["name.family", "name.given", "name.prefix"], "ther")
        }),
        case(
            "Practitioner",
            "identifier=http://hl7.org/fhir/sid/us-npi|",
            |r| has_system(r, "identifier", "http://hl7.org/fhir/sid/us-npi"),
        ),
        case("Organization", "name=sturdy", |r| {
            starts(r, &["name", "alias"], "sturdy")
        }),
        case("Organization", "name:contains=hospital", |r| {
            contains(r, &["name", "alias"], "hospital")
        }),
        case("Organization", "name:contains=al h", |r| {
            contains(r, &["name", "alias"], "al h")
        }),
        case("Organization", "name:exact=CAPE COD HOSPITAL", |r| {
            texts(r, &["name", "alias"]).contains(&"CAPE COD HOSPITAL".to_owned())
        }),
        case(
            "Organization",
            "identifier=https://github.com/synthetichealth/synthea|",
            |r| {
                has_system(
                    r,
                    "identifier",
                    "https://github.com/synthetichealth/synthea",
                )
            },
        ),
        case("Organization", "name=pcp", |r| {
            starts(r, &["name", "alias"], "pcp")
        }),
        // Observation: codes, categories, references, dates.
        case("Observation", "code=8310-5", |r| {
            has_code(r, "code", None, "8310-5")
        }),
        case("Observation", "code=http://loinc.org|8310-5", |r| {
            has_code(r, "code", Some("http://loinc.org"), "8310-5")
        }),
        case("Observation", "code=|8310-5", |r| {
            codes(r, "code")
                .iter()
                .any(|(s, c)| s.is_none() && c == "8310-5")
        }),
        case("Observation", "code=http://loinc.org|", |r| {
            has_system(r, "code", "http://loinc.org")
        }),
        case("Observation", "code=8310-5,8867-4", |r| {
            has_code(r, "code", None, "8310-5") || has_code(r, "code", None, "8867-4")
        }),
        case("Observation", "code=8310-5&code=8331-1", |r| {
            has_code(r, "code", None, "8310-5") && has_code(r, "code", None, "8331-1")
        }),
        case("Observation", "category=laboratory", |r| {
            has_code(r, "category", None, "laboratory")
        }),
        case("Observation", "category=vital-signs&code=8867-4", |r| {
            has_code(r, "category", None, "vital-signs") && has_code(r, "code", None, "8867-4")
        }),
        case("Observation", "status=final", |r| r["status"] == "final"),
        case("Observation", "status:not=final", |r| {
            r["status"] != "final"
        }),
        case("Observation", "code:not=8310-5", |r| {
            !has_code(r, "code", None, "8310-5")
        }),
        case("Observation", format!("patient={}", pid[2]), {
            let t = p(2);
            move |r| refers(r, "subject", &t)
        }),
        case("Observation", format!("patient={}", p(2)), {
            let t = p(2);
            move |r| refers(r, "subject", &t)
        }),
        case("Observation", format!("subject={}", p(3)), {
            let t = p(3);
            move |r| refers(r, "subject", &t)
        }),
        case("Observation", format!("subject:Patient={}", pid[3]), {
            let t = p(3);
            move |r| refers(r, "subject", &t)
        }),
        case("Observation", format!("patient={},{}", pid[0], pid[1]), {
            let (a, b) = (p(0), p(1));
            move |r| refers(r, "subject", &a) || refers(r, "subject", &b)
        }),
        case(
            "Observation",
            format!("patient={}&category=laboratory", pid[2]),
            {
                let t = p(2);
                move |r| refers(r, "subject", &t) && has_code(r, "category", None, "laboratory")
            },
        ),
        // Instants are compared in UTC: 2020-03-06T20:20:23-08:00 is on the 7th.
        case("Observation", "date=2020-03-07", |r| {
            date_is(r, &["effectiveDateTime", "effectivePeriod"], "2020-03-07")
        }),
        case("Observation", "date=2020-03-06", |r| {
            date_is(r, &["effectiveDateTime", "effectivePeriod"], "2020-03-06")
        }),
        case("Observation", "date=ge2020-03-07", |r| {
            date_is(r, &["effectiveDateTime", "effectivePeriod"], "ge2020-03-07")
        }),
        case("Observation", "date=lt2020-03-06", |r| {
            date_is(r, &["effectiveDateTime", "effectivePeriod"], "lt2020-03-06")
        }),
        case("Observation", "date=2020-03", |r| {
            date_is(r, &["effectiveDateTime", "effectivePeriod"], "2020-03")
        }),
        case("Observation", "date=ge2020-03-06&date=le2020-03-07", |r| {
            date_is(r, &["effectiveDateTime"], "ge2020-03-06")
                && date_is(r, &["effectiveDateTime"], "le2020-03-07")
        }),
        case("Observation", "date=ap2020-03-06", |r| {
            date_is(r, &["effectiveDateTime"], "ap2020-03-06")
        }),
        case("Observation", "date=gt2020-03-07T04:20:23Z", |r| {
            date_is(r, &["effectiveDateTime"], "gt2020-03-07T04:20:23Z")
        }),
        case(
            "Observation",
            "date=sa2020-03-08&category=laboratory",
            |r| {
                date_is(r, &["effectiveDateTime"], "sa2020-03-08")
                    && has_code(r, "category", None, "laboratory")
            },
        ),
        case("Observation", format!("encounter={enc_ref}"), {
            let t = enc_ref.clone();
            move |r| refers(r, "encounter", &t)
        }),
        case("Observation", "value-concept:missing=false", |r| {
            r.get("valueCodeableConcept").is_some()
        }),
        case("Observation", "code:missing=true", |r| {
            r.get("code").is_none()
        }),
        // Required elements are answered without a tag (search/params.rs REQUIRED).
        case("Observation", "status:missing=false", |r| {
            r.get("status").is_some()
        }),
        case("Encounter", "class:missing=true", |r| {
            r.get("class").is_none()
        }),
        case("Condition", "patient:missing=false", |r| {
            r["subject"]["reference"]
                .as_str()
                .is_some_and(|s| s.contains("Patient/"))
        }),
        case("Observation", format!("_lastUpdated=gt{since}"), |_| true),
        case("Observation", format!("_lastUpdated=lt{since}"), |_| false),
        // Condition, Encounter, Immunization, financial and care types.
        case("Condition", "code=http://snomed.info/sct|840544004", |r| {
            has_code(r, "code", Some("http://snomed.info/sct"), "840544004")
        }),
        case("Condition", "clinical-status=resolved", |r| {
            has_code(r, "clinicalStatus", None, "resolved")
        }),
        case("Condition", "onset-date=lt2020", |r| {
            date_is(r, &["onsetDateTime", "onsetPeriod"], "lt2020")
        }),
        case("Condition", "onset-date=gt2020-03-07T18:00:00Z", |r| {
            date_is(
                r,
                &["onsetDateTime", "onsetPeriod"],
                "gt2020-03-07T18:00:00Z",
            )
        }),
        case(
            "Condition",
            format!("patient={}&clinical-status=resolved", pid[1]),
            {
                let t = p(1);
                move |r| refers(r, "subject", &t) && has_code(r, "clinicalStatus", None, "resolved")
            },
        ),
        case("Encounter", "class=AMB", |r| {
            has_code(r, "class", None, "AMB")
        }),
        case("Encounter", "type=http://snomed.info/sct|185345009", |r| {
            has_code(r, "type", Some("http://snomed.info/sct"), "185345009")
        }),
        case("Encounter", "date=2020-03-07", |r| {
            date_is(r, &["period"], "2020-03-07")
        }),
        case("Encounter", "date=gt2020-03-06", |r| {
            date_is(r, &["period"], "gt2020-03-06")
        }),
        case("Encounter", "date=le2012", |r| {
            date_is(r, &["period"], "le2012")
        }),
        case("Encounter", format!("subject={}", p(4)), {
            let t = p(4);
            move |r| refers(r, "subject", &t)
        }),
        case(
            "Encounter",
            format!("status=finished&patient={}", pid[4]),
            {
                let t = p(4);
                move |r| r["status"] == "finished" && refers(r, "subject", &t)
            },
        ),
        case("Encounter", format!("participant={performer}"), {
            let t = performer.clone();
            move |r| refers(r, "participant.individual", &t)
        }),
        case("Encounter", format!("service-provider={provider}"), {
            let t = provider.clone();
            move |r| refers(r, "serviceProvider", &t)
        }),
        case("Immunization", "vaccine-code=140", |r| {
            has_code(r, "vaccineCode", None, "140")
        }),
        case(
            "Immunization",
            "vaccine-code=http://hl7.org/fhir/sid/cvx|08,http://hl7.org/fhir/sid/cvx|49",
            |r| {
                has_code(r, "vaccineCode", Some("http://hl7.org/fhir/sid/cvx"), "08")
                    || has_code(r, "vaccineCode", Some("http://hl7.org/fhir/sid/cvx"), "49")
            },
        ),
        case("Immunization", "date=lt2012", |r| {
            date_is(r, &["occurrenceDateTime"], "lt2012")
        }),
        case("Immunization", format!("patient={}&date=ge2015", pid[2]), {
            let t = p(2);
            move |r| refers(r, "patient", &t) && date_is(r, &["occurrenceDateTime"], "ge2015")
        }),
        case("Claim", format!("use=claim&patient={}", pid[3]), {
            let t = p(3);
            move |r| r["use"] == "claim" && refers(r, "patient", &t)
        }),
        case("Claim", "created=ge2020", |r| {
            date_is(r, &["created"], "ge2020")
        }),
        case("ExplanationOfBenefit", format!("patient={}", p(1)), {
            let t = p(1);
            move |r| refers(r, "patient", &t)
        }),
        case(
            "ExplanationOfBenefit",
            "status=active&created=lt2015",
            |r| r["status"] == "active" && date_is(r, &["created"], "lt2015"),
        ),
        case("CarePlan", "status=completed&date=ge2020-03-07", |r| {
            r["status"] == "completed" && date_is(r, &["period"], "ge2020-03-07")
        }),
        case("CarePlan", "category=736376001", |r| {
            has_code(r, "category", None, "736376001")
        }),
        case("DiagnosticReport", "category=LAB&code=92143-7", |r| {
            has_code(r, "category", None, "LAB") && has_code(r, "code", None, "92143-7")
        }),
        case("DiagnosticReport", "date=2020-03", |r| {
            date_is(r, &["effectiveDateTime", "effectivePeriod"], "2020-03")
        }),
        case("Procedure", format!("code=261352009&patient={}", pid[2]), {
            let t = p(2);
            move |r| has_code(r, "code", None, "261352009") && refers(r, "subject", &t)
        }),
        case("CareTeam", "status=inactive", |r| r["status"] == "inactive"),
    ];
    // Patient compartments: the type's records of that patient, with the query's own filter.
    let compartment: Vec<(usize, &'static str, &str, Pred)> = vec![
        (
            2,
            "Observation",
            "category=laboratory",
            Box::new(|r| has_code(r, "category", None, "laboratory")),
        ),
        (2, "Encounter", "", Box::new(|_| true)),
        (
            0,
            "Condition",
            "clinical-status=resolved",
            Box::new(|r| has_code(r, "clinicalStatus", None, "resolved")),
        ),
        (3, "Claim", "", Box::new(|_| true)),
    ];
    for (i, rt, q, filter) in compartment {
        let t = p(i);
        cases.push(Case {
            path: format!("Patient/{}/{rt}", pid[i]),
            query: q.to_owned(),
            rt,
            want: Box::new(move |r| {
                ["subject", "patient"]
                    .iter()
                    .any(|path| refers(r, path, &t))
                    && filter(r)
            }),
        });
    }

    let mut checked = 0;
    for c in &cases {
        let expected: BTreeSet<String> = of(c.rt)
            .into_iter()
            .filter(|r| (c.want)(r))
            .map(id_of)
            .collect();
        let query = if c.query.is_empty() {
            "_count=40".to_owned()
        } else {
            format!("{}&_count=40", c.query)
        };
        let (got, total, _) = f.all(&c.path, &query).await;
        let got_ids: BTreeSet<String> = got.iter().map(id_of).collect();
        assert_eq!(
            got.len(),
            got_ids.len(),
            "{}?{}: a match repeated across pages",
            c.path,
            c.query
        );
        assert_eq!(got_ids, expected, "{}?{}", c.path, c.query);
        assert_eq!(
            total,
            Some(expected.len() as u64),
            "{}?{}: total",
            c.path,
            c.query
        );
        checked += 1;
    }

    // Includes and reverse includes.
    let (m, _, inc) = f
        .all(
            "Observation",
            &format!("patient={}&_include=Observation:patient", pid[2]),
        )
        .await;
    assert!(!m.is_empty());
    assert_eq!(
        inc.iter().map(id_of).collect::<Vec<_>>(),
        vec![pid[2].clone()],
        "_include"
    );
    checked += 1;
    let (m, _, inc) = f
        .all(
            "Patient",
            &format!("_id={}&_revinclude=Encounter:subject", pid[2]),
        )
        .await;
    assert_eq!(m.len(), 1);
    let want: BTreeSet<String> = of("Encounter")
        .into_iter()
        .filter(|e| refers(e, "subject", &p(2)))
        .map(id_of)
        .collect();
    assert_eq!(
        inc.iter().map(id_of).collect::<BTreeSet<_>>(),
        want,
        "_revinclude"
    );
    checked += 1;
    let (m, _, inc) = f.all("Encounter", &format!("patient={}&_include=Encounter:participant:Practitioner&_include=Encounter:service-provider", pid[2])).await;
    let want: BTreeSet<String> = m
        .iter()
        .flat_map(|e| {
            let mut v: Vec<String> = at(e, "participant.individual")
                .iter()
                .filter_map(|r| r["reference"].as_str())
                .map(str::to_owned)
                .collect();
            v.extend(
                e["serviceProvider"]["reference"]
                    .as_str()
                    .map(str::to_owned),
            );
            v
        })
        .map(|r| r.split('/').nth(1).unwrap().to_owned())
        .collect();
    assert_eq!(
        inc.iter().map(id_of).collect::<BTreeSet<_>>(),
        want,
        "_include of practitioners and organizations"
    );
    checked += 1;

    // Sorts: by birth date both ways, by an instant of the version, by a clinical date.
    let births = |ps: &[Value]| {
        ps.iter()
            .map(|p| p["birthDate"].as_str().unwrap().to_owned())
            .collect::<Vec<_>>()
    };
    let (m, _, _) = f.all("Patient", "_sort=birthdate&_count=2").await;
    let mut want = births(&patients.iter().map(|p| (*p).clone()).collect::<Vec<_>>());
    want.sort();
    assert_eq!(births(&m), want, "_sort=birthdate, paged by two");
    let (m, _, _) = f.all("Patient", "_sort=-birthdate").await;
    want.reverse();
    assert_eq!(births(&m), want, "_sort=-birthdate");
    checked += 2;
    let (m, _, _) = f
        .all(
            "Observation",
            &format!("patient={}&_sort=-date&_count=5", pid[2]),
        )
        .await;
    let starts_of: Vec<i64> = m
        .iter()
        .map(|o| span(o["effectiveDateTime"].as_str().unwrap()).0)
        .collect();
    assert!(starts_of.windows(2).all(|w| w[0] >= w[1]), "_sort=-date");
    assert_eq!(
        m.len(),
        of("Observation")
            .iter()
            .filter(|o| refers(o, "subject", &p(2)))
            .count()
    );
    checked += 1;
    let (status, page) = f.get("Patient", "_sort=-_lastUpdated&_count=1").await;
    assert_eq!(status, 200);
    // The last Patient written is the most recently updated.
    let newest = stored
        .iter()
        .rev()
        .find(|r| r["resourceType"] == "Patient")
        .unwrap();
    assert_eq!(
        page["entry"][0]["resource"]["id"], newest["id"],
        "_sort=-_lastUpdated"
    );
    checked += 1;

    // _summary=count, _total=none, _elements.
    let (status, page) = f.get("Observation", "_summary=count").await;
    assert_eq!(
        (status, page["total"].as_u64()),
        (200, Some(of("Observation").len() as u64))
    );
    assert!(
        page["entry"].as_array().is_none_or(|e| e.is_empty()),
        "{page}"
    );
    let (_, page) = f.get("Observation", "_total=none&_count=2").await;
    assert!(page.get("total").is_none());
    assert_eq!(page["entry"].as_array().unwrap().len(), 2);
    let (_, page) = f
        .get("Patient", &format!("_id={}&_elements=gender", pid[2]))
        .await;
    let r = &page["entry"][0]["resource"];
    assert_eq!(
        (r["gender"].as_str(), r.get("name")),
        (Some("female"), None)
    );
    checked += 3;

    // Paging forwards and back: every match once, `previous` leading to the page before.
    let (status, first) = f.get("Immunization", "_count=7").await;
    assert_eq!(status, 200);
    let second_url = link(&first, "next").unwrap();
    let (_, second) = f.fetch(&f.local(&second_url), &[]).await;
    let back = link(&second, "previous").unwrap();
    let (_, again) = f.fetch(&f.local(&back), &[]).await;
    let ids = |p: &Value| {
        p["entry"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| id_of(&e["resource"]))
            .collect::<Vec<_>>()
    };
    assert_eq!(
        ids(&again),
        ids(&first),
        "previous of the second page is the first"
    );
    checked += 1;

    // Unknown parameters: refused, or ignored and named when lenient.
    let (status, body) = f.get("Patient", "nickname=x").await;
    assert_eq!(
        (status, body["resourceType"].as_str()),
        (400, Some("OperationOutcome")),
        "{body}"
    );
    let (status, body) = f
        .get_with(
            "Patient",
            "nickname=x&gender=male",
            &[("prefer", "handling=lenient")],
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let outcome = body["entry"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["search"]["mode"] == "outcome")
        .unwrap();
    assert!(
        outcome["resource"]["issue"][0]["diagnostics"]
            .as_str()
            .unwrap()
            .contains("nickname")
    );
    assert_eq!(
        body["total"],
        of("Patient")
            .iter()
            .filter(|r| r["gender"] == "male")
            .count()
    );
    let (status, _) = f.get("Patient", "birthdate=yesterday").await;
    assert_eq!(status, 400);
    let (status, _) = f.get("Observation", "patient=Encounter/x").await;
    assert_eq!(status, 400);
    checked += 4;

    // $everything: exactly the patient's compartment, and the directory records it refers to.
    for (i, patient) in patients.iter().enumerate() {
        let me = p(i);
        let compartment: Vec<&Value> = stored
            .iter()
            .filter(|r| {
                r["id"] == patient["id"] && r["resourceType"] == "Patient"
                    || ["subject", "patient"]
                        .iter()
                        .any(|path| refers(r, path, &me))
            })
            .collect();
        let mut want: BTreeSet<String> = compartment
            .iter()
            .map(|r| format!("{}/{}", r["resourceType"].as_str().unwrap(), id_of(r)))
            .collect();
        let mut referenced = BTreeSet::new();
        for r in &compartment {
            references_in(r, &mut referenced);
        }
        want.extend(referenced.into_iter().filter(|r| {
            ["Practitioner", "Organization", "Location", "Medication"]
                .contains(&r.split('/').next().unwrap())
        }));
        let (m, _, inc) = f
            .all(&format!("Patient/{}/$everything", pid[i]), "_count=30")
            .await;
        let got: BTreeSet<String> = m
            .iter()
            .chain(&inc)
            .map(|r| format!("{}/{}", r["resourceType"].as_str().unwrap(), id_of(r)))
            .collect();
        // Matches never repeat; a referenced record may be included again on a later page.
        let matched: BTreeSet<&str> = m.iter().filter_map(|r| r["id"].as_str()).collect();
        assert_eq!(matched.len(), m.len(), "$everything repeated a record");
        assert_eq!(got, want, "$everything of {}", pid[i]);
        checked += 1;
    }
    let (m, _, _) = f
        .all(
            &format!("Patient/{}/$everything", pid[2]),
            "_type=Observation,Condition",
        )
        .await;
    assert!(
        m.iter()
            .all(|r| r["resourceType"] == "Observation" || r["resourceType"] == "Condition")
    );
    assert_eq!(
        m.len(),
        stored
            .iter()
            .filter(
                |r| (r["resourceType"] == "Observation" || r["resourceType"] == "Condition")
                    && refers(r, "subject", &p(2))
            )
            .count()
    );
    checked += 1;

    // POST _search: the parameters in a form body.
    let r = f
        .client
        .post(format!("{}/Patient/_search", f.base))
        .bearer_auth(&f.token)
        .header("content-type", "application/x-www-form-urlencoded")
        .body("family=Schow")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["total"], 1);
    assert_eq!(
        body["entry"][0]["resource"]["id"].as_str(),
        Some(pid[2].as_str())
    );
    checked += 1;
    checked
}
