//! Load driver for MedLedger: posts Synthea bundles as FHIR transactions over HTTP and reports
//! resources per second, bundle latency and commit lag (write acknowledged → `$verify` answers).
//!
//! Bounded by design: a fixed number of rounds against one base URL, loopback only in the
//! project's scripts.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::Parser;
use hdrhistogram::Histogram;
use serde_json::{Value, json};

#[derive(Parser, Debug)]
#[command(about = "Post Synthea bundles to a MedLedger FHIR endpoint and measure it")]
struct Args {
    /// FHIR base URL, e.g. http://127.0.0.1:8080/fhir
    #[arg(long)]
    base: String,
    /// Bearer token (a practitioner with user/*.cruds).
    #[arg(long, env = "MEDLEDGER_TOKEN")]
    token: String,
    /// Directory with the Synthea bundles.
    #[arg(long)]
    bundles: PathBuf,
    /// Times every patient bundle is posted.
    #[arg(long, default_value_t = 4)]
    rounds: usize,
    /// Bundles in flight at once.
    #[arg(long, default_value_t = 4)]
    concurrency: usize,
    /// How many written resources to sample for commit lag.
    #[arg(long, default_value_t = 20)]
    lag_samples: usize,
}

fn as_transaction(mut bundle: Value) -> Value {
    bundle["type"] = json!("transaction");
    bundle
}

async fn post_bundle(
    client: &reqwest::Client,
    args: &Args,
    bundle: &Value,
) -> anyhow::Result<Vec<String>> {
    let r = client
        .post(&args.base)
        .bearer_auth(&args.token)
        .header("content-type", "application/fhir+json")
        .body(serde_json::to_vec(bundle)?)
        .send()
        .await?;
    let status = r.status();
    let body: Value = r.json().await?;
    if !status.is_success() {
        bail!(
            "transaction failed with {status}: {}",
            body["issue"][0]["diagnostics"]
        );
    }
    Ok(body["entry"]
        .as_array()
        .map(|e| {
            e.iter()
                .filter_map(|x| x["response"]["location"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Arc::new(Args::parse());
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(120))
        .build()?;
    let mut patients = Vec::new();
    let mut shared = Vec::new();
    let mut names: Vec<_> = std::fs::read_dir(&args.bundles)?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .collect();
    names.sort();
    for path in names
        .into_iter()
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
    {
        let v: Value = serde_json::from_slice(&std::fs::read(&path)?)
            .with_context(|| path.display().to_string())?;
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default();
        if name.starts_with("hospital") || name.starts_with("practitioner") {
            shared.push(as_transaction(v));
        } else {
            patients.push(as_transaction(v));
        }
    }
    for b in &shared {
        post_bundle(&client, &args, b).await?;
    }
    let work: Vec<Value> = (0..args.rounds)
        .flat_map(|_| patients.iter().cloned())
        .collect();
    let resources: usize = work
        .iter()
        .map(|b| b["entry"].as_array().map_or(0, Vec::len))
        .sum();
    let mut latency = Histogram::<u64>::new(3)?;
    let started = Instant::now();
    let mut locations = Vec::new();
    let results: Vec<anyhow::Result<(Duration, Vec<String>)>> =
        futures::StreamExt::collect(futures::StreamExt::buffer_unordered(
            futures::stream::iter(work.iter().map(|b| {
                let (client, args) = (client.clone(), args.clone());
                async move {
                    let t = Instant::now();
                    let locs = post_bundle(&client, &args, b).await?;
                    Ok((t.elapsed(), locs))
                }
            })),
            args.concurrency,
        ))
        .await;
    let elapsed = started.elapsed();
    for r in results {
        let (d, locs) = r?;
        latency.record(d.as_micros() as u64)?;
        locations.extend(locs);
    }

    // Commit lag: write one more resource at a time and time how long until its proof exists.
    let mut lag = Histogram::<u64>::new(3)?;
    for _ in 0..args.lag_samples {
        let p = json!({"resourceType": "Basic", "code": {"text": "load-test lag probe"}});
        let r = client
            .post(format!("{}/Basic", args.base))
            .bearer_auth(&args.token)
            .header("content-type", "application/fhir+json")
            .body(p.to_string())
            .send()
            .await?;
        let acked = Instant::now();
        let loc = r
            .headers()
            .get("location")
            .and_then(|v| v.to_str().ok())
            .context("no Location")?
            .to_owned();
        loop {
            let v = client
                .get(format!("{loc}/$verify"))
                .bearer_auth(&args.token)
                .send()
                .await?;
            if v.status().is_success() {
                break;
            }
            if acked.elapsed() > Duration::from_secs(60) {
                bail!("no proof for {loc} after 60 s");
            }
        }
        lag.record(acked.elapsed().as_micros() as u64)?;
    }

    let rate = resources as f64 / elapsed.as_secs_f64();
    println!(
        "bundles:            {} ({} resources) in {:.2} s, concurrency {}",
        work.len(),
        resources,
        elapsed.as_secs_f64(),
        args.concurrency
    );
    println!("throughput:         {rate:.0} resources/s");
    println!(
        "bundle latency:     p50 {:.1} ms, p99 {:.1} ms",
        latency.value_at_quantile(0.5) as f64 / 1000.0,
        latency.value_at_quantile(0.99) as f64 / 1000.0
    );
    println!(
        "commit lag ($verify ready after 2xx, {} samples): p50 {:.0} ms, p99 {:.0} ms",
        args.lag_samples,
        lag.value_at_quantile(0.5) as f64 / 1000.0,
        lag.value_at_quantile(0.99) as f64 / 1000.0
    );
    println!("locations returned: {}", locations.len());
    if locations.len() != resources {
        bail!("expected {resources} locations, got {}", locations.len());
    }
    Ok(())
}
