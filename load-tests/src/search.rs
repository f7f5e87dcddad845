//! Search mode: builds a store of cloned Synthea patients (each round posts every patient
//! bundle again under new identities: MRN, SSN, names and phone suffixed with the round), then
//! times the searches of docs/performance.md one after another: a token search returning one
//! patient, a token search returning one patient's laboratory results, a date range within one
//! patient's Observations, a family-name prefix shared by every clone of a patient, and
//! `$everything` of one patient.

use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use hdrhistogram::Histogram;
use serde_json::{Value, json};

use crate::{Args, post_bundle, read_bundles};

/// `bundle` with its Patient under identity `round`: identifiers, names and telecom suffixed.
fn clone_as(bundle: &Value, round: usize) -> Value {
    let mut b = bundle.clone();
    for e in b["entry"].as_array_mut().into_iter().flatten() {
        let r = &mut e["resource"];
        if r["resourceType"] != "Patient" {
            continue;
        }
        for i in r["identifier"].as_array_mut().into_iter().flatten() {
            if let Some(v) = i["value"].as_str() {
                i["value"] = json!(format!("{v}-r{round}"));
            }
        }
        for n in r["name"].as_array_mut().into_iter().flatten() {
            if let Some(f) = n["family"].as_str() {
                n["family"] = json!(format!("{f}r{round}"));
            }
        }
        for t in r["telecom"].as_array_mut().into_iter().flatten() {
            if let Some(v) = t["value"].as_str() {
                t["value"] = json!(format!("{v}-{round}"));
            }
        }
    }
    b
}

pub(crate) async fn run(client: &reqwest::Client, args: &Args) -> anyhow::Result<()> {
    let dir = args
        .bundles
        .as_ref()
        .context("--bundles is required in search mode")?;
    let (shared, patients) = read_bundles(dir)?;
    for b in &shared {
        post_bundle(client, args, b).await?;
    }
    let work: Vec<Value> = (0..args.rounds)
        .flat_map(|r| patients.iter().map(move |b| clone_as(b, r)))
        .collect();
    let resources: usize = work
        .iter()
        .map(|b| b["entry"].as_array().map_or(0, Vec::len))
        .sum();
    let started = Instant::now();
    let results: Vec<anyhow::Result<Vec<String>>> =
        futures::StreamExt::collect(futures::StreamExt::buffer_unordered(
            futures::stream::iter(work.iter().map(|b| post_bundle(client, args, b))),
            args.concurrency,
        ))
        .await;
    let mut locations = Vec::new();
    for r in results {
        locations.extend(r?);
    }
    let load_secs = started.elapsed().as_secs_f64();
    println!(
        "store:              {} resources in {} cloned patients, loaded in {load_secs:.1} s ({:.0} resources/s, concurrency {})",
        resources,
        work.len(),
        resources as f64 / load_secs,
        args.concurrency
    );

    // The subjects of the timed searches: the first patient bundle's patient, clone `mid`.
    let mid = args.rounds / 2;
    let first = clone_as(&patients[0], mid);
    let patient = first["entry"]
        .as_array()
        .and_then(|e| {
            e.iter()
                .find(|x| x["resource"]["resourceType"] == "Patient")
        })
        .map(|x| x["resource"].clone())
        .context("no Patient in the first bundle")?;
    let mrn = patient["identifier"]
        .as_array()
        .and_then(|ids| {
            ids.iter()
                .find(|i| i["system"] == "http://hospital.smarthealthit.org")
        })
        .and_then(|i| i["value"].as_str())
        .context("no MRN")?
        .to_owned();
    let found = get(
        client,
        args,
        &format!("Patient?identifier=http://hospital.smarthealthit.org|{mrn}"),
    )
    .await?;
    let pid = found["entry"][0]["resource"]["id"]
        .as_str()
        .context("the MRN search found nobody")?
        .to_owned();
    let family: String = patient["name"][0]["family"]
        .as_str()
        .unwrap_or_default()
        .chars()
        .take(8)
        .collect();
    let queries = [
        (
            "token, 1 match (MRN)",
            format!("Patient?identifier=http://hospital.smarthealthit.org|{mrn}"),
        ),
        (
            "token, one patient's labs",
            format!("Observation?patient={pid}&category=laboratory"),
        ),
        (
            "date range, one patient",
            format!("Observation?patient={pid}&date=ge2020-03-01&date=lt2020-03-08"),
        ),
        (
            "name prefix, every clone",
            format!("Patient?family={family}&_count=50"),
        ),
        (
            "$everything, one patient",
            format!("Patient/{pid}/$everything?_count=1000"),
        ),
    ];
    for (what, q) in &queries {
        let mut hist = Histogram::<u64>::new(3)?;
        let mut matches = 0;
        for _ in 0..args.requests {
            let t = Instant::now();
            let b = get(client, args, q).await?;
            hist.record(t.elapsed().as_micros() as u64)?;
            matches = b["entry"].as_array().map_or(0, Vec::len);
        }
        println!(
            "{what:<28} {matches:>4} entries: p50 {:.1} ms, p99 {:.1} ms ({} requests)",
            hist.value_at_quantile(0.5) as f64 / 1000.0,
            hist.value_at_quantile(0.99) as f64 / 1000.0,
            hist.len()
        );
    }
    Ok(())
}

async fn get(client: &reqwest::Client, args: &Args, path: &str) -> anyhow::Result<Value> {
    let r = client
        .get(format!("{}/{path}", args.base.trim_end_matches('/')))
        .bearer_auth(&args.token)
        .timeout(Duration::from_secs(60))
        .send()
        .await?;
    let status = r.status();
    let body: Value = r.json().await?;
    if !status.is_success() {
        bail!(
            "{path} answered {status}: {}",
            body["issue"][0]["diagnostics"]
        );
    }
    Ok(body)
}
