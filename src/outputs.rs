//! What the bridge publishes, in ROS-free form. The ROS layer implements [`Outputs`] with its
//! publishers; everything upstream only knows these types.

/// One streamed piece of an answer.
#[derive(Debug, Clone, Copy)]
pub struct Partial<'a> {
    pub session_id: &'a str,
    pub request_id: u64,
    /// 0, 1, 2, ... within the request.
    pub seq: u32,
    /// Only the new piece.
    pub text: &'a str,
}

/// Why a request ended, as published in `done_reason`.
#[derive(Debug, Clone, PartialEq)]
pub enum Ending {
    /// Ollama finished; its own `done_reason` ("stop", "length", ...).
    Done(String),
    /// Reset of the session or node shutdown.
    Cancelled,
    /// The request failed; a message a person can act on.
    Error(String),
}

impl Ending {
    /// The `done_reason` field.
    pub fn done_reason(&self) -> &str {
        match self {
            Ending::Done(reason) => reason,
            Ending::Cancelled => "cancelled",
            Ending::Error(_) => "error",
        }
    }
    /// The `error` field ("" unless it failed).
    pub fn error(&self) -> &str {
        match self {
            Ending::Error(message) => message,
            _ => "",
        }
    }
}

/// Ollama's counters from the final chunk (0 when it did not report them).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Counters {
    pub prompt_eval_count: u32,
    pub eval_count: u32,
    pub total_duration_ns: u64,
    pub load_duration_ns: u64,
    pub prompt_eval_duration_ns: u64,
    pub eval_duration_ns: u64,
}

/// The final answer to one input.
#[derive(Debug, Clone)]
pub struct FinalResponse {
    pub session_id: String,
    pub request_id: u64,
    /// The user text it answers.
    pub prompt: String,
    /// All partials joined (also when it failed or was cancelled part-way).
    pub text: String,
    pub model: String,
    pub ending: Ending,
    pub counters: Counters,
    /// From input arrival to the first partial (0 when there was none).
    pub time_to_first_chunk_s: f64,
    /// From input arrival to this response.
    pub total_time_s: f64,
    /// Partials published for this request (`response_partial` messages).
    pub chunk_count: u32,
    /// The server that answered (its URL, any password redacted).
    pub server: String,
    /// What a text-to-speech node should say of `text`: its sentences, made speakable when
    /// `speech_filter` is on (no reasoning, Markdown or emoji). Not part of `Response`.
    pub speech: String,
}

/// One speakable sentence of an answer (`response_sentence`).
#[derive(Debug, Clone, Copy)]
pub struct SentenceOut<'a> {
    pub session_id: &'a str,
    pub request_id: u64,
    /// 0, 1, 2, ... within the request.
    pub index: u32,
    pub text: &'a str,
}

/// What a session is doing (`session_state`), for dialogue managers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionState {
    /// Request sent, no answer text yet (the model may be thinking).
    Thinking,
    /// Answer text streaming.
    Answering,
    /// Done or cancelled.
    Idle,
    /// The request failed.
    Error,
}

impl SessionState {
    /// The `state` field (the constants of `SessionState.msg`).
    pub fn as_str(self) -> &'static str {
        match self {
            SessionState::Thinking => "thinking",
            SessionState::Answering => "answering",
            SessionState::Idle => "idle",
            SessionState::Error => "error",
        }
    }
}

/// Where responses go. Implementations must not block: they are called from the stream loop.
pub trait Outputs: Send + Sync + 'static {
    /// Publishes one partial, in order, as soon as it arrived.
    fn partial(&self, partial: &Partial<'_>);
    /// Publishes the final response (and, for answers, its `speech` alone for a TTS node).
    fn finished(&self, response: &FinalResponse);
    /// Publishes one reasoning piece (`message.thinking` or a `<think>` block), never spoken.
    fn thinking(&self, piece: &Partial<'_>);
    /// Publishes one sentence as soon as its end arrived (the message and the text alone).
    fn sentence(&self, sentence: &SentenceOut<'_>);
    /// Publishes a session's new state.
    fn state(&self, session_id: &str, request_id: u64, state: SessionState);
}

/// The [`Outputs`] methods a wrapping layer (goal routing, counters) passes on to its `inner`
/// unchanged: reasoning, sentences and session states. Use inside `impl Outputs for Layer`.
macro_rules! pass_on_speech_outputs {
    () => {
        fn thinking(&self, piece: &$crate::outputs::Partial<'_>) {
            self.inner.thinking(piece);
        }
        fn sentence(&self, sentence: &$crate::outputs::SentenceOut<'_>) {
            self.inner.sentence(sentence);
        }
        fn state(&self, session_id: &str, request_id: u64, state: $crate::outputs::SessionState) {
            self.inner.state(session_id, request_id, state);
        }
    };
}
pub(crate) use pass_on_speech_outputs;
