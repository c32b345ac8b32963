//! The pacer of a video call: packets leave at the congestion controller's rate, audio first,
//! then retransmissions, then new video, as libwebrtc's pacer orders them.
//!
//! rtc's own pacer (`PacerInterceptor`) keeps one queue for every RTP packet. A key frame on a
//! narrow path is many packets (20 KB is half a second at 300 kbit/s): the audio packets sent
//! meanwhile waited behind all of them, and the other side's jitter buffer ran dry; a
//! retransmission waited too, and came after the receiver had given its frame up. Audio and
//! retransmissions still spend the budget, so new video yields the rate they take. It uses
//! rtc's leaky bucket ([`Pacer`]) and follows the estimate the way rtc's pacer does: from the
//! `TargetBitrateChanged` attribute that the congestion controller puts on the feedback packet
//! it read.

use std::collections::{HashMap, HashSet, VecDeque};
use std::time::Instant;

use rtc::interceptor::{Attribute, Interceptor, PACER_DEFAULT_BITRATE, Pacer, Packet, StreamInfo, TaggedPacket};
use rtc::sansio::Protocol;
use rtc::shared::error::Error;
use rtc::shared::marshal::MarshalSize;

/// Packets held before new ones are refused, per queue: rtc's pacer holds 4096 (video); audio
/// is 50 packets a second, so a second of it is already too late to be worth sending.
const VIDEO_QUEUE_LIMIT: usize = 4096;
const AUDIO_QUEUE_LIMIT: usize = 50;

pub(crate) struct PriorityPacer {
    bucket: Pacer,
    audio_ssrcs: HashSet<u32>,
    /// Streams that carry only retransmissions (RTX, RFC 4588).
    rtx_ssrcs: HashSet<u32>,
    /// The newest sequence number queued per stream: a packet not newer is a retransmission
    /// sent on the stream itself (no RTX negotiated).
    newest: HashMap<u32, u16>,
    audio: VecDeque<TaggedPacket>,
    retransmissions: VecDeque<TaggedPacket>,
    video: VecDeque<TaggedPacket>,
    /// Packets the budget has released, waiting to join the belt.
    released: VecDeque<TaggedPacket>,
    /// RTCP, which is not paced: feedback is only useful while it is fresh.
    unpaced: VecDeque<TaggedPacket>,
    read_queue: VecDeque<TaggedPacket>,
}

impl PriorityPacer {
    pub(crate) fn new() -> Self {
        Self {
            bucket: Pacer::new(PACER_DEFAULT_BITRATE),
            audio_ssrcs: HashSet::new(),
            rtx_ssrcs: HashSet::new(),
            newest: HashMap::new(),
            audio: VecDeque::new(),
            retransmissions: VecDeque::new(),
            video: VecDeque::new(),
            released: VecDeque::new(),
            unpaced: VecDeque::new(),
            read_queue: VecDeque::new(),
        }
    }

    fn bits_of(packet: &TaggedPacket) -> f64 {
        match &packet.message.packet {
            Packet::Rtp(rtp) => (rtp.marshal_size() * 8) as f64,
            _ => 0.0,
        }
    }

    /// The packet that goes next: audio, then retransmissions, then video.
    fn next(&self) -> Option<&TaggedPacket> {
        [&self.audio, &self.retransmissions, &self.video].into_iter().find_map(VecDeque::front)
    }

    fn pop_next(&mut self) -> Option<TaggedPacket> {
        [&mut self.audio, &mut self.retransmissions, &mut self.video].into_iter().find_map(VecDeque::pop_front)
    }
}

impl Protocol<TaggedPacket, TaggedPacket, ()> for PriorityPacer {
    type Rout = TaggedPacket;
    type Wout = TaggedPacket;
    type Eout = ();
    type Error = Error;
    type Time = Instant;

    fn handle_read(&mut self, msg: TaggedPacket) -> Result<(), Self::Error> {
        // The congestion controller sits wire-ward and marks the feedback packet that changed
        // its estimate; this is downstream of it on the read leg.
        if let Some(Attribute::TargetBitrateChanged { bits_per_second }) =
            msg.message.get(&Attribute::TargetBitrateChanged { bits_per_second: 0.0 })
        {
            self.bucket.set_target_bitrate(*bits_per_second);
        }
        self.read_queue.push_back(msg);
        Ok(())
    }

    fn poll_read(&mut self) -> Option<Self::Rout> {
        self.read_queue.pop_front()
    }

    fn handle_write(&mut self, msg: TaggedPacket) -> Result<(), Self::Error> {
        let Packet::Rtp(rtp) = &msg.message.packet else {
            self.unpaced.push_back(msg);
            return Ok(());
        };
        let (ssrc, sequence_number) = (rtp.header.ssrc, rtp.header.sequence_number);
        // Current at enqueue time, so that poll_timeout never answers with a deadline in the past.
        self.bucket.refill(msg.now);
        let (queue, limit) = if self.audio_ssrcs.contains(&ssrc) {
            (&mut self.audio, AUDIO_QUEUE_LIMIT)
        } else if self.rtx_ssrcs.contains(&ssrc)
            || self.newest.get(&ssrc).is_some_and(|&newest| (sequence_number.wrapping_sub(newest) as i16) <= 0)
        {
            (&mut self.retransmissions, VIDEO_QUEUE_LIMIT)
        } else {
            self.newest.insert(ssrc, sequence_number);
            (&mut self.video, VIDEO_QUEUE_LIMIT)
        };
        // Refuse the newcomer rather than evict an older packet: a hole in the middle of what
        // is queued would cost the receiver more than one at the end.
        if queue.len() < limit {
            queue.push_back(msg);
        }
        Ok(())
    }

    fn poll_write(&mut self) -> Option<Self::Wout> {
        self.unpaced.pop_front().or_else(|| self.released.pop_front())
    }

    fn handle_timeout(&mut self, now: Instant) -> Result<(), Self::Error> {
        self.bucket.refill(now);
        while let Some(next) = self.next() {
            let bits = Self::bits_of(next);
            if !self.bucket.can_release(bits) {
                break;
            }
            let Some(mut packet) = self.pop_next() else { break };
            self.bucket.consume(bits);
            // It leaves now: the send history wire-ward must see the release instant, or this
            // wait would be charged to the network.
            packet.now = now;
            self.released.push_back(packet);
        }
        Ok(())
    }

    fn poll_timeout(&mut self) -> Option<Self::Time> {
        let bits = Self::bits_of(self.next()?);
        self.bucket.releasable_at(bits)
    }
}

impl Interceptor for PriorityPacer {
    fn bind_local_stream(&mut self, info: &StreamInfo) {
        if info.mime_type.to_ascii_lowercase().starts_with("audio/") {
            self.audio_ssrcs.insert(info.ssrc);
        }
        self.rtx_ssrcs.extend(info.ssrc_rtx);
    }

    fn unbind_local_stream(&mut self, info: &StreamInfo) {
        self.audio_ssrcs.remove(&info.ssrc);
        self.newest.remove(&info.ssrc);
        if let Some(rtx) = info.ssrc_rtx {
            self.rtx_ssrcs.remove(&rtx);
        }
    }

    fn bind_remote_stream(&mut self, _info: &StreamInfo) {}

    fn unbind_remote_stream(&mut self, _info: &StreamInfo) {}
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use rtc::interceptor::{AttributedPacket, PacerBuilder};
    use rtc::rtp::{Header, Packet as RtpPacket};
    use rtc::shared::TransportContext;

    use super::*;

    const AUDIO: u32 = 1;
    const VIDEO: u32 = 2;

    fn rtp(now: Instant, ssrc: u32, sequence_number: u16, payload: usize) -> TaggedPacket {
        let packet = RtpPacket {
            header: Header { version: 2, ssrc, sequence_number, ..Header::default() },
            payload: vec![0u8; payload].into(),
        };
        TaggedPacket {
            now,
            transport: TransportContext::default(),
            message: AttributedPacket::new(Packet::Rtp(packet)),
        }
    }

    fn bind<P: Interceptor>(pacer: &mut P) {
        let info = |ssrc, mime: &str| StreamInfo { ssrc, mime_type: mime.into(), ..StreamInfo::default() };
        pacer.bind_local_stream(&info(AUDIO, "audio/opus"));
        pacer.bind_local_stream(&info(VIDEO, "video/VP8"));
    }

    /// When the audio packet, the retransmission and the key frame's last packet left.
    struct Departures {
        audio: Duration,
        retransmission: Duration,
        last_video: Duration,
    }

    /// Runs the pacer on simulated time: a 20 KB key frame (17 packets of 1200 bytes) at 0 ms,
    /// then at 1 ms a 20 ms audio packet and a retransmission of the packet sent before the frame.
    fn departures(mut pacer: impl Interceptor) -> Departures {
        bind(&mut pacer);
        let start = Instant::now();
        // Spend the starting burst so that the bucket paces from here on, as mid-call.
        pacer.handle_write(rtp(start, VIDEO, 0, 1500)).ok();
        pacer.handle_timeout(start).ok();
        while pacer.poll_write().is_some() {}
        for seq in 1..=17 {
            pacer.handle_write(rtp(start, VIDEO, seq, 1200)).ok();
        }
        let later = start + Duration::from_millis(1);
        pacer.handle_write(rtp(later, AUDIO, 0, 80)).ok();
        pacer.handle_write(rtp(later, VIDEO, 0, 1500)).ok();
        let (mut audio, mut retransmission, mut last_video) = (None, None, None);
        let mut now = later;
        let mut video_seen = 0;
        while audio.is_none() || retransmission.is_none() || last_video.is_none() {
            pacer.handle_timeout(now).ok();
            while let Some(out) = pacer.poll_write() {
                let Packet::Rtp(packet) = &out.message.packet else { continue };
                match (packet.header.ssrc, packet.header.sequence_number) {
                    (AUDIO, _) => audio = Some(now - start),
                    (VIDEO, 0) => retransmission = Some(now - start),
                    (VIDEO, _) => {
                        video_seen += 1;
                        if video_seen == 17 {
                            last_video = Some(now - start);
                        }
                    }
                    _ => {}
                }
            }
            now = pacer.poll_timeout().unwrap_or(now + Duration::from_millis(1)).max(now + Duration::from_micros(100));
            assert!(now - start < Duration::from_secs(5), "the pacer stalled");
        }
        Departures { audio: audio.unwrap(), retransmission: retransmission.unwrap(), last_video: last_video.unwrap() }
    }

    fn at(pacer: &mut impl Interceptor, bps: f64) {
        let mut feedback = TaggedPacket {
            now: Instant::now(),
            transport: TransportContext::default(),
            message: AttributedPacket::new(Packet::Rtcp(vec![])),
        };
        feedback.message.add(Attribute::TargetBitrateChanged { bits_per_second: bps });
        pacer.handle_read(feedback).unwrap();
        assert!(pacer.poll_read().is_some(), "the feedback goes on up the chain");
    }

    #[test]
    fn audio_and_retransmissions_do_not_wait_behind_a_key_frame() {
        let mut ours = PriorityPacer::new();
        at(&mut ours, 300_000.0);
        let ours = departures(ours);
        // rtc's pacer, for comparison: both leave after the whole key frame.
        let mut theirs = PacerBuilder::new().build();
        at(&mut theirs, 300_000.0);
        let theirs = departures(theirs);
        println!(
            "at 300 kbit/s after a 20 KB key frame: audio left after {:?}, the retransmission after {:?} \
             (rtc's pacer: {:?}, {:?})",
            ours.audio, ours.retransmission, theirs.audio, theirs.retransmission
        );
        assert!(ours.audio < Duration::from_millis(10), "audio goes first: {:?}", ours.audio);
        assert!(ours.retransmission >= ours.audio, "audio goes before a retransmission");
        assert!(ours.retransmission < Duration::from_millis(60), "then the retransmission: {:?}", ours.retransmission);
        assert!(
            theirs.audio > Duration::from_millis(400),
            "rtc's pacer queues audio behind the frame: {:?}",
            theirs.audio
        );
        assert!(
            theirs.retransmission > Duration::from_millis(400),
            "and the retransmission: {:?}",
            theirs.retransmission
        );
        // The frame is still paced at the rate, the others' bits taken from it: everything has
        // left when it would have with rtc's pacer (about 530 ms for 19 packets), not sooner.
        let theirs_done = theirs.last_video.max(theirs.audio).max(theirs.retransmission);
        assert!(ours.last_video > theirs_done - Duration::from_millis(20), "{:?}", ours.last_video);
        assert!(ours.last_video < theirs_done + Duration::from_millis(20), "{:?}", ours.last_video);
    }

    #[test]
    fn rtcp_is_not_paced_and_a_full_queue_refuses_newcomers() {
        let mut pacer = PriorityPacer::new();
        bind(&mut pacer);
        at(&mut pacer, 30_000.0);
        let now = Instant::now();
        for seq in 0..(AUDIO_QUEUE_LIMIT as u16 + 10) {
            pacer.handle_write(rtp(now, AUDIO, seq, 80)).unwrap();
        }
        assert_eq!(pacer.audio.len(), AUDIO_QUEUE_LIMIT);
        assert_eq!(pacer.audio.back().map(|p| matches!(&p.message.packet, Packet::Rtp(r) if r.header.sequence_number == AUDIO_QUEUE_LIMIT as u16 - 1)), Some(true));
        let rtcp = TaggedPacket {
            now,
            transport: TransportContext::default(),
            message: AttributedPacket::new(Packet::Rtcp(vec![])),
        };
        pacer.handle_write(rtcp).unwrap();
        assert!(matches!(pacer.poll_write().map(|p| p.message.packet), Some(Packet::Rtcp(_))), "RTCP goes at once");
    }
}
