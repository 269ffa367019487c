//! Identifiers, clocks and name checks shared by the emulated services.

use std::time::{SystemTime, UNIX_EPOCH};
use time::OffsetDateTime;

/// Returns `len` random bytes as lowercase hex (`2 * len` characters).
pub(crate) fn random_hex(len: usize) -> String {
    let mut bytes = vec![0u8; len];
    getrandom::fill(&mut bytes).expect("the operating system random source failed");
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Generates a random GUID in the hyphenated lowercase form Entra ID and Key Vault use.
pub(crate) fn new_guid() -> String {
    uuid::Uuid::new_v4().hyphenated().to_string()
}

/// Generates a 32-character lowercase hex id, the form of Key Vault secret versions.
pub(crate) fn new_version_id() -> String {
    random_hex(16)
}

pub(crate) fn unix_now() -> i64 {
    let since_epoch = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("the system clock is before 1970");
    i64::try_from(since_epoch.as_secs()).unwrap_or(i64::MAX)
}

/// Formats a Unix time as Entra ID writes timestamps in error bodies: `2023-05-06 06:03:00Z`.
pub(crate) fn entra_timestamp(unix_seconds: i64) -> String {
    let at = datetime(unix_seconds);
    format!(
        "{:04}-{:02}-{:02} {:02}:{:02}:{:02}Z",
        at.year(),
        u8::from(at.month()),
        at.day(),
        at.hour(),
        at.minute(),
        at.second()
    )
}

/// Formats a Unix time as Entra ID writes instants inside AADSTS700024 messages:
/// `2023-01-10T14:09:13.0000000Z`.
pub(crate) fn entra_instant(unix_seconds: i64) -> String {
    let at = datetime(unix_seconds);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.0000000Z",
        at.year(),
        u8::from(at.month()),
        at.day(),
        at.hour(),
        at.minute(),
        at.second()
    )
}

fn datetime(unix_seconds: i64) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp(unix_seconds).unwrap_or(OffsetDateTime::UNIX_EPOCH)
}

/// True for `xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx` with hex digits in either case.
pub(crate) fn is_guid(text: &str) -> bool {
    uuid::Uuid::try_parse(text).is_ok() && text.len() == 36
}

/// True for a DNS name of at least two labels, each of letters, digits and inner hyphens.
/// Entra ID accepts such names as tenant identifiers (verified domains).
pub(crate) fn is_dns_name(text: &str) -> bool {
    let labels: Vec<&str> = text.split('.').collect();
    labels.len() >= 2
        && text.len() <= 253
        && labels.iter().all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_use_entra_formats() {
        assert_eq!(entra_timestamp(1_683_352_980), "2023-05-06 06:03:00Z");
        assert_eq!(entra_instant(1_673_359_753), "2023-01-10T14:09:13.0000000Z");
    }

    #[test]
    fn guid_check_accepts_only_hyphenated_form() {
        assert!(is_guid("72f988bf-86f1-41af-91ab-2d7cd011db47"));
        assert!(is_guid("72F988BF-86F1-41AF-91AB-2D7CD011DB47"));
        assert!(!is_guid("72f988bf86f141af91ab2d7cd011db47"));
        assert!(!is_guid("not-a-guid"));
    }

    #[test]
    fn dns_name_check() {
        assert!(is_dns_name("contoso.onmicrosoft.com"));
        assert!(!is_dns_name("contoso"));
        assert!(!is_dns_name("bad_name.example"));
        assert!(!is_dns_name("-bad.example"));
    }

    #[test]
    fn version_ids_are_32_lowercase_hex() {
        let id = new_version_id();
        assert_eq!(id.len(), 32);
        assert!(id
            .chars()
            .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase()));
    }
}
