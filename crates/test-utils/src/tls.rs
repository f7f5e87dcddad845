//! HTTPS for tests: a throwaway certificate authority, a server certificate it signs for
//! `127.0.0.1` and `localhost`, and an axum app served over TLS with it. A client trusts the
//! server by trusting [`TestCa::ca_pem`] (a CA bundle), as it would a hospital's private CA.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, pem::PemObject};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;

/// A CA and one server certificate it issued.
pub struct TestCa {
    /// The CA certificate, PEM: the bundle a client must trust.
    pub ca_pem: String,
    server_cert_pem: String,
    server_key_pem: String,
}

impl TestCa {
    /// A new CA (its key is thrown away after signing) and a certificate for `127.0.0.1` and
    /// `localhost`.
    pub fn new() -> Self {
        let ca_key = KeyPair::generate().unwrap();
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "MedLedger test CA");
        let ca_cert = ca_params.self_signed(&ca_key).unwrap();
        let issuer = Issuer::new(ca_params, ca_key);
        let server_key = KeyPair::generate().unwrap();
        let server_params =
            CertificateParams::new(vec!["127.0.0.1".to_owned(), "localhost".to_owned()]).unwrap();
        let server_cert = server_params.signed_by(&server_key, &issuer).unwrap();
        Self {
            ca_pem: ca_cert.pem(),
            server_cert_pem: server_cert.pem(),
            server_key_pem: server_key.serialize_pem(),
        }
    }

    /// Writes the CA bundle to `path` (for a configuration's `ca_bundle`).
    pub fn write_bundle(&self, path: &Path) {
        std::fs::write(path, &self.ca_pem).unwrap();
    }

    fn acceptor(&self) -> TlsAcceptor {
        let cert = CertificateDer::from_pem_slice(self.server_cert_pem.as_bytes()).unwrap();
        let key = PrivateKeyDer::from_pem_slice(self.server_key_pem.as_bytes()).unwrap();
        let config = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::aws_lc_rs::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![cert], key)
        .unwrap();
        TlsAcceptor::from(Arc::new(config))
    }

    /// Serves `app` over HTTPS on a free loopback port until the runtime stops; returns the
    /// address (the certificate names `127.0.0.1`).
    pub async fn serve(&self, app: axum::Router) -> SocketAddr {
        let tcp = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = tcp.local_addr().unwrap();
        let acceptor = self.acceptor();
        // Handshakes run side by side: one client that stalls (or distrusts the CA) must not hold
        // up the others.
        let (ready, incoming) = tokio::sync::mpsc::channel(16);
        tokio::spawn(async move {
            while let Ok((stream, peer)) = tcp.accept().await {
                let (acceptor, ready) = (acceptor.clone(), ready.clone());
                tokio::spawn(async move {
                    let handshake = acceptor.accept(stream);
                    if let Ok(Ok(tls)) =
                        tokio::time::timeout(std::time::Duration::from_secs(10), handshake).await
                    {
                        let _ = ready.send((tls, peer)).await;
                    }
                });
            }
        });
        let listener = TlsListener { addr, incoming };
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        addr
    }
}

impl Default for TestCa {
    fn default() -> Self {
        Self::new()
    }
}

/// Connections whose TLS handshake completed.
struct TlsListener {
    addr: SocketAddr,
    incoming: tokio::sync::mpsc::Receiver<(TlsStream<TcpStream>, SocketAddr)>,
}

impl axum::serve::Listener for TlsListener {
    type Io = TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.incoming.recv().await {
            Some(conn) => conn,
            // The accepting task ended (the runtime is stopping): nothing more will come.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        Ok(self.addr)
    }
}
