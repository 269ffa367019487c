//! The run's configuration: flags first, then variables of the merged environment, then
//! defaults.

use crate::cli::Cli;
use crate::credential::{CredentialKind, CredentialSettings, UnknownCredential};
use crate::environment::Environment;
use crate::reference::Vault;
use crate::transport::{ProxySettings, ResolveRule, TransportOptions, TrustRoots};
use secrecy::SecretString;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::time::Duration;
use zeroize::Zeroizing;

pub const DEFAULT_TIMEOUT_SECONDS: f64 = 30.0;

/// Variables that hold credentials and are removed from the child's environment unless
/// `--keep-credentials` is given.
pub const CREDENTIAL_VARIABLES: &[&str] = &["AZURE_CLIENT_SECRET", "AZURE_CLIENT_CERTIFICATE_PASSWORD"];

pub enum Mode {
    Run { command: Vec<OsString> },
    Check { json: bool },
}

pub struct Config {
    pub mode: Mode,
    pub default_vault: Option<Vault>,
    pub credential: CredentialSettings,
    pub transport: TransportOptions,
    pub timeout: Duration,
    /// Maximum requests in flight from `--concurrency`, or `None` to let the resolver choose
    /// per vault.
    pub concurrency: Option<usize>,
    pub keep_credentials: bool,
}

impl Config {
    /// Builds the configuration. Reading the client secret file is the only I/O.
    pub fn new(cli: Cli, env: &Environment) -> Result<Config, ConfigError> {
        let var = |name: &str| env.get_str(name).map(str::to_string).filter(|v| !v.is_empty());

        let default_vault = match cli.default_vault_url.or_else(|| var("KVEXEC_DEFAULT_VAULT_URL")) {
            Some(url) => Some(Vault::parse_url(url.trim()).map_err(|error| ConfigError::DefaultVault(error.to_string()))?),
            None => None,
        };

        let timeout_text = cli.timeout.or_else(|| var("KVEXEC_TIMEOUT"));
        let timeout = match timeout_text {
            Some(text) => parse_seconds(&text)?,
            None => Duration::from_secs_f64(DEFAULT_TIMEOUT_SECONDS),
        };
        let concurrency = match cli.concurrency.or_else(|| var("KVEXEC_CONCURRENCY")) {
            Some(text) => Some(
                text.trim()
                    .parse::<usize>()
                    .ok()
                    .filter(|n| (1..=1024).contains(n))
                    .ok_or(ConfigError::Concurrency(text))?,
            ),
            None => None,
        };

        let mut resolve = Vec::new();
        let resolve_env = var("KVEXEC_RESOLVE").unwrap_or_default();
        let env_rules = resolve_env.split(',').filter(|rule| !rule.trim().is_empty());
        for rule in cli.resolve.iter().map(String::as_str).chain(env_rules) {
            resolve.push(ResolveRule::parse(rule).map_err(|error| ConfigError::Resolve(error.to_string()))?);
        }

        let client_secret_file = cli
            .client_secret_file
            .or_else(|| var("KVEXEC_CLIENT_SECRET_FILE").map(PathBuf::from));
        let client_secret = match client_secret_file {
            Some(path) => Some(read_secret_file(&path)?),
            None => var("AZURE_CLIENT_SECRET").map(SecretString::from),
        };

        let choice = match (cli.credential, var("KVEXEC_CREDENTIAL")) {
            (Some(text), _) => CredentialKind::parse_choice(&text)?.map(|kind| (kind, "--credential")),
            (None, Some(text)) => CredentialKind::parse_choice(&text)?.map(|kind| (kind, "KVEXEC_CREDENTIAL")),
            (None, None) => None,
        };

        let mode = if cli.check {
            Mode::Check { json: cli.json }
        } else {
            Mode::Run { command: cli.command }
        };

        Ok(Config {
            mode,
            default_vault,
            credential: CredentialSettings {
                choice,
                tenant_id: cli.tenant_id.or_else(|| var("AZURE_TENANT_ID")),
                client_id: cli.client_id.or_else(|| var("AZURE_CLIENT_ID")),
                client_secret,
                certificate_path: var("AZURE_CLIENT_CERTIFICATE_PATH").map(PathBuf::from),
                certificate_password: var("AZURE_CLIENT_CERTIFICATE_PASSWORD").map(SecretString::from),
                send_certificate_chain: var("AZURE_CLIENT_SEND_CERTIFICATE_CHAIN").is_some_and(|v| is_true(&v)),
                federated_token_file: var("AZURE_FEDERATED_TOKEN_FILE").map(PathBuf::from),
                identity_endpoint: var("IDENTITY_ENDPOINT"),
                identity_header: var("IDENTITY_HEADER").map(SecretString::from),
                imds_endpoint: var("AZURE_POD_IDENTITY_AUTHORITY_HOST"),
                authority_host: var("AZURE_AUTHORITY_HOST"),
                retry_budget: timeout,
            },
            transport: TransportOptions {
                roots: TrustRoots {
                    file: var("SSL_CERT_FILE").map(PathBuf::from),
                    dir: var("SSL_CERT_DIR"),
                },
                resolve,
                proxy: ProxySettings::from_lookup(var),
            },
            timeout,
            concurrency,
            keep_credentials: cli.keep_credentials || var("KVEXEC_KEEP_CREDENTIALS").is_some_and(|v| is_true(&v)),
        })
    }
}

fn is_true(value: &str) -> bool {
    matches!(value.trim().to_ascii_lowercase().as_str(), "1" | "true" | "yes" | "on")
}

fn parse_seconds(text: &str) -> Result<Duration, ConfigError> {
    text.trim()
        .parse::<f64>()
        .ok()
        .filter(|seconds| seconds.is_finite() && *seconds > 0.0 && *seconds <= 86_400.0)
        .map(Duration::from_secs_f64)
        .ok_or_else(|| ConfigError::Timeout(text.to_string()))
}

/// Reads the client secret file, removing one trailing `\n` or `\r\n` and nothing else.
fn read_secret_file(path: &Path) -> Result<SecretString, ConfigError> {
    let bytes = Zeroizing::new(std::fs::read(path).map_err(|error| ConfigError::SecretFile {
        path: path.to_path_buf(),
        reason: error.to_string(),
    })?);
    let mut text = std::str::from_utf8(&bytes).map_err(|_| ConfigError::SecretFile {
        path: path.to_path_buf(),
        reason: "it is not valid UTF-8".to_string(),
    })?;
    if let Some(stripped) = text.strip_suffix('\n') {
        text = stripped.strip_suffix('\r').unwrap_or(stripped);
    }
    Ok(SecretString::from(text))
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("invalid default vault URL: {0}")]
    DefaultVault(String),
    #[error("invalid timeout '{0}': expected a number of seconds greater than 0 and at most 86400, e.g. --timeout 30")]
    Timeout(String),
    #[error("invalid concurrency '{0}': expected a whole number from 1 to 1024, e.g. --concurrency 32")]
    Concurrency(String),
    #[error("{0}; expected HOST=IP:PORT, e.g. --resolve '*.vault.azure.net=10.1.2.3:443'")]
    Resolve(String),
    #[error("cannot read the client secret file {}: {reason}", path.display())]
    SecretFile { path: PathBuf, reason: String },
    #[error("{0}; e.g. --credential workload-identity")]
    Credential(#[from] UnknownCredential),
}

#[cfg(test)]
mod tests {
    use super::*;
    use secrecy::ExposeSecret;

    #[test]
    fn secret_file_loses_one_trailing_newline() {
        let dir = tempfile::tempdir().unwrap();
        for (content, expected) in [
            ("s3cret\n", "s3cret"),
            ("s3cret\r\n", "s3cret"),
            ("s3cret\n\n", "s3cret\n"),
            (" s3cret ", " s3cret "),
            ("s3cret\r", "s3cret\r"),
        ] {
            let path = dir.path().join("secret");
            std::fs::write(&path, content).unwrap();
            assert_eq!(read_secret_file(&path).unwrap().expose_secret(), expected, "{content:?}");
        }
    }

    #[test]
    fn timeout_accepts_fractions_and_rejects_zero() {
        assert_eq!(parse_seconds("0.5").unwrap(), Duration::from_millis(500));
        assert!(parse_seconds("0").is_err());
        assert!(parse_seconds("-1").is_err());
        assert!(parse_seconds("NaN").is_err());
        assert!(parse_seconds("ten").is_err());
    }
}
