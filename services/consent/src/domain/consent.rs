//! Patient consents as FHIR R4 `Consent` resources (scope `patient-privacy`), reduced to what an
//! access decision needs: whose consent, its status and period, and its provisions.
//!
//! R4 §6.2 `Consent.provision`: the root provision's `type` (`permit`/`deny`) applies to every
//! access its conditions match; a nested provision whose conditions also match overrides its
//! parent (exceptions nest, the deepest match wins). Conditions are ANDed across elements and
//! ORed within one: `actor` (by reference), `class` (resource type, as a `Coding` whose `code` is
//! the type), `purpose` (v3 PurposeOfUse codes) and `period`. A missing condition matches
//! anything.

use serde_json::Value;

/// `permit` or `deny`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProvisionType {
    /// Access is allowed.
    Permit,
    /// Access is refused.
    Deny,
}

/// One `Consent.provision` (or nested provision).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Provision {
    /// What this provision decides when it applies.
    pub kind: ProvisionType,
    /// References of the actors it covers (`Practitioner/dr-1`); empty: every actor.
    pub actors: Vec<String>,
    /// Resource types it covers; empty: all.
    pub classes: Vec<String>,
    /// Purposes of use it covers; empty: any.
    pub purposes: Vec<String>,
    /// `[start, end)` in Unix seconds; `None` bounds are open.
    pub period: (Option<i64>, Option<i64>),
    /// Exceptions to this provision.
    pub provisions: Vec<Provision>,
}

/// `Consent.status` as far as decisions go: only `active` consents apply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConsentStatus {
    /// In force.
    Active,
    /// Anything else (`draft`, `proposed`, `rejected`, `inactive`, `entered-in-error`).
    NotActive,
}

/// A patient's consent as the decision sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsentRecord {
    /// `Consent/{id}`.
    pub id: String,
    /// `Patient/{id}` the consent is about.
    pub patient: String,
    /// Whether it applies at all.
    pub status: ConsentStatus,
    /// The root provision.
    pub provision: Provision,
}

/// What is being accessed, for matching provisions.
#[derive(Debug, Clone, Copy)]
pub struct Access<'a> {
    /// The actor's reference (`fhirUser`, e.g. `Practitioner/dr-1`).
    pub actor: &'a str,
    /// Resource type.
    pub resource_type: &'a str,
    /// Purpose of use, if stated.
    pub purpose: Option<&'a str>,
    /// Now, Unix seconds.
    pub now: i64,
}

impl Provision {
    fn matches(&self, a: &Access<'_>) -> bool {
        let any_or = |list: &[String], v: &str| list.is_empty() || list.iter().any(|x| x == v);
        let in_period =
            self.period.0.is_none_or(|s| a.now >= s) && self.period.1.is_none_or(|e| a.now < e);
        any_or(&self.actors, a.actor)
            && any_or(&self.classes, a.resource_type)
            && (self.purposes.is_empty()
                || a.purpose
                    .is_some_and(|p| self.purposes.iter().any(|x| x == p)))
            && in_period
    }

    /// The decision of this provision for `a`: `None` when its conditions do not match, else
    /// its type unless a matching nested provision overrides it.
    pub fn evaluate(&self, a: &Access<'_>) -> Option<ProvisionType> {
        if !self.matches(a) {
            return None;
        }
        Some(
            self.provisions
                .iter()
                .find_map(|p| p.evaluate(a))
                .unwrap_or(self.kind),
        )
    }
}

impl ConsentRecord {
    /// The consent's decision for `a`, when it is active and a provision applies.
    pub fn evaluate(&self, a: &Access<'_>) -> Option<ProvisionType> {
        match self.status {
            ConsentStatus::Active => self.provision.evaluate(a),
            ConsentStatus::NotActive => None,
        }
    }
}

/// Why a `Consent` resource cannot be used. Messages name elements, never values.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct InvalidConsent(pub String);

fn err(m: impl Into<String>) -> InvalidConsent {
    InvalidConsent(m.into())
}

/// The `patient-privacy` scope (http://terminology.hl7.org/CodeSystem/consentscope).
const PRIVACY_SCOPE: &str = "patient-privacy";

fn instant(v: &Value, what: &str) -> Result<Option<i64>, InvalidConsent> {
    match v {
        Value::Null => Ok(None),
        Value::String(s) => {
            let parsed =
                time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339)
                    .map(|t| t.unix_timestamp())
                    .or_else(|_| {
                        // A date alone means its first instant, UTC.
                        let f = time::macros::format_description!("[year]-[month]-[day]");
                        time::Date::parse(s, &f).map(|d| d.midnight().assume_utc().unix_timestamp())
                    })
                    .map_err(|_| err(format!("{what} is not a FHIR dateTime")))?;
            Ok(Some(parsed))
        }
        _ => Err(err(format!("{what} is not a string"))),
    }
}

fn strings<'a>(
    list: &'a Value,
    what: &str,
    pick: impl Fn(&'a Value) -> Option<&'a str>,
) -> Result<Vec<String>, InvalidConsent> {
    match list {
        Value::Null => Ok(Vec::new()),
        Value::Array(items) => items
            .iter()
            .map(|i| {
                pick(i)
                    .map(str::to_owned)
                    .ok_or_else(|| err(format!("{what} is malformed")))
            })
            .collect(),
        _ => Err(err(format!("{what} is not an array"))),
    }
}

fn provision(
    v: &Value,
    depth: usize,
    parent: Option<ProvisionType>,
) -> Result<Provision, InvalidConsent> {
    if depth > 8 {
        return Err(err("provisions nest deeper than 8 levels"));
    }
    let kind = match v["type"].as_str() {
        Some("permit") => ProvisionType::Permit,
        Some("deny") => ProvisionType::Deny,
        None => match parent {
            // A nested provision without a type is the exception to its parent.
            Some(ProvisionType::Permit) => ProvisionType::Deny,
            Some(ProvisionType::Deny) => ProvisionType::Permit,
            None => return Err(err("Consent.provision.type must be permit or deny")),
        },
        Some(_) => return Err(err("provision.type must be permit or deny")),
    };
    let actors = strings(&v["actor"], "provision.actor", |a| {
        a["reference"]["reference"].as_str()
    })?;
    let classes = strings(&v["class"], "provision.class", |c| c["code"].as_str())?;
    let purposes = strings(&v["purpose"], "provision.purpose", |p| p["code"].as_str())?;
    let period = (
        instant(&v["period"]["start"], "provision.period.start")?,
        instant(&v["period"]["end"], "provision.period.end")?,
    );
    if let (Some(s), Some(e)) = period
        && e <= s
    {
        return Err(err("provision.period ends before it starts"));
    }
    let provisions = match &v["provision"] {
        Value::Null => Vec::new(),
        Value::Array(list) => list
            .iter()
            .map(|p| provision(p, depth + 1, Some(kind)))
            .collect::<Result<_, _>>()?,
        _ => return Err(err("provision.provision is not an array")),
    };
    Ok(Provision {
        kind,
        actors,
        classes,
        purposes,
        period,
        provisions,
    })
}

/// Reads a `Consent` resource (already validated as FHIR R4) into a [`ConsentRecord`]: it must
/// have scope `patient-privacy`, a `patient` reference to `Patient/{id}` and a root provision.
pub fn parse_consent(id: &str, resource: &Value) -> Result<ConsentRecord, InvalidConsent> {
    if resource["resourceType"] != "Consent" {
        return Err(err("not a Consent"));
    }
    let scope_ok = resource["scope"]["coding"]
        .as_array()
        .is_some_and(|c| c.iter().any(|x| x["code"] == PRIVACY_SCOPE));
    if !scope_ok {
        return Err(err("Consent.scope must be patient-privacy"));
    }
    let patient = resource["patient"]["reference"]
        .as_str()
        .filter(|r| {
            r.strip_prefix("Patient/")
                .is_some_and(|i| !i.is_empty() && !i.contains('/'))
        })
        .ok_or_else(|| err("Consent.patient must reference Patient/{id}"))?;
    let status = match resource["status"].as_str() {
        Some("active") => ConsentStatus::Active,
        Some(_) => ConsentStatus::NotActive,
        None => return Err(err("Consent.status is required")),
    };
    if resource["provision"].is_null() {
        return Err(err("Consent.provision is required"));
    }
    Ok(ConsentRecord {
        id: format!("Consent/{id}"),
        patient: patient.to_owned(),
        status,
        provision: provision(&resource["provision"], 0, None)?,
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use serde_json::json;

    fn access(actor: &str, rt: &str, purpose: Option<&'static str>, now: i64) -> Access<'static> {
        Access {
            actor: Box::leak(actor.to_owned().into_boxed_str()),
            resource_type: Box::leak(rt.to_owned().into_boxed_str()),
            purpose,
            now,
        }
    }

    fn consent(provision: Value) -> ConsentRecord {
        parse_consent(
            "c1",
            &json!({
                "resourceType": "Consent",
                "status": "active",
                "scope": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/consentscope", "code": "patient-privacy"}]},
                "category": [{"coding": [{"system": "http://loinc.org", "code": "59284-0"}]}],
                "patient": {"reference": "Patient/p1"},
                "provision": provision
            }),
        )
        .unwrap()
    }

    #[test]
    fn nested_provisions_override_their_parent() {
        // Permit Dr 1 everything in 2026, except mental-health notes (DocumentReference).
        let c = consent(json!({
            "type": "permit",
            "period": {"start": "2026-01-01", "end": "2027-01-01"},
            "actor": [{"role": {"text": "x"}, "reference": {"reference": "Practitioner/dr-1"}}],
            "provision": [{"type": "deny", "class": [{"code": "DocumentReference"}]}]
        }));
        let in_2026 = 1_780_000_000;
        assert_eq!(
            c.evaluate(&access("Practitioner/dr-1", "Observation", None, in_2026)),
            Some(ProvisionType::Permit)
        );
        assert_eq!(
            c.evaluate(&access(
                "Practitioner/dr-1",
                "DocumentReference",
                None,
                in_2026
            )),
            Some(ProvisionType::Deny)
        );
        assert_eq!(
            c.evaluate(&access("Practitioner/dr-2", "Observation", None, in_2026)),
            None
        );
        assert_eq!(
            c.evaluate(&access(
                "Practitioner/dr-1",
                "Observation",
                None,
                1_900_000_000
            )),
            None,
            "expired"
        );
    }

    #[test]
    fn purposes_must_be_stated_when_restricted() {
        let c = consent(json!({"type": "permit", "purpose": [{"code": "TREAT"}]}));
        assert_eq!(
            c.evaluate(&access(
                "Practitioner/dr-1",
                "Observation",
                Some("TREAT"),
                0
            )),
            Some(ProvisionType::Permit)
        );
        assert_eq!(
            c.evaluate(&access(
                "Practitioner/dr-1",
                "Observation",
                Some("HRESCH"),
                0
            )),
            None
        );
        assert_eq!(
            c.evaluate(&access("Practitioner/dr-1", "Observation", None, 0)),
            None
        );
    }

    #[test]
    fn malformed_consents_are_refused_by_element() {
        let base = json!({"resourceType": "Consent", "status": "active",
            "scope": {"coding": [{"code": "patient-privacy"}]},
            "patient": {"reference": "Patient/p1"}, "provision": {"type": "permit"}});
        assert!(parse_consent("c", &base).is_ok());
        let mut v = base.clone();
        v["scope"]["coding"][0]["code"] = json!("research");
        assert!(parse_consent("c", &v).unwrap_err().0.contains("scope"));
        let mut v = base.clone();
        v["patient"]["reference"] = json!("Group/g");
        assert!(parse_consent("c", &v).unwrap_err().0.contains("patient"));
        let mut v = base.clone();
        v["provision"]["type"] = json!("maybe");
        assert!(parse_consent("c", &v).unwrap_err().0.contains("type"));
        let mut v = base.clone();
        v["provision"]["period"] = json!({"start": "2027-01-01", "end": "2026-01-01"});
        assert!(parse_consent("c", &v).unwrap_err().0.contains("period"));
        let mut v = base;
        v["status"] = json!("inactive");
        assert_eq!(
            parse_consent("c", &v).unwrap().status,
            ConsentStatus::NotActive
        );
    }
}
