//! Running COMMAND: PATH lookup, the child's signal state, execve, exit codes 126 and 127.

use crate::environment::ChildEnvironment;
use nix::errno::Errno;
use nix::sys::signal::{self, SaFlags, SigAction, SigHandler, SigSet, SigmaskHow, Signal};
use nix::unistd::{self, AccessFlags};
use std::ffi::{CStr, CString, OsStr, OsString};
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

/// The search path that glibc's execvp uses when PATH is not set (its CS_PATH).
pub const DEFAULT_PATH: &str = "/bin:/usr/bin";

/// The shell that runs a file without `#!`, as execvp does.
const SHELL: &CStr = c"/bin/sh";

/// Linux rejects any single argument or `NAME=VALUE` string longer than 32 pages
/// (MAX_ARG_STRLEN). NOTE: this assumes 4 KiB pages, as on x86-64.
pub const MAX_ARG_STRLEN: usize = 32 * 4096;

/// Finds COMMAND the way execvp does: a name with a slash is used as is, otherwise each
/// PATH entry is tried in order, an empty entry meaning the current directory. Without a
/// PATH, [`DEFAULT_PATH`] is searched.
///
/// A candidate that exists but is not an executable regular file is skipped, and the first
/// one is reported when no later entry has an executable. Only existence and execute
/// permission are checked: nothing is run or opened.
pub fn find_program(command: &OsStr, path: Option<&OsStr>) -> Result<PathBuf, ExecError> {
    if command.is_empty() || command.as_bytes().contains(&b'/') {
        let program = PathBuf::from(command);
        return match check_candidate(&program) {
            Candidate::Executable => Ok(program),
            Candidate::Missing => Err(ExecError::NotFound {
                command: command.to_owned(),
                searched: Searched::AsGiven,
            }),
            Candidate::NotExecutable(reason) => Err(ExecError::NotExecutable {
                command: command.to_owned(),
                program,
                reason,
            }),
        };
    }

    let search_path = path.unwrap_or(OsStr::new(DEFAULT_PATH));
    let mut first_rejected = None;
    for directory in search_path.as_bytes().split(|&byte| byte == b':') {
        let directory = if directory.is_empty() {
            Path::new(".")
        } else {
            Path::new(OsStr::from_bytes(directory))
        };
        let candidate = directory.join(command);
        match check_candidate(&candidate) {
            Candidate::Executable => return Ok(candidate),
            Candidate::Missing => {}
            Candidate::NotExecutable(reason) => {
                first_rejected.get_or_insert((candidate, reason));
            }
        }
    }

    match first_rejected {
        Some((program, reason)) => Err(ExecError::NotExecutable {
            command: command.to_owned(),
            program,
            reason,
        }),
        None => Err(ExecError::NotFound {
            command: command.to_owned(),
            searched: match path {
                Some(path) => Searched::Path(path.to_owned()),
                None => Searched::DefaultPath,
            },
        }),
    }
}

enum Candidate {
    Executable,
    Missing,
    NotExecutable(NotExecutableReason),
}

fn check_candidate(path: &Path) -> Candidate {
    let metadata = match std::fs::metadata(path) {
        Ok(metadata) => metadata,
        Err(error) if error.kind() == io::ErrorKind::PermissionDenied => {
            return Candidate::NotExecutable(NotExecutableReason::LookupDenied);
        }
        // Missing, a file where a directory was expected, a symlink loop, a name too long:
        // execvp moves on to the next PATH entry for the first two, and nothing here can
        // run in any of these cases.
        Err(_) => return Candidate::Missing,
    };

    if metadata.is_dir() {
        return Candidate::NotExecutable(NotExecutableReason::Directory);
    }
    if !metadata.is_file() {
        return Candidate::NotExecutable(NotExecutableReason::NotRegularFile);
    }
    match unistd::access(path, AccessFlags::X_OK) {
        Ok(()) => Candidate::Executable,
        Err(_) => Candidate::NotExecutable(NotExecutableReason::NoExecutePermission),
    }
}

/// Replaces this process with `program`. Returns only on failure.
///
/// `args[0]` is the child's argv[0], normally COMMAND as the user typed it; with empty
/// `args` the program path is used. The child starts with SIGPIPE at its default
/// disposition and no blocked signals. A file that execve rejects as not executable
/// (ENOEXEC, a script without `#!`) runs as `/bin/sh program args[1..]`, as execvp does.
pub fn exec(program: &Path, args: &[OsString], env: ChildEnvironment) -> ExecError {
    let Ok(program_c) = CString::new(program.as_os_str().as_bytes()) else {
        return ExecError::ContainsNul {
            program: program.to_owned(),
        };
    };
    let mut argv = Vec::with_capacity(args.len().max(1));
    for arg in args {
        match CString::new(arg.as_bytes()) {
            Ok(arg) => argv.push(arg),
            Err(_) => {
                return ExecError::ContainsNul {
                    program: program.to_owned(),
                }
            }
        }
    }
    if argv.is_empty() {
        argv.push(program_c.clone());
    }
    let envp = env.as_c_strs();

    let saved_signals = match ChildSignalState::apply() {
        Ok(saved) => saved,
        Err(errno) => {
            return ExecError::Failed {
                program: program.to_owned(),
                errno,
            }
        }
    };

    let errno = execve_error(&program_c, &argv, &envp);
    let error = if errno == Errno::ENOEXEC {
        let mut shell_argv = Vec::with_capacity(argv.len() + 1);
        shell_argv.push(SHELL.to_owned());
        shell_argv.push(program_c.clone());
        shell_argv.extend(argv[1..].iter().cloned());
        match execve_error(SHELL, &shell_argv, &envp) {
            Errno::E2BIG => too_large(program, &shell_argv, &env),
            errno => ExecError::ShellFailed {
                script: program.to_owned(),
                errno,
            },
        }
    } else if errno == Errno::E2BIG {
        too_large(program, &argv, &env)
    } else {
        ExecError::Failed {
            program: program.to_owned(),
            errno,
        }
    };

    // kvexec prints the error next. With SIGPIPE at its default disposition, a closed
    // stderr pipe would kill it before it could exit with 126.
    saved_signals.restore();
    error
}

fn execve_error(program: &CStr, argv: &[CString], envp: &[&CStr]) -> Errno {
    match unistd::execve(program, argv, envp) {
        Ok(never) => match never {},
        Err(errno) => errno,
    }
}

/// The signal state kvexec had before [`ChildSignalState::apply`] set the child's.
///
/// Only SIGPIPE is reset: the Rust runtime sets it to ignored at startup, and execve keeps
/// ignored signals (handlers are reset to the default by execve itself). Other ignored
/// signals come from the process that started kvexec, for example SIGHUP under nohup,
/// and pass on to the child, as with execvp. Rust's `std::process::Command` also resets
/// SIGPIPE in its children.
struct ChildSignalState {
    sigpipe: SigAction,
    mask: SigSet,
}

impl ChildSignalState {
    /// Sets SIGPIPE to its default disposition and unblocks every signal.
    fn apply() -> Result<ChildSignalState, Errno> {
        let default = SigAction::new(SigHandler::SigDfl, SaFlags::empty(), SigSet::empty());
        let sigpipe = replace_sigaction(Signal::SIGPIPE, &default)?;

        // execve keeps the calling thread's mask, so the calling thread's is the one to clear.
        let mut mask = SigSet::empty();
        if let Err(errno) = signal::pthread_sigmask(
            SigmaskHow::SIG_SETMASK,
            Some(&SigSet::empty()),
            Some(&mut mask),
        ) {
            let _ = replace_sigaction(Signal::SIGPIPE, &sigpipe);
            return Err(errno);
        }
        Ok(ChildSignalState { sigpipe, mask })
    }

    /// Puts back the state from before `apply`.
    fn restore(self) {
        // Both calls only fail for invalid arguments, which these values, just returned by
        // the same calls, are not.
        let _ = signal::pthread_sigmask(SigmaskHow::SIG_SETMASK, Some(&self.mask), None);
        let _ = replace_sigaction(Signal::SIGPIPE, &self.sigpipe);
    }
}

/// Installs `action` for `signal` and returns the previous action.
#[allow(unsafe_code)]
fn replace_sigaction(signal: Signal, action: &SigAction) -> Result<SigAction, Errno> {
    // SAFETY: nix marks sigaction unsafe because an installed handler must be
    // async-signal-safe and because a previous handler's function pointer may come from
    // foreign code. The only actions installed here are SIG_DFL, which runs no code, and
    // the exact action that `sigaction` returned for this signal earlier, which the
    // process had already installed, so no new handler code can run.
    unsafe { signal::sigaction(signal, action) }
}

fn too_large(program: &Path, argv: &[CString], env: &ChildEnvironment) -> ExecError {
    let argv_bytes = argv.iter().map(|arg| arg.as_bytes_with_nul().len()).sum();
    let env_bytes = env.size_bytes();
    let string_count = argv.len() + env.len();

    let largest_arg = argv
        .iter()
        .enumerate()
        .map(|(index, arg)| (index, arg.as_bytes_with_nul().len()))
        .max_by_key(|&(_, bytes)| bytes);
    let oversized = match (env.largest_entry(), largest_arg) {
        (Some((name, bytes)), _) if bytes > MAX_ARG_STRLEN => Some(OversizedString::Variable {
            name: name.to_owned(),
            bytes,
        }),
        (_, Some((index, bytes))) if bytes > MAX_ARG_STRLEN => {
            Some(OversizedString::Argument { index, bytes })
        }
        _ => None,
    };

    ExecError::TooLarge {
        program: program.to_owned(),
        argv_bytes,
        env_bytes,
        env_count: env.len(),
        limit: exec_size_limit(string_count),
        oversized,
    }
}

/// Returns the bytes of argument and environment strings that execve accepts, as Linux
/// computes it in fs/exec.c. That is a quarter of the stack size limit, at most 6 MiB
/// (3/4 of the 8 MiB default stack) and at least 32 pages, minus one pointer per string.
/// `getconf ARG_MAX` shows the quarter of the stack limit without the cap. The formula is
/// written out here because the nix features in use do not include sysconf.
#[cfg(target_os = "linux")]
fn exec_size_limit(string_count: usize) -> Option<u64> {
    use nix::sys::resource::{getrlimit, Resource};

    const DEFAULT_STACK_LIMIT: u64 = 8 * 1024 * 1024;
    let (stack_limit, _) = getrlimit(Resource::RLIMIT_STACK).ok()?;
    let limit = (DEFAULT_STACK_LIMIT / 4 * 3)
        .min(stack_limit / 4)
        .max(MAX_ARG_STRLEN as u64);
    let pointers = string_count as u64 * std::mem::size_of::<usize>() as u64;
    Some(limit.saturating_sub(pointers))
}

#[cfg(not(target_os = "linux"))]
fn exec_size_limit(_string_count: usize) -> Option<u64> {
    None
}

/// The places [`find_program`] searched for a command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Searched {
    /// The command contains a slash (or is empty), so it was used as a path.
    AsGiven,
    /// Each entry of the child's PATH, which has this value.
    Path(OsString),
    /// [`DEFAULT_PATH`], because the child has no PATH.
    DefaultPath,
}

/// The reason a file that exists cannot be executed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NotExecutableReason {
    Directory,
    NotRegularFile,
    NoExecutePermission,
    /// Looking up the file failed with EACCES: a directory on its path is not searchable.
    LookupDenied,
}

/// A single string longer than Linux accepts for one argument or variable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OversizedString {
    Variable { name: OsString, bytes: usize },
    Argument { index: usize, bytes: usize },
}

/// COMMAND could not be found or started. Each message is one line.
#[derive(Debug, thiserror::Error)]
pub enum ExecError {
    #[error("{}", not_found_message(.command, .searched))]
    NotFound {
        command: OsString,
        searched: Searched,
    },

    #[error(
        "command {} found at {} but it cannot be executed: {}",
        shown(.command),
        shown(.program.as_os_str()),
        not_executable_hint(*.reason)
    )]
    NotExecutable {
        command: OsString,
        program: PathBuf,
        reason: NotExecutableReason,
    },

    #[error(
        "cannot execute {}: the arguments and environment are too large for execve (E2BIG): \
         arguments {argv_bytes} bytes, environment {env_bytes} bytes in {}, {}; {}move large values into files and pass their paths instead",
        shown(.program.as_os_str()),
        variable_count_text(*.env_count),
        limit_text(*.limit),
        oversized_text(.oversized.as_ref())
    )]
    TooLarge {
        program: PathBuf,
        argv_bytes: usize,
        env_bytes: usize,
        env_count: usize,
        /// The limit on both together, when known for this system.
        limit: Option<u64>,
        oversized: Option<OversizedString>,
    },

    #[error(
        "cannot execute {}: {errno}; {}",
        shown(.program.as_os_str()),
        failure_hint(*.errno)
    )]
    Failed { program: PathBuf, errno: Errno },

    #[error(
        "cannot run {} with /bin/sh (it has no #! line): {errno}; install /bin/sh or add a #! \
         line naming the interpreter",
        shown(.script.as_os_str())
    )]
    ShellFailed { script: PathBuf, errno: Errno },

    #[error(
        "cannot execute {}: the program path or an argument contains a NUL byte, which execve \
         cannot pass; remove it",
        shown(.program.as_os_str())
    )]
    ContainsNul { program: PathBuf },
}

impl ExecError {
    /// 127 when the command was not found, 126 when it was found but could not run.
    pub fn exit_code(&self) -> i32 {
        match self {
            ExecError::NotFound { .. } => 127,
            ExecError::NotExecutable { .. }
            | ExecError::TooLarge { .. }
            | ExecError::Failed { .. }
            | ExecError::ShellFailed { .. }
            | ExecError::ContainsNul { .. } => 126,
        }
    }
}

/// Text for a one-line message: lossy UTF-8 with control characters escaped.
fn shown(text: &OsStr) -> String {
    crate::diagnose::one_line(&text.to_string_lossy())
}

fn not_found_message(command: &OsStr, searched: &Searched) -> String {
    let command = shown(command);
    match searched {
        Searched::AsGiven if command.is_empty() => {
            "the command is empty; give the command to run after the options".to_string()
        }
        Searched::AsGiven => {
            format!("command {command} not found: no such file; check the path")
        }
        Searched::Path(path) => format!(
            "command {command} not found in PATH ({}); install it, add its directory to PATH, \
             or give its path",
            shown(path)
        ),
        Searched::DefaultPath => format!(
            "command {command} not found in {DEFAULT_PATH}, searched because PATH is not set; \
             set PATH or give the command's path"
        ),
    }
}

fn not_executable_hint(reason: NotExecutableReason) -> &'static str {
    match reason {
        NotExecutableReason::Directory => {
            "it is a directory; give the path of a program, or fix PATH"
        }
        NotExecutableReason::NotRegularFile => {
            "it is not a regular file; give the path of a program, or fix PATH"
        }
        NotExecutableReason::NoExecutePermission => {
            "it has no execute permission; make it executable (chmod +x) or fix PATH"
        }
        NotExecutableReason::LookupDenied => {
            "permission denied while looking it up; check the permissions of its directories"
        }
    }
}

fn variable_count_text(count: usize) -> String {
    match count {
        1 => "1 variable".to_string(),
        count => format!("{count} variables"),
    }
}

fn limit_text(limit: Option<u64>) -> String {
    match limit {
        Some(limit) => format!("limit about {limit} bytes for both together"),
        None => "limit unknown on this system".to_string(),
    }
}

fn oversized_text(oversized: Option<&OversizedString>) -> String {
    match oversized {
        Some(OversizedString::Variable { name, bytes }) => format!(
            "variable {} alone is {bytes} bytes, over the Linux limit of {MAX_ARG_STRLEN} bytes \
             for one string; ",
            shown(name)
        ),
        Some(OversizedString::Argument { index, bytes }) => format!(
            "argument {index} alone is {bytes} bytes, over the Linux limit of {MAX_ARG_STRLEN} \
             bytes for one string; "
        ),
        None => String::new(),
    }
}

fn failure_hint(errno: Errno) -> &'static str {
    match errno {
        Errno::ENOENT => {
            "the interpreter on its #! line or its dynamic loader was not found; check the \
             first line of the script, or install the missing loader"
        }
        Errno::EACCES => {
            "check its execute permission and that its file system is not mounted noexec"
        }
        Errno::ETXTBSY => "another process has it open for writing; wait until it is written",
        Errno::ENOMEM => "not enough memory; free memory or raise the limits and try again",
        _ => "check that it is a program for this system",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;
    use std::os::unix::fs::{symlink, PermissionsExt};

    fn write_file(path: &Path, mode: u32) {
        fs::write(path, "#!/bin/sh\nexit 0\n").unwrap();
        fs::set_permissions(path, fs::Permissions::from_mode(mode)).unwrap();
    }

    fn os(text: &str) -> &OsStr {
        OsStr::new(text)
    }

    fn path_of(dirs: &[&Path]) -> OsString {
        let joined: Vec<&OsStr> = dirs.iter().map(|dir| dir.as_os_str()).collect();
        joined.join(OsStr::new(":"))
    }

    #[test]
    fn find_searches_path_in_order() {
        let first = tempfile::tempdir().unwrap();
        let second = tempfile::tempdir().unwrap();
        let third = tempfile::tempdir().unwrap();
        write_file(&second.path().join("tool"), 0o755);
        write_file(&third.path().join("tool"), 0o755);
        let path = path_of(&[first.path(), second.path(), third.path()]);

        let found = find_program(os("tool"), Some(&path)).unwrap();
        assert_eq!(found, second.path().join("tool"));
    }

    #[test]
    fn find_skips_non_executable_candidates() {
        let no_permission = tempfile::tempdir().unwrap();
        let directory = tempfile::tempdir().unwrap();
        let good = tempfile::tempdir().unwrap();
        write_file(&no_permission.path().join("tool"), 0o644);
        fs::create_dir(directory.path().join("tool")).unwrap();
        write_file(&good.path().join("tool"), 0o700);
        let path = path_of(&[no_permission.path(), directory.path(), good.path()]);

        let found = find_program(os("tool"), Some(&path)).unwrap();
        assert_eq!(found, good.path().join("tool"));
    }

    #[test]
    fn find_reports_first_non_executable() {
        let empty = tempfile::tempdir().unwrap();
        let no_permission = tempfile::tempdir().unwrap();
        let directory = tempfile::tempdir().unwrap();
        write_file(&no_permission.path().join("tool"), 0o644);
        fs::create_dir(directory.path().join("tool")).unwrap();
        let path = path_of(&[empty.path(), no_permission.path(), directory.path()]);

        let error = find_program(os("tool"), Some(&path)).unwrap_err();
        assert_eq!(error.exit_code(), 126);
        match &error {
            ExecError::NotExecutable {
                program, reason, ..
            } => {
                assert_eq!(program, &no_permission.path().join("tool"));
                assert_eq!(*reason, NotExecutableReason::NoExecutePermission);
            }
            other => panic!("expected NotExecutable, got {other:?}"),
        }
        let message = error.to_string();
        assert!(message.contains("command tool found at"), "{message}");
        assert!(message.contains("chmod +x"), "{message}");
    }

    #[test]
    fn find_directory_only_is_126() {
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir(dir.path().join("tool")).unwrap();
        let path = path_of(&[dir.path()]);

        let error = find_program(os("tool"), Some(&path)).unwrap_err();
        assert_eq!(error.exit_code(), 126);
        assert!(error.to_string().contains("it is a directory"), "{error}");
    }

    #[test]
    fn find_fifo_is_not_regular_file() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("tool");
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o755)).unwrap();

        let error = find_program(fifo.as_os_str(), None).unwrap_err();
        assert!(
            matches!(
                error,
                ExecError::NotExecutable {
                    reason: NotExecutableReason::NotRegularFile,
                    ..
                }
            ),
            "{error:?}"
        );
    }

    #[test]
    fn find_missing_is_127_and_names_path() {
        let dir = tempfile::tempdir().unwrap();
        let path = path_of(&[dir.path(), Path::new("/nonexistent-kvexec-dir")]);

        let error = find_program(os("kvexec-no-such-tool"), Some(&path)).unwrap_err();
        assert_eq!(error.exit_code(), 127);
        assert_eq!(
            error.to_string(),
            format!(
                "command kvexec-no-such-tool not found in PATH ({}:/nonexistent-kvexec-dir); \
                 install it, add its directory to PATH, or give its path",
                dir.path().display()
            )
        );
    }

    #[test]
    fn find_without_path_uses_default() {
        let found = find_program(os("sh"), None).unwrap();
        assert_eq!(found, Path::new("/bin/sh"));

        let error = find_program(os("kvexec-no-such-tool"), None).unwrap_err();
        assert_eq!(error.exit_code(), 127);
        let message = error.to_string();
        assert!(message.contains("/bin:/usr/bin"), "{message}");
        assert!(message.contains("PATH is not set"), "{message}");
    }

    #[test]
    fn find_empty_path_searches_nothing_but_cwd() {
        // An empty PATH is one empty entry, the current directory, as for execvp.
        let error = find_program(os("kvexec-no-such-tool"), Some(os(""))).unwrap_err();
        assert_eq!(error.exit_code(), 127);
        assert!(matches!(
            error,
            ExecError::NotFound {
                searched: Searched::Path(_),
                ..
            }
        ));
    }

    #[test]
    fn find_slash_command_used_as_is() {
        let dir = tempfile::tempdir().unwrap();
        let other = tempfile::tempdir().unwrap();
        let tool = dir.path().join("tool");
        write_file(&tool, 0o755);
        write_file(&other.path().join("tool"), 0o755);
        let path = path_of(&[other.path()]);

        let found = find_program(tool.as_os_str(), Some(&path)).unwrap();
        assert_eq!(found, tool);
    }

    #[test]
    fn find_slash_command_errors() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("absent");
        let error = find_program(missing.as_os_str(), Some(os("/usr/bin"))).unwrap_err();
        assert_eq!(error.exit_code(), 127);
        assert!(matches!(
            error,
            ExecError::NotFound {
                searched: Searched::AsGiven,
                ..
            }
        ));
        assert!(error.to_string().contains(&missing.display().to_string()));

        let plain = dir.path().join("plain");
        write_file(&plain, 0o600);
        let error = find_program(plain.as_os_str(), None).unwrap_err();
        assert_eq!(error.exit_code(), 126);

        let error = find_program(dir.path().as_os_str(), None).unwrap_err();
        assert_eq!(error.exit_code(), 126);
        assert!(error.to_string().contains("it is a directory"), "{error}");
    }

    #[test]
    fn find_follows_symlinks() {
        let dir = tempfile::tempdir().unwrap();
        write_file(&dir.path().join("real"), 0o755);
        symlink(dir.path().join("real"), dir.path().join("link")).unwrap();
        symlink(dir.path().join("absent"), dir.path().join("dangling")).unwrap();
        let path = path_of(&[dir.path()]);

        assert_eq!(
            find_program(os("link"), Some(&path)).unwrap(),
            dir.path().join("link")
        );
        let error = find_program(os("dangling"), Some(&path)).unwrap_err();
        assert_eq!(error.exit_code(), 127);
    }

    #[test]
    fn find_empty_command_is_127() {
        let error = find_program(os(""), Some(os("/bin"))).unwrap_err();
        assert_eq!(error.exit_code(), 127);
        assert!(error.to_string().contains("command is empty"), "{error}");
    }

    #[test]
    fn messages_escape_control_characters() {
        let error = find_program(os("bad\nname"), Some(os("/nonexistent\n"))).unwrap_err();
        let message = error.to_string();
        assert!(!message.contains('\n'), "{message}");
        assert!(message.contains("bad\\nname"), "{message}");
    }

    #[test]
    fn too_large_message_lists_sizes() {
        let error = ExecError::TooLarge {
            program: PathBuf::from("/usr/bin/env"),
            argv_bytes: 12,
            env_bytes: 3_000_000,
            env_count: 40,
            limit: Some(2_097_152),
            oversized: Some(OversizedString::Variable {
                name: OsString::from("BIG"),
                bytes: 200_001,
            }),
        };
        assert_eq!(error.exit_code(), 126);
        assert_eq!(
            error.to_string(),
            "cannot execute /usr/bin/env: the arguments and environment are too large for \
             execve (E2BIG): arguments 12 bytes, environment 3000000 bytes in 40 variables, \
             limit about 2097152 bytes for both together; variable BIG alone is 200001 bytes, \
             over the Linux limit of 131072 bytes for one string; move large values into files \
             and pass their paths instead"
        );
    }

    #[test]
    fn exec_size_limit_counts_pointers() {
        if let (Some(none), Some(ten)) = (exec_size_limit(0), exec_size_limit(10)) {
            assert_eq!(none - ten, 10 * std::mem::size_of::<usize>() as u64);
            assert!(none >= MAX_ARG_STRLEN as u64);
            assert!(none <= 6 * 1024 * 1024);
        }
    }
}
