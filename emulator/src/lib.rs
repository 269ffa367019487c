//! A local fake of Entra ID and Azure Key Vault over real TLS on 127.0.0.1, for kvexec's
//! integration tests, demo and benchmark.
//!
//! One listener serves every host: `{vault}.vault.azure.net` (and the China and US
//! Government suffixes), `login.microsoftonline.com` (and the other clouds' login hosts),
//! and the managed identity endpoints on `127.0.0.1`. Clients reach it by mapping those
//! names to `127.0.0.1:{port}` ([`Emulator::resolve_args`]) and trusting the generated CA
//! ([`Emulator::ca_pem_path`]). Responses follow the real services: status codes, JSON error
//! bodies, the 401 challenge, AADSTS codes.
//!
//! ```no_run
//! use kvexec_emulator::{demo, Emulator};
//!
//! let emulator = Emulator::builder().demo().start();
//! println!("--resolve {} with SSL_CERT_FILE={}", emulator.resolve_args(), emulator.ca_pem_path().display());
//! let stats = emulator.stats();
//! assert_eq!(stats.reads_of(&demo::vault_host(), demo::PASSWORD_SECRET), 0);
//! ```
//!
//! The emulator runs on its own Tokio runtime thread, so synchronous tests can use it, and
//! stops when dropped.

mod certificate;
mod entra;
mod faults;
mod identity;
mod keyvault;
mod model;
mod response;
mod server;
mod state;
mod stats;
mod tls;
mod util;

pub mod demo;

pub use model::{
    App, AssertionRequest, AssertionVerdict, AssertionVerifier, Cloud, EntraError, FailNext,
    FailTarget, Fault, ManagedIdentity, PermissionModel, Secret, SecretVersion, Tenant, Throttle,
    UnknownVault, Vault,
};
pub use stats::{SecretRead, Stats};

use state::Shared;
use std::fmt;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

/// An error that kept an emulator from starting.
#[derive(Debug)]
pub enum StartError {
    Bind {
        port: u16,
        source: std::io::Error,
    },
    Certificate(rcgen::Error),
    Tls(rustls::Error),
    WriteCa {
        path: PathBuf,
        source: std::io::Error,
    },
    Runtime(std::io::Error),
    /// A secret was added for a vault name the builder does not have.
    UnknownVault(String),
}

impl fmt::Display for StartError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StartError::Bind { port, source } => {
                write!(f, "binding 127.0.0.1:{port} failed: {source}")
            }
            StartError::Certificate(error) => write!(f, "generating certificates failed: {error}"),
            StartError::Tls(error) => write!(f, "configuring TLS failed: {error}"),
            StartError::WriteCa { path, source } => {
                write!(f, "writing the CA certificate to {} failed: {source}", path.display())
            }
            StartError::Runtime(error) => write!(f, "starting the emulator runtime failed: {error}"),
            StartError::UnknownVault(name) => write!(
                f,
                "a secret was added for vault '{name}', which is not configured; add the vault first"
            ),
        }
    }
}

impl std::error::Error for StartError {}

/// Configures an [`Emulator`]. Everything has a default: an emulator with no tenants
/// rejects every token request with AADSTS90002 and resets every vault connection.
pub struct EmulatorBuilder {
    clouds: Vec<Cloud>,
    tenants: Vec<Tenant>,
    apps: Vec<App>,
    identities: Vec<ManagedIdentity>,
    identity_header: Option<String>,
    vaults: Vec<Vault>,
    pending_secrets: Vec<(String, Secret)>,
    latency: Duration,
    throttle: Option<Throttle>,
    fail_next: Vec<FailNext>,
    extra_sans: Vec<String>,
    unknown_vault: UnknownVault,
    port: u16,
    http2: bool,
    ca_dir: Option<PathBuf>,
}

impl Default for EmulatorBuilder {
    fn default() -> Self {
        EmulatorBuilder {
            clouds: Cloud::builtin(),
            tenants: Vec::new(),
            apps: Vec::new(),
            identities: Vec::new(),
            identity_header: None,
            vaults: Vec::new(),
            pending_secrets: Vec::new(),
            latency: Duration::ZERO,
            throttle: None,
            fail_next: Vec::new(),
            extra_sans: Vec::new(),
            unknown_vault: UnknownVault::default(),
            port: 0,
            http2: true,
            ca_dir: None,
        }
    }
}

impl EmulatorBuilder {
    /// Adds the demo tenant, application and vault described in [`demo`].
    pub fn demo(self) -> Self {
        demo::seed(self)
    }

    /// Serves an extra cloud (its vault suffix and login host get certificate names and
    /// resolve entries too).
    pub fn cloud(mut self, cloud: Cloud) -> Self {
        if !self
            .clouds
            .iter()
            .any(|known| known.vault_suffix == cloud.vault_suffix)
        {
            self.clouds.push(cloud);
        }
        self
    }

    pub fn tenant(mut self, tenant: Tenant) -> Self {
        self.tenants.push(tenant);
        self
    }

    /// Registers an application; its tenant is created when not added explicitly.
    pub fn app(mut self, app: App) -> Self {
        self.apps.push(app);
        self
    }

    pub fn managed_identity(mut self, identity: ManagedIdentity) -> Self {
        self.identities.push(identity);
        self
    }

    /// Sets the value `X-IDENTITY-HEADER` must carry (`IDENTITY_HEADER`); random by default.
    pub fn identity_header(mut self, value: impl Into<String>) -> Self {
        self.identity_header = Some(value.into());
        self
    }

    pub fn vault(mut self, vault: Vault) -> Self {
        self.vaults.push(vault);
        self
    }

    /// Adds a secret to the vault named `vault_name` (added before or after this call).
    pub fn secret(mut self, vault_name: impl Into<String>, secret: Secret) -> Self {
        self.pending_secrets.push((vault_name.into(), secret));
        self
    }

    /// Sets the delay before every response.
    pub fn latency(mut self, latency: Duration) -> Self {
        self.latency = latency;
        self
    }

    pub fn throttle(mut self, throttle: Throttle) -> Self {
        self.throttle = Some(throttle);
        self
    }

    pub fn fail_next(mut self, failure: FailNext) -> Self {
        self.fail_next.push(failure);
        self
    }

    /// Adds a name (DNS name, wildcard or IP address) to the server certificate.
    pub fn extra_san(mut self, name: impl Into<String>) -> Self {
        self.extra_sans.push(name.into());
        self
    }

    pub fn unknown_vault(mut self, behavior: UnknownVault) -> Self {
        self.unknown_vault = behavior;
        self
    }

    /// Sets the port on 127.0.0.1; 0 (the default) picks a free one.
    pub fn port(mut self, port: u16) -> Self {
        self.port = port;
        self
    }

    /// Offers HTTP/2 through ALPN (the default) or HTTP/1.1 only.
    pub fn http2(mut self, enabled: bool) -> Self {
        self.http2 = enabled;
        self
    }

    /// Writes the CA certificate into `directory` instead of a temporary directory that
    /// is removed when the emulator stops.
    pub fn ca_dir(mut self, directory: impl Into<PathBuf>) -> Self {
        self.ca_dir = Some(directory.into());
        self
    }

    /// Starts the emulator, panicking with the reason when it cannot start.
    pub fn start(self) -> Emulator {
        match self.try_start() {
            Ok(emulator) => emulator,
            Err(error) => panic!("the Key Vault emulator did not start: {error}"),
        }
    }

    pub fn try_start(mut self) -> Result<Emulator, StartError> {
        for (vault_name, secret) in std::mem::take(&mut self.pending_secrets) {
            let lowered = vault_name.to_ascii_lowercase();
            let vault = self
                .vaults
                .iter_mut()
                .find(|vault| vault.name == lowered)
                .ok_or(StartError::UnknownVault(vault_name))?;
            vault.secrets.push(secret);
        }
        let vault_clouds: Vec<Cloud> = self
            .vaults
            .iter()
            .map(|vault| vault.cloud.clone())
            .collect();
        for cloud in vault_clouds {
            self = self.cloud(cloud);
        }
        for app in &self.apps {
            if !self.tenants.iter().any(|tenant| tenant.id == app.tenant_id) {
                self.tenants.push(Tenant::new(app.tenant_id.clone()));
            }
        }

        let mut names: Vec<String> = Vec::new();
        for cloud in &self.clouds {
            names.push(format!("*.{}", cloud.vault_suffix));
            names.push(cloud.login_host.clone());
        }
        names.extend(["localhost".to_string(), "127.0.0.1".to_string()]);
        names.extend(self.extra_sans.iter().cloned());
        let certificates = tls::generate(&names).map_err(StartError::Certificate)?;
        let alpn = if self.http2 {
            vec![b"h2".to_vec(), b"http/1.1".to_vec()]
        } else {
            vec![b"http/1.1".to_vec()]
        };
        let server_config = tls::server_config(&certificates, alpn).map_err(StartError::Tls)?;

        let (ca_path, ca_dir) = write_ca(self.ca_dir.as_deref(), &certificates.ca_pem)?;

        let listener =
            std::net::TcpListener::bind((Ipv4Addr::LOCALHOST, self.port)).map_err(|source| {
                StartError::Bind {
                    port: self.port,
                    source,
                }
            })?;
        listener
            .set_nonblocking(true)
            .map_err(|source| StartError::Bind {
                port: self.port,
                source,
            })?;
        let address = listener.local_addr().map_err(|source| StartError::Bind {
            port: self.port,
            source,
        })?;

        let identity_header = self.identity_header.unwrap_or_else(|| util::random_hex(16));
        let shared = Arc::new(Shared::new(
            self.clouds,
            self.tenants,
            self.apps,
            self.identities,
            identity_header,
            self.unknown_vault,
            self.vaults,
        ));
        shared.faults.set_latency(self.latency);
        shared.faults.set_throttle(self.throttle);
        for failure in self.fail_next {
            shared.faults.fail_next(failure);
        }

        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("kv-emulator")
            .enable_all()
            .build()
            .map_err(StartError::Runtime)?;
        let listener = {
            let _context = runtime.enter();
            tokio::net::TcpListener::from_std(listener).map_err(StartError::Runtime)?
        };
        let (shutdown, stopped) = tokio::sync::oneshot::channel::<()>();
        let acceptor = tokio_rustls::TlsAcceptor::from(server_config);
        let serving = shared.clone();
        let thread = std::thread::Builder::new()
            .name("kv-emulator".into())
            .spawn(move || {
                runtime.block_on(async move {
                    tokio::spawn(server::serve(listener, serving, acceptor));
                    // Either an explicit shutdown or the sender being dropped ends the wait.
                    let _ = stopped.await;
                });
                // Requests held open by faults are dropped here.
                runtime.shutdown_timeout(Duration::from_secs(1));
            })
            .map_err(StartError::Runtime)?;

        tracing::info!(%address, ca = %ca_path.display(), "Key Vault emulator started");
        Ok(Emulator {
            address,
            ca_path,
            ca_pem: certificates.ca_pem,
            _ca_dir: ca_dir,
            shared,
            shutdown: Some(shutdown),
            thread: Some(thread),
        })
    }
}

fn write_ca(
    directory: Option<&Path>,
    pem: &str,
) -> Result<(PathBuf, Option<tempfile::TempDir>), StartError> {
    let (directory_path, temporary) = match directory {
        Some(directory) => (directory.to_path_buf(), None),
        None => {
            let temporary = tempfile::Builder::new()
                .prefix("kv-emulator-")
                .tempdir()
                .map_err(|source| StartError::WriteCa {
                    path: std::env::temp_dir(),
                    source,
                })?;
            (temporary.path().to_path_buf(), Some(temporary))
        }
    };
    let path = directory_path.join("kv-emulator-ca.pem");
    std::fs::write(&path, pem).map_err(|source| StartError::WriteCa {
        path: path.clone(),
        source,
    })?;
    Ok((path, temporary))
}

/// A running emulator. Dropping it stops the server and removes its temporary CA file.
pub struct Emulator {
    address: SocketAddr,
    ca_path: PathBuf,
    ca_pem: String,
    _ca_dir: Option<tempfile::TempDir>,
    shared: Arc<Shared>,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Emulator {
    pub fn builder() -> EmulatorBuilder {
        EmulatorBuilder::default()
    }

    pub fn port(&self) -> u16 {
        self.address.port()
    }

    pub fn address(&self) -> SocketAddr {
        self.address
    }

    /// Returns the PEM file of the CA that signed the server certificate, for
    /// `SSL_CERT_FILE`.
    pub fn ca_pem_path(&self) -> &Path {
        &self.ca_path
    }

    pub fn ca_pem(&self) -> &str {
        &self.ca_pem
    }

    /// Returns `HOST=127.0.0.1:PORT` for every vault suffix (as `*.suffix`) and login host, in
    /// that order, for `--resolve` flags.
    pub fn resolve_entries(&self) -> Vec<String> {
        let target = format!("127.0.0.1:{}", self.port());
        let vaults = self
            .shared
            .clouds
            .iter()
            .map(|cloud| format!("*.{}={target}", cloud.vault_suffix));
        let logins = self
            .shared
            .clouds
            .iter()
            .map(|cloud| format!("{}={target}", cloud.login_host));
        vaults.chain(logins).collect()
    }

    /// Returns [`resolve_entries`](Self::resolve_entries) joined by commas: the value of
    /// `KVEXEC_RESOLVE`.
    pub fn resolve_args(&self) -> String {
        self.resolve_entries().join(",")
    }

    /// Returns `https://{host}` of every configured vault, sorted.
    pub fn vault_urls(&self) -> Vec<String> {
        self.shared
            .vault_hosts()
            .into_iter()
            .map(|host| format!("https://{host}"))
            .collect()
    }

    /// Returns `IDENTITY_ENDPOINT` for the App Service protocol, over plain HTTP as on App
    /// Service.
    pub fn identity_endpoint(&self) -> String {
        format!("http://127.0.0.1:{}/msi/token", self.port())
    }

    /// Returns `IDENTITY_HEADER`: the value `X-IDENTITY-HEADER` must carry.
    pub fn identity_header(&self) -> &str {
        &self.shared.identity_header
    }

    /// Returns the base URL of the IMDS-shaped endpoint (plain HTTP, like the real instance metadata
    /// service); the token path is `/metadata/identity/oauth2/token`.
    pub fn imds_endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port())
    }

    /// Issues an access token for `resource` (e.g. `https://vault.azure.net`) to `client_id`
    /// in `tenant_id`, as Entra ID would have. Stubs of tools that hold their own tokens,
    /// such as `az account get-access-token`, print it.
    pub fn issue_token(&self, tenant_id: &str, client_id: &str, resource: &str) -> String {
        let principal = state::Principal {
            client_id: client_id.to_ascii_lowercase(),
            object_id: util::new_guid(),
        };
        self.shared
            .issue_token(&tenant_id.to_ascii_lowercase(), principal, resource)
    }

    pub fn stats(&self) -> Stats {
        self.shared.stats.snapshot()
    }

    /// Clears every counter; issued tokens stay valid.
    pub fn reset_stats(&self) {
        self.shared.stats.reset();
    }

    pub fn set_latency(&self, latency: Duration) {
        self.shared.faults.set_latency(latency);
    }

    pub fn set_throttle(&self, throttle: Option<Throttle>) {
        self.shared.faults.set_throttle(throttle);
    }

    pub fn fail_next(&self, failure: FailNext) {
        self.shared.faults.fail_next(failure);
    }

    /// Adds or replaces a secret in the vault at `vault_host` (e.g.
    /// `my-vault.vault.azure.net`); false when there is no such vault.
    pub fn put_secret(&self, vault_host: &str, secret: Secret) -> bool {
        self.shared.put_secret(vault_host, secret)
    }

    /// Stops the server and waits for its thread.
    pub fn stop(mut self) {
        self.stop_inner();
    }

    fn stop_inner(&mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
        if let Some(thread) = self.thread.take() {
            if thread.join().is_err() {
                tracing::error!("the emulator thread panicked");
            }
        }
    }
}

impl Drop for Emulator {
    fn drop(&mut self) {
        self.stop_inner();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Tests share an emulator across threads, e.g. behind an `Arc` or in a `static`.
    #[test]
    fn emulator_is_send_and_sync() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<Emulator>();
        assert_send_sync::<Stats>();
    }

    #[test]
    fn secret_for_unknown_vault_fails_start() {
        let result = Emulator::builder()
            .secret("no-such-vault", Secret::new("name", "value"))
            .try_start();
        match result {
            Err(StartError::UnknownVault(name)) => assert_eq!(name, "no-such-vault"),
            Err(other) => panic!("unexpected error: {other}"),
            Ok(_) => panic!("the emulator started without the vault"),
        }
    }
}
