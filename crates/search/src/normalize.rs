//! FHIR string matching (R4 §3.1.1.5.7): case- and accent-insensitive, so values are compared
//! after folding: compatibility decomposition, combining marks dropped, lower case, runs of
//! white space made one space.

use unicode_normalization::UnicodeNormalization;
use unicode_normalization::char::is_combining_mark;

/// `s` folded for matching.
pub fn fold(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut space = false;
    for c in s.nfkd().filter(|c| !is_combining_mark(*c)) {
        if c.is_whitespace() {
            space = !out.is_empty();
            continue;
        }
        if space {
            out.push(' ');
            space = false;
        }
        out.extend(c.to_lowercase());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::fold;

    #[test]
    fn folds_case_accents_and_space() {
        assert_eq!(fold("  Müller\t Ñandú "), "muller nandu");
        assert_eq!(fold("ÉLODIE"), "elodie");
        assert_eq!(fold("ﬁ"), "fi");
        assert_eq!(fold(""), "");
    }
}
