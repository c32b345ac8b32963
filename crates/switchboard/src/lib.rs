//! The reference server's call routing, as a state machine with no IO and no clock.
//!
//! The server's driver authenticates connections, then feeds the switchboard
//! [`Input`]s with the current time, and drains [`Switchboard::poll_output`] until it returns
//! [`Output::Timeout`] or [`Output::Idle`]:
//!
//! - [`Output::Persist`] records must be committed to storage **before** the [`Output::Send`]s
//!   that follow them are delivered, so that nothing a client saw acknowledged is lost.
//! - [`Output::Timeout`] is the next instant at which [`Input::Timeout`] must be fed.
//!
//! The switchboard knows users, their online devices (sessions) and calls. It rings every
//! device of a callee, lets the first acceptance win, ends unanswered calls after the ring
//! timeout, returns the active call of a conversation instead of starting a second one, and
//! relays SDP and ICE between the joined devices. Glare needs nothing from it: both clients
//! resolve it the same way ([`calldock_protocol::glare_winner`]).

use std::cmp::Reverse;
use std::collections::{BTreeSet, BinaryHeap, HashMap, HashSet, VecDeque};

use calldock_protocol::{
    CallId, CallPhase, CallSnapshot, ClientMessage, ConversationId, DeclineReason, DeviceId, EndReason, ErrorCode,
    FailureKind, Media, Participant, ParticipantState, PresenceEntry, PresenceStatus, RequestId, ServerMessage,
    UnixMillis, UserId,
};

/// A connection of one device, numbered by the driver.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SessionId(pub u64);

#[derive(Debug, Clone)]
pub struct SwitchboardConfig {
    /// How long a call rings before it is missed.
    pub ring_timeout_ms: u64,
    /// How long a joined device may be disconnected from signaling before its call ends with
    /// `failed(signaling)`. Media often survives a signaling blip, so this is generous.
    pub detach_grace_ms: u64,
    /// How long ended calls are kept for `call.sync`, so a device that was away learns how
    /// its calls ended instead of guessing.
    pub ended_retention_ms: u64,
}

impl Default for SwitchboardConfig {
    fn default() -> Self {
        Self {
            ring_timeout_ms: calldock_protocol::RING_TIMEOUT_MS,
            detach_grace_ms: 30_000,
            ended_retention_ms: 10 * 60_000,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum Input {
    /// A user exists (logged in once, or restored from storage).
    Register { user: UserId, display_name: String },
    /// An authenticated device connected.
    Attach { session: SessionId, user: UserId, device: DeviceId },
    /// A device's connection closed.
    Detach { session: SessionId },
    /// A call-related request from an attached session (hello, auth and ping are the driver's).
    Request { session: SessionId, id: RequestId, message: ClientMessage },
    /// Time passed.
    Timeout,
}

/// A change to store. Stored calls are upserted whole, so replay is idempotent.
#[derive(Debug, Clone, PartialEq)]
pub enum Record {
    User { user: UserId, display_name: String },
    Call(CallSnapshot),
    Event(CallEvent),
}

/// One line of the audit log.
#[derive(Debug, Clone, PartialEq)]
pub struct CallEvent {
    pub call_id: CallId,
    pub at: UnixMillis,
    /// `invite`, `ringing`, `accept`, `decline`, `cancel`, `end`, `missed`, `add`, `left`.
    pub kind: &'static str,
    pub user: Option<UserId>,
    pub device: Option<DeviceId>,
    pub detail: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Output {
    Persist(Record),
    Send {
        session: SessionId,
        message: ServerMessage,
    },
    /// Feed [`Input::Timeout`] at this time.
    Timeout(UnixMillis),
    /// Nothing is pending.
    Idle,
}

#[derive(Debug)]
struct Session {
    user: UserId,
    device: DeviceId,
    /// Users whose presence this session watches, so a detach touches only those.
    watching: HashSet<UserId>,
}

#[derive(Debug, Default)]
struct User {
    display_name: String,
    sessions: BTreeSet<SessionId>,
    /// Sessions that watch this user's presence.
    watchers: HashSet<SessionId>,
    /// Calls this user is a member of that have not ended.
    calls: BTreeSet<CallId>,
}

#[derive(Debug, Clone)]
struct Member {
    user: UserId,
    state: ParticipantState,
    /// For the caller: the device that placed the call. For others: the device that joined.
    device: Option<DeviceId>,
    ring_deadline: Option<UnixMillis>,
    /// Since when the joined device has had no signaling connection.
    detached_since: Option<UnixMillis>,
}

#[derive(Debug, Clone)]
struct Call {
    id: CallId,
    conversation: ConversationId,
    media: Media,
    phase: CallPhase,
    created_at: UnixMillis,
    ring_deadline: UnixMillis,
    answered_at: Option<UnixMillis>,
    ended_at: Option<UnixMillis>,
    end_reason: Option<EndReason>,
    /// `members[0]` is the caller.
    members: Vec<Member>,
}

impl Call {
    fn caller(&self) -> &Member {
        &self.members[0] // invariant: a call is created with its caller as the first member
    }

    fn member(&self, user: &UserId) -> Option<&Member> {
        self.members.iter().find(|m| &m.user == user)
    }

    fn member_mut(&mut self, user: &UserId) -> Option<&mut Member> {
        self.members.iter_mut().find(|m| &m.user == user)
    }

    fn joined(&self) -> impl Iterator<Item = &Member> {
        self.members.iter().filter(|m| m.state == ParticipantState::Joined)
    }

    fn is_ringing_member(m: &Member) -> bool {
        matches!(m.state, ParticipantState::Invited | ParticipantState::Ringing)
    }
}

/// Call routing for one server node.
pub struct Switchboard {
    config: SwitchboardConfig,
    users: HashMap<UserId, User>,
    sessions: HashMap<SessionId, Session>,
    calls: HashMap<CallId, Call>,
    /// Calls that have not ended, by conversation, for the idempotent start.
    by_conversation: HashMap<ConversationId, Vec<CallId>>,
    /// Ended calls kept for sync, oldest first.
    ended: VecDeque<(UnixMillis, CallId)>,
    deadlines: BinaryHeap<Reverse<(UnixMillis, CallId)>>,
    outputs: VecDeque<Output>,
    now: UnixMillis,
}

/// A request refused: becomes an `error` reply.
struct Refusal(ErrorCode, String);

type Handled = Result<(), Refusal>;

fn refuse(code: ErrorCode, message: impl Into<String>) -> Handled {
    Err(Refusal(code, message.into()))
}

/// Ids are chosen by clients; bound them so one cannot bloat memory or logs.
fn check_id(kind: &str, id: &str) -> Handled {
    if id.is_empty() || id.len() > 128 || id.chars().any(char::is_control) {
        return refuse(ErrorCode::BadRequest, format!("{kind} must be 1 to 128 printable characters"));
    }
    Ok(())
}

impl Switchboard {
    pub fn new(config: SwitchboardConfig) -> Self {
        Self {
            config,
            users: HashMap::new(),
            sessions: HashMap::new(),
            calls: HashMap::new(),
            by_conversation: HashMap::new(),
            ended: VecDeque::new(),
            deadlines: BinaryHeap::new(),
            outputs: VecDeque::new(),
            now: UnixMillis(0),
        }
    }

    /// Puts back a call that storage holds, after a restart. Calls that have not ended resume:
    /// ringing ones keep their deadlines; joined devices get the detach grace to reconnect.
    pub fn restore_call(&mut self, now: UnixMillis, snapshot: CallSnapshot) {
        self.now = self.now.max(now);
        let mut members = vec![Member {
            user: snapshot.caller.clone(),
            state: if snapshot.phase == CallPhase::Ended { ParticipantState::Left } else { ParticipantState::Joined },
            device: Some(snapshot.caller_device.clone()),
            ring_deadline: None,
            detached_since: Some(now),
        }];
        for p in &snapshot.participants {
            members.push(Member {
                user: p.user.clone(),
                state: p.state,
                device: p.device.clone(),
                ring_deadline: p.ring_deadline,
                detached_since: (p.state == ParticipantState::Joined).then_some(now),
            });
        }
        let call = Call {
            id: snapshot.call_id,
            conversation: snapshot.conversation,
            media: snapshot.media,
            phase: snapshot.phase,
            created_at: snapshot.created_at,
            ring_deadline: snapshot.ring_deadline,
            answered_at: snapshot.answered_at,
            ended_at: snapshot.ended_at,
            end_reason: snapshot.end_reason,
            members,
        };
        let id = call.id.clone();
        if call.phase == CallPhase::Ended {
            self.ended.push_back((call.ended_at.unwrap_or(now), id.clone()));
        } else {
            for m in &call.members {
                self.users.entry(m.user.clone()).or_default().calls.insert(id.clone());
            }
            self.by_conversation.entry(call.conversation.clone()).or_default().push(id.clone());
            // Every clock the call runs on must be re-armed: the ring deadline, each invitee's
            // own deadline, and the detach grace of the devices that have not reconnected yet.
            let mut at: Vec<UnixMillis> = vec![now, now.saturating_add_ms(self.config.detach_grace_ms)];
            if call.phase == CallPhase::Ringing {
                at.push(call.ring_deadline);
            }
            at.extend(call.members.iter().filter_map(|m| m.ring_deadline));
            for t in at {
                self.deadlines.push(Reverse((t, id.clone())));
            }
        }
        self.calls.insert(id, call);
    }

    pub fn handle_input(&mut self, now: UnixMillis, input: Input) {
        // Time never goes backwards inside the switchboard, whatever the wall clock does.
        self.now = self.now.max(now);
        match input {
            Input::Register { user, display_name } => self.register(user, display_name),
            Input::Attach { session, user, device } => self.attach(session, user, device),
            Input::Detach { session } => self.detach(session),
            Input::Request { session, id, message } => {
                if !self.sessions.contains_key(&session) {
                    self.send(
                        session,
                        ServerMessage::error(Some(id), ErrorCode::NotAuthenticated, "authenticate first"),
                    );
                    return;
                }
                if let Err(Refusal(code, message)) = self.request(session, &id, message) {
                    self.send(session, ServerMessage::error(Some(id), code, message));
                }
            }
            Input::Timeout => self.timeout(),
        }
    }

    pub fn poll_output(&mut self) -> Output {
        if let Some(out) = self.outputs.pop_front() {
            return out;
        }
        // Ended calls are forgotten after the retention, which needs a timeout of its own.
        let forget = self.ended.front().map(|(at, _)| at.saturating_add_ms(self.config.ended_retention_ms));
        match (self.deadlines.peek().map(|Reverse((at, _))| *at), forget) {
            (Some(a), Some(b)) => Output::Timeout(a.min(b)),
            (Some(at), None) | (None, Some(at)) => Output::Timeout(at),
            (None, None) => Output::Idle,
        }
    }

    /// Number of attached sessions, for metrics.
    pub fn session_count(&self) -> usize {
        self.sessions.len()
    }

    /// A call's snapshot, for tests and the history endpoint's live view.
    pub fn call(&self, id: &CallId) -> Option<CallSnapshot> {
        self.calls.get(id).map(|c| self.snapshot(c))
    }

    pub fn is_registered(&self, user: &UserId) -> bool {
        self.users.get(user).is_some_and(|u| !u.display_name.is_empty())
    }

    fn register(&mut self, user: UserId, display_name: String) {
        let entry = self.users.entry(user.clone()).or_default();
        if entry.display_name != display_name {
            entry.display_name = display_name.clone();
            self.outputs.push_back(Output::Persist(Record::User { user, display_name }));
        }
    }

    fn attach(&mut self, session: SessionId, user: UserId, device: DeviceId) {
        // A session id reused without a detach: close the old one first so no user keeps it.
        if self.sessions.get(&session).is_some_and(|s| s.user != user || s.device != device) {
            self.detach(session);
        }
        let before = self.presence(&user);
        self.users.entry(user.clone()).or_default().sessions.insert(session);
        self.sessions.insert(session, Session { user: user.clone(), device: device.clone(), watching: HashSet::new() });
        let call_ids: Vec<CallId> = self.users[&user].calls.iter().cloned().collect();
        for id in call_ids {
            let Some(call) = self.calls.get_mut(&id) else { continue };
            let Some(member) = call.member_mut(&user) else { continue };
            if member.device.as_ref() == Some(&device) {
                member.detached_since = None;
            }
            // A device that comes online while its user is being called rings too.
            if Call::is_ringing_member(member) {
                let call = self.snapshot_for(&id, &user);
                self.send(session, ServerMessage::CallInvite { call });
            }
        }
        self.presence_changed(&user, before);
    }

    fn detach(&mut self, session: SessionId) {
        let Some(s) = self.sessions.remove(&session) else { return };
        let before = self.presence(&s.user);
        if let Some(u) = self.users.get_mut(&s.user) {
            u.sessions.remove(&session);
        }
        for watched in &s.watching {
            if let Some(u) = self.users.get_mut(watched) {
                u.watchers.remove(&session);
            }
        }
        let still_online = self.device_online(&s.user, &s.device);
        let call_ids: Vec<CallId> =
            self.users.get(&s.user).map(|u| u.calls.iter().cloned().collect()).unwrap_or_default();
        let now = self.now;
        for id in call_ids {
            let Some(call) = self.calls.get_mut(&id) else { continue };
            let Some(member) = call.member_mut(&s.user) else { continue };
            if member.state == ParticipantState::Joined && member.device.as_ref() == Some(&s.device) && !still_online {
                member.detached_since = Some(now);
                self.deadlines.push(Reverse((now.saturating_add_ms(self.config.detach_grace_ms), id)));
            }
        }
        self.presence_changed(&s.user, before);
    }

    fn request(&mut self, session: SessionId, id: &RequestId, message: ClientMessage) -> Handled {
        let (user, device) = {
            let s = &self.sessions[&session]; // invariant: checked by handle_input
            (s.user.clone(), s.device.clone())
        };
        let ok = |sb: &mut Self| sb.send(session, ServerMessage::Ok { re: id.clone() });
        match message {
            ClientMessage::PresenceWatch { users } => {
                // Check everything first, so a refused request subscribes to nothing.
                for watched in &users {
                    check_id("user", watched.as_str())?;
                }
                let already = self.sessions.get(&session).map_or(0, |s| s.watching.len());
                if already + users.len() > 1000 {
                    return refuse(ErrorCode::BadRequest, "a connection can watch at most 1000 users");
                }
                let mut entries = Vec::with_capacity(users.len());
                for watched in users {
                    let status = self.presence(&watched);
                    let display_name = self.display_name(&watched);
                    self.users.entry(watched.clone()).or_default().watchers.insert(session);
                    if let Some(s) = self.sessions.get_mut(&session) {
                        s.watching.insert(watched.clone());
                    }
                    entries.push(PresenceEntry { display_name, user: watched, status });
                }
                self.send(session, ServerMessage::PresenceState { re: id.clone(), users: entries });
                Ok(())
            }
            ClientMessage::CallInvite { call_id, to, media, conversation } => {
                self.invite(session, id, &user, &device, call_id, to, media, conversation)
            }
            ClientMessage::CallRinging { call_id } => {
                self.ringing(&user, &call_id)?;
                ok(self);
                Ok(())
            }
            ClientMessage::CallAccept { call_id, media } => self.accept(session, id, &user, &device, &call_id, media),
            ClientMessage::CallDecline { call_id, reason } => {
                self.decline(session, &user, &call_id, reason)?;
                ok(self);
                Ok(())
            }
            ClientMessage::CallCancel { call_id } => {
                let call = self.call_of(&user, &call_id)?;
                if call.caller().user != user {
                    return refuse(ErrorCode::NotParticipant, "only the caller can cancel a call; use call.decline");
                }
                match call.phase {
                    CallPhase::Ringing => self.end_call(&call_id, EndReason::Canceled, Some(&user), None),
                    CallPhase::Active => {
                        Self::check_in_call_device(call, &user, &device)?;
                        self.leave(&call_id, &user, EndReason::Hangup, None);
                    }
                    CallPhase::Ended => {}
                }
                ok(self);
                Ok(())
            }
            ClientMessage::CallEnd { call_id, failure, reconnect_timeout } => {
                let call = self.call_of(&user, &call_id)?;
                let reason = if failure.is_some() {
                    EndReason::Failed
                } else if reconnect_timeout {
                    EndReason::TimeoutReconnect
                } else {
                    EndReason::Hangup
                };
                let ringing_me = call.member(&user).is_some_and(Call::is_ringing_member);
                match call.phase {
                    CallPhase::Ringing if call.caller().user == user => {
                        let reason = if reason == EndReason::Hangup { EndReason::Canceled } else { reason };
                        self.end_call(&call_id, reason, Some(&user), failure);
                    }
                    // Still being rung (a 1:1 callee, or an invitee of a running group call).
                    CallPhase::Ringing | CallPhase::Active if ringing_me => {
                        self.decline(session, &user, &call_id, DeclineReason::Declined)?
                    }
                    CallPhase::Ringing => {}
                    CallPhase::Active => {
                        Self::check_in_call_device(call, &user, &device)?;
                        self.leave(&call_id, &user, reason, failure);
                    }
                    CallPhase::Ended => {}
                }
                ok(self);
                Ok(())
            }
            ClientMessage::CallTimeout { call_id } => {
                let call = self.call_of(&user, &call_id)?;
                // The caller's client gave up at its own deadline: the same as the server's
                // timeout. A callee device's timer only stops that device; the server's own
                // timer ends the call for everyone.
                if call.phase == CallPhase::Ringing && call.caller().user == user {
                    self.end_call(&call_id, EndReason::Missed, None, None);
                }
                ok(self);
                Ok(())
            }
            ClientMessage::CallAddParticipant { call_id, user: invitee } => {
                self.add_participant(&user, &call_id, invitee)?;
                ok(self);
                Ok(())
            }
            ClientMessage::CallSync {} => {
                let mut calls: Vec<CallSnapshot> = Vec::new();
                if let Some(u) = self.users.get(&user) {
                    for cid in u.calls.iter().filter(|c| self.calls.contains_key(*c)) {
                        calls.push(self.snapshot_for(cid, &user));
                    }
                }
                for (_, cid) in &self.ended {
                    if let Some(c) = self.calls.get(cid)
                        && c.member(&user).is_some()
                    {
                        calls.push(self.snapshot_for(cid, &user));
                    }
                }
                self.send(session, ServerMessage::Calls { re: id.clone(), calls });
                Ok(())
            }
            ClientMessage::Sdp { call_id, to, kind, sdp } => {
                let target = self.relay_target(&user, &device, &call_id, to.as_ref())?;
                self.send(target, ServerMessage::Sdp { call_id, from: user, from_device: device, kind, sdp });
                ok(self);
                Ok(())
            }
            ClientMessage::Ice { call_id, to, candidate, sdp_mid, sdp_mline_index } => {
                let target = self.relay_target(&user, &device, &call_id, to.as_ref())?;
                self.send(
                    target,
                    ServerMessage::Ice {
                        call_id,
                        from: user,
                        from_device: device,
                        candidate,
                        sdp_mid,
                        sdp_mline_index,
                    },
                );
                ok(self);
                Ok(())
            }
            ClientMessage::IceRestart { call_id, to } => {
                let target = self.relay_target(&user, &device, &call_id, to.as_ref())?;
                self.send(target, ServerMessage::IceRestart { call_id, from: user, from_device: device });
                ok(self);
                Ok(())
            }
            ClientMessage::Hello { .. } | ClientMessage::Auth { .. } | ClientMessage::Ping {} => {
                // The driver answers these; reaching here is a driver bug, reported, not fatal.
                refuse(ErrorCode::Internal, "connection-level request reached the call router")
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn invite(
        &mut self,
        session: SessionId,
        re: &RequestId,
        user: &UserId,
        device: &DeviceId,
        call_id: CallId,
        to: UserId,
        media: Media,
        conversation: Option<ConversationId>,
    ) -> Handled {
        check_id("call_id", call_id.as_str())?;
        check_id("to", to.as_str())?;
        if let Some(c) = &conversation {
            check_id("conversation", c.as_str())?;
        }
        if &to == user {
            return refuse(ErrorCode::BadRequest, "you cannot call yourself");
        }
        if !self.is_registered(&to) {
            return refuse(ErrorCode::UserNotFound, format!("no user named \"{to}\" on this server"));
        }
        if let Some(existing) = self.calls.get(&call_id) {
            // A retried invite (lost reply) returns the same call; anything else reusing the id
            // is a client bug.
            if &existing.caller().user == user && existing.phase != CallPhase::Ended {
                let call = self.snapshot_for(&call_id, user);
                self.send(session, ServerMessage::CallCreated { re: re.clone(), call, existing: true });
                return Ok(());
            }
            return refuse(ErrorCode::InvalidState, format!("call id {call_id} is already used"));
        }
        let conversation = conversation.unwrap_or_else(|| ConversationId::direct(user, &to));
        let active: Vec<CallId> = self.by_conversation.get(&conversation).cloned().unwrap_or_default();
        for cid in &active {
            let Some(call) = self.calls.get(cid) else { continue };
            match call.member(user) {
                // Glare: the other side is calling us right now. Both clients resolve it, so
                // this second call must ring too rather than be folded into the first.
                Some(m) if Call::is_ringing_member(m) && call.phase == CallPhase::Ringing => {}
                // Conversation ids come from clients: a call is never shown to someone not in it.
                None => {
                    return refuse(ErrorCode::InvalidState, "that conversation has an active call you are not in");
                }
                Some(_) => {
                    let call = self.snapshot_for(cid, user);
                    self.send(session, ServerMessage::CallCreated { re: re.clone(), call, existing: true });
                    return Ok(());
                }
            }
        }
        let now = self.now;
        let deadline = now.saturating_add_ms(self.config.ring_timeout_ms);
        let call = Call {
            id: call_id.clone(),
            conversation: conversation.clone(),
            media,
            phase: CallPhase::Ringing,
            created_at: now,
            ring_deadline: deadline,
            answered_at: None,
            ended_at: None,
            end_reason: None,
            members: vec![
                Member {
                    user: user.clone(),
                    state: ParticipantState::Joined,
                    device: Some(device.clone()),
                    ring_deadline: None,
                    detached_since: None,
                },
                Member {
                    user: to.clone(),
                    state: ParticipantState::Invited,
                    device: None,
                    ring_deadline: Some(deadline),
                    detached_since: None,
                },
            ],
        };
        let busy_before = [self.presence(user), self.presence(&to)];
        self.calls.insert(call_id.clone(), call);
        self.by_conversation.entry(conversation).or_default().push(call_id.clone());
        for u in [user, &to] {
            self.users.entry(u.clone()).or_default().calls.insert(call_id.clone());
        }
        self.deadlines.push(Reverse((deadline, call_id.clone())));
        self.persist_call(&call_id, "invite", Some(user), Some(device), Some(format!("to {to}")));
        let call = self.snapshot_for(&call_id, user);
        self.send(session, ServerMessage::CallCreated { re: re.clone(), call, existing: false });
        let callee_call = self.snapshot_for(&call_id, &to);
        for s in self.sessions_of(&to) {
            self.send(s, ServerMessage::CallInvite { call: callee_call.clone() });
        }
        self.presence_changed(user, busy_before[0]);
        self.presence_changed(&to, busy_before[1]);
        Ok(())
    }

    fn ringing(&mut self, user: &UserId, call_id: &CallId) -> Handled {
        let call = self.call_of(user, call_id)?;
        let Some(member) = call.member(user) else { return refuse(ErrorCode::NotParticipant, "not in this call") };
        match member.state {
            ParticipantState::Invited => {}
            // Another device of the same user already said so.
            ParticipantState::Ringing => return Ok(()),
            _ => return refuse(ErrorCode::InvalidState, "this call is no longer ringing for you"),
        }
        let call = self.calls.get_mut(call_id).expect("call_of found it");
        if let Some(m) = call.member_mut(user) {
            m.state = ParticipantState::Ringing;
        }
        self.persist_call(call_id, "ringing", Some(user), None, None);
        let caller_sessions = self.member_sessions(call_id, |m| m.state == ParticipantState::Joined);
        for s in caller_sessions {
            self.send(s, ServerMessage::CallRinging { call_id: call_id.clone(), user: user.clone() });
        }
        Ok(())
    }

    fn accept(
        &mut self,
        session: SessionId,
        re: &RequestId,
        user: &UserId,
        device: &DeviceId,
        call_id: &CallId,
        media: Media,
    ) -> Handled {
        let call = self.call_of(user, call_id)?;
        let Some(member) = call.member(user) else { return refuse(ErrorCode::NotParticipant, "not in this call") };
        // The caller cannot accept its own call, unless it left a group call and was invited back.
        if call.caller().user == *user && !Call::is_ringing_member(member) {
            return refuse(ErrorCode::InvalidState, "the caller cannot accept its own call");
        }
        match member.state {
            ParticipantState::Invited | ParticipantState::Ringing => {}
            ParticipantState::Joined if member.device.as_ref() == Some(device) => {
                // A retried accept from the device that won: idempotent.
                self.send(session, ServerMessage::Ok { re: re.clone() });
                return Ok(());
            }
            ParticipantState::Joined => {
                return refuse(ErrorCode::InvalidState, "the call was answered on another device");
            }
            _ => return refuse(ErrorCode::InvalidState, "this call is no longer ringing"),
        }
        if call.phase == CallPhase::Ended {
            return refuse(ErrorCode::InvalidState, "this call has ended");
        }
        // Answering makes the caller busy too, not only the one who answers.
        let befores: Vec<(UserId, PresenceStatus)> =
            call.members.iter().map(|m| (m.user.clone(), self.presence(&m.user))).collect();
        let now = self.now;
        let call = self.calls.get_mut(call_id).expect("call_of found it");
        let group = call.members.len() > 2;
        if let Some(m) = call.member_mut(user) {
            m.state = ParticipantState::Joined;
            m.device = Some(device.clone());
            m.ring_deadline = None;
        }
        if call.phase == CallPhase::Ringing {
            call.phase = CallPhase::Active;
            call.answered_at = Some(now);
        }
        self.persist_call(call_id, "accept", Some(user), Some(device), None);
        self.send(session, ServerMessage::Ok { re: re.clone() });
        let accepted =
            ServerMessage::CallAccepted { call_id: call_id.clone(), user: user.clone(), device: device.clone(), media };
        let joined: Vec<SessionId> = self.member_sessions(call_id, |m| m.state == ParticipantState::Joined);
        for s in joined {
            if s != session && self.sessions.get(&s).is_some_and(|x| &x.user != user) {
                self.send(s, accepted.clone());
            }
        }
        self.send(session, accepted);
        if group {
            let display_name = self.display_name(user);
            let others = self.member_sessions(call_id, |m| m.state == ParticipantState::Joined && &m.user != user);
            for s in others {
                self.send(
                    s,
                    ServerMessage::ParticipantJoined {
                        call_id: call_id.clone(),
                        user: user.clone(),
                        display_name: display_name.clone(),
                        device: device.clone(),
                    },
                );
            }
        }
        for s in self.sessions_of(user) {
            if s != session && self.sessions.get(&s).is_some_and(|x| &x.device != device) {
                self.send(s, ended_message(call_id, EndReason::AcceptedElsewhere, None, None, None));
            }
        }
        for (u, before) in befores {
            self.presence_changed(&u, before);
        }
        Ok(())
    }

    fn decline(&mut self, session: SessionId, user: &UserId, call_id: &CallId, reason: DeclineReason) -> Handled {
        let call = self.call_of(user, call_id)?;
        let Some(member) = call.member(user) else { return refuse(ErrorCode::NotParticipant, "not in this call") };
        if call.caller().user == *user && !Call::is_ringing_member(member) {
            return refuse(ErrorCode::InvalidState, "the caller cannot decline; use call.cancel");
        }
        if !Call::is_ringing_member(member) {
            return refuse(ErrorCode::InvalidState, "this call is no longer ringing for you");
        }
        let reason = match reason {
            DeclineReason::Declined => EndReason::Declined,
            DeclineReason::Busy => EndReason::Busy,
        };
        let call = self.calls.get_mut(call_id).expect("call_of found it");
        if let Some(m) = call.member_mut(user) {
            m.state = ParticipantState::Declined;
            m.ring_deadline = None;
        }
        let nobody_left =
            !call.members.iter().skip(1).any(|m| Call::is_ringing_member(m) || m.state == ParticipantState::Joined);
        let phase = call.phase;
        let by_device = self.sessions.get(&session).map(|s| s.device.clone());
        // The change is persisted (by end_call or here) before anyone hears of it.
        if phase == CallPhase::Ringing && nobody_left {
            self.end_call(call_id, reason, Some(user), None);
        } else {
            self.persist_call(call_id, "decline", Some(user), by_device.as_ref(), None);
            // The decliner is no longer in this call: not in its sync, not rung on reconnect.
            if let Some(u) = self.users.get_mut(user) {
                u.calls.remove(call_id);
            }
            self.participant_left(call_id, user, ParticipantState::Declined);
            self.send(session, ended_message(call_id, reason, Some(user), None, None));
        }
        // The user's other devices stop ringing.
        for s in self.sessions_of(user) {
            if s != session {
                self.send(s, ended_message(call_id, EndReason::DeclinedElsewhere, Some(user), None, None));
            }
        }
        Ok(())
    }

    /// A joined member leaves an active call; a call with fewer than two joined members and
    /// nobody still ringing ends.
    fn leave(&mut self, call_id: &CallId, user: &UserId, reason: EndReason, failure: Option<FailureKind>) {
        let Some(call) = self.calls.get_mut(call_id) else { return };
        let Some(m) = call.member_mut(user) else { return };
        if m.state != ParticipantState::Joined {
            return;
        }
        let joined = call.joined().count();
        let ringing = call.members.iter().any(Call::is_ringing_member);
        if joined <= 2 && !(joined == 2 && ringing) {
            self.end_call(call_id, reason, Some(user), failure);
            return;
        }
        let before = self.presence(user);
        if let Some(m) = self.calls.get_mut(call_id).and_then(|c| c.member_mut(user)) {
            m.state = ParticipantState::Left;
        }
        self.persist_call(call_id, "left", Some(user), None, failure.map(|f| format!("{f:?}")));
        let device = self.calls[call_id].member(user).and_then(|m| m.device.clone());
        for s in self.sessions_of(user) {
            if self.sessions.get(&s).map(|x| &x.device) == device.as_ref() {
                self.send(s, ended_message(call_id, reason, Some(user), None, failure));
            }
        }
        self.participant_left(call_id, user, ParticipantState::Left);
        self.users.entry(user.clone()).or_default().calls.remove(call_id);
        self.presence_changed(user, before);
    }

    fn add_participant(&mut self, user: &UserId, call_id: &CallId, invitee: UserId) -> Handled {
        check_id("user", invitee.as_str())?;
        let call = self.call_of(user, call_id)?;
        if call.member(user).is_none_or(|m| m.state != ParticipantState::Joined) {
            return refuse(ErrorCode::NotParticipant, "only members in the call can invite others");
        }
        if call.phase != CallPhase::Active {
            return refuse(ErrorCode::InvalidState, "invite others once the call is answered");
        }
        if !self.is_registered(&invitee) {
            return refuse(ErrorCode::UserNotFound, format!("no user named \"{invitee}\" on this server"));
        }
        if call.member(&invitee).is_some_and(|m| m.state == ParticipantState::Joined || Call::is_ringing_member(m)) {
            return refuse(ErrorCode::InvalidState, format!("{invitee} is already in or invited to this call"));
        }
        if call.members.len() >= 16 {
            return refuse(ErrorCode::InvalidState, "a call holds at most 16 people");
        }
        let deadline = self.now.saturating_add_ms(self.config.ring_timeout_ms);
        let call = self.calls.get_mut(call_id).expect("call_of found it");
        let fresh = Member {
            user: invitee.clone(),
            state: ParticipantState::Invited,
            device: None,
            ring_deadline: Some(deadline),
            detached_since: None,
        };
        match call.member_mut(&invitee) {
            Some(m) => *m = fresh,
            None => call.members.push(fresh),
        }
        self.users.entry(invitee.clone()).or_default().calls.insert(call_id.clone());
        self.deadlines.push(Reverse((deadline, call_id.clone())));
        self.persist_call(call_id, "add", Some(user), None, Some(format!("invited {invitee}")));
        let display_name = self.display_name(&invitee);
        for s in self.member_sessions(call_id, |m| m.state == ParticipantState::Joined) {
            self.send(
                s,
                ServerMessage::ParticipantInvited {
                    call_id: call_id.clone(),
                    user: invitee.clone(),
                    display_name: display_name.clone(),
                },
            );
        }
        let snapshot = self.snapshot_for(call_id, &invitee);
        for s in self.sessions_of(&invitee) {
            self.send(s, ServerMessage::CallInvite { call: snapshot.clone() });
        }
        Ok(())
    }

    fn timeout(&mut self) {
        let now = self.now;
        let mut due = Vec::new();
        while let Some(Reverse((at, _))) = self.deadlines.peek() {
            if *at > now {
                break;
            }
            let Some(Reverse((_, id))) = self.deadlines.pop() else { break };
            due.push(id);
        }
        due.dedup();
        for id in due {
            self.check_deadlines(&id);
        }
        while let Some((at, id)) = self.ended.front() {
            if at.saturating_add_ms(self.config.ended_retention_ms) > now {
                break;
            }
            let id = id.clone();
            self.ended.pop_front();
            self.calls.remove(&id);
        }
    }

    /// Acts on whatever deadlines of one call have passed. Entries in the deadline heap may be
    /// stale (the call moved on); this re-reads the call, so they do no harm.
    fn check_deadlines(&mut self, call_id: &CallId) {
        let now = self.now;
        let Some(call) = self.calls.get(call_id) else { return };
        if call.phase == CallPhase::Ended {
            return;
        }
        if call.phase == CallPhase::Ringing && call.ring_deadline <= now {
            self.end_call(call_id, EndReason::Missed, None, None);
            return;
        }
        let grace = self.config.detach_grace_ms;
        let lost: Vec<UserId> = call
            .members
            .iter()
            .filter(|m| {
                m.state == ParticipantState::Joined
                    && m.detached_since.is_some_and(|t| t.saturating_add_ms(grace) <= now)
            })
            .map(|m| m.user.clone())
            .collect();
        for user in lost {
            self.leave(call_id, &user, EndReason::Failed, Some(FailureKind::Signaling));
        }
        let Some(call) = self.calls.get(call_id) else { return };
        if call.phase != CallPhase::Active {
            return;
        }
        let expired: Vec<UserId> = call
            .members
            .iter()
            .filter(|m| Call::is_ringing_member(m) && m.ring_deadline.is_some_and(|d| d <= now))
            .map(|m| m.user.clone())
            .collect();
        for user in expired {
            if let Some(m) = self.calls.get_mut(call_id).and_then(|c| c.member_mut(&user)) {
                m.state = ParticipantState::Left;
                m.ring_deadline = None;
            }
            self.persist_call(call_id, "missed", Some(&user), None, None);
            for s in self.sessions_of(&user) {
                self.send(s, ended_message(call_id, EndReason::Missed, None, None, None));
            }
            self.users.entry(user.clone()).or_default().calls.remove(call_id);
            self.participant_left(call_id, &user, ParticipantState::Left);
            // The initiator may have been waiting alone for the invitees.
            if let Some(call) = self.calls.get(call_id)
                && call.joined().count() < 2
                && !call.members.iter().any(Call::is_ringing_member)
            {
                self.end_call(call_id, EndReason::Missed, None, None);
            }
        }
    }

    fn end_call(&mut self, call_id: &CallId, reason: EndReason, by: Option<&UserId>, failure: Option<FailureKind>) {
        let now = self.now;
        let Some(call) = self.calls.get(call_id) else { return };
        if call.phase == CallPhase::Ended {
            return;
        }
        let befores: Vec<(UserId, PresenceStatus)> =
            call.members.iter().map(|m| (m.user.clone(), self.presence(&m.user))).collect();
        let Some(call) = self.calls.get_mut(call_id) else { return };
        call.phase = CallPhase::Ended;
        call.ended_at = Some(now);
        call.end_reason = Some(reason);
        let members: Vec<Member> = call.members.clone();
        for m in &mut call.members {
            if matches!(m.state, ParticipantState::Invited | ParticipantState::Ringing | ParticipantState::Joined) {
                m.state = ParticipantState::Left;
            }
            m.ring_deadline = None;
        }
        let conversation = call.conversation.clone();
        if let Some(list) = self.by_conversation.get_mut(&conversation) {
            list.retain(|c| c != call_id);
            if list.is_empty() {
                self.by_conversation.remove(&conversation);
            }
        }
        self.ended.push_back((now, call_id.clone()));
        let kind = match reason {
            EndReason::Missed => "missed",
            EndReason::Canceled => "cancel",
            EndReason::Declined | EndReason::Busy => "decline",
            _ => "end",
        };
        self.persist_call(call_id, kind, by, None, Some(end_detail(reason, failure)));
        let by_name = by.map(|u| self.display_name(u));
        for m in &members {
            let involved =
                matches!(m.state, ParticipantState::Invited | ParticipantState::Ringing | ParticipantState::Joined);
            if let Some(u) = self.users.get_mut(&m.user) {
                u.calls.remove(call_id);
            }
            if !involved {
                continue;
            }
            for s in self.sessions_of(&m.user) {
                // Joined members hear it on the device in the call; ringing members on all.
                if m.state == ParticipantState::Joined && self.sessions.get(&s).map(|x| &x.device) != m.device.as_ref()
                {
                    continue;
                }
                self.send(s, ended_message(call_id, reason, by, by_name.clone(), failure));
            }
        }
        for (user, before) in befores {
            self.presence_changed(&user, before);
        }
    }

    fn participant_left(&mut self, call_id: &CallId, user: &UserId, state: ParticipantState) {
        let Some(call) = self.calls.get(call_id) else { return };
        if call.members.len() <= 2 {
            return;
        }
        let display_name = self.display_name(user);
        for s in self.member_sessions(call_id, |m| m.state == ParticipantState::Joined && &m.user != user) {
            self.send(
                s,
                ServerMessage::ParticipantLeft {
                    call_id: call_id.clone(),
                    user: user.clone(),
                    display_name: display_name.clone(),
                    state,
                },
            );
        }
    }

    /// The session of the other party's joined device that relayed media signaling goes to.
    fn relay_target(
        &self,
        user: &UserId,
        device: &DeviceId,
        call_id: &CallId,
        to: Option<&UserId>,
    ) -> Result<SessionId, Refusal> {
        let call = self.call_of(user, call_id)?;
        let me = call.member(user).filter(|m| m.state == ParticipantState::Joined && m.device.as_ref() == Some(device));
        if me.is_none() {
            return Err(Refusal(
                ErrorCode::NotParticipant,
                "only the devices in the call can send media signaling".into(),
            ));
        }
        if call.phase != CallPhase::Active {
            return Err(Refusal(ErrorCode::InvalidState, "the call is not answered yet".into()));
        }
        let target = match to {
            Some(t) if t == user => {
                return Err(Refusal(ErrorCode::BadRequest, "media signaling goes to another participant".into()));
            }
            Some(t) => call.member(t),
            // Without `to`, the one other joined member: a group whose invitees declined or left
            // is a two-party call again.
            None => {
                let mut others = call.joined().filter(|m| &m.user != user);
                match (others.next(), others.next()) {
                    (Some(m), None) => Some(m),
                    (None, _) => None,
                    (Some(_), Some(_)) => {
                        return Err(Refusal(ErrorCode::BadRequest, "group calls need \"to\"".into()));
                    }
                }
            }
        };
        let Some(target) = target.filter(|m| m.state == ParticipantState::Joined) else {
            return Err(Refusal(ErrorCode::NotParticipant, "that user is not in the call".into()));
        };
        self.sessions_of(&target.user)
            .into_iter()
            .find(|s| self.sessions.get(s).map(|x| &x.device) == target.device.as_ref())
            .ok_or_else(|| Refusal(ErrorCode::InvalidState, format!("{} is reconnecting; retry shortly", target.user)))
    }

    /// Leaving a call is for the device in it: the user's other devices heard
    /// accepted-elsewhere and must not hang up the call from under it.
    fn check_in_call_device(call: &Call, user: &UserId, device: &DeviceId) -> Handled {
        match call.member(user) {
            Some(m) if m.state == ParticipantState::Joined && m.device.as_ref() != Some(device) => {
                refuse(ErrorCode::InvalidState, "the call is on another of your devices")
            }
            _ => Ok(()),
        }
    }

    fn call_of(&self, user: &UserId, call_id: &CallId) -> Result<&Call, Refusal> {
        let Some(call) = self.calls.get(call_id) else {
            return Err(Refusal(ErrorCode::CallNotFound, format!("no call {call_id}")));
        };
        if call.member(user).is_none() {
            // Same answer as a missing call, so call ids of others cannot be probed.
            return Err(Refusal(ErrorCode::CallNotFound, format!("no call {call_id}")));
        }
        Ok(call)
    }

    fn sessions_of(&self, user: &UserId) -> Vec<SessionId> {
        self.users.get(user).map(|u| u.sessions.iter().copied().collect()).unwrap_or_default()
    }

    /// Sessions of the members matching `pick`; for members with a device, only that device.
    fn member_sessions(&self, call_id: &CallId, pick: impl Fn(&Member) -> bool) -> Vec<SessionId> {
        let Some(call) = self.calls.get(call_id) else { return Vec::new() };
        let mut out = Vec::new();
        for m in call.members.iter().filter(|m| pick(m)) {
            for s in self.sessions_of(&m.user) {
                if m.device.is_none() || self.sessions.get(&s).map(|x| &x.device) == m.device.as_ref() {
                    out.push(s);
                }
            }
        }
        out
    }

    fn device_online(&self, user: &UserId, device: &DeviceId) -> bool {
        self.sessions_of(user).iter().any(|s| self.sessions.get(s).is_some_and(|x| &x.device == device))
    }

    fn display_name(&self, user: &UserId) -> String {
        match self.users.get(user) {
            Some(u) if !u.display_name.is_empty() => u.display_name.clone(),
            _ => user.to_string(),
        }
    }

    fn presence(&self, user: &UserId) -> PresenceStatus {
        let Some(u) = self.users.get(user) else { return PresenceStatus::Offline };
        if u.sessions.is_empty() {
            return PresenceStatus::Offline;
        }
        let in_call = u.calls.iter().any(|c| {
            self.calls.get(c).is_some_and(|c| {
                c.phase == CallPhase::Active && c.member(user).is_some_and(|m| m.state == ParticipantState::Joined)
            })
        });
        if in_call { PresenceStatus::Busy } else { PresenceStatus::Online }
    }

    fn presence_changed(&mut self, user: &UserId, before: PresenceStatus) {
        let now = self.presence(user);
        if now == before {
            return;
        }
        let watchers: Vec<SessionId> =
            self.users.get(user).map(|u| u.watchers.iter().copied().collect()).unwrap_or_default();
        for s in watchers {
            self.send(s, ServerMessage::Presence { user: user.clone(), status: now });
        }
    }

    fn snapshot(&self, call: &Call) -> CallSnapshot {
        let caller = call.caller();
        CallSnapshot {
            call_id: call.id.clone(),
            conversation: call.conversation.clone(),
            caller: caller.user.clone(),
            caller_name: self.display_name(&caller.user),
            caller_device: caller.device.clone().unwrap_or_else(|| DeviceId::new("")),
            media: call.media,
            phase: call.phase,
            created_at: call.created_at,
            ring_deadline: call.ring_deadline,
            answered_at: call.answered_at,
            ended_at: call.ended_at,
            end_reason: call.end_reason,
            participants: call
                .members
                .iter()
                .skip(1)
                .map(|m| Participant {
                    user: m.user.clone(),
                    display_name: self.display_name(&m.user),
                    state: m.state,
                    device: m.device.clone(),
                    ring_deadline: m.ring_deadline,
                })
                .collect(),
        }
    }

    /// The snapshot as `user` should see it: an invitee's ring deadline is its own.
    fn snapshot_for(&self, call_id: &CallId, user: &UserId) -> CallSnapshot {
        let call = &self.calls[call_id]; // invariant: callers pass ids of stored calls
        let mut snapshot = self.snapshot(call);
        if let Some(d) = call.member(user).and_then(|m| m.ring_deadline) {
            snapshot.ring_deadline = d;
        }
        snapshot
    }

    fn persist_call(
        &mut self,
        call_id: &CallId,
        kind: &'static str,
        user: Option<&UserId>,
        device: Option<&DeviceId>,
        detail: Option<String>,
    ) {
        let Some(call) = self.calls.get(call_id) else { return };
        let snapshot = self.snapshot(call);
        self.outputs.push_back(Output::Persist(Record::Call(snapshot)));
        self.outputs.push_back(Output::Persist(Record::Event(CallEvent {
            call_id: call_id.clone(),
            at: self.now,
            kind,
            user: user.cloned(),
            device: device.cloned(),
            detail,
        })));
    }

    fn send(&mut self, session: SessionId, message: ServerMessage) {
        self.outputs.push_back(Output::Send { session, message });
    }
}

fn ended_message(
    call_id: &CallId,
    reason: EndReason,
    by: Option<&UserId>,
    by_name: Option<String>,
    failure: Option<FailureKind>,
) -> ServerMessage {
    ServerMessage::CallEnded { call_id: call_id.clone(), reason, by: by.cloned(), by_name, failure }
}

fn end_detail(reason: EndReason, failure: Option<FailureKind>) -> String {
    let reason = serde_json::to_value(reason).ok().and_then(|v| v.as_str().map(str::to_owned)).unwrap_or_default();
    match failure {
        Some(f) => format!("{reason} ({f:?})").to_lowercase(),
        None => reason,
    }
}
