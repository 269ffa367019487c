//! Running COMMAND: PATH lookup, the child's signal state, execve, exit codes 126 and 127.

use crate::environment::ChildEnvironment;
use std::ffi::{OsStr, OsString};
use std::path::{Path, PathBuf};

/// Finds COMMAND the way execvp does: a name with a slash is used as is, otherwise each
/// PATH entry is tried in order.
pub fn find_program(command: &OsStr, path: Option<&OsStr>) -> Result<PathBuf, ExecError> {
    todo!("{command:?} {path:?}")
}

/// Replaces this process with `program`. Returns only on failure.
pub fn exec(program: &Path, args: &[OsString], env: ChildEnvironment) -> ExecError {
    todo!("{program:?} {args:?} {}", env.path().is_some())
}

#[derive(Debug, thiserror::Error)]
pub enum ExecError {
    #[error("todo")]
    Todo,
}

impl ExecError {
    /// 127 when the command was not found, 126 when it was found but could not run.
    pub fn exit_code(&self) -> i32 {
        todo!()
    }
}
