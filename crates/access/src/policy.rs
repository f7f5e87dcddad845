//! The access decision port: what is asked, what is answered.

use medledger_auth::Caller;
use medledger_error::{Categorized, Category};

/// FHIR interactions, by their SMART v2 permission letter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Interaction {
    /// `c`
    Create,
    /// `r` (read, vread, history, `$verify`)
    Read,
    /// `u`
    Update,
    /// `d`
    Delete,
    /// `s`
    Search,
}

impl Interaction {
    /// The interaction for a SMART v2 permission letter.
    pub fn from_letter(letter: &str) -> Option<Self> {
        Some(match letter {
            "c" => Interaction::Create,
            "r" => Interaction::Read,
            "u" => Interaction::Update,
            "d" => Interaction::Delete,
            "s" => Interaction::Search,
            _ => return None,
        })
    }

    /// SMART v2 permission letter.
    pub fn letter(self) -> char {
        match self {
            Interaction::Create => 'c',
            Interaction::Read => 'r',
            Interaction::Update => 'u',
            Interaction::Delete => 'd',
            Interaction::Search => 's',
        }
    }
}

/// What is being asked.
#[derive(Debug, Clone, Copy)]
pub struct AccessQuery<'a> {
    /// The authenticated caller.
    pub caller: &'a Caller,
    /// The interaction.
    pub interaction: Interaction,
    /// Resource type acted on.
    pub resource_type: &'a str,
    /// Owner label of the record, when known.
    pub owner: Option<&'a str>,
    /// Who wrote the record's current version, when it exists.
    pub custodian: Option<&'a str>,
    /// The resource's category codes, when known.
    pub categories: Option<&'a [String]>,
}

/// The answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Allowed.
    Permit,
    /// Denied, with a reason safe to show the caller.
    Deny(String),
}

/// Why an access did not go ahead.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AccessError {
    /// The policy decided: no. The reason is safe to show the caller.
    #[error("{0}")]
    Denied(String),
    /// No decision could be made (the consent service is unreachable or failed); the caller
    /// fails closed and tells its client to retry.
    #[error("access decision unavailable: {0}")]
    Unavailable(String),
}

impl Categorized for AccessError {
    fn category(&self) -> Category {
        match self {
            Self::Denied(_) => Category::Forbidden,
            Self::Unavailable(_) => Category::UNAVAILABLE,
        }
    }
}

/// "May this actor do this?" — answered in-process in dev mode, over gRPC in distributed mode.
#[async_trait::async_trait]
pub trait AccessPolicy: Send + Sync + 'static {
    /// Decides one access. `Err` means no decision was reached (never "allowed").
    async fn check(&self, query: AccessQuery<'_>) -> Result<Decision, AccessError>;

    /// [`AccessPolicy::check`] folded into one `Result`.
    async fn permit(&self, query: AccessQuery<'_>) -> Result<(), AccessError> {
        match self.check(query).await? {
            Decision::Permit => Ok(()),
            Decision::Deny(reason) => Err(AccessError::Denied(reason)),
        }
    }
}
