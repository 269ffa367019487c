//! kvexec resolves Azure Key Vault references in its environment, then execs a command
//! with the plaintext values present only in the child's environment.
//!
//! The flow is one way: arguments and environment, configuration, references, fetching,
//! selection, the child's environment, execve. Failures are collected per variable and
//! reported together before anything starts.

pub mod check;
pub mod cli;
pub mod config;
pub mod credential;
pub mod diagnose;
pub mod environment;
pub mod exec;
pub mod logging;
mod pacer;
mod protect;
pub mod reference;
pub mod resolve;
pub mod select;
pub mod transport;
pub mod vault;

use config::{Config, Mode, CREDENTIAL_VARIABLES};
use diagnose::EXIT_FAILURE;
use environment::{ChildEnvironment, Environment};
use resolve::{FetchError, FetchSettings, Failure, Session, SetupError};
use std::ffi::OsString;
use std::io::Write;

/// Runs kvexec with `args` (argv, program name first) and the inherited environment.
/// Returns only when COMMAND was not started, with the exit status to use.
pub fn run(args: Vec<OsString>, mut env: Environment) -> i32 {
    let cli = match cli::parse(args) {
        Ok(cli) => cli,
        Err(code) => return code,
    };
    // These print text generated from the flag definitions and need no configuration.
    if let Some(shell) = cli.completions {
        return print_stdout(&cli::completion_script(shell), "the completion script");
    }
    if cli.man {
        return print_stdout(&cli::man_page(), "the man page");
    }
    // The environment may hold AZURE_CLIENT_SECRET already, and every later step adds secrets.
    let core_dumps = protect::CoreDumpGuard::engage();

    for path in &cli.env_files {
        if let Err(error) = env.load_env_file(path) {
            report(&error);
            return EXIT_FAILURE;
        }
    }
    // After the env files, so that one of them can set KVEXEC_LOG too.
    logging::init(cli.verbose, cli.quiet, env.get_str("KVEXEC_LOG"));
    let config = match Config::new(cli, &env) {
        Ok(config) => config,
        Err(error) => {
            report(&error);
            return EXIT_FAILURE;
        }
    };
    match config.mode {
        Mode::Check { .. } => check::run(config, &env),
        Mode::Run { .. } => run_command(config, &env, &core_dumps),
    }
}

fn run_command(config: Config, env: &Environment, core_dumps: &protect::CoreDumpGuard) -> i32 {
    let Mode::Run { command } = &config.mode else {
        unreachable!("run_command is only called in run mode")
    };

    let (planned, malformed) = resolve::plan(env, config.default_vault.as_ref());
    if !malformed.is_empty() {
        for entry in &malformed {
            report(&format!("{}: {}", entry.variable.to_string_lossy(), entry.error));
        }
        report(&format!("{} invalid reference(s); the command was not started", malformed.len()));
        return EXIT_FAILURE;
    }

    // Find COMMAND before any secret is fetched, so a typo fails fast. When PATH itself is
    // a reference, only the resolved PATH can be searched.
    let path_is_reference = planned.iter().any(|entry| entry.variable == "PATH");
    let early_program = if path_is_reference {
        None
    } else {
        match exec::find_program(&command[0], env.get("PATH")) {
            Ok(program) => Some(program),
            Err(error) => {
                report(&error);
                return error.exit_code();
            }
        }
    };

    let values = if planned.is_empty() {
        Vec::new()
    } else {
        let settings = FetchSettings {
            concurrency: config.concurrency,
            timeout: config.timeout,
        };
        match resolve_values(&planned, &config.transport, config.credential, settings) {
            Ok(values) => values,
            Err(code) => return code,
        }
    };

    let remove: &[&str] = if config.keep_credentials { &[] } else { CREDENTIAL_VARIABLES };
    let child = match ChildEnvironment::build(env, values, remove) {
        Ok(child) => child,
        Err(errors) => {
            for error in &errors {
                report(error);
            }
            report(&"the command was not started");
            return EXIT_FAILURE;
        }
    };
    let program = match early_program {
        Some(program) => program,
        None => match exec::find_program(&command[0], child.path()) {
            Ok(program) => program,
            Err(error) => {
                report(&error);
                return error.exit_code();
            }
        },
    };
    core_dumps.release_for_exec();
    let error = exec::exec(&program, command, child);
    report(&error);
    error.exit_code()
}

/// Resolves every planned reference. On any failure, prints one line per failed variable
/// and returns the exit status.
fn resolve_values(
    planned: &[resolve::Planned],
    transport: &transport::TransportOptions,
    credential: credential::CredentialSettings,
    settings: FetchSettings,
) -> Result<Vec<(usize, secrecy::SecretString)>, i32> {
    let session = match Session::new(transport, credential) {
        Ok(session) => session,
        Err(SetupError::Credential(error)) => {
            report(&diagnose::credential_error(&error));
            return Err(EXIT_FAILURE);
        }
        Err(error) => {
            report(&error);
            return Err(EXIT_FAILURE);
        }
    };
    let context = diagnose::Context {
        tenant_id: session.credential().tenant_id().map(str::to_string),
    };

    let mut values = Vec::with_capacity(planned.len());
    let mut failed = 0;
    // A failed credential fails every reference of its cloud the same way, so its long
    // explanation is printed once, after the per-reference lines.
    let mut credential_failures: Vec<String> = Vec::new();
    for (entry, result) in planned.iter().zip(session.resolve(planned, settings)) {
        let variable = entry.variable.to_string_lossy();
        match result {
            Ok(resolved) => values.push((entry.index, resolved.value)),
            Err(Failure::Fetch(FetchError::Credential(error))) => {
                failed += 1;
                let kind = &error.selection.kind;
                report(&format!("{variable}: {}: no token, because the {kind} credential failed (see below)", entry.reference));
                let explanation = diagnose::credential_error(&error).to_string();
                if !credential_failures.contains(&explanation) {
                    credential_failures.push(explanation);
                }
            }
            Err(failure) => {
                failed += 1;
                let diagnosis = diagnose::failure(&failure, &entry.reference.secret, &context);
                report(&format!("{variable}: {}: {diagnosis}", entry.reference));
            }
        }
    }
    for explanation in &credential_failures {
        report(explanation);
    }
    if failed > 0 {
        let resolved = planned.len() - failed;
        report(&format!(
            "resolved {resolved} of {} references, {failed} failed; the command was not started",
            planned.len()
        ));
        return Err(EXIT_FAILURE);
    }
    Ok(values)
}

/// Writes `bytes` to stdout and returns the exit status.
fn print_stdout(bytes: &[u8], what: &str) -> i32 {
    let mut stdout = std::io::stdout().lock();
    match stdout.write_all(bytes).and_then(|()| stdout.flush()) {
        Ok(()) => 0,
        Err(error) => {
            eprintln!("kvexec: writing {what} to stdout failed: {error}");
            EXIT_FAILURE
        }
    }
}

/// Prints one line to stderr, prefixed with `kvexec: `, with control characters escaped,
/// so that a variable name or a value meant as a reference cannot forge other lines.
fn report(message: &dyn std::fmt::Display) {
    eprintln!("kvexec: {}", diagnose::one_line(&message.to_string()));
}
