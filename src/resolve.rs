//! Fetching the planned secrets: one token per cloud, each distinct secret version once,
//! bounded concurrency, retries with backoff, and one deadline for everything.

use crate::credential::{Credential, CredentialError, CredentialSettings};
use crate::environment::Environment;
use crate::reference::{self, Cloud, Reference, ReferenceError, Scan, SecretId, Vault};
use crate::select::{self, SelectError};
use crate::transport::{self, ClientFactory, TransportOptions};
use crate::vault::{self, SecretBundle, VaultError};
use backon::{BackoffBuilder, ExponentialBuilder, Retryable};
use futures_util::stream::{self, StreamExt};
use secrecy::SecretString;
use std::collections::{BTreeMap, BTreeSet};
use std::ffi::OsString;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::time::Instant;

/// First retry delay after a server error or a broken connection.
const FIRST_RETRY_DELAY: Duration = Duration::from_millis(250);
/// Longest wait between two attempts.
const MAX_RETRY_DELAY: Duration = Duration::from_secs(16);
/// First wait after a 429 without Retry-After: Key Vault's throttling guidance waits
/// 1, 2, 4, 8 and 16 seconds.
const FIRST_THROTTLE_DELAY: Duration = Duration::from_secs(1);
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

/// Why one reference could not be resolved.
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

/// What the connection probe of `--check` learned when there are no references.
#[derive(Debug)]
pub enum Probe {
    /// A token was acquired; no vault was probed.
    TokenOnly,
    /// The vault answered the probe with 404 (or 200): reachable, and the identity may read.
    VaultReachable,
}

/// Secret name the probe asks for. Any valid name could exist, so a 200 counts as success too.
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
        let credential = Credential::new(credential_settings, http.clone())?;
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
    /// (or the public cloud) and, when a vault is given, asks it for a secret that should not
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
            match fetch_one(&self.http, &secret, &token, deadline, settings.timeout).await {
                Ok(_) | Err(FetchError::Vault(VaultError::Service { status: 404, .. })) => Ok(Probe::VaultReachable),
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

/// Why one secret could not be fetched.
#[derive(Debug, Clone, thiserror::Error)]
pub enum FetchError {
    #[error(transparent)]
    Credential(#[from] CredentialError),
    #[error(transparent)]
    Vault(#[from] VaultError),
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

/// Most HTTP/2 connections opened to one vault, so up to 800 GETs go out in the first round
/// for 8 TLS handshakes. Beyond that, GETs wait for free streams.
// NOTE: a chosen value. Key Vault's own stream and connection limits are not documented.
const MAX_CONNECTIONS_PER_VAULT: usize = 8;

/// Settings of one resolution.
#[derive(Debug, Clone, Copy)]
pub struct FetchSettings {
    /// Maximum requests in flight over all vaults (`--concurrency`), over one connection per
    /// vault. Without it, a vault that negotiated HTTP/2 gets every request at once, over one
    /// connection per [`STREAMS_PER_CONNECTION`] GETs, paced by the stream limit the server
    /// advertises. Any other vault gets at most [`HTTP1_CONCURRENCY`].
    pub concurrency: Option<usize>,
    pub timeout: Duration,
}

pub type FetchResults = BTreeMap<SecretId, Result<Arc<SecretBundle>, FetchError>>;

/// Fetches every secret in `secrets` (already distinct) and returns one result per secret.
/// `http` is the shared client, and `clients` builds more when one connection to a vault
/// would carry more than [`STREAMS_PER_CONNECTION`] GETs.
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

    let fetch = |client: &reqwest::Client, secret: SecretId| {
        let client = client.clone();
        let token = &tokens[&secret.vault.cloud];
        async move {
            let result = match token {
                Ok(token) => fetch_one(&client, &secret, token, deadline, settings.timeout).await,
                Err(error) => Err(error.clone()),
            };
            (secret, result.map(Arc::new))
        }
    };

    if let Some(limit) = settings.concurrency {
        let all = by_host.into_values().flatten();
        return stream::iter(all).map(|secret| fetch(http, secret)).buffer_unordered(limit).collect().await;
    }

    let mut fetches = Vec::new();
    for (host, secrets) in by_host {
        let http2 = http2_pools.get(&host).filter(|pool| !pool.is_empty());
        match http2 {
            // h2 (0.4) queues streams beyond the server's SETTINGS_MAX_CONCURRENT_STREAMS until
            // one closes, so over HTTP/2 the server's limit paces the requests, not a window.
            Some(pool) => {
                let per_connection = secrets.len().div_ceil(pool.len());
                tracing::debug!(host, secrets = secrets.len(), connections = pool.len(), "fetching over HTTP/2");
                for (client, chunk) in pool.iter().zip(secrets.chunks(per_connection)) {
                    let requests: Vec<_> = chunk.iter().cloned().map(|secret| fetch(client, secret)).collect();
                    fetches.push(stream::iter(requests).buffer_unordered(chunk.len()).collect::<Vec<_>>());
                }
            }
            None => {
                tracing::debug!(host, secrets = secrets.len(), limit = HTTP1_CONCURRENCY, "fetching over HTTP/1.1");
                let requests: Vec<_> = secrets.into_iter().map(|secret| fetch(http, secret)).collect();
                fetches.push(stream::iter(requests).buffer_unordered(HTTP1_CONCURRENCY).collect::<Vec<_>>());
            }
        }
    }
    futures_util::future::join_all(fetches).await.into_iter().flatten().collect()
}

/// Fetches one secret, retrying transient failures until the deadline.
async fn fetch_one(
    http: &reqwest::Client,
    secret: &SecretId,
    token: &SecretString,
    deadline: Instant,
    timeout: Duration,
) -> Result<SecretBundle, FetchError> {
    let last_error: Mutex<Option<VaultError>> = Mutex::new(None);
    let backoff = ExponentialBuilder::default()
        .with_min_delay(FIRST_RETRY_DELAY)
        .with_max_delay(MAX_RETRY_DELAY)
        .with_max_times(MAX_ATTEMPTS - 1)
        .with_jitter()
        .build();
    let attempt = || async {
        let started = std::time::Instant::now();
        let result = vault::get_secret(http, secret, token).await;
        match &result {
            Ok(bundle) => tracing::debug!(
                secret = %secret,
                version = %bundle.version,
                elapsed_ms = started.elapsed().as_millis() as u64,
                "secret fetched"
            ),
            Err(error) => tracing::debug!(secret = %secret, %error, "secret fetch failed"),
        }
        result
    };
    let retrying = attempt
        .retry(backoff)
        .when(VaultError::is_retryable)
        .adjust(|error, delay| {
            let delay = delay?;
            Some(retry_delay(error, delay))
        })
        .notify(|error, delay| {
            tracing::info!(secret = %secret, %error, delay_ms = delay.as_millis() as u64, "retrying");
            *last_error.lock().unwrap_or_else(|e| e.into_inner()) = Some(error.clone());
        });

    match tokio::time::timeout_at(deadline, retrying).await {
        Ok(result) => result.map_err(FetchError::from),
        Err(_) => Err(FetchError::TimedOut {
            phase: Phase::Vault,
            timeout,
            last: last_error
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .take()
                .map(|error| Box::new(FetchError::from(error))),
        }),
    }
}

/// The wait before the next attempt: the service's Retry-After when given, with up to
/// 50% added at random so that many processes throttled together do not return together;
/// for a 429 without it, at least the 1 s Key Vault's guidance starts with.
fn retry_delay(error: &VaultError, backoff_delay: Duration) -> Duration {
    if let Some(requested) = error.retry_after() {
        let spread = requested.mul_f64(fastrand::f64() * 0.5);
        return (requested + spread).min(MAX_RETRY_DELAY * 2);
    }
    if matches!(error, VaultError::Service { status: 429, .. }) {
        let floor = FIRST_THROTTLE_DELAY + FIRST_THROTTLE_DELAY.mul_f64(fastrand::f64());
        return backoff_delay.saturating_mul(4).max(floor).min(MAX_RETRY_DELAY);
    }
    backoff_delay
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
            let delay = retry_delay(&service(429, Some(Duration::from_secs(2))), Duration::from_millis(300));
            assert!(delay >= Duration::from_secs(2), "{delay:?}");
            assert!(delay <= Duration::from_secs(3), "{delay:?}");
        }
    }

    #[test]
    fn throttle_without_retry_after_waits_at_least_a_second() {
        let delay = retry_delay(&service(429, None), Duration::from_millis(250));
        assert!(delay >= Duration::from_secs(1), "{delay:?}");
        assert!(delay <= MAX_RETRY_DELAY);
    }

    #[test]
    fn server_error_keeps_backoff_delay() {
        let delay = retry_delay(&service(503, None), Duration::from_millis(300));
        assert_eq!(delay, Duration::from_millis(300));
    }
}
