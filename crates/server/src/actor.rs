//! The task that owns the switchboard: feeds it inputs with the current time, commits what it
//! wants stored, then delivers what it wants sent.

use std::collections::{HashMap, VecDeque};
use std::time::Duration;

use calldock_protocol::{ClientMessage, DeviceId, RequestId, ServerMessage, UnixMillis, UserId};
use calldock_switchboard::{Input, Output, Record, SessionId, Switchboard};
use tokio::sync::{mpsc, oneshot, watch};

use crate::echo::EchoBot;
use crate::echo_media::EchoMedia;
use crate::store::Store;

/// The echo bot's session; client sessions are numbered from [`FIRST_CLIENT_SESSION`].
pub const ECHO_SESSION: SessionId = SessionId(0);
pub const FIRST_CLIENT_SESSION: u64 = 1;

/// How many messages a session may have queued before it counts as too slow and is dropped.
pub const OUTBOX_CAPACITY: usize = 1024;

/// Most inputs folded into one storage transaction.
const BATCH: usize = 256;

pub enum ActorMsg {
    Attach {
        session: SessionId,
        user: UserId,
        device: DeviceId,
        outbox: mpsc::Sender<Outbound>,
    },
    /// `done` fires once the input's records are committed and its messages handed out.
    Input {
        input: Input,
        done: Option<oneshot::Sender<()>>,
    },
}

/// What the actor hands a connection task.
#[derive(Debug)]
pub enum Outbound {
    Message(ServerMessage),
}

struct Actor {
    switchboard: Switchboard,
    store: Store,
    outboxes: HashMap<SessionId, mpsc::Sender<Outbound>>,
    bot: EchoBot,
    echo_media: EchoMedia,
    bot_requests: VecDeque<ClientMessage>,
    bot_request_id: u64,
    next_timeout: Option<UnixMillis>,
    /// A slow session was detached while delivering: the switchboard has more to say.
    detached_while_delivering: bool,
}

pub async fn run(
    switchboard: Switchboard,
    store: Store,
    mut rx: mpsc::Receiver<ActorMsg>,
    mut stop: watch::Receiver<bool>,
    echo_peer: calldock_peer::PeerSettings,
) {
    let (media_requests_tx, mut media_requests) = mpsc::channel(1024);
    let mut actor = Actor {
        switchboard,
        store,
        outboxes: HashMap::new(),
        bot: EchoBot::default(),
        echo_media: EchoMedia::new(echo_peer, media_requests_tx),
        bot_requests: VecDeque::new(),
        bot_request_id: 0,
        next_timeout: None,
        detached_while_delivering: false,
    };
    actor.drain(Vec::new()).await;
    loop {
        let wait = actor
            .next_timeout
            .map(|t| Duration::from_millis(t.0.saturating_sub(crate::now().0)))
            .unwrap_or(Duration::from_secs(3600));
        let mut done = Vec::new();
        tokio::select! {
            _ = async { stop.wait_for(|s| *s).await.map(|_| ()) } => break,
            msg = rx.recv() => {
                let Some(msg) = msg else { break };
                actor.accept(msg, &mut done);
                // Fold whatever else is waiting into the same transaction.
                for _ in 1..BATCH {
                    match rx.try_recv() {
                        Ok(msg) => actor.accept(msg, &mut done),
                        Err(_) => break,
                    }
                }
            }
            Some(request) = media_requests.recv() => {
                // The echo bot's media signaling, sent as the bot.
                actor.bot_requests.push_back(request);
            }
            _ = tokio::time::sleep(wait) => {
                actor.switchboard.handle_input(crate::now(), Input::Timeout);
            }
        }
        actor.drain(done).await;
    }
}

impl Actor {
    fn accept(&mut self, msg: ActorMsg, done: &mut Vec<oneshot::Sender<()>>) {
        match msg {
            ActorMsg::Attach { session, user, device, outbox } => {
                self.outboxes.insert(session, outbox);
                self.switchboard.handle_input(crate::now(), Input::Attach { session, user, device });
            }
            ActorMsg::Input { input, done: d } => {
                if let Input::Detach { session } = &input {
                    self.outboxes.remove(session);
                }
                self.switchboard.handle_input(crate::now(), input);
                done.extend(d);
            }
        }
    }

    /// Commits, then delivers, until the switchboard and the echo bot have nothing more to say.
    async fn drain(&mut self, done: Vec<oneshot::Sender<()>>) {
        loop {
            let mut records: Vec<Record> = Vec::new();
            let mut sends: Vec<(SessionId, ServerMessage)> = Vec::new();
            loop {
                match self.switchboard.poll_output() {
                    Output::Persist(r) => records.push(r),
                    Output::Send { session, message } => sends.push((session, message)),
                    Output::Timeout(t) => {
                        self.next_timeout = Some(t);
                        break;
                    }
                    Output::Idle => {
                        self.next_timeout = None;
                        break;
                    }
                }
            }
            if !records.is_empty() {
                let store = self.store.clone();
                let result = tokio::task::spawn_blocking(move || store.commit(&records)).await;
                match result {
                    Ok(Ok(())) => {}
                    // The in-memory state stays authoritative for live calls; the failure is
                    // logged loudly because history and restart recovery are now behind.
                    Ok(Err(e)) => tracing::error!("storing call records failed: {e}"),
                    Err(e) => tracing::error!("storage task failed: {e}"),
                }
            }
            for (session, message) in sends {
                self.deliver(session, message);
            }
            if std::mem::take(&mut self.detached_while_delivering) {
                continue;
            }
            let Some(request) = self.bot_requests.pop_front() else { break };
            self.bot_request_id += 1;
            let id = RequestId(format!("echo-{}", self.bot_request_id));
            self.switchboard.handle_input(crate::now(), Input::Request { session: ECHO_SESSION, id, message: request });
        }
        for d in done {
            let _ = d.send(());
        }
    }

    fn deliver(&mut self, session: SessionId, message: ServerMessage) {
        if session == ECHO_SESSION {
            self.echo_media.on_message(&message);
            let requests = self.bot.on_message(&message);
            self.bot_requests.extend(requests);
            return;
        }
        let Some(outbox) = self.outboxes.get(&session) else { return };
        match outbox.try_send(Outbound::Message(message)) {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Full(_)) => {
                // Dropping the sender ends the connection task, which closes the socket with
                // "too slow"; the detach keeps the switchboard consistent now.
                tracing::warn!(?session, "client is not reading its messages; disconnecting it");
                self.outboxes.remove(&session);
                self.switchboard.handle_input(crate::now(), Input::Detach { session });
                self.detached_while_delivering = true;
            }
            Err(mpsc::error::TrySendError::Closed(_)) => {
                self.outboxes.remove(&session);
            }
        }
    }
}
