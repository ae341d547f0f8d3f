//! Waiting on the deadlines the pure machines hand out, and keeping a
//! log line that could repeat thousands of times a second to a few.

use tokio::time::Instant;

/// Sleep until `deadline`; with none, never wake (a `select!` arm that
/// stays quiet until the machine has something due).
pub async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// Wakes the run loop at an instant to within tens of microseconds, for
/// the deadlines whose punctuality the agent sees (a callback's countdown
/// dials at zero). tokio's timer rounds every deadline up to its next
/// millisecond tick, which alone made an auto-dial 1-2 ms late; a thread
/// blocked on a condition variable wakes on the kernel's high-resolution
/// timer instead. One thread serves the whole daemon.
pub struct PreciseAlarm {
    shared: std::sync::Arc<AlarmShared>,
    thread: Option<std::thread::JoinHandle<()>>,
}

struct AlarmShared {
    state: std::sync::Mutex<AlarmState>,
    changed: std::sync::Condvar,
    fired: tokio::sync::Notify,
}

#[derive(Default)]
struct AlarmState {
    deadline: Option<std::time::Instant>,
    stop: bool,
}

impl PreciseAlarm {
    pub fn start() -> std::io::Result<PreciseAlarm> {
        let shared = std::sync::Arc::new(AlarmShared {
            state: std::sync::Mutex::new(AlarmState::default()),
            changed: std::sync::Condvar::new(),
            fired: tokio::sync::Notify::new(),
        });
        let ringer = shared.clone();
        let thread = std::thread::Builder::new().name("alarm".into()).spawn(move || ring(&ringer))?;
        Ok(PreciseAlarm { shared, thread: Some(thread) })
    }

    /// Ring at `deadline` (replacing any earlier setting); `None` disarms.
    pub fn set(&self, deadline: Option<std::time::Instant>) {
        let mut state = self.shared.state.lock().expect("alarm state");
        if state.deadline != deadline {
            state.deadline = deadline;
            self.shared.changed.notify_one();
        }
    }

    /// Resolves once the deadline set has passed.
    pub async fn rung(&self) {
        self.shared.fired.notified().await
    }
}

fn ring(shared: &AlarmShared) {
    let mut state = shared.state.lock().expect("alarm state");
    while !state.stop {
        let now = std::time::Instant::now();
        state = match state.deadline {
            Some(at) if at <= now => {
                state.deadline = None;
                // A stored permit: a ring that finds the loop busy is not lost.
                shared.fired.notify_one();
                state
            }
            Some(at) => shared.changed.wait_timeout(state, at - now).expect("alarm state").0,
            None => shared.changed.wait(state).expect("alarm state"),
        };
    }
}

impl Drop for PreciseAlarm {
    fn drop(&mut self) {
        self.shared.state.lock().expect("alarm state").stop = true;
        self.shared.changed.notify_one();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// An arbitrary origin for the pure cores' simulated time. Their tests
/// read no clock of their own: this one read, on the shell's floor, gives
/// every simulation its `t0`.
#[cfg(test)]
pub fn simulation_epoch() -> std::time::Instant {
    std::time::Instant::now()
}

/// A log line for something that may happen thousands of times a second
/// (a refused connection, EMFILE): at most one per [`Throttled::EVERY`],
/// with how many happened since the last.
#[derive(Default)]
pub struct Throttled {
    last: Option<std::time::Instant>,
    count: u64,
}

impl Throttled {
    const EVERY: std::time::Duration = std::time::Duration::from_secs(10);

    /// One more happened at `now`: `Some(count)` when a line is due.
    pub fn hit(&mut self, now: std::time::Instant) -> Option<u64> {
        self.count += 1;
        let due = self.last.is_none_or(|at| now.saturating_duration_since(at) >= Self::EVERY);
        due.then(|| {
            self.last = Some(now);
            std::mem::take(&mut self.count)
        })
    }
}

/// A token bucket: `rate` a second, holding two seconds' worth, so a
/// burst of twice the rate passes. Time is an argument; the rate too, so
/// a table of thousands of buckets keeps one number, not one per bucket.
#[derive(Debug, Clone, Copy)]
pub struct TokenBucket {
    tokens: f64,
    updated: std::time::Instant,
}

impl TokenBucket {
    pub fn full(rate: u32, now: std::time::Instant) -> Self {
        TokenBucket { tokens: f64::from(rate) * 2.0, updated: now }
    }

    fn refill(&mut self, rate: u32, now: std::time::Instant) {
        let earned = now.saturating_duration_since(self.updated).as_secs_f64() * f64::from(rate);
        self.tokens = (self.tokens + earned).min(f64::from(rate) * 2.0);
        self.updated = now;
    }

    /// Take one token at `now`, if there is one.
    pub fn take(&mut self, rate: u32, now: std::time::Instant) -> bool {
        self.refill(rate, now);
        let took = self.tokens >= 1.0;
        if took {
            self.tokens -= 1.0;
        }
        took
    }

    /// Whether it would be full at `now`: forgetting it changes nothing.
    pub fn is_full(&self, rate: u32, now: std::time::Instant) -> bool {
        let mut copy = *self;
        copy.refill(rate, now);
        copy.tokens >= f64::from(rate) * 2.0
    }

    /// When it was last taken from.
    pub fn updated(&self) -> std::time::Instant {
        self.updated
    }
}
