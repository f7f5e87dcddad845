//! Who owns a resource: its patient under the FHIR R4 Patient compartment, else the organisation.
//!
//! The owner selects the key that wraps each version's data key, so erasing a patient's key
//! erases exactly that patient's records. The element consulted per type follows the R4 Patient
//! CompartmentDefinition (<http://hl7.org/fhir/R4/compartmentdefinition-patient.html>), taking the
//! element that names the record's subject where the definition lists several.

use serde_json::Value;

/// The key owner of a resource.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Owner {
    /// A patient's record, keyed by the Patient's logical id.
    Patient(String),
    /// A resource outside any patient compartment (Organization, Practitioner, Location …).
    Organization,
}

impl Owner {
    /// Stable label used in associated data and key tables: `Patient/{id}` or `Organization`.
    pub fn label(&self) -> String {
        match self {
            Owner::Patient(id) => format!("Patient/{id}"),
            Owner::Organization => "Organization".to_owned(),
        }
    }

    /// Parses a [`Owner::label`].
    pub fn from_label(label: &str) -> Option<Self> {
        match label.strip_prefix("Patient/") {
            Some(id) if !id.is_empty() => Some(Owner::Patient(id.to_owned())),
            Some(_) => None,
            None => (label == "Organization").then_some(Owner::Organization),
        }
    }
}

/// Elements holding the patient reference, by resource type (R4 Patient compartment).
fn patient_elements(resource_type: &str) -> &'static [&'static str] {
    match resource_type {
        "Account"
        | "AdverseEvent"
        | "Basic"
        | "CarePlan"
        | "CareTeam"
        | "ChargeItem"
        | "ClinicalImpression"
        | "Communication"
        | "CommunicationRequest"
        | "Composition"
        | "Condition"
        | "DeviceRequest"
        | "DeviceUseStatement"
        | "DiagnosticReport"
        | "DocumentManifest"
        | "DocumentReference"
        | "Encounter"
        | "Flag"
        | "Goal"
        | "GuidanceResponse"
        | "ImagingStudy"
        | "List"
        | "Media"
        | "MeasureReport"
        | "MedicationAdministration"
        | "MedicationDispense"
        | "MedicationRequest"
        | "MedicationStatement"
        | "Observation"
        | "Procedure"
        | "QuestionnaireResponse"
        | "RequestGroup"
        | "RiskAssessment"
        | "ServiceRequest"
        | "Specimen" => &["subject"],
        "AllergyIntolerance"
        | "BodyStructure"
        | "Claim"
        | "ClaimResponse"
        | "Consent"
        | "CoverageEligibilityRequest"
        | "CoverageEligibilityResponse"
        | "DetectedIssue"
        | "Device"
        | "EpisodeOfCare"
        | "ExplanationOfBenefit"
        | "FamilyMemberHistory"
        | "Immunization"
        | "ImmunizationEvaluation"
        | "ImmunizationRecommendation"
        | "MolecularSequence"
        | "NutritionOrder"
        | "RelatedPerson"
        | "SupplyDelivery"
        | "VisionPrescription" => &["patient"],
        "Coverage" => &["beneficiary"],
        "EnrollmentRequest" => &["candidate"],
        "ResearchSubject" => &["individual"],
        "Schedule" => &["actor"],
        "Appointment" | "AppointmentResponse" => &["participant.actor", "actor"],
        "Provenance" => &["target"],
        "AuditEvent" => &["entity.what"],
        _ => &[],
    }
}

/// The owner of `resource` (already validated, references already rewritten to `Type/id`).
///
/// `own_id` is the resource's logical id, used when the resource is itself a Patient.
pub fn owner_of(resource_type: &str, own_id: &str, resource: &Value) -> Owner {
    if resource_type == "Patient" {
        return Owner::Patient(own_id.to_owned());
    }
    for path in patient_elements(resource_type) {
        let mut found = None;
        collect_patient_refs(resource, &path.split('.').collect::<Vec<_>>(), &mut found);
        if let Some(id) = found {
            return Owner::Patient(id);
        }
    }
    Owner::Organization
}

fn collect_patient_refs(value: &Value, path: &[&str], found: &mut Option<String>) {
    if found.is_some() {
        return;
    }
    match value {
        Value::Array(items) => items
            .iter()
            .for_each(|v| collect_patient_refs(v, path, found)),
        Value::Object(map) => match path.split_first() {
            Some((head, rest)) => {
                if let Some(child) = map.get(*head) {
                    collect_patient_refs(child, rest, found);
                }
            }
            None => {
                if let Some(id) = map
                    .get("reference")
                    .and_then(Value::as_str)
                    .and_then(patient_id)
                {
                    *found = Some(id.to_owned());
                }
            }
        },
        _ => {}
    }
}

/// The id in a local `Patient/{id}` reference (a version suffix is ignored).
fn patient_id(reference: &str) -> Option<&str> {
    let id = reference.strip_prefix("Patient/")?;
    let id = id.split('/').next()?;
    (!id.is_empty()).then_some(id)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn owners_by_type() {
        let p = json!({"resourceType": "Patient"});
        assert_eq!(owner_of("Patient", "p1", &p), Owner::Patient("p1".into()));
        let o = json!({"resourceType": "Observation", "subject": {"reference": "Patient/p2"}});
        assert_eq!(
            owner_of("Observation", "o1", &o),
            Owner::Patient("p2".into())
        );
        let c = json!({"resourceType": "Claim", "patient": {"reference": "Patient/p3/_history/2"}});
        assert_eq!(owner_of("Claim", "c1", &c), Owner::Patient("p3".into()));
        let prov = json!({"resourceType": "Provenance", "target": [{"reference": "Encounter/e"}, {"reference": "Patient/p4"}]});
        assert_eq!(
            owner_of("Provenance", "x", &prov),
            Owner::Patient("p4".into())
        );
        let org = json!({"resourceType": "Organization", "name": "X"});
        assert_eq!(owner_of("Organization", "x", &org), Owner::Organization);
        let group = json!({"resourceType": "Observation", "subject": {"reference": "Group/g"}});
        assert_eq!(owner_of("Observation", "x", &group), Owner::Organization);
        let appt = json!({"resourceType": "Appointment", "participant": [{"actor": {"reference": "Practitioner/d"}}, {"actor": {"reference": "Patient/p5"}}]});
        assert_eq!(
            owner_of("Appointment", "a", &appt),
            Owner::Patient("p5".into())
        );
    }

    #[test]
    fn labels_round_trip() {
        for o in [Owner::Patient("abc".into()), Owner::Organization] {
            assert_eq!(Owner::from_label(&o.label()), Some(o));
        }
        assert_eq!(Owner::from_label("Patient/"), None);
        assert_eq!(Owner::from_label("Practitioner/x"), None);
    }
}
