//! Turns typed errors into one line each: what failed, the service's code, and what to do.
//! Run mode and `--check` share these words.

use crate::credential::CredentialError;
use crate::reference::SecretId;
use crate::resolve::{Failure, FetchError, Phase};
use crate::vault::{NetworkFailure, VaultError};
use std::fmt;

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
        FetchError::TimedOut { phase, timeout, last } => {
            let seconds = timeout.as_secs_f64();
            let what = match phase {
                Phase::Token => "the token request to Entra ID",
                Phase::Vault => "fetching the secret from the vault",
            };
            let mut reason = format!("timed out after {seconds}s while {what}");
            if let Some(last) = last {
                reason.push_str(&format!(" (last attempt: {})", fetch_error(last, secret, context).reason));
            }
            Diagnosis::new(
                reason,
                "check network access to the host (firewall, proxy, --resolve), or raise --timeout / KVEXEC_TIMEOUT",
            )
        }
    }
}

/// Explains a failed token request, branching on the AADSTS code as Microsoft advises.
pub fn credential_error(error: &CredentialError) -> Diagnosis {
    let CredentialError::EntraId { codes, description, trace_id, correlation_id, status, error: oauth_error } = error
    else {
        return match error {
            CredentialError::Network { failure, detail } => network(*failure, detail, "Entra ID"),
            other => Diagnosis::plain(other.to_string()),
        };
    };
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
        Some(700_027) => "the certificate is not the one registered on the application",
        Some(700_024) => "the federated token has expired or the clock is skewed: refresh AZURE_FEDERATED_TOKEN_FILE",
        Some(70_021) => "no federated credential matches the token: check its issuer, subject and audience",
        Some(7_000_218) => "no credential was sent: set AZURE_CLIENT_SECRET or another credential",
        Some(70_011 | 700_022 | 28_002 | 500_011) => "the tenant does not accept this Key Vault scope: check that the vault and AZURE_AUTHORITY_HOST belong to the same cloud",
        Some(53_003) => "a Conditional Access policy blocks this identity: ask the tenant's administrators",
        Some(90_038 | 900_382 | 900_432) => "the tenant lives in another cloud: set AZURE_AUTHORITY_HOST and use that cloud's vault host",
        Some(9_001_023) => "use a tenant ID, not 'common' or 'consumers', in AZURE_TENANT_ID",
        _ => "see the AADSTS code's description at https://login.microsoftonline.com/error",
    };
    Diagnosis::new(reason, hint)
}

/// Explains a failed GET of `secret`.
pub fn vault_error(error: &VaultError, secret: &SecretId, context: &Context) -> Diagnosis {
    let vault = &secret.vault.name;
    match error {
        VaultError::Service { status: 404, code, .. } => match &secret.version {
            Some(version) => Diagnosis::new(
                format!("version {version} of secret '{}' not found in vault {vault} (404 {code})", secret.name),
                "check the version id, or drop it to use the latest version",
            ),
            None => Diagnosis::new(
                format!("secret '{}' not found in vault {vault} (404 {code})", secret.name),
                "check the name; a recently deleted secret can be recovered with 'az keyvault secret recover'",
            ),
        },
        VaultError::Service { status: 401, code, message, challenge, .. } => {
            let vault_tenant = challenge.as_ref().and_then(|c| c.tenant.clone());
            match (vault_tenant, &context.tenant_id) {
                (Some(owner), Some(ours)) if !owner.eq_ignore_ascii_case(ours) => Diagnosis::new(
                    format!("vault {vault} belongs to tenant {owner}, but the token is from tenant {ours} (401 {code})"),
                    format!("set AZURE_TENANT_ID={owner} (or --tenant-id) to an identity of the vault's tenant"),
                ),
                _ => Diagnosis::new(
                    format!("vault {vault} rejected the token (401 {code}): {message}"),
                    "check that AZURE_TENANT_ID is the tenant of the vault's subscription",
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
                    format!("the vault {vault} access policy does not grant Get on secrets to this identity ({codes})"),
                    "add an access policy with Get on secrets, or switch the vault to Azure RBAC; on an access-policy vault an RBAC role assignment has no effect",
                ),
                Some("ForbiddenByFirewall") => Diagnosis::new(
                    format!("the vault {vault} firewall or private link refuses this client's address ({codes})"),
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
            format!("vault {vault} kept throttling requests (429 {code})"),
            "lower --concurrency, spread job starts, or raise --timeout",
        ),
        VaultError::Service { status, code, message, .. } => {
            let code = if code.is_empty() { String::new() } else { format!(" {code}") };
            Diagnosis::new(
                format!("vault {vault} answered HTTP {status}{code}: {message}"),
                "retry later; if it persists, check Azure status for Key Vault",
            )
        }
        VaultError::Network { failure, detail } => network(*failure, detail, &format!("vault {vault}")),
        VaultError::Redirect { .. } | VaultError::BodyTooLarge | VaultError::InvalidBody(_) => Diagnosis::new(
            format!("vault {vault}: {error}"),
            "check that no proxy or private endpoint rewrites Key Vault responses",
        ),
    }
}

fn network(failure: NetworkFailure, detail: &str, peer: &str) -> Diagnosis {
    match failure {
        NetworkFailure::Dns => Diagnosis::new(
            detail.to_string(),
            format!("check the spelling of the {peer} host name; a private endpoint without private DNS needs --resolve HOST=IP:PORT"),
        ),
        NetworkFailure::Tls => Diagnosis::new(
            format!("TLS to {peer} failed: {detail}"),
            "a TLS-inspecting proxy needs its CA in SSL_CERT_FILE or SSL_CERT_DIR",
        ),
        NetworkFailure::Timeout => Diagnosis::new(
            format!("{peer} did not answer in time: {detail}"),
            "check firewall and proxy settings (HTTPS_PROXY, NO_PROXY)",
        ),
        NetworkFailure::Connect => Diagnosis::new(
            format!("cannot connect to {peer}: {detail}"),
            "check firewall and proxy settings (HTTPS_PROXY, NO_PROXY)",
        ),
        NetworkFailure::Interrupted => Diagnosis::new(
            format!("the connection to {peer} broke: {detail}"),
            "retry; if it persists, check proxies between this host and Azure",
        ),
    }
}
