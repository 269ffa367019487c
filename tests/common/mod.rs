//! Harness for integration tests that run the real `kvexec` binary against the Key Vault
//! emulator.
//!
//! ```ignore
//! let emulator = common::demo_emulator();
//! let reference = common::secret_url(common::demo::PASSWORD_SECRET);
//! common::Kvexec::new(&emulator)
//!     .env("DB_PASSWORD", &reference)
//!     .report_env()
//!     .run()
//!     .assert_success()
//!     .assert_var("DB_PASSWORD", common::demo::PASSWORD_VALUE);
//! ```
//!
//! Each run starts from an empty environment holding only `PATH=/usr/bin:/bin`, the
//! emulator's CA as `SSL_CERT_FILE`, its address as `KVEXEC_RESOLVE`, and the demo
//! application's `AZURE_TENANT_ID`, `AZURE_CLIENT_ID` and `AZURE_CLIENT_SECRET`. Variables
//! reach kvexec in the order they were set, because the run goes through `env -i`.

// Each integration test binary compiles this module and uses only part of it.
#![allow(dead_code)]

pub use kvexec_emulator::{demo, Emulator};

use std::ffi::{OsStr, OsString};
use std::io::{Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// The binary under test.
pub const KVEXEC: &str = env!("CARGO_BIN_EXE_kvexec");

/// How long a run may take before the harness kills it and fails the test.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);

/// kvexec's exit status when it fails itself (as opposed to the command it runs).
pub const KVEXEC_FAILURE: i32 = 125;

/// Prints its arguments, `$0` first, each followed by a NUL byte.
const ARGV_REPORTER: &str = r#"printf '%s\0' "$0" "$@""#;

/// Starts an emulator with the demo tenant, application and vault (see [`demo`]).
pub fn demo_emulator() -> Emulator {
    Emulator::builder().demo().start()
}

/// `https://kvexec-demo.vault.azure.net/secrets/{name}`: a reference to a demo secret.
pub fn secret_url(name: &str) -> String {
    format!("{}/secrets/{name}", demo::vault_url())
}

/// One run of kvexec (or another program) with a scrubbed environment.
#[must_use = "a Kvexec does nothing until run"]
pub struct Kvexec {
    program: PathBuf,
    env: Vec<(OsString, OsString)>,
    args: Vec<OsString>,
    stdin: Option<Vec<u8>>,
    current_dir: Option<PathBuf>,
    timeout: Duration,
}

impl Kvexec {
    /// kvexec set up to reach `emulator` as the demo application.
    pub fn new(emulator: &Emulator) -> Kvexec {
        Kvexec::bare()
            .env("SSL_CERT_FILE", emulator.ca_pem_path())
            .env("KVEXEC_RESOLVE", emulator.resolve_args())
            .env("AZURE_TENANT_ID", demo::TENANT_ID)
            .env("AZURE_CLIENT_ID", demo::CLIENT_ID)
            .env("AZURE_CLIENT_SECRET", demo::CLIENT_SECRET)
    }

    /// kvexec with only `PATH=/usr/bin:/bin`: no trust roots, no resolve map, no
    /// credentials.
    pub fn bare() -> Kvexec {
        Kvexec {
            program: PathBuf::from(KVEXEC),
            env: Vec::new(),
            args: Vec::new(),
            stdin: None,
            current_dir: None,
            timeout: DEFAULT_TIMEOUT,
        }
        .env("PATH", "/usr/bin:/bin")
    }

    /// Runs `program` instead of kvexec, with the same environment handling (for
    /// comparisons such as running the child command directly).
    pub fn program(mut self, program: impl Into<PathBuf>) -> Kvexec {
        self.program = program.into();
        self
    }

    /// Sets a variable. A variable set before keeps its position; a new one goes last.
    pub fn env(mut self, name: impl AsRef<OsStr>, value: impl AsRef<OsStr>) -> Kvexec {
        let name = name.as_ref();
        let bytes = name.as_bytes();
        assert!(
            !bytes.is_empty() && !bytes.contains(&b'='),
            "environment variable names cannot be empty or contain '=': {name:?}"
        );
        let value = value.as_ref().to_os_string();
        match self.env.iter_mut().find(|(existing, _)| existing == name) {
            Some(entry) => entry.1 = value,
            None => self.env.push((name.to_os_string(), value)),
        }
        self
    }

    pub fn env_remove(mut self, name: impl AsRef<OsStr>) -> Kvexec {
        self.env.retain(|(existing, _)| existing != name.as_ref());
        self
    }

    pub fn arg(mut self, arg: impl AsRef<OsStr>) -> Kvexec {
        self.args.push(arg.as_ref().to_os_string());
        self
    }

    pub fn args<I, S>(mut self, args: I) -> Kvexec
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        self.args
            .extend(args.into_iter().map(|arg| arg.as_ref().to_os_string()));
        self
    }

    /// Bytes written to the run's stdin; without this, stdin is `/dev/null`.
    pub fn stdin(mut self, bytes: impl Into<Vec<u8>>) -> Kvexec {
        self.stdin = Some(bytes.into());
        self
    }

    pub fn current_dir(mut self, directory: impl Into<PathBuf>) -> Kvexec {
        self.current_dir = Some(directory.into());
        self
    }

    pub fn timeout(mut self, timeout: Duration) -> Kvexec {
        self.timeout = timeout;
        self
    }

    /// Makes the command `/usr/bin/env -0`: the child prints its environment as
    /// NUL-terminated `NAME=VALUE` entries, read back with [`Outcome::child_env`].
    pub fn report_env(self) -> Kvexec {
        self.args(["--", "/usr/bin/env", "-0"])
    }

    /// Makes the command `/bin/sh -c 'printf …' ARGS…`: the child prints `ARGS` (the first
    /// one as `$0`) NUL-terminated, read back with [`Outcome::child_argv`].
    pub fn report_argv<I, S>(self, child_args: I) -> Kvexec
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        self.args(["--", "/bin/sh", "-c", ARGV_REPORTER])
            .args(child_args)
    }

    /// Runs to completion. Kills the process by its pid and fails the test when it runs
    /// past the timeout.
    pub fn run(self) -> Outcome {
        // env(1) hands variables over in the order given; Command::env would sort them.
        let mut command = Command::new("/usr/bin/env");
        command.env_clear().arg("-i").arg("--");
        for (name, value) in &self.env {
            let mut assignment = name.clone();
            assignment.push("=");
            assignment.push(value);
            command.arg(assignment);
        }
        command.arg(&self.program).args(&self.args);
        if let Some(directory) = &self.current_dir {
            command.current_dir(directory);
        }
        command
            .stdin(if self.stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());

        let started = Instant::now();
        let mut child = command
            .spawn()
            .unwrap_or_else(|error| panic!("starting {} failed: {error}", self.program.display()));
        let pid = child.id();
        if let Some(bytes) = self.stdin {
            let mut stdin = child.stdin.take().expect("stdin is piped");
            // A child that exits without reading makes this fail with EPIPE; that is fine.
            std::thread::spawn(move || {
                let _ = stdin.write_all(&bytes);
            });
        }
        let stdout = drain(child.stdout.take().expect("stdout is piped"));
        let stderr = drain(child.stderr.take().expect("stderr is piped"));

        let status = loop {
            if let Some(status) = child.try_wait().expect("waiting for the child failed") {
                break status;
            }
            if started.elapsed() > self.timeout {
                let _ = child.kill();
                let _ = child.wait();
                let stderr = stderr.join().unwrap_or_default();
                panic!(
                    "{} did not finish within {:?}; killed pid {pid}. Its stderr:\n{}",
                    self.program.display(),
                    self.timeout,
                    String::from_utf8_lossy(&stderr)
                );
            }
            std::thread::sleep(Duration::from_millis(5));
        };

        Outcome {
            status,
            stdout: stdout.join().expect("the stdout reader panicked"),
            stderr: stderr.join().expect("the stderr reader panicked"),
            elapsed: started.elapsed(),
        }
    }
}

fn drain(mut pipe: impl Read + Send + 'static) -> std::thread::JoinHandle<Vec<u8>> {
    std::thread::spawn(move || {
        let mut bytes = Vec::new();
        let _ = pipe.read_to_end(&mut bytes);
        bytes
    })
}

/// What a run produced.
pub struct Outcome {
    pub status: ExitStatus,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
    /// Wall time from spawn to exit.
    pub elapsed: Duration,
}

impl Outcome {
    /// Returns the exit code, or `None` when a signal ended the process.
    pub fn code(&self) -> Option<i32> {
        self.status.code()
    }

    pub fn stdout_text(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }

    pub fn stderr_text(&self) -> String {
        String::from_utf8_lossy(&self.stderr).into_owned()
    }

    #[track_caller]
    pub fn assert_code(&self, expected: i32) -> &Outcome {
        assert_eq!(
            self.code(),
            Some(expected),
            "unexpected exit status {:?}; stderr:\n{}",
            self.status,
            self.stderr_text()
        );
        self
    }

    #[track_caller]
    pub fn assert_success(&self) -> &Outcome {
        self.assert_code(0)
    }

    /// Parses the child's environment as printed by [`Kvexec::report_env`], in its order.
    pub fn child_env(&self) -> Vec<(Vec<u8>, Vec<u8>)> {
        parse_env_entries(&self.stdout)
    }

    /// Parses the child's arguments as printed by [`Kvexec::report_argv`].
    pub fn child_argv(&self) -> Vec<Vec<u8>> {
        parse_nul_list(&self.stdout)
    }

    /// Looks up `name` in the child's environment.
    pub fn var(&self, name: &str) -> Option<Vec<u8>> {
        self.child_env()
            .into_iter()
            .find(|(key, _)| key == name.as_bytes())
            .map(|(_, value)| value)
    }

    #[track_caller]
    pub fn assert_var(&self, name: &str, expected: impl AsRef<[u8]>) -> &Outcome {
        let expected = expected.as_ref();
        match self.var(name) {
            Some(value) => assert!(
                value == expected,
                "{name} in the child's environment is {:?}, expected {:?}",
                String::from_utf8_lossy(&value),
                String::from_utf8_lossy(expected)
            ),
            None => panic!(
                "{name} is missing from the child's environment; stderr:\n{}",
                self.stderr_text()
            ),
        }
        self
    }

    #[track_caller]
    pub fn assert_no_var(&self, name: &str) -> &Outcome {
        assert!(
            self.var(name).is_none(),
            "{name} should not reach the child's environment"
        );
        self
    }

    /// Asserts that neither stdout nor stderr contains `needle` (a secret value or token).
    #[track_caller]
    pub fn assert_output_lacks(&self, needle: &str) -> &Outcome {
        let needle = needle.as_bytes();
        for (stream, bytes) in [("stdout", &self.stdout), ("stderr", &self.stderr)] {
            assert!(
                !bytes.windows(needle.len()).any(|window| window == needle),
                "{stream} contains text that must never be printed"
            );
        }
        self
    }
}

/// Splits NUL-terminated entries; a missing final NUL is tolerated.
pub fn parse_nul_list(bytes: &[u8]) -> Vec<Vec<u8>> {
    let trimmed = bytes.strip_suffix(b"\0").unwrap_or(bytes);
    if trimmed.is_empty() && bytes.is_empty() {
        return Vec::new();
    }
    trimmed
        .split(|byte| *byte == 0)
        .map(<[u8]>::to_vec)
        .collect()
}

/// Splits `env -0` output into (name, value) pairs at each entry's first `=`.
pub fn parse_env_entries(bytes: &[u8]) -> Vec<(Vec<u8>, Vec<u8>)> {
    parse_nul_list(bytes)
        .into_iter()
        .map(|entry| match entry.iter().position(|byte| *byte == b'=') {
            Some(at) => (entry[..at].to_vec(), entry[at + 1..].to_vec()),
            None => (entry, Vec::new()),
        })
        .collect()
}

/// Writes `contents` to `name` inside `directory` and returns the path (for env files
/// and client secret files).
pub fn write_file(directory: &Path, name: &str, contents: impl AsRef<[u8]>) -> PathBuf {
    let path = directory.join(name);
    std::fs::write(&path, contents)
        .unwrap_or_else(|error| panic!("writing {} failed: {error}", path.display()));
    path
}
