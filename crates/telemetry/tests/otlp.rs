//! Spans reach an OTLP/HTTP receiver: a loopback server stands in for the collector and sees the
//! protobuf export request.

#![allow(clippy::unwrap_used, missing_docs)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::mpsc;
use std::time::Duration;

#[test]
fn spans_are_exported_over_otlp_http() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let mut stream = stream.unwrap();
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut request_line = String::new();
            reader.read_line(&mut request_line).unwrap();
            let mut length = 0usize;
            let mut content_type = String::new();
            loop {
                let mut line = String::new();
                reader.read_line(&mut line).unwrap();
                let line = line.trim_end();
                if line.is_empty() {
                    break;
                }
                let (name, value) = line.split_once(':').unwrap_or((line, ""));
                match name.to_ascii_lowercase().as_str() {
                    "content-length" => length = value.trim().parse().unwrap(),
                    "content-type" => content_type = value.trim().to_owned(),
                    _ => {}
                }
            }
            let mut body = vec![0; length];
            reader.read_exact(&mut body).unwrap();
            stream
                .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n")
                .unwrap();
            tx.send((request_line, content_type, body)).unwrap();
        }
    });

    let telemetry =
        medledger_telemetry::init_with("medledger-test", Some(format!("http://{addr}/v1/traces")));
    assert!(telemetry.exporting());
    tracing::info_span!("http.request", http.route = "/fhir/{type}/{id}").in_scope(|| {
        tracing::info!("inside");
    });
    // Dropping the guard flushes the batch.
    drop(telemetry);

    let (line, content_type, body) = rx.recv_timeout(Duration::from_secs(20)).unwrap();
    assert!(line.starts_with("POST /v1/traces "), "{line}");
    assert_eq!(content_type, "application/x-protobuf");
    let text = String::from_utf8_lossy(&body);
    assert!(text.contains("http.request"), "span name in the export");
    assert!(
        text.contains("medledger-test"),
        "service.name in the export"
    );
}
