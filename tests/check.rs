//! `kvexec --check` against the emulator over TLS on 127.0.0.1: each diagnostic is driven
//! through the fake services and checked in the table row, in the JSON fields and in the
//! exit status. Every run also checks that no secret value, client secret or token reaches
//! stdout or stderr.

mod common;

use common::{demo, secret_url, Emulator, Kvexec, Outcome, KVEXEC, KVEXEC_FAILURE};
use kvexec_emulator::{App, FailNext, FailTarget, Fault, PermissionModel, Secret, SecretVersion, Tenant, Throttle, Vault};
use serde_json::Value;
use std::net::UdpSocket;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Exit status of `--check` when a row failed.
const CHECK_FAILED: i32 = 1;

/// Field names of a JSON row, in their documented order.
const JSON_FIELDS: [&str; 9] = [
    "variable",
    "reference",
    "status",
    "version",
    "updated",
    "content_type",
    "reason",
    "hint",
    "credential",
];

/// A tenant other than the demo tenant, owning vaults the demo application cannot use.
const OTHER_TENANT_ID: &str = "9d3e5c1a-7b2f-4e68-a1d4-3c5b7e9f0a12";
/// A second application of the demo tenant whose only client secret has expired.
const EXPIRED_CLIENT_ID: &str = "4a6c8e0f-2d4b-4f6a-8c0e-1b3d5f7a9c2e";
const EXPIRED_CLIENT_SECRET: &str = "kvemu~canary-expired-client-secret";
/// A client secret the demo application does not have.
const WRONG_CLIENT_SECRET: &str = "kvemu~canary-wrong-client-secret";

/// A secret with a fixed version and update time, so rows can be compared exactly.
const API_KEY_SECRET: &str = "api-key";
const API_KEY_VALUE: &str = "canary-api-key-value-7f3a";
const API_KEY_VERSION: &str = "5e0d2c4b6a8f4e1d9c7b5a3f1e0d2c4b";
/// 2026-01-01T00:00:00Z
const API_KEY_UPDATED: i64 = 1_767_225_600;

/// Every text that must never be printed: secret values, client secrets and the prefix
/// of the emulator's access tokens.
const CANARIES: &[&str] = &[
    demo::PASSWORD_VALUE,
    "first line\nkey=value",
    "p@ss/word~1",
    demo::ROTATED_OLD_VALUE,
    demo::ROTATED_NEW_VALUE,
    "no-longer-used",
    demo::CLIENT_SECRET,
    API_KEY_VALUE,
    EXPIRED_CLIENT_SECRET,
    WRONG_CLIENT_SECRET,
    "kvemu_at_",
];

/// Starts the emulator with the demo tenant, application and vault, plus what the
/// diagnostics need. There is a second tenant with its own vault, an RBAC vault and an
/// access-policy vault that grant the demo application nothing, and a vault behind a
/// firewall. An application's only secret has expired. The demo vault gains a secret with
/// a fixed version and one that never responds.
fn emulator() -> Emulator {
    Emulator::builder()
        .demo()
        .tenant(Tenant::new(OTHER_TENANT_ID).display_name("another directory"))
        .app(App::new(demo::TENANT_ID, EXPIRED_CLIENT_ID).expired_client_secret(EXPIRED_CLIENT_SECRET))
        .vault(Vault::new("other-tenant-vault", OTHER_TENANT_ID).secret(Secret::new("db-password", "canary-other-tenant")))
        .vault(Vault::new("rbac-vault", demo::TENANT_ID).no_readers().secret(Secret::new("db-password", "canary-rbac")))
        .vault(
            Vault::new("policy-vault", demo::TENANT_ID)
                .permission_model(PermissionModel::AccessPolicy)
                .no_readers()
                .secret(Secret::new("db-password", "canary-policy")),
        )
        .vault(Vault::new("firewall-vault", demo::TENANT_ID).firewall(true).secret(Secret::new("db-password", "canary-firewall")))
        .secret(
            demo::VAULT_NAME,
            Secret::with_versions(
                API_KEY_SECRET,
                vec![SecretVersion::new(API_KEY_VALUE)
                    .id(API_KEY_VERSION)
                    .created(API_KEY_UPDATED)
                    .content_type("text/plain")],
            ),
        )
        .secret(demo::VAULT_NAME, Secret::new("never-answers", "canary-never-answers").fault(Fault::NoResponse))
        .start()
}

fn vault_secret_url(vault: &str, name: &str) -> String {
    format!("https://{vault}.vault.azure.net/secrets/{name}")
}

/// The table and the JSON output of one configuration.
struct Report {
    table: Outcome,
    json: Outcome,
    rows: Vec<Value>,
}

impl Report {
    /// Runs `kvexec --check` and `kvexec --check --json` at the same time on what `make`
    /// builds. The JSON run logs at trace level, so every diagnostic path is also checked
    /// for leaks with all logging on.
    fn run(make: impl Fn() -> Kvexec + Sync) -> Report {
        let (table, json) = std::thread::scope(|scope| {
            let table = scope.spawn(|| make().arg("--check").run());
            let json = scope.spawn(|| make().env("KVEXEC_LOG", "trace").args(["--check", "--json"]).run());
            (table.join().unwrap(), json.join().unwrap())
        });
        for outcome in [&table, &json] {
            for canary in CANARIES {
                outcome.assert_output_lacks(canary);
            }
        }
        let rows = match serde_json::from_slice::<Value>(&json.stdout) {
            Ok(Value::Array(rows)) => rows,
            other => panic!(
                "--json did not print an array: {other:?}\nstdout:\n{}\nstderr:\n{}",
                json.stdout_text(),
                json.stderr_text()
            ),
        };
        for row in &rows {
            let fields: Vec<&str> = row.as_object().expect("each row is an object").keys().map(String::as_str).collect();
            assert_eq!(fields, JSON_FIELDS, "JSON field names changed");
        }
        Report { table, json, rows }
    }

    /// Asserts the exit status of both runs.
    #[track_caller]
    fn assert_code(&self, expected: i32) -> &Report {
        self.table.assert_code(expected);
        self.json.assert_code(expected);
        self
    }

    /// Returns the JSON row of `variable` (`None`: the connection row) and its table line.
    #[track_caller]
    fn row(&self, variable: Option<&str>) -> (&Value, String) {
        let json = self
            .rows
            .iter()
            .find(|row| row["variable"].as_str() == variable)
            .unwrap_or_else(|| panic!("no JSON row for {variable:?} in\n{}", self.json.stdout_text()));
        let first_cell = variable.unwrap_or("(connection)");
        let table = self.table.stdout_text();
        let line = table
            .lines()
            .find(|line| line.split_whitespace().next() == Some(first_cell))
            .unwrap_or_else(|| panic!("no table line for {first_cell} in\n{table}"))
            .to_string();
        (json, line)
    }

    /// Asserts that `variable` failed, that its reason contains every text in `reason`,
    /// and that its hint contains every text in `hint`, in the JSON and in the table.
    #[track_caller]
    fn assert_error(&self, variable: Option<&str>, reason: &[&str], hint: &[&str]) -> &Report {
        let (json, line) = self.row(variable);
        assert_eq!(json["status"], "error", "{json}");
        assert_eq!(line.split_whitespace().nth(2), Some("error"), "status column of: {line}");
        for field in ["version", "updated", "content_type"] {
            assert!(json[field].is_null(), "{field} is set on a failed row: {json}");
        }
        let json_reason = json["reason"].as_str().unwrap_or_else(|| panic!("no reason: {json}"));
        for part in reason {
            assert!(json_reason.contains(part), "reason lacks {part:?}: {json_reason}");
            assert!(line.contains(part), "table line lacks {part:?}: {line}");
        }
        assert!(!json_reason.contains('\n'), "the reason spans lines: {json}");
        if hint.is_empty() {
            return self;
        }
        let json_hint = json["hint"].as_str().unwrap_or_else(|| panic!("no hint: {json}"));
        for part in hint {
            assert!(json_hint.contains(part), "hint lacks {part:?}: {json_hint}");
            assert!(line.contains(part), "table line lacks {part:?}: {line}");
        }
        assert!(!json_hint.contains('\n'), "the hint spans lines: {json}");
        self
    }

    /// Asserts that `variable` resolved.
    #[track_caller]
    fn assert_ok(&self, variable: Option<&str>) -> &Report {
        let (json, line) = self.row(variable);
        assert_eq!(json["status"], "ok", "{json}");
        assert_eq!(line.split_whitespace().nth(2), Some("ok"), "status column of: {line}");
        assert!(json["hint"].is_null(), "{json}");
        self
    }
}

#[test]
fn healthy_rows_show_version_update_and_type() {
    let emulator = emulator();
    let report = Report::run(|| {
        Kvexec::new(&emulator)
            .env("KVEXEC_DEFAULT_VAULT_URL", demo::vault_url())
            .env("API_KEY", secret_url(API_KEY_SECRET))
            .env("GREETING", "hello, not a reference")
            .env("DB_PASSWORD", "akv://db-password")
            .env("DB_USER", format!("{}#/db/user", secret_url(demo::JSON_SECRET)))
            .env("OLD_TOKEN", format!("{}/{}", secret_url(demo::ROTATED_SECRET), demo::ROTATED_OLD_VERSION))
            .env("APP_CONFIG", format!("@Microsoft.KeyVault(VaultName={};SecretName={})", demo::VAULT_NAME, demo::MULTILINE_SECRET))
    });
    report.assert_code(0);

    let variables: Vec<&str> = report.rows.iter().map(|row| row["variable"].as_str().unwrap()).collect();
    assert_eq!(variables, ["API_KEY", "DB_PASSWORD", "DB_USER", "OLD_TOKEN", "APP_CONFIG"], "rows follow the environment");
    for variable in &variables {
        report.assert_ok(Some(variable));
    }

    let (api_key, line) = report.row(Some("API_KEY"));
    assert_eq!(api_key["reference"], secret_url(API_KEY_SECRET));
    assert_eq!(api_key["version"], API_KEY_VERSION);
    assert_eq!(api_key["updated"], "2026-01-01T00:00:00Z");
    assert_eq!(api_key["content_type"], "text/plain");
    assert!(api_key["reason"].is_null());
    let credential = api_key["credential"].as_str().unwrap();
    assert!(
        credential.starts_with(&format!("client-secret: client secret of application {} in tenant {}", demo::CLIENT_ID, demo::TENANT_ID)),
        "{credential}"
    );
    assert!(
        line.ends_with(&format!("  version {API_KEY_VERSION}, updated 2026-01-01T00:00:00Z, content type text/plain")),
        "{line}"
    );

    let (db_password, _) = report.row(Some("DB_PASSWORD"));
    assert_eq!(db_password["reference"], secret_url(demo::PASSWORD_SECRET), "akv:// is shown in canonical form");
    assert!(db_password["content_type"].is_null());
    let version = db_password["version"].as_str().unwrap();
    assert!(version.len() == 32 && version.bytes().all(|b| b.is_ascii_hexdigit()), "{version}");

    let (db_user, _) = report.row(Some("DB_USER"));
    assert_eq!(db_user["content_type"], "application/json");
    let (old_token, _) = report.row(Some("OLD_TOKEN"));
    assert_eq!(old_token["version"], demo::ROTATED_OLD_VERSION);
    let (app_config, _) = report.row(Some("APP_CONFIG"));
    assert_eq!(app_config["reference"], secret_url(demo::MULTILINE_SECRET));

    let table = report.table.stdout_text();
    let lines: Vec<&str> = table.lines().collect();
    assert!(
        lines[0].starts_with(&format!("credential: client-secret: client secret of application {} in tenant {}", demo::CLIENT_ID, demo::TENANT_ID)),
        "{}",
        lines[0]
    );
    assert!(lines[1].starts_with("VARIABLE  "), "{}", lines[1]);
    assert!(lines[1].contains("  REFERENCE  "), "{}", lines[1]);
    assert!(lines[1].ends_with("  DETAIL"), "{}", lines[1]);
    let status_column = lines[1].find("STATUS").unwrap();
    for line in &lines[2..7] {
        assert_eq!(line.find("  ok ").map(|at| at + 2), Some(status_column), "columns are aligned: {line}");
    }
    assert_eq!(lines[7], "5 ok, 0 failed");
    assert_eq!(lines.len(), 8);
    assert!(report.table.stderr.is_empty(), "stderr: {}", report.table.stderr_text());

    let stats = emulator.stats();
    assert_eq!(stats.total_token_requests(), 2, "one token per run");
}

#[test]
fn invalid_client_secret_7000215() {
    let emulator = emulator();
    Report::run(|| {
        Kvexec::new(&emulator)
            .env("AZURE_CLIENT_SECRET", WRONG_CLIENT_SECRET)
            .env("DB_PASSWORD", secret_url(demo::PASSWORD_SECRET))
    })
    .assert_code(CHECK_FAILED)
    .assert_error(
        Some("DB_PASSWORD"),
        &["Entra ID rejected the token request", "AADSTS7000215", "Invalid client secret"],
        &["AZURE_CLIENT_SECRET is wrong", "secret's ID was copied instead of its Value"],
    );
}

#[test]
fn expired_client_secret_7000222() {
    let emulator = emulator();
    Report::run(|| {
        Kvexec::new(&emulator)
            .env("AZURE_CLIENT_ID", EXPIRED_CLIENT_ID)
            .env("AZURE_CLIENT_SECRET", EXPIRED_CLIENT_SECRET)
            .env("DB_PASSWORD", secret_url(demo::PASSWORD_SECRET))
    })
    .assert_code(CHECK_FAILED)
    .assert_error(
        Some("DB_PASSWORD"),
        &["AADSTS7000222"],
        &["client secret has expired", "create a new one under Certificates & secrets"],
    );
}

#[test]
fn app_not_in_tenant_700016() {
    let emulator = emulator();
    let unknown_client = "11111111-2222-4333-8444-555555555555";
    Report::run(|| {
        Kvexec::new(&emulator)
            .env("AZURE_CLIENT_ID", unknown_client)
            .env("DB_PASSWORD", secret_url(demo::PASSWORD_SECRET))
    })
    .assert_code(CHECK_FAILED)
    .assert_error(
        Some("DB_PASSWORD"),
        &["AADSTS700016", unknown_client],
        &["AZURE_CLIENT_ID is not an application in tenant AZURE_TENANT_ID"],
    );
}

#[test]
fn tenant_not_found_90002() {
    let emulator = emulator();
    let unknown_tenant = "66666666-7777-4888-9999-000000000000";
    Report::run(|| {
        Kvexec::new(&emulator)
            .env("AZURE_TENANT_ID", unknown_tenant)
            .env("DB_PASSWORD", secret_url(demo::PASSWORD_SECRET))
    })
    .assert_code(CHECK_FAILED)
    .assert_error(
        Some("DB_PASSWORD"),
        &["AADSTS90002", unknown_tenant],
        &["AZURE_TENANT_ID does not exist", "AZURE_AUTHORITY_HOST"],
    );
}

#[test]
fn malformed_tenant_900023() {
    let emulator = emulator();
    Report::run(|| {
        Kvexec::new(&emulator)
            .env("AZURE_TENANT_ID", "kvexec-demo-tenant")
            .env("DB_PASSWORD", secret_url(demo::PASSWORD_SECRET))
    })
    .assert_code(CHECK_FAILED)
    .assert_error(
        Some("DB_PASSWORD"),
        &["AADSTS900023", "kvexec-demo-tenant"],
        &["AZURE_TENANT_ID is malformed", "Directory (tenant) ID GUID"],
    );
}

#[test]
fn other_aadsts_code_shows_number() {
    // The emulator responds to an injected failure with AADSTS90006, which has no hint of its
    // own; a 400 is not retried by the credential library.
    let emulator = emulator();
    let report = Report::run(|| {
        emulator.fail_next(FailNext::new(1, 400).target(FailTarget::Token));
        Kvexec::new(&emulator).env("DB_PASSWORD", secret_url(demo::PASSWORD_SECRET))
    });
    report.assert_code(CHECK_FAILED).assert_error(
        Some("DB_PASSWORD"),
        &["AADSTS90006: The service is temporarily unavailable", "trace id"],
        &["look up AADSTS90006 at https://login.microsoftonline.com/error?code=90006"],
    );
}

#[test]
fn vault_of_other_tenant_names_it() {
    let emulator = emulator();
    Report::run(|| Kvexec::new(&emulator).env("DB_PASSWORD", vault_secret_url("other-tenant-vault", "db-password")))
        .assert_code(CHECK_FAILED)
        .assert_error(
            Some("DB_PASSWORD"),
            &[
                &format!("vault other-tenant-vault belongs to tenant {OTHER_TENANT_ID}"),
                &format!("token is from tenant {}", demo::TENANT_ID),
                "401 Unauthorized",
            ],
            &[&format!("set AZURE_TENANT_ID={OTHER_TENANT_ID} (or --tenant-id {OTHER_TENANT_ID})")],
        );
}

#[test]
fn missing_rbac_role_names_role() {
    let emulator = emulator();
    Report::run(|| Kvexec::new(&emulator).env("DB_PASSWORD", vault_secret_url("rbac-vault", "db-password")))
        .assert_code(CHECK_FAILED)
        .assert_error(
            Some("DB_PASSWORD"),
            &["no role that allows reading secrets in vault rbac-vault", "403 Forbidden/ForbiddenByRbac"],
            &["'Key Vault Secrets User'", "take a few minutes to propagate"],
        );
}

#[test]
fn access_policy_without_get() {
    let emulator = emulator();
    Report::run(|| Kvexec::new(&emulator).env("DB_PASSWORD", vault_secret_url("policy-vault", "db-password")))
        .assert_code(CHECK_FAILED)
        .assert_error(
            Some("DB_PASSWORD"),
            &["access policy of vault policy-vault does not grant Get on secrets", "403 Forbidden/AccessDenied"],
            &["add an access policy with Get on secrets", "an RBAC role assignment has no effect"],
        );
}

#[test]
fn firewall_refuses_client() {
    let emulator = emulator();
    Report::run(|| Kvexec::new(&emulator).env("DB_PASSWORD", vault_secret_url("firewall-vault", "db-password")))
        .assert_code(CHECK_FAILED)
        .assert_error(
            Some("DB_PASSWORD"),
            &["firewall or private link of vault firewall-vault", "403 Forbidden/ForbiddenByFirewall"],
            &["firewall", "private endpoint"],
        );
}

#[test]
fn disabled_secret() {
    let emulator = emulator();
    Report::run(|| Kvexec::new(&emulator).env("OLD_KEY", secret_url(demo::DISABLED_SECRET)))
        .assert_code(CHECK_FAILED)
        .assert_error(
            Some("OLD_KEY"),
            &[&format!("secret '{}' in vault {} is disabled", demo::DISABLED_SECRET, demo::VAULT_NAME), "403 Forbidden/SecretDisabled"],
            &["enable the secret"],
        );
}

#[test]
fn missing_secret_differs_from_missing_version() {
    let emulator = emulator();
    let missing_version = "ffffffffffffffffffffffffffffffff";
    let report = Report::run(|| {
        Kvexec::new(&emulator)
            .env("TYPO", secret_url("db-pasword"))
            .env("PINNED", format!("{}/{missing_version}", secret_url(demo::ROTATED_SECRET)))
            .env("GONE", format!("{}/{missing_version}", secret_url("retired-token")))
            .env("DB_PASSWORD", secret_url(demo::PASSWORD_SECRET))
    });
    report
        .assert_code(CHECK_FAILED)
        .assert_error(
            Some("TYPO"),
            &[&format!("secret 'db-pasword' not found in vault {}", demo::VAULT_NAME), "404 SecretNotFound"],
            &["check the secret name"],
        )
        .assert_error(
            Some("PINNED"),
            &[
                &format!("version {missing_version} of secret '{}' not found in vault {}", demo::ROTATED_SECRET, demo::VAULT_NAME),
                "but the secret exists",
                "404 SecretNotFound",
            ],
            &["check the version id, or drop it"],
        )
        .assert_error(
            Some("GONE"),
            &[&format!("secret 'retired-token' not found in vault {}", demo::VAULT_NAME)],
            &["check the secret name"],
        )
        .assert_ok(Some("DB_PASSWORD"));
    for variable in ["TYPO", "GONE"] {
        let (row, _) = report.row(Some(variable));
        assert!(!row["reason"].as_str().unwrap().contains("version"), "{row}");
    }
    assert!(report.table.stdout_text().ends_with("1 ok, 3 failed\n"));
}

#[test]
fn selector_failure_names_key() {
    let emulator = emulator();
    Report::run(|| {
        Kvexec::new(&emulator)
            .env("DB_HOST", format!("{}#/db/host", secret_url(demo::JSON_SECRET)))
            .env("NOT_JSON", format!("{}#user", secret_url(demo::PASSWORD_SECRET)))
            .env("DB_PORT", format!("{}#/db/port", secret_url(demo::JSON_SECRET)))
    })
    .assert_code(CHECK_FAILED)
    .assert_error(Some("DB_HOST"), &["/db/host", "not found"], &["check the #key or JSON Pointer"])
    .assert_error(Some("NOT_JSON"), &["the secret is not valid JSON"], &["check the #key or JSON Pointer"])
    .assert_ok(Some("DB_PORT"));
}

#[test]
fn throttled_after_retries() {
    // Throttled attempts go on until the deadline; Retry-After: 0 only shortens the pauses,
    // which still double from 0.1 s, so a 2 s deadline sees several attempts.
    let emulator = emulator();
    emulator.set_throttle(Some(Throttle { requests_per_second: 0, retry_after: Some(0) }));
    Report::run(|| Kvexec::new(&emulator).args(["--timeout", "2"]).env("DB_PASSWORD", secret_url(demo::PASSWORD_SECRET)))
        .assert_code(CHECK_FAILED)
        .assert_error(
            Some("DB_PASSWORD"),
            &[&format!("vault {} throttled every attempt (429 Throttled)", demo::VAULT_NAME)],
            &["lower --concurrency"],
        );
    let reads = emulator.stats().reads_of(&demo::vault_host(), demo::PASSWORD_SECRET);
    assert!(reads >= 2 * 2, "each run retried, {reads} reads in all");
}

#[test]
fn throttled_until_deadline() {
    // Without Retry-After kvexec waits at least a second, so a 1 s deadline expires first,
    // and the hint follows the last attempt rather than blaming the network.
    let emulator = emulator();
    emulator.set_throttle(Some(Throttle { requests_per_second: 0, retry_after: None }));
    Report::run(|| Kvexec::new(&emulator).args(["--timeout", "1"]).env("DB_PASSWORD", secret_url(demo::PASSWORD_SECRET)))
        .assert_code(CHECK_FAILED)
        .assert_error(
            Some("DB_PASSWORD"),
            &[&format!("timed out after 1s waiting for vault {}", demo::VAULT_NAME), "last attempt", "429 Throttled"],
            &["lower --concurrency", "raise --timeout"],
        );
}

#[test]
fn token_timeout_names_phase() {
    let emulator = emulator();
    emulator.set_latency(Duration::from_secs(5));
    let started = Instant::now();
    Report::run(|| Kvexec::new(&emulator).args(["--timeout", "1"]).env("DB_PASSWORD", secret_url(demo::PASSWORD_SECRET)))
        .assert_code(CHECK_FAILED)
        .assert_error(
            Some("DB_PASSWORD"),
            &["timed out after 1s waiting for a token"],
            &["Entra ID login host", "raise --timeout"],
        );
    assert!(started.elapsed() < Duration::from_secs(4), "the deadline was not kept: {:?}", started.elapsed());
}

#[test]
fn vault_timeout_names_phase() {
    let emulator = emulator();
    Report::run(|| {
        Kvexec::new(&emulator)
            .args(["--timeout", "1"])
            .env("STUCK", secret_url("never-answers"))
            .env("DB_PASSWORD", secret_url(demo::PASSWORD_SECRET))
    })
    .assert_code(CHECK_FAILED)
    .assert_error(
        Some("STUCK"),
        &[&format!("timed out after 1s waiting for vault {}", demo::VAULT_NAME)],
        &["check that this host can reach the vault", "raise --timeout"],
    )
    .assert_ok(Some("DB_PASSWORD"));
}

#[test]
fn untrusted_certificate_points_at_ssl_cert_file() {
    // A second emulator has its own CA: trusting it instead of the first one's is what a
    // TLS-inspecting proxy looks like to kvexec.
    let emulator = emulator();
    let other = Emulator::builder().start();
    let hint = ["SSL_CERT_FILE or SSL_CERT_DIR"];

    Report::run(|| {
        Kvexec::new(&emulator)
            .env("SSL_CERT_FILE", other.ca_pem_path())
            .env("DB_PASSWORD", secret_url(demo::PASSWORD_SECRET))
    })
    .assert_code(CHECK_FAILED)
    .assert_error(Some("DB_PASSWORD"), &["cannot connect to Entra ID: TLS handshake failed: invalid peer certificate"], &hint);

    // Entra ID is trusted, but the vault host leads to the other emulator.
    let resolve = format!(
        "login.microsoftonline.com=127.0.0.1:{},*.vault.azure.net=127.0.0.1:{}",
        emulator.port(),
        other.port()
    );
    Report::run(|| {
        Kvexec::new(&emulator)
            .env("KVEXEC_RESOLVE", &resolve)
            .env("DB_PASSWORD", secret_url(demo::PASSWORD_SECRET))
    })
    .assert_code(CHECK_FAILED)
    .assert_error(
        Some("DB_PASSWORD"),
        &[&format!("cannot connect to vault {}: TLS handshake failed: invalid peer certificate", demo::VAULT_NAME)],
        &hint,
    );
}

/// A DNS server on 127.0.0.1:53 that responds to every query with NXDOMAIN and records
/// the names requested. Written by hand because the reply is a fixed 12-byte header plus the
/// question, and a DNS crate would add far more than that.
struct NxdomainServer {
    names: Arc<Mutex<Vec<String>>>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl NxdomainServer {
    /// Binds 127.0.0.1:53, or returns why not (the port needs root and must be free).
    fn start() -> std::io::Result<NxdomainServer> {
        let socket = UdpSocket::bind("127.0.0.1:53")?;
        socket.set_read_timeout(Some(Duration::from_millis(50)))?;
        let names = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (thread_names, thread_stop) = (names.clone(), stop.clone());
        let started = Instant::now();
        let thread = std::thread::spawn(move || {
            let mut buffer = [0u8; 512];
            // Bounded, so a test that panics before `stop` still frees the port.
            while !thread_stop.load(Ordering::Relaxed) && started.elapsed() < Duration::from_secs(30) {
                let Ok((length, peer)) = socket.recv_from(&mut buffer) else {
                    continue;
                };
                if let Some((name, reply)) = nxdomain_reply(&buffer[..length]) {
                    thread_names.lock().unwrap().push(name);
                    let _ = socket.send_to(&reply, peer);
                }
            }
        });
        Ok(NxdomainServer {
            names,
            stop,
            thread: Some(thread),
        })
    }

    fn names(&self) -> Vec<String> {
        self.names.lock().unwrap().clone()
    }
}

impl Drop for NxdomainServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Parses the first question of a DNS query and builds the NXDOMAIN reply to it.
fn nxdomain_reply(query: &[u8]) -> Option<(String, Vec<u8>)> {
    const HEADER: usize = 12;
    let mut at = HEADER;
    let mut labels = Vec::new();
    loop {
        let length = usize::from(*query.get(at)?);
        at += 1;
        if length == 0 {
            break;
        }
        labels.push(String::from_utf8_lossy(query.get(at..at + length)?).into_owned());
        at += length;
    }
    let question_end = at + 4; // QTYPE and QCLASS
    let question = query.get(HEADER..question_end)?;

    let mut reply = Vec::with_capacity(question_end);
    reply.extend_from_slice(&query[0..2]); // ID
    let opcode_and_rd = query[2] & 0b0111_1001;
    reply.push(0b1000_0000 | opcode_and_rd); // QR = response
    reply.push(0b1000_0011); // RA, RCODE 3 = NXDOMAIN
    reply.extend_from_slice(&[0, 1, 0, 0, 0, 0, 0, 0]); // one question, no records
    reply.extend_from_slice(question);
    Some((labels.join("."), reply))
}

#[test]
fn dns_failure_suggests_misspelt_vault() {
    // The real resolver of this machine is off-machine, so kvexec runs in its own mount
    // namespace where /etc/resolv.conf names 127.0.0.1, and this test answers there.
    // Nothing leaves the machine, and the name that failed is checked below.
    let server = match NxdomainServer::start() {
        Ok(server) => server,
        Err(error) => {
            eprintln!("SKIPPED dns_failure_suggests_misspelt_vault: cannot bind 127.0.0.1:53 ({error}); the DNS diagnosis is covered by the unit tests of diagnose");
            return;
        }
    };
    let emulator = emulator();
    let files = tempfile::tempdir().unwrap();
    let resolv_conf = common::write_file(files.path(), "resolv.conf", "nameserver 127.0.0.1\noptions attempts:1 timeout:1\n");
    let nsswitch_conf = common::write_file(files.path(), "nsswitch.conf", "hosts: files dns\n");
    // kvexec starts only when both files are in place and the resolver file is the one
    // written here.
    let script = format!(
        "mount --bind {resolv} /etc/resolv.conf && mount --bind {nss} /etc/nsswitch.conf && cmp -s {resolv} /etc/resolv.conf && exec \"$@\"",
        resolv = resolv_conf.display(),
        nss = nsswitch_conf.display(),
    );
    // Only the demo vault and the login host are mapped; the misspelt vault goes to DNS.
    let resolve = format!(
        "{}=127.0.0.1:{port},login.microsoftonline.com=127.0.0.1:{port}",
        demo::vault_host(),
        port = emulator.port()
    );
    let misspelt = "kvexec-dmeo";

    let report = Report::run(|| {
        Kvexec::new(&emulator)
            .program("/usr/bin/unshare")
            .args(["--user", "--map-root-user", "--mount", "/bin/sh", "-c", &script, "sh", KVEXEC])
            .env("KVEXEC_RESOLVE", &resolve)
            .env("DB_PASSWORD", secret_url(demo::PASSWORD_SECRET))
            .env("TYPO", vault_secret_url(misspelt, demo::PASSWORD_SECRET))
    });
    report
        .assert_code(CHECK_FAILED)
        .assert_error(
            Some("TYPO"),
            &[&format!("DNS lookup of {misspelt}.vault.azure.net failed")],
            &[&format!("check the vault name '{misspelt}' in the reference"), "misspelt", "--resolve"],
        )
        .assert_ok(Some("DB_PASSWORD"));

    let names = server.names();
    assert!(names.iter().any(|name| name == &format!("{misspelt}.vault.azure.net")), "{names:?}");
    assert!(names.iter().all(|name| name.starts_with(misspelt)), "only the misspelt vault is looked up: {names:?}");
}

#[test]
fn probe_without_references_reaches_vault() {
    let emulator = emulator();
    let report = Report::run(|| Kvexec::new(&emulator).env("KVEXEC_DEFAULT_VAULT_URL", demo::vault_url()));
    report.assert_code(0).assert_ok(None);
    let (row, line) = report.row(None);
    assert_eq!(row["reference"], format!("{}/", demo::vault_url()));
    assert!(row["variable"].is_null());
    assert!(row["reason"].as_str().unwrap().contains("the vault is reachable and lets this identity read secrets"), "{row}");
    assert!(line.starts_with("(connection)"), "{line}");
    assert_eq!(report.rows.len(), 1);
    let stats = emulator.stats();
    assert_eq!(stats.reads_of(&demo::vault_host(), "kvexec-connection-check-probe"), 2, "one probe per run");
}

#[test]
fn probe_reports_401_and_403_fixes() {
    let emulator = emulator();
    let probe = |vault: &str| {
        Report::run(|| Kvexec::new(&emulator).env("KVEXEC_DEFAULT_VAULT_URL", format!("https://{vault}.vault.azure.net")))
    };
    probe("other-tenant-vault").assert_code(CHECK_FAILED).assert_error(
        None,
        &[&format!("vault other-tenant-vault belongs to tenant {OTHER_TENANT_ID}")],
        &[&format!("set AZURE_TENANT_ID={OTHER_TENANT_ID}")],
    );
    probe("rbac-vault").assert_code(CHECK_FAILED).assert_error(None, &["ForbiddenByRbac"], &["'Key Vault Secrets User'"]);
    probe("policy-vault").assert_code(CHECK_FAILED).assert_error(None, &["AccessDenied"], &["an RBAC role assignment has no effect"]);
    probe("firewall-vault").assert_code(CHECK_FAILED).assert_error(None, &["ForbiddenByFirewall"], &["firewall"]);
}

#[test]
fn probe_without_vault_gets_token_only() {
    let emulator = emulator();
    let report = Report::run(|| Kvexec::new(&emulator));
    report.assert_code(0).assert_ok(None);
    let (row, _) = report.row(None);
    assert!(row["reference"].is_null());
    assert!(row["reason"].as_str().unwrap().contains("token acquired"), "{row}");
    let stats = emulator.stats();
    assert_eq!(stats.total_token_requests(), 2);
    assert!(stats.reads_of(&demo::vault_host(), "kvexec-connection-check-probe") == 0, "no vault was contacted");

    Report::run(|| Kvexec::new(&emulator).env("AZURE_CLIENT_SECRET", WRONG_CLIENT_SECRET))
        .assert_code(CHECK_FAILED)
        .assert_error(None, &["AADSTS7000215"], &["AZURE_CLIENT_SECRET is wrong"]);

    emulator.set_latency(Duration::from_secs(3));
    Report::run(|| Kvexec::new(&emulator).args(["--timeout", "1"]))
        .assert_code(CHECK_FAILED)
        .assert_error(None, &["timed out after 1s waiting for a token"], &["raise --timeout"]);
}

#[test]
fn malformed_references_get_rows() {
    let emulator = emulator();
    let report = Report::run(|| {
        Kvexec::new(&emulator)
            .env("NO_VAULT", "akv://db-password")
            .env("DB_PASSWORD", secret_url(demo::PASSWORD_SECRET))
            .env("SHORT_VERSION", format!("{}/abc123", secret_url(demo::PASSWORD_SECRET)))
            .env("PLAIN_HTTP", "http://kvexec-demo.vault.azure.net/secrets/db-password")
    });
    report
        .assert_code(CHECK_FAILED)
        .assert_error(Some("NO_VAULT"), &["an akv:// reference needs a default vault", "--default-vault-url"], &[])
        .assert_error(Some("SHORT_VERSION"), &["invalid version \"abc123\"", "32 hexadecimal characters"], &[])
        .assert_error(Some("PLAIN_HTTP"), &["must use https://"], &[])
        .assert_ok(Some("DB_PASSWORD"));
    let variables: Vec<&str> = report.rows.iter().map(|row| row["variable"].as_str().unwrap()).collect();
    assert_eq!(variables, ["NO_VAULT", "DB_PASSWORD", "SHORT_VERSION", "PLAIN_HTTP"], "rows follow the environment");
    let (row, line) = report.row(Some("NO_VAULT"));
    assert!(row["reference"].is_null(), "a malformed value is not echoed: {row}");
    assert_eq!(line.split_whitespace().nth(1), Some("-"), "{line}");
}

#[test]
fn usage_and_configuration_errors_exit_125() {
    let emulator = emulator();
    let cases: Vec<(&str, Kvexec, &str)> = vec![
        ("a command with --check", Kvexec::new(&emulator).args(["--check", "true"]), "cannot be used with"),
        ("--json without --check", Kvexec::new(&emulator).args(["--json", "true"]), "--check"),
        ("zero timeout", Kvexec::new(&emulator).args(["--check", "--timeout", "0"]), "invalid timeout '0'"),
        ("zero concurrency", Kvexec::new(&emulator).args(["--check", "--concurrency", "0"]), "invalid concurrency '0'"),
        (
            "plain http default vault",
            Kvexec::new(&emulator).args(["--check", "--default-vault-url", "http://kvexec-demo.vault.azure.net"]),
            "invalid default vault URL",
        ),
        ("bad --resolve", Kvexec::new(&emulator).args(["--check", "--resolve", "kvexec-demo.vault.azure.net"]), "invalid --resolve rule"),
        ("missing env file", Kvexec::new(&emulator).args(["--check", "--env-file", "/nonexistent/kvexec.env"]), "/nonexistent/kvexec.env"),
        ("no tenant", Kvexec::new(&emulator).env_remove("AZURE_TENANT_ID").arg("--check"), "set AZURE_TENANT_ID"),
        (
            "no client secret",
            Kvexec::new(&emulator).env_remove("AZURE_CLIENT_SECRET").args(["--check", "--credential", "client-secret"]),
            "set AZURE_CLIENT_SECRET",
        ),
        (
            "unreadable trust roots",
            Kvexec::new(&emulator).env("SSL_CERT_FILE", "/nonexistent/ca.pem").arg("--check"),
            "SSL_CERT_FILE",
        ),
    ];
    for (case, kvexec, message) in cases {
        let outcome = kvexec.env("DB_PASSWORD", secret_url(demo::PASSWORD_SECRET)).run();
        assert_eq!(outcome.code(), Some(KVEXEC_FAILURE), "{case}: stderr:\n{}", outcome.stderr_text());
        assert!(outcome.stdout.is_empty(), "{case}: stdout:\n{}", outcome.stdout_text());
        assert!(outcome.stderr_text().contains(message), "{case}: stderr lacks {message:?}:\n{}", outcome.stderr_text());
        for canary in CANARIES {
            outcome.assert_output_lacks(canary);
        }
    }
    assert_eq!(emulator.stats().total_token_requests(), 0, "no request before the configuration is valid");
}

#[test]
fn no_value_printed_at_any_log_level() {
    let emulator = emulator();
    let levels: [(&str, Option<&str>); 5] = [
        ("-q", None),
        ("--check", None),
        ("-v", None),
        ("-vv", None),
        ("--check", Some("trace")),
    ];
    for (flag, filter) in levels {
        for client_secret in [demo::CLIENT_SECRET, WRONG_CLIENT_SECRET] {
            let mut kvexec = Kvexec::new(&emulator)
                .env("AZURE_CLIENT_SECRET", client_secret)
                .env("KVEXEC_DEFAULT_VAULT_URL", demo::vault_url())
                .env("DB_PASSWORD", "akv://db-password")
                .env("API_KEY", secret_url(API_KEY_SECRET))
                .env("CONFIG", secret_url(demo::MULTILINE_SECRET))
                .env("DB", format!("{}#db", secret_url(demo::JSON_SECRET)))
                .env("ROTATED", format!("{}/{}", secret_url(demo::ROTATED_SECRET), demo::ROTATED_OLD_VERSION))
                .env("OLD_KEY", secret_url(demo::DISABLED_SECRET))
                .arg(flag);
            if flag != "--check" {
                kvexec = kvexec.arg("--check");
            }
            if let Some(filter) = filter {
                kvexec = kvexec.env("KVEXEC_LOG", filter);
            }
            let outcome = kvexec.run();
            outcome.assert_code(CHECK_FAILED);
            for canary in CANARIES {
                outcome.assert_output_lacks(canary);
            }
            if filter.is_some() || flag == "-vv" {
                assert!(!outcome.stderr.is_empty(), "{flag} {filter:?} logs something");
            }
        }
    }
}


