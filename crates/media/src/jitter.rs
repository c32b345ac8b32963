//! The receive jitter buffer: RTP packets in (in any order, at any time), one frame out per
//! playout tick. It never decodes: it says which payload to decode, or that the frame is
//! missing and must be concealed (Opus PLC, or FEC decoding of the following packet).
//!
//! Adaptive: the target delay follows the interarrival jitter (RFC 3550 §6.4.1 estimator):
//! `target = frame + 3·J`, clamped to `[min_delay, max_delay]`. Playout starts once the target
//! is buffered. On an underrun (nothing to play) the buffer conceals *without* skipping, so a
//! network stall delays audio instead of losing it; when more than the target plus a margin is
//! buffered (after a burst), it drops one frame per tick until it is back near the target.
//! Time is an input: `now_ms` on every call, any monotonic millisecond clock.

use std::collections::BTreeMap;

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct JitterConfig {
    /// RTP clock rate of the payload (Opus: 48000).
    pub clock_rate: u32,
    /// Duration of one packet (Opus in Calldock: 20 ms).
    pub frame_ms: u32,
    pub min_delay_ms: u32,
    pub max_delay_ms: u32,
    /// Most packets held; beyond it the oldest are dropped (a sender cannot grow memory).
    pub capacity: usize,
}

impl Default for JitterConfig {
    fn default() -> Self {
        Self { clock_rate: 48_000, frame_ms: 20, min_delay_ms: 20, max_delay_ms: 500, capacity: 256 }
    }
}

/// What to play for one frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Playout {
    /// Decode this payload.
    Packet(Vec<u8>),
    /// The frame is missing: conceal it. `fec` is the next packet's payload when it is already
    /// here, whose in-band FEC can rebuild this frame.
    Conceal { fec: Option<Vec<u8>> },
    /// Playout has not started (buffering): play silence. Not counted as concealment.
    Silence,
}

/// Counters since creation, and the current delay, for stats.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct JitterStats {
    pub received: u64,
    pub duplicates: u64,
    /// Arrived after their playout time; discarded.
    pub late: u64,
    /// Never arrived in time: concealed, and the sequence moved past them.
    pub lost: u64,
    /// Ticks with nothing to play at all (the buffer ran dry).
    pub underruns: u64,
    /// Frames concealed (lost plus underruns).
    pub concealed: u64,
    /// Frames dropped to bring the delay back down after a burst.
    pub dropped: u64,
    pub played: u64,
    /// Interarrival jitter estimate, ms.
    pub jitter_ms: f64,
    pub target_delay_ms: u32,
    /// Audio currently buffered ahead of the playout point, ms.
    pub buffered_ms: u32,
}

#[derive(Debug)]
pub struct JitterBuffer {
    config: JitterConfig,
    /// Extended (unwrapped) sequence number → payload.
    packets: BTreeMap<u64, Vec<u8>>,
    /// Highest extended sequence number seen, for unwrapping.
    highest: Option<u64>,
    /// Next sequence number to play; `None` until playout starts.
    next: Option<u64>,
    /// Last (arrival − RTP time) in ms, for the jitter estimate.
    last_transit: Option<f64>,
    last_rtp: Option<u32>,
    rtp_unwrapped: u64,
    /// Consecutive ticks with more than the target (plus margin) buffered.
    over_target_ticks: u32,
    stats: JitterStats,
}

/// Ticks over target before catching up starts (hysteresis), and then one dropped frame per
/// this many ticks, so catching up after a stall spreads its cuts out instead of jumping.
const CATCH_UP_AFTER_TICKS: u32 = 10;
const CATCH_UP_EVERY_TICKS: u32 = 4;

/// A sequence jump this far ahead is a new stream (the sender restarted), not a loss burst.
const RESYNC_GAP: u64 = 1000;

impl JitterBuffer {
    pub fn new(config: JitterConfig) -> Self {
        let stats = JitterStats { target_delay_ms: config.min_delay_ms.max(config.frame_ms), ..JitterStats::default() };
        Self {
            config,
            packets: BTreeMap::new(),
            highest: None,
            next: None,
            last_transit: None,
            last_rtp: None,
            rtp_unwrapped: 0,
            over_target_ticks: 0,
            stats,
        }
    }

    pub fn stats(&self) -> JitterStats {
        let mut s = self.stats;
        s.buffered_ms = self.buffered_ms();
        s
    }

    /// Unwraps a 16-bit sequence number against the highest seen so far.
    fn extend(&self, seq: u16) -> u64 {
        match self.highest {
            // Start high so that packets a little older than the first still unwrap.
            None => (1 << 20) + u64::from(seq),
            Some(h) => {
                let delta = seq.wrapping_sub(h as u16) as i16;
                h.saturating_add_signed(i64::from(delta))
            }
        }
    }

    /// A packet arrived at `now_ms`.
    pub fn push(&mut self, now_ms: u64, seq: u16, rtp_timestamp: u32, payload: Vec<u8>) {
        let ext = self.extend(seq);
        if self.highest.is_some_and(|h| ext > h + RESYNC_GAP) {
            self.reset();
        }
        self.update_jitter(now_ms, rtp_timestamp);
        self.stats.received += 1;
        if self.next.is_some_and(|n| ext < n) {
            self.stats.late += 1;
            return;
        }
        if self.packets.contains_key(&ext) {
            self.stats.duplicates += 1;
            return;
        }
        self.packets.insert(ext, payload);
        self.highest = Some(self.highest.map_or(ext, |h| h.max(ext)));
        while self.packets.len() > self.config.capacity {
            if let Some((&oldest, _)) = self.packets.iter().next() {
                self.packets.remove(&oldest);
                self.stats.dropped += 1;
                if let Some(n) = self.next.as_mut() {
                    *n = (*n).max(oldest + 1);
                }
            }
        }
    }

    fn reset(&mut self) {
        self.packets.clear();
        self.highest = None;
        self.next = None;
        self.last_transit = None;
        self.last_rtp = None;
    }

    fn update_jitter(&mut self, now_ms: u64, rtp_timestamp: u32) {
        let rtp = match self.last_rtp {
            None => u64::from(rtp_timestamp) + (1 << 33),
            Some(last) => self.rtp_unwrapped.saturating_add_signed(i64::from(rtp_timestamp.wrapping_sub(last) as i32)),
        };
        self.last_rtp = Some(rtp_timestamp);
        self.rtp_unwrapped = rtp;
        let transit = now_ms as f64 - rtp as f64 * 1000.0 / f64::from(self.config.clock_rate.max(1));
        if let Some(last) = self.last_transit {
            let d = (transit - last).abs();
            // A sender restart jumps the RTP clock: ignore absurd differences.
            if d < 10_000.0 {
                self.stats.jitter_ms += (d - self.stats.jitter_ms) / 16.0;
            }
        }
        self.last_transit = Some(transit);
        let frame = f64::from(self.config.frame_ms);
        let target = (frame + 3.0 * self.stats.jitter_ms).ceil() as u32;
        self.stats.target_delay_ms =
            target.clamp(self.config.min_delay_ms.max(self.config.frame_ms), self.config.max_delay_ms);
    }

    fn buffered_ms(&self) -> u32 {
        let (Some(&first), Some(&last)) = (self.packets.keys().next(), self.packets.keys().next_back()) else {
            return 0;
        };
        let from = self.next.unwrap_or(first).min(first);
        let frames = last.saturating_sub(from) + 1;
        (frames.min(u64::from(u32::MAX / self.config.frame_ms.max(1))) as u32) * self.config.frame_ms
    }

    /// One playout tick (called every `frame_ms` by the playout clock): what to play next.
    pub fn pop(&mut self) -> Playout {
        let Some(next) = self.next else {
            if self.packets.is_empty() || self.buffered_ms() < self.stats.target_delay_ms {
                return Playout::Silence;
            }
            let Some(&first) = self.packets.keys().next() else { return Playout::Silence };
            self.next = Some(first);
            return self.pop();
        };
        // Too much buffered for a while (after a burst): drop a frame now and then to catch up.
        let margin = 3 * self.config.frame_ms;
        if self.buffered_ms() > self.stats.target_delay_ms + margin {
            self.over_target_ticks += 1;
        } else {
            self.over_target_ticks = 0;
        }
        let catch_up = self.over_target_ticks >= CATCH_UP_AFTER_TICKS
            && (self.over_target_ticks - CATCH_UP_AFTER_TICKS).is_multiple_of(CATCH_UP_EVERY_TICKS);
        if catch_up && self.packets.len() > 1 && self.packets.contains_key(&next) {
            self.packets.remove(&next);
            self.stats.dropped += 1;
            self.next = Some(next + 1);
            return self.pop();
        }
        if let Some(payload) = self.packets.remove(&next) {
            self.next = Some(next + 1);
            self.stats.played += 1;
            return Playout::Packet(payload);
        }
        if let Some(&first) = self.packets.keys().next()
            && first.saturating_sub(next).saturating_mul(u64::from(self.config.frame_ms))
                > u64::from(self.config.max_delay_ms)
        {
            // Media came back after an outage (an ICE restart): the frames in the gap were due
            // while the buffer ran dry, and concealing them one by one now would put the whole
            // outage in front of the audio that followed it. They are lost; play on from what
            // arrived.
            self.stats.lost += first - next;
            self.next = Some(first);
            return self.pop();
        }
        self.stats.concealed += 1;
        if self.packets.keys().next().is_some_and(|&k| k > next) {
            // A gap: the frame is lost. The following packet may carry it as FEC.
            self.next = Some(next + 1);
            self.stats.lost += 1;
            return Playout::Conceal { fec: self.packets.get(&(next + 1)).cloned() };
        }
        // Dry: conceal, but wait for this very frame rather than skipping it.
        self.stats.underruns += 1;
        Playout::Conceal { fec: None }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FRAME: u32 = 960; // 20 ms at 48 kHz

    fn payload(seq: u16) -> Vec<u8> {
        seq.to_be_bytes().to_vec()
    }

    /// Feeds packets `seqs` at their nominal times plus `delay(seq)` and plays one tick per
    /// 20 ms; returns what was played.
    fn run(buffer: &mut JitterBuffer, arrivals: &[(u64, u16)], ticks: u64, first_tick: u64) -> Vec<Playout> {
        let mut out = Vec::new();
        let mut arrivals = arrivals.to_vec();
        arrivals.sort_by_key(|a| a.0);
        let mut i = 0;
        for t in 0..ticks {
            let now = first_tick + t * 20;
            while i < arrivals.len() && arrivals[i].0 <= now {
                let (at, seq) = arrivals[i];
                buffer.push(at, seq, u32::from(seq).wrapping_mul(FRAME), payload(seq));
                i += 1;
            }
            out.push(buffer.pop());
        }
        out
    }

    fn played(out: &[Playout]) -> Vec<u16> {
        out.iter()
            .filter_map(|p| match p {
                Playout::Packet(b) => Some(u16::from_be_bytes([b[0], b[1]])),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn in_order_packets_play_in_order_after_the_target_delay() {
        let mut jb = JitterBuffer::new(JitterConfig::default());
        let arrivals: Vec<(u64, u16)> = (0..50).map(|s| (u64::from(s) * 20, s)).collect();
        let out = run(&mut jb, &arrivals, 60, 0);
        assert_eq!(out[0], Playout::Packet(payload(0)), "20 ms target with no jitter: play at once");
        assert_eq!(played(&out), (0..50).collect::<Vec<_>>());
        let s = jb.stats();
        assert_eq!((s.lost, s.late, s.played), (0, 0, 50));
    }

    #[test]
    fn reordered_packets_within_the_buffer_play_in_order() {
        let mut jb = JitterBuffer::new(JitterConfig { min_delay_ms: 60, ..JitterConfig::default() });
        let mut arrivals: Vec<(u64, u16)> = (0..30).map(|s| (u64::from(s) * 20, s)).collect();
        arrivals.swap(10, 11); // 11 arrives before 10 (same instant order swapped)
        arrivals[10].0 = 200;
        arrivals[11].0 = 215;
        let out = run(&mut jb, &arrivals, 40, 0);
        assert_eq!(played(&out), (0..30).collect::<Vec<_>>());
        assert_eq!(jb.stats().lost, 0);
    }

    #[test]
    fn a_lost_packet_is_concealed_with_fec_from_the_next_one() {
        let mut jb = JitterBuffer::new(JitterConfig { min_delay_ms: 60, ..JitterConfig::default() });
        let arrivals: Vec<(u64, u16)> = (0..20).filter(|&s| s != 7).map(|s| (u64::from(s) * 20, s)).collect();
        let out = run(&mut jb, &arrivals, 30, 0);
        let conceal = out.iter().position(|p| matches!(p, Playout::Conceal { .. })).expect("a concealed frame");
        assert_eq!(out[conceal], Playout::Conceal { fec: Some(payload(8)) });
        assert_eq!(played(&out), (0..20).filter(|&s| s != 7).collect::<Vec<_>>());
        assert_eq!(jb.stats().lost, 1);
    }

    #[test]
    fn a_packet_later_than_its_playout_is_discarded_and_counted() {
        let mut jb = JitterBuffer::new(JitterConfig::default());
        let mut arrivals: Vec<(u64, u16)> = (0..20).map(|s| (u64::from(s) * 20, s)).collect();
        arrivals[5].0 = 300; // seq 5 arrives 200 ms late
        let out = run(&mut jb, &arrivals, 30, 0);
        assert!(!played(&out).contains(&5));
        let s = jb.stats();
        assert_eq!((s.late, s.lost), (1, 1));
    }

    #[test]
    fn a_stall_delays_audio_instead_of_losing_it() {
        let mut jb = JitterBuffer::new(JitterConfig::default());
        // Packets 10..20 are held 200 ms by the network, then arrive in a burst.
        let arrivals: Vec<(u64, u16)> =
            (0..40).map(|s| (if (10..20).contains(&s) { 400 } else { u64::from(s) * 20 }, s)).collect();
        let out = run(&mut jb, &arrivals, 80, 0);
        let s = jb.stats();
        assert!(s.underruns > 0, "the stall is concealed");
        assert_eq!(s.lost, 0, "nothing is skipped while dry");
        let p = played(&out);
        assert!(p.windows(2).all(|w| w[0] < w[1]), "in order: {p:?}");
        assert!(p.starts_with(&[0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12]), "the stalled audio plays: {p:?}");
        assert!(p.contains(&39));
    }

    #[test]
    fn after_an_outage_playout_jumps_to_the_audio_that_followed_it() {
        let mut jb = JitterBuffer::new(JitterConfig::default());
        // 6 s of nothing (packets 50..350 never come), then the stream goes on.
        let arrivals: Vec<(u64, u16)> =
            (0..400).filter(|s| !(50..350).contains(s)).map(|s| (u64::from(s) * 20, s)).collect();
        let out = run(&mut jb, &arrivals, 400, 0);
        let p = played(&out);
        // Packet 350 arrives at tick 350 and plays at once, not 300 concealed frames later.
        let resumed = out.iter().position(|o| *o == Playout::Packet(payload(350))).expect("the stream resumes");
        assert!(resumed <= 351, "played {resumed} ticks in");
        assert!(p.ends_with(&[397, 398, 399]), "{p:?}");
        let s = jb.stats();
        assert_eq!(s.lost, 300);
        assert_eq!(s.buffered_ms, 0);
    }

    #[test]
    fn delay_comes_back_down_after_a_burst() {
        let mut jb = JitterBuffer::new(JitterConfig::default());
        // 25 packets arrive at once (a burst after a stall), then steady traffic.
        let mut arrivals: Vec<(u64, u16)> = (0..25).map(|s| (0, s)).collect();
        arrivals.extend((25..100).map(|s| (u64::from(s) * 20, s)));
        run(&mut jb, &arrivals, 100, 0);
        let s = jb.stats();
        assert!(s.dropped > 0, "frames were dropped to catch up");
        assert!(s.buffered_ms <= s.target_delay_ms + 60, "{s:?}");
    }

    #[test]
    fn target_delay_follows_jitter_within_bounds() {
        let mut steady = JitterBuffer::new(JitterConfig::default());
        let arrivals: Vec<(u64, u16)> = (0..200).map(|s| (u64::from(s) * 20, s)).collect();
        run(&mut steady, &arrivals, 220, 0);
        assert_eq!(steady.stats().target_delay_ms, 20);

        let mut jittery = JitterBuffer::new(JitterConfig::default());
        // ±30 ms alternating delay.
        let arrivals: Vec<(u64, u16)> =
            (0..200).map(|s| (u64::from(s) * 20 + if s % 2 == 0 { 0 } else { 30 }, s)).collect();
        run(&mut jittery, &arrivals, 220, 0);
        let s = jittery.stats();
        assert!(s.jitter_ms > 20.0, "{s:?}");
        assert!(s.target_delay_ms >= 80 && s.target_delay_ms <= 500, "{s:?}");
    }

    #[test]
    fn sequence_numbers_wrap_around() {
        let mut jb = JitterBuffer::new(JitterConfig::default());
        let seqs: Vec<u16> = (0..40).map(|i| 65_520u16.wrapping_add(i)).collect();
        let arrivals: Vec<(u64, u16)> = seqs.iter().enumerate().map(|(i, &s)| (i as u64 * 20, s)).collect();
        let out = run(&mut jb, &arrivals, 50, 0);
        assert_eq!(played(&out), seqs);
    }

    #[test]
    fn a_far_jump_is_a_new_stream_and_memory_stays_bounded() {
        let mut jb = JitterBuffer::new(JitterConfig { capacity: 32, ..JitterConfig::default() });
        for s in 0..10u16 {
            jb.push(u64::from(s) * 20, s, u32::from(s) * FRAME, payload(s));
        }
        // A hostile or restarted sender: random far-away sequence numbers.
        for i in 0..1000u32 {
            let s = (i.wrapping_mul(40_503) % 65_536) as u16;
            jb.push(200 + u64::from(i), s, i.wrapping_mul(7_777_777), payload(s));
            let _ = jb.pop();
        }
        assert!(jb.packets.len() <= 32);
        let s = jb.stats();
        assert!(s.jitter_ms.is_finite());
    }
}
