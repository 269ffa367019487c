//! Managed identity tokens from the Azure VM instance metadata service (IMDS).
//!
//! Written by hand because `azure_identity` 1.0 hard-codes `http://169.254.169.254` and
//! offers no way to point it elsewhere. This client takes its base URL from
//! AZURE_POD_IDENTITY_AUTHORITY_HOST when set, the variable the Python, .NET, JavaScript
//! and Go Azure SDKs read for the same purpose, so tests run it against loopback.

use super::error::{CredentialFailure, ManagedIdentityErrorBody};
use crate::vault::classify_network;
use backon::{ExponentialBuilder, Retryable};
use secrecy::SecretString;
use serde::Deserialize;
use std::time::Duration;

/// The link-local address of IMDS on Azure VMs.
pub const DEFAULT_IMDS_HOST: &str = "http://169.254.169.254";
const TOKEN_PATH: &str = "/metadata/identity/oauth2/token";
const API_VERSION: &str = "2018-02-01";
/// Microsoft's IMDS retry guidance waits about 2, 4, 8 and 16 seconds between attempts;
/// the run's deadline still applies on top.
const FIRST_RETRY_DELAY: Duration = Duration::from_secs(2);
const MAX_RETRY_DELAY: Duration = Duration::from_secs(16);
const MAX_RETRIES: usize = 4;

/// A client for the IMDS token endpoint.
#[derive(Debug)]
pub struct ImdsClient {
    /// Sends no request through a proxy, because IMDS is reachable only from the VM itself.
    http: reqwest::Client,
    endpoint: url::Url,
    /// Selects a user-assigned identity; `None` uses the system-assigned one.
    client_id: Option<String>,
}

#[derive(Deserialize)]
struct TokenResponse {
    access_token: SecretString,
}

impl ImdsClient {
    /// Builds the client for `base` (AZURE_POD_IDENTITY_AUTHORITY_HOST) or the IMDS
    /// address. Sends nothing.
    pub fn new(http: reqwest::Client, base: Option<&str>, client_id: Option<String>) -> Result<ImdsClient, CredentialFailure> {
        let base_text = base.unwrap_or(DEFAULT_IMDS_HOST);
        let invalid = || CredentialFailure::InvalidEndpoint {
            name: "AZURE_POD_IDENTITY_AUTHORITY_HOST",
            value: base_text.to_string(),
        };
        let mut endpoint = url::Url::parse(base_text).map_err(|_| invalid())?;
        if !matches!(endpoint.scheme(), "http" | "https") || endpoint.host_str().is_none() {
            return Err(invalid());
        }
        let path = format!("{}{TOKEN_PATH}", endpoint.path().trim_end_matches('/'));
        endpoint.set_path(&path);
        endpoint.set_query(None);
        Ok(ImdsClient { http, endpoint, client_id })
    }

    /// Returns the token URL without its query, for messages.
    pub fn endpoint(&self) -> &str {
        self.endpoint.as_str()
    }

    /// Requests a token for `resource` (e.g. `https://vault.azure.net`), retrying
    /// 404, 410, 429 and 5xx responses as Microsoft's guidance advises. The caller bounds
    /// the total time.
    pub async fn token(&self, resource: &str) -> Result<SecretString, CredentialFailure> {
        let mut url = self.endpoint.clone();
        url.query_pairs_mut()
            .append_pair("api-version", API_VERSION)
            .append_pair("resource", resource);
        if let Some(client_id) = &self.client_id {
            url.query_pairs_mut().append_pair("client_id", client_id);
        }
        let backoff = ExponentialBuilder::default()
            .with_min_delay(FIRST_RETRY_DELAY)
            .with_max_delay(MAX_RETRY_DELAY)
            .with_max_times(MAX_RETRIES)
            .with_jitter();
        let attempt = || self.attempt(url.clone());
        attempt
            .retry(backoff)
            .when(is_retryable)
            .notify(|failure, delay| {
                tracing::info!(%failure, delay_ms = delay.as_millis() as u64, "retrying the IMDS token request");
            })
            .await
    }

    async fn attempt(&self, url: url::Url) -> Result<SecretString, CredentialFailure> {
        let endpoint = self.endpoint().to_string();
        let network = |error: reqwest::Error| {
            let (failure, detail) = classify_network(&error);
            CredentialFailure::ManagedIdentityNetwork {
                endpoint: endpoint.clone(),
                failure,
                detail,
            }
        };
        let response = self
            .http
            .get(url)
            .header("Metadata", "true")
            .send()
            .await
            .map_err(network)?;
        let status = response.status();
        let body = response.bytes().await.map_err(network)?;
        if status.is_success() {
            let token: TokenResponse = serde_json::from_slice(&body).map_err(|error| CredentialFailure::ManagedIdentity {
                endpoint: endpoint.clone(),
                status: status.as_u16(),
                error: String::new(),
                description: format!("the token response is not valid JSON with access_token: {error}"),
            })?;
            return Ok(token.access_token);
        }
        let body = ManagedIdentityErrorBody::parse(&body);
        Err(CredentialFailure::ManagedIdentity {
            endpoint,
            status: status.as_u16(),
            description: body.description(),
            error: body.error,
        })
    }
}

/// 404 and 410 mean IMDS is starting or updating, 429 that it is throttling, 5xx a
/// transient failure. Connection errors are not retried: off Azure they never recover.
fn is_retryable(failure: &CredentialFailure) -> bool {
    matches!(
        failure,
        CredentialFailure::ManagedIdentity { status: 404 | 410 | 429 | 500..=599, .. }
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn http() -> reqwest::Client {
        crate::transport::build_client(&crate::transport::TransportOptions::default()).unwrap()
    }

    fn client(base: Option<&str>) -> Result<ImdsClient, CredentialFailure> {
        ImdsClient::new(http(), base, None)
    }

    /// Serves `responses` in order on a loopback port, one connection each, and returns
    /// the base URL and the request heads it received.
    async fn serve(responses: Vec<(u16, &'static str)>) -> (String, tokio::task::JoinHandle<Vec<String>>) {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let server = tokio::spawn(async move {
            let mut heads = Vec::new();
            for (status, body) in responses {
                let (mut stream, _) = listener.accept().await.unwrap();
                let mut head = Vec::new();
                let mut buffer = [0u8; 1024];
                while !head.ends_with(b"\r\n\r\n") {
                    let read = stream.read(&mut buffer).await.unwrap();
                    if read == 0 {
                        break;
                    }
                    head.extend_from_slice(&buffer[..read]);
                }
                heads.push(String::from_utf8_lossy(&head).to_string());
                let response = format!(
                    "HTTP/1.1 {status} Status\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
                stream.write_all(response.as_bytes()).await.unwrap();
            }
            heads
        });
        (base, server)
    }

    const TOKEN_BODY: &str = r#"{"access_token":"imds-token","expires_in":"3599","expires_on":"1900000000","resource":"https://vault.azure.net","token_type":"Bearer"}"#;

    #[tokio::test]
    async fn token_request_has_the_imds_shape() {
        let (base, server) = serve(vec![(200, TOKEN_BODY)]).await;
        let imds = ImdsClient::new(http(), Some(&base), Some("user-assigned-1".to_string())).unwrap();
        let token = imds.token("https://vault.azure.net").await.unwrap();
        assert_eq!(secrecy::ExposeSecret::expose_secret(&token), "imds-token");

        let heads = server.await.unwrap();
        let request_line = heads[0].lines().next().unwrap();
        assert_eq!(
            request_line,
            "GET /metadata/identity/oauth2/token?api-version=2018-02-01&resource=https%3A%2F%2Fvault.azure.net&client_id=user-assigned-1 HTTP/1.1"
        );
        assert!(heads[0].to_ascii_lowercase().contains("\r\nmetadata: true\r\n"), "{}", heads[0]);
    }

    #[tokio::test]
    async fn token_request_retries_a_transient_status() {
        let (base, server) = serve(vec![(410, r#"{"error":"unavailable"}"#), (200, TOKEN_BODY)]).await;
        let imds = ImdsClient::new(http(), Some(&base), None).unwrap();
        let token = tokio::time::timeout(Duration::from_secs(20), imds.token("https://vault.azure.net"))
            .await
            .expect("the retry finished within 20 s")
            .unwrap();
        assert_eq!(secrecy::ExposeSecret::expose_secret(&token), "imds-token");
        let heads = server.await.unwrap();
        assert_eq!(heads.len(), 2);
        assert!(!heads[1].contains("client_id"), "system-assigned sends no client_id");
    }

    #[tokio::test]
    async fn token_request_reports_a_missing_identity() {
        let body = r#"{"error":"invalid_request","error_description":"Identity not found"}"#;
        let (base, _server) = serve(vec![(400, body)]).await;
        let imds = ImdsClient::new(http(), Some(&base), None).unwrap();
        let failure = imds.token("https://vault.azure.net").await.unwrap_err();
        match failure {
            CredentialFailure::ManagedIdentity { status, error, description, endpoint } => {
                assert_eq!(status, 400);
                assert_eq!(error, "invalid_request");
                assert_eq!(description, "Identity not found");
                assert_eq!(endpoint, format!("{base}/metadata/identity/oauth2/token"));
            }
            other => panic!("unexpected failure: {other}"),
        }
    }

    #[test]
    fn endpoint_defaults_to_the_metadata_address() {
        let imds = client(None).unwrap();
        assert_eq!(imds.endpoint(), "http://169.254.169.254/metadata/identity/oauth2/token");
    }

    #[test]
    fn endpoint_override_keeps_its_path_prefix() {
        let imds = client(Some("http://127.0.0.1:8080/")).unwrap();
        assert_eq!(imds.endpoint(), "http://127.0.0.1:8080/metadata/identity/oauth2/token");
        let imds = client(Some("http://127.0.0.1:8080/proxy")).unwrap();
        assert_eq!(imds.endpoint(), "http://127.0.0.1:8080/proxy/metadata/identity/oauth2/token");
    }

    #[test]
    fn endpoint_override_must_be_http() {
        for bad in ["127.0.0.1:8080", "ftp://127.0.0.1/", "not a url"] {
            assert!(client(Some(bad)).is_err(), "{bad}");
        }
    }

    #[test]
    fn retries_only_transient_statuses() {
        let status = |status| CredentialFailure::ManagedIdentity {
            endpoint: String::new(),
            status,
            error: String::new(),
            description: String::new(),
        };
        for retried in [404, 410, 429, 500, 503] {
            assert!(is_retryable(&status(retried)), "{retried}");
        }
        for final_status in [400, 401, 403] {
            assert!(!is_retryable(&status(final_status)), "{final_status}");
        }
    }
}
