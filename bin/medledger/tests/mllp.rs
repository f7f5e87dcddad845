//! HL7 v2 over MLLP end to end against `medledger dev`: corpus and hand-written messages sent
//! over TCP are acknowledged only once stored; the records they yield are readable over FHIR by
//! the feed's account and verifiable on the ledger; a message sent again is acknowledged without
//! a second write; a lab result never overwrites the patient's demographics or visit; refused messages
//! are NAKed with the HL7 error and kept, encrypted, as dead letters; `medledger send-hl7`
//! reports each acknowledgement.

#![allow(clippy::unwrap_used, missing_docs)]

mod support;

use std::path::PathBuf;
use std::process::Command;

use medledger_hl7v2::Message;
use serde_json::Value;
use support::{BIN, Dev, Feed, token};

fn corpus_message(name: &str) -> String {
    let path = support::corpus().join("hl7v2/messages").join(name);
    let text = String::from_utf8(std::fs::read(path).unwrap()).unwrap();
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| format!("{l}\r"))
        .collect()
}

/// The `medledger` binary run with `args`.
fn medledger(args: &[&str]) -> std::process::Output {
    Command::new(BIN).args(args).output().unwrap()
}

/// `medledger dead-letters --data-dir DIR EXTRA…`, which must succeed; its output.
fn dead_letters(dir: &std::path::Path, extra: &[&str]) -> String {
    let dir = dir.to_str().unwrap();
    let out = medledger(&[&["dead-letters", "--data-dir", dir], extra].concat());
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn msa(ack: &Message) -> (String, String) {
    (ack.value("MSA", 1).text(), ack.value("MSA", 2).text())
}

async fn heads(dev: &Dev, rt: &str) -> Vec<(String, i64)> {
    let db = dev.db().await;
    let rows: Vec<(String, i64)> =
        sqlx::query_as("SELECT id, version FROM record_heads WHERE resource_type = ? ORDER BY id")
            .bind(rt)
            .fetch_all(&db)
            .await
            .unwrap();
    db.close().await;
    rows
}

const ORU: &str = "MSH|^~\\&|LIS|LAB|MEDLEDGER|HOSP|20240305101500+0100||ORU^R01^ORU_R01|LAB-1|P|2.5.1\r\
PID|1||PATID1234^5^M11^test1&2.16.1&HCD^MR^GOOD HEALTH HOSPITAL||Labname^Only\r\
PV1|1|O|||||||||||||||||40007716^^^AccMng&1.2&HCD^AM\r\
OBR|1|ORD1|FIL1|58410-2^CBC panel^LN|||202403050900+0100\r\
OBX|1|NM|718-7^Hemoglobin^LN||13.2|g/dL^^UCUM|12.0-15.5|N|||F\r\
OBX|2|ST|8251-1^Comment^LN||Sample slightly haemolysed||||||F\r";

/// A dev server with its MLLP feed connected.
async fn dev_with_feed() -> (tempfile::TempDir, Dev, Feed) {
    let dir = tempfile::tempdir().unwrap();
    let dev = Dev::start(dir.path()).await;
    let feed = Feed::connect(dev.mllp).await;
    (dir, dev, feed)
}

/// Sends the corpus admission and returns its ACK and the Patient's (id, version).
async fn admit(dev: &Dev, feed: &mut Feed) -> (Message, String) {
    let ack = feed.send(&corpus_message("ADT-A01-01.hl7")).await;
    assert_eq!(msa(&ack), ("AA".into(), "MSG00001".into()));
    let patients = heads(dev, "Patient").await;
    assert_eq!(patients.len(), 1);
    (ack, patients[0].0.clone())
}

/// A token of the patient `pid`.
fn patient_token(dir: &std::path::Path, pid: &str) -> String {
    token(dir, &format!("Patient/{pid}"), "patient", "patient/*.rs")
}

#[tokio::test]
async fn an_admission_is_acknowledged_once_stored_and_read_by_its_patient_only() {
    let (dir, mut dev, mut feed) = dev_with_feed().await;
    // An admission from the corpus: accepted once stored.
    let a01 = corpus_message("ADT-A01-01.hl7");
    let ack = feed.send(&a01).await;
    assert_eq!(msa(&ack), ("AA".into(), "MSG00001".into()));
    assert_eq!(ack.message_type().0, "ACK");
    let patients = heads(&dev, "Patient").await;
    assert_eq!(patients.len(), 1);
    let (pid, version) = patients[0].clone();
    assert_eq!(version, 1);
    assert_eq!(pid.len(), 64, "a keyed pseudonym, not the MRN");
    // The feed (the writer) may not read what it wrote; the patient reads their own records.
    dev.token = token(
        dir.path(),
        "Organization/mllp-feed",
        "organization",
        "system/*.cru",
    );
    let r = dev.get(&format!("Patient/{pid}")).await;
    assert_eq!(r.status(), 404, "the feed's token is no way around consent");
    dev.token = patient_token(dir.path(), &pid);
    let r = dev.get(&format!("Patient/{pid}")).await;
    assert_eq!(r.status(), 200);
    let patient: Value = r.json().await.unwrap();
    assert_eq!(patient["name"][0]["family"], "EVERYMAN");
    assert_eq!(patient["birthDate"], "1988-08-18");
    assert!(
        patient["identifier"]
            .as_array()
            .unwrap()
            .iter()
            .any(|i| i["value"] == "PATID1234")
    );
    let encounters = heads(&dev, "Encounter").await;
    assert_eq!(encounters.len(), 1);
    assert_eq!(
        heads(&dev, "Observation").await.len(),
        1,
        "the ADT's one OBX"
    );
    assert_eq!(heads(&dev, "AllergyIntolerance").await.len(), 1, "AL1");
    assert_eq!(heads(&dev, "Condition").await.len(), 1, "DG1");

    // The patient's record is on the ledger: its proof verifies offline.
    let proof = dev.proof(&format!("Patient/{pid}/_history/1")).await;
    let (ok, out) = dev.verify(&proof, Some(&patient));
    assert!(ok, "{out}");

    // Sent again (a lost ACK): the same ACK, no second version.
    let again = feed.send(&a01).await;
    assert_eq!(again.control_id(), ack.control_id(), "the remembered ACK");
    assert_eq!(heads(&dev, "Patient").await, patients);
}

#[tokio::test]
async fn an_update_replaces_the_demographics_and_a_result_leaves_them_untouched() {
    let (dir, mut dev, mut feed) = dev_with_feed().await;
    let (_, pid) = admit(&dev, &mut feed).await;
    dev.token = patient_token(dir.path(), &pid);
    let observations = heads(&dev, "Observation").await.len();

    // An update of the demographics (A08, a new control id) replaces the Patient.
    let a08 = corpus_message("ADT-A01-01.hl7")
        .replacen("ADT^A01^ADT_A01|MSG00001", "ADT^A08^ADT_A01|MSG00002", 1)
        .replace("EVERYMAN&&&&Aniston", "NEWNAME&&&&Aniston");
    assert_eq!(msa(&feed.send(&a08).await).0, "AA");
    assert_eq!(heads(&dev, "Patient").await, vec![(pid.clone(), 2)]);
    let patient: Value = dev
        .get(&format!("Patient/{pid}"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(patient["name"][0]["family"], "NEWNAME");
    assert_eq!(heads(&dev, "Encounter").await.len(), 1, "the same visit");
    // The allergy list and the visit's diagnoses an ADT repeats update in place.
    let allergies = heads(&dev, "AllergyIntolerance").await;
    assert_eq!((allergies.len(), allergies[0].1), (1, 2));
    let allergy: Value = dev
        .get(&format!("AllergyIntolerance/{}", allergies[0].0))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(allergy["code"]["coding"][0]["display"], "PENICILLIN");
    assert_eq!(allergy["patient"]["reference"], format!("Patient/{pid}"));
    assert_eq!(heads(&dev, "Condition").await.len(), 1);

    // A lab result for the same MRN and visit: observations added, demographics and the
    // visit untouched.
    let visit = heads(&dev, "Encounter").await;
    assert_eq!(msa(&feed.send(ORU).await), ("AA".into(), "LAB-1".into()));
    assert_eq!(heads(&dev, "Patient").await, vec![(pid.clone(), 2)]);
    assert_eq!(heads(&dev, "Encounter").await, visit);
    let obs = heads(&dev, "Observation").await;
    assert_eq!(
        obs.len(),
        observations + 1 + 2,
        "A08's OBX and the two results"
    );
    let db = dev.db().await;
    let owners: Vec<String> = sqlx::query_scalar(
        "SELECT DISTINCT owner FROM record_heads WHERE resource_type = 'Observation'",
    )
    .fetch_all(&db)
    .await
    .unwrap();
    assert_eq!(owners, vec![format!("Patient/{pid}")]);

    // Every write was audited as the feed's.
    let audited: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM audit_events WHERE actor = 'Organization/mllp-feed'",
    )
    .fetch_one(&db)
    .await
    .unwrap();
    assert!(audited >= 3, "{audited} audit events of the feed");
    db.close().await;
}

#[tokio::test]
async fn refused_messages_get_reasons_are_kept_encrypted_and_listed_for_an_operator() {
    let (dir, dev, mut feed) = dev_with_feed().await;
    admit(&dev, &mut feed).await;
    assert_eq!(msa(&feed.send(ORU).await), ("AA".into(), "LAB-1".into()));
    let obs = heads(&dev, "Observation").await;

    // Refusals: content (AE, 102), type (AR, 200), unparseable (AR, 100); each kept.
    let bad = ORU.replace("LAB-1", "LAB-2").replace("||13.2|", "||high|");
    let nak = feed.send(&bad).await;
    assert_eq!(msa(&nak), ("AE".into(), "LAB-2".into()));
    assert_eq!(nak.value("ERR", 3).component(1).text(), "102");
    let siu = feed.send(&corpus_message("SIU-S12-01.hl7")).await;
    assert_eq!(msa(&siu).0, "AR");
    assert_eq!(siu.value("ERR", 3).component(1).text(), "200");
    let garbage = feed.send("PID|1||nothing before me\r").await;
    assert_eq!(msa(&garbage), ("AR".into(), String::new()));
    // A training message is not a record of care (AR 202).
    let training = feed
        .send(
            &ORU.replace("LAB-1", "LAB-T")
                .replace("|P|2.5.1", "|T|2.5.1"),
        )
        .await;
    assert_eq!(training.value("ERR", 3).component(1).text(), "202");
    // The same control id on other content (a sender's counter reset) is neither taken for
    // the earlier message nor stored: AE, kept.
    let reused = feed.send(&ORU.replace("13.2", "14.1")).await;
    assert_eq!(msa(&reused), ("AE".into(), "LAB-1".into()));
    assert_eq!(
        heads(&dev, "Observation").await,
        obs,
        "nothing refused was stored"
    );
    let db = dev.db().await;
    let letters: Vec<(String, i64, String, Vec<u8>)> = sqlx::query_as(
        "SELECT control_id, code, reason, sealed FROM hl7_dead_letters ORDER BY seq",
    )
    .fetch_all(&db)
    .await
    .unwrap();
    db.close().await;
    let summary: Vec<(&str, i64)> = letters.iter().map(|l| (l.0.as_str(), l.1)).collect();
    assert_eq!(
        summary,
        vec![
            ("LAB-2", 102),
            ("MSG00012", 200),
            ("", 100),
            ("LAB-T", 202),
            ("LAB-1", 207)
        ]
    );
    for (_, _, reason, sealed) in &letters {
        assert!(!reason.contains("Labname") && !reason.contains("high"));
        assert!(
            !sealed.windows(7).any(|w| w == b"Labname")
                && !sealed.windows(7).any(|w| w == b"nothing"),
            "dead letters are encrypted"
        );
    }

    // `medledger dead-letters` lists them with why, and shows one decrypted, while dev runs.
    let listed = dead_letters(dir.path(), &[]);
    let line = listed
        .lines()
        .find(|l| l.contains("\tLAB-2\t"))
        .unwrap_or_else(|| panic!("LAB-2 listed in\n{listed}"));
    assert!(
        line.contains("\t102\t") && line.contains("OBX-5 is not a number"),
        "{line}"
    );
    assert!(!listed.contains("Labname"), "the list holds no PHI");
    let id = line.split('\t').next().unwrap();
    let shown = dead_letters(dir.path(), &["--show", id]);
    assert!(
        shown.starts_with("MSH|") && shown.contains("||high|"),
        "{shown}"
    );
}

#[tokio::test]
async fn in_enhanced_mode_msh_15_ne_asks_for_no_accept_acknowledgement() {
    let (_dir, dev, mut feed) = dev_with_feed().await;
    admit(&dev, &mut feed).await;
    let obs = heads(&dev, "Observation").await;
    // The next frame is the ACK of the message after the one that asked for none.
    let quiet = ORU
        .replace("LAB-1", "LAB-NE")
        .replace("FIL1", "FIL-NE")
        .replace("|P|2.5.1\r", "|P|2.5.1|||NE|NE\r");
    let loud = ORU.replace("LAB-1", "LAB-AL").replace("FIL1", "FIL-AL");
    let mut both = medledger_hl7v2::frame(quiet.as_bytes());
    both.extend(medledger_hl7v2::frame(loud.as_bytes()));
    let next = Message::from_bytes(&feed.exchange(&both).await.unwrap()).unwrap();
    assert_eq!(msa(&next), ("AA".into(), "LAB-AL".into()));
    assert_eq!(
        heads(&dev, "Observation").await.len(),
        obs.len() + 4,
        "NE's and AL's results stored"
    );
}

#[tokio::test]
async fn bytes_outside_a_frame_are_refused_kept_and_end_the_connection() {
    let (_dir, dev, mut feed) = dev_with_feed().await;
    // The stream cannot be trusted further, so a NAK and the end.
    let nak = feed.exchange(b"MSH|^~\\&|no start block\r").await.unwrap();
    assert_eq!(msa(&Message::from_bytes(&nak).unwrap()).0, "AR");
    assert_eq!(feed.exchange(b"").await, None, "closed");
    let db = dev.db().await;
    let kept: (i64, String) =
        sqlx::query_as("SELECT code, reason FROM hl7_dead_letters ORDER BY seq DESC LIMIT 1")
            .fetch_one(&db)
            .await
            .unwrap();
    assert_eq!(kept.0, 100, "the unframed bytes are kept too: {}", kept.1);
    db.close().await;
}

#[tokio::test]
async fn send_hl7_reports_each_ack_and_fails_unless_every_message_is_accepted() {
    let (_dir, dev, mut feed) = dev_with_feed().await;
    admit(&dev, &mut feed).await;
    let files = tempfile::tempdir().unwrap();
    let ok_file: PathBuf = files.path().join("oru.hl7");
    std::fs::write(&ok_file, ORU.replace("LAB-1", "LAB-3").replace('\r', "\n")).unwrap();
    let bad_file = files.path().join("bad.hl7");
    let bad = ORU.replace("LAB-1", "LAB-4").replace("||13.2|", "||high|");
    std::fs::write(&bad_file, bad).unwrap();
    let to = dev.mllp.to_string();
    let out = medledger(&["send-hl7", "--to", &to, ok_file.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("AA LAB-3"));
    let out = medledger(&["send-hl7", "--to", &to, bad_file.to_str().unwrap()]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("AE LAB-4"));
}

/// Feeds send on several connections: results for one new patient arriving at once all get
/// AA (the losers of the race to create the Patient retry), and the Patient is created once.
#[tokio::test]
async fn concurrent_results_for_one_new_patient_are_all_accepted() {
    let dir = tempfile::tempdir().unwrap();
    let dev = Dev::start(dir.path()).await;
    let sends = (0..8).map(|i| {
        let addr = dev.mllp;
        async move {
            let mut feed = Feed::connect(addr).await;
            let text = ORU
                .replace("LAB-1", &format!("RACE-{i}"))
                .replace("FIL1", &format!("FIL-{i}"))
                .replace("PATID1234^5^M11^test1&2.16.1&HCD", "RACE-MRN^^^LAB");
            msa(&feed.send(&text).await).0
        }
    });
    let codes = futures::future::join_all(sends).await;
    assert_eq!(codes, vec!["AA"; 8]);
    let patients = heads(&dev, "Patient").await;
    assert_eq!(patients.len(), 1);
    assert_eq!(patients[0].1, 1, "created once, never overwritten");
    assert_eq!(heads(&dev, "Observation").await.len(), 16);
}

/// One address cannot take every connection slot: beyond 16 at once its connections are
/// closed on arrival, and a slot it frees is usable again.
#[tokio::test]
async fn connections_per_peer_are_limited() {
    use tokio::io::AsyncReadExt;
    let dir = tempfile::tempdir().unwrap();
    let dev = Dev::start(dir.path()).await;
    let mut held = Vec::new();
    for _ in 0..16 {
        held.push(Feed::connect(dev.mllp).await);
    }
    // Each held connection is served (an ACK comes back).
    let ack = held[15].send(&ORU.replace("LAB-1", "PEER-16")).await;
    assert_eq!(msa(&ack).0, "AA");
    let mut extra = tokio::net::TcpStream::connect(dev.mllp).await.unwrap();
    let mut byte = [0u8; 1];
    let n = tokio::time::timeout(std::time::Duration::from_secs(30), extra.read(&mut byte))
        .await
        .expect("closed promptly")
        .unwrap_or(0);
    assert_eq!(n, 0, "the 17th connection is closed unanswered");
    drop(held.pop());
    // The freed slot: retried until the server has seen the close (a refused attempt is
    // closed or reset by the server).
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        use tokio::io::AsyncWriteExt;
        let mut again = tokio::net::TcpStream::connect(dev.mllp).await.unwrap();
        let framed = medledger_hl7v2::frame(ORU.replace("LAB-1", "PEER-17").as_bytes());
        let mut decoder = medledger_hl7v2::FrameDecoder::new(1 << 20);
        let mut buf = [0u8; 4096];
        let mut answer = None;
        if again.write_all(&framed).await.is_ok() {
            while answer.is_none() {
                match again.read(&mut buf).await {
                    Ok(n) if n > 0 => {
                        decoder.push(&buf[..n]);
                        answer = decoder.next_frame().unwrap();
                    }
                    _ => break,
                }
            }
        }
        if let Some(ack) = answer {
            assert_eq!(msa(&Message::from_bytes(&ack).unwrap()).0, "AA");
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the slot was never freed"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}
