//! FHIR primitive rules shared by every service that writes resources.

/// FHIR ids: 1–64 of `[A-Za-z0-9\-\.]` (R4 §2.24.0.1 `id`).
pub fn valid_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 64
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
}

/// Now as a FHIR `instant` with millisecond precision (UTC), and as Unix milliseconds.
pub fn now_instant() -> (String, i64) {
    let now = time::OffsetDateTime::now_utc();
    let ms = (now.unix_timestamp_nanos() / 1_000_000) as i64;
    let fmt = time::macros::format_description!(
        "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z"
    );
    (now.format(&fmt).unwrap_or_default(), ms)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_and_instants() {
        assert!(valid_id("a-1.B"));
        assert!(!valid_id(""));
        assert!(!valid_id("a/b"));
        assert!(!valid_id(&"x".repeat(65)));
        let (s, ms) = now_instant();
        assert!(s.ends_with('Z') && s.len() == 24, "{s}");
        assert!(ms > 1_700_000_000_000);
    }
}
