//! Distributed mode end to end: `scripts/services-up` starts PostgreSQL (the running server),
//! a Kafka-protocol broker (tansu), two anvil chains, an IPFS node and the consent, ledger-writer,
//! ingest, query and gateway processes; the test writes through ingest's port, reads through
//! query's port (and both through the gateway) and verifies the proof, anchor included, against
//! the two anvil chains over JSON-RPC. Then it SIGKILLs the ledger writer while writes flow,
//! restarts it, and checks every acknowledged version is on the log once; and it restarts the
//! private chain's node under the running writer.
//!
//! Each test gets its own run dir, port range and database, and tears them down afterwards.

#![allow(clippy::unwrap_used, missing_docs)]

mod decisions;
mod searches;
mod support;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::str::FromStr;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use support::BIN;

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/services-up")
}

struct Stack {
    run: tempfile::TempDir,
    base: u16,
    db: String,
    env: HashMap<String, String>,
    http: reqwest::Client,
    token: String,
    /// Extra environment for `services-up` (e.g. the consent service's test clock).
    extra: Vec<(String, String)>,
}

impl Stack {
    fn command(&self, args: &[&str]) -> Command {
        let mut c = Command::new(script());
        c.args(args)
            .env("MEDLEDGER_RUN_DIR", self.run.path())
            .env("MEDLEDGER_PORT_BASE", self.base.to_string())
            .env("MEDLEDGER_POSTGRES_DB", &self.db)
            .env("MEDLEDGER_BIN", BIN)
            .env("MEDLEDGER_COMMIT_INTERVAL_MS", "100")
            .env("MEDLEDGER_ANCHOR_INTERVAL_MS", "300")
            .envs(self.extra.iter().map(|(k, v)| (k, v)));
        c
    }

    fn run_script(&self, args: &[&str]) {
        let out = self.command(args).output().unwrap();
        assert!(
            out.status.success(),
            "services-up {args:?} failed:\n{}\n--- logs ---\n{}",
            String::from_utf8_lossy(&out.stderr),
            self.logs()
        );
    }

    fn logs(&self) -> String {
        let mut all = String::new();
        for name in [
            "consent",
            "ingest",
            "query",
            "ledger-writer",
            "gateway",
            "kafka",
            "private-chain",
        ] {
            let text = std::fs::read_to_string(self.run.path().join(format!("{name}.log")))
                .unwrap_or_default();
            let tail: Vec<&str> = text.lines().rev().take(30).collect();
            all.push_str(&format!("== {name}\n"));
            for l in tail.into_iter().rev() {
                all.push_str(l);
                all.push('\n');
            }
        }
        all
    }

    fn up() -> Stack {
        Self::up_with(Vec::new())
    }

    fn up_with(extra: Vec<(String, String)>) -> Stack {
        let mut s = Stack {
            run: tempfile::tempdir().unwrap(),
            base: medledger_test_utils::ports::free_range(100),
            db: format!("medledger_e2e_{}", uuid_like()),
            env: HashMap::new(),
            http: reqwest::Client::new(),
            token: String::new(),
            extra,
        };
        s.run_script(&["up"]);
        let endpoints = std::fs::read_to_string(s.run.path().join("endpoints.env")).unwrap();
        s.env = endpoints
            .lines()
            .filter_map(|l| l.split_once('='))
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect();
        s.token = support::token(
            s.run.path(),
            "Practitioner/dr-1",
            "practitioner",
            "user/*.cruds",
        );
        s
    }

    fn url(&self, which: &str, path: &str) -> String {
        format!("{}/{}", self.env[which], path.trim_start_matches('/'))
    }

    async fn post(&self, path: &str, body: &Value) -> reqwest::Response {
        self.http
            .post(self.url("MEDLEDGER_ENDPOINT_INGEST_URL", path))
            .bearer_auth(&self.token)
            .header("content-type", "application/fhir+json")
            .body(serde_json::to_vec(body).unwrap())
            .send()
            .await
            .unwrap()
    }

    async fn get(&self, path: &str) -> reqwest::Response {
        self.http
            .get(self.url("MEDLEDGER_ENDPOINT_QUERY_URL", path))
            .bearer_auth(&self.token)
            .send()
            .await
            .unwrap()
    }

    /// Reads through query until the version is committed on chain (503 until then).
    async fn read_committed(&self, path: &str) -> Value {
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            let r = self.get(path).await;
            let status = r.status();
            if status == 200 {
                return r.json().await.unwrap();
            }
            assert!(
                status == 503,
                "read {path}: {status} {}",
                r.text().await.unwrap_or_default()
            );
            assert!(
                Instant::now() < deadline,
                "{path} never committed\n{}",
                self.logs()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    fn pid(&self, name: &str) -> i32 {
        std::fs::read_to_string(self.run.path().join(format!("{name}.pid")))
            .unwrap()
            .trim()
            .parse()
            .unwrap()
    }

    async fn pg(&self) -> sqlx::PgPool {
        sqlx::PgPool::connect(&self.env["MEDLEDGER_POSTGRES_URL"])
            .await
            .unwrap()
    }
}

impl Drop for Stack {
    fn drop(&mut self) {
        let _ = self.command(&["down"]).output();
        let _ = Command::new("psql")
            .args([
                "postgres://postgres@127.0.0.1:5432/postgres",
                "-qc",
                &format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.db),
            ])
            .output();
    }
}

fn uuid_like() -> String {
    let mut b = [0u8; 8];
    getrandom(&mut b);
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn getrandom(buf: &mut [u8]) {
    use std::io::Read;
    std::fs::File::open("/dev/urandom")
        .unwrap()
        .read_exact(buf)
        .unwrap();
}

fn observation(patient: &str, n: usize) -> Value {
    json!({
        "resourceType": "Observation",
        "status": "final",
        "code": {"coding": [{"system": "http://loinc.org", "code": "8867-4"}]},
        "subject": {"reference": format!("Patient/{patient}")},
        "valueQuantity": {"value": 60 + n % 40, "unit": "/min"}
    })
}

async fn created_id(r: reqwest::Response) -> String {
    let status = r.status();
    let body: Value = r.json().await.unwrap();
    assert_eq!(status, 201, "create failed: {body}");
    body["id"].as_str().unwrap().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_via_ingest_read_via_query_and_verify_on_the_anvil_chain() {
    let stack = Stack::up();
    every_process_is_ready(&stack).await;
    let written = writes_reach_ingest_and_reads_reach_query(&stack).await;
    a_consent_and_a_verification_let_another_practitioner_read(&stack, &written).await;
    a_read_without_a_token_is_refused(&stack, &written).await;
    the_proof_and_its_anchor_verify_over_json_rpc_and_forgeries_fail(&stack, &written).await;
    every_version_and_audit_event_reached_the_ledger_through_kafka(&stack).await;
    the_admin_ports_expose_metrics(&stack).await;
    hl7_v2_over_mllp_is_stored_read_by_the_patient_and_refused_with_a_reason(&stack).await;
}

/// What the first step wrote, for the steps after it.
struct Written {
    patient: String,
    obs: String,
}

async fn every_process_is_ready(stack: &Stack) {
    for admin in [
        "MEDLEDGER_ENDPOINT_INGEST_ADMIN_URL",
        "MEDLEDGER_ENDPOINT_QUERY_ADMIN_URL",
        "MEDLEDGER_ENDPOINT_LEDGER_WRITER_ADMIN_URL",
        "MEDLEDGER_ENDPOINT_CONSENT_ADMIN_URL",
        "MEDLEDGER_ENDPOINT_GATEWAY_ADMIN_URL",
    ] {
        let r = reqwest::get(format!("{}/readyz", stack.env[admin]))
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{admin} not ready");
    }
}

async fn writes_reach_ingest_and_reads_reach_query(stack: &Stack) -> Written {
    let patient = created_id(
        stack
            .post(
                "Patient",
                &json!({"resourceType": "Patient", "name": [{"family": "Distributed"}]}),
            )
            .await,
    )
    .await;
    let obs = created_id(stack.post("Observation", &observation(&patient, 1)).await).await;

    let read = stack.read_committed(&format!("Observation/{obs}")).await;
    assert_eq!(read["subject"]["reference"], format!("Patient/{patient}"));
    assert_eq!(read["meta"]["versionId"], "1");
    // Reads go to query; ingest serves no reads (the gateway routes by method).
    let on_ingest = stack
        .http
        .get(stack.url(
            "MEDLEDGER_ENDPOINT_INGEST_URL",
            &format!("Observation/{obs}"),
        ))
        .bearer_auth(&stack.token)
        .send()
        .await
        .unwrap();
    assert!(matches!(on_ingest.status().as_u16(), 404 | 405));
    // Through the gateway, the one base URL: writes reach ingest, reads reach query.
    let via_gateway = created_id(
        stack
            .http
            .post(stack.url("MEDLEDGER_FHIR_URL", "Observation"))
            .bearer_auth(&stack.token)
            .header("content-type", "application/fhir+json")
            .body(serde_json::to_vec(&observation(&patient, 2)).unwrap())
            .send()
            .await
            .unwrap(),
    )
    .await;
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let r = stack
            .http
            .get(stack.url("MEDLEDGER_FHIR_URL", &format!("Observation/{via_gateway}")))
            .bearer_auth(&stack.token)
            .send()
            .await
            .unwrap();
        assert_eq!(r.headers()["x-medledger-upstream"], "query");
        if r.status() == 200 {
            let body: Value = r.json().await.unwrap();
            assert_eq!(body["id"], via_gateway);
            break;
        }
        assert_eq!(r.status(), 503);
        assert!(Instant::now() < deadline, "gateway read never succeeded");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // A read-only token is refused a write by the consent service (over gRPC), via ingest.
    let reader = support::token(
        stack.run.path(),
        "Practitioner/dr-2",
        "practitioner",
        "user/*.rs",
    );
    let refused = stack
        .http
        .post(stack.url("MEDLEDGER_ENDPOINT_INGEST_URL", "Observation"))
        .bearer_auth(&reader)
        .header("content-type", "application/fhir+json")
        .body(serde_json::to_vec(&observation(&patient, 3)).unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 403);
    Written { patient, obs }
}

/// Another practitioner sees nothing until an authority has verified them and the patient's
/// Consent (kept by the consent service) permits it; the registrar commits both to the chain.
async fn a_consent_and_a_verification_let_another_practitioner_read(stack: &Stack, w: &Written) {
    let Written { patient, obs } = w;
    // Consent through the gateway: another practitioner sees nothing until an authority has
    // verified them and the patient's Consent (kept by the consent service) permits it.
    let gw = |path: &str| stack.url("MEDLEDGER_FHIR_URL", path);
    let dr2 = support::token(
        stack.run.path(),
        "Practitioner/dr-2",
        "practitioner",
        "user/*.rs",
    );
    let obs_path = format!("Observation/{obs}");
    let read_as = |token: String| {
        let url = gw(&obs_path);
        let http = stack.http.clone();
        async move {
            let deadline = Instant::now() + Duration::from_secs(60);
            loop {
                let status = http
                    .get(&url)
                    .bearer_auth(&token)
                    .send()
                    .await
                    .unwrap()
                    .status();
                if status != 503 || Instant::now() > deadline {
                    return status.as_u16();
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    };
    assert_eq!(read_as(dr2.clone()).await, 404);
    let patient_token = support::token(
        stack.run.path(),
        &format!("Patient/{patient}"),
        "patient",
        "patient/*.cruds",
    );
    let consent = json!({"resourceType": "Consent", "status": "active",
        "scope": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/consentscope", "code": "patient-privacy"}]},
        "category": [{"coding": [{"system": "http://loinc.org", "code": "59284-0"}]}],
        "patient": {"reference": format!("Patient/{patient}")},
        "provision": {"type": "permit", "actor": [{"role": {"text": "reader"}, "reference": {"reference": "Practitioner/dr-2"}}]}});
    let r = stack
        .http
        .post(gw("Consent"))
        .bearer_auth(&patient_token)
        .header("content-type", "application/fhir+json")
        .body(consent.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["x-medledger-upstream"], "consent");
    let status = r.status();
    let created: Value = r.json().await.unwrap();
    assert_eq!(status, 201, "{created}");
    let consent_id = created["id"].as_str().unwrap().to_owned();
    let authority = support::token(
        stack.run.path(),
        "Organization/board",
        "authority",
        "system/*.*",
    );
    let r = stack
        .http
        .post(gw("$verify-practitioner"))
        .bearer_auth(&authority)
        .header("content-type", "application/fhir+json")
        .body(json!({"resourceType": "Parameters", "parameter": [{"name": "practitioner", "valueReference": {"reference": "Practitioner/dr-2"}}]}).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204, "{}", r.text().await.unwrap());
    assert_eq!(read_as(dr2).await, 200);
    // The registrar (in the ledger writer) commits the Consent to ConsentRegistry and the
    // verification to Roles on anvil; the consent proof verifies over JSON-RPC.
    let version_url = gw(&format!("Consent/{consent_id}/_history/1"));
    let deadline = Instant::now() + Duration::from_secs(60);
    let consent_proof: Value = loop {
        let r = stack
            .http
            .get(format!("{version_url}/$verify"))
            .bearer_auth(&patient_token)
            .send()
            .await
            .unwrap();
        if r.status() == 200 {
            break r.json().await.unwrap();
        }
        assert_eq!(r.status(), 503, "consent $verify");
        assert!(
            Instant::now() < deadline,
            "the consent never reached the chain\n{}",
            stack.logs()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let consent_version: Value = stack
        .http
        .get(&version_url)
        .bearer_auth(&patient_token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let run_dir = stack.run.path();
    std::fs::write(
        run_dir.join("consent-proof.json"),
        consent_proof.to_string(),
    )
    .unwrap();
    std::fs::write(run_dir.join("consent.json"), consent_version.to_string()).unwrap();
    let out = Command::new(BIN)
        .args([
            "verify",
            "--rpc",
            &stack.env["MEDLEDGER_PRIVATE_CHAIN_URL"],
            "--proof",
        ])
        .arg(run_dir.join("consent-proof.json"))
        .arg("--deployment")
        .arg(run_dir.join("deployment.json"))
        .arg("--resource")
        .arg(run_dir.join("consent.json"))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains("ConsentRegistry recorded the grant"),
        "consent verify failed: {stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let salt: Vec<u8> =
        sqlx::query_scalar("SELECT salt FROM consent.consent_accounts WHERE account = $1")
            .bind("Practitioner/dr-2")
            .fetch_one(&stack.pg().await)
            .await
            .unwrap();
    let account = medledger_ledger::registry::account_commitment(
        &salt.try_into().unwrap(),
        "Practitioner/dr-2",
    );
    let roles = medledger_chain::Address::from_str(&stack.env["MEDLEDGER_ROLES_ADDRESS"]).unwrap();
    let registry =
        medledger_chain::Address::from_str(&stack.env["MEDLEDGER_CONSENT_REGISTRY_ADDRESS"])
            .unwrap();
    let chain = medledger_chain_rpc::RpcRegistry::connect_read_only(
        &stack.env["MEDLEDGER_PRIVATE_CHAIN_URL"],
        roles,
        registry,
    )
    .await
    .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let state = medledger_chain::Registry::role_state(&chain, account)
            .await
            .unwrap();
        if state.has(2) && state.verified {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the verification never reached Roles: {state:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn a_read_without_a_token_is_refused(stack: &Stack, w: &Written) {
    let obs = &w.obs;
    // Without a token, nothing.
    let anonymous = stack
        .http
        .get(stack.url(
            "MEDLEDGER_ENDPOINT_QUERY_URL",
            &format!("Observation/{obs}"),
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status(), 401);
}

async fn the_proof_and_its_anchor_verify_over_json_rpc_and_forgeries_fail(
    stack: &Stack,
    w: &Written,
) {
    let obs = &w.obs;
    // The anchor follows the tree head within a few anchor intervals.
    let deadline = Instant::now() + Duration::from_secs(120);
    let proof = loop {
        let proof = stack
            .read_committed(&format!("Observation/{obs}/_history/1/$verify"))
            .await;
        if proof.get("anchor").is_some() {
            break proof;
        }
        assert!(
            Instant::now() < deadline,
            "no anchor arrived\n{}",
            stack.logs()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(proof["chain"]["network"], "json-rpc");
    assert_eq!(proof["anchor"]["network"], "json-rpc");
    let resource = stack
        .read_committed(&format!("Observation/{obs}/_history/1"))
        .await;
    let dir = stack.run.path();
    std::fs::write(dir.join("proof.json"), proof.to_string()).unwrap();
    std::fs::write(dir.join("resource.json"), resource.to_string()).unwrap();
    let verify = |proof: &Path| {
        Command::new(BIN)
            .args([
                "verify",
                "--rpc",
                &stack.env["MEDLEDGER_PRIVATE_CHAIN_URL"],
                "--public-rpc",
                &stack.env["MEDLEDGER_PUBLIC_CHAIN_URL"],
                "--require-anchor",
                "--proof",
            ])
            .arg(proof)
            .arg("--deployment")
            .arg(dir.join("deployment.json"))
            .arg("--resource")
            .arg(dir.join("resource.json"))
            .output()
            .unwrap()
    };
    let out = verify(&dir.join("proof.json"));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "verify failed: {stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("VERIFIED Observation/"), "{stdout}");
    assert!(stdout.contains("on public chain 31338"), "{stdout}");

    // The same proof against the public chain (another chain id, no RecordLog there) fails.
    let out = Command::new(BIN)
        .args([
            "verify",
            "--rpc",
            &stack.env["MEDLEDGER_PUBLIC_CHAIN_URL"],
            "--proof",
        ])
        .arg(dir.join("proof.json"))
        .arg("--deployment")
        .arg(dir.join("deployment.json"))
        .output()
        .unwrap();
    assert!(!out.status.success());

    // Without the deployment's published addresses there is nothing to trust: refused.
    let out = Command::new(BIN)
        .args([
            "verify",
            "--rpc",
            &stack.env["MEDLEDGER_PRIVATE_CHAIN_URL"],
            "--proof",
        ])
        .arg(dir.join("proof.json"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--record-log"));
    // A bundle pointing at some other contract, "published" as its RecordLog: the code is not
    // RecordLog's, so the answers it gives prove nothing.
    let deployment: Value =
        serde_json::from_slice(&std::fs::read(dir.join("deployment.json")).unwrap()).unwrap();
    let roles = deployment["roles_address"].as_str().unwrap();
    let mut impostor = proof.clone();
    impostor["chain"]["recordLog"] = json!(roles);
    std::fs::write(dir.join("impostor.json"), impostor.to_string()).unwrap();
    let out = Command::new(BIN)
        .args([
            "verify",
            "--rpc",
            &stack.env["MEDLEDGER_PRIVATE_CHAIN_URL"],
            "--record-log",
            roles,
            "--proof",
        ])
        .arg(dir.join("impostor.json"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("RecordLog code"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // A proof whose root was altered fails against the chain.
    let mut forged = proof.clone();
    forged["treeHead"]["rootHash"] = json!("00".repeat(32));
    std::fs::write(dir.join("forged.json"), forged.to_string()).unwrap();
    assert!(!verify(&dir.join("forged.json")).status.success());
    // So does one whose anchor names another private source block.
    let mut forged = proof.clone();
    forged["anchor"]["sourceBlockHash"] = json!(format!("0x{}", "ee".repeat(32)));
    std::fs::write(dir.join("forged-source.json"), forged.to_string()).unwrap();
    let out = verify(&dir.join("forged-source.json"));
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("private block hash"));
    // And one whose anchor names another checkpoint.
    let mut forged = proof.clone();
    forged["anchor"]["anchorIndex"] = json!(1_000);
    std::fs::write(dir.join("forged-anchor.json"), forged.to_string()).unwrap();
    let out = verify(&dir.join("forged-anchor.json"));
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("Anchor"));
}

async fn every_version_and_audit_event_reached_the_ledger_through_kafka(stack: &Stack) {
    // The events went through Kafka: the ledger holds exactly the three versions written.
    let pg = stack.pg().await;
    let leaves: i64 =
        sqlx::query_scalar("SELECT COUNT(*) FROM ledger.ledger_leaves WHERE kind = 1")
            .fetch_one(&pg)
            .await
            .unwrap();
    assert_eq!(leaves, 3);
    // And every AuditEvent (writes, reads, the refused read, consent calls), from ingest's outbox
    // and the audit schema's, reached the log as its own leaf.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (events, logged): (i64, i64) = sqlx::query_as(
            "SELECT (SELECT COUNT(*) FROM audit.audit_events), \
                    (SELECT COUNT(*) FROM ledger.ledger_leaves l JOIN audit.audit_events e \
                       ON l.kind = 3 AND l.subject = 'AuditEvent/' || e.id)",
        )
        .fetch_one(&pg)
        .await
        .unwrap();
        assert!(events >= 6, "only {events} audit events");
        if logged == events {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{logged} of {events} audit events logged\n{}",
            stack.logs()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let refused: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM audit.audit_events WHERE outcome = '4' AND actor = 'Practitioner/dr-2'",
    )
    .fetch_one(&pg)
    .await
    .unwrap();
    assert!(refused >= 1, "the refused read is in the audit trail");
    let backlog: i64 =
        sqlx::query_scalar("SELECT COUNT(*) FROM ingest.outbox WHERE published_at IS NULL")
            .fetch_one(&pg)
            .await
            .unwrap();
    assert_eq!(backlog, 0);
    pg.close().await;
}

async fn the_admin_ports_expose_metrics(stack: &Stack) {
    // The admin ports expose metrics: ingest's outbox backlog, the writer's progress.
    let metrics = |admin: &str| {
        let url = format!("{}/metrics", stack.env[admin]);
        async move { reqwest::get(url).await.unwrap().text().await.unwrap() }
    };
    let ingest = metrics("MEDLEDGER_ENDPOINT_INGEST_ADMIN_URL").await;
    assert!(ingest.contains("medledger_outbox_backlog 0"), "{ingest}");
    let writer = metrics("MEDLEDGER_ENDPOINT_LEDGER_WRITER_ADMIN_URL").await;
    let committed: u64 = writer
        .lines()
        .find_map(|l| l.strip_prefix("medledger_ledger_committed_tree_size "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no committed tree size in\n{writer}"));
    assert!(committed >= 3, "{writer}");
}

async fn hl7_v2_over_mllp_is_stored_read_by_the_patient_and_refused_with_a_reason(stack: &Stack) {
    // HL7 v2 over MLLP into ingest: acknowledged once stored in PostgreSQL, read through query
    // by the patient, acknowledged again without a second write, and a refused message kept as
    // a dead letter.
    let mllp: std::net::SocketAddr = stack.env["MEDLEDGER_MLLP_ADDR"].parse().unwrap();
    let mut feed = support::Feed::connect(mllp).await;
    let adt = "MSH|^~\\&|ADT|HOSP|MEDLEDGER|HOSP|20240301080000+0000||ADT^A01|DIST-1|P|2.5\r\
               PID|1||MRN-77^^^HOSP^MR||Mllp^Dana||19800101|F\r\
               PV1|1|I|||||||||||||||||V-1^^^HOSP\r";
    let ack = feed.send(adt).await;
    assert_eq!(ack.value("MSA", 1).text(), "AA");
    let pg = stack.pg().await;
    let ids: Vec<String> = sqlx::query_scalar(
        "SELECT id FROM ingest.record_versions WHERE resource_type = 'Patient' AND actor = 'Organization/mllp-feed'",
    )
    .fetch_all(&pg)
    .await
    .unwrap();
    assert_eq!(ids.len(), 1);
    // The patient reads their own record (the feed writes but does not read).
    let feed_token = support::token(
        stack.run.path(),
        &format!("Patient/{}", ids[0]),
        "patient",
        "patient/*.rs",
    );
    let deadline = Instant::now() + Duration::from_secs(120);
    let patient = loop {
        let r = stack
            .http
            .get(stack.url("MEDLEDGER_FHIR_URL", &format!("Patient/{}", ids[0])))
            .bearer_auth(&feed_token)
            .send()
            .await
            .unwrap();
        if r.status() == 200 {
            break r.json::<Value>().await.unwrap();
        }
        assert_eq!(r.status(), 503, "reading the MLLP patient");
        assert!(Instant::now() < deadline, "never committed");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(patient["name"][0]["family"], "Mllp");
    let again = feed.send(adt).await;
    assert_eq!(again.control_id(), ack.control_id(), "the remembered ACK");
    let nak = feed
        .send(
            &adt.replace("DIST-1", "DIST-2")
                .replace("19800101", "19801301"),
        )
        .await;
    assert_eq!(nak.value("MSA", 1).text(), "AE");
    let (versions, letters): (i64, i64) = sqlx::query_as(
        "SELECT (SELECT COUNT(*) FROM ingest.record_versions WHERE actor = 'Organization/mllp-feed'), \
                (SELECT COUNT(*) FROM ingest.hl7_dead_letters WHERE control_id = 'DIST-2' AND code = 102)",
    )
    .fetch_one(&pg)
    .await
    .unwrap();
    assert_eq!(
        (versions, letters),
        (2, 1),
        "Patient and Encounter once; one dead letter"
    );
    pg.close().await;
}

/// Whether process `pid` runs: a killed process stays a zombie until init reaps it, and a
/// zombie runs nothing.
fn alive(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| s.rsplit_once(") ").map(|(_, rest)| rest.to_owned()))
        .is_some_and(|rest| !rest.starts_with('Z'))
}

/// Whether every record leaf is covered by a committed tree head, and how many there are
/// (audit leaves share the log, so the tree is larger than the number of records).
async fn records_committed(pg: &sqlx::PgPool) -> (bool, i64) {
    let (records, last, head): (i64, Option<i64>, Option<i64>) = sqlx::query_as(
        "SELECT (SELECT COUNT(*) FROM ledger.ledger_leaves WHERE kind = 1), \
                (SELECT MAX(leaf_index) FROM ledger.ledger_leaves WHERE kind = 1), \
                (SELECT MAX(tree_size) FROM ledger.ledger_tree_heads)",
    )
    .fetch_one(pg)
    .await
    .unwrap();
    let covered = match (last, head) {
        (Some(l), Some(h)) => h > l,
        (None, _) => true,
        (Some(_), None) => false,
    };
    (covered, records)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ledger_writer_killed_mid_batch_commits_every_acknowledged_version_exactly_once() {
    let stack = Stack::up();
    let patient = created_id(
        stack
            .post(
                "Patient",
                &json!({"resourceType": "Patient", "name": [{"family": "Crash"}]}),
            )
            .await,
    )
    .await;
    let mut acked = vec![format!("Patient/{patient}")];
    for n in 0..120 {
        if n == 40 {
            // SIGKILL while events are flowing and a batch is pending.
            let pid = stack.pid("ledger-writer");
            assert!(
                Command::new("kill")
                    .args(["-KILL", &pid.to_string()])
                    .status()
                    .unwrap()
                    .success()
            );
        }
        let id = created_id(stack.post("Observation", &observation(&patient, n)).await).await;
        acked.push(format!("Observation/{id}"));
    }
    // Writes kept being acknowledged with the writer down; now bring it back.
    stack.run_script(&["start", "ledger-writer"]);
    for subject in [acked.first().unwrap(), acked.last().unwrap()] {
        stack.read_committed(subject).await;
    }

    let pg = stack.pg().await;
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let (covered, records) = records_committed(&pg).await;
        if covered && records == acked.len() as i64 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{records} records logged (all committed: {covered}), {} versions acknowledged",
            acked.len()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let subjects: Vec<String> = sqlx::query_scalar(
        "SELECT subject FROM ledger.ledger_leaves WHERE kind = 1 ORDER BY leaf_index",
    )
    .fetch_all(&pg)
    .await
    .unwrap();
    let mut sorted = subjects.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(sorted.len(), subjects.len(), "a version was logged twice");
    let mut expected = acked.clone();
    expected.sort();
    assert_eq!(
        sorted, expected,
        "every acknowledged version, and nothing else"
    );
    // Every read still verifies after the crash, through query.
    for subject in acked.iter().step_by(30) {
        stack.read_committed(subject).await;
    }
    pg.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_ledger_writer_keeps_working_across_a_chain_node_restart() {
    let stack = Stack::up();
    let patient = created_id(
        stack
            .post(
                "Patient",
                &json!({"resourceType": "Patient", "name": [{"family": "Restart"}]}),
            )
            .await,
    )
    .await;
    stack.read_committed(&format!("Patient/{patient}")).await;
    let writer = stack.pid("ledger-writer");

    // The private chain's node goes away (as for an upgrade: SIGTERM, state kept on disk).
    stack.run_script(&["stop", "private-chain"]);
    let mut written = Vec::new();
    for n in 0..10 {
        written.push(created_id(stack.post("Observation", &observation(&patient, n)).await).await);
    }
    // Acknowledged and logged, but no tree head can be committed: no proof yet (503).
    let r = stack
        .get(&format!("Observation/{}/_history/1/$verify", written[0]))
        .await;
    assert_eq!(r.status(), 503);

    stack.run_script(&["start", "private-chain"]);
    for id in [&written[0], &written[9]] {
        stack.read_committed(&format!("Observation/{id}")).await;
    }
    // The same writer process carried on: no restart was needed.
    assert_eq!(stack.pid("ledger-writer"), writer);
    assert!(alive(writer), "the ledger writer exited\n{}", stack.logs());
    let pg = stack.pg().await;
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (covered, records) = records_committed(&pg).await;
        if covered && records == 11 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{records} records logged (all committed: {covered}), 11 versions written"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // The writer's lock session is killed (as a PostgreSQL failover would): the writer must
    // stop, since a standby may now take over; started again, it resumes. pg_locks spans the
    // whole server and the other tests' stacks hold the same lock in their own databases, so
    // only this stack's database counts.
    let killed: i64 = sqlx::query_scalar(
        "SELECT COUNT(pg_terminate_backend(pid)) FROM pg_locks \
         WHERE locktype = 'advisory' AND classid = 1835825010 AND objid = 1769235826 AND granted \
         AND database = (SELECT oid FROM pg_database WHERE datname = current_database())",
    )
    .fetch_one(&pg)
    .await
    .unwrap();
    assert_eq!(killed, 1, "exactly one session holds the writer lock");
    let deadline = Instant::now() + Duration::from_secs(30);
    while alive(writer) {
        assert!(
            Instant::now() < deadline,
            "the writer kept running without its lock"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    stack.run_script(&["start", "ledger-writer"]);
    let id = created_id(stack.post("Observation", &observation(&patient, 99)).await).await;
    stack
        .read_committed(&format!("Observation/{id}/_history/1/$verify"))
        .await;
    pg.close().await;
}

#[tokio::test]
async fn the_decision_table_and_the_access_request_flow_over_http_against_the_distributed_services()
{
    let clock_dir = tempfile::tempdir().unwrap();
    let clock = clock_dir.path().join("clock");
    std::fs::write(&clock, "0").unwrap();
    let stack = Stack::up_with(vec![(
        "MEDLEDGER_TEST_CLOCK_FILE".to_owned(),
        clock.to_str().unwrap().to_owned(),
    )]);
    // Through the gateway: writes to ingest, reads to query, consents to the consent service,
    // every decision by CheckAccess over gRPC on PostgreSQL.
    let http = decisions::Http {
        client: stack.http.clone(),
        base: stack.env["MEDLEDGER_FHIR_URL"].clone(),
    };
    let run = stack.run.path().to_owned();
    let ran = decisions::run(&http, |s, r, sc| support::token(&run, s, r, sc), &clock).await;
    assert!(
        ran >= 30,
        "only {ran} cases ran over HTTP\n{}",
        stack.logs()
    );
}

#[tokio::test]
async fn the_search_conformance_table_and_no_search_value_in_a_postgresql_dump() {
    let stack = Stack::up();
    // Through the gateway: searches to query, conditional writes and Bundles to ingest.
    let f = searches::Fhir {
        client: stack.http.clone(),
        base: stack.env["MEDLEDGER_FHIR_URL"].clone(),
        token: stack.token.clone(),
    };
    let since = time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap();
    let stored = searches::load(&f, &support::corpus()).await;
    let checked = searches::run(&f, &stored, &since).await;
    assert!(
        checked >= 80,
        "only {checked} queries checked\n{}",
        stack.logs()
    );
    let dump = Command::new("pg_dump")
        .arg(&stack.env["MEDLEDGER_POSTGRES_URL"])
        .output()
        .unwrap();
    assert!(
        dump.status.success(),
        "{}",
        String::from_utf8_lossy(&dump.stderr)
    );
    assert!(
        String::from_utf8_lossy(&dump.stdout).contains("search_tags"),
        "the dump holds the index"
    );
    let needles = searches::searchable_values(&stored);
    assert!(needles.len() > 200);
    if let Some(n) = searches::first_found(&needles, &dump.stdout) {
        panic!("'{n}' is in clear in the PostgreSQL dump");
    }
}
