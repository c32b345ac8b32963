//! A harness for scenario tests: a phone on simulated time that records what it sends and emits,
//! and a tiny relay that plays the server between two phones.

#![allow(dead_code)] // each test binary uses a different part

use calldock_call::*;
use calldock_protocol::{
    CallId, CallPhase, CallSnapshot, ClientFrame, ClientMessage, DeviceId, EndReason as WireEndReason, ErrorCode,
    Media, Participant, ParticipantState, RequestId, ServerMessage, UnixMillis, UserId,
};

/// Every scenario starts here; time only moves when a test says so.
pub const T0: UnixMillis = UnixMillis(1_700_000_000_000);

/// One phone, its clock, and everything it put out.
pub struct TestPhone {
    pub phone: Phone,
    pub me: UserId,
    pub device: DeviceId,
    pub now: UnixMillis,
    /// Every frame sent so far, in order.
    pub sent: Vec<ClientFrame>,
    /// Every event so far, in order.
    pub events: Vec<CallEvent>,
    /// What the last drain ended with.
    pub wake_at: Option<UnixMillis>,
    sent_seen: usize,
    events_seen: usize,
    /// How many of `sent` a [`Relay`] has taken.
    relayed: usize,
}

impl TestPhone {
    pub fn new(me: &str, device: &str) -> Self {
        Self {
            phone: Phone::new(me.into(), device.into(), PhoneConfig::default()),
            me: me.into(),
            device: device.into(),
            now: T0,
            sent: Vec::new(),
            events: Vec::new(),
            wake_at: None,
            sent_seen: 0,
            events_seen: 0,
            relayed: 0,
        }
    }

    /// Feeds one input at the current time and drains the outputs, as a driver must.
    pub fn input(&mut self, input: Input) -> Result<(), CommandError> {
        let result = self.phone.handle_input(self.now, input);
        loop {
            match self.phone.poll_output() {
                Output::Send(frame) => self.sent.push(frame),
                Output::Event(event) => self.events.push(event),
                Output::Timeout(at) => {
                    self.wake_at = Some(at);
                    break;
                }
                Output::Idle => {
                    self.wake_at = None;
                    break;
                }
            }
        }
        result
    }

    pub fn command(&mut self, command: Command) {
        let shown = format!("{command:?}");
        self.input(Input::Command(command)).unwrap_or_else(|e| panic!("{shown}: {e}"));
    }

    pub fn call(&mut self, call_id: &str, to: &str) {
        self.command(Command::Call { call_id: call_id.into(), to: to.into(), media: Media::Video });
    }

    pub fn accept(&mut self, call_id: &str) {
        self.command(Command::Accept { call_id: call_id.into(), media: Media::Video });
    }

    pub fn server(&mut self, message: ServerMessage) {
        self.input(Input::Server(message)).expect("server input never fails");
    }

    pub fn media(&mut self, call_id: &str, event: MediaEvent) {
        self.input(Input::Media { call_id: call_id.into(), event }).expect("media input never fails");
    }

    /// Moves the clock on and tells the phone, like a driver whose timer fired.
    pub fn advance(&mut self, ms: u64) {
        self.now = self.now.saturating_add_ms(ms);
        self.input(Input::Timeout).expect("timeout never fails");
    }

    /// The messages sent since the last call.
    pub fn take_sent(&mut self) -> Vec<ClientMessage> {
        let new = self.sent[self.sent_seen..].iter().map(|frame| frame.message.clone()).collect();
        self.sent_seen = self.sent.len();
        new
    }

    /// The events since the last call.
    pub fn take_events(&mut self) -> Vec<CallEvent> {
        let new = self.events[self.events_seen..].to_vec();
        self.events_seen = self.events.len();
        new
    }

    /// The request id of the last frame of this `type`.
    pub fn request_id(&self, kind: &str) -> RequestId {
        self.sent
            .iter()
            .rev()
            .find(|frame| frame.message.kind() == kind)
            .unwrap_or_else(|| panic!("no {kind} was sent"))
            .id
            .clone()
    }

    /// Answers the last request of this `type` with `ok`.
    pub fn reply_ok(&mut self, kind: &str) {
        let re = self.request_id(kind);
        self.server(ServerMessage::Ok { re });
    }

    pub fn reply_error(&mut self, kind: &str, code: ErrorCode) {
        let re = self.request_id(kind);
        self.server(ServerMessage::error(Some(re), code, "test"));
    }

    pub fn state(&self, call_id: &str) -> CallState {
        self.phone.call(&call_id.into()).unwrap_or_else(|| panic!("no call {call_id}")).state
    }

    /// The reasons of every `Ended` event so far.
    pub fn end_reasons(&self) -> Vec<(CallId, EndReason)> {
        self.events
            .iter()
            .filter_map(|event| match event {
                CallEvent::Ended { call_id, reason, .. } => Some((call_id.clone(), *reason)),
                _ => None,
            })
            .collect()
    }

    /// Delivers an incoming call from `from` (device `from-dev`) ringing for 60 s from now.
    pub fn invite_from(&mut self, call_id: &str, from: &str) {
        let call = snapshot(call_id, from, &self.me.to_string(), self.now);
        self.server(ServerMessage::CallInvite { call });
    }

    pub fn ended(&mut self, call_id: &str, reason: WireEndReason, by: Option<&str>) {
        self.server(ServerMessage::CallEnded {
            call_id: call_id.into(),
            reason,
            by: by.map(UserId::from),
            by_name: by.map(display_name),
            failure: None,
        });
    }
}

pub fn display_name(user: &str) -> String {
    let mut name = user.to_owned();
    if let Some(first) = name.get_mut(0..1) {
        first.make_ascii_uppercase();
    }
    name
}

/// A ringing 1:1 call from `caller` (on device `<caller>-dev`) to `callee`, created at `now`.
pub fn snapshot(call_id: &str, caller: &str, callee: &str, now: UnixMillis) -> CallSnapshot {
    CallSnapshot {
        call_id: call_id.into(),
        conversation: calldock_protocol::ConversationId::direct(&caller.into(), &callee.into()),
        caller: caller.into(),
        caller_name: display_name(caller),
        caller_device: format!("{caller}-dev").as_str().into(),
        media: Media::Video,
        phase: CallPhase::Ringing,
        created_at: now,
        ring_deadline: now.saturating_add_ms(calldock_protocol::RING_TIMEOUT_MS),
        answered_at: None,
        ended_at: None,
        end_reason: None,
        participants: vec![Participant {
            user: callee.into(),
            display_name: display_name(callee),
            state: ParticipantState::Invited,
            device: None,
            ring_deadline: Some(now.saturating_add_ms(calldock_protocol::RING_TIMEOUT_MS)),
        }],
    }
}

/// A server that relays between phones in memory: it creates every call it is asked to (no
/// idempotency, no glare arbitration — the phones decide glare), answers every request, and
/// forwards events. Enough for two users with one device each.
#[derive(Default)]
pub struct Relay {
    calls: Vec<CallSnapshot>,
}

/// A message for the phone of `to`.
pub struct Delivery {
    pub to: UserId,
    pub message: ServerMessage,
}

impl Relay {
    /// What the server does with one frame from `from` (on `device`).
    pub fn handle(&mut self, now: UnixMillis, from: &UserId, device: &DeviceId, frame: ClientFrame) -> Vec<Delivery> {
        let re = frame.id;
        let reply = |message| Delivery { to: from.clone(), message };
        let mut out = Vec::new();
        match frame.message {
            ClientMessage::CallInvite { call_id, to, media, .. } => {
                let mut call = snapshot(call_id.as_str(), from.as_str(), to.as_str(), now);
                call.caller_device = device.clone();
                call.media = media;
                self.calls.push(call.clone());
                out.push(reply(ServerMessage::CallCreated { re, call: call.clone(), existing: false }));
                out.push(Delivery { to, message: ServerMessage::CallInvite { call } });
            }
            ClientMessage::CallRinging { call_id } => {
                out.push(reply(ServerMessage::Ok { re }));
                if let Some(call) = self.find(&call_id) {
                    let caller = call.caller.clone();
                    out.push(Delivery {
                        to: caller,
                        message: ServerMessage::CallRinging { call_id, user: from.clone() },
                    });
                }
            }
            ClientMessage::CallAccept { call_id, media } => {
                let Some(call) = self.find_mut(&call_id).filter(|call| call.phase == CallPhase::Ringing) else {
                    out.push(reply(ServerMessage::error(Some(re), ErrorCode::InvalidState, "not ringing")));
                    return out;
                };
                call.phase = CallPhase::Active;
                call.answered_at = Some(now);
                let caller = call.caller.clone();
                out.push(reply(ServerMessage::Ok { re }));
                out.push(Delivery {
                    to: caller,
                    message: ServerMessage::CallAccepted { call_id, user: from.clone(), device: device.clone(), media },
                });
            }
            ClientMessage::CallCancel { call_id } => {
                out.push(reply(ServerMessage::Ok { re }));
                out.extend(self.finish(&call_id, from, WireEndReason::Canceled));
            }
            ClientMessage::CallEnd { call_id, .. } => {
                out.push(reply(ServerMessage::Ok { re }));
                out.extend(self.finish(&call_id, from, WireEndReason::Hangup));
            }
            ClientMessage::CallDecline { call_id, .. } => {
                out.push(reply(ServerMessage::Ok { re }));
                out.extend(self.finish(&call_id, from, WireEndReason::Declined));
            }
            _ => out.push(reply(ServerMessage::Ok { re })),
        }
        out
    }

    /// Ends a call and tells the other party.
    fn finish(&mut self, call_id: &CallId, by: &UserId, reason: WireEndReason) -> Vec<Delivery> {
        let Some(call) = self.find_mut(call_id).filter(|call| call.phase != CallPhase::Ended) else {
            return Vec::new();
        };
        call.phase = CallPhase::Ended;
        call.end_reason = Some(reason);
        let mut users: Vec<UserId> = call.participants.iter().map(|p| p.user.clone()).collect();
        users.push(call.caller.clone());
        users
            .into_iter()
            .filter(|user| user != by)
            .map(|to| Delivery {
                to,
                message: ServerMessage::CallEnded {
                    call_id: call_id.clone(),
                    reason,
                    by: Some(by.clone()),
                    by_name: Some(display_name(by.as_str())),
                    failure: None,
                },
            })
            .collect()
    }

    fn find(&self, call_id: &CallId) -> Option<&CallSnapshot> {
        self.calls.iter().find(|call| &call.call_id == call_id)
    }

    fn find_mut(&mut self, call_id: &CallId) -> Option<&mut CallSnapshot> {
        self.calls.iter_mut().find(|call| &call.call_id == call_id)
    }

    /// Runs frames between the phones until nobody has anything left to say.
    pub fn run(&mut self, phones: &mut [&mut TestPhone]) {
        for _round in 0..100 {
            let mut deliveries = Vec::new();
            for phone in phones.iter_mut() {
                let (me, device, now) = (phone.me.clone(), phone.device.clone(), phone.now);
                let frames: Vec<ClientFrame> = phone.sent[phone.relayed..].to_vec();
                phone.relayed = phone.sent.len();
                for frame in frames {
                    deliveries.extend(self.handle(now, &me, &device, frame));
                }
            }
            if deliveries.is_empty() {
                return;
            }
            for delivery in deliveries {
                if let Some(phone) = phones.iter_mut().find(|phone| phone.me == delivery.to) {
                    phone.server(delivery.message);
                }
            }
        }
        panic!("the relay did not settle in 100 rounds");
    }
}
