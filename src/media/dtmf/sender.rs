//! The RFC 4733 sending side: a bounded queue of keys played one after the
//! other as telephone-event packets, one per media tick, with a pause of
//! ordinary audio between keys.

use std::ops::RangeInclusive;

use super::{digit_to_event, DtmfError};

/// How many keys may wait to be sent; `queue` refuses more.
pub const QUEUE_CAPACITY: usize = 32;
/// How long each key sounds unless configured otherwise.
pub const DEFAULT_TONE_MS: u32 = 100;
/// How long the pause between keys lasts unless configured otherwise.
pub const DEFAULT_GAP_MS: u32 = 60;
/// Tone lengths accepted: 40 ms is the shortest that ITU-T Q.24 receivers
/// must detect; 2 s covers "press and hold" prompts.
pub const TONE_MS_RANGE: RangeInclusive<u32> = 40..=2000;
/// Pause lengths accepted, with the same 40 ms lower bound as the tone.
pub const GAP_MS_RANGE: RangeInclusive<u32> = 40..=2000;

/// RFC 4733 §2.5.1.4: the end of an event is sent three times so that one
/// lost packet does not leave the far end playing the tone.
const END_PACKET_COPIES: u8 = 3;
/// Volume field (-dBm0, RFC 4733 §2.3.4); 10 is what PBXs commonly send.
const VOLUME: u8 = 10;
const END_BIT: u8 = 0x80;

/// One telephone-event packet to send in place of this tick's audio, with
/// the telephone-event payload type, the audio's SSRC and the next sequence
/// number. `timestamp` and `marker` go into the RTP header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EventPacket {
    pub timestamp: u32,
    pub marker: bool,
    pub payload: [u8; 4],
    /// Whether this is one of the (three) packets that end the event.
    pub end: bool,
}

/// The event on the wire right now.
#[derive(Debug, Clone, Copy)]
struct Playing {
    event: u8,
    timestamp: u32,
    duration: u32,
    started: bool,
    ends_sent: u8,
}

/// Sends queued keys as RFC 4733 events, paced by the caller's media tick.
#[derive(Debug, Clone)]
pub struct DtmfSender {
    tone_units: u32,
    gap_units: u32,
    queue: [u8; QUEUE_CAPACITY],
    queue_head: usize,
    queue_len: usize,
    playing: Option<Playing>,
    /// The audio timestamp from which the next key may start: the pause
    /// after the previous key is measured in the stream's own clock.
    resume_at: Option<u32>,
}

impl DtmfSender {
    /// `clock_rate` is the telephone-event rate negotiated in SDP (8000 for
    /// narrowband, 48000 beside Opus); tone and gap lengths are in ms.
    pub fn new(clock_rate: u32, tone_ms: u32, gap_ms: u32) -> Result<Self, DtmfError> {
        if !(8000..=48000).contains(&clock_rate) || clock_rate % 1000 != 0 {
            return Err(DtmfError::ClockRate(clock_rate));
        }
        let units_per_ms = clock_rate / 1000;
        let max_ms = (u32::from(u16::MAX) / units_per_ms).min(*TONE_MS_RANGE.end());
        if tone_ms < *TONE_MS_RANGE.start() || tone_ms > max_ms {
            return Err(DtmfError::ToneLength { tone_ms, clock_rate, min_ms: *TONE_MS_RANGE.start(), max_ms });
        }
        if !GAP_MS_RANGE.contains(&gap_ms) {
            return Err(DtmfError::GapLength(gap_ms));
        }
        Ok(DtmfSender {
            tone_units: tone_ms * units_per_ms,
            gap_units: gap_ms * units_per_ms,
            queue: [0; QUEUE_CAPACITY],
            queue_head: 0,
            queue_len: 0,
            playing: None,
            resume_at: None,
        })
    }

    /// Queue keys to send after any already waiting. All or nothing: a bad
    /// character or too many keys queues none of them.
    pub fn queue(&mut self, digits: &str) -> Result<(), DtmfError> {
        if let Some(bad) = digits.chars().find(|&c| digit_to_event(c).is_none()) {
            return Err(DtmfError::InvalidDigit(bad));
        }
        // Every accepted key is one ASCII byte, so len() is the key count.
        let requested = digits.len();
        if requested > QUEUE_CAPACITY - self.queue_len {
            return Err(DtmfError::QueueFull { queued: self.queue_len, requested, capacity: QUEUE_CAPACITY });
        }
        for event in digits.chars().filter_map(digit_to_event) {
            self.queue[(self.queue_head + self.queue_len) % QUEUE_CAPACITY] = event;
            self.queue_len += 1;
        }
        Ok(())
    }

    /// Whether a key is playing or waiting. The pause after the last key is
    /// plain audio and does not count.
    pub fn is_busy(&self) -> bool {
        self.playing.is_some() || self.queue_len > 0
    }

    /// Call once per media tick with the timestamp this tick's audio would
    /// carry and the timestamp units a tick spans (160 at 8 kHz, 960 at
    /// 48 kHz). `Some` means: send this packet instead of the audio (the
    /// audio timestamp still advances). A zero tick sends nothing.
    pub fn next_packet(&mut self, audio_timestamp: u32, tick: u32) -> Option<EventPacket> {
        if tick == 0 {
            return None;
        }
        if self.playing.is_none() {
            self.playing = self.start_next(audio_timestamp);
        }
        let playing = self.playing.as_mut()?;
        let marker = !playing.started;
        playing.started = true;
        if playing.ends_sent == 0 {
            playing.duration = playing.duration.saturating_add(tick).min(self.tone_units);
        }
        let end = playing.duration >= self.tone_units;
        playing.ends_sent += u8::from(end);
        // new() keeps tone_units within the 16-bit duration field.
        let duration = (playing.duration as u16).to_be_bytes();
        let packet = EventPacket {
            timestamp: playing.timestamp,
            marker,
            payload: [playing.event, if end { END_BIT } else { 0 } | VOLUME, duration[0], duration[1]],
            end,
        };
        if playing.ends_sent == END_PACKET_COPIES {
            self.playing = None;
            self.resume_at = Some(audio_timestamp.wrapping_add(tick).wrapping_add(self.gap_units));
        }
        Some(packet)
    }

    /// Take the next key off the queue once the pause after the previous one is over.
    fn start_next(&mut self, audio_timestamp: u32) -> Option<Playing> {
        if let Some(resume_at) = self.resume_at {
            // Counted in wrapping distance, so the pause holds across a timestamp wrap.
            let still_to_wait = resume_at.wrapping_sub(audio_timestamp);
            if still_to_wait != 0 && still_to_wait <= self.gap_units {
                return None;
            }
            self.resume_at = None;
        }
        if self.queue_len == 0 {
            return None;
        }
        let event = self.queue[self.queue_head];
        self.queue_head = (self.queue_head + 1) % QUEUE_CAPACITY;
        self.queue_len -= 1;
        Some(Playing { event, timestamp: audio_timestamp, duration: 0, started: false, ends_sent: 0 })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What the caller puts on the wire in one tick.
    #[derive(Debug, PartialEq, Eq)]
    enum Sent {
        Audio,
        Event { timestamp: u32, marker: bool, event: u8, end: bool, duration: u16 },
    }
    use Sent::Audio;

    fn event(timestamp: u32, marker: bool, event: u8, end: bool, duration: u16) -> Sent {
        Sent::Event { timestamp, marker, event, end, duration }
    }

    /// Drive the sender like the media tick does for `ticks` ticks.
    fn run(sender: &mut DtmfSender, first_timestamp: u32, tick: u32, ticks: u32) -> Vec<Sent> {
        (0..ticks)
            .map(|i| match sender.next_packet(first_timestamp.wrapping_add(i * tick), tick) {
                None => Audio,
                Some(p) => {
                    assert_eq!(p.payload[1] & 0x3f, VOLUME);
                    assert_eq!(p.payload[1] & 0x40, 0, "reserved bit");
                    assert_eq!(p.end, p.payload[1] & END_BIT != 0);
                    Sent::Event {
                        timestamp: p.timestamp,
                        marker: p.marker,
                        event: p.payload[0],
                        end: p.end,
                        duration: u16::from_be_bytes([p.payload[2], p.payload[3]]),
                    }
                }
            })
            .collect()
    }

    /// One key of 100 ms at a tick of 20 ms: five growing durations, the
    /// last of which goes out three times with the E bit.
    fn key_100ms(timestamp: u32, code: u8, tick: u16) -> Vec<Sent> {
        vec![
            event(timestamp, true, code, false, tick),
            event(timestamp, false, code, false, 2 * tick),
            event(timestamp, false, code, false, 3 * tick),
            event(timestamp, false, code, false, 4 * tick),
            event(timestamp, false, code, true, 5 * tick),
            event(timestamp, false, code, true, 5 * tick),
            event(timestamp, false, code, true, 5 * tick),
        ]
    }

    #[test]
    fn one_pound_at_8khz_is_exactly_the_rfc4733_packet_sequence() {
        let mut tx = DtmfSender::new(8000, 100, 60).unwrap();
        tx.queue("1#").unwrap();
        let sent = run(&mut tx, 1000, 160, 20);
        let mut expected = key_100ms(1000, 1, 160);
        expected.extend([Audio, Audio, Audio]); // 60 ms gap
        expected.extend(key_100ms(1000 + 10 * 160, 11, 160));
        expected.extend([Audio, Audio, Audio]);
        assert_eq!(sent, expected);
        assert!(!tx.is_busy());
    }

    #[test]
    fn one_pound_at_48khz_holds_across_a_timestamp_wrap() {
        let mut tx = DtmfSender::new(48000, 100, 60).unwrap();
        tx.queue("1#").unwrap();
        let start = u32::MAX - 2000;
        let sent = run(&mut tx, start, 960, 20);
        let mut expected = key_100ms(start, 1, 960);
        expected.extend([Audio, Audio, Audio]);
        expected.extend(key_100ms(start.wrapping_add(10 * 960), 11, 960));
        expected.extend([Audio, Audio, Audio]);
        assert_eq!(sent, expected);
    }

    #[test]
    fn wire_bytes_of_a_start_and_an_end_packet() {
        let mut tx = DtmfSender::new(8000, 100, 60).unwrap();
        tx.queue("9").unwrap();
        let first = tx.next_packet(7, 160).unwrap();
        assert_eq!(first, EventPacket { timestamp: 7, marker: true, payload: [9, 0x0a, 0x00, 0xa0], end: false });
        let last = (1..7).filter_map(|i| tx.next_packet(7 + i * 160, 160)).last().unwrap();
        assert_eq!(last, EventPacket { timestamp: 7, marker: false, payload: [9, 0x8a, 0x03, 0x20], end: true });
    }

    #[test]
    fn a_tone_that_is_not_whole_ticks_ends_on_its_exact_duration() {
        let mut tx = DtmfSender::new(8000, 90, 60).unwrap();
        tx.queue("5").unwrap();
        let durations: Vec<_> = run(&mut tx, 0, 160, 10)
            .into_iter()
            .filter_map(|s| match s {
                Sent::Event { duration, end, .. } => Some((duration, end)),
                Audio => None,
            })
            .collect();
        assert_eq!(
            durations,
            [(160, false), (320, false), (480, false), (640, false), (720, true), (720, true), (720, true)]
        );
    }

    #[test]
    fn a_tone_shorter_than_a_tick_starts_and_ends_in_its_first_packet() {
        let mut tx = DtmfSender::new(8000, 40, 40).unwrap();
        tx.queue("0").unwrap();
        let sent = run(&mut tx, 0, 480, 4);
        assert_eq!(
            sent,
            [event(0, true, 0, true, 320), event(0, false, 0, true, 320), event(0, false, 0, true, 320), Audio]
        );
    }

    #[test]
    fn keys_queued_while_playing_follow_after_the_gap() {
        let mut tx = DtmfSender::new(8000, 100, 60).unwrap();
        tx.queue("a").unwrap();
        let mut sent = run(&mut tx, 0, 160, 3);
        tx.queue("1").unwrap();
        assert!(tx.is_busy());
        sent.extend(run(&mut tx, 3 * 160, 160, 17));
        let mut expected = key_100ms(0, 12, 160);
        expected.extend([Audio, Audio, Audio]);
        expected.extend(key_100ms(10 * 160, 1, 160));
        expected.extend([Audio, Audio, Audio]);
        assert_eq!(sent, expected);
    }

    #[test]
    fn the_gap_is_kept_even_when_the_next_key_comes_late() {
        let mut tx = DtmfSender::new(8000, 100, 100).unwrap();
        tx.queue("2").unwrap();
        run(&mut tx, 0, 160, 7);
        assert!(!tx.is_busy());
        tx.queue("3").unwrap();
        // 100 ms of gap is five ticks of audio after the last end packet.
        let sent = run(&mut tx, 7 * 160, 160, 6);
        assert_eq!(&sent[..5], [Audio, Audio, Audio, Audio, Audio]);
        assert_eq!(sent[5], event(12 * 160, true, 3, false, 160));
    }

    #[test]
    fn queue_is_all_or_nothing_and_bounded() {
        let mut tx = DtmfSender::new(8000, 100, 60).unwrap();
        assert_eq!(tx.queue("12x4"), Err(DtmfError::InvalidDigit('x')));
        assert_eq!(tx.queue("1 2"), Err(DtmfError::InvalidDigit(' ')));
        assert!(!tx.is_busy(), "nothing queued from a rejected string");
        assert!(tx.queue("").is_ok());
        assert!(!tx.is_busy());
        tx.queue("0123456789*#ABCDabcd0123456789").unwrap();
        assert_eq!(tx.queue("123"), Err(DtmfError::QueueFull { queued: 30, requested: 3, capacity: QUEUE_CAPACITY }));
        tx.queue("#*").unwrap();
        assert!(matches!(tx.queue("1"), Err(DtmfError::QueueFull { queued: 32, .. })));
        let message = DtmfError::InvalidDigit('x').to_string();
        assert!(message.contains("'x'"), "{message}");
    }

    #[test]
    fn queue_wraps_around_its_ring_in_order() {
        let mut tx = DtmfSender::new(8000, 40, 40).unwrap();
        let mut starts = Vec::new();
        let mut timestamp = 0u32;
        for round in 0..3 {
            tx.queue(&"0123456789*#ABCD"[..if round == 0 { 16 } else { 12 }]).unwrap();
            tx.queue("#*").unwrap();
            for _ in 0..1000 {
                if !tx.is_busy() {
                    break;
                }
                if let Some(p) = tx.next_packet(timestamp, 160) {
                    if p.marker {
                        starts.push(p.payload[0]);
                    }
                }
                timestamp += 160;
            }
            assert!(!tx.is_busy());
        }
        let mut expected: Vec<u8> = (0..16).chain([11, 10]).collect();
        for _ in 0..2 {
            expected.extend((0..12).chain([11, 10]));
        }
        assert_eq!(starts, expected);
    }

    #[test]
    fn new_rejects_lengths_and_rates_it_cannot_send() {
        assert!(DtmfSender::new(8000, DEFAULT_TONE_MS, DEFAULT_GAP_MS).is_ok());
        assert!(DtmfSender::new(8000, 2000, 2000).is_ok());
        assert!(DtmfSender::new(48000, 1365, 40).is_ok());
        assert_eq!(
            DtmfSender::new(48000, 1366, 60).unwrap_err(),
            DtmfError::ToneLength { tone_ms: 1366, clock_rate: 48000, min_ms: 40, max_ms: 1365 }
        );
        assert!(matches!(DtmfSender::new(8000, 39, 60), Err(DtmfError::ToneLength { .. })));
        assert!(matches!(DtmfSender::new(8000, 2001, 60), Err(DtmfError::ToneLength { max_ms: 2000, .. })));
        assert_eq!(DtmfSender::new(8000, 100, 39).unwrap_err(), DtmfError::GapLength(39));
        assert_eq!(DtmfSender::new(8000, 100, 2001).unwrap_err(), DtmfError::GapLength(2001));
        for rate in [0, 7000, 44100, 96000] {
            assert_eq!(DtmfSender::new(rate, 100, 60).unwrap_err(), DtmfError::ClockRate(rate));
        }
    }

    #[test]
    fn zero_tick_sends_nothing_and_keeps_the_key() {
        let mut tx = DtmfSender::new(8000, 100, 60).unwrap();
        tx.queue("7").unwrap();
        assert_eq!(tx.next_packet(0, 0), None);
        assert!(tx.is_busy());
        assert_eq!(tx.next_packet(0, 160).map(|p| p.payload[0]), Some(7));
    }
}
