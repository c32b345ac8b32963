//! Which processes hold a device node open, so "device busy" can name the program to close.
//!
//! Linux tells through `/proc`: every process's open files are symlinks in `/proc/PID/fd`, and
//! its command name is `/proc/PID/comm`. Only processes this user may inspect are seen (all of
//! them for root); the others are left out rather than guessed at. Elsewhere nothing is known
//! and the lists are empty, so callers fall back to "another program".

use std::fmt;
use std::path::Path;

use crate::Direction;

/// A process that has a device node open.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct DeviceHolder {
    pub pid: u32,
    /// The command name (`/proc/PID/comm`), e.g. `firefox`.
    pub name: String,
}

impl fmt::Display for DeviceHolder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}, pid {}", self.name, self.pid)
    }
}

/// The holders as a person reads them: `firefox, pid 1234` or `firefox, pid 1234; obs, pid 99`.
pub fn describe_holders(holders: &[DeviceHolder]) -> String {
    holders.iter().map(ToString::to_string).collect::<Vec<_>>().join("; ")
}

/// What follows "another program" in a message: ` (firefox, pid 1234)`, or nothing when
/// `/proc` named nobody.
pub(crate) fn named_in_parentheses(holders: &[DeviceHolder]) -> String {
    if holders.is_empty() { String::new() } else { format!(" ({})", describe_holders(holders)) }
}

/// The processes other than this one that have `node` (e.g. `/dev/video0`) open, by pid.
pub fn processes_holding(node: &Path) -> Vec<DeviceHolder> {
    processes_holding_any(|target| target == node)
}

/// The processes holding a sound card's PCM nodes open for `direction` (`/dev/snd/pcmC0D0c`
/// records, `…p` plays): what keeps an ALSA device busy, usually a sound server or a program
/// that opened the card directly.
pub fn processes_holding_sound(direction: Direction) -> Vec<DeviceHolder> {
    processes_holding_any(|target| is_pcm_node(target, direction))
}

/// `/dev/snd/pcmC<card>D<device>c` records and `…p` plays; control and timer nodes are held by
/// mixers and do not make a device busy.
fn is_pcm_node(path: &Path, direction: Direction) -> bool {
    let suffix = match direction {
        Direction::Input => 'c',
        Direction::Output => 'p',
    };
    path.to_str().and_then(|path| path.strip_prefix("/dev/snd/pcmC")).is_some_and(|rest| rest.ends_with(suffix))
}

#[cfg(target_os = "linux")]
fn processes_holding_any(holds: impl Fn(&Path) -> bool) -> Vec<DeviceHolder> {
    let Ok(processes) = std::fs::read_dir("/proc") else { return Vec::new() };
    let own = std::process::id();
    let mut holders = Vec::new();
    for process in processes.flatten() {
        let Some(pid) = process.file_name().to_str().and_then(|name| name.parse::<u32>().ok()) else { continue };
        if pid == own {
            continue;
        }
        // Another user's process (without root), or one that just exited: not ours to see.
        let Ok(files) = std::fs::read_dir(process.path().join("fd")) else { continue };
        let holds_it = files.flatten().any(|fd| std::fs::read_link(fd.path()).is_ok_and(|target| holds(&target)));
        if holds_it {
            let name = std::fs::read_to_string(process.path().join("comm"))
                .map(|comm| comm.trim_end().to_string())
                .unwrap_or_else(|_| "unknown".to_string());
            holders.push(DeviceHolder { pid, name });
        }
    }
    holders.sort_by_key(|holder| holder.pid);
    holders
}

#[cfg(not(target_os = "linux"))]
fn processes_holding_any(_holds: impl Fn(&Path) -> bool) -> Vec<DeviceHolder> {
    Vec::new()
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use std::process::{Child, Command, Stdio};
    use std::time::{Duration, Instant};

    use super::*;

    /// A child process killed when the test ends, pass or fail.
    struct Sleeper(Child);

    impl Drop for Sleeper {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }

    /// `sleep` with `file` open as its standard input: a process holding a node, as a camera
    /// app holds `/dev/video0`.
    fn sleeper_holding(file: &Path) -> Sleeper {
        let opened = std::fs::File::open(file).unwrap();
        Sleeper(Command::new("sleep").arg("30").stdin(Stdio::from(opened)).spawn().expect("sleep runs"))
    }

    /// Waits for the scan to see `pid`: right after spawn the child may still be between
    /// fork and exec, under the name of this test binary.
    fn holders_once_started(node: &Path, pid: u32) -> Vec<DeviceHolder> {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let holders = processes_holding(node);
            let started = holders.iter().any(|h| h.pid == pid && h.name == "sleep");
            if started || Instant::now() > deadline {
                return holders;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    #[test]
    fn a_process_holding_a_node_is_named_with_its_pid() {
        let dir = tempfile::tempdir().unwrap();
        let node = dir.path().join("video-node");
        std::fs::write(&node, b"frames").unwrap();
        let sleeper = sleeper_holding(&node);
        let pid = sleeper.0.id();

        let holders = holders_once_started(&node, pid);
        assert_eq!(holders, [DeviceHolder { pid, name: "sleep".into() }]);
        assert_eq!(named_in_parentheses(&holders), format!(" (sleep, pid {pid})"));
    }

    #[test]
    fn several_holders_are_all_named_and_a_free_node_has_none() {
        let dir = tempfile::tempdir().unwrap();
        let node = dir.path().join("shared-node");
        let free = dir.path().join("free-node");
        std::fs::write(&node, b"x").unwrap();
        std::fs::write(&free, b"x").unwrap();
        let first = sleeper_holding(&node);
        let second = sleeper_holding(&node);
        holders_once_started(&node, first.0.id());
        let holders = holders_once_started(&node, second.0.id());
        let pids: Vec<u32> = holders.iter().map(|h| h.pid).collect();
        assert!(pids.contains(&first.0.id()) && pids.contains(&second.0.id()), "{holders:?}");
        assert!(describe_holders(&holders).contains("; "), "{holders:?}");

        // This process holds `free` open itself: it never counts as another program.
        let _own = std::fs::File::open(&free).unwrap();
        assert_eq!(processes_holding(&free), []);
        assert_eq!(named_in_parentheses(&[]), "");
    }

    #[test]
    fn sound_nodes_are_told_apart_by_direction() {
        let node = |path: &str, direction| is_pcm_node(Path::new(path), direction);
        assert!(node("/dev/snd/pcmC0D0c", Direction::Input));
        assert!(!node("/dev/snd/pcmC0D0c", Direction::Output));
        assert!(node("/dev/snd/pcmC1D3p", Direction::Output));
        assert!(!node("/dev/snd/controlC0", Direction::Input));
        assert!(!node("/dev/snd/timer", Direction::Output));
        assert!(!node("/dev/video0", Direction::Input));
    }
}
