//! Which resource types MedLedger accepts.
//!
//! The models come from fhir-sdk's R4B (4.3.0) set, the closest it ships to R4 (4.0.1). Types that
//! R4B added or restructured are refused so that nothing non-R4 is stored as if it were R4; see
//! `docs/fhir-r4-r4b.md`.

use std::str::FromStr;

use fhir_sdk::r4b::resources::ResourceType;

/// R4B types absent from R4, or whose R4B structure is incompatible with R4.
const NOT_R4: &[&str] = &[
    "AdministrableProductDefinition",
    "Citation",
    "ClinicalUseDefinition",
    "Evidence",
    "EvidenceReport",
    "EvidenceVariable",
    "Ingredient",
    "ManufacturedItemDefinition",
    "MedicinalProductDefinition",
    "NutritionProduct",
    "PackagedProductDefinition",
    "RegulatedAuthorization",
    // R4B renamed R4's SubstanceSpecification to SubstanceDefinition and reshaped it.
    "SubstanceDefinition",
    "SubscriptionStatus",
    "SubscriptionTopic",
];

/// R4 types that fhir-sdk's R4B models cannot represent (removed in R4B).
const R4_ONLY: &[&str] = &[
    "EffectEvidenceSynthesis",
    "MedicinalProduct",
    "MedicinalProductAuthorization",
    "MedicinalProductContraindication",
    "MedicinalProductIndication",
    "MedicinalProductIngredient",
    "MedicinalProductInteraction",
    "MedicinalProductManufactured",
    "MedicinalProductPackaged",
    "MedicinalProductPharmaceutical",
    "MedicinalProductUndesirableEffect",
    "RiskEvidenceSynthesis",
    "SubstanceNucleicAcid",
    "SubstancePolymer",
    "SubstanceProtein",
    "SubstanceReferenceInformation",
    "SubstanceSourceMaterial",
    "SubstanceSpecification",
];

/// Types that are protocol messages rather than records, or containers handled at the base URL.
const NOT_STORED: &[&str] = &["Bundle", "OperationOutcome", "Parameters"];

/// The outcome of looking a type name up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AcceptedType {
    /// A stored R4 resource type.
    Yes,
    /// A real FHIR type MedLedger does not store here (R4B-only, R4-only, or a container).
    Unsupported,
    /// Not a FHIR resource type at all.
    Unknown,
}

/// Classifies a resource type name.
pub fn accepted_type(name: &str) -> AcceptedType {
    if NOT_R4.contains(&name) || R4_ONLY.contains(&name) || NOT_STORED.contains(&name) {
        return AcceptedType::Unsupported;
    }
    match ResourceType::from_str(name) {
        Ok(_) => AcceptedType::Yes,
        Err(_) => AcceptedType::Unknown,
    }
}

/// Every accepted type, sorted (for the CapabilityStatement).
pub fn all_accepted_types() -> Vec<&'static str> {
    let mut v: Vec<&'static str> = crate::validate::ALL_R4B_TYPES
        .iter()
        .copied()
        .filter(|t| accepted_type(t) == AcceptedType::Yes)
        .collect();
    v.sort_unstable();
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_types() {
        assert_eq!(accepted_type("Patient"), AcceptedType::Yes);
        assert_eq!(accepted_type("Observation"), AcceptedType::Yes);
        assert_eq!(
            accepted_type("SubscriptionTopic"),
            AcceptedType::Unsupported
        );
        assert_eq!(accepted_type("MedicinalProduct"), AcceptedType::Unsupported);
        assert_eq!(accepted_type("Bundle"), AcceptedType::Unsupported);
        assert_eq!(accepted_type("Spaceship"), AcceptedType::Unknown);
        assert_eq!(accepted_type("patient"), AcceptedType::Unknown);
        let all = all_accepted_types();
        assert!(all.len() > 120, "{}", all.len());
        assert!(all.contains(&"ExplanationOfBenefit"));
    }
}
