//! What an input must be before it is queued (session id, length), and how a session id is
//! printed in a log line.

use crate::config::Config;
use crate::session::Request;

/// Session ids longer than this are rejected (they name files and appear in every message).
pub const MAX_SESSION_ID_CHARS: usize = 128;

/// Validates an input before it is queued.
pub(super) fn check_input(request: &Request, config: &Config) -> Result<(), String> {
    let id = &request.session_id;
    if id.chars().count() > MAX_SESSION_ID_CHARS {
        return Err(format!("session id is {} characters long; the limit is {MAX_SESSION_ID_CHARS}", id.chars().count()));
    }
    if id.chars().any(char::is_control) {
        return Err(format!("session id '{}' contains control characters", printable(id)));
    }
    let chars = request.text.chars().count();
    if chars > config.max_input_chars {
        return Err(format!("input is {chars} characters long; the limit is {} (max_input_chars)", config.max_input_chars));
    }
    Ok(())
}

/// A session id safe to print in a log line.
pub(super) fn printable(id: &str) -> String {
    id.chars().take(MAX_SESSION_ID_CHARS).map(|c| if c.is_control() { '?' } else { c }).collect()
}
