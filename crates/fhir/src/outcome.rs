//! OperationOutcome construction (FHIR R4 §2.36).

use serde_json::{Value, json};

/// The subset of the IssueType value set MedLedger reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IssueCode {
    /// Content invalid against the specification.
    Invalid,
    /// A structural problem (malformed JSON).
    Structure,
    /// A required element is missing.
    Required,
    /// Not supported (unknown type, interaction or media type).
    NotSupported,
    /// The resource does not exist.
    NotFound,
    /// The resource existed and has been deleted.
    Deleted,
    /// Authentication is missing or failed.
    Login,
    /// Authenticated but not permitted.
    Forbidden,
    /// Version conflict or business rule clash.
    Conflict,
    /// Too large or too many.
    TooCostly,
    /// Rate limited.
    Throttled,
    /// Temporarily unavailable; try again.
    Transient,
    /// A processing failure, including failed integrity checks.
    Exception,
    /// A business rule prevents the change.
    BusinessRule,
    /// Informational: the operation succeeded.
    Informational,
}

impl IssueCode {
    fn code(self) -> &'static str {
        match self {
            IssueCode::Invalid => "invalid",
            IssueCode::Structure => "structure",
            IssueCode::Required => "required",
            IssueCode::NotSupported => "not-supported",
            IssueCode::NotFound => "not-found",
            IssueCode::Deleted => "deleted",
            IssueCode::Login => "login",
            IssueCode::Forbidden => "forbidden",
            IssueCode::Conflict => "conflict",
            IssueCode::TooCostly => "too-costly",
            IssueCode::Throttled => "throttled",
            IssueCode::Transient => "transient",
            IssueCode::Exception => "exception",
            IssueCode::BusinessRule => "business-rule",
            IssueCode::Informational => "informational",
        }
    }
}

/// An OperationOutcome with one issue; severity is `information` for [`IssueCode::Informational`]
/// and `error` otherwise.
pub fn operation_outcome(code: IssueCode, diagnostics: &str) -> Value {
    let severity = if code == IssueCode::Informational {
        "information"
    } else {
        "error"
    };
    json!({
        "resourceType": "OperationOutcome",
        "issue": [{"severity": severity, "code": code.code(), "diagnostics": diagnostics}]
    })
}
