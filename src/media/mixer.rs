//! What each party hears, frame by frame. The agent hears every call; a
//! call on our hold hears the hold music; a muted call hears silence from
//! the agent; and the calls of the local conference also hear one another,
//! each everyone but itself. The sums are kept wide (i32) and clipped once,
//! so three loud parties saturate instead of wrapping, and nothing is
//! allocated: the media tick calls this for every frame. A tick spread over
//! threads keeps one mixer per lane and adds the lanes' sums together
//! before anything is sent.

use super::codec::{Frame, FRAME_SAMPLES};

/// How one call takes part in this frame's mix.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct LegMix {
    /// The agent's microphone does not go to this call.
    pub muted: bool,
    /// We hold this call: it gets the hold music, and nobody else's audio.
    pub held: bool,
    /// The call is in the local conference.
    pub conference: bool,
}

/// One frame's sums; reused for every frame.
pub struct Mixer {
    agent: [i32; FRAME_SAMPLES],
    conference: [i32; FRAME_SAMPLES],
}

impl Default for Mixer {
    fn default() -> Self {
        Mixer { agent: [0; FRAME_SAMPLES], conference: [0; FRAME_SAMPLES] }
    }
}

impl Mixer {
    /// Forget the last frame's sums.
    pub fn start_frame(&mut self) {
        self.agent.fill(0);
        self.conference.fill(0);
    }

    /// A call's playout for this frame: the agent hears it, and so does the
    /// rest of the conference when the call is in it and not held.
    pub fn add_heard(&mut self, heard: &Frame, leg: LegMix) {
        add(&mut self.agent, heard);
        if leg.conference && !leg.held {
            add(&mut self.conference, heard);
        }
    }

    /// Add another mixer's sums of this frame (a lane's, in a tick spread
    /// over threads) to these.
    pub fn add_sums(&mut self, lane: &Mixer) {
        for (sum, other) in self.agent.iter_mut().zip(&lane.agent) {
            *sum += other;
        }
        for (sum, other) in self.conference.iter_mut().zip(&lane.conference) {
            *sum += other;
        }
    }

    /// What the agent hears this frame, in `out`. Call after every `add_heard`.
    pub fn agent_frame<'a>(&self, out: &'a mut Frame) -> &'a Frame {
        clip(&self.agent, out);
        out
    }

    /// What to send to one call this frame, given what that call itself
    /// was heard saying (`heard`, as passed to `add_heard`); `out` holds
    /// it when it is a mix. Call after every `add_heard`.
    pub fn outgoing<'a>(
        &self,
        leg: LegMix,
        mic: &'a Frame,
        music: &'a Frame,
        heard: &Frame,
        out: &'a mut Frame,
    ) -> &'a Frame {
        if leg.held {
            return music;
        }
        if !leg.conference {
            if leg.muted {
                out.fill(0);
                return out;
            }
            return mic;
        }
        for (i, out) in out.iter_mut().enumerate() {
            let mic = if leg.muted { 0 } else { i32::from(mic[i]) };
            let others = self.conference[i] - i32::from(heard[i]);
            *out = (mic + others).clamp(i32::from(i16::MIN), i32::from(i16::MAX)) as i16;
        }
        out
    }
}

fn add(sum: &mut [i32; FRAME_SAMPLES], frame: &Frame) {
    for (s, x) in sum.iter_mut().zip(frame) {
        *s += i32::from(*x);
    }
}

fn clip(sum: &[i32; FRAME_SAMPLES], out: &mut Frame) {
    for (o, s) in out.iter_mut().zip(sum) {
        *o = (*s).clamp(i32::from(i16::MIN), i32::from(i16::MAX)) as i16;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audio::{AudioSource, ToneSource};

    /// A quarter of full scale: three of them sum without clipping. Every
    /// frequency used is a multiple of 50 Hz, so a 20 ms frame holds whole
    /// cycles and the tones do not leak into one another.
    fn tone(hz: f64) -> Frame {
        let mut frame = [0; FRAME_SAMPLES];
        ToneSource::new(hz).read_frame(&mut frame);
        frame.map(|s| s / 2)
    }

    /// 1.0 when `frame` holds `hz` as loud as `tone` makes it, 0.0 when not at all.
    fn level(frame: &Frame, hz: f64) -> f64 {
        crate::audio::analysis::tone_amplitude(frame, crate::media::PCM_RATE, hz) / 8192.0
    }

    const CONF: LegMix = LegMix { muted: false, held: false, conference: true };

    #[test]
    fn in_a_conference_each_party_hears_everyone_but_itself_and_the_agent_hears_all() {
        let (mic, music) = (tone(400.0), [0; FRAME_SAMPLES]);
        let parties = [tone(700.0), tone(1100.0), tone(1500.0)];
        let mut mixer = Mixer::default();
        mixer.start_frame();
        for heard in &parties {
            mixer.add_heard(heard, CONF);
        }
        let agent = *mixer.agent_frame(&mut [0; FRAME_SAMPLES]);
        for hz in [700.0, 1100.0, 1500.0] {
            assert!(level(&agent, hz) > 0.8, "the agent hears {hz} Hz");
        }
        assert!(level(&agent, 400.0) < 0.05, "the agent does not hear itself");
        for (own, heard) in [700.0, 1100.0, 1500.0].into_iter().zip(&parties) {
            let sent = *mixer.outgoing(CONF, &mic, &music, heard, &mut [0; FRAME_SAMPLES]);
            assert!(level(&sent, own) < 0.05, "a party never hears itself ({own} Hz)");
            assert!(level(&sent, 400.0) > 0.8, "every party hears the agent");
            for other in [700.0, 1100.0, 1500.0].into_iter().filter(|hz| *hz != own) {
                assert!(level(&sent, other) > 0.8, "{own} Hz hears {other} Hz");
            }
        }
    }

    #[test]
    fn mute_silences_only_the_agent_and_hold_gives_music_and_leaves_the_mix() {
        let (mic, music) = (tone(400.0), tone(300.0));
        let (a, b) = (tone(700.0), tone(1100.0));
        let mut mixer = Mixer::default();
        mixer.start_frame();
        let held = LegMix { held: true, ..CONF };
        mixer.add_heard(&a, CONF);
        mixer.add_heard(&b, held);
        let muted = LegMix { muted: true, ..CONF };
        let to_a = *mixer.outgoing(muted, &mic, &music, &a, &mut [0; FRAME_SAMPLES]);
        assert!(level(&to_a, 400.0) < 0.05, "muted: the agent is not heard");
        assert!(level(&to_a, 1100.0) < 0.05, "a held party is out of the conference");
        assert_eq!(*mixer.outgoing(held, &mic, &music, &b, &mut [0; FRAME_SAMPLES]), music);
        let lone = LegMix { muted: true, ..LegMix::default() };
        assert_eq!(*mixer.outgoing(lone, &mic, &music, &a, &mut [0; FRAME_SAMPLES]), [0; FRAME_SAMPLES]);
        assert_eq!(*mixer.outgoing(LegMix::default(), &mic, &music, &a, &mut [0; FRAME_SAMPLES]), mic);
    }

    #[test]
    fn loud_parties_clip_instead_of_wrapping() {
        let loud = [30_000; FRAME_SAMPLES];
        let mut mixer = Mixer::default();
        mixer.start_frame();
        for _ in 0..3 {
            mixer.add_heard(&loud, CONF);
        }
        assert!(mixer.agent_frame(&mut [0; FRAME_SAMPLES]).iter().all(|s| *s == i16::MAX));
        let sent = *mixer.outgoing(CONF, &loud, &[0; FRAME_SAMPLES], &loud, &mut [0; FRAME_SAMPLES]);
        assert!(sent.iter().all(|s| *s == i16::MAX));
    }
}
