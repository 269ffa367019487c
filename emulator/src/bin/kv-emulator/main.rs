//! `kv-emulator`: runs the Entra ID and Key Vault emulator with the demo seed, prints one
//! JSON line saying how to reach it, and serves until stdin closes or `--exit-after`
//! seconds pass.

mod seed;

use clap::Parser;
use kvexec_emulator::{demo, Emulator, Secret, Throttle};
use serde_json::json;
use std::io::{BufRead, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::mpsc;
use std::time::Duration;

#[derive(Parser)]
#[command(
    name = "kv-emulator",
    version,
    about = "Local Entra ID and Azure Key Vault emulator over TLS on 127.0.0.1",
    after_help = "Stops when stdin reaches end of file (unless --ignore-stdin) or after --exit-after seconds.\n\
                  Log verbosity: KV_EMULATOR_LOG (a tracing filter such as debug), default warn."
)]
struct Args {
    /// Port on 127.0.0.1 to listen on; 0 picks a free port.
    #[arg(long, default_value_t = 0)]
    port: u16,

    /// Delay added before every response, in milliseconds.
    #[arg(long, default_value_t = 0)]
    latency_ms: u64,

    /// Requests admitted per second per vault; the excess gets 429 Throttled. 0 disables
    /// throttling.
    #[arg(long, default_value_t = 0)]
    throttle_rps: u32,

    /// Retry-After value in seconds sent with throttled responses; without it the header
    /// is omitted, as in captured Key Vault 429s.
    #[arg(long, requires = "throttle_rps")]
    throttle_retry_after: Option<u64>,

    /// JSON file with more tenants, applications, managed identities and vaults, added to
    /// the demo seed.
    #[arg(long, value_name = "FILE")]
    seed: Option<PathBuf>,

    /// Adds this many secrets named bulk-1 … bulk-N (value "bulk-value-N") to the demo
    /// vault, for benchmarks.
    #[arg(long, default_value_t = 0, value_name = "N")]
    bulk_secrets: u32,

    /// Seconds after which the emulator stops by itself.
    #[arg(long, default_value_t = 3600, value_name = "SECONDS")]
    exit_after: u64,

    /// Keeps serving when stdin closes, e.g. when started in the background with stdin
    /// redirected from /dev/null; only --exit-after stops it then.
    #[arg(long)]
    ignore_stdin: bool,

    /// Directory to write the CA certificate into; default is a temporary directory
    /// removed at exit.
    #[arg(long, value_name = "DIR")]
    ca_dir: Option<PathBuf>,

    /// Offers HTTP/1.1 only instead of HTTP/2 and HTTP/1.1.
    #[arg(long)]
    http1_only: bool,

    /// Prints one more JSON line with the request counters when stopping.
    #[arg(long)]
    print_stats: bool,
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("KV_EMULATOR_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .init();

    let args = Args::parse();
    raise_open_file_limit();
    match run(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("kv-emulator: {message}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: Args) -> Result<(), String> {
    let mut builder = Emulator::builder()
        .demo()
        .port(args.port)
        .latency(Duration::from_millis(args.latency_ms))
        .http2(!args.http1_only);
    if args.throttle_rps > 0 {
        builder = builder.throttle(Throttle {
            requests_per_second: args.throttle_rps,
            retry_after: args.throttle_retry_after,
        });
    }
    if let Some(directory) = &args.ca_dir {
        builder = builder.ca_dir(directory);
    }
    for index in 1..=args.bulk_secrets {
        builder = builder.secret(
            demo::VAULT_NAME,
            Secret::new(format!("bulk-{index}"), format!("bulk-value-{index}")),
        );
    }
    if let Some(path) = &args.seed {
        let text = std::fs::read_to_string(path)
            .map_err(|error| format!("reading the seed file {} failed: {error}", path.display()))?;
        let seed = seed::Seed::parse(&text)
            .map_err(|error| format!("the seed file {} is not valid: {error}", path.display()))?;
        builder = seed
            .apply(builder)
            .map_err(|error| format!("the seed file {} is not valid: {error}", path.display()))?;
    }

    let emulator = builder.try_start().map_err(|error| error.to_string())?;
    let ready = json!({
        "port": emulator.port(),
        "ca_file": emulator.ca_pem_path(),
        "tenant_id": demo::TENANT_ID,
        "client_id": demo::CLIENT_ID,
        "client_secret": demo::CLIENT_SECRET,
        "vault_url": demo::vault_url(),
        "resolve": emulator.resolve_args(),
        "identity_endpoint": emulator.identity_endpoint(),
        "identity_header": emulator.identity_header(),
        "imds_endpoint": emulator.imds_endpoint(),
    });
    print_line(&ready)?;

    let (stop, stopped) = mpsc::channel::<&'static str>();
    if !args.ignore_stdin {
        let stop = stop.clone();
        std::thread::spawn(move || {
            // Whatever is written to stdin is ignored; only its end matters.
            let mut sink = Vec::new();
            let mut stdin = std::io::stdin().lock();
            while matches!(stdin.read_until(b'\n', &mut sink), Ok(n) if n > 0) {
                sink.clear();
            }
            let _ = stop.send("stdin closed");
        });
    }
    let reason = stopped
        .recv_timeout(Duration::from_secs(args.exit_after))
        .unwrap_or("--exit-after elapsed");
    tracing::info!(reason, "stopping");

    if args.print_stats {
        let stats = emulator.stats();
        let token_requests: Vec<_> = stats
            .token_requests
            .iter()
            .map(|((tenant, resource), count)| json!({"tenant": tenant, "resource": resource, "count": count}))
            .collect();
        print_line(&json!({
            "stats": {
                "token_requests": token_requests,
                "total_token_requests": stats.total_token_requests(),
                "total_secret_reads": stats.total_secret_reads(),
                "secret_reads": stats.secret_reads.iter().map(|(read, count)| json!({
                    "vault_host": read.vault_host, "name": read.name, "version": read.version, "count": count,
                })).collect::<Vec<_>>(),
                "requests_by_host": stats.requests_by_host,
                // Counts only: the credentials themselves are never printed.
                "requests_with_authorization": stats.authorization_by_host.iter()
                    .map(|(host, credentials)| (host.clone(), credentials.len()))
                    .collect::<std::collections::BTreeMap<_, _>>(),
                "max_in_flight": stats.max_in_flight,
                "tcp_connections": stats.tcp_connections,
                "tls_connections": stats.tls_connections,
                "http2_connections": stats.http2_connections,
            }
        }))?;
    }
    emulator.stop();
    Ok(())
}

/// Raises the soft limit on open files to the hard limit. The emulator holds two
/// descriptors per connection (one to reset it on demand), and a benchmark may open
/// hundreds of connections while common soft limits are 1024.
fn raise_open_file_limit() {
    use nix::sys::resource::{getrlimit, setrlimit, Resource};
    match getrlimit(Resource::RLIMIT_NOFILE) {
        Ok((soft, hard)) if soft < hard => {
            if let Err(error) = setrlimit(Resource::RLIMIT_NOFILE, hard, hard) {
                tracing::warn!(%error, soft, hard, "raising the open file limit failed");
            }
        }
        Ok(_) => {}
        Err(error) => tracing::warn!(%error, "reading the open file limit failed"),
    }
}

fn print_line(value: &serde_json::Value) -> Result<(), String> {
    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "{value}")
        .and_then(|()| stdout.flush())
        .map_err(|error| format!("writing to stdout failed: {error}"))
}
