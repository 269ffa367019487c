//! TLS, certificate names, HTTP versions, routing by host and request counters.

use crate::support::*;
use kvexec_emulator::{demo, Cloud, Emulator, Secret, Vault};
use reqwest::Version;

const VAULT: &str = "kvexec-demo.vault.azure.net";

#[tokio::test]
async fn ca_file_holds_the_ca() {
    let emulator = Emulator::builder().start();
    let on_disk = std::fs::read_to_string(emulator.ca_pem_path()).expect("the CA file exists");
    assert_eq!(on_disk, emulator.ca_pem());
    assert!(on_disk.starts_with("-----BEGIN CERTIFICATE-----"));

    let path = emulator.ca_pem_path().to_path_buf();
    drop(emulator);
    assert!(!path.exists(), "the temporary CA file is removed on drop");
}

#[tokio::test]
async fn resolve_args_cover_every_cloud() {
    let emulator = Emulator::builder().start();
    let port = emulator.port();
    assert_eq!(
        emulator.resolve_args(),
        format!(
            "*.vault.azure.net=127.0.0.1:{port},*.vault.azure.cn=127.0.0.1:{port},*.vault.usgovcloudapi.net=127.0.0.1:{port},\
             login.microsoftonline.com=127.0.0.1:{port},login.chinacloudapi.cn=127.0.0.1:{port},login.microsoftonline.us=127.0.0.1:{port}"
        )
    );
}

#[tokio::test]
async fn http2_and_http1_both_served() {
    let emulator = Emulator::builder().demo().start();

    let h2 = client(&emulator);
    let response = get(&h2, VAULT, "/secrets/db-password?api-version=7.6", None).await;
    assert_eq!(response.version(), Version::HTTP_2);

    let h1 = client_with(
        &emulator,
        ClientOptions {
            http1_only: true,
            ..ClientOptions::default()
        },
    );
    let response = get(&h1, VAULT, "/secrets/db-password?api-version=7.6", None).await;
    assert_eq!(response.version(), Version::HTTP_11);

    let stats = emulator.stats();
    assert_eq!(stats.tls_connections, 2);
    assert_eq!(stats.http2_connections, 1);
}

#[tokio::test]
async fn http2_can_be_turned_off() {
    let emulator = Emulator::builder().demo().http2(false).start();
    let response = get(
        &client(&emulator),
        VAULT,
        "/secrets/db-password?api-version=7.6",
        None,
    )
    .await;
    assert_eq!(response.version(), Version::HTTP_11);
}

#[tokio::test]
async fn certificate_names_every_host() {
    let emulator = Emulator::builder()
        .demo()
        .vault(Vault::new("cn-vault", demo::TENANT_ID).cloud(Cloud::china()))
        .vault(Vault::new("gov-vault", demo::TENANT_ID).cloud(Cloud::us_government()))
        .start();
    let client = client(&emulator);

    for host in [
        "kvexec-demo.vault.azure.net",
        "cn-vault.vault.azure.cn",
        "gov-vault.vault.usgovcloudapi.net",
    ] {
        let response = get(&client, host, "/secrets/x?api-version=7.6", None).await;
        assert_eq!(response.status(), 401, "{host}");
    }
    for login in [
        "login.microsoftonline.com",
        "login.chinacloudapi.cn",
        "login.microsoftonline.us",
    ] {
        let url = format!(
            "https://{login}/{}/v2.0/.well-known/openid-configuration",
            demo::TENANT_ID
        );
        let response = client.get(url).send().await.expect("TLS and HTTP succeed");
        assert_eq!(response.status(), 200, "{login}");
    }

    let error = client
        .get("https://not-in-certificate.example/")
        .send()
        .await
        .expect_err("a name outside the certificate fails verification");
    assert!(error.is_connect(), "{error:?}");
}

#[tokio::test]
async fn extra_san_is_trusted() {
    let emulator = Emulator::builder()
        .demo()
        .extra_san("not-in-certificate.example")
        .start();
    let client = client(&emulator);

    // The name is in the certificate now; the emulator still resets unknown hosts.
    let result = client
        .get("https://not-in-certificate.example/")
        .send()
        .await;
    let error = result.expect_err("unknown hosts get no answer");
    assert!(
        !error.is_connect(),
        "the TLS handshake succeeded: {error:?}"
    );
    assert_eq!(
        emulator.stats().requests_to("not-in-certificate.example"),
        1
    );
}

#[tokio::test]
async fn other_emulator_ca_is_not_trusted() {
    let emulator = Emulator::builder().demo().start();
    let stranger = Emulator::builder().start();
    let client = client_with(
        &emulator,
        ClientOptions {
            ca_pem: Some(stranger.ca_pem().to_string()),
            ..ClientOptions::default()
        },
    );

    let error = client
        .get(format!(
            "https://{VAULT}/secrets/db-password?api-version=7.6"
        ))
        .send()
        .await
        .expect_err("the handshake fails");
    assert!(error.is_connect(), "{error:?}");
    assert_eq!(emulator.stats().tls_connections, 0);
    assert_eq!(emulator.stats().tcp_connections, 1);
}

/// A second emulator playing a look-alike host records any token sent to it, so a test can
/// prove a client sent none.
#[tokio::test]
async fn look_alike_host_records_tokens() {
    let evil_cloud = Cloud::custom(
        "EvilCloud",
        "vault.azure.net.evil.example",
        "login.evil.example",
        "https://vault.azure.net",
    );
    let evil = Emulator::builder()
        .cloud(evil_cloud.clone())
        .vault(
            Vault::new("kvexec-demo", demo::TENANT_ID)
                .cloud(evil_cloud)
                .secret(Secret::new("db-password", "bait")),
        )
        .start();
    assert!(evil
        .resolve_args()
        .contains("*.vault.azure.net.evil.example="));
    let client = client(&evil);
    let host = "kvexec-demo.vault.azure.net.evil.example";

    let challenge = get(&client, host, "/secrets/db-password?api-version=7.6", None).await;
    assert_eq!(
        header(&challenge, "www-authenticate"),
        Some(format!("Bearer authorization=\"https://login.evil.example/{}\", resource=\"https://vault.azure.net\"", demo::TENANT_ID).as_str()),
        "the look-alike asks for a real Key Vault token"
    );
    assert!(evil.stats().authorization_sent_to(host).is_empty());

    let _ = get(
        &client,
        host,
        "/secrets/db-password?api-version=7.6",
        Some("stolen-token"),
    )
    .await;
    assert_eq!(
        evil.stats().authorization_sent_to(host),
        ["stolen-token".to_string()]
    );
}

#[tokio::test]
async fn stats_reset() {
    let emulator = Emulator::builder().demo().start();
    let client = client(&emulator);
    let token = demo_token(&client).await;
    let _ = get(
        &client,
        VAULT,
        "/secrets/db-password?api-version=7.6",
        Some(&token),
    )
    .await;
    assert_eq!(emulator.stats().total_secret_reads(), 1);
    assert_eq!(
        emulator.stats().authorization_sent_to(VAULT),
        std::slice::from_ref(&token)
    );

    emulator.reset_stats();
    let stats = emulator.stats();
    assert_eq!(stats.total_secret_reads(), 0);
    assert_eq!(stats.total_requests(), 0);
    assert!(stats.issued_tokens.is_empty());

    let again = get(
        &client,
        VAULT,
        "/secrets/db-password?api-version=7.6",
        Some(&token),
    )
    .await;
    assert_eq!(again.status(), 200, "tokens stay valid after a reset");
}
