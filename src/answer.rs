//! One request's answer as it is published: every streamed `message.content` piece goes through
//! the request's [`SpeechStream`] (a `<think>` block split off, sentences found, made speakable),
//! then out as `response_partial` pieces, `response_thinking` pieces and `response_sentence`s;
//! `message.thinking` pieces go to `response_thinking` directly.
//!
//! Pieces are taken with [`Answer::push`] and published with [`Answer::flush`]: the stream loop
//! (`exchange`) flushes after every piece while it keeps up with the server, and after a batch of
//! pieces that were already received when it falls behind, so a burst becomes fewer, longer
//! `ResponseChunk`s (one per flush, numbered by `seq`) with the same text. Sentences are
//! published as soon as their end is pushed, without waiting for the flush.
//!
//! Invariants the tests rely on: the partials of a request add up to its `Response.text` (the
//! answer without reasoning) and are counted in `chunk_count` (messages, not pieces); reasoning
//! never reaches partials, sentences, `Response.text`, `response_text` or the history; it is
//! published (on `response_thinking`) only with `think: true`, like Ollama's `message.thinking`.

use crate::config::Config;
use crate::outputs::{Outputs, Partial, SentenceOut, SessionState};
use crate::session::Request;
use crate::speech::sentences::SentenceConfig;
use crate::speech::{SpeechConfig, SpeechStep, SpeechStream};
use std::time::Instant;

/// The answer of one request so far, kept across tool rounds and retries.
pub struct Answer {
    /// The answer text published so far (the partials joined).
    pub text: String,
    /// `response_partial` messages published (the next `seq`, and `chunk_count`).
    pub seq: u32,
    /// When the first answer piece was published.
    pub first_chunk: Option<Instant>,
    /// Answer text pushed but not published yet (the next partial).
    pending: String,
    /// Reasoning pushed but not published yet (the next `response_thinking` message).
    pending_thinking: String,
    /// `response_thinking` messages published.
    thinking_seq: u32,
    /// Reasoning seen (published or not): a retry after it would repeat it.
    saw_thinking: bool,
    /// The `answering` session state was published.
    answering: bool,
    /// The sentences published, for `response_text` (speakable when `speech_filter` is on).
    sentences: Vec<String>,
    speech: SpeechStream,
    /// Whether reasoning is published (`think` parameter).
    publish_thinking: bool,
}

impl Answer {
    /// An empty answer with the speech settings of `config`.
    pub fn new(config: &Config) -> Answer {
        let sentences = SentenceConfig {
            min_sentence_chars: config.min_sentence_chars,
            max_sentence_chars: config.max_sentence_chars,
        };
        Answer {
            text: String::new(),
            seq: 0,
            first_chunk: None,
            pending: String::new(),
            pending_thinking: String::new(),
            thinking_seq: 0,
            saw_thinking: false,
            answering: false,
            sentences: Vec::new(),
            speech: SpeechStream::new(SpeechConfig { sentences, speech_filter: config.speech_filter }),
            publish_thinking: config.think,
        }
    }

    /// True before anything of the answer (text or reasoning) was seen: a failed request may be
    /// sent again without anyone hearing a piece twice.
    pub fn untouched(&self) -> bool {
        self.seq == 0 && self.pending.is_empty() && !self.saw_thinking
    }

    /// Starts over after a failure before any output (a retry streams the answer anew).
    pub fn restart(&mut self, config: &Config) {
        if self.untouched() {
            *self = Answer::new(config);
        }
    }

    /// Takes one streamed chunk's `message.content` and `message.thinking`: the sentences it
    /// completes are published at once; its answer text and reasoning wait for [`flush`](Self::flush).
    pub fn push(&mut self, request: &Request, content: &str, thinking: &str, outputs: &dyn Outputs) {
        if !thinking.is_empty() {
            self.take_thinking(thinking);
        }
        if !content.is_empty() {
            let step = self.speech.push(content);
            self.take(request, step, outputs);
        }
    }

    /// Publishes the answer text pushed since the last flush as one partial (the next `seq`) and
    /// the reasoning as one `response_thinking` message; nothing when there is none.
    pub fn flush(&mut self, request: &Request, outputs: &dyn Outputs) {
        if !self.pending_thinking.is_empty() {
            outputs.thinking(&Partial {
                session_id: &request.session_id,
                request_id: request.id,
                seq: self.thinking_seq,
                text: &self.pending_thinking,
            });
            self.thinking_seq += 1;
            self.pending_thinking.clear();
        }
        if self.pending.is_empty() {
            return;
        }
        if self.first_chunk.is_none() {
            self.first_chunk = Some(Instant::now());
        }
        let piece = Partial { session_id: &request.session_id, request_id: request.id, seq: self.seq, text: &self.pending };
        outputs.partial(&piece);
        log::debug!("request {} chunk {}: {:?}", request.id, self.seq, self.pending);
        self.text.push_str(&self.pending);
        self.pending.clear();
        self.seq += 1;
    }

    /// Publishes what the speech pipeline still holds (the end of the answer, the last sentence)
    /// and everything not flushed yet.
    pub fn finish(&mut self, request: &Request, outputs: &dyn Outputs) {
        let step = self.speech.finish();
        self.take(request, step, outputs);
        self.flush(request, outputs);
    }

    /// What a text-to-speech node should say of the whole answer: its sentences, one space apart.
    pub fn speech(&self) -> String {
        self.sentences.join(" ")
    }

    fn take(&mut self, request: &Request, step: SpeechStep, outputs: &dyn Outputs) {
        if !step.thinking.is_empty() {
            self.take_thinking(&step.thinking);
        }
        if !step.answer.is_empty() {
            if !self.answering {
                self.answering = true;
                outputs.state(&request.session_id, request.id, SessionState::Answering);
            }
            self.pending.push_str(&step.answer);
        }
        for sentence in step.sentences {
            outputs.sentence(&SentenceOut {
                session_id: &request.session_id,
                request_id: request.id,
                index: sentence.index,
                text: &sentence.text,
            });
            self.sentences.push(sentence.text);
        }
    }

    fn take_thinking(&mut self, text: &str) {
        self.saw_thinking = true;
        if self.publish_thinking {
            self.pending_thinking.push_str(text);
        }
    }
}
