//! coturn (Debian's `turnserver`, installed by scripts/test) on loopback, with the TURN REST
//! shared secret that `calldock serve --turn-secret` signs credentials with.

use std::net::{SocketAddr, UdpSocket};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct TurnServerProcess {
    child: Child,
    pub addr: SocketAddr,
    pub secret: String,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

/// A UDP port nobody uses right now.
fn free_udp_port() -> u16 {
    UdpSocket::bind("127.0.0.1:0").and_then(|s| s.local_addr()).expect("a free UDP port").port()
}

impl TurnServerProcess {
    /// Starts coturn on a free 127.0.0.1 port and waits until it answers STUN.
    pub fn start(secret: &str) -> Self {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let port = free_udp_port();
        // Relay ports below Linux's ephemeral range (32768+), so sockets the tests bind with
        // port 0 cannot take them; a random 200-port slice, so parallel tests rarely share
        // one (coturn skips ports in use anyway).
        let min_port = 20_000 + (rand::random::<u16>() % 50) * 200;
        let log = dir.path().join("turnserver.log");
        let path = |name: &str| dir.path().join(name).to_str().expect("a UTF-8 temp path").to_owned();
        let child = Command::new("turnserver")
            .args([
                "-n", // no configuration file: only these flags
                "--listening-ip=127.0.0.1",
                "--relay-ip=127.0.0.1",
                &format!("--listening-port={port}"),
                &format!("--min-port={min_port}"),
                &format!("--max-port={}", min_port + 199),
                "--use-auth-secret",
                &format!("--static-auth-secret={secret}"),
                "--realm=calldock",
                "--no-tls",
                "--no-dtls",
                "--no-tcp",
                "--no-cli",
                // Both call ends are on 127.0.0.1: coturn refuses loopback peers by default.
                "--allow-loopback-peers",
                "--log-file=stdout",
                &format!("--db={}", path("turndb")),
                &format!("--pidfile={}", path("turnserver.pid")),
            ])
            .stdout(Stdio::from(std::fs::File::create(&log).expect("a log file")))
            .stderr(Stdio::null())
            .spawn()
            .expect("turnserver starts (scripts/test installs Debian's coturn)");
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let server = Self { child, addr, secret: secret.to_owned(), log, _dir: dir };
        server.wait_until_it_answers();
        server
    }

    /// `turn:` URI for `calldock serve --turn-uri`, pointing at `addr` (this server, or a relay
    /// in front of it).
    pub fn uri(addr: SocketAddr) -> String {
        format!("turn:{addr}?transport=udp")
    }

    /// coturn prints nothing when its UDP listener is up: ask it for a STUN binding.
    fn wait_until_it_answers(&self) {
        let socket = UdpSocket::bind("127.0.0.1:0").expect("a probe socket");
        socket.set_read_timeout(Some(Duration::from_millis(100))).expect("a timeout");
        // Binding request: type 0x0001, length 0, magic cookie, transaction id.
        let mut request = vec![0x00, 0x01, 0x00, 0x00, 0x21, 0x12, 0xa4, 0x42];
        request.extend_from_slice(b"calldocktest");
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut buffer = [0u8; 512];
        while Instant::now() < deadline {
            let _ = socket.send_to(&request, self.addr);
            if let Ok((n, _)) = socket.recv_from(&mut buffer)
                && n >= 20
                && buffer[..2] == [0x01, 0x01]
            {
                return;
            }
        }
        panic!("turnserver never answered STUN on {}; its log:\n{}", self.addr, self.log_text());
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for TurnServerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
