//! Key Vault references: the three syntaxes, name rules, clouds and their hosts.
//!
//! This module does no I/O. It is the only place that knows what a reference looks like.

use std::ffi::OsStr;
use std::fmt;

/// An Azure cloud that hosts Key Vault, told apart by the vault's DNS suffix.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Cloud {
    Public,
    China,
    UsGovernment,
}

impl Cloud {
    pub const ALL: [Cloud; 3] = [Cloud::Public, Cloud::China, Cloud::UsGovernment];

    /// DNS suffix of vault hosts, e.g. `vault.azure.net`.
    pub fn vault_suffix(self) -> &'static str {
        match self {
            Cloud::Public => "vault.azure.net",
            Cloud::China => "vault.azure.cn",
            Cloud::UsGovernment => "vault.usgovcloudapi.net",
        }
    }

    /// Token scope for Key Vault in this cloud (OAuth 2.0 v2 endpoint).
    pub fn scope(self) -> &'static str {
        match self {
            Cloud::Public => "https://vault.azure.net/.default",
            Cloud::China => "https://vault.azure.cn/.default",
            Cloud::UsGovernment => "https://vault.usgovcloudapi.net/.default",
        }
    }

    /// Key Vault resource id, used by managed identity and Azure CLI token requests.
    pub fn resource(self) -> &'static str {
        match self {
            Cloud::Public => "https://vault.azure.net",
            Cloud::China => "https://vault.azure.cn",
            Cloud::UsGovernment => "https://vault.usgovcloudapi.net",
        }
    }

    /// Default Entra ID authority host of this cloud.
    pub fn authority_host(self) -> &'static str {
        match self {
            Cloud::Public => "https://login.microsoftonline.com",
            Cloud::China => "https://login.chinacloudapi.cn",
            Cloud::UsGovernment => "https://login.microsoftonline.us",
        }
    }
}

/// A key vault: its name (lowercase) and cloud.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Vault {
    pub name: String,
    pub cloud: Cloud,
}

impl Vault {
    /// Host name of the vault, e.g. `my-vault.vault.azure.net`.
    pub fn host(&self) -> String {
        format!("{}.{}", self.name, self.cloud.vault_suffix())
    }

    /// Parses a vault URL such as `https://my-vault.vault.azure.net/` (the default vault).
    pub fn parse_url(text: &str) -> Result<Vault, ReferenceError> {
        todo!("{text}")
    }
}

/// One secret version in one vault. Names and versions are lowercase, because Key Vault
/// compares identifiers case-insensitively, so equal ids are fetched once.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SecretId {
    pub vault: Vault,
    pub name: String,
    /// `None` means the latest version.
    pub version: Option<String>,
}

impl SecretId {
    /// Request path without the query, e.g. `/secrets/db-password` or `/secrets/db-password/{version}`.
    pub fn path(&self) -> String {
        match &self.version {
            Some(version) => format!("/secrets/{}/{}", self.name, version),
            None => format!("/secrets/{}", self.name),
        }
    }
}

impl fmt::Display for SecretId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "https://{}{}", self.vault.host(), self.path())
    }
}

/// Which part of a JSON secret a reference selects, from its `#fragment` (percent-decoded).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Selector {
    /// `#name`: the top-level member `name`.
    Member(String),
    /// `#/a/b`: an RFC 6901 JSON Pointer.
    Pointer(String),
}

/// A parsed reference: the secret to fetch and an optional selector.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reference {
    pub secret: SecretId,
    pub selector: Option<Selector>,
}

impl fmt::Display for Reference {
    /// Canonical form, `https://{vault}.{suffix}/secrets/{name}[/{version}][#{key}]`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let _ = f;
        todo!()
    }
}

/// What one environment value is.
#[derive(Debug, PartialEq, Eq)]
pub enum Scan {
    /// Not a reference: passed to the child unchanged.
    Plain,
    Reference(Reference),
    /// Meant as a reference but invalid.
    Malformed(ReferenceError),
}

/// Classifies one environment value. `default_vault` resolves `akv://` references.
pub fn scan(value: &OsStr, default_vault: Option<&Vault>) -> Scan {
    todo!("{value:?} {default_vault:?}")
}

/// Why a value that looks like a reference is not a valid one. Messages never quote
/// anything but the reference text itself.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReferenceError {
    #[error("todo")]
    Todo,
}
