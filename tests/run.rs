//! End-to-end runs of the kvexec binary against the emulator over TLS on 127.0.0.1, with a
//! real child process that reports its environment and argv.

mod common;

use common::{demo, secret_url, Emulator, Kvexec, KVEXEC_FAILURE};
use kvexec_emulator::{FailNext, FailTarget, Secret, Vault};
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::time::{Duration, Instant};

/// A value no output may contain: the demo secrets the tests below resolve.
const CANARIES: [&str; 3] = [demo::PASSWORD_VALUE, demo::ROTATED_NEW_VALUE, demo::CLIENT_SECRET];

fn json_member(pointer: &str) -> String {
    format!("{}#{pointer}", secret_url(demo::JSON_SECRET))
}

#[test]
fn resolves_every_reference_form() {
    let emulator = common::demo_emulator();
    let host = demo::vault_host();
    let cases: Vec<(&str, String, &str)> = vec![
        ("PLAIN", secret_url(demo::PASSWORD_SECRET), demo::PASSWORD_VALUE),
        ("TRAILING_SLASH", format!("{}/", secret_url(demo::PASSWORD_SECRET)), demo::PASSWORD_VALUE),
        ("PORT_443", format!("https://{host}:443/secrets/{}", demo::PASSWORD_SECRET), demo::PASSWORD_VALUE),
        ("UPPERCASE_HOST", format!("https://{}/secrets/DB-PASSWORD", host.to_uppercase()), demo::PASSWORD_VALUE),
        (
            "PINNED",
            format!("{}/{}", secret_url(demo::ROTATED_SECRET), demo::ROTATED_OLD_VERSION),
            demo::ROTATED_OLD_VALUE,
        ),
        (
            "PINNED_UPPERCASE",
            format!("{}/{}/", secret_url(demo::ROTATED_SECRET), demo::ROTATED_OLD_VERSION.to_uppercase()),
            demo::ROTATED_OLD_VALUE,
        ),
        ("LATEST", secret_url(demo::ROTATED_SECRET), demo::ROTATED_NEW_VALUE),
        ("MULTILINE", secret_url(demo::MULTILINE_SECRET), demo::MULTILINE_VALUE),
        ("AKV", format!("akv://{}", demo::PASSWORD_SECRET), demo::PASSWORD_VALUE),
        ("AKV_PINNED", format!("akv://{}/{}", demo::ROTATED_SECRET, demo::ROTATED_OLD_VERSION), demo::ROTATED_OLD_VALUE),
        ("AKV_KEY", format!("akv://{}#/db/port", demo::JSON_SECRET), "5432"),
        (
            "APP_SERVICE_URI",
            format!("@Microsoft.KeyVault(SecretUri={})", secret_url(demo::PASSWORD_SECRET)),
            demo::PASSWORD_VALUE,
        ),
        (
            "APP_SERVICE_NAMES",
            format!(
                "@Microsoft.KeyVault( vaultname = {} ; SECRETNAME={} ; SecretVersion=)",
                demo::VAULT_NAME,
                demo::PASSWORD_SECRET
            ),
            demo::PASSWORD_VALUE,
        ),
        (
            "APP_SERVICE_VERSION",
            format!(
                "@Microsoft.KeyVault(VaultName={};SecretName={};SecretVersion={})",
                demo::VAULT_NAME,
                demo::ROTATED_SECRET,
                demo::ROTATED_OLD_VERSION
            ),
            demo::ROTATED_OLD_VALUE,
        ),
        ("YAML_NEWLINE", format!("{}\n", secret_url(demo::PASSWORD_SECRET)), demo::PASSWORD_VALUE),
        ("PADDED", format!("  {}\t", secret_url(demo::PASSWORD_SECRET)), demo::PASSWORD_VALUE),
        ("JSON_MEMBER_OBJECT", json_member("db"), r#"{"user":"app","password":"p@ss/word~1","port":5432}"#),
        ("JSON_POINTER", json_member("/db/password"), "p@ss/word~1"),
        ("JSON_POINTER_ENCODED", json_member("/db%2Fpassword"), "p@ss/word~1"),
        ("JSON_ARRAY", json_member("features"), r#"["search","export"]"#),
        ("JSON_BOOL", json_member("debug"), "false"),
        ("JSON_NUMBER", json_member("ratio"), "0.25"),
        ("JSON_WHOLE", secret_url(demo::JSON_SECRET), demo::JSON_VALUE),
    ];

    let mut run = Kvexec::new(&emulator).env("KVEXEC_DEFAULT_VAULT_URL", demo::vault_url());
    for (name, reference, _) in &cases {
        run = run.env(name, reference);
    }
    let outcome = run.report_env().run();
    outcome.assert_success();
    for (name, _, expected) in &cases {
        outcome.assert_var(name, expected);
    }
}

#[test]
fn other_values_pass_through_byte_exact_in_order() {
    let emulator = common::demo_emulator();
    let not_utf8 = OsStr::from_bytes(b"caf\xe9 \xff\x00".split(|b| *b == 0).next().unwrap());
    let outcome = Kvexec::new(&emulator)
        .env("FIRST", "1")
        .env("NOT_UTF8", not_utf8)
        .env("EMBEDDED_JSON", format!(r#"{{"url":"{}"}}"#, secret_url(demo::PASSWORD_SECRET)))
        .env("CONNECTION", format!("Server=x;Password={}", secret_url(demo::PASSWORD_SECRET)))
        .env("VAULT_URL", demo::vault_url())
        .env("OTHER_HOST", "https://example.com/secrets/x")
        .env("EQUALS", "a=b=c")
        .env("EMPTY", "")
        .env("DB_PASSWORD", secret_url(demo::PASSWORD_SECRET))
        .env("LAST", "z")
        .report_env()
        .run();
    outcome.assert_success();

    let names: Vec<Vec<u8>> = outcome.child_env().into_iter().map(|(name, _)| name).collect();
    let expected_order: Vec<&[u8]> = vec![
        b"PATH", b"SSL_CERT_FILE", b"KVEXEC_RESOLVE", b"AZURE_TENANT_ID", b"AZURE_CLIENT_ID",
        b"FIRST", b"NOT_UTF8", b"EMBEDDED_JSON", b"CONNECTION", b"VAULT_URL", b"OTHER_HOST",
        b"EQUALS", b"EMPTY", b"DB_PASSWORD", b"LAST",
    ];
    assert_eq!(names, expected_order, "the child keeps the original order, without AZURE_CLIENT_SECRET");
    outcome.assert_var("NOT_UTF8", b"caf\xe9 \xff");
    outcome.assert_var("EMBEDDED_JSON", format!(r#"{{"url":"{}"}}"#, secret_url(demo::PASSWORD_SECRET)));
    outcome.assert_var("VAULT_URL", demo::vault_url());
    outcome.assert_var("EQUALS", "a=b=c");
    outcome.assert_var("EMPTY", "");
    outcome.assert_var("DB_PASSWORD", demo::PASSWORD_VALUE);
}

#[test]
fn argv_reaches_child_byte_exact() {
    let emulator = common::demo_emulator();
    let args: Vec<&OsStr> = vec![
        OsStr::new("--check"),
        OsStr::new("-q"),
        OsStr::new(""),
        OsStr::new("a b\nc"),
        OsStr::from_bytes(b"\xff\xfe"),
        OsStr::new("--"),
    ];
    let outcome = Kvexec::new(&emulator)
        .env("DB_PASSWORD", secret_url(demo::PASSWORD_SECRET))
        .report_argv(args.clone())
        .run();
    outcome.assert_success();
    let argv = outcome.child_argv();
    // The reporter is `sh -c SCRIPT ARGS...`, so the first argument arrives as $0.
    let expected: Vec<&[u8]> = args.iter().map(|arg| arg.as_bytes()).collect();
    assert_eq!(argv, expected);
}

#[test]
fn credentials_are_removed_unless_kept() {
    let emulator = common::demo_emulator();
    let removed = Kvexec::new(&emulator)
        .env("AZURE_CLIENT_CERTIFICATE_PASSWORD", "pfx-password")
        .env("DB_PASSWORD", secret_url(demo::PASSWORD_SECRET))
        .report_env()
        .run();
    removed.assert_success().assert_no_var("AZURE_CLIENT_SECRET");
    removed.assert_no_var("AZURE_CLIENT_CERTIFICATE_PASSWORD");
    removed.assert_var("AZURE_CLIENT_ID", demo::CLIENT_ID);

    let kept = Kvexec::new(&emulator)
        .arg("--keep-credentials")
        .env("DB_PASSWORD", secret_url(demo::PASSWORD_SECRET))
        .report_env()
        .run();
    kept.assert_success().assert_var("AZURE_CLIENT_SECRET", demo::CLIENT_SECRET);

    let no_references = Kvexec::new(&emulator).report_env().run();
    no_references.assert_success().assert_no_var("AZURE_CLIENT_SECRET");
}

#[test]
fn client_secret_file_replaces_variable() {
    let emulator = common::demo_emulator();
    let dir = tempfile::tempdir().unwrap();
    let file = common::write_file(dir.path(), "secret", format!("{}\r\n", demo::CLIENT_SECRET));
    Kvexec::new(&emulator)
        .env_remove("AZURE_CLIENT_SECRET")
        .arg("--client-secret-file")
        .arg(&file)
        .env("DB_PASSWORD", secret_url(demo::PASSWORD_SECRET))
        .report_env()
        .run()
        .assert_success()
        .assert_var("DB_PASSWORD", demo::PASSWORD_VALUE);
}

#[test]
fn env_files_override_in_order() {
    let emulator = common::demo_emulator();
    let dir = tempfile::tempdir().unwrap();
    let first = common::write_file(
        dir.path(),
        "first.env",
        format!("DB_PASSWORD={}\nFROM_FILE=one\nSHARED=first\n", secret_url(demo::ROTATED_SECRET)),
    );
    let second = common::write_file(
        dir.path(),
        "second.env",
        format!("# comment\nexport SHARED=\"second\"\nAPI=akv://{}\n", demo::PASSWORD_SECRET),
    );
    let outcome = Kvexec::new(&emulator)
        .env("SHARED", "inherited")
        .env("KVEXEC_DEFAULT_VAULT_URL", demo::vault_url())
        .arg("--env-file")
        .arg(&first)
        .arg("--env-file")
        .arg(&second)
        .report_env()
        .run();
    outcome.assert_success();
    outcome.assert_var("SHARED", "second");
    outcome.assert_var("FROM_FILE", "one");
    outcome.assert_var("DB_PASSWORD", demo::ROTATED_NEW_VALUE);
    outcome.assert_var("API", demo::PASSWORD_VALUE);
}

#[test]
fn one_token_and_each_secret_once() {
    let emulator = common::demo_emulator();
    let mut run = Kvexec::new(&emulator);
    for i in 0..100 {
        let reference = match i % 4 {
            0 => secret_url(demo::PASSWORD_SECRET),
            1 => secret_url(&demo::PASSWORD_SECRET.to_uppercase()),
            2 => json_member(&format!("/db/{}", if i % 8 == 2 { "user" } else { "port" })),
            _ => format!("akv://{}", demo::JSON_SECRET),
        };
        run = run.env(format!("VAR_{i}"), reference);
    }
    run.env("KVEXEC_DEFAULT_VAULT_URL", demo::vault_url())
        .report_env()
        .run()
        .assert_success()
        .assert_var("VAR_1", demo::PASSWORD_VALUE)
        .assert_var("VAR_2", "app");

    let stats = emulator.stats();
    assert_eq!(stats.total_token_requests(), 1, "{stats:?}");
    assert_eq!(stats.reads_of(&demo::vault_host(), demo::PASSWORD_SECRET), 1, "{stats:?}");
    assert_eq!(stats.reads_of(&demo::vault_host(), demo::JSON_SECRET), 1, "{stats:?}");
}

#[test]
fn concurrent_fetch_beats_sequential() {
    let mut builder = Emulator::builder().demo().latency(Duration::from_millis(50));
    let mut vault = Vault::new("kvexec-many", demo::TENANT_ID);
    for i in 0..200 {
        vault = vault.secret(Secret::new(format!("s{i}"), format!("value-{i}")));
    }
    builder = builder.vault(vault);
    let emulator = builder.start();

    let mut run = Kvexec::new(&emulator);
    for i in 0..200 {
        run = run.env(format!("S{i}"), format!("https://kvexec-many.vault.azure.net/secrets/s{i}"));
    }
    let started = Instant::now();
    let outcome = run.report_env().run();
    let elapsed = started.elapsed();
    outcome.assert_success().assert_var("S199", "value-199");
    eprintln!("200 references at 50 ms each: {elapsed:?}; {:?}", emulator.stats().max_in_flight);
    // Sequentially this is 200 x 50 ms = 10 s; 32 in flight need about 7 rounds.
    assert!(elapsed < Duration::from_secs(4), "took {elapsed:?}");
    assert!(emulator.stats().max_in_flight > 16, "{:?}", emulator.stats());
}

#[test]
fn retries_throttling_and_server_errors() {
    for status in [429, 503, 500] {
        let emulator = common::demo_emulator();
        // The first vault request is the connection warm-up, so three failures make the
        // GET itself fail twice.
        emulator.fail_next(FailNext::new(3, status).target(FailTarget::KeyVault));
        let outcome = Kvexec::new(&emulator)
            .env("DB_PASSWORD", secret_url(demo::PASSWORD_SECRET))
            .report_env()
            .run();
        outcome.assert_success().assert_var("DB_PASSWORD", demo::PASSWORD_VALUE);
    }

    let emulator = common::demo_emulator();
    emulator.fail_next(FailNext::new(2, 429).retry_after(1).target(FailTarget::KeyVault));
    let started = Instant::now();
    Kvexec::new(&emulator)
        .env("DB_PASSWORD", secret_url(demo::PASSWORD_SECRET))
        .report_env()
        .run()
        .assert_success();
    assert!(started.elapsed() >= Duration::from_secs(1), "Retry-After: 1 was not honored");

    let emulator = common::demo_emulator();
    emulator.fail_next(FailNext::new(2, 503).target(FailTarget::Token));
    Kvexec::new(&emulator)
        .env("DB_PASSWORD", secret_url(demo::PASSWORD_SECRET))
        .report_env()
        .run()
        .assert_success()
        .assert_var("DB_PASSWORD", demo::PASSWORD_VALUE);
}

#[test]
fn look_alike_host_gets_no_token() {
    let emulator = common::demo_emulator();
    let evil = Emulator::builder()
        .extra_san("*.vault.azure.net.evil.example")
        .extra_san("evil.example")
        .start();
    let evil_port = evil.port();
    let resolve = format!(
        "{},*.vault.azure.net.evil.example=127.0.0.1:{evil_port},evil.example=127.0.0.1:{evil_port}",
        emulator.resolve_args()
    );
    let look_alikes = [
        format!("https://{}.evil.example/secrets/{}", demo::vault_host(), demo::PASSWORD_SECRET),
        format!("https://{}@evil.example/secrets/{}", demo::vault_host(), demo::PASSWORD_SECRET),
        format!("https://kvexec-demo%2evault.azure.net.evil.example/secrets/{}", demo::PASSWORD_SECRET),
    ];
    let mut run = Kvexec::new(&emulator)
        .env("KVEXEC_RESOLVE", resolve)
        .env("DB_PASSWORD", secret_url(demo::PASSWORD_SECRET));
    for (i, value) in look_alikes.iter().enumerate() {
        run = run.env(format!("LOOK_ALIKE_{i}"), value);
    }
    let outcome = run.report_env().run();
    outcome.assert_success();
    for (i, value) in look_alikes.iter().enumerate() {
        outcome.assert_var(&format!("LOOK_ALIKE_{i}"), value);
    }
    let stats = evil.stats();
    assert_eq!(stats.total_requests(), 0, "the look-alike host was contacted: {stats:?}");
    assert!(stats.authorization_by_host.is_empty(), "a token reached the look-alike host");
}

#[test]
fn trace_logs_never_contain_secrets() {
    let emulator = common::demo_emulator();
    let ok = Kvexec::new(&emulator)
        .env("KVEXEC_LOG", "trace")
        .env("DB_PASSWORD", secret_url(demo::PASSWORD_SECRET))
        .env("ROTATED", secret_url(demo::ROTATED_SECRET))
        .args(["sh", "-c", "test -n \"$DB_PASSWORD\""])
        .run();
    ok.assert_success();

    let failing = Kvexec::new(&emulator)
        .env("KVEXEC_LOG", "trace")
        .env("DB_PASSWORD", secret_url(demo::PASSWORD_SECRET))
        .env("MISSING", secret_url("no-such-secret"))
        .env("BAD_KEY", format!("{}#nope", secret_url(demo::ROTATED_SECRET)))
        .args(["true"])
        .run();
    failing.assert_code(KVEXEC_FAILURE);

    let tokens = emulator.stats().issued_tokens;
    assert_eq!(tokens.len(), 2, "one token per run");
    for outcome in [&ok, &failing] {
        for canary in CANARIES.iter().copied().chain(tokens.iter().map(String::as_str)) {
            outcome.assert_output_lacks(canary);
        }
    }
}

#[test]
fn failures_are_reported_per_variable() {
    let emulator = common::demo_emulator();
    let missing = secret_url("no-such-secret");
    let outcome = Kvexec::new(&emulator)
        .env("DB_PASSWORD", secret_url(demo::PASSWORD_SECRET))
        .env("MISSING", &missing)
        .env("DISABLED", secret_url(demo::DISABLED_SECRET))
        .env("NOT_JSON", format!("{}#password", secret_url(demo::PASSWORD_SECRET)))
        .env("NULL_MEMBER", json_member("empty"))
        .args(["sh", "-c", "echo started"])
        .run();
    outcome.assert_code(KVEXEC_FAILURE);
    assert!(!outcome.stdout_text().contains("started"), "the command must not start");

    let stderr = outcome.stderr_text();
    let lines: Vec<&str> = stderr.lines().collect();
    let line = |variable: &str| {
        lines
            .iter()
            .find(|line| line.starts_with(&format!("kvexec: {variable}: ")))
            .unwrap_or_else(|| panic!("no line for {variable} in:\n{stderr}"))
            .to_string()
    };
    let missing_line = line("MISSING");
    assert!(missing_line.contains(&missing), "{missing_line}");
    assert!(missing_line.contains("SecretNotFound"), "{missing_line}");
    assert!(line("DISABLED").contains("SecretDisabled"));
    assert!(line("NOT_JSON").contains("not valid JSON"));
    assert!(line("NULL_MEMBER").contains("null"));
    assert!(!stderr.contains("kvexec: DB_PASSWORD"), "{stderr}");
    assert!(stderr.contains("resolved 1 of 5 references"), "{stderr}");
    outcome.assert_output_lacks(demo::PASSWORD_VALUE);
}

#[test]
fn malformed_references_fail_before_any_request() {
    let emulator = common::demo_emulator();
    let host = demo::vault_host();
    let cases = [
        ("HTTP", format!("http://{host}/secrets/db")),
        ("BAD_VAULT", "https://a.vault.azure.net/secrets/db".to_string()),
        ("BAD_NAME", format!("https://{host}/secrets/db_password")),
        ("SHORT_VERSION", format!("https://{host}/secrets/db/abc123")),
        ("QUERY", format!("https://{host}/secrets/db?x=1")),
        ("EMPTY_KEY", format!("https://{host}/secrets/db#")),
        ("AKV_NO_DEFAULT", "akv://db".to_string()),
    ];
    let mut run = Kvexec::new(&emulator).env("DB_PASSWORD", secret_url(demo::PASSWORD_SECRET));
    for (name, value) in &cases {
        run = run.env(name, value);
    }
    let outcome = run.args(["true"]).run();
    outcome.assert_code(KVEXEC_FAILURE);
    let stderr = outcome.stderr_text();
    for (name, _) in &cases {
        assert!(stderr.contains(&format!("kvexec: {name}: ")), "no line for {name}:\n{stderr}");
    }
    assert!(stderr.contains("--default-vault-url"), "{stderr}");
    assert_eq!(emulator.stats().total_requests(), 0, "nothing may be fetched");
}

#[test]
fn missing_command_fails_before_fetch() {
    let emulator = common::demo_emulator();
    let outcome = Kvexec::new(&emulator)
        .env("DB_PASSWORD", secret_url(demo::PASSWORD_SECRET))
        .args(["no-such-command-kvexec"])
        .run();
    outcome.assert_code(127);
    assert!(outcome.stderr_text().contains("no-such-command-kvexec"));
    assert_eq!(emulator.stats().total_requests(), 0);

    let dir = tempfile::tempdir().unwrap();
    let script = common::write_file(dir.path(), "job", "#!/bin/sh\necho hi\n");
    Kvexec::new(&emulator).arg(&script).run().assert_code(126);
}

#[test]
fn nul_in_secret_value_is_rejected() {
    let emulator = Emulator::builder()
        .demo()
        .secret(demo::VAULT_NAME, Secret::new("with-nul", "before\u{0}after"))
        .start();
    let outcome = Kvexec::new(&emulator)
        .env("WITH_NUL", secret_url("with-nul"))
        .args(["true"])
        .run();
    outcome.assert_code(KVEXEC_FAILURE);
    assert!(outcome.stderr_text().contains("WITH_NUL"), "{}", outcome.stderr_text());
    outcome.assert_output_lacks("before");
}

#[test]
fn signal_during_resolution_stops_kvexec() {
    let emulator = Emulator::builder().demo().latency(Duration::from_secs(5)).start();
    let dir = tempfile::tempdir().unwrap();
    let marker = dir.path().join("started");
    let mut child = std::process::Command::new(common::KVEXEC)
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .env("SSL_CERT_FILE", emulator.ca_pem_path())
        .env("KVEXEC_RESOLVE", emulator.resolve_args())
        .env("AZURE_TENANT_ID", demo::TENANT_ID)
        .env("AZURE_CLIENT_ID", demo::CLIENT_ID)
        .env("AZURE_CLIENT_SECRET", demo::CLIENT_SECRET)
        .env("DB_PASSWORD", secret_url(demo::PASSWORD_SECRET))
        .args(["touch", marker.to_str().unwrap()])
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(500));
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(child.id() as i32), nix::sys::signal::Signal::SIGTERM).unwrap();
    let status = child.wait().unwrap();
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(status.signal(), Some(libc_sigterm()), "{status:?}");
    assert!(!marker.exists(), "the command must never start");
}

fn libc_sigterm() -> i32 {
    nix::sys::signal::Signal::SIGTERM as i32
}
