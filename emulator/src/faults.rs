//! Emulator-wide faults that change at run time: latency, per-vault throttling and
//! "fail the next N requests".

use crate::model::{FailNext, FailTarget, Throttle};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// A request turned away before it reached the service logic.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Rejection {
    pub(crate) status: u16,
    pub(crate) retry_after: Option<u64>,
}

#[derive(Default)]
pub(crate) struct Faults {
    latency_ms: AtomicU64,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    throttle: Option<Throttle>,
    /// Per vault host: start of the current one-second window and requests admitted in it.
    windows: HashMap<String, (Instant, u32)>,
    /// Pending failures, consumed in order.
    fail_next: Vec<FailNext>,
}

impl Faults {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    pub(crate) fn latency(&self) -> Duration {
        Duration::from_millis(self.latency_ms.load(Ordering::Relaxed))
    }

    pub(crate) fn set_latency(&self, latency: Duration) {
        let milliseconds = u64::try_from(latency.as_millis()).unwrap_or(u64::MAX);
        self.latency_ms.store(milliseconds, Ordering::Relaxed);
    }

    pub(crate) fn set_throttle(&self, throttle: Option<Throttle>) {
        let mut state = self.lock();
        state.throttle = throttle;
        state.windows.clear();
    }

    pub(crate) fn fail_next(&self, failure: FailNext) {
        if failure.count > 0 {
            self.lock().fail_next.push(failure);
        }
    }

    /// Decides whether a request to a vault host is failed or throttled.
    pub(crate) fn vault_gate(&self, vault_host: &str) -> Option<Rejection> {
        let mut state = self.lock();
        if let Some(rejection) = take_failure(&mut state.fail_next, FailTarget::KeyVault) {
            return Some(rejection);
        }

        let throttle = state.throttle?;
        let now = Instant::now();
        let window = state
            .windows
            .entry(vault_host.to_string())
            .or_insert((now, 0));
        if now.duration_since(window.0) >= Duration::from_secs(1) {
            *window = (now, 0);
        }
        if window.1 < throttle.requests_per_second {
            window.1 += 1;
            None
        } else {
            Some(Rejection {
                status: 429,
                retry_after: throttle.retry_after,
            })
        }
    }

    /// Decides whether a token request (Entra ID or managed identity) is failed.
    pub(crate) fn token_gate(&self) -> Option<Rejection> {
        take_failure(&mut self.lock().fail_next, FailTarget::Token)
    }
}

fn take_failure(pending: &mut Vec<FailNext>, target: FailTarget) -> Option<Rejection> {
    let index = pending
        .iter()
        .position(|failure| failure.target == target || failure.target == FailTarget::Any)?;
    let failure = &mut pending[index];
    failure.count -= 1;
    let rejection = Rejection {
        status: failure.status,
        retry_after: failure.retry_after,
    };
    if failure.count == 0 {
        pending.remove(index);
    }
    Some(rejection)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn throttle_admits_limit_per_window_per_vault() {
        let faults = Faults::default();
        faults.set_throttle(Some(Throttle {
            requests_per_second: 2,
            retry_after: Some(1),
        }));
        assert_eq!(faults.vault_gate("a.vault.azure.net"), None);
        assert_eq!(faults.vault_gate("a.vault.azure.net"), None);
        let third = faults.vault_gate("a.vault.azure.net");
        assert_eq!(third.map(|r| r.status), Some(429));
        assert_eq!(third.and_then(|r| r.retry_after), Some(1));
        assert_eq!(faults.vault_gate("b.vault.azure.net"), None);
    }

    #[test]
    fn fail_next_counts_down_per_target() {
        let faults = Faults::default();
        faults.fail_next(FailNext::new(2, 503).target(FailTarget::Token));
        assert_eq!(faults.vault_gate("a.vault.azure.net"), None);
        assert_eq!(faults.token_gate().map(|r| r.status), Some(503));
        assert_eq!(faults.token_gate().map(|r| r.status), Some(503));
        assert_eq!(faults.token_gate(), None);
    }
}
