//! State shared by every connection: the configured directory and vaults, the tokens
//! issued so far, faults and counters.

use crate::faults::Faults;
use crate::model::{App, Cloud, ManagedIdentity, Secret, Tenant, UnknownVault, Vault};
use crate::stats::Recorder;
use crate::util::random_hex;
use std::collections::{BTreeMap, HashMap};
use std::sync::{Mutex, MutexGuard};

/// The application or managed identity a token was issued to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Principal {
    pub(crate) client_id: String,
    pub(crate) object_id: String,
}

#[derive(Clone, Debug)]
pub(crate) struct IssuedToken {
    pub(crate) tenant_id: String,
    pub(crate) principal: Principal,
    /// The audience, exactly as requested (a trailing slash is kept, as Entra ID does).
    pub(crate) resource: String,
}

/// A vault with its secrets keyed by lowercase name.
pub(crate) struct VaultState {
    pub(crate) vault: Vault,
    pub(crate) secrets: BTreeMap<String, Secret>,
}

pub(crate) struct Shared {
    pub(crate) clouds: Vec<Cloud>,
    pub(crate) tenants: Vec<Tenant>,
    pub(crate) apps: Vec<App>,
    pub(crate) identities: Vec<ManagedIdentity>,
    pub(crate) identity_header: String,
    pub(crate) unknown_vault: UnknownVault,
    /// Vaults by lowercase host.
    vaults: Mutex<HashMap<String, VaultState>>,
    tokens: Mutex<HashMap<String, IssuedToken>>,
    pub(crate) faults: Faults,
    pub(crate) stats: Recorder,
}

/// The service a `Host` belongs to.
pub(crate) enum HostKind<'a> {
    /// `{name}.{suffix}` of a configured cloud; the vault may or may not exist.
    Vault {
        cloud: &'a Cloud,
    },
    Login {
        cloud: &'a Cloud,
    },
    Other,
}

impl Shared {
    pub(crate) fn new(
        clouds: Vec<Cloud>,
        tenants: Vec<Tenant>,
        apps: Vec<App>,
        identities: Vec<ManagedIdentity>,
        identity_header: String,
        unknown_vault: UnknownVault,
        vaults: Vec<Vault>,
    ) -> Shared {
        let shared = Shared {
            clouds,
            tenants,
            apps,
            identities,
            identity_header,
            unknown_vault,
            vaults: Mutex::new(HashMap::new()),
            tokens: Mutex::new(HashMap::new()),
            faults: Faults::default(),
            stats: Recorder::default(),
        };
        for vault in vaults {
            shared.put_vault(vault);
        }
        shared
    }

    pub(crate) fn classify_host(&self, host: &str) -> HostKind<'_> {
        for cloud in &self.clouds {
            if host == cloud.login_host {
                return HostKind::Login { cloud };
            }
        }
        for cloud in &self.clouds {
            let Some(name) = host.strip_suffix(cloud.vault_suffix.as_str()) else {
                continue;
            };
            if let Some(name) = name.strip_suffix('.') {
                // Key Vault names are one DNS label; `a.b.vault.azure.net` is no vault.
                if !name.is_empty() && !name.contains('.') {
                    return HostKind::Vault { cloud };
                }
            }
        }
        HostKind::Other
    }

    pub(crate) fn cloud_of_resource(&self, resource: &str) -> Option<&Cloud> {
        let resource = resource.strip_suffix('/').unwrap_or(resource);
        self.clouds
            .iter()
            .find(|cloud| cloud.vault_resource == resource)
    }

    /// Finds a tenant by id or verified domain, case-insensitively.
    pub(crate) fn tenant(&self, id_or_domain: &str) -> Option<&Tenant> {
        let lowered = id_or_domain.to_ascii_lowercase();
        self.tenants
            .iter()
            .find(|tenant| tenant.id == lowered || tenant.domains.contains(&lowered))
    }

    pub(crate) fn app(&self, tenant_id: &str, client_id: &str) -> Option<&App> {
        let client_id = client_id.to_ascii_lowercase();
        self.apps
            .iter()
            .find(|app| app.tenant_id == tenant_id && app.client_id == client_id)
    }

    fn vaults(&self) -> MutexGuard<'_, HashMap<String, VaultState>> {
        self.vaults
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Adds or replaces a vault with all its secrets.
    pub(crate) fn put_vault(&self, mut vault: Vault) {
        let secrets = std::mem::take(&mut vault.secrets)
            .into_iter()
            .map(|secret| (secret.name.to_ascii_lowercase(), secret))
            .collect();
        self.vaults()
            .insert(vault.host(), VaultState { vault, secrets });
    }

    /// Adds or replaces one secret; false when the vault does not exist.
    pub(crate) fn put_secret(&self, vault_host: &str, secret: Secret) -> bool {
        match self.vaults().get_mut(&vault_host.to_ascii_lowercase()) {
            Some(state) => {
                state
                    .secrets
                    .insert(secret.name.to_ascii_lowercase(), secret);
                true
            }
            None => false,
        }
    }

    /// Runs `f` on the vault at `host` under the vault lock; `None` when there is none.
    pub(crate) fn with_vault<T>(
        &self,
        host: &str,
        f: impl FnOnce(&mut VaultState) -> T,
    ) -> Option<T> {
        self.vaults().get_mut(host).map(f)
    }

    pub(crate) fn vault_hosts(&self) -> Vec<String> {
        let mut hosts: Vec<String> = self.vaults().keys().cloned().collect();
        hosts.sort();
        hosts
    }

    pub(crate) fn issue_token(
        &self,
        tenant_id: &str,
        principal: Principal,
        resource: &str,
    ) -> String {
        // Opaque rather than a JWT: clients must not look inside access tokens, and a fixed
        // prefix lets tests search any output for leaked tokens.
        let token = format!("kvemu_at_{}", random_hex(32));
        let issued = IssuedToken {
            tenant_id: tenant_id.to_string(),
            principal,
            resource: resource.to_string(),
        };
        self.tokens
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .insert(token.clone(), issued);
        self.stats.token_issued(&token);
        token
    }

    pub(crate) fn token(&self, token: &str) -> Option<IssuedToken> {
        self.tokens
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .get(token)
            .cloned()
    }
}
