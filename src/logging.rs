//! Logging to stderr through `tracing`. Quiet by default: warnings and errors only.

use tracing_subscriber::EnvFilter;

/// Installs the subscriber. `-q` (errors only), `-v` (debug) and `-vv` (trace) win over
/// KVEXEC_LOG, a tracing filter such as `kvexec=debug`; without either, warnings and errors
/// are logged. An invalid KVEXEC_LOG is reported and replaced by the default.
pub fn init(verbose: u8, quiet: bool, filter: Option<&str>) {
    let from_flags = match (quiet, verbose) {
        (true, _) => Some("error"),
        (false, 0) => None,
        (false, 1) => Some("warn,kvexec=debug"),
        (false, _) => Some("info,kvexec=trace"),
    };
    let mut invalid = None;
    let filter = match (from_flags, filter) {
        (Some(directives), _) => EnvFilter::new(directives),
        (None, Some(text)) => EnvFilter::try_new(text).unwrap_or_else(|error| {
            invalid = Some((text.to_string(), error));
            EnvFilter::new("warn")
        }),
        (None, None) => EnvFilter::new("warn"),
    };
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_target(false)
        .try_init();
    if let Some((text, error)) = invalid {
        tracing::warn!("invalid KVEXEC_LOG '{text}' ({error}); logging warnings and errors only");
    }
}
