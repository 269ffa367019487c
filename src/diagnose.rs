//! Turns typed errors into one line each: what failed, the service's code, and what to do.
//! Run mode and `--check` share these words.

use crate::credential::{CertificateError, CredentialError, CredentialFailure};
use crate::reference::{SecretId, Vault};
use crate::resolve::{Failure, FetchError, Phase, PROBE_SECRET_NAME};
use crate::vault::{NetworkFailure, VaultError};
use std::fmt;
use std::time::Duration;

/// Exit status when kvexec fails before exec, as GNU env(1) uses it.
pub const EXIT_FAILURE: i32 = 125;
/// Exit status of `--check` when any reference fails.
pub const EXIT_CHECK_FAILED: i32 = 1;

/// A failure explained: the reason with the service's code, and the fix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnosis {
    pub reason: String,
    pub hint: Option<String>,
}

impl Diagnosis {
    fn new(reason: impl Into<String>, hint: impl Into<String>) -> Diagnosis {
        Diagnosis {
            reason: reason.into(),
            hint: Some(hint.into()),
        }
    }

    fn plain(reason: impl Into<String>) -> Diagnosis {
        Diagnosis {
            reason: reason.into(),
            hint: None,
        }
    }
}

impl fmt::Display for Diagnosis {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.hint {
            Some(hint) => write!(f, "{}; {}", self.reason, hint),
            None => f.write_str(&self.reason),
        }
    }
}

/// Escapes control characters (newlines, terminal escapes) so that `text` prints as one line.
pub fn one_line(text: &str) -> String {
    let mut line = String::with_capacity(text.len());
    for c in text.chars() {
        if c.is_control() {
            line.extend(c.escape_default());
        } else {
            line.push(c);
        }
    }
    line
}

/// Facts about the run that make hints precise.
#[derive(Debug, Clone, Default)]
pub struct Context {
    /// The tenant the credential signs in to.
    pub tenant_id: Option<String>,
}

/// Explains why one reference could not be resolved.
pub fn failure(failure: &Failure, secret: &SecretId, context: &Context) -> Diagnosis {
    match failure {
        Failure::Fetch(error) => fetch_error(error, secret, context),
        Failure::Select(error) => Diagnosis::new(
            error.to_string(),
            "check the #key or JSON Pointer against the secret's JSON members",
        ),
    }
}

/// Explains why one secret could not be fetched.
pub fn fetch_error(error: &FetchError, secret: &SecretId, context: &Context) -> Diagnosis {
    match error {
        FetchError::Credential(error) => credential_error(error),
        FetchError::Vault(error) => vault_error(error, secret, context),
        FetchError::NotFound { error, secret_exists } => not_found(error, secret, Some(*secret_exists)),
        FetchError::TimedOut { phase, timeout, last } => {
            let last = last.as_deref().map(|last| fetch_error(last, secret, context));
            timed_out(*phase, *timeout, Some(&secret.vault), last)
        }
    }
}

/// Explains why the connection probe of `--check` failed. `vault` is the default vault it
/// asked for a secret that does not exist, or `None` when only a token was requested.
pub fn probe_error(error: &FetchError, vault: Option<&Vault>, context: &Context) -> Diagnosis {
    match (error, vault) {
        (_, Some(vault)) => {
            let secret = SecretId {
                vault: vault.clone(),
                name: PROBE_SECRET_NAME.to_string(),
                version: None,
            };
            fetch_error(error, &secret, context)
        }
        (FetchError::Credential(error), None) => credential_error(error),
        (FetchError::TimedOut { phase, timeout, .. }, None) => timed_out(*phase, *timeout, None, None),
        // Without a vault nothing is sent to Key Vault, so this arm is only a fallback.
        (FetchError::Vault(error) | FetchError::NotFound { error, .. }, None) => Diagnosis::plain(error.to_string()),
    }
}

/// Explains an expired deadline. The hint follows the last failed attempt when there was
/// one, because a vault that kept throttling needs other advice than one that never responded.
fn timed_out(phase: Phase, timeout: Duration, vault: Option<&Vault>, last: Option<Diagnosis>) -> Diagnosis {
    let seconds = timeout.as_secs_f64();
    let mut reason = match (phase, vault) {
        (Phase::Token, _) => format!("timed out after {seconds}s waiting for a token"),
        (Phase::Vault, Some(vault)) => format!("timed out after {seconds}s waiting for vault {}", vault.name),
        (Phase::Vault, None) => format!("timed out after {seconds}s waiting for the vault"),
    };
    let raise = "or raise --timeout (KVEXEC_TIMEOUT)";
    let hint = match (last, phase) {
        (Some(last), _) => {
            reason.push_str(&format!(" (last attempt: {})", last.reason));
            match last.hint {
                Some(hint) => format!("{hint}; {raise}"),
                None => format!("retry later, {raise}"),
            }
        }
        (None, Phase::Token) => {
            format!("check that this host can reach the token endpoint (Entra ID login host, managed identity endpoint or az), its firewall and HTTPS_PROXY, {raise}")
        }
        (None, Phase::Vault) => {
            format!("check that this host can reach the vault (firewall, HTTPS_PROXY, private endpoint, --resolve), {raise}")
        }
    };
    Diagnosis::new(reason, hint)
}

/// Explains a failed credential: what failed, how to fix it, and which other credentials
/// exist and how to choose one.
pub fn credential_error(error: &CredentialError) -> Diagnosis {
    let failure = credential_failure(&error.failure);
    let alternatives = error.selection.alternatives();
    let hint = match failure.hint {
        Some(hint) => format!("{hint}; {alternatives}"),
        None => alternatives,
    };
    Diagnosis::new(format!("the {} credential failed: {}", error.selection.kind, failure.reason), hint)
}

fn credential_failure(failure: &CredentialFailure) -> Diagnosis {
    match failure {
        CredentialFailure::EntraId {
            codes,
            description,
            trace_id,
            correlation_id,
            status,
            error,
        } => entra_id(*status, error, codes, description, trace_id.as_deref(), correlation_id.as_deref()),
        CredentialFailure::Network { failure, detail } => network(*failure, detail, Peer::EntraId),
        CredentialFailure::Missing { setting, how } => Diagnosis::new(format!("no {setting} is configured"), *how),
        CredentialFailure::InvalidAuthorityHost { .. } => Diagnosis::new(
            failure.to_string(),
            "set AZURE_AUTHORITY_HOST to the cloud's Entra ID host, e.g. https://login.microsoftonline.us, or unset it",
        ),
        CredentialFailure::Certificate(error) => certificate(error),
        CredentialFailure::TokenFileUnreadable { .. } => Diagnosis::new(
            failure.to_string(),
            "check AZURE_FEDERATED_TOKEN_FILE; on AKS the pod needs the label azure.workload.identity/use=true and a service account annotated with azure.workload.identity/client-id",
        ),
        CredentialFailure::IdentityHeaderMissing => Diagnosis::new(
            failure.to_string(),
            "App Service, Functions and Container Apps set both; other hosts that set only IDENTITY_ENDPOINT (such as Azure Arc) are not supported",
        ),
        CredentialFailure::IdentityNotInProcess { name } => Diagnosis::new(
            failure.to_string(),
            format!("set {name} in kvexec's own environment, not only in an --env-file: the managed identity library reads it from the process environment"),
        ),
        CredentialFailure::InvalidEndpoint { name, .. } => Diagnosis::new(
            failure.to_string(),
            format!("set {name} to an http:// or https:// URL, or unset it"),
        ),
        CredentialFailure::ManagedIdentity { status, endpoint, .. } => {
            let hint = match status {
                400 => "the identity is not assigned to this resource: enable its system-assigned identity, or set AZURE_CLIENT_ID (--client-id) to the client ID of a user-assigned identity that is assigned to it",
                401 | 403 if !is_imds(endpoint) => "the endpoint refused IDENTITY_HEADER: restart the app so it gets the current value",
                404 | 410 | 429 | 500..=599 => "the endpoint is starting, updating or overloaded: retry, or raise --timeout",
                _ => "check the managed identity of this resource",
            };
            Diagnosis::new(failure.to_string(), hint)
        }
        CredentialFailure::ManagedIdentityNetwork { endpoint, .. } if is_imds(endpoint) => Diagnosis::new(
            failure.to_string(),
            "the VM metadata endpoint responds only on Azure VMs, VM scale sets and AKS nodes; elsewhere use another credential",
        ),
        CredentialFailure::ManagedIdentityNetwork { .. } => {
            Diagnosis::new(failure.to_string(), "check IDENTITY_ENDPOINT; it is set by the hosting platform")
        }
        CredentialFailure::AzureCliNotFound => Diagnosis::new(
            failure.to_string(),
            "install the Azure CLI (https://learn.microsoft.com/cli/azure/install-azure-cli) or add it to PATH",
        ),
        CredentialFailure::AzureCliNotLoggedIn { .. } => Diagnosis::new(
            failure.to_string(),
            "run 'az login' (with --tenant TENANT_ID for another tenant), then retry",
        ),
        CredentialFailure::AzureCliFailed { message } if message.contains("2.54") => {
            Diagnosis::new(failure.to_string(), "upgrade the Azure CLI to version 2.54 or later")
        }
        CredentialFailure::AzureCliFailed { .. } => Diagnosis::new(
            failure.to_string(),
            "run 'az account get-access-token --scope https://vault.azure.net/.default' to see the whole error",
        ),
        CredentialFailure::Other(_) => Diagnosis::plain(failure.to_string()),
    }
}

/// Checks whether a managed identity endpoint is the VM metadata endpoint (or its
/// override).
fn is_imds(endpoint: &str) -> bool {
    endpoint.ends_with("/metadata/identity/oauth2/token")
}

fn certificate(error: &CertificateError) -> Diagnosis {
    let hint = match error {
        CertificateError::Unreadable { .. } => "check AZURE_CLIENT_CERTIFICATE_PATH and the file's permissions",
        CertificateError::UnknownFormat { .. } => {
            "AZURE_CLIENT_CERTIFICATE_PATH must name a PEM file with the certificate and its private key, or a PKCS#12 (.pfx) file"
        }
        CertificateError::NoPrivateKey { .. } => "add the private key to the file: Entra ID needs it to sign the client assertion",
        CertificateError::SeveralPrivateKeys { .. } => "keep one private key in the file",
        CertificateError::PasswordMissing { .. } => "set AZURE_CLIENT_CERTIFICATE_PASSWORD to the file's password",
        CertificateError::WrongPassword { .. } => "check AZURE_CLIENT_CERTIFICATE_PASSWORD",
        CertificateError::LegacyEncryptedPem { .. } => {
            "convert the key to PKCS#8 with 'openssl pkcs8 -topk8 -in OLD.pem -out NEW.pem' (this asks for a new password)"
        }
        CertificateError::UnsupportedKey { .. } => "register an RSA certificate of at least 2048 bits on the application",
        CertificateError::NoMatchingCertificate { .. } => "add the certificate that belongs to the private key to the file",
    };
    Diagnosis::new(error.to_string(), hint)
}

/// Explains an Entra ID rejection, branching on the AADSTS code as Microsoft advises.
fn entra_id(
    status: u16,
    oauth_error: &str,
    codes: &[u64],
    description: &str,
    trace_id: Option<&str>,
    correlation_id: Option<&str>,
) -> Diagnosis {
    let code = codes.first().copied();
    let mut reason = if description.is_empty() {
        format!("Entra ID rejected the token request (HTTP {status} {oauth_error})")
    } else {
        format!("Entra ID rejected the token request: {description}")
    };
    if let Some(trace) = trace_id {
        reason.push_str(&format!(" [trace id {trace}"));
        if let Some(correlation) = correlation_id {
            reason.push_str(&format!(", correlation id {correlation}"));
        }
        reason.push(']');
    }
    let hint = match code {
        Some(7_000_215) => "AZURE_CLIENT_SECRET is wrong: often the secret's ID was copied instead of its Value (Entra ID > App registrations > Certificates & secrets)",
        Some(7_000_222) => "the client secret has expired: create a new one under Certificates & secrets and update AZURE_CLIENT_SECRET",
        Some(700_016) => "AZURE_CLIENT_ID is not an application in tenant AZURE_TENANT_ID: check both IDs (wrong tenant or wrong app)",
        Some(90_002) => "AZURE_TENANT_ID does not exist, or it lives in another cloud: check the Directory (tenant) ID and AZURE_AUTHORITY_HOST",
        Some(900_023) => "AZURE_TENANT_ID is malformed: use the Directory (tenant) ID GUID",
        Some(7_000_112) => "the application or its service principal is disabled: enable it in Entra ID",
        Some(700_027) => "the certificate is not the one registered on the application: compare its thumbprint with Certificates & secrets",
        Some(700_024) => "the federated token has expired or the clock is skewed: refresh AZURE_FEDERATED_TOKEN_FILE",
        Some(70_021) => "no federated credential matches the token: check its issuer, subject and audience",
        Some(7_000_218) => "no credential was sent: set AZURE_CLIENT_SECRET or another credential",
        Some(70_011 | 700_022 | 28_002 | 500_011) => "the tenant does not accept this Key Vault scope: check that the vault and AZURE_AUTHORITY_HOST belong to the same cloud",
        Some(53_003) => "a Conditional Access policy blocks this identity: ask the tenant's administrators",
        Some(90_038 | 900_382 | 900_432) => "the tenant lives in another cloud: set AZURE_AUTHORITY_HOST and use that cloud's vault host",
        Some(9_001_023) => "use a tenant ID, not 'common' or 'consumers', in AZURE_TENANT_ID",
        Some(other) => return Diagnosis::new(reason, format!("look up AADSTS{other} at https://login.microsoftonline.com/error?code={other}")),
        None => "check the credential settings (AZURE_TENANT_ID, AZURE_CLIENT_ID, AZURE_CLIENT_SECRET)",
    };
    Diagnosis::new(reason, hint)
}

/// Explains a failed GET of `secret`.
pub fn vault_error(error: &VaultError, secret: &SecretId, context: &Context) -> Diagnosis {
    let vault = &secret.vault.name;
    match error {
        VaultError::Service { status: 404, .. } => not_found(error, secret, None),
        VaultError::Service { status: 401, code, message, challenge, .. } => {
            let vault_tenant = challenge.as_ref().and_then(|c| c.tenant.as_deref());
            let ours = context.tenant_id.as_deref();
            match vault_tenant {
                Some(owner) if ours.is_none_or(|ours| !owner.eq_ignore_ascii_case(ours)) => {
                    let reason = match ours {
                        Some(ours) => format!("vault {vault} belongs to tenant {owner}, but the token is from tenant {ours} (401 {code})"),
                        None => format!("vault {vault} belongs to tenant {owner} and rejected the token (401 {code}): {message}"),
                    };
                    Diagnosis::new(
                        reason,
                        format!("sign in to the vault's tenant: set AZURE_TENANT_ID={owner} (or --tenant-id {owner}) with the client ID and secret of an application in that tenant"),
                    )
                }
                _ => Diagnosis::new(
                    format!("vault {vault} rejected the token (401 {code}): {message}"),
                    "check that AZURE_TENANT_ID is the tenant of the vault's subscription and that the vault is in the same cloud as AZURE_AUTHORITY_HOST",
                ),
            }
        }
        VaultError::Service { status: 403, code, inner_code, message, .. } => {
            let codes = match inner_code {
                Some(inner) => format!("403 {code}/{inner}"),
                None => format!("403 {code}"),
            };
            match inner_code.as_deref() {
                Some("SecretDisabled") => Diagnosis::new(
                    format!("secret '{}' in vault {vault} is disabled ({codes})", secret.name),
                    "enable the secret version, or pin an enabled version",
                ),
                Some("ForbiddenByRbac") => Diagnosis::new(
                    format!("the identity has no role that allows reading secrets in vault {vault} ({codes})"),
                    "assign the role 'Key Vault Secrets User' on the vault (or the secret); new assignments take a few minutes to propagate",
                ),
                Some("AccessDenied") => Diagnosis::new(
                    format!("the access policy of vault {vault} does not grant Get on secrets to this identity ({codes})"),
                    "add an access policy with Get on secrets, or switch the vault to Azure RBAC; on an access-policy vault an RBAC role assignment has no effect",
                ),
                Some("ForbiddenByFirewall") => Diagnosis::new(
                    format!("the firewall or private link of vault {vault} refuses this client's address ({codes})"),
                    "add the client's outbound IP to the vault's firewall, or run from a network with a private endpoint to the vault",
                ),
                Some("ForbiddenByPolicy") => Diagnosis::new(
                    format!("a vault {vault} policy refuses this caller ({codes}): {message}"),
                    "ask the vault's owners which identities and flows the policy allows",
                ),
                _ => Diagnosis::new(
                    format!("vault {vault} refused access ({codes}): {message}"),
                    "check the identity's role assignment or access policy on the vault",
                ),
            }
        }
        VaultError::Service { status: 429, code, .. } => Diagnosis::new(
            format!("vault {vault} throttled every attempt (429 {code})"),
            "Key Vault limits requests per vault: lower --concurrency, or start fewer jobs against this vault at the same time",
        ),
        VaultError::Service { status, code, message, .. } => {
            let code = if code.is_empty() { String::new() } else { format!(" {code}") };
            Diagnosis::new(
                format!("vault {vault} answered HTTP {status}{code}: {message}"),
                "retry later; if it persists, check Azure status for Key Vault",
            )
        }
        VaultError::Network { failure, detail } => network(*failure, detail, Peer::Vault(&secret.vault)),
        VaultError::Redirect { .. } | VaultError::BodyTooLarge | VaultError::InvalidBody(_) => Diagnosis::new(
            format!("vault {vault}: {error}"),
            "check that no proxy or private endpoint rewrites Key Vault responses",
        ),
    }
}

/// Explains a 404 for `secret`. For a pinned version, `secret_exists` states whether the
/// latest version was found, or is `None` when that is unknown.
fn not_found(error: &VaultError, secret: &SecretId, secret_exists: Option<bool>) -> Diagnosis {
    let code = match error {
        VaultError::Service { code, .. } if !code.is_empty() => format!("404 {code}"),
        _ => "404".to_string(),
    };
    let vault = &secret.vault.name;
    let name = &secret.name;
    let missing_secret = || {
        Diagnosis::new(
            format!("secret '{name}' not found in vault {vault} ({code})"),
            "check the secret name; a recently deleted secret can be recovered with 'az keyvault secret recover'",
        )
    };
    match (&secret.version, secret_exists) {
        (None, _) | (Some(_), Some(false)) => missing_secret(),
        (Some(version), Some(true)) => Diagnosis::new(
            format!("version {version} of secret '{name}' not found in vault {vault}, but the secret exists ({code})"),
            "check the version id, or drop it to use the latest version",
        ),
        (Some(version), None) => Diagnosis::new(
            format!("version {version} of secret '{name}' not found in vault {vault} ({code})"),
            "check the secret name and the version id",
        ),
    }
}

/// The service a connection failed to.
#[derive(Clone, Copy)]
enum Peer<'a> {
    EntraId,
    Vault(&'a Vault),
}

impl fmt::Display for Peer<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Peer::EntraId => f.write_str("Entra ID"),
            Peer::Vault(vault) => write!(f, "vault {}", vault.name),
        }
    }
}

fn network(failure: NetworkFailure, detail: &str, peer: Peer<'_>) -> Diagnosis {
    const PROXY_HINT: &str = "check firewall and proxy settings (HTTPS_PROXY, NO_PROXY)";
    match failure {
        NetworkFailure::Dns => {
            let hint = match peer {
                Peer::Vault(vault) => format!(
                    "check the vault name '{}' in the reference, because a misspelt vault name does not resolve; a vault behind a private endpoint without private DNS needs --resolve HOST=IP:PORT",
                    vault.name
                ),
                Peer::EntraId => "check this host's DNS settings and AZURE_AUTHORITY_HOST".to_string(),
            };
            Diagnosis::new(detail, hint)
        }
        NetworkFailure::Tls => Diagnosis::new(
            format!("cannot connect to {peer}: {detail}"),
            "a TLS-inspecting proxy needs its CA certificate in SSL_CERT_FILE or SSL_CERT_DIR; when either is set, it replaces the system trust roots",
        ),
        NetworkFailure::Timeout => Diagnosis::new(format!("{peer} did not answer in time: {detail}"), PROXY_HINT),
        NetworkFailure::Connect => Diagnosis::new(format!("cannot connect to {peer}: {detail}"), PROXY_HINT),
        NetworkFailure::Interrupted => Diagnosis::new(
            format!("the connection to {peer} broke: {detail}"),
            "retry; if it persists, check proxies between this host and Azure",
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::credential::{select, CredentialKind, CredentialSettings};
    use std::sync::Arc;

    fn failed(choice: Option<CredentialKind>, failure: CredentialFailure) -> Diagnosis {
        let settings = CredentialSettings {
            choice: choice.map(|kind| (kind, "--credential")),
            ..CredentialSettings::default()
        };
        credential_error(&CredentialError {
            selection: Arc::new(select(&settings)),
            failure,
        })
    }

    #[test]
    fn azure_cli_logged_out_suggests_az_login() {
        let message = "ERROR: Please run 'az login' to setup account.".to_string();
        let diagnosis = failed(None, CredentialFailure::AzureCliNotLoggedIn { message });
        assert!(diagnosis.reason.starts_with("the azure-cli credential failed: "), "{}", diagnosis.reason);
        assert!(diagnosis.reason.contains("Please run 'az login'"), "{}", diagnosis.reason);
        let hint = diagnosis.hint.unwrap();
        assert!(hint.starts_with("run 'az login'"), "{hint}");
        assert!(hint.contains("auto chose azure-cli because no other credential is configured"), "{hint}");
        assert!(hint.contains("--credential NAME"), "{hint}");
    }

    #[test]
    fn missing_az_suggests_installing_it() {
        let hint = failed(None, CredentialFailure::AzureCliNotFound).hint.unwrap();
        assert!(hint.starts_with("install the Azure CLI"), "{hint}");
    }

    #[test]
    fn old_az_suggests_an_upgrade() {
        let message = "expires_on field not found. Please use Azure CLI 2.54.0 or newer.".to_string();
        let hint = failed(None, CredentialFailure::AzureCliFailed { message }).hint.unwrap();
        assert!(hint.starts_with("upgrade the Azure CLI"), "{hint}");
    }

    #[test]
    fn imds_unreachable_says_where_it_works() {
        let failure = CredentialFailure::ManagedIdentityNetwork {
            endpoint: "http://169.254.169.254/metadata/identity/oauth2/token".to_string(),
            failure: NetworkFailure::Connect,
            detail: "connection refused".to_string(),
        };
        let diagnosis = failed(Some(CredentialKind::ManagedIdentity), failure);
        let hint = diagnosis.hint.unwrap();
        assert!(hint.contains("only on Azure VMs"), "{hint}");
        assert!(!hint.contains("auto chose"), "an explicit choice lists no skipped credentials: {hint}");
    }

    #[test]
    fn managed_identity_400_names_the_identity_setting() {
        let failure = CredentialFailure::ManagedIdentity {
            endpoint: "https://127.0.0.1:1/msi/token".to_string(),
            status: 400,
            error: "invalid_request".to_string(),
            description: "Identity not found".to_string(),
        };
        let diagnosis = failed(Some(CredentialKind::ManagedIdentity), failure);
        assert!(diagnosis.reason.contains("HTTP 400 invalid_request: Identity not found"), "{}", diagnosis.reason);
        assert!(diagnosis.hint.unwrap().contains("AZURE_CLIENT_ID"));
    }

    #[test]
    fn missing_identity_header_is_explained() {
        let diagnosis = failed(None, CredentialFailure::IdentityHeaderMissing);
        assert!(diagnosis.reason.contains("IDENTITY_HEADER is not"), "{}", diagnosis.reason);
    }

    #[test]
    fn unreadable_token_file_names_the_path() {
        let failure = CredentialFailure::TokenFileUnreadable {
            path: "/var/run/secrets/azure/tokens/azure-identity-token".into(),
            reason: "No such file or directory (os error 2)".to_string(),
        };
        let diagnosis = failed(Some(CredentialKind::WorkloadIdentity), failure);
        assert!(diagnosis.reason.contains("/var/run/secrets/azure/tokens/azure-identity-token"), "{}", diagnosis.reason);
        assert!(diagnosis.hint.unwrap().contains("AZURE_FEDERATED_TOKEN_FILE"));
    }

    use crate::reference::Cloud;
    use crate::vault::Challenge;

    fn secret(vault: &str, name: &str, version: Option<&str>) -> SecretId {
        SecretId {
            vault: Vault {
                name: vault.to_string(),
                cloud: Cloud::Public,
            },
            name: name.to_string(),
            version: version.map(str::to_string),
        }
    }

    fn service(status: u16, code: &str, inner_code: Option<&str>) -> VaultError {
        VaultError::Service {
            status,
            code: code.to_string(),
            inner_code: inner_code.map(str::to_string),
            message: "message from the service".to_string(),
            challenge: None,
            retry_after: None,
        }
    }

    fn unauthorized(vault_tenant: &str) -> VaultError {
        VaultError::Service {
            status: 401,
            code: "Unauthorized".to_string(),
            inner_code: None,
            message: "message from the service".to_string(),
            challenge: Some(Challenge {
                tenant: Some(vault_tenant.to_string()),
                resource: None,
            }),
            retry_after: None,
        }
    }

    fn context() -> Context {
        Context {
            tenant_id: Some("tenant-of-the-credential".to_string()),
        }
    }

    #[test]
    fn dns_failure_names_vault_as_misspelt() {
        let error = VaultError::Network {
            failure: NetworkFailure::Dns,
            detail: "DNS lookup of kvexec-dmeo.vault.azure.net failed: Name or service not known".to_string(),
        };
        let diagnosis = vault_error(&error, &secret("kvexec-dmeo", "db", None), &context());
        assert_eq!(diagnosis.reason, "DNS lookup of kvexec-dmeo.vault.azure.net failed: Name or service not known");
        let hint = diagnosis.hint.unwrap();
        assert!(hint.contains("check the vault name 'kvexec-dmeo'"), "{hint}");
        assert!(hint.contains("misspelt"), "{hint}");
        assert!(hint.contains("--resolve"), "{hint}");
    }

    #[test]
    fn not_found_says_secret_or_version() {
        let error = service(404, "SecretNotFound", None);
        let version = "ffffffffffffffffffffffffffffffff";

        let missing_secret = not_found(&error, &secret("kv", "db", None), None);
        assert_eq!(missing_secret.reason, "secret 'db' not found in vault kv (404 SecretNotFound)");

        let missing_version = not_found(&error, &secret("kv", "db", Some(version)), Some(true));
        assert_eq!(
            missing_version.reason,
            format!("version {version} of secret 'db' not found in vault kv, but the secret exists (404 SecretNotFound)")
        );

        let pinned_but_no_secret = not_found(&error, &secret("kv", "db", Some(version)), Some(false));
        assert_eq!(pinned_but_no_secret, missing_secret);

        let unknown = not_found(&error, &secret("kv", "db", Some(version)), None);
        assert!(unknown.hint.unwrap().contains("secret name and the version id"));
    }

    #[test]
    fn timeout_hint_follows_last_attempt() {
        let last = FetchError::Vault(service(429, "Throttled", None));
        let error = FetchError::TimedOut {
            phase: Phase::Vault,
            timeout: Duration::from_millis(1500),
            last: Some(Box::new(last)),
        };
        let diagnosis = fetch_error(&error, &secret("kv", "db", None), &context());
        assert!(diagnosis.reason.starts_with("timed out after 1.5s waiting for vault kv (last attempt: "), "{}", diagnosis.reason);
        let hint = diagnosis.hint.unwrap();
        assert!(hint.contains("lower --concurrency"), "{hint}");
        assert!(hint.ends_with("or raise --timeout (KVEXEC_TIMEOUT)"), "{hint}");
    }

    #[test]
    fn token_timeout_without_vault() {
        let error = FetchError::TimedOut {
            phase: Phase::Token,
            timeout: Duration::from_secs(2),
            last: None,
        };
        let diagnosis = probe_error(&error, None, &context());
        assert_eq!(diagnosis.reason, "timed out after 2s waiting for a token");
        assert!(diagnosis.hint.unwrap().contains("token endpoint"));
    }

    #[test]
    fn other_tenant_named_without_own_tenant() {
        let diagnosis = vault_error(&unauthorized("owner-tenant"), &secret("kv", "db", None), &Context::default());
        assert!(diagnosis.reason.starts_with("vault kv belongs to tenant owner-tenant"), "{}", diagnosis.reason);
        assert!(diagnosis.hint.unwrap().contains("AZURE_TENANT_ID=owner-tenant"));

        let diagnosis = vault_error(&unauthorized("tenant-of-the-credential"), &secret("kv", "db", None), &context());
        assert!(diagnosis.reason.contains("rejected the token (401 Unauthorized): message from the service"), "{}", diagnosis.reason);
    }

    #[test]
    fn unmapped_aadsts_code_links_lookup() {
        let failure = CredentialFailure::EntraId {
            status: 400,
            error: "invalid_request".to_string(),
            codes: vec![50_076],
            description: "AADSTS50076: Due to a configuration change made by your administrator, you must use multi-factor authentication.".to_string(),
            trace_id: Some("trace".to_string()),
            correlation_id: Some("correlation".to_string()),
        };
        let diagnosis = failed(Some(CredentialKind::ClientSecret), failure);
        assert!(
            diagnosis.reason.ends_with("Entra ID rejected the token request: AADSTS50076: Due to a configuration change made by your administrator, you must use multi-factor authentication. [trace id trace, correlation id correlation]"),
            "{}",
            diagnosis.reason
        );
        let hint = diagnosis.hint.unwrap();
        assert!(hint.starts_with("look up AADSTS50076 at https://login.microsoftonline.com/error?code=50076"), "{hint}");
    }

    #[test]
    fn forbidden_inner_codes_get_their_own_fix() {
        let cases = [
            ("ForbiddenByRbac", "'Key Vault Secrets User'"),
            ("AccessDenied", "an RBAC role assignment has no effect"),
            ("ForbiddenByFirewall", "firewall"),
            ("SecretDisabled", "enable the secret"),
            ("ForbiddenByPolicy", "policy"),
        ];
        for (inner, expected) in cases {
            let diagnosis = vault_error(&service(403, "Forbidden", Some(inner)), &secret("kv", "db", None), &context());
            assert!(diagnosis.reason.contains(&format!("403 Forbidden/{inner}")), "{}", diagnosis.reason);
            let hint = diagnosis.hint.unwrap();
            assert!(hint.contains(expected), "{inner}: {hint}");
            assert!(!hint.contains('\n'));
        }
    }
}
