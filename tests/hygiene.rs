//! Secret hygiene of the real binary: no secret value, client secret or access token in
//! any output at trace level on any error path, core dumps disabled while secrets are
//! held, and no file written.

mod common;

use common::{demo, secret_url, Emulator, Kvexec, Outcome, KVEXEC_FAILURE};
use kvexec_emulator::{Secret, Vault};
use std::io::Read;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Secret values that must never appear in kvexec's own output.
const PLAIN_CANARY: &str = "plain-canary-7e41";
const JSON_CANARY: &str = "json-canary-0c9d";
const JSON_DOCUMENT: &str = r#"{"user":"svc","password":"json-canary-0c9d","nested":{"token":"json-canary-0c9d"}}"#;
const WRONG_CLIENT_SECRET: &str = "wrong-client-secret-canary-55aa";
const OTHER_TENANT: &str = "0d3c9b1a-7e6f-4a2b-9c8d-112233445566";

fn canary_emulator() -> Emulator {
    Emulator::builder()
        .demo()
        .secret(demo::VAULT_NAME, Secret::new("plain", PLAIN_CANARY))
        .secret(demo::VAULT_NAME, Secret::new("json", JSON_DOCUMENT))
        .secret(demo::VAULT_NAME, Secret::new("disabled", PLAIN_CANARY).disabled())
        .secret(demo::VAULT_NAME, Secret::new("with-nul", format!("{PLAIN_CANARY}\0tail")))
        .vault(Vault::new("kvexec-locked", demo::TENANT_ID).no_readers().secret(Secret::new("plain", PLAIN_CANARY)))
        .vault(Vault::new("kvexec-foreign", OTHER_TENANT).secret(Secret::new("plain", PLAIN_CANARY)))
        .start()
}

fn url(vault: &str, name: &str) -> String {
    format!("https://{vault}.vault.azure.net/secrets/{name}")
}

/// Checks that no canary and no token the emulator issued appears in stderr, nor in
/// stdout when the command did not run (a command's own output may contain its values).
#[track_caller]
fn assert_clean(case: &str, outcome: &Outcome, emulator: &Emulator) {
    let stderr = outcome.stderr_text();
    assert!(!stderr.contains("panicked"), "{case}: {stderr}");
    let mut canaries: Vec<String> = [PLAIN_CANARY, JSON_CANARY, WRONG_CLIENT_SECRET, demo::CLIENT_SECRET]
        .iter()
        .map(|canary| canary.to_string())
        .collect();
    canaries.extend(emulator.stats().issued_tokens);
    for canary in &canaries {
        assert!(!stderr.contains(canary.as_str()), "{case}: stderr contains a secret or a token");
        if outcome.code() != Some(0) {
            assert!(!outcome.stdout_text().contains(canary.as_str()), "{case}: stdout contains a secret or a token");
        }
    }
}

/// Each error path, at the most verbose log level of every crate.
#[test]
fn error_paths_print_no_secret() {
    let emulator = canary_emulator();
    let directory = tempfile::tempdir().expect("creating a temporary directory failed");
    let secret_file = common::write_file(directory.path(), "client-secret", format!("{WRONG_CLIENT_SECRET}\n"));

    let cases: Vec<(&str, Kvexec, &str)> = vec![
        (
            "wrong client secret",
            Kvexec::new(&emulator).env("AZURE_CLIENT_SECRET", WRONG_CLIENT_SECRET).env("V", secret_url("plain")),
            "AADSTS7000215",
        ),
        (
            "wrong client secret from a file",
            Kvexec::new(&emulator)
                .env_remove("AZURE_CLIENT_SECRET")
                .args(["--client-secret-file".as_ref(), secret_file.as_os_str()])
                .env("V", secret_url("plain")),
            "AADSTS7000215",
        ),
        ("no role on the vault", Kvexec::new(&emulator).env("V", url("kvexec-locked", "plain")), "ForbiddenByRbac"),
        ("vault of another tenant", Kvexec::new(&emulator).env("V", url("kvexec-foreign", "plain")), "belongs to tenant"),
        ("secret not found", Kvexec::new(&emulator).env("V", secret_url("missing")), "not found"),
        ("secret disabled", Kvexec::new(&emulator).env("V", secret_url("disabled")), "is disabled"),
        ("JSON key missing", Kvexec::new(&emulator).env("V", format!("{}#absent", secret_url("json"))), "V:"),
        ("JSON pointer wrong type", Kvexec::new(&emulator).env("V", format!("{}#/nested/token/x", secret_url("json"))), "V:"),
        ("key on a value that is not JSON", Kvexec::new(&emulator).env("V", format!("{}#user", secret_url("plain"))), "V:"),
        ("NUL in the value", Kvexec::new(&emulator).env("V", secret_url("with-nul")), "V"),
        (
            "one good and one bad reference",
            Kvexec::new(&emulator).env("GOOD", secret_url("plain")).env("V", secret_url("missing")),
            "resolved 1 of 2",
        ),
    ];

    for (case, kvexec, expected) in cases {
        let outcome = kvexec.env("KVEXEC_LOG", "trace").report_env().run();
        assert_clean(case, &outcome, &emulator);
        assert_eq!(outcome.code(), Some(KVEXEC_FAILURE), "{case}: {}", outcome.stderr_text());
        let report: Vec<String> = outcome.stderr_text().lines().filter(|line| line.starts_with("kvexec: ")).map(str::to_string).collect();
        assert!(report.iter().any(|line| line.contains(expected)), "{case}: {report:?}");
    }
}

#[test]
fn success_and_check_print_no_secret() {
    let emulator = canary_emulator();
    let references = [
        ("PLAIN", secret_url("plain")),
        ("JSON_WHOLE", secret_url("json")),
        ("JSON_KEY", format!("{}#password", secret_url("json"))),
        ("JSON_POINTER", format!("{}#/nested/token", secret_url("json"))),
    ];

    let mut run = Kvexec::new(&emulator).env("KVEXEC_LOG", "trace");
    for (name, reference) in &references {
        run = run.env(name, reference);
    }
    let outcome = run.report_env().run();
    assert_clean("successful run", &outcome, &emulator);
    outcome
        .assert_success()
        .assert_var("PLAIN", PLAIN_CANARY)
        .assert_var("JSON_KEY", JSON_CANARY)
        .assert_var("JSON_POINTER", JSON_CANARY)
        .assert_no_var("AZURE_CLIENT_SECRET");

    for json in [false, true] {
        let mut check = Kvexec::new(&emulator).env("KVEXEC_LOG", "trace").arg("--check");
        if json {
            check = check.arg("--json");
        }
        for (name, reference) in &references {
            check = check.env(name, reference);
        }
        check = check.env("BROKEN", format!("{}#absent", secret_url("json")));
        let outcome = check.run();
        assert_clean("--check", &outcome, &emulator);
        // A failed --check prints its report to stdout, so check that too.
        for canary in [PLAIN_CANARY, JSON_CANARY] {
            assert!(!outcome.stdout_text().contains(canary), "--check printed a secret value");
        }
    }
}

/// Reads the soft "Max core file size" of a process from /proc.
fn soft_core_limit(pid: u32) -> Option<String> {
    let limits = std::fs::read_to_string(format!("/proc/{pid}/limits")).ok()?;
    let line = limits.lines().find(|line| line.starts_with("Max core file size"))?;
    line.split_whitespace().nth(4).map(str::to_string)
}

#[test]
fn core_dumps_disabled_while_fetching() {
    use nix::sys::resource::{getrlimit, setrlimit, Resource};

    // Give kvexec a soft core limit that is not 0, so the test can tell the change.
    let (_, hard) = getrlimit(Resource::RLIMIT_CORE).expect("getrlimit failed");
    if hard == 0 {
        eprintln!("skipped: the hard core limit is 0, so core dumps are off anyway");
        return;
    }
    let soft = hard.min(1 << 20);
    setrlimit(Resource::RLIMIT_CORE, soft, hard).expect("raising the soft core limit failed");

    let emulator = Emulator::builder()
        .demo()
        .secret(demo::VAULT_NAME, Secret::new("slow", PLAIN_CANARY).latency_ms(1_500))
        .start();
    // The command reports whether it is dumpable and its soft core limit. It must be the
    // program kvexec executes itself, because every execve resets the dumpable attribute.
    let python = "/usr/bin/python3";
    let report = "import ctypes, resource; print(ctypes.CDLL(None).prctl(3, 0, 0, 0, 0), resource.getrlimit(resource.RLIMIT_CORE)[0])";
    let mut child = Command::new(common::KVEXEC)
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .env("SSL_CERT_FILE", emulator.ca_pem_path())
        .env("KVEXEC_RESOLVE", emulator.resolve_args())
        .env("AZURE_TENANT_ID", demo::TENANT_ID)
        .env("AZURE_CLIENT_ID", demo::CLIENT_ID)
        .env("AZURE_CLIENT_SECRET", demo::CLIENT_SECRET)
        .env("SLOW", secret_url("slow"))
        .args(["--", python, "-c", report])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("starting kvexec failed");
    let pid = child.id();

    // Once the GET has reached the emulator, kvexec has the client secret and a token in memory.
    let started = Instant::now();
    while emulator.stats().reads_of(&demo::vault_host(), "slow") == 0 {
        assert!(started.elapsed() < Duration::from_secs(30), "kvexec never sent the GET");
        std::thread::sleep(Duration::from_millis(10));
    }
    let during_fetch = soft_core_limit(pid);

    let status = child.wait().expect("waiting for kvexec failed");
    let mut stdout = String::new();
    let mut stderr = String::new();
    child.stdout.take().expect("stdout is piped").read_to_string(&mut stdout).ok();
    child.stderr.take().expect("stderr is piped").read_to_string(&mut stderr).ok();

    assert_eq!(during_fetch.as_deref(), Some("0"), "core dumps were enabled during the fetch");
    if !std::path::Path::new(python).exists() {
        eprintln!("skipped the command's side: {python} is missing");
        return;
    }
    assert!(status.success(), "{stderr}");
    assert_eq!(stdout.trim(), format!("1 {soft}"), "the command should be dumpable with the original core limit");
}

/// Runs kvexec under strace and checks that it opens no file for writing and that no
/// write, of any kind and to any descriptor, carries a secret value.
#[test]
fn no_file_written_during_run() {
    let probe = Command::new("strace").arg("-V").stdout(Stdio::null()).status();
    if !probe.is_ok_and(|status| status.success()) {
        eprintln!("skipped: strace is not installed");
        return;
    }
    let emulator = canary_emulator();
    let directory = tempfile::tempdir().expect("creating a temporary directory failed");
    let trace = directory.path().join("strace.txt");

    let outcome = Kvexec::new(&emulator)
        .program("/usr/bin/strace")
        .args(["-f", "-qq", "-s", "65536", "-x", "-o"])
        .arg(&trace)
        .args(["-e", "trace=open,openat,openat2,creat,truncate,rename,renameat,renameat2,link,linkat,write,writev,pwrite64,pwritev,sendto,sendmsg"])
        .args(["--", common::KVEXEC, "--", "/bin/true"])
        .env("KVEXEC_LOG", "trace")
        .env("PLAIN", secret_url("plain"))
        .env("JSON_KEY", format!("{}#password", secret_url("json")))
        .run();
    outcome.assert_success();

    let text = std::fs::read_to_string(&trace).expect("reading the strace output failed");
    // strace -x prints non-ASCII bytes as \xNN; the canaries are ASCII and print as is.
    for canary in [PLAIN_CANARY, JSON_CANARY] {
        assert!(!text.contains(canary), "a secret value was written somewhere:\n{}", lines_with(&text, canary));
    }
    let writable_opens: Vec<&str> = text
        .lines()
        .filter(|line| line.contains("open") || line.contains("creat("))
        .filter(|line| ["O_WRONLY", "O_RDWR", "O_CREAT", "O_TRUNC"].iter().any(|flag| line.contains(flag)))
        .filter(|line| !line.contains("/dev/null"))
        .collect();
    assert!(writable_opens.is_empty(), "files opened for writing:\n{}", writable_opens.join("\n"));
    assert!(text.lines().any(|line| line.contains("execve") || line.contains("write(")), "strace recorded nothing");
}

fn lines_with(text: &str, needle: &str) -> String {
    text.lines()
        .filter(|line| line.contains(needle))
        .map(|line| line.chars().take(200).collect::<String>())
        .collect::<Vec<_>>()
        .join("\n")
}
