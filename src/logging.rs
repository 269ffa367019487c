//! Logging to stderr through `tracing`. Quiet by default: warnings and errors only.

use tracing_subscriber::EnvFilter;

/// Installs the subscriber. KVEXEC_LOG (a tracing filter such as `kvexec=debug`) wins over
/// `-v` (debug), `-vv` (trace) and `-q` (errors only).
pub fn init(verbose: u8, quiet: bool, filter: Option<&str>) {
    let default = match (quiet, verbose) {
        (true, _) => "error",
        (false, 0) => "warn",
        (false, 1) => "warn,kvexec=debug",
        (false, _) => "info,kvexec=trace",
    };
    let filter = filter
        .and_then(|text| EnvFilter::try_new(text).ok())
        .unwrap_or_else(|| EnvFilter::new(default));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_target(false)
        .try_init();
}
