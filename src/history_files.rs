//! Durable conversation history: one JSON Lines file per session, one completed exchange per
//! line, appended with a single write and fsync'd before it counts as saved. A line cut short by
//! a crash is repaired away on start; corrupt lines are reported and skipped, never fatal.
//!
//! A line: `{"session", "user", "assistant", "time", "user_tokens"?, "assistant_tokens"?}`; the
//! token counts (see [`crate::context`]) are written when the server counted them and are optional
//! on reading, so files written before they existed load as they are.

use crate::session::Turn;
use std::fs::{self, File, OpenOptions};
use std::io::{self, BufRead, BufReader, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{SystemTime, UNIX_EPOCH};

/// The folder of history files (`history_dir`). Clones share one write lock, so an append and
/// a reset's delete of the same file never interleave.
#[derive(Debug, Clone)]
pub struct HistoryFiles {
    dir: PathBuf,
    writes: Arc<Mutex<()>>,
}

/// A session read back from its file.
#[derive(Debug, Clone, PartialEq)]
pub struct SavedSession {
    pub id: String,
    /// Its completed exchanges, oldest first (at most the `max_turns` asked for).
    pub turns: Vec<Turn>,
    /// When its last exchange completed (seconds since the Unix epoch).
    pub last_time: f64,
}

/// A file larger than this is compacted to its last `max_turns` exchanges on the next append.
const COMPACT_BYTES: u64 = 1 << 20;

/// One line of a history file.
#[derive(serde::Serialize, serde::Deserialize)]
struct Line {
    session: String,
    user: String,
    assistant: String,
    /// Seconds since the Unix epoch when the exchange completed.
    time: f64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    user_tokens: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    assistant_tokens: Option<u32>,
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
        Ok(HistoryFiles { dir: dir.to_path_buf(), writes: Arc::new(Mutex::new(())) })
    }

    fn path(&self, session_id: &str) -> PathBuf {
        self.dir.join(file_name(session_id))
    }

    fn lock(&self) -> MutexGuard<'_, ()> {
        self.writes.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Appends one completed exchange and waits until it is on disk.
    pub fn append(&self, session_id: &str, turn: &Turn, max_turns: usize) -> io::Result<()> {
        self.append_if(session_id, turn, max_turns, || true).map(|_| ())
    }

    /// Appends like [`append`](Self::append), but only if `still_current()` (checked under the
    /// write lock) says the session was not reset meanwhile. Returns whether it was written.
    pub fn append_if(&self, session_id: &str, turn: &Turn, max_turns: usize, still_current: impl FnOnce() -> bool) -> io::Result<bool> {
        let time = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs_f64()).unwrap_or(0.0);
        let line = Line {
            session: session_id.into(),
            user: turn.user.clone(),
            assistant: turn.assistant.clone(),
            time,
            user_tokens: turn.user_tokens,
            assistant_tokens: turn.assistant_tokens,
        };
        let mut bytes = serde_json::to_vec(&line).map_err(io::Error::other)?;
        bytes.push(b'\n');
        let path = self.path(session_id);
        let _guard = self.lock();
        if !still_current() {
            return Ok(false);
        }
        let mut file = OpenOptions::new().create(true).append(true).open(&path)?;
        file.write_all(&bytes)?;
        file.sync_data()?;
        if file.metadata()?.len() > COMPACT_BYTES {
            read_file(&path, max_turns);
        }
        Ok(true)
    }

    /// Deletes a session's file (missing is fine).
    pub fn remove(&self, session_id: &str) -> io::Result<()> {
        let _guard = self.lock();
        match fs::remove_file(self.path(session_id)) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        }
    }

    /// Deletes every history file in the folder.
    pub fn remove_all(&self) -> io::Result<()> {
        let _guard = self.lock();
        for entry in fs::read_dir(&self.dir)? {
            let path = entry?.path();
            if path.extension().is_some_and(|e| e == "jsonl") {
                fs::remove_file(path)?;
            }
        }
        Ok(())
    }

    /// The saved exchanges of one session (empty without a file), at most `max_turns`.
    pub fn load(&self, session_id: &str, max_turns: usize) -> Vec<Turn> {
        let path = self.path(session_id);
        if !path.exists() {
            return Vec::new();
        }
        let _guard = self.lock();
        read_file(&path, max_turns).map(|saved| saved.turns).unwrap_or_default()
    }

    /// Reads every session back, most recently used first, repairing torn last lines, skipping
    /// corrupt ones, and compacting files to their last `max_turns` exchanges.
    pub fn load_all(&self, max_turns: usize) -> Vec<SavedSession> {
        let entries = match fs::read_dir(&self.dir) {
            Ok(entries) => entries,
            Err(e) => {
                log::error!("cannot read history_dir {}: {e}", self.dir.display());
                return Vec::new();
            }
        };
        let _guard = self.lock();
        let mut sessions: Vec<SavedSession> = entries
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|e| e == "jsonl"))
            .filter_map(|path| read_file(&path, max_turns))
            .collect();
        sessions.sort_by(|a, b| b.last_time.total_cmp(&a.last_time));
        sessions
    }
}

/// Reads one history file: repairs a torn tail, skips (and reports) corrupt lines, keeps the
/// last `max_turns` exchanges and rewrites the file when it held more. `None` if unreadable or
/// empty.
fn read_file(path: &Path, max_turns: usize) -> Option<SavedSession> {
    if let Err(e) = repair_torn_tail(path) {
        log::error!("history file {}: cannot repair ({e}); skipped", path.display());
        return None;
    }
    let file = match File::open(path) {
        Ok(f) => f,
        Err(e) => {
            log::error!("history file {}: {e}; skipped", path.display());
            return None;
        }
    };
    let mut lines: Vec<Line> = Vec::new();
    for (number, line) in BufReader::new(file).split(b'\n').enumerate() {
        let parsed = line
            .map_err(|e| e.to_string())
            .and_then(|bytes| serde_json::from_slice::<Line>(&bytes).map_err(|e| e.to_string()));
        match parsed {
            Ok(l) if lines.first().is_some_and(|first| first.session != l.session) => {
                log::warn!("history file {} line {}: belongs to another session; line skipped", path.display(), number + 1)
            }
            Ok(l) => lines.push(l),
            Err(e) => log::warn!("history file {} line {}: {e}; line skipped", path.display(), number + 1),
        }
    }
    if lines.len() > max_turns {
        lines.drain(..lines.len() - max_turns);
        if let Err(e) = rewrite(path, &lines) {
            log::error!("history file {}: could not compact ({e})", path.display());
        }
    }
    let last_time = lines.last()?.time;
    let id = lines[0].session.clone();
    let turns = lines.into_iter().map(|l| Turn::new(l.user, l.assistant).with_tokens(l.user_tokens, l.assistant_tokens)).collect();
    Some(SavedSession { id, turns, last_time })
}

/// Replaces a file's content atomically (write a sibling, fsync, rename).
fn rewrite(path: &Path, lines: &[Line]) -> io::Result<()> {
    let tmp = path.with_extension("jsonl.tmp");
    let mut out = Vec::new();
    for line in lines {
        serde_json::to_writer(&mut out, line).map_err(io::Error::other)?;
        out.push(b'\n');
    }
    let mut file = File::create(&tmp)?;
    file.write_all(&out)?;
    file.sync_data()?;
    fs::rename(&tmp, path)
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
        Turn::new(format!("u{n} é"), format!("a{n} 🤖")).with_tokens(Some(n + 10), (n % 2 == 0).then_some(n + 20))
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
        files.append("s/1", &turn(1), 10).unwrap();
        files.append("s/1", &turn(2), 10).unwrap();
        files.append("b", &turn(3), 10).unwrap();
        // a torn write, then a corrupt line in the other file
        let path = dir.join(file_name("s/1"));
        OpenOptions::new().append(true).open(&path).unwrap().write_all(b"{\"session\":\"s/1\",\"us").unwrap();
        OpenOptions::new().append(true).open(dir.join(file_name("b"))).unwrap().write_all(b"not json\n").unwrap();
        let loaded = files.load_all(10);
        assert_eq!(loaded.iter().map(|s| s.id.as_str()).collect::<Vec<_>>(), ["b", "s/1"], "most recent first");
        assert_eq!(loaded[1].turns, vec![turn(1), turn(2)]);
        assert_eq!(loaded[0].turns, vec![turn(3)]);
        files.append("s/1", &turn(4), 10).unwrap();
        assert_eq!(files.load("s/1", 10), vec![turn(1), turn(2), turn(4)]);
        assert_eq!(files.load("s/1", 2), vec![turn(2), turn(4)], "compacted to the last 2");
        assert_eq!(files.load("s/1", 10), vec![turn(2), turn(4)]);
        assert!(!files.append_if("s/1", &turn(5), 10, || false).unwrap(), "a reset session is not written");
        files.remove("s/1").unwrap();
        assert!(files.load("s/1", 10).is_empty());
        files.remove_all().unwrap();
        assert!(files.load_all(10).is_empty());
        let _ = fs::remove_dir_all(&dir);
    }

    #[test]
    fn token_counts_are_saved_and_files_without_them_still_load() {
        let dir = temp_dir("tokens");
        let files = HistoryFiles::open(&dir).unwrap();
        files.append("s", &turn(2), 10).unwrap();
        let written = fs::read_to_string(dir.join(file_name("s"))).unwrap();
        assert!(written.contains("\"user_tokens\":12") && written.contains("\"assistant_tokens\":22"), "{written}");
        files.append("s", &Turn::new("never counted", "cancelled"), 10).unwrap();
        let written = fs::read_to_string(dir.join(file_name("s"))).unwrap();
        assert!(!written.lines().nth(1).unwrap().contains("_tokens"), "no count, no field: {written}");
        // a line as written before token counts existed
        OpenOptions::new().append(true).open(dir.join(file_name("s"))).unwrap()
            .write_all(b"{\"session\":\"s\",\"user\":\"old\",\"assistant\":\"line\",\"time\":1700000000.5}\n").unwrap();
        assert_eq!(files.load("s", 10), vec![turn(2), Turn::new("never counted", "cancelled"), Turn::new("old", "line")]);
        let _ = fs::remove_dir_all(&dir);
    }
}
