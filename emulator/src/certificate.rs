//! Certificate credentials: client assertions that an application signs with the private key
//! of a certificate registered on it.
//!
//! Entra ID identifies the certificate by the JWT header's `x5t#S256` (SHA-256 thumbprint)
//! or `x5t` (SHA-1). It checks the signature (PS256 or RS256) with the certificate's public
//! key. Then it checks the claims: `aud` is the token endpoint, `iss` and `sub` are the
//! client id, `jti` is present, and the assertion is valid now for at most ten minutes.

use crate::model::{AssertionRequest, EntraError};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use rustls::pki_types::CertificateDer;
use serde_json::Value;

/// Clock skew tolerated on `nbf` and `exp`, in seconds.
const CLOCK_SKEW_SECONDS: i64 = 300;
/// Maximum validity accepted, from `nbf` (or `iat`) to `exp`, in seconds. Entra ID's
/// documentation recommends assertions that expire 5 to 10 minutes after they start.
const MAX_LIFETIME_SECONDS: i64 = 600;

/// The result of checking an assertion against one registered certificate.
pub(crate) enum Check {
    /// The header names another certificate (or none): the next credential is tried.
    OtherCertificate,
    Valid,
    Invalid(EntraError),
}

/// Checks `request.assertion` against the DER certificate `certificate`.
pub(crate) fn check(certificate: &[u8], request: &AssertionRequest<'_>) -> Check {
    let mut parts = request.assertion.split('.');
    let (Some(header_part), Some(claims_part), Some(signature_part), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Check::OtherCertificate;
    };
    let Some(header) = decode_json(header_part) else {
        return Check::OtherCertificate;
    };
    if !names_certificate(&header, certificate) {
        return Check::OtherCertificate;
    }

    let algorithm = match header.get("alg").and_then(Value::as_str) {
        Some("PS256") => webpki::ring::RSA_PSS_2048_8192_SHA256_LEGACY_KEY,
        Some("RS256") => webpki::ring::RSA_PKCS1_2048_8192_SHA256,
        other => {
            return Check::Invalid(malformed(&format!(
                "The client assertion's algorithm {other:?} is not PS256 or RS256."
            )))
        }
    };
    let signature = match URL_SAFE_NO_PAD.decode(signature_part) {
        Ok(signature) => signature,
        Err(_) => return Check::Invalid(EntraError::signature_invalid()),
    };
    let der = CertificateDer::from(certificate);
    let Ok(end_entity) = webpki::EndEntityCert::try_from(&der) else {
        return Check::Invalid(EntraError::signature_invalid());
    };
    let signed = format!("{header_part}.{claims_part}");
    if end_entity
        .verify_signature(algorithm, signed.as_bytes(), &signature)
        .is_err()
    {
        return Check::Invalid(EntraError::signature_invalid());
    }

    let Some(claims) = decode_json(claims_part) else {
        return Check::Invalid(malformed("The client assertion's claims are not JSON."));
    };
    match check_claims(&claims, request) {
        Ok(()) => Check::Valid,
        Err(error) => Check::Invalid(error),
    }
}

/// Checks whether the header's `x5t#S256` or `x5t` is the thumbprint of `certificate`.
fn names_certificate(header: &Value, certificate: &[u8]) -> bool {
    let sha256 = URL_SAFE_NO_PAD.encode(ring::digest::digest(&ring::digest::SHA256, certificate));
    let sha1 = URL_SAFE_NO_PAD.encode(ring::digest::digest(
        &ring::digest::SHA1_FOR_LEGACY_USE_ONLY,
        certificate,
    ));
    let field = |name: &str| header.get(name).and_then(Value::as_str).map(|text| text.trim_end_matches('='));
    field("x5t#S256") == Some(sha256.as_str()) || field("x5t") == Some(sha1.as_str())
}

fn check_claims(claims: &Value, request: &AssertionRequest<'_>) -> Result<(), EntraError> {
    let text = |name: &str| claims.get(name).and_then(Value::as_str).unwrap_or("");
    let number = |name: &str| claims.get(name).and_then(Value::as_i64);

    let audience_matches = match claims.get("aud") {
        Some(Value::String(audience)) => audience == request.token_endpoint,
        Some(Value::Array(audiences)) => audiences
            .iter()
            .any(|audience| audience.as_str() == Some(request.token_endpoint)),
        _ => false,
    };
    if !audience_matches {
        return Err(malformed(&format!(
            "The client assertion's audience {} is not the token endpoint '{}'.",
            claims.get("aud").unwrap_or(&Value::Null),
            request.token_endpoint
        )));
    }
    for name in ["iss", "sub"] {
        if !text(name).eq_ignore_ascii_case(request.client_id) {
            return Err(malformed(&format!(
                "The client assertion's '{name}' claim '{}' is not the client id '{}'.",
                text(name),
                request.client_id
            )));
        }
    }
    if text("jti").is_empty() {
        return Err(malformed("The client assertion has no 'jti' claim."));
    }

    let Some(expires) = number("exp") else {
        return Err(malformed("The client assertion has no 'exp' claim."));
    };
    let starts = number("nbf").or_else(|| number("iat")).unwrap_or(request.now);
    let now = request.now;
    if expires + CLOCK_SKEW_SECONDS < now || starts - CLOCK_SKEW_SECONDS > now {
        return Err(crate::entra::assertion_out_of_range(now, starts, expires));
    }
    if expires - starts > MAX_LIFETIME_SECONDS {
        return Err(malformed(&format!(
            "The client assertion is valid for {} seconds; at most {MAX_LIFETIME_SECONDS} are accepted.",
            expires - starts
        )));
    }
    Ok(())
}

fn decode_json(part: &str) -> Option<Value> {
    let bytes = URL_SAFE_NO_PAD.decode(part.trim_end_matches('=')).ok()?;
    serde_json::from_slice(&bytes).ok()
}

/// AADSTS50027 with the emulator's own explanation appended.
fn malformed(detail: &str) -> EntraError {
    // NOTE: the codes and wording Entra ID uses for a wrong audience, issuer, lifetime or
    // algorithm in a certificate assertion were not captured. This reuses AADSTS50027.
    EntraError::new(
        400,
        "invalid_request",
        50027,
        format!("JWT token is invalid or malformed. {detail}"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use ring::signature::{RsaKeyPair, RSA_PKCS1_SHA256, RSA_PSS_SHA256};
    use rsa::pkcs8::EncodePrivateKey;
    use serde_json::json;
    use std::sync::OnceLock;

    const CLIENT_ID: &str = "app-1";
    const TOKEN_ENDPOINT: &str = "https://login.microsoftonline.com/tenant-1/oauth2/v2.0/token";
    const NOW: i64 = 1_800_000_000;

    struct Fixture {
        key: RsaKeyPair,
        certificate: Vec<u8>,
    }

    /// Returns one RSA key and certificate per test binary, because generating the key is
    /// slow.
    fn fixture() -> &'static Fixture {
        static FIXTURE: OnceLock<Fixture> = OnceLock::new();
        FIXTURE.get_or_init(|| {
            let private = rsa::RsaPrivateKey::new(&mut rsa::rand_core::OsRng, 2048).unwrap();
            let pkcs8 = private.to_pkcs8_der().unwrap().as_bytes().to_vec();
            let signing = rcgen::KeyPair::try_from(pkcs8.as_slice()).unwrap();
            let certificate = rcgen::CertificateParams::new(vec!["app-1.test".to_string()])
                .unwrap()
                .self_signed(&signing)
                .unwrap();
            Fixture {
                key: RsaKeyPair::from_pkcs8(&pkcs8).unwrap(),
                certificate: certificate.der().to_vec(),
            }
        })
    }

    fn x5t_s256() -> String {
        URL_SAFE_NO_PAD.encode(ring::digest::digest(&ring::digest::SHA256, &fixture().certificate))
    }

    fn valid_claims() -> Value {
        json!({
            "aud": TOKEN_ENDPOINT,
            "iss": CLIENT_ID,
            "sub": CLIENT_ID,
            "jti": "3f1c5a7e-0b2d-4e6f-8a9c-1d3e5f7a9b0c",
            "nbf": NOW,
            "iat": NOW,
            "exp": NOW + 600,
        })
    }

    fn sign(header: &Value, claims: &Value) -> String {
        let algorithm: &dyn ring::signature::RsaEncoding = match header["alg"].as_str() {
            Some("RS256") => &RSA_PKCS1_SHA256,
            _ => &RSA_PSS_SHA256,
        };
        let input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header.to_string()),
            URL_SAFE_NO_PAD.encode(claims.to_string())
        );
        let key = &fixture().key;
        let mut signature = vec![0; key.public().modulus_len()];
        key.sign(algorithm, &ring::rand::SystemRandom::new(), input.as_bytes(), &mut signature)
            .unwrap();
        format!("{input}.{}", URL_SAFE_NO_PAD.encode(signature))
    }

    fn ps256_header() -> Value {
        json!({ "alg": "PS256", "typ": "JWT", "x5t#S256": x5t_s256() })
    }

    fn check_assertion(assertion: &str) -> Check {
        let request = AssertionRequest {
            assertion,
            tenant_id: "tenant-1",
            client_id: CLIENT_ID,
            token_endpoint: TOKEN_ENDPOINT,
            now: NOW,
        };
        check(&fixture().certificate, &request)
    }

    /// Returns the AADSTS code of a rejection, or `None` when the assertion was accepted or
    /// skipped.
    fn rejection_code(assertion: &str) -> Option<u32> {
        match check_assertion(assertion) {
            Check::Invalid(error) => Some(error.code()),
            Check::Valid | Check::OtherCertificate => None,
        }
    }

    fn with_claim(name: &str, value: Value) -> Value {
        let mut claims = valid_claims();
        claims[name] = value;
        claims
    }

    #[test]
    fn ps256_assertion_is_accepted() {
        assert!(matches!(check_assertion(&sign(&ps256_header(), &valid_claims())), Check::Valid));
    }

    #[test]
    fn rs256_with_sha1_thumbprint_is_accepted() {
        let sha1 = URL_SAFE_NO_PAD.encode(ring::digest::digest(
            &ring::digest::SHA1_FOR_LEGACY_USE_ONLY,
            &fixture().certificate,
        ));
        let header = json!({ "alg": "RS256", "typ": "JWT", "x5t": sha1 });
        assert!(matches!(check_assertion(&sign(&header, &valid_claims())), Check::Valid));
    }

    #[test]
    fn other_thumbprint_is_not_this_certificate() {
        let header = json!({ "alg": "PS256", "typ": "JWT", "x5t#S256": "AAAA" });
        assert!(matches!(check_assertion(&sign(&header, &valid_claims())), Check::OtherCertificate));
        assert!(matches!(check_assertion("not-a-jwt"), Check::OtherCertificate));
    }

    #[test]
    fn tampered_claims_fail_signature_validation() {
        let assertion = sign(&ps256_header(), &valid_claims());
        let mut parts: Vec<&str> = assertion.split('.').collect();
        let forged = URL_SAFE_NO_PAD.encode(with_claim("sub", json!("someone-else")).to_string());
        parts[1] = &forged;
        assert_eq!(rejection_code(&parts.join(".")), Some(700027));
    }

    #[test]
    fn wrong_claims_are_rejected() {
        let cases = [
            ("aud", json!("https://login.microsoftonline.com/other/oauth2/v2.0/token")),
            ("iss", json!("another-app")),
            ("sub", json!("another-app")),
            ("jti", json!("")),
        ];
        for (name, value) in cases {
            let assertion = sign(&ps256_header(), &with_claim(name, value));
            assert_eq!(rejection_code(&assertion), Some(50027), "{name}");
        }
    }

    #[test]
    fn audience_may_be_a_list() {
        let claims = with_claim("aud", json!(["https://other.example", TOKEN_ENDPOINT]));
        assert!(matches!(check_assertion(&sign(&ps256_header(), &claims)), Check::Valid));
    }

    #[test]
    fn assertion_outside_its_time_range_is_rejected() {
        let expired = with_claim("exp", json!(NOW - 3600));
        assert_eq!(rejection_code(&sign(&ps256_header(), &expired)), Some(700024));

        let mut early = valid_claims();
        early["nbf"] = json!(NOW + 3600);
        early["exp"] = json!(NOW + 3900);
        assert_eq!(rejection_code(&sign(&ps256_header(), &early)), Some(700024));
    }

    #[test]
    fn long_lived_assertion_is_rejected() {
        let long = with_claim("exp", json!(NOW + 3600));
        assert_eq!(rejection_code(&sign(&ps256_header(), &long)), Some(50027));
    }

    #[test]
    fn unsupported_algorithm_is_rejected() {
        let header = json!({ "alg": "HS256", "typ": "JWT", "x5t#S256": x5t_s256() });
        assert_eq!(rejection_code(&sign(&header, &valid_claims())), Some(50027));
    }
}
