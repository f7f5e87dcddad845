//! SMART App Launch v2 scopes (`user/Observation.rs`, `user/*.cruds`, `system/*.*`) and the v1
//! forms (`.read`, `.write`, `.*`).

use super::policy::Interaction;

/// What the token's scopes say about one access.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ScopeGrant {
    /// Some scope covers it.
    Allowed,
    /// None does; the reason is safe to show.
    Refused(String),
}

/// Whether any of the space-separated `scopes` permits `interaction` on `resource_type`
/// without knowing the record (no `patient/` scopes, no `?param=` restrictions).
pub fn scope_allows(scopes: &str, resource_type: &str, interaction: Interaction) -> bool {
    scope_grant(scopes, resource_type, interaction, None, None, None) == ScopeGrant::Allowed
}

/// Whether some scope could cover `interaction` on `resource_type` for some record: a check
/// before any lookup, so that a caller whose scopes cannot reach the type learns nothing about
/// which records exist (403 before lookup; the full decision follows once the record is known).
pub fn scopes_may_cover(scopes: &str, resource_type: &str, interaction: Interaction) -> bool {
    scopes.split_whitespace().any(|scope| {
        let Some((context, rest)) = scope.split_once('/') else {
            return false;
        };
        let body = rest.split_once('?').map_or(rest, |(b, _)| b);
        matches!(context, "user" | "system" | "patient")
            && one_scope_covers(
                &format!("user/{body}"),
                &Ctx {
                    resource_type,
                    interaction,
                    owner_patient: None,
                    patient_context: None,
                    categories: None,
                },
            )
    })
}

/// Whether some scope covers `interaction` on `resource_type` for a record of `owner_patient`
/// (`Patient/{id}`, when known) with `categories` (when known). A `patient/` scope covers only
/// the patient in the token's context (`patient_context`); `?category=` covers only resources
/// carrying that category code (`code` or `system|code`); any other `?param=` covers nothing,
/// since ignoring a restriction would over-grant.
pub fn scope_grant(
    scopes: &str,
    resource_type: &str,
    interaction: Interaction,
    owner_patient: Option<&str>,
    patient_context: Option<String>,
    categories: Option<&[String]>,
) -> ScopeGrant {
    let ctx = Ctx {
        resource_type,
        interaction,
        owner_patient,
        patient_context: patient_context.as_deref(),
        categories,
    };
    if scopes.split_whitespace().any(|s| one_scope_covers(s, &ctx)) {
        ScopeGrant::Allowed
    } else {
        ScopeGrant::Refused(format!(
            "token scopes do not permit '{}' on {resource_type}",
            interaction.letter()
        ))
    }
}

struct Ctx<'a> {
    resource_type: &'a str,
    interaction: Interaction,
    owner_patient: Option<&'a str>,
    patient_context: Option<&'a str>,
    categories: Option<&'a [String]>,
}

fn one_scope_covers(scope: &str, ctx: &Ctx<'_>) -> bool {
    let Some((context, rest)) = scope.split_once('/') else {
        return false;
    };
    match context {
        "user" | "system" => {}
        // Bound to the launch patient: the record must be known to be theirs.
        "patient" => {
            if ctx.owner_patient.is_none() || ctx.owner_patient != ctx.patient_context {
                return false;
            }
        }
        _ => return false,
    }
    let (body, query) = match rest.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (rest, None),
    };
    let Some((rtype, perms)) = body.split_once('.') else {
        return false;
    };
    if rtype != "*" && rtype != ctx.resource_type {
        return false;
    }
    let interaction = ctx.interaction;
    let letter = interaction.letter();
    let permitted = match perms {
        "*" => true,
        "read" => matches!(interaction, Interaction::Read | Interaction::Search),
        "write" => matches!(
            interaction,
            Interaction::Create | Interaction::Update | Interaction::Delete
        ),
        p => is_v2_permission_string(p) && p.contains(letter),
    };
    permitted && query.is_none_or(|q| restrictions_hold(q, ctx))
}

/// v2 permissions are a non-empty subsequence of `cruds`, in that order.
fn is_v2_permission_string(p: &str) -> bool {
    let mut order = "cruds".chars();
    !p.is_empty() && p.chars().all(|c| order.by_ref().any(|o| o == c))
}

/// Every `name=value` restriction of a v2 scope must hold; only `category` is understood.
fn restrictions_hold(query: &str, ctx: &Ctx<'_>) -> bool {
    query.split('&').all(|pair| {
        let Some(("category", wanted)) = pair.split_once('=') else {
            return false;
        };
        let wanted_code = wanted.rsplit('|').next().unwrap_or(wanted);
        ctx.categories.is_some_and(|cats| {
            cats.iter()
                .any(|c| c == wanted || c.rsplit('|').next() == Some(wanted_code))
        })
    })
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
        assert!(!scope_allows("patient/*.rs", "Observation", Read));
        assert!(!scope_allows("", "Patient", Read));
        assert!(!scope_allows("admin/*.*", "Patient", Read));
    }
}

#[cfg(test)]
mod grant_tests {
    use super::*;
    use Interaction::*;

    fn grant(
        scopes: &str,
        owner: Option<&str>,
        ctx: Option<&str>,
        cats: Option<&[String]>,
    ) -> bool {
        scope_grant(
            scopes,
            "Observation",
            Read,
            owner,
            ctx.map(str::to_owned),
            cats,
        ) == ScopeGrant::Allowed
    }

    #[test]
    fn patient_scopes_cover_only_the_patient_in_context() {
        assert!(grant(
            "patient/Observation.rs",
            Some("Patient/p1"),
            Some("Patient/p1"),
            None
        ));
        assert!(!grant(
            "patient/Observation.rs",
            Some("Patient/p2"),
            Some("Patient/p1"),
            None
        ));
        assert!(!grant(
            "patient/Observation.rs",
            None,
            Some("Patient/p1"),
            None
        ));
        assert!(!grant(
            "patient/Observation.rs",
            Some("Patient/p1"),
            None,
            None
        ));
        assert!(!grant(
            "patient/Observation.c",
            Some("Patient/p1"),
            Some("Patient/p1"),
            None
        ));
    }

    #[test]
    fn category_restrictions_need_the_category() {
        let lab = vec![
            "http://terminology.hl7.org/CodeSystem/observation-category|laboratory".to_owned(),
        ];
        let vitals = vec!["vital-signs".to_owned()];
        let s = "user/Observation.rs?category=laboratory";
        assert!(grant(s, Some("Patient/p1"), None, Some(&lab)));
        assert!(!grant(s, Some("Patient/p1"), None, Some(&vitals)));
        assert!(
            !grant(s, Some("Patient/p1"), None, None),
            "unknown category: not covered"
        );
        let full = "user/Observation.rs?category=http://terminology.hl7.org/CodeSystem/observation-category|laboratory";
        assert!(grant(full, Some("Patient/p1"), None, Some(&lab)));
        assert!(!grant(
            "user/Observation.rs?code=123",
            Some("Patient/p1"),
            None,
            Some(&lab)
        ));
        assert_eq!(
            scope_grant(
                "user/Observation.rs?category=laboratory",
                "Observation",
                Create,
                None,
                None,
                Some(&lab)
            ),
            ScopeGrant::Refused("token scopes do not permit 'c' on Observation".into())
        );
    }
}
