//! # ollama_bridge
//!
//! A ROS 2 node (r2r) that sends what a robot hears to an LLM served by Ollama and streams the
//! answer back: speech text in, partial and final responses out, one chat history per session.
//!
//! # Layout (in data-path order)
//!
//! * `ros`: the ROS face: node, parameters, subscriptions (`speech_text`, `utterance`),
//!   publishers (`response_partial`, `response_final`, `response_text`), services (`reset`,
//!   `set_model`), the spin thread and signal-driven shutdown. The only r2r user besides `config`.
//! * `config`: parameters (`Params`, shown by `ros2 param`), their validation, and the parsed
//!   `Config` snapshot each request reads.
//! * `bridge`: admits inputs into per-session queues, runs them with bounded concurrency,
//!   commits completed exchanges, answers reset and model checks.
//! * `session`: per-session history, queue and cancel handle (`SessionStore`).
//! * `exchange`: one request: history → streaming `/api/chat` → partials → final response.
//! * `context`: the context budget: the model's window, each exchange's tokens, which oldest
//!   exchanges to leave out (in blocks, so the server's prompt cache stays useful).
//! * `outputs`: what is published, in ROS-free types, and the `Outputs` trait the ROS layer implements.
//! * `history_files`: durable JSONL history per session (`history_dir`).
//! * `ollama`: a typed Ollama client (no ROS): request/response types, the NDJSON line reader,
//!   the error enum that names every failure.
//! * `logging`: `log` → ROS logging.

pub mod bridge;
pub mod config;
pub mod context;
pub mod exchange;
pub mod history_files;
pub mod logging;
pub mod ollama;
pub mod outputs;
pub mod ros;
pub mod session;
