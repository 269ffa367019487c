//! Running `az` for `azure_identity`'s `AzureCliCredential`, and reading its failures.

use super::error::{first_line, CredentialFailure};
use azure_identity::Executor;
use std::ffi::OsStr;
use std::io;
use std::process::{Output, Stdio};
use tokio::io::AsyncReadExt;

/// Maximum length of az's error output kept in a message, in characters.
const MAX_MESSAGE_CHARS: usize = 300;

/// Runs the command like `azure_identity`'s own tokio executor, but in its own process
/// group, which is killed when the run's deadline drops the request. The credential runs
/// `/bin/sh -c "cd /bin && az …"`, so killing only the shell would leave `az` running.
#[derive(Debug)]
pub struct GroupKillingExecutor;

#[async_trait::async_trait]
impl Executor for GroupKillingExecutor {
    async fn run(&self, program: &OsStr, args: &[&OsStr]) -> io::Result<Output> {
        let mut child = tokio::process::Command::new(program)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0)
            .kill_on_drop(true)
            .spawn()?;
        let mut stdout_pipe = child.stdout.take().expect("stdout is piped");
        let mut stderr_pipe = child.stderr.take().expect("stderr is piped");
        let mut group = ProcessGroup {
            id: child.id().and_then(|id| i32::try_from(id).ok()),
            child,
            finished: false,
        };

        let mut stdout = Vec::new();
        let mut stderr = Vec::new();
        let (status, _, _) = tokio::try_join!(
            group.child.wait(),
            stdout_pipe.read_to_end(&mut stdout),
            stderr_pipe.read_to_end(&mut stderr)
        )?;
        group.finished = true;
        Ok(Output { status, stdout, stderr })
    }
}

/// A child that leads its own process group, and the group is killed on drop unless the
/// child finished and closed its output.
struct ProcessGroup {
    child: tokio::process::Child,
    /// The process group id, which is the child's pid.
    id: Option<i32>,
    finished: bool,
}

impl Drop for ProcessGroup {
    fn drop(&mut self) {
        if self.finished {
            return;
        }
        // The id still names this group: it stays reserved while the child is unreaped or
        // any other member of the group runs.
        if let Some(id) = self.id {
            let _ = nix::sys::signal::killpg(nix::unistd::Pid::from_raw(id), nix::sys::signal::Signal::SIGKILL);
        }
    }
}

/// Reads an `AzureCliCredential` failure. The credential puts az's error output in its
/// message, or "az not found on PATH" when the shell exits with 127.
pub fn classify(error: &azure_core::Error) -> CredentialFailure {
    let text = error.to_string();
    if text.contains("az not found on PATH") {
        return CredentialFailure::AzureCliNotFound;
    }
    let message = error_message(&text);
    if text.contains("az login") {
        return CredentialFailure::AzureCliNotLoggedIn { message };
    }
    CredentialFailure::AzureCliFailed { message }
}

/// Returns the most useful line of az's error output: the first `ERROR:` line, else the first
/// line, shortened.
fn error_message(stderr: &str) -> String {
    let line = stderr
        .lines()
        .map(str::trim)
        .find(|line| line.starts_with("ERROR:"))
        .map(str::to_string)
        .unwrap_or_else(|| first_line(stderr));
    let line = line.strip_prefix("AzureCliCredential authentication failed.").unwrap_or(&line).trim();
    if line.chars().count() > MAX_MESSAGE_CHARS {
        let shortened: String = line.chars().take(MAX_MESSAGE_CHARS).collect();
        format!("{shortened}…")
    } else {
        line.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_message_prefers_the_error_line() {
        let stderr = "WARNING: A new version is available\nERROR: Please run 'az login' to setup account.\n";
        assert_eq!(error_message(stderr), "ERROR: Please run 'az login' to setup account.");
    }

    #[test]
    fn error_message_is_shortened() {
        let long = "x".repeat(1000);
        assert_eq!(error_message(&long).chars().count(), MAX_MESSAGE_CHARS + 1);
    }
}
