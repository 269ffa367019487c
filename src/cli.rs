//! Command-line flags. Each flag's variable is read from the merged environment (the
//! process environment plus env files) in `config`, so an env file can set it too.

use clap::{ArgAction, Parser};
use std::ffi::OsString;
use std::path::PathBuf;

#[derive(Debug, Parser)]
#[command(
    name = "kvexec",
    version,
    about = "Resolve Azure Key Vault references in the environment, then exec COMMAND",
    long_about = "Resolve Azure Key Vault references in the environment, then exec COMMAND.\n\n\
        A variable whose whole value is a reference, such as\n\
        DB_PASSWORD=https://my-vault.vault.azure.net/secrets/db-password, reaches COMMAND with \
        the secret's value. Every other variable passes through unchanged. If any reference \
        cannot be resolved, COMMAND does not start and kvexec exits 125.",
    override_usage = "kvexec [OPTIONS] [--] COMMAND [ARGS]...\n       kvexec --check [OPTIONS]",
    after_help = "Exit status: COMMAND's own; 125 when kvexec fails before exec; 126 when COMMAND \
        cannot be executed; 127 when COMMAND is not found. With --check: 0 when every reference \
        resolves, 1 when any fails, 125 on a usage or configuration error."
)]
pub struct Cli {
    /// Read variables from a dotenv file; later files override earlier ones and the
    /// inherited environment (repeatable)
    #[arg(long = "env-file", value_name = "PATH")]
    pub env_files: Vec<PathBuf>,

    /// Vault for akv:// references, e.g. https://my-vault.vault.azure.net
    /// [env: KVEXEC_DEFAULT_VAULT_URL]
    #[arg(long, value_name = "URL")]
    pub default_vault_url: Option<String>,

    /// Directory (tenant) ID [env: AZURE_TENANT_ID]
    #[arg(long, value_name = "ID")]
    pub tenant_id: Option<String>,

    /// Application (client) ID [env: AZURE_CLIENT_ID]
    #[arg(long, value_name = "ID")]
    pub client_id: Option<String>,

    /// Read the client secret from this file; one trailing newline is removed
    /// [env: KVEXEC_CLIENT_SECRET_FILE; or the secret itself in AZURE_CLIENT_SECRET]
    #[arg(long, value_name = "PATH")]
    pub client_secret_file: Option<PathBuf>,

    /// Pass AZURE_CLIENT_SECRET to COMMAND instead of removing it [env: KVEXEC_KEEP_CREDENTIALS]
    #[arg(long)]
    pub keep_credentials: bool,

    /// Connect to IP:PORT for HOST (or *.suffix) instead of using DNS; TLS still checks HOST
    /// (repeatable) [env: KVEXEC_RESOLVE, comma-separated]
    #[arg(long = "resolve", value_name = "HOST=IP:PORT")]
    pub resolve: Vec<String>,

    /// Deadline for all token requests and secret fetches, in seconds [default: 30]
    /// [env: KVEXEC_TIMEOUT]
    #[arg(long, value_name = "SECONDS")]
    pub timeout: Option<String>,

    /// Maximum requests in flight [default: all at once to a vault that speaks HTTP/2,
    /// paced by its stream limit, and 32 per vault over HTTP/1.1] [env: KVEXEC_CONCURRENCY]
    #[arg(long, value_name = "N")]
    pub concurrency: Option<String>,

    /// Log more to stderr: -v for debug, -vv for trace [env: KVEXEC_LOG, a tracing filter]
    #[arg(short, long, action = ArgAction::Count, conflicts_with = "quiet")]
    pub verbose: u8,

    /// Log only errors
    #[arg(short, long)]
    pub quiet: bool,

    /// Test the connection: resolve every reference without printing any value, then exit
    #[arg(long, conflicts_with = "command")]
    pub check: bool,

    /// With --check, print a JSON array instead of a table
    #[arg(long, requires = "check")]
    pub json: bool,

    /// The command to run, and its arguments (everything after COMMAND belongs to it)
    #[arg(
        value_name = "COMMAND",
        trailing_var_arg = true,
        allow_hyphen_values = true,
        required_unless_present = "check"
    )]
    pub command: Vec<OsString>,
}

/// What parsing produced: the flags, or an exit code after help, version or a usage error
/// was printed.
pub fn parse(args: impl IntoIterator<Item = OsString>) -> Result<Cli, i32> {
    match Cli::try_parse_from(args) {
        Ok(cli) => Ok(cli),
        Err(error) => {
            let code = if error.use_stderr() { crate::diagnose::EXIT_FAILURE } else { 0 };
            let _ = error.print();
            Err(code)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_ok(args: &[&str]) -> Cli {
        Cli::try_parse_from(args.iter().map(OsString::from)).unwrap()
    }

    #[test]
    fn options_after_command_belong_to_it() {
        let cli = parse_ok(&["kvexec", "-v", "dbt", "run", "--check", "-q"]);
        assert_eq!(cli.verbose, 1);
        assert!(!cli.check);
        assert_eq!(cli.command, ["dbt", "run", "--check", "-q"]);
    }

    #[test]
    fn double_dash_separates_command() {
        let cli = parse_ok(&["kvexec", "--", "--weird-name", "x"]);
        assert_eq!(cli.command, ["--weird-name", "x"]);
    }

    #[test]
    fn check_takes_no_command() {
        assert!(parse_ok(&["kvexec", "--check", "--json"]).check);
        assert!(Cli::try_parse_from(["kvexec", "--check", "true"]).is_err());
    }

    #[test]
    fn command_is_required_without_check() {
        assert!(Cli::try_parse_from(["kvexec"]).is_err());
    }
}
