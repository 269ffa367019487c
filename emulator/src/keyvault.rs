//! The Key Vault data plane: `GET /secrets/{name}[/{version}]`, with Key Vault's
//! authentication challenge, authorisation errors, error bodies and headers.

// The checks below return the response to send as their error. It is built once per
// request and moved once, so its size does not matter.
#![allow(clippy::result_large_err)]

use crate::faults::Rejection;
use crate::model::{Cloud, Fault, PermissionModel, Secret, SecretVersion, UnknownVault, Vault};
use crate::response::{self, Body, Outcome};
use crate::server::Connection;
use crate::state::{IssuedToken, Shared};
use crate::stats::SecretRead;
use crate::util::new_guid;
use bytes::Bytes;
use http::request::Parts;
use http::{header, Method, Response};
use http_body_util::channel::Channel;
use http_body_util::BodyExt;
use serde_json::{json, Map, Value};
use std::io;
use std::sync::Arc;
use std::time::Duration;

/// Value of `x-ms-keyvault-service-version` (recorded responses carry versions such as
/// `1.2.265.0`; the emulator names itself instead).
const SERVICE_VERSION: &str = "1.9.0.0-kvexec-emulator";

/// Oversized bodies are this large, past the 1 MiB limit clients are expected to enforce.
const OVERSIZED_BODY_BYTES: usize = 1024 * 1024 + 64 * 1024;

/// The secret a request addresses, as sent (names are compared case-insensitively).
struct SecretPath {
    name: String,
    version: Option<String>,
}

/// Parses `/secrets/{name}`, `/secrets/{name}/`, `/secrets/{name}/{version}` and
/// `/secrets/{name}/{version}/`.
fn parse_secret_path(path: &str) -> Option<SecretPath> {
    let rest = path.strip_prefix("/secrets/")?;
    let rest = rest.strip_suffix('/').unwrap_or(rest);
    let mut segments = rest.split('/');
    let name = decode(segments.next()?)?;
    let version = match segments.next() {
        None => None,
        Some(version) => Some(decode(version)?),
    };
    if name.is_empty() || segments.next().is_some() || version.as_deref() == Some("") {
        return None;
    }
    Some(SecretPath { name, version })
}

fn decode(segment: &str) -> Option<String> {
    percent_encoding::percent_decode_str(segment)
        .decode_utf8()
        .ok()
        .map(|text| text.into_owned())
}

/// Common response headers, as recorded from Key Vault.
struct Headers {
    request_id: String,
    client_request_id: Option<String>,
    region: String,
    peer_ip: String,
}

impl Headers {
    /// Adds the headers Key Vault sends with every response.
    fn finish(&self, mut response: Response<Body>) -> Response<Body> {
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            http::HeaderValue::from_static(response::JSON),
        );
        headers.insert(
            header::CACHE_CONTROL,
            http::HeaderValue::from_static("no-cache"),
        );
        headers.insert(header::PRAGMA, http::HeaderValue::from_static("no-cache"));
        headers.insert(header::EXPIRES, http::HeaderValue::from_static("-1"));
        headers.insert(
            header::STRICT_TRANSPORT_SECURITY,
            http::HeaderValue::from_static("max-age=31536000;includeSubDomains"),
        );
        headers.insert(
            header::X_CONTENT_TYPE_OPTIONS,
            http::HeaderValue::from_static("nosniff"),
        );
        headers.insert(
            "x-ms-keyvault-service-version",
            http::HeaderValue::from_static(SERVICE_VERSION),
        );

        response::set_header(&mut response, "x-ms-request-id", &self.request_id);
        response::set_header(&mut response, "x-ms-keyvault-region", &self.region);
        let network_info = format!(
            "conn_type=Ipv4;addr={};act_addr_fam=InterNetwork;",
            self.peer_ip
        );
        response::set_header(&mut response, "x-ms-keyvault-network-info", &network_info);
        if let Some(id) = &self.client_request_id {
            response::set_header(&mut response, "x-ms-client-request-id", id);
        }
        response
    }

    fn error(&self, status: u16, code: &str, message: &str, inner: Option<&str>) -> Response<Body> {
        let mut error = json!({ "code": code, "message": message });
        if let Some(inner) = inner {
            error["innererror"] = json!({ "code": inner });
        }
        self.finish(response::json(status, &json!({ "error": error })))
    }
}

pub(crate) async fn handle(
    shared: &Shared,
    connection: &Arc<Connection>,
    cloud: &Cloud,
    host: &str,
    request: &Parts,
) -> Outcome {
    let target = parse_secret_path(request.uri.path());
    if let (Some(target), &Method::GET) = (&target, &request.method) {
        shared.stats.secret_read(SecretRead {
            vault_host: host.to_string(),
            name: target.name.to_ascii_lowercase(),
            version: target
                .version
                .clone()
                .unwrap_or_default()
                .to_ascii_lowercase(),
        });
    }

    let Some(vault) = shared.with_vault(host, |state| state.vault.clone()) else {
        return unknown_vault(shared.unknown_vault, host, connection);
    };

    let headers = Headers {
        request_id: new_guid(),
        client_request_id: request
            .headers
            .get("x-ms-client-request-id")
            .and_then(|value| value.to_str().ok())
            .map(str::to_string),
        region: vault.location.clone(),
        peer_ip: connection.peer.ip().to_string(),
    };

    if let Some(rejection) = shared.faults.vault_gate(host) {
        return Outcome::Reply(rejected(&headers, rejection));
    }

    let query = Query::parse(request.uri.query());
    if let Err(response) = check_api_version(&headers, query.api_version.as_deref()) {
        return Outcome::Reply(response);
    }

    let token = match authenticate(shared, &headers, cloud, &vault, request) {
        Ok(token) => token,
        Err(response) => return Outcome::Reply(response),
    };

    let Some(target) = target.filter(|_| request.method == Method::GET) else {
        let message = format!(
            "The emulator implements only GET /secrets/{{name}}[/{{version}}]; {} {} is not available.",
            request.method,
            request.uri.path()
        );
        return Outcome::Reply(headers.error(501, "NotImplemented", &message, None));
    };

    if let Err(response) = authorize(cloud, &vault, &token, &target, &headers) {
        return Outcome::Reply(response);
    }

    let found = shared.with_vault(host, |state| {
        let secret = state.secrets.get_mut(&target.name.to_ascii_lowercase())?;
        let fault = take_fault(secret);
        Some((secret.clone(), fault))
    });
    let Some(Some((secret, fault))) = found else {
        return Outcome::Reply(not_found(&headers, &target));
    };

    if secret.latency_ms > 0 {
        tokio::time::sleep(Duration::from_millis(secret.latency_ms)).await;
    }

    let version = match &target.version {
        None => secret.versions.last(),
        Some(wanted) => secret
            .versions
            .iter()
            .find(|version| version.id.eq_ignore_ascii_case(wanted)),
    };

    if let Some(fault) = fault {
        let shown = version.or(secret.versions.last());
        return apply_fault(fault, &headers, connection, &vault, &secret, shown);
    }

    let Some(version) = version else {
        return Outcome::Reply(not_found(&headers, &target));
    };
    if !version.enabled {
        return Outcome::Reply(headers.error(
            403,
            "Forbidden",
            "Operation get is not allowed on a disabled secret.",
            Some("SecretDisabled"),
        ));
    }

    let body = bundle(&vault, &secret, version);
    Outcome::Reply(headers.finish(response::json(200, &body)))
}

fn unknown_vault(behavior: UnknownVault, host: &str, connection: &Arc<Connection>) -> Outcome {
    match behavior {
        UnknownVault::ResetConnection => Outcome::Reset,
        UnknownVault::NoResponse => Outcome::NoResponse,
        UnknownVault::NotFound => {
            let headers = Headers {
                request_id: new_guid(),
                client_request_id: None,
                region: String::new(),
                peer_ip: connection.peer.ip().to_string(),
            };
            let message = format!("No vault is configured in the emulator for host '{host}'.");
            Outcome::Reply(headers.error(404, "VaultNotFound", &message, None))
        }
    }
}

fn rejected(headers: &Headers, rejection: Rejection) -> Response<Body> {
    let mut response = status_error(headers, rejection.status);
    response::set_retry_after(&mut response, rejection.retry_after);
    response
}

/// Builds the Key Vault error response for an injected status.
fn status_error(headers: &Headers, status: u16) -> Response<Body> {
    match status {
        429 => headers.error(
            429,
            "Throttled",
            "Request was not processed because too many requests were received. Reason: VaultRequestTypeLimitReached",
            None,
        ),
        // NOTE: the codes and messages below are not from captured Key Vault responses.
        503 => headers.error(
            503,
            "ServiceUnavailable",
            "The service is temporarily unavailable. Retry the request later.",
            None,
        ),
        500 => headers.error(500, "InternalServerError", "An internal server error occurred.", None),
        other => headers.error(other, "Error", &format!("Injected HTTP status {other}."), None),
    }
}

#[derive(Default)]
struct Query {
    api_version: Option<String>,
}

impl Query {
    fn parse(query: Option<&str>) -> Query {
        let mut parsed = Query::default();
        for (key, value) in form_urlencoded::parse(query.unwrap_or("").as_bytes()) {
            if key == "api-version" {
                parsed.api_version = Some(value.into_owned());
            }
        }
        parsed
    }
}

/// Key Vault requires `api-version` and has no default. Accepted: the numbered versions
/// 2015-06-01, 2016-10-01, 7.0 to 7.6 and 7.6 previews, and date versions from 2025 on
/// (`2025-07-01`, `2026-04-01`, `…-preview`), so newer SDKs keep working.
fn check_api_version(headers: &Headers, api_version: Option<&str>) -> Result<(), Response<Body>> {
    // NOTE: the error code BadParameter matches Key Vault's code for invalid requests, but
    // the message texts are the emulator's own; no captured response was available.
    let Some(version) = api_version.filter(|version| !version.is_empty()) else {
        return Err(headers.error(
            400,
            "BadParameter",
            "The api-version query parameter is missing; Key Vault requires it on every request, e.g. api-version=7.6.",
            None,
        ));
    };
    if is_supported_api_version(version) {
        return Ok(());
    }
    let message = format!("The specified version ({version}) is not recognized. Consider using a supported version such as 7.6 or 2025-07-01.");
    Err(headers.error(400, "BadParameter", &message, None))
}

fn is_supported_api_version(version: &str) -> bool {
    const NUMBERED: &[&str] = &[
        "2015-06-01",
        "2016-10-01",
        "7.0",
        "7.1",
        "7.2",
        "7.3",
        "7.4",
        "7.5",
        "7.6-preview.1",
        "7.6-preview.2",
        "7.6",
    ];
    if NUMBERED.contains(&version) {
        return true;
    }
    let date = version.strip_suffix("-preview").unwrap_or(version);
    let parts: Vec<&str> = date.split('-').collect();
    let all_digits =
        |text: &str, len: usize| text.len() == len && text.bytes().all(|b| b.is_ascii_digit());
    parts.len() == 3
        && all_digits(parts[0], 4)
        && all_digits(parts[1], 2)
        && all_digits(parts[2], 2)
        && parts[0] >= "2025"
}

/// Checks the bearer token and returns what it was issued for, or the 401 to send.
fn authenticate(
    shared: &Shared,
    headers: &Headers,
    cloud: &Cloud,
    vault: &Vault,
    request: &Parts,
) -> Result<IssuedToken, Response<Body>> {
    let unauthorized = |message: &str| {
        let mut response = headers.error(401, "Unauthorized", message, None);
        let challenge = format!(
            "Bearer authorization=\"{}/{}\", resource=\"{}\"",
            cloud.challenge_authority, vault.tenant_id, cloud.vault_resource
        );
        response::set_header(&mut response, "www-authenticate", &challenge);
        response
    };

    let token = request
        .headers
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, token)| token.trim())
        .filter(|token| !token.is_empty());
    let Some(token) = token else {
        return Err(unauthorized(
            "AKV10000: Request is missing a Bearer or PoP token.",
        ));
    };

    let Some(issued) = shared.token(token) else {
        // NOTE: Key Vault validates JWT signatures. This is its wording for a token signed
        // by an unknown key, the closest match for a token this emulator never issued.
        return Err(unauthorized(
            "AKV10046: Unable to resolve the key used for signature validation.",
        ));
    };

    if issued.tenant_id != vault.tenant_id {
        let message = format!(
            "AKV10032: Invalid issuer. Expected one of {issuer}/{expected}/, found {issuer}/{found}/.",
            issuer = cloud.token_issuer,
            expected = vault.tenant_id,
            found = issued.tenant_id,
        );
        return Err(unauthorized(&message));
    }

    if issued.resource != cloud.vault_resource {
        let message = format!(
            "AKV10022: Invalid audience. Expected {}, found: {}.",
            cloud.vault_resource, issued.resource
        );
        return Err(unauthorized(&message));
    }

    Ok(issued)
}

/// Applies the vault's firewall and permission model to an authenticated caller.
fn authorize(
    cloud: &Cloud,
    vault: &Vault,
    token: &IssuedToken,
    target: &SecretPath,
    headers: &Headers,
) -> Result<(), Response<Body>> {
    let caller = format!(
        "appid={};oid={};iss={}/{}/",
        token.principal.client_id, token.principal.object_id, cloud.token_issuer, token.tenant_id
    );
    let vault_and_location = format!("{};location={}", vault.name, vault.location);

    if vault.firewall {
        let message = format!(
            "Client address is not authorized and caller is not a trusted service.\r\nClient address: {}\r\nCaller: {caller}\r\nVault: {vault_and_location}",
            headers.peer_ip
        );
        return Err(headers.error(403, "Forbidden", &message, Some("ForbiddenByFirewall")));
    }

    let allowed = match &vault.readers {
        None => true,
        Some(readers) => {
            readers.contains(&token.principal.client_id)
                || readers.contains(&token.principal.object_id)
        }
    };
    if allowed {
        return Ok(());
    }

    match vault.permission_model {
        PermissionModel::Rbac => {
            let message = format!(
                "Caller is not authorized to perform action on resource.\r\n\
                 If role assignments, deny assignments or role definitions were changed recently, please observe propagation time.\r\n\
                 Caller: {caller}\r\n\
                 Action: 'Microsoft.KeyVault/vaults/secrets/getSecret/action'\r\n\
                 Resource: '/subscriptions/{subscription}/resourcegroups/{group}/providers/microsoft.keyvault/vaults/{vault}/secrets/{secret}'\r\n\
                 Assignment: (not found)\r\n\
                 DenyAssignmentId: null\r\n\
                 DecisionReason: 'DeniedWithNoValidRBAC' \r\n\
                 Vault: {vault_and_location}\r\n",
                subscription = vault.subscription_id,
                group = vault.resource_group,
                vault = vault.name,
                secret = target.name.to_ascii_lowercase(),
            );
            Err(headers.error(403, "Forbidden", &message, Some("ForbiddenByRbac")))
        }
        PermissionModel::AccessPolicy => {
            let message = format!(
                "The user, group or application '{caller}' does not have secrets get permission on key vault '{vault_and_location}'. For help resolving this issue, please see https://go.microsoft.com/fwlink/?linkid=2125287"
            );
            Err(headers.error(403, "Forbidden", &message, Some("AccessDenied")))
        }
    }
}

fn not_found(headers: &Headers, target: &SecretPath) -> Response<Body> {
    let shown = match &target.version {
        Some(version) => format!("{}/{}", target.name, version),
        None => target.name.clone(),
    };
    let message = format!(
        "A secret with (name/id) {shown} was not found in this key vault. If you recently deleted this secret you may be able to recover it using the correct recovery command. For help resolving this issue, please see https://go.microsoft.com/fwlink/?linkid=2125182"
    );
    headers.error(404, "SecretNotFound", &message, None)
}

/// Consumes one use of the secret's fault, if it has one left.
fn take_fault(secret: &mut Secret) -> Option<Fault> {
    let fault = secret.fault.as_mut()?;
    match &mut fault.remaining {
        None => Some(fault.fault.clone()),
        Some(0) => None,
        Some(remaining) => {
            *remaining -= 1;
            Some(fault.fault.clone())
        }
    }
}

/// The `SecretBundle` JSON of one version.
fn bundle(vault: &Vault, secret: &Secret, version: &SecretVersion) -> Value {
    let mut attributes = Map::new();
    attributes.insert("enabled".into(), json!(version.enabled));
    if let Some(not_before) = version.not_before {
        attributes.insert("nbf".into(), json!(not_before));
    }
    if let Some(expires) = version.expires {
        attributes.insert("exp".into(), json!(expires));
    }
    attributes.insert("created".into(), json!(version.created));
    attributes.insert("updated".into(), json!(version.created));
    attributes.insert("recoveryLevel".into(), json!("Recoverable+Purgeable"));
    attributes.insert("recoverableDays".into(), json!(90));

    let mut body = Map::new();
    body.insert("value".into(), json!(version.value));
    if let Some(content_type) = &version.content_type {
        body.insert("contentType".into(), json!(content_type));
    }
    body.insert(
        "id".into(),
        json!(format!(
            "{}/secrets/{}/{}",
            vault.url(),
            secret.name,
            version.id
        )),
    );
    body.insert("attributes".into(), Value::Object(attributes));
    if !version.tags.is_empty() {
        body.insert("tags".into(), json!(version.tags));
    }
    Value::Object(body)
}

fn apply_fault(
    fault: Fault,
    headers: &Headers,
    connection: &Arc<Connection>,
    vault: &Vault,
    secret: &Secret,
    version: Option<&SecretVersion>,
) -> Outcome {
    let bundle_bytes = || match version {
        Some(version) => serde_json::to_vec(&bundle(vault, secret, version)).unwrap_or_default(),
        None => b"{}".to_vec(),
    };

    match fault {
        Fault::Status {
            status,
            retry_after,
        } => Outcome::Reply(rejected(
            headers,
            Rejection {
                status,
                retry_after,
            },
        )),
        Fault::NoResponse => Outcome::NoResponse,
        Fault::Redirect { status, location } => {
            let message = format!("Injected redirect to {location}.");
            let mut response = headers.error(status, "Redirect", &message, None);
            response::set_header(&mut response, "location", &location);
            Outcome::Reply(response)
        }
        Fault::ResetConnection => {
            let body = Bytes::from(bundle_bytes());
            Outcome::Reply(headers.finish(partial_body(Some(connection.clone()), body)))
        }
        Fault::TruncatedBody => {
            let body = Bytes::from(bundle_bytes());
            Outcome::Reply(headers.finish(partial_body(None, body)))
        }
        Fault::MalformedJson => {
            // The value stays in the body so a client that echoes the body in an error
            // message is caught by tests that search output for secret values.
            let value = version.map(|version| version.value.as_str()).unwrap_or("");
            let body = format!("{{\"value\":{},\"id\":}}", json!(value));
            Outcome::Reply(headers.finish(response::json_text(200, body)))
        }
        Fault::OversizedBody => {
            let mut body = match version {
                Some(version) => bundle(vault, secret, version),
                None => json!({}),
            };
            body["tags"] = json!({ "padding": "x".repeat(OVERSIZED_BODY_BYTES) });
            let bytes = Bytes::from(serde_json::to_vec(&body).unwrap_or_default());
            Outcome::Reply(headers.finish(streamed(bytes)))
        }
    }
}

/// Builds a 200 declaring the full `Content-Length` whose body stops halfway. Then the TCP
/// connection is reset when `reset` is given, otherwise the body just ends.
fn partial_body(reset: Option<Arc<Connection>>, body: Bytes) -> Response<Body> {
    let (mut sender, receiver) = Channel::<Bytes, io::Error>::new(1);
    let declared = body.len();
    tokio::spawn(async move {
        let half = declared / 2;
        let quarter = half / 2;
        // The second send waits until hyper has taken the first chunk, which it does only
        // after writing the status line and headers. The pause then lets both chunks reach
        // the socket before the connection is reset or the body ends, because hyper's
        // HTTP/1.1 server discards unsent output when a body ends short of its length.
        if sender.send_data(body.slice(..quarter)).await.is_err() {
            return;
        }
        if sender.send_data(body.slice(quarter..half)).await.is_err() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        if let Some(connection) = reset {
            connection.reset();
            // Hold the sender so the body does not end before the reset lands.
            tokio::time::sleep(Duration::from_secs(5)).await;
        }
        drop(sender);
    });
    let mut response = Response::new(receiver.boxed());
    response::set_header(&mut response, "content-length", &declared.to_string());
    response
}

/// Builds a 200 streamed in 64 KiB chunks without `Content-Length`.
fn streamed(body: Bytes) -> Response<Body> {
    let (mut sender, receiver) = Channel::<Bytes, io::Error>::new(2);
    tokio::spawn(async move {
        let mut offset = 0;
        while offset < body.len() {
            let end = (offset + 64 * 1024).min(body.len());
            if sender.send_data(body.slice(offset..end)).await.is_err() {
                return;
            }
            offset = end;
        }
    });
    Response::new(receiver.boxed())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_paths() {
        let plain = parse_secret_path("/secrets/db-password").expect("plain path");
        assert_eq!(plain.name, "db-password");
        assert_eq!(plain.version, None);

        let slash = parse_secret_path("/secrets/db-password/").expect("trailing slash");
        assert_eq!(slash.version, None);

        let versioned = parse_secret_path("/secrets/db/0123456789abcdef0123456789abcdef")
            .expect("versioned path");
        assert_eq!(
            versioned.version.as_deref(),
            Some("0123456789abcdef0123456789abcdef")
        );

        assert!(parse_secret_path("/secrets/").is_none());
        assert!(parse_secret_path("/secrets//x").is_none());
        assert!(parse_secret_path("/secrets/a/b/c").is_none());
        assert!(parse_secret_path("/keys/a").is_none());
    }

    #[test]
    fn api_versions() {
        for accepted in [
            "7.4",
            "7.6",
            "2016-10-01",
            "2025-07-01",
            "2026-04-01",
            "2026-03-01-preview",
        ] {
            assert!(is_supported_api_version(accepted), "{accepted}");
        }
        for rejected in ["", "7", "8.0", "2024-01-01", "latest", "2025-7-01"] {
            assert!(!is_supported_api_version(rejected), "{rejected}");
        }
    }
}
