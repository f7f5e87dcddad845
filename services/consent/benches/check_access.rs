//! Cost of one consent decision (a read of a patient's Observation), three ways:
//!
//! - in process: `ConsentPolicy::check` on a real SQLite consent store (the account and the
//!   patient's consents are read on every call, as `medledger dev` does);
//! - over gRPC: `CheckAccess` through `GrpcAccessPolicy` to an `AccessControlService` on
//!   loopback, which verifies the forwarded token and then decides with the same policy and
//!   store (distributed mode's path);
//! - components: the pure decision (`decide`) on parsed consents, and token verification.
//!
//! Each for three readers: the custodian practitioner, the patient (own records) and a verified
//! practitioner permitted by one of the patient's four consents. Criterion reports means; after
//! it, a timed loop records every call's latency and prints p50/p90/p99/max and the number of
//! stalled calls, and a concurrent loop prints decisions per second with several calls in
//! flight. Under `cargo test` (no
//! `--bench` argument) the loops are cut short.

#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::Criterion;
use hdrhistogram::Histogram;
use medledger_access::{AccessPolicy, AccessQuery, Decision, Interaction};
use medledger_auth::{Caller, DEV_ISSUER, IssuerKey, TokenVerifier, unix_now};
use medledger_consent::domain::consent::{ConsentRecord, parse_consent};
use medledger_consent::domain::decision::{Actor, Circumstances, Target, Verdict, decide};
use medledger_consent::{AccessControlService, ConsentPolicy, Enrolment, GrpcAccessPolicy};
use medledger_storage_api::{AccountRow, ConsentRow, ConsentStore};
use medledger_storage_sqlx::SqliteStore;
use serde_json::{Value, json};

const PATIENT: &str = "Patient/p1";
const CUSTODIAN: &str = "Practitioner/dr-custodian";
const CONSENTED: &str = "Practitioner/dr-consented";
/// A call at least this slow (ns) is counted as a stall in the report.
const STALL_NS: u64 = 30_000_000;

/// One reader: its name in the report, and its verified caller.
struct Reader {
    name: &'static str,
    caller: Caller,
    verified_practitioner: bool,
}

struct Fixture {
    _dir: tempfile::TempDir,
    in_process: Arc<ConsentPolicy>,
    grpc: GrpcAccessPolicy,
    readers: Vec<Reader>,
    consents: Vec<ConsentRecord>,
    verifier: TokenVerifier,
    token: String,
}

fn consent(provision: Value, status: &str) -> Value {
    json!({"resourceType": "Consent", "status": status,
        "scope": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/consentscope",
            "code": "patient-privacy"}]},
        "patient": {"reference": PATIENT}, "provision": provision})
}

/// The patient's four consents: a permit for the consented practitioner, a deny for another
/// one, a permit limited in time and type for a third, and a revoked permit.
fn patients_consents() -> Vec<(String, Value)> {
    let actor = |r: &str| json!([{"reference": {"reference": r}}]);
    vec![
        (
            "c-permit".into(),
            consent(
                json!({"type": "permit", "actor": actor(CONSENTED)}),
                "active",
            ),
        ),
        (
            "c-deny".into(),
            consent(
                json!({"type": "deny", "actor": actor("Practitioner/dr-blocked")}),
                "active",
            ),
        ),
        (
            "c-limited".into(),
            consent(
                json!({"type": "permit", "actor": actor("Practitioner/dr-other"),
                    "class": [{"code": "Observation"}],
                    "period": {"start": "2026-01-01T00:00:00Z", "end": "2036-01-01T00:00:00Z"}}),
                "active",
            ),
        ),
        (
            "c-revoked".into(),
            consent(
                json!({"type": "permit", "actor": actor("Practitioner/dr-former")}),
                "inactive",
            ),
        ),
    ]
}

fn query<'a>(r: &'a Reader) -> AccessQuery<'a> {
    AccessQuery {
        caller: &r.caller,
        interaction: Interaction::Read,
        resource_type: "Observation",
        owner: Some(PATIENT),
        custodian: Some(CUSTODIAN),
        categories: None,
    }
}

async fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(
        SqliteStore::open(&dir.path().join("state.db"))
            .await
            .unwrap(),
    );
    let mut consents = Vec::new();
    for (id, json) in patients_consents() {
        store
            .put_consent(
                &ConsentRow {
                    id: id.clone(),
                    version: 1,
                    patient: PATIENT.into(),
                    status: json["status"].as_str().unwrap().into(),
                    resource: medledger_fhir::canonical_json(&json),
                    actor: PATIENT.into(),
                    recorded_at_ms: 0,
                },
                None,
            )
            .await
            .unwrap();
        consents.push(parse_consent(&id, &json).unwrap());
    }
    let key = IssuerKey::generate();
    let verifier = TokenVerifier::new(DEV_ISSUER, key.verifying_key());
    let mut readers = Vec::new();
    for (name, who, role, scope, verified) in [
        (
            "custodian",
            CUSTODIAN,
            "practitioner",
            "user/*.cruds",
            false,
        ),
        ("patient", PATIENT, "patient", "patient/*.rs", false),
        ("consented", CONSENTED, "practitioner", "user/*.rs", true),
    ] {
        // The accounts as enrolment, an admin and an authority left them.
        store
            .put_account(&AccountRow {
                account: who.into(),
                role: role.into(),
                verified,
            })
            .await
            .unwrap();
        let token = key.mint(who, role, scope, unix_now(), 3600);
        let claims = verifier.verify(&token).unwrap();
        readers.push(Reader {
            name,
            caller: Caller::new(claims, &token),
            verified_practitioner: verified,
        });
    }
    let in_process = Arc::new(ConsentPolicy::new(store, Enrolment::FromTokens));

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let service = AccessControlService::new(verifier.clone(), in_process.clone());
    // Built as `medledger consent` builds its server (bin/medledger/src/services/consent.rs),
    // including its accept loop: with `serve_with_incoming` tonic ignores `tcp_nodelay`, so
    // accepted sockets keep Nagle's algorithm, as they do there.
    tokio::spawn(
        tonic::transport::Server::builder()
            .timeout(Duration::from_secs(5))
            .concurrency_limit_per_connection(512)
            .tcp_nodelay(true)
            .add_service(service.into_server())
            .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener)),
    );
    let grpc =
        GrpcAccessPolicy::connect_lazy(&format!("http://{addr}"), Duration::from_secs(5)).unwrap();

    // Every reader is permitted both ways: the benchmark measures permits, not refusals.
    for r in &readers {
        assert_eq!(
            in_process.check(query(r)).await,
            Ok(Decision::Permit),
            "{}",
            r.name
        );
        assert_eq!(
            grpc.check(query(r)).await,
            Ok(Decision::Permit),
            "{}",
            r.name
        );
    }
    let token = readers[0].caller.token.to_string();
    Fixture {
        _dir: dir,
        in_process,
        grpc,
        readers,
        consents,
        verifier,
        token,
    }
}

/// The pure decision for `r` on the parsed consents (no I/O).
fn decide_for(r: &Reader, consents: &[ConsentRecord]) -> Verdict {
    decide(
        Actor {
            claims: &r.caller.claims,
            verified_practitioner: r.verified_practitioner,
        },
        Target {
            interaction: Interaction::Read,
            resource_type: "Observation",
            owner: Some(PATIENT),
            custodian: Some(CUSTODIAN),
            categories: None,
        },
        Circumstances {
            purpose: None,
            break_glass_reason: None,
            now: unix_now(),
        },
        consents,
    )
}

fn criterion_benches(c: &mut Criterion, rt: &tokio::runtime::Runtime, f: &Fixture) {
    let mut g = c.benchmark_group("check_access");
    for r in &f.readers {
        g.bench_function(format!("in_process/{}", r.name), |b| {
            b.iter(|| rt.block_on(f.in_process.check(query(r))))
        });
        g.bench_function(format!("grpc/{}", r.name), |b| {
            b.iter(|| rt.block_on(f.grpc.check(query(r))))
        });
        g.bench_function(format!("decide_only/{}", r.name), |b| {
            b.iter(|| decide_for(r, &f.consents))
        });
    }
    g.bench_function("token_verify_es256", |b| {
        b.iter(|| f.verifier.verify(&f.token).unwrap())
    });
    g.finish();
}

/// Sequential calls, each timed: p50/p90/p99/max in µs.
async fn percentiles<P: AccessPolicy + ?Sized>(p: &P, r: &Reader, calls: usize) -> Histogram<u64> {
    for _ in 0..calls / 10 {
        p.check(query(r)).await.unwrap();
    }
    let mut h = Histogram::<u64>::new(3).unwrap();
    for _ in 0..calls {
        let t = Instant::now();
        let d = p.check(query(r)).await;
        h.record(t.elapsed().as_nanos() as u64).unwrap();
        assert_eq!(d, Ok(Decision::Permit));
    }
    h
}

/// `calls` decisions with `in_flight` at once: decisions per second.
async fn throughput(p: Arc<dyn AccessPolicy>, r: &Reader, calls: usize, in_flight: usize) -> f64 {
    let caller = Arc::new(r.caller.clone());
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..in_flight {
        let (p, caller, next) = (p.clone(), caller.clone(), next.clone());
        tasks.spawn(async move {
            while next.fetch_add(1, std::sync::atomic::Ordering::Relaxed) < calls {
                let q = AccessQuery {
                    caller: &caller,
                    interaction: Interaction::Read,
                    resource_type: "Observation",
                    owner: Some(PATIENT),
                    custodian: Some(CUSTODIAN),
                    categories: None,
                };
                assert_eq!(p.check(q).await, Ok(Decision::Permit));
            }
        });
    }
    while let Some(t) = tasks.join_next().await {
        t.unwrap();
    }
    calls as f64 / started.elapsed().as_secs_f64()
}

fn report(
    rt: &tokio::runtime::Runtime,
    f: &Fixture,
    calls: usize,
    concurrent_calls: usize,
    in_flight: usize,
) {
    println!(
        "\nCheckAccess latency per call ({calls} sequential calls each; µs), \
         and decisions/s with {in_flight} in flight ({concurrent_calls} calls)"
    );
    println!(
        "{:<12} {:<10} {:>8} {:>8} {:>8} {:>8} {:>8} {:>12}",
        "path", "reader", "p50", "p90", "p99", "max", "≥30 ms", "decisions/s"
    );
    let grpc: Arc<dyn AccessPolicy> = Arc::new(f.grpc.clone());
    let local: Arc<dyn AccessPolicy> = f.in_process.clone();
    for (path, p) in [("in process", &local), ("gRPC", &grpc)] {
        for r in &f.readers {
            let h = rt.block_on(percentiles(p.as_ref(), r, calls));
            let rate = rt.block_on(throughput(p.clone(), r, concurrent_calls, in_flight));
            let us = |q: f64| h.value_at_quantile(q) as f64 / 1000.0;
            // Calls that stalled (a delayed ACK is 40 ms): counted, since p99 hides them.
            let stalls = h.count_between(STALL_NS, h.max().max(STALL_NS));
            println!(
                "{path:<12} {:<10} {:>8.1} {:>8.1} {:>8.1} {:>8.1} {stalls:>8} {rate:>12.0}",
                r.name,
                us(0.5),
                us(0.9),
                us(0.99),
                h.max() as f64 / 1000.0
            );
        }
    }
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let f = rt.block_on(fixture());
    let mut c = Criterion::default().configure_from_args();
    criterion_benches(&mut c, &rt, &f);
    c.final_summary();
    // `cargo bench` passes `--bench`; without it (cargo test --benches) only a smoke run.
    let benching = std::env::args().any(|a| a == "--bench");
    if benching {
        report(&rt, &f, 20_000, 20_000, 8);
    } else {
        report(&rt, &f, 20, 20, 2);
    }
}
