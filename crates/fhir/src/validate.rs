//! Structural validation of incoming resources against the fhir-sdk R4B models.

use fhir_sdk::r4b::resources::Resource;
use serde_json::Value;

use crate::types::{AcceptedType, accepted_type};

/// Why a resource was refused. Each maps to one HTTP status in the services' error function.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum FhirError {
    /// The body is not a JSON object with a string `resourceType`.
    #[error("{0}")]
    Malformed(String),
    /// `resourceType` names no FHIR type.
    #[error("unknown resource type '{0}'")]
    UnknownType(String),
    /// A FHIR type MedLedger does not store.
    #[error("resource type '{0}' is not supported here (not FHIR R4, or not a stored record type)")]
    UnsupportedType(String),
    /// The content does not conform to the resource's structure.
    #[error("invalid {resource_type}: {message}")]
    Invalid {
        /// The resource type.
        resource_type: String,
        /// What is wrong, with the element path where known.
        message: String,
    },
}

impl medledger_error::Categorized for FhirError {
    fn category(&self) -> medledger_error::Category {
        use medledger_error::Category;
        match self {
            Self::Malformed(_) => Category::Malformed,
            Self::UnknownType(_) | Self::UnsupportedType(_) => Category::NotSupported,
            Self::Invalid { .. } => Category::Unprocessable,
        }
    }
}

/// Checks that `value` is a well-formed resource of an accepted type and returns its type name.
///
/// fhir-sdk ignores elements it does not know, so after parsing the model is serialised back and
/// every element of the input must still be there; otherwise an unknown element would be
/// accepted and then silently lost.
pub fn validate_resource(value: &Value) -> Result<String, FhirError> {
    let obj = value
        .as_object()
        .ok_or_else(|| FhirError::Malformed("a resource must be a JSON object".into()))?;
    let rt = obj
        .get("resourceType")
        .and_then(Value::as_str)
        .ok_or_else(|| FhirError::Malformed("missing string element 'resourceType'".into()))?
        .to_owned();
    match accepted_type(&rt) {
        AcceptedType::Yes => {}
        AcceptedType::Unsupported => return Err(FhirError::UnsupportedType(rt)),
        AcceptedType::Unknown => return Err(FhirError::UnknownType(rt)),
    }
    let invalid = |message: String| FhirError::Invalid {
        resource_type: rt.clone(),
        message,
    };
    // The R4B models would accept an R4B-only type inside `contained`; refuse it like a top-level one.
    if let Some(contained) = obj.get("contained").and_then(Value::as_array) {
        for (i, c) in contained.iter().enumerate() {
            let ct = c.get("resourceType").and_then(Value::as_str).unwrap_or("");
            if accepted_type(ct) != AcceptedType::Yes {
                return Err(invalid(format!(
                    "contained[{i}] has resource type '{ct}', which is not accepted here"
                )));
            }
        }
    }
    let parsed: Resource = serde_json::from_value(as_doubles(value))
        .map_err(|e| invalid(redact_values(&e.to_string())))?;
    let back = serde_json::to_value(&parsed).map_err(|e| invalid(e.to_string()))?;
    if let Some(path) = first_r4b_only(&rt, value) {
        return Err(invalid(format!(
            "element '{path}' exists only in FHIR R4B, not R4"
        )));
    }
    if let Some(path) = first_unknown(value, &back, &mut String::new()) {
        return Err(invalid(format!("unknown element '{path}'")));
    }
    if let Some(path) = crate::first_invalid_reference(value, &mut String::new()) {
        return Err(invalid(format!(
            "'{path}' names no resource (Type/id with a valid FHIR id, #contained, urn:uuid: or an absolute URL)"
        )));
    }
    Ok(rt)
}

/// A copy of `value` whose decimals are plain doubles, for the models only.
///
/// serde_json keeps number literals (`arbitrary_precision`), and a literal that is not the
/// shortest form of its double (`1.50`) reaches serde's buffered paths (the models' choice types)
/// as a map, which they refuse. The stored resource keeps the literal; validation needs the value.
fn as_doubles(value: &Value) -> Value {
    match value {
        Value::Number(n) if n.as_i64().is_none() && n.as_u64().is_none() => n
            .as_f64()
            .and_then(serde_json::Number::from_f64)
            .map_or_else(|| value.clone(), Value::Number),
        Value::Array(items) => Value::Array(items.iter().map(as_doubles).collect()),
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| (k.clone(), as_doubles(v)))
                .collect(),
        ),
        _ => value.clone(),
    }
}

/// Elements the R4B models accept on types R4 also has, but which are not R4: the new datatypes
/// in open `value[x]` choices, and `subjectCanonical` on ActivityDefinition and PlanDefinition.
fn first_r4b_only(rt: &str, value: &Value) -> Option<String> {
    if matches!(rt, "ActivityDefinition" | "PlanDefinition")
        && value.get("subjectCanonical").is_some()
    {
        return Some("subjectCanonical".to_owned());
    }
    fn walk(v: &Value) -> Option<String> {
        match v {
            Value::Object(o) => o.iter().find_map(|(k, x)| {
                if k.ends_with("CodeableReference") || k.ends_with("RatioRange") {
                    Some(k.clone())
                } else {
                    walk(x)
                }
            }),
            Value::Array(a) => a.iter().find_map(walk),
            _ => None,
        }
    }
    walk(value)
}

/// serde's messages quote the offending value (`invalid type: string "Jane Doe"`). That value
/// may be PHI, and these messages reach clients and logs, so every quoted part is replaced.
fn redact_values(msg: &str) -> String {
    let mut out = String::with_capacity(msg.len());
    let mut chars = msg.chars();
    while let Some(c) = chars.next() {
        if c == '"' || c == '`' {
            let mut quoted = String::new();
            for d in chars.by_ref() {
                if d == c {
                    break;
                }
                quoted.push(d);
            }
            // "missing field `status`" names an element of the schema, never a value: keep it,
            // or the sender cannot tell what to add.
            let element = out.ends_with("missing field ")
                && !quoted.is_empty()
                && quoted
                    .chars()
                    .all(|ch| ch.is_ascii_alphanumeric() || ch == '_');
            if element {
                out.push(c);
                out.push_str(&quoted);
                out.push(c);
            } else {
                out.push_str("<value>");
            }
        } else {
            out.push(c);
        }
    }
    // fhir-sdk's code parsers report `Unknown value: {value}` without quotes.
    if let Some(at) = out.find("Unknown value: ") {
        out.truncate(at + "Unknown value: ".len());
        out.push_str("<value>");
    }
    out
}

/// Path of the first element of `input` missing from `parsed`.
fn first_unknown(input: &Value, parsed: &Value, path: &mut String) -> Option<String> {
    match (input, parsed) {
        (Value::Object(a), Value::Object(b)) => {
            for (k, v) in a {
                let len = path.len();
                if !path.is_empty() {
                    path.push('.');
                }
                path.push_str(k);
                let found = match b.get(k) {
                    None => Some(path.clone()),
                    Some(w) => first_unknown(v, w, path),
                };
                path.truncate(len);
                if found.is_some() {
                    return found;
                }
            }
            None
        }
        (Value::Array(a), Value::Array(b)) => {
            for (i, v) in a.iter().enumerate() {
                let len = path.len();
                path.push_str(&format!("[{i}]"));
                let found = match b.get(i) {
                    None => Some(path.clone()),
                    Some(w) => first_unknown(v, w, path),
                };
                path.truncate(len);
                if found.is_some() {
                    return found;
                }
            }
            None
        }
        (Value::Object(_), _) | (Value::Array(_), _) => Some(path.clone()),
        // Primitive values may be normalised by the model (e.g. number formatting); only structure
        // matters here.
        _ => None,
    }
}

/// Every resource type fhir-sdk's R4B models know.
pub(crate) const ALL_R4B_TYPES: &[&str] = &[
    "Account",
    "ActivityDefinition",
    "AdministrableProductDefinition",
    "AdverseEvent",
    "AllergyIntolerance",
    "Appointment",
    "AppointmentResponse",
    "AuditEvent",
    "Basic",
    "Binary",
    "BiologicallyDerivedProduct",
    "BodyStructure",
    "Bundle",
    "CapabilityStatement",
    "CarePlan",
    "CareTeam",
    "CatalogEntry",
    "ChargeItem",
    "ChargeItemDefinition",
    "Citation",
    "Claim",
    "ClaimResponse",
    "ClinicalImpression",
    "ClinicalUseDefinition",
    "CodeSystem",
    "Communication",
    "CommunicationRequest",
    "CompartmentDefinition",
    "Composition",
    "ConceptMap",
    "Condition",
    "Consent",
    "Contract",
    "Coverage",
    "CoverageEligibilityRequest",
    "CoverageEligibilityResponse",
    "DetectedIssue",
    "Device",
    "DeviceDefinition",
    "DeviceMetric",
    "DeviceRequest",
    "DeviceUseStatement",
    "DiagnosticReport",
    "DocumentManifest",
    "DocumentReference",
    "Encounter",
    "Endpoint",
    "EnrollmentRequest",
    "EnrollmentResponse",
    "EpisodeOfCare",
    "EventDefinition",
    "Evidence",
    "EvidenceReport",
    "EvidenceVariable",
    "ExampleScenario",
    "ExplanationOfBenefit",
    "FamilyMemberHistory",
    "Flag",
    "Goal",
    "GraphDefinition",
    "Group",
    "GuidanceResponse",
    "HealthcareService",
    "ImagingStudy",
    "Immunization",
    "ImmunizationEvaluation",
    "ImmunizationRecommendation",
    "ImplementationGuide",
    "Ingredient",
    "InsurancePlan",
    "Invoice",
    "Library",
    "Linkage",
    "List",
    "Location",
    "ManufacturedItemDefinition",
    "Measure",
    "MeasureReport",
    "Media",
    "Medication",
    "MedicationAdministration",
    "MedicationDispense",
    "MedicationKnowledge",
    "MedicationRequest",
    "MedicationStatement",
    "MedicinalProductDefinition",
    "MessageDefinition",
    "MessageHeader",
    "MolecularSequence",
    "NamingSystem",
    "NutritionOrder",
    "NutritionProduct",
    "Observation",
    "ObservationDefinition",
    "OperationDefinition",
    "OperationOutcome",
    "Organization",
    "OrganizationAffiliation",
    "PackagedProductDefinition",
    "Parameters",
    "Patient",
    "PaymentNotice",
    "PaymentReconciliation",
    "Person",
    "PlanDefinition",
    "Practitioner",
    "PractitionerRole",
    "Procedure",
    "Provenance",
    "Questionnaire",
    "QuestionnaireResponse",
    "RegulatedAuthorization",
    "RelatedPerson",
    "RequestGroup",
    "ResearchDefinition",
    "ResearchElementDefinition",
    "ResearchStudy",
    "ResearchSubject",
    "RiskAssessment",
    "Schedule",
    "SearchParameter",
    "ServiceRequest",
    "Slot",
    "Specimen",
    "SpecimenDefinition",
    "StructureDefinition",
    "StructureMap",
    "Subscription",
    "SubscriptionStatus",
    "SubscriptionTopic",
    "Substance",
    "SubstanceDefinition",
    "SupplyDelivery",
    "SupplyRequest",
    "Task",
    "TerminologyCapabilities",
    "TestReport",
    "TestScript",
    "ValueSet",
    "VerificationResult",
    "VisionPrescription",
];

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn accepts_a_valid_patient() {
        let p = json!({"resourceType": "Patient", "gender": "female", "birthDate": "1970-01-01",
            "name": [{"family": "Doe", "given": ["Jane"]}]});
        assert_eq!(validate_resource(&p).expect("valid"), "Patient");
    }

    #[test]
    fn accepts_decimals_spelled_with_their_precision() {
        // Literals that are not a double's shortest form, in a choice element (value[x]), in a
        // nested datatype and in a repeated backbone element.
        let o: Value = serde_json::from_str(
            r#"{"resourceType": "Observation", "status": "final", "code": {"text": "x"},
            "valueQuantity": {"value": 1.50, "unit": "mg"},
            "referenceRange": [{"low": {"value": 0.0}, "high": {"value": 112.41600000000001}}],
            "component": [{"code": {"text": "y"}, "valueQuantity": {"value": 7.20}}]}"#,
        )
        .expect("json");
        assert_eq!(validate_resource(&o).expect("valid"), "Observation");
    }

    #[test]
    fn rejects_bad_content_with_a_reason() {
        let cases = [
            (json!([1, 2]), "object"),
            (json!({"gender": "female"}), "resourceType"),
            (
                json!({"resourceType": "Spaceship"}),
                "unknown resource type",
            ),
            (
                json!({"resourceType": "SubscriptionTopic", "status": "active", "url": "http://x"}),
                "not supported",
            ),
            (
                json!({"resourceType": "Patient", "gender": "robot"}),
                "invalid Patient",
            ),
            (
                json!({"resourceType": "Patient", "birthDate": "1970-13-45"}),
                "invalid Patient",
            ),
            (
                json!({"resourceType": "Patient", "active": "yes"}),
                "invalid Patient",
            ),
            (
                json!({"resourceType": "Patient", "favouriteColour": "blue"}),
                "unknown element 'favouriteColour'",
            ),
            (
                json!({"resourceType": "Patient", "name": [{"family": "Doe", "nickname": "JD"}]}),
                "unknown element 'name[0].nickname'",
            ),
            (
                json!({"resourceType": "SubstanceDefinition"}),
                "not supported",
            ),
            (
                json!({"resourceType": "Patient", "extension": [{"url": "http://x", "valueRatioRange": {}}]}),
                "only in FHIR R4B",
            ),
            (
                json!({"resourceType": "PlanDefinition", "status": "draft", "subjectCanonical": "http://x"}),
                "only in FHIR R4B",
            ),
            (
                json!({"resourceType": "Patient", "contained": [{"resourceType": "SubscriptionTopic", "id": "t", "status": "active", "url": "http://x"}]}),
                "contained[0]",
            ),
        ];
        for (v, want) in cases {
            let err = validate_resource(&v)
                .expect_err("must be rejected")
                .to_string();
            assert!(err.contains(want), "{v}: {err}");
        }
    }

    #[test]
    fn error_messages_never_echo_values() {
        for v in [
            json!({"resourceType": "Patient", "name": "Jane Doe"}),
            json!({"resourceType": "Patient", "birthDate": 19700101}),
            json!({"resourceType": "Patient", "gender": "Jane Doe"}),
        ] {
            let err = validate_resource(&v).expect_err("invalid").to_string();
            assert!(!err.contains("Jane") && !err.contains("19700101"), "{err}");
            assert!(err.starts_with("invalid Patient: "), "{err}");
        }
        // A missing required element is named.
        let err = validate_resource(&json!({"resourceType": "Observation", "code": {"text": "x"}}))
            .expect_err("no status")
            .to_string();
        assert!(err.contains("missing field `status`"), "{err}");
    }

    #[test]
    fn every_listed_type_parses_as_a_name() {
        for t in ALL_R4B_TYPES {
            assert_ne!(accepted_type(t), AcceptedType::Unknown, "{t}");
        }
    }
}
