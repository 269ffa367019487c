//! The client certificate credential: loading the certificate and its private key from a
//! PEM or PKCS#12 file, and signing the client assertions that Entra ID accepts in place of
//! a client secret.
//!
//! The assertion is a JWT signed with PS256 (RSA-PSS with SHA-256). It is built here with
//! `ring`, which rustls already links, because `azure_identity`'s certificate credential
//! needs the system OpenSSL. Loading uses pure-Rust parsers: `x509-parser` for PEM and
//! X.509, `p12-keystore` for PKCS#12 and `pkcs8` for encrypted private keys.

use azure_core::http::ClientMethodOptions;
use azure_identity::ClientAssertion;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use ring::rand::{SecureRandom, SystemRandom};
use ring::signature::{RsaKeyPair, RSA_PSS_SHA256};
use secrecy::{ExposeSecret, SecretString};
use serde::Serialize;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};
use zeroize::Zeroizing;

/// Lifetime of a client assertion. Entra ID accepts assertions that expire 5 to 10 minutes
/// after `nbf`; each token request signs a new one.
const ASSERTION_LIFETIME_SECONDS: u64 = 600;

/// A certificate with its RSA private key, ready to sign client assertions.
pub struct ClientCertificate {
    key: RsaKeyPair,
    /// DER certificates, the one that matches `key` first, then the rest of the file in
    /// its order (the chain sent as `x5c`).
    chain: Vec<Vec<u8>>,
    path: PathBuf,
}

impl fmt::Debug for ClientCertificate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientCertificate")
            .field("path", &self.path)
            .field("thumbprint", &self.thumbprint())
            .finish_non_exhaustive()
    }
}

/// Reasons the certificate file cannot be used. Messages never contain key material or
/// the password.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CertificateError {
    #[error("cannot read {}: {reason}", path.display())]
    Unreadable { path: PathBuf, reason: String },
    #[error("{} is neither PEM nor PKCS#12: {reason}", path.display())]
    UnknownFormat { path: PathBuf, reason: String },
    #[error("{} holds no private key", path.display())]
    NoPrivateKey { path: PathBuf },
    #[error("{} holds {count} private keys; keep only the one registered with the application", path.display())]
    SeveralPrivateKeys { path: PathBuf, count: usize },
    #[error("the private key in {} is encrypted but AZURE_CLIENT_CERTIFICATE_PASSWORD is not set", path.display())]
    PasswordMissing { path: PathBuf },
    #[error("cannot decrypt {}: wrong AZURE_CLIENT_CERTIFICATE_PASSWORD or unsupported encryption ({reason})", path.display())]
    WrongPassword { path: PathBuf, reason: String },
    #[error("the private key in {} uses the legacy OpenSSL encryption (Proc-Type: 4,ENCRYPTED), which is not supported", path.display())]
    LegacyEncryptedPem { path: PathBuf },
    #[error("the private key in {} is not a usable RSA key: {reason}", path.display())]
    UnsupportedKey { path: PathBuf, reason: String },
    #[error("{} holds no certificate that matches its private key", path.display())]
    NoMatchingCertificate { path: PathBuf },
}

impl ClientCertificate {
    /// Reads a PEM file (certificate and private key, optionally encrypted PKCS#8) or a
    /// PKCS#12 file. The format is detected from the content, not the file name.
    pub fn load(path: &Path, password: Option<&SecretString>) -> Result<ClientCertificate, CertificateError> {
        let bytes = Zeroizing::new(std::fs::read(path).map_err(|error| CertificateError::Unreadable {
            path: path.to_path_buf(),
            reason: error.to_string(),
        })?);
        if is_pem(&bytes) {
            ClientCertificate::from_pem(path, &bytes, password)
        } else {
            ClientCertificate::from_pkcs12(path, &bytes, password)
        }
    }

    fn from_pem(path: &Path, bytes: &[u8], password: Option<&SecretString>) -> Result<ClientCertificate, CertificateError> {
        let unknown = |reason: String| CertificateError::UnknownFormat {
            path: path.to_path_buf(),
            reason,
        };
        if contains(bytes, b"Proc-Type: 4,ENCRYPTED") {
            return Err(CertificateError::LegacyEncryptedPem { path: path.to_path_buf() });
        }

        let mut certificates = Vec::new();
        let mut keys = Vec::new();
        for block in x509_parser::pem::Pem::iter_from_buffer(bytes) {
            let block = block.map_err(|error| unknown(format!("invalid PEM block: {error}")))?;
            let contents = Zeroizing::new(block.contents);
            match block.label.as_str() {
                "CERTIFICATE" => certificates.push(contents.to_vec()),
                "PRIVATE KEY" => keys.push(KeyDer::Pkcs8(contents)),
                "RSA PRIVATE KEY" => keys.push(KeyDer::Pkcs1(contents)),
                "ENCRYPTED PRIVATE KEY" => keys.push(KeyDer::Pkcs8(decrypt_pkcs8(path, &contents, password)?)),
                "EC PRIVATE KEY" => {
                    return Err(CertificateError::UnsupportedKey {
                        path: path.to_path_buf(),
                        reason: "it is an EC key; Entra ID client assertions need an RSA key".to_string(),
                    })
                }
                _ => {}
            }
        }
        let key = single_key(path, keys)?;
        let key = parse_key(path, &key)?;
        ClientCertificate::assemble(path, key, certificates)
    }

    fn from_pkcs12(path: &Path, bytes: &[u8], password: Option<&SecretString>) -> Result<ClientCertificate, CertificateError> {
        // A PKCS#12 file exported without a password still has a MAC keyed with the empty
        // password, so "" is the right default.
        let password_text = password.map(ExposeSecret::expose_secret).unwrap_or_default();
        let archive = p12_keystore::Pkcs12Archive::from_pkcs12(bytes, password_text).map_err(|error| {
            pkcs12_error(path, &error, password.is_some())
        })?;
        let keys = archive
            .keys
            .iter()
            .map(|bag| KeyDer::Pkcs8(Zeroizing::new(bag.key.as_der().to_vec())))
            .collect();
        let key = single_key(path, keys)?;
        let key = parse_key(path, &key)?;
        let certificates = archive.certs.iter().map(|bag| bag.cert.as_der().to_vec()).collect();
        ClientCertificate::assemble(path, key, certificates)
    }

    /// Puts the certificate whose public key is the key pair's first, as the leaf.
    fn assemble(path: &Path, key: RsaKeyPair, certificates: Vec<Vec<u8>>) -> Result<ClientCertificate, CertificateError> {
        let public_key = key.public().as_ref();
        let leaf = certificates
            .iter()
            .position(|der| certificate_public_key(der).is_some_and(|candidate| candidate == public_key))
            .ok_or_else(|| CertificateError::NoMatchingCertificate { path: path.to_path_buf() })?;
        let mut chain = certificates;
        let leaf_der = chain.remove(leaf);
        chain.insert(0, leaf_der);
        Ok(ClientCertificate {
            key,
            chain,
            path: path.to_path_buf(),
        })
    }

    /// Returns the SHA-1 thumbprint as the Azure portal shows it (uppercase hex), to match the
    /// certificate registered on the application.
    pub fn thumbprint(&self) -> String {
        let digest = ring::digest::digest(&ring::digest::SHA1_FOR_LEGACY_USE_ONLY, &self.chain[0]);
        digest.as_ref().iter().map(|byte| format!("{byte:02X}")).collect()
    }

    /// Returns the `x5t#S256` header value: base64url of the SHA-256 digest of the DER certificate.
    pub fn x5t_s256(&self) -> String {
        URL_SAFE_NO_PAD.encode(ring::digest::digest(&ring::digest::SHA256, &self.chain[0]))
    }

    /// Returns the DER certificate that matches the private key.
    pub fn leaf_der(&self) -> &[u8] {
        &self.chain[0]
    }

    /// Signs a client assertion for `client_id` addressed to the token endpoint
    /// `audience`, valid from `now` (Unix seconds) for ten minutes.
    pub fn sign_assertion(
        &self,
        client_id: &str,
        audience: &str,
        now: u64,
        send_chain: bool,
    ) -> Result<String, ring::error::Unspecified> {
        let rng = SystemRandom::new();
        let header = AssertionHeader {
            alg: "PS256",
            typ: "JWT",
            x5t_s256: self.x5t_s256(),
            x5c: send_chain.then(|| self.chain.iter().map(|der| STANDARD.encode(der)).collect()),
        };
        let claims = AssertionClaims {
            aud: audience,
            iss: client_id,
            sub: client_id,
            jti: random_uuid(&rng)?,
            nbf: now,
            iat: now,
            exp: now + ASSERTION_LIFETIME_SECONDS,
        };
        let header_json = serde_json::to_vec(&header).map_err(|_| ring::error::Unspecified)?;
        let claims_json = serde_json::to_vec(&claims).map_err(|_| ring::error::Unspecified)?;
        let signing_input = format!("{}.{}", URL_SAFE_NO_PAD.encode(header_json), URL_SAFE_NO_PAD.encode(claims_json));

        let mut signature = vec![0; self.key.public().modulus_len()];
        self.key.sign(&RSA_PSS_SHA256, &rng, signing_input.as_bytes(), &mut signature)?;
        Ok(format!("{signing_input}.{}", URL_SAFE_NO_PAD.encode(signature)))
    }
}

#[derive(Serialize)]
struct AssertionHeader {
    alg: &'static str,
    typ: &'static str,
    #[serde(rename = "x5t#S256")]
    x5t_s256: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    x5c: Option<Vec<String>>,
}

#[derive(Serialize)]
struct AssertionClaims<'a> {
    aud: &'a str,
    iss: &'a str,
    sub: &'a str,
    jti: String,
    nbf: u64,
    iat: u64,
    exp: u64,
}

/// The assertion source `ClientAssertionCredential` calls before each token request: a
/// fresh assertion for one token endpoint.
#[derive(Debug)]
pub struct CertificateAssertion {
    pub certificate: Arc<ClientCertificate>,
    pub client_id: String,
    /// The token endpoint, `{authority}/{tenant}/oauth2/v2.0/token`, which Entra ID expects
    /// as `aud`.
    pub audience: String,
    /// Adds the `x5c` chain, for applications that trust a certificate by subject name and
    /// issuer (AZURE_CLIENT_SEND_CERTIFICATE_CHAIN).
    pub send_chain: bool,
}

#[async_trait::async_trait]
impl ClientAssertion for CertificateAssertion {
    async fn secret(&self, _: Option<ClientMethodOptions<'_>>) -> azure_core::Result<String> {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|elapsed| elapsed.as_secs())
            .unwrap_or_default();
        self.certificate
            .sign_assertion(&self.client_id, &self.audience, now, self.send_chain)
            .map_err(|_| {
                azure_core::Error::with_message(
                    azure_core::error::ErrorKind::Credential,
                    format!("signing the client assertion with {} failed", self.certificate.path.display()),
                )
            })
    }
}

/// Builds the token endpoint that a certificate assertion names as its audience, as
/// `azure_identity`'s `ClientAssertionCredential` builds the URL it posts to.
pub fn token_endpoint(authority_host: &str, tenant_id: &str) -> Result<String, url::ParseError> {
    let authority = url::Url::parse(authority_host)?;
    Ok(authority.join(&format!("/{tenant_id}/oauth2/v2.0/token"))?.to_string())
}

fn is_pem(bytes: &[u8]) -> bool {
    contains(bytes, b"-----BEGIN ")
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|window| window == needle)
}

/// A DER private key as found in the file.
enum KeyDer {
    /// `PRIVATE KEY` blocks and PKCS#12 key bags.
    Pkcs8(Zeroizing<Vec<u8>>),
    /// `RSA PRIVATE KEY` blocks.
    Pkcs1(Zeroizing<Vec<u8>>),
}

fn parse_key(path: &Path, der: &KeyDer) -> Result<RsaKeyPair, CertificateError> {
    let parsed = match der {
        KeyDer::Pkcs8(pkcs8) => RsaKeyPair::from_pkcs8(pkcs8),
        KeyDer::Pkcs1(pkcs1) => RsaKeyPair::from_der(pkcs1),
    };
    parsed.map_err(|rejected| CertificateError::UnsupportedKey {
        path: path.to_path_buf(),
        reason: match rejected.to_string().as_str() {
            "TooSmall" => "the RSA key is shorter than 2048 bits".to_string(),
            "WrongAlgorithm" => "it is not an RSA key; Entra ID client assertions need an RSA key".to_string(),
            "InvalidEncoding" => "it is not a valid RSA private key".to_string(),
            "PrivateModulusLenNotMultipleOf512Bits" => "its length is not a multiple of 512 bits".to_string(),
            other => format!("the key was rejected ({other})"),
        },
    })
}

fn single_key(path: &Path, mut keys: Vec<KeyDer>) -> Result<KeyDer, CertificateError> {
    match keys.len() {
        0 => Err(CertificateError::NoPrivateKey { path: path.to_path_buf() }),
        1 => Ok(keys.remove(0)),
        count => Err(CertificateError::SeveralPrivateKeys {
            path: path.to_path_buf(),
            count,
        }),
    }
}

fn decrypt_pkcs8(path: &Path, der: &[u8], password: Option<&SecretString>) -> Result<Zeroizing<Vec<u8>>, CertificateError> {
    let Some(password) = password else {
        return Err(CertificateError::PasswordMissing { path: path.to_path_buf() });
    };
    let encrypted = pkcs8::EncryptedPrivateKeyInfoRef::try_from(der).map_err(|error| CertificateError::UnknownFormat {
        path: path.to_path_buf(),
        reason: format!("invalid encrypted private key: {error}"),
    })?;
    let document = encrypted
        .decrypt(password.expose_secret().as_bytes())
        .map_err(|error| CertificateError::WrongPassword {
            path: path.to_path_buf(),
            reason: error.to_string(),
        })?;
    Ok(Zeroizing::new(document.as_bytes().to_vec()))
}

fn pkcs12_error(path: &Path, error: &p12_keystore::error::Error, password_given: bool) -> CertificateError {
    use p12_keystore::error::Error;
    match error {
        Error::MacError(_) | Error::UnpadError | Error::Pkcs5Error(_) if !password_given => {
            CertificateError::PasswordMissing { path: path.to_path_buf() }
        }
        Error::MacError(_) | Error::UnpadError | Error::Pkcs5Error(_) => CertificateError::WrongPassword {
            path: path.to_path_buf(),
            reason: error.to_string(),
        },
        Error::UnsupportedEncryptionScheme | Error::UnsupportedMacAlgorithm => CertificateError::WrongPassword {
            path: path.to_path_buf(),
            reason: error.to_string(),
        },
        other => CertificateError::UnknownFormat {
            path: path.to_path_buf(),
            reason: other.to_string(),
        },
    }
}

/// Extracts the DER `RSAPublicKey` inside a certificate's subject public key info.
fn certificate_public_key(der: &[u8]) -> Option<Vec<u8>> {
    let (_, certificate) = x509_parser::parse_x509_certificate(der).ok()?;
    Some(certificate.public_key().subject_public_key.data.to_vec())
}

/// Generates a random version-4 UUID, the usual form of `jti`.
fn random_uuid(rng: &SystemRandom) -> Result<String, ring::error::Unspecified> {
    let mut bytes = [0u8; 16];
    rng.fill(&mut bytes)?;
    bytes[6] = (bytes[6] & 0x0f) | 0x40;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    let hex: String = bytes.iter().map(|byte| format!("{byte:02x}")).collect();
    Ok(format!("{}-{}-{}-{}-{}", &hex[0..8], &hex[8..12], &hex[12..16], &hex[16..20], &hex[20..32]))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rsa::pkcs1::EncodeRsaPrivateKey;
    use rsa::pkcs8::EncodePrivateKey;
    use rsa::signature::Verifier;
    use std::sync::OnceLock;

    const PASSWORD: &str = "correct horse";

    /// Returns one 2048-bit RSA key per test binary, because generating one takes up to a
    /// second.
    fn rsa_key() -> &'static rsa::RsaPrivateKey {
        static KEY: OnceLock<rsa::RsaPrivateKey> = OnceLock::new();
        KEY.get_or_init(|| rsa::RsaPrivateKey::new(&mut rsa::rand_core::OsRng, 2048).unwrap())
    }

    fn pkcs8_der() -> Vec<u8> {
        rsa_key().to_pkcs8_der().unwrap().as_bytes().to_vec()
    }

    /// Issues a self-signed certificate for the test RSA key.
    fn leaf_certificate() -> rcgen::Certificate {
        let key = rcgen::KeyPair::try_from(pkcs8_der().as_slice()).unwrap();
        rcgen::CertificateParams::new(vec!["kvexec-test".to_string()])
            .unwrap()
            .self_signed(&key)
            .unwrap()
    }

    /// Issues a CA certificate (ECDSA) and a leaf certificate for the test RSA key signed
    /// by it.
    fn chained_certificates() -> (rcgen::Certificate, rcgen::Certificate) {
        let ca_key = rcgen::KeyPair::generate().unwrap();
        let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        ca_params.distinguished_name.push(rcgen::DnType::CommonName, "kvexec test CA");
        let ca = ca_params.self_signed(&ca_key).unwrap();
        let issuer = rcgen::Issuer::new(ca_params, ca_key);
        let leaf_key = rcgen::KeyPair::try_from(pkcs8_der().as_slice()).unwrap();
        let leaf = rcgen::CertificateParams::new(vec!["kvexec-test".to_string()])
            .unwrap()
            .signed_by(&leaf_key, &issuer)
            .unwrap();
        (ca, leaf)
    }

    fn pem_block(label: &str, der: &[u8]) -> String {
        let body = STANDARD.encode(der);
        let lines: Vec<&str> = body.as_bytes().chunks(64).map(|chunk| std::str::from_utf8(chunk).unwrap()).collect();
        format!("-----BEGIN {label}-----\n{}\n-----END {label}-----\n", lines.join("\n"))
    }

    fn write(dir: &tempfile::TempDir, name: &str, content: impl AsRef<[u8]>) -> PathBuf {
        let path = dir.path().join(name);
        std::fs::write(&path, content).unwrap();
        path
    }

    fn pkcs12(password: &str, algorithm: p12_keystore::EncryptionAlgorithm, certificates: &[&[u8]]) -> Vec<u8> {
        let chain = certificates.iter().map(|der| p12_keystore::Certificate::from_der(der).unwrap());
        let key = p12_keystore::PrivateKey::from_der(&pkcs8_der()).unwrap();
        let entry = p12_keystore::PrivateKeyChain::new(vec![1u8, 2, 3], key, chain);
        let mut store = p12_keystore::KeyStore::new();
        store.add_entry("kvexec", p12_keystore::KeyStoreEntry::PrivateKeyChain(entry));
        store.writer(password).encryption_algorithm(algorithm).write().unwrap()
    }

    fn password() -> SecretString {
        SecretString::from(PASSWORD)
    }

    fn load(path: &Path, password: Option<&SecretString>) -> Result<ClientCertificate, CertificateError> {
        ClientCertificate::load(path, password)
    }

    #[test]
    fn pem_with_pkcs8_key_loads() {
        let dir = tempfile::tempdir().unwrap();
        let leaf = leaf_certificate();
        let path = write(&dir, "app.pem", format!("{}{}", leaf.pem(), pem_block("PRIVATE KEY", &pkcs8_der())));
        let certificate = load(&path, None).unwrap();
        assert_eq!(certificate.leaf_der(), leaf.der().as_ref());
        let sha1 = ring::digest::digest(&ring::digest::SHA1_FOR_LEGACY_USE_ONLY, leaf.der());
        let expected: String = sha1.as_ref().iter().map(|b| format!("{b:02X}")).collect();
        assert_eq!(certificate.thumbprint(), expected);
        let sha256 = ring::digest::digest(&ring::digest::SHA256, leaf.der());
        assert_eq!(certificate.x5t_s256(), URL_SAFE_NO_PAD.encode(sha256));
    }

    #[test]
    fn pem_with_pkcs1_key_loads() {
        let dir = tempfile::tempdir().unwrap();
        let leaf = leaf_certificate();
        let pkcs1 = rsa_key().to_pkcs1_der().unwrap();
        let path = write(&dir, "app.pem", format!("{}{}", pem_block("RSA PRIVATE KEY", pkcs1.as_bytes()), leaf.pem()));
        assert_eq!(load(&path, None).unwrap().leaf_der(), leaf.der().as_ref());
    }

    #[test]
    fn pem_leaf_is_found_among_chain() {
        let dir = tempfile::tempdir().unwrap();
        let (ca, leaf) = chained_certificates();
        let content = format!("{}{}{}", ca.pem(), pem_block("PRIVATE KEY", &pkcs8_der()), leaf.pem());
        let path = write(&dir, "chain.pem", content);
        let certificate = load(&path, None).unwrap();
        assert_eq!(certificate.leaf_der(), leaf.der().as_ref());
        assert_eq!(certificate.chain.len(), 2);
        assert_eq!(certificate.chain[1], ca.der().to_vec());
    }

    #[test]
    fn encrypted_pem_key_needs_the_password() {
        let dir = tempfile::tempdir().unwrap();
        let leaf = leaf_certificate();
        let parameters = pkcs8::pkcs5::pbes2::Parameters::generate_pbkdf2_sha256_aes256cbc(2048, &[7u8; 16], [9u8; 16]).unwrap();
        let key_der = pkcs8_der();
        let info = pkcs8::PrivateKeyInfoRef::try_from(key_der.as_slice()).unwrap();
        let encrypted = info.encrypt_with_params(parameters, PASSWORD).unwrap();
        let content = format!("{}{}", leaf.pem(), pem_block("ENCRYPTED PRIVATE KEY", encrypted.as_bytes()));
        let path = write(&dir, "encrypted.pem", content);

        assert_eq!(load(&path, Some(&password())).unwrap().leaf_der(), leaf.der().as_ref());
        assert!(matches!(load(&path, None), Err(CertificateError::PasswordMissing { .. })));
        let wrong = SecretString::from("wrong");
        assert!(matches!(load(&path, Some(&wrong)), Err(CertificateError::WrongPassword { .. })));
    }

    #[test]
    fn pkcs12_loads_with_password() {
        let dir = tempfile::tempdir().unwrap();
        let (ca, leaf) = chained_certificates();
        let bytes = pkcs12(PASSWORD, p12_keystore::EncryptionAlgorithm::PbeWithHmacSha256AndAes256, &[leaf.der(), ca.der()]);
        let path = write(&dir, "app.pfx", bytes);
        let certificate = load(&path, Some(&password())).unwrap();
        assert_eq!(certificate.leaf_der(), leaf.der().as_ref());
        assert_eq!(certificate.chain.len(), 2);
    }

    #[test]
    fn pkcs12_with_legacy_triple_des_loads() {
        let dir = tempfile::tempdir().unwrap();
        let leaf = leaf_certificate();
        let bytes = pkcs12(PASSWORD, p12_keystore::EncryptionAlgorithm::PbeWithShaAnd3KeyTripleDesCbc, &[leaf.der()]);
        let path = write(&dir, "legacy.p12", bytes);
        assert_eq!(load(&path, Some(&password())).unwrap().leaf_der(), leaf.der().as_ref());
    }

    #[test]
    fn pkcs12_password_errors() {
        let dir = tempfile::tempdir().unwrap();
        let leaf = leaf_certificate();
        let bytes = pkcs12(PASSWORD, p12_keystore::EncryptionAlgorithm::PbeWithHmacSha256AndAes256, &[leaf.der()]);
        let path = write(&dir, "app.pfx", bytes);
        assert!(matches!(load(&path, None), Err(CertificateError::PasswordMissing { .. })));
        let wrong = SecretString::from("p4ss-not-this-one");
        let error = load(&path, Some(&wrong)).unwrap_err();
        assert!(matches!(error, CertificateError::WrongPassword { .. }), "{error}");
        assert!(!error.to_string().contains("p4ss-not-this-one"), "the password must not be echoed: {error}");
    }

    #[test]
    fn pkcs12_without_password_loads_with_none() {
        let dir = tempfile::tempdir().unwrap();
        let leaf = leaf_certificate();
        let bytes = pkcs12("", p12_keystore::EncryptionAlgorithm::PbeWithHmacSha256AndAes256, &[leaf.der()]);
        let path = write(&dir, "open.pfx", bytes);
        assert_eq!(load(&path, None).unwrap().leaf_der(), leaf.der().as_ref());
    }

    #[test]
    fn unusable_files_are_explained() {
        let dir = tempfile::tempdir().unwrap();
        let leaf = leaf_certificate();
        let key_block = pem_block("PRIVATE KEY", &pkcs8_der());

        let missing = dir.path().join("missing.pem");
        assert!(matches!(load(&missing, None), Err(CertificateError::Unreadable { .. })));

        let only_key = write(&dir, "key.pem", &key_block);
        assert!(matches!(load(&only_key, None), Err(CertificateError::NoMatchingCertificate { .. })));

        let only_cert = write(&dir, "cert.pem", leaf.pem());
        assert!(matches!(load(&only_cert, None), Err(CertificateError::NoPrivateKey { .. })));

        let two_keys = write(&dir, "two.pem", format!("{}{key_block}{key_block}", leaf.pem()));
        assert!(matches!(load(&two_keys, None), Err(CertificateError::SeveralPrivateKeys { count: 2, .. })));

        let garbage = write(&dir, "garbage.pfx", b"\x30\x03\x02\x01\x05not pkcs12");
        assert!(matches!(load(&garbage, None), Err(CertificateError::UnknownFormat { .. })));

        let legacy = "-----BEGIN RSA PRIVATE KEY-----\nProc-Type: 4,ENCRYPTED\nDEK-Info: AES-128-CBC,00\n\nAAAA\n-----END RSA PRIVATE KEY-----\n";
        let legacy = write(&dir, "legacy.pem", format!("{}{legacy}", leaf.pem()));
        assert!(matches!(load(&legacy, None), Err(CertificateError::LegacyEncryptedPem { .. })));

        let ec_key = rcgen::KeyPair::generate().unwrap();
        let ec_certificate = rcgen::CertificateParams::new(vec!["ec".to_string()]).unwrap().self_signed(&ec_key).unwrap();
        let ec = write(&dir, "ec.pem", format!("{}{}", ec_certificate.pem(), ec_key.serialize_pem()));
        assert!(matches!(load(&ec, None), Err(CertificateError::UnsupportedKey { .. })));
    }

    fn decode_part(part: &str) -> serde_json::Value {
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(part).unwrap()).unwrap()
    }

    fn pem_certificate(dir: &tempfile::TempDir) -> (ClientCertificate, rcgen::Certificate) {
        let (ca, leaf) = chained_certificates();
        let content = format!("{}{}{}", leaf.pem(), ca.pem(), pem_block("PRIVATE KEY", &pkcs8_der()));
        let path = write(dir, "app.pem", content);
        (load(&path, None).unwrap(), ca)
    }

    #[test]
    fn assertion_has_the_entra_id_header_and_claims() {
        let dir = tempfile::tempdir().unwrap();
        let (certificate, _) = pem_certificate(&dir);
        let audience = "https://login.example/tenant-1/oauth2/v2.0/token";
        let jwt = certificate.sign_assertion("app-1", audience, 1_700_000_000, false).unwrap();
        let parts: Vec<&str> = jwt.split('.').collect();
        assert_eq!(parts.len(), 3);

        let header = decode_part(parts[0]);
        assert_eq!(header["alg"], "PS256");
        assert_eq!(header["typ"], "JWT");
        assert_eq!(header["x5t#S256"], certificate.x5t_s256());
        assert!(header.get("x5c").is_none());

        let claims = decode_part(parts[1]);
        assert_eq!(claims["aud"], audience);
        assert_eq!(claims["iss"], "app-1");
        assert_eq!(claims["sub"], "app-1");
        assert_eq!(claims["nbf"], 1_700_000_000u64);
        assert_eq!(claims["iat"], 1_700_000_000u64);
        assert_eq!(claims["exp"], 1_700_000_600u64);
        let jti = claims["jti"].as_str().unwrap();
        assert_eq!(jti.len(), 36);
        assert_eq!(&jti[14..15], "4", "version-4 UUID: {jti}");
    }

    #[test]
    fn assertion_ids_are_unique() {
        let dir = tempfile::tempdir().unwrap();
        let (certificate, _) = pem_certificate(&dir);
        let jti = |jwt: String| decode_part(jwt.split('.').nth(1).unwrap())["jti"].clone();
        let first = jti(certificate.sign_assertion("app", "https://a/t/oauth2/v2.0/token", 1, false).unwrap());
        let second = jti(certificate.sign_assertion("app", "https://a/t/oauth2/v2.0/token", 1, false).unwrap());
        assert_ne!(first, second);
    }

    #[test]
    fn assertion_signature_verifies_with_the_public_key() {
        let dir = tempfile::tempdir().unwrap();
        let (certificate, _) = pem_certificate(&dir);
        let jwt = certificate.sign_assertion("app", "https://a/t/oauth2/v2.0/token", 1_700_000_000, false).unwrap();
        let (signing_input, signature) = jwt.rsplit_once('.').unwrap();
        let signature = rsa::pss::Signature::try_from(URL_SAFE_NO_PAD.decode(signature).unwrap().as_slice()).unwrap();
        let verifier = rsa::pss::VerifyingKey::<rsa::sha2::Sha256>::new(rsa_key().to_public_key());
        verifier.verify(signing_input.as_bytes(), &signature).unwrap();

        let tampered = signing_input.replacen('.', ".e", 1);
        assert!(verifier.verify(tampered.as_bytes(), &signature).is_err());
    }

    #[test]
    fn assertion_chain_is_sent_on_request() {
        let dir = tempfile::tempdir().unwrap();
        let (certificate, ca) = pem_certificate(&dir);
        let jwt = certificate.sign_assertion("app", "https://a/t/oauth2/v2.0/token", 1, true).unwrap();
        let header = decode_part(jwt.split('.').next().unwrap());
        let chain: Vec<Vec<u8>> = header["x5c"]
            .as_array()
            .unwrap()
            .iter()
            .map(|entry| STANDARD.decode(entry.as_str().unwrap()).unwrap())
            .collect();
        assert_eq!(chain, vec![certificate.leaf_der().to_vec(), ca.der().to_vec()]);
    }

    #[test]
    fn debug_output_hides_the_key() {
        let dir = tempfile::tempdir().unwrap();
        let (certificate, _) = pem_certificate(&dir);
        let debug = format!("{certificate:?}");
        assert!(debug.contains(&certificate.thumbprint()), "{debug}");
        assert!(!debug.contains("RsaKeyPair"), "{debug}");
    }

    #[test]
    fn token_endpoint_is_built_like_the_credential_library() {
        for host in ["https://login.microsoftonline.com", "https://login.microsoftonline.com/"] {
            assert_eq!(
                token_endpoint(host, "tenant-1").unwrap(),
                "https://login.microsoftonline.com/tenant-1/oauth2/v2.0/token"
            );
        }
        assert_eq!(
            token_endpoint("https://127.0.0.1:8443", "t").unwrap(),
            "https://127.0.0.1:8443/t/oauth2/v2.0/token"
        );
    }
}
