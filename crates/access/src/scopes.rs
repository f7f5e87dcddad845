//! SMART App Launch v2 scopes (`user/Observation.rs`, `user/*.cruds`, `system/*.*`,
//! `patient/Observation.rs?category=laboratory`) and the v1 forms (`.read`, `.write`, `.*`),
//! parsed once into [`Scopes`] and asked as often as a request needs.

use crate::policy::Interaction;

/// What the token's scopes say about one access.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ScopeGrant {
    /// Some scope covers it.
    Allowed,
    /// None does; the reason is safe to show.
    Refused(String),
}

/// Whose data a scope is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Context {
    /// `user/`, `system/`: whatever the account may see.
    Any,
    /// `patient/`: only the patient in the token's launch context.
    Patient,
}

/// One `name=value` restriction of a v2 scope.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Restriction {
    /// `category=code` or `category=system|code`.
    Category(String),
    /// Any other parameter: not understood, so it covers nothing (ignoring a restriction would
    /// over-grant).
    Unknown,
}

/// One scope a token holds.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Scope {
    context: Context,
    /// `None`: every type (`*`).
    resource_type: Option<String>,
    /// Permitted interactions.
    permits: [bool; 5],
    restrictions: Vec<Restriction>,
}

fn slot(i: Interaction) -> usize {
    match i {
        Interaction::Create => 0,
        Interaction::Read => 1,
        Interaction::Update => 2,
        Interaction::Delete => 3,
        Interaction::Search => 4,
    }
}

impl Scope {
    /// A resource scope, or `None` for anything else (`openid`, `fhirUser`, malformed ones),
    /// which never grants access to records.
    fn parse(s: &str) -> Option<Self> {
        let (context, rest) = s.split_once('/')?;
        let context = match context {
            "user" | "system" => Context::Any,
            "patient" => Context::Patient,
            _ => return None,
        };
        let (body, query) = match rest.split_once('?') {
            Some((b, q)) => (b, Some(q)),
            None => (rest, None),
        };
        let (rtype, perms) = body.split_once('.')?;
        let permits = match perms {
            "*" => [true; 5],
            "read" => [false, true, false, false, true],
            "write" => [true, false, true, true, false],
            p if is_v2_permission_string(p) => {
                let mut permits = [false; 5];
                for (i, letter) in "cruds".chars().enumerate() {
                    permits[i] = p.contains(letter);
                }
                permits
            }
            _ => return None,
        };
        let restrictions = query
            .map(|q| {
                q.split('&')
                    .map(|pair| match pair.split_once('=') {
                        Some(("category", wanted)) => Restriction::Category(wanted.to_owned()),
                        _ => Restriction::Unknown,
                    })
                    .collect()
            })
            .unwrap_or_default();
        Some(Self {
            context,
            resource_type: (rtype != "*").then(|| rtype.to_owned()),
            permits,
            restrictions,
        })
    }

    fn reaches(&self, resource_type: &str, interaction: Interaction) -> bool {
        self.resource_type
            .as_deref()
            .is_none_or(|t| t == resource_type)
            && self.permits[slot(interaction)]
    }

    fn covers(&self, ctx: &Ctx<'_>) -> bool {
        if self.context == Context::Patient
            && (ctx.owner_patient.is_none() || ctx.owner_patient != ctx.patient_context)
        {
            // Bound to the launch patient: the record must be known to be theirs.
            return false;
        }
        self.reaches(ctx.resource_type, ctx.interaction)
            && self.restrictions.iter().all(|r| match r {
                Restriction::Category(wanted) => {
                    let wanted_code = wanted.rsplit('|').next().unwrap_or(wanted);
                    ctx.categories.is_some_and(|cats| {
                        cats.iter()
                            .any(|c| c == wanted || c.rsplit('|').next() == Some(wanted_code))
                    })
                }
                Restriction::Unknown => false,
            })
    }
}

/// v2 permissions are a non-empty subsequence of `cruds`, in that order.
fn is_v2_permission_string(p: &str) -> bool {
    let mut order = "cruds".chars();
    !p.is_empty() && p.chars().all(|c| order.by_ref().any(|o| o == c))
}

/// What is known of the record an access is about.
struct Ctx<'a> {
    resource_type: &'a str,
    interaction: Interaction,
    owner_patient: Option<&'a str>,
    patient_context: Option<&'a str>,
    categories: Option<&'a [String]>,
}

/// A token's scopes (its space-separated `scope` claim), parsed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Scopes(Vec<Scope>);

impl Scopes {
    /// Parses a `scope` claim; scopes that grant nothing on records are left out.
    pub fn parse(claim: &str) -> Self {
        Self(claim.split_whitespace().filter_map(Scope::parse).collect())
    }

    /// Whether some scope permits `interaction` on `resource_type` without knowing the record
    /// (no `patient/` scopes, no `?param=` restrictions).
    pub fn allow(&self, resource_type: &str, interaction: Interaction) -> bool {
        self.grant(resource_type, interaction, None, None, None) == ScopeGrant::Allowed
    }

    /// Whether some scope could cover `interaction` on `resource_type` for some record: a check
    /// before any lookup, so that a caller whose scopes cannot reach the type learns nothing
    /// about which records exist (403 before lookup; the full decision follows once the record
    /// is known).
    pub fn may_cover(&self, resource_type: &str, interaction: Interaction) -> bool {
        self.0.iter().any(|s| s.reaches(resource_type, interaction))
    }

    /// Whether some scope that could let `interaction` on `resource_type` through does so only
    /// for records of a `?category=`: only then can knowing the categories change a denial.
    pub fn restricted_by_category(&self, resource_type: &str, interaction: Interaction) -> bool {
        self.0.iter().any(|s| {
            s.reaches(resource_type, interaction)
                && s.restrictions
                    .iter()
                    .any(|r| matches!(r, Restriction::Category(_)))
        })
    }

    /// Whether some scope covers `interaction` on `resource_type` for a record of
    /// `owner_patient` (`Patient/{id}`, when known) with `categories` (when known). A `patient/`
    /// scope covers only the patient in the token's context (`patient_context`); `?category=`
    /// covers only resources carrying that category code (`code` or `system|code`); any other
    /// `?param=` covers nothing.
    pub fn grant(
        &self,
        resource_type: &str,
        interaction: Interaction,
        owner_patient: Option<&str>,
        patient_context: Option<&str>,
        categories: Option<&[String]>,
    ) -> ScopeGrant {
        let ctx = Ctx {
            resource_type,
            interaction,
            owner_patient,
            patient_context,
            categories,
        };
        if self.0.iter().any(|s| s.covers(&ctx)) {
            ScopeGrant::Allowed
        } else {
            ScopeGrant::Refused(format!(
                "token scopes do not permit '{}' on {resource_type}",
                interaction.letter()
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Interaction::*;

    fn allows(scopes: &str, rt: &str, i: Interaction) -> bool {
        Scopes::parse(scopes).allow(rt, i)
    }

    #[test]
    fn v2_and_v1_scopes() {
        assert!(allows("user/*.cruds", "Observation", Create));
        assert!(allows("user/*.cruds", "Observation", Delete));
        assert!(allows("user/Observation.rs", "Observation", Read));
        assert!(allows("user/Observation.rs", "Observation", Search));
        assert!(!allows("user/Observation.rs", "Observation", Update));
        assert!(!allows("user/Observation.rs", "Patient", Read));
        assert!(allows("openid user/Patient.r", "Patient", Read));
        assert!(allows("system/*.*", "Patient", Delete));
        assert!(allows("user/*.read", "Patient", Read));
        assert!(!allows("user/*.read", "Patient", Create));
        assert!(allows("user/*.write", "Patient", Update));
        assert!(
            !allows("user/*.rc", "Patient", Read),
            "out of order is invalid"
        );
        assert!(!allows("user/*.x", "Patient", Read));
        assert!(!allows(
            "user/Observation.rs?category=laboratory",
            "Observation",
            Read
        ));
        assert!(!allows("patient/*.rs", "Observation", Read));
        assert!(!allows("", "Patient", Read));
        assert!(!allows("admin/*.*", "Patient", Read));
    }

    #[test]
    fn reach_before_lookup_ignores_the_record_but_not_the_permissions() {
        let s = Scopes::parse("patient/Observation.rs?category=laboratory user/Patient.c");
        assert!(s.may_cover("Observation", Read));
        assert!(!s.may_cover("Observation", Update));
        assert!(s.may_cover("Patient", Create));
        assert!(!s.may_cover("Encounter", Read));
        assert!(s.restricted_by_category("Observation", Read));
        assert!(!s.restricted_by_category("Patient", Create));
        assert!(!Scopes::parse("admin/*.*").may_cover("Patient", Read));
    }

    fn grant(
        scopes: &str,
        owner: Option<&str>,
        ctx: Option<&str>,
        cats: Option<&[String]>,
    ) -> bool {
        Scopes::parse(scopes).grant("Observation", Read, owner, ctx, cats) == ScopeGrant::Allowed
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
            Scopes::parse("user/Observation.rs?category=laboratory").grant(
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
