//! The environment as read (process environment plus env files) and the child's
//! environment as built. Names and values stay `OsString`; nothing is re-encoded.

use secrecy::SecretString;
use std::ffi::{OsStr, OsString};
use std::path::{Path, PathBuf};

/// Variables in their original order; a later assignment of a name replaces the value in place.
#[derive(Debug, Default, Clone)]
pub struct Environment {
    vars: Vec<(OsString, OsString)>,
}

impl Environment {
    pub fn new(vars: Vec<(OsString, OsString)>) -> Self {
        Environment { vars }
    }

    /// Reads the process environment with `vars_os`, which keeps non-UTF-8 bytes.
    pub fn from_process() -> Self {
        Environment::new(std::env::vars_os().collect())
    }

    /// Applies one dotenv file: its variables override inherited ones and earlier files.
    pub fn load_env_file(&mut self, path: &Path) -> Result<(), EnvFileError> {
        todo!("{path:?}")
    }

    pub fn get(&self, name: &str) -> Option<&OsStr> {
        todo!("{name}")
    }

    /// The value of `name` when it is set and valid UTF-8.
    pub fn get_str(&self, name: &str) -> Option<&str> {
        self.get(name).and_then(OsStr::to_str)
    }

    pub fn vars(&self) -> &[(OsString, OsString)] {
        &self.vars
    }
}

/// An env file that could not be read or parsed.
#[derive(Debug, thiserror::Error)]
pub enum EnvFileError {
    #[error("todo {0:?}")]
    Todo(PathBuf),
}

/// The child's environment: `NAME=VALUE` byte strings in the original order.
pub struct ChildEnvironment {
    // TODO: entries, zeroized on drop
}

impl ChildEnvironment {
    /// Builds the child environment: resolved values replace the variables at the given
    /// indexes of `env.vars()`, and variables named in `remove` are left out.
    pub fn build(
        env: &Environment,
        values: Vec<(usize, SecretString)>,
        remove: &[&str],
    ) -> Result<ChildEnvironment, Vec<ChildEnvironmentError>> {
        todo!("{env:?} {} {remove:?}", values.len())
    }

    /// The child's PATH, used to find the command.
    pub fn path(&self) -> Option<&OsStr> {
        todo!()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ChildEnvironmentError {
    #[error("todo")]
    Todo,
}
