//! [`AccessPolicy`] answered by the consent service over gRPC.

use std::time::Duration;

use async_trait::async_trait;
use medledger_proto::v1::CheckAccessRequest;
use medledger_proto::v1::access_control_client::AccessControlClient;
use tonic::metadata::MetadataValue;
use tonic::transport::{Channel, Endpoint};
use tonic::{Code, Request};

use medledger_access::{AccessError, AccessPolicy, AccessQuery, Decision};

/// Asks the consent service at one endpoint; every call is bounded by a timeout and fails
/// closed ([`AccessError::Unavailable`]) when no answer comes.
#[derive(Debug, Clone)]
pub struct GrpcAccessPolicy {
    client: AccessControlClient<Channel>,
    timeout: Duration,
}

impl GrpcAccessPolicy {
    /// A client for `endpoint` (`http://host:50051`). The connection is made on first use and
    /// re-made after failures, so a consent service that starts later is picked up.
    pub fn connect_lazy(endpoint: &str, timeout: Duration) -> Result<Self, AccessError> {
        let channel = Endpoint::from_shared(endpoint.to_owned())
            .map_err(|e| AccessError::Unavailable(format!("bad consent endpoint: {e}")))?
            .connect_timeout(timeout)
            .timeout(timeout)
            .tcp_nodelay(true)
            .connect_lazy();
        Ok(Self {
            client: AccessControlClient::new(channel),
            timeout,
        })
    }
}

#[async_trait]
impl AccessPolicy for GrpcAccessPolicy {
    async fn check(&self, q: AccessQuery<'_>) -> Result<Decision, AccessError> {
        let mut req = Request::new(CheckAccessRequest {
            interaction: q.interaction.letter().to_string(),
            resource_type: q.resource_type.to_owned(),
            owner: q.owner.unwrap_or_default().to_owned(),
            purpose_of_use: q.caller.purpose.clone().unwrap_or_default(),
            custodian: q.custodian.unwrap_or_default().to_owned(),
            categories: q.categories.map(<[String]>::to_vec).unwrap_or_default(),
            categories_known: q.categories.is_some(),
            break_glass_reason: q.caller.break_glass_reason.clone().unwrap_or_default(),
        });
        let mut value = MetadataValue::try_from(format!("Bearer {}", q.caller.token))
            .map_err(|_| AccessError::Denied("the bearer token is not a valid header".into()))?;
        // Keeps the credential out of any debug output of the request.
        value.set_sensitive(true);
        req.metadata_mut().insert(super::AUTHORIZATION, value);
        req.set_timeout(self.timeout);
        let mut client = self.client.clone();
        let answer = tokio::time::timeout(self.timeout, client.check_access(req))
            .await
            .map_err(|_| AccessError::Unavailable("the consent service did not answer".into()))?;
        match answer {
            Ok(resp) => {
                let r = resp.into_inner();
                Ok(if r.permitted {
                    Decision::Permit
                } else {
                    Decision::Deny(r.reason)
                })
            }
            // The token passed our own check but not the consent service's (expired in
            // between, or the two trust different issuers): no access either way.
            Err(s) if s.code() == Code::Unauthenticated => Err(AccessError::Denied(format!(
                "the consent service did not accept the token: {}",
                s.message()
            ))),
            Err(s) => {
                // The detail (hosts, transport errors) is for the operator, not the client.
                tracing::warn!(code = ?s.code(), message = %s.message(), "consent service call failed");
                Err(AccessError::Unavailable(
                    "the consent service could not decide".into(),
                ))
            }
        }
    }
}
