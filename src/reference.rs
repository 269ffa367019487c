//! Key Vault references: the three syntaxes, name rules, clouds and their hosts.
//!
//! This module does no I/O. It is the only place that knows what a reference looks like.
//!
//! The parser reads the raw text with a strict grammar instead of a general URL parser,
//! because URL parsers percent-decode and IDNA-map hosts: `https://x%2evault.azure.net/...`
//! or a Unicode look-alike of a vault host could then turn into a real vault host. A value
//! becomes a reference only when its host is literally `{vault}.{suffix}` in ASCII.

use std::ffi::OsStr;
use std::fmt;

use percent_encoding::{percent_decode_str, utf8_percent_encode, AsciiSet, CONTROLS};

/// An Azure cloud that hosts Key Vault, told apart by the vault's DNS suffix.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Cloud {
    Public,
    China,
    UsGovernment,
}

impl Cloud {
    pub const ALL: [Cloud; 3] = [Cloud::Public, Cloud::China, Cloud::UsGovernment];

    /// DNS suffix of vault hosts, e.g. `vault.azure.net`.
    pub fn vault_suffix(self) -> &'static str {
        match self {
            Cloud::Public => "vault.azure.net",
            Cloud::China => "vault.azure.cn",
            Cloud::UsGovernment => "vault.usgovcloudapi.net",
        }
    }

    /// Token scope for Key Vault in this cloud (OAuth 2.0 v2 endpoint).
    pub fn scope(self) -> &'static str {
        match self {
            Cloud::Public => "https://vault.azure.net/.default",
            Cloud::China => "https://vault.azure.cn/.default",
            Cloud::UsGovernment => "https://vault.usgovcloudapi.net/.default",
        }
    }

    /// Key Vault resource id, used by managed identity and Azure CLI token requests.
    pub fn resource(self) -> &'static str {
        match self {
            Cloud::Public => "https://vault.azure.net",
            Cloud::China => "https://vault.azure.cn",
            Cloud::UsGovernment => "https://vault.usgovcloudapi.net",
        }
    }

    /// Default Entra ID authority host of this cloud.
    pub fn authority_host(self) -> &'static str {
        match self {
            Cloud::Public => "https://login.microsoftonline.com",
            Cloud::China => "https://login.chinacloudapi.cn",
            Cloud::UsGovernment => "https://login.microsoftonline.us",
        }
    }
}

/// A key vault: its name (lowercase) and cloud.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Vault {
    pub name: String,
    pub cloud: Cloud,
}

impl Vault {
    /// Host name of the vault, e.g. `my-vault.vault.azure.net`.
    pub fn host(&self) -> String {
        format!("{}.{}", self.name, self.cloud.vault_suffix())
    }

    /// Parses a vault URL such as `https://my-vault.vault.azure.net/` (the default vault).
    ///
    /// Accepts `https://{vault}.{suffix}` with an optional `:443` and an optional `/`,
    /// surrounded by optional ASCII whitespace. Scheme and host are case-insensitive.
    pub fn parse_url(text: &str) -> Result<Vault, ReferenceError> {
        let text = text.trim_ascii();
        let not_vault_url = || ReferenceError::NotVaultUrl {
            text: excerpt(text),
        };

        let url = split_url(text).ok_or_else(not_vault_url)?;
        if !url.https {
            return Err(ReferenceError::InsecureScheme);
        }
        if url.userinfo {
            return Err(ReferenceError::UserInfo);
        }
        let vault_host =
            split_vault_host(url.host).ok_or_else(|| ReferenceError::NotVaultHost {
                host: excerpt(url.host),
            })?;
        let vault = vault_from_host(url.host, &vault_host)?;
        check_port(url.port)?;
        if !url.rest.is_empty() && url.rest != "/" {
            return Err(ReferenceError::VaultUrlPath {
                path: excerpt(url.rest),
            });
        }
        Ok(vault)
    }
}

/// One secret version in one vault. Names and versions are lowercase, because Key Vault
/// compares identifiers case-insensitively, so equal ids are fetched once.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SecretId {
    pub vault: Vault,
    pub name: String,
    /// `None` means the latest version.
    pub version: Option<String>,
}

impl SecretId {
    /// Request path without the query, e.g. `/secrets/db-password` or `/secrets/db-password/{version}`.
    pub fn path(&self) -> String {
        match &self.version {
            Some(version) => format!("/secrets/{}/{}", self.name, version),
            None => format!("/secrets/{}", self.name),
        }
    }
}

impl fmt::Display for SecretId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "https://{}{}", self.vault.host(), self.path())
    }
}

/// Which part of a JSON secret a reference selects, from its `#fragment` (percent-decoded).
///
/// A fragment whose raw text starts with `/` is a pointer, so `#%2Fname` selects the
/// top-level member `/name`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Selector {
    /// `#name`: the top-level member `name`.
    Member(String),
    /// `#/a/b`: an RFC 6901 JSON Pointer.
    Pointer(String),
}

/// A parsed reference: the secret to fetch and an optional selector.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reference {
    pub secret: SecretId,
    pub selector: Option<Selector>,
}

/// Characters percent-encoded when a key is written back into a fragment: the WHATWG
/// fragment set, plus `%` and `#` so that decoding the fragment gives the key back.
const FRAGMENT_ENCODE: &AsciiSet = &CONTROLS
    .add(b' ')
    .add(b'"')
    .add(b'<')
    .add(b'>')
    .add(b'`')
    .add(b'#')
    .add(b'%');

impl fmt::Display for Reference {
    /// Canonical form, `https://{vault}.{suffix}/secrets/{name}[/{version}][#{key}]`.
    /// Scanning the output gives the same reference back.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.secret)?;
        match &self.selector {
            None => Ok(()),
            Some(Selector::Pointer(pointer)) => {
                write!(f, "#{}", utf8_percent_encode(pointer, FRAGMENT_ENCODE))
            }
            // A raw leading `/` would turn the member into a pointer when scanned again.
            Some(Selector::Member(name)) => match name.strip_prefix('/') {
                Some(rest) => write!(f, "#%2F{}", utf8_percent_encode(rest, FRAGMENT_ENCODE)),
                None => write!(f, "#{}", utf8_percent_encode(name, FRAGMENT_ENCODE)),
            },
        }
    }
}

/// What one environment value is.
#[derive(Debug, PartialEq, Eq)]
pub enum Scan {
    /// Not a reference: passed to the child unchanged.
    Plain,
    Reference(Reference),
    /// Meant as a reference but invalid.
    Malformed(ReferenceError),
}

const AKV_SCHEME: &str = "akv://";
const APP_SERVICE_PREFIX: &str = "@Microsoft.KeyVault(";

/// Classifies one environment value. `default_vault` resolves `akv://` references.
///
/// A value that is not valid UTF-8 is `Plain`, unless it is meant as a reference: then it
/// is `Malformed` with [`ReferenceError::NotUtf8`].
pub fn scan(value: &OsStr, default_vault: Option<&Vault>) -> Scan {
    let bytes = value.as_encoded_bytes().trim_ascii();
    if let Ok(text) = std::str::from_utf8(bytes) {
        return scan_str(text, default_vault);
    }

    // Every test that decides whether a value is meant as a reference looks only at ASCII
    // text, which a lossy copy keeps, so the copy gets the same result as the bytes.
    match scan_str(&String::from_utf8_lossy(bytes), default_vault) {
        Scan::Plain => Scan::Plain,
        Scan::Reference(_) | Scan::Malformed(_) => Scan::Malformed(ReferenceError::NotUtf8),
    }
}

/// Classifies one value that is already text, like [`scan`].
///
/// Leading and trailing ASCII whitespace is ignored. Anything that starts with `akv://` or
/// `@Microsoft.KeyVault(` (ASCII case-insensitive) is a reference or malformed. An `http` or
/// `https` URL is one when its host ends in `.{suffix}` of a known cloud and its first
/// path segment is `secrets` (ASCII case-insensitive). Everything else is `Plain`.
pub fn scan_str(text: &str, default_vault: Option<&Vault>) -> Scan {
    let text = text.trim_ascii();
    let parsed = if let Some(rest) = strip_prefix_ignore_case(text, AKV_SCHEME) {
        parse_akv(rest, default_vault)
    } else if let Some(rest) = strip_prefix_ignore_case(text, APP_SERVICE_PREFIX) {
        parse_app_service(rest)
    } else {
        match parse_secret_url(text) {
            Some(parsed) => parsed,
            None => return Scan::Plain,
        }
    };
    match parsed {
        Ok(reference) => Scan::Reference(reference),
        Err(error) => Scan::Malformed(error),
    }
}

/// Why a value that looks like a reference is not a valid one. Messages never quote
/// anything but the reference text itself, cut to 60 characters.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReferenceError {
    #[error("the value is not valid UTF-8, so it cannot be a Key Vault reference")]
    NotUtf8,
    #[error(
        "an akv:// reference needs a default vault: set --default-vault-url or \
         KVEXEC_DEFAULT_VAULT_URL to a vault URL such as https://my-vault.vault.azure.net/"
    )]
    NoDefaultVault,
    #[error("a Key Vault URL must use https://, found http://")]
    InsecureScheme,
    #[error("a Key Vault URL must not contain user information (\"user@\") before the host")]
    UserInfo,
    #[error("invalid host {host:?}: remove the trailing dot")]
    HostTrailingDot { host: String },
    #[error("the host {host:?} has no vault name; expected {{vault}}.{suffix}")]
    MissingVaultName { host: String, suffix: &'static str },
    #[error("invalid vault name {name:?}: {problem}")]
    VaultName { name: String, problem: NameProblem },
    #[error("port {port:?} is not allowed: Key Vault listens on 443; remove the port")]
    Port { port: String },
    #[error("the path contains a backslash; separate path segments with \"/\"")]
    Backslash,
    #[error("a Key Vault reference must not have a query string; remove \"?{query}\"")]
    Query { query: String },
    #[error("the secret name is missing; write it after \"/secrets/\" or \"akv://\"")]
    MissingSecretName,
    #[error("invalid secret name {name:?}: {problem}")]
    SecretName { name: String, problem: NameProblem },
    #[error("invalid version {version:?}: the version must be 32 hexadecimal characters, found {length}")]
    VersionLength { version: String, length: usize },
    #[error(
        "invalid version {version:?}: {character} is not a hexadecimal digit; a version is \
         32 hexadecimal characters, or leave it out for the latest version"
    )]
    VersionCharacter {
        version: String,
        character: CharName,
    },
    #[error(
        "unexpected path {path:?} after the secret name and version; a reference names one \
         secret and at most one version"
    )]
    ExtraPath { path: String },
    #[error(
        "the key after \"#\" is empty; write a member name or a JSON Pointer, or remove the \"#\""
    )]
    EmptyKey,
    #[error("the key {key:?} has a \"%\" that does not start a %XX escape; write \"%\" as %25")]
    KeyPercentEncoding { key: String },
    #[error("the key after \"#\" is not valid UTF-8 after percent-decoding")]
    KeyNotUtf8,
    #[error("an @Microsoft.KeyVault(...) reference must end with \")\"")]
    AppServiceParenthesis,
    #[error(
        "@Microsoft.KeyVault(...) has an empty parameter; expected SecretUri=... or \
         VaultName=...;SecretName=...[;SecretVersion=...]"
    )]
    AppServiceEmptyParameter,
    #[error(
        "the parameter {parameter:?} in @Microsoft.KeyVault(...) has no \"=\"; expected Name=value"
    )]
    AppServiceNoEquals { parameter: String },
    #[error(
        "unknown parameter {name:?} in @Microsoft.KeyVault(...); the parameters are \
         SecretUri, VaultName, SecretName and SecretVersion"
    )]
    AppServiceUnknownParameter { name: String },
    #[error("the parameter {name} appears twice in @Microsoft.KeyVault(...)")]
    AppServiceDuplicateParameter { name: &'static str },
    #[error(
        "@Microsoft.KeyVault(...) has no {name}; expected SecretUri=... or \
         VaultName=...;SecretName=...[;SecretVersion=...]"
    )]
    AppServiceMissingParameter { name: &'static str },
    #[error("SecretUri cannot be combined with VaultName, SecretName or SecretVersion in @Microsoft.KeyVault(...)")]
    AppServiceMixedParameters,
    #[error(
        "SecretUri {uri:?} is not a Key Vault secret URL; expected \
         https://{{vault}}.vault.azure.net/secrets/{{name}}[/{{version}}]"
    )]
    AppServiceSecretUri { uri: String },
    #[error(
        "invalid vault URL {text:?}: expected https://{{vault}}.vault.azure.net/ (or the \
         vault.azure.cn or vault.usgovcloudapi.net suffix)"
    )]
    NotVaultUrl { text: String },
    #[error(
        "the host {host:?} is not a Key Vault host; expected {{vault}}.vault.azure.net, \
         {{vault}}.vault.azure.cn or {{vault}}.vault.usgovcloudapi.net"
    )]
    NotVaultHost { host: String },
    #[error("a vault URL must not have a path, query or fragment, found {path:?}; expected https://{{vault}}.vault.azure.net/")]
    VaultUrlPath { path: String },
}

/// The problem found in a vault or secret name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NameProblem {
    Character(CharName),
    VaultLength(usize),
    SecretLength(usize),
    VaultStart,
    VaultEnd,
    ConsecutiveHyphens,
}

impl fmt::Display for NameProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NameProblem::Character(character) => write!(
                f,
                "{character} is not allowed; a name has only ASCII letters, digits and hyphens"
            ),
            NameProblem::VaultLength(length) => write!(
                f,
                "it has {length} characters, but a vault name has 3 to 24"
            ),
            NameProblem::SecretLength(length) => write!(
                f,
                "it has {length} characters, but a secret name has 1 to 127"
            ),
            NameProblem::VaultStart => f.write_str("a vault name must start with a letter"),
            NameProblem::VaultEnd => f.write_str("a vault name must end with a letter or digit"),
            NameProblem::ConsecutiveHyphens => {
                f.write_str("a vault name must not contain consecutive hyphens")
            }
        }
    }
}

/// A character named in an error message. Control characters and non-ASCII characters
/// also show their code point, so look-alikes such as Cyrillic `а` are visible.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CharName(pub char);

impl fmt::Display for CharName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let code = u32::from(self.0);
        if self.0.is_ascii_graphic() || self.0 == ' ' {
            write!(f, "{:?}", self.0)
        } else if self.0.is_control() {
            write!(f, "U+{code:04X}")
        } else {
            write!(f, "{:?} (U+{code:04X})", self.0)
        }
    }
}

/// Cuts text quoted in an error message to at most 60 characters.
fn excerpt(text: &str) -> String {
    const MAX_CHARS: usize = 60;
    match text.char_indices().nth(MAX_CHARS - 3) {
        Some((end, _)) if text.chars().count() > MAX_CHARS => format!("{}...", &text[..end]),
        _ => text.to_owned(),
    }
}

fn strip_prefix_ignore_case<'a>(text: &'a str, prefix: &str) -> Option<&'a str> {
    let head = text.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix)
        .then(|| &text[prefix.len()..])
}

/// Splits at the first `separator` into the text before it and, if present, the text after it.
fn split_off(text: &str, separator: char) -> (&str, Option<&str>) {
    match text.split_once(separator) {
        Some((before, after)) => (before, Some(after)),
        None => (text, None),
    }
}

/// An `http` or `https` URL split into its parts by the rules WHATWG URL parsers use for
/// these schemes: the authority ends at the first `/`, `\`, `?` or `#`, and the host
/// follows the last `@` in it.
struct UrlParts<'a> {
    https: bool,
    userinfo: bool,
    host: &'a str,
    port: Option<&'a str>,
    /// Path, query and fragment: empty, or starting with `/`, `\`, `?` or `#`.
    rest: &'a str,
}

fn split_url(text: &str) -> Option<UrlParts<'_>> {
    let (https, after_scheme) = if let Some(after) = strip_prefix_ignore_case(text, "https://") {
        (true, after)
    } else {
        (false, strip_prefix_ignore_case(text, "http://")?)
    };

    let authority_end = after_scheme
        .find(['/', '\\', '?', '#'])
        .unwrap_or(after_scheme.len());
    let (authority, rest) = after_scheme.split_at(authority_end);

    let (userinfo, host_and_port) = match authority.rfind('@') {
        Some(at) => (true, &authority[at + 1..]),
        None => (false, authority),
    };
    // This splits an IPv6 literal such as `[::1]` wrongly, which is harmless because it
    // never ends in a vault suffix.
    let (host, port) = match host_and_port.rfind(':') {
        Some(colon) => (&host_and_port[..colon], Some(&host_and_port[colon + 1..])),
        None => (host_and_port, None),
    };

    Some(UrlParts {
        https,
        userinfo,
        host,
        port,
        rest,
    })
}

/// A host that ends in `.{suffix}` of a known cloud, split there. `label` is everything
/// before that dot, which is the vault name in a valid host.
struct VaultHost<'a> {
    label: &'a str,
    cloud: Cloud,
    trailing_dot: bool,
}

/// Matches the suffix ASCII case-insensitively, and only at a label boundary, so
/// `myvault.azure.net` is not a host in `vault.azure.net`.
fn split_vault_host(host: &str) -> Option<VaultHost<'_>> {
    let (host_without_dot, trailing_dot) = match host.strip_suffix('.') {
        Some(stripped) => (stripped, true),
        None => (host, false),
    };

    Cloud::ALL.into_iter().find_map(|cloud| {
        let suffix = cloud.vault_suffix();
        let start = host_without_dot.len().checked_sub(suffix.len())?;
        if !host_without_dot.get(start..)?.eq_ignore_ascii_case(suffix) {
            return None;
        }
        let before = &host_without_dot[..start];
        let label = if before.is_empty() {
            before
        } else {
            before.strip_suffix('.')?
        };
        Some(VaultHost {
            label,
            cloud,
            trailing_dot,
        })
    })
}

fn vault_from_host(host: &str, vault_host: &VaultHost<'_>) -> Result<Vault, ReferenceError> {
    if vault_host.trailing_dot {
        return Err(ReferenceError::HostTrailingDot {
            host: excerpt(host),
        });
    }
    if vault_host.label.is_empty() {
        return Err(ReferenceError::MissingVaultName {
            host: excerpt(host),
            suffix: vault_host.cloud.vault_suffix(),
        });
    }
    Ok(Vault {
        name: check_vault_name(vault_host.label)?,
        cloud: vault_host.cloud,
    })
}

fn check_port(port: Option<&str>) -> Result<(), ReferenceError> {
    match port {
        None | Some("443") => Ok(()),
        Some(other) => Err(ReferenceError::Port {
            port: excerpt(other),
        }),
    }
}

/// Parses form 1, `https://{vault}.{suffix}/secrets/{name}[/{version}][/][#{key}]`.
/// Returns `None` when the text is not meant as a reference: not an `http`/`https` URL, not
/// on a vault host, or with a first path segment other than `secrets`.
fn parse_secret_url(text: &str) -> Option<Result<Reference, ReferenceError>> {
    let url = split_url(text)?;
    let vault_host = split_vault_host(url.host)?;

    let (before_fragment, fragment) = split_off(url.rest, '#');
    let (path, query) = split_off(before_fragment, '?');
    // `path` is empty or starts with a separator, so the first item is the empty text
    // before it. WHATWG parsers read `\` as `/` here, and so does this test.
    let mut segments = path.split(['/', '\\']).skip(1);
    if !segments
        .next()
        .is_some_and(|first| first.eq_ignore_ascii_case("secrets"))
    {
        return None;
    }

    Some(check_secret_url(&url, &vault_host, path, query, fragment))
}

fn check_secret_url(
    url: &UrlParts<'_>,
    vault_host: &VaultHost<'_>,
    path: &str,
    query: Option<&str>,
    fragment: Option<&str>,
) -> Result<Reference, ReferenceError> {
    if !url.https {
        return Err(ReferenceError::InsecureScheme);
    }
    if url.userinfo {
        return Err(ReferenceError::UserInfo);
    }
    let vault = vault_from_host(url.host, vault_host)?;
    check_port(url.port)?;
    if path.contains('\\') {
        return Err(ReferenceError::Backslash);
    }

    // `path` starts with `/secrets` in any case, all ASCII, so the byte offset is exact.
    let names = &path["/secrets".len()..];
    let names = names.strip_prefix('/').unwrap_or(names);
    Ok(parse_secret_parts(names, query, fragment)?.into_reference(vault))
}

/// Parses form 2, `akv://{name}[/{version}][/][#{key}]`, from the text after `akv://`.
/// Syntax errors are reported before a missing default vault.
fn parse_akv(rest: &str, default_vault: Option<&Vault>) -> Result<Reference, ReferenceError> {
    let (before_fragment, fragment) = split_off(rest, '#');
    let (names, query) = split_off(before_fragment, '?');
    if names.contains('\\') {
        return Err(ReferenceError::Backslash);
    }
    let parts = parse_secret_parts(names, query, fragment)?;
    let vault = default_vault.ok_or(ReferenceError::NoDefaultVault)?;
    Ok(parts.into_reference(vault.clone()))
}

/// The part of a reference after the vault: secret name, version and key.
struct SecretParts {
    name: String,
    version: Option<String>,
    selector: Option<Selector>,
}

impl SecretParts {
    fn into_reference(self, vault: Vault) -> Reference {
        Reference {
            secret: SecretId {
                vault,
                name: self.name,
                version: self.version,
            },
            selector: self.selector,
        }
    }
}

/// Parses `{name}[/{version}][/]` and the fragment, and rejects any query.
fn parse_secret_parts(
    names: &str,
    query: Option<&str>,
    fragment: Option<&str>,
) -> Result<SecretParts, ReferenceError> {
    if let Some(query) = query {
        return Err(ReferenceError::Query {
            query: excerpt(query),
        });
    }

    let segments: Vec<&str> = names.split('/').collect();
    // One trailing slash is allowed because Azure SDKs and the App Service documentation
    // write `/secrets/{name}/` for the latest version.
    let segments = match segments.as_slice() {
        [kept @ .., ""] if !kept.is_empty() => kept,
        all => all,
    };
    let (name, version) = match segments {
        [name] => (check_secret_name(name)?, None),
        [name, version, extra @ ..] => {
            let name = check_secret_name(name)?;
            if !extra.is_empty() {
                return Err(ReferenceError::ExtraPath {
                    path: excerpt(&extra.join("/")),
                });
            }
            (name, Some(check_version(version)?))
        }
        // `split` yields at least one item, so this arm only keeps the match total.
        [] => return Err(ReferenceError::MissingSecretName),
    };

    Ok(SecretParts {
        name,
        version,
        selector: parse_selector(fragment)?,
    })
}

/// Parses form 3, `@Microsoft.KeyVault(SecretUri=...)` or
/// `@Microsoft.KeyVault(VaultName=...;SecretName=...[;SecretVersion=...])`, from the text
/// after the opening parenthesis.
///
/// Parameter names are case-insensitive, ASCII whitespace around `;`, `=` and the
/// parentheses is ignored, one trailing `;` is allowed, and an empty `SecretVersion=` means
/// the latest version. A `;` inside a SecretUri key must be written as `%3B`.
fn parse_app_service(rest: &str) -> Result<Reference, ReferenceError> {
    let inner = rest
        .strip_suffix(')')
        .ok_or(ReferenceError::AppServiceParenthesis)?
        .trim_ascii();
    let inner = inner.strip_suffix(';').unwrap_or(inner);

    let mut secret_uri = None;
    let mut vault_name = None;
    let mut secret_name = None;
    let mut secret_version = None;
    for parameter in inner.split(';') {
        let parameter = parameter.trim_ascii();
        if parameter.is_empty() {
            return Err(ReferenceError::AppServiceEmptyParameter);
        }
        let (key, value) =
            parameter
                .split_once('=')
                .ok_or_else(|| ReferenceError::AppServiceNoEquals {
                    parameter: excerpt(parameter),
                })?;
        let key = key.trim_ascii();
        let (slot, canonical_key) = if key.eq_ignore_ascii_case("SecretUri") {
            (&mut secret_uri, "SecretUri")
        } else if key.eq_ignore_ascii_case("VaultName") {
            (&mut vault_name, "VaultName")
        } else if key.eq_ignore_ascii_case("SecretName") {
            (&mut secret_name, "SecretName")
        } else if key.eq_ignore_ascii_case("SecretVersion") {
            (&mut secret_version, "SecretVersion")
        } else {
            return Err(ReferenceError::AppServiceUnknownParameter { name: excerpt(key) });
        };
        if slot.replace(value.trim_ascii()).is_some() {
            return Err(ReferenceError::AppServiceDuplicateParameter {
                name: canonical_key,
            });
        }
    }

    if let Some(uri) = secret_uri {
        if vault_name.is_some() || secret_name.is_some() || secret_version.is_some() {
            return Err(ReferenceError::AppServiceMixedParameters);
        }
        return parse_secret_url(uri)
            .unwrap_or_else(|| Err(ReferenceError::AppServiceSecretUri { uri: excerpt(uri) }));
    }

    let missing = |name| ReferenceError::AppServiceMissingParameter { name };
    let vault_name = vault_name.ok_or(missing("VaultName"))?;
    let secret_name = secret_name.ok_or(missing("SecretName"))?;
    let version = match secret_version {
        None | Some("") => None,
        Some(version) => Some(check_version(version)?),
    };
    // The VaultName form names no cloud, so it is read as the public cloud.
    let vault = Vault {
        name: check_vault_name(vault_name)?,
        cloud: Cloud::Public,
    };
    Ok(Reference {
        secret: SecretId {
            vault,
            name: check_secret_name(secret_name)?,
            version,
        },
        selector: None,
    })
}

/// Checks a vault name and returns it lowercase.
fn check_vault_name(name: &str) -> Result<String, ReferenceError> {
    let problem = if let Some(character) = find_non_name_character(name) {
        Some(NameProblem::Character(character))
    } else if !(3..=24).contains(&name.len()) {
        Some(NameProblem::VaultLength(name.len()))
    } else if !name.starts_with(|c: char| c.is_ascii_alphabetic()) {
        Some(NameProblem::VaultStart)
    } else if name.ends_with('-') {
        Some(NameProblem::VaultEnd)
    } else if name.contains("--") {
        Some(NameProblem::ConsecutiveHyphens)
    } else {
        None
    };
    match problem {
        None => Ok(name.to_ascii_lowercase()),
        Some(problem) => Err(ReferenceError::VaultName {
            name: excerpt(name),
            problem,
        }),
    }
}

/// Checks a secret name and returns it lowercase.
fn check_secret_name(name: &str) -> Result<String, ReferenceError> {
    let problem = if name.is_empty() {
        return Err(ReferenceError::MissingSecretName);
    } else if let Some(character) = find_non_name_character(name) {
        NameProblem::Character(character)
    } else if name.len() > 127 {
        NameProblem::SecretLength(name.len())
    } else {
        return Ok(name.to_ascii_lowercase());
    };
    Err(ReferenceError::SecretName {
        name: excerpt(name),
        problem,
    })
}

fn find_non_name_character(name: &str) -> Option<CharName> {
    name.chars()
        .find(|c| !(c.is_ascii_alphanumeric() || *c == '-'))
        .map(CharName)
}

/// Checks a version and returns it lowercase.
fn check_version(version: &str) -> Result<String, ReferenceError> {
    if let Some(character) = version.chars().find(|c| !c.is_ascii_hexdigit()) {
        return Err(ReferenceError::VersionCharacter {
            version: excerpt(version),
            character: CharName(character),
        });
    }
    if version.len() != 32 {
        return Err(ReferenceError::VersionLength {
            version: excerpt(version),
            length: version.len(),
        });
    }
    Ok(version.to_ascii_lowercase())
}

/// Parses the `#key` fragment: percent-decoded, and a JSON Pointer when its raw text
/// starts with `/`.
fn parse_selector(fragment: Option<&str>) -> Result<Option<Selector>, ReferenceError> {
    let Some(fragment) = fragment else {
        return Ok(None);
    };
    if fragment.is_empty() {
        return Err(ReferenceError::EmptyKey);
    }
    // percent_decode_str keeps a stray `%` as it is, which would make `%` ambiguous.
    let escapes_valid = fragment.split('%').skip(1).all(|after_percent| {
        after_percent
            .as_bytes()
            .get(..2)
            .is_some_and(|digits| digits.iter().all(u8::is_ascii_hexdigit))
    });
    if !escapes_valid {
        return Err(ReferenceError::KeyPercentEncoding {
            key: excerpt(fragment),
        });
    }

    let key = percent_decode_str(fragment)
        .decode_utf8()
        .map_err(|_| ReferenceError::KeyNotUtf8)?
        .into_owned();
    Ok(Some(if fragment.starts_with('/') {
        Selector::Pointer(key)
    } else {
        Selector::Member(key)
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::os::unix::ffi::OsStrExt;

    const VERSION: &str = "0123456789abcdef0123456789abcdef";

    fn vault(name: &str, cloud: Cloud) -> Vault {
        Vault {
            name: name.to_owned(),
            cloud,
        }
    }

    fn reference(
        vault: Vault,
        name: &str,
        version: Option<&str>,
        selector: Option<Selector>,
    ) -> Reference {
        Reference {
            secret: SecretId {
                vault,
                name: name.to_owned(),
                version: version.map(str::to_owned),
            },
            selector,
        }
    }

    fn member(name: &str) -> Option<Selector> {
        Some(Selector::Member(name.to_owned()))
    }

    fn pointer(text: &str) -> Option<Selector> {
        Some(Selector::Pointer(text.to_owned()))
    }

    /// Returns the default vault that `akv://` tests resolve against.
    fn default_vault() -> Vault {
        vault("default-kv", Cloud::Public)
    }

    fn scan_with_default(text: &str) -> Scan {
        scan(OsStr::new(text), Some(&default_vault()))
    }

    fn malformed(text: &str) -> ReferenceError {
        match scan_with_default(text) {
            Scan::Malformed(error) => error,
            other => panic!("{text:?} should be malformed, got {other:?}"),
        }
    }

    #[test]
    fn scan_url_forms() {
        let my_vault = vault("my-vault", Cloud::Public);
        let cases = [
            (
                "https://my-vault.vault.azure.net/secrets/db",
                reference(my_vault.clone(), "db", None, None),
            ),
            (
                "https://my-vault.vault.azure.net/secrets/db/",
                reference(my_vault.clone(), "db", None, None),
            ),
            (
                "https://my-vault.vault.azure.net/secrets/db/0123456789abcdef0123456789ABCDEF",
                reference(my_vault.clone(), "db", Some(VERSION), None),
            ),
            (
                "https://my-vault.vault.azure.net/secrets/db/0123456789abcdef0123456789abcdef/",
                reference(my_vault.clone(), "db", Some(VERSION), None),
            ),
            (
                "HTTPS://MY-VAULT.VAULT.AZURE.NET/SECRETS/DB-Password",
                reference(my_vault.clone(), "db-password", None, None),
            ),
            (
                "https://my-vault.vault.azure.net:443/secrets/db",
                reference(my_vault.clone(), "db", None, None),
            ),
            (
                "https://kv-01.vault.azure.cn/secrets/db",
                reference(vault("kv-01", Cloud::China), "db", None, None),
            ),
            (
                "https://kv-01.Vault.UsGovCloudApi.net/secrets/db",
                reference(vault("kv-01", Cloud::UsGovernment), "db", None, None),
            ),
            (
                "  https://my-vault.vault.azure.net/secrets/db\n",
                reference(my_vault.clone(), "db", None, None),
            ),
            (
                "\t\r\nhttps://my-vault.vault.azure.net/secrets/db\r\n",
                reference(my_vault.clone(), "db", None, None),
            ),
            (
                "https://my-vault.vault.azure.net/secrets/db#password",
                reference(my_vault.clone(), "db", None, member("password")),
            ),
            (
                "https://my-vault.vault.azure.net/secrets/db/#password",
                reference(my_vault.clone(), "db", None, member("password")),
            ),
            (
                "https://my-vault.vault.azure.net/secrets/db/0123456789abcdef0123456789abcdef#/db/password",
                reference(my_vault.clone(), "db", Some(VERSION), pointer("/db/password")),
            ),
            (
                "https://my-vault.vault.azure.net/secrets/db#p%40ss%20word",
                reference(my_vault.clone(), "db", None, member("p@ss word")),
            ),
            (
                "https://my-vault.vault.azure.net/secrets/db#caf%C3%A9",
                reference(my_vault.clone(), "db", None, member("café")),
            ),
            (
                "https://my-vault.vault.azure.net/secrets/db#%2Fslash",
                reference(my_vault.clone(), "db", None, member("/slash")),
            ),
            (
                "https://my-vault.vault.azure.net/secrets/db#/a%2Fb/~1c",
                reference(my_vault.clone(), "db", None, pointer("/a/b/~1c")),
            ),
            (
                "https://my-vault.vault.azure.net/secrets/db#a#b",
                reference(my_vault.clone(), "db", None, member("a#b")),
            ),
            (
                "https://my-vault.vault.azure.net/secrets/1",
                reference(my_vault.clone(), "1", None, None),
            ),
        ];
        for (text, expected) in cases {
            assert_eq!(
                scan_with_default(text),
                Scan::Reference(expected),
                "{text:?}"
            );
        }
    }

    #[test]
    fn scan_akv_forms() {
        let cases = [
            ("akv://db", reference(default_vault(), "db", None, None)),
            ("akv://db/", reference(default_vault(), "db", None, None)),
            ("AKV://DB", reference(default_vault(), "db", None, None)),
            (
                "akv://db/0123456789ABCDEF0123456789abcdef",
                reference(default_vault(), "db", Some(VERSION), None),
            ),
            (
                "akv://db#password",
                reference(default_vault(), "db", None, member("password")),
            ),
            (
                "akv://db/0123456789abcdef0123456789abcdef/#/a/0",
                reference(default_vault(), "db", Some(VERSION), pointer("/a/0")),
            ),
            (" akv://db\n", reference(default_vault(), "db", None, None)),
        ];
        for (text, expected) in cases {
            assert_eq!(
                scan_with_default(text),
                Scan::Reference(expected),
                "{text:?}"
            );
        }
    }

    #[test]
    fn scan_akv_without_default_vault() {
        let result = scan(OsStr::new("akv://db"), None);

        assert_eq!(result, Scan::Malformed(ReferenceError::NoDefaultVault));
        let message = ReferenceError::NoDefaultVault.to_string();
        assert!(message.contains("--default-vault-url"), "{message}");
        assert!(message.contains("KVEXEC_DEFAULT_VAULT_URL"), "{message}");
    }

    #[test]
    fn scan_akv_syntax_error_before_vault() {
        let result = scan(OsStr::new("akv://db_1"), None);

        assert!(
            matches!(result, Scan::Malformed(ReferenceError::SecretName { .. })),
            "{result:?}"
        );
    }

    #[test]
    fn scan_app_service_forms() {
        let my_vault = vault("my-vault", Cloud::Public);
        let cases = [
            (
                "@Microsoft.KeyVault(SecretUri=https://my-vault.vault.azure.net/secrets/db/)",
                reference(my_vault.clone(), "db", None, None),
            ),
            (
                "@microsoft.keyvault(secreturi=https://my-vault.vault.azure.net/secrets/db/0123456789abcdef0123456789abcdef)",
                reference(my_vault.clone(), "db", Some(VERSION), None),
            ),
            (
                "@Microsoft.KeyVault(SecretUri=https://kv-01.vault.azure.cn/secrets/db#password)",
                reference(vault("kv-01", Cloud::China), "db", None, member("password")),
            ),
            (
                "@Microsoft.KeyVault(VaultName=my-vault;SecretName=db)",
                reference(my_vault.clone(), "db", None, None),
            ),
            (
                "@Microsoft.KeyVault(VaultName=My-Vault;SecretName=DB;SecretVersion=0123456789ABCDEF0123456789abcdef)",
                reference(my_vault.clone(), "db", Some(VERSION), None),
            ),
            (
                "@Microsoft.KeyVault( vaultname = my-vault ; SECRETNAME = db ; SecretVersion = )",
                reference(my_vault.clone(), "db", None, None),
            ),
            (
                "@Microsoft.KeyVault(SecretName=db;VaultName=my-vault;)",
                reference(my_vault.clone(), "db", None, None),
            ),
            (
                "@Microsoft.KeyVault(SecretUri = https://my-vault.vault.azure.net/secrets/db )\n",
                reference(my_vault.clone(), "db", None, None),
            ),
        ];
        for (text, expected) in cases {
            assert_eq!(
                scan_with_default(text),
                Scan::Reference(expected),
                "{text:?}"
            );
        }
    }

    #[test]
    fn scan_plain_values() {
        let cases = [
            "",
            "   ",
            "hunter2",
            "https://example.com/secrets/db",
            "https://my-vault.vault.azure.net",
            "https://my-vault.vault.azure.net/",
            "https://my-vault.vault.azure.net/keys/db",
            "https://my-vault.vault.azure.net/certificates/db",
            "https://my-vault.vault.azure.net/secretsdb",
            "https://my-vault.vault.azure.net//secrets/db",
            "https://my-vault.vault.azure.net?secrets/db",
            "https://my-vault.vault.azure.net#/secrets/db",
            "https://my-vault.vault.azure.net:8443/",
            "https://user@my-vault.vault.azure.net/",
            "{\"url\":\"https://my-vault.vault.azure.net/secrets/db\"}",
            "Endpoint=https://my-vault.vault.azure.net/secrets/db;Key=x",
            "see https://my-vault.vault.azure.net/secrets/db",
            "ftp://my-vault.vault.azure.net/secrets/db",
            "https:/my-vault.vault.azure.net/secrets/db",
            "https:\\\\my-vault.vault.azure.net\\secrets\\db",
            "akv:/db",
            "akv:db",
            "@Microsoft.KeyVault",
            "@Microsoft.KeyVault SecretUri=https://my-vault.vault.azure.net/secrets/db",
            "Microsoft.KeyVault(VaultName=my-vault;SecretName=db)",
        ];
        for text in cases {
            assert_eq!(scan_with_default(text), Scan::Plain, "{text:?}");
        }
    }

    /// Hosts that point elsewhere, or that a lenient URL parser would map to a vault host.
    /// None of them may become a reference.
    #[test]
    fn scan_look_alike_hosts_plain() {
        let cases = [
            "https://vault.azure.net.evil.example/secrets/db",
            "https://my-vault.vault.azure.net.evil.example/secrets/db",
            "https://my-vault.vault.azure.net..evil.example/secrets/db",
            "https://my-vault.vault.azure.net../secrets/db",
            "https://x@evil.example/secrets/db",
            "https://my-vault.vault.azure.net@evil.example/secrets/db",
            "https://my-vault.vault.azure.net:443@evil.example/secrets/db",
            "https://my-vault.vault.azure.net\\@evil.example/secrets/db",
            "https://evil.example\\@my-vault.vault.azure.net/secrets/db",
            "https://evil.example/@my-vault.vault.azure.net/secrets/db",
            "https://evil.example#@my-vault.vault.azure.net/secrets/db",
            "https://evil.example?@my-vault.vault.azure.net/secrets/db",
            "https://myvault.azure.net/secrets/db",
            "https://my-vault%2evault.azure.net/secrets/db",
            "https://my-vault.vault.azure%2enet/secrets/db",
            "https://my-vault.vault%2Eazure.net/secrets/db",
            // U+FF0E FULLWIDTH FULL STOP, which IDNA maps to ".".
            "https://my-vault\u{FF0E}vault.azure.net/secrets/db",
            // U+0435 CYRILLIC SMALL LETTER IE in place of "e".
            "https://my-vault.vault.azur\u{0435}.net/secrets/db",
            // U+212A KELVIN SIGN, which lowercases to ASCII "k" under Unicode rules.
            "https://my-vault.vault.azure.net\u{212A}/secrets/db",
            "https://[::1]/secrets/db",
            "https://127.0.0.1/secrets/db",
        ];
        for text in cases {
            assert_eq!(scan_with_default(text), Scan::Plain, "{text:?}");
        }
    }

    /// Look-alikes whose literal host ends in a vault suffix: they are meant as references,
    /// so they are errors, never a reference to a different host.
    #[test]
    fn scan_look_alike_hosts_malformed() {
        let cases = [
            (
                "https://user@my-vault.vault.azure.net/secrets/db",
                ReferenceError::UserInfo,
            ),
            (
                "https://evil.example@my-vault.vault.azure.net/secrets/db",
                ReferenceError::UserInfo,
            ),
            (
                "https://user:password@my-vault.vault.azure.net/secrets/db",
                ReferenceError::UserInfo,
            ),
            (
                "https://my-vault.vault.azure.net./secrets/db",
                ReferenceError::HostTrailingDot {
                    host: "my-vault.vault.azure.net.".into(),
                },
            ),
            (
                "https://vault.azure.net/secrets/db",
                ReferenceError::MissingVaultName {
                    host: "vault.azure.net".into(),
                    suffix: "vault.azure.net",
                },
            ),
            (
                "https://.vault.azure.net/secrets/db",
                ReferenceError::MissingVaultName {
                    host: ".vault.azure.net".into(),
                    suffix: "vault.azure.net",
                },
            ),
            (
                "https://evil.example.my-vault.vault.azure.net/secrets/db",
                ReferenceError::VaultName {
                    name: "evil.example.my-vault".into(),
                    problem: NameProblem::Character(CharName('.')),
                },
            ),
            (
                "https://x%2e.vault.azure.net/secrets/db",
                ReferenceError::VaultName {
                    name: "x%2e".into(),
                    problem: NameProblem::Character(CharName('%')),
                },
            ),
            (
                // U+0443 CYRILLIC SMALL LETTER U in place of "y".
                "https://m\u{0443}-vault.vault.azure.net/secrets/db",
                ReferenceError::VaultName {
                    name: "m\u{0443}-vault".into(),
                    problem: NameProblem::Character(CharName('\u{0443}')),
                },
            ),
            (
                // The ASCII (punycode) form of an internationalized name.
                "https://xn--mgbh0fb.vault.azure.net/secrets/db",
                ReferenceError::VaultName {
                    name: "xn--mgbh0fb".into(),
                    problem: NameProblem::ConsecutiveHyphens,
                },
            ),
            (
                "https://my-vault.vault.azure.net\\secrets\\db",
                ReferenceError::Backslash,
            ),
            (
                "https://my-vault.vault.azure.net/secrets\\db",
                ReferenceError::Backslash,
            ),
        ];
        for (text, expected) in cases {
            assert_eq!(malformed(text), expected, "{text:?}");
        }
    }

    #[test]
    fn scan_malformed_urls() {
        let long_name = "a".repeat(128);
        let cases = [
            (
                "http://my-vault.vault.azure.net/secrets/db".to_owned(),
                ReferenceError::InsecureScheme,
            ),
            (
                "HTTP://MY-VAULT.VAULT.AZURE.NET/SECRETS/DB".to_owned(),
                ReferenceError::InsecureScheme,
            ),
            (
                "https://my_vault.vault.azure.net/secrets/db".to_owned(),
                ReferenceError::VaultName {
                    name: "my_vault".into(),
                    problem: NameProblem::Character(CharName('_')),
                },
            ),
            (
                "https://ab.vault.azure.net/secrets/db".to_owned(),
                ReferenceError::VaultName {
                    name: "ab".into(),
                    problem: NameProblem::VaultLength(2),
                },
            ),
            (
                "https://abcdefghijklmnopqrstuvwxy.vault.azure.net/secrets/db".to_owned(),
                ReferenceError::VaultName {
                    name: "abcdefghijklmnopqrstuvwxy".into(),
                    problem: NameProblem::VaultLength(25),
                },
            ),
            (
                "https://1vault.vault.azure.net/secrets/db".to_owned(),
                ReferenceError::VaultName {
                    name: "1vault".into(),
                    problem: NameProblem::VaultStart,
                },
            ),
            (
                "https://my-vault-.vault.azure.net/secrets/db".to_owned(),
                ReferenceError::VaultName {
                    name: "my-vault-".into(),
                    problem: NameProblem::VaultEnd,
                },
            ),
            (
                "https://my--vault.vault.azure.net/secrets/db".to_owned(),
                ReferenceError::VaultName {
                    name: "my--vault".into(),
                    problem: NameProblem::ConsecutiveHyphens,
                },
            ),
            (
                "https://my-vault.vault.azure.net:8443/secrets/db".to_owned(),
                ReferenceError::Port {
                    port: "8443".into(),
                },
            ),
            (
                "https://my-vault.vault.azure.net:/secrets/db".to_owned(),
                ReferenceError::Port { port: "".into() },
            ),
            (
                "https://my-vault.vault.azure.net:0443/secrets/db".to_owned(),
                ReferenceError::Port {
                    port: "0443".into(),
                },
            ),
            (
                "https://my-vault.vault.azure.net/secrets/db?api-version=7.4".to_owned(),
                ReferenceError::Query {
                    query: "api-version=7.4".into(),
                },
            ),
            (
                "https://my-vault.vault.azure.net/secrets/db/?".to_owned(),
                ReferenceError::Query { query: "".into() },
            ),
            (
                "https://my-vault.vault.azure.net/secrets".to_owned(),
                ReferenceError::MissingSecretName,
            ),
            (
                "https://my-vault.vault.azure.net/secrets/".to_owned(),
                ReferenceError::MissingSecretName,
            ),
            (
                "https://my-vault.vault.azure.net/secrets//".to_owned(),
                ReferenceError::MissingSecretName,
            ),
            (
                "https://my-vault.vault.azure.net/secrets/db_password".to_owned(),
                ReferenceError::SecretName {
                    name: "db_password".into(),
                    problem: NameProblem::Character(CharName('_')),
                },
            ),
            (
                "https://my-vault.vault.azure.net/secrets/db%2Dpassword".to_owned(),
                ReferenceError::SecretName {
                    name: "db%2Dpassword".into(),
                    problem: NameProblem::Character(CharName('%')),
                },
            ),
            (
                "https://my-vault.vault.azure.net/secrets/db https://my-vault.vault.azure.net/secrets/other".to_owned(),
                ReferenceError::SecretName {
                    name: "db https:".into(),
                    problem: NameProblem::Character(CharName(' ')),
                },
            ),
            (
                format!("https://my-vault.vault.azure.net/secrets/{long_name}"),
                ReferenceError::SecretName {
                    name: excerpt(&long_name),
                    problem: NameProblem::SecretLength(128),
                },
            ),
            (
                "https://my-vault.vault.azure.net/secrets/db/abc1234".to_owned(),
                ReferenceError::VersionLength {
                    version: "abc1234".into(),
                    length: 7,
                },
            ),
            (
                format!("https://my-vault.vault.azure.net/secrets/db/{VERSION}0"),
                ReferenceError::VersionLength {
                    version: format!("{VERSION}0"),
                    length: 33,
                },
            ),
            (
                "https://my-vault.vault.azure.net/secrets/db//".to_owned(),
                ReferenceError::VersionLength {
                    version: "".into(),
                    length: 0,
                },
            ),
            (
                "https://my-vault.vault.azure.net/secrets/db/latest".to_owned(),
                ReferenceError::VersionCharacter {
                    version: "latest".into(),
                    character: CharName('l'),
                },
            ),
            (
                format!("https://my-vault.vault.azure.net/secrets/db/{VERSION}/extra/more"),
                ReferenceError::ExtraPath {
                    path: "extra/more".into(),
                },
            ),
            (
                format!("https://my-vault.vault.azure.net/secrets/db/{VERSION}//"),
                ReferenceError::ExtraPath { path: "".into() },
            ),
            (
                "https://my-vault.vault.azure.net/secrets/db#".to_owned(),
                ReferenceError::EmptyKey,
            ),
            (
                "https://my-vault.vault.azure.net/secrets/db/#".to_owned(),
                ReferenceError::EmptyKey,
            ),
            (
                "https://my-vault.vault.azure.net/secrets/db#50%".to_owned(),
                ReferenceError::KeyPercentEncoding { key: "50%".into() },
            ),
            (
                "https://my-vault.vault.azure.net/secrets/db#%zz".to_owned(),
                ReferenceError::KeyPercentEncoding { key: "%zz".into() },
            ),
            (
                "https://my-vault.vault.azure.net/secrets/db#%FF".to_owned(),
                ReferenceError::KeyNotUtf8,
            ),
        ];
        for (text, expected) in cases {
            assert_eq!(malformed(&text), expected, "{text:?}");
        }
    }

    #[test]
    fn scan_malformed_akv() {
        let cases = [
            ("akv://", ReferenceError::MissingSecretName),
            ("akv:///db", ReferenceError::MissingSecretName),
            (
                "akv://db_1",
                ReferenceError::SecretName {
                    name: "db_1".into(),
                    problem: NameProblem::Character(CharName('_')),
                },
            ),
            (
                "akv://my-vault.vault.azure.net/secrets/db",
                ReferenceError::SecretName {
                    name: "my-vault.vault.azure.net".into(),
                    problem: NameProblem::Character(CharName('.')),
                },
            ),
            (
                "akv://db/1234",
                ReferenceError::VersionLength {
                    version: "1234".into(),
                    length: 4,
                },
            ),
            (
                "akv://db/a/b",
                ReferenceError::ExtraPath { path: "b".into() },
            ),
            (
                "akv://db?x=1",
                ReferenceError::Query {
                    query: "x=1".into(),
                },
            ),
            ("akv://db\\x", ReferenceError::Backslash),
            ("akv://db#", ReferenceError::EmptyKey),
        ];
        for (text, expected) in cases {
            assert_eq!(malformed(text), expected, "{text:?}");
        }
    }

    #[test]
    fn scan_malformed_app_service() {
        let cases = [
            (
                "@Microsoft.KeyVault(SecretUri=https://my-vault.vault.azure.net/secrets/db",
                ReferenceError::AppServiceParenthesis,
            ),
            ("@Microsoft.KeyVault()", ReferenceError::AppServiceEmptyParameter),
            (
                "@Microsoft.KeyVault(VaultName=my-vault;;SecretName=db)",
                ReferenceError::AppServiceEmptyParameter,
            ),
            (
                "@Microsoft.KeyVault(VaultName=my-vault;SecretName=db;;)",
                ReferenceError::AppServiceEmptyParameter,
            ),
            (
                "@Microsoft.KeyVault(my-vault/db)",
                ReferenceError::AppServiceNoEquals {
                    parameter: "my-vault/db".into(),
                },
            ),
            (
                "@Microsoft.KeyVault(Vault=my-vault;SecretName=db)",
                ReferenceError::AppServiceUnknownParameter {
                    name: "Vault".into(),
                },
            ),
            (
                "@Microsoft.KeyVault(VaultName=my-vault;vaultname=other;SecretName=db)",
                ReferenceError::AppServiceDuplicateParameter { name: "VaultName" },
            ),
            (
                "@Microsoft.KeyVault(SecretName=db)",
                ReferenceError::AppServiceMissingParameter { name: "VaultName" },
            ),
            (
                "@Microsoft.KeyVault(VaultName=my-vault;SecretVersion=)",
                ReferenceError::AppServiceMissingParameter { name: "SecretName" },
            ),
            (
                "@Microsoft.KeyVault(SecretUri=https://my-vault.vault.azure.net/secrets/db;SecretName=db)",
                ReferenceError::AppServiceMixedParameters,
            ),
            (
                "@Microsoft.KeyVault(SecretUri=https://example.com/secrets/db)",
                ReferenceError::AppServiceSecretUri {
                    uri: "https://example.com/secrets/db".into(),
                },
            ),
            (
                "@Microsoft.KeyVault(SecretUri=akv://db)",
                ReferenceError::AppServiceSecretUri {
                    uri: "akv://db".into(),
                },
            ),
            (
                "@Microsoft.KeyVault(SecretUri=)",
                ReferenceError::AppServiceSecretUri { uri: "".into() },
            ),
            (
                "@Microsoft.KeyVault(SecretUri=http://my-vault.vault.azure.net/secrets/db)",
                ReferenceError::InsecureScheme,
            ),
            (
                "@Microsoft.KeyVault(VaultName=my_vault;SecretName=db)",
                ReferenceError::VaultName {
                    name: "my_vault".into(),
                    problem: NameProblem::Character(CharName('_')),
                },
            ),
            (
                "@Microsoft.KeyVault(VaultName=my-vault;SecretName=)",
                ReferenceError::MissingSecretName,
            ),
            (
                "@Microsoft.KeyVault(VaultName=my-vault;SecretName=db;SecretVersion=abc)",
                ReferenceError::VersionLength {
                    version: "abc".into(),
                    length: 3,
                },
            ),
        ];
        for (text, expected) in cases {
            assert_eq!(malformed(text), expected, "{text:?}");
        }
    }

    #[test]
    fn scan_non_utf8_values() {
        let cases: [(&[u8], bool); 9] = [
            (b"hunter\xff2", false),
            (b"https://example.com/\xff", false),
            (b"https://my-vault.vault.azure.net/\xff", false),
            (b"\xffakv://db", false),
            (b"akv://db\xff", true),
            (b"  AKV://\xff\n", true),
            (b"@Microsoft.KeyVault(\xff)", true),
            (b"https://my-vault.vault.azure.net/secrets/\xff", true),
            // The lossy copy would be a valid reference with key U+FFFD.
            (b"https://my-vault.vault.azure.net/secrets/db#\xff", true),
        ];
        for (bytes, meant_as_reference) in cases {
            let expected = if meant_as_reference {
                Scan::Malformed(ReferenceError::NotUtf8)
            } else {
                Scan::Plain
            };
            let value = OsStr::from_bytes(bytes);
            assert_eq!(scan(value, Some(&default_vault())), expected, "{value:?}");
        }
    }

    #[test]
    fn scan_ids_ignore_case() {
        let lower = format!("https://my-vault.vault.azure.net/secrets/db/{VERSION}");
        let upper = lower.to_ascii_uppercase();

        let (Scan::Reference(lower), Scan::Reference(upper)) =
            (scan_with_default(&lower), scan_with_default(&upper))
        else {
            panic!("both should be references");
        };
        assert_eq!(lower.secret, upper.secret);
    }

    #[test]
    fn reference_display_canonical() {
        let my_vault = vault("my-vault", Cloud::Public);
        let cases = [
            (
                reference(my_vault.clone(), "db", None, None),
                "https://my-vault.vault.azure.net/secrets/db",
            ),
            (
                reference(
                    vault("kv-01", Cloud::UsGovernment),
                    "db",
                    Some(VERSION),
                    None,
                ),
                "https://kv-01.vault.usgovcloudapi.net/secrets/db/0123456789abcdef0123456789abcdef",
            ),
            (
                reference(my_vault.clone(), "db", None, member("password")),
                "https://my-vault.vault.azure.net/secrets/db#password",
            ),
            (
                reference(my_vault.clone(), "db", None, member("a b#c%d\n")),
                "https://my-vault.vault.azure.net/secrets/db#a%20b%23c%25d%0A",
            ),
            (
                reference(my_vault.clone(), "db", None, member("/slash")),
                "https://my-vault.vault.azure.net/secrets/db#%2Fslash",
            ),
            (
                reference(my_vault.clone(), "db", None, member("café")),
                "https://my-vault.vault.azure.net/secrets/db#caf%C3%A9",
            ),
            (
                reference(my_vault.clone(), "db", None, pointer("/a b/~1c/0")),
                "https://my-vault.vault.azure.net/secrets/db#/a%20b/~1c/0",
            ),
        ];
        for (reference, expected) in cases {
            assert_eq!(reference.to_string(), expected);
            assert_eq!(scan_with_default(expected), Scan::Reference(reference));
        }
    }

    #[test]
    fn vault_parse_url_valid() {
        let cases = [
            (
                "https://my-vault.vault.azure.net",
                vault("my-vault", Cloud::Public),
            ),
            (
                "https://my-vault.vault.azure.net/",
                vault("my-vault", Cloud::Public),
            ),
            (
                "HTTPS://My-Vault.Vault.Azure.Net:443/",
                vault("my-vault", Cloud::Public),
            ),
            (
                " https://kv-01.vault.azure.cn/\n",
                vault("kv-01", Cloud::China),
            ),
            (
                "https://kv-01.vault.usgovcloudapi.net",
                vault("kv-01", Cloud::UsGovernment),
            ),
        ];
        for (text, expected) in cases {
            assert_eq!(Vault::parse_url(text), Ok(expected), "{text:?}");
        }
    }

    #[test]
    fn vault_parse_url_errors() {
        let cases = [
            (
                "my-vault",
                ReferenceError::NotVaultUrl {
                    text: "my-vault".into(),
                },
            ),
            ("", ReferenceError::NotVaultUrl { text: "".into() }),
            (
                "http://my-vault.vault.azure.net/",
                ReferenceError::InsecureScheme,
            ),
            (
                "https://u@my-vault.vault.azure.net/",
                ReferenceError::UserInfo,
            ),
            (
                "https://example.com/",
                ReferenceError::NotVaultHost {
                    host: "example.com".into(),
                },
            ),
            (
                "https://my-vault%2evault.azure.net/",
                ReferenceError::NotVaultHost {
                    host: "my-vault%2evault.azure.net".into(),
                },
            ),
            (
                "https://my-vault.vault.azure.net./",
                ReferenceError::HostTrailingDot {
                    host: "my-vault.vault.azure.net.".into(),
                },
            ),
            (
                "https://ab.vault.azure.net",
                ReferenceError::VaultName {
                    name: "ab".into(),
                    problem: NameProblem::VaultLength(2),
                },
            ),
            (
                "https://my-vault.vault.azure.net:8443/",
                ReferenceError::Port {
                    port: "8443".into(),
                },
            ),
            (
                "https://my-vault.vault.azure.net/secrets/db",
                ReferenceError::VaultUrlPath {
                    path: "/secrets/db".into(),
                },
            ),
            (
                "https://my-vault.vault.azure.net/?x=1",
                ReferenceError::VaultUrlPath {
                    path: "/?x=1".into(),
                },
            ),
            (
                "https://my-vault.vault.azure.net//",
                ReferenceError::VaultUrlPath { path: "//".into() },
            ),
        ];
        for (text, expected) in cases {
            assert_eq!(Vault::parse_url(text), Err(expected), "{text:?}");
        }
    }

    #[test]
    fn error_messages_explain() {
        let cases = [
            (
                "https://my-vault.vault.azure.net/secrets/db/abc1234",
                "invalid version \"abc1234\": the version must be 32 hexadecimal characters, found 7",
            ),
            (
                "http://my-vault.vault.azure.net/secrets/db",
                "a Key Vault URL must use https://, found http://",
            ),
            (
                "https://ab.vault.azure.net/secrets/db",
                "invalid vault name \"ab\": it has 2 characters, but a vault name has 3 to 24",
            ),
            (
                "https://m\u{0443}-vault.vault.azure.net/secrets/db",
                "invalid vault name \"m\u{0443}-vault\": '\u{0443}' (U+0443) is not allowed; \
                 a name has only ASCII letters, digits and hyphens",
            ),
            (
                "https://vault.azure.net/secrets/db",
                "the host \"vault.azure.net\" has no vault name; expected {vault}.vault.azure.net",
            ),
            (
                "https://my-vault.vault.azure.net/secrets/db?api-version=7.4",
                "a Key Vault reference must not have a query string; remove \"?api-version=7.4\"",
            ),
        ];
        for (text, expected) in cases {
            assert_eq!(malformed(text).to_string(), expected, "{text:?}");
        }
    }

    #[test]
    fn error_messages_one_line_and_short() {
        let long = "x".repeat(500);
        let texts = [
            format!("https://my-vault.vault.azure.net/secrets/db\n{long}"),
            format!("https://my-vault.vault.azure.net/secrets/db/{long}"),
            format!("https://{long}.vault.azure.net/secrets/db"),
            format!("akv://db?{long}\r\n{long}"),
            format!("@Microsoft.KeyVault({long}\n=1)"),
            "https://my-vault.vault.azure.net/secrets/db/a\tb".to_owned(),
        ];
        for text in texts {
            let message = malformed(&text).to_string();
            assert!(!message.contains('\n'), "{message}");
            assert!(!message.contains('\r'), "{message}");
            assert!(message.len() < 300, "{message}");
        }
    }

    fn vault_name_strategy() -> impl Strategy<Value = String> {
        "[a-zA-Z](-?[a-zA-Z0-9]){2,11}"
    }

    fn selector_strategy() -> impl Strategy<Value = Option<Selector>> {
        proptest::option::of(prop_oneof![
            "(?s).{1,16}".prop_map(Selector::Member),
            "/(?s).{0,16}".prop_map(Selector::Pointer),
        ])
    }

    fn reference_strategy() -> impl Strategy<Value = Reference> {
        (
            vault_name_strategy(),
            proptest::sample::select(Cloud::ALL.to_vec()),
            "[0-9a-zA-Z-]{1,127}",
            proptest::option::of("[0-9a-f]{32}"),
            selector_strategy(),
        )
            .prop_map(|(vault_name, cloud, name, version, selector)| Reference {
                secret: SecretId {
                    vault: Vault {
                        name: vault_name.to_ascii_lowercase(),
                        cloud,
                    },
                    name: name.to_ascii_lowercase(),
                    version,
                },
                selector,
            })
    }

    /// Picks `valid` three times out of four, else one of `others`.
    fn mostly(
        valid: &'static str,
        others: Vec<&'static str>,
    ) -> impl Strategy<Value = &'static str> {
        prop_oneof![3 => Just(valid), 1 => proptest::sample::select(others)]
    }

    /// Text close to a reference: valid parts mixed with look-alike hosts, user information,
    /// ports, backslashes and broken paths.
    fn near_reference_strategy() -> impl Strategy<Value = String> {
        let label = prop_oneof![
            3 => vault_name_strategy(),
            1 => "[a-zA-Z0-9._%@:\\\\\u{FF0E}\u{0430}-]{0,12}",
        ];
        let name = prop_oneof![
            3 => "[a-zA-Z0-9-]{1,8}",
            1 => "[a-zA-Z0-9_%.-]{0,8}",
        ];
        (
            mostly(
                "https://",
                vec![
                    "HTTPS://",
                    "http://",
                    "hTtPs://",
                    "https:/",
                    "akv://",
                    "@Microsoft.KeyVault(SecretUri=https://",
                    "",
                ],
            ),
            mostly("", vec!["user@", "x.vault.azure.net@", "evil.example\\@"]),
            label,
            mostly(
                ".vault.azure.net",
                vec![
                    ".VAULT.AZURE.NET",
                    ".vault.azure.cn",
                    ".vault.usgovcloudapi.net",
                    "vault.azure.net",
                    ".vault.azure.net.",
                    ".vault.azure.net.evil.example",
                    "\u{FF0E}vault.azure.net",
                    ".vault.azur\u{0435}.net",
                    "%2evault.azure.net",
                    "",
                ],
            ),
            mostly("", vec![":443", ":444", ":", "@evil.example"]),
            mostly(
                "/secrets/",
                vec!["/SECRETS/", "\\secrets\\", "/secrets", "/keys/", "/", ""],
            ),
            name,
            mostly(
                "",
                vec![
                    "/",
                    "/0123456789abcdef0123456789abcdef",
                    "/0123456789ABCDEF0123456789abcdef/",
                    "/abc",
                    "?x=1",
                    "#k",
                    "#/a/b",
                    "#",
                    "#%zz",
                    ")",
                ],
            ),
        )
            .prop_map(
                |(scheme, userinfo, label, suffix, port, path, name, tail)| {
                    format!("{scheme}{userinfo}{label}{suffix}{port}{path}{name}{tail}")
                },
            )
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        #[test]
        fn scan_never_panics_on_text(text in any::<String>()) {
            let _ = scan_str(&text, Some(&default_vault()));
            let _ = scan_str(&text, None);
            let _ = Vault::parse_url(&text);
        }

        #[test]
        fn scan_never_panics_on_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = scan(OsStr::from_bytes(&bytes), Some(&default_vault()));
        }

        #[test]
        fn display_scans_back(reference in reference_strategy()) {
            let text = reference.to_string();
            prop_assert_eq!(scan_str(&text, None), Scan::Reference(reference));
        }

        #[test]
        fn reference_hosts_are_literal(text in near_reference_strategy()) {
            let _ = Vault::parse_url(&text);
            let Scan::Reference(reference) = scan_str(&text, Some(&default_vault())) else {
                return Ok(());
            };

            let host = reference.secret.vault.host();
            prop_assert!(
                Cloud::ALL.iter().any(|cloud| host.ends_with(&format!(".{}", cloud.vault_suffix()))),
                "{host}"
            );
            prop_assert!(
                host.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'.' || b == b'-'),
                "{host}"
            );

            // The vault host is the literal host of the input, not one derived from it.
            let lower = text.trim_ascii().to_ascii_lowercase();
            if lower.starts_with("akv://") {
                prop_assert_eq!(reference.secret.vault, default_vault());
            } else {
                let url = lower
                    .strip_prefix("@microsoft.keyvault(secreturi=")
                    .unwrap_or(&lower);
                prop_assert!(
                    url.starts_with(&format!("https://{host}/"))
                        || url.starts_with(&format!("https://{host}:443/")),
                    "{text:?} gave {host}"
                );
            }
        }
    }
}
