//! # ollama_bridge
//!
//! A ROS 2 node (r2r) that sends what a robot hears to an LLM served by Ollama and streams the
//! answer back: speech text in, partial and final responses out, one chat history per session.
//!
//! # Layout (in data-path order)
//!
//! * `ros`: the ROS face and the only r2r user: node, parameters (`ros::params`), subscriptions
//!   (`speech_text`, `utterance`, `spoken`, the camera topics), publishers (`response_*`,
//!   `session_state`, `tool_calls`, `/diagnostics`), services (`reset`, `cancel`, `set_model`,
//!   `list_models`), actions (`chat`, `pull_model`), the tools' untyped service/action/topic
//!   clients, `log` → ROS logging (`ros::logging`), the spin thread and signal-driven shutdown.
//! * `cli`: the command line outside `--ros-args` (`--help`, exit codes).
//! * `config`: the parameter table (`Params`, one documented row per parameter with type, range
//!   and default), its validation, and the parsed `Config` snapshot each request reads. No ROS.
//! * `bridge`: admits inputs into per-session queues, runs them with bounded concurrency
//!   (`bridge::worker`: one worker per session, idle-session expiry), commits completed
//!   exchanges, answers reset, cancel and model checks.
//! * `session`: per-session history, queue and cancel handle (`SessionStore`).
//! * `exchange`: one request: history → streaming `/api/chat` → partials → final response.
//! * `fleet`: the servers of `ollama_url` (one or several) behind the one client: session
//!   affinity, new sessions to the least busy server with the model, failover before output,
//!   down servers probed until they answer again.
//! * `context`: the context budget: the model's window, each exchange's tokens, which oldest
//!   exchanges to leave out (in blocks, so the server's prompt cache stays useful).
//! * `answer`: one request's answer as published: content → `speech` → partials, reasoning,
//!   sentences (pieces pushed, then flushed as one partial: `exchange` flushes each piece while it
//!   keeps up, a batch of already-received pieces when it falls behind); the speakable text for
//!   `response_text`.
//! * `speech`: the text side of speaking (no ROS, no I/O): `<think>` blocks split from the answer,
//!   streaming sentence segmentation, speakable text (no Markdown, no emoji), chained per request.
//! * `outputs`: what is published, in ROS-free types, and the `Outputs` trait the ROS layer implements.
//! * `history_files`: durable JSONL history per session (`history_dir`).
//! * `goals`: routes one request's partials and final to its `chat` action goal, besides the topics.
//! * `health`: what `/diagnostics` reports: counters over the finals, a periodic server probe
//!   (`/api/version`, `/api/tags`, `/api/ps`) and the OK / WARN / ERROR assessment.
//! * `warm_up`: the model loaded on every server at start and after every model change
//!   (`warm_up`), and again whenever a server rejoins the rotation (one that could not be reached,
//!   once it answers); unloaded from every server when the node stops (`unload_on_exit`); servers
//!   known to lack the model skipped; in the background, failures only logged.
//! * `model_admin`: `list_models` and `pull_model` without ROS (`/api/tags`, `/api/ps`, `/api/pull`).
//! * `senses`: what a request carries besides text: the camera frame (`images`) and the tools,
//!   offered by the model's capabilities; called by `exchange` before the first `/api/chat`.
//! * `images`: camera frames (ROS-free): the latest frame and its age, raw/compressed → base64
//!   JPEG/PNG no larger than `image_max_side`.
//! * `tools`: tools bound to ROS services, actions and topics (ROS-free core): `tools_file`, JSON
//!   schemas from the installed type descriptions, an entry's own `parameters` schema (`schema`:
//!   refused at load when invalid, enforced on every call), the tool round loop, the
//!   `ToolExecutor` trait that `ros::tools` implements.
//! * `ollama`: a typed Ollama client (no ROS): request/response types, the NDJSON line reader,
//!   the error enum that names every failure; its `openai` wire speaks the OpenAI-compatible
//!   API (`api: openai`: vLLM, llama.cpp's server, LiteLLM, ...) behind the same calls, events or
//!   one whole `chat.completion` body from a server that ignored `stream: true` (`openai::whole`).

pub mod answer;
pub mod bridge;
pub mod cli;
pub mod config;
pub mod context;
pub mod exchange;
pub mod fleet;
pub mod goals;
pub mod health;
pub mod history_files;
pub mod model_admin;
pub mod images;
pub mod ollama;
pub mod outputs;
pub mod ros;
pub mod senses;
pub mod session;
pub mod speech;
pub mod tools;
pub mod warm_up;
