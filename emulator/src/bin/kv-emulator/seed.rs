//! The `--seed FILE` format: JSON describing more tenants, applications, managed identities
//! and vaults, added to the demo seed.
//!
//! ```json
//! {
//!   "tenants": [{"id": "…guid…", "domains": ["contoso.onmicrosoft.com"]}],
//!   "apps": [{"tenant": "…guid…", "client_id": "…guid…", "client_secrets": ["s3cret"],
//!             "expired_client_secrets": [], "federated_tokens": [], "expired_federated_tokens": []}],
//!   "managed_identities": [{"tenant": "…guid…"}, {"tenant": "…guid…", "client_id": "…guid…"}],
//!   "identity_header": "fixed-value",
//!   "vaults": [{"name": "my-vault", "tenant": "…guid…", "cloud": "public",
//!               "permission_model": "rbac", "readers": ["…client id…"], "firewall": false,
//!               "secrets": [
//!                 {"name": "plain", "value": "v", "content_type": "text/plain", "tags": {"k": "v"}},
//!                 {"name": "off", "value": "v", "enabled": false},
//!                 {"name": "two", "versions": [{"value": "old"}, {"id": "…32 hex…", "value": "new"}]},
//!                 {"name": "flaky", "value": "v", "fault": "reset_connection", "fault_times": 1},
//!                 {"name": "busy", "value": "v", "fault_status": 503, "fault_retry_after": 1}
//!               ]}]
//! }
//! ```
//! `cloud` is `public` (default), `china` or `us-government`; `permission_model` is `rbac`
//! (default) or `access-policy`; `fault` is one of `reset_connection`, `no_response`,
//! `truncated_body`, `malformed_json`, `oversized_body`.

use kvexec_emulator::{
    App, Cloud, EmulatorBuilder, Fault, ManagedIdentity, PermissionModel, Secret, SecretVersion,
    Tenant, Vault,
};
use serde::Deserialize;
use std::collections::BTreeMap;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Seed {
    #[serde(default)]
    tenants: Vec<SeedTenant>,
    #[serde(default)]
    apps: Vec<SeedApp>,
    #[serde(default)]
    managed_identities: Vec<SeedIdentity>,
    identity_header: Option<String>,
    #[serde(default)]
    vaults: Vec<SeedVault>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SeedTenant {
    id: String,
    #[serde(default)]
    domains: Vec<String>,
    display_name: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SeedApp {
    tenant: String,
    client_id: String,
    object_id: Option<String>,
    #[serde(default)]
    client_secrets: Vec<String>,
    #[serde(default)]
    expired_client_secrets: Vec<String>,
    #[serde(default)]
    federated_tokens: Vec<String>,
    #[serde(default)]
    expired_federated_tokens: Vec<String>,
}

/// Without `client_id` the identity is the system-assigned one.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SeedIdentity {
    tenant: String,
    client_id: Option<String>,
    object_id: Option<String>,
    resource_id: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
enum SeedCloud {
    #[default]
    Public,
    China,
    UsGovernment,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
enum SeedPermissionModel {
    #[default]
    Rbac,
    AccessPolicy,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SeedVault {
    name: String,
    tenant: String,
    #[serde(default)]
    cloud: SeedCloud,
    #[serde(default)]
    permission_model: SeedPermissionModel,
    readers: Option<Vec<String>>,
    #[serde(default)]
    firewall: bool,
    location: Option<String>,
    #[serde(default)]
    secrets: Vec<SeedSecret>,
}

#[derive(Deserialize)]
#[serde(rename_all = "snake_case")]
enum SeedFault {
    ResetConnection,
    NoResponse,
    TruncatedBody,
    MalformedJson,
    OversizedBody,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SeedSecret {
    name: String,
    value: Option<String>,
    versions: Option<Vec<SeedVersion>>,
    content_type: Option<String>,
    #[serde(default)]
    tags: BTreeMap<String, String>,
    enabled: Option<bool>,
    fault: Option<SeedFault>,
    fault_status: Option<u16>,
    fault_retry_after: Option<u64>,
    fault_times: Option<u32>,
    latency_ms: Option<u64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SeedVersion {
    id: Option<String>,
    value: String,
    enabled: Option<bool>,
    content_type: Option<String>,
    #[serde(default)]
    tags: BTreeMap<String, String>,
}

impl Seed {
    pub fn parse(text: &str) -> Result<Seed, serde_json::Error> {
        serde_json::from_str(text)
    }

    /// Adds everything in the seed to `builder`; fails on a secret that is not well formed.
    pub fn apply(self, mut builder: EmulatorBuilder) -> Result<EmulatorBuilder, String> {
        for tenant in self.tenants {
            let mut configured = Tenant::new(tenant.id);
            for domain in tenant.domains {
                configured = configured.domain(domain);
            }
            if let Some(name) = tenant.display_name {
                configured = configured.display_name(name);
            }
            builder = builder.tenant(configured);
        }

        for app in self.apps {
            let mut configured = App::new(app.tenant, app.client_id);
            if let Some(object_id) = app.object_id {
                configured = configured.object_id(object_id);
            }
            for secret in app.client_secrets {
                configured = configured.client_secret(secret);
            }
            for secret in app.expired_client_secrets {
                configured = configured.expired_client_secret(secret);
            }
            for token in app.federated_tokens {
                configured = configured.federated_token(token);
            }
            for token in app.expired_federated_tokens {
                configured = configured.expired_federated_token(token);
            }
            builder = builder.app(configured);
        }

        for identity in self.managed_identities {
            let mut configured = match identity.client_id {
                Some(client_id) => ManagedIdentity::user_assigned(identity.tenant, client_id),
                None => ManagedIdentity::system_assigned(identity.tenant),
            };
            if let Some(object_id) = identity.object_id {
                configured = configured.object_id(object_id);
            }
            if let Some(resource_id) = identity.resource_id {
                configured = configured.resource_id(resource_id);
            }
            builder = builder.managed_identity(configured);
        }

        if let Some(header) = self.identity_header {
            builder = builder.identity_header(header);
        }

        for vault in self.vaults {
            builder = builder.vault(vault.into_vault()?);
        }
        Ok(builder)
    }
}

impl SeedVault {
    fn into_vault(self) -> Result<Vault, String> {
        let cloud = match self.cloud {
            SeedCloud::Public => Cloud::public(),
            SeedCloud::China => Cloud::china(),
            SeedCloud::UsGovernment => Cloud::us_government(),
        };
        let model = match self.permission_model {
            SeedPermissionModel::Rbac => PermissionModel::Rbac,
            SeedPermissionModel::AccessPolicy => PermissionModel::AccessPolicy,
        };
        let mut vault = Vault::new(&self.name, self.tenant)
            .cloud(cloud)
            .permission_model(model)
            .firewall(self.firewall);
        if let Some(readers) = self.readers {
            vault = vault.no_readers();
            for reader in readers {
                vault = vault.reader(reader);
            }
        }
        if let Some(location) = self.location {
            vault = vault.location(location);
        }
        for secret in self.secrets {
            let name = secret.name.clone();
            let secret = secret
                .into_secret()
                .map_err(|reason| format!("secret '{name}' in vault '{}': {reason}", self.name))?;
            vault = vault.secret(secret);
        }
        Ok(vault)
    }
}

impl SeedSecret {
    fn into_secret(self) -> Result<Secret, String> {
        let mut secret = match (self.value, self.versions) {
            (Some(value), None) => Secret::new(self.name, value),
            (None, Some(versions)) if !versions.is_empty() => Secret::with_versions(
                self.name,
                versions
                    .into_iter()
                    .map(SeedVersion::into_version)
                    .collect(),
            ),
            (Some(_), Some(_)) => {
                return Err("give either \"value\" or \"versions\", not both".into())
            }
            (None, _) => {
                return Err("\"value\" or a non-empty \"versions\" list is required".into())
            }
        };
        if let Some(content_type) = self.content_type {
            secret = secret.content_type(content_type);
        }
        for (name, value) in self.tags {
            secret = secret.tag(name, value);
        }
        if self.enabled == Some(false) {
            secret = secret.disabled();
        }

        let fault = match (self.fault, self.fault_status) {
            (Some(_), Some(_)) => {
                return Err("give either \"fault\" or \"fault_status\", not both".into())
            }
            (Some(kind), None) => Some(match kind {
                SeedFault::ResetConnection => Fault::ResetConnection,
                SeedFault::NoResponse => Fault::NoResponse,
                SeedFault::TruncatedBody => Fault::TruncatedBody,
                SeedFault::MalformedJson => Fault::MalformedJson,
                SeedFault::OversizedBody => Fault::OversizedBody,
            }),
            (None, Some(status)) => Some(Fault::Status {
                status,
                retry_after: self.fault_retry_after,
            }),
            (None, None) => None,
        };
        if let Some(fault) = fault {
            secret = match self.fault_times {
                Some(times) => secret.fault_times(fault, times),
                None => secret.fault(fault),
            };
        }
        if let Some(milliseconds) = self.latency_ms {
            secret = secret.latency_ms(milliseconds);
        }
        Ok(secret)
    }
}

impl SeedVersion {
    fn into_version(self) -> SecretVersion {
        let mut version = SecretVersion::new(self.value);
        if let Some(id) = self.id {
            version = version.id(id);
        }
        if self.enabled == Some(false) {
            version = version.disabled();
        }
        if let Some(content_type) = self.content_type {
            version = version.content_type(content_type);
        }
        for (name, value) in self.tags {
            version = version.tag(name, value);
        }
        version
    }
}
