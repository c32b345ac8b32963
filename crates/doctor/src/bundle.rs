//! The support bundle (`calldock doctor --bundle FILE`, SPEC §6): one gzip-compressed tar
//! archive a user attaches to a support request, whatever FILE is called. Its members, all
//! under `calldock-bundle/`:
//!
//! | member | what |
//! |---|---|
//! | `manifest.json` | when and by which version it was made, its members, what was left out or could not be read, how many things were redacted |
//! | `system.json` | OS, kernel, CPU model and cores, memory, calldock's version, the audio host and whether PulseAudio is there |
//! | `devices.json` | the sound device inventory (`calldock devices --json`), or the error that stopped it |
//! | `report.json` | the doctor report of this run |
//! | `calls.jsonl` | the last [`RECENT_CALLS`] call summaries (calldock-journal) |
//! | `logs/calldock.DATE.log` | the newest [`LOG_FILES`] log files, the last [`LOG_TAIL_BYTES`] of each |
//! | `config.toml` | the user's config file, when there is one |
//!
//! Every member is text, and every one goes through [`crate::redact`] on its way in: tokens,
//! passwords, TURN credentials and IP addresses never reach the archive. The archive is written
//! to a temporary file beside FILE and renamed over it once complete, so a failure leaves no
//! half-written bundle, and an existing FILE is only replaced by a whole new one.

use std::fs;
use std::io::{self, BufWriter, ErrorKind, Write};
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use calldock_journal::paths::{LOG_FILE_PREFIX, LOG_FILE_SUFFIX};
use calldock_journal::{DataPaths, calls, read_tail};
use flate2::Compression;
use flate2::write::GzEncoder;
use serde::Serialize;
use serde_json::{Value, json};
use sysinfo::{CpuRefreshKind, MemoryRefreshKind, RefreshKind, System};

use crate::Report;
use crate::redact::redact;

/// The directory every member is in, so unpacking a bundle makes one folder.
pub const TOP_DIR: &str = "calldock-bundle";
/// Call summaries kept: enough for weeks of calls, small enough to read.
pub const RECENT_CALLS: usize = 200;
/// Log files kept, newest first (one per day).
pub const LOG_FILES: usize = 3;
/// The end of each log file kept: the recent end is what explains a problem just seen.
pub const LOG_TAIL_BYTES: u64 = 512 * 1024;
/// A config file is small; anything bigger is cut to its end.
pub const CONFIG_MAX_BYTES: u64 = 256 * 1024;

/// What goes into a bundle besides what the bundle measures itself (system, devices).
pub struct BundleSources<'a> {
    pub report: &'a Report,
    /// Where calldock keeps its files; `None` when there is nowhere (no home directory): the
    /// bundle is made without call summaries, logs and config, and its manifest says so.
    pub paths: Option<&'a DataPaths>,
    pub calldock_version: &'a str,
}

/// A bundle that was written.
#[derive(Debug, Clone, PartialEq)]
pub struct BundleWritten {
    /// Member names, without the top directory.
    pub members: Vec<String>,
    /// How many things redaction replaced.
    pub redactions: usize,
}

#[derive(Debug, thiserror::Error)]
pub enum BundleError {
    #[error(
        "cannot write the support bundle to {path}: {source}; give --bundle a file in a directory that exists and that you can write to"
    )]
    Write { path: PathBuf, source: io::Error },
}

impl BundleError {
    /// Stable code for logs and JSON output.
    pub fn code(&self) -> &'static str {
        match self {
            BundleError::Write { .. } => "bundle_write_failed",
        }
    }
}

/// One file of the bundle.
#[derive(Debug, Clone, PartialEq)]
pub struct Member {
    /// Path inside the top directory (`logs/calldock.2026-11-22.log`).
    pub name: String,
    pub text: String,
}

/// Something the manifest tells about a member: left out, cut, unreadable.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Note {
    pub member: String,
    pub note: String,
}

fn note(member: &str, text: impl Into<String>) -> Note {
    Note { member: member.to_owned(), note: text.into() }
}

/// Gathers, redacts and writes a bundle to `path`.
pub fn write(path: &Path, sources: &BundleSources) -> Result<BundleWritten, BundleError> {
    let created = SystemTime::now();
    let audio_host = calldock_devices::default_host_name();
    let mut members = vec![
        json_member("system.json", &system_info(sources.calldock_version, &audio_host)),
        json_member("devices.json", &device_inventory(&audio_host)),
        json_member("report.json", sources.report),
    ];
    let (saved, notes) = match sources.paths {
        Some(paths) => saved_files(paths),
        None => (Vec::new(), vec![note("calls.jsonl, logs/, config.toml", "calldock has no data directory here")]),
    };
    members.extend(saved);
    let (mut members, redactions) = redacted(members);
    let manifest = manifest(created, sources.calldock_version, &members, &notes, redactions);
    // The manifest is made of names and notes only, but it goes through the same pass.
    members.insert(0, Member { name: "manifest.json".into(), text: redact(&manifest).text });
    let mtime = created.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    write_whole(path, |file| pack(&members, mtime, file))
        .map_err(|source| BundleError::Write { path: path.to_owned(), source })?;
    Ok(BundleWritten { members: members.into_iter().map(|m| m.name).collect(), redactions })
}

fn json_member(name: &str, value: &impl Serialize) -> Member {
    let text = serde_json::to_string_pretty(value)
        .unwrap_or_else(|e| json!({ "error": format!("could not be written as JSON: {e}") }).to_string());
    Member { name: name.to_owned(), text: text + "\n" }
}

/// The machine: what support asks first.
fn system_info(calldock_version: &str, audio_host: &str) -> Value {
    let system = System::new_with_specifics(
        RefreshKind::nothing().with_cpu(CpuRefreshKind::nothing()).with_memory(MemoryRefreshKind::nothing().with_ram()),
    );
    let cpu_model = system.cpus().first().map(|cpu| cpu.brand().trim().to_owned()).filter(|b| !b.is_empty());
    json!({
        "calldock_version": calldock_version,
        "os": {
            "name": System::name(),
            "version": System::os_version(),
            "long_version": System::long_os_version(),
            "family": std::env::consts::OS,
            "arch": System::cpu_arch(),
        },
        "kernel": System::kernel_version(),
        "cpu": {
            "model": cpu_model,
            "logical_cores": system.cpus().len(),
            "physical_cores": System::physical_core_count(),
            // What this process may use (cgroups, affinity): less than the cores in a container.
            "usable_cores": std::thread::available_parallelism().ok().map(|n| n.get()),
        },
        "memory": {
            "total_bytes": system.total_memory(),
            "available_bytes": system.available_memory(),
        },
        "audio": {
            "host": audio_host,
            // cpal uses PulseAudio exactly when its server is there; `null` off Linux.
            "pulseaudio": cfg!(target_os = "linux").then(|| audio_host == "pulseaudio"),
        },
    })
}

/// `calldock devices --json`, or the error that stopped it, as text.
fn device_inventory(audio_host: &str) -> Value {
    match calldock_devices::list() {
        Ok(devices) => json!({ "host": audio_host, "devices": devices, "error": null }),
        Err(e) => json!({
            "host": audio_host,
            "devices": [],
            "error": { "code": e.code(), "message": e.to_string() },
        }),
    }
}

/// What calldock saved on this machine: call summaries, logs, config; and notes on what was
/// left out or could not be read.
pub fn saved_files(paths: &DataPaths) -> (Vec<Member>, Vec<Note>) {
    let mut notes = Vec::new();
    let mut members = vec![recent_calls(&paths.calls_file(), &mut notes)];
    members.extend(recent_logs(&paths.log_dir, &mut notes));
    members.extend(config(&paths.config_file, &mut notes));
    (members, notes)
}

fn recent_calls(path: &Path, notes: &mut Vec<Note>) -> Member {
    const NAME: &str = "calls.jsonl";
    let mut text = String::new();
    match calls::read_recent(path, RECENT_CALLS) {
        Ok(recent) => {
            if recent.calls.is_empty() {
                notes.push(note(NAME, format!("no call summaries at {}", path.display())));
            }
            if recent.skipped_lines > 0 {
                let n = recent.skipped_lines;
                notes.push(note(NAME, format!("{n} unreadable line(s) in the call log were skipped")));
            }
            // Written again from what was read, so every line of the member parses.
            for summary in &recent.calls {
                if let Ok(line) = serde_json::to_string(summary) {
                    text += &line;
                    text.push('\n');
                }
            }
        }
        Err(e) => notes.push(note(NAME, format!("{e} [{}]", e.code()))),
    }
    Member { name: NAME.into(), text }
}

fn recent_logs(dir: &Path, notes: &mut Vec<Note>) -> Vec<Member> {
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) => {
            notes.push(note("logs/", format!("no logs from {}: {e}", dir.display())));
            return Vec::new();
        }
    };
    let (prefix, suffix) = (format!("{LOG_FILE_PREFIX}."), format!(".{LOG_FILE_SUFFIX}"));
    let mut logs: Vec<(SystemTime, String)> = entries
        .flatten()
        .filter(|entry| entry.file_type().is_ok_and(|t| t.is_file()))
        .filter_map(|entry| {
            let name = entry.file_name().into_string().ok()?;
            let modified = entry.metadata().and_then(|m| m.modified()).unwrap_or(UNIX_EPOCH);
            (name.starts_with(&prefix) && name.ends_with(&suffix)).then_some((modified, name))
        })
        .collect();
    // Newest first; names carry the date, for files touched at the same moment.
    logs.sort_by(|a, b| b.cmp(a));
    if logs.is_empty() {
        notes.push(note("logs/", format!("no log files in {}", dir.display())));
    }
    if logs.len() > LOG_FILES {
        notes.push(note("logs/", format!("{} older log file(s) left out", logs.len() - LOG_FILES)));
    }
    logs.truncate(LOG_FILES);
    let mut members = Vec::new();
    for (_, file_name) in logs {
        let name = format!("logs/{file_name}");
        match read_tail(&dir.join(&file_name), LOG_TAIL_BYTES) {
            Ok(tail) => {
                if tail.omitted_bytes > 0 {
                    notes.push(note(&name, format!("the first {} bytes were left out", tail.omitted_bytes)));
                }
                members.push(Member { name, text: tail.text });
            }
            Err(e) => notes.push(note(&name, format!("could not be read: {e}"))),
        }
    }
    members
}

fn config(path: &Path, notes: &mut Vec<Note>) -> Option<Member> {
    const NAME: &str = "config.toml";
    match read_tail(path, CONFIG_MAX_BYTES) {
        Ok(tail) => {
            if tail.omitted_bytes > 0 {
                notes.push(note(NAME, format!("the first {} bytes were left out", tail.omitted_bytes)));
            }
            Some(Member { name: NAME.into(), text: tail.text })
        }
        Err(e) if e.kind() == ErrorKind::NotFound => {
            notes.push(note(NAME, format!("no config file at {}", path.display())));
            None
        }
        Err(e) => {
            notes.push(note(NAME, format!("{} could not be read: {e}", path.display())));
            None
        }
    }
}

/// The members after the redaction pass, and how many things it replaced.
pub fn redacted(members: Vec<Member>) -> (Vec<Member>, usize) {
    let mut total = 0;
    let members = members
        .into_iter()
        .map(|member| {
            let out = redact(&member.text);
            total += out.replacements;
            Member { name: member.name, text: out.text }
        })
        .collect();
    (members, total)
}

fn manifest(
    created: SystemTime,
    calldock_version: &str,
    members: &[Member],
    notes: &[Note],
    redactions: usize,
) -> String {
    let mut names = vec!["manifest.json"];
    names.extend(members.iter().map(|m| m.name.as_str()));
    let value = json!({
        "created_at": humantime::format_rfc3339_seconds(created).to_string(),
        "calldock_version": calldock_version,
        "members": names,
        "notes": notes,
        "redactions": redactions,
        "redacted": "tokens, passwords, TURN credentials and IP addresses (loopback kept) are replaced by [redacted…] markers",
    });
    serde_json::to_string_pretty(&value).unwrap_or_default() + "\n"
}

/// Writes the members as a gzip-compressed tar archive, under [`TOP_DIR`].
pub fn pack(members: &[Member], mtime: u64, out: impl Write) -> io::Result<()> {
    let mut archive = tar::Builder::new(GzEncoder::new(out, Compression::default()));
    for member in members {
        let mut header = tar::Header::new_gnu();
        header.set_entry_type(tar::EntryType::Regular);
        header.set_size(member.text.len() as u64);
        header.set_mode(0o644);
        header.set_mtime(mtime);
        archive.append_data(&mut header, format!("{TOP_DIR}/{}", member.name), member.text.as_bytes())?;
    }
    archive.into_inner()?.finish()?.flush()
}

/// Writes `path` through a temporary file beside it, renamed over it once complete.
fn write_whole(path: &Path, fill: impl FnOnce(&mut BufWriter<&mut fs::File>) -> io::Result<()>) -> io::Result<()> {
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    // Asked first, so a missing directory is said plainly rather than as a failure to create a
    // temporary file the person never heard of.
    fs::metadata(dir)?;
    let mut temp = tempfile::Builder::new().prefix(".calldock-bundle-").suffix(".part").tempfile_in(dir)?;
    {
        let mut out = BufWriter::new(temp.as_file_mut());
        fill(&mut out)?;
        out.flush()?;
    }
    temp.as_file().sync_all()?;
    temp.persist(path).map_err(|e| e.error)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::io::Read;

    use calldock_journal::calls::{CallDirection, OngoingCall};

    use super::*;

    fn unpack(bytes: &[u8]) -> Vec<(String, String)> {
        let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(bytes));
        let mut out = Vec::new();
        for entry in archive.entries().unwrap() {
            let mut entry = entry.unwrap();
            let name = entry.path().unwrap().to_string_lossy().into_owned();
            let mut text = String::new();
            entry.read_to_string(&mut text).unwrap();
            out.push((name, text));
        }
        out
    }

    #[test]
    fn members_pack_under_the_top_directory_and_unpack_the_same() {
        let members = vec![
            Member { name: "a.json".into(), text: "{}\n".into() },
            Member { name: "logs/calldock.2026-11-22.log".into(), text: "line ü\n".into() },
        ];
        let mut bytes = Vec::new();
        pack(&members, 1_700_000_000, &mut bytes).unwrap();
        assert_eq!(
            unpack(&bytes),
            [
                ("calldock-bundle/a.json".to_string(), "{}\n".to_string()),
                ("calldock-bundle/logs/calldock.2026-11-22.log".to_string(), "line ü\n".to_string()),
            ]
        );
    }

    #[test]
    fn saved_files_take_recent_calls_newest_logs_and_the_config() {
        let dir = tempfile::tempdir().unwrap();
        let paths = DataPaths::under(dir.path());
        let call = OngoingCall::new("c1", "bob", CallDirection::Outgoing, "audio", 1).finish(2, "busy");
        calls::append(&paths.calls_file(), &call).unwrap();
        fs::OpenOptions::new().append(true).open(paths.calls_file()).unwrap().write_all(b"garbage\n").unwrap();
        fs::create_dir_all(&paths.log_dir).unwrap();
        for day in 1..=5 {
            fs::write(paths.log_dir.join(format!("calldock.2026-11-0{day}.log")), format!("day {day}\n")).unwrap();
        }
        fs::write(paths.log_dir.join("unrelated.txt"), "not a log").unwrap();
        fs::write(&paths.config_file, "server = \"http://example.org\"\n").unwrap();

        let (members, notes) = saved_files(&paths);
        let names: Vec<&str> = members.iter().map(|m| m.name.as_str()).collect();
        assert_eq!(names[0], "calls.jsonl");
        assert_eq!(names.len(), 1 + LOG_FILES + 1, "{names:?}");
        assert!(names.contains(&"config.toml"));
        // Written in the same second: the names, which carry the date, decide.
        assert!(names.contains(&"logs/calldock.2026-11-05.log"), "{names:?}");
        assert!(!names.contains(&"logs/calldock.2026-11-01.log"), "{names:?}");
        assert_eq!(calls::parse_lines(&members[0].text).calls, [call]);
        let said: Vec<String> = notes.iter().map(|n| format!("{}: {}", n.member, n.note)).collect();
        assert!(said.iter().any(|n| n.contains("1 unreadable line")), "{said:?}");
        assert!(said.iter().any(|n| n.contains("2 older log file(s) left out")), "{said:?}");
    }

    #[test]
    fn nothing_saved_yet_is_notes_not_errors() {
        let dir = tempfile::tempdir().unwrap();
        let (members, notes) = saved_files(&DataPaths::under(dir.path().join("never-used")));
        assert_eq!(members, [Member { name: "calls.jsonl".into(), text: String::new() }]);
        let members: Vec<&str> = notes.iter().map(|n| n.member.as_str()).collect();
        assert_eq!(members, ["calls.jsonl", "logs/", "config.toml"]);
    }

    #[test]
    fn the_redaction_pass_covers_every_member_and_counts() {
        let members = vec![
            Member { name: "config.toml".into(), text: "password = \"hunter2\"\n".into() },
            Member { name: "logs/calldock.x.log".into(), text: "peer 203.0.113.7 token=abc\n".into() },
        ];
        let (members, count) = redacted(members);
        assert_eq!(count, 3);
        assert_eq!(members[0].text, "password = \"[redacted]\"\n");
        assert_eq!(members[1].text, "peer [redacted-ip] token=[redacted]\n");
    }

    #[test]
    fn a_bundle_that_cannot_be_written_leaves_nothing_behind_and_says_where() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("missing-dir/out.tar.gz");
        let err = write_whole(&target, |_| Ok(())).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::NotFound);
        let err = BundleError::Write { path: target.clone(), source: err };
        assert_eq!(err.code(), "bundle_write_failed");
        assert!(err.to_string().contains("missing-dir/out.tar.gz"), "{err}");
        // A failure while filling it: no partial file, at the target or beside it.
        let target = dir.path().join("out.tar.gz");
        assert!(write_whole(&target, |_| Err(io::Error::other("disk full"))).is_err());
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 0);
    }
}
