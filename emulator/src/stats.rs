//! Counters a test reads to prove what a client did: how many tokens it fetched, how
//! often it read each secret, where it sent bearer tokens, how many requests it had in
//! flight at once.

use serde::Serialize;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

/// One secret read as addressed by the request: vault host, secret name and version, all
/// lowercase. `version` is empty for "latest".
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct SecretRead {
    pub vault_host: String,
    pub name: String,
    pub version: String,
}

/// A snapshot of the emulator's counters since start.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Stats {
    /// Token requests (Entra ID and managed identity, failed ones included) by
    /// (tenant, resource). The tenant is the resolved tenant id, or the tenant segment as
    /// sent when it names no tenant. The resource is the scope without `/.default`, or
    /// empty when none was sent.
    pub token_requests: BTreeMap<(String, String), u64>,
    /// `GET /secrets/...` requests, failed ones included, by the secret addressed.
    pub secret_reads: BTreeMap<SecretRead, u64>,
    /// All requests by `Host` (lowercase, without port).
    pub requests_by_host: BTreeMap<String, u64>,
    /// Every `Authorization` credential received, by `Host`, in arrival order. For the
    /// Bearer scheme this is the token alone; for other schemes the whole header value.
    #[serde(skip)]
    pub authorization_by_host: BTreeMap<String, Vec<String>>,
    /// Tokens the emulator issued, in order.
    #[serde(skip)]
    pub issued_tokens: Vec<String>,
    /// The maximum number of requests being handled at the same moment.
    pub max_in_flight: u64,
    pub tcp_connections: u64,
    /// Completed TLS handshakes.
    pub tls_connections: u64,
    /// TLS connections that negotiated HTTP/2 through ALPN.
    pub http2_connections: u64,
}

impl Stats {
    /// Token requests for one tenant and resource, e.g.
    /// `("72f988bf-…", "https://vault.azure.net")`.
    pub fn token_requests_for(&self, tenant_id: &str, resource: &str) -> u64 {
        let key = (tenant_id.to_ascii_lowercase(), resource.to_string());
        self.token_requests.get(&key).copied().unwrap_or(0)
    }

    pub fn total_token_requests(&self) -> u64 {
        self.token_requests.values().sum()
    }

    /// Reads of one secret in one vault, all versions and "latest" together.
    pub fn reads_of(&self, vault_host: &str, name: &str) -> u64 {
        let vault_host = vault_host.to_ascii_lowercase();
        let name = name.to_ascii_lowercase();
        self.secret_reads
            .iter()
            .filter(|(read, _)| read.vault_host == vault_host && read.name == name)
            .map(|(_, count)| count)
            .sum()
    }

    pub fn total_secret_reads(&self) -> u64 {
        self.secret_reads.values().sum()
    }

    pub fn requests_to(&self, host: &str) -> u64 {
        let host = host.to_ascii_lowercase();
        self.requests_by_host.get(&host).copied().unwrap_or(0)
    }

    pub fn total_requests(&self) -> u64 {
        self.requests_by_host.values().sum()
    }

    /// Authorization credentials received by `host`; empty when it got none.
    pub fn authorization_sent_to(&self, host: &str) -> &[String] {
        let host = host.to_ascii_lowercase();
        self.authorization_by_host
            .get(&host)
            .map(Vec::as_slice)
            .unwrap_or(&[])
    }
}

/// Shared, thread-safe recorder behind [`Stats`].
#[derive(Default)]
pub(crate) struct Recorder {
    counters: Mutex<Stats>,
    in_flight: AtomicU64,
    max_in_flight: AtomicU64,
}

impl Recorder {
    pub(crate) fn snapshot(&self) -> Stats {
        let mut stats = self.lock().clone();
        stats.max_in_flight = self.max_in_flight.load(Ordering::SeqCst);
        stats
    }

    pub(crate) fn reset(&self) {
        *self.lock() = Stats::default();
        self.max_in_flight
            .store(self.in_flight.load(Ordering::SeqCst), Ordering::SeqCst);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Stats> {
        // A panic while holding this lock leaves only counters behind, which stay usable.
        self.counters
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Counts a request as in flight until the returned guard is dropped.
    pub(crate) fn enter(&self) -> InFlight<'_> {
        let now = self.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        self.max_in_flight.fetch_max(now, Ordering::SeqCst);
        InFlight { recorder: self }
    }

    pub(crate) fn request(&self, host: &str, authorization: Option<&str>) {
        let mut stats = self.lock();
        *stats.requests_by_host.entry(host.to_string()).or_default() += 1;
        if let Some(value) = authorization {
            let credential = match value.split_once(' ') {
                Some((scheme, token)) if scheme.eq_ignore_ascii_case("bearer") => token.trim(),
                _ => value,
            };
            stats
                .authorization_by_host
                .entry(host.to_string())
                .or_default()
                .push(credential.to_string());
        }
    }

    pub(crate) fn token_request(&self, tenant: &str, resource: &str) {
        let key = (tenant.to_ascii_lowercase(), resource.to_string());
        *self.lock().token_requests.entry(key).or_default() += 1;
    }

    pub(crate) fn token_issued(&self, token: &str) {
        self.lock().issued_tokens.push(token.to_string());
    }

    pub(crate) fn secret_read(&self, read: SecretRead) {
        *self.lock().secret_reads.entry(read).or_default() += 1;
    }

    pub(crate) fn tcp_connection(&self) {
        self.lock().tcp_connections += 1;
    }

    pub(crate) fn tls_connection(&self, http2: bool) {
        let mut stats = self.lock();
        stats.tls_connections += 1;
        if http2 {
            stats.http2_connections += 1;
        }
    }
}

pub(crate) struct InFlight<'a> {
    recorder: &'a Recorder,
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.recorder.in_flight.fetch_sub(1, Ordering::SeqCst);
    }
}
