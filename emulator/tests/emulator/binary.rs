//! The `kv-emulator` binary: ready line, seed file, stopping on end of stdin.

use crate::support::{form_body, json_of, HOSTS};
use serde_json::Value;
use std::io::{BufRead, BufReader, Write};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn start(args: &[&str]) -> (Child, BufReader<std::process::ChildStdout>, Value) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_kv-emulator"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("kv-emulator starts");
    let mut stdout = BufReader::new(child.stdout.take().expect("stdout"));
    let mut line = String::new();
    stdout.read_line(&mut line).expect("the ready line is read");
    let ready: Value =
        serde_json::from_str(&line).unwrap_or_else(|error| panic!("ready line {line:?}: {error}"));
    (child, stdout, ready)
}

/// Waits up to ten seconds for the child to exit and returns whether it succeeded.
fn wait(child: &mut Child) -> bool {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            return status.success();
        }
        if Instant::now() > deadline {
            child.kill().expect("kill the emulator by its pid");
            panic!("kv-emulator did not stop within ten seconds");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn https_client(ready: &Value) -> reqwest::Client {
    let ca = std::fs::read(ready["ca_file"].as_str().expect("ca_file"))
        .expect("the CA file is readable");
    let port = u16::try_from(ready["port"].as_u64().expect("port")).expect("port fits u16");
    let mut roots = rustls::RootCertStore::empty();
    use rustls::pki_types::pem::PemObject;
    for certificate in rustls::pki_types::CertificateDer::pem_slice_iter(&ca) {
        roots.add(certificate.expect("PEM")).expect("root");
    }
    #[allow(deprecated)]
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    let mut builder = reqwest::Client::builder()
        .tls_backend_preconfigured(tls)
        .no_proxy();
    for host in HOSTS {
        builder = builder.resolve(host, SocketAddr::from(([127, 0, 0, 1], port)));
    }
    builder.build().expect("client")
}

#[tokio::test]
async fn binary_serves_seed_and_stops_on_stdin_end() {
    let directory = tempfile::tempdir().expect("temporary directory");
    let seed = directory.path().join("seed.json");
    std::fs::write(
        &seed,
        r#"{"vaults": [{"name": "other-vault", "tenant": "5f0c7a4e-2b1d-4c8e-9a36-7d2e1f0b4c59",
             "secrets": [{"name": "seeded", "value": "from the seed file"},
                         {"name": "two", "versions": [{"value": "old"}, {"value": "new"}]}]}]}"#,
    )
    .expect("seed written");
    let (mut child, mut stdout, ready) = start(&[
        "--seed",
        seed.to_str().expect("UTF-8 path"),
        "--bulk-secrets",
        "3",
        "--print-stats",
        "--exit-after",
        "60",
    ]);

    assert_eq!(ready["tenant_id"], kvexec_emulator::demo::TENANT_ID);
    assert_eq!(ready["vault_url"], "https://kvexec-demo.vault.azure.net");
    let resolve = ready["resolve"].as_str().expect("resolve");
    assert!(
        resolve.starts_with("*.vault.azure.net=127.0.0.1:"),
        "{resolve}"
    );

    let client = https_client(&ready);
    let form = form_body(&[
        ("grant_type", "client_credentials"),
        ("client_id", ready["client_id"].as_str().expect("client_id")),
        (
            "client_secret",
            ready["client_secret"].as_str().expect("client_secret"),
        ),
        ("scope", "https://vault.azure.net/.default"),
    ]);
    let token_url = format!(
        "https://login.microsoftonline.com/{}/oauth2/v2.0/token",
        ready["tenant_id"].as_str().expect("tenant")
    );
    let response = client
        .post(token_url)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(form)
        .send()
        .await
        .expect("token answered");
    let token = json_of(response).await;
    let token = token["access_token"].as_str().expect("access_token");

    for (vault, name, value) in [
        ("other-vault", "seeded", "from the seed file"),
        ("other-vault", "two", "new"),
        ("kvexec-demo", "bulk-3", "bulk-value-3"),
        (
            "kvexec-demo",
            "db-password",
            kvexec_emulator::demo::PASSWORD_VALUE,
        ),
    ] {
        let response = client
            .get(format!(
                "https://{vault}.vault.azure.net/secrets/{name}?api-version=7.6"
            ))
            .bearer_auth(token)
            .send()
            .await
            .expect("secret answered");
        let body = json_of(response).await;
        assert_eq!(body["value"], value, "{vault}/{name}");
    }

    drop(child.stdin.take());
    assert!(wait(&mut child), "kv-emulator exits with status 0");
    let mut line = String::new();
    stdout.read_line(&mut line).expect("the stats line is read");
    let stats: Value = serde_json::from_str(&line).expect("stats JSON");
    assert_eq!(stats["stats"]["total_token_requests"], 1);
    assert_eq!(stats["stats"]["total_secret_reads"], 4);
}

#[test]
fn binary_rejects_bad_seed() {
    let directory = tempfile::tempdir().expect("temporary directory");
    let seed = directory.path().join("seed.json");
    std::fs::write(
        &seed,
        r#"{"vaults": [{"name": "v", "tenant": "t", "secrets": [{"name": "s"}]}]}"#,
    )
    .expect("seed written");
    let output = Command::new(env!("CARGO_BIN_EXE_kv-emulator"))
        .args(["--seed", seed.to_str().expect("UTF-8 path")])
        .stdin(Stdio::null())
        .output()
        .expect("kv-emulator runs");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("secret 's' in vault 'v'"), "{stderr}");
    assert!(output.stdout.is_empty());
}

#[test]
fn binary_stops_after_exit_after() {
    let (mut child, _stdout, _ready) = start(&["--exit-after", "1"]);
    // stdin stays open: only the timer can stop it.
    let started = Instant::now();
    assert!(wait(&mut child));
    assert!(started.elapsed() < Duration::from_secs(10));
    let _ = child.stdin.take().map(|mut stdin| stdin.flush());
}
