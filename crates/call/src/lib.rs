//! The client's call state machine, in the style of str0m: no IO, no clock, no threads.
//!
//! A [`Phone`] holds every call of one device. Time and messages go in through
//! [`Phone::handle_input`]; what the phone wants done comes out of [`Phone::poll_output`]:
//! frames to send to the signaling server, events for the UI and the media driver, and the
//! next instant at which it wants to be woken. The phone never reads the clock: `now` is an
//! argument of every input, so tests run on simulated time.
//!
//! # Run loop
//!
//! ```text
//! loop {
//!     // Drain first: one input may produce several outputs, and the deadline comes last.
//!     let wake_at = loop {
//!         match phone.poll_output() {
//!             Output::Send(frame) => websocket.send(frame),
//!             Output::Event(event) => ui_and_media.handle(event),
//!             Output::Timeout(at) => break Some(at),
//!             Output::Idle => break None,
//!         }
//!     };
//!     let input = select! {
//!         frame = websocket.recv() => Input::Server(frame),
//!         command = ui.recv() => Input::Command(command),
//!         event = media.recv() => Input::Media { call_id, event },
//!         _ = sleep_until(wake_at) => Input::Timeout,
//!     };
//!     if let Err(refused) = phone.handle_input(clock.now(), input) {
//!         ui.show(refused);   // only a user command that makes no sense; nothing changed
//!     }
//! }
//! ```
//!
//! The rule: **drain `poll_output` until it returns [`Output::Timeout`] or [`Output::Idle`]
//! before giving the next input.** The timeout it returns is only valid once the queue is empty.
//!
//! # Call states
//!
//! ```text
//!      Command::Call                                   ServerMessage::CallInvite
//!           |                                                   |
//!           v                                                   v
//!   +-----------------+    glare, their call wins:     +-----------------+
//!   | OutgoingRinging |--- Replaced{mine, theirs} --+  | IncomingRinging |
//!   +-----------------+                             |  +-----------------+
//!           | call.accepted                         |           | Command::Accept
//!           | (StartMedia, offerer)                 |           | (StartMedia, answerer, on the `ok`)
//!           v                                       v           v
//!   +----------------------------------------------------------------+
//!   |                          Connecting                            |
//!   +----------------------------------------------------------------+
//!           | MediaEvent::Connected
//!           v
//!   +-----------------+   MediaEvent::Disconnected    +-----------------+
//!   |    Connected    |------------------------------>|  Reconnecting   |
//!   |                 |<------------------------------|                 |
//!   +-----------------+   MediaEvent::Connected       +-----------------+
//!
//!   Every state ----> Ended(EndReason), which is final:
//!     OutgoingRinging  Command::Hangup (Canceled), ring deadline (Missed), call.ended
//!     IncomingRinging  Command::Decline / Hangup (Declined), ring deadline (Missed), call.ended
//!                      (AcceptedElsewhere, DeclinedElsewhere, Canceled, ...)
//!     Connecting       connect deadline (Failed(Ice)), accept refused (AcceptedElsewhere)
//!     Reconnecting     reconnect deadline (TimeoutReconnect)
//!     any active       Command::Hangup (HangupLocal), MediaEvent::Failed (Failed(kind)),
//!                      call.ended (HangupRemote, ...), accepting another call (HangupLocal)
//!     any              a `calls` resync reply that no longer lists the call (Failed(Signaling))
//! ```
//!
//! Deadlines are checked at the start of every input, before the input itself: at its deadline
//! a call has already timed out, whatever arrives at the same instant.
//!
//! # Network input never panics
//!
//! Events for unknown or ended calls, replies that arrive late, twice or never, and duplicate
//! invites are ignored. Only [`Command`]s can fail, with a [`CommandError`].

mod call;
mod events;
mod phone;
mod requests;

pub use call::{CallState, CallView, Direction, EndReason};
pub use events::{CallEvent, Command, Input, MediaEvent, Output};
pub use phone::{CommandError, Phone, PhoneConfig};
