//! The emulator's certificate authority and server certificate, generated at start.

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose,
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use rustls::ServerConfig;
use std::sync::Arc;
use time::{Duration, OffsetDateTime};

/// A fresh CA and a server certificate it signed for `names` (DNS names, wildcards such
/// as `*.vault.azure.net`, or IP addresses).
pub(crate) struct Certificates {
    pub(crate) ca_pem: String,
    server_chain: Vec<CertificateDer<'static>>,
    server_key: PrivatePkcs8KeyDer<'static>,
}

pub(crate) fn generate(names: &[String]) -> Result<Certificates, rcgen::Error> {
    // Validity starts a day back so a client with a slightly slow clock still accepts it.
    let not_before = OffsetDateTime::now_utc() - Duration::days(1);
    let not_after = OffsetDateTime::now_utc() + Duration::days(30);

    let ca_key = KeyPair::generate()?;
    let mut ca_params = CertificateParams::new(Vec::<String>::new())?;
    ca_params.distinguished_name = distinguished_name("kvexec emulator test CA");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    ca_params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    ca_params.not_before = not_before;
    ca_params.not_after = not_after;
    let ca_cert = ca_params.self_signed(&ca_key)?;
    let issuer = Issuer::new(ca_params, ca_key);

    let server_key = KeyPair::generate()?;
    let mut server_params = CertificateParams::new(names.to_vec())?;
    server_params.distinguished_name = distinguished_name("kvexec emulator");
    server_params.is_ca = IsCa::ExplicitNoCa;
    server_params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    server_params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    // OpenSSL's strict verification (Python 3.13 and later) requires this extension.
    server_params.use_authority_key_identifier_extension = true;
    server_params.not_before = not_before;
    server_params.not_after = not_after;
    let server_cert = server_params.signed_by(&server_key, &issuer)?;

    Ok(Certificates {
        ca_pem: ca_cert.pem(),
        server_chain: vec![server_cert.der().clone(), ca_cert.der().clone()],
        server_key: PrivatePkcs8KeyDer::from(server_key.serialize_der()),
    })
}

fn distinguished_name(common_name: &str) -> DistinguishedName {
    let mut name = DistinguishedName::new();
    name.push(DnType::CommonName, common_name);
    name.push(DnType::OrganizationName, "kvexec emulator");
    name
}

/// Builds a rustls server configuration on the ring provider, offering `alpn` in order.
pub(crate) fn server_config(
    certificates: &Certificates,
    alpn: Vec<Vec<u8>>,
) -> Result<Arc<ServerConfig>, rustls::Error> {
    // rustls 0.23.48 deprecates the ring provider for lacking post-quantum key exchange;
    // kvexec and its tests use ring throughout, so the emulator does too.
    #[allow(deprecated)]
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(
            certificates.server_chain.clone(),
            PrivateKeyDer::Pkcs8(certificates.server_key.clone_key()),
        )?;
    config.alpn_protocols = alpn;
    Ok(Arc::new(config))
}
