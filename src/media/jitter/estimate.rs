//! How late packets arrive. Every arrival gives a transit time (arrival clock
//! minus media timestamp, both in µs; its origin is arbitrary). The fastest
//! recent transit is the floor that playout delay is measured from; each
//! packet's delay above that floor feeds a histogram that slowly forgets, and
//! a high quantile of it is the delay the buffer must cover. The RFC 3550
//! interarrival jitter is kept alongside for reporting.

/// The floor is the minimum over the current and the previous window of this
/// length: long enough to catch a fast packet under heavy jitter, short
/// enough that clock drift (0.5 % is 5 ms per second) biases it little.
const FLOOR_WINDOW_US: i64 = 1_000_000;
const HISTOGRAM_BUCKETS: usize = 128;
/// Weight left to past samples per arrival. At 50 packets/s a rise in delay
/// shows in the quantile after a handful of packets, and a fall takes about
/// 15 s to pull it down: grow fast, shrink slowly.
const FORGET_PER_PACKET: f32 = 0.995;
/// Share of packets whose delay the quantile covers.
const COVERED_SHARE: f32 = 0.99;

pub(super) struct DelayEstimator {
    floor_current_us: i64,
    floor_previous_us: i64,
    window_started_us: Option<i64>,
    /// Weight of recent packets per bucket of delay above the floor.
    histogram: [f32; HISTOGRAM_BUCKETS],
    histogram_total: f32,
    bucket_us: i64,
    last_transit_us: Option<i64>,
    jitter_us: f32,
}

impl DelayEstimator {
    /// Buckets span `0..=max_delay_us`; a delay beyond lands in the last one.
    pub(super) fn new(max_delay_us: i64) -> Self {
        DelayEstimator {
            floor_current_us: i64::MAX,
            floor_previous_us: i64::MAX,
            window_started_us: None,
            histogram: [0.0; HISTOGRAM_BUCKETS],
            histogram_total: 0.0,
            bucket_us: (max_delay_us / HISTOGRAM_BUCKETS as i64).max(1_000),
            last_transit_us: None,
            jitter_us: 0.0,
        }
    }

    /// Forget the floor: a new stream has a new timestamp origin. The delay
    /// histogram stays, since the network path is most likely the same.
    pub(super) fn restart_stream(&mut self) {
        self.floor_current_us = i64::MAX;
        self.floor_previous_us = i64::MAX;
        self.window_started_us = None;
        self.last_transit_us = None;
    }

    /// Take one arrival into account.
    pub(super) fn record(&mut self, arrival_us: i64, transit_us: i64) {
        match self.window_started_us {
            Some(started) if arrival_us - started < FLOOR_WINDOW_US => {}
            Some(started) => {
                let previous_is_recent = arrival_us - started < 2 * FLOOR_WINDOW_US;
                self.floor_previous_us = if previous_is_recent { self.floor_current_us } else { i64::MAX };
                self.floor_current_us = i64::MAX;
                self.window_started_us = Some(arrival_us);
            }
            None => self.window_started_us = Some(arrival_us),
        }
        self.floor_current_us = self.floor_current_us.min(transit_us);
        let delay_us = transit_us - self.floor_current_us.min(self.floor_previous_us);

        for weight in &mut self.histogram {
            *weight *= FORGET_PER_PACKET;
        }
        let bucket = ((delay_us / self.bucket_us) as usize).min(HISTOGRAM_BUCKETS - 1);
        self.histogram[bucket] += 1.0;
        self.histogram_total = self.histogram_total * FORGET_PER_PACKET + 1.0;

        if let Some(last) = self.last_transit_us {
            let deviation = (transit_us - last).abs() as f32;
            self.jitter_us += (deviation - self.jitter_us) / 16.0;
        }
        self.last_transit_us = Some(transit_us);
    }

    /// The fastest recent transit, once anything has arrived.
    pub(super) fn floor_us(&self) -> Option<i64> {
        let floor = self.floor_current_us.min(self.floor_previous_us);
        (floor != i64::MAX).then_some(floor)
    }

    /// The delay above the floor that covers `COVERED_SHARE` of recent packets.
    pub(super) fn covering_delay_us(&self) -> i64 {
        let needed = self.histogram_total * COVERED_SHARE;
        let mut cumulative = 0.0;
        for (bucket, weight) in self.histogram.iter().enumerate() {
            cumulative += weight;
            if cumulative >= needed {
                return (bucket as i64 + 1) * self.bucket_us;
            }
        }
        HISTOGRAM_BUCKETS as i64 * self.bucket_us
    }

    /// RFC 3550 §6.4.1 interarrival jitter.
    pub(super) fn jitter_us(&self) -> i64 {
        self.jitter_us as i64
    }
}
