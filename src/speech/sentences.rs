//! A streaming sentence segmenter for text-to-speech: push the answer pieces of one request as
//! they stream; each complete sentence comes out the moment the text after it proves its end.
//!
//! Generic boundaries come from Unicode's sentence rules (UAX #29, via the `unicode-segmentation`
//! crate): terminators of every script (`.` `!` `?`, CJK `。！？`, `؟`, `।`, ...), closing quotes
//! and brackets staying with their sentence (`He said "Hi."`), no break inside numbers (`3.14`,
//! `1,000.5`) or before a lowercase continuation (`e.g. at`, `wait... what`). On top of them this
//! module adds the rules a speaking robot needs:
//! * line breaks end a sentence (Markdown lines, list items);
//! * `…` ends a sentence only before an uppercase start, like `...` (`Well… Then` splits,
//!   `well… then` does not);
//! * no break inside a whitespace-free token after a Latin terminator: URLs
//!   (`https://example.com/a.b?c=d`), e-mail addresses, file names (`config.yaml`), `Hi!Bob`;
//!   CJK terminators need no space after them;
//! * no break after common abbreviations and titles ([`ABBREVIATIONS`], case-insensitive, e.g.
//!   `Dr.` `Mr.` `St.` `etc.` `vs.` `approx.`), after dotted abbreviations (`e.g.`, `i.e.`, `U.S.`),
//!   after initials (`J. R. R. Tolkien`; not the pronoun `I`), or after list markers (`1.`, `a.`
//!   at a line start);
//! * Markdown emphasis closing after a terminator (`**Note.** Then`) stays with its sentence.
//!
//! Timing: a line break ends a sentence at once. After `!`, `?` and other terminators the first
//! non-space char after them proves the end (UAX #29: a following `,` or terminator continues
//! the sentence); models stream the space and the next word as one token, so this costs no
//! time. After `.` and `…` the first letter does (it rules out `e.g. at`, abbreviations, `wait...
//! what`). [`SentenceSplitter::finish`] flushes the rest at the end of the answer.
//!
//! Length: a sentence shorter than `min_sentence_chars` joins the next one (the last one is
//! flushed whatever its length); text that reaches `max_sentence_chars` with no end in sight is
//! cut before the limit at the last comma (in the second half), else at the last space (keeping
//! at least the minimum), else at the limit on a grapheme boundary, so a TTS never waits long.
//! Lengths count Unicode scalar values of the trimmed sentence.
//!
//! Invariant: the sentences are trimmed and appear in the input in order, separated only by
//! whitespace; so joined with one space they equal the input up to whitespace.
//!
//! Why `unicode-segmentation`: it is the unicode-rs implementation of UAX #29, conformance-tested,
//! with the Unicode data for all scripts. Streaming-aware segmenters on crates.io (e.g. for TTS)
//! are young single-author crates with English-only rules; UAX #29 plus the rules above covers
//! more, and its only lookahead (the letter after a period) is handled here.

use unicode_properties::{GeneralCategory, UnicodeGeneralCategory};
use unicode_segmentation::UnicodeSegmentation;

/// Abbreviations after which a period never ends a sentence (compared lowercased, without the
/// period). Dotted forms (`e.g.`, `i.e.`, `U.S.`, `a.m.`) are recognised by shape instead.
pub const ABBREVIATIONS: &[&str] = &[
    "mr", "mrs", "ms", "mx", "dr", "prof", "st", "mt", "sr", "jr", "rev", "hon", "gen", "gov", "sen", "rep",
    "lt", "col", "capt", "sgt", "cmdr", "adm", "maj", "messrs", "mme", "mlle", "etc", "vs", "approx", "cf",
    "al", "fig", "figs", "eq", "eqs", "vol", "vols", "ch", "pp", "dept", "est", "ca", "ave", "blvd", "rd",
    "viz", "resp", "incl", "excl", "nos",
];

/// Limits of one splitter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SentenceConfig {
    /// A sentence with fewer chars joins the next one (default 10).
    pub min_sentence_chars: usize,
    /// A run-on is cut before it gets longer than this (default 200).
    pub max_sentence_chars: usize,
}

impl Default for SentenceConfig {
    fn default() -> Self {
        Self { min_sentence_chars: 10, max_sentence_chars: 200 }
    }
}

impl SentenceConfig {
    /// Checks the limits (for parameter validation). The splitter itself never fails: it uses
    /// at least 1 for the maximum and a minimum below it.
    pub fn validate(&self) -> Result<(), String> {
        if self.max_sentence_chars == 0 {
            return Err("max_sentence_chars must be at least 1".into());
        }
        if self.min_sentence_chars >= self.max_sentence_chars {
            return Err(format!(
                "min_sentence_chars ({}) must be smaller than max_sentence_chars ({})",
                self.min_sentence_chars, self.max_sentence_chars
            ));
        }
        Ok(())
    }
}

/// Streaming sentence splitter for one answer; see the module doc.
#[derive(Debug, Clone)]
pub struct SentenceSplitter {
    min: usize,
    max: usize,
    /// Text not yet emitted.
    buf: String,
    /// Bytes of `buf` that end in a decided boundary but were too short: they join the next one.
    joined: usize,
    /// `buf` starts at a line start (the start of the answer, or after a line break).
    at_line_start: bool,
    /// Run-on cuts made while a boundary was still undecided (see `next_cut`): only then can
    /// the sentences depend on how the text was split into pieces.
    forced_cuts: usize,
}

enum Decision {
    /// A boundary: the sentence ends before this byte.
    At(usize),
    NotHere,
    /// The text after the candidate does not decide it yet; the boundary would be before this
    /// byte if it is known.
    Wait(Option<usize>),
}

/// The end of the next sentence; a run-on piece is emitted even when short.
struct Cut {
    at: usize,
    run_on: bool,
}

/// What the buffered text says about the next sentence end.
enum Next {
    At(usize),
    /// The first candidate is undecided (where it would end the sentence, if known).
    Waiting(Option<usize>),
    Unknown,
}

fn is_line_break(c: char) -> bool {
    matches!(c, '\n' | '\r' | '\u{85}' | '\u{2028}' | '\u{2029}')
}

fn is_close(c: char) -> bool {
    matches!(c, '"' | '\'')
        || matches!(c.general_category(), GeneralCategory::ClosePunctuation | GeneralCategory::FinalPunctuation
            | GeneralCategory::InitialPunctuation | GeneralCategory::OpenPunctuation)
}

fn is_md_mark(c: char) -> bool {
    matches!(c, '*' | '_' | '~' | '`')
}

/// Terminators after which no space follows (CJK full-width forms).
fn is_cjk_terminator(c: char) -> bool {
    matches!(c, '。' | '！' | '？' | '｡' | '．')
}

fn is_period(c: char) -> bool {
    matches!(c, '.' | '\u{2024}' | '\u{FE52}')
}

/// Terminators of UAX #29 (STerm and ATerm) that matter here, plus `…`.
fn is_terminator(c: char) -> bool {
    is_period(c) || is_cjk_terminator(c)
        || matches!(c, '!' | '?' | '…' | '‼' | '⁇' | '⁈' | '⁉' | '؟' | '۔' | '।' | '॥' | '։' | '።' | '፧')
}

/// `e.g`, `U.S`, `a.m`: single letters joined by periods.
fn is_dotted_abbreviation(word: &str) -> bool {
    word.contains('.') && word.split('.').all(|part| {
        let mut chars = part.chars();
        matches!((chars.next(), chars.next()), (Some(c), None) if c.is_alphabetic())
    })
}

fn is_initial(word: &str) -> bool {
    let mut chars = word.chars();
    matches!((chars.next(), chars.next()), (Some(c), None) if c.is_uppercase() && c != 'I')
}

fn is_list_marker_word(word: &str) -> bool {
    let digits = !word.is_empty() && word.len() <= 3 && word.bytes().all(|b| b.is_ascii_digit());
    let letter = word.len() == 1 && word.bytes().all(|b| b.is_ascii_lowercase());
    digits || letter
}

impl SentenceSplitter {
    /// A splitter for one answer.
    pub fn new(config: SentenceConfig) -> Self {
        let max = config.max_sentence_chars.max(1);
        let min = config.min_sentence_chars.min(max - 1);
        Self { min, max, buf: String::new(), joined: 0, at_line_start: true, forced_cuts: 0 }
    }

    /// Adds one answer piece; returns the sentences it completed (trimmed, non-empty).
    pub fn push(&mut self, piece: &str) -> Vec<String> {
        self.buf.push_str(piece);
        self.drain(false)
    }

    /// Ends the answer: returns the remaining sentences, the last one whatever its length.
    pub fn finish(&mut self) -> Vec<String> {
        let mut out = self.drain(true);
        let rest = self.buf.trim();
        if !rest.is_empty() {
            out.push(rest.to_string());
        }
        self.buf.clear();
        self.joined = 0;
        self.at_line_start = true;
        out
    }

    fn drain(&mut self, at_end: bool) -> Vec<String> {
        let mut out = Vec::new();
        while let Some(Cut { at, run_on }) = self.next_cut(at_end) {
            let sentence = self.buf[..at].trim();
            if !run_on && sentence.chars().count() < self.min {
                self.joined = at;
                continue;
            }
            if !sentence.is_empty() {
                out.push(sentence.to_string());
            }
            let ending = self.buf[..at].trim_end_matches(|c: char| c.is_whitespace() && !is_line_break(c));
            self.at_line_start = ending.ends_with(is_line_break);
            self.buf.drain(..at);
            self.joined = 0;
        }
        out
    }

    /// Where the next sentence ends: a decided boundary, or a cut of a run-on.
    fn next_cut(&mut self, at_end: bool) -> Option<Cut> {
        let run_on = |at| Cut { at, run_on: true };
        match self.next_boundary(at_end) {
            Next::At(p) => Some(self.run_on_cut(p, at_end).map_or(Cut { at: p, run_on: false }, run_on)),
            // Too long to wait for the decision (a period followed by more than the limit without
            // a letter): the undecided boundary is the best cut.
            Next::Waiting(p) => {
                let cut = self.run_on_cut(self.buf.len(), at_end)?;
                self.forced_cuts += 1;
                Some(run_on(match p {
                    Some(p) if p > self.joined && self.buf[..p].trim().chars().count() <= self.max => p,
                    _ => cut,
                }))
            }
            Next::Unknown => self.run_on_cut(self.buf.len(), at_end).map(run_on),
        }
    }

    fn next_boundary(&self, at_end: bool) -> Next {
        let text = self.buf.as_str();
        let mut candidates: Vec<usize> = text.split_sentence_bound_indices().map(|(i, _)| i).collect();
        candidates.extend(text.match_indices('…').filter_map(|(i, _)| {
            let rest = text[i + '…'.len_utf8()..].trim_start_matches(is_close);
            let after_space = rest.trim_start();
            (after_space.len() < rest.len() && !after_space.is_empty()).then(|| text.len() - after_space.len())
        }));
        candidates.retain(|&p| p > self.joined && p < text.len());
        candidates.sort_unstable();
        candidates.dedup();
        for p in candidates {
            match self.decide(p, at_end) {
                Decision::At(cut) if cut > self.joined => return Next::At(cut),
                Decision::At(_) | Decision::NotHere => {}
                Decision::Wait(cut) => return Next::Waiting(cut),
            }
        }
        match self.certain_end() {
            Some(cut) if !at_end && cut > self.joined => Next::At(cut),
            _ => Next::Unknown,
        }
    }

    /// A boundary at the very end of the buffer that no continuation can undo: a line break
    /// (UAX #29 rule SB4).
    fn certain_end(&self) -> Option<usize> {
        self.buf.ends_with(is_line_break).then_some(self.buf.len())
    }

    /// Decides a candidate boundary `p` (from UAX #29, or after `…` + spaces).
    fn decide(&self, p: usize, at_end: bool) -> Decision {
        let text = self.buf.as_str();
        let body = text[..p].trim_end();
        let spaces = &text[body.len()..p];
        if spaces.chars().any(is_line_break) {
            return Decision::At(p);
        }
        let closed = body.trim_end_matches(is_close);
        let Some(term) = closed.chars().next_back() else { return Decision::NotHere };
        if is_cjk_terminator(term) {
            return Decision::At(p);
        }
        let mut cut = p;
        if spaces.is_empty() {
            // Only Markdown emphasis marks may stand between the terminator and whitespace.
            let rest = text[p..].trim_start_matches(is_md_mark);
            match rest.chars().next() {
                Some(c) if c.is_whitespace() && rest.len() < text.len() - p => cut = text.len() - rest.len(),
                None if !at_end => return Decision::Wait(None),
                _ => return Decision::NotHere,
            }
        }
        if !is_period(term) && term != '…' {
            return Decision::At(cut);
        }
        let stem = &closed[..closed.len() - term.len_utf8()];
        let ellipsis = term == '…' || stem.ends_with(is_period);
        if !ellipsis {
            // What stands before the period decides these at once.
            let word_start = stem.rfind(char::is_whitespace).map_or(0, |i| i + stem[i..].chars().next().map_or(1, char::len_utf8));
            let word = stem[word_start..].trim_start_matches(|c| is_close(c) || is_md_mark(c));
            let lower = word.to_lowercase();
            if ABBREVIATIONS.contains(&lower.as_str()) || is_dotted_abbreviation(word) || is_initial(word) {
                return Decision::NotHere;
            }
            if is_list_marker_word(word) && self.at_line_start_before(word_start) {
                return Decision::NotHere;
            }
        }
        // After a period UAX #29 looks ahead to the next letter; so does the ellipsis rule.
        // (Letters, line breaks and UAX #29 terminators end its look-ahead; `…` is none of them.)
        let next = text[cut..].chars().find(|&c| c.is_alphabetic() || is_line_break(c) || (is_terminator(c) && c != '…'));
        if next.is_none() && !at_end {
            return Decision::Wait(Some(cut));
        }
        let upper_start = next.is_some_and(|c| c.is_alphabetic() && !c.is_lowercase());
        if ellipsis && !upper_start {
            return Decision::NotHere;
        }
        Decision::At(cut)
    }

    /// Only horizontal whitespace stands between a line start and byte `at` of the buffer.
    fn at_line_start_before(&self, at: usize) -> bool {
        let before = &self.buf[..at];
        match before.rfind(is_line_break) {
            Some(i) => before[i..].chars().skip(1).all(char::is_whitespace),
            None => self.at_line_start && before.chars().all(char::is_whitespace),
        }
    }

    /// A cut for text that would exceed `max` chars before byte `end`, or `None`. In order of
    /// preference: the last comma in the second half of the limit, the last space (leaving at
    /// least `min` chars, then any), the end of the short sentences waiting to join (a decided
    /// boundary), else the limit on a grapheme boundary. Never where more text could change it
    /// (at the end of the buffer, inside a grapheme still streaming).
    fn run_on_cut(&self, end: usize, at_end: bool) -> Option<usize> {
        let segment = &self.buf[..end];
        let lead = segment.len() - segment.trim_start().len();
        let body = &segment[lead..];
        if body.trim_end().chars().count() <= self.max {
            return None;
        }
        let usable = |cut: usize| cut > self.joined && (cut < self.buf.len() || at_end);
        // (char number, byte after the char, char) of the first `max` chars and the one after
        // them (a space there still leaves `max` chars before it).
        let window: Vec<(usize, usize, char)> =
            body.char_indices().take(self.max + 1).enumerate().map(|(n, (i, c))| (n, lead + i, c)).collect();
        let comma = window.iter().rev().find_map(|&(n, i, c)| {
            let after = i + c.len_utf8();
            // A Latin comma counts only before whitespace (not inside `1,000`).
            let spaced = matches!(c, ',' | ';') && self.buf[after..].starts_with(char::is_whitespace);
            ((spaced || matches!(c, '，' | '、' | '；')) && n < self.max && n + 1 >= self.max / 2 && usable(after))
                .then_some(after)
        });
        let space = |min_chars: usize| {
            window.iter().rev().find_map(|&(n, i, c)| (c.is_whitespace() && n >= min_chars && usable(i)).then_some(i))
        };
        let hard = || {
            let limit = window.last().map_or(end, |&(n, i, c)| if n < self.max { i + c.len_utf8() } else { i });
            let mut last = None;
            for (i, g) in self.buf[lead..].grapheme_indices(true) {
                let g_end = lead + i + g.len();
                if last.is_some() && g_end > limit {
                    break;
                }
                last = Some(g_end);
            }
            last.filter(|&cut| usable(cut))
        };
        comma
            .or_else(|| space(self.min.max(1)))
            .or_else(|| space(1))
            .or((self.joined > 0).then_some(self.joined))
            .or_else(hard)
            .or(Some(end).filter(|&cut| usable(cut)))
    }
}

#[cfg(test)]
#[path = "sentences_tests.rs"]
mod tests;
