//! The certificate store shared by every TLS listener (HTTPS and TURN over TLS).
//!
//! Listeners hold a [`rustls::ServerConfig`] whose certificate resolver reads the current
//! certificate at each handshake, so a reload swaps it for new connections while open ones keep
//! theirs.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use arc_swap::ArcSwapOption;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use crate::config::Tls;

/// A client that has not finished its TLS handshake by then is disconnected.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// The subject of the stand-in certificate, so a person inspecting it in a browser knows why.
const SELF_SIGNED_NAME: &str = "rallypoint self-signed (no certificate yet)";

/// The ALPN protocol of ACME's TLS-ALPN-01 challenge (RFC 8737).
pub const ACME_TLS_ALPN: &[u8] = b"acme-tls/1";

#[derive(Debug, Default)]
pub struct Certificates {
    current: ArcSwapOption<CertifiedKey>,
    /// TLS-ALPN-01 answers by server name, while a validation is under way.
    challenges: Mutex<HashMap<String, Arc<CertifiedKey>>>,
}

impl Certificates {
    /// Loads `[tls]`'s files, if any; keeps the previous certificate when they are unusable.
    /// A file without them keeps it too: TLS listeners stay bound until a restart, and with
    /// `tls.acme` the ACME task installs certificates.
    pub fn load(&self, tls: &Tls) -> Result<(), String> {
        let (Some(cert), Some(key)) = (&tls.certificate, &tls.private_key) else {
            return Ok(());
        };
        let chain = read_chain(cert).map_err(|e| format!("tls.certificate {e}"))?;
        let key = PrivateKeyDer::from_pem_file(key)
            .map_err(|e| format!("tls.private_key {}: {e}", key.display()))?;
        self.install(chain, key)
            .map_err(|e| format!("tls.private_key: {e}"))
    }

    /// Serves `chain` with `key` from the next handshake on.
    pub fn install(
        &self,
        chain: Vec<CertificateDer<'static>>,
        key: PrivateKeyDer<'static>,
    ) -> Result<(), String> {
        let signer = rustls::crypto::ring::sign::any_supported_type(&key)
            .map_err(|e| format!("unsupported key: {e}"))?;
        let certified = CertifiedKey::new(chain, signer);
        certified
            .keys_match()
            .map_err(|e| format!("the key does not belong to the certificate: {e}"))?;
        self.current.store(Some(Arc::new(certified)));
        Ok(())
    }

    /// Serves a certificate signed by itself for `names`: browsers warn, but HTTPS and TURN over
    /// TLS answer while a real certificate is on its way.
    pub fn install_self_signed(&self, names: &[String]) -> Result<(), String> {
        let make = || {
            let mut params = rcgen::CertificateParams::new(names.to_vec())?;
            params.distinguished_name = rcgen::DistinguishedName::new();
            params
                .distinguished_name
                .push(rcgen::DnType::CommonName, SELF_SIGNED_NAME);
            let key = rcgen::KeyPair::generate()?;
            Ok::<_, rcgen::Error>((params.self_signed(&key)?, key))
        };
        let (cert, key) =
            make().map_err(|e| format!("cannot make a self-signed certificate: {e}"))?;
        let key = PrivateKeyDer::Pkcs8(key.serialize_der().into());
        self.install(vec![cert.der().clone()], key)
    }

    /// Answers TLS-ALPN-01 for `name`: a certificate carrying the key authorization's `digest`,
    /// served only to clients that offer `acme-tls/1`.
    pub fn add_alpn_challenge(&self, name: &str, digest: &[u8]) -> Result<(), String> {
        let make = || {
            let mut params = rcgen::CertificateParams::new(vec![name.to_string()])?;
            params
                .custom_extensions
                .push(rcgen::CustomExtension::new_acme_identifier(digest));
            let key = rcgen::KeyPair::generate()?;
            Ok::<_, rcgen::Error>((params.self_signed(&key)?, key))
        };
        let (cert, key) = make().map_err(|e| format!("TLS-ALPN-01 certificate: {e}"))?;
        let key = PrivateKeyDer::Pkcs8(key.serialize_der().into());
        let signer = rustls::crypto::ring::sign::any_supported_type(&key)
            .map_err(|e| format!("TLS-ALPN-01 key: {e}"))?;
        let certified = CertifiedKey::new(vec![cert.der().clone()], signer);
        self.challenges
            .lock()
            .unwrap()
            .insert(name.to_ascii_lowercase(), Arc::new(certified));
        Ok(())
    }

    pub fn remove_alpn_challenge(&self, name: &str) {
        self.challenges
            .lock()
            .unwrap()
            .remove(&name.to_ascii_lowercase());
    }

    pub fn is_loaded(&self) -> bool {
        self.current.load().is_some()
    }

    /// A rustls configuration that serves the current certificate, offering `alpn` protocols.
    pub fn server_config(self: &Arc<Self>, alpn: &[&[u8]]) -> Arc<rustls::ServerConfig> {
        let mut config = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .expect("ring supports the default protocol versions")
        .with_no_client_auth()
        .with_cert_resolver(Arc::new(Resolver(self.clone())));
        config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
        Arc::new(config)
    }
}

/// The certificates in a PEM file, at least one.
pub fn read_chain(path: &std::path::Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(path)
        .and_then(|certs| certs.collect())
        .map_err(|e| format!("{}: {e}", path.display()))?;
    if chain.is_empty() {
        return Err(format!("{}: no certificate in it", path.display()));
    }
    Ok(chain)
}

#[derive(Debug)]
struct Resolver(Arc<Certificates>);

impl ResolvesServerCert for Resolver {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let acme = hello
            .alpn()
            .is_some_and(|mut protocols| protocols.any(|p| p == ACME_TLS_ALPN));
        if acme {
            let name = hello.server_name()?.to_ascii_lowercase();
            return self.0.challenges.lock().unwrap().get(&name).cloned();
        }
        self.0.current.load_full()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write_pair(dir: &std::path::Path, name: &str) -> Tls {
        let cert = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
        let (c, k) = (
            dir.join(format!("{name}.crt")),
            dir.join(format!("{name}.key")),
        );
        std::fs::write(&c, cert.cert.pem()).unwrap();
        std::fs::write(&k, cert.signing_key.serialize_pem()).unwrap();
        Tls {
            certificate: Some(c),
            private_key: Some(k),
            ..Tls::default()
        }
    }

    #[test]
    fn loads_swaps_and_keeps_the_old_certificate_on_bad_files() {
        let dir = std::env::temp_dir().join(format!("rallypoint-tls-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let store = Certificates::default();
        let first = write_pair(&dir, "a");
        store.load(&first).unwrap();
        let before = store.current.load_full().unwrap();

        let mismatched = Tls {
            certificate: first.certificate.clone(),
            private_key: write_pair(&dir, "b").private_key,
            ..Tls::default()
        };
        let err = store.load(&mismatched).unwrap_err();
        assert!(err.contains("does not belong"), "{err}");
        let garbage = dir.join("garbage.pem");
        std::fs::write(&garbage, "not pem").unwrap();
        let err = store
            .load(&Tls {
                certificate: Some(garbage),
                private_key: first.private_key.clone(),
                ..Tls::default()
            })
            .unwrap_err();
        assert!(err.contains("no certificate"), "{err}");
        assert!(
            Arc::ptr_eq(&before, &store.current.load_full().unwrap()),
            "old one kept"
        );

        store.load(&write_pair(&dir, "c")).unwrap();
        assert!(
            !Arc::ptr_eq(&before, &store.current.load_full().unwrap()),
            "swapped"
        );
    }
}
