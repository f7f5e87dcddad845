//! HL7 v2 tools. `medledger send-hl7`: a minimal MLLP sender, for trying the listener and for
//! scripts; one connection, each file one message, sent once the previous one's
//! acknowledgement has arrived (MLLP's original mode allows one outstanding message).
//! `medledger dead-letters`: what the listener refused, and why.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, bail};
use medledger_hl7v2::{FrameDecoder, Message, frame};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Arguments of `medledger send-hl7`.
#[derive(clap::Args, Debug)]
pub(crate) struct SendArgs {
    /// MLLP address of the listener.
    #[arg(long, default_value = "127.0.0.1:2575")]
    to: String,
    /// Longest wait for each acknowledgement, seconds.
    #[arg(long, default_value_t = 30)]
    timeout: u64,
    /// Files, one message each (segments separated by CR, LF or CRLF).
    #[arg(required = true)]
    files: Vec<PathBuf>,
}

/// The message in `bytes` with every segment ended by a carriage return, as MLLP carries it.
fn segments_with_cr(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(bytes.len() + 1);
    for line in bytes.split(|&b| b == b'\n' || b == b'\r') {
        if !line.iter().all(u8::is_ascii_whitespace) {
            out.extend_from_slice(line);
            out.push(b'\r');
        }
    }
    out
}

pub(crate) async fn send(args: SendArgs) -> anyhow::Result<()> {
    let wait = Duration::from_secs(args.timeout);
    let mut stream = tokio::time::timeout(wait, tokio::net::TcpStream::connect(&args.to))
        .await
        .with_context(|| format!("connecting to {}: timed out", args.to))?
        .with_context(|| format!("connecting to {}", args.to))?;
    let mut decoder = FrameDecoder::new(16 << 20);
    let mut buf = vec![0u8; 64 << 10];
    let mut refused = 0usize;
    for file in &args.files {
        let bytes = std::fs::read(file).with_context(|| format!("reading {}", file.display()))?;
        stream.write_all(&frame(&segments_with_cr(&bytes))).await?;
        let ack = loop {
            if let Some(f) = decoder.next_frame()? {
                break f;
            }
            let n = tokio::time::timeout(wait, stream.read(&mut buf))
                .await
                .with_context(|| format!("{}: no acknowledgement in time", file.display()))??;
            if n == 0 {
                bail!(
                    "{}: the listener closed the connection without acknowledging (it resends nothing itself; try again)",
                    file.display()
                );
            }
            decoder.push(&buf[..n]);
        };
        let ack = Message::from_bytes(&ack)
            .with_context(|| format!("{}: the acknowledgement does not parse", file.display()))?;
        let code = ack.value("MSA", 1).text();
        let text = ack.value("MSA", 3).text();
        println!(
            "{}: {code} {}{}",
            file.display(),
            ack.value("MSA", 2).text(),
            if text.is_empty() {
                String::new()
            } else {
                format!(" — {text}")
            }
        );
        if code != "AA" && code != "CA" {
            refused += 1;
        }
    }
    if refused > 0 {
        bail!(
            "{refused} of {} messages were not accepted",
            args.files.len()
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segments_end_with_a_carriage_return_whatever_the_file_used() {
        assert_eq!(segments_with_cr(b"MSH|a\nPID|b\n"), b"MSH|a\rPID|b\r");
        assert_eq!(segments_with_cr(b"MSH|a\r\nPID|b"), b"MSH|a\rPID|b\r");
        assert_eq!(segments_with_cr(b"MSH|a\rPID|b\r\r\n"), b"MSH|a\rPID|b\r");
    }
}

/// Arguments of `medledger dead-letters`.
#[derive(clap::Args, Debug)]
pub(crate) struct DeadLettersArgs {
    /// Data directory of `medledger dev` (works while it runs).
    #[arg(long, env = "MEDLEDGER_DATA_DIR", conflicts_with = "postgres_url")]
    data_dir: Option<PathBuf>,
    /// Or ingest's PostgreSQL (distributed mode), with `--master-key-file`.
    #[arg(long, requires = "master_key_file")]
    postgres_url: Option<String>,
    /// Ingest's master key file (distributed mode).
    #[arg(long)]
    master_key_file: Option<PathBuf>,
    /// Print this dead letter's message, decrypted (it is PHI), instead of the list; send it
    /// again with `medledger send-hl7` once the cause is fixed.
    #[arg(long)]
    show: Option<String>,
    /// Most dead letters listed, newest first.
    #[arg(long, default_value_t = 100)]
    limit: u32,
}

/// `medledger dead-letters`: the HL7 v2 messages the MLLP listener refused, newest first, with
/// why; or one of them decrypted.
pub(crate) async fn dead_letters(args: DeadLettersArgs) -> anyhow::Result<()> {
    use medledger_storage_api::Hl7MessageLog;
    let (log, keys): (std::sync::Arc<dyn Hl7MessageLog>, medledger_keys::OwnerKeys) =
        match (&args.data_dir, &args.postgres_url) {
            (Some(dir), _) => {
                let store = std::sync::Arc::new(
                    medledger_storage_sqlx::SqliteStore::open_read_only(&dir.join("state.db"))
                        .await
                        .context("opening the data dir's state database")?,
                );
                let master = std::sync::Arc::new(medledger_keys::FileMasterKey::load(
                    &dir.join("keys").join("master.key"),
                )?);
                (store.clone(), medledger_keys::OwnerKeys::new(store, master))
            }
            (None, Some(url)) => {
                let store = std::sync::Arc::new(
                    medledger_storage_sqlx::PgStore::connect(url, 2)
                        .await
                        .context("connecting to PostgreSQL")?,
                );
                let file = args
                    .master_key_file
                    .as_ref()
                    .context("--master-key-file is required with --postgres-url")?;
                let master = std::sync::Arc::new(medledger_keys::FileMasterKey::load(file)?);
                (store.clone(), medledger_keys::OwnerKeys::new(store, master))
            }
            (None, None) => bail!("give --data-dir, or --postgres-url with --master-key-file"),
        };
    // Newest first; a shown letter is looked up among all of them.
    let letters = log
        .dead_letters(if args.show.is_some() {
            u32::MAX
        } else {
            args.limit
        })
        .await?;
    if let Some(id) = &args.show {
        let letter = letters
            .iter()
            .find(|l| &l.id == id)
            .with_context(|| format!("no dead letter {id}"))?;
        let message = medledger_ingest::mllp::open_dead_letter(&keys, letter)
            .await
            .map_err(anyhow::Error::msg)?
            .context("no dead-letter key in this store")?;
        // Segments one per line, as files for `send-hl7` hold them.
        let text = medledger_hl7v2::decode_text(&message).replace('\r', "\n");
        println!("{}", text.trim_end());
        return Ok(());
    }
    for l in letters {
        let at = time::OffsetDateTime::from_unix_timestamp_nanos(
            i128::from(l.received_at_ms) * 1_000_000,
        )
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_default();
        println!(
            "{}\t{at}\t{}\t{}\t{}\t{}",
            l.id, l.code, l.sender, l.control_id, l.reason
        );
    }
    Ok(())
}
