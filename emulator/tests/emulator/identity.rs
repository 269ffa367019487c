//! Managed identity endpoints: App Service protocol and the IMDS-shaped endpoint.

use crate::support::*;
use kvexec_emulator::{demo, Emulator, ManagedIdentity};

const USER_ASSIGNED: &str = "7e6d5c4b-3a29-4817-9605-f4e3d2c1b0a9";
const VAULT: &str = "kvexec-demo.vault.azure.net";

fn identity_emulator() -> Emulator {
    Emulator::builder()
        .demo()
        .managed_identity(ManagedIdentity::system_assigned(demo::TENANT_ID))
        .managed_identity(ManagedIdentity::user_assigned(
            demo::TENANT_ID,
            USER_ASSIGNED,
        ))
        .identity_header("expected-header-value")
        .start()
}

/// Requests a token from the App Service endpoint over plain HTTP, as `IDENTITY_ENDPOINT`
/// names it.
async fn app_service(emulator: &Emulator, query: &str, header: Option<&str>) -> reqwest::Response {
    let plain = client(emulator);
    let mut request = plain.get(format!("{}?{query}", emulator.identity_endpoint()));
    if let Some(header) = header {
        request = request.header("X-IDENTITY-HEADER", header);
    }
    request.send().await.expect("answered")
}

#[tokio::test]
async fn app_service_token_reads_vault() {
    let emulator = identity_emulator();
    assert_eq!(emulator.identity_header(), "expected-header-value");

    let response = app_service(
        &emulator,
        "resource=https://vault.azure.net&api-version=2019-08-01",
        Some("expected-header-value"),
    )
    .await;
    assert_eq!(response.status(), 200);
    let body = json_of(response).await;
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["resource"], "https://vault.azure.net");
    assert!(body["client_id"].is_string());
    let expires_on: i64 = body["expires_on"]
        .as_str()
        .expect("expires_on is a string")
        .parse()
        .expect("epoch seconds");
    assert!(expires_on > 1_700_000_000);

    let token = body["access_token"].as_str().expect("token");
    let client = client(&emulator);
    let secret = get(
        &client,
        VAULT,
        "/secrets/db-password?api-version=7.6",
        Some(token),
    )
    .await;
    assert_eq!(secret.status(), 200);

    let stats = emulator.stats();
    assert_eq!(
        stats.token_requests_for(demo::TENANT_ID, "https://vault.azure.net"),
        1
    );
}

#[tokio::test]
async fn app_service_selects_user_assigned() {
    let emulator = identity_emulator();

    let query = format!(
        "resource=https://vault.azure.net&api-version=2019-08-01&client_id={USER_ASSIGNED}"
    );
    let body = json_of(app_service(&emulator, &query, Some("expected-header-value")).await).await;
    assert_eq!(body["client_id"], USER_ASSIGNED);

    let query = "resource=https://vault.azure.net&api-version=2019-08-01&client_id=00000000-0000-4000-8000-000000000000";
    let unknown = app_service(&emulator, query, Some("expected-header-value")).await;
    assert_eq!(unknown.status(), 400);
    assert_eq!(
        json_of(unknown).await["message"],
        "Unable to load the proper Managed Identity."
    );
}

#[tokio::test]
async fn app_service_requires_identity_header() {
    let emulator = identity_emulator();
    let query = "resource=https://vault.azure.net&api-version=2019-08-01";

    let missing = app_service(&emulator, query, None).await;
    assert_eq!(missing.status(), 401);
    let wrong = app_service(&emulator, query, Some("guessed")).await;
    assert_eq!(wrong.status(), 401);
    assert!(emulator.stats().issued_tokens.is_empty());
}

#[tokio::test]
async fn imds_requires_metadata_header() {
    let emulator = identity_emulator();
    let plain = client(&emulator);
    let url = format!(
        "{}/metadata/identity/oauth2/token?api-version=2019-08-01&resource=https://vault.azure.net",
        emulator.imds_endpoint()
    );

    let without = plain.get(&url).send().await.expect("answered");
    assert_eq!(without.status(), 400);
    let body = json_of(without).await;
    assert_eq!(body["error"], "bad_request_102");
    assert_eq!(
        body["error_description"],
        "Required metadata header not specified"
    );

    let with = plain
        .get(&url)
        .header("Metadata", "true")
        .send()
        .await
        .expect("answered");
    assert_eq!(with.status(), 200);
    let body = json_of(with).await;
    for field in [
        "access_token",
        "client_id",
        "expires_in",
        "expires_on",
        "ext_expires_in",
        "not_before",
        "resource",
        "token_type",
    ] {
        assert!(body[field].is_string(), "{field} in {body}");
    }
}

#[tokio::test]
async fn identity_endpoints_also_served_over_tls() {
    let emulator = identity_emulator();
    let client = client(&emulator);
    let url = format!(
        "https://localhost:{}/metadata/identity/oauth2/token?api-version=2019-08-01&resource=https://vault.azure.net",
        emulator.port()
    );
    let response = client
        .get(url)
        .header("Metadata", "true")
        .send()
        .await
        .expect("answered");
    assert_eq!(response.status(), 200);
}

#[tokio::test]
async fn plain_http_serves_only_identity_paths() {
    let emulator = identity_emulator();
    let plain = client(&emulator);

    let result = plain
        .get(format!(
            "http://127.0.0.1:{}/secrets/db-password?api-version=7.6",
            emulator.port()
        ))
        .header("host", VAULT)
        .send()
        .await;
    assert!(
        result.is_err(),
        "a vault request over plain HTTP gets no answer"
    );
}
