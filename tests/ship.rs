//! kvexec as it ships: the static binary from `scripts/build-static` run in an empty root
//! directory, the examples in docs/examples run outside Docker and Kubernetes, and the
//! completion scripts, man page and version line.
//!
//! The static tests need the Rust target x86_64-unknown-linux-musl, a musl C compiler
//! (Debian's musl-tools) and util-linux `unshare`. Without them they print a SKIPPED notice
//! and pass, except when the CI variable is set: there a missing prerequisite fails the
//! test, so that a CI machine without them cannot pass unnoticed, unless .ci/run could not
//! install them and said why in KVEXEC_STATIC_UNAVAILABLE. The example tests parse
//! the Dockerfile and YAML with packages from PyPI, installed into a virtual environment
//! under target/tmp, and skip with a notice when PyPI cannot be reached, under CI too.

mod common;

use clap::CommandFactory;
use common::{demo, Emulator, Kvexec};
use kvexec::reference::{self, Reference, Scan, Selector};
use kvexec_emulator::{Secret, Vault};
use serde_json::Value;
use std::collections::BTreeMap;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

const MUSL_TARGET: &str = "x86_64-unknown-linux-musl";
const REPOSITORY: &str = env!("CARGO_MANIFEST_DIR");
const UNSHARE: &str = "/usr/bin/unshare";

/// A first build of the static binary compiles every dependency for musl, several minutes
/// on two cores.
const BUILD_TIMEOUT: Duration = Duration::from_secs(30 * 60);

/// Source of a small job used as COMMAND in the empty root, where there is no shell and no
/// `env`. It prints its environment as `env -0` does, and its arguments to stderr.
const PRINT_ENV_SOURCE: &str = r#"
use std::io::Write;
use std::os::unix::ffi::OsStrExt;

fn main() {
    let mut stdout = std::io::stdout().lock();
    for (name, value) in std::env::vars_os() {
        stdout.write_all(name.as_bytes()).unwrap();
        stdout.write_all(b"=").unwrap();
        stdout.write_all(value.as_bytes()).unwrap();
        stdout.write_all(b"\0").unwrap();
    }
    for arg in std::env::args_os().skip(1) {
        eprintln!("print-env argument: {}", arg.to_string_lossy());
    }
}
"#;

// ---------------------------------------------------------------------------------------
// Generated text: completions, man page, version

/// Long names of every visible flag, from kvexec's clap definition.
fn long_flags() -> Vec<String> {
    kvexec::cli::Cli::command()
        .get_arguments()
        .filter(|arg| !arg.is_hide_set())
        .filter_map(|arg| arg.get_long().map(str::to_string))
        .collect()
}

fn kvexec_stdout(args: &[&str]) -> String {
    let outcome = Kvexec::bare().args(args).run();
    outcome.assert_success();
    assert!(outcome.stderr.is_empty(), "stderr of kvexec {args:?}: {}", outcome.stderr_text());
    outcome.stdout_text()
}

#[test]
fn bash_completion_offers_flags() {
    let script = kvexec_stdout(&["--completions", "bash"]);
    for flag in long_flags() {
        assert!(script.contains(&format!("--{flag}")), "bash completion lacks --{flag}");
    }

    // Source the script in bash and complete `kvexec --chec`, as bash does on Tab.
    let directory = tempfile::tempdir().unwrap();
    let path = common::write_file(directory.path(), "kvexec.bash", &script);
    let driver = r#"source "$1"
COMP_WORDS=(kvexec --chec); COMP_CWORD=1; COMP_LINE="kvexec --chec"; COMP_POINT=${#COMP_LINE}
_kvexec kvexec --chec kvexec
printf '%s\n' "${COMPREPLY[@]}""#;
    let output = run(
        Command::new("bash").args(["-c", driver, "bash"]).arg(&path),
        Duration::from_secs(60),
    );
    assert!(output.status.success(), "bash failed: {}", String::from_utf8_lossy(&output.stderr));
    let replies = String::from_utf8_lossy(&output.stdout);
    assert_eq!(replies.trim(), "--check", "completions offered for `kvexec --chec`");
}

#[test]
fn zsh_and_fish_completions_generate() {
    let zsh = kvexec_stdout(&["--completions", "zsh"]);
    assert!(zsh.starts_with("#compdef kvexec"), "zsh completion starts with: {:.40}", zsh);
    let fish = kvexec_stdout(&["--completions", "fish"]);
    for flag in long_flags() {
        assert!(zsh.contains(&format!("--{flag}")), "zsh completion lacks --{flag}");
        assert!(fish.contains(&format!("-l {flag}")), "fish completion lacks -l {flag}");
    }
}

#[test]
fn man_page_has_sections_and_flags() {
    let page = kvexec_stdout(&["--man"]);
    for section in [".SH NAME", ".SH SYNOPSIS", ".SH DESCRIPTION", ".SH OPTIONS", ".SH \"EXIT STATUS\""] {
        assert!(page.contains(section), "man page lacks {section}");
    }
    assert!(page.contains("kvexec \\- Resolve Azure Key Vault references"), "NAME line");
    // roff escapes each '-' in an option name as '\-'.
    for flag in long_flags() {
        let escaped = format!("\\-\\-{}", flag.replace('-', "\\-"));
        assert!(page.contains(&escaped), "man page lacks {escaped}");
    }
}

#[test]
fn version_names_crate_and_commit() {
    let version = kvexec_stdout(&["--version"]);
    let expected = match head_commit() {
        Some(commit) => format!("kvexec {} (commit {commit})\n", env!("CARGO_PKG_VERSION")),
        None => format!("kvexec {}\n", env!("CARGO_PKG_VERSION")),
    };
    assert_eq!(version, expected);
}

/// HEAD's abbreviated commit when the repository is a git work tree, as build.rs finds it.
fn head_commit() -> Option<String> {
    let output = Command::new("git")
        .args(["rev-parse", "--short=12", "HEAD"])
        .current_dir(REPOSITORY)
        .output()
        .ok()?;
    output
        .status
        .success()
        .then(|| String::from_utf8_lossy(&output.stdout).trim().to_string())
}

// ---------------------------------------------------------------------------------------
// The static binary in an empty root

#[test]
fn static_binary_resolves_in_empty_root() {
    let Some(kvexec) = static_kvexec() else { return };
    let Some(unshare) = unshare_flags() else { return };
    let emulator = common::demo_emulator();
    let root = empty_root(kvexec);
    std::fs::write(root.path().join("ca.pem"), emulator.ca_pem()).unwrap();
    copy_file(print_env(), &root.path().join("print-env"));

    let outcome = in_root(root.path(), unshare)
        .env("SSL_CERT_FILE", "/ca.pem")
        .env("KVEXEC_RESOLVE", emulator.resolve_args())
        .env("AZURE_TENANT_ID", demo::TENANT_ID)
        .env("AZURE_CLIENT_ID", demo::CLIENT_ID)
        .env("AZURE_CLIENT_SECRET", demo::CLIENT_SECRET)
        .env("DB_PASSWORD", common::secret_url(demo::PASSWORD_SECRET))
        .args(["/kvexec", "--", "/print-env", "--since", "24h"])
        .run();

    outcome
        .assert_success()
        .assert_var("DB_PASSWORD", demo::PASSWORD_VALUE)
        .assert_no_var("AZURE_CLIENT_SECRET")
        .assert_output_lacks(demo::CLIENT_SECRET);
    assert!(
        outcome.stderr_text().contains("print-env argument: --since\nprint-env argument: 24h\n"),
        "the job's arguments; stderr:\n{}",
        outcome.stderr_text()
    );
}

#[test]
fn static_binary_falls_back_to_bundled_roots() {
    let Some(kvexec) = static_kvexec() else { return };
    let Some(unshare) = unshare_flags() else { return };
    let emulator = common::demo_emulator();
    let root = empty_root(kvexec);

    // No SSL_CERT_FILE and no /etc/ssl: kvexec must fall back to its bundled Mozilla roots,
    // which do not include the emulator's CA, so the TLS handshake fails.
    let outcome = in_root(root.path(), unshare)
        .env("KVEXEC_LOG", "kvexec=debug")
        .env("KVEXEC_TIMEOUT", "5")
        .env("KVEXEC_RESOLVE", emulator.resolve_args())
        .env("AZURE_TENANT_ID", demo::TENANT_ID)
        .env("AZURE_CLIENT_ID", demo::CLIENT_ID)
        .env("AZURE_CLIENT_SECRET", demo::CLIENT_SECRET)
        .env("DB_PASSWORD", common::secret_url(demo::PASSWORD_SECRET))
        .args(["/kvexec", "--check"])
        .run();

    let stderr = outcome.stderr_text();
    let output = format!("{}{stderr}", outcome.stdout_text());
    assert_eq!(outcome.code(), Some(1), "exit status of --check; output:\n{output}");
    assert!(
        stderr.contains("no system trust roots found, using the bundled Mozilla roots"),
        "the fallback to bundled roots is logged; stderr:\n{stderr}"
    );
    assert!(!output.contains("cannot load trust roots"), "output:\n{output}");
    // rustls names the reason; at debug level kvexec logs it for each failed connection.
    assert!(
        output.contains("UnknownIssuer") || output.to_ascii_lowercase().contains("unknown issuer"),
        "the failure names the untrusted certificate; output:\n{output}"
    );

    // kvexec reached the emulator over loopback, then rejected its certificate.
    let stats = emulator.stats();
    assert!(stats.tcp_connections > 0, "no connection reached the emulator");
    assert_eq!(stats.tls_connections, 0, "a TLS handshake completed");
    assert_eq!(stats.total_requests(), 0, "a request got through");
}

#[test]
fn job_replaces_kvexec_as_pid_one() {
    let Some(user_namespace) = unshare_flags() else { return };
    // In a new PID namespace kvexec starts as PID 1, as in a container. The job reports
    // its PID, then waits for SIGTERM, which only a handler can receive at PID 1.
    // The job gives up by itself after about 60 s, and --kill-child ends the namespace
    // when unshare is killed, so a failed test leaves nothing running.
    let job = r#"trap 'echo got SIGTERM; exit 7' TERM; echo "pid=$$"
i=0; while [ $i -lt 600 ]; do sleep 0.1; i=$((i + 1)); done; exit 3"#;
    let unshare = Command::new(UNSHARE)
        .args(user_namespace)
        .args(["--pid", "--fork", "--kill-child", "--", common::KVEXEC, "--", "/bin/sh", "-c", job])
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("starting unshare failed");
    let mut unshare = KillOnDrop(unshare);
    let unshare = &mut unshare.0;
    let stderr = read_all(unshare.stderr.take().unwrap());
    let (lines_sender, lines) = std::sync::mpsc::channel();
    let stdout = unshare.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in std::io::BufRead::lines(std::io::BufReader::new(stdout)) {
            let _ = lines_sender.send(line.unwrap());
        }
    });
    let started = Instant::now();
    let first = lines.recv_timeout(Duration::from_secs(60)).expect("the job printed nothing within 60 s");
    assert_eq!(first, "pid=1", "the job runs as PID 1 of the namespace");

    // From outside, the namespace's PID 1 is the process that unshare forked. kvexec was
    // that process, and exec made it the shell.
    let children = format!("/proc/{0}/task/{0}/children", unshare.id());
    let children = std::fs::read_to_string(&children).unwrap();
    let pid_one: i32 = children.split_whitespace().next().unwrap().parse().unwrap();
    let executable = std::fs::read_link(format!("/proc/{pid_one}/exe")).unwrap();
    assert!(!executable.ends_with("kvexec"), "PID 1 still runs {}", executable.display());
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid_one), nix::sys::signal::Signal::SIGTERM).unwrap();

    let status = loop {
        if let Some(status) = unshare.try_wait().unwrap() {
            break status;
        }
        assert!(started.elapsed() < Duration::from_secs(60), "the job did not end within 60 s of SIGTERM");
        std::thread::sleep(Duration::from_millis(20));
    };
    let stderr = String::from_utf8_lossy(&stderr.join().unwrap()).into_owned();
    let rest: Vec<String> = lines.iter().collect();
    assert_eq!(rest, ["got SIGTERM"], "the job's output after its PID; stderr:\n{stderr}");
    assert_eq!(status.code(), Some(7), "the job's exit status passes through unshare");
}

/// Kills a child process by its pid when a test ends, also when it fails.
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Creates a root directory that contains only `/kvexec`: no /etc, so no /etc/ssl, no
/// /etc/resolv.conf and no /etc/hosts, and no libc.
fn empty_root(kvexec: &Path) -> tempfile::TempDir {
    let root = tempfile::tempdir().unwrap();
    copy_file(kvexec, &root.path().join("kvexec"));
    root
}

/// Prepares a run of a program inside `root` with only the variables set on the returned
/// [`Kvexec`]: not even PATH.
fn in_root(root: &Path, unshare: &[&str]) -> Kvexec {
    Kvexec::bare()
        .env_remove("PATH")
        .program(UNSHARE)
        .args(unshare)
        .arg(format!("--root={}", root.display()))
}

/// Returns the flags that make `unshare` change the root directory. A new user namespace
/// (`--map-root-user`) works without privileges where the kernel allows it. Otherwise root
/// can change the root directory in the current namespaces. The network namespace stays
/// the host's, so 127.0.0.1 reaches the emulator.
fn unshare_flags() -> Option<&'static [&'static str]> {
    static FLAGS: OnceLock<Result<&'static [&'static str], String>> = OnceLock::new();
    let flags = FLAGS.get_or_init(|| {
        if !Path::new(UNSHARE).exists() {
            return Err(format!("{UNSHARE} (util-linux) is missing"));
        }
        let mut failures = Vec::new();
        for flags in [&["--map-root-user"][..], &[]] {
            let output = run(
                Command::new(UNSHARE).args(flags).args(["--root=/", "/bin/true"]),
                Duration::from_secs(60),
            );
            if output.status.success() {
                return Ok(flags);
            }
            failures.push(format!("unshare {flags:?}: {}", String::from_utf8_lossy(&output.stderr).trim()));
        }
        Err(format!("unshare cannot change the root directory here: {}", failures.join("; ")))
    });
    match flags {
        Ok(flags) => Some(flags),
        Err(reason) => {
            skip(reason, true);
            None
        }
    }
}

/// Builds the static binary once per test run with `scripts/build-static` in the dev
/// profile (a release build costs minutes more). Returns `None` after a skip notice.
fn static_kvexec() -> Option<&'static Path> {
    static BUILT: OnceLock<Result<PathBuf, Problem>> = OnceLock::new();
    match BUILT.get_or_init(build_static) {
        Ok(path) => Some(path),
        Err(Problem::Missing(reason)) => {
            skip(reason, true);
            None
        }
        Err(Problem::Failed(message)) => panic!("{message}"),
    }
}

enum Problem {
    /// A prerequisite is missing: the test is skipped, or fails under CI.
    Missing(String),
    Failed(String),
}

fn build_static() -> Result<PathBuf, Problem> {
    static_prerequisites().map_err(Problem::Missing)?;
    let output = run(
        Command::new(Path::new(REPOSITORY).join("scripts/build-static"))
            .current_dir(REPOSITORY)
            .env("KVEXEC_STATIC_PROFILE", "dev"),
        BUILD_TIMEOUT,
    );
    if !output.status.success() {
        return Err(Problem::Failed(format!(
            "scripts/build-static failed with {}:\n{}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        )));
    }
    let built = PathBuf::from(String::from_utf8_lossy(&output.stdout).trim());
    let out = built.parent().expect("the binary is in TARGET_DIR/static");
    for generated in ["completions/kvexec.bash", "completions/_kvexec", "completions/kvexec.fish", "man/kvexec.1"] {
        let length = std::fs::metadata(out.join(generated)).map(|m| m.len()).unwrap_or(0);
        if length == 0 {
            return Err(Problem::Failed(format!("scripts/build-static did not write {generated}")));
        }
    }

    // A private copy, so that a later build writing TARGET_DIR/static cannot change the
    // binary under a running test.
    let copy = scratch_dir().join("kvexec-static");
    copy_file(&built, &copy);
    Ok(copy)
}

/// Checks for what scripts/build-static would otherwise install.
fn static_prerequisites() -> Result<(), String> {
    let sysroot = run(Command::new(rustc()).args(["--print", "sysroot"]), Duration::from_secs(60));
    let sysroot = PathBuf::from(String::from_utf8_lossy(&sysroot.stdout).trim());
    if !sysroot.join("lib/rustlib").join(MUSL_TARGET).join("lib").is_dir() {
        return Err(format!(
            "the Rust target {MUSL_TARGET} is not installed (rustup target add {MUSL_TARGET})"
        ));
    }
    let has_musl_cc = std::env::var_os("CC_x86_64_unknown_linux_musl").is_some()
        || ["x86_64-linux-musl-gcc", "musl-gcc"].iter().any(|name| on_path(name));
    if !has_musl_cc {
        return Err("no musl C compiler (apt-get install musl-tools)".to_string());
    }
    Ok(())
}

/// Compiles the job stand-in once, for the musl target, so that it runs in the empty root.
fn print_env() -> &'static Path {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT.get_or_init(|| {
        let directory = scratch_dir();
        let source = common::write_file(&directory, "print_env.rs", PRINT_ENV_SOURCE);
        let binary = directory.join("print-env");
        let output = run(
            Command::new(rustc())
                .args(["--edition", "2021", "--target", MUSL_TARGET, "-C", "debuginfo=0", "-o"])
                .arg(&binary)
                .arg(&source),
            Duration::from_secs(300),
        );
        assert!(
            output.status.success(),
            "compiling the print-env job failed:\n{}",
            String::from_utf8_lossy(&output.stderr)
        );
        binary
    })
}

// ---------------------------------------------------------------------------------------
// docs/examples

#[test]
fn dockerfile_builds_and_runs_outside_docker() {
    let Some(parsed) = parsed_examples() else { return };
    let Some(_) = static_kvexec() else { return };
    let Some(unshare) = unshare_flags() else { return };
    let stages = dockerfile_stages(&parsed["docs/examples/Dockerfile"]);

    // The build stage: copy what it copies from the named context "kvexec" (this
    // repository) and run its RUN lines in its WORKDIR. The target directory is the
    // tests' own, so that only kvexec itself is compiled again.
    let build = stages
        .iter()
        .find(|stage| stage.runs("scripts/build-static"))
        .expect("a stage runs scripts/build-static");
    // A fixed path, so that cargo rebuilds the same artifacts on each run instead of adding
    // a new set for each temporary directory.
    let build_root = scratch_dir().join("dockerfile-build-stage");
    let _ = std::fs::remove_dir_all(&build_root);
    std::fs::create_dir_all(&build_root).unwrap();
    let target_dir = Path::new(env!("CARGO_TARGET_TMPDIR")).parent().unwrap().to_path_buf();
    let map_build_path = |image_path: &str| -> PathBuf {
        let workdir_target = format!("{}/target/", build.workdir);
        match image_path.strip_prefix(&workdir_target) {
            Some(rest) => target_dir.join(rest),
            None => build_root.join(image_path.trim_start_matches('/')),
        }
    };
    let mut workdir = PathBuf::from("/");
    for step in &build.steps {
        match step {
            Step::Workdir(path) => workdir = PathBuf::from(path),
            Step::Copy { from, sources, destination } => {
                assert_eq!(from.as_deref(), Some("kvexec"), "the build stage copies from the kvexec context");
                let destination = map_build_path(&resolve_in(&workdir, destination));
                for source in sources {
                    copy_into(&Path::new(REPOSITORY).join(source), &destination, destination_is_dir(sources, step));
                }
            }
            Step::Run(command) => {
                let cwd = map_build_path(&workdir.to_string_lossy());
                std::fs::create_dir_all(&cwd).unwrap();
                let output = run(
                    Command::new("/bin/sh")
                        .args(["-c", command])
                        .current_dir(&cwd)
                        .env("CARGO_TARGET_DIR", &target_dir)
                        .env("KVEXEC_STATIC_PROFILE", "dev")
                        .env_remove("KVEXEC_GIT_COMMIT"),
                    BUILD_TIMEOUT,
                );
                assert!(
                    output.status.success(),
                    "RUN {command} failed:\n{}",
                    String::from_utf8_lossy(&output.stderr)
                );
            }
        }
    }

    // The final stage: its files in an empty root, with the job stand-in in place of the
    // job stage's output.
    let image = stages.last().unwrap();
    let root = tempfile::tempdir().unwrap();
    for step in &image.steps {
        let Step::Copy { from, sources, destination } = step else {
            panic!("the final stage only copies files, found {step:?}");
        };
        assert_eq!(sources.len(), 1, "one file per COPY in the final stage");
        let target = root.path().join(destination.trim_start_matches('/'));
        std::fs::create_dir_all(target.parent().unwrap()).unwrap();
        match from.as_deref() {
            Some(name) if name == build.name => copy_file(&map_build_path(&sources[0]), &target),
            Some(name) => {
                assert!(stages.iter().any(|stage| stage.name == name), "COPY --from={name} names no stage");
                copy_file(print_env(), &target);
            }
            None => panic!("the final stage copies from the build context"),
        }
    }
    let entrypoint = image.entrypoint.clone().expect("the final stage has an ENTRYPOINT in exec form");
    let cmd = image.cmd.clone().expect("the final stage has a CMD in exec form");
    assert_eq!(entrypoint.len(), 2, "ENTRYPOINT is kvexec and --: {entrypoint:?}");
    assert_eq!(entrypoint[1], "--");

    // The binary built without .git names no commit.
    let version = in_root(root.path(), unshare).arg(&entrypoint[0]).arg("--version").run();
    version.assert_success();
    assert_eq!(version.stdout_text(), format!("kvexec {}\n", env!("CARGO_PKG_VERSION")));

    let emulator = common::demo_emulator();
    std::fs::write(root.path().join("ca.pem"), emulator.ca_pem()).unwrap();
    let outcome = in_root(root.path(), unshare)
        .env("SSL_CERT_FILE", "/ca.pem")
        .env("KVEXEC_RESOLVE", emulator.resolve_args())
        .env("AZURE_TENANT_ID", demo::TENANT_ID)
        .env("AZURE_CLIENT_ID", demo::CLIENT_ID)
        .env("AZURE_CLIENT_SECRET", demo::CLIENT_SECRET)
        .env("DB_PASSWORD", common::secret_url(demo::PASSWORD_SECRET))
        .args(&entrypoint)
        .args(&cmd)
        .run();
    outcome.assert_success().assert_var("DB_PASSWORD", demo::PASSWORD_VALUE);
    let expected_args: String = cmd[1..].iter().map(|arg| format!("print-env argument: {arg}\n")).collect();
    assert!(
        outcome.stderr_text().contains(&expected_args),
        "the job gets CMD's arguments; stderr:\n{}",
        outcome.stderr_text()
    );
}

#[test]
fn kubernetes_example_resolves_its_references() {
    let Some(parsed) = parsed_examples() else { return };
    let documents = parsed["docs/examples/kubernetes.yaml"].as_array().unwrap();
    let of_kind = |kind: &str| {
        documents
            .iter()
            .find(|document| document["kind"] == kind)
            .unwrap_or_else(|| panic!("kubernetes.yaml has no {kind}"))
    };

    let account = of_kind("ServiceAccount");
    let client_id = &account["metadata"]["annotations"]["azure.workload.identity/client-id"];
    assert!(client_id.is_string(), "the ServiceAccount names the identity's client ID");

    let pod = &of_kind("CronJob")["spec"]["jobTemplate"]["spec"]["template"];
    // A label value must be a string: an unquoted `true` in YAML is a boolean, which the
    // API server rejects.
    assert_eq!(pod["metadata"]["labels"]["azure.workload.identity/use"], Value::from("true"));
    assert_eq!(pod["spec"]["serviceAccountName"], account["metadata"]["name"]);
    let containers = pod["spec"]["containers"].as_array().unwrap();
    assert_eq!(containers.len(), 1);
    let container = &containers[0];
    assert!(container.get("command").is_none(), "the image's ENTRYPOINT (kvexec) stays");

    // The job named in args is one the Dockerfile's final stage installs.
    let args: Vec<String> = strings(&container["args"]);
    let stages = dockerfile_stages(&parsed["docs/examples/Dockerfile"]);
    let installed: Vec<&String> = stages
        .last()
        .unwrap()
        .steps
        .iter()
        .filter_map(|step| match step {
            Step::Copy { destination, .. } => Some(destination),
            _ => None,
        })
        .collect();
    assert!(installed.contains(&&args[0]), "{} is not installed by the Dockerfile", args[0]);

    // The pod's environment: the ConfigMap's entries, then `env`.
    let mut environment: Vec<(String, String)> = Vec::new();
    for source in container["envFrom"].as_array().unwrap() {
        let name = &source["configMapRef"]["name"];
        let config_map = documents
            .iter()
            .find(|document| document["kind"] == "ConfigMap" && document["metadata"]["name"] == *name)
            .unwrap_or_else(|| panic!("no ConfigMap {name}"));
        for (key, value) in config_map["data"].as_object().unwrap() {
            environment.push((key.clone(), value.as_str().unwrap().to_string()));
        }
    }
    for variable in container["env"].as_array().unwrap() {
        let value = variable["value"].as_str().expect("env values are strings");
        environment.push((variable["name"].as_str().unwrap().to_string(), value.to_string()));
    }

    // TODO: the pod authenticates with workload identity. Until kvexec reads
    // AZURE_FEDERATED_TOKEN_FILE, this run uses the emulator's client secret.
    let (emulator, expected) = emulator_for(&environment, None);
    assert!(expected.len() >= 2, "the example resolves references: {environment:?}");
    let mut run = Kvexec::new(&emulator);
    for (name, value) in &environment {
        run = run.env(name, value);
    }
    let outcome = run.report_env().run();
    outcome.assert_success();
    for (variable, value) in &expected {
        outcome.assert_var(variable, value);
    }
}

#[test]
fn scheduler_env_file_runs_prefixed_command() {
    let env_file = Path::new(REPOSITORY).join("docs/examples/nightly.env");
    let entries: Vec<(String, String)> = dotenvy::from_path_iter(&env_file)
        .unwrap()
        .map(|entry| entry.unwrap())
        .collect();
    let default_vault = entries
        .iter()
        .find(|(name, _)| name == "KVEXEC_DEFAULT_VAULT_URL")
        .map(|(_, url)| reference::Vault::parse_url(url).unwrap());
    let (emulator, expected) = emulator_for(&entries, default_vault.as_ref());
    assert!(expected.len() >= 2, "nightly.env holds references");

    // The scheduler's command line prefixed with kvexec, as in docs/scheduler.md.
    let bin = tempfile::tempdir().unwrap();
    let dbt = common::write_file(bin.path(), "dbt", "#!/bin/sh\nprintf 'dbt argument: %s\\n' \"$@\" >&2\nexec /usr/bin/env -0\n");
    std::fs::set_permissions(&dbt, std::fs::Permissions::from_mode(0o755)).unwrap();
    let outcome = Kvexec::new(&emulator)
        .env("PATH", format!("{}:/usr/bin:/bin", bin.path().display()))
        .arg("--env-file")
        .arg(&env_file)
        .args(["--", "dbt", "run"])
        .run();
    outcome.assert_success();
    for (variable, value) in &expected {
        outcome.assert_var(variable, value);
    }
    outcome.assert_var("DBT_USER", "etl_loader");
    assert_eq!(outcome.stderr_text(), "dbt argument: run\n");

    // The guide's test connection before the first scheduled run.
    let check = Kvexec::new(&emulator).arg("--env-file").arg(&env_file).arg("--check").run();
    check.assert_success();
    for value in expected.values() {
        check.assert_output_lacks(value);
    }
}

/// Starts the demo emulator with a vault for each vault the references in `environment`
/// name, holding each referenced secret. A secret's value is `value-of-{name}`, or a JSON
/// object with a `value-of-{name}-{key}` member for each `#key` used. Returns the
/// emulator and the value each reference variable should receive.
fn emulator_for(
    environment: &[(String, String)],
    default_vault: Option<&reference::Vault>,
) -> (Emulator, BTreeMap<String, String>) {
    let mut secrets: BTreeMap<(String, String), Vec<String>> = BTreeMap::new();
    let mut expected = BTreeMap::new();
    for (variable, value) in environment {
        let reference: Reference = match reference::scan_str(value, default_vault) {
            Scan::Plain => continue,
            Scan::Reference(reference) => reference,
            Scan::Malformed(error) => panic!("{variable} holds an invalid reference: {error}"),
        };
        assert_eq!(reference.secret.version, None, "{variable}: the examples use latest versions");
        let name = reference.secret.name.clone();
        let keys = secrets.entry((reference.secret.vault.name.clone(), name.clone())).or_default();
        let value = match &reference.selector {
            None => format!("value-of-{name}"),
            Some(Selector::Member(key)) => {
                keys.push(key.clone());
                format!("value-of-{name}-{key}")
            }
            Some(Selector::Pointer(pointer)) => panic!("{variable}: JSON Pointer {pointer} is not set up here"),
        };
        expected.insert(variable.clone(), value);
    }

    let mut vaults: BTreeMap<String, Vault> = BTreeMap::new();
    for ((vault, name), keys) in secrets {
        let value = if keys.is_empty() {
            format!("value-of-{name}")
        } else {
            let members: serde_json::Map<String, Value> = keys
                .iter()
                .map(|key| (key.clone(), Value::from(format!("value-of-{name}-{key}"))))
                .collect();
            Value::Object(members).to_string()
        };
        let entry = vaults
            .remove(&vault)
            .unwrap_or_else(|| Vault::new(vault.clone(), demo::TENANT_ID));
        vaults.insert(vault, entry.secret(Secret::new(name, value)));
    }
    let mut builder = Emulator::builder().demo();
    for vault in vaults.into_values() {
        builder = builder.vault(vault);
    }
    (builder.start(), expected)
}

/// One stage of a Dockerfile, as far as these tests follow it.
#[derive(Debug)]
struct Stage {
    name: String,
    workdir: String,
    steps: Vec<Step>,
    entrypoint: Option<Vec<String>>,
    cmd: Option<Vec<String>>,
}

impl Stage {
    fn runs(&self, command: &str) -> bool {
        self.steps.iter().any(|step| matches!(step, Step::Run(run) if run == command))
    }
}

#[derive(Debug)]
enum Step {
    Workdir(String),
    Copy {
        from: Option<String>,
        sources: Vec<String>,
        destination: String,
    },
    Run(String),
}

/// Groups the parsed instructions into stages. Panics on any instruction or flag that
/// these tests do not simulate, so a change to the Dockerfile cannot go untested silently.
fn dockerfile_stages(instructions: &Value) -> Vec<Stage> {
    let mut stages: Vec<Stage> = Vec::new();
    for instruction in instructions.as_array().unwrap() {
        let name = instruction["instruction"].as_str().unwrap();
        let value = strings(&instruction["value"]);
        let flags = strings(&instruction["flags"]);
        let line = &instruction["line"];
        let is_json = instruction["json"].as_bool().unwrap();
        if name == "FROM" {
            let stage_name = match value.as_slice() {
                [_image] => String::new(),
                [_image, as_keyword, stage] if as_keyword.eq_ignore_ascii_case("as") => stage.clone(),
                _ => panic!("line {line}: unexpected FROM {value:?}"),
            };
            stages.push(Stage {
                name: stage_name,
                workdir: "/".to_string(),
                steps: Vec::new(),
                entrypoint: None,
                cmd: None,
            });
            continue;
        }
        let stage = stages.last_mut().unwrap_or_else(|| panic!("line {line}: {name} before FROM"));
        match name {
            "WORKDIR" => {
                stage.workdir = value[0].clone();
                stage.steps.push(Step::Workdir(value[0].clone()));
            }
            "COPY" => {
                let mut from = None;
                for flag in &flags {
                    match flag.strip_prefix("--from=") {
                        Some(source) => from = Some(source.to_string()),
                        None => panic!("line {line}: COPY flag {flag} is not simulated"),
                    }
                }
                let (destination, sources) = value.split_last().unwrap();
                stage.steps.push(Step::Copy {
                    from,
                    sources: sources.to_vec(),
                    destination: destination.clone(),
                });
            }
            "RUN" => {
                assert!(!is_json, "line {line}: RUN in shell form");
                assert!(flags.is_empty(), "line {line}: RUN flags {flags:?} are not simulated");
                stage.steps.push(Step::Run(value[0].clone()));
            }
            // Exec form, because the shell form runs `/bin/sh -c`, which a distroless image
            // lacks and which would take PID 1 away from kvexec and the job.
            "ENTRYPOINT" => {
                assert!(is_json, "line {line}: ENTRYPOINT must be in exec (JSON) form");
                stage.entrypoint = Some(value);
            }
            "CMD" => {
                assert!(is_json, "line {line}: CMD must be in exec (JSON) form");
                stage.cmd = Some(value);
            }
            other => panic!("line {line}: {other} is not simulated by this test"),
        }
    }
    stages
}

/// Returns whether a COPY's destination is a directory: with several sources or a
/// trailing `/`.
fn destination_is_dir(sources: &[String], step: &Step) -> bool {
    let Step::Copy { destination, .. } = step else { unreachable!() };
    sources.len() > 1 || destination.ends_with('/')
}

/// Resolves a COPY destination against WORKDIR, as Docker does for relative paths, and
/// keeps a trailing `/`. `.` components are dropped, because `create_dir_all` fails on a
/// path ending in `/.` whose parent does not exist yet.
fn resolve_in(workdir: &Path, destination: &str) -> String {
    let joined: PathBuf = workdir
        .join(destination)
        .components()
        .filter(|component| *component != std::path::Component::CurDir)
        .collect();
    let mut resolved = joined.to_string_lossy().into_owned();
    if destination.ends_with('/') && !resolved.ends_with('/') {
        resolved.push('/');
    }
    resolved
}

/// Copies as Docker's COPY does: a directory's contents into `destination`, a file into
/// `destination` when that is a directory, else to `destination` itself.
fn copy_into(source: &Path, destination: &Path, destination_is_dir: bool) {
    if source.is_dir() {
        std::fs::create_dir_all(destination).unwrap();
        for entry in std::fs::read_dir(source).unwrap() {
            let entry = entry.unwrap();
            let path = entry.path();
            if path.is_dir() {
                copy_into(&path, &destination.join(entry.file_name()), true);
            } else {
                copy_file(&path, &destination.join(entry.file_name()));
            }
        }
    } else if destination_is_dir {
        std::fs::create_dir_all(destination).unwrap();
        copy_file(source, &destination.join(source.file_name().unwrap()));
    } else {
        copy_file(source, destination);
    }
}

/// The examples parsed by tests/parse_examples.py, keyed by their path from the
/// repository root, or `None` after a skip notice when PyPI cannot be reached.
fn parsed_examples() -> Option<&'static Value> {
    static PARSED: OnceLock<Result<Value, String>> = OnceLock::new();
    let parsed = PARSED.get_or_init(|| {
        let python = python_with(&["dockerfile>=3.4,<4", "PyYAML>=6,<7"], "import dockerfile, yaml")?;
        let output = run(
            Command::new(python)
                .arg("tests/parse_examples.py")
                .args(["docs/examples/Dockerfile", "docs/examples/kubernetes.yaml"])
                .current_dir(REPOSITORY),
            Duration::from_secs(120),
        );
        assert!(
            output.status.success(),
            "parse_examples.py failed:\n{}",
            String::from_utf8_lossy(&output.stderr)
        );
        Ok(serde_json::from_slice(&output.stdout).expect("parse_examples.py prints JSON"))
    });
    match parsed {
        Ok(value) => Some(value),
        Err(reason) => {
            skip(reason, false);
            None
        }
    }
}

/// A virtual environment under target/tmp in which `import_check` succeeds, installing
/// `packages` when needed. Returns its python, or why PyPI could not be reached.
fn python_with(packages: &[&str], import_check: &str) -> Result<PathBuf, String> {
    let venv = scratch_dir().join("examples-venv");
    let python = venv.join("bin/python");
    let imports = |python: &Path| {
        python.exists() && run(Command::new(python).args(["-c", import_check]), Duration::from_secs(60)).status.success()
    };
    if imports(&python) {
        return Ok(python);
    }
    if !python.exists() {
        let created = run(Command::new("python3").args(["-m", "venv"]).arg(&venv), Duration::from_secs(120));
        assert!(
            created.status.success(),
            "creating a virtual environment with `python3 -m venv` failed:\n{}",
            String::from_utf8_lossy(&created.stderr)
        );
    }
    let installed = run(
        Command::new(&python).args(["-m", "pip", "install", "--quiet"]).args(packages),
        Duration::from_secs(600),
    );
    if !installed.status.success() {
        let stderr = String::from_utf8_lossy(&installed.stderr);
        let unreachable = ["Could not find a version", "connection", "Connection", "Network"]
            .iter()
            .any(|needle| stderr.contains(needle));
        assert!(unreachable, "pip install {} failed:\n{stderr}", packages.join(" "));
        return Err(format!("pip cannot install {} from PyPI:\n{stderr}", packages.join(" ")));
    }
    assert!(imports(&python), "`{import_check}` fails after pip install");
    Ok(python)
}

// ---------------------------------------------------------------------------------------
// Helpers

/// Prints why a test does not run. Under CI a missing prerequisite that CI can install
/// (`required_in_ci`) fails the test instead.
fn skip(reason: &str, required_in_ci: bool) {
    // .ci/run sets KVEXEC_STATIC_UNAVAILABLE when it could not install the musl target, so
    // that CI reports the gap instead of failing on a machine that cannot download it.
    let unavailable = std::env::var("KVEXEC_STATIC_UNAVAILABLE").ok();
    if required_in_ci && std::env::var_os("CI").is_some() && unavailable.is_none() {
        panic!("{reason}; CI must install this (see the comment at the top of tests/ship.rs)");
    }
    // Written to the stderr handle itself, which the test harness does not capture, so
    // the notice shows in `cargo test` output even when the test passes.
    let _ = writeln!(std::io::stderr(), "SKIPPED: {reason}{}", unavailable.map(|why| format!(" ({why})")).unwrap_or_default());
}

fn strings(value: &Value) -> Vec<String> {
    value
        .as_array()
        .unwrap_or_else(|| panic!("expected an array, found {value}"))
        .iter()
        .map(|item| item.as_str().unwrap().to_string())
        .collect()
}

fn scratch_dir() -> PathBuf {
    let directory = Path::new(env!("CARGO_TARGET_TMPDIR")).join("ship");
    std::fs::create_dir_all(&directory).unwrap();
    directory
}

fn rustc() -> std::ffi::OsString {
    std::env::var_os("RUSTC").unwrap_or_else(|| "rustc".into())
}

fn on_path(name: &str) -> bool {
    std::env::var_os("PATH")
        .map(|path| std::env::split_paths(&path).any(|directory| directory.join(name).is_file()))
        .unwrap_or(false)
}

/// Copies a file with its permissions, writing a temporary file first and renaming it, so
/// that nothing ever runs a half-written binary.
fn copy_file(source: &Path, destination: &Path) {
    let temporary = destination.with_extension(format!("tmp{}", std::process::id()));
    std::fs::copy(source, &temporary)
        .unwrap_or_else(|error| panic!("copying {} failed: {error}", source.display()));
    std::fs::rename(&temporary, destination).unwrap();
}

/// Runs `command` to completion with stdin from /dev/null, killing it by its pid after
/// `limit`.
fn run(command: &mut Command, limit: Duration) -> Output {
    let description = format!("{:?}", command.get_program());
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|error| panic!("starting {description} failed: {error}"));
    let stdout = read_all(child.stdout.take().unwrap());
    let stderr = read_all(child.stderr.take().unwrap());
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if started.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{description} did not finish within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    Output {
        status,
        stdout: stdout.join().unwrap(),
        stderr: stderr.join().unwrap(),
    }
}

fn read_all(mut pipe: impl std::io::Read + Send + 'static) -> std::thread::JoinHandle<Vec<u8>> {
    std::thread::spawn(move || {
        let mut bytes = Vec::new();
        let _ = pipe.read_to_end(&mut bytes);
        bytes
    })
}
