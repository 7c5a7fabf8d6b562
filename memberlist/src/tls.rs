//! TLS for dskit's transport, with the settings dskit offers (`-memberlist.tls-enabled`,
//! `-memberlist.tls-ca-path`, `-memberlist.tls-cert-path`, `-memberlist.tls-key-path`,
//! `-memberlist.tls-server-name`, `-memberlist.tls-insecure-skip-verify`), on rustls.
//!
//! As dskit builds one Go `tls.Config` for both ends: the listening side presents the
//! certificate and does not ask for a client's; the dialing side checks the server against the
//! CA file (required unless verification is skipped) and the server name — the configured one,
//! else the IP it dials, as Go derives it from the address — and presents the same certificate
//! as a client certificate when there is one.

use std::io;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, ServerConfig, SignatureScheme};
use tokio::net::TcpStream;

use crate::transport::BoxConn;

/// Where the TLS material is and how to check the peer.
#[derive(Debug, Clone, Default)]
pub struct TlsFiles {
    /// CA certificates (PEM) the dialing side checks servers against.
    pub ca_file: Option<PathBuf>,
    /// This node's certificate chain (PEM).
    pub cert_file: Option<PathBuf>,
    /// Its private key (PEM).
    pub key_file: Option<PathBuf>,
    /// The name to check in servers' certificates (default: the IP dialed).
    pub server_name: Option<String>,
    /// Accept any server certificate (dskit's `tls-insecure-skip-verify`): encryption without
    /// authentication, for tests only.
    pub insecure_skip_verify: bool,
}

/// Ready-made TLS for both ends of dskit connections.
#[derive(Clone)]
pub struct DskitTls {
    acceptor: Option<tokio_rustls::TlsAcceptor>,
    connector: tokio_rustls::TlsConnector,
    server_name: Option<String>,
}

impl std::fmt::Debug for DskitTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DskitTls")
            .field("server", &self.acceptor.is_some())
            .field("server_name", &self.server_name)
            .finish_non_exhaustive()
    }
}

fn bad(what: &str, e: impl std::fmt::Display) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, format!("{what}: {e}"))
}

impl DskitTls {
    /// Reads the files and builds both configurations; every problem is an error naming the
    /// file.
    pub fn from_files(files: &TlsFiles) -> io::Result<DskitTls> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let chain_and_key = match (&files.cert_file, &files.key_file) {
            (Some(c), Some(k)) => {
                let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(c)
                    .map_err(|e| bad(&format!("reading {}", c.display()), e))?
                    .collect::<Result<_, _>>()
                    .map_err(|e| bad(&format!("parsing {}", c.display()), e))?;
                if chain.is_empty() {
                    return Err(bad(&c.display().to_string(), "no certificate in the file"));
                }
                let key = PrivateKeyDer::from_pem_file(k).map_err(|e| bad(&format!("reading {}", k.display()), e))?;
                Some((chain, key))
            }
            (None, None) => None,
            (Some(_), None) => return Err(bad("tls", "a certificate needs its key file")),
            (None, Some(_)) => return Err(bad("tls", "a key needs its certificate file")),
        };
        let versions = rustls::DEFAULT_VERSIONS;
        let acceptor = match &chain_and_key {
            Some((chain, key)) => {
                let server = ServerConfig::builder_with_provider(provider.clone())
                    .with_protocol_versions(versions)
                    .map_err(|e| bad("tls", e))?
                    .with_no_client_auth()
                    .with_single_cert(chain.clone(), key.clone_key())
                    .map_err(|e| bad("tls certificate", e))?;
                Some(tokio_rustls::TlsAcceptor::from(Arc::new(server)))
            }
            None => None,
        };
        let builder = ClientConfig::builder_with_provider(provider.clone())
            .with_protocol_versions(versions)
            .map_err(|e| bad("tls", e))?;
        let builder = if files.insecure_skip_verify {
            builder.dangerous().with_custom_certificate_verifier(Arc::new(AcceptAny(provider)))
        } else {
            let ca = files.ca_file.as_ref().ok_or_else(|| bad("tls", "a CA file is needed to verify servers"))?;
            let mut roots = RootCertStore::empty();
            for cert in CertificateDer::pem_file_iter(ca).map_err(|e| bad(&format!("reading {}", ca.display()), e))? {
                let cert = cert.map_err(|e| bad(&format!("parsing {}", ca.display()), e))?;
                roots.add(cert).map_err(|e| bad(&format!("CA in {}", ca.display()), e))?;
            }
            builder.with_root_certificates(roots)
        };
        let client = match chain_and_key {
            Some((chain, key)) => {
                builder.with_client_auth_cert(chain, key).map_err(|e| bad("tls client certificate", e))?
            }
            None => builder.with_no_client_auth(),
        };
        Ok(DskitTls {
            acceptor,
            connector: tokio_rustls::TlsConnector::from(Arc::new(client)),
            server_name: files.server_name.clone(),
        })
    }

    /// Whether this node can accept TLS connections (it has a certificate).
    pub fn can_serve(&self) -> bool {
        self.acceptor.is_some()
    }

    /// The server side of an accepted connection.
    pub(crate) async fn accept(&self, tcp: TcpStream) -> io::Result<BoxConn> {
        let acceptor = self.acceptor.as_ref().ok_or_else(|| io::Error::other("no TLS certificate to serve with"))?;
        Ok(Box::new(acceptor.accept(tcp).await?))
    }

    /// The client side of a dialed connection to `to`.
    pub(crate) async fn connect(&self, tcp: TcpStream, to: SocketAddr) -> io::Result<BoxConn> {
        let name = match &self.server_name {
            Some(n) => ServerName::try_from(n.clone()).map_err(|e| bad("tls server name", e))?,
            None => ServerName::IpAddress(to.ip().into()),
        };
        Ok(Box::new(self.connector.connect(name, tcp).await?))
    }
}

/// Accepts every server certificate (and checks nothing): `insecure_skip_verify`.
#[derive(Debug)]
struct AcceptAny(Arc<rustls::crypto::CryptoProvider>);

impl ServerCertVerifier for AcceptAny {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}
