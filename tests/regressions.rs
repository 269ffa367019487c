//! Regression tests for bugs found by trying kvexec as a new user and as an attacker.
//!
//! Each test states the expected behaviour of one case that was once wrong.

mod common;

use common::{demo, secret_url, Kvexec, KVEXEC_FAILURE};
use kvexec_emulator::{Emulator, Secret};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

fn emulator_with(secrets: Vec<Secret>) -> Emulator {
    let mut builder = Emulator::builder().demo();
    for secret in secrets {
        builder = builder.secret(demo::VAULT_NAME, secret);
    }
    builder.start()
}

fn write_script(directory: &Path, name: &str, body: &str) {
    let path = common::write_file(directory, name, body);
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

#[test]
fn proxy_error_hides_password() {
    let emulator = common::demo_emulator();
    let outcome = Kvexec::new(&emulator)
        .env("HTTPS_PROXY", "http://proxyuser:proxy-password-canary@proxy.example:notaport")
        .env("DB_PASSWORD", secret_url(demo::PASSWORD_SECRET))
        .args(["--", "/bin/true"])
        .run();

    outcome.assert_code(KVEXEC_FAILURE);
    outcome.assert_output_lacks("proxy-password-canary");
}

#[test]
fn check_flags_value_with_nul() {
    let emulator = emulator_with(vec![Secret::new("nul-inside", "before\0after")]);
    let outcome = Kvexec::new(&emulator)
        .env("WITH_NUL", secret_url("nul-inside"))
        .arg("--check")
        .run();

    // A normal run rejects this value with exit status 125, so --check must not call it ok.
    assert_eq!(outcome.code(), Some(1), "stdout:\n{}", outcome.stdout_text());
}

#[test]
fn path_reference_searches_resolved_path() {
    let emulator = emulator_with(vec![Secret::new("search-path", "/usr/bin:/bin")]);
    let work = tempfile::tempdir().unwrap();
    // The unresolved PATH "https://kvexec-demo.vault.azure.net/..." has the relative entry
    // "https", so a lookup in it finds ./https/env in the current directory.
    std::fs::create_dir(work.path().join("https")).unwrap();
    write_script(&work.path().join("https"), "env", "#!/bin/sh\necho wrong-program-ran\n");

    let outcome = Kvexec::new(&emulator)
        .env("PATH", secret_url("search-path"))
        .current_dir(work.path())
        .args(["--", "env"])
        .run();

    outcome.assert_success();
    assert!(
        !outcome.stdout_text().contains("wrong-program-ran"),
        "kvexec ran ./https/env, found through the unresolved PATH, not /usr/bin/env from the child's PATH"
    );
}

#[test]
fn resolve_flag_beats_variable() {
    let emulator = common::demo_emulator();
    let exact_rule = format!("{}=127.0.0.1:{}", demo::vault_host(), emulator.port());
    let outcome = Kvexec::new(&emulator)
        .env("KVEXEC_RESOLVE", format!("{},{exact_rule}", emulator.resolve_args()))
        .env("DB_PASSWORD", secret_url(demo::PASSWORD_SECRET))
        // Nothing listens on port 1, so the run can only succeed by ignoring the flag.
        .args(["--resolve", &format!("{}=127.0.0.1:1", demo::vault_host())])
        .args(["--timeout", "2", "--", "/bin/true"])
        .run();

    outcome.assert_code(KVEXEC_FAILURE);
}

#[test]
fn resolve_rule_with_trailing_dot_applies() {
    let emulator = common::demo_emulator();
    // The wildcard sends the vault to a dead port, and the exact rule, written with the
    // root's trailing dot, sends it to the emulator. DNS is never needed either way.
    let resolve = format!(
        "login.microsoftonline.com=127.0.0.1:{port},*.vault.azure.net=127.0.0.1:1",
        port = emulator.port()
    );
    let outcome = Kvexec::new(&emulator)
        .env("KVEXEC_RESOLVE", resolve)
        .env("DB_PASSWORD", secret_url(demo::PASSWORD_SECRET))
        .args(["--resolve", &format!("{}.=127.0.0.1:{}", demo::vault_host(), emulator.port())])
        .args(["--timeout", "2"])
        .report_env()
        .run();

    // Rejecting the rule as invalid (exit 125 with a message about the dot) would also be
    // acceptable. Ignoring it without a message is not.
    if outcome.code() == Some(0) {
        outcome.assert_var("DB_PASSWORD", demo::PASSWORD_VALUE);
    } else {
        assert!(outcome.stderr_text().contains("invalid --resolve rule"), "{}", outcome.stderr_text());
    }
}

#[test]
fn env_file_sets_log_filter() {
    let emulator = common::demo_emulator();
    let files = tempfile::tempdir().unwrap();
    let env_file = common::write_file(files.path(), "job.env", "KVEXEC_LOG=kvexec=debug\n");
    let outcome = Kvexec::new(&emulator)
        .env("DB_PASSWORD", secret_url(demo::PASSWORD_SECRET))
        .arg("--env-file")
        .arg(&env_file)
        .args(["--", "/bin/true"])
        .run();

    outcome.assert_success();
    assert!(outcome.stderr_text().contains("DEBUG"), "stderr:\n{}", outcome.stderr_text());
}

#[test]
fn quiet_flag_beats_log_variable() {
    let emulator = common::demo_emulator();
    let outcome = Kvexec::new(&emulator)
        .env("KVEXEC_LOG", "kvexec=debug")
        .env("DB_PASSWORD", secret_url(demo::PASSWORD_SECRET))
        .args(["-q", "--", "/bin/true"])
        .run();

    outcome.assert_success();
    assert!(!outcome.stderr_text().contains("DEBUG"), "stderr:\n{}", outcome.stderr_text());
}

#[test]
fn blocking_token_file_obeys_timeout() {
    let emulator = common::demo_emulator();
    let files = tempfile::tempdir().unwrap();
    let fifo = files.path().join("token");
    let status = Command::new("mkfifo").arg(&fifo).status().unwrap();
    assert!(status.success(), "mkfifo failed");

    let outcome = Kvexec::new(&emulator)
        .env_remove("AZURE_CLIENT_SECRET")
        .env("AZURE_FEDERATED_TOKEN_FILE", &fifo)
        .env("DB_PASSWORD", secret_url(demo::PASSWORD_SECRET))
        .args(["--timeout", "2", "--", "/bin/true"])
        .timeout(Duration::from_secs(20))
        .run();

    outcome.assert_code(KVEXEC_FAILURE);
    assert!(outcome.elapsed < Duration::from_secs(6), "took {:?}", outcome.elapsed);
}

#[test]
fn selection_error_independent_of_value() {
    // Both values are not JSON. Their messages must match, because the first one's error
    // column would reveal that its first five characters are digits.
    let emulator = emulator_with(vec![
        Secret::new("probe-a", "12345-rest-of-secret"),
        Secret::new("probe-b", "abcde-rest-of-secret"),
    ]);
    let message = |secret: &str| {
        let outcome = Kvexec::new(&emulator)
            .env("PICKED", format!("{}#key", secret_url(secret)))
            .args(["--", "/bin/true"])
            .run();
        outcome.assert_code(KVEXEC_FAILURE);
        outcome.stderr_text().replace(secret, "probe-x")
    };

    assert_eq!(message("probe-a"), message("probe-b"));
}

#[test]
fn error_lines_escape_control_characters() {
    let emulator = common::demo_emulator();
    let forged = format!("{}?x\nkvexec: forged line", secret_url(demo::PASSWORD_SECRET));
    let outcome = Kvexec::new(&emulator)
        .env("FORGED", forged)
        .args(["--", "/bin/true"])
        .run();

    outcome.assert_code(KVEXEC_FAILURE);
    let stderr = outcome.stderr_text();
    assert!(!stderr.lines().any(|line| line.starts_with("kvexec: forged line")), "{stderr}");
}
