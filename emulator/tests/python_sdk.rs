//! Runs `python_sdk.py`: Microsoft's Python SDK against `kv-emulator`, to show the emulator
//! responds the way the official client expects.
//!
//! The virtual environment lives in `target/tmp/python-sdk-venv` and is reused once
//! `azure-identity` and `azure-keyvault-secrets` import. The test passes with a printed
//! skip notice only when pip cannot reach PyPI; every other failure fails it.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

const PACKAGES: &[&str] = &["azure-identity", "azure-keyvault-secrets"];

/// Runs `command` to completion, killing it by its pid after `limit`.
fn run(command: &mut Command, limit: Duration) -> Output {
    let description = format!("{command:?}");
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|error| panic!("starting {description} failed: {error}"));
    let stdout = child.stdout.take().expect("stdout is piped");
    let stderr = child.stderr.take().expect("stderr is piped");
    let read = |mut pipe: Box<dyn std::io::Read + Send>| {
        std::thread::spawn(move || {
            let mut bytes = Vec::new();
            let _ = pipe.read_to_end(&mut bytes);
            bytes
        })
    };
    let stdout = read(Box::new(stdout));
    let stderr = read(Box::new(stderr));

    let deadline = Instant::now() + limit;
    let status = loop {
        if let Some(status) = child.try_wait().expect("waiting for the child") {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{description} did not finish within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    Output {
        status,
        stdout: stdout.join().expect("stdout reader"),
        stderr: stderr.join().expect("stderr reader"),
    }
}

fn venv_python(venv: &Path) -> PathBuf {
    venv.join("bin").join("python")
}

fn packages_import(python: &Path) -> bool {
    python.exists()
        && run(
            Command::new(python).args(["-c", "import azure.identity, azure.keyvault.secrets"]),
            Duration::from_secs(60),
        )
        .status
        .success()
}

#[test]
fn python_sdk_reads_secrets_from_emulator() {
    let venv = Path::new(env!("CARGO_TARGET_TMPDIR")).join("python-sdk-venv");
    let python = venv_python(&venv);

    if !packages_import(&python) {
        if !python.exists() {
            let created = run(
                Command::new("python3").args(["-m", "venv"]).arg(&venv),
                Duration::from_secs(120),
            );
            assert!(
                created.status.success(),
                "creating a virtual environment with `python3 -m venv` failed:\n{}",
                String::from_utf8_lossy(&created.stderr)
            );
        }

        let probe = run(
            Command::new(&python).args(["-m", "pip", "index", "versions", PACKAGES[0]]),
            Duration::from_secs(240),
        );
        if !probe.status.success() {
            println!(
                "SKIPPED: pip cannot reach PyPI, so Microsoft's Python SDK cannot be installed:\n{}",
                String::from_utf8_lossy(&probe.stderr)
            );
            return;
        }

        let installed = run(
            Command::new(&python)
                .args(["-m", "pip", "install", "--quiet"])
                .args(PACKAGES),
            Duration::from_secs(600),
        );
        assert!(
            installed.status.success(),
            "pip install {} failed:\n{}",
            PACKAGES.join(" "),
            String::from_utf8_lossy(&installed.stderr)
        );
    }

    let script = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests")
        .join("python_sdk.py");
    let output = run(
        Command::new(&python)
            .arg(&script)
            .arg(env!("CARGO_BIN_EXE_kv-emulator"))
            // A clean environment: no proxy may intercept, no AZURE_* variable may steer the SDK.
            .env_clear()
            .env("PATH", "/usr/bin:/bin")
            .env("PYTHONIOENCODING", "utf-8"),
        Duration::from_secs(120),
    );
    println!("{}", String::from_utf8_lossy(&output.stdout));
    assert!(
        output.status.success(),
        "python_sdk.py failed:\n{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}
