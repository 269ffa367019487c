//! Choosing and driving the Entra ID credential, mostly over Microsoft's `azure_identity`
//! crate: a client secret, a client certificate, a workload identity (federated token), a
//! managed identity, or the signed-in Azure CLI.
//!
//! One token is requested per cloud, because the token scope follows the vault's cloud.
//! Every HTTP request goes through kvexec's own client, so `--resolve`, SSL_CERT_FILE and
//! the proxy variables apply; managed identity endpoints are reached without a proxy.

mod azure_cli;
pub mod certificate;
mod choice;
mod error;
mod imds;
mod recording;

pub use certificate::CertificateError;
pub use choice::{select, Availability, CredentialKind, Selection, UnknownCredential};
pub use error::{CredentialError, CredentialFailure};

use crate::reference::Cloud;
use crate::transport::ClientFactory;
use azure_core::cloud::{CloudConfiguration, CustomConfiguration};
use azure_core::credentials::TokenCredential;
use azure_core::http::{ClientOptions, ExponentialRetryOptions, HttpClient, RetryOptions, Transport};
use azure_identity::{
    AzureCliCredential, AzureCliCredentialOptions, ClientAssertionCredential, ClientAssertionCredentialOptions,
    ClientSecretCredential, ClientSecretCredentialOptions, ManagedIdentityCredential, ManagedIdentityCredentialOptions,
    UserAssignedId, WorkloadIdentityCredential, WorkloadIdentityCredentialOptions,
};
use certificate::{CertificateAssertion, ClientCertificate};
use imds::ImdsClient;
use recording::RecordingClient;
use secrecy::{ExposeSecret, SecretString};
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Credential settings gathered from flags, the environment and env files.
#[derive(Default)]
pub struct CredentialSettings {
    /// The credential named by `--credential` or KVEXEC_CREDENTIAL, with the name of the
    /// one that set it; `None` means auto.
    pub choice: Option<(CredentialKind, &'static str)>,
    pub tenant_id: Option<String>,
    /// The application (client) id; for managed identity, the user-assigned identity.
    pub client_id: Option<String>,
    pub client_secret: Option<SecretString>,
    /// AZURE_CLIENT_CERTIFICATE_PATH: a PEM or PKCS#12 file with the certificate and key.
    pub certificate_path: Option<PathBuf>,
    /// AZURE_CLIENT_CERTIFICATE_PASSWORD: for PKCS#12 files and encrypted PEM keys.
    pub certificate_password: Option<SecretString>,
    /// AZURE_CLIENT_SEND_CERTIFICATE_CHAIN: send the `x5c` chain in client assertions.
    pub send_certificate_chain: bool,
    /// AZURE_FEDERATED_TOKEN_FILE: the workload identity's federated token.
    pub federated_token_file: Option<PathBuf>,
    /// IDENTITY_ENDPOINT: App Service, Functions and Container Apps managed identity.
    pub identity_endpoint: Option<String>,
    /// IDENTITY_HEADER: the value that endpoint expects in `X-IDENTITY-HEADER`.
    pub identity_header: Option<SecretString>,
    /// AZURE_POD_IDENTITY_AUTHORITY_HOST: replaces the VM metadata endpoint's base URL.
    pub imds_endpoint: Option<String>,
    /// AZURE_AUTHORITY_HOST: replaces every cloud's default authority host.
    pub authority_host: Option<String>,
    /// Upper bound for the credential library's own retries.
    pub retry_budget: Duration,
}

/// The credential for this run.
pub struct Credential {
    selection: Arc<Selection>,
    settings: CredentialSettings,
    source: Source,
    http: reqwest::Client,
    /// Entra ID credentials, one per cloud because each cloud has its own authority host,
    /// with the HTTP client that keeps their last error response.
    by_cloud: Mutex<HashMap<Cloud, EntraCredential>>,
}

/// An Entra ID credential and the HTTP client that keeps its last error response.
type EntraCredential = (Arc<dyn TokenCredential>, Arc<RecordingClient>);

/// The source of tokens, once the settings are checked.
enum Source {
    ClientSecret,
    ClientCertificate(Arc<ClientCertificate>),
    WorkloadIdentity(PathBuf),
    /// The App Service protocol (IDENTITY_ENDPOINT and IDENTITY_HEADER).
    AppService {
        endpoint: String,
        credential: Arc<dyn TokenCredential>,
    },
    Imds(ImdsClient),
    AzureCli(Arc<dyn TokenCredential>),
}

impl std::fmt::Debug for Credential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.describe())
    }
}

impl Credential {
    /// Chooses the credential and checks its settings. A certificate file is read here;
    /// nothing is sent yet.
    pub fn new(
        settings: CredentialSettings,
        http: reqwest::Client,
        clients: &ClientFactory,
    ) -> Result<Credential, CredentialError> {
        let selection = Arc::new(select(&settings));
        let source = prepare(selection.kind, &settings, clients).map_err(|failure| CredentialError {
            selection: selection.clone(),
            failure,
        })?;
        Ok(Credential {
            selection,
            settings,
            source,
            http,
            by_cloud: Mutex::new(HashMap::new()),
        })
    }

    /// Describes the credential, its identity and tenant, and why it was chosen. The text
    /// contains no secret.
    pub fn describe(&self) -> String {
        let settings = &self.settings;
        let client = settings.client_id.as_deref().unwrap_or_default();
        let tenant = settings.tenant_id.as_deref().unwrap_or_default();
        let identity = match &settings.client_id {
            Some(client_id) => format!("user-assigned managed identity {client_id}"),
            None => "system-assigned managed identity".to_string(),
        };
        let what = match &self.source {
            Source::ClientSecret => format!("client secret of application {client} in tenant {tenant}"),
            Source::ClientCertificate(certificate) => format!(
                "certificate {} of application {client} in tenant {tenant}",
                certificate.thumbprint()
            ),
            Source::WorkloadIdentity(path) => format!(
                "federated token {} of application {client} in tenant {tenant}",
                path.display()
            ),
            Source::AppService { endpoint, .. } => format!("{identity} from {endpoint}"),
            Source::Imds(client) => format!("{identity} from {}", client.endpoint()),
            Source::AzureCli(_) => match &settings.tenant_id {
                Some(tenant) => format!("account signed in to the Azure CLI, tenant {tenant}"),
                None => "account signed in to the Azure CLI".to_string(),
            },
        };
        format!("{}: {what} ({})", self.selection.kind, self.selection.reason())
    }

    /// Returns the chosen kind of credential.
    pub fn kind(&self) -> CredentialKind {
        self.selection.kind
    }

    /// Returns the tenant the credential signs in to, if kvexec has it. A managed
    /// identity's tenant, and the Azure CLI's without `--tenant-id`, are unknown.
    pub fn tenant_id(&self) -> Option<&str> {
        match self.source {
            Source::AppService { .. } | Source::Imds(_) => None,
            _ => self.settings.tenant_id.as_deref(),
        }
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
        let started = std::time::Instant::now();
        let token = self.request_token(cloud).await.map_err(|failure| CredentialError {
            selection: self.selection.clone(),
            failure,
        })?;
        tracing::debug!(
            credential = %self.selection.kind,
            scope = cloud.scope(),
            elapsed_ms = started.elapsed().as_millis() as u64,
            "token acquired"
        );
        Ok(token)
    }

    async fn request_token(&self, cloud: Cloud) -> Result<SecretString, CredentialFailure> {
        let (credential, recording) = match &self.source {
            Source::Imds(client) => return client.token(cloud.resource()).await,
            Source::AppService { credential, .. } | Source::AzureCli(credential) => (credential.clone(), None),
            Source::ClientSecret | Source::ClientCertificate(_) | Source::WorkloadIdentity(_) => {
                let (credential, recording) = self.entra_credential(cloud)?;
                (credential, Some(recording))
            }
        };
        let token = credential.get_token(&[cloud.scope()], None).await.map_err(|error| match &self.source {
            Source::AppService { endpoint, .. } => error::from_managed_identity(&error, endpoint),
            Source::AzureCli(_) => azure_cli::classify(&error),
            _ => error::from_entra(&error, recording.and_then(|client| client.take_last_error())),
        })?;
        Ok(SecretString::from(token.token.secret().to_string()))
    }

    /// Returns the Entra ID credential for `cloud`, built on first use. For workload
    /// identity, building it reads the federated token file, so the file is read at token
    /// time.
    fn entra_credential(&self, cloud: Cloud) -> Result<EntraCredential, CredentialFailure> {
        let mut by_cloud = self.by_cloud.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(existing) = by_cloud.get(&cloud) {
            return Ok(existing.clone());
        }
        let settings = &self.settings;
        let authority_host = self.authority_host(cloud);
        let recording = RecordingClient::new(self.http.clone());
        let client_options = client_options(recording.clone(), settings.retry_budget, Some(authority_host.clone()));
        let tenant_id = settings.tenant_id.clone().unwrap_or_default();
        let client_id = settings.client_id.clone().unwrap_or_default();
        let invalid = |error: azure_core::Error| CredentialFailure::Other(error::first_line(&error.to_string()));

        let credential: Arc<dyn TokenCredential> = match &self.source {
            Source::ClientSecret => {
                let secret = settings
                    .client_secret
                    .as_ref()
                    .map(|secret| azure_core::credentials::Secret::new(secret.expose_secret().to_string()))
                    .unwrap_or_else(|| azure_core::credentials::Secret::new(String::new()));
                ClientSecretCredential::new(&tenant_id, client_id, secret, Some(ClientSecretCredentialOptions { client_options }))
                    .map_err(invalid)?
            }
            Source::ClientCertificate(certificate) => {
                let audience = certificate::token_endpoint(&authority_host, &tenant_id).map_err(|_| {
                    CredentialFailure::InvalidAuthorityHost {
                        value: authority_host.clone(),
                        reason: "not a URL".to_string(),
                    }
                })?;
                let assertion = CertificateAssertion {
                    certificate: certificate.clone(),
                    client_id: client_id.clone(),
                    audience,
                    send_chain: settings.send_certificate_chain,
                };
                ClientAssertionCredential::new(
                    tenant_id,
                    client_id,
                    assertion,
                    Some(ClientAssertionCredentialOptions { client_options }),
                )
                .map_err(invalid)?
            }
            Source::WorkloadIdentity(path) => {
                // The library reads the file on the runtime's only thread, where a FIFO or a
                // device would block past the deadline; Kubernetes projects a regular file.
                let is_regular = std::fs::metadata(path).map(|metadata| metadata.is_file());
                if let Ok(false) = is_regular {
                    return Err(CredentialFailure::TokenFileUnreadable {
                        path: path.clone(),
                        reason: "it is not a regular file".to_string(),
                    });
                }
                let options = WorkloadIdentityCredentialOptions {
                    credential_options: ClientAssertionCredentialOptions { client_options },
                    client_id: Some(client_id),
                    tenant_id: Some(tenant_id),
                    token_file_path: Some(path.clone()),
                };
                WorkloadIdentityCredential::new(Some(options)).map_err(|error| {
                    match error::find_cause::<std::io::Error>(&error) {
                        Some(io) => CredentialFailure::TokenFileUnreadable {
                            path: path.clone(),
                            reason: io.to_string(),
                        },
                        None => invalid(error),
                    }
                })?
            }
            Source::AppService { .. } | Source::Imds(_) | Source::AzureCli(_) => {
                unreachable!("only Entra ID credentials are built per cloud")
            }
        };
        by_cloud.insert(cloud, (credential.clone(), recording.clone()));
        Ok((credential, recording))
    }
}

/// Checks the settings the chosen kind needs and builds what does not depend on the cloud.
fn prepare(
    kind: CredentialKind,
    settings: &CredentialSettings,
    clients: &ClientFactory,
) -> Result<Source, CredentialFailure> {
    match kind {
        CredentialKind::ClientSecret => {
            require_application(settings)?;
            if settings.client_secret.as_ref().is_none_or(|s| s.expose_secret().is_empty()) {
                return Err(CredentialFailure::Missing {
                    setting: "client secret",
                    how: "set AZURE_CLIENT_SECRET or --client-secret-file PATH",
                });
            }
            Ok(Source::ClientSecret)
        }
        CredentialKind::ClientCertificate => {
            require_application(settings)?;
            let Some(path) = &settings.certificate_path else {
                return Err(CredentialFailure::Missing {
                    setting: "client certificate",
                    how: "set AZURE_CLIENT_CERTIFICATE_PATH to a PEM or PKCS#12 file with the certificate and its private key",
                });
            };
            let certificate = ClientCertificate::load(path, settings.certificate_password.as_ref())?;
            Ok(Source::ClientCertificate(Arc::new(certificate)))
        }
        CredentialKind::WorkloadIdentity => {
            require_application(settings)?;
            let Some(path) = &settings.federated_token_file else {
                return Err(CredentialFailure::Missing {
                    setting: "federated token file",
                    how: "set AZURE_FEDERATED_TOKEN_FILE to the projected service account token (AKS workload identity sets it)",
                });
            };
            Ok(Source::WorkloadIdentity(path.clone()))
        }
        CredentialKind::ManagedIdentity => {
            // Managed-identity endpoints are on the host's own network, so never behind a proxy.
            let direct = clients
                .direct_client()
                .map_err(|error| CredentialFailure::Other(error.to_string()))?;
            match &settings.identity_endpoint {
                Some(endpoint) => app_service(settings, endpoint, direct),
                None => Ok(Source::Imds(ImdsClient::new(
                    direct,
                    settings.imds_endpoint.as_deref(),
                    settings.client_id.clone(),
                )?)),
            }
        }
        CredentialKind::AzureCli => {
            let options = AzureCliCredentialOptions {
                tenant_id: settings.tenant_id.clone(),
                executor: Some(Arc::new(azure_cli::GroupKillingExecutor)),
                ..AzureCliCredentialOptions::default()
            };
            let credential = AzureCliCredential::new(Some(options))
                .map_err(|error| CredentialFailure::Other(error::first_line(&error.to_string())))?;
            Ok(Source::AzureCli(credential))
        }
    }
}

/// Tenant, client id and authority host, which every Entra ID application credential needs.
fn require_application(settings: &CredentialSettings) -> Result<(), CredentialFailure> {
    if settings.tenant_id.as_deref().is_none_or(str::is_empty) {
        return Err(CredentialFailure::Missing {
            setting: "tenant id",
            how: "set AZURE_TENANT_ID or --tenant-id to the Directory (tenant) ID",
        });
    }
    if settings.client_id.as_deref().is_none_or(str::is_empty) {
        return Err(CredentialFailure::Missing {
            setting: "client id",
            how: "set AZURE_CLIENT_ID or --client-id to the Application (client) ID",
        });
    }
    if let Some(host) = &settings.authority_host {
        check_authority_host(host)?;
    }
    Ok(())
}

/// Builds `azure_identity`'s managed identity credential for the App Service protocol.
///
/// That credential reads IDENTITY_ENDPOINT and IDENTITY_HEADER from the process
/// environment (its environment abstraction is private to the crate), and without them it
/// falls back to the VM metadata address. So both must be in the process environment with
/// the values kvexec read; this is the one place kvexec reads `std::env` after startup.
fn app_service(settings: &CredentialSettings, endpoint: &str, direct: reqwest::Client) -> Result<Source, CredentialFailure> {
    let Some(header) = &settings.identity_header else {
        return Err(CredentialFailure::IdentityHeaderMissing);
    };
    let valid = url::Url::parse(endpoint).is_ok_and(|url| matches!(url.scheme(), "http" | "https") && url.host_str().is_some());
    if !valid {
        return Err(CredentialFailure::InvalidEndpoint {
            name: "IDENTITY_ENDPOINT",
            value: endpoint.to_string(),
        });
    }
    for (name, value) in [("IDENTITY_ENDPOINT", endpoint), ("IDENTITY_HEADER", header.expose_secret())] {
        if std::env::var_os(name).is_none_or(|process_value| process_value != value) {
            return Err(CredentialFailure::IdentityNotInProcess { name });
        }
    }

    let options = ManagedIdentityCredentialOptions {
        user_assigned_id: settings.client_id.clone().map(UserAssignedId::ClientId),
        client_options: client_options(Arc::new(direct), settings.retry_budget, None),
    };
    let credential = ManagedIdentityCredential::new(Some(options))
        .map_err(|error| CredentialFailure::Other(error::first_line(&error.to_string())))?;
    Ok(Source::AppService {
        endpoint: endpoint.to_string(),
        credential,
    })
}

fn client_options(http: Arc<dyn HttpClient>, retry_budget: Duration, authority_host: Option<String>) -> ClientOptions {
    let cloud = authority_host.map(|host| {
        let mut custom = CustomConfiguration::default();
        custom.authority_host = host;
        Arc::new(CloudConfiguration::from(custom))
    });
    ClientOptions {
        transport: Some(Transport::new(http)),
        cloud,
        retry: RetryOptions::exponential(ExponentialRetryOptions {
            initial_delay: azure_core::time::Duration::milliseconds(200),
            max_retries: 8,
            max_total_elapsed: azure_core::time::Duration::try_from(retry_budget)
                .unwrap_or(azure_core::time::Duration::seconds(30)),
            max_delay: azure_core::time::Duration::seconds(8),
        }),
        ..Default::default()
    }
}

/// Accepts only `https://host[:port]`, as the credential library does.
fn check_authority_host(host: &str) -> Result<(), CredentialFailure> {
    let invalid = |reason: &str| CredentialFailure::InvalidAuthorityHost {
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
