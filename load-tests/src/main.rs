//! Load driver for MedLedger. Five modes:
//!
//! - `ingest` (the default): posts Synthea bundles as FHIR transactions over HTTP and reports
//!   resources per second, bundle latency and commit lag (write acknowledged → `$verify`
//!   answers);
//! - `read`: writes a Patient and Observations through the API, waits until they are readable,
//!   then reads them back (`GET /{type}/{id}`: consent check, ledger check, decryption and an
//!   AuditEvent per read) as each reader in turn, and reports reads per second and latency
//!   percentiles per reader;
//! - `create`: single `POST Observation` creates started at a fixed rate (open loop), and
//!   reports latency percentiles;
//! - `mllp`: sends ORU^R01 lab results (three OBX each, a hundred patients) over MLLP, one
//!   outstanding message per connection as MLLP's original mode requires, and reports
//!   acknowledged messages per second and ACK latency.
//!
//! - `search`: posts every Synthea patient bundle `--rounds` times under new identities, then
//!   times token, date-range and name-prefix searches and `$everything` (`search.rs`).
//!
//! Bounded by design: a fixed number of rounds or requests against one base URL, loopback only
//! in the project's scripts.

mod search;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::Parser;
use hdrhistogram::Histogram;
use serde_json::{Value, json};

/// What the driver measures.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    /// Post the Synthea bundles as transactions; throughput, bundle latency, commit lag.
    Ingest,
    /// Read records back as several readers; reads/s and latency percentiles.
    Read,
    /// Send HL7 v2 lab results over MLLP; acknowledged messages/s and ACK latency.
    Mllp,
    /// Single creates (`POST Observation`) at a fixed rate; latency percentiles.
    Create,
    /// Clone Synthea patients into a large store, then time searches and `$everything`.
    Search,
}

#[derive(Parser, Debug)]
#[command(about = "Load a MedLedger FHIR endpoint (ingest or reads) and measure it")]
struct Args {
    /// FHIR base URL, e.g. http://127.0.0.1:8080/fhir (ingest and read modes).
    #[arg(long, default_value = "")]
    base: String,
    /// Bearer token (a practitioner with user/*.cruds). In read mode this practitioner writes
    /// the records and reads them back as their custodian.
    #[arg(long, env = "MEDLEDGER_TOKEN", default_value = "")]
    token: String,
    /// Create mode: requests started per second, whatever the responses take (open loop, so a
    /// slow response does not slow the offered load).
    #[arg(long, default_value_t = 200)]
    rate: u32,
    /// MLLP mode: the listener's address.
    #[arg(long, default_value = "127.0.0.1:2575")]
    mllp: String,
    /// What to measure.
    #[arg(long, value_enum, default_value_t = Mode::Ingest)]
    mode: Mode,
    /// Directory with the Synthea bundles (ingest mode).
    #[arg(long)]
    bundles: Option<PathBuf>,
    /// Times every patient bundle is posted (ingest mode).
    #[arg(long, default_value_t = 4)]
    rounds: usize,
    /// Requests in flight at once (bundles in ingest mode, reads in read mode).
    #[arg(long, default_value_t = 4)]
    concurrency: usize,
    /// How many written resources to sample for commit lag (ingest mode).
    #[arg(long, default_value_t = 20)]
    lag_samples: usize,
    /// Read mode: Observations written for the patient (the Patient itself is one more record).
    #[arg(long, default_value_t = 500)]
    records: usize,
    /// Read mode: timed reads per reader; MLLP mode: messages sent.
    #[arg(long, default_value_t = 20_000)]
    requests: usize,
    /// Read mode: id of the Patient to write (`PUT Patient/{id}`), the owner of every record.
    #[arg(long, default_value = "bench-read")]
    patient_id: String,
    /// Read mode: a token of `Patient/{patient-id}` (role patient, e.g. `patient/*.rs`); that
    /// patient reads their own records as the second reader.
    #[arg(long)]
    patient_token: Option<String>,
    /// Read mode: a token of a practitioner who did not write the records; the patient grants
    /// them access by a Consent and an authority verifies them, and they read as the third
    /// reader. Needs `--consented-subject`, `--authority-token` and `--patient-token`.
    #[arg(long, requires_all = ["consented_subject", "authority_token", "patient_token"])]
    consented_token: Option<String>,
    /// Read mode: the subject of `--consented-token`, e.g. `Practitioner/bench-consented`.
    #[arg(long)]
    consented_subject: Option<String>,
    /// Read mode: a token of role authority, used once to verify the consented practitioner.
    #[arg(long)]
    authority_token: Option<String>,
    /// Read mode, Linux: the server's process id, to report its CPU time per read (from
    /// `/proc/{pid}/stat`) beside the driver's own.
    #[arg(long)]
    server_pid: Option<u32>,
}

/// The Synthea bundles in `dir`, as transactions: the hospital and practitioner bundles
/// (shared by every patient, posted first), then the patient bundles, each in file-name order.
fn read_bundles(dir: &std::path::Path) -> anyhow::Result<(Vec<Value>, Vec<Value>)> {
    let mut patients = Vec::new();
    let mut shared = Vec::new();
    let mut names: Vec<_> = std::fs::read_dir(dir)?
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
    Ok((shared, patients))
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
    if args.mode != Mode::Mllp && (args.base.is_empty() || args.token.is_empty()) {
        bail!("--base and --token are required in this mode");
    }
    match args.mode {
        Mode::Ingest => ingest(&client, args).await,
        Mode::Read => read::run(&client, &args).await,
        Mode::Mllp => mllp::run(&args).await,
        Mode::Create => create(&client, &args).await,
        Mode::Search => search::run(&client, &args).await,
    }
}

/// Create mode: `--requests` single Observation creates, one started every `1/--rate` s.
async fn create(client: &reqwest::Client, args: &Args) -> anyhow::Result<()> {
    let url = format!("{}/Observation", args.base.trim_end_matches('/'));
    let period = Duration::from_secs_f64(1.0 / f64::from(args.rate.max(1)));
    let mut ticker = tokio::time::interval(period);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let started = Instant::now();
    let mut tasks = Vec::with_capacity(args.requests);
    for n in 0..args.requests {
        ticker.tick().await;
        let (client, url, token) = (client.clone(), url.clone(), args.token.clone());
        let body = json!({"resourceType": "Observation", "status": "final",
            "code": {"coding": [{"system": "http://loinc.org", "code": "8867-4"}]},
            "subject": {"reference": format!("Patient/bench-create-{}", n % 50)},
            "valueQuantity": {"value": 60 + (n % 40), "unit": "/min"}});
        tasks.push(tokio::spawn(async move {
            let sent = Instant::now();
            let r = client
                .post(&url)
                .bearer_auth(&token)
                .header("content-type", "application/fhir+json")
                .body(serde_json::to_vec(&body)?)
                .send()
                .await?;
            let status = r.status();
            r.bytes().await?;
            if status != 201 {
                bail!("create answered {status}");
            }
            Ok::<_, anyhow::Error>(sent.elapsed())
        }));
    }
    let mut hist = Histogram::<u64>::new(3)?;
    for t in tasks {
        hist.record(t.await??.as_micros() as u64)?;
    }
    let secs = started.elapsed().as_secs_f64();
    let ms = |q: f64| hist.value_at_quantile(q) as f64 / 1000.0;
    println!(
        "creates:            {} at {} offered/s ({:.0} completed/s)",
        hist.len(),
        args.rate,
        hist.len() as f64 / secs
    );
    println!(
        "latency:            p50 {:.1} ms, p90 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        ms(0.5),
        ms(0.9),
        ms(0.99),
        hist.max() as f64 / 1000.0
    );
    Ok(())
}

/// Ingest mode: the Synthea corpus as transactions, then commit lag.
async fn ingest(client: &reqwest::Client, args: Arc<Args>) -> anyhow::Result<()> {
    let client = client.clone();
    let bundles = args
        .bundles
        .as_ref()
        .context("--bundles is required in ingest mode")?;
    let (shared, patients) = read_bundles(bundles)?;
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

/// Read mode: records written once, then read back by each reader for a fixed number of
/// requests.
mod read {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::{Duration, Instant};

    use anyhow::{Context, bail};
    use hdrhistogram::Histogram;
    use serde_json::{Value, json};

    use super::Args;

    /// Observations per transaction Bundle when writing the records.
    const CHUNK: usize = 100;
    /// Longest wait for a written record to become readable (its leaf in the log).
    const READABLE_WITHIN: Duration = Duration::from_secs(60);

    /// One reader: a label for the report and its bearer token.
    struct Reader<'a> {
        label: String,
        token: &'a str,
    }

    pub(super) async fn run(client: &reqwest::Client, args: &Args) -> anyhow::Result<()> {
        if args.records == 0 || args.requests == 0 || args.concurrency == 0 {
            bail!("--records, --requests and --concurrency must be at least 1");
        }
        let started = Instant::now();
        let urls = Arc::new(write_records(client, args).await?);
        let written = started.elapsed();
        let mut readers = vec![Reader {
            label: "custodian (the practitioner who wrote them)".into(),
            token: &args.token,
        }];
        if let Some(t) = &args.patient_token {
            readers.push(Reader {
                label: format!("patient (Patient/{}, own records)", args.patient_id),
                token: t,
            });
        }
        if let Some(t) = &args.consented_token {
            grant_consent(client, args, &urls[0], t).await?;
            readers.push(Reader {
                label: format!(
                    "consented practitioner ({}, verified, patient's Consent)",
                    args.consented_subject.as_deref().unwrap_or_default()
                ),
                token: t,
            });
        }
        // Readable: every record answers 200 to its custodian (the log leaf exists).
        for url in urls.iter() {
            read_when_ready(client, url, &args.token).await?;
        }
        println!(
            "records:            {} (1 Patient, {} Observations), written and readable in {:.2} s",
            urls.len(),
            urls.len() - 1,
            started.elapsed().as_secs_f64(),
        );
        println!(
            "                    (writes took {:.2} s)",
            written.as_secs_f64()
        );
        for r in &readers {
            // One untimed pass: each reader may read every record, and first-use costs (an
            // account's enrolment, connections) stay out of the figures.
            for url in urls.iter() {
                read_once(client, url, r.token)
                    .await
                    .with_context(|| format!("warm-up read as {}", r.label))?;
            }
            let cpu_before = (cpu_seconds("self"), server_cpu(args));
            let (elapsed, h) = timed_reads(client, &urls, r.token, args).await?;
            let cpu_after = (cpu_seconds("self"), server_cpu(args));
            println!("reads as {}:", r.label);
            println!(
                "  {} reads in {:.2} s, concurrency {}: {:.0} reads/s",
                h.len(),
                elapsed.as_secs_f64(),
                args.concurrency,
                h.len() as f64 / elapsed.as_secs_f64()
            );
            let ms = |q: f64| h.value_at_quantile(q) as f64 / 1000.0;
            println!(
                "  latency p50 {:.2} ms, p90 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
                ms(0.5),
                ms(0.9),
                ms(0.99),
                h.max() as f64 / 1000.0
            );
            let per_read = |before: Option<f64>, after: Option<f64>| {
                before
                    .zip(after)
                    .map(|(b, a)| (a - b) * 1e6 / h.len() as f64)
            };
            if let Some(server) = per_read(cpu_before.1, cpu_after.1) {
                let driver = per_read(cpu_before.0, cpu_after.0).unwrap_or(f64::NAN);
                println!(
                    "  CPU per read: server {server:.0} µs, driver {driver:.0} µs \
                     (user + system, both cores)"
                );
            }
        }
        Ok(())
    }

    fn server_cpu(args: &Args) -> Option<f64> {
        args.server_pid
            .and_then(|pid| cpu_seconds(&pid.to_string()))
    }

    /// User + system CPU seconds of every thread of process `pid` (`self` for this one), from
    /// `/proc/{pid}/stat`; `None` off Linux. Ticks are taken as 1/100 s (USER_HZ on Linux).
    fn cpu_seconds(pid: &str) -> Option<f64> {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        // Fields after the command name, which is in parentheses and may contain spaces:
        // state is the 3rd field of the line, utime the 14th and stime the 15th.
        let rest = &stat[stat.rfind(')')? + 1..];
        let mut fields = rest.split_whitespace().skip(11);
        let utime: f64 = fields.next()?.parse().ok()?;
        let stime: f64 = fields.next()?.parse().ok()?;
        Some((utime + stime) / 100.0)
    }

    /// `PUT Patient/{id}` and the Observations in transaction Bundles; the read URL of each.
    async fn write_records(client: &reqwest::Client, args: &Args) -> anyhow::Result<Vec<String>> {
        let pid = &args.patient_id;
        let patient = json!({"resourceType": "Patient", "id": pid,
            "name": [{"family": "Bench", "given": ["Reader"]}], "gender": "unknown"});
        let url = format!("{}/Patient/{pid}", args.base);
        let r = client
            .put(&url)
            .bearer_auth(&args.token)
            .header("content-type", "application/fhir+json")
            .body(patient.to_string())
            .send()
            .await?;
        if !r.status().is_success() {
            bail!("PUT {url}: {} {}", r.status(), r.text().await?);
        }
        let mut urls = vec![url];
        let mut written = 0;
        while written < args.records {
            let n = CHUNK.min(args.records - written);
            let entries: Vec<Value> = (written..written + n)
                .map(|i| {
                    json!({"request": {"method": "POST", "url": "Observation"},
                        "resource": {"resourceType": "Observation", "status": "final",
                            "code": {"coding": [{"system": "http://loinc.org", "code": "8867-4",
                                "display": "Heart rate"}]},
                            "subject": {"reference": format!("Patient/{pid}")},
                            "effectiveDateTime": "2026-01-01T00:00:00Z",
                            "valueQuantity": {"value": 60 + (i % 40), "unit": "/min",
                                "system": "http://unitsofmeasure.org", "code": "/min"}}})
                })
                .collect();
            let bundle = json!({"resourceType": "Bundle", "type": "transaction", "entry": entries});
            let locations = super::post_bundle(client, args, &bundle).await?;
            if locations.len() != n {
                bail!(
                    "a transaction of {n} Observations returned {} locations",
                    locations.len()
                );
            }
            for loc in locations {
                // `Observation/{id}/_history/1` → the current-version read URL.
                let mut parts = loc.split('/');
                match (parts.next(), parts.next()) {
                    (Some(rt), Some(id)) => urls.push(format!("{}/{rt}/{id}", args.base)),
                    _ => bail!("unexpected location '{loc}'"),
                }
            }
            written += n;
        }
        Ok(urls)
    }

    /// The patient grants the consented practitioner access (a permit Consent naming them),
    /// and an authority verifies that practitioner. Their first read enrols their account,
    /// which must exist before it can be verified.
    async fn grant_consent(
        client: &reqwest::Client,
        args: &Args,
        any_record: &str,
        consented: &str,
    ) -> anyhow::Result<()> {
        let (Some(subject), Some(patient), Some(authority)) = (
            args.consented_subject.as_deref(),
            args.patient_token.as_deref(),
            args.authority_token.as_deref(),
        ) else {
            bail!(
                "--consented-token needs --consented-subject, --patient-token and --authority-token"
            );
        };
        let first = client.get(any_record).bearer_auth(consented).send().await?;
        if first.status().is_success() {
            bail!(
                "{subject} could read before any consent: the benchmark would not exercise consents"
            );
        }
        let pid = &args.patient_id;
        let consent = json!({"resourceType": "Consent", "status": "active",
            "scope": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/consentscope",
                "code": "patient-privacy"}]},
            "category": [{"coding": [{"system": "http://loinc.org", "code": "59284-0"}]}],
            "patient": {"reference": format!("Patient/{pid}")},
            "provision": {"type": "permit",
                "actor": [{"role": {"text": "reader"}, "reference": {"reference": subject}}]}});
        let steps = [
            ("Consent", patient, consent),
            (
                "$verify-practitioner",
                authority,
                json!({"resourceType": "Parameters", "parameter": [
                    {"name": "practitioner", "valueReference": {"reference": subject}}]}),
            ),
        ];
        for (path, token, body) in steps {
            let r = client
                .post(format!("{}/{path}", args.base))
                .bearer_auth(token)
                .header("content-type", "application/fhir+json")
                .body(body.to_string())
                .send()
                .await?;
            if !r.status().is_success() {
                bail!("POST {path}: {} {}", r.status(), r.text().await?);
            }
        }
        Ok(())
    }

    /// One read that must answer 200.
    async fn read_once(client: &reqwest::Client, url: &str, token: &str) -> anyhow::Result<()> {
        let r = client.get(url).bearer_auth(token).send().await?;
        let status = r.status();
        let body = r.bytes().await?;
        if !status.is_success() {
            bail!(
                "GET {url}: {status} {}",
                String::from_utf8_lossy(&body[..body.len().min(300)])
            );
        }
        Ok(())
    }

    /// Reads `url` until it answers 200; 503 (not in the log yet) is retried, anything else
    /// fails. Gives up after [`READABLE_WITHIN`].
    async fn read_when_ready(
        client: &reqwest::Client,
        url: &str,
        token: &str,
    ) -> anyhow::Result<()> {
        let deadline = Instant::now() + READABLE_WITHIN;
        loop {
            let r = client.get(url).bearer_auth(token).send().await?;
            let status = r.status();
            if status.is_success() {
                return Ok(());
            }
            if status != reqwest::StatusCode::SERVICE_UNAVAILABLE || Instant::now() >= deadline {
                bail!("GET {url}: {status} {}", r.text().await?);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// `args.requests` reads spread round-robin over `urls`, `args.concurrency` in flight;
    /// wall time and the latency histogram (µs). Any answer but 200 fails the run.
    async fn timed_reads(
        client: &reqwest::Client,
        urls: &Arc<Vec<String>>,
        token: &str,
        args: &Args,
    ) -> anyhow::Result<(Duration, Histogram<u64>)> {
        let next = Arc::new(AtomicUsize::new(0));
        let token: Arc<str> = token.into();
        let requests = args.requests;
        let started = Instant::now();
        let mut workers = tokio::task::JoinSet::new();
        for _ in 0..args.concurrency {
            let (client, urls, next, token) =
                (client.clone(), urls.clone(), next.clone(), token.clone());
            workers.spawn(async move {
                let mut h = Histogram::<u64>::new(3)?;
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= requests {
                        break;
                    }
                    let url = &urls[i % urls.len()];
                    let t = Instant::now();
                    read_once(&client, url, &token).await?;
                    h.record(t.elapsed().as_micros() as u64)?;
                }
                anyhow::Ok(h)
            });
        }
        let mut all = Histogram::<u64>::new(3)?;
        while let Some(done) = workers.join_next().await {
            all.add(done??)?;
        }
        Ok((started.elapsed(), all))
    }
}

mod mllp {
    //! MLLP mode.

    use std::time::{Duration, Instant};

    use anyhow::{Context, bail};
    use hdrhistogram::Histogram;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::Args;

    const PATIENTS: usize = 100;

    /// The `n`th message: a lab result for one of a hundred patients, its own control id.
    fn message(n: usize) -> Vec<u8> {
        let p = n % PATIENTS;
        format!(
            "\x0bMSH|^~\\&|BENCH-LIS|BENCH-LAB|MEDLEDGER|HOSP|20240305101500+0100||ORU^R01^ORU_R01|BENCH-{n}|P|2.5.1\r\
             PID|1||BENCH-MRN-{p}^^^BENCH-LAB^MR||Bench^Patient{p}||19700101|F\r\
             OBR|1|ORD{n}|FIL{n}|58410-2^CBC panel^LN|||202403050900+0100\r\
             OBX|1|NM|718-7^Hemoglobin^LN||13.{d}|g/dL^^UCUM|12.0-15.5|N|||F\r\
             OBX|2|NM|6690-2^Leukocytes^LN||6.{d}|10*3/uL^^UCUM|4.0-11.0|N|||F\r\
             OBX|3|ST|8251-1^Comment^LN||Bench sample {n}||||||F\r\x1c\r",
            d = n % 10
        )
        .into_bytes()
    }

    pub(super) async fn run(args: &Args) -> anyhow::Result<()> {
        let started = Instant::now();
        let per = args.requests.div_ceil(args.concurrency.max(1));
        let mut tasks = Vec::new();
        for c in 0..args.concurrency.max(1) {
            let addr = args.mllp.clone();
            let range = (c * per)..((c + 1) * per).min(args.requests);
            tasks.push(tokio::spawn(async move { connection(&addr, range).await }));
        }
        let mut hist = Histogram::<u64>::new(3)?;
        let mut refused = 0usize;
        for t in tasks {
            let (h, r) = t.await??;
            hist.add(h)?;
            refused += r;
        }
        let secs = started.elapsed().as_secs_f64();
        let ms = |q: f64| hist.value_at_quantile(q) as f64 / 1000.0;
        println!(
            "messages:           {} ({refused} not accepted)",
            hist.len()
        );
        println!(
            "throughput:         {:.0} messages/s ({:.0} resources/s: three Observations each, and {PATIENTS} Patients)",
            hist.len() as f64 / secs,
            hist.len() as f64 * 3.0 / secs
        );
        println!(
            "ACK latency:        p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms ({} connections)",
            ms(0.5),
            ms(0.99),
            hist.max() as f64 / 1000.0,
            args.concurrency
        );
        if refused > 0 {
            bail!("{refused} messages were not accepted");
        }
        Ok(())
    }

    async fn connection(
        addr: &str,
        range: std::ops::Range<usize>,
    ) -> anyhow::Result<(Histogram<u64>, usize)> {
        let mut stream = tokio::net::TcpStream::connect(addr)
            .await
            .with_context(|| format!("connecting to {addr}"))?;
        stream.set_nodelay(true)?;
        let mut hist = Histogram::<u64>::new(3)?;
        let mut refused = 0;
        let mut buf = vec![0u8; 16 << 10];
        for n in range {
            let sent = Instant::now();
            stream.write_all(&message(n)).await?;
            let mut ack = Vec::new();
            while !ack.ends_with(&[0x1c, 0x0d]) {
                let read = tokio::time::timeout(Duration::from_secs(60), stream.read(&mut buf))
                    .await
                    .context("no ACK within a minute")??;
                if read == 0 {
                    bail!("the listener closed the connection (message {n} not acknowledged)");
                }
                ack.extend_from_slice(&buf[..read]);
            }
            hist.record(sent.elapsed().as_micros() as u64)?;
            // MSA-1 follows the first "MSA|" of the acknowledgement.
            let text = String::from_utf8_lossy(&ack);
            let code = text.split("MSA|").nth(1).and_then(|m| m.get(..2));
            if !matches!(code, Some("AA" | "CA")) {
                refused += 1;
            }
        }
        Ok((hist, refused))
    }
}
