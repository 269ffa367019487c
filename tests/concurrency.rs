//! How many GETs kvexec keeps in flight. Each vault's window starts small and doubles as
//! responses arrive: over HTTP/2 past 32, over one more connection per 100 GETs; over
//! HTTP/1.1 to at most 32; and never past `--concurrency` when it is set.

mod common;

use common::{demo, secret_url, Emulator, Kvexec, Outcome};
use kvexec_emulator::Secret;
use std::time::Duration;

const SECRETS: usize = 80;
/// More GETs than the emulator's 200 streams per connection, so one round needs three
/// connections.
const MANY_SECRETS: usize = 250;
const HTTP1_WINDOW: u64 = 32;

/// Starts the demo emulator with `secrets` more secrets. The latency keeps each GET in
/// flight long enough for the requests sent together to overlap on the server.
fn emulator(http2: bool, secrets: usize) -> Emulator {
    let mut builder = Emulator::builder()
        .demo()
        .http2(http2)
        .latency(Duration::from_millis(100));
    for index in 1..=secrets {
        builder = builder.secret(
            demo::VAULT_NAME,
            Secret::new(format!("bulk-{index}"), format!("bulk-value-{index}")),
        );
    }
    builder.start()
}

fn run(emulator: &Emulator, secrets: usize, concurrency: Option<&str>) -> Outcome {
    let mut kvexec = Kvexec::new(emulator);
    for index in 1..=secrets {
        kvexec = kvexec.env(format!("BULK_{index}"), secret_url(&format!("bulk-{index}")));
    }
    if let Some(limit) = concurrency {
        kvexec = kvexec.env("KVEXEC_CONCURRENCY", limit);
    }
    let outcome = kvexec.report_env().run();
    outcome
        .assert_success()
        .assert_var("BULK_1", "bulk-value-1")
        .assert_var(&format!("BULK_{secrets}"), format!("bulk-value-{secrets}"));
    outcome
}

#[test]
fn http2_window_grows_past_32() {
    // 4 + 8 + 16 + 32 GETs in the first four round trips leave 90 for a window of 64.
    let secrets = 150;
    let emulator = emulator(true, secrets);
    run(&emulator, secrets, None);
    let stats = emulator.stats();
    assert!(stats.max_in_flight > HTTP1_WINDOW, "max in flight: {}", stats.max_in_flight);
    assert_eq!(stats.http2_connections, 3, "one connection to the login host, two to the vault");
    assert_eq!(stats.tcp_connections, 3);
}

#[test]
fn http2_opens_connection_per_100_gets() {
    let emulator = emulator(true, MANY_SECRETS);
    run(&emulator, MANY_SECRETS, None);
    let stats = emulator.stats();
    assert_eq!(stats.tcp_connections, 4, "one to the login host, three to the vault");
    assert_eq!(stats.http2_connections, 4);
    // The window doubles from 4 per round trip: 4, 8, 16, 32, 64, then the last 126.
    assert!(stats.max_in_flight > 100, "max in flight: {}", stats.max_in_flight);
    assert_eq!(stats.total_secret_reads(), MANY_SECRETS as u64);
}

#[test]
fn http1_keeps_window_of_32() {
    let emulator = emulator(false, SECRETS);
    run(&emulator, SECRETS, None);
    let stats = emulator.stats();
    assert!(stats.max_in_flight <= HTTP1_WINDOW, "max in flight: {}", stats.max_in_flight);
    assert_eq!(stats.http2_connections, 0);
    assert_eq!(stats.total_secret_reads(), SECRETS as u64);
}

#[test]
fn concurrency_setting_caps_http2() {
    let emulator = emulator(true, SECRETS);
    run(&emulator, SECRETS, Some("8"));
    let stats = emulator.stats();
    assert!(stats.max_in_flight <= 8, "max in flight: {}", stats.max_in_flight);
    assert_eq!(stats.total_secret_reads(), SECRETS as u64);
}
