//! Configuration of what the emulator serves: clouds, tenants, applications, managed
//! identities, vaults and secrets. All types are plain values with builder-style setters, handed to
//! [`EmulatorBuilder`](crate::EmulatorBuilder) before start.

use crate::util::{new_guid, new_version_id, unix_now};
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::sync::Arc;

/// Subscription id quoted in resource ids of emulated vaults and identities.
const EMULATOR_SUBSCRIPTION_ID: &str = "00000000-0000-0000-0000-00000000e4a1";

/// An Azure cloud as a client sees it: the vault DNS suffix, the Entra ID host and the
/// resource a Key Vault token must be issued for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cloud {
    pub(crate) name: String,
    pub(crate) vault_suffix: String,
    pub(crate) login_host: String,
    pub(crate) vault_resource: String,
    /// Authority named in the vault's `WWW-Authenticate` challenge, without the tenant.
    pub(crate) challenge_authority: String,
    /// Issuer prefix of v1 access tokens, as Key Vault quotes it in AKV10032 messages.
    pub(crate) token_issuer: String,
    /// `cloud_instance_name` in the OpenID configuration.
    pub(crate) instance_name: String,
}

impl Cloud {
    /// Returns the Azure public cloud: `*.vault.azure.net`, `login.microsoftonline.com`.
    pub fn public() -> Cloud {
        Cloud {
            name: "AzureCloud".into(),
            vault_suffix: "vault.azure.net".into(),
            login_host: "login.microsoftonline.com".into(),
            vault_resource: "https://vault.azure.net".into(),
            // Recorded Key Vault challenges name login.windows.net, not the login host.
            challenge_authority: "https://login.windows.net".into(),
            token_issuer: "https://sts.windows.net".into(),
            instance_name: "microsoftonline.com".into(),
        }
    }

    /// Returns Azure operated by 21Vianet: `*.vault.azure.cn`, `login.chinacloudapi.cn`.
    pub fn china() -> Cloud {
        Cloud {
            name: "AzureChinaCloud".into(),
            vault_suffix: "vault.azure.cn".into(),
            login_host: "login.chinacloudapi.cn".into(),
            vault_resource: "https://vault.azure.cn".into(),
            // NOTE: no recorded China challenge was found; the login host is assumed.
            challenge_authority: "https://login.chinacloudapi.cn".into(),
            token_issuer: "https://sts.chinacloudapi.cn".into(),
            instance_name: "chinacloudapi.cn".into(),
        }
    }

    /// Returns Azure US Government: `*.vault.usgovcloudapi.net`, `login.microsoftonline.us`.
    pub fn us_government() -> Cloud {
        Cloud {
            name: "AzureUSGovernment".into(),
            vault_suffix: "vault.usgovcloudapi.net".into(),
            login_host: "login.microsoftonline.us".into(),
            vault_resource: "https://vault.usgovcloudapi.net".into(),
            // NOTE: no recorded US Government challenge was found; the login host is assumed.
            challenge_authority: "https://login.microsoftonline.us".into(),
            token_issuer: "https://sts.windows.net".into(),
            instance_name: "microsoftonline.us".into(),
        }
    }

    /// Describes a cloud of your own, e.g. a look-alike suffix such as `vault.azure.net.evil.example`
    /// served by a second emulator to prove that a client sends it no token. The vault
    /// challenge names `https://{login_host}` and the given resource.
    pub fn custom(
        name: impl Into<String>,
        vault_suffix: impl Into<String>,
        login_host: impl Into<String>,
        vault_resource: impl Into<String>,
    ) -> Cloud {
        let login_host = login_host.into().to_ascii_lowercase();
        Cloud {
            name: name.into(),
            vault_suffix: vault_suffix.into().to_ascii_lowercase(),
            challenge_authority: format!("https://{login_host}"),
            token_issuer: format!("https://{login_host}"),
            instance_name: login_host.clone(),
            login_host,
            vault_resource: vault_resource.into(),
        }
    }

    /// Returns the three clouds every emulator serves.
    pub fn builtin() -> Vec<Cloud> {
        vec![Cloud::public(), Cloud::china(), Cloud::us_government()]
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn vault_suffix(&self) -> &str {
        &self.vault_suffix
    }

    pub fn login_host(&self) -> &str {
        &self.login_host
    }

    pub fn vault_resource(&self) -> &str {
        &self.vault_resource
    }

    /// Returns the v2 scope a client requests for this cloud's vaults, e.g.
    /// `https://vault.azure.net/.default`.
    pub fn vault_scope(&self) -> String {
        format!("{}/.default", self.vault_resource)
    }
}

/// An Entra ID tenant (directory). Its id is a GUID; verified domains are accepted in
/// token URLs in place of the id.
#[derive(Clone, Debug)]
pub struct Tenant {
    pub(crate) id: String,
    pub(crate) domains: Vec<String>,
    pub(crate) display_name: String,
}

impl Tenant {
    pub fn new(id: impl Into<String>) -> Tenant {
        Tenant {
            id: id.into().to_ascii_lowercase(),
            domains: Vec::new(),
            display_name: "Default Directory".into(),
        }
    }

    /// Adds a verified domain such as `contoso.onmicrosoft.com`.
    pub fn domain(mut self, domain: impl Into<String>) -> Tenant {
        self.domains.push(domain.into().to_ascii_lowercase());
        self
    }

    /// Sets the directory name quoted in AADSTS700016 and AADSTS500011 messages.
    pub fn display_name(mut self, name: impl Into<String>) -> Tenant {
        self.display_name = name.into();
        self
    }

    pub fn id(&self) -> &str {
        &self.id
    }
}

/// An application registration (service principal) in one tenant with its credentials.
#[derive(Clone, Debug)]
pub struct App {
    pub(crate) tenant_id: String,
    pub(crate) client_id: String,
    pub(crate) object_id: String,
    pub(crate) credentials: Vec<AppCredential>,
}

#[derive(Clone)]
pub(crate) enum AppCredential {
    Secret { value: String, expired: bool },
    Federated { assertion: String, expired: bool },
    /// A DER certificate whose key signs client assertions.
    Certificate(Vec<u8>),
    Verifier(Arc<dyn AssertionVerifier>),
}

impl fmt::Debug for AppCredential {
    // Credentials are fake, but a Debug that prints them would teach the wrong habit.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AppCredential::Secret { expired, .. } => {
                write!(f, "Secret {{ expired: {expired}, .. }}")
            }
            AppCredential::Federated { expired, .. } => {
                write!(f, "Federated {{ expired: {expired}, .. }}")
            }
            AppCredential::Certificate(_) => f.write_str("Certificate(..)"),
            AppCredential::Verifier(_) => f.write_str("Verifier(..)"),
        }
    }
}

impl App {
    /// Creates a registration with no credentials yet and a generated object id.
    pub fn new(tenant_id: impl Into<String>, client_id: impl Into<String>) -> App {
        App {
            tenant_id: tenant_id.into().to_ascii_lowercase(),
            client_id: client_id.into().to_ascii_lowercase(),
            object_id: new_guid(),
            credentials: Vec::new(),
        }
    }

    /// Sets the object id of the service principal, quoted in Key Vault 403 messages.
    pub fn object_id(mut self, object_id: impl Into<String>) -> App {
        self.object_id = object_id.into();
        self
    }

    /// Adds a valid client secret.
    pub fn client_secret(mut self, value: impl Into<String>) -> App {
        self.credentials.push(AppCredential::Secret {
            value: value.into(),
            expired: false,
        });
        self
    }

    /// Adds a client secret past its end date: using it fails with AADSTS7000222.
    pub fn expired_client_secret(mut self, value: impl Into<String>) -> App {
        self.credentials.push(AppCredential::Secret {
            value: value.into(),
            expired: true,
        });
        self
    }

    /// Adds a federated credential: a `client_assertion` equal to `assertion` (for example
    /// the content of a workload identity token file) is accepted.
    pub fn federated_token(mut self, assertion: impl Into<String>) -> App {
        self.credentials.push(AppCredential::Federated {
            assertion: assertion.into(),
            expired: false,
        });
        self
    }

    /// Adds a federated token that has expired: presenting it fails with AADSTS700024.
    pub fn expired_federated_token(mut self, assertion: impl Into<String>) -> App {
        self.credentials.push(AppCredential::Federated {
            assertion: assertion.into(),
            expired: true,
        });
        self
    }

    /// Registers a certificate (DER). A client assertion whose header names it by
    /// `x5t#S256` or `x5t` must be signed with its key (PS256 or RS256). It must also name
    /// the token endpoint as `aud` and the client id as `iss` and `sub`, carry a `jti`, and
    /// be valid now for at most ten minutes. A bad signature fails with AADSTS700027, a
    /// stale assertion with AADSTS700024.
    pub fn certificate(mut self, der: impl Into<Vec<u8>>) -> App {
        self.credentials.push(AppCredential::Certificate(der.into()));
        self
    }

    /// Adds a verifier consulted for every `client_assertion` that matches no federated
    /// token, e.g. one that checks certificate-signed JWTs.
    pub fn assertion_verifier(mut self, verifier: Arc<dyn AssertionVerifier>) -> App {
        self.credentials.push(AppCredential::Verifier(verifier));
        self
    }

    pub fn client_id(&self) -> &str {
        &self.client_id
    }
}

/// Checks a `client_assertion` the emulator does not recognise by itself.
pub trait AssertionVerifier: Send + Sync + 'static {
    fn verify(&self, request: &AssertionRequest<'_>) -> AssertionVerdict;
}

/// The parts of a token request an assertion is checked against.
#[derive(Debug)]
pub struct AssertionRequest<'a> {
    pub assertion: &'a str,
    pub tenant_id: &'a str,
    pub client_id: &'a str,
    /// The token endpoint URL, which a certificate assertion must name as `aud`.
    pub token_endpoint: &'a str,
    /// Unix seconds at which the request arrived.
    pub now: i64,
}

#[derive(Debug)]
pub enum AssertionVerdict {
    /// The assertion proves the caller is the application: a token is issued.
    Accept,
    /// The assertion is not one this verifier handles: the next credential is tried.
    NotApplicable,
    /// The assertion is the verifier's kind but invalid: this error is returned.
    Reject(EntraError),
}

/// An Entra ID error as the token endpoint returns it. The trace id, correlation id and
/// timestamps are added when the response is written.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EntraError {
    pub(crate) status: u16,
    pub(crate) error: String,
    pub(crate) code: u32,
    pub(crate) message: String,
}

impl EntraError {
    /// Creates an error; `message` is the text after `AADSTS{code}: `.
    pub fn new(
        status: u16,
        error: impl Into<String>,
        code: u32,
        message: impl Into<String>,
    ) -> Self {
        EntraError {
            status,
            error: error.into(),
            code,
            message: message.into(),
        }
    }

    /// Returns AADSTS700027, the error for an assertion whose signature matches no
    /// certificate registered on the application.
    pub fn signature_invalid() -> EntraError {
        EntraError::new(
            401,
            "invalid_client",
            700027,
            "Client assertion failed signature validation.",
        )
    }

    pub fn code(&self) -> u32 {
        self.code
    }
}

/// A managed identity: system-assigned (chosen when a request names no identity) or
/// user-assigned (chosen by client id, object id or resource id).
#[derive(Clone, Debug)]
pub struct ManagedIdentity {
    pub(crate) tenant_id: String,
    pub(crate) client_id: String,
    pub(crate) object_id: String,
    pub(crate) resource_id: String,
    pub(crate) system_assigned: bool,
}

impl ManagedIdentity {
    /// Creates the host's system-assigned identity, with generated client and object ids.
    pub fn system_assigned(tenant_id: impl Into<String>) -> ManagedIdentity {
        let client_id = new_guid();
        ManagedIdentity {
            tenant_id: tenant_id.into().to_ascii_lowercase(),
            resource_id: format!(
                "/subscriptions/{}/resourcegroups/emulator/providers/Microsoft.Web/sites/emulator-site",
                EMULATOR_SUBSCRIPTION_ID
            ),
            client_id,
            object_id: new_guid(),
            system_assigned: true,
        }
    }

    /// Creates a user-assigned identity with the given client id.
    pub fn user_assigned(
        tenant_id: impl Into<String>,
        client_id: impl Into<String>,
    ) -> ManagedIdentity {
        let client_id = client_id.into().to_ascii_lowercase();
        ManagedIdentity {
            tenant_id: tenant_id.into().to_ascii_lowercase(),
            resource_id: format!(
                "/subscriptions/{}/resourcegroups/emulator/providers/Microsoft.ManagedIdentity/userAssignedIdentities/{client_id}",
                EMULATOR_SUBSCRIPTION_ID
            ),
            client_id,
            object_id: new_guid(),
            system_assigned: false,
        }
    }

    /// Sets the object (principal) id, quoted in Key Vault 403 messages.
    pub fn object_id(mut self, object_id: impl Into<String>) -> ManagedIdentity {
        self.object_id = object_id.into().to_ascii_lowercase();
        self
    }

    /// Sets the Azure resource id, matched against `mi_res_id` / `msi_res_id`.
    pub fn resource_id(mut self, resource_id: impl Into<String>) -> ManagedIdentity {
        self.resource_id = resource_id.into();
        self
    }

    pub fn client_id(&self) -> &str {
        &self.client_id
    }
}

/// The authorisation model a vault applies to data-plane reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PermissionModel {
    /// Azure RBAC: a reader without a role gets 403 with `ForbiddenByRbac`.
    Rbac,
    /// Vault access policies: a reader without a policy gets 403 with `AccessDenied`.
    AccessPolicy,
}

/// A key vault in one cloud, owned by one tenant.
#[derive(Clone, Debug)]
pub struct Vault {
    pub(crate) name: String,
    pub(crate) cloud: Cloud,
    pub(crate) tenant_id: String,
    pub(crate) permission_model: PermissionModel,
    /// Principals (client or object ids) allowed to read; `None` allows every principal.
    pub(crate) readers: Option<BTreeSet<String>>,
    pub(crate) firewall: bool,
    pub(crate) location: String,
    pub(crate) subscription_id: String,
    pub(crate) resource_group: String,
    pub(crate) secrets: Vec<Secret>,
}

impl Vault {
    /// Creates a public-cloud vault using Azure RBAC that every principal may read.
    pub fn new(name: impl Into<String>, tenant_id: impl Into<String>) -> Vault {
        Vault {
            name: name.into().to_ascii_lowercase(),
            cloud: Cloud::public(),
            tenant_id: tenant_id.into().to_ascii_lowercase(),
            permission_model: PermissionModel::Rbac,
            readers: None,
            firewall: false,
            location: "westeurope".into(),
            subscription_id: EMULATOR_SUBSCRIPTION_ID.into(),
            resource_group: "kvexec-emulator".into(),
            secrets: Vec::new(),
        }
    }

    pub fn cloud(mut self, cloud: Cloud) -> Vault {
        self.cloud = cloud;
        self
    }

    pub fn permission_model(mut self, model: PermissionModel) -> Vault {
        self.permission_model = model;
        self
    }

    /// Allows `principal` (a client id or object id) to read secrets. Once any reader is
    /// named, every other principal is denied.
    pub fn reader(mut self, principal: impl Into<String>) -> Vault {
        self.readers
            .get_or_insert_with(BTreeSet::new)
            .insert(principal.into().to_ascii_lowercase());
        self
    }

    /// Denies every principal: each read fails with 403.
    pub fn no_readers(mut self) -> Vault {
        self.readers = Some(BTreeSet::new());
        self
    }

    /// Turns the network firewall on: each authenticated read fails with 403
    /// `ForbiddenByFirewall`.
    pub fn firewall(mut self, on: bool) -> Vault {
        self.firewall = on;
        self
    }

    /// Sets the Azure region, quoted in 403 messages and the `x-ms-keyvault-region` header.
    pub fn location(mut self, location: impl Into<String>) -> Vault {
        self.location = location.into();
        self
    }

    pub fn secret(mut self, secret: Secret) -> Vault {
        self.secrets.push(secret);
        self
    }

    /// Returns `{name}.{suffix}`, e.g. `my-vault.vault.azure.net`.
    pub fn host(&self) -> String {
        format!("{}.{}", self.name, self.cloud.vault_suffix)
    }

    /// Returns `https://{host}`, without a trailing slash.
    pub fn url(&self) -> String {
        format!("https://{}", self.host())
    }
}

/// A secret: its versions from oldest to newest. The newest is the one returned without a
/// version, whether or not it is enabled, as Key Vault does.
#[derive(Clone, Debug)]
pub struct Secret {
    pub(crate) name: String,
    pub(crate) versions: Vec<SecretVersion>,
    pub(crate) fault: Option<SecretFault>,
    pub(crate) latency_ms: u64,
}

impl Secret {
    /// Creates a secret with one enabled version containing `value`.
    pub fn new(name: impl Into<String>, value: impl Into<String>) -> Secret {
        Secret {
            name: name.into(),
            versions: vec![SecretVersion::new(value)],
            fault: None,
            latency_ms: 0,
        }
    }

    /// Creates a secret with the given versions, oldest first.
    pub fn with_versions(name: impl Into<String>, versions: Vec<SecretVersion>) -> Secret {
        Secret {
            name: name.into(),
            versions,
            fault: None,
            latency_ms: 0,
        }
    }

    /// Appends a newer version, which becomes the latest.
    pub fn version(mut self, version: SecretVersion) -> Secret {
        self.versions.push(version);
        self
    }

    /// Sets the content type of the newest version.
    pub fn content_type(mut self, content_type: impl Into<String>) -> Secret {
        if let Some(newest) = self.versions.last_mut() {
            newest.content_type = Some(content_type.into());
        }
        self
    }

    /// Adds a tag to the newest version.
    pub fn tag(mut self, name: impl Into<String>, value: impl Into<String>) -> Secret {
        if let Some(newest) = self.versions.last_mut() {
            newest.tags.insert(name.into(), value.into());
        }
        self
    }

    /// Disables the newest version: reading it fails with 403 `SecretDisabled`.
    pub fn disabled(mut self) -> Secret {
        if let Some(newest) = self.versions.last_mut() {
            newest.enabled = false;
        }
        self
    }

    /// Injects `fault` into every authorised read of this secret.
    pub fn fault(mut self, fault: Fault) -> Secret {
        self.fault = Some(SecretFault {
            fault,
            remaining: None,
        });
        self
    }

    /// Injects `fault` into the first `times` authorised reads of this secret; later reads
    /// succeed normally.
    pub fn fault_times(mut self, fault: Fault, times: u32) -> Secret {
        self.fault = Some(SecretFault {
            fault,
            remaining: Some(times),
        });
        self
    }

    /// Adds a delay to every read of this secret, on top of the emulator-wide latency.
    pub fn latency_ms(mut self, milliseconds: u64) -> Secret {
        self.latency_ms = milliseconds;
        self
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// Returns the version ids, oldest first.
    pub fn version_ids(&self) -> Vec<&str> {
        self.versions.iter().map(|v| v.id.as_str()).collect()
    }
}

/// One version of a secret.
#[derive(Clone)]
pub struct SecretVersion {
    pub(crate) id: String,
    pub(crate) value: String,
    pub(crate) enabled: bool,
    pub(crate) content_type: Option<String>,
    pub(crate) tags: BTreeMap<String, String>,
    pub(crate) created: i64,
    pub(crate) not_before: Option<i64>,
    pub(crate) expires: Option<i64>,
}

impl fmt::Debug for SecretVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SecretVersion")
            .field("id", &self.id)
            .field("enabled", &self.enabled)
            .field("content_type", &self.content_type)
            .finish_non_exhaustive()
    }
}

impl SecretVersion {
    /// Creates an enabled version with a generated 32-character id, created now.
    pub fn new(value: impl Into<String>) -> SecretVersion {
        SecretVersion {
            id: new_version_id(),
            value: value.into(),
            enabled: true,
            content_type: None,
            tags: BTreeMap::new(),
            created: unix_now(),
            not_before: None,
            expires: None,
        }
    }

    /// Sets the version id; Key Vault ids are 32 lowercase hex characters.
    pub fn id(mut self, id: impl Into<String>) -> SecretVersion {
        self.id = id.into().to_ascii_lowercase();
        self
    }

    pub fn disabled(mut self) -> SecretVersion {
        self.enabled = false;
        self
    }

    pub fn content_type(mut self, content_type: impl Into<String>) -> SecretVersion {
        self.content_type = Some(content_type.into());
        self
    }

    pub fn tag(mut self, name: impl Into<String>, value: impl Into<String>) -> SecretVersion {
        self.tags.insert(name.into(), value.into());
        self
    }

    /// Sets the creation time in Unix seconds (also used as the update time).
    pub fn created(mut self, unix_seconds: i64) -> SecretVersion {
        self.created = unix_seconds;
        self
    }

    /// Sets `exp` (informational: Key Vault still returns expired secrets).
    pub fn expires(mut self, unix_seconds: i64) -> SecretVersion {
        self.expires = Some(unix_seconds);
        self
    }

    /// Sets `nbf` (informational, like `exp`).
    pub fn not_before(mut self, unix_seconds: i64) -> SecretVersion {
        self.not_before = Some(unix_seconds);
        self
    }

    pub fn version_id(&self) -> &str {
        &self.id
    }
}

/// A fault injected into the response to an authorised read of one secret.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Fault {
    /// Sends the status line, headers and half the body, then resets the TCP connection.
    ResetConnection,
    /// Accepts the request and never responds (until the emulator stops).
    NoResponse,
    /// Declares the full `Content-Length`, sends half the body, then ends the stream.
    TruncatedBody,
    /// Responds 200 with a complete body that is not valid JSON.
    MalformedJson,
    /// Responds 200 with a valid secret bundle larger than 1 MiB, streamed without a
    /// `Content-Length`.
    OversizedBody,
    /// Responds with a redirect `status` (such as 302 or 307) to `location`, as a proxy or
    /// a captive portal between client and vault might.
    Redirect { status: u16, location: String },
    /// Responds with this status and a Key Vault error body (`Throttled` for 429),
    /// with `Retry-After` seconds when given.
    Status {
        status: u16,
        retry_after: Option<u64>,
    },
}

#[derive(Clone, Debug)]
pub(crate) struct SecretFault {
    pub(crate) fault: Fault,
    /// Reads still to fail; `None` fails every read.
    pub(crate) remaining: Option<u32>,
}

/// Key Vault throttling: each vault admits at most `requests_per_second` requests per
/// one-second window and rejects the excess with 429 `Throttled`. Rejected requests do
/// not count against the limit, as in Key Vault.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Throttle {
    pub requests_per_second: u32,
    /// `Retry-After` seconds on each 429; `None` omits the header, as a captured Key
    /// Vault 429 did.
    pub retry_after: Option<u64>,
}

/// The requests a [`FailNext`] applies to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FailTarget {
    /// Requests to vault hosts.
    KeyVault,
    /// Entra ID token requests and managed-identity token requests.
    Token,
    /// Both.
    Any,
}

/// Fails the next `count` matching requests with `status` (429, 500 or 503 are typical).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FailNext {
    pub count: u32,
    pub status: u16,
    pub retry_after: Option<u64>,
    pub target: FailTarget,
}

impl FailNext {
    pub fn new(count: u32, status: u16) -> FailNext {
        FailNext {
            count,
            status,
            retry_after: None,
            target: FailTarget::Any,
        }
    }

    pub fn retry_after(mut self, seconds: u64) -> FailNext {
        self.retry_after = Some(seconds);
        self
    }

    pub fn target(mut self, target: FailTarget) -> FailNext {
        self.target = target;
        self
    }
}

/// The response to a request for `{name}.{suffix}` when no such vault is configured.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum UnknownVault {
    /// Resets the TCP connection. A real client never reaches a missing vault, because
    /// its DNS name does not resolve. A reset is the closest connection-level failure a
    /// loopback server can produce.
    #[default]
    ResetConnection,
    /// Accepts the request and never responds, like a black-holed address.
    NoResponse,
    /// Responds 404 with a Key Vault-shaped `VaultNotFound` error. Azure never does this,
    /// but tests may want an HTTP response to assert on.
    NotFound,
}
