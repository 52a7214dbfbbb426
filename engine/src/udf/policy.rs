//! How a UDF's calls are made when each is expensive (an API, a model): how many may be in
//! flight, how many a second the whole process makes, how long one may take, and which
//! failures are tried again, with exponential back-off and jitter.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

/// When a UDF call that failed with a transient error ([`UdfError::Transient`], or a
/// timeout) is tried again: up to `attempts` calls in all, waiting `base`, then twice that,
/// and so on up to `cap`, each wait between half and all of that (jitter, so many rows
/// failing together do not retry together). Permanent errors are never retried.
///
/// [`UdfError::Transient`]: crate::UdfError::Transient
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Calls in all, the first included (at least 1).
    pub attempts: u32,
    /// The wait after the first failure.
    pub base: Duration,
    /// The longest wait.
    pub cap: Duration,
}

impl RetryPolicy {
    /// `attempts` calls in all, waits from 100 ms doubling up to 10 s.
    pub fn attempts(attempts: u32) -> RetryPolicy {
        RetryPolicy { attempts: attempts.max(1), base: Duration::from_millis(100), cap: Duration::from_secs(10) }
    }

    /// The first wait (and the unit the later ones double from).
    pub fn base(mut self, base: Duration) -> RetryPolicy {
        self.base = base;
        self
    }

    /// The longest wait.
    pub fn cap(mut self, cap: Duration) -> RetryPolicy {
        self.cap = cap;
        self
    }

    /// The wait after failed attempt `attempt` (1 for the first): between half and all of
    /// `min(cap, base * 2^(attempt - 1))`.
    pub(crate) fn wait(&self, attempt: u32) -> Duration {
        let full = self.base.saturating_mul(1u32 << (attempt - 1).min(20)).min(self.cap);
        let half = full / 2;
        half + half.mul_f64(jitter())
    }
}

/// A number in [0, 1) that differs from call to call (for back-off jitter, not secrets).
fn jitter() -> f64 {
    static STATE: Mutex<u64> = Mutex::new(0);
    let mut s = STATE.lock().unwrap_or_else(|p| p.into_inner());
    if *s == 0 {
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
        *s = (now.as_nanos() as u64) | 1;
    }
    // xorshift64
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    (*s >> 11) as f64 / (1u64 << 53) as f64
}

/// Spaces the calls of one UDF (by name and version) across the whole process: each call
/// waits for its slot, `interval` after the one before.
#[derive(Debug)]
pub(crate) struct RateLimit {
    interval: Mutex<Duration>,
    next: Mutex<Option<Instant>>,
}

impl RateLimit {
    /// The limiter every handle of this process shares for UDF `name@version`, set to
    /// `per_second` calls.
    pub(crate) fn shared(name: &str, version: u32, per_second: f64) -> Arc<RateLimit> {
        type Limits = Mutex<HashMap<(String, u32), Arc<RateLimit>>>;
        static ALL: OnceLock<Limits> = OnceLock::new();
        let interval = Duration::from_secs_f64(1.0 / per_second.max(1e-6));
        let mut all = ALL.get_or_init(Mutex::default).lock().unwrap_or_else(|p| p.into_inner());
        let limit = all
            .entry((name.to_string(), version))
            .or_insert_with(|| Arc::new(RateLimit { interval: Mutex::new(interval), next: Mutex::new(None) }))
            .clone();
        *limit.interval.lock().unwrap_or_else(|p| p.into_inner()) = interval;
        limit
    }

    /// The calls a second it allows.
    pub(crate) fn per_second(&self) -> f64 {
        1.0 / self.interval.lock().unwrap_or_else(|p| p.into_inner()).as_secs_f64().max(1e-9)
    }

    /// Waits for this call's slot.
    pub(crate) fn acquire(&self) {
        let interval = *self.interval.lock().unwrap_or_else(|p| p.into_inner());
        let slot = {
            let mut next = self.next.lock().unwrap_or_else(|p| p.into_inner());
            let now = Instant::now();
            let slot = next.map_or(now, |n| n.max(now));
            *next = Some(slot + interval);
            slot
        };
        let now = Instant::now();
        if slot > now {
            std::thread::sleep(slot - now);
        }
    }
}

/// How a UDF's calls are made; see [`Udf::concurrency`](crate::Udf::concurrency) and the
/// methods beside it.
#[derive(Debug, Clone, Default)]
pub(crate) struct CallPolicy {
    /// Calls in flight at most (1: one at a time).
    pub(crate) concurrency: usize,
    pub(crate) rate: Option<Arc<RateLimit>>,
    pub(crate) timeout: Option<Duration>,
    pub(crate) retry: Option<RetryPolicy>,
    /// Whether results are remembered; `None`: the default for this policy.
    pub(crate) remember: Option<bool>,
}

impl CallPolicy {
    pub(crate) fn new() -> CallPolicy {
        CallPolicy { concurrency: 1, ..CallPolicy::default() }
    }

    /// Whether calls need more than a plain call (a limiter, a timeout, retries).
    pub(crate) fn is_plain(&self) -> bool {
        self.rate.is_none() && self.timeout.is_none() && self.retry.is_none()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_waits_double_up_to_the_cap_with_jitter() {
        let p = RetryPolicy::attempts(5).base(Duration::from_millis(100)).cap(Duration::from_millis(300));
        let mut distinct = std::collections::BTreeSet::new();
        for _ in 0..20 {
            for (attempt, full) in (1..=4).zip([100, 200, 300, 300]) {
                let full = Duration::from_millis(full);
                let w = p.wait(attempt);
                assert!(w >= full / 2 && w <= full, "{w:?} for {full:?}");
                distinct.insert(w);
            }
        }
        assert!(distinct.len() > 10, "jittered: {distinct:?}");
    }

    #[test]
    fn a_rate_limit_gives_each_call_its_own_slot() {
        let limit = RateLimit::shared("policy_test", 1, 100.0);
        let started = Instant::now();
        for _ in 0..11 {
            limit.acquire();
        }
        assert!(started.elapsed() >= Duration::from_millis(95), "{:?}", started.elapsed());
    }
}
