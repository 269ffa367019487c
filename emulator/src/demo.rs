//! The demo seed: one tenant, one application with a client secret, and one public-cloud
//! vault. Its secrets are chosen to exercise a client: a plain password, a multi-line
//! value with `=` and non-ASCII text, a JSON document, a disabled secret and a secret with
//! two versions. `kv-emulator` starts with it, and tests may use it as a baseline.
//!
//! Every credential here is fake and only valid against the emulator.

use crate::{App, EmulatorBuilder, Secret, SecretVersion, Tenant, Vault};

pub const TENANT_ID: &str = "5f0c7a4e-2b1d-4c8e-9a36-7d2e1f0b4c59";
pub const TENANT_DOMAIN: &str = "kvexec-demo.onmicrosoft.com";
pub const CLIENT_ID: &str = "0b7d3e91-6c2a-4f58-8e14-a9c3d5f7e2b6";
pub const CLIENT_SECRET: &str = "kvemu~demo-client-secret.not-for-production";
pub const VAULT_NAME: &str = "kvexec-demo";

pub const PASSWORD_SECRET: &str = "db-password";
pub const PASSWORD_VALUE: &str = "correct-horse-battery-staple";

pub const MULTILINE_SECRET: &str = "multiline-config";
pub const MULTILINE_VALUE: &str = "first line\nkey=value with = signs\nünïcödé ✓ 密码 🔑\n";

pub const JSON_SECRET: &str = "app-settings";
pub const JSON_VALUE: &str = r#"{"db":{"user":"app","password":"p@ss/word~1","port":5432},"features":["search","export"],"debug":false,"ratio":0.25,"empty":null}"#;

pub const DISABLED_SECRET: &str = "retired-api-key";

pub const ROTATED_SECRET: &str = "rotated-token";
pub const ROTATED_OLD_VERSION: &str = "0f1e2d3c4b5a69788796a5b4c3d2e1f0";
pub const ROTATED_OLD_VALUE: &str = "token-from-last-quarter";
pub const ROTATED_NEW_VERSION: &str = "a1b2c3d4e5f60718293a4b5c6d7e8f90";
pub const ROTATED_NEW_VALUE: &str = "token-of-this-quarter";

/// `kvexec-demo.vault.azure.net`
pub fn vault_host() -> String {
    format!("{VAULT_NAME}.vault.azure.net")
}

/// `https://kvexec-demo.vault.azure.net`
pub fn vault_url() -> String {
    format!("https://{}", vault_host())
}

pub(crate) fn seed(builder: EmulatorBuilder) -> EmulatorBuilder {
    let created = crate::util::unix_now() - 86_400;
    builder
        .tenant(
            Tenant::new(TENANT_ID)
                .domain(TENANT_DOMAIN)
                .display_name("kvexec demo"),
        )
        .app(App::new(TENANT_ID, CLIENT_ID).client_secret(CLIENT_SECRET))
        .vault(
            Vault::new(VAULT_NAME, TENANT_ID)
                .secret(Secret::new(PASSWORD_SECRET, PASSWORD_VALUE))
                .secret(Secret::new(MULTILINE_SECRET, MULTILINE_VALUE).content_type("text/plain"))
                .secret(
                    Secret::new(JSON_SECRET, JSON_VALUE)
                        .content_type("application/json")
                        .tag("owner", "kvexec-demo"),
                )
                .secret(Secret::new(DISABLED_SECRET, "no-longer-used").disabled())
                .secret(Secret::with_versions(
                    ROTATED_SECRET,
                    vec![
                        SecretVersion::new(ROTATED_OLD_VALUE)
                            .id(ROTATED_OLD_VERSION)
                            .created(created),
                        SecretVersion::new(ROTATED_NEW_VALUE)
                            .id(ROTATED_NEW_VERSION)
                            .created(created + 3_600),
                    ],
                )),
        )
}
