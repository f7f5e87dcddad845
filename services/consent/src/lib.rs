//! Consent service: roles, patients' consents, access requests and break-glass, and the access
//! decision built on them ([`ConsentPolicy`]), answered in process (`medledger dev`) or over
//! gRPC (`medledger consent`, [`grpc`]); the FHIR API for Consents, roles and access requests
//! ([`http`]).
//!
//! The decision order is in `docs/architecture.md` §11: the token's SMART scopes, the patient's
//! own records, the custodian, break-glass, the patient's Consents (deny wins) and approved
//! access requests, on the roles and verification this service keeps.
//!
//! The service's shape: [`Config`], the [`Ports`] it needs, [`Service::new`],
//! [`Service::app`] (the complete router), [`Service::policy`] (the decision, for callers in
//! the same process) and [`Service::serve_grpc`] (`CheckAccess`, until shutdown).

pub mod config;
pub mod domain;
pub mod error;
pub mod grpc;
pub mod http;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use medledger_access::AccessPolicy;
use medledger_audit::Auditor;
use medledger_auth::TokenVerifier;
use medledger_http::Shell;
use medledger_storage_api::{AccessRequestStore, ConsentStore, RecordIndex, RegistryQueue};
use tokio_util::sync::CancellationToken;

pub use config::Config;
pub use domain::api::ConsentApi;
pub use domain::consent_policy::{ConsentPolicy, Enrolment};
pub use error::ConsentError;
pub use grpc::{AccessControlService, GrpcAccessPolicy};

/// What the consent service needs from the world, chosen where the backends are.
pub struct Ports {
    /// Accounts, roles and consents: authoritative for every decision.
    pub store: Arc<dyn ConsentStore>,
    /// Access requests.
    pub requests: Arc<dyn AccessRequestStore>,
    /// Each Consent version's salts and chain registration (vread, `$verify`).
    pub registry: Arc<dyn RegistryQueue>,
    /// The record index, to know which patients exist.
    pub records: Arc<dyn RecordIndex>,
    /// The audit trail.
    pub audit: Auditor,
    /// "Now" in Unix seconds for decisions (the system clock, or a test clock).
    pub clock: Arc<dyn Fn() -> i64 + Send + Sync>,
}

/// The consent service.
#[derive(Clone)]
pub struct Service {
    api: ConsentApi,
    policy: Arc<ConsentPolicy>,
}

impl Service {
    /// The API and the decision on `ports`; accounts come to exist as `enrolment` says.
    pub fn new(ports: Ports, enrolment: Enrolment) -> Self {
        let policy = Arc::new(ConsentPolicy::with_clock(
            ports.store.clone(),
            enrolment,
            ports.clock.clone(),
        ));
        let api = ConsentApi::new(
            ports.store,
            ports.requests,
            enrolment,
            ports.clock,
            ports.audit,
        )
        .with_registry(ports.registry)
        .with_records(ports.records);
        Self { api, policy }
    }

    /// The access decision, for services in the same process.
    pub fn policy(&self) -> Arc<dyn AccessPolicy> {
        self.policy.clone()
    }

    /// The FHIR routes, for a shell that holds other services' routes too.
    pub fn routes(&self) -> Router {
        http::routes(self.api.clone())
    }

    /// The complete application: the routes in `shell`.
    pub fn app(&self, shell: &Shell) -> Router {
        shell.app(self.routes())
    }

    /// Serves `CheckAccess` on `listener` until `shutdown`, for callers whose tokens `verifier`
    /// accepts: each request bounded by `request_timeout`, at most `concurrency` at once per
    /// connection.
    pub async fn serve_grpc(
        &self,
        listener: tokio::net::TcpListener,
        verifier: TokenVerifier,
        request_timeout: Duration,
        concurrency: usize,
        shutdown: CancellationToken,
    ) -> Result<(), axum::BoxError> {
        let service = AccessControlService::new(verifier, self.policy.clone());
        tonic::transport::Server::builder()
            .timeout(request_timeout)
            .concurrency_limit_per_connection(concurrency)
            .add_service(service.into_server())
            .serve_with_incoming_shutdown(
                // The builder's `tcp_nodelay` applies only to listeners tonic binds itself; on
                // accepted sockets Nagle's algorithm stalled a few CheckAccess calls by ~40 ms.
                tokio_stream::StreamExt::map(
                    tokio_stream::wrappers::TcpListenerStream::new(listener),
                    |accepted| {
                        accepted.and_then(|s| {
                            s.set_nodelay(true)?;
                            Ok(s)
                        })
                    },
                ),
                shutdown.cancelled_owned(),
            )
            .await?;
        Ok(())
    }
}
