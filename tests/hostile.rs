//! Hostile and odd input through the real binary: look-alike Key Vault hosts that must
//! never see a request, very long and empty values, tens of thousands of variables, and
//! property tests of env-file parsing.

mod common;

use common::{demo, secret_url, Emulator, Kvexec, KVEXEC_FAILURE};
use kvexec::environment::Environment;
use kvexec_emulator::{Cloud, Secret, Vault};
use proptest::prelude::*;
use std::ffi::OsString;

/// The look-alike cloud: every vault host of it ends in `.vault.azure.net.evil.example`.
const EVIL_SUFFIX: &str = "vault.azure.net.evil.example";
const EVIL_LOGIN: &str = "login.evil.example";

/// Returns the host a WHATWG URL parser (the `url` crate) makes of `url`: percent-decoded,
/// IDNA-mapped, lowercase. A client that parsed references this way would connect there.
fn parsed_host(url: &str) -> String {
    url::Url::parse(url)
        .ok()
        .and_then(|url| url.host_str().map(str::to_string))
        .unwrap_or_default()
}

/// Values that look like references to the demo vault but name another host, each with
/// what it imitates.
fn look_alikes() -> Vec<(&'static str, String)> {
    let path = format!("/secrets/{}", demo::PASSWORD_SECRET);
    vec![
        ("suffix appended", format!("https://kvexec-demo.{EVIL_SUFFIX}{path}")),
        ("userinfo naming the vault", format!("https://kvexec-demo.vault.azure.net@evil.example{path}")),
        ("userinfo before a look-alike", format!("https://x@kvexec-demo.{EVIL_SUFFIX}{path}")),
        ("userinfo before another host", format!("https://x@evil.example{path}")),
        ("percent-encoded dot", format!("https://kvexec-demo.vault.azure.net%2eevil.example{path}")),
        ("percent-encoded dot in the name", format!("https://kvexec-demo%2e{EVIL_SUFFIX}{path}")),
        ("percent-encoded slash", format!("https://evil.example%2f.vault.azure.net{path}")),
        ("ideographic full stop", format!("https://kvexec-demo.vault.azure.net\u{3002}evil.example{path}")),
        ("fullwidth full stop", format!("https://kvexec-demo.vault.azure.net\u{ff0e}evil.example{path}")),
        ("Cyrillic a in the suffix", format!("https://kvexec-demo.vault.\u{0430}zure.net{path}")),
        ("uppercase look-alike", format!("HTTPS://KVEXEC-DEMO.{}{}", EVIL_SUFFIX.to_uppercase(), path.to_uppercase())),
        ("trailing dot on a look-alike", format!("https://kvexec-demo.{EVIL_SUFFIX}.{path}")),
        ("backslash before the suffix", format!("https://evil.example\\.vault.azure.net{path}")),
        ("slash before the suffix", format!("https://evil.example/.vault.azure.net{path}")),
        ("fragment before the suffix", format!("https://evil.example#.vault.azure.net{path}")),
        ("query before the suffix", format!("https://evil.example?.vault.azure.net{path}")),
        ("port on the vault host", format!("https://kvexec-demo.vault.azure.net:8443{path}")),
        ("akv scheme with a look-alike", format!("akv://kvexec-demo.{EVIL_SUFFIX}/{}", demo::PASSWORD_SECRET)),
        (
            "App Service syntax with a look-alike",
            format!("@Microsoft.KeyVault(SecretUri=https://kvexec-demo.{EVIL_SUFFIX}{path})"),
        ),
    ]
}

/// Starts a second emulator that serves the look-alike hosts with a certificate kvexec trusts,
/// the demo application and a vault named like the demo vault. Nothing may reach it.
fn evil_emulator(hosts: &[String]) -> Emulator {
    let cloud = Cloud::custom("EvilCloud", EVIL_SUFFIX, EVIL_LOGIN, format!("https://{EVIL_SUFFIX}"));
    let mut builder = Emulator::builder()
        .demo()
        .cloud(cloud.clone())
        .vault(Vault::new(demo::VAULT_NAME, demo::TENANT_ID).cloud(cloud).secret(Secret::new(demo::PASSWORD_SECRET, "evil")))
        .extra_san("evil.example")
        .extra_san("*.evil.example");
    for host in hosts {
        builder = builder.extra_san(host.clone());
    }
    builder.start()
}

#[test]
fn look_alike_hosts_get_nothing() {
    let cases = look_alikes();
    // Every host a URL parser would derive from the cases, so that a client which
    // connected there would reach the evil emulator instead of the network.
    let mut evil_hosts: Vec<String> = cases
        .iter()
        .map(|(_, value)| parsed_host(value))
        .filter(|host| !host.is_empty() && !host.ends_with(".vault.azure.net") && host != "evil.example")
        .filter(|host| !host.ends_with(".evil.example"))
        .collect();
    evil_hosts.sort();
    evil_hosts.dedup();

    let good = common::demo_emulator();
    let evil = evil_emulator(&evil_hosts);
    let mut resolve = vec![
        format!("*.evil.example=127.0.0.1:{}", evil.port()),
        format!("evil.example=127.0.0.1:{}", evil.port()),
    ];
    resolve.extend(evil_hosts.iter().map(|host| format!("{host}=127.0.0.1:{}", evil.port())));
    resolve.extend(good.resolve_entries());
    let resolve = resolve.join(",");
    // The evil CA is trusted too: a leak must show up in its counters, not as a TLS error.
    let trust = tempfile::tempdir().expect("creating a temporary directory failed");
    let bundle = common::write_file(trust.path(), "both.pem", format!("{}{}", good.ca_pem(), evil.ca_pem()));

    let mut summary = Vec::new();
    for (what, value) in &cases {
        let outcome = Kvexec::new(&good)
            .env("KVEXEC_RESOLVE", &resolve)
            .env("SSL_CERT_FILE", &bundle)
            .env("LOOK_ALIKE", value)
            .report_env()
            .run();
        let stderr = outcome.stderr_text();
        assert!(!stderr.contains("panicked"), "{what}: {stderr}");
        match outcome.code() {
            Some(0) => {
                outcome.assert_var("LOOK_ALIKE", value);
                summary.push(format!("{what}: passed through unchanged"));
            }
            Some(KVEXEC_FAILURE) => {
                let reason = stderr
                    .lines()
                    .find(|line| line.starts_with("kvexec: LOOK_ALIKE: "))
                    .unwrap_or_else(|| panic!("{what}: the rejection does not name the variable:\n{stderr}"));
                summary.push(format!("{what}: rejected ({reason})"));
            }
            other => panic!("{what}: unexpected exit status {other:?}:\n{stderr}"),
        }
    }
    eprintln!("{}", summary.join("\n"));

    let evil_stats = evil.stats();
    assert_eq!(evil_stats.tcp_connections, 0, "kvexec connected to a look-alike host");
    assert_eq!(evil_stats.total_requests(), 0);
    assert_eq!(evil_stats.total_token_requests(), 0);
    assert!(evil_stats.authorization_by_host.is_empty());
    // None of the values is a reference to a real vault, so no token was even requested.
    assert_eq!(good.stats().total_token_requests(), 0);
    assert_eq!(good.stats().total_secret_reads(), 0);
}

#[test]
fn uppercase_real_host_resolves() {
    let emulator = common::demo_emulator();
    let value = format!("HTTPS://{}/secrets/{}", demo::vault_host().to_uppercase(), demo::PASSWORD_SECRET);
    Kvexec::new(&emulator)
        .env("UPPER", value)
        .report_env()
        .run()
        .assert_success()
        .assert_var("UPPER", demo::PASSWORD_VALUE);
}

#[test]
fn long_values_pass_or_fail_clearly() {
    // Linux caps one environment string at 128 KiB (MAX_ARG_STRLEN), so a plain value of
    // 120 KiB is about the largest a process can receive at all.
    let long_plain = "p".repeat(120 * 1024);
    // Key Vault stores secret values of up to 25 KB.
    let largest_secret = "s".repeat(25 * 1024);
    let emulator = Emulator::builder()
        .demo()
        .secret(demo::VAULT_NAME, Secret::new("largest", largest_secret.as_str()))
        .start();

    Kvexec::new(&emulator)
        .env("LONG_PLAIN", &long_plain)
        .env("LARGEST", secret_url("largest"))
        .report_env()
        .run()
        .assert_success()
        .assert_var("LONG_PLAIN", &long_plain)
        .assert_var("LARGEST", &largest_secret);

    // A reference whose secret name is 100,000 characters long: rejected before any
    // request, and the message quotes only the start of it.
    let requests_before = emulator.stats().total_requests();
    let long_reference = secret_url(&"n".repeat(100_000));
    let outcome = Kvexec::new(&emulator).env("LONG_REFERENCE", &long_reference).report_env().run();
    outcome.assert_code(KVEXEC_FAILURE);
    let stderr = outcome.stderr_text();
    assert!(stderr.contains("LONG_REFERENCE"), "{stderr}");
    assert!(stderr.len() < 2_000, "the rejection is {} bytes long", stderr.len());
    assert_eq!(emulator.stats().total_requests(), requests_before);
}

#[test]
fn oversized_secret_value_fails_exec_clearly() {
    // Larger than Key Vault allows, and than one environment string may be.
    let huge = "h".repeat(200 * 1024);
    let emulator = Emulator::builder()
        .demo()
        .secret(demo::VAULT_NAME, Secret::new("huge", huge.as_str()))
        .start();

    let outcome = Kvexec::new(&emulator).env("HUGE", secret_url("huge")).report_env().run();

    let stderr = outcome.stderr_text();
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(!stderr.contains(&huge[..64]), "the value was printed");
    assert!(outcome.stdout.is_empty(), "the command ran");
    assert_eq!(outcome.code(), Some(126), "{stderr}");
    assert!(stderr.contains("E2BIG"), "{stderr}");
}

#[test]
fn empty_values_pass_through() {
    let emulator = Emulator::builder()
        .demo()
        .secret(demo::VAULT_NAME, Secret::new("empty", ""))
        .start();

    Kvexec::new(&emulator)
        .env("EMPTY_PLAIN", "")
        .env("EMPTY_SECRET", secret_url("empty"))
        .env("BLANK", "   ")
        .report_env()
        .run()
        .assert_success()
        .assert_var("EMPTY_PLAIN", "")
        .assert_var("EMPTY_SECRET", "")
        .assert_var("BLANK", "   ");
}

#[test]
fn many_variables_keep_order() {
    const PLAIN: usize = 20_000;
    const REFERENCES: usize = 100;
    let mut builder = Emulator::builder().demo();
    for index in 0..REFERENCES {
        builder = builder.secret(demo::VAULT_NAME, Secret::new(format!("many-{index}"), format!("many-value-{index}")));
    }
    let emulator = builder.start();

    let mut kvexec = Kvexec::new(&emulator);
    let mut expected: Vec<(String, String)> = Vec::new();
    for index in 0..PLAIN {
        if index % (PLAIN / REFERENCES) == 0 {
            let reference = index / (PLAIN / REFERENCES);
            kvexec = kvexec.env(format!("REF_{reference}"), secret_url(&format!("many-{reference}")));
            expected.push((format!("REF_{reference}"), format!("many-value-{reference}")));
        }
        kvexec = kvexec.env(format!("PLAIN_{index}"), format!("value {index}"));
        expected.push((format!("PLAIN_{index}"), format!("value {index}")));
    }

    let outcome = kvexec.report_env().run();

    outcome.assert_success();
    let child: Vec<(String, String)> = outcome
        .child_env()
        .into_iter()
        .map(|(name, value)| (String::from_utf8_lossy(&name).into_owned(), String::from_utf8_lossy(&value).into_owned()))
        .filter(|(name, _)| name.starts_with("PLAIN_") || name.starts_with("REF_"))
        .collect();
    assert_eq!(child.len(), expected.len());
    assert!(child == expected, "the child's variables differ in value or order");
    assert_eq!(emulator.stats().total_secret_reads(), REFERENCES as u64);
}

#[test]
fn hostile_env_file_not_echoed() {
    let emulator = common::demo_emulator();
    let directory = tempfile::tempdir().expect("creating a temporary directory failed");
    let canary = "env-file-canary-91b2";
    let path = common::write_file(
        directory.path(),
        "hostile.env",
        format!("GOOD=1\nBAD=\"{canary} unclosed\nMORE={canary}\n"),
    );

    let outcome = Kvexec::new(&emulator).arg("--env-file").arg(&path).report_env().run();

    outcome.assert_code(KVEXEC_FAILURE).assert_output_lacks(canary);
    assert!(outcome.stderr_text().contains("invalid dotenv syntax"), "{}", outcome.stderr_text());
}

/// Writes `content` to a fresh file and loads it into an empty environment.
fn load_env_file(content: &[u8]) -> Result<Environment, String> {
    let directory = tempfile::tempdir().expect("creating a temporary directory failed");
    let path = common::write_file(directory.path(), "case.env", content);
    let mut env = Environment::new(Vec::new());
    env.load_env_file(&path).map(|()| env).map_err(|error| error.to_string())
}

// The number of cases follows PROPTEST_CASES (256 when unset), so the long run documented in
// SECURITY.md uses the same properties.
#[test]
fn env_file_backslash_before_quote_rejected() {
    // dotenvy 0.15 alone gives A the text of both lines here, and no error.
    let error = load_env_file(b"A='C:\\dir\\'\nA='D:\\'\n").expect_err("a backslash before the closing quote");
    assert!(error.contains("on line 1 has a backslash right before the closing single quote"), "{error}");
}

proptest! {
    /// Any bytes: loading never panics, and an error never quotes the file's content.
    #[test]
    fn env_file_bytes_never_leak(
        before in proptest::collection::vec(any::<u8>(), 0..300),
        after in proptest::collection::vec(any::<u8>(), 0..300),
    ) {
        let canary = b"Zq7canaryZq7";
        let mut content = before.clone();
        content.extend_from_slice(canary);
        content.extend_from_slice(&after);
        if let Err(message) = load_env_file(&content) {
            prop_assert!(!message.contains("Zq7canaryZq7"), "{message}");
            prop_assert!(message.contains("env file"), "{message}");
        }
    }

    /// Text made of dotenv's own syntax characters: the same, with denser hits on quoting,
    /// escapes, comments and substitutions.
    #[test]
    fn env_file_syntax_soup_never_leaks(
        pieces in proptest::collection::vec(
            prop_oneof![
                proptest::sample::select(vec![
                    "A=", "export ", "\"", "'", "\\", "\n", "#", "$", "${", "}", " ", "=",
                    "\r\n", "\u{feff}", "Zq7canaryZq7",
                ])
                .prop_map(str::to_string),
                "[a-zA-Z_]{1,4}",
            ],
            0..40,
        ),
    ) {
        let content = pieces.concat();
        match load_env_file(content.as_bytes()) {
            Err(message) => prop_assert!(!message.contains("Zq7canaryZq7"), "{message}"),
            Ok(env) => {
                for (name, _) in env.vars() {
                    prop_assert!(!name.is_empty());
                }
            }
        }
    }

    /// Single-quoted values come back byte for byte, whatever they contain besides the
    /// quote, or the file is rejected as a whole, which happens only when a value ends in
    /// a backslash (see `env_file_backslash_before_quote_rejected`).
    #[test]
    fn env_file_single_quotes_round_trip(
        assignments in proptest::collection::vec(("[A-Z][A-Z0-9_]{0,8}", "[^'\\x00]{0,40}"), 1..8),
    ) {
        let mut content = String::new();
        for (name, value) in &assignments {
            content.push_str(&format!("{name}='{value}'\n"));
        }
        let env = match load_env_file(content.as_bytes()) {
            Ok(env) => env,
            Err(message) => {
                prop_assert!(
                    assignments.iter().any(|(_, value)| value.ends_with('\\')),
                    "rejected: {message}"
                );
                return Ok(());
            }
        };
        for (name, value) in assignments.iter().rev() {
            // A later assignment of the same name wins, so check only the last one.
            let last = assignments.iter().rev().find(|(other, _)| other == name).map(|(_, v)| v);
            if last == Some(value) {
                let expected = OsString::from(value);
                prop_assert_eq!(env.get(name), Some(expected.as_os_str()));
            }
        }
    }
}
