//! `medledger send-hl7`: a minimal MLLP sender, for trying the listener and for scripts. One
//! connection; each file is one message, sent once its acknowledgement for the previous one has
//! arrived (MLLP's original mode allows one outstanding message).

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
