//! Prometheus text exposition for the admin port: a process-wide request counter (by route
//! template and status, recorded by the HTTP layer) and gauges a service reads at scrape time.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::{Mutex, OnceLock, PoisonError};

/// One gauge sample: name (`medledger_…`), help text, value.
#[derive(Debug, Clone, PartialEq)]
pub struct Gauge {
    /// Metric name.
    pub name: &'static str,
    /// One line of help.
    pub help: &'static str,
    /// Current value.
    pub value: f64,
}

/// Gauges a process reports at scrape time (queried then, so they are never stale).
pub type Gauges = std::sync::Arc<
    dyn Fn() -> std::pin::Pin<Box<dyn std::future::Future<Output = Vec<Gauge>> + Send>>
        + Send
        + Sync,
>;

fn requests() -> &'static Mutex<BTreeMap<(String, u16), u64>> {
    static REQUESTS: OnceLock<Mutex<BTreeMap<(String, u16), u64>>> = OnceLock::new();
    REQUESTS.get_or_init(Mutex::default)
}

/// Counts one answered request. `route` is the route template, never the URI (ids and search
/// parameters must not become label values).
pub fn record_request(route: &str, status: u16) {
    let mut map = requests().lock().unwrap_or_else(PoisonError::into_inner);
    *map.entry((route.to_owned(), status)).or_default() += 1;
}

fn escape(label: &str) -> String {
    label
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// The exposition text: the request counter, then `gauges`.
pub fn render(gauges: &[Gauge]) -> String {
    let mut out = String::new();
    // Writing to a String cannot fail.
    let _ = writeln!(
        out,
        "# HELP medledger_http_requests_total HTTP requests answered, by route template and status."
    );
    let _ = writeln!(out, "# TYPE medledger_http_requests_total counter");
    let map = requests().lock().unwrap_or_else(PoisonError::into_inner);
    for ((route, status), n) in map.iter() {
        let _ = writeln!(
            out,
            "medledger_http_requests_total{{route=\"{}\",status=\"{status}\"}} {n}",
            escape(route)
        );
    }
    drop(map);
    for g in gauges {
        let _ = writeln!(out, "# HELP {} {}", g.name, g.help);
        let _ = writeln!(out, "# TYPE {} gauge", g.name);
        let _ = writeln!(out, "{} {}", g.name, g.value);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_and_gauges_render_in_the_text_format() {
        record_request("/fhir/{rt}/{id}", 200);
        record_request("/fhir/{rt}/{id}", 200);
        record_request("/fhir/\"odd\"", 404);
        let text = render(&[Gauge {
            name: "medledger_test_gauge",
            help: "A test gauge.",
            value: 7.0,
        }]);
        assert!(
            text.contains(
                "medledger_http_requests_total{route=\"/fhir/{rt}/{id}\",status=\"200\"} 2"
            ),
            "{text}"
        );
        assert!(
            text.contains("route=\"/fhir/\\\"odd\\\"\",status=\"404\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("# TYPE medledger_test_gauge gauge\nmedledger_test_gauge 7\n"),
            "{text}"
        );
    }
}
