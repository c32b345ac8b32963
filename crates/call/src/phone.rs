//! [`Phone`]: every call of one device, driven by inputs.

use std::collections::VecDeque;

use calldock_protocol::{
    CallId, CallPhase, CallSnapshot, ClientFrame, ClientMessage, DeclineReason, DeviceId, ErrorCode, FailureKind,
    Media, ParticipantState, RING_TIMEOUT_MS, ServerMessage, UnixMillis, UserId, glare_winner,
};

use crate::call::{CallState, CallView, Direction, EndReason};
use crate::events::{CallEvent, Command, Input, MediaEvent, Output};
use crate::requests::{Pending, Requests};

/// Timeouts of a [`Phone`]. [`Default`] gives the SPEC §2 values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PhoneConfig {
    /// How long a call rings before it is missed, on either side.
    pub ring_timeout_ms: u64,
    /// How long media may take to connect after a call is answered.
    pub connect_timeout_ms: u64,
    /// How long lost media may take to come back.
    pub reconnect_timeout_ms: u64,
}

impl Default for PhoneConfig {
    fn default() -> Self {
        Self { ring_timeout_ms: RING_TIMEOUT_MS, connect_timeout_ms: 30_000, reconnect_timeout_ms: 30_000 }
    }
}

/// A user command that makes no sense in the phone's current state. Network input never
/// produces one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CommandError {
    /// No call with this id on this device.
    #[error("no call {0} on this device")]
    UnknownCall(CallId),
    /// The call is not in a state where the command applies (accepting a call that no longer
    /// rings, hanging up an ended call).
    #[error("cannot {command} call {call_id}: it is {state:?}")]
    WrongState { call_id: CallId, state: CallState, command: &'static str },
    /// A call with this id already exists on this device.
    #[error("call id {0} is already in use")]
    DuplicateCallId(CallId),
    /// A user cannot call themselves.
    #[error("cannot call yourself")]
    CallingSelf,
    /// Another call is ringing out or active; hang it up first.
    #[error("call {active} is under way; hang it up first")]
    Busy { active: CallId },
}

/// How many ended calls stay visible through [`Phone::calls`], for post-call summaries.
const ENDED_KEPT: usize = 16;

/// How many ids of finished calls are remembered so that late events for them are ignored and a
/// lost closing request can be repeated after a resync.
const RETIRED_KEPT: usize = 64;

/// All calls of one device. See the crate docs for the run loop and the state diagram.
#[derive(Debug)]
pub struct Phone {
    me: UserId,
    device: DeviceId,
    config: PhoneConfig,
    /// Calls that have not ended, oldest first. A `Vec`, not a map: a device has a handful of
    /// calls, and a fixed order keeps the outputs deterministic.
    live: Vec<Call>,
    /// The last [`ENDED_KEPT`] ended calls, oldest first.
    ended: VecDeque<CallView>,
    /// Calls that ended or were replaced; events for them are ignored.
    retired: VecDeque<Retired>,
    /// Incoming calls that lost glare against our own outgoing call: never shown; the other end
    /// cancels them.
    shadows: Vec<Shadow>,
    requests: Requests,
    outputs: VecDeque<Output>,
    /// Numbers the calls in the order this device learned of them (see [`Pending::Sync`]).
    next_seq: u64,
}

/// A call that has not ended.
#[derive(Debug)]
struct Call {
    view: CallView,
    /// The deadline of the current state: ring, connect or reconnect. `None` when connected.
    timer: Option<UnixMillis>,
    /// `StartMedia` was emitted; it is emitted once per call.
    media_started: bool,
    seq: u64,
}

#[derive(Debug)]
struct Retired {
    id: CallId,
    /// The request that closed the call on the server, if this device closed it. Repeated when a
    /// resync shows that the server never got it.
    closing: Option<ClientMessage>,
}

#[derive(Debug)]
struct Shadow {
    id: CallId,
    /// Our outgoing call that won glare against it.
    winner: CallId,
    /// Forgotten after this even if the other end never cancels it.
    deadline: UnixMillis,
}

impl Phone {
    pub fn new(me: UserId, device: DeviceId, config: PhoneConfig) -> Self {
        Self {
            me,
            device,
            config,
            live: Vec::new(),
            ended: VecDeque::new(),
            retired: VecDeque::new(),
            shadows: Vec::new(),
            requests: Requests::default(),
            outputs: VecDeque::new(),
            next_seq: 0,
        }
    }

    /// Feeds one input that happened at `now`. Fails only for a [`Command`] that makes no sense;
    /// then nothing changed.
    pub fn handle_input(&mut self, now: UnixMillis, input: Input) -> Result<(), CommandError> {
        // Deadlines first: at its deadline a call has timed out, whatever arrives at that instant.
        self.fire_timers(now);
        match input {
            Input::Command(command) => return self.command(now, command),
            Input::Server(message) => self.server(now, message),
            Input::Media { call_id, event } => self.media(now, &call_id, event),
            Input::SignalingLost => self.requests.clear(),
            Input::SignalingRestored => {
                // In case the loss was never reported: replies to older requests will not come.
                self.requests.clear();
                self.send(ClientMessage::CallSync {});
            }
            Input::Timeout => {}
        }
        Ok(())
    }

    /// The next thing to do. Call until it returns [`Output::Timeout`] or [`Output::Idle`].
    ///
    /// The timeout is the earliest deadline of any call that has not ended: ring, connect or
    /// reconnect. (Hidden glare losers are forgotten at the next input past their deadline;
    /// that needs no wake-up.)
    pub fn poll_output(&mut self) -> Output {
        if let Some(output) = self.outputs.pop_front() {
            return output;
        }
        match self.live.iter().filter_map(|call| call.timer).min() {
            Some(at) => Output::Timeout(at),
            None => Output::Idle,
        }
    }

    /// A call that has not ended, or one of the last ended ones.
    pub fn call(&self, id: &CallId) -> Option<&CallView> {
        self.calls().find(|view| &view.id == id)
    }

    /// Calls that have not ended (oldest first), then the last ended ones (oldest first).
    pub fn calls(&self) -> impl Iterator<Item = &CallView> {
        self.live.iter().map(|call| &call.view).chain(self.ended.iter())
    }

    // --- commands ---

    fn command(&mut self, now: UnixMillis, command: Command) -> Result<(), CommandError> {
        match command {
            Command::Call { call_id, to, media } => self.place_call(now, call_id, to, media),
            Command::Accept { call_id, media } => {
                let index = self.ringing_incoming(&call_id, "accept")?;
                self.accept(now, index, media);
                Ok(())
            }
            Command::Decline { call_id } => {
                let index = self.ringing_incoming(&call_id, "decline")?;
                self.decline(now, index);
                Ok(())
            }
            Command::Hangup { call_id } => {
                let index = self.live_index(&call_id).ok_or_else(|| self.missing(&call_id, "hang up"))?;
                self.hang_up(now, index);
                Ok(())
            }
        }
    }

    fn place_call(&mut self, now: UnixMillis, call_id: CallId, to: UserId, media: Media) -> Result<(), CommandError> {
        if to == self.me {
            return Err(CommandError::CallingSelf);
        }
        if self.is_known(&call_id) {
            return Err(CommandError::DuplicateCallId(call_id));
        }
        if let Some(busy) =
            self.live.iter().find(|call| call.view.state.is_active() || call.view.state == CallState::OutgoingRinging)
        {
            return Err(CommandError::Busy { active: busy.view.id.clone() });
        }
        // They already ring us: calling them back means answering. Glare decided locally, as
        // they cannot see a call we never send.
        if let Some(index) =
            self.live.iter().position(|call| call.view.state == CallState::IncomingRinging && call.view.remote == to)
        {
            let new = self.live[index].view.id.clone();
            self.retire(call_id.clone(), None);
            self.emit(CallEvent::Replaced { old: call_id, new });
            self.accept(now, index, media);
            return Ok(());
        }
        let deadline = now.saturating_add_ms(self.config.ring_timeout_ms);
        self.send(ClientMessage::CallInvite { call_id: call_id.clone(), to: to.clone(), media, conversation: None });
        let view = CallView {
            id: call_id.clone(),
            direction: Direction::Outgoing,
            remote_name: to.to_string(),
            remote: to,
            remote_device: None,
            media,
            state: CallState::OutgoingRinging,
            started_at: now,
            ring_deadline: Some(deadline),
            connected_at: None,
            ended_at: None,
            remote_ringing: false,
        };
        self.push_live(view, Some(deadline));
        self.emit(CallEvent::StateChanged { call_id, state: CallState::OutgoingRinging });
        Ok(())
    }

    /// Sends `call.accept` and moves to connecting. Any other active or ringing-out call ends
    /// first: a device holds one call at a time, the new one is the user's choice.
    fn accept(&mut self, now: UnixMillis, index: usize, media: Media) {
        let id = self.live[index].view.id.clone();
        let others: Vec<CallId> = self
            .live
            .iter()
            .filter(|call| call.view.id != id)
            .filter(|call| call.view.state.is_active() || call.view.state == CallState::OutgoingRinging)
            .map(|call| call.view.id.clone())
            .collect();
        for other in others {
            if let Some(other) = self.live_index(&other) {
                self.hang_up(now, other);
            }
        }
        let Some(index) = self.live_index(&id) else {
            return;
        };
        self.send(ClientMessage::CallAccept { call_id: id, media });
        self.live[index].view.media = media;
        self.set_state(now, index, CallState::Connecting);
    }

    fn decline(&mut self, now: UnixMillis, index: usize) {
        let id = self.live[index].view.id.clone();
        let in_call = self.live.iter().any(|call| call.view.id != id && call.view.state.is_active());
        let reason = if in_call { DeclineReason::Busy } else { DeclineReason::Declined };
        let closing = ClientMessage::CallDecline { call_id: id, reason };
        self.end(now, index, EndReason::Declined, None, Some(closing));
    }

    fn hang_up(&mut self, now: UnixMillis, index: usize) {
        let call_id = self.live[index].view.id.clone();
        match self.live[index].view.state {
            CallState::OutgoingRinging => {
                self.end(now, index, EndReason::Canceled, None, Some(ClientMessage::CallCancel { call_id }));
            }
            CallState::IncomingRinging => self.decline(now, index),
            CallState::Connecting | CallState::Connected | CallState::Reconnecting | CallState::Ended(_) => {
                let closing = ClientMessage::CallEnd { call_id, failure: None, reconnect_timeout: false };
                self.end(now, index, EndReason::HangupLocal, None, Some(closing));
            }
        }
    }

    fn ringing_incoming(&self, id: &CallId, command: &'static str) -> Result<usize, CommandError> {
        let index = self.live_index(id).ok_or_else(|| self.missing(id, command))?;
        match self.live[index].view.state {
            CallState::IncomingRinging => Ok(index),
            state => Err(CommandError::WrongState { call_id: id.clone(), state, command }),
        }
    }

    /// The error for a command on a call that is not live: ended, or never known.
    fn missing(&self, id: &CallId, command: &'static str) -> CommandError {
        match self.ended.iter().find(|view| &view.id == id) {
            Some(view) => CommandError::WrongState { call_id: id.clone(), state: view.state, command },
            None => CommandError::UnknownCall(id.clone()),
        }
    }

    // --- server messages ---

    fn server(&mut self, now: UnixMillis, message: ServerMessage) {
        match message {
            ServerMessage::CallInvite { call } => self.invited(now, call),
            ServerMessage::CallRinging { call_id, .. } => self.remote_ringing(&call_id),
            ServerMessage::CallAccepted { call_id, user, device, media } => {
                self.accepted(now, &call_id, user, device, media);
            }
            ServerMessage::CallEnded { call_id, reason, by, by_name, failure } => {
                if let Some(shadow) = self.shadows.iter().position(|shadow| shadow.id == call_id) {
                    // The glare loser's call, which we never showed, is over: as it should be.
                    let shadow = self.shadows.remove(shadow);
                    self.retire(shadow.id, None);
                    return;
                }
                let Some(index) = self.live_index(&call_id) else {
                    return;
                };
                let reason = EndReason::from_wire(reason, by.as_ref() == Some(&self.me), failure);
                self.end(now, index, reason, by_name, None);
            }
            ServerMessage::CallCreated { re, call, .. } => {
                if let Some(Pending::Invite(requested)) = self.requests.take(&re) {
                    self.created(now, requested, call);
                }
            }
            ServerMessage::Calls { re, calls } => {
                if let Some(Pending::Sync { before }) = self.requests.take(&re) {
                    self.reconcile(now, before, calls);
                }
            }
            ServerMessage::Ok { re } => {
                // The server took our accept: this device answered, so media may start.
                if let Some(Pending::Accept(id)) = self.requests.take(&re)
                    && let Some(index) = self.live_index(&id)
                    && self.live[index].view.state == CallState::Connecting
                {
                    self.start_media(index, false);
                }
            }
            ServerMessage::Error { re: Some(re), code, .. } => match self.requests.take(&re) {
                Some(Pending::Invite(id)) => {
                    if let Some(index) = self.live_index(&id)
                        && self.live[index].view.state == CallState::OutgoingRinging
                    {
                        self.end(now, index, EndReason::Failed(FailureKind::Signaling), None, None);
                    }
                }
                Some(Pending::Accept(id)) => {
                    if let Some(index) = self.live_index(&id)
                        && self.live[index].view.state == CallState::Connecting
                    {
                        // invalid_state: another device of ours answered first, and its answer stands.
                        let reason = match code {
                            ErrorCode::InvalidState => EndReason::AcceptedElsewhere,
                            _ => EndReason::Failed(FailureKind::Signaling),
                        };
                        self.end(now, index, reason, None, None);
                    }
                }
                // A failed sync leaves calls as they are; the next restore syncs again.
                Some(Pending::Sync { .. }) | None => {}
            },
            // Not call control: SDP and ICE are the media driver's, presence is the UI's.
            _ => {}
        }
    }

    fn invited(&mut self, now: UnixMillis, call: CallSnapshot) {
        if self.is_known(&call.call_id) || call.caller == self.me || call.phase == CallPhase::Ended {
            return;
        }
        // It rings for us while we are invited: into a new call, or into a running group call
        // (phase active). A server that leaves us out of the participants is taken at its word.
        let mine = call.participant(&self.me);
        if mine.is_some_and(|p| !is_invited(p.state)) {
            return;
        }
        let server_deadline = mine.and_then(|p| p.ring_deadline).unwrap_or(call.ring_deadline);
        let deadline = server_deadline.min(now.saturating_add_ms(self.config.ring_timeout_ms));
        if now >= deadline {
            // Stale: the server ends it as missed and history shows it.
            return;
        }
        if call.phase != CallPhase::Ringing {
            self.ring(now, &call, deadline);
            return;
        }
        let glare = self
            .live
            .iter()
            .position(|mine| mine.view.state == CallState::OutgoingRinging && mine.view.remote == call.caller);
        let Some(mine) = glare else {
            self.ring(now, &call, deadline);
            return;
        };
        let mine_id = self.live[mine].view.id.clone();
        if glare_winner(&mine_id, &call.call_id) == &mine_id {
            // We win: our call keeps ringing and the other end accepts it; theirs stays hidden
            // until they cancel it.
            self.shadows.push(Shadow { id: call.call_id, winner: mine_id, deadline });
            return;
        }
        // We lose: our call turns into accepting theirs.
        let media = self.live[mine].view.media;
        let cancel = ClientMessage::CallCancel { call_id: mine_id.clone() };
        self.send(cancel.clone());
        self.live.remove(mine);
        self.retire(mine_id.clone(), Some(cancel));
        let index = self.push_live(incoming_view(now, &call, deadline), Some(deadline));
        self.emit(CallEvent::Replaced { old: mine_id, new: call.call_id });
        self.accept(now, index, media);
    }

    /// A new incoming call rings here.
    fn ring(&mut self, now: UnixMillis, call: &CallSnapshot, deadline: UnixMillis) {
        let stacked = self.live.iter().any(|other| other.view.state.is_active());
        self.push_live(incoming_view(now, call, deadline), Some(deadline));
        self.send(ClientMessage::CallRinging { call_id: call.call_id.clone() });
        self.emit(CallEvent::Incoming {
            call_id: call.call_id.clone(),
            from: call.caller.clone(),
            from_name: call.caller_name.clone(),
            media: call.media,
            stacked,
            ring_deadline: deadline,
        });
    }

    fn remote_ringing(&mut self, id: &CallId) {
        let Some(index) = self.live_index(id) else {
            return;
        };
        let view = &mut self.live[index].view;
        if view.state == CallState::OutgoingRinging && !view.remote_ringing {
            view.remote_ringing = true;
            self.emit(CallEvent::RemoteRinging { call_id: id.clone() });
        }
    }

    fn accepted(&mut self, now: UnixMillis, id: &CallId, user: UserId, device: DeviceId, media: Media) {
        let Some(index) = self.live_index(id) else {
            return;
        };
        let view = &self.live[index].view;
        match (view.direction, view.state) {
            (Direction::Outgoing, CallState::OutgoingRinging) => {
                let view = &mut self.live[index].view;
                view.remote_device = Some(device);
                // The callee may answer a video call with audio only.
                view.media = media;
                self.set_state(now, index, CallState::Connecting);
                self.start_media(index, true);
            }
            // Sent to the accepting device too: when it is this one, the accept went through.
            (Direction::Incoming, CallState::Connecting) if user == self.me && device == self.device => {
                self.start_media(index, false);
            }
            (Direction::Incoming, CallState::IncomingRinging | CallState::Connecting)
                if user == self.me && device != self.device =>
            {
                self.end(now, index, EndReason::AcceptedElsewhere, None, None);
            }
            _ => {}
        }
    }

    /// The reply to our `call.invite`. A different call id means the conversation already had a
    /// call (SPEC §2, idempotency): ours was never made, so we adopt that one.
    fn created(&mut self, now: UnixMillis, requested: CallId, call: CallSnapshot) {
        let Some(index) = self.live_index(&requested) else {
            return;
        };
        if self.live[index].view.state != CallState::OutgoingRinging {
            return;
        }
        if call.call_id == requested {
            let view = &mut self.live[index].view;
            if let Some(callee) = call.participant(&view.remote) {
                view.remote_name = callee.display_name.clone();
            }
            return;
        }
        let new = call.call_id.clone();
        match call.phase {
            CallPhase::Ringing if call.caller == self.me => {
                // Started before (a repeated start, or another of our devices): keep ringing
                // under its id.
                self.retire(requested.clone(), None);
                let ours = &mut self.live[index];
                let deadline = ours.view.ring_deadline.map_or(call.ring_deadline, |d| d.min(call.ring_deadline));
                ours.view.id = new.clone();
                ours.view.ring_deadline = Some(deadline);
                ours.timer = Some(deadline);
                if let Some(callee) = call.participant(&ours.view.remote) {
                    ours.view.remote_name = callee.display_name.clone();
                }
                self.emit(CallEvent::Replaced { old: requested, new });
            }
            CallPhase::Ringing => {
                // They are calling us in this conversation: calling them back answers it.
                let media = self.live[index].view.media;
                self.live.remove(index);
                self.retire(requested.clone(), None);
                self.shadows.retain(|shadow| shadow.id != new);
                let index = match self.live_index(&new) {
                    Some(index) => index,
                    None => {
                        let deadline = call.ring_deadline.min(now.saturating_add_ms(self.config.ring_timeout_ms));
                        self.push_live(incoming_view(now, &call, deadline), Some(deadline))
                    }
                };
                self.drop_shadows_of(&requested);
                self.emit(CallEvent::Replaced { old: requested, new });
                if self.live[index].view.state == CallState::IncomingRinging {
                    self.accept(now, index, media);
                }
            }
            // Already answered, by another of our devices or in a call we are not part of: there
            // is nothing for this device to join.
            CallPhase::Active => self.end(now, index, EndReason::AcceptedElsewhere, None, None),
            CallPhase::Ended => self.end(now, index, EndReason::Failed(FailureKind::Signaling), None, None),
        }
    }

    /// The reply to `call.sync`: the server's list of our calls that have not ended.
    fn reconcile(&mut self, now: UnixMillis, before: u64, calls: Vec<CallSnapshot>) {
        let ghosts: Vec<CallId> = self
            .live
            .iter()
            .filter(|call| call.seq < before && !calls.iter().any(|listed| listed.call_id == call.view.id))
            .map(|call| call.view.id.clone())
            .collect();
        for ghost in ghosts {
            let Some(index) = self.live_index(&ghost) else {
                continue;
            };
            let call = &self.live[index];
            let rang_out = call.view.state.is_ringing() && call.timer.is_some_and(|at| at <= now);
            let reason = if rang_out { EndReason::Missed } else { EndReason::Failed(FailureKind::Signaling) };
            self.end(now, index, reason, None, None);
        }
        for call in calls {
            if let Some(index) = self.live_index(&call.call_id) {
                self.update(now, index, &call);
            } else if self.shadows.iter().any(|shadow| shadow.id == call.call_id) {
                // The other end cancels it.
            } else if let Some(retired) = self.retired.iter().find(|retired| retired.id == call.call_id) {
                // We closed it but the server never heard: say it again. (The list also holds
                // calls that ended recently, and calls we already left.)
                let still_in = call.caller == self.me
                    || call
                        .participant(&self.me)
                        .is_some_and(|p| is_invited(p.state) || p.state == ParticipantState::Joined);
                if let Some(closing) = retired.closing.clone().filter(|_| call.phase != CallPhase::Ended && still_in) {
                    self.send(closing);
                }
            } else {
                self.adopt_unknown(now, call);
            }
        }
    }

    /// A listed call this device knows: catch up with what happened while signaling was down.
    fn update(&mut self, now: UnixMillis, index: usize, call: &CallSnapshot) {
        let view = &self.live[index].view;
        let mine = call.participant(&self.me);
        let my_state = mine.map(|p| p.state);
        let joined_here = mine.is_some_and(|p| p.device.as_ref() == Some(&self.device));
        match (call.phase, view.direction, view.state) {
            (CallPhase::Ended, _, _) => {
                let reason = call.end_reason.map_or(EndReason::Failed(FailureKind::Signaling), |reason| {
                    EndReason::from_wire(reason, false, None)
                });
                self.end(now, index, reason, None, None);
            }
            // Our standing says what happened to a call that rang here while we were away.
            (_, Direction::Incoming, CallState::IncomingRinging) => match my_state {
                Some(ParticipantState::Joined) if !joined_here => {
                    self.end(now, index, EndReason::AcceptedElsewhere, None, None);
                }
                Some(ParticipantState::Declined) => self.end(now, index, EndReason::DeclinedElsewhere, None, None),
                Some(ParticipantState::Left) => self.end(now, index, EndReason::Missed, None, None),
                _ => {
                    // The server's deadline may have moved closer; ours never moves later.
                    let server_deadline = mine.and_then(|p| p.ring_deadline).unwrap_or(call.ring_deadline);
                    let ours = &mut self.live[index];
                    if ours.view.ring_deadline.is_some_and(|deadline| deadline > server_deadline) {
                        ours.view.ring_deadline = Some(server_deadline);
                        ours.timer = Some(server_deadline);
                    }
                }
            },
            (_, Direction::Incoming, CallState::Connecting) => match my_state {
                Some(ParticipantState::Joined) if joined_here => self.start_media(index, false),
                Some(ParticipantState::Joined) => self.end(now, index, EndReason::AcceptedElsewhere, None, None),
                Some(ParticipantState::Declined) => self.end(now, index, EndReason::DeclinedElsewhere, None, None),
                Some(ParticipantState::Invited | ParticipantState::Ringing) => {
                    // Our accept was lost with the connection.
                    let media = view.media;
                    self.send(ClientMessage::CallAccept { call_id: call.call_id.clone(), media });
                }
                Some(ParticipantState::Left) | None => {}
            },
            (CallPhase::Active, Direction::Outgoing, CallState::OutgoingRinging) => {
                // Answered while we were away.
                let answer = call
                    .participants
                    .iter()
                    .find(|p| p.state == ParticipantState::Joined)
                    .and_then(|p| p.device.clone());
                if let Some(device) = answer {
                    self.live[index].view.remote_device = Some(device);
                    self.set_state(now, index, CallState::Connecting);
                    self.start_media(index, true);
                }
            }
            _ => {}
        }
    }

    /// A listed call this device has no record of.
    fn adopt_unknown(&mut self, now: UnixMillis, call: CallSnapshot) {
        let mine = call.participant(&self.me);
        let joined_here =
            mine.is_some_and(|p| p.state == ParticipantState::Joined && p.device.as_ref() == Some(&self.device));
        let placed_here = call.caller == self.me && call.caller_device == self.device;
        if call.caller != self.me && mine.is_some_and(|p| is_invited(p.state)) {
            // Its invite was lost with the connection.
            self.invited(now, call);
        } else if placed_here && call.phase == CallPhase::Ringing {
            // This device placed it and forgot it (a restart): nobody will ever answer it here.
            self.send(ClientMessage::CallCancel { call_id: call.call_id });
        } else if (placed_here || joined_here) && call.phase == CallPhase::Active {
            self.send(ClientMessage::CallEnd { call_id: call.call_id, failure: None, reconnect_timeout: false });
        }
    }

    // --- media ---

    fn media(&mut self, now: UnixMillis, id: &CallId, event: MediaEvent) {
        let Some(index) = self.live_index(id) else {
            return;
        };
        match (self.live[index].view.state, event) {
            (CallState::Connecting | CallState::Reconnecting, MediaEvent::Connected) => {
                self.set_state(now, index, CallState::Connected);
            }
            (CallState::Connected, MediaEvent::Disconnected) => self.set_state(now, index, CallState::Reconnecting),
            (state, MediaEvent::Failed(kind)) if state.is_active() => {
                let closing =
                    ClientMessage::CallEnd { call_id: id.clone(), failure: Some(kind), reconnect_timeout: false };
                self.end(now, index, EndReason::Failed(kind), None, Some(closing));
            }
            // A repeated or stale report from the driver.
            _ => {}
        }
    }

    // --- time ---

    fn fire_timers(&mut self, now: UnixMillis) {
        // Losers' calls the other end never canceled: the server has ended them as missed.
        let expired: Vec<CallId> =
            self.shadows.iter().filter(|shadow| shadow.deadline <= now).map(|shadow| shadow.id.clone()).collect();
        for id in expired {
            self.shadows.retain(|shadow| shadow.id != id);
            self.retire(id, None);
        }
        let due: Vec<CallId> = self
            .live
            .iter()
            .filter(|call| call.timer.is_some_and(|at| at <= now))
            .map(|call| call.view.id.clone())
            .collect();
        for call_id in due {
            let Some(index) = self.live_index(&call_id) else {
                continue;
            };
            match self.live[index].view.state {
                CallState::OutgoingRinging | CallState::IncomingRinging => {
                    let closing = ClientMessage::CallTimeout { call_id };
                    self.end(now, index, EndReason::Missed, None, Some(closing));
                }
                CallState::Connecting => {
                    let closing =
                        ClientMessage::CallEnd { call_id, failure: Some(FailureKind::Ice), reconnect_timeout: false };
                    self.end(now, index, EndReason::Failed(FailureKind::Ice), None, Some(closing));
                }
                CallState::Reconnecting => {
                    let closing = ClientMessage::CallEnd { call_id, failure: None, reconnect_timeout: true };
                    self.end(now, index, EndReason::TimeoutReconnect, None, Some(closing));
                }
                CallState::Connected | CallState::Ended(_) => self.live[index].timer = None,
            }
        }
    }

    // --- mechanics ---

    fn set_state(&mut self, now: UnixMillis, index: usize, state: CallState) {
        let call = &mut self.live[index];
        call.view.state = state;
        call.timer = match state {
            CallState::OutgoingRinging | CallState::IncomingRinging => call.view.ring_deadline,
            CallState::Connecting => Some(now.saturating_add_ms(self.config.connect_timeout_ms)),
            CallState::Reconnecting => Some(now.saturating_add_ms(self.config.reconnect_timeout_ms)),
            CallState::Connected | CallState::Ended(_) => None,
        };
        if state == CallState::Connected && call.view.connected_at.is_none() {
            call.view.connected_at = Some(now);
        }
        let call_id = call.view.id.clone();
        self.emit(CallEvent::StateChanged { call_id, state });
    }

    fn start_media(&mut self, index: usize, offerer: bool) {
        let call = &mut self.live[index];
        let Some(remote_device) = call.view.remote_device.clone() else {
            return;
        };
        if call.media_started {
            return;
        }
        call.media_started = true;
        let event = CallEvent::StartMedia {
            call_id: call.view.id.clone(),
            remote: call.view.remote.clone(),
            remote_device,
            offerer,
            media: call.view.media,
        };
        self.emit(event);
    }

    /// Ends a live call: sends `closing` if this device ends it, and reports it.
    fn end(
        &mut self,
        now: UnixMillis,
        index: usize,
        reason: EndReason,
        by_name: Option<String>,
        closing: Option<ClientMessage>,
    ) {
        if let Some(closing) = &closing {
            self.send(closing.clone());
        }
        let mut call = self.live.remove(index);
        call.view.state = CallState::Ended(reason);
        call.view.ended_at = Some(now);
        let call_id = call.view.id.clone();
        self.retire(call_id.clone(), closing);
        // Our call is over, so the glare loser's call it beat is moot.
        self.drop_shadows_of(&call_id);
        self.emit(CallEvent::Ended { call_id, reason, by_name });
        self.ended.push_back(call.view);
        while self.ended.len() > ENDED_KEPT {
            self.ended.pop_front();
        }
    }

    fn drop_shadows_of(&mut self, winner: &CallId) {
        let losers: Vec<CallId> =
            self.shadows.iter().filter(|shadow| &shadow.winner == winner).map(|shadow| shadow.id.clone()).collect();
        self.shadows.retain(|shadow| &shadow.winner != winner);
        for loser in losers {
            self.retire(loser, None);
        }
    }

    fn retire(&mut self, id: CallId, closing: Option<ClientMessage>) {
        self.retired.push_back(Retired { id, closing });
        while self.retired.len() > RETIRED_KEPT {
            self.retired.pop_front();
        }
    }

    fn push_live(&mut self, view: CallView, timer: Option<UnixMillis>) -> usize {
        self.live.push(Call { view, timer, media_started: false, seq: self.next_seq });
        self.next_seq += 1;
        self.live.len() - 1
    }

    fn live_index(&self, id: &CallId) -> Option<usize> {
        self.live.iter().position(|call| &call.view.id == id)
    }

    /// Live, hidden, or recently finished: an invite for it is a duplicate.
    fn is_known(&self, id: &CallId) -> bool {
        self.live_index(id).is_some()
            || self.shadows.iter().any(|shadow| &shadow.id == id)
            || self.retired.iter().any(|retired| &retired.id == id)
    }

    fn send(&mut self, message: ClientMessage) {
        let pending = match &message {
            ClientMessage::CallInvite { call_id, .. } => Some(Pending::Invite(call_id.clone())),
            ClientMessage::CallAccept { call_id, .. } => Some(Pending::Accept(call_id.clone())),
            ClientMessage::CallSync {} => Some(Pending::Sync { before: self.next_seq }),
            _ => None,
        };
        let id = self.requests.issue(pending);
        self.outputs.push_back(Output::Send(ClientFrame { id, message }));
    }

    fn emit(&mut self, event: CallEvent) {
        self.outputs.push_back(Output::Event(event));
    }
}

/// Still to answer: the call rings for this participant.
fn is_invited(state: ParticipantState) -> bool {
    matches!(state, ParticipantState::Invited | ParticipantState::Ringing)
}

fn incoming_view(now: UnixMillis, call: &CallSnapshot, deadline: UnixMillis) -> CallView {
    CallView {
        id: call.call_id.clone(),
        direction: Direction::Incoming,
        remote: call.caller.clone(),
        remote_name: call.caller_name.clone(),
        remote_device: Some(call.caller_device.clone()),
        media: call.media,
        state: CallState::IncomingRinging,
        started_at: now,
        ring_deadline: Some(deadline),
        connected_at: None,
        ended_at: None,
        remote_ringing: false,
    }
}
