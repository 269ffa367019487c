//! Keeping the secrets in kvexec's memory out of core dumps and away from debuggers.
//!
//! From start to execve, kvexec's memory contains the client secret, access tokens and the
//! resolved values. [`CoreDumpGuard::engage`] sets the soft RLIMIT_CORE to 0 and, on Linux,
//! clears the dumpable attribute (`PR_SET_DUMPABLE` 0). Without the dumpable attribute the
//! kernel writes no core dump whatever the limit, and other processes of the same user can
//! no longer attach with ptrace or read kvexec's `/proc/PID/mem` and `/proc/PID/environ`.
//!
//! The command does not keep this state. execve sets the dumpable attribute back to 1 for
//! a program without set-user-ID bits or file capabilities (execve(2)), but resource limits
//! are inherited across execve. So [`CoreDumpGuard::release_for_exec`] restores the soft
//! core limit just before execve, and the command gets the limit kvexec was started with.
//! In between, the dumpable attribute is still 0, so no core dump can be written.

use nix::sys::resource::{getrlimit, setrlimit, Resource};

/// The core dump settings kvexec started with, restored for the command.
pub struct CoreDumpGuard {
    /// The soft core limit before [`engage`](CoreDumpGuard::engage); `None` when it was not
    /// changed.
    saved_soft_limit: Option<nix::libc::rlim_t>,
}

impl CoreDumpGuard {
    /// Disables core dumps for this process. A failure is logged and otherwise ignored,
    /// because kvexec works without this protection and sandboxes may forbid it.
    pub fn engage() -> CoreDumpGuard {
        let saved_soft_limit = match getrlimit(Resource::RLIMIT_CORE) {
            // Only the soft limit is lowered, so that it can be raised again for the command.
            Ok((soft, hard)) => match setrlimit(Resource::RLIMIT_CORE, 0, hard) {
                Ok(()) => Some(soft),
                Err(errno) => {
                    tracing::warn!(%errno, "setting the core file size limit to 0 failed; a crash could write secrets to a core file");
                    None
                }
            },
            Err(errno) => {
                tracing::warn!(%errno, "reading the core file size limit failed; a crash could write secrets to a core file");
                None
            }
        };

        #[cfg(any(target_os = "linux", target_os = "android"))]
        if let Err(errno) = nix::sys::prctl::set_dumpable(false) {
            tracing::warn!(%errno, "prctl(PR_SET_DUMPABLE, 0) failed; processes of the same user can attach to kvexec");
        }

        CoreDumpGuard { saved_soft_limit }
    }

    /// Restores the soft core limit for the command that execve is about to start.
    pub fn release_for_exec(&self) {
        let Some(soft) = self.saved_soft_limit else {
            return;
        };
        let restored = getrlimit(Resource::RLIMIT_CORE).and_then(|(_, hard)| setrlimit(Resource::RLIMIT_CORE, soft, hard));
        if let Err(errno) = restored {
            tracing::warn!(%errno, "restoring the core file size limit failed; the command runs with core dumps disabled");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // One test, because the steps change process-wide state in order.
    #[test]
    fn guard_disables_and_restores_core_dumps() {
        let (original_soft, hard) = getrlimit(Resource::RLIMIT_CORE).unwrap();
        let soft = if hard == 0 { 0 } else { hard.min(1 << 20) };
        setrlimit(Resource::RLIMIT_CORE, soft, hard).unwrap();

        let guard = CoreDumpGuard::engage();
        assert_eq!(getrlimit(Resource::RLIMIT_CORE).unwrap(), (0, hard));
        #[cfg(target_os = "linux")]
        assert!(!nix::sys::prctl::get_dumpable().unwrap());

        guard.release_for_exec();
        assert_eq!(getrlimit(Resource::RLIMIT_CORE).unwrap(), (soft, hard));
        // Only execve makes the process dumpable again.
        #[cfg(target_os = "linux")]
        assert!(!nix::sys::prctl::get_dumpable().unwrap());

        setrlimit(Resource::RLIMIT_CORE, original_soft, hard).unwrap();
        #[cfg(target_os = "linux")]
        nix::sys::prctl::set_dumpable(true).unwrap();
    }
}
