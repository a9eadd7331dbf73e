//! The certificate store shared by every TLS listener (HTTPS and TURN over TLS).
//!
//! Listeners hold a [`rustls::ServerConfig`] whose certificate resolver reads the current
//! certificate at each handshake, so a reload swaps it for new connections while open ones keep
//! theirs.

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

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

/// The ALPN protocol of TURN over TLS (RFC 7443); browsers offer none, so the web ports also
/// tell TURN apart by its first bytes.
pub const TURN_ALPN: &[u8] = b"stun.turn";

/// Why a certificate could not be installed.
#[derive(Debug)]
pub enum CertificateError {
    /// A PEM file that cannot be read, or holds no certificate or key. `key` names the
    /// configuration key that points at it, when one does.
    File {
        key: Option<&'static str>,
        path: PathBuf,
        why: String,
    },
    UnsupportedKey(rustls::Error),
    KeyMismatch(rustls::Error),
    /// A self-signed or TLS-ALPN-01 certificate could not be made.
    Generate(rcgen::Error),
}

impl fmt::Display for CertificateError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CertificateError::File { key, path, why } => {
                if let Some(key) = key {
                    write!(f, "{key} ")?;
                }
                write!(f, "{}: {why}", path.display())
            }
            CertificateError::UnsupportedKey(e) => {
                write!(f, "tls.private_key: unsupported key: {e}")
            }
            CertificateError::KeyMismatch(e) => {
                write!(
                    f,
                    "tls.private_key: the key does not belong to the certificate: {e}"
                )
            }
            CertificateError::Generate(e) => write!(f, "cannot make a certificate: {e}"),
        }
    }
}

impl std::error::Error for CertificateError {}

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
    pub fn load(&self, tls: &Tls) -> Result<(), CertificateError> {
        let (Some(cert), Some(key)) = (&tls.certificate, &tls.private_key) else {
            return Ok(());
        };
        let chain = read_chain(cert, Some("tls.certificate"))?;
        let key = read_key(key, Some("tls.private_key"))?;
        self.install(chain, key)
    }

    /// Serves `chain` with `key` from the next handshake on.
    pub fn install(
        &self,
        chain: Vec<CertificateDer<'static>>,
        key: PrivateKeyDer<'static>,
    ) -> Result<(), CertificateError> {
        let signer = rustls::crypto::ring::sign::any_supported_type(&key)
            .map_err(CertificateError::UnsupportedKey)?;
        let certified = CertifiedKey::new(chain, signer);
        certified
            .keys_match()
            .map_err(CertificateError::KeyMismatch)?;
        self.current.store(Some(Arc::new(certified)));
        Ok(())
    }

    /// When the certificate served now expires, if one is loaded.
    pub fn not_after(&self) -> Option<SystemTime> {
        let current = self.current.load_full()?;
        inspect(current.cert.first()?)
            .ok()
            .map(|(_, _, not_after, _)| not_after)
    }

    /// Serves a certificate signed by itself for `names`: browsers warn, but HTTPS and TURN over
    /// TLS answer while a real certificate is on its way.
    pub fn install_self_signed(&self, names: &[String]) -> Result<(), CertificateError> {
        let make = || {
            let mut params = rcgen::CertificateParams::new(names.to_vec())?;
            params.distinguished_name = rcgen::DistinguishedName::new();
            params
                .distinguished_name
                .push(rcgen::DnType::CommonName, SELF_SIGNED_NAME);
            let key = rcgen::KeyPair::generate()?;
            Ok::<_, rcgen::Error>((params.self_signed(&key)?, key))
        };
        let (cert, key) = make().map_err(CertificateError::Generate)?;
        let key = PrivateKeyDer::Pkcs8(key.serialize_der().into());
        self.install(vec![cert.der().clone()], key)
    }

    /// Answers TLS-ALPN-01 for `name`: a certificate carrying the key authorization's `digest`,
    /// served only to clients that offer `acme-tls/1`.
    pub fn add_alpn_challenge(&self, name: &str, digest: &[u8]) -> Result<(), CertificateError> {
        let make = || {
            let mut params = rcgen::CertificateParams::new(vec![name.to_string()])?;
            params
                .custom_extensions
                .push(rcgen::CustomExtension::new_acme_identifier(digest));
            let key = rcgen::KeyPair::generate()?;
            Ok::<_, rcgen::Error>((params.self_signed(&key)?, key))
        };
        let (cert, key) = make().map_err(CertificateError::Generate)?;
        let key = PrivateKeyDer::Pkcs8(key.serialize_der().into());
        let signer = rustls::crypto::ring::sign::any_supported_type(&key)
            .map_err(CertificateError::UnsupportedKey)?;
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

/// The certificates in a PEM file, at least one; `key` names the configuration key for errors.
pub fn read_chain(
    path: &Path,
    key: Option<&'static str>,
) -> Result<Vec<CertificateDer<'static>>, CertificateError> {
    let file_error = |why: String| CertificateError::File {
        key,
        path: path.to_path_buf(),
        why,
    };
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(path)
        .and_then(|certs| certs.collect())
        .map_err(|e| file_error(e.to_string()))?;
    if chain.is_empty() {
        return Err(file_error("no certificate in it".into()));
    }
    Ok(chain)
}

/// The private key in a PEM file; `key` names the configuration key for errors.
pub fn read_key(
    path: &Path,
    key: Option<&'static str>,
) -> Result<PrivateKeyDer<'static>, CertificateError> {
    PrivateKeyDer::from_pem_file(path).map_err(|e| CertificateError::File {
        key,
        path: path.to_path_buf(),
        why: e.to_string(),
    })
}

/// DNS names, validity and serial (hex) of a certificate.
pub fn inspect(
    der: &CertificateDer<'_>,
) -> Result<(Vec<String>, SystemTime, SystemTime, String), String> {
    use x509_parser::prelude::*;
    let (_, cert) =
        X509Certificate::from_der(der).map_err(|e| format!("not a certificate: {e}"))?;
    let names = cert
        .subject_alternative_name()
        .ok()
        .flatten()
        .map(|san| {
            san.value
                .general_names
                .iter()
                .filter_map(|n| match n {
                    GeneralName::DNSName(d) => Some(d.to_string()),
                    _ => None,
                })
                .collect()
        })
        .unwrap_or_default();
    let time = |t: ASN1Time| {
        let secs = u64::try_from(t.timestamp()).unwrap_or(0);
        SystemTime::UNIX_EPOCH + Duration::from_secs(secs)
    };
    let validity = cert.validity();
    Ok((
        names,
        time(validity.not_before),
        time(validity.not_after),
        cert.raw_serial_as_string(),
    ))
}

/// What `check-config` finds wrong with `[tls]`'s certificate files: errors that would stop the
/// server (unreadable, no certificate or key, the two swapped, a key of another certificate), and
/// warnings for what browsers would refuse (expired or not yet valid, `domain` not covered).
pub fn check_files(tls: &Tls, domain: Option<&str>, now: SystemTime) -> (Vec<String>, Vec<String>) {
    let (mut errors, mut warnings) = (Vec::new(), Vec::new());
    let (Some(cert), Some(key)) = (&tls.certificate, &tls.private_key) else {
        return (errors, warnings);
    };
    let swapped = read_chain(key, None).is_ok() && read_key(cert, None).is_ok();
    if let Err(e) = Certificates::default().load(tls) {
        let hint = if swapped {
            " (tls.certificate and tls.private_key look swapped)"
        } else {
            ""
        };
        errors.push(format!("{e}{hint}"));
        return (errors, warnings);
    }
    let Ok(chain) = read_chain(cert, Some("tls.certificate")) else {
        return (errors, warnings);
    };
    match inspect(&chain[0]) {
        Err(why) => errors.push(format!("tls.certificate {}: {why}", cert.display())),
        Ok((names, not_before, not_after, _)) => {
            let when = |t: SystemTime| humantime::format_rfc3339_seconds(t).to_string();
            if not_after <= now {
                warnings.push(format!(
                    "tls.certificate {} expired on {}: browsers will refuse it; renew it (or set \
                     tls.acme = true)",
                    cert.display(),
                    when(not_after)
                ));
            } else if not_before > now {
                warnings.push(format!(
                    "tls.certificate {} is valid only from {}",
                    cert.display(),
                    when(not_before)
                ));
            }
            if let Some(domain) = domain
                && !names.iter().any(|n| name_covers(n, domain))
            {
                warnings.push(format!(
                    "tls.certificate {} is for {} but server.domain is {domain}: browsers \
                         will refuse it",
                    cert.display(),
                    if names.is_empty() {
                        "no DNS name".to_string()
                    } else {
                        names.join(", ")
                    }
                ));
            }
        }
    }
    (errors, warnings)
}

/// Whether a certificate name (maybe `*.example.org`) covers `domain`.
fn name_covers(name: &str, domain: &str) -> bool {
    let (name, domain) = (name.to_ascii_lowercase(), domain.to_ascii_lowercase());
    match name.strip_prefix("*.") {
        Some(parent) => domain
            .split_once('.')
            .is_some_and(|(label, rest)| !label.is_empty() && rest == parent),
        None => name == domain,
    }
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
    #[test]
    fn names_and_wildcards() {
        use super::name_covers;
        assert!(name_covers("game.example.org", "GAME.example.org"));
        assert!(name_covers("*.example.org", "game.example.org"));
        assert!(!name_covers("*.example.org", "example.org"));
        assert!(!name_covers("*.example.org", "a.game.example.org"));
        assert!(!name_covers("other.example.org", "game.example.org"));
    }

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
        assert!(matches!(err, CertificateError::KeyMismatch(_)), "{err}");
        let garbage = dir.join("garbage.pem");
        std::fs::write(&garbage, "not pem").unwrap();
        let err = store
            .load(&Tls {
                certificate: Some(garbage),
                private_key: first.private_key.clone(),
                ..Tls::default()
            })
            .unwrap_err();
        assert!(err.to_string().contains("no certificate"), "{err}");
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
