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
use resolve::{FetchSettings, Session};
use std::ffi::OsString;

/// Runs kvexec with `args` (argv, program name first) and the inherited environment.
/// Returns only when COMMAND was not started, with the exit status to use.
pub fn run(args: Vec<OsString>, mut env: Environment) -> i32 {
    let cli = match cli::parse(args) {
        Ok(cli) => cli,
        Err(code) => return code,
    };
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
            Err(error) => {
                report(&error);
                return EXIT_FAILURE;
            }
        };
        let context = diagnose::Context {
            tenant_id: session.credential().tenant_id().map(str::to_string),
        };
        let mut failed = 0;
        for (entry, result) in planned.iter().zip(session.resolve(&planned, settings)) {
            match result {
                Ok(resolved) => values.push((entry.index, resolved.value)),
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

fn report(error: &dyn std::fmt::Display) {
    eprintln!("kvexec: {error}");
}
