//! Entra ID: the v2.0 token endpoint (client credentials with a secret or an assertion),
//! the OpenID configuration and instance discovery that MSAL fetches first.

use crate::model::{AppCredential, AssertionRequest, AssertionVerdict, Cloud, EntraError};
use crate::response::{self, Body, Outcome};
use crate::state::{Principal, Shared};
use crate::util::{entra_instant, entra_timestamp, is_dns_name, is_guid, new_guid, unix_now};
use base64::Engine;
use bytes::Bytes;
use http::request::Parts;
use http::{header, Method, Response};
use http_body_util::{BodyExt, Limited};
use serde_json::{json, Value};
use std::collections::HashMap;

/// Lifetime of issued tokens, as Entra ID reports it for client credentials.
pub(crate) const TOKEN_LIFETIME_SECONDS: i64 = 3599;

const JWT_BEARER: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

/// Scopes MSAL clients may add to any request; they name no resource.
const OIDC_SCOPES: &[&str] = &["openid", "profile", "offline_access", "email"];

/// Request bodies larger than this are rejected; real token requests are a few KB.
const MAX_FORM_BYTES: usize = 64 * 1024;

pub(crate) async fn handle(
    shared: &Shared,
    cloud: &Cloud,
    host: &str,
    request: Parts,
    body: hyper::body::Incoming,
) -> Outcome {
    let path = request.uri.path().trim_start_matches('/').to_string();
    let segments: Vec<&str> = path.split('/').collect();
    let correlation_id = request
        .headers
        .get("client-request-id")
        .and_then(|value| value.to_str().ok())
        .map(str::to_string);
    let replier = Replier {
        host,
        correlation_id,
    };

    let response = match (&request.method, segments.as_slice()) {
        (&Method::POST, [tenant, "oauth2", "v2.0", "token"]) => {
            let form = match read_form(body).await {
                Ok(form) => form,
                Err(response) => return Outcome::Reply(response),
            };
            token(shared, cloud, host, tenant, &request, &form, &replier)
        }
        (&Method::GET, [tenant, "v2.0", ".well-known", "openid-configuration"]) => {
            openid_configuration(shared, cloud, host, tenant, &replier)
        }
        (&Method::GET, [_, "discovery", "instance"]) => {
            instance_discovery(shared, host, request.uri.query())
        }
        // NOTE: the v1 endpoints (/oauth2/token) and every other path are not emulated.
        _ => response::status(404),
    };
    Outcome::Reply(response)
}

/// Writes Entra ID responses with its headers and error body shape.
struct Replier<'a> {
    host: &'a str,
    correlation_id: Option<String>,
}

impl Replier<'_> {
    fn finish(&self, mut response: Response<Body>, request_id: &str) -> Response<Body> {
        let headers = response.headers_mut();
        headers.insert(
            header::CACHE_CONTROL,
            http::HeaderValue::from_static("no-store, no-cache"),
        );
        headers.insert(header::PRAGMA, http::HeaderValue::from_static("no-cache"));
        headers.insert(header::EXPIRES, http::HeaderValue::from_static("-1"));
        headers.insert(
            header::STRICT_TRANSPORT_SECURITY,
            http::HeaderValue::from_static("max-age=31536000; includeSubDomains"),
        );
        headers.insert(
            header::X_CONTENT_TYPE_OPTIONS,
            http::HeaderValue::from_static("nosniff"),
        );
        headers.insert(
            "x-ms-ests-server",
            http::HeaderValue::from_static("kvexec-emulator"),
        );
        response::set_header(&mut response, "x-ms-request-id", request_id);
        if let Some(id) = &self.correlation_id {
            response::set_header(&mut response, "client-request-id", id);
        }
        response
    }

    fn ok(&self, body: &Value) -> Response<Body> {
        self.finish(response::json(200, body), &new_guid())
    }

    fn error(&self, error: &EntraError) -> Response<Body> {
        let trace_id = new_guid();
        let correlation_id = self.correlation_id.clone().unwrap_or_else(new_guid);
        let timestamp = entra_timestamp(unix_now());
        let description = format!(
            "AADSTS{}: {}\r\nTrace ID: {trace_id}\r\nCorrelation ID: {correlation_id}\r\nTimestamp: {timestamp}",
            error.code, error.message
        );
        let body = json!({
            "error": error.error,
            "error_description": description,
            "error_codes": [error.code],
            "timestamp": timestamp,
            "trace_id": trace_id,
            "correlation_id": correlation_id,
            "error_uri": format!("https://{}/error?code={}", self.host, error.code),
        });
        self.finish(response::json(error.status, &body), &trace_id)
    }
}

async fn read_form(body: hyper::body::Incoming) -> Result<HashMap<String, String>, Response<Body>> {
    let bytes: Bytes = match Limited::new(body, MAX_FORM_BYTES).collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(_) => return Err(response::status(413)),
    };
    Ok(form_urlencoded::parse(&bytes).into_owned().collect())
}

/// The result of looking up the tenant segment of a token URL.
enum TenantLookup<'a> {
    Found(&'a crate::model::Tenant),
    Error(EntraError),
}

fn lookup_tenant<'a>(shared: &'a Shared, segment: &str) -> TenantLookup<'a> {
    let lowered = segment.to_ascii_lowercase();
    if lowered == "common" || lowered == "consumers" {
        return TenantLookup::Error(EntraError::new(
            400,
            "invalid_request",
            9001023,
            "The grant type isn't supported over the /common or /consumers endpoints. Please use the /organizations or tenant-specific endpoint.",
        ));
    }
    if !is_guid(segment) && !is_dns_name(segment) && lowered != "organizations" {
        return TenantLookup::Error(EntraError::new(
            400,
            "invalid_request",
            900023,
            format!("Specified tenant identifier '{segment}' is neither a valid DNS name, nor a valid external domain."),
        ));
    }
    match shared.tenant(segment) {
        Some(tenant) => TenantLookup::Found(tenant),
        // NOTE: `organizations` is treated as an unknown tenant. Entra ID's own response
        // for client credentials there was not verified.
        None => TenantLookup::Error(EntraError::new(
            400,
            "invalid_request",
            90002,
            format!("Tenant '{segment}' not found. Check to make sure you have the correct tenant ID and are signing into the correct cloud. Check with your subscription administrator, this may happen if there are no active subscriptions for the tenant."),
        )),
    }
}

fn missing_parameter(name: &str) -> EntraError {
    EntraError::new(
        400,
        "invalid_request",
        900144,
        format!("The request body must contain the following parameter: '{name}'."),
    )
}

/// Returns the resource of the first scope that is not an OpenID scope, without
/// `/.default`.
fn requested_resource(scope: Option<&str>) -> String {
    scope
        .unwrap_or("")
        .split_whitespace()
        .find(|scope| !OIDC_SCOPES.contains(scope))
        .map(|scope| scope.strip_suffix("/.default").unwrap_or(scope).to_string())
        .unwrap_or_default()
}

fn token(
    shared: &Shared,
    cloud: &Cloud,
    host: &str,
    tenant_segment: &str,
    request: &Parts,
    form: &HashMap<String, String>,
    replier: &Replier<'_>,
) -> Response<Body> {
    let tenant_key = shared
        .tenant(tenant_segment)
        .map(|tenant| tenant.id.clone())
        .unwrap_or_else(|| tenant_segment.to_ascii_lowercase());
    let scope = form.get("scope").map(String::as_str);
    shared
        .stats
        .token_request(&tenant_key, &requested_resource(scope));

    if let Some(rejection) = shared.faults.token_gate() {
        let mut response = replier.error(&unavailable(rejection.status));
        response::set_retry_after(&mut response, rejection.retry_after);
        return response;
    }

    match issue(shared, cloud, host, tenant_segment, request, form) {
        Ok(token) => replier.ok(&json!({
            "token_type": "Bearer",
            "expires_in": TOKEN_LIFETIME_SECONDS,
            "ext_expires_in": TOKEN_LIFETIME_SECONDS,
            "access_token": token,
        })),
        Err(error) => replier.error(&error),
    }
}

/// Entra ID's error for an injected failure status.
pub(crate) fn unavailable(status: u16) -> EntraError {
    // NOTE: restates AADSTS90006 (ExternalServerRetryableError); the body of a real
    // throttled or failing token request was not captured.
    EntraError::new(
        status,
        "temporarily_unavailable",
        90006,
        "The service is temporarily unavailable. Retry the request after a short delay.",
    )
}

/// Validates a client-credentials request and returns the new access token.
fn issue(
    shared: &Shared,
    cloud: &Cloud,
    host: &str,
    tenant_segment: &str,
    request: &Parts,
    form: &HashMap<String, String>,
) -> Result<String, EntraError> {
    let tenant = match lookup_tenant(shared, tenant_segment) {
        TenantLookup::Found(tenant) => tenant,
        TenantLookup::Error(error) => return Err(error),
    };

    let grant_type = form
        .get("grant_type")
        .ok_or_else(|| missing_parameter("grant_type"))?;
    if grant_type != "client_credentials" {
        return Err(EntraError::new(
            400,
            "unsupported_grant_type",
            70003,
            format!("The app requested an unsupported grant type '{grant_type}'."),
        ));
    }

    let basic = basic_credentials(request);
    let client_id = form
        .get("client_id")
        .cloned()
        .or_else(|| basic.as_ref().map(|(id, _)| id.clone()))
        .ok_or_else(|| missing_parameter("client_id"))?;
    let scope = form
        .get("scope")
        .ok_or_else(|| missing_parameter("scope"))?;

    let Some(app) = shared.app(&tenant.id, &client_id) else {
        return Err(EntraError::new(
            400,
            "unauthorized_client",
            700016,
            format!("Application with identifier '{client_id}' was not found in the directory '{}'. This can happen if the application has not been installed by the administrator of the tenant or consented to by any user in the tenant. You may have sent your authentication request to the wrong tenant.", tenant.display_name),
        ));
    };

    let secret = form
        .get("client_secret")
        .cloned()
        .or_else(|| basic.map(|(_, secret)| secret));
    let token_endpoint = format!("https://{host}/{tenant_segment}/oauth2/v2.0/token");
    match (secret, form.get("client_assertion")) {
        (Some(secret), _) => check_secret(app, &secret)?,
        (None, Some(assertion)) => {
            if form.get("client_assertion_type").map(String::as_str) != Some(JWT_BEARER) {
                return Err(missing_parameter("client_assertion_type"));
            }
            let request = AssertionRequest {
                assertion,
                tenant_id: &tenant.id,
                client_id: &app.client_id,
                token_endpoint: &token_endpoint,
                now: unix_now(),
            };
            check_assertion(app, &request)?;
        }
        (None, None) => {
            return Err(EntraError::new(
                401,
                "invalid_client",
                7000218,
                "The request body must contain the following parameter: 'client_assertion' or 'client_secret'.",
            ))
        }
    }

    let resource = check_scope(cloud, tenant, scope)?;
    let principal = Principal {
        client_id: app.client_id.clone(),
        object_id: app.object_id.clone(),
    };
    Ok(shared.issue_token(&tenant.id, principal, &resource))
}

/// `Authorization: Basic` client authentication (RFC 6749 section 2.3.1): id and secret
/// are form-urlencoded, then joined by a colon and base64-encoded.
fn basic_credentials(request: &Parts) -> Option<(String, String)> {
    let value = request.headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, encoded) = value.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .ok()?;
    let decoded = String::from_utf8(decoded).ok()?;
    let (id, secret) = decoded.split_once(':')?;
    let unescape = |text: &str| -> String {
        form_urlencoded::parse(format!("v={text}").as_bytes())
            .next()
            .map(|(_, value)| value.into_owned())
            .unwrap_or_default()
    };
    Some((unescape(id), unescape(secret)))
}

fn check_secret(app: &crate::model::App, presented: &str) -> Result<(), EntraError> {
    let matching = app
        .credentials
        .iter()
        .find_map(|credential| match credential {
            AppCredential::Secret { value, expired } if value == presented => Some(*expired),
            _ => None,
        });
    match matching {
        Some(false) => Ok(()),
        Some(true) => Err(EntraError::new(
            401,
            "invalid_client",
            7000222,
            format!("The provided client secret keys for app '{}' are expired. Visit the Azure portal to create new keys for your app: https://aka.ms/NewClientSecret, or consider using certificate credentials for added security: https://aka.ms/certCreds.", app.client_id),
        )),
        None => Err(EntraError::new(
            401,
            "invalid_client",
            7000215,
            format!("Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID, for a secret added to app '{}'.", app.client_id),
        )),
    }
}

/// Claims of a JWT read without checking its signature, to word error messages.
#[derive(Default)]
struct Claims {
    issuer: String,
    subject: String,
    audience: String,
    not_before: Option<i64>,
    expires: Option<i64>,
}

fn read_claims(assertion: &str) -> Option<Claims> {
    let mut parts = assertion.split('.');
    let (_, payload, _) = (parts.next()?, parts.next()?, parts.next()?);
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload.trim_end_matches('='))
        .ok()?;
    let claims: Value = serde_json::from_slice(&bytes).ok()?;
    let text = |name: &str| {
        claims
            .get(name)
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string()
    };
    let audience = match claims.get("aud") {
        Some(Value::Array(items)) => items
            .iter()
            .filter_map(Value::as_str)
            .collect::<Vec<_>>()
            .join(","),
        Some(Value::String(audience)) => audience.clone(),
        _ => String::new(),
    };
    Some(Claims {
        issuer: text("iss"),
        subject: text("sub"),
        audience,
        not_before: claims.get("nbf").and_then(Value::as_i64),
        expires: claims.get("exp").and_then(Value::as_i64),
    })
}

fn assertion_expired(now: i64, claims: &Claims) -> EntraError {
    // An opaque expired token carries no times, so the message reports an hour-long
    // validity that ended a minute ago.
    let expires = claims.expires.unwrap_or(now - 60);
    let not_before = claims.not_before.unwrap_or(expires - 3600);
    assertion_out_of_range(now, not_before, expires)
}

/// AADSTS700024: the assertion is not valid at `now`.
pub(crate) fn assertion_out_of_range(now: i64, not_before: i64, expires: i64) -> EntraError {
    EntraError::new(
        401,
        "invalid_client",
        700024,
        format!(
            "Client assertion is not within its valid time range. Current time: {}, assertion valid from {}, expiry time of assertion {}. Review the documentation at https://learn.microsoft.com/entra/identity-platform/certificate-credentials .",
            entra_instant(now),
            entra_instant(not_before),
            entra_instant(expires)
        ),
    )
}

/// Accepts a registered federated token, passes anything else to the verifiers, and
/// words the rejection as Entra ID does.
fn check_assertion(
    app: &crate::model::App,
    request: &AssertionRequest<'_>,
) -> Result<(), EntraError> {
    for credential in &app.credentials {
        match credential {
            AppCredential::Federated { assertion, expired } if assertion == request.assertion => {
                if *expired {
                    let claims = read_claims(assertion).unwrap_or_default();
                    return Err(assertion_expired(request.now, &claims));
                }
                return Ok(());
            }
            AppCredential::Certificate(certificate) => match crate::certificate::check(certificate, request) {
                crate::certificate::Check::Valid => return Ok(()),
                crate::certificate::Check::Invalid(error) => return Err(error),
                crate::certificate::Check::OtherCertificate => {}
            },
            AppCredential::Verifier(verifier) => match verifier.verify(request) {
                AssertionVerdict::Accept => return Ok(()),
                AssertionVerdict::Reject(error) => return Err(error),
                AssertionVerdict::NotApplicable => {}
            },
            _ => {}
        }
    }

    let Some(claims) = read_claims(request.assertion) else {
        // NOTE: wording recalled from Entra ID responses, not from a captured body.
        return Err(EntraError::new(
            400,
            "invalid_request",
            50027,
            "JWT token is invalid or malformed.",
        ));
    };
    if claims.expires.is_some_and(|expires| expires < request.now) {
        return Err(assertion_expired(request.now, &claims));
    }
    if claims.issuer.eq_ignore_ascii_case(request.client_id) {
        // A self-issued assertion is a certificate credential that no verifier accepted.
        return Err(EntraError::signature_invalid());
    }
    Err(EntraError::new(
        400,
        "invalid_request",
        70021,
        format!(
            "No matching federated identity record found for presented assertion. Assertion Issuer: '{}'. Assertion Subject: '{}'. Assertion Audience: '{}'. https://learn.microsoft.com/entra/workload-id/workload-identity-federation",
            claims.issuer, claims.subject, claims.audience
        ),
    ))
}

/// Checks a client-credentials scope and returns the resource the token is for.
fn check_scope(
    cloud: &Cloud,
    tenant: &crate::model::Tenant,
    scope: &str,
) -> Result<String, EntraError> {
    let scopes: Vec<&str> = scope
        .split_whitespace()
        .filter(|scope| !OIDC_SCOPES.contains(scope))
        .collect();
    let [single] = scopes.as_slice() else {
        let message = if scopes.is_empty() {
            "The provided request must include a 'scope' input parameter.".to_string()
        } else {
            format!(
                "The provided value for the input parameter 'scope' is not valid. The scope {} is not valid.",
                scopes.join(" ")
            )
        };
        return Err(EntraError::new(400, "invalid_scope", 70011, message));
    };
    let Some(resource) = single.strip_suffix("/.default") else {
        return Err(EntraError::new(
            400,
            "invalid_scope",
            1002012,
            format!("The provided value for scope {single} is not valid. Client credential flows must have a scope value with /.default suffixed to the resource identifier (application ID URI)."),
        ));
    };
    // Entra ID keeps a trailing slash in the audience, which Key Vault then rejects.
    if resource.strip_suffix('/').unwrap_or(resource) != cloud.vault_resource {
        return Err(EntraError::new(
            400,
            "invalid_resource",
            500011,
            format!("The resource principal named {resource} was not found in the tenant named {}. This can happen if the application has not been installed by the administrator of the tenant or consented to by any user in the tenant. You might have sent your authentication request to the wrong tenant.", tenant.display_name),
        ));
    }
    Ok(resource.to_string())
}

fn openid_configuration(
    shared: &Shared,
    cloud: &Cloud,
    host: &str,
    tenant_segment: &str,
    replier: &Replier<'_>,
) -> Response<Body> {
    let tenant = match lookup_tenant(shared, tenant_segment) {
        TenantLookup::Found(tenant) => tenant,
        TenantLookup::Error(mut error) => {
            // The discovery document reports tenant errors as invalid_tenant.
            error.error = "invalid_tenant".into();
            return replier.error(&error);
        }
    };
    let base = format!("https://{host}/{}", tenant.id);
    replier.ok(&json!({
        "token_endpoint": format!("{base}/oauth2/v2.0/token"),
        "token_endpoint_auth_methods_supported": ["client_secret_post", "private_key_jwt", "client_secret_basic"],
        "jwks_uri": format!("{base}/discovery/v2.0/keys"),
        "response_modes_supported": ["query", "fragment", "form_post"],
        "subject_types_supported": ["pairwise"],
        "id_token_signing_alg_values_supported": ["RS256"],
        "response_types_supported": ["code", "id_token", "code id_token", "id_token token"],
        "scopes_supported": ["openid", "profile", "email", "offline_access"],
        "issuer": format!("{base}/v2.0"),
        "request_uri_parameter_supported": false,
        "authorization_endpoint": format!("{base}/oauth2/v2.0/authorize"),
        "device_authorization_endpoint": format!("{base}/oauth2/v2.0/devicecode"),
        "http_logout_supported": true,
        "frontchannel_logout_supported": true,
        "end_session_endpoint": format!("{base}/oauth2/v2.0/logout"),
        "tenant_region_scope": "WW",
        "cloud_instance_name": cloud.instance_name,
    }))
}

/// Returns MSAL's instance discovery document, in which each configured login host is its
/// own alias group.
fn instance_discovery(shared: &Shared, host: &str, query: Option<&str>) -> Response<Body> {
    let authorization_endpoint = form_urlencoded::parse(query.unwrap_or("").as_bytes())
        .find(|(key, _)| key == "authorization_endpoint")
        .map(|(_, value)| value.into_owned());
    let tenant = authorization_endpoint
        .as_deref()
        .and_then(|url| url.split("://").nth(1))
        .and_then(|rest| rest.split('/').nth(1))
        .filter(|tenant| !tenant.is_empty())
        .unwrap_or("common")
        .to_string();
    let metadata: Vec<Value> = shared
        .clouds
        .iter()
        .map(|cloud| {
            json!({
                "preferred_network": cloud.login_host,
                "preferred_cache": cloud.login_host,
                "aliases": [cloud.login_host],
            })
        })
        .collect();
    let body = json!({
        "tenant_discovery_endpoint": format!("https://{host}/{tenant}/v2.0/.well-known/openid-configuration"),
        "api-version": "1.1",
        "metadata": metadata,
    });
    let mut response = response::json(200, &body);
    response::set_header(&mut response, "cache-control", "max-age=86400, private");
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resource_ignores_openid_scopes() {
        assert_eq!(
            requested_resource(Some(
                "https://vault.azure.net/.default openid profile offline_access"
            )),
            "https://vault.azure.net"
        );
        assert_eq!(requested_resource(Some("openid")), "");
        assert_eq!(requested_resource(None), "");
    }

    #[test]
    fn claims_are_read_from_unsigned_payload() {
        let payload = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .encode(br#"{"iss":"https://issuer.example","sub":"system:serviceaccount:ns:sa","aud":["api://AzureADTokenExchange"],"exp":100}"#);
        let claims = read_claims(&format!("eyJhbGciOiJub25lIn0.{payload}.sig")).expect("claims");
        assert_eq!(claims.issuer, "https://issuer.example");
        assert_eq!(claims.subject, "system:serviceaccount:ns:sa");
        assert_eq!(claims.audience, "api://AzureADTokenExchange");
        assert_eq!(claims.expires, Some(100));
        assert!(read_claims("opaque").is_none());
    }
}
