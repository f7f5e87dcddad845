//! Starts `medledger dev` as a child process on a temporary data dir and talks to it over HTTP.

#![allow(dead_code, unreachable_pub, missing_docs, clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use medledger_test_utils::ChildGuard;
use medledger_test_utils::ports::free_port;
use serde_json::Value;

pub const BIN: &str = env!("CARGO_BIN_EXE_medledger");

/// The shared corpus: `MEDLEDGER_CORPUS`, else `../shared/corpus` beside the repository.
pub fn corpus() -> PathBuf {
    std::env::var_os("MEDLEDGER_CORPUS").map_or_else(
        || Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/corpus"),
        PathBuf::from,
    )
}

pub struct Dev {
    process: ChildGuard,
    pub dir: PathBuf,
    pub base: String,
    pub token: String,
    pub http: reqwest::Client,
    extra: Vec<String>,
    port: u16,
    /// Where its MLLP listener is.
    pub mllp: std::net::SocketAddr,
}

pub fn token(dir: &Path, subject: &str, role: &str, scope: &str) -> String {
    let out = Command::new(BIN)
        .args(["token", "--data-dir"])
        .arg(dir)
        .args(["--subject", subject, "--role", role, "--scope", scope])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "token: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

impl Dev {
    pub async fn start(dir: &Path) -> Dev {
        Self::start_with(dir, &[]).await
    }

    pub async fn start_with(dir: &Path, extra: &[&str]) -> Dev {
        Self::start_on(dir, free_port(), extra).await
    }

    /// [`Dev::start_with`] on a port chosen beforehand (a configuration names the base URL).
    pub async fn start_on(dir: &Path, port: u16, extra: &[&str]) -> Dev {
        let mllp = std::net::SocketAddr::from(([127, 0, 0, 1], free_port()));
        let mut d = Dev {
            process: spawn(dir, port, mllp, extra),
            dir: dir.to_path_buf(),
            base: format!("http://127.0.0.1:{port}/fhir"),
            token: String::new(),
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(60))
                .build()
                .unwrap(),
            extra: extra.iter().map(|s| s.to_string()).collect(),
            port,
            mllp,
        };
        d.wait_ready().await;
        d.token = token(dir, "Practitioner/dr-1", "practitioner", "user/*.cruds");
        d
    }

    async fn wait_ready(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(120);
        let url = format!("http://127.0.0.1:{}/readyz", self.port);
        loop {
            if let Ok(r) = self.http.get(&url).send().await
                && r.status().is_success()
            {
                return;
            }
            if let Some(status) = self.process.exited() {
                panic!("medledger dev exited early: {status}");
            }
            assert!(
                Instant::now() < deadline,
                "medledger dev did not become ready"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// SIGKILL, as a crash would.
    pub fn kill9(&mut self) {
        self.process.kill();
    }

    /// Stops it and starts it again on the same data dir and port with `extra` flags instead.
    pub async fn restart_with(&mut self, extra: &[&str]) {
        self.kill9();
        self.extra = extra.iter().map(|s| s.to_string()).collect();
        self.restart().await;
    }

    /// Restarts on the same data dir and port after a kill.
    pub async fn restart(&mut self) {
        let extra: Vec<&str> = self.extra.iter().map(String::as_str).collect();
        self.process = spawn(&self.dir, self.port, self.mllp, &extra);
        self.wait_ready().await;
    }

    pub fn url(&self, path: &str) -> String {
        let path = path.trim_start_matches('/');
        if path.is_empty() {
            self.base.clone()
        } else {
            format!("{}/{}", self.base, path)
        }
    }

    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.http
            .get(self.url(path))
            .bearer_auth(&self.token)
            .send()
            .await
            .unwrap()
    }

    pub async fn post(&self, path: &str, body: &Value) -> reqwest::Response {
        self.send(reqwest::Method::POST, path, body, &[]).await
    }

    pub async fn put(
        &self,
        path: &str,
        body: &Value,
        headers: &[(&str, &str)],
    ) -> reqwest::Response {
        self.send(reqwest::Method::PUT, path, body, headers).await
    }

    pub async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        body: &Value,
        headers: &[(&str, &str)],
    ) -> reqwest::Response {
        let mut rb = self
            .http
            .request(method, self.url(path))
            .bearer_auth(&self.token)
            .header("content-type", "application/fhir+json")
            .body(serde_json::to_vec(body).unwrap());
        for (k, v) in headers {
            rb = rb.header(*k, *v);
        }
        rb.send().await.unwrap()
    }

    /// `GET path` as `token`'s holder.
    pub async fn get_as(&self, token: &str, path: &str) -> reqwest::Response {
        self.request_as(token, reqwest::Method::GET, path, None, &[])
            .await
    }

    /// A request as `token`'s holder, with an optional FHIR JSON body and extra headers.
    pub async fn request_as(
        &self,
        token: &str,
        method: reqwest::Method,
        path: &str,
        body: Option<&Value>,
        headers: &[(&str, &str)],
    ) -> reqwest::Response {
        let mut rb = self.http.request(method, self.url(path)).bearer_auth(token);
        if let Some(b) = body {
            rb = rb
                .header("content-type", "application/fhir+json")
                .body(serde_json::to_vec(b).unwrap());
        }
        for (k, v) in headers {
            rb = rb.header(*k, *v);
        }
        rb.send().await.unwrap()
    }

    /// The state database, for inspecting (and in tamper tests, editing) what is stored.
    pub async fn db(&self) -> sqlx::SqlitePool {
        let opts = sqlx::sqlite::SqliteConnectOptions::new()
            .filename(self.dir.join("state.db"))
            .busy_timeout(Duration::from_secs(10));
        sqlx::SqlitePool::connect_with(opts).await.unwrap()
    }

    pub async fn count(&self, table: &str) -> i64 {
        let pool = self.db().await;
        let n: i64 =
            sqlx::query_scalar(sqlx::AssertSqlSafe(format!("SELECT COUNT(*) FROM {table}")))
                .fetch_one(&pool)
                .await
                .unwrap();
        pool.close().await;
        n
    }

    pub fn blob_files(&self) -> usize {
        let mut n = 0;
        for shard in std::fs::read_dir(self.dir.join("blobs/blocks")).unwrap() {
            let shard = shard.unwrap();
            if shard.file_type().unwrap().is_dir() {
                n += std::fs::read_dir(shard.path()).unwrap().count();
            }
        }
        n
    }

    /// Waits until `$verify` answers 200 and returns the proof.
    pub async fn proof(&self, path: &str) -> Value {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let r = self.get(&format!("{path}/$verify")).await;
            if r.status() == 200 {
                return r.json().await.unwrap();
            }
            assert!(
                r.status() == 503,
                "unexpected $verify status {}",
                r.status()
            );
            assert!(Instant::now() < deadline, "version never committed");
        }
    }

    /// Runs `medledger verify`; returns (success, stdout + stderr).
    pub fn verify(&self, proof: &Value, resource: Option<&Value>) -> (bool, String) {
        self.verify_with(proof, resource, &[])
    }

    /// `medledger verify` with extra arguments (e.g. `--require-anchor`).
    pub fn verify_with(
        &self,
        proof: &Value,
        resource: Option<&Value>,
        extra: &[&str],
    ) -> (bool, String) {
        let tmp = tempfile::tempdir().unwrap();
        let pf = tmp.path().join("proof.json");
        std::fs::write(&pf, serde_json::to_vec(proof).unwrap()).unwrap();
        let mut cmd = Command::new(BIN);
        cmd.args(["verify", "--proof"])
            .arg(&pf)
            .arg("--data-dir")
            .arg(&self.dir)
            .args(extra);
        if let Some(r) = resource {
            let rf = tmp.path().join("resource.json");
            std::fs::write(&rf, serde_json::to_vec(r).unwrap()).unwrap();
            cmd.arg("--resource").arg(&rf);
        }
        let out = cmd.output().unwrap();
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        (out.status.success(), text)
    }
}

/// Runs `medledger dev` on `dir` expecting it to refuse to start; returns what it printed.
pub fn start_refused(dir: &Path) -> String {
    let port = free_port();
    let mut child = Command::new(BIN)
        .args(["dev", "--data-dir"])
        .arg(dir)
        .args(["--listen", &format!("127.0.0.1:{port}")])
        .args(["--mllp-listen", "127.0.0.1:0"])
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("medledger dev started on a damaged data dir");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(
        !status.success(),
        "medledger dev exited successfully on a damaged data dir"
    );
    let mut err = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut err).unwrap();
    err
}

fn spawn(dir: &Path, port: u16, mllp: std::net::SocketAddr, extra: &[&str]) -> ChildGuard {
    let mut command = Command::new(BIN);
    command
        .args(["dev", "--data-dir"])
        .arg(dir)
        .args(["--listen", &format!("127.0.0.1:{port}")])
        .args(["--mllp-listen", &mllp.to_string()])
        .args(extra)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit());
    ChildGuard::spawn(command, "medledger dev")
}

/// Asserts a response is an OperationOutcome with `status`; returns its diagnostics.
pub async fn outcome(r: reqwest::Response, status: u16) -> String {
    assert_eq!(r.status().as_u16(), status, "status");
    let ct = r
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    assert!(ct.starts_with("application/fhir+json"), "content type {ct}");
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["resourceType"], "OperationOutcome", "{body}");
    body["issue"][0]["diagnostics"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

/// An MLLP client: one connection, one outstanding message at a time.
pub struct Feed {
    stream: tokio::net::TcpStream,
    decoder: medledger_hl7v2::FrameDecoder,
}

impl Feed {
    pub async fn connect(addr: std::net::SocketAddr) -> Feed {
        Feed {
            stream: tokio::net::TcpStream::connect(addr).await.unwrap(),
            decoder: medledger_hl7v2::FrameDecoder::new(1 << 20),
        }
    }

    /// Sends raw bytes and waits for the next frame; `None` when the listener closed instead.
    pub async fn exchange(&mut self, bytes: &[u8]) -> Option<Vec<u8>> {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        self.stream.write_all(bytes).await.unwrap();
        let mut buf = [0u8; 4096];
        loop {
            if let Some(f) = self.decoder.next_frame().unwrap() {
                return Some(f);
            }
            let n = tokio::time::timeout(Duration::from_secs(60), self.stream.read(&mut buf))
                .await
                .expect("an answer within a minute")
                .unwrap();
            if n == 0 {
                return None;
            }
            self.decoder.push(&buf[..n]);
        }
    }

    /// Sends one message, framed, and parses its acknowledgement.
    pub async fn send(&mut self, text: &str) -> medledger_hl7v2::Message {
        let ack = self
            .exchange(&medledger_hl7v2::frame(text.as_bytes()))
            .await
            .expect("an ACK");
        medledger_hl7v2::Message::from_bytes(&ack).unwrap()
    }
}

/// Every file below `dir`, recursively.
pub fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let e = e.unwrap();
        if e.file_type().unwrap().is_dir() {
            out.extend(files_under(&e.path()));
        } else {
            out.push(e.path());
        }
    }
    out
}

/// `v` with every `reference` that `ids` maps (a Bundle's `fullUrl`s) replaced by its target.
pub fn rewrite(v: &mut Value, ids: &std::collections::HashMap<String, String>) {
    match v {
        Value::Object(o) => {
            for (k, x) in o.iter_mut() {
                if k == "reference" {
                    if let Some(new) = x.as_str().and_then(|s| ids.get(s)) {
                        *x = Value::String(new.clone());
                    }
                } else {
                    rewrite(x, ids);
                }
            }
        }
        Value::Array(a) => a.iter_mut().for_each(|x| rewrite(x, ids)),
        _ => {}
    }
}
