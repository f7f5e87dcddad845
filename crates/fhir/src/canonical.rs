//! RFC 8785 JSON Canonicalization Scheme (JCS), with numbers kept as sent.
//!
//! Commitments are taken over canonical bytes so that a holder of the resource can recompute
//! them whatever whitespace or key order their copy has. The one departure from RFC 8785: a
//! number is written with exactly the characters it was sent with instead of ECMAScript's
//! shortest form. A FHIR decimal carries its precision in its spelling (`0.0` is not `0`,
//! `112.41600000000001` is not `112.416`, R4 §2.24.0.1 "decimal"), and rounding it to a double
//! would store, and commit to, something the sender never wrote. serde_json is built with
//! `arbitrary_precision` (workspace Cargo.toml) so a parsed number keeps its literal.

use serde_json::Value;

/// Serialises `value` as canonical JSON: object members sorted by the UTF-16 code units of their
/// names (RFC 8785 §3.2.3), no whitespace, strings escaped as §3.2.2.2 requires, and numbers as
/// written.
pub fn canonical_json(value: &Value) -> Vec<u8> {
    let mut out = Vec::with_capacity(256);
    write_value(value, &mut out);
    out
}

fn write_value(value: &Value, out: &mut Vec<u8>) {
    match value {
        Value::Null => out.extend_from_slice(b"null"),
        Value::Bool(b) => out.extend_from_slice(if *b { b"true" } else { b"false" }),
        // With arbitrary_precision a Number is its literal: what was parsed, or for one built from
        // an f64 in code, the shortest digits that round-trip.
        Value::Number(n) => out.extend_from_slice(n.as_str().as_bytes()),
        Value::String(s) => write_string(s, out),
        Value::Array(items) => {
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_value(item, out);
            }
            out.push(b']');
        }
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort_by(|a, b| a.encode_utf16().cmp(b.encode_utf16()));
            out.push(b'{');
            for (i, k) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_string(k, out);
                out.push(b':');
                write_value(&map[k], out);
            }
            out.push(b'}');
        }
    }
}

fn write_string(s: &str, out: &mut Vec<u8>) {
    // serde_json escapes exactly what JCS requires: `"`, `\`, and control characters (short forms
    // where they exist, else lowercase `\u00xx`), leaving everything else as UTF-8.
    out.extend_from_slice(serde_json::to_string(s).unwrap_or_default().as_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sorts_keys_by_utf16_and_strips_whitespace() {
        // Example from RFC 8785 §3.2.3: sorting by UTF-16 code units, not by UTF-8 bytes.
        let v: Value = serde_json::from_str(
            r#"{"\u20ac": "Euro Sign", "\r": "Carriage Return", "\ufb33": "Hebrew Letter Dalet With Dagesh", "1": "One", "\ud83d\ude00": "Emoji: Grinning Face", "\u0080": "Control", "\u00f6": "Latin Small Letter O With Diaeresis"}"#,
        )
        .expect("json");
        let got = String::from_utf8(canonical_json(&v)).expect("utf8");
        let order: Vec<&str> = [
            "\\r",
            "1",
            "\u{80}",
            "\u{f6}",
            "\u{20ac}",
            "\u{1f600}",
            "\u{fb33}",
        ]
        .to_vec();
        let mut last = 0;
        for k in order {
            let pos = got.find(&format!("\"{k}\":")).expect("key present");
            assert!(pos >= last, "{k} out of order in {got}");
            last = pos;
        }
    }

    #[test]
    fn numbers_keep_the_digits_they_were_sent_with() {
        for literal in [
            "0",
            "0.0",
            "-0",
            "1.50",
            "112.41600000000001",
            "1e+30",
            "4.50",
            "2e-3",
            "0.000000000000000000000000001",
            "333333333.33333329",
            "123456789012345678901234567890",
            "-7.20",
        ] {
            let v: Value =
                serde_json::from_str(&format!("{{\"value\": {literal}}}")).expect("json");
            let got = String::from_utf8(canonical_json(&v)).expect("utf8");
            assert_eq!(got, format!("{{\"value\":{literal}}}"));
        }
        // Only the exponent's spelling is normalised (by serde_json's parser): `e`, and a sign.
        let v: Value = serde_json::from_str("[1E30, 2.50E-3]").expect("json");
        assert_eq!(canonical_json(&v), b"[1e+30,2.50e-3]");
    }

    #[test]
    fn rfc8785_sample_structure() {
        // RFC 8785 §3.2.2's sample, except that its numbers stay as written.
        let v: Value = serde_json::from_str(
            r#"{"numbers": [333333333.33333329, 1E30, 4.50, 2e-3, 0.000000000000000000000000001],
            "string": "\u20ac$\u000F\u000aA'\u0042\u0022\u005c\\\"\/", "literals": [null, true, false]}"#,
        )
        .expect("json");
        let got = String::from_utf8(canonical_json(&v)).expect("utf8");
        assert_eq!(
            got,
            r#"{"literals":[null,true,false],"numbers":[333333333.33333329,1e+30,4.50,2e-3,0.000000000000000000000000001],"string":"€$\u000f\nA'B\"\\\\\"/"}"#
        );
    }
}
