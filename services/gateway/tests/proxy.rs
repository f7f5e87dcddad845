//! The gateway in front of real HTTP upstreams on loopback: each upstream echoes what reached it,
//! so the tests see exactly what the gateway forwarded.

#![allow(clippy::unwrap_used, missing_docs)]

use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::http::{HeaderMap, Method, Uri};
use medledger_gateway::{GatewayConfig, app};
use serde_json::{Value, json};

/// An upstream that answers with what it received.
async fn echo(name: &'static str) -> Uri {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let router = Router::new().fallback(
        move |method: Method, uri: Uri, headers: HeaderMap, body: Bytes| async move {
            let h = |n: &str| headers.get(n).map(|v| v.to_str().unwrap_or("").to_owned());
            axum::Json(json!({
                "upstream": name,
                "method": method.as_str(),
                "uri": uri.to_string(),
                "host": h("host"),
                        "authorization": h("authorization"),
                "keep_alive": h("keep-alive"),
                "x_custom_hop": h("x-custom-hop"),
                "body_len": body.len(),
            }))
        },
    );
    tokio::spawn(async move { axum::serve(listener, router).await });
    format!("http://{addr}").parse().unwrap()
}

async fn gateway(consent: bool, query: Option<Uri>) -> String {
    let config = GatewayConfig {
        ingest: echo("ingest").await,
        query: match query {
            Some(q) => q,
            None => echo("query").await,
        },
        consent: if consent {
            Some(echo("consent").await)
        } else {
            None
        },
        max_body_bytes: 1024,
        timeout: Duration::from_secs(2),
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app(config)).await });
    format!("http://{addr}")
}

#[tokio::test]
async fn requests_reach_the_service_for_their_interaction() {
    let gw = gateway(true, None).await;
    let http = reqwest::Client::new();
    let cases = [
        (Method::GET, "/fhir/Patient/p-1?_format=json", "query"),
        (Method::GET, "/fhir/metadata", "query"),
        (Method::POST, "/fhir/Observation/_search", "query"),
        (Method::POST, "/fhir/Patient", "ingest"),
        (Method::POST, "/fhir", "ingest"),
        (Method::PUT, "/fhir/Patient/p-1", "ingest"),
        (Method::DELETE, "/fhir/Patient/p-1", "ingest"),
        (Method::GET, "/fhir/Consent/c-1", "consent"),
        (Method::POST, "/fhir/Consent", "consent"),
    ];
    for (method, path, want) in cases {
        let r = http
            .request(method.clone(), format!("{gw}{path}"))
            .bearer_auth("tok")
            .header("keep-alive", "timeout=5")
            .header("connection", "x-custom-hop")
            .header("x-custom-hop", "1")
            .body("{}")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{method} {path}");
        assert_eq!(r.headers()["x-medledger-upstream"], want);
        let seen: Value = r.json().await.unwrap();
        assert_eq!(seen["upstream"], want, "{method} {path}");
        assert_eq!(seen["method"], method.as_str());
        // Path and query string unchanged; the client's Host kept (Location headers use it).
        assert_eq!(seen["uri"], path);
        let gw_host = gw.trim_start_matches("http://");
        assert_eq!(seen["host"], gw_host);
        // End-to-end headers pass, hop-by-hop ones do not.
        assert_eq!(seen["authorization"], "Bearer tok");
        assert_eq!(seen["keep_alive"], Value::Null);
        assert_eq!(seen["x_custom_hop"], Value::Null);
        assert_eq!(seen["body_len"], 2);
    }
}

#[tokio::test]
async fn without_a_consent_upstream_consent_is_an_ordinary_type() {
    let gw = gateway(false, None).await;
    let r = reqwest::Client::new()
        .post(format!("{gw}/fhir/Consent"))
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["x-medledger-upstream"], "ingest");
}

#[tokio::test]
async fn limits_and_failures_are_operation_outcomes() {
    // The query upstream is a port nothing listens on.
    let dead: Uri = format!(
        "http://127.0.0.1:{}",
        medledger_test_utils::ports::free_port()
    )
    .parse()
    .unwrap();
    let gw = gateway(false, Some(dead)).await;
    let http = reqwest::Client::new();

    let r = http
        .get(format!("{gw}/fhir/Patient/p-1"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 503);
    assert_eq!(r.headers()["retry-after"], "1");
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["resourceType"], "OperationOutcome");
    assert_eq!(body["issue"][0]["code"], "transient");

    let r = http
        .post(format!("{gw}/fhir/Patient"))
        .body(vec![b' '; 2048])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 413);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["issue"][0]["code"], "too-costly");

    // A body streamed without a length is cut at the limit: the write never arrives whole.
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> =
        (0..4).map(|_| Ok(vec![b' '; 512])).collect();
    let r = http
        .post(format!("{gw}/fhir/Patient"))
        .body(reqwest::Body::wrap_stream(futures::stream::iter(chunks)))
        .send()
        .await;
    if let Ok(r) = r {
        assert_ne!(
            r.status(),
            200,
            "an over-long streamed body must not be forwarded whole"
        );
    }

    let r = http.get(format!("{gw}/healthz")).send().await.unwrap();
    assert_eq!(r.status(), 404);
}
