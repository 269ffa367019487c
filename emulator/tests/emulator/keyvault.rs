//! Key Vault `GET /secrets/...`: challenge, bundles, errors and authorisation.

use crate::support::*;
use kvexec_emulator::{
    demo, App, Cloud, Emulator, PermissionModel, Secret, Tenant, UnknownVault, Vault,
};

const VAULT: &str = "kvexec-demo.vault.azure.net";
const OTHER_TENANT: &str = "11111111-2222-4333-8444-555555555555";
const OTHER_CLIENT: &str = "66666666-7777-4888-9999-aaaaaaaaaaaa";

#[tokio::test]
async fn challenge_without_token() {
    let emulator = Emulator::builder().demo().start();
    let client = client(&emulator);

    let response = get(
        &client,
        VAULT,
        "/secrets/db-password/?api-version=7.6",
        None,
    )
    .await;

    assert_eq!(
        header(&response, "www-authenticate"),
        Some(format!("Bearer authorization=\"https://login.windows.net/{}\", resource=\"https://vault.azure.net\"", demo::TENANT_ID).as_str())
    );
    assert_eq!(header(&response, "cache-control"), Some("no-cache"));
    let body = assert_kv_error(response, 401, "Unauthorized", None).await;
    assert_eq!(
        body["error"]["message"],
        "AKV10000: Request is missing a Bearer or PoP token."
    );

    let empty = get(
        &client,
        VAULT,
        "/secrets/db-password?api-version=7.6",
        Some(""),
    )
    .await;
    assert_kv_error(empty, 401, "Unauthorized", None).await;
}

#[tokio::test]
async fn challenge_names_cloud_resource() {
    let emulator = Emulator::builder()
        .demo()
        .vault(Vault::new("cn-vault", demo::TENANT_ID).cloud(Cloud::china()))
        .vault(Vault::new("gov-vault", demo::TENANT_ID).cloud(Cloud::us_government()))
        .start();
    let client = client(&emulator);

    let china = get(
        &client,
        "cn-vault.vault.azure.cn",
        "/secrets/x?api-version=7.6",
        None,
    )
    .await;
    let challenge = header(&china, "www-authenticate")
        .expect("challenge")
        .to_string();
    assert!(
        challenge.ends_with("resource=\"https://vault.azure.cn\""),
        "{challenge}"
    );
    assert!(challenge.contains(demo::TENANT_ID), "{challenge}");

    let gov = get(
        &client,
        "gov-vault.vault.usgovcloudapi.net",
        "/secrets/x?api-version=7.6",
        None,
    )
    .await;
    let challenge = header(&gov, "www-authenticate")
        .expect("challenge")
        .to_string();
    assert!(
        challenge.ends_with("resource=\"https://vault.usgovcloudapi.net\""),
        "{challenge}"
    );
}

#[tokio::test]
async fn secret_bundle_latest_and_versions() {
    let emulator = Emulator::builder().demo().start();
    let client = client(&emulator);
    let token = demo_token(&client).await;

    let latest = get(
        &client,
        VAULT,
        "/secrets/rotated-token?api-version=7.6",
        Some(&token),
    )
    .await;
    assert_eq!(latest.status(), 200);
    assert_eq!(
        header(&latest, "content-type"),
        Some("application/json; charset=utf-8")
    );
    let body = json_of(latest).await;
    assert_eq!(body["value"], demo::ROTATED_NEW_VALUE);
    assert_eq!(
        body["id"],
        format!(
            "https://{VAULT}/secrets/rotated-token/{}",
            demo::ROTATED_NEW_VERSION
        )
    );
    let attributes = &body["attributes"];
    assert_eq!(attributes["enabled"], true);
    assert!(attributes["created"].is_i64());
    assert!(attributes["updated"].is_i64());
    assert_eq!(attributes["recoveryLevel"], "Recoverable+Purgeable");
    assert_eq!(attributes["recoverableDays"], 90);
    assert!(
        body.get("contentType").is_none(),
        "no contentType when unset: {body}"
    );
    assert!(body.get("tags").is_none(), "no tags when unset: {body}");

    let old_path = format!(
        "/secrets/rotated-token/{}?api-version=7.6",
        demo::ROTATED_OLD_VERSION
    );
    let old = json_of(get(&client, VAULT, &old_path, Some(&token)).await).await;
    assert_eq!(old["value"], demo::ROTATED_OLD_VALUE);

    let old_slash = format!(
        "/secrets/rotated-token/{}/?api-version=7.6",
        demo::ROTATED_OLD_VERSION
    );
    let old_again = json_of(get(&client, VAULT, &old_slash, Some(&token)).await).await;
    assert_eq!(old_again["value"], demo::ROTATED_OLD_VALUE);

    let json_secret = json_of(
        get(
            &client,
            VAULT,
            "/secrets/app-settings/?api-version=2025-07-01",
            Some(&token),
        )
        .await,
    )
    .await;
    assert_eq!(json_secret["value"], demo::JSON_VALUE);
    assert_eq!(json_secret["contentType"], "application/json");
    assert_eq!(json_secret["tags"]["owner"], "kvexec-demo");

    let multiline = json_of(
        get(
            &client,
            VAULT,
            "/secrets/multiline-config?api-version=7.4",
            Some(&token),
        )
        .await,
    )
    .await;
    assert_eq!(multiline["value"], demo::MULTILINE_VALUE);
}

#[tokio::test]
async fn names_and_versions_ignore_case() {
    let emulator = Emulator::builder().demo().start();
    let client = client(&emulator);
    let token = demo_token(&client).await;

    let upper = json_of(
        get(
            &client,
            VAULT,
            "/secrets/DB-Password?api-version=7.6",
            Some(&token),
        )
        .await,
    )
    .await;
    assert_eq!(upper["value"], demo::PASSWORD_VALUE);
    assert!(upper["id"]
        .as_str()
        .expect("id")
        .contains("/secrets/db-password/"));

    let version = demo::ROTATED_OLD_VERSION.to_ascii_uppercase();
    let path = format!("/secrets/ROTATED-TOKEN/{version}?api-version=7.6");
    let old = json_of(get(&client, VAULT, &path, Some(&token)).await).await;
    assert_eq!(old["value"], demo::ROTATED_OLD_VALUE);

    let stats = emulator.stats();
    assert_eq!(stats.reads_of(VAULT, "db-password"), 1);
    assert_eq!(stats.reads_of(VAULT, "rotated-token"), 1);
}

#[tokio::test]
async fn missing_secret_and_version() {
    let emulator = Emulator::builder().demo().start();
    let client = client(&emulator);
    let token = demo_token(&client).await;

    let missing = get(
        &client,
        VAULT,
        "/secrets/No-Such-Secret?api-version=7.6",
        Some(&token),
    )
    .await;
    let body = assert_kv_error(missing, 404, "SecretNotFound", None).await;
    assert_eq!(
        body["error"]["message"],
        "A secret with (name/id) No-Such-Secret was not found in this key vault. If you recently deleted this secret you may be able to recover it using the correct recovery command. For help resolving this issue, please see https://go.microsoft.com/fwlink/?linkid=2125182"
    );

    let version = "00000000000000000000000000000000";
    let path = format!("/secrets/db-password/{version}?api-version=7.6");
    let missing_version = get(&client, VAULT, &path, Some(&token)).await;
    let body = assert_kv_error(missing_version, 404, "SecretNotFound", None).await;
    let message = body["error"]["message"].as_str().expect("message");
    assert!(
        message.starts_with(&format!(
            "A secret with (name/id) db-password/{version} was not found"
        )),
        "{message}"
    );
}

#[tokio::test]
async fn disabled_secret_is_forbidden() {
    let emulator = Emulator::builder().demo().start();
    let client = client(&emulator);
    let token = demo_token(&client).await;

    let response = get(
        &client,
        VAULT,
        "/secrets/retired-api-key?api-version=7.6",
        Some(&token),
    )
    .await;
    let body = assert_kv_error(response, 403, "Forbidden", Some("SecretDisabled")).await;
    assert_eq!(
        body["error"]["message"],
        "Operation get is not allowed on a disabled secret."
    );
}

#[tokio::test]
async fn api_version_required_and_checked() {
    let emulator = Emulator::builder().demo().start();
    let client = client(&emulator);
    let token = demo_token(&client).await;

    let missing = get(&client, VAULT, "/secrets/db-password", Some(&token)).await;
    assert_kv_error(missing, 400, "BadParameter", None).await;

    let unknown = get(
        &client,
        VAULT,
        "/secrets/db-password?api-version=1.0",
        Some(&token),
    )
    .await;
    let body = assert_kv_error(unknown, 400, "BadParameter", None).await;
    assert!(body["error"]["message"]
        .as_str()
        .expect("message")
        .contains("(1.0)"));

    for version in ["7.4", "7.5", "7.6", "2025-07-01", "2026-04-01"] {
        let path = format!("/secrets/db-password?api-version={version}");
        let response = get(&client, VAULT, &path, Some(&token)).await;
        assert_eq!(response.status(), 200, "api-version {version}");
    }
}

#[tokio::test]
async fn token_from_other_tenant_is_rejected() {
    let emulator = Emulator::builder()
        .demo()
        .tenant(Tenant::new(OTHER_TENANT))
        .app(App::new(OTHER_TENANT, OTHER_CLIENT).client_secret("other-secret"))
        .start();
    let client = client(&emulator);
    let response = token_response(
        &client,
        "login.microsoftonline.com",
        OTHER_TENANT,
        &[
            ("grant_type", "client_credentials"),
            ("client_id", OTHER_CLIENT),
            ("client_secret", "other-secret"),
            ("scope", "https://vault.azure.net/.default"),
        ],
    )
    .await;
    let token = json_of(response).await["access_token"]
        .as_str()
        .expect("token")
        .to_string();

    let rejected = get(
        &client,
        VAULT,
        "/secrets/db-password?api-version=7.6",
        Some(&token),
    )
    .await;
    let challenge = header(&rejected, "www-authenticate")
        .expect("challenge")
        .to_string();
    assert!(
        challenge.contains(demo::TENANT_ID),
        "challenge names the vault's tenant: {challenge}"
    );
    let body = assert_kv_error(rejected, 401, "Unauthorized", None).await;
    assert_eq!(
        body["error"]["message"],
        format!(
            "AKV10032: Invalid issuer. Expected one of https://sts.windows.net/{}/, found https://sts.windows.net/{OTHER_TENANT}/.",
            demo::TENANT_ID
        )
    );
}

#[tokio::test]
async fn token_for_other_cloud_is_rejected() {
    let emulator = Emulator::builder().demo().start();
    let client = client(&emulator);
    let china_token = demo_token_for(
        &client,
        "login.chinacloudapi.cn",
        "https://vault.azure.cn/.default",
    )
    .await;

    let response = get(
        &client,
        VAULT,
        "/secrets/db-password?api-version=7.6",
        Some(&china_token),
    )
    .await;
    assert!(header(&response, "www-authenticate").is_some());
    let body = assert_kv_error(response, 401, "Unauthorized", None).await;
    assert_eq!(
        body["error"]["message"],
        "AKV10022: Invalid audience. Expected https://vault.azure.net, found: https://vault.azure.cn."
    );

    // A trailing slash in the scope yields an audience Key Vault does not accept.
    let slash_token = demo_token_for(
        &client,
        "login.microsoftonline.com",
        "https://vault.azure.net//.default",
    )
    .await;
    let response = get(
        &client,
        VAULT,
        "/secrets/db-password?api-version=7.6",
        Some(&slash_token),
    )
    .await;
    let body = assert_kv_error(response, 401, "Unauthorized", None).await;
    assert!(body["error"]["message"]
        .as_str()
        .expect("message")
        .contains("found: https://vault.azure.net/."));
}

#[tokio::test]
async fn unknown_token_is_rejected() {
    let emulator = Emulator::builder().demo().start();
    let client = client(&emulator);

    let response = get(
        &client,
        VAULT,
        "/secrets/db-password?api-version=7.6",
        Some("not-a-token-from-here"),
    )
    .await;
    assert!(header(&response, "www-authenticate").is_some());
    let body = assert_kv_error(response, 401, "Unauthorized", None).await;
    assert!(body["error"]["message"]
        .as_str()
        .expect("message")
        .starts_with("AKV10046:"));
}

#[tokio::test]
async fn rbac_without_role_is_forbidden() {
    let emulator = Emulator::builder()
        .demo()
        .vault(
            Vault::new("rbac-vault", demo::TENANT_ID)
                .reader("someone-else")
                .secret(Secret::new("s", "v")),
        )
        .start();
    let client = client(&emulator);
    let token = demo_token(&client).await;

    let response = get(
        &client,
        "rbac-vault.vault.azure.net",
        "/secrets/S?api-version=7.6",
        Some(&token),
    )
    .await;
    let body = assert_kv_error(response, 403, "Forbidden", Some("ForbiddenByRbac")).await;
    let message = body["error"]["message"].as_str().expect("message");
    assert!(
        message.starts_with("Caller is not authorized to perform action on resource.\r\n"),
        "{message}"
    );
    assert!(
        message.contains(&format!("Caller: appid={};", demo::CLIENT_ID)),
        "{message}"
    );
    assert!(
        message.contains("Action: 'Microsoft.KeyVault/vaults/secrets/getSecret/action'"),
        "{message}"
    );
    assert!(
        message.contains("/providers/microsoft.keyvault/vaults/rbac-vault/secrets/s'"),
        "{message}"
    );
    assert!(
        message.contains("DecisionReason: 'DeniedWithNoValidRBAC'"),
        "{message}"
    );
}

#[tokio::test]
async fn access_policy_without_policy_is_forbidden() {
    let emulator = Emulator::builder()
        .demo()
        .vault(
            Vault::new("policy-vault", demo::TENANT_ID)
                .permission_model(PermissionModel::AccessPolicy)
                .no_readers()
                .location("norwayeast")
                .secret(Secret::new("s", "v")),
        )
        .start();
    let client = client(&emulator);
    let token = demo_token(&client).await;

    let response = get(
        &client,
        "policy-vault.vault.azure.net",
        "/secrets/s?api-version=7.6",
        Some(&token),
    )
    .await;
    assert_eq!(
        header(&response, "x-ms-keyvault-region"),
        Some("norwayeast")
    );
    let body = assert_kv_error(response, 403, "Forbidden", Some("AccessDenied")).await;
    let message = body["error"]["message"].as_str().expect("message");
    assert!(
        message.starts_with(&format!(
            "The user, group or application 'appid={};",
            demo::CLIENT_ID
        )),
        "{message}"
    );
    assert!(
        message.contains(
            "does not have secrets get permission on key vault 'policy-vault;location=norwayeast'"
        ),
        "{message}"
    );
}

#[tokio::test]
async fn reader_list_admits_named_principal() {
    let emulator = Emulator::builder()
        .demo()
        .vault(
            Vault::new("rbac-vault", demo::TENANT_ID)
                .reader(demo::CLIENT_ID)
                .secret(Secret::new("s", "v")),
        )
        .start();
    let client = client(&emulator);
    let token = demo_token(&client).await;

    let response = get(
        &client,
        "rbac-vault.vault.azure.net",
        "/secrets/s?api-version=7.6",
        Some(&token),
    )
    .await;
    assert_eq!(response.status(), 200);
}

#[tokio::test]
async fn firewall_is_forbidden() {
    let emulator = Emulator::builder()
        .demo()
        .vault(
            Vault::new("walled-vault", demo::TENANT_ID)
                .firewall(true)
                .secret(Secret::new("s", "v")),
        )
        .start();
    let client = client(&emulator);
    let token = demo_token(&client).await;

    let response = get(
        &client,
        "walled-vault.vault.azure.net",
        "/secrets/s?api-version=7.6",
        Some(&token),
    )
    .await;
    let body = assert_kv_error(response, 403, "Forbidden", Some("ForbiddenByFirewall")).await;
    let message = body["error"]["message"].as_str().expect("message");
    assert!(message.starts_with("Client address is not authorized and caller is not a trusted service.\r\nClient address: 127.0.0.1\r\n"), "{message}");
}

#[tokio::test]
async fn unknown_vault_resets_connection() {
    let emulator = Emulator::builder().demo().start();
    let client = client(&emulator);

    let result = client
        .get("https://missing-vault.vault.azure.net/secrets/x?api-version=7.6")
        .bearer_auth("token-sent-to-missing-vault")
        .send()
        .await;

    let error = result.expect_err("a missing vault gets no HTTP answer");
    assert!(
        !error.is_timeout(),
        "the connection is reset, not left hanging: {error:?}"
    );
    let stats = emulator.stats();
    assert_eq!(stats.requests_to("missing-vault.vault.azure.net"), 1);
    assert_eq!(
        stats.authorization_sent_to("missing-vault.vault.azure.net"),
        ["token-sent-to-missing-vault".to_string()]
    );
}

#[tokio::test]
async fn unknown_vault_can_answer_not_found() {
    let emulator = Emulator::builder()
        .demo()
        .unknown_vault(UnknownVault::NotFound)
        .start();
    let client = client(&emulator);

    let response = get(
        &client,
        "missing-vault.vault.azure.net",
        "/secrets/x?api-version=7.6",
        None,
    )
    .await;
    assert_kv_error(response, 404, "VaultNotFound", None).await;
}

#[tokio::test]
async fn secret_added_at_run_time() {
    let emulator = Emulator::builder().demo().start();
    let client = client(&emulator);
    let token = demo_token(&client).await;

    assert!(emulator.put_secret(VAULT, Secret::new("late-arrival", "here now")));
    assert!(!emulator.put_secret("missing-vault.vault.azure.net", Secret::new("x", "y")));

    let body = json_of(
        get(
            &client,
            VAULT,
            "/secrets/late-arrival?api-version=7.6",
            Some(&token),
        )
        .await,
    )
    .await;
    assert_eq!(body["value"], "here now");
}

#[tokio::test]
async fn other_operations_are_not_implemented() {
    let emulator = Emulator::builder().demo().start();
    let client = client(&emulator);
    let token = demo_token(&client).await;

    let list = get(&client, VAULT, "/secrets?api-version=7.6", Some(&token)).await;
    assert_kv_error(list, 501, "NotImplemented", None).await;

    let put = client
        .put(format!(
            "https://{VAULT}/secrets/db-password?api-version=7.6"
        ))
        .bearer_auth(&token)
        .body("{}")
        .send()
        .await
        .expect("answered");
    assert_kv_error(put, 501, "NotImplemented", None).await;
}
