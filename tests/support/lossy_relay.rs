//! A user-space lossy UDP relay for network tests (`tc netem` is not available everywhere the
//! tests run). Clients send to [`LossyRelay::addr`] as if it were the upstream server (coturn);
//! the relay forwards each datagram, dropping a seeded random share of them in each direction
//! (a steady share: see `Dropper`), optionally late, through a bottleneck of a set bitrate (a
//! queue of at most [`BOTTLENECK_QUEUE`], tail drop), and can black-hole everything for a while.
//!
//! Each client source address gets its own upstream socket, so the upstream server sees one
//! distinct 5-tuple per client, as it would without the relay (TURN allocations are per
//! 5-tuple).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::time::Duration;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tokio::net::UdpSocket;

/// What the relay does to traffic; change it while it runs.
#[derive(Default)]
pub struct Impairment {
    /// Share of datagrams dropped in each direction, in millionths.
    loss_ppm: AtomicU32,
    /// Drop everything.
    black_hole: AtomicBool,
    /// Extra one-way delay and uniform jitter on top of it, in ms.
    delay_ms: AtomicU32,
    jitter_ms: AtomicU32,
    /// Drop the next datagram (either way) carrying this DTLS handshake message type, once;
    /// 0: none. See [`LossyRelay::drop_dtls_once`].
    drop_dtls_type: AtomicU32,
    /// Datagrams dropped that way.
    pub dtls_dropped: AtomicU64,
    /// The bottleneck's rate in each direction, bit/s; 0: none.
    rate_bps: AtomicU64,
}

/// How long a datagram may wait in the bottleneck's queue before it is dropped instead: a
/// home router's buffer.
pub const BOTTLENECK_QUEUE: Duration = Duration::from_millis(200);

/// Datagrams seen and dropped, per direction.
#[derive(Debug, Default)]
pub struct Counters {
    pub to_server: AtomicU64,
    pub to_server_dropped: AtomicU64,
    pub to_client: AtomicU64,
    pub to_client_dropped: AtomicU64,
}

impl Counters {
    pub fn snapshot(&self) -> (u64, u64, u64, u64) {
        (
            self.to_server.load(Ordering::Relaxed),
            self.to_server_dropped.load(Ordering::Relaxed),
            self.to_client.load(Ordering::Relaxed),
            self.to_client_dropped.load(Ordering::Relaxed),
        )
    }
}

pub struct LossyRelay {
    /// Where clients send: stands in for the upstream server.
    pub addr: SocketAddr,
    impairment: Arc<Impairment>,
    pub counters: Arc<Counters>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl LossyRelay {
    /// Starts relaying from a fresh 127.0.0.1 port to `upstream`; `seed` makes the drops
    /// repeatable.
    pub fn start(upstream: SocketAddr, seed: u64) -> Self {
        let impairment = Arc::new(Impairment::default());
        let counters = Arc::new(Counters::default());
        let (stop, stopped) = tokio::sync::oneshot::channel();
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let (imp, cnt) = (impairment.clone(), counters.clone());
        let thread = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("a tokio runtime");
            runtime.block_on(async move {
                let front = Arc::new(UdpSocket::bind("127.0.0.1:0").await.expect("bind the relay's front socket"));
                ready_tx.send(front.local_addr().expect("a bound address")).expect("the test waits for the address");
                tokio::select! {
                    _ = relay(front, upstream, seed, imp, cnt) => {}
                    _ = stopped => {}
                }
            });
        });
        let addr = ready_rx.recv_timeout(Duration::from_secs(5)).expect("the relay starts");
        Self { addr, impairment, counters, stop: Some(stop), thread: Some(thread) }
    }

    /// Drops `fraction` (0–1) of the datagrams, independently in each direction.
    pub fn set_loss(&self, fraction: f64) {
        self.impairment.loss_ppm.store((fraction.clamp(0.0, 1.0) * 1e6) as u32, Ordering::Relaxed);
    }

    /// Drops the next datagram, in either direction, that carries a DTLS handshake message of
    /// type `handshake_type` (RFC 5246 §7.4: 14 ServerHelloDone ends flight 4, 16
    /// ClientKeyExchange starts flight 5), inside TURN ChannelData or a Send/Data indication:
    /// losing one chosen handshake flight, whatever the seed.
    pub fn drop_dtls_once(&self, handshake_type: u8) {
        self.impairment.drop_dtls_type.store(u32::from(handshake_type), Ordering::Relaxed);
    }

    /// How many datagrams [`LossyRelay::drop_dtls_once`] dropped.
    pub fn dtls_dropped(&self) -> u64 {
        self.impairment.dtls_dropped.load(Ordering::Relaxed)
    }

    /// A bottleneck of `bps` bit/s in each direction (0: none), as an access link would be.
    pub fn set_rate(&self, bps: u64) {
        self.impairment.rate_bps.store(bps, Ordering::Relaxed);
    }

    pub fn set_black_hole(&self, on: bool) {
        self.impairment.black_hole.store(on, Ordering::Relaxed);
    }

    /// Delays each datagram by `delay` plus a uniform random share of `jitter` (so datagrams
    /// may be reordered, as on a real network).
    pub fn set_delay(&self, delay: Duration, jitter: Duration) {
        self.impairment.delay_ms.store(delay.as_millis() as u32, Ordering::Relaxed);
        self.impairment.jitter_ms.store(jitter.as_millis() as u32, Ordering::Relaxed);
    }
}

impl Drop for LossyRelay {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Picks the datagrams to drop in one direction: random, yet the share dropped stays at the
/// set loss even over a short call. Independent coin flips would give a test of a thousand
/// datagrams a realized loss anywhere from 3 % to 7 % for 5 %, fixed by the seed; here each
/// datagram adds the loss rate to a credit and one is dropped whenever the credit passes a
/// random threshold, so the gaps between drops are random (from back to back to about twice
/// the mean gap) but their count follows the rate.
struct Dropper {
    rng: StdRng,
    credit: f64,
    threshold: f64,
    /// When the bottleneck has sent everything queued so far.
    link_free_at: Option<std::time::Instant>,
}

impl Dropper {
    fn new(seed: u64) -> Self {
        let mut rng = StdRng::seed_from_u64(seed);
        let threshold = rng.random::<f64>();
        Self { rng, credit: 0.0, threshold, link_free_at: None }
    }

    /// Whether to pass this datagram, and after how long.
    fn verdict(&mut self, impairment: &Impairment, datagram: &[u8]) -> Option<Duration> {
        if impairment.black_hole.load(Ordering::Relaxed) {
            return None;
        }
        let wanted = impairment.drop_dtls_type.load(Ordering::Relaxed);
        if wanted != 0
            && dtls_handshake_types(datagram).contains(&(wanted as u8))
            && impairment.drop_dtls_type.compare_exchange(wanted, 0, Ordering::AcqRel, Ordering::Relaxed).is_ok()
        {
            impairment.dtls_dropped.fetch_add(1, Ordering::Relaxed);
            return None;
        }
        self.credit += f64::from(impairment.loss_ppm.load(Ordering::Relaxed)) / 1e6;
        if self.credit >= self.threshold {
            self.credit -= 1.0;
            self.threshold = self.rng.random::<f64>();
            return None;
        }
        let mut queued = Duration::ZERO;
        let rate = impairment.rate_bps.load(Ordering::Relaxed);
        if rate > 0 {
            let now = std::time::Instant::now();
            let start = self.link_free_at.filter(|&free| free > now).unwrap_or(now);
            if start - now > BOTTLENECK_QUEUE {
                return None; // the queue is full: tail drop
            }
            let sending = Duration::from_secs_f64(datagram.len() as f64 * 8.0 / rate as f64);
            self.link_free_at = Some(start + sending);
            queued = start + sending - now;
        }
        let delay = impairment.delay_ms.load(Ordering::Relaxed);
        let jitter = impairment.jitter_ms.load(Ordering::Relaxed);
        let extra = if jitter == 0 { 0 } else { self.rng.random_range(0..=jitter) };
        Some(queued + Duration::from_millis(u64::from(delay + extra)))
    }
}

/// The handshake message types of the unencrypted (epoch 0) DTLS handshake records in a
/// client↔TURN datagram: the payload of ChannelData (RFC 8656 §12.4) or of a Send/Data
/// indication's DATA attribute (§11). Empty for anything else.
fn dtls_handshake_types(datagram: &[u8]) -> Vec<u8> {
    let payload: &[u8] = match datagram.first() {
        Some(0x40..=0x7f) if datagram.len() >= 4 => {
            let length = usize::from(u16::from_be_bytes([datagram[2], datagram[3]]));
            &datagram[4..(4 + length).min(datagram.len())]
        }
        Some(0 | 1) if datagram.len() >= 20 => {
            let mut at = 20;
            let mut data: &[u8] = &[];
            while at + 4 <= datagram.len() {
                let kind = u16::from_be_bytes([datagram[at], datagram[at + 1]]);
                let length = usize::from(u16::from_be_bytes([datagram[at + 2], datagram[at + 3]]));
                if kind == 0x0013 {
                    data = &datagram[at + 4..(at + 4 + length).min(datagram.len())];
                    break;
                }
                at += 4 + length.next_multiple_of(4);
            }
            data
        }
        _ => &[],
    };
    // DTLS records: type(1) version(2) epoch(2) sequence(6) length(2), then the fragment; a
    // handshake fragment starts with its message type.
    let mut types = Vec::new();
    let mut at = 0;
    while at + 13 <= payload.len() {
        let epoch = u16::from_be_bytes([payload[at + 3], payload[at + 4]]);
        let length = usize::from(u16::from_be_bytes([payload[at + 11], payload[at + 12]]));
        if payload[at] == 22 && epoch == 0 && at + 13 < payload.len() {
            types.push(payload[at + 13]);
        }
        at += 13 + length;
    }
    types
}

async fn send_later(socket: Arc<UdpSocket>, datagram: Vec<u8>, to: SocketAddr, after: Duration) {
    if after.is_zero() {
        let _ = socket.send_to(&datagram, to).await;
    } else {
        tokio::spawn(async move {
            tokio::time::sleep(after).await;
            let _ = socket.send_to(&datagram, to).await;
        });
    }
}

async fn relay(
    front: Arc<UdpSocket>,
    upstream: SocketAddr,
    seed: u64,
    impairment: Arc<Impairment>,
    counters: Arc<Counters>,
) {
    let mut dropper = Dropper::new(seed);
    let mut upstream_sockets: HashMap<SocketAddr, Arc<UdpSocket>> = HashMap::new();
    let mut buffer = vec![0u8; 65_536];
    loop {
        let Ok((n, client)) = front.recv_from(&mut buffer).await else { continue };
        let socket = match upstream_sockets.get(&client) {
            Some(s) => s.clone(),
            None => {
                let Ok(socket) = UdpSocket::bind("127.0.0.1:0").await else { continue };
                let socket = Arc::new(socket);
                upstream_sockets.insert(client, socket.clone());
                // Replies from upstream go back to this client, from the front address.
                let seed = seed ^ u64::from(client.port()).rotate_left(32);
                tokio::spawn(back_to_client(
                    socket.clone(),
                    front.clone(),
                    client,
                    seed,
                    impairment.clone(),
                    counters.clone(),
                ));
                socket
            }
        };
        counters.to_server.fetch_add(1, Ordering::Relaxed);
        match dropper.verdict(&impairment, &buffer[..n]) {
            Some(after) => send_later(socket, buffer[..n].to_vec(), upstream, after).await,
            None => {
                counters.to_server_dropped.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

async fn back_to_client(
    upstream: Arc<UdpSocket>,
    front: Arc<UdpSocket>,
    client: SocketAddr,
    seed: u64,
    impairment: Arc<Impairment>,
    counters: Arc<Counters>,
) {
    let mut dropper = Dropper::new(seed);
    let mut buffer = vec![0u8; 65_536];
    loop {
        let Ok((n, _)) = upstream.recv_from(&mut buffer).await else { continue };
        counters.to_client.fetch_add(1, Ordering::Relaxed);
        match dropper.verdict(&impairment, &buffer[..n]) {
            Some(after) => send_later(front.clone(), buffer[..n].to_vec(), client, after).await,
            None => {
                counters.to_client_dropped.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}
