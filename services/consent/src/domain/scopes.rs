//! SMART App Launch v2 scopes (`user/Observation.rs`, `user/*.cruds`, `system/*.*`) and the v1
//! forms (`.read`, `.write`, `.*`).

use super::policy::Interaction;

/// Whether any of the space-separated `scopes` permits `interaction` on `resource_type`.
pub fn scope_allows(scopes: &str, resource_type: &str, interaction: Interaction) -> bool {
    scopes
        .split_whitespace()
        .any(|s| one_scope_allows(s, resource_type, interaction))
}

fn one_scope_allows(scope: &str, resource_type: &str, interaction: Interaction) -> bool {
    let Some((context, rest)) = scope.split_once('/') else {
        return false;
    };
    if !matches!(context, "user" | "system" | "patient") {
        return false;
    }
    // `patient/` scopes are bound to a launch patient, which needs consent rules (issue 4).
    if context == "patient" {
        return false;
    }
    // v2 allows `?param=value` restrictions; they narrow, so ignoring them would over-grant.
    if rest.contains('?') {
        return false;
    }
    let Some((rtype, perms)) = rest.split_once('.') else {
        return false;
    };
    if rtype != "*" && rtype != resource_type {
        return false;
    }
    let letter = interaction.letter();
    match perms {
        "*" => true,
        "read" => matches!(interaction, Interaction::Read | Interaction::Search),
        "write" => matches!(
            interaction,
            Interaction::Create | Interaction::Update | Interaction::Delete
        ),
        p => is_v2_permission_string(p) && p.contains(letter),
    }
}

/// v2 permissions are a non-empty subsequence of `cruds`, in that order.
fn is_v2_permission_string(p: &str) -> bool {
    let mut order = "cruds".chars();
    !p.is_empty() && p.chars().all(|c| order.by_ref().any(|o| o == c))
}

#[cfg(test)]
mod tests {
    use super::*;
    use Interaction::*;

    #[test]
    fn v2_and_v1_scopes() {
        assert!(scope_allows("user/*.cruds", "Observation", Create));
        assert!(scope_allows("user/*.cruds", "Observation", Delete));
        assert!(scope_allows("user/Observation.rs", "Observation", Read));
        assert!(scope_allows("user/Observation.rs", "Observation", Search));
        assert!(!scope_allows("user/Observation.rs", "Observation", Update));
        assert!(!scope_allows("user/Observation.rs", "Patient", Read));
        assert!(scope_allows("openid user/Patient.r", "Patient", Read));
        assert!(scope_allows("system/*.*", "Patient", Delete));
        assert!(scope_allows("user/*.read", "Patient", Read));
        assert!(!scope_allows("user/*.read", "Patient", Create));
        assert!(scope_allows("user/*.write", "Patient", Update));
        assert!(
            !scope_allows("user/*.rc", "Patient", Read),
            "out of order is invalid"
        );
        assert!(!scope_allows("user/*.x", "Patient", Read));
        assert!(!scope_allows(
            "user/Observation.rs?category=laboratory",
            "Observation",
            Read
        ));
        assert!(!scope_allows("", "Patient", Read));
        assert!(!scope_allows("admin/*.*", "Patient", Read));
    }
}
