//! Automatic HTTPS: certificates from an ACME CA (Let's Encrypt by default) for `tls.domains`,
//! proven with HTTP-01 on the plain web listener (or TLS-ALPN-01 on HTTPS when there is no plain
//! one), kept under `tls.acme_state`, renewed when a
//! third of their lifetime is left, and installed into the certificate store that HTTPS and
//! TURN over TLS share (a swap: open connections keep the certificate they started with).
//!
//! Until a certificate exists a self-signed one is served. Failures are logged, reported by
//! `/healthz` and retried with exponential backoff, so a CA outage or a DNS mistake never stops
//! the server.
//!
//! The protocol client is instant-acme: it leaves storage, challenge serving and timing to us, so
//! certificates land in our own store and files.

mod store;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use instant_acme::{
    Account, AuthorizationStatus, ChallengeType, Identifier, NewAccount, NewOrder, OrderStatus,
    RetryPolicy,
};
use rustls_pki_types::PrivateKeyDer;
use rustls_pki_types::pem::PemObject;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::config::{Config, Tls};
use crate::tls::{CertificateError, Certificates};
use store::{Store, StoreError};

/// First retry after a failure; each further failure doubles it, up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_secs(30);
const MAX_BACKOFF: Duration = Duration::from_secs(3600);
/// One attempt (account, order, validation, download) gives up after this.
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(300);
const ACCOUNT_DOES_NOT_EXIST: &str = "urn:ietf:params:acme:error:accountDoesNotExist";

/// State shared with the web server: HTTP-01 answers and what `/healthz` reports.
#[derive(Default)]
pub struct Acme {
    /// HTTP-01 token → key authorization, while a validation is under way.
    challenges: Mutex<HashMap<String, String>>,
    status: Mutex<Status>,
}

#[derive(Clone, Default, serde::Serialize)]
struct Status {
    /// "obtaining", "valid" or "error".
    state: &'static str,
    domains: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    serial: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    expires: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    renews: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    retry_in_seconds: Option<u64>,
    self_signed: bool,
}

impl Acme {
    /// The key authorization for an HTTP-01 `token` the CA is checking.
    pub fn http01(&self, token: &str) -> Option<String> {
        self.challenges.lock().unwrap().get(token).cloned()
    }

    /// `/healthz`'s view; `None` until the ACME task has started.
    pub fn health(&self) -> Option<serde_json::Value> {
        let status = self.status.lock().unwrap();
        (!status.state.is_empty()).then(|| serde_json::to_value(&*status).expect("serialises"))
    }

    pub fn failing(&self) -> bool {
        self.status.lock().unwrap().state == "error"
    }

    fn update(&self, f: impl FnOnce(&mut Status)) {
        f(&mut self.status.lock().unwrap());
    }
}

/// When a certificate valid from `not_before` to `not_after` is renewed: with a third of its
/// lifetime left (30 days of Let's Encrypt's 90), as certbot does.
pub fn renew_at(not_before: SystemTime, not_after: SystemTime) -> SystemTime {
    let lifetime = not_after.duration_since(not_before).unwrap_or_default();
    not_after - lifetime / 3
}

/// The wait after `failures` failed attempts in a row (at least 1).
pub fn backoff(failures: u32) -> Duration {
    FIRST_BACKOFF
        .saturating_mul(1 << failures.saturating_sub(1).min(16))
        .min(MAX_BACKOFF)
}

/// Why an attempt to get a certificate failed; logged and shown in `/healthz`.
#[derive(Debug)]
pub enum AcmeError {
    /// A step of the protocol failed: the CA said no, or could not be reached.
    Ca {
        step: &'static str,
        source: instant_acme::Error,
    },
    /// The CA's answers do not let the order go on.
    Refused(String),
    Timeout(Duration),
    /// The issued certificate cannot be served, or is already due for renewal.
    Unusable,
    Store(StoreError),
    Certificate(CertificateError),
}

impl std::fmt::Display for AcmeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            AcmeError::Ca { step, source } => write!(f, "{step}: {}", explain(source)),
            AcmeError::Refused(why) => f.write_str(why),
            AcmeError::Timeout(t) => write!(f, "no answer within {}s", t.as_secs()),
            AcmeError::Unusable => {
                f.write_str("the issued certificate is unusable or already due for renewal")
            }
            AcmeError::Store(e) => e.fmt(f),
            AcmeError::Certificate(e) => e.fmt(f),
        }
    }
}

impl std::error::Error for AcmeError {}

impl From<StoreError> for AcmeError {
    fn from(e: StoreError) -> Self {
        AcmeError::Store(e)
    }
}

impl From<CertificateError> for AcmeError {
    fn from(e: CertificateError) -> Self {
        AcmeError::Certificate(e)
    }
}

/// A step's error from instant-acme.
/// An error with every cause it wraps ("client error (Connect)" alone says nothing; the
/// "Connection refused" or certificate error inside it does), and what to check when the CA
/// could not be reached at all.
fn explain(error: &dyn std::error::Error) -> String {
    let mut said: Vec<String> = vec![error.to_string()];
    let mut cause = error.source();
    while let Some(e) = cause {
        let text = e.to_string();
        if !said.iter().any(|s| s.contains(&text)) {
            said.push(text);
        }
        cause = e.source();
    }
    let mut text = said.join(": ");
    let lower = text.to_ascii_lowercase();
    if [
        "connect",
        "dns error",
        "failed to lookup",
        "refused",
        "timed out",
    ]
    .iter()
    .any(|w| lower.contains(w))
    {
        text.push_str(
            " (the CA could not be reached: check this machine's DNS and outgoing HTTPS, and \
             tls.acme_directory)",
        );
    }
    text
}

fn at(step: &'static str) -> impl FnOnce(instant_acme::Error) -> AcmeError {
    move |source| AcmeError::Ca { step, source }
}

/// Keeps a certificate for `tls.domains` installed while `tls.acme` is on, until `shutdown`.
pub async fn run(
    acme: Arc<Acme>,
    certificates: Arc<Certificates>,
    config: watch::Receiver<Arc<Config>>,
    shutdown: CancellationToken,
) {
    // Stopping abandons an attempt under way; the CA lets the order expire.
    tokio::select! {
        _ = keep(&acme, &certificates, config) => {}
        _ = shutdown.cancelled() => {}
    }
}

async fn keep(acme: &Acme, certificates: &Certificates, mut config: watch::Receiver<Arc<Config>>) {
    let mut failures = 0;
    loop {
        let current = config.borrow_and_update().clone();
        let wait = if current.tls.acme {
            let tls = &current.tls;
            let domains = tls.acme_domains(&current.server);
            let store = Store::new(&tls.acme_state_dir());
            let outcome = match install_stored(acme, certificates, &store, &domains) {
                Some(renew) => Ok(renew),
                None => tokio::time::timeout(
                    ATTEMPT_TIMEOUT,
                    obtain(acme, certificates, &current, &store, &domains),
                )
                .await
                .unwrap_or(Err(AcmeError::Timeout(ATTEMPT_TIMEOUT)))
                .and_then(|()| {
                    install_stored(acme, certificates, &store, &domains).ok_or(AcmeError::Unusable)
                }),
            };
            Some(match outcome {
                Ok(renew) => {
                    failures = 0;
                    renew.duration_since(SystemTime::now()).unwrap_or_default()
                }
                Err(error) => {
                    failures += 1;
                    let delay = backoff(failures);
                    log::error!(
                        "acme: no certificate for {} from {}: {error}; retrying in {}",
                        domains.join(", "),
                        tls.acme_directory,
                        humantime::format_duration(delay)
                    );
                    acme.update(|s| {
                        s.state = "error";
                        s.error = Some(error.to_string());
                        s.retry_in_seconds = Some(delay.as_secs());
                    });
                    delay
                }
            })
        } else {
            None
        };
        // A reload re-checks at once: the domains or the CA may have changed.
        tokio::select! {
            _ = async { match wait {
                Some(wait) => tokio::time::sleep(wait).await,
                None => std::future::pending().await,
            }} => {}
            changed = config.changed() => if changed.is_err() { return },
        }
    }
}

/// Installs the stored certificate if it covers `domains` and is not due for renewal, and
/// returns when it is due. Otherwise makes sure something is served meanwhile.
fn install_stored(
    acme: &Acme,
    certificates: &Certificates,
    store: &Store,
    domains: &[String],
) -> Option<SystemTime> {
    let stored = match store.certificate() {
        Ok(stored) => stored,
        Err(e) => {
            log::warn!("acme: the stored certificate is unusable ({e}); ordering a new one");
            None
        }
    };
    let usable = stored.filter(|s| domains.iter().all(|d| s.names.contains(d)));
    let now = SystemTime::now();
    if let Some(s) = usable {
        let renew = renew_at(s.not_before, s.not_after);
        if now < renew {
            let serial = s.serial.clone();
            match certificates.install(s.chain, s.key) {
                Ok(()) => {
                    log::info!(
                        "acme: serving the certificate for {} (serial {serial}), valid until {}, \
                         renewed from {}",
                        domains.join(", "),
                        httpdate::fmt_http_date(s.not_after),
                        httpdate::fmt_http_date(renew)
                    );
                    acme.update(|st| {
                        *st = Status {
                            state: "valid",
                            domains: domains.to_vec(),
                            serial: Some(serial),
                            expires: Some(httpdate::fmt_http_date(s.not_after)),
                            renews: Some(httpdate::fmt_http_date(renew)),
                            ..Status::default()
                        }
                    });
                    return Some(renew);
                }
                Err(e) => log::warn!("acme: the stored certificate is unusable ({e})"),
            }
        } else {
            // Keep serving it while the renewal runs: it is still valid.
            let _ = certificates.install(s.chain, s.key);
        }
    }
    if !certificates.is_loaded() {
        match certificates.install_self_signed(domains) {
            Ok(()) => {
                log::warn!(
                    "acme: serving a self-signed certificate for {} until the CA issues one; \
                     browsers will warn until then",
                    domains.join(", ")
                );
                acme.update(|s| s.self_signed = true);
            }
            Err(e) => log::error!("acme: {e}"),
        }
    }
    acme.update(|s| {
        if s.state != "error" {
            s.state = "obtaining";
        }
        s.domains = domains.to_vec();
    });
    None
}

/// One attempt: account, order, a challenge for each name, finalize, download, store.
/// HTTP-01 on the plain listener when there is one (port 80), else TLS-ALPN-01 on HTTPS (443).
async fn obtain(
    acme: &Acme,
    certificates: &Certificates,
    config: &Config,
    store: &Store,
    domains: &[String],
) -> Result<(), AcmeError> {
    let tls = &config.tls;
    let http01 = !config.web.listen.is_empty();
    log::info!(
        "acme: ordering a certificate for {} from {}",
        domains.join(", "),
        tls.acme_directory
    );
    let identifiers: Vec<Identifier> = domains.iter().cloned().map(Identifier::Dns).collect();
    let new_order = NewOrder::new(&identifiers);
    let mut order = match account(tls, store).await?.new_order(&new_order).await {
        // The CA forgot the account (a test CA restarted, an account deleted): start afresh.
        Err(instant_acme::Error::Api(problem))
            if problem.r#type.as_deref() == Some(ACCOUNT_DOES_NOT_EXIST) =>
        {
            log::warn!("acme: the CA no longer knows the stored account; creating a new one");
            store.forget_account()?;
            account(tls, store).await?.new_order(&new_order).await
        }
        other => other,
    }
    .map_err(at("new order"))?;
    // What was put up for the CA, taken down whatever the outcome.
    let (mut tokens, mut alpn_names) = (Vec::new(), Vec::new());
    let result = async {
        let mut authorizations = order.authorizations();
        while let Some(authz) = authorizations.next().await {
            let mut authz = authz.map_err(at("authorization"))?;
            match authz.status {
                AuthorizationStatus::Pending => {}
                AuthorizationStatus::Valid => continue,
                other => return Err(AcmeError::Refused(format!("authorization is {other:?}"))),
            }
            let name = authz.identifier().to_string();
            let kind = if http01 {
                ChallengeType::Http01
            } else {
                ChallengeType::TlsAlpn01
            };
            let mut challenge = authz.challenge(kind.clone()).ok_or_else(|| {
                AcmeError::Refused(format!("the CA offers no {kind:?} challenge for {name}"))
            })?;
            let answer = challenge.key_authorization();
            if http01 {
                acme.challenges
                    .lock()
                    .unwrap()
                    .insert(challenge.token.clone(), answer.as_str().to_string());
                tokens.push(challenge.token.clone());
            } else {
                certificates.add_alpn_challenge(&name, answer.digest().as_ref())?;
                alpn_names.push(name.clone());
            }
            challenge.set_ready().await.map_err(at("challenge"))?;
        }
        let polling = RetryPolicy::new().timeout(Duration::from_secs(120));
        let status = order.poll_ready(&polling).await.map_err(at("validation"))?;
        if status != OrderStatus::Ready {
            return Err(AcmeError::Refused(format!(
                "validation failed: {}",
                order_problems(&mut order).await
            )));
        }
        let key_pem = order.finalize().await.map_err(at("finalize"))?;
        let chain_pem = order
            .poll_certificate(&polling)
            .await
            .map_err(at("certificate download"))?;
        Ok((chain_pem, key_pem))
    }
    .await;
    {
        let mut challenges = acme.challenges.lock().unwrap();
        for t in &tokens {
            challenges.remove(t);
        }
    }
    for name in &alpn_names {
        certificates.remove_alpn_challenge(name);
    }
    let (chain_pem, key_pem) = result?;
    // Refuse to store what could not be served.
    PrivateKeyDer::from_pem_slice(key_pem.as_bytes()).map_err(|_| AcmeError::Unusable)?;
    store.save_certificate(&chain_pem, &key_pem)?;
    log::info!("acme: certificate for {} issued", domains.join(", "));
    Ok(())
}

/// The stored account for this CA, or a new one (agreeing to the CA's terms, as enabling
/// `tls.acme` means).
async fn account(tls: &Tls, store: &Store) -> Result<Account, AcmeError> {
    let builder = || match &tls.acme_ca_root {
        Some(root) => Account::builder_with_root(root),
        None => Account::builder(),
    };
    let builder = builder().map_err(at("HTTP client"))?;
    if let Some(credentials) = store.account(&tls.acme_directory)? {
        return builder
            .from_credentials(credentials)
            .await
            .map_err(at("account"));
    }
    let contact = tls.acme_email.as_ref().map(|e| format!("mailto:{e}"));
    let contact: Vec<&str> = contact.iter().map(String::as_str).collect();
    let (account, credentials) = builder
        .create(
            &NewAccount {
                contact: &contact,
                terms_of_service_agreed: true,
                only_return_existing: false,
            },
            tls.acme_directory.clone(),
            None,
        )
        .await
        .map_err(at("new account"))?;
    store.save_account(&tls.acme_directory, credentials)?;
    log::info!("acme: account {} created", account.id());
    Ok(account)
}

/// Why an order went invalid, from its authorizations' challenge errors.
async fn order_problems(order: &mut instant_acme::Order) -> String {
    let mut problems = Vec::new();
    let mut authorizations = order.authorizations();
    while let Some(Ok(authz)) = authorizations.next().await {
        for challenge in &authz.challenges {
            if let Some(e) = &challenge.error {
                problems.push(format!("{}: {e}", authz.identifier()));
            }
        }
    }
    if problems.is_empty() {
        "the order is invalid".into()
    } else {
        problems.join("; ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renewal_starts_with_a_third_of_the_lifetime_left() {
        let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
        let day = Duration::from_secs(86400);
        assert_eq!(renew_at(t0, t0 + 90 * day), t0 + 60 * day);
        assert_eq!(
            renew_at(t0, t0 + Duration::from_secs(45)),
            t0 + Duration::from_secs(30)
        );
        // A certificate whose dates are upside down is renewed at once.
        assert_eq!(renew_at(t0 + day, t0), t0);
    }

    #[test]
    fn backoff_doubles_from_thirty_seconds_to_an_hour() {
        let secs: Vec<u64> = (1..=9).map(|n| backoff(n).as_secs()).collect();
        assert_eq!(secs, [30, 60, 120, 240, 480, 960, 1920, 3600, 3600]);
        assert_eq!(backoff(u32::MAX), MAX_BACKOFF);
    }

    /// An error wrapping another, as hyper's client error wraps the connect error.
    #[derive(Debug)]
    struct Wrapping(&'static str, std::io::Error);

    impl std::fmt::Display for Wrapping {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str(self.0)
        }
    }

    impl std::error::Error for Wrapping {
        fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
            Some(&self.1)
        }
    }

    #[test]
    fn an_unreachable_ca_is_said_with_its_cause_and_what_to_check() {
        let refused = std::io::Error::from(std::io::ErrorKind::ConnectionRefused);
        let text = explain(&Wrapping("client error (Connect)", refused));
        assert!(
            text.starts_with(
                "client error (Connect): connection refused (the CA could not be reached: \
                 check this machine's DNS"
            ),
            "{text}"
        );
        let refusal = std::io::Error::other("urn:ietf:params:acme:error:rejectedIdentifier");
        assert_eq!(
            explain(&refusal),
            "urn:ietf:params:acme:error:rejectedIdentifier"
        );
    }
}
