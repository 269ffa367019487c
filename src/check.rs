//! The `--check` report: one row per reference, as a table or JSON, without any value.

use crate::config::Config;
use crate::environment::Environment;

/// Runs the check and returns the exit status.
pub fn run(config: Config, env: &Environment) -> i32 {
    let _ = (config, env);
    eprintln!("kvexec: --check is not implemented yet");
    crate::diagnose::EXIT_FAILURE
}
