//! How many GETs kvexec keeps in flight: all of them over HTTP/2, at most 32 over HTTP/1.1,
//! and never more than `--concurrency` when it is set.

mod common;

use common::{demo, secret_url, Emulator, Kvexec, Outcome};
use kvexec_emulator::Secret;
use std::time::Duration;

const SECRETS: usize = 80;
const HTTP1_WINDOW: u64 = 32;

/// Starts the demo emulator with `SECRETS` more secrets. The latency keeps each GET in
/// flight long enough for the requests sent together to overlap on the server.
fn emulator(http2: bool) -> Emulator {
    let mut builder = Emulator::builder()
        .demo()
        .http2(http2)
        .latency(Duration::from_millis(100));
    for index in 1..=SECRETS {
        builder = builder.secret(
            demo::VAULT_NAME,
            Secret::new(format!("bulk-{index}"), format!("bulk-value-{index}")),
        );
    }
    builder.start()
}

fn run(emulator: &Emulator, concurrency: Option<&str>) -> Outcome {
    let mut kvexec = Kvexec::new(emulator);
    for index in 1..=SECRETS {
        kvexec = kvexec.env(format!("BULK_{index}"), secret_url(&format!("bulk-{index}")));
    }
    if let Some(limit) = concurrency {
        kvexec = kvexec.env("KVEXEC_CONCURRENCY", limit);
    }
    let outcome = kvexec.report_env().run();
    outcome
        .assert_success()
        .assert_var("BULK_1", "bulk-value-1")
        .assert_var(&format!("BULK_{SECRETS}"), format!("bulk-value-{SECRETS}"));
    outcome
}

#[test]
fn http2_sends_all_gets_at_once() {
    let emulator = emulator(true);
    run(&emulator, None);
    let stats = emulator.stats();
    assert!(stats.max_in_flight > HTTP1_WINDOW, "max in flight: {}", stats.max_in_flight);
    assert_eq!(stats.http2_connections, 2, "one connection to the login host, one to the vault");
    assert_eq!(stats.tcp_connections, 2);
}

#[test]
fn http1_keeps_window_of_32() {
    let emulator = emulator(false);
    run(&emulator, None);
    let stats = emulator.stats();
    assert!(stats.max_in_flight <= HTTP1_WINDOW, "max in flight: {}", stats.max_in_flight);
    assert_eq!(stats.http2_connections, 0);
    assert_eq!(stats.total_secret_reads(), SECRETS as u64);
}

#[test]
fn concurrency_setting_caps_http2() {
    let emulator = emulator(true);
    run(&emulator, Some("8"));
    let stats = emulator.stats();
    assert!(stats.max_in_flight <= 8, "max in flight: {}", stats.max_in_flight);
    assert_eq!(stats.total_secret_reads(), SECRETS as u64);
}
