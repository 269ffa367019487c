//! Choosing and driving the Entra ID credential, over Microsoft's `azure_identity` crate.
//!
//! One token is requested per cloud, because the token scope follows the vault's cloud and
//! the credential caches the token for the run.

use crate::reference::Cloud;
use crate::transport::CredentialTransport;
use crate::vault::{classify_network, NetworkFailure};
use azure_core::cloud::{CloudConfiguration, CustomConfiguration};
use azure_core::credentials::TokenCredential;
use azure_core::http::{ClientOptions, ExponentialRetryOptions, RetryOptions, Transport};
use azure_identity::{ClientSecretCredential, ClientSecretCredentialOptions};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Credential settings gathered from flags, the environment and env files.
#[derive(Default)]
pub struct CredentialSettings {
    pub tenant_id: Option<String>,
    pub client_id: Option<String>,
    pub client_secret: Option<SecretString>,
    /// AZURE_AUTHORITY_HOST: replaces every cloud's default authority host.
    pub authority_host: Option<String>,
    /// Upper bound for the credential library's own retries.
    pub retry_budget: Duration,
}

/// The credential for this run, with one underlying credential per cloud.
pub struct Credential {
    settings: CredentialSettings,
    http: reqwest::Client,
    by_cloud: Mutex<HashMap<Cloud, Arc<dyn TokenCredential>>>,
}

impl std::fmt::Debug for Credential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.describe())
    }
}

impl Credential {
    /// Checks that the settings name a usable credential. Nothing is sent yet.
    pub fn new(settings: CredentialSettings, http: reqwest::Client) -> Result<Credential, CredentialError> {
        if settings.tenant_id.as_deref().is_none_or(str::is_empty) {
            return Err(CredentialError::Missing {
                setting: "tenant id",
                how: "set AZURE_TENANT_ID or --tenant-id to the Directory (tenant) ID",
            });
        }
        if settings.client_id.as_deref().is_none_or(str::is_empty) {
            return Err(CredentialError::Missing {
                setting: "client id",
                how: "set AZURE_CLIENT_ID or --client-id to the Application (client) ID",
            });
        }
        if settings.client_secret.as_ref().is_none_or(|s| s.expose_secret().is_empty()) {
            return Err(CredentialError::Missing {
                setting: "client secret",
                how: "set AZURE_CLIENT_SECRET or --client-secret-file PATH",
            });
        }
        if let Some(host) = &settings.authority_host {
            check_authority_host(host)?;
        }
        Ok(Credential {
            settings,
            http,
            by_cloud: Mutex::new(HashMap::new()),
        })
    }

    /// A short description for logs and `--check`, without any secret.
    pub fn describe(&self) -> String {
        format!(
            "client secret of application {} in tenant {}",
            self.settings.client_id.as_deref().unwrap_or_default(),
            self.settings.tenant_id.as_deref().unwrap_or_default()
        )
    }

    /// The tenant the credential signs in to.
    pub fn tenant_id(&self) -> Option<&str> {
        self.settings.tenant_id.as_deref()
    }

    /// Authority host used for `cloud`: AZURE_AUTHORITY_HOST, else the cloud's own.
    pub fn authority_host(&self, cloud: Cloud) -> String {
        self.settings
            .authority_host
            .clone()
            .unwrap_or_else(|| cloud.authority_host().to_string())
    }

    /// Requests (or reuses) a token for Key Vault in `cloud`.
    pub async fn token(&self, cloud: Cloud) -> Result<SecretString, CredentialError> {
        let credential = self.for_cloud(cloud)?;
        let started = std::time::Instant::now();
        let token = credential
            .get_token(&[cloud.scope()], None)
            .await
            .map_err(|error| CredentialError::from_azure(&error))?;
        tracing::debug!(
            scope = cloud.scope(),
            elapsed_ms = started.elapsed().as_millis() as u64,
            "token acquired"
        );
        Ok(SecretString::from(token.token.secret().to_string()))
    }

    fn for_cloud(&self, cloud: Cloud) -> Result<Arc<dyn TokenCredential>, CredentialError> {
        let mut by_cloud = self.by_cloud.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(existing) = by_cloud.get(&cloud) {
            return Ok(existing.clone());
        }
        let mut custom = CustomConfiguration::default();
        custom.authority_host = self.authority_host(cloud);
        let cloud_configuration = CloudConfiguration::from(custom);
        let client_options = ClientOptions {
            transport: Some(Transport::new(Arc::new(CredentialTransport(self.http.clone())))),
            cloud: Some(Arc::new(cloud_configuration)),
            retry: RetryOptions::exponential(ExponentialRetryOptions {
                initial_delay: azure_core::time::Duration::milliseconds(200),
                max_retries: 8,
                max_total_elapsed: azure_core::time::Duration::try_from(self.settings.retry_budget)
                    .unwrap_or(azure_core::time::Duration::seconds(30)),
                max_delay: azure_core::time::Duration::seconds(8),
            }),
            ..Default::default()
        };
        let secret = self
            .settings
            .client_secret
            .as_ref()
            .map(|secret| azure_core::credentials::Secret::new(secret.expose_secret().to_string()))
            .unwrap_or_else(|| azure_core::credentials::Secret::new(String::new()));
        let credential = ClientSecretCredential::new(
            self.settings.tenant_id.as_deref().unwrap_or_default(),
            self.settings.client_id.clone().unwrap_or_default(),
            secret,
            Some(ClientSecretCredentialOptions { client_options }),
        )
        .map_err(|error| CredentialError::Invalid(first_line(&error.to_string())))?;
        by_cloud.insert(cloud, credential.clone());
        Ok(credential)
    }
}

/// Accepts only `https://host[:port]` with no path, as the credential library does.
fn check_authority_host(host: &str) -> Result<(), CredentialError> {
    let invalid = |reason: &str| CredentialError::InvalidAuthorityHost {
        value: host.to_string(),
        reason: reason.to_string(),
    };
    let url = url::Url::parse(host).map_err(|_| invalid("not a URL"))?;
    if url.scheme() != "https" {
        return Err(invalid("it must start with https://"));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(invalid("it has no host"));
    }
    Ok(())
}

/// The Entra ID error body: `error`, `error_description`, `error_codes` and the ids that
/// Microsoft support asks for.
#[derive(Debug, Deserialize, Default)]
struct EntraErrorBody {
    #[serde(default)]
    error: String,
    #[serde(default)]
    error_description: String,
    #[serde(default)]
    error_codes: Vec<u64>,
    #[serde(default)]
    trace_id: Option<String>,
    #[serde(default)]
    correlation_id: Option<String>,
}

/// Why no token was obtained. Messages never contain a secret or a token.
#[derive(Debug, Clone, thiserror::Error)]
pub enum CredentialError {
    #[error("no {setting} is configured: {how}")]
    Missing { setting: &'static str, how: &'static str },
    #[error("AZURE_AUTHORITY_HOST '{value}' is invalid: {reason}")]
    InvalidAuthorityHost { value: String, reason: String },
    /// Entra ID rejected the token request.
    #[error("Entra ID answered HTTP {status} {error}: {description}")]
    EntraId {
        status: u16,
        error: String,
        /// AADSTS error codes, e.g. 7000215.
        codes: Vec<u64>,
        /// First line of `error_description`, e.g. `AADSTS7000215: Invalid client secret provided. …`.
        description: String,
        trace_id: Option<String>,
        correlation_id: Option<String>,
    },
    #[error("the token request failed: {detail}")]
    Network { failure: NetworkFailure, detail: String },
    #[error("the token request failed: {0}")]
    Invalid(String),
}

impl CredentialError {
    fn from_azure(error: &azure_core::Error) -> CredentialError {
        let mut current: Option<&(dyn std::error::Error + 'static)> = Some(error);
        while let Some(cause) = current {
            if let Some(azure) = cause.downcast_ref::<azure_core::Error>() {
                if let azure_core::error::ErrorKind::HttpResponse {
                    status, raw_response, ..
                } = azure.kind()
                {
                    let body: EntraErrorBody = raw_response
                        .as_ref()
                        .and_then(|response| response.body().json().ok())
                        .unwrap_or_default();
                    return CredentialError::EntraId {
                        status: u16::from(*status),
                        error: body.error,
                        codes: body.error_codes,
                        description: first_line(&body.error_description),
                        trace_id: body.trace_id,
                        correlation_id: body.correlation_id,
                    };
                }
            }
            if let Some(reqwest_error) = cause.downcast_ref::<reqwest::Error>() {
                let (failure, detail) = classify_network(reqwest_error);
                return CredentialError::Network { failure, detail };
            }
            current = cause.source();
        }
        CredentialError::Invalid(first_line(&error.to_string()))
    }
}

fn first_line(text: &str) -> String {
    text.lines().next().unwrap_or_default().trim().to_string()
}
