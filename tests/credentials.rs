//! Each credential resolves a reference end to end: the real kvexec binary against the
//! emulator over TLS on 127.0.0.1 (Entra ID, Key Vault, and the managed identity
//! endpoints), with a stub `az` on PATH for the Azure CLI. Auto's choice is read from the
//! `--check` report. Nothing here contacts the VM metadata address: IMDS is always the
//! emulator, through AZURE_POD_IDENTITY_AUTHORITY_HOST.

mod common;

use common::{demo, secret_url, write_file, Emulator, Kvexec, Outcome, KVEXEC_FAILURE};
use kvexec_emulator::{App, ManagedIdentity};
use rsa::pkcs8::{EncodePrivateKey, LineEnding};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// Application registered with the test certificate.
const CERTIFICATE_APP: &str = "3c1f9a52-7e4b-4d08-b6a1-52e9d0c7f3a4";
/// Application that trusts the federated token in `FEDERATED_TOKEN`.
const WORKLOAD_APP: &str = "8e2d6b17-0a9c-4f3e-a5d4-1b7c9e2f6a80";
/// Application whose only federated token has expired.
const EXPIRED_WORKLOAD_APP: &str = "4a7e0c93-5d2f-4b61-8c3a-9f1e6d2b7c05";
const USER_ASSIGNED_IDENTITY: &str = "d5b8e2a1-3f6c-4e97-b0d4-7a2c9e5f1b36";
/// The Azure CLI's own application id, which a signed-in user's tokens are issued to.
const AZURE_CLI_APP: &str = "04b07795-8ddb-461a-bbee-02f9e1bf7b46";

/// A federated token as an AKS projected service account token file contains it: three
/// base64url parts. Only its exact text matters to the emulator.
const FEDERATED_TOKEN: &str = "eyJhbGciOiJSUzI1NiIsImtpZCI6Imt2ZXhlYy10ZXN0In0.eyJpc3MiOiJodHRwczovL29pZGMuZXhhbXBsZS90ZXN0Iiwic3ViIjoic3lzdGVtOnNlcnZpY2VhY2NvdW50OmRlZmF1bHQ6am9iIiwiYXVkIjoiYXBpOi8vQXp1cmVBRFRva2VuRXhjaGFuZ2UifQ.c2lnbmF0dXJl";
/// A token from an issuer no application trusts.
const UNTRUSTED_FEDERATED_TOKEN: &str = "eyJhbGciOiJSUzI1NiJ9.eyJpc3MiOiJodHRwczovL29pZGMuZXhhbXBsZS9wcmV2aW91cyIsInN1YiI6InN5c3RlbTpzZXJ2aWNlYWNjb3VudDpkZWZhdWx0OmpvYiIsImF1ZCI6ImFwaTovL0F6dXJlQURUb2tlbkV4Y2hhbmdlIn0.c2lnbmF0dXJl";
const EXPIRED_FEDERATED_TOKEN: &str = "eyJhbGciOiJSUzI1NiJ9.eyJleHAiOjE3MDAwMDAwMDB9.ZXhwaXJlZA";

const PFX_PASSWORD: &str = "pfx-pass-8812";

const VAULT_RESOURCE: &str = "https://vault.azure.net";

/// Returns the test RSA key, generated once per test binary because generating takes up
/// to a second.
fn rsa_key() -> &'static rsa::RsaPrivateKey {
    static KEY: OnceLock<rsa::RsaPrivateKey> = OnceLock::new();
    KEY.get_or_init(|| rsa::RsaPrivateKey::new(&mut rsa::rand_core::OsRng, 2048).expect("RSA key generation failed"))
}

fn pkcs8_der() -> Vec<u8> {
    rsa_key().to_pkcs8_der().unwrap().as_bytes().to_vec()
}

/// Issues a self-signed certificate for the test key. rcgen derives everything else from
/// the key, so certificates with different names differ only in name and thumbprint.
fn new_certificate(name: &str) -> rcgen::Certificate {
    let key = rcgen::KeyPair::try_from(pkcs8_der().as_slice()).unwrap();
    rcgen::CertificateParams::new(vec![name.to_string()])
        .unwrap()
        .self_signed(&key)
        .unwrap()
}

/// Returns the certificate registered on `CERTIFICATE_APP`.
fn registered_certificate() -> &'static rcgen::Certificate {
    static CERTIFICATE: OnceLock<rcgen::Certificate> = OnceLock::new();
    CERTIFICATE.get_or_init(|| new_certificate("registered.kvexec.test"))
}

fn pem_file(directory: &Path, certificate: &rcgen::Certificate) -> PathBuf {
    let key_pem = rsa_key().to_pkcs8_pem(LineEnding::LF).unwrap();
    write_file(directory, "app.pem", format!("{}{}", certificate.pem(), key_pem.as_str()))
}

fn pkcs12_file(directory: &Path, certificate: &rcgen::Certificate, password: &str) -> PathBuf {
    let chain = [p12_keystore::Certificate::from_der(certificate.der()).unwrap()];
    let key = p12_keystore::PrivateKey::from_der(&pkcs8_der()).unwrap();
    let entry = p12_keystore::PrivateKeyChain::new(vec![7u8; 20], key, chain);
    let mut store = p12_keystore::KeyStore::new();
    store.add_entry("kvexec", p12_keystore::KeyStoreEntry::PrivateKeyChain(entry));
    write_file(directory, "app.pfx", store.writer(password).write().unwrap())
}

/// Starts the demo emulator plus one application or identity for each credential.
fn emulator() -> Emulator {
    Emulator::builder()
        .demo()
        .app(App::new(demo::TENANT_ID, CERTIFICATE_APP).certificate(registered_certificate().der().to_vec()))
        .app(App::new(demo::TENANT_ID, WORKLOAD_APP).federated_token(FEDERATED_TOKEN))
        .app(App::new(demo::TENANT_ID, EXPIRED_WORKLOAD_APP).expired_federated_token(EXPIRED_FEDERATED_TOKEN))
        .managed_identity(ManagedIdentity::system_assigned(demo::TENANT_ID))
        .managed_identity(ManagedIdentity::user_assigned(demo::TENANT_ID, USER_ASSIGNED_IDENTITY))
        .start()
}

/// kvexec that reaches the emulator but has no credential settings at all.
fn without_credentials(emulator: &Emulator) -> Kvexec {
    Kvexec::new(emulator)
        .env_remove("AZURE_TENANT_ID")
        .env_remove("AZURE_CLIENT_ID")
        .env_remove("AZURE_CLIENT_SECRET")
}

fn as_application(emulator: &Emulator, client_id: &str) -> Kvexec {
    without_credentials(emulator)
        .env("AZURE_TENANT_ID", demo::TENANT_ID)
        .env("AZURE_CLIENT_ID", client_id)
}

fn as_app_service(emulator: &Emulator) -> Kvexec {
    without_credentials(emulator)
        .env("IDENTITY_ENDPOINT", emulator.identity_endpoint())
        .env("IDENTITY_HEADER", emulator.identity_header())
}

fn password_reference() -> String {
    secret_url(demo::PASSWORD_SECRET)
}

/// Runs `--check` on one reference and returns the report's `credential:` line.
fn checked_credential(run: Kvexec) -> String {
    let outcome = run.env("DB_PASSWORD", password_reference()).arg("--check").run();
    outcome.assert_success();
    let stdout = outcome.stdout_text();
    stdout
        .lines()
        .find_map(|line| line.strip_prefix("credential: "))
        .unwrap_or_else(|| panic!("no credential line in the report:\n{stdout}"))
        .to_string()
}

/// Resolves the demo password into DB_PASSWORD and checks the child received it.
#[track_caller]
fn assert_resolves(run: Kvexec) -> Outcome {
    let outcome = run.env("DB_PASSWORD", password_reference()).report_env().run();
    outcome.assert_success().assert_var("DB_PASSWORD", demo::PASSWORD_VALUE);
    outcome
}

#[track_caller]
fn assert_fails_with(run: Kvexec, expected: &[&str]) -> Outcome {
    let outcome = run.env("DB_PASSWORD", password_reference()).report_env().run();
    outcome.assert_code(KVEXEC_FAILURE);
    let stderr = outcome.stderr_text();
    for text in expected {
        assert!(stderr.contains(text), "stderr lacks {text:?}:\n{stderr}");
    }
    outcome
}

/// Asserts that no token the emulator issued appears in the run's output.
#[track_caller]
fn assert_no_token_printed(emulator: &Emulator, outcome: &Outcome) {
    for token in emulator.stats().issued_tokens {
        outcome.assert_output_lacks(&token);
    }
}

/// A stub `az` in a directory of its own: it appends its arguments to `az-arguments.log`
/// and prints `stdout` and `stderr`, exiting with `status`.
struct AzureCliStub {
    directory: tempfile::TempDir,
}

impl AzureCliStub {
    fn new(stdout: &str, stderr: &str, status: i32) -> AzureCliStub {
        let directory = tempfile::tempdir().unwrap();
        let log = directory.path().join("az-arguments.log");
        let script = format!(
            "#!/bin/sh\nprintf '%s\\n' \"$*\" >> '{}'\ncat <<'STDOUT'\n{stdout}\nSTDOUT\ncat >&2 <<'STDERR'\n{stderr}\nSTDERR\nexit {status}\n",
            log.display()
        );
        let path = write_file(directory.path(), "az", script);
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        AzureCliStub { directory }
    }

    /// Prints what `az account get-access-token -o json` prints for a signed-in user
    /// (Azure CLI 2.54 and later), with a token the emulator issued.
    fn signed_in(emulator: &Emulator) -> AzureCliStub {
        let token = emulator.issue_token(demo::TENANT_ID, AZURE_CLI_APP, VAULT_RESOURCE);
        let expires_on = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs()
            + 3600;
        let stdout = format!(
            "{{\n  \"accessToken\": \"{token}\",\n  \"expiresOn\": \"2030-01-01 00:00:00.000000\",\n  \"expires_on\": {expires_on},\n  \"subscription\": \"6b0e1f3a-2c4d-4e5f-8a9b-0c1d2e3f4a5b\",\n  \"tenant\": \"{}\",\n  \"tokenType\": \"Bearer\"\n}}",
            demo::TENANT_ID
        );
        AzureCliStub::new(&stdout, "", 0)
    }

    /// Fails as `az` does when no account is logged in.
    fn logged_out() -> AzureCliStub {
        AzureCliStub::new("", "ERROR: Please run 'az login' to setup account.", 1)
    }

    fn path(&self) -> String {
        format!("{}:/usr/bin:/bin", self.directory.path().display())
    }

    fn arguments(&self) -> Vec<String> {
        std::fs::read_to_string(self.directory.path().join("az-arguments.log"))
            .unwrap_or_default()
            .lines()
            .map(str::to_string)
            .collect()
    }
}

#[test]
fn client_secret_chosen_explicitly() {
    let emulator = emulator();
    let credential = checked_credential(Kvexec::new(&emulator).args(["--credential", "client-secret"]));
    assert_eq!(
        credential,
        format!(
            "client-secret: client secret of application {} in tenant {} (selected by --credential)",
            demo::CLIENT_ID,
            demo::TENANT_ID
        )
    );
}

#[test]
fn certificate_pem_resolves_reference() {
    let emulator = emulator();
    let directory = tempfile::tempdir().unwrap();
    let path = pem_file(directory.path(), registered_certificate());
    for send_chain in ["0", "true"] {
        emulator.reset_stats();
        let run = as_application(&emulator, CERTIFICATE_APP)
            .env("AZURE_CLIENT_CERTIFICATE_PATH", &path)
            .env("AZURE_CLIENT_SEND_CERTIFICATE_CHAIN", send_chain);
        let outcome = assert_resolves(run);
        assert_no_token_printed(&emulator, &outcome);
        assert_eq!(emulator.stats().token_requests_for(demo::TENANT_ID, VAULT_RESOURCE), 1);
    }
}

#[test]
fn certificate_check_names_thumbprint() {
    let emulator = emulator();
    let directory = tempfile::tempdir().unwrap();
    let path = pem_file(directory.path(), registered_certificate());
    let thumbprint: String = ring::digest::digest(&ring::digest::SHA1_FOR_LEGACY_USE_ONLY, registered_certificate().der())
        .as_ref()
        .iter()
        .map(|byte| format!("{byte:02X}"))
        .collect();
    let credential = checked_credential(as_application(&emulator, CERTIFICATE_APP).env("AZURE_CLIENT_CERTIFICATE_PATH", &path));
    assert_eq!(
        credential,
        format!(
            "client-certificate: certificate {thumbprint} of application {CERTIFICATE_APP} in tenant {} (auto: AZURE_CLIENT_CERTIFICATE_PATH is set)",
            demo::TENANT_ID
        )
    );
}

#[test]
fn certificate_pkcs12_password_stays_out_of_child() {
    let emulator = emulator();
    let directory = tempfile::tempdir().unwrap();
    let path = pkcs12_file(directory.path(), registered_certificate(), PFX_PASSWORD);
    let run = || {
        as_application(&emulator, CERTIFICATE_APP)
            .env("AZURE_CLIENT_CERTIFICATE_PATH", &path)
            .env("AZURE_CLIENT_CERTIFICATE_PASSWORD", PFX_PASSWORD)
    };

    let outcome = assert_resolves(run());
    outcome.assert_no_var("AZURE_CLIENT_CERTIFICATE_PASSWORD");
    outcome.assert_var("AZURE_CLIENT_CERTIFICATE_PATH", path.as_os_str().as_encoded_bytes());

    let with_kept_credentials = assert_resolves(run().arg("--keep-credentials"));
    with_kept_credentials.assert_var("AZURE_CLIENT_CERTIFICATE_PASSWORD", PFX_PASSWORD);
}

#[test]
fn certificate_wrong_password_is_reported() {
    let emulator = emulator();
    let directory = tempfile::tempdir().unwrap();
    let path = pkcs12_file(directory.path(), registered_certificate(), PFX_PASSWORD);
    let run = as_application(&emulator, CERTIFICATE_APP)
        .env("AZURE_CLIENT_CERTIFICATE_PATH", &path)
        .env("AZURE_CLIENT_CERTIFICATE_PASSWORD", "not-the-password-5521");
    let outcome = assert_fails_with(run, &["the client-certificate credential failed", "check AZURE_CLIENT_CERTIFICATE_PASSWORD"]);
    outcome.assert_output_lacks("not-the-password-5521");
    assert_eq!(emulator.stats().total_token_requests(), 0, "nothing is sent with an unusable certificate");
}

#[test]
fn unregistered_certificate_is_rejected() {
    let emulator = emulator();
    let directory = tempfile::tempdir().unwrap();
    let unregistered = new_certificate("unregistered.kvexec.test");
    assert_ne!(unregistered.der(), registered_certificate().der());
    let path = pem_file(directory.path(), &unregistered);
    let run = as_application(&emulator, CERTIFICATE_APP).env("AZURE_CLIENT_CERTIFICATE_PATH", &path);
    assert_fails_with(run, &["AADSTS700027", "compare its thumbprint"]);
}

#[test]
fn workload_identity_resolves_reference() {
    let emulator = emulator();
    let directory = tempfile::tempdir().unwrap();
    let token_file = write_file(directory.path(), "azure-identity-token", FEDERATED_TOKEN);
    let run = || {
        as_application(&emulator, WORKLOAD_APP)
            .env("AZURE_FEDERATED_TOKEN_FILE", &token_file)
            .env("AZURE_AUTHORITY_HOST", "https://login.microsoftonline.com/")
    };

    let outcome = assert_resolves(run());
    outcome.assert_var("AZURE_FEDERATED_TOKEN_FILE", token_file.as_os_str().as_encoded_bytes());
    assert_no_token_printed(&emulator, &outcome);

    let credential = checked_credential(run());
    assert_eq!(
        credential,
        format!(
            "workload-identity: federated token {} of application {WORKLOAD_APP} in tenant {} (auto: AZURE_FEDERATED_TOKEN_FILE is set)",
            token_file.display(),
            demo::TENANT_ID
        )
    );
}

#[test]
fn workload_identity_uses_current_file() {
    let emulator = emulator();
    let directory = tempfile::tempdir().unwrap();
    let token_file = write_file(directory.path(), "azure-identity-token", UNTRUSTED_FEDERATED_TOKEN);
    let run = || as_application(&emulator, WORKLOAD_APP).env("AZURE_FEDERATED_TOKEN_FILE", &token_file);
    assert_fails_with(run(), &["AADSTS70021"]);

    // The kubelet replaces the file's content; the next run reads the new token.
    std::fs::write(&token_file, FEDERATED_TOKEN).unwrap();
    assert_resolves(run());
}

#[test]
fn workload_identity_expired_token_is_explained() {
    let emulator = emulator();
    let directory = tempfile::tempdir().unwrap();
    let token_file = write_file(directory.path(), "azure-identity-token", EXPIRED_FEDERATED_TOKEN);
    let run = as_application(&emulator, EXPIRED_WORKLOAD_APP).env("AZURE_FEDERATED_TOKEN_FILE", &token_file);
    assert_fails_with(run, &["AADSTS700024", "refresh AZURE_FEDERATED_TOKEN_FILE"]);
}

#[test]
fn workload_identity_missing_file_lists_alternatives() {
    let emulator = emulator();
    let run = as_application(&emulator, WORKLOAD_APP).env("AZURE_FEDERATED_TOKEN_FILE", "/nonexistent/azure-identity-token");
    assert_fails_with(
        run,
        &[
            "cannot read the federated token file /nonexistent/azure-identity-token",
            "auto chose workload-identity because AZURE_FEDERATED_TOKEN_FILE is set",
            "client-secret (neither AZURE_CLIENT_SECRET nor --client-secret-file is set)",
            "--credential NAME",
        ],
    );
    assert_eq!(emulator.stats().total_token_requests(), 0);
}

#[test]
fn app_service_identity_resolves_reference() {
    let emulator = emulator();
    let outcome = assert_resolves(as_app_service(&emulator));
    outcome.assert_var("IDENTITY_HEADER", emulator.identity_header());
    assert_no_token_printed(&emulator, &outcome);
    assert_eq!(emulator.stats().token_requests_for(demo::TENANT_ID, VAULT_RESOURCE), 1);

    let credential = checked_credential(as_app_service(&emulator));
    assert_eq!(
        credential,
        format!(
            "managed-identity: system-assigned managed identity from {} (auto: IDENTITY_ENDPOINT is set)",
            emulator.identity_endpoint()
        )
    );
}

#[test]
fn app_service_user_assigned_identity() {
    let emulator = emulator();
    assert_resolves(as_app_service(&emulator).env("AZURE_CLIENT_ID", USER_ASSIGNED_IDENTITY));

    let unknown = as_app_service(&emulator).env("AZURE_CLIENT_ID", "0f0f0f0f-0000-4000-8000-000000000000");
    assert_fails_with(unknown, &["HTTP 400", "AZURE_CLIENT_ID"]);
}

#[test]
fn app_service_wrong_header_is_rejected() {
    let emulator = emulator();
    let run = as_app_service(&emulator).env("IDENTITY_HEADER", "not-the-header");
    assert_fails_with(run, &["HTTP 401", "IDENTITY_HEADER"]);
}

#[test]
fn app_service_without_header_is_explained() {
    let emulator = emulator();
    let run = as_app_service(&emulator).env_remove("IDENTITY_HEADER");
    assert_fails_with(run, &["IDENTITY_ENDPOINT is set but IDENTITY_HEADER is not"]);
    assert_eq!(emulator.stats().total_requests(), 0);
}

#[test]
fn imds_resolves_when_chosen() {
    let emulator = emulator();
    let run = || {
        without_credentials(&emulator)
            .env("AZURE_POD_IDENTITY_AUTHORITY_HOST", emulator.imds_endpoint())
            .args(["--credential", "managed-identity"])
    };
    let outcome = assert_resolves(run());
    assert_no_token_printed(&emulator, &outcome);

    assert_resolves(run().args(["--client-id", USER_ASSIGNED_IDENTITY]));

    let credential = checked_credential(run().args(["--client-id", USER_ASSIGNED_IDENTITY]));
    assert_eq!(
        credential,
        format!(
            "managed-identity: user-assigned managed identity {USER_ASSIGNED_IDENTITY} from {}/metadata/identity/oauth2/token (selected by --credential)",
            emulator.imds_endpoint()
        )
    );
}

#[test]
fn auto_never_uses_imds() {
    let emulator = emulator();
    let run = without_credentials(&emulator).env("AZURE_POD_IDENTITY_AUTHORITY_HOST", emulator.imds_endpoint());
    assert_fails_with(
        run,
        &[
            "az (the Azure CLI) was not found on PATH",
            "auto chose azure-cli because no other credential is configured",
            "auto never uses the VM metadata endpoint",
        ],
    );
    assert_eq!(emulator.stats().total_token_requests(), 0, "auto must not ask IMDS");
}

#[test]
fn azure_cli_resolves_reference() {
    let emulator = emulator();
    let az = AzureCliStub::signed_in(&emulator);
    let outcome = assert_resolves(without_credentials(&emulator).env("PATH", az.path()));
    assert_no_token_printed(&emulator, &outcome);
    assert_eq!(az.arguments(), ["account get-access-token -o json --scope https://vault.azure.net/.default"]);

    let credential = checked_credential(without_credentials(&emulator).env("PATH", az.path()));
    assert_eq!(
        credential,
        "azure-cli: account signed in to the Azure CLI (auto: no other credential is configured)"
    );
}

#[test]
fn azure_cli_honors_tenant_id() {
    let emulator = emulator();
    let az = AzureCliStub::signed_in(&emulator);
    let run = without_credentials(&emulator)
        .env("PATH", az.path())
        .args(["--credential", "azure-cli", "--tenant-id", demo::TENANT_ID]);
    assert_resolves(run);
    assert_eq!(
        az.arguments(),
        [format!(
            "account get-access-token -o json --scope https://vault.azure.net/.default --tenant {}",
            demo::TENANT_ID
        )]
    );
}

#[test]
fn azure_cli_logged_out_suggests_login() {
    let emulator = emulator();
    let az = AzureCliStub::logged_out();
    let run = without_credentials(&emulator).env("PATH", az.path());
    let outcome = assert_fails_with(
        run,
        &[
            "the azure-cli credential failed: the Azure CLI is not logged in: ERROR: Please run 'az login' to setup account.",
            "run 'az login'",
            "auto chose azure-cli because no other credential is configured",
        ],
    );
    let explanations = outcome.stderr_text().matches("the azure-cli credential failed:").count();
    assert_eq!(explanations, 1, "the credential failure is explained once:\n{}", outcome.stderr_text());
}

#[test]
fn azure_cli_stopped_at_deadline() {
    let emulator = emulator();
    let directory = tempfile::tempdir().unwrap();
    let pid_file = directory.path().join("az.pid");
    // The stub runs as a grandchild of kvexec (the credential starts it through /bin/sh)
    // and hangs, as az does while it waits on a network that does not answer.
    let script = format!("#!/bin/sh\necho $$ > '{}'\nexec sleep 20\n", pid_file.display());
    let az = write_file(directory.path(), "az", script);
    std::fs::set_permissions(&az, std::fs::Permissions::from_mode(0o755)).unwrap();

    let run = without_credentials(&emulator)
        .env("PATH", format!("{}:/usr/bin:/bin", directory.path().display()))
        .args(["--timeout", "2"]);
    let outcome = assert_fails_with(run, &["timed out after 2s waiting for a token"]);
    assert!(outcome.elapsed < std::time::Duration::from_secs(15), "took {:?}", outcome.elapsed);

    let pid = std::fs::read_to_string(&pid_file).expect("the stub az ran").trim().to_string();
    let proc_entry = PathBuf::from(format!("/proc/{pid}"));
    let started = std::time::Instant::now();
    while is_running(&proc_entry) && started.elapsed() < std::time::Duration::from_secs(10) {
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert!(!is_running(&proc_entry), "az (pid {pid}) still runs after kvexec gave up");
}

/// Whether the process at `/proc/PID` exists and is not a zombie waiting to be reaped.
fn is_running(proc_entry: &Path) -> bool {
    match std::fs::read_to_string(proc_entry.join("stat")) {
        Ok(stat) => !stat.rsplit(')').next().unwrap_or("").trim_start().starts_with('Z'),
        Err(_) => false,
    }
}

#[test]
fn auto_picks_in_documented_order() {
    let emulator = emulator();
    let directory = tempfile::tempdir().unwrap();
    let certificate = pem_file(directory.path(), registered_certificate());
    let token_file = write_file(directory.path(), "azure-identity-token", FEDERATED_TOKEN);
    let az = AzureCliStub::signed_in(&emulator);

    let everything = |client_id: &str| {
        as_app_service(&emulator)
            .env("PATH", az.path())
            .env("AZURE_TENANT_ID", demo::TENANT_ID)
            .env("AZURE_CLIENT_ID", client_id)
            .env("AZURE_CLIENT_SECRET", demo::CLIENT_SECRET)
            .env("AZURE_CLIENT_CERTIFICATE_PATH", &certificate)
            .env("AZURE_FEDERATED_TOKEN_FILE", &token_file)
    };
    let cases: Vec<(&str, Kvexec)> = vec![
        ("client-secret: ", everything(demo::CLIENT_ID)),
        ("client-certificate: ", everything(CERTIFICATE_APP).env_remove("AZURE_CLIENT_SECRET")),
        (
            "workload-identity: ",
            everything(WORKLOAD_APP)
                .env_remove("AZURE_CLIENT_SECRET")
                .env_remove("AZURE_CLIENT_CERTIFICATE_PATH"),
        ),
        (
            "managed-identity: ",
            everything(USER_ASSIGNED_IDENTITY)
                .env_remove("AZURE_CLIENT_SECRET")
                .env_remove("AZURE_CLIENT_CERTIFICATE_PATH")
                .env_remove("AZURE_FEDERATED_TOKEN_FILE"),
        ),
        (
            "azure-cli: ",
            everything(demo::CLIENT_ID)
                .env_remove("AZURE_CLIENT_SECRET")
                .env_remove("AZURE_CLIENT_CERTIFICATE_PATH")
                .env_remove("AZURE_FEDERATED_TOKEN_FILE")
                .env_remove("IDENTITY_ENDPOINT")
                .env_remove("IDENTITY_HEADER"),
        ),
    ];
    for (expected, run) in cases {
        let credential = checked_credential(run);
        assert!(credential.starts_with(expected), "expected {expected:?}, got {credential:?}");
        assert!(credential.contains("(auto: "), "{credential}");
    }
}

#[test]
fn credential_variable_overrides_auto() {
    let emulator = emulator();
    let az = AzureCliStub::signed_in(&emulator);
    let run = Kvexec::new(&emulator).env("PATH", az.path()).env("KVEXEC_CREDENTIAL", "azure-cli");
    let credential = checked_credential(run);
    assert_eq!(
        credential,
        format!(
            "azure-cli: account signed in to the Azure CLI, tenant {} (selected by KVEXEC_CREDENTIAL)",
            demo::TENANT_ID
        )
    );
}

#[test]
fn unknown_credential_name_is_rejected() {
    let emulator = emulator();
    let outcome = Kvexec::new(&emulator).args(["--credential", "environment"]).arg("true").run();
    outcome.assert_code(KVEXEC_FAILURE);
    let stderr = outcome.stderr_text();
    assert!(stderr.contains("unknown credential 'environment'"), "{stderr}");
    assert!(stderr.contains("workload-identity"), "{stderr}");
}
