//! A child process driven through its standard streams: lines it prints are read on a thread
//! and waited for by content; commands go to its stdin; it is killed if the test ends first.

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

pub struct LineProcess {
    name: String,
    child: Child,
    stdin: Option<ChildStdin>,
    lines: mpsc::Receiver<(Instant, String)>,
    seen: Vec<String>,
}

impl LineProcess {
    /// Starts `command` with stdin and stdout piped (stderr goes to the test's own); `name`
    /// says which process a failure is about.
    pub fn start(name: &str, mut command: Command) -> LineProcess {
        let mut child = command
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|e| panic!("{name} starts: {e}"));
        let stdout = child.stdout.take().expect("stdout is piped");
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send((Instant::now(), line)).is_err() {
                    break;
                }
            }
        });
        let stdin = child.stdin.take();
        LineProcess { name: name.to_string(), child, stdin, lines, seen: Vec::new() }
    }

    /// Waits for an output line containing `needle`; returns it.
    pub fn wait_for(&mut self, needle: &str, within: Duration) -> String {
        self.wait_for_timed(needle, within).1
    }

    /// Waits for an output line containing `needle`; returns when it was read, and the line.
    pub fn wait_for_timed(&mut self, needle: &str, within: Duration) -> (Instant, String) {
        let deadline = Instant::now() + within;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok((at, line)) => {
                    self.seen.push(line.clone());
                    if line.contains(needle) {
                        return (at, line);
                    }
                }
                Err(_) => panic!("{}: no line with {needle:?} within {within:?}; saw {:#?}", self.name, self.seen),
            }
        }
    }

    /// Writes one line to the process's stdin.
    pub fn send(&mut self, command: &str) {
        let stdin = self.stdin.as_mut().expect("stdin is piped");
        writeln!(stdin, "{command}").expect("the process reads its stdin");
        stdin.flush().expect("flush");
    }

    /// Waits for the process to exit; returns its exit code and every line it printed.
    pub fn finish(mut self, within: Duration) -> (i32, Vec<String>) {
        let deadline = Instant::now() + within;
        loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                self.seen.extend(self.lines.try_iter().map(|(_, line)| line));
                return (status.code().unwrap_or(-1), std::mem::take(&mut self.seen));
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                panic!("{} did not exit within {within:?}; saw {:#?}", self.name, self.seen);
            }
            // Short: tests measure from the exit (sound must stop when the process does).
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}

impl Drop for LineProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
