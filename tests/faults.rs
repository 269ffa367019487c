//! Network and service faults, injected by the emulator, against the real kvexec binary.
//! Each run must end in a successful retry or in exit status 125 with a clear message,
//! before the harness's own timeout, without a panic, and without printing a secret value,
//! the client secret or an access token. Every run logs at trace level, so the hygiene
//! checks cover every log line on these error paths.

mod common;

use common::{demo, secret_url, Emulator, Kvexec, Outcome, KVEXEC_FAILURE};
use kvexec_emulator::{FailNext, FailTarget, Fault, Secret};
use std::time::Duration;

const NAME: &str = "fault-target";
const VALUE: &str = "fault-canary-value-5d1c";

/// Upper bound for runs whose deadline is a few seconds: generous, so that a loaded CI
/// machine does not fail them, but far below the harness's 60 s.
const FINISHES_WITHIN: Duration = Duration::from_secs(20);

fn emulator_with(secret: Secret) -> Emulator {
    Emulator::builder().demo().secret(demo::VAULT_NAME, secret).start()
}

/// kvexec reading [`NAME`] into `FAULT_VALUE`, logging everything, with a deadline.
fn kvexec(emulator: &Emulator, timeout_seconds: &str) -> Kvexec {
    Kvexec::new(emulator)
        .env("FAULT_VALUE", secret_url(NAME))
        .env("KVEXEC_LOG", "trace")
        .args(["--timeout", timeout_seconds])
        .report_env()
}

/// Checks what every run must do: no panic, and no secret value, client secret or access
/// token in stderr, nor in stdout unless the command ran (its environment is stdout).
#[track_caller]
fn assert_no_leak(outcome: &Outcome, emulator: &Emulator) {
    let stderr = outcome.stderr_text();
    assert!(!stderr.contains("panicked"), "kvexec panicked:\n{stderr}");

    let stats = emulator.stats();
    let mut canaries = vec![VALUE.to_string(), demo::CLIENT_SECRET.to_string()];
    canaries.extend(stats.issued_tokens.iter().cloned());
    for canary in &canaries {
        assert!(!stderr.contains(canary.as_str()), "stderr contains a secret or a token");
        if outcome.code() != Some(0) {
            outcome.assert_output_lacks(canary);
        }
    }
}

/// Checks a failed run: exit status 125, the command not started, the message present.
#[track_caller]
fn assert_failed_with(outcome: &Outcome, emulator: &Emulator, message: &str) {
    assert_no_leak(outcome, emulator);
    outcome.assert_code(KVEXEC_FAILURE);
    assert!(outcome.stdout.is_empty(), "the command ran");
    let stderr = outcome.stderr_text();
    let report: Vec<&str> = stderr.lines().filter(|line| line.starts_with("kvexec: ")).collect();
    eprintln!("{}", report.join("\n"));
    let tail: Vec<&str> = stderr.lines().rev().take(12).collect();
    assert!(
        report.iter().any(|line| line.contains(message)),
        "no report line contains {message:?}; report:\n{}\nlast lines of stderr, last first:\n{}",
        report.join("\n"),
        tail.join("\n")
    );
    assert!(outcome.elapsed < FINISHES_WITHIN, "took {:?}", outcome.elapsed);
}

#[track_caller]
fn assert_resolved(outcome: &Outcome, emulator: &Emulator) {
    assert_no_leak(outcome, emulator);
    outcome.assert_success().assert_var("FAULT_VALUE", VALUE);
}

fn reads(emulator: &Emulator) -> u64 {
    emulator.stats().reads_of(&demo::vault_host(), NAME)
}

#[test]
fn reset_mid_response_is_retried() {
    let emulator = emulator_with(Secret::new(NAME, VALUE).fault_times(Fault::ResetConnection, 2));
    let outcome = kvexec(&emulator, "10").run();
    assert_resolved(&outcome, &emulator);
    assert_eq!(reads(&emulator), 3);
}

#[test]
fn reset_every_time_fails_at_deadline() {
    let emulator = emulator_with(Secret::new(NAME, VALUE).fault(Fault::ResetConnection));
    let outcome = kvexec(&emulator, "2").run();
    assert_failed_with(&outcome, &emulator, "timed out after 2s waiting for vault kvexec-demo");
    assert_failed_with(&outcome, &emulator, "the connection to vault kvexec-demo broke");
    assert!(reads(&emulator) >= 2, "the reset was not retried");
}

#[test]
fn no_response_deadline_holds() {
    let emulator = emulator_with(Secret::new(NAME, VALUE).fault(Fault::NoResponse));
    let outcome = kvexec(&emulator, "2").run();
    assert_failed_with(&outcome, &emulator, "FAULT_VALUE: https://kvexec-demo.vault.azure.net/secrets/fault-target: timed out after 2s");
    assert_eq!(reads(&emulator), 1);
}

#[test]
fn silent_token_endpoint_deadline_holds() {
    // A listener that is never accepted from: the kernel completes the TCP handshake,
    // then the TLS handshake waits forever.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").expect("binding a local port failed");
    let silent_address = silent.local_addr().expect("the listener has an address");
    let emulator = common::demo_emulator();
    let resolve = format!("*.vault.azure.net=127.0.0.1:{},login.microsoftonline.com={silent_address}", emulator.port());

    let outcome = kvexec(&emulator, "2").env("KVEXEC_RESOLVE", resolve).run();

    assert_failed_with(&outcome, &emulator, "timed out after 2s waiting for a token");
    assert_eq!(emulator.stats().total_secret_reads(), 0);
    drop(silent);
}

#[test]
fn wrong_ca_fails_tls_quickly() {
    let emulator = common::demo_emulator();
    let stranger = Emulator::builder().start();

    let outcome = kvexec(&emulator, "20").env("SSL_CERT_FILE", stranger.ca_pem_path()).run();

    // Both emulators' CAs have the same name, so rustls finds the wrong CA by name and
    // reports a bad signature rather than an unknown issuer.
    assert_failed_with(&outcome, &emulator, "cannot connect to Entra ID: TLS handshake failed: invalid peer certificate");
    assert_failed_with(&outcome, &emulator, "SSL_CERT_FILE");
    let stats = emulator.stats();
    assert_eq!(stats.total_requests(), 0, "a request got through an untrusted TLS connection");
    // A handshake failure is not worth retrying until the deadline.
    assert!(outcome.elapsed < Duration::from_secs(10), "took {:?}", outcome.elapsed);
}

#[test]
fn untrusted_vault_never_gets_token() {
    // Entra ID is the trusted emulator; the vault host leads to an emulator whose CA is
    // not trusted, as with a TLS-intercepting proxy.
    let trusted = emulator_with(Secret::new(NAME, VALUE));
    let impostor = emulator_with(Secret::new(NAME, VALUE));
    let resolve = format!(
        "*.vault.azure.net=127.0.0.1:{},login.microsoftonline.com=127.0.0.1:{}",
        impostor.port(),
        trusted.port()
    );

    let outcome = kvexec(&trusted, "20").env("KVEXEC_RESOLVE", resolve).run();

    assert_failed_with(&outcome, &trusted, "cannot connect to vault kvexec-demo: TLS handshake failed: invalid peer certificate");
    assert_no_leak(&outcome, &impostor);
    assert_eq!(trusted.stats().total_token_requests(), 1);
    let impostor_stats = impostor.stats();
    assert_eq!(impostor_stats.total_requests(), 0);
    assert!(impostor_stats.authorization_sent_to(&demo::vault_host()).is_empty());
}

#[test]
fn dns_failure_names_host() {
    // An empty network namespace: no interface is up, so the lookup fails inside this
    // machine and no query reaches any resolver.
    let probe = std::process::Command::new("unshare").args(["-n", "--", "true"]).status();
    if !probe.is_ok_and(|status| status.success()) {
        eprintln!("skipped: 'unshare -n' is not available here, so DNS cannot fail safely");
        return;
    }
    let emulator = common::demo_emulator();

    let outcome = Kvexec::new(&emulator)
        .program("/usr/bin/unshare")
        .args(["-n", "--", common::KVEXEC])
        .env_remove("KVEXEC_RESOLVE")
        .env("FAULT_VALUE", secret_url(NAME))
        .env("KVEXEC_LOG", "trace")
        .args(["--timeout", "10"])
        .report_env()
        .run();

    assert_failed_with(&outcome, &emulator, "DNS lookup of login.microsoftonline.com failed");
    assert_failed_with(&outcome, &emulator, "check this host's DNS settings and AZURE_AUTHORITY_HOST");
    assert_eq!(emulator.stats().total_requests(), 0);
}

#[test]
fn token_errors_are_retried() {
    let emulator = emulator_with(Secret::new(NAME, VALUE));
    emulator.fail_next(FailNext::new(2, 500).target(FailTarget::Token));

    let outcome = kvexec(&emulator, "20").run();

    assert_resolved(&outcome, &emulator);
    assert_eq!(emulator.stats().total_token_requests(), 3);
}

#[test]
fn token_errors_until_deadline_fail() {
    let emulator = emulator_with(Secret::new(NAME, VALUE));
    emulator.fail_next(FailNext::new(1000, 500).target(FailTarget::Token));

    let outcome = kvexec(&emulator, "3").run();

    assert_failed_with(&outcome, &emulator, "timed out after 3s waiting for a token");
    // The deadline cuts the retries short, so the cause appears as a warning instead.
    let stderr = outcome.stderr_text();
    assert!(stderr.contains("the token endpoint returned HTTP 500; retrying"), "{stderr}");
    assert!(emulator.stats().total_token_requests() >= 2, "the token request was not retried");
    assert_eq!(emulator.stats().total_secret_reads(), 0);
}

#[test]
fn vault_errors_are_retried() {
    let emulator = emulator_with(Secret::new(NAME, VALUE));
    emulator.fail_next(FailNext::new(3, 503).target(FailTarget::KeyVault));
    let outcome = kvexec(&emulator, "20").run();
    assert_resolved(&outcome, &emulator);
}

#[test]
fn throttle_without_retry_after_is_retried() {
    let emulator = emulator_with(Secret::new(NAME, VALUE).fault_times(
        Fault::Status {
            status: 429,
            retry_after: None,
        },
        1,
    ));
    let outcome = kvexec(&emulator, "20").run();
    assert_resolved(&outcome, &emulator);
    assert_eq!(reads(&emulator), 2);
}

#[test]
fn malformed_json_is_retried() {
    let emulator = emulator_with(Secret::new(NAME, VALUE).fault_times(Fault::MalformedJson, 1));
    let outcome = kvexec(&emulator, "20").run();
    assert_resolved(&outcome, &emulator);
    assert_eq!(reads(&emulator), 2);
}

#[test]
fn malformed_json_fails_without_echo() {
    // The emulator's malformed body contains the secret value.
    let emulator = emulator_with(Secret::new(NAME, VALUE).fault(Fault::MalformedJson));
    let outcome = kvexec(&emulator, "2").run();
    assert_failed_with(&outcome, &emulator, "invalid response body: not a Key Vault secret bundle");
}

#[test]
fn truncated_body_is_retried() {
    let emulator = emulator_with(Secret::new(NAME, VALUE).fault_times(Fault::TruncatedBody, 1));
    let outcome = kvexec(&emulator, "20").run();
    assert_resolved(&outcome, &emulator);
    assert_eq!(reads(&emulator), 2);
}

#[test]
fn truncated_body_fails_at_deadline() {
    let emulator = emulator_with(Secret::new(NAME, VALUE).fault(Fault::TruncatedBody));
    let outcome = kvexec(&emulator, "2").run();
    assert_failed_with(&outcome, &emulator, "timed out after 2s waiting for vault kvexec-demo");
    assert_failed_with(&outcome, &emulator, "the connection to vault kvexec-demo broke");
}

#[test]
fn oversized_body_fails_without_retry() {
    let emulator = emulator_with(Secret::new(NAME, VALUE).fault(Fault::OversizedBody));
    let outcome = kvexec(&emulator, "20").run();
    assert_failed_with(&outcome, &emulator, "the response body is larger than 1048576 bytes");
    assert_eq!(reads(&emulator), 1);
}

#[test]
fn redirect_is_not_followed() {
    let elsewhere = "elsewhere.vault.azure.net";
    let location = format!("https://{elsewhere}/secrets/{NAME}");
    let emulator = emulator_with(Secret::new(NAME, VALUE).fault(Fault::Redirect {
        status: 307,
        location: location.clone(),
    }));

    let outcome = kvexec(&emulator, "20").run();

    let message = format!("the vault answered HTTP 307 with a redirect to {location}; redirects are not followed");
    assert_failed_with(&outcome, &emulator, &message);
    assert_eq!(reads(&emulator), 1);
    let stats = emulator.stats();
    assert_eq!(stats.requests_to(elsewhere), 0);
    assert!(stats.authorization_sent_to(elsewhere).is_empty());
}
