//! Fetching the planned secrets: one token per cloud, each distinct secret version once,
//! bounded concurrency, retries with backoff, and one deadline for everything.

use crate::credential::{Credential, CredentialError, CredentialSettings};
use crate::environment::Environment;
use crate::pacer::{self, VaultPacer};
use crate::reference::{self, Cloud, Reference, ReferenceError, Scan, SecretId, Vault};
use crate::select::{self, SelectError};
use crate::transport::{self, ClientFactory, TransportOptions};
use crate::vault::{self, SecretBundle, VaultError};
use backon::{BackoffBuilder, ExponentialBuilder};
use futures_util::stream::{self, StreamExt};
use secrecy::SecretString;
use std::collections::{BTreeMap, BTreeSet};
use std::ffi::OsString;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Semaphore;
use tokio::time::Instant;

/// First retry delay after a server error or a broken connection.
const FIRST_RETRY_DELAY: Duration = Duration::from_millis(250);
/// Maximum wait between two attempts after a server error or a broken connection.
const MAX_RETRY_DELAY: Duration = Duration::from_secs(16);
/// Attempts per secret when the service fails or the connection breaks. Throttled
/// attempts do not count: they are paced by [`VaultPacer`] and end only at the deadline.
const MAX_ATTEMPTS: usize = 10;

/// A variable whose value is a reference.
#[derive(Debug, Clone)]
pub struct Planned {
    /// Index of the variable in [`Environment::vars`].
    pub index: usize,
    pub variable: OsString,
    pub reference: Reference,
}

/// A variable whose value is meant as a reference but is invalid.
#[derive(Debug, Clone)]
pub struct Malformed {
    /// Index of the variable in [`Environment::vars`].
    pub index: usize,
    pub variable: OsString,
    pub error: ReferenceError,
}

/// Scans every value once and sorts the variables into references and malformed ones.
pub fn plan(env: &Environment, default_vault: Option<&Vault>) -> (Vec<Planned>, Vec<Malformed>) {
    let mut planned = Vec::new();
    let mut malformed = Vec::new();
    for (index, (name, value)) in env.vars().iter().enumerate() {
        match reference::scan(value, default_vault) {
            Scan::Plain => {}
            Scan::Reference(reference) => planned.push(Planned {
                index,
                variable: name.clone(),
                reference,
            }),
            Scan::Malformed(error) => malformed.push(Malformed {
                index,
                variable: name.clone(),
                error,
            }),
        }
    }
    (planned, malformed)
}

/// A resolved reference: the secret version it came from and the selected value.
pub struct Resolved {
    pub bundle: Arc<SecretBundle>,
    pub value: SecretString,
}

/// The reason one reference could not be resolved.
#[derive(Debug, Clone, thiserror::Error)]
pub enum Failure {
    #[error(transparent)]
    Fetch(#[from] FetchError),
    #[error(transparent)]
    Select(#[from] SelectError),
}

/// Errors that stop the whole resolution before any request.
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    #[error(transparent)]
    Transport(#[from] transport::TransportError),
    #[error(transparent)]
    Credential(#[from] CredentialError),
    #[error("cannot start the async runtime: {0}")]
    Runtime(std::io::Error),
}

/// The outcome of resolving every planned reference: one result per planned reference,
/// in the order of the plan.
pub type Resolution = Vec<Result<Resolved, Failure>>;

/// The result of the connection probe of `--check` when there are no references.
#[derive(Debug)]
pub enum Probe {
    /// A token was acquired; no vault was probed.
    TokenOnly,
    /// The vault returned 404 `SecretNotFound` (or 200): it is reachable,
    /// accepts the token, and lets the identity read secrets.
    VaultReachable,
}

/// Secret name the probe requests. Any valid name could exist, so a 200 counts as success too.
pub const PROBE_SECRET_NAME: &str = "kvexec-connection-check-probe";

/// The HTTP client, the credential and the runtime of one run.
pub struct Session {
    /// The factory of `http`, for extra clients that each open their own connection.
    clients: ClientFactory,
    http: reqwest::Client,
    credential: Credential,
    runtime: tokio::runtime::Runtime,
}

impl Session {
    /// Builds the HTTPS client and the credential. Nothing is sent yet.
    pub fn new(transport_options: &TransportOptions, credential_settings: CredentialSettings) -> Result<Session, SetupError> {
        let clients = ClientFactory::new(transport_options)?;
        let http = clients.client()?;
        let credential = Credential::new(credential_settings, http.clone(), &clients)?;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(SetupError::Runtime)?;
        Ok(Session {
            clients,
            http,
            credential,
            runtime,
        })
    }

    pub fn credential(&self) -> &Credential {
        &self.credential
    }

    /// Resolves every planned reference: fetches each distinct secret version once, then
    /// applies each reference's selector.
    pub fn resolve(&self, planned: &[Planned], settings: FetchSettings) -> Resolution {
        let secrets: BTreeSet<SecretId> = planned.iter().map(|p| p.reference.secret.clone()).collect();
        tracing::debug!(references = planned.len(), secrets = secrets.len(), "resolving");
        let fetched = self
            .runtime
            .block_on(fetch_all(secrets, &self.credential, &self.http, &self.clients, settings));

        planned
            .iter()
            .map(|entry| {
                let bundle = match &fetched[&entry.reference.secret] {
                    Ok(bundle) => bundle.clone(),
                    Err(error) => return Err(Failure::from(error.clone())),
                };
                let value = match &entry.reference.selector {
                    Some(selector) => select::select(&bundle.value, selector)?,
                    None => bundle.value.clone(),
                };
                Ok(Resolved { bundle, value })
            })
            .collect()
    }

    /// Proves the connection without references: acquires a token for the vault's cloud
    /// (or the public cloud) and, when a vault is given, requests a secret that should not
    /// exist, so a 404 proves reachability and permission.
    pub fn probe(&self, vault: Option<&Vault>, settings: FetchSettings) -> Result<Probe, FetchError> {
        let cloud = vault.map_or(Cloud::Public, |vault| vault.cloud);
        let deadline = Instant::now() + settings.timeout;
        self.runtime.block_on(async {
            let token = match tokio::time::timeout_at(deadline, self.credential.token(cloud)).await {
                Ok(token) => token?,
                Err(_) => {
                    return Err(FetchError::TimedOut {
                        phase: Phase::Token,
                        timeout: settings.timeout,
                        last: None,
                    })
                }
            };
            let Some(vault) = vault else {
                return Ok(Probe::TokenOnly);
            };
            let secret = SecretId {
                vault: vault.clone(),
                name: PROBE_SECRET_NAME.to_string(),
                version: None,
            };
            let limit = settings.concurrency.unwrap_or(HTTP1_CONCURRENCY);
            let vault_state = VaultState::new(limit);
            let sending = Semaphore::new(limit);
            let limits = Limits {
                vault: &vault_state,
                sending: &sending,
            };
            // Only Key Vault's own 404 proves that the identity passed authorization: a 404
            // from a proxy or another server in the way has no SecretNotFound code.
            match fetch_one(&self.http, &secret, &token, limits, deadline, settings.timeout).await {
                Ok(_) => Ok(Probe::VaultReachable),
                Err(FetchError::Vault(VaultError::Service { status: 404, code, .. })) if code == "SecretNotFound" => {
                    Ok(Probe::VaultReachable)
                }
                Err(error) => Err(error),
            }
        })
    }
}

/// The phase a deadline expired in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    Token,
    Vault,
}

/// The reason one secret could not be fetched.
#[derive(Debug, Clone, thiserror::Error)]
pub enum FetchError {
    #[error(transparent)]
    Credential(#[from] CredentialError),
    #[error(transparent)]
    Vault(#[from] VaultError),
    /// A pinned version was not found (404), and a GET of the secret's latest version showed
    /// whether the secret itself exists. Key Vault returns the same 404 in both cases.
    #[error("{error}")]
    NotFound { error: VaultError, secret_exists: bool },
    /// The deadline passed; `last` is the last failed attempt, if any.
    #[error("timed out after {}s", timeout.as_secs_f64())]
    TimedOut {
        phase: Phase,
        timeout: Duration,
        last: Option<Box<FetchError>>,
    },
}

/// Requests in flight per vault that speaks HTTP/1.1 when `--concurrency` is not set. Each
/// one needs its own connection there.
pub const HTTP1_CONCURRENCY: usize = 32;

/// GETs planned per HTTP/2 connection. RFC 9113 (section 6.5.2) recommends that servers
/// allow at least 100 concurrent streams, so up to this many GETs fit in one round.
const STREAMS_PER_CONNECTION: usize = 100;

/// Most HTTP/2 connections opened to one vault, so up to 800 GETs can be in flight for 8
/// TLS handshakes.
// NOTE: a chosen value. Key Vault's own stream and connection limits are not documented.
const MAX_CONNECTIONS_PER_VAULT: usize = 8;

/// Settings of one resolution.
#[derive(Debug, Clone, Copy)]
pub struct FetchSettings {
    /// Maximum requests in flight over all vaults (`--concurrency`), over one connection per
    /// vault. Without it, a vault that negotiated HTTP/2 may have up to
    /// [`STREAMS_PER_CONNECTION`] GETs per connection in flight, over up to
    /// [`MAX_CONNECTIONS_PER_VAULT`] connections, and any other vault [`HTTP1_CONCURRENCY`].
    /// Either way each vault's pacer starts lower and widens as responses arrive.
    pub concurrency: Option<usize>,
    pub timeout: Duration,
}

pub type FetchResults = BTreeMap<SecretId, Result<Arc<SecretBundle>, FetchError>>;

/// Fetches every secret in `secrets` (already distinct) and returns one result per secret.
pub async fn fetch_all(
    secrets: BTreeSet<SecretId>,
    credential: &Credential,
    http: &reqwest::Client,
    clients: &ClientFactory,
    settings: FetchSettings,
) -> FetchResults {
    let deadline = Instant::now() + settings.timeout;
    let clouds: BTreeSet<Cloud> = secrets.iter().map(|secret| secret.vault.cloud).collect();

    let token_requests = clouds.iter().map(|&cloud| async move {
        let token = match tokio::time::timeout_at(deadline, credential.token(cloud)).await {
            Ok(result) => result.map_err(FetchError::from),
            Err(_) => Err(FetchError::TimedOut {
                phase: Phase::Token,
                timeout: settings.timeout,
                last: None,
            }),
        };
        (cloud, token)
    });
    let mut by_host: BTreeMap<String, Vec<SecretId>> = BTreeMap::new();
    for secret in secrets {
        by_host.entry(secret.vault.host()).or_default().push(secret);
    }
    // One client per planned connection, the shared one first, because each client has its
    // own pool. An explicit --concurrency keeps the shared client alone.
    let pools: Vec<(String, Vec<reqwest::Client>)> = by_host
        .iter()
        .map(|(host, secrets)| {
            let wanted = match settings.concurrency {
                Some(_) => 1,
                None => secrets.len().div_ceil(STREAMS_PER_CONNECTION).clamp(1, MAX_CONNECTIONS_PER_VAULT),
            };
            let mut pool = vec![http.clone()];
            while pool.len() < wanted {
                match clients.client() {
                    Ok(client) => pool.push(client),
                    Err(error) => {
                        tracing::debug!(host, %error, "building another client failed");
                        break;
                    }
                }
            }
            (host.clone(), pool)
        })
        .collect();

    // Warm every connection while the token request is in flight.
    let warm_ups = pools.iter().map(|(host, pool)| async move {
        let versions = futures_util::future::join_all(pool.iter().map(|client| vault::warm_up(client, host))).await;
        // Only clients whose warm-up negotiated HTTP/2 carry GETs over HTTP/2. Without any,
        // the vault counts as HTTP/1.1 and gets the shared client.
        let http2: Vec<reqwest::Client> = pool
            .iter()
            .zip(&versions)
            .filter(|(_, version)| **version == Some(reqwest::Version::HTTP_2))
            .map(|(client, _)| client.clone())
            .collect();
        (host.clone(), http2)
    });
    let warm_up_all = tokio::time::timeout_at(deadline, futures_util::future::join_all(warm_ups));
    let (tokens, warmed) = futures_util::future::join(futures_util::future::join_all(token_requests), warm_up_all).await;
    let tokens: BTreeMap<Cloud, Result<SecretString, FetchError>> = tokens.into_iter().collect();
    let http2_pools: BTreeMap<String, Vec<reqwest::Client>> = warmed.unwrap_or_default().into_iter().collect();

    // Each vault's pacer limits its requests in flight: the whole --concurrency when given,
    // else what its connections can carry.
    let vault_states: BTreeMap<String, VaultState> = by_host
        .keys()
        .map(|host| {
            let connections = http2_pools.get(host).map_or(0, Vec::len);
            let limit = match settings.concurrency {
                Some(limit) => limit,
                None if connections > 0 => connections * STREAMS_PER_CONNECTION,
                None => HTTP1_CONCURRENCY,
            };
            (host.clone(), VaultState::new(limit))
        })
        .collect();
    let sending = Semaphore::new(settings.concurrency.unwrap_or(Semaphore::MAX_PERMITS));

    // Over HTTP/2, the secrets of a vault are spread over its connections in equal chunks.
    let mut assigned: Vec<(SecretId, reqwest::Client)> = Vec::new();
    for (host, secrets) in by_host {
        match http2_pools.get(&host).filter(|pool| !pool.is_empty() && settings.concurrency.is_none()) {
            Some(pool) => {
                let per_connection = secrets.len().div_ceil(pool.len());
                tracing::debug!(host, secrets = secrets.len(), connections = pool.len(), "fetching over HTTP/2");
                for (index, secret) in secrets.into_iter().enumerate() {
                    assigned.push((secret, pool[index / per_connection].clone()));
                }
            }
            None => assigned.extend(secrets.into_iter().map(|secret| (secret, http.clone()))),
        }
    }
    let fetch_count = assigned.len().max(1);

    // Every fetch starts at once and waits in its vault's pacer and in `sending`, so a
    // paused vault does not hold back the fetches from another vault.
    stream::iter(assigned)
        .map(|(secret, client)| {
            let token = &tokens[&secret.vault.cloud];
            let limits = Limits {
                vault: &vault_states[&secret.vault.host()],
                sending: &sending,
            };
            async move {
                let result = match token {
                    Ok(token) => fetch_and_explain(&client, &secret, token, limits, deadline, settings.timeout).await,
                    Err(error) => Err(error.clone()),
                };
                (secret, result.map(Arc::new))
            }
        })
        .buffer_unordered(fetch_count)
        .collect()
        .await
}

/// Fetches one secret like [`fetch_one`]. When a pinned version is not found, it also requests
/// the latest version, to tell a missing version from a missing secret.
async fn fetch_and_explain(
    http: &reqwest::Client,
    secret: &SecretId,
    token: &SecretString,
    limits: Limits<'_>,
    deadline: Instant,
    timeout: Duration,
) -> Result<SecretBundle, FetchError> {
    let error = match fetch_one(http, secret, token, limits, deadline, timeout).await {
        Err(FetchError::Vault(error @ VaultError::Service { status: 404, .. })) if secret.version.is_some() => error,
        other => return other,
    };
    let latest = SecretId {
        version: None,
        ..secret.clone()
    };
    // The latest value is read and dropped unseen; Key Vault has no existence check that
    // the Get permission alone allows.
    match tokio::time::timeout_at(deadline, vault::get_secret(http, &latest, token)).await {
        Ok(Ok(_)) => Err(FetchError::NotFound { error, secret_exists: true }),
        Ok(Err(VaultError::Service { status: 404, .. })) => Err(FetchError::NotFound { error, secret_exists: false }),
        // Anything else leaves the question open; report the original 404.
        Ok(Err(_)) | Err(_) => Err(FetchError::Vault(error)),
    }
}

/// The state of one vault shared by every fetch from it.
struct VaultState {
    pacer: VaultPacer,
    /// The latest 429 from the vault. A fetch that the pacer held back until the deadline
    /// never got a response of its own, so this is its reason.
    last_throttle: std::sync::Mutex<Option<VaultError>>,
}

impl VaultState {
    fn new(concurrency: usize) -> VaultState {
        VaultState {
            pacer: VaultPacer::new(concurrency),
            last_throttle: std::sync::Mutex::new(None),
        }
    }
}

/// The limits a request waits for: its vault's pacer, and a place among the
/// `--concurrency` requests in flight over all vaults.
#[derive(Clone, Copy)]
struct Limits<'a> {
    vault: &'a VaultState,
    sending: &'a Semaphore,
}

/// Fetches one secret until it succeeds, fails for good, or the deadline passes.
///
/// A 429 is retried whenever the vault's pacer admits the request again, for as long as
/// the deadline allows. Server errors and broken connections are retried after an
/// exponential backoff with jitter, at most [`MAX_ATTEMPTS`] times.
async fn fetch_one(
    http: &reqwest::Client,
    secret: &SecretId,
    token: &SecretString,
    limits: Limits<'_>,
    deadline: Instant,
    timeout: Duration,
) -> Result<SecretBundle, FetchError> {
    let mut last_error: Option<VaultError> = None;
    let attempts = async {
        let mut backoff = ExponentialBuilder::default()
            .with_min_delay(FIRST_RETRY_DELAY)
            .with_max_delay(MAX_RETRY_DELAY)
            .with_max_times(MAX_ATTEMPTS - 1)
            .with_jitter()
            .build();
        loop {
            let permit = limits.vault.pacer.acquire().await;
            let result = {
                // Acquiring fails only on a closed semaphore, and nothing closes this one.
                let _sending = limits.sending.acquire().await.ok();
                let started = std::time::Instant::now();
                let result = vault::get_secret(http, secret, token).await;
                let elapsed_ms = started.elapsed().as_millis() as u64;
                match &result {
                    Ok(bundle) => tracing::debug!(secret = %secret, version = %bundle.version, elapsed_ms, "secret fetched"),
                    Err(error) => tracing::debug!(secret = %secret, %error, elapsed_ms, "secret fetch failed"),
                }
                result
            };
            let error = match result {
                Ok(bundle) => {
                    permit.finish(pacer::Outcome::Succeeded);
                    return Ok(bundle);
                }
                Err(error) => error,
            };

            if let VaultError::Service { status: 429, retry_after, .. } = &error {
                permit.finish(pacer::Outcome::Throttled(*retry_after));
                *limits.vault.last_throttle.lock().unwrap_or_else(|e| e.into_inner()) = Some(error.clone());
                last_error = Some(error);
                continue;
            }
            permit.finish(pacer::Outcome::Failed);
            if !error.is_retryable() {
                return Err(error);
            }
            let Some(backoff_delay) = backoff.next() else {
                return Err(error);
            };
            let delay = retry_delay(&error, backoff_delay);
            tracing::info!(secret = %secret, %error, delay_ms = delay.as_millis() as u64, "retrying");
            last_error = Some(error);
            tokio::time::sleep(delay).await;
        }
    };

    let outcome = tokio::time::timeout_at(deadline, attempts).await;
    match outcome {
        Ok(result) => result.map_err(FetchError::from),
        Err(_) => {
            let last = last_error.or_else(|| limits.vault.last_throttle.lock().unwrap_or_else(|e| e.into_inner()).clone());
            Err(FetchError::TimedOut {
                phase: Phase::Vault,
                timeout,
                last: last.map(|error| Box::new(FetchError::from(error))),
            })
        }
    }
}

/// Returns the wait before retrying a server error or a broken connection: the service's
/// Retry-After when it sent one, with up to 50% added at random so that processes that
/// failed together do not return together, else the backoff delay.
fn retry_delay(error: &VaultError, backoff_delay: Duration) -> Duration {
    match error.retry_after() {
        Some(requested) => {
            let spread = requested.mul_f64(fastrand::f64() * 0.5);
            (requested + spread).min(MAX_RETRY_DELAY * 2)
        }
        None => backoff_delay,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn service(status: u16, retry_after: Option<Duration>) -> VaultError {
        VaultError::Service {
            status,
            code: "Throttled".into(),
            inner_code: None,
            message: String::new(),
            challenge: None,
            retry_after,
        }
    }

    #[test]
    fn retry_after_is_honored_with_spread() {
        for _ in 0..100 {
            let delay = retry_delay(&service(503, Some(Duration::from_secs(2))), Duration::from_millis(300));
            assert!(delay >= Duration::from_secs(2), "{delay:?}");
            assert!(delay <= Duration::from_secs(3), "{delay:?}");
        }
    }

    #[test]
    fn server_error_keeps_backoff_delay() {
        let delay = retry_delay(&service(503, None), Duration::from_millis(300));
        assert_eq!(delay, Duration::from_millis(300));
    }
}
