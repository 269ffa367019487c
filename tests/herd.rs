//! A herd of kvexec processes started at once against one throttled vault: all of them
//! must succeed without a retry storm, and with too short a deadline all of them must stop
//! in time and report what was left unresolved.
//!
//! Every process reads the same 40 secrets, as the pods of one deployment do. The emulator
//! admits a fixed number of requests per vault and second and answers the rest with 429
//! and `Retry-After: 1`.

mod common;

use common::{demo, Emulator, Kvexec, Outcome, KVEXEC_FAILURE};
use kvexec_emulator::{Secret, Throttle};
use std::sync::{Barrier, Mutex};
use std::time::{Duration, Instant};

const PROCESSES: usize = 50;
const REFERENCES: usize = 40;

/// Requests admitted per second: Key Vault's 4,000 per 10 s, averaged over each second.
const RATE: u32 = 400;

/// Each herd uses both cores, so the tests in this file take turns.
static ONE_HERD_AT_A_TIME: Mutex<()> = Mutex::new(());

fn secret_name(index: usize) -> String {
    format!("herd-secret-{index:02}")
}

fn secret_value(index: usize) -> String {
    format!("herd-value-{index:02}-a8f3")
}

fn variable(index: usize) -> String {
    format!("HERD_{index:02}")
}

fn herd_emulator(requests_per_second: u32) -> Emulator {
    let mut builder = Emulator::builder().demo().throttle(Throttle {
        requests_per_second,
        retry_after: Some(1),
    });
    for index in 0..REFERENCES {
        builder = builder.secret(demo::VAULT_NAME, Secret::new(secret_name(index), secret_value(index)));
    }
    builder.start()
}

fn herd_member(emulator: &Emulator, timeout_seconds: &str) -> Kvexec {
    let mut kvexec = Kvexec::new(emulator).arg("--timeout").arg(timeout_seconds);
    for index in 0..REFERENCES {
        kvexec = kvexec.env(variable(index), common::secret_url(&secret_name(index)));
    }
    kvexec.report_env().timeout(Duration::from_secs(90))
}

/// Starts `PROCESSES` runs at the same moment and waits for all of them.
fn run_herd(emulator: &Emulator, timeout_seconds: &str) -> (Vec<Outcome>, Duration) {
    let barrier = Barrier::new(PROCESSES);
    let started = Instant::now();
    let outcomes = std::thread::scope(|scope| {
        let runs: Vec<_> = (0..PROCESSES)
            .map(|_| {
                let barrier = &barrier;
                let kvexec = herd_member(emulator, timeout_seconds);
                scope.spawn(move || {
                    barrier.wait();
                    kvexec.run()
                })
            })
            .collect();
        runs.into_iter()
            .map(|run| run.join().expect("a herd thread panicked"))
            .collect()
    });
    (outcomes, started.elapsed())
}

#[test]
fn herd_succeeds_without_retry_storm() {
    let _turn = ONE_HERD_AT_A_TIME.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    let emulator = herd_emulator(RATE);

    let (outcomes, elapsed) = run_herd(&emulator, "30");

    for outcome in &outcomes {
        outcome.assert_success();
        for index in 0..REFERENCES {
            outcome.assert_var(&variable(index), secret_value(index));
        }
    }

    let stats = emulator.stats();
    let vault_host = demo::vault_host();
    let minimum_reads = (PROCESSES * REFERENCES) as u64;
    // A perfect client sends one token request and one GET per reference.
    let minimum_requests = (PROCESSES * (REFERENCES + 1)) as u64;
    let slowest = outcomes.iter().map(|outcome| outcome.elapsed).max().unwrap_or_default();
    eprintln!(
        "herd: {PROCESSES} processes x {REFERENCES} references at {RATE} requests/s: \
         wall {:.1}s, slowest process {:.1}s, {} requests in total (minimum {minimum_requests}, \
         ratio {:.2}), {} secret reads (minimum {minimum_reads}), {} requests to the vault host, \
         {} token requests, {} TLS connections",
        elapsed.as_secs_f64(),
        slowest.as_secs_f64(),
        stats.total_requests(),
        stats.total_requests() as f64 / minimum_requests as f64,
        stats.total_secret_reads(),
        stats.requests_to(&vault_host),
        stats.total_token_requests(),
        stats.tls_connections,
    );

    assert_eq!(stats.total_token_requests(), PROCESSES as u64, "one token per process");
    for index in 0..REFERENCES {
        let reads = stats.reads_of(&vault_host, &secret_name(index));
        assert!(reads >= PROCESSES as u64, "{} was read {reads} times", secret_name(index));
    }
    assert!(
        stats.total_requests() * 2 <= minimum_requests * 3,
        "{} requests in total, more than 1.5 times the minimum of {minimum_requests}",
        stats.total_requests()
    );
    assert!(
        stats.total_secret_reads() * 2 <= minimum_reads * 3,
        "{} secret reads, more than 1.5 times the minimum of {minimum_reads}",
        stats.total_secret_reads()
    );
}

#[test]
fn herd_past_deadline_reports_what_timed_out() {
    let _turn = ONE_HERD_AT_A_TIME.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    // A deadline of 1.5 s overlaps at most three one-second windows of 10 requests, so no
    // process can fetch 40 secrets in time.
    let emulator = herd_emulator(10);

    let (outcomes, elapsed) = run_herd(&emulator, "1.5");

    let mut resolved_counts = Vec::new();
    for outcome in &outcomes {
        outcome.assert_code(KVEXEC_FAILURE);
        let stderr = outcome.stderr_text();
        assert!(!stderr.contains("panicked"), "{stderr}");
        assert!(outcome.stdout.is_empty(), "the command ran: {}", outcome.stdout_text());

        let summary = stderr
            .lines()
            .find_map(|line| line.strip_prefix("kvexec: resolved "))
            .unwrap_or_else(|| panic!("no summary line in:\n{stderr}"));
        let words: Vec<&str> = summary.split_whitespace().collect();
        let resolved: usize = words[0].parse().unwrap_or_else(|_| panic!("bad summary: {summary}"));
        assert_eq!(words[2], REFERENCES.to_string(), "{summary}");
        assert!(resolved < REFERENCES, "{summary}");
        resolved_counts.push(resolved);

        let timed_out: Vec<&str> = stderr
            .lines()
            .filter(|line| line.contains("timed out after 1.5s waiting for vault"))
            .collect();
        assert_eq!(timed_out.len(), REFERENCES - resolved, "{stderr}");
        for line in &timed_out {
            assert!(line.starts_with("kvexec: HERD_"), "the line does not name the variable: {line}");
        }
        // The deadline covers the fetches; process start and the token add a little.
        assert!(outcome.elapsed < Duration::from_secs(20), "took {:?}", outcome.elapsed);
    }
    // A reference still waiting for its first attempt reports the vault's latest 429.
    let throttle_named = outcomes
        .iter()
        .filter(|outcome| outcome.stderr_text().contains("throttled every attempt (429 Throttled)"))
        .count();
    assert!(throttle_named > 0, "no report names the throttling");

    let slowest = outcomes.iter().map(|outcome| outcome.elapsed).max().unwrap_or_default();
    eprintln!(
        "herd past deadline: wall {:.1}s, slowest process {:.1}s, references resolved per process: \
         min {}, max {}, total {}; {throttle_named} of {PROCESSES} reports name the 429",
        elapsed.as_secs_f64(),
        slowest.as_secs_f64(),
        resolved_counts.iter().min().unwrap_or(&0),
        resolved_counts.iter().max().unwrap_or(&0),
        resolved_counts.iter().sum::<usize>(),
    );
    eprintln!("{}", outcomes[0].stderr_text().lines().rev().take(3).collect::<Vec<_>>().join("\n"));
}
