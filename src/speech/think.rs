//! A streaming splitter for reasoning written into `message.content` as a `<think>…</think>`
//! block (older Ollama servers, reasoning models run with `think: false`, Ollama-compatible
//! servers), so that it never reaches speech, partials, `Response.text` or the history.
//!
//! Feed it the content pieces of one answer in order ([`ThinkSplitter::push`]); each call returns
//! the answer text and the thinking text that piece made certain ([`ThinkSplit`]).
//! [`ThinkSplitter::finish`] flushes what is held back when the stream ends.
//!
//! Rules (the same as Ollama's own parser, `thinking/parser.go`, plus the spelling and case
//! variants that compatible servers send):
//! * A block is recognised only at the **start** of the answer, after optional whitespace, and
//!   only one. Reasoning models emit it first; an answer that merely talks about the tag (`Use
//!   <think> to …`) must stay intact, which a tag honoured anywhere would swallow.
//! * Tags: `<think>`/`</think>` and `<thinking>`/`</thinking>`, ASCII case-insensitive
//!   (`<THINK>`, `<Think>`); the closing tag must have the opening tag's name.
//! * Whitespace right after the opening tag and right after the closing tag is dropped (so
//!   `<think>\nplan\n</think>\n\nHello!` gives the answer `Hello!`). Whitespace before the
//!   opening tag is dropped with it; an answer without a block keeps its leading whitespace.
//! * A block that never closes makes everything after the opening tag thinking.
//! * Only what could still be (the start of) a tag is held back: leading whitespace and a tag
//!   prefix before the answer starts, and a suffix that is a prefix of the closing tag inside the
//!   block. Text that only looks like a tag start (`<th` then `e table>`) comes out unchanged.
//!
//! Every input char is accounted for: `input == ws + open tag + ws + thinking + close tag + ws +
//! answer` (or `input == answer` without a block), over any split into pieces.
//!
//! Not handled: a stream that starts inside the reasoning and only has a closing tag (some chat
//! templates put `<think>` into the prompt). Telling it apart needs the whole answer before any of
//! it can be spoken.

/// What one piece (or the end of the stream) made certain.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ThinkSplit {
    /// Answer text: goes to partials, `Response.text`, speech and history.
    pub answer: String,
    /// Reasoning text: goes where Ollama's `message.thinking` goes, never to speech or history.
    pub thinking: String,
}

/// A known tag pair; names are matched ASCII case-insensitively.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Tags {
    open: &'static str,
    close: &'static str,
}

const TAGS: [Tags; 2] = [
    Tags { open: "<think>", close: "</think>" },
    Tags { open: "<thinking>", close: "</thinking>" },
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Nothing but whitespace (and maybe a tag prefix) seen yet.
    LookingForOpening,
    /// Just after the opening tag: dropping whitespace.
    ThinkingStart(Tags),
    /// Inside the block.
    Thinking(Tags),
    /// Just after the closing tag: dropping whitespace.
    AfterBlock,
    /// Everything from here on is answer.
    Answer,
}

/// Splits the content stream of one answer into answer and thinking text; see the module doc.
#[derive(Debug, Clone)]
pub struct ThinkSplitter {
    state: State,
    /// Text received but not yet classified (see the module doc for what is held).
    held: String,
}

impl Default for ThinkSplitter {
    fn default() -> Self {
        Self::new()
    }
}

enum OpenMatch {
    Full(Tags),
    Prefix,
    No,
}

fn starts_with_ci(text: &str, prefix: &str) -> bool {
    text.len() >= prefix.len() && text.as_bytes()[..prefix.len()].eq_ignore_ascii_case(prefix.as_bytes())
}

fn match_open(trimmed: &str) -> OpenMatch {
    if let Some(tags) = TAGS.iter().find(|t| starts_with_ci(trimmed, t.open)) {
        return OpenMatch::Full(*tags);
    }
    if TAGS.iter().any(|t| starts_with_ci(t.open, trimmed)) {
        OpenMatch::Prefix
    } else {
        OpenMatch::No
    }
}

/// Byte index of the first ASCII-case-insensitive occurrence of `tag` (ASCII) in `text`.
fn find_ci(text: &str, tag: &str) -> Option<usize> {
    let (hay, needle) = (text.as_bytes(), tag.as_bytes());
    (0..=hay.len().saturating_sub(needle.len()))
        .find(|&i| hay.len() >= needle.len() && hay[i..i + needle.len()].eq_ignore_ascii_case(needle))
}

/// Length of the longest suffix of `text` that is a proper prefix of `tag` (ASCII, any case).
/// The suffix starts with `<`, so the split point is a char boundary.
fn tag_prefix_suffix(text: &str, tag: &str) -> usize {
    let hay = text.as_bytes();
    (1..tag.len().min(hay.len() + 1))
        .rev()
        .find(|&n| hay[hay.len() - n..].eq_ignore_ascii_case(&tag.as_bytes()[..n]))
        .unwrap_or(0)
}

impl ThinkSplitter {
    /// A splitter for a new answer.
    pub fn new() -> Self {
        Self { state: State::LookingForOpening, held: String::new() }
    }

    /// Classifies one content piece; returns what became certain (possibly nothing).
    pub fn push(&mut self, piece: &str) -> ThinkSplit {
        let mut out = ThinkSplit::default();
        if self.state == State::Answer {
            out.answer.push_str(piece);
            return out;
        }
        self.held.push_str(piece);
        loop {
            match self.state {
                State::LookingForOpening => {
                    let trimmed = self.held.trim_start();
                    match match_open(trimmed) {
                        OpenMatch::Full(tags) => {
                            self.held = trimmed[tags.open.len()..].to_string();
                            self.state = State::ThinkingStart(tags);
                        }
                        OpenMatch::Prefix => return out,
                        OpenMatch::No => {
                            out.answer.push_str(&std::mem::take(&mut self.held));
                            self.state = State::Answer;
                            return out;
                        }
                    }
                }
                State::ThinkingStart(tags) => {
                    let trimmed = self.held.trim_start();
                    if trimmed.is_empty() {
                        self.held.clear();
                        return out;
                    }
                    self.held = trimmed.to_string();
                    self.state = State::Thinking(tags);
                }
                State::Thinking(tags) => {
                    if let Some(at) = find_ci(&self.held, tags.close) {
                        out.thinking.push_str(&self.held[..at]);
                        self.held = self.held[at + tags.close.len()..].to_string();
                        self.state = State::AfterBlock;
                    } else {
                        let keep = tag_prefix_suffix(&self.held, tags.close);
                        let cut = self.held.len() - keep;
                        out.thinking.push_str(&self.held[..cut]);
                        self.held.drain(..cut);
                        return out;
                    }
                }
                State::AfterBlock => {
                    let trimmed = self.held.trim_start();
                    if !trimmed.is_empty() {
                        out.answer.push_str(trimmed);
                        self.state = State::Answer;
                    }
                    self.held.clear();
                    return out;
                }
                State::Answer => {
                    out.answer.push_str(&std::mem::take(&mut self.held));
                    return out;
                }
            }
        }
    }

    /// Ends the stream: flushes what was held back. Before any tag it is answer (a lone `<thi`
    /// is text); inside an unclosed block it is thinking (a partial `</thi` included).
    pub fn finish(&mut self) -> ThinkSplit {
        let held = std::mem::take(&mut self.held);
        let mut out = ThinkSplit::default();
        match self.state {
            State::LookingForOpening => out.answer = held,
            State::Thinking(_) => out.thinking = held,
            State::ThinkingStart(_) | State::AfterBlock | State::Answer => {}
        }
        self.state = State::Answer;
        out
    }

    /// True while the stream is inside a thinking block (for a `thinking` session state).
    pub fn in_thinking(&self) -> bool {
        matches!(self.state, State::ThinkingStart(_) | State::Thinking(_))
    }
}

#[cfg(test)]
#[path = "think_tests.rs"]
mod tests;
