//! The search parameters served, per resource type, with the elements each reads (the R4
//! SearchParameter expressions, written as element paths) and, for references, the types they
//! may point to.
//!
//! This table is the one source of what is searchable: the index writes tokens for exactly
//! these, the request parser accepts exactly these, and the CapabilityStatement lists exactly
//! these.

/// The R4 search parameter types served.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Codes, codings, identifiers, contact points, booleans.
    Token,
    /// References to other resources.
    Reference,
    /// Strings, names and addresses (case- and accent-insensitive).
    String,
    /// Dates, date-times, instants and periods.
    Date,
}

impl Kind {
    /// The FHIR `SearchParamType` code.
    pub fn code(self) -> &'static str {
        match self {
            Kind::Token => "token",
            Kind::Reference => "reference",
            Kind::String => "string",
            Kind::Date => "date",
        }
    }
}

/// One search parameter of one resource type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Param {
    /// Its name in the query string.
    pub name: &'static str,
    /// Its type.
    pub kind: Kind,
    /// The elements it reads: dotted paths from the resource root, arrays traversed at every
    /// step; `telecom@phone` keeps only elements whose `system` is `phone`.
    pub paths: &'static [&'static str],
    /// For references: the types it may point to (a bare id means one of these).
    pub targets: &'static [&'static str],
}

const fn token(name: &'static str, paths: &'static [&'static str]) -> Param {
    Param {
        name,
        kind: Kind::Token,
        paths,
        targets: &[],
    }
}

const fn string(name: &'static str, paths: &'static [&'static str]) -> Param {
    Param {
        name,
        kind: Kind::String,
        paths,
        targets: &[],
    }
}

const fn date(name: &'static str, paths: &'static [&'static str]) -> Param {
    Param {
        name,
        kind: Kind::Date,
        paths,
        targets: &[],
    }
}

const fn reference(
    name: &'static str,
    paths: &'static [&'static str],
    targets: &'static [&'static str],
) -> Param {
    Param {
        name,
        kind: Kind::Reference,
        paths,
        targets,
    }
}

const PATIENT: &[&str] = &["Patient"];
const SUBJECT: &[&str] = &["Patient", "Group", "Device", "Location"];
const ENCOUNTER: &[&str] = &["Encounter"];
const WHO: &[&str] = &[
    "Practitioner",
    "PractitionerRole",
    "Organization",
    "Patient",
    "RelatedPerson",
    "Device",
];
const NAME: &[&str] = &[
    "name.family",
    "name.given",
    "name.text",
    "name.prefix",
    "name.suffix",
];

const PATIENT_PARAMS: &[Param] = &[
    token("identifier", &["identifier"]),
    string("family", &["name.family"]),
    string("given", &["name.given"]),
    string("name", NAME),
    date("birthdate", &["birthDate"]),
    token("gender", &["gender"]),
    token("telecom", &["telecom"]),
    token("phone", &["telecom@phone"]),
    token("email", &["telecom@email"]),
    string("address-postalcode", &["address.postalCode"]),
    string("address-city", &["address.city"]),
    token("active", &["active"]),
    reference(
        "general-practitioner",
        &["generalPractitioner"],
        &["Practitioner", "Organization", "PractitionerRole"],
    ),
    reference("organization", &["managingOrganization"], &["Organization"]),
];

const PRACTITIONER_PARAMS: &[Param] = &[
    token("identifier", &["identifier"]),
    string("name", NAME),
    string("family", &["name.family"]),
    string("given", &["name.given"]),
];

const ORGANIZATION_PARAMS: &[Param] = &[
    token("identifier", &["identifier"]),
    string("name", &["name", "alias"]),
    token("type", &["type"]),
];

const LOCATION_PARAMS: &[Param] = &[
    token("identifier", &["identifier"]),
    string("name", &["name", "alias"]),
    string("address-postalcode", &["address.postalCode"]),
    reference("organization", &["managingOrganization"], &["Organization"]),
];

const OBSERVATION_PARAMS: &[Param] = &[
    reference("patient", &["subject"], PATIENT),
    reference("subject", &["subject"], SUBJECT),
    token("code", &["code"]),
    token("category", &["category"]),
    token("status", &["status"]),
    date(
        "date",
        &["effectiveDateTime", "effectivePeriod", "effectiveInstant"],
    ),
    reference("encounter", &["encounter"], ENCOUNTER),
    token("identifier", &["identifier"]),
    reference("performer", &["performer"], WHO),
    token("value-concept", &["valueCodeableConcept"]),
];

const CONDITION_PARAMS: &[Param] = &[
    reference("patient", &["subject"], PATIENT),
    reference("subject", &["subject"], &["Patient", "Group"]),
    token("code", &["code"]),
    token("category", &["category"]),
    token("clinical-status", &["clinicalStatus"]),
    token("verification-status", &["verificationStatus"]),
    date("onset-date", &["onsetDateTime", "onsetPeriod"]),
    date("abatement-date", &["abatementDateTime", "abatementPeriod"]),
    date("recorded-date", &["recordedDate"]),
    reference("encounter", &["encounter"], ENCOUNTER),
    token("identifier", &["identifier"]),
];

const ENCOUNTER_PARAMS: &[Param] = &[
    reference("patient", &["subject"], PATIENT),
    reference("subject", &["subject"], &["Patient", "Group"]),
    token("status", &["status"]),
    token("class", &["class"]),
    token("type", &["type"]),
    date("date", &["period"]),
    token("identifier", &["identifier"]),
    reference(
        "participant",
        &["participant.individual"],
        &["Practitioner", "PractitionerRole", "RelatedPerson"],
    ),
    reference(
        "practitioner",
        &["participant.individual"],
        &["Practitioner"],
    ),
    reference("service-provider", &["serviceProvider"], &["Organization"]),
    reference("location", &["location.location"], &["Location"]),
    token("reason-code", &["reasonCode"]),
];

const PROCEDURE_PARAMS: &[Param] = &[
    reference("patient", &["subject"], PATIENT),
    reference("subject", &["subject"], &["Patient", "Group"]),
    token("code", &["code"]),
    token("category", &["category"]),
    token("status", &["status"]),
    date("date", &["performedDateTime", "performedPeriod"]),
    reference("encounter", &["encounter"], ENCOUNTER),
    token("identifier", &["identifier"]),
];

const MEDICATION_REQUEST_PARAMS: &[Param] = &[
    reference("patient", &["subject"], PATIENT),
    reference("subject", &["subject"], &["Patient", "Group"]),
    token("code", &["medicationCodeableConcept"]),
    token("category", &["category"]),
    token("status", &["status"]),
    token("intent", &["intent"]),
    date("authoredon", &["authoredOn"]),
    reference("encounter", &["encounter"], ENCOUNTER),
    token("identifier", &["identifier"]),
    reference("requester", &["requester"], WHO),
    reference("medication", &["medicationReference"], &["Medication"]),
];

const IMMUNIZATION_PARAMS: &[Param] = &[
    reference("patient", &["patient"], PATIENT),
    token("vaccine-code", &["vaccineCode"]),
    token("status", &["status"]),
    date("date", &["occurrenceDateTime"]),
    token("identifier", &["identifier"]),
    reference("location", &["location"], &["Location"]),
];

const DIAGNOSTIC_REPORT_PARAMS: &[Param] = &[
    reference("patient", &["subject"], PATIENT),
    reference("subject", &["subject"], SUBJECT),
    token("code", &["code"]),
    token("category", &["category"]),
    token("status", &["status"]),
    date("date", &["effectiveDateTime", "effectivePeriod"]),
    date("issued", &["issued"]),
    reference("encounter", &["encounter"], ENCOUNTER),
    token("identifier", &["identifier"]),
    reference("result", &["result"], &["Observation"]),
    reference("performer", &["performer"], WHO),
];

const DOCUMENT_REFERENCE_PARAMS: &[Param] = &[
    reference("patient", &["subject"], PATIENT),
    reference("subject", &["subject"], SUBJECT),
    token("type", &["type"]),
    token("category", &["category"]),
    token("status", &["status"]),
    date("date", &["date"]),
    date("period", &["context.period"]),
    reference("encounter", &["context.encounter"], ENCOUNTER),
    token("identifier", &["masterIdentifier", "identifier"]),
    reference("author", &["author"], WHO),
];

const ALLERGY_PARAMS: &[Param] = &[
    reference("patient", &["patient"], PATIENT),
    token("code", &["code", "reaction.substance"]),
    token("category", &["category"]),
    token("clinical-status", &["clinicalStatus"]),
    token("verification-status", &["verificationStatus"]),
    token("type", &["type"]),
    token("criticality", &["criticality"]),
    date("date", &["recordedDate"]),
    token("identifier", &["identifier"]),
];

const CARE_PLAN_PARAMS: &[Param] = &[
    reference("patient", &["subject"], PATIENT),
    reference("subject", &["subject"], &["Patient", "Group"]),
    token("category", &["category"]),
    token("status", &["status"]),
    token("intent", &["intent"]),
    date("date", &["period"]),
    reference("encounter", &["encounter"], ENCOUNTER),
    token("identifier", &["identifier"]),
];

const CLAIM_PARAMS: &[Param] = &[
    reference("patient", &["patient"], PATIENT),
    token("status", &["status"]),
    token("use", &["use"]),
    date("created", &["created"]),
    token("identifier", &["identifier"]),
    reference("encounter", &["item.encounter"], ENCOUNTER),
    reference(
        "provider",
        &["provider"],
        &["Practitioner", "PractitionerRole", "Organization"],
    ),
];

const EOB_PARAMS: &[Param] = &[
    reference("patient", &["patient"], PATIENT),
    token("status", &["status"]),
    date("created", &["created"]),
    token("identifier", &["identifier"]),
    reference("encounter", &["item.encounter"], ENCOUNTER),
    reference(
        "provider",
        &["provider"],
        &["Practitioner", "PractitionerRole", "Organization"],
    ),
    reference("claim", &["claim"], &["Claim"]),
];

const SERVICE_REQUEST_PARAMS: &[Param] = &[
    reference("patient", &["subject"], PATIENT),
    reference("subject", &["subject"], SUBJECT),
    token("code", &["code"]),
    token("category", &["category"]),
    token("status", &["status"]),
    token("intent", &["intent"]),
    date("authored", &["authoredOn"]),
    date("occurrence", &["occurrenceDateTime", "occurrencePeriod"]),
    reference("encounter", &["encounter"], ENCOUNTER),
    token("identifier", &["identifier"]),
    reference("requester", &["requester"], WHO),
];

const APPOINTMENT_PARAMS: &[Param] = &[
    reference("patient", &["participant.actor"], PATIENT),
    reference(
        "actor",
        &["participant.actor"],
        &[
            "Patient",
            "Practitioner",
            "PractitionerRole",
            "RelatedPerson",
            "Device",
            "HealthcareService",
            "Location",
        ],
    ),
    token("status", &["status"]),
    date("date", &["start"]),
    token("identifier", &["identifier"]),
    token("service-type", &["serviceType"]),
];

const CARE_TEAM_PARAMS: &[Param] = &[
    reference("patient", &["subject"], PATIENT),
    reference("subject", &["subject"], &["Patient", "Group"]),
    token("status", &["status"]),
    token("category", &["category"]),
    date("date", &["period"]),
    reference("encounter", &["encounter"], ENCOUNTER),
    token("identifier", &["identifier"]),
];

const MEDICATION_PARAMS: &[Param] = &[
    token("code", &["code"]),
    token("status", &["status"]),
    token("identifier", &["identifier"]),
];

const MEDICATION_ADMINISTRATION_PARAMS: &[Param] = &[
    reference("patient", &["subject"], PATIENT),
    reference("subject", &["subject"], &["Patient", "Group"]),
    token("code", &["medicationCodeableConcept"]),
    token("status", &["status"]),
    date("effective-time", &["effectiveDateTime", "effectivePeriod"]),
    reference("context", &["context"], &["Encounter", "EpisodeOfCare"]),
    token("identifier", &["identifier"]),
];

const IMAGING_STUDY_PARAMS: &[Param] = &[
    reference("patient", &["subject"], PATIENT),
    reference("subject", &["subject"], &["Patient", "Group", "Device"]),
    token("status", &["status"]),
    date("started", &["started"]),
    reference("encounter", &["encounter"], ENCOUNTER),
    token("identifier", &["identifier"]),
];

const DEVICE_PARAMS: &[Param] = &[
    reference("patient", &["patient"], PATIENT),
    token("type", &["type"]),
    token("status", &["status"]),
    token("identifier", &["identifier"]),
];

const GOAL_PARAMS: &[Param] = &[
    reference("patient", &["subject"], PATIENT),
    reference(
        "subject",
        &["subject"],
        &["Patient", "Group", "Organization"],
    ),
    token("lifecycle-status", &["lifecycleStatus"]),
    token("category", &["category"]),
    token("identifier", &["identifier"]),
];

/// The parameters of `resource_type`, beyond `_id` and `_lastUpdated` (which every type has
/// and which are answered from the index's own columns).
pub fn params_of(resource_type: &str) -> &'static [Param] {
    match resource_type {
        "Patient" => PATIENT_PARAMS,
        "Practitioner" => PRACTITIONER_PARAMS,
        "Organization" => ORGANIZATION_PARAMS,
        "Location" => LOCATION_PARAMS,
        "Observation" => OBSERVATION_PARAMS,
        "Condition" => CONDITION_PARAMS,
        "Encounter" => ENCOUNTER_PARAMS,
        "Procedure" => PROCEDURE_PARAMS,
        "MedicationRequest" => MEDICATION_REQUEST_PARAMS,
        "Immunization" => IMMUNIZATION_PARAMS,
        "DiagnosticReport" => DIAGNOSTIC_REPORT_PARAMS,
        "DocumentReference" => DOCUMENT_REFERENCE_PARAMS,
        "AllergyIntolerance" => ALLERGY_PARAMS,
        "CarePlan" => CARE_PLAN_PARAMS,
        "Claim" => CLAIM_PARAMS,
        "ExplanationOfBenefit" => EOB_PARAMS,
        "ServiceRequest" => SERVICE_REQUEST_PARAMS,
        "Appointment" => APPOINTMENT_PARAMS,
        "CareTeam" => CARE_TEAM_PARAMS,
        "Medication" => MEDICATION_PARAMS,
        "MedicationAdministration" => MEDICATION_ADMINISTRATION_PARAMS,
        "ImagingStudy" => IMAGING_STUDY_PARAMS,
        "Device" => DEVICE_PARAMS,
        "Goal" => GOAL_PARAMS,
        _ => &[],
    }
}

/// Parameters whose elements FHIR R4 requires (cardinality 1..1 or 1..*), per type. Validation
/// refuses a resource without them (the fhir-sdk models), so every stored version has a value:
/// no "present" tag is filed for these, and `:missing` on them is answered from this table
/// (`true` matches nothing, `false` everything), which saves a tag per parameter per record.
const REQUIRED: &[(&str, &[&str])] = &[
    ("Observation", &["status", "code"]),
    ("Condition", &["subject"]),
    ("Encounter", &["status", "class"]),
    ("Procedure", &["status", "subject"]),
    ("MedicationRequest", &["status", "intent", "subject"]),
    ("Immunization", &["patient", "vaccine-code", "status"]),
    ("DiagnosticReport", &["status", "code"]),
    ("DocumentReference", &["status"]),
    ("AllergyIntolerance", &["patient"]),
    ("CarePlan", &["status", "intent", "subject"]),
    ("Claim", &["patient", "status", "use", "created"]),
    ("ExplanationOfBenefit", &["patient", "status", "created"]),
    ("ServiceRequest", &["status", "intent", "subject"]),
    ("Appointment", &["status"]),
    ("MedicationAdministration", &["status", "subject"]),
    ("ImagingStudy", &["status", "subject"]),
];

/// Whether every valid `resource_type` has a value for `param` ([`REQUIRED`]).
pub fn is_required(resource_type: &str, param: &str) -> bool {
    REQUIRED
        .iter()
        .any(|(rt, names)| *rt == resource_type && names.contains(&param))
}

/// The parameter `name` of `resource_type`.
pub fn param(resource_type: &str, name: &str) -> Option<&'static Param> {
    params_of(resource_type).iter().find(|p| p.name == name)
}

/// The parameter whose reference tags `p` (a parameter of `resource_type`) is filed under: a
/// reference parameter reading the same elements as a broader one of its type (Observation's
/// `patient` is its `subject` narrowed to Patient) shares the broader one's tags, because a
/// reference tag's value carries its type (`Patient/123`); every other parameter is filed
/// under itself. One tag fewer per reference written, and the same answers.
pub fn filed_under(resource_type: &str, p: &'static Param) -> &'static Param {
    if p.kind != Kind::Reference {
        return p;
    }
    params_of(resource_type)
        .iter()
        .find(|q| {
            q.kind == Kind::Reference
                && q.name != p.name
                && q.paths == p.paths
                && q.targets.len() > p.targets.len()
                && p.targets.iter().all(|t| q.targets.contains(t))
        })
        .unwrap_or(p)
}

/// The `_sort` keys served on `resource_type`: `_lastUpdated` and `_id` everywhere, and every
/// date parameter of the type.
pub fn sortable(resource_type: &str, name: &str) -> bool {
    matches!(name, "_lastUpdated" | "_id")
        || param(resource_type, name).is_some_and(|p| p.kind == Kind::Date)
}

/// The `_include`s served from `resource_type`: each of its reference parameters, as
/// `Type:param`.
pub fn includes_of(resource_type: &str) -> impl Iterator<Item = String> + '_ {
    params_of(resource_type)
        .iter()
        .filter(|p| p.kind == Kind::Reference)
        .map(move |p| format!("{resource_type}:{}", p.name))
}

/// Every type with parameters of its own.
pub const SEARCHABLE_TYPES: &[&str] = &[
    "Patient",
    "Practitioner",
    "Organization",
    "Location",
    "Observation",
    "Condition",
    "Encounter",
    "Procedure",
    "MedicationRequest",
    "Immunization",
    "DiagnosticReport",
    "DocumentReference",
    "AllergyIntolerance",
    "CarePlan",
    "Claim",
    "ExplanationOfBenefit",
    "ServiceRequest",
    "Appointment",
    "CareTeam",
    "Medication",
    "MedicationAdministration",
    "ImagingStudy",
    "Device",
    "Goal",
];

/// The `_revinclude`s served onto `resource_type`: every reference parameter of any type that
/// may point to it, as `Source:param`.
pub fn revincludes_of(resource_type: &str) -> Vec<String> {
    SEARCHABLE_TYPES
        .iter()
        .flat_map(|source| {
            params_of(source)
                .iter()
                .filter(|p| p.kind == Kind::Reference && p.targets.contains(&resource_type))
                .map(move |p| format!("{source}:{}", p.name))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_searchable_type_has_its_parameters_and_names_are_unique() {
        for t in SEARCHABLE_TYPES {
            let ps = params_of(t);
            assert!(!ps.is_empty(), "{t}");
            let mut names: Vec<&str> = ps.iter().map(|p| p.name).collect();
            names.sort_unstable();
            names.dedup();
            assert_eq!(names.len(), ps.len(), "{t} repeats a parameter");
            for p in ps {
                assert_eq!(
                    p.kind == Kind::Reference,
                    !p.targets.is_empty(),
                    "{t}.{}",
                    p.name
                );
            }
        }
        assert!(params_of("Basic").is_empty());
    }

    #[test]
    fn includes_and_revincludes_follow_the_reference_parameters() {
        assert!(includes_of("Observation").any(|i| i == "Observation:patient"));
        assert!(!includes_of("Observation").any(|i| i == "Observation:code"));
        let rev = revincludes_of("Patient");
        assert!(rev.contains(&"Observation:patient".to_owned()));
        assert!(rev.contains(&"Encounter:subject".to_owned()));
        assert!(!rev.contains(&"Observation:encounter".to_owned()));
        assert!(sortable("Patient", "birthdate") && sortable("Observation", "date"));
        assert!(!sortable("Observation", "code"));
    }

    #[test]
    fn narrowed_references_share_the_broader_parameters_tags() {
        let under = |rt, name| filed_under(rt, param(rt, name).expect(name)).name;
        assert_eq!(under("Observation", "patient"), "subject");
        assert_eq!(under("Encounter", "patient"), "subject");
        assert_eq!(under("Observation", "subject"), "subject");
        assert_eq!(under("Observation", "encounter"), "encounter");
        assert_eq!(under("Immunization", "patient"), "patient");
        assert_eq!(under("Observation", "code"), "code");
    }
}

#[cfg(test)]
mod required_tests {
    use super::*;

    #[test]
    fn every_required_parameter_exists() {
        for (rt, names) in REQUIRED {
            for n in *names {
                assert!(param(rt, n).is_some(), "{rt}.{n}");
            }
        }
        assert!(is_required("Observation", "code"));
        assert!(!is_required("Observation", "subject"));
        assert!(
            !is_required("Condition", "patient"),
            "subject may be a Group"
        );
    }
}
