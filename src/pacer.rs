//! Pacing of the requests to one vault, so that a herd of kvexec processes throttled by
//! Key Vault backs off as a whole instead of retrying in a storm.
//!
//! Key Vault throttles per vault and region. Take 50 processes with 40 references each
//! that start together against a vault admitting 400 requests a second. When each
//! throttled request waits for its own Retry-After, every process keeps its requests in
//! flight and they return together, so `tests/herd.rs` measured 2.1 times the requests
//! needed with that design. Here a 429 pauses every request to that vault in this process, and the number
//! of requests allowed in flight (the window) drops to one, so the first request after
//! the pause probes whether the vault admits requests again. The scheme follows TCP
//! congestion control:
//!
//! - The window starts at [`INITIAL_WINDOW`], so the first burst of a herd is 8 requests
//!   per process and not the whole window the vault's connections allow. Compared with
//!   sending everything at once, a single process pays one more round trip for 9 to 24
//!   references to one vault, two more for 25 to 56, and about log2(N/8) for N.
//! - Until the first 429, each success widens the window by one, which doubles it per
//!   round trip (slow start).
//! - After a 429, the window widens by one per window of successes (congestion
//!   avoidance), so processes that return to a vault near its limit probe it gently.
//! - The window never exceeds `--concurrency`, or without it what the vault's connections
//!   carry (100 streams per HTTP/2 connection, 32 requests over HTTP/1.1).
//!
//! Written by hand because the rate limiters on crates.io (governor, tower's limits) use
//! fixed rates or fixed concurrency, and this needs a window that the service's responses
//! change.

use std::sync::{Mutex, MutexGuard};
use std::time::Duration;
use tokio::sync::Notify;
use tokio::time::Instant;

/// Requests allowed in flight to one vault before the first response has arrived. It
/// trades a single job's start against a herd's retries. In `tests/herd.rs` (2 cores, debug
/// build) a first window of 4 sent 1.29 to 1.33 times the minimum number of requests, 8
/// sent 1.35 to 1.39, and 16 sent 1.51 to 1.53, over the test's limit of 1.5. Measured in
/// `scripts/bench`, 8 instead of 4 saved one round trip at 100 references.
pub const INITIAL_WINDOW: usize = 8;

/// First pause after a 429 without Retry-After. Key Vault's throttling guidance waits
/// 1, 2, 4, 8 and 16 seconds.
const FIRST_THROTTLE_PAUSE: Duration = Duration::from_secs(1);
/// Maximum pause after a 429 without Retry-After.
const MAX_THROTTLE_PAUSE: Duration = Duration::from_secs(16);
/// Maximum pause honored from Retry-After. The run's deadline usually ends it sooner.
const MAX_REQUESTED_PAUSE: Duration = Duration::from_secs(32);
/// Minimum pause after the first 429 that carries Retry-After, doubled for each
/// consecutive episode, so that `Retry-After: 0` cannot make the process retry in a loop.
const MIN_REQUESTED_PAUSE: Duration = Duration::from_millis(100);

/// Admission of requests to one vault host, shared by every fetch of this process.
pub struct VaultPacer {
    state: Mutex<State>,
    changed: Notify,
    max_window: usize,
}

struct State {
    window: usize,
    in_flight: usize,
    paused_until: Option<Instant>,
    /// Throttle episodes so far. A 429 to a request sent before the current episode began
    /// is stale: the pause it calls for has been taken already.
    episode: u64,
    /// Episodes since the last success, for the 1, 2, 4, 8, 16 s schedule.
    consecutive_episodes: u32,
    /// Successes since the window last widened, counted after the first 429 only.
    successes_at_window: usize,
}

/// The result of one request sent under a [`Permit`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Succeeded,
    /// A 429, with the service's Retry-After when it sent one.
    Throttled(Option<Duration>),
    /// Anything else: a server error, a broken connection, a 404. The window stays as is.
    Failed,
}

/// The right to send one request to the vault. Dropping it without
/// [`finish`](Permit::finish), for example when the deadline cancels the request, counts as
/// [`Outcome::Failed`].
pub struct Permit<'a> {
    pacer: &'a VaultPacer,
    episode: u64,
    outcome: Outcome,
}

impl Permit<'_> {
    pub fn finish(mut self, outcome: Outcome) {
        self.outcome = outcome;
    }
}

impl Drop for Permit<'_> {
    fn drop(&mut self) {
        self.pacer.complete(self.episode, self.outcome);
    }
}

impl VaultPacer {
    /// Creates a pacer that never allows more than `max_window` requests in flight.
    pub fn new(max_window: usize) -> VaultPacer {
        let max_window = max_window.max(1);
        VaultPacer {
            state: Mutex::new(State {
                window: INITIAL_WINDOW.min(max_window),
                in_flight: 0,
                paused_until: None,
                episode: 0,
                consecutive_episodes: 0,
                successes_at_window: 0,
            }),
            changed: Notify::new(),
            max_window,
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // The state is a few counters that stay consistent after any panic.
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Waits until the vault is not paused and the window has room, then takes a place in it.
    pub async fn acquire(&self) -> Permit<'_> {
        loop {
            // Registering before looking at the state means a release between the look and
            // the wait still wakes this task.
            let notified = self.changed.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();

            let paused_until = {
                let mut state = self.lock();
                match state.paused_until {
                    Some(until) if until > Instant::now() => Some(until),
                    _ if state.in_flight < state.window => {
                        state.in_flight += 1;
                        return Permit {
                            pacer: self,
                            episode: state.episode,
                            outcome: Outcome::Failed,
                        };
                    }
                    _ => None,
                }
            };
            match paused_until {
                Some(until) => tokio::time::sleep_until(until).await,
                None => notified.await,
            }
        }
    }

    fn complete(&self, episode: u64, outcome: Outcome) {
        {
            let mut state = self.lock();
            state.in_flight = state.in_flight.saturating_sub(1);
            match outcome {
                Outcome::Succeeded => {
                    state.consecutive_episodes = 0;
                    if state.episode == 0 {
                        state.window += 1;
                    } else {
                        state.successes_at_window += 1;
                        if state.successes_at_window >= state.window {
                            state.successes_at_window = 0;
                            state.window += 1;
                        }
                    }
                    state.window = state.window.min(self.max_window);
                }
                Outcome::Throttled(retry_after) if episode == state.episode => {
                    state.episode += 1;
                    state.consecutive_episodes += 1;
                    state.window = 1;
                    state.successes_at_window = 0;
                    let pause = throttle_pause(retry_after, state.consecutive_episodes);
                    tracing::info!(pause_ms = pause.as_millis() as u64, "vault throttled the requests; pausing");
                    state.paused_until = Some(Instant::now() + pause);
                }
                Outcome::Throttled(_) | Outcome::Failed => {}
            }
        }
        self.changed.notify_waiters();
    }

    /// Returns the number of requests allowed in flight now.
    #[cfg(test)]
    fn window(&self) -> usize {
        self.lock().window
    }
}

/// Returns the pause after a throttle episode: Retry-After when the service sent it (at
/// least 0.1 s, doubled per consecutive episode), else 1, 2, 4, 8 and 16 s for consecutive
/// episodes. Up to 100% is added at random, so processes
/// throttled together return spread over a whole period instead of together.
fn throttle_pause(retry_after: Option<Duration>, consecutive_episodes: u32) -> Duration {
    let base = match retry_after {
        Some(requested) => {
            let doublings = consecutive_episodes.saturating_sub(1).min(8);
            requested.max(MIN_REQUESTED_PAUSE * 2u32.pow(doublings)).min(MAX_REQUESTED_PAUSE)
        }
        None => {
            let doublings = consecutive_episodes.saturating_sub(1).min(4);
            (FIRST_THROTTLE_PAUSE * 2u32.pow(doublings)).min(MAX_THROTTLE_PAUSE)
        }
    };
    base + base.mul_f64(fastrand::f64())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn runtime() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap()
    }

    #[test]
    fn pause_follows_retry_after_with_spread() {
        for _ in 0..100 {
            let pause = throttle_pause(Some(Duration::from_secs(2)), 1);
            assert!(pause >= Duration::from_secs(2), "{pause:?}");
            assert!(pause <= Duration::from_secs(4), "{pause:?}");
        }
    }

    #[test]
    fn zero_retry_after_still_backs_off() {
        for (episodes, floor_ms) in [(1, 100), (2, 200), (4, 800), (20, 25_600)] {
            let pause = throttle_pause(Some(Duration::ZERO), episodes);
            assert!(pause >= Duration::from_millis(floor_ms), "{episodes}: {pause:?}");
            assert!(pause <= Duration::from_millis(floor_ms * 2), "{episodes}: {pause:?}");
        }
    }

    #[test]
    fn pause_without_retry_after_doubles_to_sixteen_seconds() {
        for (episodes, base) in [(1, 1), (2, 2), (3, 4), (4, 8), (5, 16), (9, 16)] {
            let pause = throttle_pause(None, episodes);
            assert!(pause >= Duration::from_secs(base), "{episodes}: {pause:?}");
            assert!(pause <= Duration::from_secs(base * 2), "{episodes}: {pause:?}");
        }
    }

    #[test]
    fn huge_retry_after_is_capped() {
        let pause = throttle_pause(Some(Duration::from_secs(86_400)), 1);
        assert!(pause <= MAX_REQUESTED_PAUSE * 2, "{pause:?}");
    }

    #[test]
    fn window_starts_small_and_grows_per_success() {
        runtime().block_on(async {
            let pacer = VaultPacer::new(32);
            assert_eq!(pacer.window(), INITIAL_WINDOW);
            for _ in 0..3 {
                pacer.acquire().await.finish(Outcome::Succeeded);
            }
            assert_eq!(pacer.window(), INITIAL_WINDOW + 3);
            for _ in 0..100 {
                pacer.acquire().await.finish(Outcome::Succeeded);
            }
            assert_eq!(pacer.window(), 32);
        });
    }

    #[test]
    fn window_never_exceeds_concurrency() {
        assert_eq!(VaultPacer::new(2).window(), 2);
        assert_eq!(VaultPacer::new(0).window(), 1);
    }

    #[test]
    fn full_window_holds_the_next_request() {
        runtime().block_on(async {
            let pacer = VaultPacer::new(1);
            let first = pacer.acquire().await;
            let second = tokio::time::timeout(Duration::from_millis(50), pacer.acquire()).await;
            assert!(second.is_err(), "a second request was admitted into a window of one");
            drop(first);
            let third = tokio::time::timeout(Duration::from_secs(5), pacer.acquire()).await;
            assert!(third.is_ok(), "releasing the permit did not admit the next request");
        });
    }

    #[test]
    fn throttle_pauses_every_request_and_shrinks_window() {
        runtime().block_on(async {
            let pacer = VaultPacer::new(32);
            let permits: Vec<Permit<'_>> = futures_util::future::join_all((0..4).map(|_| pacer.acquire())).await;
            let started = Instant::now();
            let mut permits = permits.into_iter();
            permits.next().unwrap().finish(Outcome::Throttled(Some(Duration::from_millis(200))));
            assert_eq!(pacer.window(), 1);

            // The other three were sent before the pause: their 429s neither extend the pause
            // nor start a new episode.
            for permit in permits {
                permit.finish(Outcome::Throttled(Some(Duration::from_secs(60))));
            }
            pacer.acquire().await.finish(Outcome::Succeeded);
            let waited = started.elapsed();
            assert!(waited >= Duration::from_millis(200), "{waited:?}");
            assert!(waited < Duration::from_secs(10), "a stale 429 extended the pause: {waited:?}");
            assert_eq!(pacer.window(), 2, "a window of one widens after one success");

            // Now two successes widen the window of two by one.
            pacer.acquire().await.finish(Outcome::Succeeded);
            assert_eq!(pacer.window(), 2);
            pacer.acquire().await.finish(Outcome::Succeeded);
            assert_eq!(pacer.window(), 3);
        });
    }

    #[test]
    fn dropped_permit_frees_its_place() {
        runtime().block_on(async {
            let pacer = VaultPacer::new(1);
            drop(pacer.acquire().await);
            let next = tokio::time::timeout(Duration::from_secs(5), pacer.acquire()).await;
            assert!(next.is_ok());
            assert_eq!(pacer.window(), 1);
        });
    }
}
