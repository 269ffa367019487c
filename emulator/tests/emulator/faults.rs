//! Injected latency, throttling, failures and per-secret faults.

use crate::support::*;
use kvexec_emulator::{demo, Emulator, FailNext, FailTarget, Fault, Secret, Throttle, Vault};
use std::time::{Duration, Instant};

const VAULT: &str = "kvexec-demo.vault.azure.net";
const FAULTY: &str = "faulty-vault.vault.azure.net";

fn faulty_emulator(http2: bool) -> Emulator {
    let vault = Vault::new("faulty-vault", demo::TENANT_ID)
        .secret(Secret::new("reset", "reset-canary-value").fault(Fault::ResetConnection))
        .secret(Secret::new("truncated", "truncated-canary-value").fault(Fault::TruncatedBody))
        .secret(Secret::new("malformed", "malformed-canary-value").fault(Fault::MalformedJson))
        .secret(Secret::new("oversized", "oversized-canary-value").fault(Fault::OversizedBody))
        .secret(Secret::new("silent", "silent-canary-value").fault(Fault::NoResponse))
        .secret(Secret::new("flaky", "flaky-value").fault_times(Fault::ResetConnection, 1))
        .secret(Secret::new("busy", "busy-value").fault_times(
            Fault::Status {
                status: 503,
                retry_after: Some(2),
            },
            2,
        ));
    Emulator::builder().demo().vault(vault).http2(http2).start()
}

#[tokio::test]
async fn latency_delays_every_response() {
    let emulator = Emulator::builder()
        .demo()
        .latency(Duration::from_millis(150))
        .start();
    let client = client(&emulator);

    let started = Instant::now();
    let response = get(&client, VAULT, "/secrets/db-password?api-version=7.6", None).await;
    assert_eq!(response.status(), 401);
    assert!(
        started.elapsed() >= Duration::from_millis(150),
        "{:?}",
        started.elapsed()
    );

    emulator.set_latency(Duration::ZERO);
    let started = Instant::now();
    let _ = demo_token(&client).await;
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "latency can be turned off"
    );
}

#[tokio::test]
async fn concurrent_requests_are_counted() {
    let emulator = Emulator::builder()
        .demo()
        .latency(Duration::from_millis(300))
        .start();
    let client = client(&emulator);

    let mut requests = tokio::task::JoinSet::new();
    for _ in 0..16 {
        let client = client.clone();
        requests.spawn(async move {
            get(&client, VAULT, "/secrets/db-password?api-version=7.6", None)
                .await
                .status()
        });
    }
    let statuses = requests.join_all().await;
    assert!(statuses.iter().all(|status| *status == 401), "{statuses:?}");

    let stats = emulator.stats();
    assert_eq!(stats.requests_to(VAULT), 16);
    assert!(
        stats.max_in_flight >= 4,
        "requests overlapped: {}",
        stats.max_in_flight
    );
    assert!(stats.max_in_flight <= 16, "{}", stats.max_in_flight);
}

#[tokio::test]
async fn throttle_answers_excess_with_429() {
    let emulator = Emulator::builder()
        .demo()
        .throttle(Throttle {
            requests_per_second: 3,
            retry_after: Some(1),
        })
        .start();
    let client = client(&emulator);

    let started = Instant::now();
    let mut statuses = Vec::new();
    let mut last = None;
    for _ in 0..4 {
        let response = get(&client, VAULT, "/secrets/db-password?api-version=7.6", None).await;
        statuses.push(response.status().as_u16());
        last = Some(response);
    }
    assert_eq!(
        &statuses[..3],
        [401, 401, 401],
        "the first three are admitted"
    );
    if started.elapsed() < Duration::from_millis(900) {
        let response = last.expect("a response");
        assert_eq!(header(&response, "retry-after"), Some("1"));
        let body = assert_kv_error(response, 429, "Throttled", None).await;
        assert!(body["error"]["message"]
            .as_str()
            .expect("message")
            .ends_with("Reason: VaultRequestTypeLimitReached"));
    }

    emulator.set_throttle(Some(Throttle {
        requests_per_second: 1,
        retry_after: None,
    }));
    let _ = get(&client, VAULT, "/secrets/db-password?api-version=7.6", None).await;
    let started = Instant::now();
    let second = get(&client, VAULT, "/secrets/db-password?api-version=7.6", None).await;
    if started.elapsed() < Duration::from_millis(900) {
        assert_eq!(second.status(), 429);
        assert_eq!(
            header(&second, "retry-after"),
            None,
            "no Retry-After unless configured"
        );
    }
}

#[tokio::test]
async fn fail_next_then_recover() {
    let emulator = Emulator::builder()
        .demo()
        .fail_next(
            FailNext::new(2, 503)
                .retry_after(3)
                .target(FailTarget::KeyVault),
        )
        .start();
    let client = client(&emulator);

    // Token requests are not affected by a Key Vault failure.
    let token = demo_token(&client).await;
    for _ in 0..2 {
        let response = get(
            &client,
            VAULT,
            "/secrets/db-password?api-version=7.6",
            Some(&token),
        )
        .await;
        assert_eq!(header(&response, "retry-after"), Some("3"));
        assert_kv_error(response, 503, "ServiceUnavailable", None).await;
    }
    let recovered = get(
        &client,
        VAULT,
        "/secrets/db-password?api-version=7.6",
        Some(&token),
    )
    .await;
    assert_eq!(recovered.status(), 200);

    emulator.fail_next(FailNext::new(1, 429).target(FailTarget::KeyVault));
    let throttled = get(
        &client,
        VAULT,
        "/secrets/db-password?api-version=7.6",
        Some(&token),
    )
    .await;
    assert_kv_error(throttled, 429, "Throttled", None).await;

    assert_eq!(
        emulator.stats().reads_of(VAULT, "db-password"),
        4,
        "failed reads are counted"
    );
}

#[tokio::test]
async fn token_endpoint_failure() {
    let emulator = Emulator::builder()
        .demo()
        .fail_next(FailNext::new(1, 500).target(FailTarget::Token))
        .start();
    let client = client(&emulator);
    let form = [
        ("grant_type", "client_credentials"),
        ("client_id", demo::CLIENT_ID),
        ("client_secret", demo::CLIENT_SECRET),
        ("scope", "https://vault.azure.net/.default"),
    ];

    let failed = token_response(&client, "login.microsoftonline.com", demo::TENANT_ID, &form).await;
    assert_eq!(failed.status(), 500);
    let body = json_of(failed).await;
    assert_eq!(body["error"], "temporarily_unavailable");
    assert_eq!(body["error_codes"], serde_json::json!([90006]));

    let next = token_response(&client, "login.microsoftonline.com", demo::TENANT_ID, &form).await;
    assert_eq!(next.status(), 200);
    assert_eq!(
        emulator
            .stats()
            .token_requests_for(demo::TENANT_ID, "https://vault.azure.net"),
        2
    );
}

async fn check_body_faults(http2: bool) {
    let emulator = faulty_emulator(http2);
    let client = client_with(
        &emulator,
        ClientOptions {
            http1_only: !http2,
            ..ClientOptions::default()
        },
    );
    let token = demo_token(&client).await;
    let read = |name: &'static str| {
        let client = client.clone();
        let token = token.clone();
        async move {
            client
                .get(format!("https://{FAULTY}/secrets/{name}?api-version=7.6"))
                .bearer_auth(token)
                .send()
                .await
        }
    };

    // Reset after part of the body: either the headers arrive and the body fails, or the
    // whole exchange fails; it never completes.
    match read("reset").await {
        Ok(response) => assert!(
            response.bytes().await.is_err(),
            "the body of a reset response fails"
        ),
        Err(error) => assert!(!error.is_timeout(), "{error:?}"),
    }

    let truncated = read("truncated").await.expect("headers arrive");
    assert_eq!(truncated.status(), 200);
    assert!(truncated.bytes().await.is_err(), "a truncated body fails");

    let malformed = read("malformed").await.expect("answered");
    assert_eq!(malformed.status(), 200);
    let bytes = malformed.bytes().await.expect("complete body");
    assert!(
        serde_json::from_slice::<serde_json::Value>(&bytes).is_err(),
        "the body is not JSON"
    );
    assert!(String::from_utf8_lossy(&bytes).contains("malformed-canary-value"));

    let oversized = read("oversized").await.expect("answered");
    assert_eq!(oversized.status(), 200);
    assert!(
        oversized.headers().get("content-length").is_none(),
        "streamed without a length"
    );
    let bytes = oversized.bytes().await.expect("complete body");
    assert!(bytes.len() > 1024 * 1024, "{} bytes", bytes.len());
    let bundle: serde_json::Value = serde_json::from_slice(&bytes).expect("valid JSON");
    assert_eq!(bundle["value"], "oversized-canary-value");

    let flaky_first = read("flaky").await;
    assert!(flaky_first.is_err() || flaky_first.expect("response").bytes().await.is_err());
    let flaky_second = read("flaky")
        .await
        .expect("answered after the fault is used up");
    assert_eq!(flaky_second.status(), 200);

    for _ in 0..2 {
        let busy = read("busy").await.expect("answered");
        assert_eq!(header(&busy, "retry-after"), Some("2"));
        assert_kv_error(busy, 503, "ServiceUnavailable", None).await;
    }
    assert_eq!(read("busy").await.expect("answered").status(), 200);

    assert_eq!(emulator.stats().reads_of(FAULTY, "flaky"), 2);
}

#[tokio::test]
async fn body_faults_over_http2() {
    check_body_faults(true).await;
}

#[tokio::test]
async fn body_faults_over_http1() {
    check_body_faults(false).await;
}

#[tokio::test]
async fn no_response_holds_request_open() {
    let emulator = faulty_emulator(true);
    let quick = client_with(
        &emulator,
        ClientOptions {
            timeout: Duration::from_millis(400),
            ..ClientOptions::default()
        },
    );
    let token = demo_token(&quick).await;

    let result = get_result(&quick, &token).await;
    let error = result.expect_err("no answer arrives");
    assert!(error.is_timeout(), "{error:?}");

    // Dropping the emulator ends the held request; the drop must not hang.
    let started = Instant::now();
    drop(emulator);
    assert!(started.elapsed() < Duration::from_secs(10));
}

async fn get_result(client: &reqwest::Client, token: &str) -> reqwest::Result<reqwest::Response> {
    client
        .get(format!("https://{FAULTY}/secrets/silent?api-version=7.6"))
        .bearer_auth(token)
        .send()
        .await
}
