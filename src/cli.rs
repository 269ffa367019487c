//! Command-line flags. Each flag's variable is read from the merged environment (the
//! process environment plus env files) in `config`, so an env file can set it too.

use clap::{ArgAction, CommandFactory, Parser};
use clap_complete::Shell;
use std::ffi::OsString;
use std::path::PathBuf;

#[derive(Debug, Parser)]
#[command(
    name = "kvexec",
    version = VERSION,
    about = "Resolve Azure Key Vault references in the environment, then exec COMMAND",
    long_about = "Resolve Azure Key Vault references in the environment, then exec COMMAND.\n\n\
        A variable whose whole value is a reference, such as\n\
        DB_PASSWORD=https://my-vault.vault.azure.net/secrets/db-password, reaches COMMAND with \
        the secret's value. Every other variable passes through unchanged. If any reference \
        cannot be resolved, COMMAND does not start and kvexec exits 125.",
    override_usage = "kvexec [OPTIONS] [--] COMMAND [ARGS]...\n       kvexec --check [OPTIONS]\n       \
        kvexec --completions SHELL | --man",
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

    /// How to sign in to Entra ID: auto, client-secret, client-certificate,
    /// workload-identity, managed-identity or azure-cli [default: auto]
    /// [env: KVEXEC_CREDENTIAL]
    #[arg(long, value_name = "NAME")]
    pub credential: Option<String>,

    /// Directory (tenant) ID [env: AZURE_TENANT_ID]
    #[arg(long, value_name = "ID")]
    pub tenant_id: Option<String>,

    /// Application (client) ID; with managed identity, the user-assigned identity's client
    /// ID [env: AZURE_CLIENT_ID]
    #[arg(long, value_name = "ID")]
    pub client_id: Option<String>,

    /// Read the client secret from this file; one trailing newline is removed
    /// [env: KVEXEC_CLIENT_SECRET_FILE; or the secret itself in AZURE_CLIENT_SECRET]
    #[arg(long, value_name = "PATH")]
    pub client_secret_file: Option<PathBuf>,

    /// Pass AZURE_CLIENT_SECRET and AZURE_CLIENT_CERTIFICATE_PASSWORD to COMMAND instead of
    /// removing them [env: KVEXEC_KEEP_CREDENTIALS]
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

    /// Maximum requests in flight over all vaults [default: per vault, a window that starts
    /// at 8 and grows to 100 per HTTP/2 connection, or to 32 over HTTP/1.1]
    /// [env: KVEXEC_CONCURRENCY]
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
    // `requires` alone is not enforced when a COMMAND is given, because clap skips the
    // requirement of an argument (--check) that conflicts with one present (COMMAND).
    #[arg(long, requires = "check", conflicts_with = "command")]
    pub json: bool,

    /// Print a completion script for SHELL to stdout, then exit
    #[arg(long, value_name = "SHELL", exclusive = true)]
    pub completions: Option<Shell>,

    /// Print the man page (roff) to stdout, then exit
    #[arg(long, exclusive = true)]
    pub man: bool,

    /// The command to run, and its arguments (everything after COMMAND belongs to it)
    #[arg(
        value_name = "COMMAND",
        trailing_var_arg = true,
        allow_hyphen_values = true,
        required_unless_present_any = ["check", "completions", "man"]
    )]
    pub command: Vec<OsString>,
}

/// The version line: the crate version and, when the build could find it, the git commit
/// (set by build.rs).
const VERSION: &str = env!("KVEXEC_VERSION");

/// Generates the completion script for `shell` from the flag definitions above.
pub fn completion_script(shell: Shell) -> Vec<u8> {
    // Generated into memory because clap_complete panics when its writer fails.
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut Cli::command(), "kvexec", &mut script);
    script
}

/// Generates the man page, in roff, from the flag definitions above.
pub fn man_page() -> Vec<u8> {
    let mut page = Vec::new();
    clap_mangen::Man::new(Cli::command())
        .render(&mut page)
        .expect("writing to a Vec cannot fail");
    // clap_mangen puts the text after the options under EXTRA. That text lists the exit
    // codes, and man pages call that section EXIT STATUS.
    String::from_utf8(page)
        .expect("clap_mangen renders UTF-8 from UTF-8 help text")
        .replacen("\n.SH EXTRA\n", "\n.SH \"EXIT STATUS\"\n", 1)
        .into_bytes()
}

/// Parses argv. On help, version or a usage error, prints it and returns the exit status.
pub fn parse(args: impl IntoIterator<Item = OsString>) -> Result<Cli, i32> {
    let args: Vec<OsString> = args.into_iter().collect();
    match Cli::try_parse_from(&args) {
        Ok(cli) => {
            // COMMAND accepts leading hyphens so that its own options pass through, which
            // also turns a misspelt kvexec option into COMMAND; without `--` it is a typo.
            let explicit = args.iter().any(|arg| arg == "--");
            match cli.command.first().and_then(|first| first.to_str()) {
                Some(first) if first.starts_with('-') && !explicit => {
                    eprintln!(
                        "error: unexpected argument '{first}'; see 'kvexec --help' for the options, \
                         or put '--' before a COMMAND whose name starts with '-'"
                    );
                    Err(crate::diagnose::EXIT_FAILURE)
                }
                _ => Ok(cli),
            }
        }
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
    fn misspelt_option_is_rejected() {
        assert!(parse(["kvexec", "--tmeout", "5", "true"].map(OsString::from)).is_err());
        let cli = parse(["kvexec", "--", "-weird", "x"].map(OsString::from)).unwrap();
        assert_eq!(cli.command, ["-weird", "x"]);
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
    fn json_needs_check_even_with_command() {
        assert!(Cli::try_parse_from(["kvexec", "--json", "true"]).is_err());
        assert!(Cli::try_parse_from(["kvexec", "--json"]).is_err());
    }

    #[test]
    fn command_is_required_without_check() {
        assert!(Cli::try_parse_from(["kvexec"]).is_err());
    }

    #[test]
    fn completions_and_man_take_no_command() {
        assert_eq!(parse_ok(&["kvexec", "--completions", "zsh"]).completions, Some(Shell::Zsh));
        assert!(parse_ok(&["kvexec", "--man"]).man);
        assert!(Cli::try_parse_from(["kvexec", "--completions", "bash", "true"]).is_err());
        assert!(Cli::try_parse_from(["kvexec", "--man", "--check"]).is_err());
        assert!(Cli::try_parse_from(["kvexec", "--completions", "tcsh"]).is_err());
    }

    #[test]
    fn generation_flags_after_command_belong_to_it() {
        let cli = parse_ok(&["kvexec", "dbt", "--man", "--completions", "bash"]);
        assert!(!cli.man);
        assert_eq!(cli.completions, None);
        assert_eq!(cli.command, ["dbt", "--man", "--completions", "bash"]);
    }
}
