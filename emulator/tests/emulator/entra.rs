//! Entra ID token endpoint, discovery documents and AADSTS errors.

use crate::support::*;
use base64::Engine;
use kvexec_emulator::{
    demo, App, AssertionRequest, AssertionVerdict, AssertionVerifier, Emulator, EntraError, Tenant,
};
use serde_json::Value;
use std::sync::Arc;

const LOGIN: &str = "login.microsoftonline.com";
const SCOPE: &str = "https://vault.azure.net/.default";
const JWT_BEARER: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";
const WORKLOAD_CLIENT: &str = "3c2b1a09-8f7e-4d6c-9b5a-4a3b2c1d0e9f";

fn unsigned_jwt(claims: &str) -> String {
    let encode = |bytes: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
    format!(
        "{}.{}.{}",
        encode(br#"{"alg":"RS256","typ":"JWT"}"#),
        encode(claims.as_bytes()),
        encode(b"signature")
    )
}

fn is_guid(value: &Value) -> bool {
    value
        .as_str()
        .is_some_and(|text| uuid::Uuid::try_parse(text).is_ok())
}

/// Asserts the Entra ID error shape and returns the body.
async fn assert_entra_error(
    response: reqwest::Response,
    status: u16,
    error: &str,
    code: u64,
) -> Value {
    assert_eq!(response.status(), status, "HTTP status for AADSTS{code}");
    assert_eq!(
        header(&response, "content-type"),
        Some("application/json; charset=utf-8")
    );
    let body = json_of(response).await;
    assert_eq!(body["error"], error, "error in {body}");
    assert_eq!(
        body["error_codes"],
        serde_json::json!([code]),
        "error_codes in {body}"
    );
    assert!(is_guid(&body["trace_id"]), "trace_id in {body}");
    assert!(is_guid(&body["correlation_id"]), "correlation_id in {body}");
    assert_eq!(
        body["error_uri"],
        format!("https://{LOGIN}/error?code={code}")
    );

    let timestamp = body["timestamp"].as_str().expect("timestamp");
    assert_eq!(timestamp.len(), "2023-05-06 06:03:00Z".len(), "{timestamp}");
    assert!(
        timestamp.ends_with('Z') && timestamp.as_bytes()[10] == b' ',
        "{timestamp}"
    );

    let description = body["error_description"]
        .as_str()
        .expect("error_description");
    let expected_tail = format!(
        "\r\nTrace ID: {}\r\nCorrelation ID: {}\r\nTimestamp: {timestamp}",
        body["trace_id"].as_str().expect("trace id"),
        body["correlation_id"].as_str().expect("correlation id"),
    );
    assert!(
        description.starts_with(&format!("AADSTS{code}: ")),
        "{description}"
    );
    assert!(description.ends_with(&expected_tail), "{description}");
    body
}

fn credentials<'a>(client_id: &'a str, secret: &'a str) -> Vec<(&'a str, &'a str)> {
    vec![
        ("grant_type", "client_credentials"),
        ("client_id", client_id),
        ("client_secret", secret),
        ("scope", SCOPE),
    ]
}

#[tokio::test]
async fn client_secret_grant_issues_token() {
    let emulator = Emulator::builder().demo().start();
    let client = client(&emulator);

    let response = token_response(
        &client,
        LOGIN,
        demo::TENANT_ID,
        &credentials(demo::CLIENT_ID, demo::CLIENT_SECRET),
    )
    .await;
    assert_eq!(response.status(), 200);
    assert_eq!(
        header(&response, "cache-control"),
        Some("no-store, no-cache")
    );
    let body = json_of(response).await;
    let keys: Vec<&str> = body
        .as_object()
        .expect("object")
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(
        keys,
        ["token_type", "expires_in", "ext_expires_in", "access_token"]
    );
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["expires_in"], 3599);
    assert_eq!(body["ext_expires_in"], 3599);

    let token = body["access_token"].as_str().expect("token");
    let stats = emulator.stats();
    assert_eq!(
        stats.token_requests_for(demo::TENANT_ID, "https://vault.azure.net"),
        1
    );
    assert_eq!(stats.issued_tokens, [token.to_string()]);
}

#[tokio::test]
async fn tenant_domain_and_extra_scopes_accepted() {
    let emulator = Emulator::builder().demo().start();
    let client = client(&emulator);

    let form = [
        ("grant_type", "client_credentials"),
        ("client_id", demo::CLIENT_ID),
        ("client_secret", demo::CLIENT_SECRET),
        (
            "scope",
            "https://vault.azure.net/.default openid profile offline_access",
        ),
    ];
    let response = token_response(&client, LOGIN, demo::TENANT_DOMAIN, &form).await;
    assert_eq!(response.status(), 200);

    // The count is keyed by tenant id even when the URL names a domain.
    let stats = emulator.stats();
    assert_eq!(
        stats.token_requests_for(demo::TENANT_ID, "https://vault.azure.net"),
        1
    );
}

#[tokio::test]
async fn basic_authentication_accepted() {
    let emulator = Emulator::builder().demo().start();
    let client = client(&emulator);

    let response = client
        .post(format!(
            "https://{LOGIN}/{}/oauth2/v2.0/token",
            demo::TENANT_ID
        ))
        .basic_auth(demo::CLIENT_ID, Some(demo::CLIENT_SECRET))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(form_body(&[
            ("grant_type", "client_credentials"),
            ("scope", SCOPE),
        ]))
        .send()
        .await
        .expect("answered");
    assert_eq!(response.status(), 200);
}

#[tokio::test]
async fn credential_errors_match_entra() {
    let expired_client = "9d8c7b6a-5f4e-4d3c-8b2a-1f0e9d8c7b6a";
    let emulator = Emulator::builder()
        .demo()
        .app(App::new(demo::TENANT_ID, expired_client).expired_client_secret("old-secret"))
        .start();
    let client = client(&emulator);

    let wrong = token_response(
        &client,
        LOGIN,
        demo::TENANT_ID,
        &credentials(demo::CLIENT_ID, "wrong"),
    )
    .await;
    let body = assert_entra_error(wrong, 401, "invalid_client", 7000215).await;
    let description = body["error_description"].as_str().expect("description");
    assert!(
        description.contains("client secret value, not the client secret ID"),
        "{description}"
    );
    assert!(description.contains(demo::CLIENT_ID), "{description}");

    let expired = token_response(
        &client,
        LOGIN,
        demo::TENANT_ID,
        &credentials(expired_client, "old-secret"),
    )
    .await;
    assert_entra_error(expired, 401, "invalid_client", 7000222).await;

    let unknown_app = "00000000-1111-4222-8333-444444444444";
    let missing_app = token_response(
        &client,
        LOGIN,
        demo::TENANT_ID,
        &credentials(unknown_app, "x"),
    )
    .await;
    let body = assert_entra_error(missing_app, 400, "unauthorized_client", 700016).await;
    let description = body["error_description"].as_str().expect("description");
    assert!(description.contains(&format!("Application with identifier '{unknown_app}' was not found in the directory 'kvexec demo'")), "{description}");

    let no_credential = token_response(
        &client,
        LOGIN,
        demo::TENANT_ID,
        &[
            ("grant_type", "client_credentials"),
            ("client_id", demo::CLIENT_ID),
            ("scope", SCOPE),
        ],
    )
    .await;
    let body = assert_entra_error(no_credential, 401, "invalid_client", 7000218).await;
    assert!(body["error_description"]
        .as_str()
        .expect("description")
        .starts_with("AADSTS7000218: The request body must contain the following parameter: 'client_assertion' or 'client_secret'."));
}

#[tokio::test]
async fn tenant_errors_match_entra() {
    let emulator = Emulator::builder().demo().start();
    let client = client(&emulator);
    let form = credentials(demo::CLIENT_ID, demo::CLIENT_SECRET);

    let missing = "99999999-8888-4777-8666-555555555555";
    let not_found = token_response(&client, LOGIN, missing, &form).await;
    let body = assert_entra_error(not_found, 400, "invalid_request", 90002).await;
    assert!(body["error_description"]
        .as_str()
        .expect("description")
        .contains(&format!("Tenant '{missing}' not found")));

    let malformed = token_response(&client, LOGIN, "not_a_tenant", &form).await;
    let body = assert_entra_error(malformed, 400, "invalid_request", 900023).await;
    assert!(body["error_description"]
        .as_str()
        .expect("description")
        .contains("Specified tenant identifier 'not_a_tenant' is neither a valid DNS name, nor a valid external domain."));

    let common = token_response(&client, LOGIN, "common", &form).await;
    assert_entra_error(common, 400, "invalid_request", 9001023).await;

    let stats = emulator.stats();
    assert_eq!(
        stats.token_requests_for(missing, "https://vault.azure.net"),
        1,
        "failed requests are counted"
    );
}

#[tokio::test]
async fn scope_errors_match_entra() {
    let emulator = Emulator::builder().demo().start();
    let client = client(&emulator);
    let with_scope = |scope: &'static str| {
        vec![
            ("grant_type", "client_credentials"),
            ("client_id", demo::CLIENT_ID),
            ("client_secret", demo::CLIENT_SECRET),
            ("scope", scope),
        ]
    };

    let two = token_response(
        &client,
        LOGIN,
        demo::TENANT_ID,
        &with_scope("https://vault.azure.net/.default https://vault.azure.cn/.default"),
    )
    .await;
    assert_entra_error(two, 400, "invalid_scope", 70011).await;

    let only_openid = token_response(&client, LOGIN, demo::TENANT_ID, &with_scope("openid")).await;
    assert_entra_error(only_openid, 400, "invalid_scope", 70011).await;

    let no_default = token_response(
        &client,
        LOGIN,
        demo::TENANT_ID,
        &with_scope("https://vault.azure.net/user_impersonation"),
    )
    .await;
    assert_entra_error(no_default, 400, "invalid_scope", 1002012).await;

    let other_cloud = token_response(
        &client,
        LOGIN,
        demo::TENANT_ID,
        &with_scope("https://vault.azure.cn/.default"),
    )
    .await;
    let body = assert_entra_error(other_cloud, 400, "invalid_resource", 500011).await;
    assert!(body["error_description"]
        .as_str()
        .expect("description")
        .contains("The resource principal named https://vault.azure.cn was not found in the tenant named kvexec demo."));

    let missing = token_response(
        &client,
        LOGIN,
        demo::TENANT_ID,
        &[
            ("grant_type", "client_credentials"),
            ("client_id", demo::CLIENT_ID),
            ("client_secret", demo::CLIENT_SECRET),
        ],
    )
    .await;
    assert_entra_error(missing, 400, "invalid_request", 900144).await;

    let wrong_grant = token_response(
        &client,
        LOGIN,
        demo::TENANT_ID,
        &[
            ("grant_type", "password"),
            ("client_id", demo::CLIENT_ID),
            ("scope", SCOPE),
        ],
    )
    .await;
    assert_entra_error(wrong_grant, 400, "unsupported_grant_type", 70003).await;
}

#[tokio::test]
async fn correlation_id_echoes_client_request_id() {
    let emulator = Emulator::builder().demo().start();
    let client = client(&emulator);
    let correlation = "0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d";

    let response = client
        .post(format!(
            "https://{LOGIN}/{}/oauth2/v2.0/token",
            demo::TENANT_ID
        ))
        .header("client-request-id", correlation)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(form_body(&credentials(demo::CLIENT_ID, "wrong")))
        .send()
        .await
        .expect("answered");
    assert_eq!(header(&response, "client-request-id"), Some(correlation));
    let body = assert_entra_error(response, 401, "invalid_client", 7000215).await;
    assert_eq!(body["correlation_id"], correlation);
}

fn workload_emulator(federated: &str, expired: &str) -> Emulator {
    Emulator::builder()
        .demo()
        .app(
            App::new(demo::TENANT_ID, WORKLOAD_CLIENT)
                .federated_token(federated)
                .expired_federated_token(expired),
        )
        .start()
}

fn assertion_form(assertion: &str) -> Vec<(&'static str, String)> {
    vec![
        ("grant_type", "client_credentials".to_string()),
        ("client_id", WORKLOAD_CLIENT.to_string()),
        ("client_assertion_type", JWT_BEARER.to_string()),
        ("client_assertion", assertion.to_string()),
        ("scope", SCOPE.to_string()),
    ]
}

async fn assertion_response(client: &reqwest::Client, assertion: &str) -> reqwest::Response {
    let form = assertion_form(assertion);
    let pairs: Vec<(&str, &str)> = form
        .iter()
        .map(|(key, value)| (*key, value.as_str()))
        .collect();
    token_response(client, LOGIN, demo::TENANT_ID, &pairs).await
}

#[tokio::test]
async fn federated_assertions() {
    let valid = unsigned_jwt(
        r#"{"iss":"https://oidc.example/issuer","sub":"system:serviceaccount:jobs:runner","aud":"api://AzureADTokenExchange","exp":4102444800}"#,
    );
    let expired = unsigned_jwt(
        r#"{"iss":"https://oidc.example/issuer","sub":"system:serviceaccount:jobs:runner","aud":"api://AzureADTokenExchange","nbf":1673269751,"exp":1673273351}"#,
    );
    let emulator = workload_emulator(&valid, &expired);
    let client = client(&emulator);

    let accepted = assertion_response(&client, &valid).await;
    assert_eq!(accepted.status(), 200);

    let too_old = assertion_response(&client, &expired).await;
    let body = assert_entra_error(too_old, 401, "invalid_client", 700024).await;
    let description = body["error_description"].as_str().expect("description");
    assert!(
        description.contains("Client assertion is not within its valid time range."),
        "{description}"
    );
    assert!(description.contains("assertion valid from 2023-01-09T13:09:11.0000000Z, expiry time of assertion 2023-01-09T14:09:11.0000000Z"), "{description}");

    let stranger = unsigned_jwt(
        r#"{"iss":"https://kubernetes.default.svc.cluster.local","sub":"system:serviceaccount:default:other","aud":"api://AzureADTokenExchange","exp":4102444800}"#,
    );
    let unmatched = assertion_response(&client, &stranger).await;
    let body = assert_entra_error(unmatched, 400, "invalid_request", 70021).await;
    let description = body["error_description"].as_str().expect("description");
    assert!(description.contains("Assertion Issuer: 'https://kubernetes.default.svc.cluster.local'. Assertion Subject: 'system:serviceaccount:default:other'. Assertion Audience: 'api://AzureADTokenExchange'."), "{description}");

    let garbage = assertion_response(&client, "not-a-jwt").await;
    assert_entra_error(garbage, 400, "invalid_request", 50027).await;
}

struct AcceptsMarker;

impl AssertionVerifier for AcceptsMarker {
    fn verify(&self, request: &AssertionRequest<'_>) -> AssertionVerdict {
        assert_eq!(
            request.token_endpoint,
            format!("https://{LOGIN}/{}/oauth2/v2.0/token", demo::TENANT_ID)
        );
        match request.assertion {
            "signed-by-registered-certificate" => AssertionVerdict::Accept,
            "signed-by-other-certificate" => {
                AssertionVerdict::Reject(EntraError::signature_invalid())
            }
            _ => AssertionVerdict::NotApplicable,
        }
    }
}

#[tokio::test]
async fn assertion_verifier_extension() {
    let emulator = Emulator::builder()
        .demo()
        .app(App::new(demo::TENANT_ID, WORKLOAD_CLIENT).assertion_verifier(Arc::new(AcceptsMarker)))
        .start();
    let client = client(&emulator);

    let accepted = assertion_response(&client, "signed-by-registered-certificate").await;
    assert_eq!(accepted.status(), 200);

    let rejected = assertion_response(&client, "signed-by-other-certificate").await;
    assert_entra_error(rejected, 401, "invalid_client", 700027).await;

    let self_issued = unsigned_jwt(&format!(
        r#"{{"iss":"{WORKLOAD_CLIENT}","sub":"{WORKLOAD_CLIENT}","exp":4102444800}}"#
    ));
    let unverified = assertion_response(&client, &self_issued).await;
    assert_entra_error(unverified, 401, "invalid_client", 700027).await;
}

#[tokio::test]
async fn openid_configuration_and_instance_discovery() {
    let emulator = Emulator::builder().demo().start();
    let client = client(&emulator);

    let url = format!(
        "https://{LOGIN}/{}/v2.0/.well-known/openid-configuration",
        demo::TENANT_DOMAIN
    );
    let response = client.get(url).send().await.expect("answered");
    assert_eq!(response.status(), 200);
    let configuration = json_of(response).await;
    assert_eq!(
        configuration["token_endpoint"],
        format!("https://{LOGIN}/{}/oauth2/v2.0/token", demo::TENANT_ID)
    );
    assert_eq!(
        configuration["issuer"],
        format!("https://{LOGIN}/{}/v2.0", demo::TENANT_ID)
    );
    assert!(configuration["authorization_endpoint"].is_string());

    let unknown = client
        .get(format!("https://{LOGIN}/99999999-8888-4777-8666-555555555555/v2.0/.well-known/openid-configuration"))
        .send()
        .await
        .expect("answered");
    assert_entra_error(unknown, 400, "invalid_tenant", 90002).await;

    let authorize = format!("https://{LOGIN}/{}/oauth2/v2.0/authorize", demo::TENANT_ID);
    let query = form_body(&[
        ("api-version", "1.1"),
        ("authorization_endpoint", authorize.as_str()),
    ]);
    let discovery = client
        .get(format!("https://{LOGIN}/common/discovery/instance?{query}"))
        .send()
        .await
        .expect("answered");
    assert_eq!(discovery.status(), 200);
    let body = json_of(discovery).await;
    assert_eq!(
        body["tenant_discovery_endpoint"],
        format!(
            "https://{LOGIN}/{}/v2.0/.well-known/openid-configuration",
            demo::TENANT_ID
        )
    );
    let aliases: Vec<&str> = body["metadata"]
        .as_array()
        .expect("metadata")
        .iter()
        .filter_map(|entry| entry["preferred_network"].as_str())
        .collect();
    assert!(
        aliases.contains(&LOGIN) && aliases.contains(&"login.chinacloudapi.cn"),
        "{aliases:?}"
    );
}

#[tokio::test]
async fn tenants_are_separate() {
    let second_tenant = "abcdefab-cdef-4abc-8def-abcdefabcdef";
    let emulator = Emulator::builder()
        .demo()
        .tenant(Tenant::new(second_tenant).display_name("second"))
        .start();
    let client = client(&emulator);

    // The demo application exists only in the demo tenant.
    let response = token_response(
        &client,
        LOGIN,
        second_tenant,
        &credentials(demo::CLIENT_ID, demo::CLIENT_SECRET),
    )
    .await;
    assert_entra_error(response, 400, "unauthorized_client", 700016).await;
}
