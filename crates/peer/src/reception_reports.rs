//! What the other side says about the media we send: the reception report blocks of the RTCP it
//! sends back, its requests for a video key frame (PLI, FIR) and the most it wants to receive
//! (REMB), read by an interceptor that only observes.
//!
//! webrtc 0.21's own statistics cannot give this: the remote-inbound entry is filled by a
//! handler that nothing calls (rtc 0.21.1, `process_read_rtcp_for_stats`), so it stays at zero,
//! and it would only read receiver reports, while libwebrtc (Chromium) puts its report blocks
//! in sender reports whenever it sends media too. This reads the blocks of both.

use std::collections::{HashSet, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use rtc::interceptor::{Interceptor, Packet, StreamInfo, TaggedPacket};
use rtc::rtcp::payload_feedbacks::full_intra_request::FullIntraRequest;
use rtc::rtcp::payload_feedbacks::picture_loss_indication::PictureLossIndication;
use rtc::rtcp::payload_feedbacks::receiver_estimated_maximum_bitrate::ReceiverEstimatedMaximumBitrate;
use rtc::rtcp::receiver_report::ReceiverReport;
use rtc::rtcp::reception_report::ReceptionReport;
use rtc::rtcp::sender_report::SenderReport;
use rtc::sansio::Protocol;
use rtc::shared::error::Error;

/// The reports received so far about our streams.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct ReceptionReports {
    /// Report blocks about a stream we send (RTCP receiver or sender reports, about one a
    /// second).
    pub count: u64,
    /// The latest block's fraction (0–1) of our packets lost since the block before it.
    pub fraction_lost: f64,
    /// Picture loss indications and full intra requests about a stream we send, so far.
    pub keyframe_requests: u64,
    /// The most the other side wants to receive of our streams, bit/s: its latest receiver
    /// estimated maximum bitrate (REMB). An SFU (or the echo bot) that forwards our media sends
    /// one to keep us within what it can pass on; `None` until one arrives.
    pub max_bitrate_bps: Option<f64>,
}

/// The interceptor: passes every packet on unchanged and notes the report blocks about the
/// streams this connection sends.
pub(crate) struct ReceptionReportReader {
    local_ssrcs: HashSet<u32>,
    latest: Arc<Mutex<ReceptionReports>>,
    read_queue: VecDeque<TaggedPacket>,
    write_queue: VecDeque<TaggedPacket>,
}

impl ReceptionReportReader {
    /// The interceptor and where to read what it saw.
    pub(crate) fn new() -> (Self, Arc<Mutex<ReceptionReports>>) {
        let latest = Arc::new(Mutex::new(ReceptionReports::default()));
        let reader = Self {
            local_ssrcs: HashSet::new(),
            latest: latest.clone(),
            read_queue: VecDeque::new(),
            write_queue: VecDeque::new(),
        };
        (reader, latest)
    }

    fn note(&self, blocks: &[ReceptionReport]) {
        let ours = blocks.iter().filter(|b| self.local_ssrcs.contains(&b.ssrc));
        let mut latest = self.latest.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        for block in ours {
            latest.count += 1;
            latest.fraction_lost = f64::from(block.fraction_lost) / 256.0;
        }
    }
}

impl ReceptionReportReader {
    fn note_keyframe_request(&self, ssrc: u32) {
        if self.local_ssrcs.contains(&ssrc) {
            self.latest.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).keyframe_requests += 1;
        }
    }
}

impl ReceptionReportReader {
    /// A REMB counts when it names one of our streams. A bitrate that is not a finite positive
    /// number (the wire format allows any mantissa and exponent) lifts no limit and sets none.
    fn note_max_bitrate(&self, remb: &ReceiverEstimatedMaximumBitrate) {
        let bitrate = f64::from(remb.bitrate);
        if remb.ssrcs.iter().any(|ssrc| self.local_ssrcs.contains(ssrc)) && bitrate.is_finite() && bitrate > 0.0 {
            self.latest.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).max_bitrate_bps = Some(bitrate);
        }
    }
}

impl Protocol<TaggedPacket, TaggedPacket, ()> for ReceptionReportReader {
    type Rout = TaggedPacket;
    type Wout = TaggedPacket;
    type Eout = ();
    type Error = Error;
    type Time = Instant;

    fn handle_read(&mut self, msg: TaggedPacket) -> Result<(), Self::Error> {
        if let Packet::Rtcp(packets) = &msg.message.packet {
            for packet in packets {
                let any = packet.as_any();
                if let Some(rr) = any.downcast_ref::<ReceiverReport>() {
                    self.note(&rr.reports);
                } else if let Some(sr) = any.downcast_ref::<SenderReport>() {
                    self.note(&sr.reports);
                } else if let Some(pli) = any.downcast_ref::<PictureLossIndication>() {
                    self.note_keyframe_request(pli.media_ssrc);
                } else if let Some(remb) = any.downcast_ref::<ReceiverEstimatedMaximumBitrate>() {
                    self.note_max_bitrate(remb);
                } else if let Some(fir) = any.downcast_ref::<FullIntraRequest>()
                    && let Some(entry) = fir.fir.iter().find(|e| self.local_ssrcs.contains(&e.ssrc))
                {
                    self.note_keyframe_request(entry.ssrc);
                }
            }
        }
        self.read_queue.push_back(msg);
        Ok(())
    }

    fn poll_read(&mut self) -> Option<Self::Rout> {
        self.read_queue.pop_front()
    }

    fn handle_write(&mut self, msg: TaggedPacket) -> Result<(), Self::Error> {
        self.write_queue.push_back(msg);
        Ok(())
    }

    fn poll_write(&mut self) -> Option<Self::Wout> {
        self.write_queue.pop_front()
    }
}

impl Interceptor for ReceptionReportReader {
    fn bind_local_stream(&mut self, info: &StreamInfo) {
        self.local_ssrcs.insert(info.ssrc);
    }
    fn unbind_local_stream(&mut self, info: &StreamInfo) {
        self.local_ssrcs.remove(&info.ssrc);
    }
    fn bind_remote_stream(&mut self, _info: &StreamInfo) {}
    fn unbind_remote_stream(&mut self, _info: &StreamInfo) {}
}

#[cfg(test)]
mod tests {
    use super::*;
    use rtc::interceptor::AttributedPacket;
    use rtc::shared::TransportContext;

    const OURS: u32 = 0x1111;
    const THEIRS: u32 = 0x2222;

    fn block(ssrc: u32, fraction_lost: u8) -> ReceptionReport {
        ReceptionReport { ssrc, fraction_lost, ..ReceptionReport::default() }
    }

    fn arrives(reader: &mut ReceptionReportReader, packets: Vec<Box<dyn rtc::rtcp::Packet>>) {
        let msg = TaggedPacket {
            now: Instant::now(),
            transport: TransportContext::default(),
            message: AttributedPacket::new(Packet::Rtcp(packets)),
        };
        reader.handle_read(msg).unwrap();
        let passed = reader.poll_read().expect("the packet goes on up the chain");
        assert!(matches!(passed.message.packet, Packet::Rtcp(_)));
    }

    fn reader() -> (ReceptionReportReader, Arc<Mutex<ReceptionReports>>) {
        let (mut reader, latest) = ReceptionReportReader::new();
        reader.bind_local_stream(&StreamInfo { ssrc: OURS, ..StreamInfo::default() });
        (reader, latest)
    }

    #[test]
    fn blocks_about_our_stream_count_from_receiver_and_sender_reports() {
        let (mut reader, latest) = reader();
        arrives(&mut reader, vec![Box::new(ReceiverReport { reports: vec![block(OURS, 0)], ..Default::default() })]);
        // libwebrtc, sending too, reports inside its sender report.
        let sr = SenderReport { ssrc: THEIRS, reports: vec![block(OURS, 64)], ..Default::default() };
        arrives(&mut reader, vec![Box::new(sr)]);
        assert_eq!(
            *latest.lock().unwrap(),
            ReceptionReports { count: 2, fraction_lost: 0.25, ..ReceptionReports::default() }
        );
    }

    #[test]
    fn blocks_about_other_streams_and_other_packets_are_ignored() {
        let (mut reader, latest) = reader();
        let rr = ReceiverReport { reports: vec![block(THEIRS, 128)], ..Default::default() };
        arrives(&mut reader, vec![Box::new(rr), Box::new(SenderReport::default())]);
        assert_eq!(*latest.lock().unwrap(), ReceptionReports::default());
        // After the stream is unbound (a renegotiation replaced it), its blocks no longer count.
        reader.unbind_local_stream(&StreamInfo { ssrc: OURS, ..StreamInfo::default() });
        arrives(&mut reader, vec![Box::new(ReceiverReport { reports: vec![block(OURS, 10)], ..Default::default() })]);
        assert_eq!(latest.lock().unwrap().count, 0);
    }

    #[test]
    fn key_frame_requests_about_our_stream_are_counted() {
        let (mut reader, latest) = reader();
        arrives(&mut reader, vec![Box::new(PictureLossIndication { sender_ssrc: THEIRS, media_ssrc: OURS })]);
        let fir = FullIntraRequest {
            sender_ssrc: THEIRS,
            media_ssrc: 0,
            fir: vec![rtc::rtcp::payload_feedbacks::full_intra_request::FirEntry { ssrc: OURS, sequence_number: 1 }],
        };
        arrives(&mut reader, vec![Box::new(fir)]);
        // About a stream that is not ours: not for us to act on.
        arrives(&mut reader, vec![Box::new(PictureLossIndication { sender_ssrc: THEIRS, media_ssrc: THEIRS })]);
        assert_eq!(latest.lock().unwrap().keyframe_requests, 2);
    }

    #[test]
    fn the_latest_remb_about_our_stream_is_the_most_the_other_side_wants() {
        let (mut reader, latest) = reader();
        let remb = |bitrate: f32, ssrcs: Vec<u32>| -> Vec<Box<dyn rtc::rtcp::Packet>> {
            vec![Box::new(ReceiverEstimatedMaximumBitrate { sender_ssrc: THEIRS, bitrate, ssrcs })]
        };
        arrives(&mut reader, remb(300_000.0, vec![THEIRS]));
        assert_eq!(latest.lock().unwrap().max_bitrate_bps, None, "about a stream that is not ours");
        arrives(&mut reader, remb(300_000.0, vec![THEIRS, OURS]));
        assert_eq!(latest.lock().unwrap().max_bitrate_bps, Some(300_000.0));
        arrives(&mut reader, remb(800_000.0, vec![OURS]));
        assert_eq!(latest.lock().unwrap().max_bitrate_bps, Some(800_000.0), "the latest counts, higher too");
        // Nonsense from the wire changes nothing.
        for bitrate in [0.0, -5.0, f32::INFINITY, f32::NAN] {
            arrives(&mut reader, remb(bitrate, vec![OURS]));
        }
        assert_eq!(latest.lock().unwrap().max_bitrate_bps, Some(800_000.0));
    }
}
