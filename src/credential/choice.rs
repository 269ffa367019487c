//! The choice of credential for a run: the one named by `--credential` / KVEXEC_CREDENTIAL, or
//! the first that auto finds configured.
//!
//! Choosing looks only at settings, never at the network or the file system, so it is the
//! same on every machine with the same variables.

use super::CredentialSettings;
use std::fmt;

/// A way to obtain an Entra ID token.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CredentialKind {
    ClientSecret,
    ClientCertificate,
    WorkloadIdentity,
    ManagedIdentity,
    AzureCli,
}

impl CredentialKind {
    /// Every kind, in the order auto considers them.
    pub const AUTO_ORDER: [CredentialKind; 5] = [
        CredentialKind::ClientSecret,
        CredentialKind::ClientCertificate,
        CredentialKind::WorkloadIdentity,
        CredentialKind::ManagedIdentity,
        CredentialKind::AzureCli,
    ];

    /// Returns the name used by `--credential`, e.g. `workload-identity`.
    pub fn name(self) -> &'static str {
        match self {
            CredentialKind::ClientSecret => "client-secret",
            CredentialKind::ClientCertificate => "client-certificate",
            CredentialKind::WorkloadIdentity => "workload-identity",
            CredentialKind::ManagedIdentity => "managed-identity",
            CredentialKind::AzureCli => "azure-cli",
        }
    }

    /// Parses a `--credential` value: `auto` gives `None`. Case and surrounding spaces are
    /// ignored.
    pub fn parse_choice(text: &str) -> Result<Option<CredentialKind>, UnknownCredential> {
        let requested = text.trim().to_ascii_lowercase();
        if requested == "auto" {
            return Ok(None);
        }
        CredentialKind::AUTO_ORDER
            .into_iter()
            .find(|kind| kind.name() == requested)
            .map(Some)
            .ok_or_else(|| UnknownCredential(text.to_string()))
    }
}

impl fmt::Display for CredentialKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A `--credential` value that names no credential.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "unknown credential '{0}': expected auto, client-secret, client-certificate, workload-identity, managed-identity or azure-cli"
)]
pub struct UnknownCredential(pub String);

/// Whether the settings configure one kind of credential, and which setting shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Availability {
    /// The kind's settings are present; the text names them, e.g. "AZURE_FEDERATED_TOKEN_FILE is set".
    Configured(&'static str),
    /// The text names what is missing, e.g. "AZURE_FEDERATED_TOKEN_FILE is not set".
    NotConfigured(&'static str),
}

/// The choice of the run's credential, kept to explain a failure.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Selection {
    pub kind: CredentialKind,
    /// `--credential` or `KVEXEC_CREDENTIAL` when chosen explicitly; `None` for auto.
    pub chosen_by: Option<&'static str>,
    /// Every kind in auto order with its availability.
    pub candidates: Vec<(CredentialKind, Availability)>,
}

impl Selection {
    /// Returns why this credential was used, e.g. "selected by --credential" or
    /// "auto: AZURE_FEDERATED_TOKEN_FILE is set".
    pub fn reason(&self) -> String {
        match self.chosen_by {
            Some(origin) => format!("selected by {origin}"),
            None => match self.availability(self.kind) {
                Availability::Configured(why) => format!("auto: {why}"),
                Availability::NotConfigured(_) => "auto".to_string(),
            },
        }
    }

    fn availability(&self, kind: CredentialKind) -> &Availability {
        self.candidates
            .iter()
            .find(|(candidate, _)| *candidate == kind)
            .map(|(_, availability)| availability)
            .unwrap_or(&Availability::NotConfigured(""))
    }

    /// Describes what else could have been used, for an error message: under auto the kinds it
    /// passed over and why, otherwise the other kinds the settings configure. Ends with how
    /// to choose.
    pub fn alternatives(&self) -> String {
        let how = "choose a credential with --credential NAME or KVEXEC_CREDENTIAL \
            (client-secret, client-certificate, workload-identity, managed-identity, azure-cli)";
        if self.chosen_by.is_none() {
            let skipped: Vec<String> = self
                .candidates
                .iter()
                .take_while(|(kind, _)| *kind != self.kind)
                .map(|(kind, availability)| match availability {
                    Availability::NotConfigured(why) | Availability::Configured(why) => format!("{kind} ({why})"),
                })
                .collect();
            let why_chosen = match self.availability(self.kind) {
                Availability::Configured(why) => *why,
                Availability::NotConfigured(why) => *why,
            };
            let tried = if skipped.is_empty() {
                format!("auto chose {} because {why_chosen}", self.kind)
            } else {
                format!("auto chose {} because {why_chosen}, after skipping {}", self.kind, skipped.join(", "))
            };
            return format!("{tried}; {how}");
        }
        let configured: Vec<&str> = self
            .candidates
            .iter()
            .filter(|(kind, availability)| {
                *kind != self.kind && *kind != CredentialKind::AzureCli && matches!(availability, Availability::Configured(_))
            })
            .map(|(kind, _)| kind.name())
            .collect();
        if configured.is_empty() {
            how.to_string()
        } else {
            format!("also configured here: {}; {how}", configured.join(", "))
        }
    }
}

/// Chooses the credential: the explicit choice if there is one, else the first kind in
/// auto order whose settings are present, else azure-cli. Auto never picks the VM
/// metadata endpoint (IMDS), because probing it off Azure costs seconds and touches a
/// metadata address.
pub fn select(settings: &CredentialSettings) -> Selection {
    let candidates: Vec<(CredentialKind, Availability)> = CredentialKind::AUTO_ORDER
        .into_iter()
        .map(|kind| (kind, availability(kind, settings)))
        .collect();
    let (kind, chosen_by) = match settings.choice {
        Some((kind, origin)) => (kind, Some(origin)),
        None => {
            let first = candidates
                .iter()
                .find(|(_, availability)| matches!(availability, Availability::Configured(_)))
                .map_or(CredentialKind::AzureCli, |(kind, _)| *kind);
            (first, None)
        }
    };
    Selection {
        kind,
        chosen_by,
        candidates,
    }
}

fn availability(kind: CredentialKind, settings: &CredentialSettings) -> Availability {
    use Availability::{Configured, NotConfigured};
    match kind {
        CredentialKind::ClientSecret => match settings.client_secret {
            Some(_) => Configured("a client secret is given (AZURE_CLIENT_SECRET or --client-secret-file)"),
            None => NotConfigured("neither AZURE_CLIENT_SECRET nor --client-secret-file is set"),
        },
        CredentialKind::ClientCertificate => match settings.certificate_path {
            Some(_) => Configured("AZURE_CLIENT_CERTIFICATE_PATH is set"),
            None => NotConfigured("AZURE_CLIENT_CERTIFICATE_PATH is not set"),
        },
        CredentialKind::WorkloadIdentity => match settings.federated_token_file {
            Some(_) => Configured("AZURE_FEDERATED_TOKEN_FILE is set"),
            None => NotConfigured("AZURE_FEDERATED_TOKEN_FILE is not set"),
        },
        CredentialKind::ManagedIdentity => match settings.identity_endpoint {
            Some(_) => Configured("IDENTITY_ENDPOINT is set"),
            None => NotConfigured(
                "IDENTITY_ENDPOINT is not set, and auto never uses the VM metadata endpoint, which needs --credential managed-identity",
            ),
        },
        CredentialKind::AzureCli => Configured("no other credential is configured"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use secrecy::SecretString;
    use std::path::PathBuf;

    fn settings() -> CredentialSettings {
        CredentialSettings::default()
    }

    fn auto_choice(settings: &CredentialSettings) -> CredentialKind {
        select(settings).kind
    }

    #[test]
    fn parse_choice_accepts_names_and_auto() {
        assert_eq!(CredentialKind::parse_choice("auto"), Ok(None));
        assert_eq!(CredentialKind::parse_choice(" Azure-CLI "), Ok(Some(CredentialKind::AzureCli)));
        for kind in CredentialKind::AUTO_ORDER {
            assert_eq!(CredentialKind::parse_choice(kind.name()), Ok(Some(kind)));
        }
        assert!(CredentialKind::parse_choice("environment").is_err());
        assert!(CredentialKind::parse_choice("").is_err());
    }

    #[test]
    fn auto_falls_back_to_azure_cli() {
        let selection = select(&settings());
        assert_eq!(selection.kind, CredentialKind::AzureCli);
        assert_eq!(selection.chosen_by, None);
    }

    #[test]
    fn auto_follows_the_documented_order() {
        let mut all = settings();
        all.client_secret = Some(SecretString::from("s"));
        all.certificate_path = Some(PathBuf::from("/c.pem"));
        all.federated_token_file = Some(PathBuf::from("/t"));
        all.identity_endpoint = Some("http://127.0.0.1:1/msi/token".to_string());
        assert_eq!(auto_choice(&all), CredentialKind::ClientSecret);

        all.client_secret = None;
        assert_eq!(auto_choice(&all), CredentialKind::ClientCertificate);

        all.certificate_path = None;
        assert_eq!(auto_choice(&all), CredentialKind::WorkloadIdentity);

        all.federated_token_file = None;
        assert_eq!(auto_choice(&all), CredentialKind::ManagedIdentity);

        all.identity_endpoint = None;
        assert_eq!(auto_choice(&all), CredentialKind::AzureCli);
    }

    #[test]
    fn auto_never_picks_imds() {
        let mut only_imds_settings = settings();
        only_imds_settings.imds_endpoint = Some("http://127.0.0.1:1".to_string());
        only_imds_settings.client_id = Some("user-assigned".to_string());
        assert_eq!(auto_choice(&only_imds_settings), CredentialKind::AzureCli);
    }

    #[test]
    fn explicit_choice_wins_over_auto() {
        let mut explicit = settings();
        explicit.client_secret = Some(SecretString::from("s"));
        explicit.choice = Some((CredentialKind::ManagedIdentity, "--credential"));
        let selection = select(&explicit);
        assert_eq!(selection.kind, CredentialKind::ManagedIdentity);
        assert_eq!(selection.reason(), "selected by --credential");
        assert!(selection.alternatives().contains("also configured here: client-secret"));
    }

    #[test]
    fn auto_alternatives_list_skipped_kinds() {
        let mut workload = settings();
        workload.federated_token_file = Some(PathBuf::from("/t"));
        let selection = select(&workload);
        assert_eq!(selection.reason(), "auto: AZURE_FEDERATED_TOKEN_FILE is set");
        let text = selection.alternatives();
        assert!(
            text.contains("auto chose workload-identity because AZURE_FEDERATED_TOKEN_FILE is set, after skipping client-secret ("),
            "{text}"
        );
        assert!(text.contains("client-certificate (AZURE_CLIENT_CERTIFICATE_PATH is not set)"), "{text}");
        assert!(!text.contains("managed-identity ("), "{text}");
        assert!(text.contains("--credential NAME"), "{text}");
    }

    #[test]
    fn auto_azure_cli_alternatives_explain_imds() {
        let text = select(&settings()).alternatives();
        assert!(text.contains("auto chose azure-cli because no other credential is configured"), "{text}");
        assert!(text.contains("managed-identity (IDENTITY_ENDPOINT is not set"), "{text}");
        assert!(text.contains("needs --credential managed-identity"), "{text}");
    }
}
