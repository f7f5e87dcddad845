//! Running a process, written once for `medledger dev` and every service subcommand: the
//! listeners it serves, the loops it runs, their readiness, and one shutdown. SIGINT or SIGTERM
//! cancels one token that stops axum, tonic, the outbox relays and every loop; each then has
//! [`DRAIN`] to finish what it has in flight.

use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context;
use axum::Router;
use medledger_http::{Readiness, Ready};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

/// How long the parts of a stopping process get to finish.
const DRAIN: Duration = Duration::from_secs(10);

/// What a process runs.
pub(crate) struct Process {
    shutdown: CancellationToken,
    readiness: Readiness,
    parts: JoinSet<(&'static str, Ready, anyhow::Result<()>)>,
    exit_on_failure: bool,
}

impl Process {
    /// A process whose parts report to one readiness. With `exit_on_failure`, a part that
    /// fails (or stops unasked) stops the whole process with its error, for a supervisor to
    /// restart; otherwise the process keeps serving and reports not ready.
    pub(crate) fn new(exit_on_failure: bool) -> Self {
        Self {
            shutdown: CancellationToken::new(),
            readiness: Readiness::default(),
            parts: JoinSet::new(),
            exit_on_failure,
        }
    }

    /// The token every part stops on.
    pub(crate) fn shutdown(&self) -> CancellationToken {
        self.shutdown.clone()
    }

    /// What `/readyz` reports.
    pub(crate) fn readiness(&self) -> Readiness {
        self.readiness.clone()
    }

    /// Runs `work` as part `name` until it ends (it should end only at shutdown).
    pub(crate) fn spawn<F, E>(&mut self, name: &'static str, work: F)
    where
        F: Future<Output = Result<(), E>> + Send + 'static,
        E: Into<anyhow::Error>,
    {
        let ready = self.readiness.part(name);
        self.parts
            .spawn(async move { (name, ready, work.await.map_err(Into::into)) });
    }

    /// Binds `addr` now (a taken address stops start-up) and serves `app` on it until
    /// shutdown; returns the bound address.
    pub(crate) async fn serve(
        &mut self,
        name: &'static str,
        addr: SocketAddr,
        app: Router,
    ) -> anyhow::Result<SocketAddr> {
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .with_context(|| format!("binding {addr} for the {name}"))?;
        let bound = listener.local_addr()?;
        let stop = self.shutdown.clone();
        self.spawn(name, async move {
            axum::serve(listener, app)
                .with_graceful_shutdown(stop.cancelled_owned())
                .await
        });
        Ok(bound)
    }

    /// Runs until SIGINT or SIGTERM (or, with `exit_on_failure`, until a part fails), then
    /// stops every part and waits up to [`DRAIN`] for them.
    pub(crate) async fn run(mut self) -> anyhow::Result<()> {
        let signal = shutdown_signal();
        tokio::pin!(signal);
        let mut failure = None;
        loop {
            tokio::select! {
                () = &mut signal => break,
                Some(joined) = self.parts.join_next() => {
                    let (name, ready, result) = joined.context("a part of the process panicked")?;
                    ready.fail();
                    let error = match result {
                        Err(e) => e.context(format!("{name} failed")),
                        Ok(()) => anyhow::anyhow!("{name} stopped"),
                    };
                    tracing::error!(error = %format!("{error:#}"), "process part ended");
                    if self.exit_on_failure {
                        failure = Some(error);
                        break;
                    }
                }
            }
        }
        self.shutdown.cancel();
        let drained = tokio::time::timeout(DRAIN, async {
            while let Some(joined) = self.parts.join_next().await {
                if let Ok((name, _, Err(e))) = joined {
                    tracing::warn!(error = %format!("{e:#}"), "{name} ended with an error at shutdown");
                }
            }
        })
        .await;
        if drained.is_err() {
            tracing::warn!(
                "some parts did not stop in time; whatever they held is resumed at the next start"
            );
        }
        failure.map_or(Ok(()), Err)
    }
}

/// Resolves on SIGINT or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        if let Ok(mut s) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        {
            s.recv().await;
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
}
