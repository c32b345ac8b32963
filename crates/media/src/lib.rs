//! Media logic that needs no device, socket or clock: the receive jitter buffer, the call
//! quality estimate of SPEC §5, audio level measurement, and how much FEC to send. Time is an
//! input everywhere, so all of it is tested on simulated time and reused by the peer, the
//! doctor and the benches.

pub mod analysis;
pub mod fec;
pub mod jitter;
pub mod level;
pub mod quality;
