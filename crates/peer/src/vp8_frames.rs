//! Whole VP8 frames from the RTP packets that carry them (RFC 7741), which may arrive out of
//! order, late (sent again after a NACK), twice, or never.
//!
//! rtc's `SampleBuilder` does this too, but keeps a slot for every possible sequence number:
//! 65 536 packets and as many samples, about 12 MiB per video stream written at creation, for
//! a call that holds a few dozen packets at a time. This keeps only the packets not yet part of
//! a frame, at most [`MAX_PACKETS`]. The VP8 payload descriptor is parsed by rtc's `Vp8Packet`.
//!
//! No IO and no clock: how long to wait for a missing packet is measured in RTP time (the
//! newest packet's timestamp against the waiting frame's).

use std::collections::BTreeMap;

use bytes::{Bytes, BytesMut};
use rtc::rtp::codec::vp8::Vp8Packet;
use rtc::rtp::packetizer::Depacketizer;

/// Packets held while frames complete: a 1080p key frame is a few hundred.
pub(crate) const MAX_PACKETS: usize = 1024;

/// One reassembled frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct AssembledFrame {
    pub timestamp: u32,
    pub data: Bytes,
    /// Packets before this frame were given up on.
    pub after_loss: bool,
}

impl AssembledFrame {
    /// A VP8 key frame (RFC 6386 §9.1): the frame tag's first bit clear, then the start code
    /// 9d 01 2a, then the picture's width and height. A frame too short for that, or without the
    /// start code, is not one, whatever its first bit says. (`calldock_video::is_keyframe` is the
    /// same test; this crate stays free of the codec.)
    pub fn is_key_frame(&self) -> bool {
        let d = &self.data;
        d.len() >= 10 && d[0] & 1 == 0 && d[3..6] == [0x9d, 0x01, 0x2a]
    }
}

#[derive(Debug)]
struct Held {
    timestamp: u32,
    marker: bool,
    /// First packet of the frame: start of partition 0.
    head: bool,
    payload: Bytes,
}

pub(crate) struct FrameAssembler {
    /// By extended (unwrapped) sequence number.
    held: BTreeMap<u64, Held>,
    /// The highest extended sequence number seen.
    highest: Option<u64>,
    /// The last packet that was emitted or given up on: anything at or below it is late.
    done_up_to: Option<u64>,
    newest_timestamp: u32,
    /// Packets were given up on since the last frame emitted.
    lost: bool,
    /// How long (90 kHz ticks) a frame may wait for a missing packet.
    max_wait: u32,
}

impl FrameAssembler {
    /// `max_wait_ms`: how long, in media time, a frame waits for a missing packet (a NACK
    /// round trip or two) before it is given up.
    pub(crate) fn new(max_wait_ms: u32) -> Self {
        FrameAssembler {
            held: BTreeMap::new(),
            highest: None,
            done_up_to: None,
            newest_timestamp: 0,
            lost: false,
            max_wait: max_wait_ms.saturating_mul(90),
        }
    }

    /// The extended sequence number closest to the highest seen.
    fn unwrap(&self, sequence: u16) -> u64 {
        let Some(highest) = self.highest else { return u64::from(sequence) + (1 << 16) };
        let base = highest & !0xffff;
        let candidates = [base.wrapping_sub(1 << 16), base, base + (1 << 16)];
        candidates
            .into_iter()
            .map(|b| b.wrapping_add(u64::from(sequence)))
            .filter(|&c| c < (1 << 62))
            .min_by_key(|&c| c.abs_diff(highest))
            .unwrap_or(u64::from(sequence))
    }

    /// Takes one packet; returns the frames it completed, oldest first.
    pub(crate) fn push(&mut self, sequence: u16, timestamp: u32, marker: bool, payload: &Bytes) -> Vec<AssembledFrame> {
        let extended = self.unwrap(sequence);
        if self.done_up_to.is_some_and(|done| extended <= done) || self.held.contains_key(&extended) {
            return Vec::new(); // late or a duplicate
        }
        let mut descriptor = Vp8Packet::default();
        let Ok(data) = descriptor.depacketize(payload) else {
            return Vec::new(); // not VP8: as if it never came
        };
        let head = descriptor.s == 1 && descriptor.pid == 0;
        if self.highest.is_none_or(|h| extended > h) {
            self.highest = Some(extended);
            self.newest_timestamp = timestamp;
        }
        self.held.insert(extended, Held { timestamp, marker, head, payload: data });
        while self.held.len() > MAX_PACKETS {
            self.give_up_oldest_frame();
        }
        self.emit()
    }

    /// Drops the oldest held frame's packets (it will not complete).
    fn give_up_oldest_frame(&mut self) {
        let Some((_, oldest)) = self.held.first_key_value() else { return };
        let timestamp = oldest.timestamp;
        while let Some(entry) = self.held.first_entry() {
            if entry.get().timestamp != timestamp {
                break;
            }
            let (sequence, _) = entry.remove_entry();
            self.done_up_to = Some(sequence);
        }
        self.lost = true;
    }

    /// The last sequence number of the complete frame that starts at `start`, if it is there.
    fn complete_from(&self, start: u64) -> Option<u64> {
        let timestamp = self.held.get(&start)?.timestamp;
        let mut sequence = start;
        loop {
            let packet = self.held.get(&sequence)?;
            if packet.timestamp != timestamp {
                return None;
            }
            if packet.marker {
                return Some(sequence);
            }
            sequence += 1;
        }
    }

    fn emit(&mut self) -> Vec<AssembledFrame> {
        let mut frames = Vec::new();
        while let Some((&start, first)) = self.held.first_key_value() {
            let timestamp = first.timestamp;
            let follows = self.done_up_to.is_none_or(|done| start == done + 1);
            let waited_too_long = self.newest_timestamp.wrapping_sub(first.timestamp) as i32 > self.max_wait as i32;
            if first.head
                && (follows || waited_too_long)
                && let Some(end) = self.complete_from(start)
            {
                // A gap before it that was waited out is loss; so is anything given up on.
                let after_loss = self.lost || !follows;
                let mut data = BytesMut::new();
                for sequence in start..=end {
                    if let Some(packet) = self.held.remove(&sequence) {
                        data.extend_from_slice(&packet.payload);
                    }
                }
                self.done_up_to = Some(end);
                self.lost = false;
                frames.push(AssembledFrame { timestamp, data: data.freeze(), after_loss });
                continue;
            }
            if waited_too_long {
                // The oldest frame lost a packet (or its head) for good.
                self.give_up_oldest_frame();
                continue;
            }
            break;
        }
        frames
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// VP8 payload descriptor: S set on a frame's first packet (partition 0), then the bytes.
    fn payload(head: bool, bytes: &[u8]) -> Bytes {
        let mut p = vec![if head { 0x10 } else { 0x00 }];
        p.extend_from_slice(bytes);
        // depacketize wants at least 4 bytes in all.
        while p.len() < 4 {
            p.push(0);
        }
        Bytes::from(p)
    }

    /// The packets of frame `n` (timestamp n·3000): `count` packets from sequence `first`.
    fn frame(first: u16, n: u32, count: u16) -> Vec<(u16, u32, bool, Bytes)> {
        (0..count)
            .map(|i| (first.wrapping_add(i), n * 3000, i + 1 == count, payload(i == 0, &[n as u8, i as u8, 0xaa])))
            .collect()
    }

    fn push_all(a: &mut FrameAssembler, packets: &[(u16, u32, bool, Bytes)]) -> Vec<AssembledFrame> {
        packets.iter().flat_map(|(s, t, m, p)| a.push(*s, *t, *m, p)).collect()
    }

    #[test]
    fn a_key_frame_has_its_start_code_and_size() {
        let frame =
            |bytes: &[u8]| AssembledFrame { timestamp: 0, data: Bytes::copy_from_slice(bytes), after_loss: false };
        // 640x480: a key frame tag, the start code, width and height (14 bits each, little-endian).
        let key = [0x50, 0x42, 0x00, 0x9d, 0x01, 0x2a, 0x80, 0x02, 0xe0, 0x01, 0x00];
        assert!(frame(&key).is_key_frame());
        // An interframe: its first bit set.
        assert!(!frame(&[0x51, 0x42, 0x00, 0x9d, 0x01, 0x2a, 0x80, 0x02, 0xe0, 0x01]).is_key_frame());
        // First bit clear, but no start code, or cut short: garbage, not a key frame.
        assert!(!frame(&[0x50, 0x42, 0x00, 0x00, 0x00, 0x00, 0x80, 0x02, 0xe0, 0x01]).is_key_frame());
        assert!(!frame(&key[..9]).is_key_frame());
        assert!(!frame(&[]).is_key_frame());
    }

    #[test]
    fn frames_in_order_come_out_whole() {
        let mut a = FrameAssembler::new(200);
        let mut packets = frame(100, 1, 3);
        packets.extend(frame(103, 2, 1));
        let out = push_all(&mut a, &packets);
        assert_eq!(out.len(), 2);
        assert_eq!(out[0].timestamp, 3000);
        assert_eq!(&out[0].data[..], &[1, 0, 0xaa, 1, 1, 0xaa, 1, 2, 0xaa]);
        assert!(!out[0].after_loss && !out[1].after_loss);
    }

    #[test]
    fn packets_out_of_order_and_twice_make_one_frame() {
        let mut a = FrameAssembler::new(200);
        let p = frame(7, 1, 3);
        assert!(push_all(&mut a, &[p[2].clone(), p[0].clone(), p[0].clone()]).is_empty());
        let out = push_all(&mut a, &[p[1].clone(), p[1].clone(), p[2].clone()]);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].data.len(), 9);
    }

    #[test]
    fn a_packet_sent_again_in_time_completes_its_frame() {
        let mut a = FrameAssembler::new(200);
        let mut p = frame(10, 1, 3);
        let missing = p.remove(1);
        let mut later = frame(13, 2, 2);
        later.extend(frame(15, 3, 2));
        // 66 ms of later frames arrive before the retransmission: within the 200 ms wait.
        assert!(push_all(&mut a, &p).is_empty());
        assert!(push_all(&mut a, &later).is_empty(), "later frames wait for the older one");
        let out = push_all(&mut a, &[missing]);
        assert_eq!(out.iter().map(|f| f.timestamp).collect::<Vec<_>>(), [3000, 6000, 9000]);
        assert!(out.iter().all(|f| !f.after_loss));
    }

    #[test]
    fn a_packet_lost_for_good_drops_its_frame_and_marks_the_next() {
        let mut a = FrameAssembler::new(200);
        let mut packets = frame(10, 1, 3);
        packets.remove(1);
        let mut out = push_all(&mut a, &packets);
        // Frames keep coming; once the newest is 200 ms past the broken one, it is given up.
        let mut sequence = 13;
        for n in 2..=9 {
            out.extend(push_all(&mut a, &frame(sequence, n, 2)));
            sequence += 2;
        }
        assert_eq!(out.first().map(|f| (f.timestamp, f.after_loss)), Some((6000, true)));
        assert!(out[1..].iter().all(|f| !f.after_loss));
        assert_eq!(out.len(), 8, "every frame after the broken one");
        // The retransmission arriving now is late: ignored.
        assert!(a.push(11, 3000, false, &payload(false, &[1])).is_empty());
    }

    #[test]
    fn sequence_numbers_wrap() {
        let mut a = FrameAssembler::new(200);
        let out = push_all(&mut a, &[frame(65534, 1, 3), frame(1, 2, 2)].concat());
        assert_eq!(out.len(), 2);
        assert!(out.iter().all(|f| !f.after_loss));
    }

    #[test]
    fn garbage_is_ignored_and_what_is_held_stays_bounded() {
        let mut a = FrameAssembler::new(200);
        assert!(a.push(1, 0, true, &Bytes::from_static(&[1])).is_empty(), "too short for VP8");
        // A sender that never ends a frame (no marker) cannot make the assembler grow.
        for i in 0..5000u16 {
            a.push(i, 3000, false, &payload(i == 0, &[0; 8]));
        }
        assert!(a.held.len() <= MAX_PACKETS);
        // And frames flow again once the unfinished one has waited its 200 ms out.
        let out = push_all(&mut a, &frame(5000, 9, 2));
        assert_eq!(out.len(), 1);
        assert!(out[0].after_loss);
    }
}
