//! What the desk costs the run loop: one RTP-free command (`handle` plus
//! draining `poll_output`) on a desk carrying 1 and 100 answered calls,
//! the wake-up for a deadline with nothing due, and `poll_timeout`, which
//! the loop asks on every turn (RTP packets included).
//!
//! `cargo bench --bench desk`.

use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, BatchSize, Criterion};
use jiff::Timestamp;
use softphoned::call::{Command as CallCommand, Signal};
use softphoned::callback::Now;
use softphoned::desk::{Command, Desk, DeskConfig, Input, Line, MediaCommand, MediaReport, Output, Reply};

/// A peer's answer: PCMU and telephone-event.
const ANSWER: &str = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n\
                      m=audio 6000 RTP/AVP 0 101\r\na=rtpmap:101 telephone-event/8000\r\n";

struct Sim {
    desk: Desk,
    t0: Instant,
    wall0: Timestamp,
    lines: u32,
}

impl Sim {
    fn new(calls_max: usize) -> Sim {
        let (t0, wall0) = (Instant::now(), Timestamp::now());
        let config = DeskConfig { calls_max, hold_on_answer: false, ..DeskConfig::default() };
        Sim { desk: Desk::new(config, Now { at: t0, wall: wall0 }), t0, wall0, lines: 0 }
    }

    fn now(&self, ms: u64) -> Now {
        let d = Duration::from_millis(ms);
        Now { at: self.t0 + d, wall: self.wall0 + d }
    }

    /// The shell's part: carry out (here: drop) the outputs, refill lines.
    fn drain(&mut self, now: Now) {
        while let Some(output) = self.desk.poll_output() {
            if let Output::Media(MediaCommand::Stop { call }) = output {
                let _ = self.desk.handle(Input::Media(MediaReport::Stopped { call, stats: None }), now);
            }
        }
        for _ in 0..self.desk.lines_wanted() {
            self.lines += 1;
            let rtp = format!("127.0.0.1:{}", 20000 + 2 * (self.lines % 20000)).parse().unwrap();
            let line = Line { call: format!("c{}", self.lines), rtp, session_id: 1, key_salt: [7; 30] };
            let _ = self.desk.handle(Input::Line(line), now);
        }
    }

    /// `count` answered calls; returns their ids.
    fn answered_calls(&mut self, count: usize) -> Vec<String> {
        let now = self.now(0);
        self.drain(now);
        let mut calls = Vec::new();
        for n in 0..count {
            let dial = Command::Dial { to: format!("sip:customer{n}@127.0.0.1:5070"), account: None };
            let Ok(Reply::Call(call)) = self.desk.handle(Input::Command(dial), now) else { panic!("dial refused") };
            self.drain(now);
            let answered = Signal::Answered { sdp: ANSWER.into(), session_timer: None, supports_replaces: false };
            self.desk.handle(Input::Signal { call: call.clone(), signal: answered }, now).unwrap();
            self.drain(now);
            calls.push(call);
        }
        calls
    }
}

fn bench(c: &mut Criterion) {
    for count in [1usize, 100] {
        let mut sim = Sim::new(count + 1);
        let calls = sim.answered_calls(count);
        let now = sim.now(1000);
        let mut muted = false;
        c.bench_function(&format!("desk: mute toggle, handle + poll_output, {count} calls"), |b| {
            b.iter(|| {
                muted = !muted;
                let command = if muted { CallCommand::Mute } else { CallCommand::Unmute };
                let input = Input::Command(Command::Call { call: calls[0].clone(), command });
                sim.desk.handle(input, now).unwrap();
                while sim.desk.poll_output().is_some() {}
            })
        });
        c.bench_function(&format!("desk: timeout with nothing due, {count} calls"), |b| {
            b.iter(|| {
                sim.desk.handle(Input::Timeout, now).unwrap();
                while sim.desk.poll_output().is_some() {}
            })
        });
        c.bench_function(&format!("desk: poll_timeout, {count} calls"), |b| {
            b.iter(|| std::hint::black_box(sim.desk.poll_timeout()))
        });
    }
    c.bench_function("desk: dial, answer and hang up one call", |b| {
        b.iter_batched(
            || Sim::new(2),
            |mut sim| {
                let call = sim.answered_calls(1).remove(0);
                let hangup = Input::Command(Command::Call { call, command: CallCommand::Hangup });
                sim.desk.handle(hangup, sim.now(1)).unwrap();
                sim.drain(sim.now(1));
            },
            BatchSize::SmallInput,
        )
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
