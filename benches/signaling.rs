//! Signaling benchmark: `cargo bench --bench signaling` (docs/benchmarks.md has the figures).
//!
//! It starts real `calldock serve` processes on 127.0.0.1 and measures, printing figures and
//! never asserting on them:
//!
//! 1. **Call setup round trip**: two signed-in clients run the whole exchange of a 1:1 call
//!    (invite, ringing, accept, SDP offer and answer, hangup: twelve messages) a few hundred
//!    times, once against a server with an SQLite file (fsync on every change, the real
//!    configuration) and once against an in-memory server. The difference is the cost of
//!    durability.
//! 2. **Concurrent sessions**: ramps authenticated WebSocket sessions in steps, and at each step
//!    measures `ping` round trips (answered by the connection task) and the one-way delay of `ice`
//!    messages relayed through the switchboard between random pairs in answered calls, while every
//!    other session stays connected and idle.
//!
//! One process may hold at most `RLIMIT_NOFILE` descriptors, so the client side is spread over
//! worker processes: the bench re-executes itself with `CALLDOCK_BENCH_WORKER` set, and each
//! worker holds at most [`WORKER_CAP`] sessions. The server, a single process, is bounded by its
//! own descriptor limit; the bench stops a little below it and says so.
//!
//! Arguments after `--` pick parts: `setup`, `sessions` (default both). Environment knobs:
//! `CALLDOCK_BENCH_CALLS` (calls per setup run, default 300), `CALLDOCK_BENCH_MAX_SESSIONS`
//! (cap on sessions), `CALLDOCK_BENCH_PAIRS` (relay pairs per step, default 200).

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use calldock_protocol::{CallId, ClientMessage, EndReason, Media, SdpKind, ServerMessage};

type Ws = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// Asks the kernel to acknowledge the next data at once instead of delaying the ACK (up to
/// 40 ms). Linux clears it again by itself, so it is re-armed after every read.
fn quickack(ws: &Ws) {
    if let tokio_tungstenite::MaybeTlsStream::Plain(tcp) = ws.get_ref() {
        let _ = tcp.set_quickack(true);
    }
}

/// Set in the environment of the worker processes the bench starts.
const WORKER_ENV: &str = "CALLDOCK_BENCH_WORKER";
/// Most sessions one worker process holds.
const WORKER_CAP: usize = 5000;
/// Descriptors left free in the server process below its limit (listener, database, epoll,
/// REST connections still closing).
const SERVER_FD_MARGIN: usize = 40;
/// How long any single expected message may take before the bench gives up on it.
const WAIT: Duration = Duration::from_secs(10);

fn main() {
    if std::env::var_os(WORKER_ENV).is_some() {
        worker::main();
        return;
    }
    let args: Vec<String> = std::env::args().skip(1).filter(|a| !a.starts_with("--")).collect();
    let want = |part: &str| args.is_empty() || args.iter().any(|a| a == part);
    let started = Instant::now();
    let mut summary = Summary::default();
    println!("calldock signaling benchmark");
    println!(
        "machine: {} cores; RLIMIT_NOFILE {}; server binary {}",
        std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0),
        nofile_limit(std::process::id()).map(|n| n.to_string()).unwrap_or_else(|| "?".into()),
        env!("CARGO_BIN_EXE_calldock")
    );
    if want("setup") {
        summary.setup = Some(setup::run(env_usize("CALLDOCK_BENCH_CALLS", 300)));
    }
    if want("sessions") {
        summary.sessions = Some(sessions::run());
    }
    summary.print(started.elapsed());
}

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// Nanoseconds since the Unix epoch: the same clock in every process on this machine.
fn now_nanos() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_nanos() as u64).unwrap_or(0)
}

/// Nearest-rank percentile of sorted samples.
fn pct(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

#[derive(Clone, Copy, Debug, Default)]
struct Dist {
    n: usize,
    p50: f64,
    p90: f64,
    p99: f64,
    max: f64,
}

impl Dist {
    fn of(mut samples: Vec<f64>) -> Self {
        samples.sort_by(f64::total_cmp);
        Self {
            n: samples.len(),
            p50: pct(&samples, 50.0),
            p90: pct(&samples, 90.0),
            p99: pct(&samples, 99.0),
            max: samples.last().copied().unwrap_or(f64::NAN),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The server process and what /proc says about it.

struct Server {
    child: Child,
    base: String,
    pid: u32,
}

impl Server {
    fn start(db: Option<&Path>, extra: &[&str], log: &Path) -> Self {
        let mut command = Command::new(env!("CARGO_BIN_EXE_calldock"));
        command.env("CALLDOCK_LOG", "warn").args(["serve", "--listen", "127.0.0.1:0"]).args(extra);
        if let Some(db) = db {
            command.arg("--db").arg(db);
        }
        let log = std::fs::File::create(log).expect("server log file");
        let mut child =
            command.stdout(Stdio::piped()).stderr(Stdio::from(log)).spawn().expect("the calldock binary starts");
        let mut line = String::new();
        BufReader::new(child.stdout.take().expect("stdout is piped"))
            .read_line(&mut line)
            .expect("server prints its address");
        let base = line.trim().rsplit(' ').next().unwrap_or_default().to_owned();
        assert!(base.starts_with("http://127.0.0.1:"), "unexpected first line from the server: {line:?}");
        let pid = child.id();
        Self { child, base, pid }
    }

    fn rss_kib(&self) -> u64 {
        proc_status_kib(self.pid, "VmRSS:")
    }

    fn fds(&self) -> usize {
        std::fs::read_dir(format!("/proc/{}/fd", self.pid)).map(|d| d.count()).unwrap_or(0)
    }

    fn cpu_secs(&self) -> f64 {
        cpu_secs(self.pid)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn proc_status_kib(pid: u32, key: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix(key))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// User plus system CPU time of a process, in seconds.
fn cpu_secs(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let after = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let fields: Vec<&str> = after.split_whitespace().collect();
    // Fields 14 and 15 of stat; `after` starts at field 3.
    let ticks: f64 = [11, 12].iter().filter_map(|&i| fields.get(i)?.parse::<f64>().ok()).sum();
    ticks / 100.0
}

fn nofile_limit(pid: u32) -> Option<usize> {
    let limits = std::fs::read_to_string(format!("/proc/{pid}/limits")).ok()?;
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    line.split_whitespace().nth(3)?.parse().ok()
}

// ---------------------------------------------------------------------------------------------
// Part 1: call setup round trip.

mod setup {
    use std::collections::VecDeque;

    use calldock_protocol::{ClientFrame, RequestId};
    use futures_util::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message;

    use super::*;

    /// How the client's TCP socket is set up.
    #[derive(Clone, Copy, PartialEq, Eq)]
    pub enum Tcp {
        /// As the engine's client and the conformance client connect: Nagle on, kernel defaults.
        Stock,
        /// TCP_NODELAY, and TCP_QUICKACK re-armed after every read so the client acknowledges at
        /// once and the server's Nagle (it does not set TCP_NODELAY) never waits for a delayed ACK.
        Tuned,
    }

    pub struct Run {
        pub db: Result<Dist, String>,
        pub memory: Result<Dist, String>,
    }

    pub struct Report {
        pub calls: usize,
        pub stock: Run,
        pub tuned: Run,
    }

    pub fn run(calls: usize) -> Report {
        println!();
        println!("== 1. call setup round trip (12 messages: invite → ended), {calls} calls per run ==");
        let dir = tempfile::tempdir().expect("temp dir");
        let mut runs = Vec::new();
        for (tcp, title) in [
            (Tcp::Tuned, "clients with TCP_NODELAY + TCP_QUICKACK (the server's own cost)"),
            (Tcp::Stock, "clients with stock sockets (Nagle on, as the engine's client connects)"),
        ] {
            println!("  {title}:");
            let db_path = dir.path().join(format!("calldock-{}.db", runs.len()));
            let run = Run {
                db: measure(Some(&db_path), calls, dir.path(), tcp),
                memory: measure(None, calls, dir.path(), tcp),
            };
            show("--db (fsync, real)", &run.db);
            show("in memory", &run.memory);
            if let (Ok(d), Ok(m)) = (&run.db, &run.memory) {
                println!(
                    "    {:<22} p50 {:>7.1}×     p90 {:>7.1}×     p99 {:>7.1}×     max {:>7.1}×",
                    "ratio db/memory",
                    d.p50 / m.p50,
                    d.p90 / m.p90,
                    d.p99 / m.p99,
                    d.max / m.max
                );
            }
            runs.push(run);
        }
        println!("  (database files in {}, {} filesystem)", dir.path().display(), fs_type(dir.path()));
        let stock = runs.pop().expect("two runs");
        let tuned = runs.pop().expect("two runs");
        Report { calls, stock, tuned }
    }

    fn show(name: &str, r: &Result<Dist, String>) {
        match r {
            Ok(d) => println!(
                "    {name:<22} p50 {:>7.3} ms  p90 {:>7.3} ms  p99 {:>7.3} ms  max {:>7.3} ms  (n={})",
                d.p50, d.p90, d.p99, d.max, d.n
            ),
            Err(e) => println!("    {name:<22} FAILED: {e}"),
        }
    }

    fn measure(db: Option<&Path>, calls: usize, dir: &Path, tcp: Tcp) -> Result<Dist, String> {
        let label = if db.is_some() { "db" } else { "memory" };
        // The per-connection limit (100 requests/s) would throttle two clients that do nothing
        // but set up calls back to back; raise it so the server, not the limiter, is measured.
        let server = Server::start(db, &["--rate-per-second", "100000"], &dir.join(format!("server-{label}.log")));
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
        runtime.block_on(async {
            let mut alice = Peer::connect(&server.base, "alice", tcp).await.map_err(|e| format!("{e:#}"))?;
            let mut bob = Peer::connect(&server.base, "bob", tcp).await.map_err(|e| format!("{e:#}"))?;
            for _ in 0..20 {
                one_call(&mut alice, &mut bob).await.map_err(|e| format!("warm-up: {e:#}"))?;
            }
            let mut samples = Vec::with_capacity(calls);
            for i in 0..calls {
                let took = one_call(&mut alice, &mut bob).await.map_err(|e| format!("call {i}: {e:#}"))?;
                samples.push(took.as_secs_f64() * 1000.0);
            }
            Ok(Dist::of(samples))
        })
    }

    /// A signed-in client, like the conformance crate's `RawClient` but with a choice of socket
    /// options: replies are matched by `re`, events that arrive meanwhile wait in a backlog.
    struct Peer {
        ws: Ws,
        tcp: Tcp,
        next_id: u64,
        backlog: VecDeque<ServerMessage>,
        user: String,
    }

    impl Peer {
        async fn connect(base: &str, user: &str, tcp: Tcp) -> anyhow::Result<Self> {
            let session = calldock_conformance::raw::login(base, user, &format!("{user}-bench")).await?;
            let url = format!("{}/v1/ws", base.replacen("http://", "ws://", 1));
            let (ws, _) = tokio_tungstenite::connect_async_with_config(&url, None, tcp == Tcp::Tuned).await?;
            let mut peer = Self { ws, tcp, next_id: 0, backlog: VecDeque::new(), user: user.into() };
            peer.arm();
            let hello =
                ClientMessage::Hello { protocol: calldock_protocol::PROTOCOL_VERSION, agent: "calldock-bench".into() };
            expect_reply("hello", peer.request(hello).await?)?;
            expect_reply("auth", peer.request(ClientMessage::Auth { token: session.token }).await?)?;
            Ok(peer)
        }

        fn arm(&self) {
            if self.tcp == Tcp::Tuned {
                quickack(&self.ws);
            }
        }

        async fn read(&mut self) -> anyhow::Result<ServerMessage> {
            loop {
                let frame = tokio::time::timeout(WAIT, self.ws.next())
                    .await
                    .map_err(|_| anyhow::anyhow!("{}: nothing from the server within {WAIT:?}", self.user))?;
                self.arm();
                match frame {
                    Some(Ok(Message::Text(t))) => return Ok(serde_json::from_str(t.as_str())?),
                    Some(Ok(Message::Close(c))) => anyhow::bail!("{}: closed: {c:?}", self.user),
                    Some(Ok(_)) => {}
                    Some(Err(e)) => return Err(e.into()),
                    None => anyhow::bail!("{}: connection ended", self.user),
                }
            }
        }

        async fn request(&mut self, message: ClientMessage) -> anyhow::Result<ServerMessage> {
            self.next_id += 1;
            let id = RequestId(format!("q{}", self.next_id));
            let text = serde_json::to_string(&ClientFrame { id: id.clone(), message })?;
            self.ws.send(Message::Text(text.into())).await?;
            loop {
                let m = self.read().await?;
                if m.reply_to() == Some(&id) {
                    return Ok(m);
                }
                self.backlog.push_back(m);
            }
        }

        /// Waits for the first event `pick` accepts, dropping others.
        async fn event_where(&mut self, pick: impl Fn(&ServerMessage) -> bool) -> anyhow::Result<()> {
            while let Some(m) = self.backlog.pop_front() {
                if pick(&m) {
                    return Ok(());
                }
            }
            loop {
                if pick(&self.read().await?) {
                    return Ok(());
                }
            }
        }
    }

    fn expect_reply(what: &str, reply: ServerMessage) -> anyhow::Result<ServerMessage> {
        if let ServerMessage::Error { code, message, .. } = &reply {
            anyhow::bail!("{what} refused: {code}: {message}");
        }
        Ok(reply)
    }

    /// One whole call; returns how long the exchange took.
    async fn one_call(alice: &mut Peer, bob: &mut Peer) -> anyhow::Result<Duration> {
        let call_id = CallId(format!("{:032x}", rand::random::<u128>()));
        let id = call_id.clone();
        let start = Instant::now();
        let invite = ClientMessage::CallInvite {
            call_id: call_id.clone(),
            to: "bob".into(),
            media: Media::Audio,
            conversation: None,
        };
        expect_reply("call.invite", alice.request(invite).await?)?;
        bob.event_where(|m| matches!(m, ServerMessage::CallInvite { call } if call.call_id == id)).await?;
        expect_reply("call.ringing", bob.request(ClientMessage::CallRinging { call_id: call_id.clone() }).await?)?;
        alice.event_where(|m| matches!(m, ServerMessage::CallRinging { call_id, .. } if *call_id == id)).await?;
        let accept = ClientMessage::CallAccept { call_id: call_id.clone(), media: Media::Audio };
        expect_reply("call.accept", bob.request(accept).await?)?;
        alice.event_where(|m| matches!(m, ServerMessage::CallAccepted { call_id, .. } if *call_id == id)).await?;
        let offer = ClientMessage::Sdp { call_id: call_id.clone(), to: None, kind: SdpKind::Offer, sdp: SDP.into() };
        expect_reply("sdp offer", alice.request(offer).await?)?;
        bob.event_where(|m| matches!(m, ServerMessage::Sdp { call_id, kind: SdpKind::Offer, .. } if *call_id == id))
            .await?;
        let answer = ClientMessage::Sdp { call_id: call_id.clone(), to: None, kind: SdpKind::Answer, sdp: SDP.into() };
        expect_reply("sdp answer", bob.request(answer).await?)?;
        alice
            .event_where(|m| matches!(m, ServerMessage::Sdp { call_id, kind: SdpKind::Answer, .. } if *call_id == id))
            .await?;
        let end = ClientMessage::CallEnd { call_id: call_id.clone(), failure: None, reconnect_timeout: false };
        expect_reply("call.end", alice.request(end).await?)?;
        bob.event_where(
            |m| matches!(m, ServerMessage::CallEnded { call_id, reason: EndReason::Hangup, .. } if *call_id == id),
        )
        .await?;
        Ok(start.elapsed())
    }

    /// A plausible audio offer, about the size real ones have (~1 KiB).
    const SDP: &str = "v=0\r\no=- 4611731400430051336 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n\
a=group:BUNDLE 0\r\na=msid-semantic: WMS\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111 63 9 0 8 13 110 126\r\n\
c=IN IP4 0.0.0.0\r\na=rtcp:9 IN IP4 0.0.0.0\r\na=ice-ufrag:bench\r\na=ice-pwd:benchbenchbenchbenchbench\r\n\
a=ice-options:trickle\r\na=fingerprint:sha-256 00:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD:EE:FF:00:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD:EE:FF\r\n\
a=setup:actpass\r\na=mid:0\r\na=sendrecv\r\na=rtcp-mux\r\na=rtpmap:111 opus/48000/2\r\n\
a=rtcp-fb:111 transport-cc\r\na=fmtp:111 minptime=10;useinbandfec=1\r\na=rtpmap:63 red/48000/2\r\n\
a=rtpmap:9 G722/8000\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:8 PCMA/8000\r\na=rtpmap:13 CN/8000\r\n\
a=rtpmap:110 telephone-event/48000\r\na=rtpmap:126 telephone-event/8000\r\na=ssrc:1001 cname:bench\r\n";

    fn fs_type(dir: &Path) -> String {
        // The longest mount point that contains `dir`.
        let mounts = std::fs::read_to_string("/proc/mounts").unwrap_or_default();
        let dir = dir.canonicalize().unwrap_or_else(|_| dir.to_path_buf());
        mounts
            .lines()
            .filter_map(|l| {
                let mut f = l.split_whitespace();
                let (_dev, point, kind) = (f.next()?, f.next()?, f.next()?);
                dir.starts_with(point).then(|| (point.len(), kind.to_owned()))
            })
            .max()
            .map(|(_, k)| k)
            .unwrap_or_else(|| "unknown".into())
    }
}

// ---------------------------------------------------------------------------------------------
// Part 2: concurrent sessions, driven through worker processes.

/// A worker process and the line protocol to it: one command line in, `key value…` lines out,
/// ending with `end`.
struct Worker {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
    held: usize,
}

impl Worker {
    fn spawn(index: usize, base: &str) -> Self {
        let mut child = Command::new(std::env::current_exe().expect("own path"))
            .env(WORKER_ENV, index.to_string())
            .env("CALLDOCK_BENCH_BASE", base)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("worker starts");
        let stdin = child.stdin.take().expect("piped");
        let stdout = BufReader::new(child.stdout.take().expect("piped"));
        Self { child, stdin, stdout, held: 0 }
    }

    fn send(&mut self, command: &str) {
        let _ = writeln!(self.stdin, "{command}");
        let _ = self.stdin.flush();
    }

    fn reply(&mut self) -> HashMap<String, String> {
        let mut out = HashMap::new();
        loop {
            let mut line = String::new();
            match self.stdout.read_line(&mut line) {
                Ok(0) | Err(_) => {
                    out.insert("dead".into(), "1".into());
                    return out;
                }
                Ok(_) => {}
            }
            let line = line.trim_end();
            if line == "end" {
                return out;
            }
            let (k, v) = line.split_once(' ').unwrap_or((line, ""));
            out.insert(k.to_owned(), v.to_owned());
        }
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn samples(reply: &HashMap<String, String>, key: &str) -> Vec<f64> {
    reply.get(key).map(|v| v.split(',').filter_map(|s| s.parse::<f64>().ok()).collect()).unwrap_or_default()
}

fn num(reply: &HashMap<String, String>, key: &str) -> f64 {
    reply.get(key).and_then(|v| v.parse().ok()).unwrap_or(0.0)
}

mod sessions {
    use super::*;

    pub struct Step {
        pub target: usize,
        pub held: usize,
        pub failed: usize,
        pub ramp_secs: f64,
        pub rss_mib: f64,
        pub kib_per_session: f64,
        pub server_fds: usize,
        pub ramp_cpu_secs: f64,
        pub ping: Dist,
        /// Relay with clients that re-arm TCP_QUICKACK.
        pub tuned: RelayRun,
        /// Relay with the kernel's delayed ACKs.
        pub stock: RelayRun,
    }

    #[derive(Default)]
    pub struct RelayRun {
        pub relay: Dist,
        pub setup: Dist,
        pub lost: usize,
        pub pairs: usize,
    }

    /// Every worker puts `per` pairs into calls and trickles ICE between them, all at once.
    fn relay_all(workers: &mut [Worker], per: usize, quickack: bool) -> RelayRun {
        for w in workers.iter_mut() {
            w.send(&format!("relay {per} 10 100 {}", u8::from(quickack)));
        }
        let (mut relay, mut setup, mut lost, mut pairs) = (Vec::new(), Vec::new(), 0usize, 0usize);
        for w in workers.iter_mut() {
            let r = w.reply();
            relay.extend(samples(&r, "samples"));
            setup.extend(samples(&r, "setup"));
            lost += num(&r, "lost") as usize;
            pairs += num(&r, "pairs") as usize;
            if let Some(e) = r.get("error") {
                println!("  worker error: {e}");
            }
        }
        RelayRun { relay: Dist::of(relay), setup: Dist::of(setup), lost, pairs }
    }

    pub struct Teardown {
        pub closed: usize,
        pub close_secs: f64,
        pub cpu_secs: f64,
        pub busy_secs: f64,
        pub setup: Dist,
        pub relay: Dist,
    }

    pub struct Report {
        pub fd_limit: usize,
        pub max_target: usize,
        pub baseline_rss_mib: f64,
        pub steps: Vec<Step>,
        pub teardown: Option<Teardown>,
        pub seconds: f64,
    }

    pub fn run() -> Report {
        let started = Instant::now();
        let pairs_total = env_usize("CALLDOCK_BENCH_PAIRS", 200);
        println!();
        println!("== 2. concurrent sessions (server with --db, default rate limits) ==");
        let dir = tempfile::tempdir().expect("temp dir");
        let server = Server::start(Some(&dir.path().join("calldock.db")), &[], &dir.path().join("server.log"));
        std::thread::sleep(Duration::from_millis(200));
        let fd_limit = nofile_limit(server.pid).unwrap_or(1024);
        let baseline_fds = server.fds();
        let by_fds = fd_limit.saturating_sub(baseline_fds + SERVER_FD_MARGIN);
        let max_target = env_usize("CALLDOCK_BENCH_MAX_SESSIONS", by_fds).min(by_fds);
        let baseline_rss = server.rss_kib();
        println!(
            "  server pid {}: RLIMIT_NOFILE {fd_limit}, {baseline_fds} descriptors open at start, RSS {:.1} MiB; \
             aiming for {max_target} sessions ({SERVER_FD_MARGIN} descriptors spare)",
            server.pid,
            baseline_rss as f64 / 1024.0
        );
        let n_workers = max_target.div_ceil(WORKER_CAP).max(1);
        let mut workers: Vec<Worker> = (0..n_workers).map(|i| Worker::spawn(i, &server.base)).collect();
        let mut targets: Vec<usize> = [1000, 5000, 10000, 15000].into_iter().filter(|&t| t < max_target).collect();
        targets.push(max_target);
        println!(
            "  {n_workers} client worker processes (≤ {WORKER_CAP} sessions each); per step: {pairs_total} random pairs in \
             answered calls trickle 10 ICE candidates each way at 100 ms spacing; 200 idle sessions send 5 pings"
        );
        println!(
            "  {:>7} {:>7} {:>7} {:>8} {:>8} {:>8} {:>8} {:>8} {:>9} {:>9} {:>9} {:>5} {:>9} {:>9}",
            "target",
            "held",
            "ramp s",
            "ramp/s",
            "RSS MiB",
            "KiB/ses",
            "ping p50",
            "ping p99",
            "relay p50",
            "relay p99",
            "relay max",
            "lost",
            "stock p50",
            "stock p99"
        );
        println!(
            "  (ms; relay = one-way delay of an ICE candidate through the server with QUICKACK clients; \
             stock = the same with the kernel's delayed ACKs)"
        );
        let mut steps = Vec::new();
        for &target in &targets {
            if started.elapsed() > Duration::from_secs(200) {
                println!("  (stopping the ramp: the time budget is spent)");
                break;
            }
            let cpu0 = server.cpu_secs();
            let t0 = Instant::now();
            // Spread the sessions evenly over the workers.
            for (i, w) in workers.iter_mut().enumerate() {
                let share = target / n_workers + usize::from(i < target % n_workers);
                w.send(&format!("connect {share}"));
            }
            let mut failed = 0;
            let mut dead = false;
            let (mut login_secs, mut ws_secs) = (0.0f64, 0.0f64);
            for w in &mut workers {
                let r = w.reply();
                login_secs = login_secs.max(num(&r, "login_secs"));
                ws_secs = ws_secs.max(num(&r, "ws_secs"));
                dead |= r.contains_key("dead");
                w.held = num(&r, "held") as usize;
                failed += num(&r, "failed") as usize;
                if let Some(e) = r.get("error") {
                    println!("  worker error: {e}");
                }
            }
            let ramp_secs = t0.elapsed().as_secs_f64();
            let ramp_cpu_secs = server.cpu_secs() - cpu0;
            let held: usize = workers.iter().map(|w| w.held).sum();
            std::thread::sleep(Duration::from_millis(500));
            let rss = server.rss_kib();
            let server_fds = server.fds();

            // Ping round trips from idle sessions: answered by the connection tasks.
            let per = 200usize.div_ceil(n_workers);
            for w in &mut workers {
                w.send(&format!("ping {per} 5 100"));
            }
            let mut ping = Vec::new();
            for w in &mut workers {
                ping.extend(samples(&w.reply(), "samples"));
            }
            // Relay: pairs in answered calls, through the switchboard actor. First with the
            // kernel's delayed ACKs (what clients see today), then with QUICKACK clients.
            let per = pairs_total.div_ceil(n_workers);
            let stock = relay_all(&mut workers, per, false);
            let tuned = relay_all(&mut workers, per, true);
            let step = Step {
                target,
                held,
                failed,
                ramp_secs,
                rss_mib: rss as f64 / 1024.0,
                kib_per_session: (rss.saturating_sub(baseline_rss)) as f64 / held.max(1) as f64,
                server_fds,
                ramp_cpu_secs,
                ping: Dist::of(ping),
                tuned,
                stock,
            };
            let added = held.saturating_sub(steps.last().map(|s: &Step| s.held).unwrap_or(0));
            println!(
                "  {:>7} {:>7} {:>7.1} {:>8.0} {:>8.1} {:>8.1} {:>8.2} {:>8.2} {:>9.2} {:>9.2} {:>9.2} {:>5} {:>9.2} {:>9.2}",
                step.target,
                step.held,
                step.ramp_secs,
                added as f64 / step.ramp_secs.max(1e-9),
                step.rss_mib,
                step.kib_per_session,
                step.ping.p50,
                step.ping.p99,
                step.tuned.relay.p50,
                step.tuned.relay.p99,
                step.tuned.relay.max,
                step.tuned.lost + step.stock.lost,
                step.stock.relay.p50,
                step.stock.relay.p99,
            );
            println!(
                "  {:>7} (ramp: logins {:.1} s then WebSockets {:.1} s, failed {}, server fds {}, server CPU {:.1} s; \
                 {}+{} pairs, their simultaneous call setups invite→accepted p50 {:.1} ms p99 {:.1} ms, with stock \
                 ACKs p50 {:.1} ms p99 {:.1} ms)",
                "",
                login_secs,
                ws_secs,
                step.failed,
                step.server_fds,
                step.ramp_cpu_secs,
                step.tuned.pairs,
                step.stock.pairs,
                step.tuned.setup.p50,
                step.tuned.setup.p99,
                step.stock.setup.p50,
                step.stock.setup.p99
            );
            let stop = dead || held + 50 < target;
            steps.push(step);
            if stop {
                println!("  (stopping the ramp: {} of {target} sessions held)", held);
                break;
            }
        }

        // Teardown: one worker drops all its sessions at once while another sets up calls.
        let teardown = (n_workers >= 2 && workers[0].held > 0).then(|| {
            let cpu0 = server.cpu_secs();
            let t0 = Instant::now();
            workers[0].send("close");
            workers[1].send("relay 25 10 100 1");
            let closed = num(&workers[0].reply(), "closed") as usize;
            let close_secs = t0.elapsed().as_secs_f64();
            let r = workers[1].reply();
            // The server is done when its CPU time stops growing.
            let mut last = server.cpu_secs();
            let mut busy_until = t0.elapsed();
            for _ in 0..120 {
                std::thread::sleep(Duration::from_millis(250));
                let now = server.cpu_secs();
                if now - last < 0.02 {
                    break;
                }
                last = now;
                busy_until = t0.elapsed();
            }
            Teardown {
                closed,
                close_secs,
                cpu_secs: server.cpu_secs() - cpu0,
                busy_secs: busy_until.as_secs_f64(),
                setup: Dist::of(samples(&r, "setup")),
                relay: Dist::of(samples(&r, "samples")),
            }
        });
        if let Some(t) = &teardown {
            println!(
                "  teardown: {} sessions closed at once (client side done in {:.1} s); server busy ~{:.1} s, {:.1} s \
                 CPU; meanwhile call setup p50 {:.1} ms max {:.1} ms, relay p50 {:.2} ms p99 {:.2} ms",
                t.closed, t.close_secs, t.busy_secs, t.cpu_secs, t.setup.p50, t.setup.max, t.relay.p50, t.relay.p99
            );
        }
        // Stop the server first: otherwise it would detach every session as the workers exit.
        drop(server);
        drop(workers);
        Report {
            fd_limit,
            max_target,
            baseline_rss_mib: baseline_rss as f64 / 1024.0,
            steps,
            teardown,
            seconds: started.elapsed().as_secs_f64(),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The summary to paste into an issue.

#[derive(Default)]
struct Summary {
    setup: Option<setup::Report>,
    sessions: Option<sessions::Report>,
}

impl Summary {
    fn print(&self, took: Duration) {
        println!();
        println!("==================== summary (cargo bench --bench signaling) ====================");
        println!(
            "machine: {} cores, loopback 127.0.0.1, RLIMIT_NOFILE {} per process; bench took {:.0} s",
            std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0),
            nofile_limit(std::process::id()).map(|n| n.to_string()).unwrap_or_else(|| "?".into()),
            took.as_secs_f64()
        );
        if let Some(s) = &self.setup {
            println!(
                "call setup round trip (invite→ringing→accept→offer→answer→end, 12 messages, {} calls), ms:",
                s.calls
            );
            println!("  {:<32} {:>8} {:>8} {:>8} {:>8}", "", "p50", "p90", "p99", "max");
            for (label, run) in
                [("NODELAY+QUICKACK clients", &s.tuned), ("stock clients (Nagle, delayed ACK)", &s.stock)]
            {
                match (&run.db, &run.memory) {
                    (Ok(d), Ok(m)) => {
                        let row = |name: &str, d: &Dist| {
                            println!("  {name:<32} {:>8.2} {:>8.2} {:>8.2} {:>8.2}", d.p50, d.p90, d.p99, d.max)
                        };
                        row(&format!("{label}: --db"), d);
                        row(&format!("{label}: memory"), m);
                        println!(
                            "  {:<32} {:>7.1}× {:>7.1}× {:>7.1}× {:>7.1}×",
                            format!("{label}: db/memory"),
                            d.p50 / m.p50,
                            d.p90 / m.p90,
                            d.p99 / m.p99,
                            d.max / m.max
                        );
                    }
                    (d, m) => println!("  {label}: --db {:?}; memory {:?}", d.as_ref().err(), m.as_ref().err()),
                }
            }
        }
        if let Some(r) = &self.sessions {
            println!(
                "concurrent sessions (server --db, default rate limit; {} s; server RSS at start {:.1} MiB; fd limit {} → aimed for {}), ms:",
                r.seconds.round(),
                r.baseline_rss_mib,
                r.fd_limit,
                r.max_target
            );
            println!(
                "  {:>7} {:>8} {:>8} {:>8} {:>8} {:>9} {:>9} {:>9} {:>5} {:>9} {:>9}",
                "held",
                "RSS MiB",
                "KiB/ses",
                "ping p50",
                "ping p99",
                "relay p50",
                "relay p99",
                "relay max",
                "lost",
                "stock p50",
                "stock p99"
            );
            for s in &r.steps {
                println!(
                    "  {:>7} {:>8.1} {:>8.1} {:>8.2} {:>8.2} {:>9.2} {:>9.2} {:>9.2} {:>5} {:>9.2} {:>9.2}",
                    s.held,
                    s.rss_mib,
                    s.kib_per_session,
                    s.ping.p50,
                    s.ping.p99,
                    s.tuned.relay.p50,
                    s.tuned.relay.p99,
                    s.tuned.relay.max,
                    s.tuned.lost + s.stock.lost,
                    s.stock.relay.p50,
                    s.stock.relay.p99
                );
            }
            let under = |pick: fn(&sessions::Step) -> &sessions::RelayRun| {
                r.steps.iter().filter(|s| pick(s).relay.p99 < 50.0 && pick(s).lost == 0).map(|s| s.held).max()
            };
            let show = |n: Option<usize>| n.map(|n| format!("{n} sessions")).unwrap_or_else(|| "none".into());
            println!(
                "  largest step with relay p99 < 50 ms: {} (QUICKACK clients); {} (stock clients)",
                show(under(|s| &s.tuned)),
                show(under(|s| &s.stock))
            );
            let max_held = r.steps.iter().map(|s| s.held).max().unwrap_or(0);
            println!(
                "  most sessions held: {max_held}. 20,000 is out of reach here: the server is one process limited to \
                 {} descriptors, and its listener, database and runtime need some of them.",
                r.fd_limit
            );
            if let Some(t) = &r.teardown {
                println!(
                    "  {} sessions closing at once keep the server busy ~{:.1} s ({:.1} s CPU); call setups meanwhile: \
                     p50 {:.0} ms, max {:.0} ms",
                    t.closed, t.busy_secs, t.cpu_secs, t.setup.p50, t.setup.max
                );
            }
        }
        println!("==================================================================================");
    }
}

// ---------------------------------------------------------------------------------------------
// The worker process: holds up to WORKER_CAP sessions and runs the orchestrator's commands.

mod worker {
    use std::sync::Arc;
    use std::sync::Mutex;
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

    use futures_util::{SinkExt, StreamExt};
    use rand::Rng;
    use serde_json::{Value, json};
    use tokio::sync::mpsc;
    use tokio_tungstenite::tungstenite::Message;
    use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

    use super::*;

    const ICE_PREFIX: &str = "candidate:bench ";

    #[derive(Default)]
    struct Stats {
        relay_us: Mutex<Vec<u64>>,
        ping_us: Mutex<Vec<u64>>,
        errors: AtomicU64,
        closed: AtomicU64,
        /// Re-arm TCP_QUICKACK after every read (see [`quickack`]).
        quickack: AtomicBool,
    }

    enum Out {
        Text(String),
        Ping,
        Ice(Arc<str>),
    }

    struct Sess {
        user: String,
        tx: mpsc::UnboundedSender<Out>,
        events: Option<mpsc::UnboundedReceiver<Value>>,
        task: tokio::task::JoinHandle<()>,
    }

    pub fn main() {
        let index: usize = std::env::var(WORKER_ENV).ok().and_then(|v| v.parse().ok()).unwrap_or(0);
        let base = std::env::var("CALLDOCK_BENCH_BASE").expect("CALLDOCK_BENCH_BASE");
        let (cmd_tx, mut cmd_rx) = mpsc::unbounded_channel::<String>();
        std::thread::spawn(move || {
            for line in std::io::stdin().lines() {
                let Ok(line) = line else { break };
                if cmd_tx.send(line).is_err() {
                    break;
                }
            }
        });
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
        runtime.block_on(async move {
            let stats = Arc::new(Stats::default());
            let mut sessions: Vec<Sess> = Vec::new();
            let mut next_user = 0usize;
            while let Some(line) = cmd_rx.recv().await {
                let words: Vec<&str> = line.split_whitespace().collect();
                let arg = |i: usize| words.get(i).and_then(|w| w.parse::<usize>().ok()).unwrap_or(0);
                let mut out = String::new();
                match words.first().copied() {
                    Some("connect") => {
                        let want = arg(1).min(WORKER_CAP);
                        let (added, failed, error, timing) =
                            connect(&base, index, &mut next_user, want.saturating_sub(sessions.len()), &stats).await;
                        sessions.extend(added);
                        out += &format!("held {}\nfailed {failed}\n{timing}", sessions.len());
                        if let Some(e) = error {
                            out += &format!("error {}\n", e.replace('\n', " "));
                        }
                    }
                    Some("ping") => {
                        let got = ping(&sessions, arg(1), arg(2), arg(3) as u64, &stats).await;
                        out += &format!("samples {}\n", join(&got));
                    }
                    Some("relay") => {
                        stats.quickack.store(arg(4) == 1, Ordering::Relaxed);
                        out += &relay(&mut sessions, arg(1), arg(2), arg(3) as u64, &stats).await;
                    }
                    Some("close") => {
                        let n = sessions.len();
                        let tasks: Vec<_> = sessions
                            .drain(..)
                            .map(|s| {
                                drop(s.tx);
                                s.task
                            })
                            .collect();
                        let _ =
                            tokio::time::timeout(Duration::from_secs(30), futures_util::future::join_all(tasks)).await;
                        out += &format!("closed {n}\n");
                    }
                    _ => {}
                }
                out += &format!(
                    "errors {}\nsocket_closed {}\nend\n",
                    stats.errors.load(Ordering::Relaxed),
                    stats.closed.load(Ordering::Relaxed)
                );
                let mut stdout = std::io::stdout().lock();
                let _ = stdout.write_all(out.as_bytes());
                let _ = stdout.flush();
            }
        });
    }

    fn join(us: &[u64]) -> String {
        us.iter().map(|u| format!("{:.3}", *u as f64 / 1000.0)).collect::<Vec<_>>().join(",")
    }

    /// Logs in and connects `count` more sessions; returns them, the failures and the first error.
    async fn connect(
        base: &str,
        index: usize,
        next_user: &mut usize,
        count: usize,
        stats: &Arc<Stats>,
    ) -> (Vec<Sess>, usize, Option<String>, String) {
        let users: Vec<String> = (0..count).map(|i| format!("w{index}u{}", *next_user + i)).collect();
        *next_user += count;
        let mut first_error = None;
        let t0 = Instant::now();
        // Logins first, over a few kept-alive HTTP connections that are closed before the
        // WebSockets open, so they do not count against the server's descriptors.
        let tokens: Vec<(String, anyhow::Result<String>)> = {
            let http = reqwest::Client::builder().pool_max_idle_per_host(16).build().expect("http client");
            let url = format!("{base}/v1/login");
            futures_util::stream::iter(users)
                .map(|user| {
                    let http = http.clone();
                    let url = url.clone();
                    async move {
                        let body = json!({"user": user, "device": format!("{user}-d")});
                        let token = async {
                            let reply: Value =
                                http.post(&url).json(&body).send().await?.error_for_status()?.json().await?;
                            reply["token"].as_str().map(str::to_owned).ok_or_else(|| anyhow::anyhow!("no token"))
                        }
                        .await;
                        (user, token)
                    }
                })
                .buffer_unordered(16)
                .collect()
                .await
        };
        let login_secs = t0.elapsed().as_secs_f64();
        let t1 = Instant::now();
        let ws_url = format!("{}/v1/ws", base.replacen("http://", "ws://", 1));
        let opened: Vec<(String, anyhow::Result<Ws>)> = futures_util::stream::iter(tokens)
            .map(|(user, token)| {
                let ws_url = ws_url.clone();
                async move {
                    let ws = match token {
                        Ok(token) => open(&ws_url, &token).await,
                        Err(e) => Err(e.context("login")),
                    };
                    (user, ws)
                }
            })
            .buffer_unordered(64)
            .collect()
            .await;
        let mut added = Vec::new();
        let mut failed = 0;
        for (user, ws) in opened {
            match ws {
                Ok(ws) => {
                    let (tx, rx) = mpsc::unbounded_channel();
                    let (ev_tx, ev_rx) = mpsc::unbounded_channel();
                    let task = tokio::spawn(session_task(ws, rx, ev_tx, stats.clone()));
                    added.push(Sess { user, tx, events: Some(ev_rx), task });
                }
                Err(e) => {
                    failed += 1;
                    first_error.get_or_insert_with(|| format!("{user}: {e:#}"));
                }
            }
        }
        let timing = format!("login_secs {login_secs:.3}\nws_secs {:.3}\n", t1.elapsed().as_secs_f64());
        (added, failed, first_error, timing)
    }

    /// Opens a WebSocket, says hello and authenticates.
    async fn open(url: &str, token: &str) -> anyhow::Result<Ws> {
        let config = WebSocketConfig::default().read_buffer_size(4096).write_buffer_size(0);
        let connect = tokio_tungstenite::connect_async_with_config(url, Some(config), true);
        let (mut ws, _) = tokio::time::timeout(WAIT, connect).await??;
        ws.send(Message::Text(r#"{"id":"h","type":"hello","protocol":"1.0","agent":"calldock-bench"}"#.into())).await?;
        expect(&mut ws, "h", "welcome").await?;
        ws.send(Message::Text(json!({"id": "a", "type": "auth", "token": token}).to_string().into())).await?;
        expect(&mut ws, "a", "authenticated").await?;
        Ok(ws)
    }

    async fn expect(ws: &mut Ws, re: &str, kind: &str) -> anyhow::Result<()> {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let frame = tokio::time::timeout_at(deadline, ws.next()).await?;
            match frame {
                Some(Ok(Message::Text(t))) => {
                    let v: Value = serde_json::from_str(t.as_str())?;
                    if v["re"] == re {
                        anyhow::ensure!(v["type"] == kind, "expected {kind}, got {v}");
                        return Ok(());
                    }
                }
                Some(Ok(Message::Close(c))) => anyhow::bail!("closed: {c:?}"),
                Some(Ok(_)) => {}
                Some(Err(e)) => return Err(e.into()),
                None => anyhow::bail!("connection ended"),
            }
        }
    }

    /// Owns one WebSocket: stamps outgoing pings and ICE candidates with the send time right
    /// before writing them, and records their delay as soon as the answer or relay arrives.
    async fn session_task(
        mut ws: Ws,
        mut rx: mpsc::UnboundedReceiver<Out>,
        events: mpsc::UnboundedSender<Value>,
        stats: Arc<Stats>,
    ) {
        let mut next = 0u64;
        loop {
            tokio::select! {
                frame = ws.next() => {
                    let text = match frame {
                        Some(Ok(Message::Text(t))) => t,
                        Some(Ok(Message::Close(_))) | Some(Err(_)) | None => {
                            stats.closed.fetch_add(1, Ordering::Relaxed);
                            break;
                        }
                        Some(Ok(_)) => continue,
                    };
                    let now = now_nanos();
                    if stats.quickack.load(Ordering::Relaxed) {
                        quickack(&ws);
                    }
                    let Ok(v) = serde_json::from_str::<Value>(text.as_str()) else { continue };
                    match v["type"].as_str() {
                        Some("ice") => {
                            let sent = v["candidate"].as_str().and_then(|c| c.strip_prefix(ICE_PREFIX)).and_then(|n| n.parse::<u64>().ok());
                            if let Some(sent) = sent {
                                stats.relay_us.lock().unwrap().push(now.saturating_sub(sent) / 1000);
                            }
                        }
                        Some("pong") => {
                            let sent = v["re"].as_str().and_then(|r| r.strip_prefix('p')).and_then(|n| n.parse::<u64>().ok());
                            if let Some(sent) = sent {
                                stats.ping_us.lock().unwrap().push(now.saturating_sub(sent) / 1000);
                            }
                        }
                        Some("ok") if v["re"].as_str().is_some_and(|r| r.starts_with('i')) => {}
                        Some("error") => {
                            stats.errors.fetch_add(1, Ordering::Relaxed);
                            let _ = events.send(v);
                        }
                        _ => {
                            let _ = events.send(v);
                        }
                    }
                }
                out = rx.recv() => {
                    let text = match out {
                        Some(Out::Text(t)) => t,
                        Some(Out::Ping) => format!(r#"{{"id":"p{}","type":"ping"}}"#, now_nanos()),
                        Some(Out::Ice(call_id)) => {
                            next += 1;
                            format!(
                                r#"{{"id":"i{next}","type":"ice","call_id":"{call_id}","candidate":"{ICE_PREFIX}{}","sdp_mid":"0","sdp_mline_index":0}}"#,
                                now_nanos()
                            )
                        }
                        None => {
                            let _ = tokio::time::timeout(Duration::from_secs(5), ws.close(None)).await;
                            break;
                        }
                    };
                    if ws.send(Message::Text(text.into())).await.is_err() {
                        stats.closed.fetch_add(1, Ordering::Relaxed);
                        break;
                    }
                }
            }
        }
    }

    /// Waits for the first event `pick` accepts, dropping others.
    async fn wait_for(
        rx: &mut mpsc::UnboundedReceiver<Value>,
        what: &str,
        pick: impl Fn(&Value) -> bool,
    ) -> anyhow::Result<Value> {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            match tokio::time::timeout_at(deadline, rx.recv()).await {
                Err(_) => anyhow::bail!("no {what} within {WAIT:?}"),
                Ok(None) => anyhow::bail!("session ended while waiting for {what}"),
                Ok(Some(v)) if pick(&v) => return Ok(v),
                Ok(Some(v)) if v["type"] == "error" => anyhow::bail!("waiting for {what}: {v}"),
                Ok(Some(_)) => {}
            }
        }
    }

    /// `count` random sessions each send `pings` pings, `interval_ms` apart (with random phase).
    async fn ping(sessions: &[Sess], count: usize, pings: usize, interval_ms: u64, stats: &Stats) -> Vec<u64> {
        stats.ping_us.lock().unwrap().clear();
        let count = count.min(sessions.len());
        let picked = rand::seq::index::sample(&mut rand::rng(), sessions.len(), count).into_vec();
        let expected = count * pings;
        let senders = picked.iter().map(|&i| {
            let tx = sessions[i].tx.clone();
            async move {
                let phase = rand::rng().random_range(0..interval_ms.max(1));
                tokio::time::sleep(Duration::from_millis(phase)).await;
                for _ in 0..pings {
                    let _ = tx.send(Out::Ping);
                    tokio::time::sleep(Duration::from_millis(interval_ms)).await;
                }
            }
        });
        futures_util::future::join_all(senders).await;
        wait_count(&stats.ping_us, expected).await;
        std::mem::take(&mut *stats.ping_us.lock().unwrap())
    }

    async fn wait_count(samples: &Mutex<Vec<u64>>, expected: usize) {
        let deadline = Instant::now() + Duration::from_secs(5);
        while samples.lock().unwrap().len() < expected && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    struct Pair {
        a: usize,
        b: usize,
        b_user: String,
        a_tx: mpsc::UnboundedSender<Out>,
        b_tx: mpsc::UnboundedSender<Out>,
        a_ev: mpsc::UnboundedReceiver<Value>,
        b_ev: mpsc::UnboundedReceiver<Value>,
        call_id: Arc<str>,
    }

    impl Pair {
        /// invite → the callee gets call.invite → accept → the caller gets call.accepted.
        async fn setup(&mut self) -> anyhow::Result<Duration> {
            let start = Instant::now();
            let call_id = self.call_id.clone();
            let invite =
                json!({"id": "c1", "type": "call.invite", "call_id": &*call_id, "to": self.b_user, "media": "audio"});
            let _ = self.a_tx.send(Out::Text(invite.to_string()));
            wait_for(&mut self.a_ev, "call.created", |v| v["re"] == "c1" && v["type"] == "call.created").await?;
            wait_for(&mut self.b_ev, "call.invite", |v| v["type"] == "call.invite" && v["call"]["call_id"] == *call_id)
                .await?;
            let accept = json!({"id": "c2", "type": "call.accept", "call_id": &*call_id, "media": "audio"});
            let _ = self.b_tx.send(Out::Text(accept.to_string()));
            wait_for(&mut self.a_ev, "call.accepted", |v| v["type"] == "call.accepted" && v["call_id"] == *call_id)
                .await?;
            Ok(start.elapsed())
        }

        async fn trickle(&self, msgs: usize, interval_ms: u64) {
            let phase = rand::rng().random_range(0..interval_ms.max(1));
            tokio::time::sleep(Duration::from_millis(phase)).await;
            for _ in 0..msgs {
                let _ = self.a_tx.send(Out::Ice(self.call_id.clone()));
                let _ = self.b_tx.send(Out::Ice(self.call_id.clone()));
                tokio::time::sleep(Duration::from_millis(interval_ms)).await;
            }
        }

        async fn end(&mut self) -> anyhow::Result<()> {
            let call_id = self.call_id.clone();
            let end = json!({"id": "c3", "type": "call.end", "call_id": &*call_id});
            let _ = self.a_tx.send(Out::Text(end.to_string()));
            wait_for(&mut self.b_ev, "call.ended", |v| v["type"] == "call.ended" && v["call_id"] == *call_id).await?;
            Ok(())
        }
    }

    /// Puts `pairs` random pairs of sessions into answered calls, trickles `msgs` ICE
    /// candidates each way, hangs up. Reports call setup times and one-way relay delays.
    async fn relay(sessions: &mut [Sess], pairs: usize, msgs: usize, interval_ms: u64, stats: &Stats) -> String {
        stats.relay_us.lock().unwrap().clear();
        let pairs = pairs.min(sessions.len() / 2);
        let picked = rand::seq::index::sample(&mut rand::rng(), sessions.len(), pairs * 2).into_vec();
        let mut list: Vec<Pair> = picked
            .chunks(2)
            .map(|c| {
                let (a, b) = (c[0], c[1]);
                Pair {
                    a,
                    b,
                    b_user: sessions[b].user.clone(),
                    a_tx: sessions[a].tx.clone(),
                    b_tx: sessions[b].tx.clone(),
                    a_ev: sessions[a].events.take().expect("not in use"),
                    b_ev: sessions[b].events.take().expect("not in use"),
                    call_id: format!("{:032x}", rand::random::<u128>()).into(),
                }
            })
            .collect();
        let results = futures_util::future::join_all(list.iter_mut().map(|p| p.setup())).await;
        let mut setup_ms = Vec::new();
        let mut first_error = None;
        let mut ok = vec![false; list.len()];
        for (i, r) in results.into_iter().enumerate() {
            match r {
                Ok(d) => {
                    setup_ms.push(d.as_micros() as u64);
                    ok[i] = true;
                }
                Err(e) => {
                    first_error.get_or_insert_with(|| format!("call setup: {e:#}"));
                }
            }
        }
        let live: Vec<&Pair> = list.iter().zip(&ok).filter(|(_, ok)| **ok).map(|(p, _)| p).collect();
        let expected = live.len() * 2 * msgs;
        futures_util::future::join_all(live.iter().map(|p| p.trickle(msgs, interval_ms))).await;
        wait_count(&stats.relay_us, expected).await;
        let got = std::mem::take(&mut *stats.relay_us.lock().unwrap());
        let ends =
            futures_util::future::join_all(list.iter_mut().zip(&ok).filter(|(_, ok)| **ok).map(|(p, _)| p.end())).await;
        for e in ends.into_iter().filter_map(Result::err) {
            first_error.get_or_insert_with(|| format!("hangup: {e:#}"));
        }
        for mut p in list {
            while p.a_ev.try_recv().is_ok() {}
            while p.b_ev.try_recv().is_ok() {}
            sessions[p.a].events = Some(p.a_ev);
            sessions[p.b].events = Some(p.b_ev);
        }
        let mut out = format!(
            "pairs {}\nsamples {}\nsetup {}\nlost {}\n",
            setup_ms.len(),
            join(&got),
            join(&setup_ms),
            expected.saturating_sub(got.len())
        );
        if let Some(e) = first_error {
            out += &format!("error {}\n", e.replace('\n', " "));
        }
        out
    }
}
