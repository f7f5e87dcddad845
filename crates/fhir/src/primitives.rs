//! FHIR primitive rules shared by every service that writes resources.

/// FHIR ids: 1–64 of `[A-Za-z0-9\-\.]` (R4 §2.24.0.1 `id`), and not only dots: `.` and `..`
/// are URL path segments (`Patient/..` names the type's collection, not a resource), so no
/// server can serve a resource under them.
pub fn valid_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 64
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
        && !id.bytes().all(|b| b == b'.')
}

/// The version an entity tag names: `W/"3"` or `"3"` (an `ETag`, `If-Match` or a Bundle
/// entry's `ifMatch`).
pub fn etag_version(tag: &str) -> Option<u64> {
    let tag = tag.trim();
    let tag = tag.strip_prefix("W/").unwrap_or(tag);
    tag.trim_matches('"').parse().ok()
}

/// `W/"n"`: the entity tag of version `n`.
pub fn etag(version: u64) -> String {
    format!("W/\"{version}\"")
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
        assert!(!valid_id(".") && !valid_id("..") && !valid_id("..."));
        assert!(valid_id("a..b") && valid_id(".a"));
        assert_eq!(etag_version("W/\"3\""), Some(3));
        assert_eq!(etag_version("\"12\""), Some(12));
        assert_eq!(etag_version("x"), None);
        assert_eq!(etag(4), "W/\"4\"");
        let (s, ms) = now_instant();
        assert!(s.ends_with('Z') && s.len() == 24, "{s}");
        assert!(ms > 1_700_000_000_000);
    }
}
