//! Speakable text for text-to-speech: Markdown and emoji removed, whitespace collapsed.
//!
//! [`speakable`] filters one whole text; [`SpeakableFilter`] filters the sentences of one answer
//! in order and remembers, across them, whether a fenced code block is open (the sentence
//! splitter cuts at line breaks, so a block spans many sentences).
//!
//! What is removed (Markdown is parsed with `pulldown-cmark`, the CommonMark parser):
//! * emphasis `*` `_` `**` `~~`, heading marks `#`, list bullets `-` `*` `+` and numbers `1.`,
//!   blockquote `>`, task boxes `[ ]`, HTML tags, thematic breaks and setext underlines;
//! * links keep their text, their targets go (`[docs](https://…)` → `docs`); images go whole
//!   (alt text is for eyes, and a robot reading "screenshot of the settings page" is noise);
//! * inline code keeps its text (`` `ls -l` `` → `ls -l`: usually a name worth saying); fenced
//!   code blocks (```` ``` ```` or `~~~`) go whole, fences included: code read aloud helps nobody;
//! * table rows become their cells joined by commas; delimiter rows go;
//! * stray emphasis marks a sentence cut left unmatched (`*This is` … `it.*`), but not marks
//!   inside words (`snake_case`) or a lone `*` between spaces (`5 * 3`);
//! * emoji: every grapheme cluster with a non-ASCII char whose Unicode `Emoji` or
//!   `Emoji_Component` property is set (data: `unicode-properties`, UTS #51), except the joiners
//!   U+200D/U+FE0E/U+FE0F alone (Indic scripts use U+200D). That includes ZWJ sequences, flags,
//!   keycaps (`1️⃣`) and skin tones, and also text-style symbols with the property (`©`, `™`, `‼`,
//!   `✔`); ASCII digits, `#` and `*` stay.
//!
//! Then whitespace is collapsed to single spaces, spaces before punctuation that a removal left
//! (`Done 🎉!` → `Done!`) are dropped, and the result is trimmed. An answer that was only
//! Markdown or emoji becomes `""`.

use pulldown_cmark::{Event, Options, Parser, Tag, TagEnd};
use unicode_properties::UnicodeEmoji;
use unicode_segmentation::UnicodeSegmentation;

/// The speakable form of `text` (a whole answer, or one sentence on its own).
pub fn speakable(text: &str) -> String {
    SpeakableFilter::new().filter(text)
}

/// An open fenced code block: its fence char and length (CommonMark: a closing fence uses the
/// same char, at least as many).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Fence {
    mark: char,
    len: usize,
}

/// Filters the sentences of one answer in order; see the module doc.
#[derive(Debug, Clone, Default)]
pub struct SpeakableFilter {
    fence: Option<Fence>,
}

impl SpeakableFilter {
    /// A filter for a new answer.
    pub fn new() -> Self {
        Self::default()
    }

    /// The speakable form of the next sentence (or text) of the answer; may be `""`.
    pub fn filter(&mut self, text: &str) -> String {
        let prose = self.prose_lines(text);
        let plain = markdown_to_text(&prose);
        tidy(&remove_emoji(&plain))
    }

    /// Drops code-block lines (tracking fences across calls) and table delimiter rows, turns
    /// table rows into comma-separated cells, and unindents the rest (so that no line reads as
    /// an indented code block).
    fn prose_lines(&mut self, text: &str) -> String {
        let mut kept = Vec::new();
        for line in text.lines() {
            let line = line.trim();
            if let Some(open) = self.fence {
                if fence_of(line).is_some_and(|f| f.mark == open.mark && f.len >= open.len && line.trim_start_matches(f.mark).is_empty()) {
                    self.fence = None;
                }
                continue;
            }
            if let Some(fence) = fence_of(line) {
                self.fence = Some(fence);
                continue;
            }
            let marks_only = |set: &str| !line.is_empty() && line.chars().all(|c| set.contains(c) || c == ' ');
            if (marks_only("|-:") && line.contains('-') && line.contains('|')) || (marks_only("=-*_") && line.len() >= 3) {
                continue;
            }
            if line.starts_with('|') {
                let cells: Vec<&str> = line.trim_matches('|').split('|').map(str::trim).filter(|c| !c.is_empty()).collect();
                kept.push(cells.join(", "));
                continue;
            }
            kept.push(line.to_string());
        }
        kept.join("\n")
    }
}

/// The fence a line opens, if it is a fence line (three or more backticks or tildes; a backtick
/// fence's info string has no backtick, else it is inline code).
fn fence_of(line: &str) -> Option<Fence> {
    let mark = line.chars().next().filter(|c| matches!(c, '`' | '~'))?;
    let len = line.chars().take_while(|&c| c == mark).count();
    let info = &line[len * mark.len_utf8()..];
    (len >= 3 && !(mark == '`' && info.contains('`'))).then_some(Fence { mark, len })
}

/// The text of a Markdown snippet, without markup (see the module doc).
fn markdown_to_text(markdown: &str) -> String {
    let mut out = String::with_capacity(markdown.len());
    let mut hidden = 0usize; // inside an image or a code block
    for event in Parser::new_ext(markdown, Options::ENABLE_STRIKETHROUGH | Options::ENABLE_TASKLISTS) {
        match event {
            Event::Text(text) | Event::Code(text) if hidden == 0 => out.push_str(&text),
            Event::Start(Tag::Image { .. } | Tag::CodeBlock(_)) => hidden += 1,
            Event::End(TagEnd::Image | TagEnd::CodeBlock) => hidden = hidden.saturating_sub(1),
            // A number too large for a list is a year or an amount that began a line ("1999. It").
            Event::Start(Tag::List(Some(first))) if first > 99 => out.push_str(&format!(" {first}. ")),
            Event::Start(Tag::Paragraph | Tag::Heading { .. } | Tag::Item | Tag::BlockQuote(_) | Tag::TableCell)
            | Event::End(TagEnd::Paragraph | TagEnd::Heading(_) | TagEnd::Item | TagEnd::BlockQuote(_) | TagEnd::TableCell)
            | Event::SoftBreak
            | Event::HardBreak
            | Event::Rule
            | Event::Html(_)
            | Event::InlineHtml(_) => out.push(' '),
            _ => {}
        }
    }
    out
}

fn is_emoji_grapheme(grapheme: &str) -> bool {
    grapheme.chars().any(|c| {
        !c.is_ascii() && !matches!(c, '\u{200D}' | '\u{FE0E}' | '\u{FE0F}') && c.is_emoji_char_or_emoji_component()
    })
}

fn remove_emoji(text: &str) -> String {
    text.graphemes(true).map(|g| if is_emoji_grapheme(g) { " " } else { g }).collect()
}

fn is_md_mark(c: char) -> bool {
    matches!(c, '*' | '_' | '~' | '`')
}

/// Collapses whitespace, drops stray emphasis marks and spaces left before punctuation.
fn tidy(text: &str) -> String {
    let chars: Vec<char> = text.chars().collect();
    let mut cleaned = String::with_capacity(text.len());
    let mut i = 0;
    while i < chars.len() {
        if !is_md_mark(chars[i]) {
            cleaned.push(chars[i]);
            i += 1;
            continue;
        }
        let end = (i..chars.len()).find(|&j| !is_md_mark(chars[j])).unwrap_or(chars.len());
        let (before, after) = (i.checked_sub(1).map(|j| chars[j]), chars.get(end).copied());
        let inside_word = before.is_some_and(char::is_alphanumeric) && after.is_some_and(char::is_alphanumeric);
        let lone_operator = end - i == 1 && chars[i] == '*' && before.is_some_and(char::is_whitespace)
            && after.is_some_and(char::is_whitespace);
        if inside_word || lone_operator {
            cleaned.extend(&chars[i..end]);
        } else {
            cleaned.push(' ');
        }
        i = end;
    }
    let mut out = String::with_capacity(cleaned.len());
    for word in cleaned.split_whitespace() {
        // Punctuation that a removal left standing alone (`Done 🎉!`), not `.5` or `:-)`.
        let mut word_chars = word.chars();
        let punctuation = word_chars.next().is_some_and(|c| matches!(c, ',' | '.' | '!' | '?' | ';' | ':' | '…' | '。' | '！' | '？' | '、' | '，'));
        let attaches = punctuation && word_chars.all(|c| !c.is_alphanumeric() && !matches!(c, '-' | '(' | ')'));
        if !out.is_empty() && !attaches {
            out.push(' ');
        }
        out.push_str(word);
    }
    out
}

#[cfg(test)]
#[path = "speakable_tests.rs"]
mod tests;
