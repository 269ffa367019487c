//! The Key Vault data-plane client: one GET per secret version, and the decoding of the
//! service's responses and failures into [`VaultError`].

use crate::reference::SecretId;
use crate::transport::DnsError;
use reqwest::header::{HeaderMap, HeaderValue, ACCEPT, AUTHORIZATION};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use std::error::Error as _;
use std::fmt;
use std::time::Duration;
use zeroize::Zeroizing;

/// Key Vault REST API version: the GA version Microsoft's SDKs target.
pub const API_VERSION: &str = "2025-07-01";

/// Largest response body read. Key Vault secrets are at most 25 KB, so anything near this
/// is not a Key Vault response.
pub const MAX_BODY_BYTES: usize = 1024 * 1024;

/// A secret version as returned by `GET /secrets/{name}/{version}`.
pub struct SecretBundle {
    pub value: SecretString,
    /// Version id: the last path segment of the bundle's `id`.
    pub version: String,
    pub content_type: Option<String>,
    /// Last update, in Unix seconds.
    pub updated: Option<i64>,
}

impl fmt::Debug for SecretBundle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SecretBundle")
            .field("value", &"[redacted]")
            .field("version", &self.version)
            .field("content_type", &self.content_type)
            .field("updated", &self.updated)
            .finish()
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct BundleBody {
    value: Option<SecretString>,
    id: Option<String>,
    content_type: Option<String>,
    attributes: Option<Attributes>,
}

#[derive(Deserialize)]
struct Attributes {
    updated: Option<i64>,
}

#[derive(Deserialize)]
struct ErrorBody {
    error: ErrorDetail,
}

#[derive(Deserialize)]
struct ErrorDetail {
    #[serde(default)]
    code: String,
    #[serde(default)]
    message: String,
    innererror: Option<InnerError>,
}

#[derive(Deserialize)]
struct InnerError {
    code: Option<String>,
}

/// The `WWW-Authenticate: Bearer authorization="…/{tenant}", resource="…"` challenge of a 401.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Challenge {
    /// Tenant that owns the vault, from the authorization URL.
    pub tenant: Option<String>,
    pub resource: Option<String>,
}

impl Challenge {
    /// Parses a Bearer challenge; unknown parameters are ignored.
    pub fn parse(header: &str) -> Option<Challenge> {
        let rest = header.trim().strip_prefix("Bearer")?;
        let mut challenge = Challenge::default();
        for part in rest.split(',') {
            let Some((key, value)) = part.split_once('=') else {
                continue;
            };
            let value = value.trim().trim_matches('"');
            match key.trim().to_ascii_lowercase().as_str() {
                "authorization" | "authorization_uri" => {
                    challenge.tenant = value
                        .trim_end_matches('/')
                        .rsplit('/')
                        .next()
                        .filter(|tenant| !tenant.is_empty() && !tenant.contains(':'))
                        .map(str::to_string);
                }
                "resource" => challenge.resource = Some(value.to_string()),
                "scope" => {
                    challenge.resource =
                        Some(value.trim_end_matches("/.default").to_string());
                }
                _ => {}
            }
        }
        Some(challenge)
    }
}

/// The kind of failure below HTTP.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NetworkFailure {
    Dns,
    Connect,
    Tls,
    Timeout,
    /// The connection broke while the request or the response was in flight.
    Interrupted,
}

/// The reason one GET failed. Messages never contain a secret value or a token.
#[derive(Debug, Clone, thiserror::Error)]
pub enum VaultError {
    /// The service returned an error status and (usually) a JSON error body.
    #[error("HTTP {status} {code}{}: {message}", inner_code.as_deref().map(|c| format!(" ({c})")).unwrap_or_default())]
    Service {
        status: u16,
        code: String,
        inner_code: Option<String>,
        message: String,
        challenge: Option<Challenge>,
        retry_after: Option<Duration>,
    },
    #[error("the vault answered HTTP {status} with a redirect to {location}; redirects are not followed")]
    Redirect { status: u16, location: String },
    #[error("the response body is larger than {MAX_BODY_BYTES} bytes, so it is not a Key Vault answer")]
    BodyTooLarge,
    #[error("invalid response body: {0}")]
    InvalidBody(String),
    #[error("{detail}")]
    Network {
        failure: NetworkFailure,
        detail: String,
    },
}

impl VaultError {
    /// Checks whether another attempt may succeed: throttling, server errors and broken
    /// connections. DNS and TLS failures are not transient.
    pub fn is_retryable(&self) -> bool {
        match self {
            VaultError::Service { status, .. } => matches!(status, 408 | 429 | 500 | 502 | 503 | 504),
            VaultError::Network { failure, .. } => {
                matches!(failure, NetworkFailure::Connect | NetworkFailure::Timeout | NetworkFailure::Interrupted)
            }
            VaultError::InvalidBody(_) => true,
            VaultError::Redirect { .. } | VaultError::BodyTooLarge => false,
        }
    }

    /// Delay the service asked for, from `Retry-After` and its millisecond variants.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            VaultError::Service { retry_after, .. } => *retry_after,
            _ => None,
        }
    }
}

/// Fetches one secret version with a bearer token.
pub async fn get_secret(
    client: &reqwest::Client,
    secret: &SecretId,
    token: &SecretString,
) -> Result<SecretBundle, VaultError> {
    let url = format!(
        "https://{}{}?api-version={API_VERSION}",
        secret.vault.host(),
        secret.path()
    );
    let mut authorization = HeaderValue::try_from(format!("Bearer {}", token.expose_secret()))
        .map_err(|_| VaultError::InvalidBody("the access token contains invalid characters".into()))?;
    authorization.set_sensitive(true);

    let response = client
        .get(&url)
        .header(AUTHORIZATION, authorization)
        .header(ACCEPT, "application/json")
        .send()
        .await
        .map_err(network_error)?;
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let body = read_body(response).await?;

    if (300..400).contains(&status) {
        let location = header_text(&headers, "location").unwrap_or_default();
        return Err(VaultError::Redirect { status, location });
    }
    if status != 200 {
        return Err(service_error(status, &headers, &body));
    }

    let bundle: BundleBody = serde_json::from_slice(&body)
        .map_err(|error| VaultError::InvalidBody(format!("not a Key Vault secret bundle ({:?} error at line {})", error.classify(), error.line())))?;
    let value = bundle
        .value
        .ok_or_else(|| VaultError::InvalidBody("the secret bundle has no value".into()))?;
    let version = bundle
        .id
        .as_deref()
        .and_then(|id| id.trim_end_matches('/').rsplit('/').next())
        .unwrap_or_default()
        .to_string();
    Ok(SecretBundle {
        value,
        version,
        content_type: bundle.content_type,
        updated: bundle.attributes.and_then(|attributes| attributes.updated),
    })
}

/// Opens a connection to `host` before the token is known, so the TLS handshake (and the
/// HTTP/2 negotiation that lets later GETs share the connection) overlaps the token request.
/// It sends `GET /secrets` without a token, to which Key Vault responds with a 401 challenge.
/// Returns the HTTP version of the response, or `None` when the request failed.
pub async fn warm_up(client: &reqwest::Client, host: &str) -> Option<reqwest::Version> {
    let url = format!("https://{host}/secrets?api-version={API_VERSION}&maxresults=1");
    let started = std::time::Instant::now();
    match client.get(&url).header(ACCEPT, "application/json").send().await {
        Ok(response) => {
            let status = response.status().as_u16();
            let version = response.version();
            let _ = read_body(response).await;
            tracing::debug!(host, status, ?version, elapsed_ms = started.elapsed().as_millis() as u64, "connection warmed up");
            Some(version)
        }
        Err(error) => {
            tracing::debug!(host, error = %network_error(error), "warm-up failed");
            None
        }
    }
}

/// Reads the body up to [`MAX_BODY_BYTES`] into a buffer that is wiped on drop.
async fn read_body(mut response: reqwest::Response) -> Result<Zeroizing<Vec<u8>>, VaultError> {
    if response.content_length().is_some_and(|length| length > MAX_BODY_BYTES as u64) {
        return Err(VaultError::BodyTooLarge);
    }
    let mut body = Zeroizing::new(Vec::with_capacity(
        response.content_length().unwrap_or(0).min(64 * 1024) as usize,
    ));
    while let Some(chunk) = response.chunk().await.map_err(network_error)? {
        if body.len() + chunk.len() > MAX_BODY_BYTES {
            return Err(VaultError::BodyTooLarge);
        }
        // Grow by hand so a reallocation never leaves an unwiped copy of the secret behind.
        if body.capacity() < body.len() + chunk.len() {
            let mut larger = Zeroizing::new(Vec::with_capacity((body.len() + chunk.len()) * 2));
            larger.extend_from_slice(&body);
            body = larger;
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

fn service_error(status: u16, headers: &HeaderMap, body: &[u8]) -> VaultError {
    let (code, inner_code, message) = match serde_json::from_slice::<ErrorBody>(body) {
        Ok(parsed) => (
            parsed.error.code,
            parsed.error.innererror.and_then(|inner| inner.code),
            clean_message(&parsed.error.message),
        ),
        Err(_) => (
            String::new(),
            None,
            "the response has no Key Vault error body".to_string(),
        ),
    };
    let challenge = header_text(headers, "www-authenticate")
        .as_deref()
        .and_then(Challenge::parse);
    VaultError::Service {
        status,
        code,
        inner_code,
        message,
        challenge,
        retry_after: retry_after(headers),
    }
}

/// Reads `x-ms-retry-after-ms`, `retry-after-ms` and `Retry-After` (seconds), in that
/// order, as the Azure SDKs do. An HTTP-date `Retry-After` is ignored.
fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    for name in ["x-ms-retry-after-ms", "retry-after-ms"] {
        if let Some(ms) = header_text(headers, name).and_then(|v| v.trim().parse::<u64>().ok()) {
            return Some(Duration::from_millis(ms));
        }
    }
    header_text(headers, "retry-after")
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(Duration::from_secs)
}

fn header_text(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get(name)
        .and_then(|value| value.to_str().ok())
        .map(str::to_string)
}

/// Keeps a service message to one printable line of bounded length.
fn clean_message(message: &str) -> String {
    const MAX_CHARS: usize = 400;
    let line: String = message
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(MAX_CHARS)
        .collect();
    line.trim().to_string()
}

/// Turns a reqwest error into a network failure.
pub fn network_error(error: reqwest::Error) -> VaultError {
    let (failure, detail) = classify_network(&error);
    VaultError::Network { failure, detail }
}

/// Tells DNS, TLS, connect and timeout failures apart by walking the error's sources.
pub fn classify_network(error: &reqwest::Error) -> (NetworkFailure, String) {
    let mut failure = if error.is_timeout() {
        NetworkFailure::Timeout
    } else if error.is_connect() {
        NetworkFailure::Connect
    } else {
        NetworkFailure::Interrupted
    };
    let mut detail = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        if let Some(dns) = cause.downcast_ref::<DnsError>() {
            return (NetworkFailure::Dns, dns.to_string());
        }
        if let Some(tls) = cause.downcast_ref::<rustls::Error>() {
            return (NetworkFailure::Tls, format!("TLS handshake failed: {tls}"));
        }
        if let Some(io) = cause.downcast_ref::<std::io::Error>() {
            if io.kind() == std::io::ErrorKind::TimedOut {
                failure = NetworkFailure::Timeout;
            }
            if let Some(tls) = wrapped_rustls_error(io) {
                return (NetworkFailure::Tls, format!("TLS handshake failed: {tls}"));
            }
        }
        detail = format!("{detail}: {cause}");
        source = cause.source();
    }
    (failure, detail)
}

/// Finds the rustls error that the TLS connector wraps in (possibly nested) `io::Error`s.
/// `io::Error::source` skips the error it wraps, so only `get_ref` reaches it.
fn wrapped_rustls_error(io: &std::io::Error) -> Option<&rustls::Error> {
    let mut inner = io.get_ref()?;
    loop {
        if let Some(tls) = inner.downcast_ref::<rustls::Error>() {
            return Some(tls);
        }
        inner = inner.downcast_ref::<std::io::Error>()?.get_ref()?;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rustls_error_found_inside_nested_io_errors() {
        let tls = rustls::Error::InvalidCertificate(rustls::CertificateError::BadSignature);
        let nested = std::io::Error::other(std::io::Error::new(std::io::ErrorKind::InvalidData, tls.clone()));
        assert_eq!(wrapped_rustls_error(&nested), Some(&tls));
        assert_eq!(wrapped_rustls_error(&std::io::Error::other("plain")), None);
    }

    #[test]
    fn challenge_parses_tenant_and_resource() {
        let challenge = Challenge::parse(
            r#"Bearer authorization="https://login.windows.net/72f988bf-86f1-41af-91ab-2d7cd011db47", resource="https://vault.azure.net""#,
        )
        .unwrap();
        assert_eq!(challenge.tenant.as_deref(), Some("72f988bf-86f1-41af-91ab-2d7cd011db47"));
        assert_eq!(challenge.resource.as_deref(), Some("https://vault.azure.net"));
    }

    #[test]
    fn challenge_parses_scope_form() {
        let challenge = Challenge::parse(
            r#"Bearer authorization="https://login.microsoftonline.com/tid/", scope="https://vault.azure.net/.default""#,
        )
        .unwrap();
        assert_eq!(challenge.tenant.as_deref(), Some("tid"));
        assert_eq!(challenge.resource.as_deref(), Some("https://vault.azure.net"));
    }

    #[test]
    fn challenge_rejects_other_schemes() {
        assert_eq!(Challenge::parse("Basic realm=x"), None);
    }

    #[test]
    fn retry_after_prefers_milliseconds() {
        let mut headers = HeaderMap::new();
        headers.insert("retry-after", HeaderValue::from_static("3"));
        assert_eq!(retry_after(&headers), Some(Duration::from_secs(3)));
        headers.insert("x-ms-retry-after-ms", HeaderValue::from_static("250"));
        assert_eq!(retry_after(&headers), Some(Duration::from_millis(250)));
    }

    #[test]
    fn service_error_reads_inner_code() {
        let body = br#"{"error":{"code":"Forbidden","message":"Operation get is not allowed on a disabled secret.","innererror":{"code":"SecretDisabled"}}}"#;
        let VaultError::Service { status, code, inner_code, .. } = service_error(403, &HeaderMap::new(), body) else {
            panic!("expected a service error");
        };
        assert_eq!(status, 403);
        assert_eq!(code, "Forbidden");
        assert_eq!(inner_code.as_deref(), Some("SecretDisabled"));
    }

    #[test]
    fn service_error_without_json_body() {
        let error = service_error(502, &HeaderMap::new(), b"<html>bad gateway</html>");
        assert!(error.is_retryable());
        assert!(!error.to_string().contains("html"));
    }

    #[test]
    fn wrapped_tls_error_found_at_any_depth() {
        let tls = || rustls::Error::General("handshake".into());
        let once = std::io::Error::new(std::io::ErrorKind::InvalidData, tls());
        assert!(wrapped_rustls_error(&once).is_some());
        let twice = std::io::Error::other(std::io::Error::new(std::io::ErrorKind::InvalidData, tls()));
        assert!(wrapped_rustls_error(&twice).is_some());
        let plain = std::io::Error::other("connection refused");
        assert!(wrapped_rustls_error(&plain).is_none());
    }

    #[test]
    fn clean_message_strips_control_characters() {
        assert_eq!(clean_message("a\r\nb\u{1b}[31m"), "a  b [31m");
    }
}
