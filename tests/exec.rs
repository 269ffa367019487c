//! Real execve tests. Each test starts this test binary again, filtered to the single test
//! `helper_process`, with KVEXEC_EXEC_TEST_CASE naming a case. The helper builds a child
//! environment, writes MARKER to stdout and calls `exec`, so everything after MARKER on
//! stdout comes from the program it exec'd. When `exec` fails, the helper prints the error
//! to stderr and exits with its exit code, as kvexec does.

use kvexec::environment::{ChildEnvironment, Environment};
use kvexec::exec::{exec, find_program, ExecError};
use nix::sys::signal::{SigSet, SigmaskHow, Signal};
use secrecy::SecretString;
use std::ffi::{OsStr, OsString};
use std::io::Write;
use std::os::unix::ffi::OsStringExt;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, ExitStatus, Stdio};

const CASE_VARIABLE: &str = "KVEXEC_EXEC_TEST_CASE";
const COMMAND_VARIABLE: &str = "KVEXEC_EXEC_TEST_COMMAND";
const PATH_VARIABLE: &str = "KVEXEC_EXEC_TEST_PATH";
const MARKER: &[u8] = b"\n=== kvexec exec test: child output follows ===\n";

/// The helper side: runs the case named in KVEXEC_EXEC_TEST_CASE; a no-op without it.
#[test]
fn helper_process() {
    let Some(case) = std::env::var_os(CASE_VARIABLE) else {
        return;
    };
    let case = case.into_string().expect("case names are ASCII");
    let error = match case.as_str() {
        "env_order" => exec_env_order(),
        "argv" => exec_argv(),
        "signals" => exec_signals(),
        "search" => exec_search(),
        "too_large_variable" => exec_too_large(1, 200_000),
        "too_large_total" => exec_too_large(40, 100_000),
        other => panic!("unknown case {other}"),
    };
    eprintln!("kvexec: {error}");
    std::process::exit(error.exit_code());
}

fn os(text: &str) -> OsString {
    OsString::from(text)
}

fn bytes(raw: &[u8]) -> OsString {
    OsString::from_vec(raw.to_vec())
}

fn child_environment(pairs: &[(&str, &str)]) -> ChildEnvironment {
    let env = Environment::new(pairs.iter().map(|(n, v)| (os(n), os(v))).collect());
    ChildEnvironment::build(&env, Vec::new(), &[]).unwrap()
}

fn exec_after_marker(program: &Path, args: &[OsString], env: ChildEnvironment) -> ExecError {
    let mut stdout = std::io::stdout().lock();
    stdout.write_all(MARKER).unwrap();
    stdout.flush().unwrap();
    drop(stdout);
    exec(program, args, env)
}

fn exec_env_order() -> ExecError {
    let env = Environment::new(vec![
        (os("FIRST"), os("1")),
        (os("DB_PASSWORD"), os("akv://db-password")),
        (os("AZURE_CLIENT_SECRET"), os("credential")),
        (bytes(b"RAW\xff"), bytes(b"\xfe value\nwith newline")),
        (os("PATH"), os("/usr/bin:/bin")),
        (os("EMPTY"), os("")),
        (os("LAST"), os("z")),
    ]);
    let child = ChildEnvironment::build(
        &env,
        vec![(1, SecretString::from("resolved=secret value"))],
        &["AZURE_CLIENT_SECRET"],
    )
    .unwrap();
    let program = find_program(OsStr::new("env"), child.path()).unwrap();
    exec_after_marker(&program, &[os("env"), os("-0")], child)
}

fn exec_argv() -> ExecError {
    let child = child_environment(&[("PATH", "/usr/bin:/bin")]);
    let program = find_program(OsStr::new("sh"), child.path()).unwrap();
    // `; exit 0` keeps sh from replacing itself with cat, so $$ is the shell started here.
    let args = [
        os("sh"),
        os("-c"),
        os("cat /proc/$$/cmdline; exit 0"),
        os("zero"),
        bytes(b"\xff\xfe"),
        os(""),
        os("two words"),
        os("line\nbreak"),
    ];
    exec_after_marker(&program, &args, child)
}

fn exec_signals() -> ExecError {
    // Preconditions that make the test meaningful: the Rust runtime ignores SIGPIPE, and
    // this thread blocks SIGUSR1 (thread-self: the mask is per thread).
    let status = std::fs::read_to_string("/proc/thread-self/status").unwrap();
    assert!(signal_mask(&status, "SigIgn") & signal_bit(Signal::SIGPIPE) != 0);
    let mut blocked = SigSet::empty();
    blocked.add(Signal::SIGUSR1);
    nix::sys::signal::pthread_sigmask(SigmaskHow::SIG_BLOCK, Some(&blocked), None).unwrap();
    let status = std::fs::read_to_string("/proc/thread-self/status").unwrap();
    assert!(signal_mask(&status, "SigBlk") & signal_bit(Signal::SIGUSR1) != 0);

    let child = child_environment(&[]);
    exec_after_marker(
        Path::new("/bin/cat"),
        &[os("cat"), os("/proc/self/status")],
        child,
    )
}

/// Finds KVEXEC_EXEC_TEST_COMMAND on KVEXEC_EXEC_TEST_PATH (unset: no PATH) and execs it
/// with the arguments after it (split on spaces), like `kvexec COMMAND ARGS...`.
fn exec_search() -> ExecError {
    let command_line = std::env::var(COMMAND_VARIABLE).unwrap();
    let args: Vec<OsString> = command_line.split(' ').map(os).collect();
    let mut pairs = vec![(os("KVEXEC_SEEN"), os("yes"))];
    if let Some(path) = std::env::var_os(PATH_VARIABLE) {
        pairs.push((os("PATH"), path));
    }
    let env = Environment::new(pairs);
    let child = ChildEnvironment::build(&env, Vec::new(), &[]).unwrap();

    match find_program(&args[0], child.path()) {
        Ok(program) => exec_after_marker(&program, &args, child),
        Err(error) => error,
    }
}

fn exec_too_large(count: usize, value_bytes: usize) -> ExecError {
    let value = "x".repeat(value_bytes);
    let pairs: Vec<(OsString, OsString)> = (0..count)
        .map(|index| (os(&format!("BIG{index}")), os(&value)))
        .collect();
    let child = ChildEnvironment::build(&Environment::new(pairs), Vec::new(), &[]).unwrap();
    exec_after_marker(Path::new("/bin/true"), &[os("true")], child)
}

/// What a helper run produced.
struct Outcome {
    status: ExitStatus,
    /// The exec'd program's stdout: everything after MARKER, empty without MARKER.
    child_stdout: Vec<u8>,
    stderr: String,
}

fn run_helper(case: &str, configure: impl FnOnce(&mut Command)) -> Outcome {
    let test_binary = std::env::current_exe().unwrap();
    let mut command = Command::new(&test_binary);
    command
        .args([
            "helper_process",
            "--exact",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CASE_VARIABLE, case)
        .stdin(Stdio::null());
    configure(&mut command);
    run(command)
}

fn run(mut command: Command) -> Outcome {
    let output = command.output().unwrap();
    let child_stdout = match output
        .stdout
        .windows(MARKER.len())
        .position(|window| window == MARKER)
    {
        Some(start) => output.stdout[start + MARKER.len()..].to_vec(),
        None => Vec::new(),
    };
    Outcome {
        status: output.status,
        child_stdout,
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

fn run_search(command_line: &str, path: Option<&OsStr>, directory: &Path) -> Outcome {
    run_helper("search", |command| {
        command
            .env(COMMAND_VARIABLE, command_line)
            .current_dir(directory);
        match path {
            Some(path) => command.env(PATH_VARIABLE, path),
            None => command.env_remove(PATH_VARIABLE),
        };
    })
}

fn signal_bit(signal: Signal) -> u64 {
    1 << (signal as u64 - 1)
}

/// Parses the hexadecimal mask on the `field:` line of a /proc status file.
fn signal_mask(status: &str, field: &str) -> u64 {
    let line = status
        .lines()
        .find(|line| line.starts_with(&format!("{field}:")))
        .unwrap_or_else(|| panic!("no {field} in status"));
    u64::from_str_radix(line[field.len() + 1..].trim(), 16).unwrap()
}

fn write_script(path: &Path, content: &str, mode: u32) {
    std::fs::write(path, content).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

#[test]
fn env_passes_in_order_byte_exact() {
    let outcome = run_helper("env_order", |_| {});
    assert_eq!(outcome.status.code(), Some(0), "{}", outcome.stderr);

    let expected: &[&[u8]] = &[
        b"FIRST=1",
        b"DB_PASSWORD=resolved=secret value",
        b"RAW\xff=\xfe value\nwith newline",
        b"PATH=/usr/bin:/bin",
        b"EMPTY=",
        b"LAST=z",
    ];
    let entries: Vec<&[u8]> = outcome
        .child_stdout
        .split(|&byte| byte == 0)
        .filter(|entry| !entry.is_empty())
        .collect();
    assert_eq!(entries, expected);
}

#[test]
fn argv_passes_byte_exact() {
    let outcome = run_helper("argv", |_| {});
    assert_eq!(outcome.status.code(), Some(0), "{}", outcome.stderr);
    assert_eq!(
        outcome.child_stdout,
        b"sh\0-c\0cat /proc/$$/cmdline; exit 0\0zero\0\xff\xfe\0\0two words\0line\nbreak\0"
    );
}

#[test]
fn child_has_default_sigpipe_and_no_mask() {
    let outcome = run_helper("signals", |_| {});
    assert_eq!(outcome.status.code(), Some(0), "{}", outcome.stderr);
    let status = String::from_utf8(outcome.child_stdout).unwrap();

    assert_eq!(
        signal_mask(&status, "SigIgn") & signal_bit(Signal::SIGPIPE),
        0,
        "{status}"
    );
    assert_eq!(signal_mask(&status, "SigBlk"), 0, "{status}");
}

#[test]
fn child_keeps_signals_ignored_by_nohup() {
    let test_binary = std::env::current_exe().unwrap();
    let mut command = Command::new("/usr/bin/nohup");
    command
        .arg(&test_binary)
        .args([
            "helper_process",
            "--exact",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CASE_VARIABLE, "signals")
        .stdin(Stdio::null());
    let outcome = run(command);
    assert_eq!(outcome.status.code(), Some(0), "{}", outcome.stderr);
    let status = String::from_utf8(outcome.child_stdout).unwrap();

    let ignored = signal_mask(&status, "SigIgn");
    assert_ne!(ignored & signal_bit(Signal::SIGHUP), 0, "{status}");
    assert_eq!(ignored & signal_bit(Signal::SIGPIPE), 0, "{status}");
}

#[test]
fn script_without_shebang_runs_under_sh() {
    let dir = tempfile::tempdir().unwrap();
    write_script(
        &dir.path().join("plain-script"),
        "printf 'sh ran %s with [%s] [%s] seen=%s' \"$0\" \"$1\" \"$2\" \"$KVEXEC_SEEN\"\n",
        0o755,
    );

    let outcome = run_search(
        "./plain-script first second",
        Some(OsStr::new("/usr/bin:/bin")),
        dir.path(),
    );
    assert_eq!(outcome.status.code(), Some(0), "{}", outcome.stderr);
    assert_eq!(
        String::from_utf8(outcome.child_stdout).unwrap(),
        "sh ran ./plain-script with [first] [second] seen=yes"
    );
}

#[test]
fn empty_path_entry_is_current_directory() {
    let dir = tempfile::tempdir().unwrap();
    write_script(
        &dir.path().join("local-tool"),
        "#!/bin/sh\nprintf 'local %s' \"$1\"\n",
        0o755,
    );

    let outcome = run_search(
        "local-tool arg",
        Some(OsStr::new("/nonexistent-kvexec::/bin")),
        dir.path(),
    );
    assert_eq!(outcome.status.code(), Some(0), "{}", outcome.stderr);
    assert_eq!(outcome.child_stdout, b"local arg");

    let outcome = run_search(
        "local-tool arg",
        Some(OsStr::new("/bin:/usr/bin")),
        dir.path(),
    );
    assert_eq!(outcome.status.code(), Some(127), "{}", outcome.stderr);
}

#[test]
fn command_with_slash_skips_path() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("bin")).unwrap();
    write_script(
        &dir.path().join("bin/tool"),
        "#!/bin/sh\nprintf 'from bin'\n",
        0o755,
    );

    let outcome = run_search("bin/tool", Some(OsStr::new("/usr/bin:/bin")), dir.path());
    assert_eq!(outcome.status.code(), Some(0), "{}", outcome.stderr);
    assert_eq!(outcome.child_stdout, b"from bin");

    let absolute = dir.path().join("bin/tool");
    let outcome = run_search(absolute.to_str().unwrap(), None, Path::new("/"));
    assert_eq!(outcome.status.code(), Some(0), "{}", outcome.stderr);
    assert_eq!(outcome.child_stdout, b"from bin");
}

#[test]
fn missing_command_exits_127() {
    let dir = tempfile::tempdir().unwrap();
    let outcome = run_search(
        "kvexec-no-such-tool",
        Some(OsStr::new("/usr/bin:/bin")),
        dir.path(),
    );
    assert_eq!(outcome.status.code(), Some(127), "{}", outcome.stderr);
    assert!(
        outcome
            .stderr
            .contains("command kvexec-no-such-tool not found in PATH (/usr/bin:/bin)"),
        "{}",
        outcome.stderr
    );
    assert!(outcome.child_stdout.is_empty());

    let outcome = run_search("kvexec-no-such-tool", None, dir.path());
    assert_eq!(outcome.status.code(), Some(127), "{}", outcome.stderr);
    assert!(
        outcome.stderr.contains("PATH is not set"),
        "{}",
        outcome.stderr
    );
}

#[test]
fn non_executable_file_exits_126() {
    let dir = tempfile::tempdir().unwrap();
    write_script(&dir.path().join("tool"), "#!/bin/sh\nexit 0\n", 0o644);
    let path = dir.path().as_os_str();

    let outcome = run_search("tool", Some(path), dir.path());
    assert_eq!(outcome.status.code(), Some(126), "{}", outcome.stderr);
    assert!(
        outcome.stderr.contains("no execute permission"),
        "{}",
        outcome.stderr
    );
    assert!(outcome.child_stdout.is_empty(), "nothing was exec'd");
}

#[test]
fn directory_command_exits_126() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("tool")).unwrap();

    let outcome = run_search("tool", Some(dir.path().as_os_str()), dir.path());
    assert_eq!(outcome.status.code(), Some(126), "{}", outcome.stderr);
    assert!(
        outcome.stderr.contains("it is a directory"),
        "{}",
        outcome.stderr
    );

    let outcome = run_search("./tool", None, dir.path());
    assert_eq!(outcome.status.code(), Some(126), "{}", outcome.stderr);
}

#[test]
fn missing_interpreter_exits_126() {
    let dir = tempfile::tempdir().unwrap();
    write_script(
        &dir.path().join("tool"),
        "#!/nonexistent-kvexec/interpreter\n",
        0o755,
    );

    let outcome = run_search("./tool", None, dir.path());
    assert_eq!(outcome.status.code(), Some(126), "{}", outcome.stderr);
    let stderr = &outcome.stderr;
    assert!(stderr.contains("cannot execute ./tool: ENOENT"), "{stderr}");
    assert!(stderr.contains("#! line"), "{stderr}");
}

#[test]
fn oversized_variable_is_e2big() {
    let outcome = run_helper("too_large_variable", |_| {});
    assert_eq!(outcome.status.code(), Some(126), "{}", outcome.stderr);
    let stderr = &outcome.stderr;
    assert!(stderr.contains("cannot execute /bin/true"), "{stderr}");
    assert!(stderr.contains("(E2BIG)"), "{stderr}");
    assert!(
        stderr.contains("environment 200006 bytes in 1 variable,"),
        "{stderr}"
    );
    assert!(
        stderr.contains("variable BIG0 alone is 200006 bytes"),
        "{stderr}"
    );
    assert!(stderr.contains("move large values into files"), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
}

#[test]
fn oversized_environment_is_e2big() {
    let outcome = run_helper("too_large_total", |_| {});
    assert_eq!(outcome.status.code(), Some(126), "{}", outcome.stderr);
    let stderr = &outcome.stderr;
    let env_bytes = 40 * ("BIGnn=".len() + 100_000 + 1) - 10;
    assert!(
        stderr.contains(&format!("environment {env_bytes} bytes in 40 variables")),
        "{stderr}"
    );
    assert!(stderr.contains("limit about "), "{stderr}");
    assert!(!stderr.contains("alone is"), "{stderr}");
}
