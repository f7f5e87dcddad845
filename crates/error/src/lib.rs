//! Error categories: what kind of failure an error is, apart from the edge that reports it.
//!
//! Domain code returns its own error enums; each implements [`Categorized`], naming a
//! [`Category`] and the diagnostics a client may see. Each edge maps a category in exactly one
//! function: `medledger-http` to an HTTP status and OperationOutcome, the consent service's gRPC
//! server to a `Status`, the MLLP listener to an HL7 v2 acknowledgement code (or none, so the
//! sender resends), and the audit trail to an `AuditEvent.outcome`. No domain module names an
//! HTTP status.

/// What kind of failure an error is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Category {
    /// The target does not exist, or the caller may not learn that it does.
    NotFound,
    /// The target existed and was deleted or erased.
    Gone,
    /// The request is not well formed: JSON that does not parse, a resource of the wrong shape.
    Malformed,
    /// The request asks for something invalid: a bad parameter, id or reference.
    Invalid,
    /// A well-formed request for something this server does not support.
    NotSupported,
    /// The interaction is never allowed on this target (a client writing an AuditEvent).
    NotAllowed,
    /// The request body is in a media type this server does not read.
    UnsupportedMedia,
    /// The content is well formed but breaks a rule (a record moved to another patient).
    Unprocessable,
    /// Another change came first.
    Conflict,
    /// A precondition the request named (`If-Match`) does not hold.
    PreconditionFailed,
    /// No valid credentials.
    Unauthenticated,
    /// Authenticated, but not allowed.
    Forbidden,
    /// The request is larger than allowed.
    TooLarge,
    /// The caller asks too often; retry after this many seconds.
    Throttled {
        /// Seconds until a retry may succeed.
        retry_after_secs: u64,
    },
    /// A dependency (store, blob store, chain, consent service) cannot answer now; retry after
    /// this many seconds.
    Unavailable {
        /// Seconds until a retry may succeed.
        retry_after_secs: u64,
    },
    /// Stored data failed an integrity check; nothing of it is returned.
    Integrity,
    /// An unexpected failure of this server.
    Internal,
}

impl Category {
    /// Whether the request was refused for what it asked (the caller's side), rather than
    /// failed on the server's.
    pub fn is_refusal(self) -> bool {
        !self.is_failure()
    }

    /// Whether the server failed: a dependency, the stored data or the code.
    pub fn is_failure(self) -> bool {
        matches!(
            self,
            Self::Unavailable { .. } | Self::Integrity | Self::Internal
        )
    }

    /// Whether the same request may succeed later (a dependency came back, the rate allows it).
    pub fn is_transient(self) -> bool {
        matches!(self, Self::Unavailable { .. } | Self::Throttled { .. })
    }

    /// Seconds after which a retry may succeed, for transient categories.
    pub fn retry_after(self) -> Option<u64> {
        match self {
            Self::Unavailable { retry_after_secs } | Self::Throttled { retry_after_secs } => {
                Some(retry_after_secs)
            }
            _ => None,
        }
    }

    /// [`Category::Unavailable`] with a one-second retry.
    pub const UNAVAILABLE: Self = Self::Unavailable {
        retry_after_secs: 1,
    };
}

/// An error with a category and diagnostics fit for a client.
pub trait Categorized: std::error::Error {
    /// What kind of failure it is.
    fn category(&self) -> Category;

    /// What a client may be told: never PHI, keys, tokens or internals (hosts, SQL). The
    /// default is the error's `Display`, which domain errors keep client-safe.
    fn diagnostics(&self) -> String {
        self.to_string()
    }
}

/// A categorized failure carrying only its category and client-safe text: for the edges' own
/// refusals (an unreadable body, a missing token) and for rendering domain errors.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct Failure {
    /// What kind of failure.
    pub category: Category,
    /// Client-safe diagnostics.
    pub message: String,
}

impl Failure {
    /// A failure of `category` saying `message`.
    pub fn new(category: Category, message: impl Into<String>) -> Self {
        Self {
            category,
            message: message.into(),
        }
    }

    /// Any categorized error, as its category and diagnostics.
    pub fn of(e: &(impl Categorized + ?Sized)) -> Self {
        Self::new(e.category(), e.diagnostics())
    }

    /// The same failure with `context` before its message (`entry 2: …`).
    pub fn within(mut self, context: &str) -> Self {
        self.message = format!("{context}: {}", self.message);
        self
    }
}

impl Categorized for Failure {
    fn category(&self) -> Category {
        self.category
    }
    fn diagnostics(&self) -> String {
        self.message.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_failures_and_refusals_partition_the_categories() {
        assert!(Category::Integrity.is_failure());
        assert!(Category::UNAVAILABLE.is_failure() && Category::UNAVAILABLE.is_transient());
        assert!(Category::Forbidden.is_refusal() && !Category::Forbidden.is_transient());
        let throttled = Category::Throttled {
            retry_after_secs: 3,
        };
        assert!(throttled.is_refusal() && throttled.is_transient());
        assert_eq!(throttled.retry_after(), Some(3));
        assert_eq!(Category::NotFound.retry_after(), None);
        let f = Failure::new(Category::Invalid, "bad id").within("entry 2");
        assert_eq!(f.diagnostics(), "entry 2: bad id");
        assert_eq!(Failure::of(&f), f);
    }
}
