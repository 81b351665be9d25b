//! HTTPS: the certificate and key from `TLS_CERT_FILE` and `TLS_KEY_FILE` (PEM), served with
//! rustls, offering HTTP/2 and HTTP/1.1 by ALPN.

use std::path::Path;
use std::sync::Arc;

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::rustls::{self, ServerConfig};
use tokio_rustls::TlsAcceptor;

/// Why the certificate or key cannot be used, naming the setting and the file.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct TlsError(String);

/// The acceptors for the connections of the slots (HTTP/2 and HTTP/1.1) and of the reserve
/// (HTTP/1.1 only: one request, then the connection is closed).
pub struct Acceptors {
    pub served: TlsAcceptor,
    pub reserve: TlsAcceptor,
}

/// Loads the certificate chain and its key; fails with a message naming the file at fault.
pub fn acceptors(cert: &Path, key: &Path) -> Result<Acceptors, TlsError> {
    let cert_error = |what: String| TlsError(format!("TLS_CERT_FILE={}: {what}", cert.display()));
    let chain = CertificateDer::pem_file_iter(cert)
        .map_err(|e| cert_error(format!("cannot read it: {e}")))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| cert_error(format!("not a PEM certificate chain: {e}")))?;
    if chain.is_empty() {
        return Err(cert_error("holds no certificate".into()));
    }
    let private = PrivateKeyDer::from_pem_file(key).map_err(|e| {
        TlsError(format!(
            "TLS_KEY_FILE={}: cannot read a PEM private key from it: {e}",
            key.display()
        ))
    })?;
    let config = |alpn: &[&[u8]]| {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| TlsError(format!("TLS: {e}")))?
            .with_no_client_auth()
            .with_single_cert(chain.clone(), private.clone_key())
            .map_err(|e| {
                TlsError(format!(
                    "TLS_KEY_FILE={} does not go with TLS_CERT_FILE={}: {e}",
                    key.display(),
                    cert.display()
                ))
            })?;
        config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
        Ok::<_, TlsError>(TlsAcceptor::from(Arc::new(config)))
    };
    Ok(Acceptors {
        served: config(&[b"h2", b"http/1.1"])?,
        reserve: config(&[b"http/1.1"])?,
    })
}
