//! An HTTPS client that trusts an emulator's CA and reaches every test host on loopback.

use kvexec_emulator::{demo, Emulator};
use reqwest::{Client, Response};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateDer;
use serde_json::Value;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

/// Hosts every test client maps to the emulator.
pub const HOSTS: &[&str] = &[
    "kvexec-demo.vault.azure.net",
    "other-vault.vault.azure.net",
    "missing-vault.vault.azure.net",
    "rbac-vault.vault.azure.net",
    "policy-vault.vault.azure.net",
    "walled-vault.vault.azure.net",
    "faulty-vault.vault.azure.net",
    "cn-vault.vault.azure.cn",
    "gov-vault.vault.usgovcloudapi.net",
    "login.microsoftonline.com",
    "login.chinacloudapi.cn",
    "login.microsoftonline.us",
    "localhost",
    "kvexec-demo.vault.azure.net.evil.example",
    "not-in-certificate.example",
];

pub struct ClientOptions {
    pub http1_only: bool,
    pub timeout: Duration,
    /// Trusts this PEM instead of the emulator's own CA.
    pub ca_pem: Option<String>,
}

impl Default for ClientOptions {
    fn default() -> Self {
        ClientOptions {
            http1_only: false,
            timeout: Duration::from_secs(10),
            ca_pem: None,
        }
    }
}

pub fn client(emulator: &Emulator) -> Client {
    client_with(emulator, ClientOptions::default())
}

pub fn client_with(emulator: &Emulator, options: ClientOptions) -> Client {
    let ca_pem = options.ca_pem.as_deref().unwrap_or(emulator.ca_pem());
    let mut roots = rustls::RootCertStore::empty();
    for certificate in CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
        roots
            .add(certificate.expect("the CA PEM parses"))
            .expect("the CA certificate is accepted as a root");
    }
    #[allow(deprecated)]
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("default TLS versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    tls.alpn_protocols = if options.http1_only {
        vec![b"http/1.1".to_vec()]
    } else {
        vec![b"h2".to_vec(), b"http/1.1".to_vec()]
    };

    let address = SocketAddr::from(([127, 0, 0, 1], emulator.port()));
    let mut builder = Client::builder()
        .tls_backend_preconfigured(tls)
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(options.timeout);
    if options.http1_only {
        builder = builder.http1_only();
    }
    for host in HOSTS {
        builder = builder.resolve(host, address);
    }
    builder.build().expect("the test client builds")
}

pub async fn json_of(response: Response) -> Value {
    let bytes = response.bytes().await.expect("the body is read");
    serde_json::from_slice(&bytes).unwrap_or_else(|error| {
        panic!(
            "the body is not JSON ({error}): {}",
            String::from_utf8_lossy(&bytes)
        )
    })
}

pub fn form_body(pairs: &[(&str, &str)]) -> String {
    form_urlencoded::Serializer::new(String::new())
        .extend_pairs(pairs)
        .finish()
}

/// Requests a token with the client-credentials grant and returns the raw response.
pub async fn token_response(
    client: &Client,
    login_host: &str,
    tenant: &str,
    form: &[(&str, &str)],
) -> Response {
    client
        .post(format!("https://{login_host}/{tenant}/oauth2/v2.0/token"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(form_body(form))
        .send()
        .await
        .expect("the token request is answered")
}

/// Gets a token for the demo application and `scope` from `login_host`.
pub async fn demo_token_for(client: &Client, login_host: &str, scope: &str) -> String {
    let response = token_response(
        client,
        login_host,
        demo::TENANT_ID,
        &[
            ("grant_type", "client_credentials"),
            ("client_id", demo::CLIENT_ID),
            ("client_secret", demo::CLIENT_SECRET),
            ("scope", scope),
        ],
    )
    .await;
    assert_eq!(response.status(), 200, "the demo application gets a token");
    let body = json_of(response).await;
    body["access_token"]
        .as_str()
        .expect("access_token")
        .to_string()
}

pub async fn demo_token(client: &Client) -> String {
    demo_token_for(
        client,
        "login.microsoftonline.com",
        "https://vault.azure.net/.default",
    )
    .await
}

/// GETs `https://{vault_host}{path}` with a bearer token when one is given.
pub async fn get(client: &Client, vault_host: &str, path: &str, token: Option<&str>) -> Response {
    let mut request = client.get(format!("https://{vault_host}{path}"));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    request.send().await.expect("the vault answers")
}

pub fn header<'a>(response: &'a Response, name: &str) -> Option<&'a str> {
    response
        .headers()
        .get(name)
        .and_then(|value| value.to_str().ok())
}

/// Asserts the Key Vault error body shape and returns the body.
pub async fn assert_kv_error(
    response: Response,
    status: u16,
    code: &str,
    inner: Option<&str>,
) -> Value {
    assert_eq!(response.status(), status);
    assert_eq!(
        header(&response, "content-type"),
        Some("application/json; charset=utf-8")
    );
    assert!(
        header(&response, "x-ms-request-id").is_some(),
        "x-ms-request-id is set"
    );
    assert!(header(&response, "x-ms-keyvault-service-version").is_some());
    let body = json_of(response).await;
    assert_eq!(body["error"]["code"], code, "error code in {body}");
    assert!(body["error"]["message"].is_string(), "message in {body}");
    match inner {
        Some(inner) => assert_eq!(
            body["error"]["innererror"]["code"], inner,
            "inner code in {body}"
        ),
        None => assert!(
            body["error"].get("innererror").is_none(),
            "no innererror in {body}"
        ),
    }
    body
}
