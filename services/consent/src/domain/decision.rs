//! The access decision, in the documented order (docs/architecture.md §11), free of I/O:
//!
//! 1. the token's SMART scopes must cover the interaction and the type (else deny);
//! 2. a patient always reaches their own records, within their scopes (their audit trail
//!    included); an auditor reads the audit trail (`AuditEvent`) and nothing else;
//! 3. a practitioner always keeps access to records they wrote (the custodian); an organization
//!    account (an EHR or lab feed, such as the MLLP listener) may update and delete what it
//!    wrote, but reads only as anyone else does (a feed's token must not become a way around
//!    the patient's consent);
//! 4. records of no patient (directory resources owned by `Organization`) are shared among
//!    practitioners and organizations;
//! 5. break-glass: a verified practitioner stating a reason reads;
//! 6. an applicable patient `deny` provision denies;
//! 7. an applicable `permit` (a consent or an approved access request) allows, for verified
//!    practitioners only;
//! 8. otherwise deny.
//!
//! Writes of new patient data by practitioners and organizations are allowed within scopes (the
//! writer becomes the custodian); updates and deletes need custody or the patient's own
//! compartment.

use medledger_auth::Claims;

use super::consent::{Access, ConsentRecord, ProvisionType};
use medledger_access::{Interaction, ScopeGrant, Scopes};

/// Who is asking, as the decision sees it.
#[derive(Debug, Clone, Copy)]
pub struct Actor<'a> {
    /// The verified token.
    pub claims: &'a Claims,
    /// Whether an authority has verified this practitioner (consent service's store).
    pub verified_practitioner: bool,
}

impl Actor<'_> {
    /// The actor's FHIR reference: `fhirUser`, else the subject.
    pub fn reference(&self) -> &str {
        self.claims.fhir_user.as_deref().unwrap_or(&self.claims.sub)
    }

    fn role(&self) -> &str {
        &self.claims.role
    }
}

/// What is accessed.
#[derive(Debug, Clone, Copy)]
pub struct Target<'a> {
    /// The interaction.
    pub interaction: Interaction,
    /// Resource type.
    pub resource_type: &'a str,
    /// Owner label (`Patient/{id}` or `Organization`); `None` when not known (a search over
    /// patients, a create before its owner is read).
    pub owner: Option<&'a str>,
    /// Who wrote the current version (its custodian), when the record exists.
    pub custodian: Option<&'a str>,
    /// The resource's category codes, when known (for `?category=` scopes).
    pub categories: Option<&'a [String]>,
}

/// Why access is asked for.
#[derive(Debug, Clone, Copy, Default)]
pub struct Circumstances<'a> {
    /// Purpose of use (`X-Purpose-Of-Use`), e.g. `TREAT`.
    pub purpose: Option<&'a str>,
    /// Break-glass reason (`X-Break-Glass-Reason`).
    pub break_glass_reason: Option<&'a str>,
    /// Now, Unix seconds (injectable for tests).
    pub now: i64,
}

/// On what grounds access was allowed (recorded in the audit trail).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Basis {
    /// The patient's own records.
    OwnRecords,
    /// The practitioner wrote the record.
    Custodian,
    /// A new record, written by a practitioner or organization.
    NewRecord,
    /// Directory data of no patient.
    SharedDirectory,
    /// An auditor reading the audit trail.
    AuditTrail,
    /// Emergency access with a stated reason.
    BreakGlass,
    /// A patient's consent (or an approved access request, which is one), `Consent/{id}`.
    Consent(String),
}

/// The answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Allowed, and why.
    Permit(Basis),
    /// Denied, with a reason safe to show the caller.
    Deny(String),
}

/// Decides one access by `actor` to `target` under `consents` (the owner's consents, approved
/// access requests included).
pub fn decide(
    actor: Actor<'_>,
    target: Target<'_>,
    circumstances: Circumstances<'_>,
    consents: &[ConsentRecord],
) -> Verdict {
    let owner_patient = target.owner.filter(|o| o.starts_with("Patient/"));
    // 1. Scopes.
    match Scopes::parse(&actor.claims.scope).grant(
        target.resource_type,
        target.interaction,
        owner_patient,
        actor.claims.patient_context().as_deref(),
        target.categories,
    ) {
        ScopeGrant::Allowed => {}
        ScopeGrant::Refused(why) => return Verdict::Deny(why),
    }
    let me = actor.reference();
    let practitioner = actor.role() == "practitioner";
    // 2. Own records.
    if actor.role() == "patient" && owner_patient == Some(me) {
        return Verdict::Permit(Basis::OwnRecords);
    }
    if actor.role() == "auditor"
        && target.resource_type == "AuditEvent"
        && matches!(target.interaction, Interaction::Read | Interaction::Search)
    {
        return Verdict::Permit(Basis::AuditTrail);
    }
    // 3. Custodian.
    let writes = matches!(
        target.interaction,
        Interaction::Update | Interaction::Delete
    );
    if target.custodian == Some(me) && (practitioner || actor.role() == "organization" && writes) {
        return Verdict::Permit(Basis::Custodian);
    }
    // New records: whoever writes them becomes their custodian.
    if target.interaction == Interaction::Create
        && matches!(actor.role(), "practitioner" | "organization")
    {
        return Verdict::Permit(Basis::NewRecord);
    }
    // 4. Data of no patient.
    if target.owner == Some("Organization")
        && matches!(actor.role(), "practitioner" | "organization")
    {
        return Verdict::Permit(Basis::SharedDirectory);
    }
    let Some(patient) = owner_patient else {
        return Verdict::Deny("access to records of unknown patients needs their consent".into());
    };
    // Beyond this point only reads and searches: consents grant access, not authorship.
    if !matches!(target.interaction, Interaction::Read | Interaction::Search) {
        return Verdict::Deny("only the record's custodian may change it".into());
    }
    // 5. Break-glass.
    if let Some(reason) = circumstances
        .break_glass_reason
        .filter(|r| !r.trim().is_empty())
    {
        let _ = reason;
        if practitioner && actor.verified_practitioner {
            return Verdict::Permit(Basis::BreakGlass);
        }
        return Verdict::Deny("break-glass access needs a verified practitioner".into());
    }
    let access = Access {
        actor: me,
        resource_type: target.resource_type,
        purpose: circumstances.purpose,
        now: circumstances.now,
    };
    let applicable: Vec<(&ConsentRecord, ProvisionType)> = consents
        .iter()
        .filter(|c| c.patient == patient)
        .filter_map(|c| c.evaluate(&access).map(|t| (c, t)))
        .collect();
    // 6. A deny anywhere wins over any permit.
    if applicable.iter().any(|(_, t)| *t == ProvisionType::Deny) {
        return Verdict::Deny("the patient's consent denies this access".into());
    }
    // 7. A permit, for verified practitioners.
    if let Some((c, _)) = applicable.iter().find(|(_, t)| *t == ProvisionType::Permit) {
        if practitioner && actor.verified_practitioner {
            return Verdict::Permit(Basis::Consent(c.id.clone()));
        }
        return Verdict::Deny("consent grants access to verified practitioners only".into());
    }
    // 8.
    Verdict::Deny("no consent permits this access".into())
}
