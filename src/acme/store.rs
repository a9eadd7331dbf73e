//! What ACME leaves on disk under `tls.acme_state`: the account (its key) and the current
//! certificate and key. Private keys are written 0600 in a 0700 directory, by rename so a crash
//! never leaves half a file.

use std::fmt;
use std::fs;
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use instant_acme::AccountCredentials;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use serde::{Deserialize, Serialize};

use crate::tls::{self, CertificateError};

/// Why the store could not be read or written.
#[derive(Debug)]
pub enum StoreError {
    Io {
        doing: &'static str,
        path: PathBuf,
        source: io::Error,
    },
    Damaged {
        path: PathBuf,
        why: String,
    },
    Certificate(CertificateError),
}

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StoreError::Io {
                doing,
                path,
                source,
            } => write!(f, "cannot {doing} {}: {source}", path.display()),
            StoreError::Damaged { path, why } => write!(f, "{} is damaged: {why}", path.display()),
            StoreError::Certificate(e) => e.fmt(f),
        }
    }
}

impl std::error::Error for StoreError {}

impl From<CertificateError> for StoreError {
    fn from(e: CertificateError) -> Self {
        StoreError::Certificate(e)
    }
}

fn io_error(doing: &'static str, path: &Path) -> impl FnOnce(io::Error) -> StoreError {
    let path = path.to_path_buf();
    move |source| StoreError::Io {
        doing,
        path,
        source,
    }
}

/// A certificate as stored, with what decides whether it is still the one to serve.
pub struct Stored {
    pub chain: Vec<CertificateDer<'static>>,
    pub key: PrivateKeyDer<'static>,
    pub names: Vec<String>,
    pub not_before: SystemTime,
    pub not_after: SystemTime,
    pub serial: String,
}

#[derive(Serialize, Deserialize)]
struct AccountFile {
    /// Accounts belong to one CA: a new directory needs a new account.
    directory: String,
    credentials: AccountCredentials,
}

pub struct Store {
    dir: PathBuf,
}

impl Store {
    pub fn new(state: &Path) -> Store {
        Store {
            dir: state.join("acme"),
        }
    }

    pub fn account(&self, directory: &str) -> Result<Option<AccountCredentials>, StoreError> {
        let path = self.dir.join("account.json");
        let text = match fs::read(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(io_error("read", &path)(e)),
        };
        let file: AccountFile = serde_json::from_slice(&text).map_err(|e| StoreError::Damaged {
            path: path.clone(),
            why: e.to_string(),
        })?;
        Ok((file.directory == directory).then_some(file.credentials))
    }

    pub fn save_account(
        &self,
        directory: &str,
        credentials: AccountCredentials,
    ) -> Result<(), StoreError> {
        let file = AccountFile {
            directory: directory.into(),
            credentials,
        };
        let text = serde_json::to_vec_pretty(&file).expect("account serialises");
        self.write_private("account.json", &text)
    }

    pub fn forget_account(&self) -> Result<(), StoreError> {
        let path = self.dir.join("account.json");
        match fs::remove_file(&path) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(io_error("remove", &path)(e)),
            _ => Ok(()),
        }
    }

    /// The stored certificate, if there is one.
    pub fn certificate(&self) -> Result<Option<Stored>, StoreError> {
        let (cert, key) = (self.dir.join("certificate.pem"), self.dir.join("key.pem"));
        if !cert.exists() {
            return Ok(None);
        }
        let chain = tls::read_chain(&cert, None)?;
        let key = tls::read_key(&key, None)?;
        let (names, not_before, not_after, serial) =
            tls::inspect(&chain[0]).map_err(|why| StoreError::Damaged {
                path: cert.clone(),
                why,
            })?;
        Ok(Some(Stored {
            chain,
            key,
            names,
            not_before,
            not_after,
            serial,
        }))
    }

    /// Replaces the stored certificate; the key goes first so a crash in between leaves a
    /// pair that fails to load (and is re-ordered) rather than a certificate for a lost key.
    pub fn save_certificate(&self, chain_pem: &str, key_pem: &str) -> Result<(), StoreError> {
        self.write_private("key.pem", key_pem.as_bytes())?;
        self.write_private("certificate.pem", chain_pem.as_bytes())
    }

    fn write_private(&self, name: &str, bytes: &[u8]) -> Result<(), StoreError> {
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&self.dir)
            .map_err(io_error("create", &self.dir))?;
        let (tmp, path) = (self.dir.join(format!(".{name}.new")), self.dir.join(name));
        let write = || -> io::Result<()> {
            let mut f = fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .mode(0o600)
                .open(&tmp)?;
            f.write_all(bytes)?;
            f.sync_all()?;
            fs::rename(&tmp, &path)
        };
        write().map_err(io_error("write", &path))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn certificates_round_trip_with_private_files() {
        let state = std::env::temp_dir().join(format!("rallypoint-acme-{}", std::process::id()));
        let _ = fs::remove_dir_all(&state);
        let store = Store::new(&state);
        assert!(store.certificate().unwrap().is_none());

        let mut params = rcgen::CertificateParams::new(vec!["game.example.org".into()]).unwrap();
        params.not_before = rcgen::date_time_ymd(2026, 1, 1);
        params.not_after = rcgen::date_time_ymd(2026, 4, 1);
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = params.self_signed(&key).unwrap();
        store
            .save_certificate(&cert.pem(), &key.serialize_pem())
            .unwrap();

        let stored = store.certificate().unwrap().unwrap();
        assert_eq!(stored.names, ["game.example.org"]);
        let days =
            |t: SystemTime| t.duration_since(SystemTime::UNIX_EPOCH).unwrap().as_secs() / 86400;
        assert_eq!(days(stored.not_after) - days(stored.not_before), 90);
        for name in ["key.pem", "certificate.pem"] {
            let mode = fs::metadata(state.join("acme").join(name))
                .unwrap()
                .permissions();
            assert_eq!(
                std::os::unix::fs::PermissionsExt::mode(&mode) & 0o777,
                0o600
            );
        }
        let dir_mode = fs::metadata(state.join("acme")).unwrap().permissions();
        assert_eq!(
            std::os::unix::fs::PermissionsExt::mode(&dir_mode) & 0o777,
            0o700
        );

        fs::write(state.join("acme/certificate.pem"), "garbage").unwrap();
        let err = store.certificate().err().expect("garbage refused");
        assert!(err.to_string().contains("no certificate"), "{err}");
        fs::remove_dir_all(&state).unwrap();
    }
}
