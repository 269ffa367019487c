//! The HTTPS client shared by the Key Vault client and the credential: trust roots,
//! `--resolve` overrides, proxies, no redirects. The credential library gets it through an
//! adapter that keeps Entra ID error bodies.

use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateDer;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// Time allowed for one TCP connect; the overall deadline is enforced by the resolver.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Sources of the TLS trust roots.
#[derive(Debug, Clone, Default)]
pub struct TrustRoots {
    /// SSL_CERT_FILE: a PEM bundle. When it or `dir` is set, the system roots are not used,
    /// as in OpenSSL.
    pub file: Option<PathBuf>,
    /// SSL_CERT_DIR: colon-separated directories of PEM files.
    pub dir: Option<String>,
}

/// One `--resolve HOST=IP:PORT` rule. HOST is a name or `*.suffix`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolveRule {
    pub host: String,
    pub addr: SocketAddr,
}

impl ResolveRule {
    /// Parses `HOST=IP:PORT`; an IPv6 address is written in brackets, `[::1]:8443`.
    pub fn parse(text: &str) -> Result<ResolveRule, TransportError> {
        let invalid = |reason: &str| TransportError::InvalidResolveRule {
            rule: text.to_string(),
            reason: reason.to_string(),
        };
        let (host, addr) = text
            .trim()
            .split_once('=')
            .ok_or_else(|| invalid("expected HOST=IP:PORT"))?;
        // A fully qualified name may end with the root's dot; lookups compare without it.
        let host = host.trim().trim_end_matches('.').to_ascii_lowercase();
        let bare = host.strip_prefix("*.").unwrap_or(&host);
        let valid_host = !bare.is_empty()
            && bare
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.');
        if !valid_host {
            return Err(invalid("HOST must be a DNS name or *.suffix"));
        }
        let addr: SocketAddr = addr
            .trim()
            .parse()
            .map_err(|_| invalid("expected IP:PORT after '=', e.g. 10.1.2.3:443 or [::1]:443"))?;
        Ok(ResolveRule { host, addr })
    }

    /// Ranks how well this rule matches `host` (lowercase): `None` when it does not apply,
    /// an exact name above any wildcard, and a longer `*.suffix` above a shorter one.
    /// `*.suffix` matches names that end with `.suffix`, not `suffix` itself.
    fn specificity(&self, host: &str) -> Option<usize> {
        match self.host.strip_prefix("*.") {
            Some(suffix) => host
                .strip_suffix(suffix)
                .filter(|head| head.len() > 1 && head.ends_with('.'))
                .map(|_| suffix.len()),
            None => (self.host == host).then_some(usize::MAX),
        }
    }
}

/// Proxy settings read from the environment as curl reads them: `http_proxy` (lowercase
/// only), `HTTPS_PROXY`/`https_proxy`, `ALL_PROXY`/`all_proxy`, `NO_PROXY`/`no_proxy`.
#[derive(Debug, Clone, Default)]
pub struct ProxySettings {
    pub http: Option<String>,
    pub https: Option<String>,
    pub no_proxy: Option<String>,
}

impl ProxySettings {
    /// Reads the proxy variables with `get`, which looks a name up in the environment.
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> ProxySettings {
        let first = |names: &[&str]| names.iter().find_map(|name| get(name).filter(|v| !v.is_empty()));
        let all = first(&["ALL_PROXY", "all_proxy"]);
        ProxySettings {
            http: first(&["http_proxy"]).or_else(|| all.clone()),
            https: first(&["HTTPS_PROXY", "https_proxy"]).or(all),
            no_proxy: first(&["NO_PROXY", "no_proxy"]),
        }
    }
}

/// Everything needed to build the HTTPS client.
#[derive(Debug, Clone, Default)]
pub struct TransportOptions {
    pub roots: TrustRoots,
    pub resolve: Vec<ResolveRule>,
    pub proxy: ProxySettings,
}

/// Builds the client: rustls with the chosen roots, HTTP/2 by ALPN, `--resolve` overrides,
/// proxies from the environment, and no redirects.
pub fn build_client(options: &TransportOptions) -> Result<reqwest::Client, TransportError> {
    ClientFactory::new(options)?.client()
}

/// Builds HTTPS clients that share one TLS configuration, so the trust roots are loaded
/// once. Each client has its own connection pool, so each opens its own connection to a host.
pub struct ClientFactory {
    tls: rustls::ClientConfig,
    options: TransportOptions,
}

impl ClientFactory {
    /// Loads the trust roots and prepares the TLS configuration.
    pub fn new(options: &TransportOptions) -> Result<ClientFactory, TransportError> {
        let roots = load_roots(&options.roots)?;
        // NOTE: rustls 0.23.48 deprecates the ring provider because it lacks post-quantum key
        // exchange. ring is kept because it builds with no C toolchain beyond cc, also for musl.
        #[allow(deprecated)]
        let mut provider = rustls::crypto::ring::default_provider();
        // rustls 0.23.48 lists P-384 first for ring, so the one TLS 1.3 key share sent would be
        // P-384, which ring computes without assembly. X25519 first, as in OpenSSL's default
        // order, saved about 2.5 ms of a 9 ms one-secret run against kv-emulator (BENCHMARKS.md).
        // A server without X25519 requests another group with a HelloRetryRequest.
        provider.kx_groups = vec![
            rustls::crypto::ring::kx_group::X25519,
            rustls::crypto::ring::kx_group::SECP256R1,
            rustls::crypto::ring::kx_group::SECP384R1,
        ];
        let mut tls = rustls::ClientConfig::builder_with_provider(Arc::new(provider))
            .with_safe_default_protocol_versions()
            .map_err(|error| TransportError::Tls(error.to_string()))?
            .with_root_certificates(roots)
            .with_no_client_auth();
        // reqwest leaves ALPN alone on a preconfigured rustls config, so offer h2 here.
        tls.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Ok(ClientFactory {
            tls,
            options: options.clone(),
        })
    }

    /// Builds a client with its own connection pool.
    pub fn client(&self) -> Result<reqwest::Client, TransportError> {
        self.build(&self.options.proxy)
    }

    /// Builds a client like [`client`](Self::client) that never uses a proxy, for
    /// managed-identity endpoints on the host's own network.
    pub fn direct_client(&self) -> Result<reqwest::Client, TransportError> {
        self.build(&ProxySettings::default())
    }

    fn build(&self, proxy: &ProxySettings) -> Result<reqwest::Client, TransportError> {
        let options = &self.options;
        let mut builder = reqwest::Client::builder()
            .tls_backend_preconfigured(self.tls.clone())
            .https_only(false)
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(CONNECT_TIMEOUT)
            .no_proxy()
            .dns_resolver(Arc::new(OverrideResolver {
                rules: options.resolve.clone(),
            }))
            .user_agent(concat!("kvexec/", env!("CARGO_PKG_VERSION")));

        // Managed-identity endpoints are plain http on the local host or the link-local
        // metadata address, and must never go through a proxy.
        let mut no_proxy = String::from("localhost,127.0.0.1,::1,169.254.169.254");
        if let Some(extra) = &proxy.no_proxy {
            no_proxy.push(',');
            no_proxy.push_str(extra);
        }
        for (url, https) in [(&proxy.https, true), (&proxy.http, false)] {
            let Some(url) = url else { continue };
            let proxy = if https {
                reqwest::Proxy::https(url)
            } else {
                reqwest::Proxy::http(url)
            }
            .map_err(|_| TransportError::InvalidProxy {
                variables: if https { "HTTPS_PROXY, https_proxy or ALL_PROXY" } else { "http_proxy or ALL_PROXY" },
                url: without_userinfo(url),
            })?;
            builder = builder.proxy(proxy.no_proxy(reqwest::NoProxy::from_string(&no_proxy)));
        }

        builder
            .build()
            .map_err(|error| TransportError::Tls(error.to_string()))
    }
}

/// Replaces the user information of a URL (`user:password@`) with `***@`, so an error
/// message can show the rest.
fn without_userinfo(url: &str) -> String {
    let start = url.find("://").map_or(0, |scheme| scheme + 3);
    let end = url[start..].find(['/', '?', '#']).map_or(url.len(), |end| start + end);
    match url[start..end].rfind('@') {
        Some(at) => format!("{}***{}", &url[..start], &url[start + at..]),
        None => url.to_string(),
    }
}

/// Loads the trust roots: SSL_CERT_FILE and SSL_CERT_DIR when set, else the system store,
/// else the bundled Mozilla roots (for images without a CA bundle).
fn load_roots(roots: &TrustRoots) -> Result<rustls::RootCertStore, TransportError> {
    let mut store = rustls::RootCertStore::empty();
    if roots.file.is_some() || roots.dir.is_some() {
        if let Some(file) = &roots.file {
            add_pem_file(&mut store, file)?;
        }
        for dir in roots.dir.iter().flat_map(|dirs| dirs.split(':')).filter(|d| !d.is_empty()) {
            if let Err(error) = std::fs::read_dir(dir) {
                return Err(TransportError::TrustRoots {
                    path: PathBuf::from(dir),
                    reason: error.to_string(),
                });
            }
            // This reads each file once, however many hash links point to it, and skips what
            // does not parse, because directories also hold non-PEM files. Parsing every link
            // took 3.1 ms instead of 2.4 ms for Debian's /etc/ssl/certs and stored each root
            // three times.
            let loaded = rustls_native_certs::load_certs_from_paths(None, Some(Path::new(dir)));
            store.add_parsable_certificates(loaded.certs);
        }
        if store.is_empty() {
            let path = roots.file.clone().unwrap_or_else(|| PathBuf::from(roots.dir.clone().unwrap_or_default()));
            return Err(TransportError::TrustRoots {
                path,
                reason: "no PEM certificates found".to_string(),
            });
        }
        return Ok(store);
    }

    let native = rustls_native_certs::load_native_certs();
    let (added, _) = store.add_parsable_certificates(native.certs);
    if added == 0 {
        tracing::debug!("no system trust roots found, using the bundled Mozilla roots");
        store.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    }
    Ok(store)
}

fn add_pem_file(store: &mut rustls::RootCertStore, path: &Path) -> Result<(), TransportError> {
    let error = |reason: String| TransportError::TrustRoots {
        path: path.to_path_buf(),
        reason,
    };
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(path)
        .map_err(|e| error(e.to_string()))?
        .collect::<Result<_, _>>()
        .map_err(|e| error(e.to_string()))?;
    if certs.is_empty() {
        return Err(error("no PEM certificates found".to_string()));
    }
    store.add_parsable_certificates(certs);
    Ok(())
}

/// Resolves names with the `--resolve` rules first (exact host, then the longest
/// `*.suffix`), else with the system resolver. Written by hand because reqwest's own
/// overrides take exact names only.
#[derive(Debug)]
struct OverrideResolver {
    rules: Vec<ResolveRule>,
}

impl Resolve for OverrideResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let host = name.as_str().trim_end_matches('.').to_ascii_lowercase();
        let chosen = self
            .rules
            .iter()
            .filter_map(|rule| rule.specificity(&host).map(|rank| (rank, rule.addr)))
            // `max_by_key` keeps the last of equal ranks; reversed, the first rule wins, and
            // the rules from flags come before those from KVEXEC_RESOLVE.
            .rev()
            .max_by_key(|(rank, _)| *rank)
            .map(|(_, addr)| addr);
        Box::pin(async move {
            if let Some(addr) = chosen {
                tracing::trace!(host = %host, %addr, "resolved by --resolve");
                let addrs: Addrs = Box::new(std::iter::once(addr));
                return Ok(addrs);
            }
            let found: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0))
                .await
                .map_err(|error| -> Box<dyn std::error::Error + Send + Sync> {
                    Box::new(DnsError { host: host.clone(), source: error })
                })?
                .collect();
            let addrs: Addrs = Box::new(found.into_iter());
            Ok(addrs)
        })
    }
}

/// The HTTPS client as the transport of the credential library.
///
/// azure_core 1.1 retries every transport error until its retry budget is spent, and that
/// budget is the run's whole deadline. A TLS handshake failure (an untrusted CA, a
/// TLS-intercepting proxy) or a failed DNS lookup does not heal within seconds. So this
/// transport turns them into errors the library does not retry, and the run stops at once
/// with the cause instead of at the deadline with a bare timeout.
#[derive(Debug, Clone)]
pub struct CredentialTransport(pub reqwest::Client);

#[async_trait::async_trait]
impl azure_core::http::HttpClient for CredentialTransport {
    async fn execute_request(
        &self,
        request: &azure_core::http::Request,
    ) -> azure_core::Result<azure_core::http::AsyncRawResponse> {
        let host = request.url().host_str().unwrap_or_default().to_string();
        match self.0.execute_request(request).await {
            Err(error) if is_permanent_network_failure(&error) => Err(azure_core::Error::with_error(
                azure_core::error::ErrorKind::Other,
                error,
                "the token request failed in a way that retrying cannot fix",
            )),
            // The library retries these until the deadline, after which kvexec reports only
            // the timeout, so the cause is logged here.
            Err(error) => {
                tracing::warn!(%host, error = %error_chain(&error), "the token request failed; retrying");
                Err(error)
            }
            Ok(response) => {
                let status = u16::from(response.status());
                if matches!(status, 408 | 429 | 500 | 502 | 503 | 504) {
                    tracing::warn!(%host, status, "the token endpoint returned HTTP {status}; retrying");
                }
                Ok(response)
            }
        }
    }
}

/// Joins an error and its sources with ": ", as one line.
fn error_chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

fn is_permanent_network_failure(error: &(dyn std::error::Error + 'static)) -> bool {
    let mut current = Some(error);
    while let Some(cause) = current {
        if let Some(reqwest_error) = cause.downcast_ref::<reqwest::Error>() {
            let (failure, _) = crate::vault::classify_network(reqwest_error);
            return matches!(failure, crate::vault::NetworkFailure::Dns | crate::vault::NetworkFailure::Tls);
        }
        current = cause.source();
    }
    false
}

/// A DNS lookup failure, kept as a type so diagnostics can tell it from other errors.
#[derive(Debug, thiserror::Error)]
#[error("DNS lookup of {host} failed: {source}")]
pub struct DnsError {
    pub host: String,
    #[source]
    pub source: std::io::Error,
}

#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    #[error("invalid --resolve rule '{rule}': {reason}")]
    InvalidResolveRule { rule: String, reason: String },
    #[error("invalid proxy URL '{url}' in {variables}: expected http://HOST:PORT or https://HOST:PORT")]
    InvalidProxy { variables: &'static str, url: String },
    #[error("cannot load trust roots from {}: {reason}; check SSL_CERT_FILE and SSL_CERT_DIR", path.display())]
    TrustRoots { path: PathBuf, reason: String },
    #[error("cannot set up TLS: {0}")]
    Tls(String),
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(text: &str) -> ResolveRule {
        ResolveRule::parse(text).unwrap()
    }

    #[test]
    fn resolve_rule_parses_ipv4_and_ipv6() {
        assert_eq!(rule("a.example=127.0.0.1:8443").addr, "127.0.0.1:8443".parse().unwrap());
        assert_eq!(rule("A.Example=[::1]:443").host, "a.example");
        assert_eq!(rule("*.vault.azure.net=127.0.0.1:1").host, "*.vault.azure.net");
    }

    #[test]
    fn resolve_rule_rejects_bad_forms() {
        for text in ["a.example", "a.example=127.0.0.1", "=127.0.0.1:1", "a b=127.0.0.1:1", "*.=1.2.3.4:5"] {
            assert!(ResolveRule::parse(text).is_err(), "{text}");
        }
    }

    #[test]
    fn userinfo_is_hidden() {
        assert_eq!(without_userinfo("http://user:pw@proxy:3128/x"), "http://***@proxy:3128/x");
        assert_eq!(without_userinfo("http://proxy:3128"), "http://proxy:3128");
        assert_eq!(without_userinfo("user:pw@proxy:1"), "***@proxy:1");
    }

    #[test]
    fn resolve_rule_drops_trailing_dot() {
        assert_eq!(rule("Kv.Vault.Azure.Net.=127.0.0.1:1").host, "kv.vault.azure.net");
    }

    #[test]
    fn wildcard_matches_subdomains_only() {
        let wildcard = rule("*.vault.azure.net=127.0.0.1:1");
        assert!(wildcard.specificity("kv.vault.azure.net").is_some());
        assert!(wildcard.specificity("a.b.vault.azure.net").is_some());
        assert!(wildcard.specificity("vault.azure.net").is_none());
        assert!(wildcard.specificity("kvvault.azure.net").is_none());
        assert!(wildcard.specificity("kv.vault.azure.net.evil.example").is_none());
    }

    #[test]
    fn cert_dir_counts_linked_file_once() {
        let emulator = kvexec_emulator::Emulator::builder().start();
        let directory = tempfile::tempdir().unwrap();
        let ca = directory.path().join("ca.pem");
        std::fs::write(&ca, emulator.ca_pem()).unwrap();
        std::os::unix::fs::symlink(&ca, directory.path().join("0a1b2c3d.0")).unwrap();
        std::fs::write(directory.path().join("README"), "not a certificate").unwrap();
        let roots = TrustRoots {
            file: None,
            dir: Some(directory.path().display().to_string()),
        };

        let store = load_roots(&roots).unwrap();

        assert_eq!(store.len(), 1);
    }

    #[test]
    fn cert_dir_errors_name_the_directory() {
        let empty = tempfile::tempdir().unwrap();
        let missing = empty.path().join("missing");
        for dir in [empty.path(), missing.as_path()] {
            let roots = TrustRoots {
                file: None,
                dir: Some(dir.display().to_string()),
            };
            let error = load_roots(&roots).unwrap_err();
            assert!(error.to_string().contains(&dir.display().to_string()), "{error}");
        }
    }

    #[test]
    fn proxy_settings_follow_curl() {
        let env = |pairs: &'static [(&'static str, &'static str)]| {
            move |name: &str| pairs.iter().find(|(k, _)| *k == name).map(|(_, v)| v.to_string())
        };
        let upper_http = ProxySettings::from_lookup(env(&[("HTTP_PROXY", "http://p:1")]));
        assert_eq!(upper_http.http, None, "curl ignores uppercase HTTP_PROXY");
        let https = ProxySettings::from_lookup(env(&[("https_proxy", "http://p:2"), ("no_proxy", "x")]));
        assert_eq!(https.https.as_deref(), Some("http://p:2"));
        assert_eq!(https.no_proxy.as_deref(), Some("x"));
        let all = ProxySettings::from_lookup(env(&[("ALL_PROXY", "http://p:3")]));
        assert_eq!(all.https.as_deref(), Some("http://p:3"));
        assert_eq!(all.http.as_deref(), Some("http://p:3"));
    }
}
