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
    logging::init(cli.verbose, cli.quiet, env.get_str("KVEXEC_LOG"));
    // The environment may hold AZURE_CLIENT_SECRET already, and every later step adds secrets.
    let core_dumps = protect::CoreDumpGuard::engage();

    for path in &cli.env_files {
        if let Err(error) = env.load_env_file(path) {
            report(&error);
            return EXIT_FAILURE;
        }
    }
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
            eprintln!("kvexec: {}: {}", entry.variable.to_string_lossy(), entry.error);
        }
        eprintln!("kvexec: {} invalid reference(s); the command was not started", malformed.len());
        return EXIT_FAILURE;
    }

    // Find COMMAND before any secret is fetched, so a typo fails fast.
    let program = match exec::find_program(&command[0], env.get("PATH")) {
        Ok(program) => program,
        Err(error) => {
            report(&error);
            return error.exit_code();
        }
    };

    let mut values = Vec::with_capacity(planned.len());
    if !planned.is_empty() {
        let settings = FetchSettings {
            concurrency: config.concurrency,
            timeout: config.timeout,
        };
        let session = match Session::new(&config.transport, config.credential) {
            Ok(session) => session,
            Err(SetupError::Credential(error)) => {
                report(&diagnose::credential_error(&error));
                return EXIT_FAILURE;
            }
            Err(error) => {
                report(&error);
                return EXIT_FAILURE;
            }
        };
        let context = diagnose::Context {
            tenant_id: session.credential().tenant_id().map(str::to_string),
        };
        let mut failed = 0;
        // A failed credential fails every reference of its cloud the same way, so its long
        // explanation is printed once, after the per-reference lines.
        let mut credential_failures: Vec<String> = Vec::new();
        for (entry, result) in planned.iter().zip(session.resolve(&planned, settings)) {
            match result {
                Ok(resolved) => values.push((entry.index, resolved.value)),
                Err(Failure::Fetch(FetchError::Credential(error))) => {
                    failed += 1;
                    eprintln!(
                        "kvexec: {}: {}: no token, because the {} credential failed (see below)",
                        entry.variable.to_string_lossy(),
                        entry.reference,
                        error.selection.kind
                    );
                    let explanation = diagnose::credential_error(&error).to_string();
                    if !credential_failures.contains(&explanation) {
                        credential_failures.push(explanation);
                    }
                }
                Err(failure) => {
                    failed += 1;
                    let diagnosis = diagnose::failure(&failure, &entry.reference.secret, &context);
                    eprintln!(
                        "kvexec: {}: {}: {}",
                        entry.variable.to_string_lossy(),
                        entry.reference,
                        diagnosis
                    );
                }
            }
        }
        for explanation in &credential_failures {
            eprintln!("kvexec: {explanation}");
        }
        if failed > 0 {
            eprintln!(
                "kvexec: resolved {} of {} references, {failed} failed; the command was not started",
                planned.len() - failed,
                planned.len()
            );
            return EXIT_FAILURE;
        }
    }

    let remove: &[&str] = if config.keep_credentials { &[] } else { CREDENTIAL_VARIABLES };
    let child = match ChildEnvironment::build(env, values, remove) {
        Ok(child) => child,
        Err(errors) => {
            for error in &errors {
                report(error);
            }
            return EXIT_FAILURE;
        }
    };
    core_dumps.release_for_exec();
    let error = exec::exec(&program, command, child);
    report(&error);
    error.exit_code()
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

fn report(error: &dyn std::fmt::Display) {
    eprintln!("kvexec: {error}");
}
