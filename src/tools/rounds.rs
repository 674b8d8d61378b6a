//! The tool rounds of one request: the model answers with `tool_calls`, the bridge runs them and
//! continues the chat with their results, until an answer without tool calls.
//!
//! Every call gets a result the model can read: the service response, the action result, or a
//! note that the message was published; or `{"error": "..."}` for an unknown tool, arguments that
//! do not fit the type, a server that is absent, a timeout (`timeout_s`) — the request itself does
//! not fail. After `max_tool_rounds` rounds the chat goes on without `tools`, so the model answers
//! in words. A cancel (reset, cancel, barge-in, shutdown) stops the round at once; dropping the
//! running call's future is what cancels an action goal (see `ros::tools`).

use super::ToolSet;
use crate::ollama::{ChatRequest, Message, Role, ToolCall};
use futures::future::BoxFuture;
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::Instant;
use tokio_util::sync::CancellationToken;

/// One tool call and what came of it, for the `tool_calls` topic (`ollama_bridge_msgs/msg/ToolCall`).
#[derive(Debug, Clone, PartialEq)]
pub struct ToolCallRecord {
    pub session_id: String,
    pub request_id: u64,
    /// 0, 1, ... within the request.
    pub round: u32,
    pub name: String,
    /// The arguments the model gave (JSON).
    pub arguments_json: String,
    /// What the model was sent back (JSON).
    pub result_json: String,
    /// Empty when the call succeeded.
    pub error: String,
    pub duration_s: f64,
    /// `tools_dry_run`: recorded, not executed.
    pub dry_run: bool,
}

/// Runs tools over ROS. Implemented by the ROS layer.
pub trait ToolExecutor: Send + Sync + 'static {
    /// Calls the tool named `name` with `arguments` (already checked against its type). `Ok` is
    /// the result for the model (a JSON object), `Err` says why it failed. The caller applies the
    /// tool's timeout and cancellation by dropping the future, which must then abandon the call
    /// (and cancel an action goal).
    fn execute(&self, name: &str, arguments: Value) -> BoxFuture<'static, Result<Value, String>>;
    /// Publishes one record on `tool_calls`.
    fn audit(&self, record: &ToolCallRecord);
}

/// The request was cancelled while a tool ran.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cancelled;

/// The tool rounds of one request.
pub struct ToolRounds {
    tools: Arc<ToolSet>,
    executor: Arc<dyn ToolExecutor>,
    max_rounds: u32,
    dry_run: bool,
    session_id: String,
    request_id: u64,
    round: u32,
}

impl ToolRounds {
    /// Rounds for one request; `chat` must carry the tools' definitions.
    pub fn new(tools: Arc<ToolSet>, executor: Arc<dyn ToolExecutor>, max_rounds: u32, dry_run: bool,
               session_id: &str, request_id: u64) -> ToolRounds {
        ToolRounds { tools, executor, max_rounds, dry_run, session_id: session_id.to_string(), request_id, round: 0 }
    }

    /// Rounds run so far.
    pub fn rounds(&self) -> u32 {
        self.round
    }

    /// After an answer (`text`, `calls`): with tool calls, runs them and appends the assistant
    /// turn and one `role: tool` message per call to `chat`; `Ok(true)` means "send `chat` again".
    /// `Ok(false)`: no calls (or tools were already withdrawn), the answer is final.
    pub async fn after_answer(&mut self, chat: &mut ChatRequest, text: &str, calls: Vec<ToolCall>,
                              cancel: &CancellationToken) -> Result<bool, Cancelled> {
        if calls.is_empty() {
            return Ok(false);
        }
        if chat.tools.is_none() {
            log::warn!("request {}: the model made {} tool call(s) after max_tool_rounds ({}); they are ignored",
                self.request_id, calls.len(), self.max_rounds);
            return Ok(false);
        }
        chat.messages.push(Message { tool_calls: calls.clone(), ..Message::new(Role::Assistant, text) });
        for call in calls {
            let result = self.run_one(&call, cancel).await?;
            let mut answer = Message::tool(call.function.name.clone(), result.to_string());
            answer.tool_call_id = call.id.clone().unwrap_or_default();
            chat.messages.push(answer);
        }
        self.round += 1;
        if self.round >= self.max_rounds {
            log::info!("request {}: {} tool round(s), the limit (max_tool_rounds): the model answers without tools now",
                self.request_id, self.round);
            chat.tools = None;
        }
        Ok(true)
    }

    /// Runs one call; the JSON is what the model is sent back.
    async fn run_one(&self, call: &ToolCall, cancel: &CancellationToken) -> Result<Value, Cancelled> {
        let started = Instant::now();
        let name = call.function.name.as_str();
        let arguments = &call.function.arguments;
        let outcome = match self.tools.get(name) {
            None => Err(format!("unknown tool '{name}'; the tools are: {}", self.tools.names())),
            Some(tool) => match tool.check_arguments(arguments) {
                Err(e) => Err(e),
                Ok(()) if self.dry_run => Ok(json!({"dry_run": true,
                    "note": "tools_dry_run is on: this call was recorded, not executed; nothing happened on the robot"})),
                Ok(()) => {
                    let timeout = tool.spec.timeout;
                    tokio::select! {
                        biased;
                        _ = cancel.cancelled() => {
                            self.record(name, arguments, &json!({"error": "cancelled"}), "cancelled", started);
                            return Err(Cancelled);
                        }
                        done = tokio::time::timeout(timeout, self.executor.execute(name, arguments.clone())) => match done {
                            Ok(result) => result,
                            Err(_) => Err(format!("no result within {:.1}s (timeout_s of tool '{name}')", timeout.as_secs_f64())),
                        },
                    }
                }
            },
        };
        let (result, error) = match outcome {
            Ok(value) => (value, String::new()),
            Err(e) => (json!({"error": e}), e),
        };
        if !error.is_empty() {
            log::warn!("request {} tool call '{name}' failed: {error}", self.request_id);
        }
        self.record(name, arguments, &result, &error, started);
        Ok(result)
    }

    fn record(&self, name: &str, arguments: &Value, result: &Value, error: &str, started: Instant) {
        self.executor.audit(&ToolCallRecord {
            session_id: self.session_id.clone(),
            request_id: self.request_id,
            round: self.round,
            name: name.to_string(),
            arguments_json: arguments.to_string(),
            result_json: result.to_string(),
            error: error.to_string(),
            duration_s: started.elapsed().as_secs_f64(),
            dry_run: self.dry_run,
        });
    }
}

#[cfg(test)]
#[path = "rounds_tests.rs"]
mod tests;
