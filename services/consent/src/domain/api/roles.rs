//! Roles and practitioner verification: `$set-role` (an admin) and `$verify-practitioner` (an
//! authority), each taking a `Parameters` resource.

use medledger_audit::{Action, Entry};
use medledger_auth::Caller;
use medledger_storage_api::AccountRow;
use serde_json::Value;

use super::{ConsentApi, parameter, parameters, reference_param, valid_reference};
use crate::ConsentError;

/// The roles an admin may assign.
const ROLES: [&str; 6] = [
    "patient",
    "practitioner",
    "organization",
    "auditor",
    "authority",
    "admin",
];

impl ConsentApi {
    /// `POST /fhir/$set-role` (`account` valueReference, `role` valueCode): an admin gives
    /// `account` a role. A role other than practitioner clears verification.
    pub async fn set_role(&self, caller: &Caller, body: &Value) -> Result<(), ConsentError> {
        let account = reference_param(body, "account");
        let audit = self.audit.begin(
            Entry::by(caller, "consent", "operation", Action::Execute)
                .about(account.filter(|a| a.starts_with("Patient/")))
                .touching(account.unwrap_or("$set-role")),
        );
        let result = async {
            parameters(body)?;
            let account = account.ok_or_else(|| {
                ConsentError::Invalid("parameter `account` (valueReference) is required".into())
            })?;
            let role = parameter(body, "role")
                .and_then(|p| p["valueCode"].as_str())
                .ok_or_else(|| {
                    ConsentError::Invalid("parameter `role` (valueCode) is required".into())
                })?;
            if self.role_of(caller).await?.as_deref() != Some("admin") {
                return Err(ConsentError::Forbidden(
                    "only an admin assigns roles".into(),
                ));
            }
            if !ROLES.contains(&role) {
                return Err(ConsentError::Unprocessable(format!(
                    "role must be one of {}",
                    ROLES.join(", ")
                )));
            }
            if !valid_reference(account) {
                return Err(ConsentError::Unprocessable(
                    "account must be a reference Type/id".into(),
                ));
            }
            let verified = role == "practitioner"
                && self
                    .store
                    .account(account)
                    .await?
                    .is_some_and(|a| a.role == "practitioner" && a.verified);
            self.store
                .put_account(&AccountRow {
                    account: account.to_owned(),
                    role: role.to_owned(),
                    verified,
                })
                .await?;
            Ok(())
        }
        .await;
        audit.finish(result).await
    }

    /// `POST /fhir/$verify-practitioner` (`practitioner` valueReference, `verified`
    /// valueBoolean, default true): an authority marks a practitioner as verified (or not).
    /// Only verified practitioners may be granted access by consent or use break-glass.
    pub async fn set_verified(&self, caller: &Caller, body: &Value) -> Result<(), ConsentError> {
        let account = reference_param(body, "practitioner");
        let audit = self.audit.begin(
            Entry::by(caller, "consent", "operation", Action::Execute)
                .touching(account.unwrap_or("$verify-practitioner")),
        );
        let result = async {
            parameters(body)?;
            let account = account.ok_or_else(|| {
                ConsentError::Invalid(
                    "parameter `practitioner` (valueReference) is required".into(),
                )
            })?;
            let verified = parameter(body, "verified")
                .map_or(Some(true), |p| p["valueBoolean"].as_bool())
                .ok_or_else(|| {
                    ConsentError::Invalid("parameter `verified` must be a valueBoolean".into())
                })?;
            if self.role_of(caller).await?.as_deref() != Some("authority") {
                return Err(ConsentError::Forbidden(
                    "only an authority verifies practitioners".into(),
                ));
            }
            let Some(current) = self.store.account(account).await? else {
                return Err(ConsentError::Unprocessable(format!(
                    "{account} is not a known account"
                )));
            };
            if current.role != "practitioner" {
                return Err(ConsentError::Unprocessable(format!(
                    "{account} is not a practitioner"
                )));
            }
            self.store
                .put_account(&AccountRow {
                    verified,
                    ..current
                })
                .await?;
            Ok(())
        }
        .await;
        audit.finish(result).await
    }
}
