//! # Speech: from streamed `message.content` to speakable sentences (no ROS, no I/O)
//!
//! The text side of a speaking robot, for one request at a time:
//!
//! ```text
//! chunk.content() ─► think::ThinkSplitter ─┬─► answer pieces ─► partials, Response.text, history
//!                                          │        │
//!                                          │        └─► sentences::SentenceSplitter
//!                                          │               └─► speakable::SpeakableFilter (speech_filter)
//!                                          │                      └─► Sentence { index, text } ─► TTS
//!                                          └─► thinking pieces ─► where message.thinking goes
//! ```
//!
//! * [`think`]: splits a `<think>…</think>` block that a model wrote into `content` from the
//!   answer, across piece boundaries.
//! * [`sentences`]: streaming sentence segmentation (UAX #29 plus abbreviations, numbers, URLs,
//!   list markers, line breaks), `min_sentence_chars` / `max_sentence_chars`.
//! * [`speakable`]: Markdown and emoji removal for TTS ([`speakable::speakable`] for a whole
//!   text such as `response_text`).
//! * [`SpeechStream`] chains the three for one request: push each content piece, get the answer
//!   piece (for partials), the thinking piece, and the sentences it completed, numbered 0, 1, 2…
//!   per request; `finish` at the end of the stream. Thinking that Ollama sends in
//!   `message.thinking` does not pass through here.
//!
//! ```
//! use ollama_bridge::speech::{SpeechConfig, SpeechStream};
//!
//! let mut speech = SpeechStream::new(SpeechConfig::default());
//! let mut spoken = Vec::new();
//! for piece in ["<think>Be brief.</think>\n\n", "Hello! How can I ", "help? I am **Robo**", " 🤖."] {
//!     let step = speech.push(piece); // step.answer → partial, step.thinking → thinking topic
//!     spoken.extend(step.sentences);
//! }
//! spoken.extend(speech.finish().sentences);
//! let texts: Vec<_> = spoken.iter().map(|s| (s.index, s.text.as_str())).collect();
//! assert_eq!(texts, [(0, "Hello! How can I help?"), (1, "I am Robo.")]);
//! ```

pub mod sentences;
pub mod speakable;
pub mod think;

#[cfg(test)]
mod test_util;

use sentences::{SentenceConfig, SentenceSplitter};
use speakable::SpeakableFilter;
use think::ThinkSplitter;

/// Settings of one [`SpeechStream`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SpeechConfig {
    /// Sentence length limits.
    pub sentences: SentenceConfig,
    /// Make sentences speakable (no Markdown, no emoji); parameter `speech_filter`.
    pub speech_filter: bool,
}

impl Default for SpeechConfig {
    fn default() -> Self {
        Self { sentences: SentenceConfig::default(), speech_filter: true }
    }
}

/// One finished sentence of a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sentence {
    /// 0, 1, 2, … within the request (`Sentence.index`); sentences that filter to nothing (a
    /// code block, emoji only) are skipped without using an index.
    pub index: u32,
    /// Trimmed, non-empty; speakable when `speech_filter` is on.
    pub text: String,
}

/// What one content piece (or the end of the stream) produced.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SpeechStep {
    /// Answer text (raw, without the thinking block): for partials, `Response.text`, history.
    pub answer: String,
    /// Reasoning text from a `<think>` block.
    pub thinking: String,
    /// Sentences this piece completed, in order.
    pub sentences: Vec<Sentence>,
}

/// The speech pipeline of one request; see the module doc.
#[derive(Debug, Clone)]
pub struct SpeechStream {
    think: ThinkSplitter,
    sentences: SentenceSplitter,
    filter: Option<SpeakableFilter>,
    next_index: u32,
}

impl SpeechStream {
    /// A pipeline for a new request.
    pub fn new(config: SpeechConfig) -> Self {
        Self {
            think: ThinkSplitter::new(),
            sentences: SentenceSplitter::new(config.sentences),
            filter: config.speech_filter.then(SpeakableFilter::new),
            next_index: 0,
        }
    }

    /// Processes one `chunk.content()` piece.
    pub fn push(&mut self, content: &str) -> SpeechStep {
        let split = self.think.push(content);
        let sentences = self.sentences.push(&split.answer);
        SpeechStep { sentences: self.number(sentences), answer: split.answer, thinking: split.thinking }
    }

    /// Ends the stream: flushes held-back text and the last sentences.
    pub fn finish(&mut self) -> SpeechStep {
        let split = self.think.finish();
        let mut sentences = self.sentences.push(&split.answer);
        sentences.extend(self.sentences.finish());
        SpeechStep { sentences: self.number(sentences), answer: split.answer, thinking: split.thinking }
    }

    /// True while the stream is inside a `<think>` block (for the `thinking` session state).
    pub fn in_thinking(&self) -> bool {
        self.think.in_thinking()
    }

    fn number(&mut self, sentences: Vec<String>) -> Vec<Sentence> {
        let mut out = Vec::with_capacity(sentences.len());
        for sentence in sentences {
            let text = match &mut self.filter {
                Some(filter) => filter.filter(&sentence),
                None => sentence,
            };
            if !text.is_empty() {
                out.push(Sentence { index: self.next_index, text });
                self.next_index = self.next_index.saturating_add(1);
            }
        }
        out
    }
}

#[cfg(test)]
#[path = "stream_tests.rs"]
mod tests;
