//! Typed errors for a failed token request, which `diagnose` turns into advice.

use super::certificate::CertificateError;
use super::choice::Selection;
use crate::vault::{classify_network, NetworkFailure};
use serde::Deserialize;
use std::path::PathBuf;
use std::sync::Arc;

/// A failed credential, with how it was chosen so the message can name the alternatives.
/// Messages never contain a secret, a password or a token.
#[derive(Debug, Clone, thiserror::Error)]
#[error("the {} credential failed: {failure}", selection.kind)]
pub struct CredentialError {
    pub selection: Arc<Selection>,
    pub failure: CredentialFailure,
}

/// The failure of the chosen credential.
#[derive(Debug, Clone, thiserror::Error)]
pub enum CredentialFailure {
    #[error("no {setting} is configured")]
    Missing {
        setting: &'static str,
        /// The fix, e.g. "set AZURE_TENANT_ID or --tenant-id to the Directory (tenant) ID".
        how: &'static str,
    },
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
    /// The token request to Entra ID got no response.
    #[error("the token request failed: {detail}")]
    Network { failure: NetworkFailure, detail: String },
    #[error("cannot use the client certificate: {0}")]
    Certificate(#[from] CertificateError),
    #[error("cannot read the federated token file {}: {reason}", path.display())]
    TokenFileUnreadable { path: PathBuf, reason: String },
    #[error("IDENTITY_ENDPOINT is set but IDENTITY_HEADER is not")]
    IdentityHeaderMissing,
    /// The App Service managed identity client of `azure_identity` reads IDENTITY_ENDPOINT
    /// and IDENTITY_HEADER from the process environment only.
    #[error("{name} from the env files does not match the process environment")]
    IdentityNotInProcess { name: &'static str },
    #[error("{name} '{value}' is not a valid http(s) URL")]
    InvalidEndpoint { name: &'static str, value: String },
    /// The managed identity endpoint returned an error status.
    #[error("the managed identity endpoint {endpoint} answered HTTP {status}{}: {description}", if error.is_empty() { String::new() } else { format!(" {error}") })]
    ManagedIdentity {
        endpoint: String,
        status: u16,
        /// The `error` field, e.g. `invalid_request`; empty when the body has none.
        error: String,
        description: String,
    },
    #[error("cannot reach the managed identity endpoint {endpoint}: {detail}")]
    ManagedIdentityNetwork {
        endpoint: String,
        failure: NetworkFailure,
        detail: String,
    },
    #[error("az (the Azure CLI) was not found on PATH")]
    AzureCliNotFound,
    #[error("the Azure CLI is not logged in: {message}")]
    AzureCliNotLoggedIn { message: String },
    #[error("'az account get-access-token' failed: {message}")]
    AzureCliFailed { message: String },
    #[error("{0}")]
    Other(String),
}

/// The Entra ID error body: `error`, `error_description`, `error_codes` and the ids that
/// Microsoft support requests.
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

/// The error body of a managed identity endpoint. IMDS and App Service send `error` and
/// `error_description`; some App Service versions send `message` instead.
#[derive(Debug, Deserialize, Default)]
pub(super) struct ManagedIdentityErrorBody {
    #[serde(default)]
    pub error: String,
    #[serde(default)]
    pub error_description: String,
    #[serde(default, alias = "Message")]
    pub message: String,
}

impl ManagedIdentityErrorBody {
    /// Reads the body leniently: anything that is not the expected JSON becomes the first
    /// line of the text.
    pub fn parse(body: &[u8]) -> ManagedIdentityErrorBody {
        match serde_json::from_slice::<ManagedIdentityErrorBody>(body) {
            Ok(parsed) => parsed,
            Err(_) => ManagedIdentityErrorBody {
                message: first_line(&String::from_utf8_lossy(body)),
                ..ManagedIdentityErrorBody::default()
            },
        }
    }

    pub fn description(&self) -> String {
        let text = if self.error_description.is_empty() {
            &self.message
        } else {
            &self.error_description
        };
        first_line(text)
    }
}

/// Reads an Entra ID credential's error: the response in the error chain, else a network
/// error, else `last_response`, the error response the transport kept.
pub(super) fn from_entra(error: &azure_core::Error, last_response: Option<(u16, Vec<u8>)>) -> CredentialFailure {
    let response = match http_response(error) {
        Some(response) => Some(response),
        // A network error means the last attempt got no response to read.
        None if find_cause::<reqwest::Error>(error).is_some() => None,
        None => last_response,
    };
    if let Some((status, body)) = response {
        let body: EntraErrorBody = serde_json::from_slice(&body).unwrap_or_default();
        return CredentialFailure::EntraId {
            status,
            error: body.error,
            codes: body.error_codes,
            description: first_line(&body.error_description),
            trace_id: body.trace_id,
            correlation_id: body.correlation_id,
        };
    }
    if let Some(reqwest_error) = find_cause::<reqwest::Error>(error) {
        let (failure, detail) = classify_network(reqwest_error);
        return CredentialFailure::Network { failure, detail };
    }
    CredentialFailure::Other(first_line(&error.to_string()))
}

/// Maps an error of `azure_identity`'s App Service managed identity client.
pub(super) fn from_managed_identity(error: &azure_core::Error, endpoint: &str) -> CredentialFailure {
    if let Some((status, body)) = http_response(error) {
        let body = ManagedIdentityErrorBody::parse(&body);
        return CredentialFailure::ManagedIdentity {
            endpoint: endpoint.to_string(),
            status,
            description: body.description(),
            error: body.error,
        };
    }
    if let Some(reqwest_error) = find_cause::<reqwest::Error>(error) {
        let (failure, detail) = classify_network(reqwest_error);
        return CredentialFailure::ManagedIdentityNetwork {
            endpoint: endpoint.to_string(),
            failure,
            detail,
        };
    }
    CredentialFailure::Other(first_line(&error.to_string()))
}

/// Returns the status and body of the HTTP response an `azure_core` error carries, if any.
fn http_response(error: &azure_core::Error) -> Option<(u16, Vec<u8>)> {
    let mut current: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(cause) = current {
        if let Some(azure) = cause.downcast_ref::<azure_core::Error>() {
            if let azure_core::error::ErrorKind::HttpResponse {
                status, raw_response, ..
            } = azure.kind()
            {
                let body = raw_response
                    .as_ref()
                    .map(|response| response.body().as_ref().to_vec())
                    .unwrap_or_default();
                return Some((u16::from(*status), body));
            }
        }
        current = cause.source();
    }
    None
}

/// Returns the first error of type `T` in the chain of `error`.
pub(super) fn find_cause<'a, T: std::error::Error + 'static>(error: &'a (dyn std::error::Error + 'static)) -> Option<&'a T> {
    let mut current: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(cause) = current {
        if let Some(found) = cause.downcast_ref::<T>() {
            return Some(found);
        }
        current = cause.source();
    }
    None
}

pub(super) fn first_line(text: &str) -> String {
    text.lines()
        .map(str::trim)
        .find(|line| !line.is_empty())
        .unwrap_or_default()
        .to_string()
}
