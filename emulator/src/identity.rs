//! Managed identity token endpoints: the App Service protocol (`IDENTITY_ENDPOINT` with the
//! `X-IDENTITY-HEADER` guard) and an IMDS-shaped endpoint for VM-style clients whose
//! endpoint can be pointed at loopback.

use crate::entra::{unavailable, TOKEN_LIFETIME_SECONDS};
use crate::model::ManagedIdentity;
use crate::response::{self, Body, Outcome};
use crate::state::{Principal, Shared};
use crate::util::{new_guid, unix_now};
use http::request::Parts;
use http::{Method, Response};
use serde_json::json;
use std::collections::HashMap;

/// Path of `IDENTITY_ENDPOINT` on App Service and Container Apps.
pub(crate) const APP_SERVICE_PATH: &str = "/msi/token";
/// Path of the VM instance metadata service's token endpoint.
pub(crate) const IMDS_PATH: &str = "/metadata/identity/oauth2/token";

pub(crate) fn is_identity_path(path: &str) -> bool {
    path == APP_SERVICE_PATH || path == IMDS_PATH
}

pub(crate) fn handle(shared: &Shared, request: &Parts) -> Outcome {
    let query: HashMap<String, String> =
        form_urlencoded::parse(request.uri.query().unwrap_or("").as_bytes())
            .into_owned()
            .collect();
    let response = if request.method != Method::GET {
        response::status(405)
    } else if request.uri.path() == APP_SERVICE_PATH {
        app_service(shared, request, &query)
    } else {
        imds(shared, request, &query)
    };
    Outcome::Reply(response)
}

/// Error body of both protocols: `{"error": …, "error_description": …}`.
fn error(status: u16, error: &str, description: &str) -> Response<Body> {
    response::json(
        status,
        &json!({ "error": error, "error_description": description }),
    )
}

fn record(shared: &Shared, identity: Option<&ManagedIdentity>, resource: &str) {
    let tenant = identity
        .map(|identity| identity.tenant_id.as_str())
        .unwrap_or("");
    shared.stats.token_request(tenant, resource);
}

/// Picks the identity a request names by one of `keys` (client id, object id, resource
/// id), or the system-assigned identity when it names none.
fn select<'a>(
    shared: &'a Shared,
    query: &HashMap<String, String>,
    client_key: &str,
    object_keys: &[&str],
    resource_key: &str,
) -> Option<&'a ManagedIdentity> {
    let identities = &shared.identities;
    if let Some(client_id) = query.get(client_key) {
        return identities
            .iter()
            .find(|identity| identity.client_id.eq_ignore_ascii_case(client_id));
    }
    for key in object_keys {
        if let Some(object_id) = query.get(*key) {
            return identities
                .iter()
                .find(|identity| identity.object_id.eq_ignore_ascii_case(object_id));
        }
    }
    if let Some(resource_id) = query.get(resource_key) {
        return identities
            .iter()
            .find(|identity| identity.resource_id.eq_ignore_ascii_case(resource_id));
    }
    identities.iter().find(|identity| identity.system_assigned)
}

fn issue(shared: &Shared, identity: &ManagedIdentity, resource: &str) -> String {
    let principal = Principal {
        client_id: identity.client_id.clone(),
        object_id: identity.object_id.clone(),
    };
    shared.issue_token(&identity.tenant_id, principal, resource)
}

/// Builds Entra ID's error for a `resource` that is not a Key Vault resource of any
/// configured cloud. Managed identities in the emulator get tokens for vaults only.
fn unknown_resource(resource: &str) -> Response<Body> {
    error(
        400,
        "invalid_resource",
        &format!("AADSTS500011: The resource principal named {resource} was not found in the tenant. You might have sent your authentication request to the wrong tenant."),
    )
}

/// `GET /msi/token?resource=…&api-version=2019-08-01[&client_id=…|principal_id=…|object_id=…|mi_res_id=…]`
/// with `X-IDENTITY-HEADER`.
fn app_service(
    shared: &Shared,
    request: &Parts,
    query: &HashMap<String, String>,
) -> Response<Body> {
    let resource = query.get("resource").cloned().unwrap_or_default();
    let identity = select(
        shared,
        query,
        "client_id",
        &["principal_id", "object_id"],
        "mi_res_id",
    );
    record(shared, identity, &resource);

    // NOTE: the wording of App Service's own errors was not captured except "Unable to
    // load the proper Managed Identity."; the other texts are the emulator's.
    let header = request
        .headers
        .get("x-identity-header")
        .and_then(|value| value.to_str().ok());
    if header != Some(shared.identity_header.as_str()) {
        return error(
            401,
            "unauthorized",
            "The X-IDENTITY-HEADER header is missing or does not match IDENTITY_HEADER.",
        );
    }
    if let Some(rejection) = shared.faults.token_gate() {
        let failure = unavailable(rejection.status);
        let mut response = error(rejection.status, &failure.error, &failure.message);
        response::set_retry_after(&mut response, rejection.retry_after);
        return response;
    }
    if query.get("api-version").map(String::as_str) != Some("2019-08-01") {
        return error(
            400,
            "invalid_request",
            "The api-version query parameter must be 2019-08-01 for the X-IDENTITY-HEADER protocol.",
        );
    }
    if resource.is_empty() {
        return error(
            400,
            "invalid_request",
            "The resource query parameter is missing.",
        );
    }
    let Some(identity) = identity else {
        return response::json(
            400,
            &json!({
                "statusCode": 400,
                "message": "Unable to load the proper Managed Identity.",
                "correlationId": new_guid(),
            }),
        );
    };
    if shared.cloud_of_resource(&resource).is_none() {
        return unknown_resource(&resource);
    }

    let token = issue(shared, identity, &resource);
    let expires_on = unix_now() + TOKEN_LIFETIME_SECONDS;
    response::json(
        200,
        &json!({
            "access_token": token,
            "expires_on": expires_on.to_string(),
            "resource": resource,
            "token_type": "Bearer",
            "client_id": identity.client_id,
        }),
    )
}

/// `GET /metadata/identity/oauth2/token?api-version=…&resource=…[&client_id=…|object_id=…|msi_res_id=…]`
/// with `Metadata: true`.
fn imds(shared: &Shared, request: &Parts, query: &HashMap<String, String>) -> Response<Body> {
    let resource = query.get("resource").cloned().unwrap_or_default();
    let identity = select(shared, query, "client_id", &["object_id"], "msi_res_id");
    record(shared, identity, &resource);

    let metadata = request
        .headers
        .get("metadata")
        .and_then(|value| value.to_str().ok());
    if metadata != Some("true") {
        return error(
            400,
            "bad_request_102",
            "Required metadata header not specified",
        );
    }
    if let Some(rejection) = shared.faults.token_gate() {
        let failure = unavailable(rejection.status);
        let mut response = error(rejection.status, &failure.error, &failure.message);
        response::set_retry_after(&mut response, rejection.retry_after);
        return response;
    }
    // NOTE: the two texts below are the emulator's; captured IMDS bodies were not available.
    if query.get("api-version").is_none_or(String::is_empty) {
        return error(
            400,
            "invalid_request",
            "Required query variable 'api-version' is missing",
        );
    }
    if resource.is_empty() {
        return error(
            400,
            "invalid_request",
            "Required query variable 'resource' is missing",
        );
    }
    let Some(identity) = identity else {
        return error(400, "invalid_request", "Identity not found");
    };
    if shared.cloud_of_resource(&resource).is_none() {
        return unknown_resource(&resource);
    }

    let token = issue(shared, identity, &resource);
    let now = unix_now();
    response::json(
        200,
        &json!({
            "access_token": token,
            "client_id": identity.client_id,
            "expires_in": TOKEN_LIFETIME_SECONDS.to_string(),
            "expires_on": (now + TOKEN_LIFETIME_SECONDS).to_string(),
            "ext_expires_in": TOKEN_LIFETIME_SECONDS.to_string(),
            "not_before": now.to_string(),
            "resource": resource,
            "token_type": "Bearer",
        }),
    )
}
