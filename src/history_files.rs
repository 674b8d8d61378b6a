//! Durable conversation history: one JSON Lines file per session, one completed exchange per
//! line, appended with a single write and fsync'd before it counts as saved. A line cut short by
//! a crash is repaired away on start; corrupt lines are reported and skipped, never fatal.

use crate::session::Turn;
use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::io::{self, BufRead, BufReader, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

/// The folder of history files (`history_dir`).
#[derive(Debug, Clone)]
pub struct HistoryFiles {
    dir: PathBuf,
}

/// One line of a history file.
#[derive(serde::Serialize, serde::Deserialize)]
struct Line {
    session: String,
    user: String,
    assistant: String,
    /// Seconds since the Unix epoch when the exchange completed.
    time: f64,
}

/// File name for a session: its id with every byte outside `[A-Za-z0-9_-]` percent-encoded
/// (so `../x` or `a/b` cannot leave the folder), hashed when it would be too long.
pub fn file_name(session_id: &str) -> String {
    let mut name = String::with_capacity(session_id.len() + 6);
    for byte in session_id.bytes() {
        match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'_' | b'-' => name.push(byte as char),
            _ => name.push_str(&format!("%{byte:02X}")),
        }
    }
    if name.len() > 180 {
        // FNV-1a: stable across runs and platforms, enough to tell long ids apart.
        let hash = session_id.bytes().fold(0xcbf29ce484222325u64, |h, b| (h ^ u64::from(b)).wrapping_mul(0x100000001b3));
        name = format!("{}~{hash:016x}", &name[..160]);
    }
    name + ".jsonl"
}

impl HistoryFiles {
    /// Opens (creating) the folder.
    pub fn open(dir: &Path) -> io::Result<HistoryFiles> {
        fs::create_dir_all(dir)?;
        Ok(HistoryFiles { dir: dir.to_path_buf() })
    }

    fn path(&self, session_id: &str) -> PathBuf {
        self.dir.join(file_name(session_id))
    }

    /// Appends one completed exchange and waits until it is on disk.
    pub fn append(&self, session_id: &str, turn: &Turn) -> io::Result<()> {
        let time = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs_f64()).unwrap_or(0.0);
        let line = Line { session: session_id.into(), user: turn.user.clone(), assistant: turn.assistant.clone(), time };
        let mut bytes = serde_json::to_vec(&line).map_err(io::Error::other)?;
        bytes.push(b'\n');
        let mut file = OpenOptions::new().create(true).append(true).open(self.path(session_id))?;
        file.write_all(&bytes)?;
        file.sync_data()
    }

    /// Deletes a session's file (missing is fine).
    pub fn remove(&self, session_id: &str) -> io::Result<()> {
        match fs::remove_file(self.path(session_id)) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        }
    }

    /// Deletes every history file in the folder.
    pub fn remove_all(&self) -> io::Result<()> {
        for entry in fs::read_dir(&self.dir)? {
            let path = entry?.path();
            if path.extension().is_some_and(|e| e == "jsonl") {
                fs::remove_file(path)?;
            }
        }
        Ok(())
    }

    /// Reads every session back, repairing torn last lines and skipping corrupt ones.
    pub fn load_all(&self) -> BTreeMap<String, Vec<Turn>> {
        let mut sessions: BTreeMap<String, Vec<Turn>> = BTreeMap::new();
        let entries = match fs::read_dir(&self.dir) {
            Ok(entries) => entries,
            Err(e) => {
                log::error!("cannot read history_dir {}: {e}", self.dir.display());
                return sessions;
            }
        };
        for path in entries.flatten().map(|e| e.path()).filter(|p| p.extension().is_some_and(|e| e == "jsonl")) {
            if let Err(e) = repair_torn_tail(&path) {
                log::error!("history file {}: cannot repair ({e}); skipped", path.display());
                continue;
            }
            let file = match File::open(&path) {
                Ok(f) => f,
                Err(e) => {
                    log::error!("history file {}: {e}; skipped", path.display());
                    continue;
                }
            };
            for (number, line) in BufReader::new(file).split(b'\n').enumerate() {
                let parsed = line.map_err(|e| e.to_string()).and_then(|bytes| {
                    serde_json::from_slice::<Line>(&bytes).map_err(|e| e.to_string())
                });
                match parsed {
                    Ok(l) => sessions.entry(l.session).or_default().push(Turn { user: l.user, assistant: l.assistant }),
                    Err(e) => log::warn!("history file {} line {}: {e}; line skipped", path.display(), number + 1),
                }
            }
        }
        let turns: usize = sessions.values().map(Vec::len).sum();
        log::info!("restored {} session(s), {turns} exchange(s) from {}", sessions.len(), self.dir.display());
        sessions
    }
}

/// Cuts a last line that has no newline (a write torn by a crash), so the next append starts
/// on a line of its own.
fn repair_torn_tail(path: &Path) -> io::Result<()> {
    let mut file = OpenOptions::new().read(true).write(true).open(path)?;
    let len = file.metadata()?.len();
    if len == 0 {
        return Ok(());
    }
    let mut pos = len;
    let mut buf = [0u8; 4096];
    while pos > 0 {
        let start = pos.saturating_sub(buf.len() as u64);
        let n = (pos - start) as usize;
        file.seek(SeekFrom::Start(start))?;
        file.read_exact(&mut buf[..n])?;
        if let Some(i) = buf[..n].iter().rposition(|&b| b == b'\n') {
            let keep = start + i as u64 + 1;
            if keep != len {
                log::warn!("history file {}: dropped {} bytes of an unfinished last line", path.display(), len - keep);
                file.set_len(keep)?;
            }
            return Ok(());
        }
        pos = start;
    }
    log::warn!("history file {}: no complete line; emptied", path.display());
    file.set_len(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_dir(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("ob-history-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        dir
    }
    fn turn(n: u32) -> Turn {
        Turn { user: format!("u{n} é"), assistant: format!("a{n} 🤖") }
    }

    #[test]
    fn names_stay_inside_the_folder() {
        assert_eq!(file_name("default"), "default.jsonl");
        assert_eq!(file_name("../etc/passwd"), "%2E%2E%2Fetc%2Fpasswd.jsonl");
        assert!(file_name(&"ü".repeat(128)).len() < 200);
        assert_ne!(file_name(&"a".repeat(128)), file_name(&format!("{}b", "a".repeat(127))));
    }

    #[test]
    fn round_trip_repair_and_skip() {
        let dir = temp_dir("rt");
        let files = HistoryFiles::open(&dir).unwrap();
        files.append("s/1", &turn(1)).unwrap();
        files.append("s/1", &turn(2)).unwrap();
        files.append("b", &turn(3)).unwrap();
        // a torn write, then a corrupt line in the other file
        let path = dir.join(file_name("s/1"));
        OpenOptions::new().append(true).open(&path).unwrap().write_all(b"{\"session\":\"s/1\",\"us").unwrap();
        OpenOptions::new().append(true).open(dir.join(file_name("b"))).unwrap().write_all(b"not json\n").unwrap();
        let loaded = files.load_all();
        assert_eq!(loaded["s/1"], vec![turn(1), turn(2)]);
        assert_eq!(loaded["b"], vec![turn(3)]);
        files.append("s/1", &turn(4)).unwrap();
        assert_eq!(files.load_all()["s/1"], vec![turn(1), turn(2), turn(4)]);
        files.remove("s/1").unwrap();
        assert!(!files.load_all().contains_key("s/1"));
        files.remove_all().unwrap();
        assert!(files.load_all().is_empty());
        let _ = fs::remove_dir_all(&dir);
    }
}
