"""How one chat reply is put on the wire: Ollama's NDJSON, or the OpenAI-compatible SSE/JSON.

``chat`` produces the same items for both (thinking/content pieces, tool calls, a final with metrics)
and a front encodes them:

* ``OllamaFront``: ``/api/chat`` (``api.ChatResponse`` lines, ``{"error"}`` bodies; see ``wire``).
* ``OpenAIFront``: ``/v1/chat/completions`` as Ollama's ``middleware/openai.go`` ``ChatWriter``
  writes it from those same responses with ``openai/openai.go``'s ``ToChunk``/``ToChatCompletion``:
  each line becomes ``data: {chat.completion.chunk}\\n\\n`` (``delta`` = ``role``, ``content``, then
  omitempty ``reasoning`` and ``tool_calls`` with JSON-string ``arguments``; ``finish_reason`` null
  until the final, which says ``tool_calls`` once a call was sent); the final adds a ``usage`` chunk
  (``choices: []``) when ``stream_options.include_usage`` and ends with ``data: [DONE]``, all in one
  HTTP chunk. ``stream: false`` gives one ``chat.completion`` object. Bodies are ``json.Encoder``
  output (a trailing newline), ``Content-Type: application/json``; errors are
  ``{"error": {"message", "type", "param": null, "code": null}}`` with ``type`` from the status
  (``openai.NewError``). Ids are ``chatcmpl-<0..998>``, tool-call ids ``call_`` + 8 characters.
"""
from __future__ import annotations

import hashlib
import random
import time

from . import wire

JSON = "application/json; charset=utf-8"
_ERROR_TYPES = {400: "invalid_request_error", 404: "not_found_error"}


class OllamaFront:
    """``/api/chat``: NDJSON lines, ``{"error": text}`` bodies."""

    stream_type = "application/x-ndjson"
    end = b"\n"

    def __init__(self, model: str, local_time: bool = False):
        self.model, self.local_time = model, local_time
        self._enc = wire.ChunkEncoder(model, local_time)

    def line(self, field: str, value) -> bytes:
        """One ``done: false`` line; ``value`` is a JSON-encoded piece or a list of tool calls."""
        return self._enc.line(field, wire.go_bytes(value) if field == "tool_calls" else value)

    def text_line(self, text: str) -> bytes:
        """A content line with ``text`` (for the malformed and long-line faults)."""
        return self._enc.line("content", wire.go_bytes(text))

    def final(self, done_reason: str, metrics: dict) -> bytes:
        """The ``done: true`` line."""
        obj = wire.chat_response(self.model, wire.rfc3339(None, self.local_time), wire.message("assistant", ""),
                                 True, done_reason, metrics)
        return wire.go_bytes(obj) + b"\n"

    def whole(self, content: str, thinking: str, calls: list, done_reason: str, metrics: dict) -> tuple[bytes, str]:
        """``stream: false``: the whole message in one object (gin's ``c.JSON``)."""
        msg = wire.message("assistant", content, thinking, tool_calls=calls)
        obj = wire.chat_response(self.model, wire.rfc3339(None, self.local_time), msg, True, done_reason, metrics)
        return wire.go_bytes(obj), JSON

    def error(self, status: int, text: str, streaming: bool = False) -> tuple[bytes, str]:
        """An error before any output; a stream's (``streamResponse``) says ``application/json``."""
        return wire.error_body(text), "application/json" if streaming else JSON

    def error_event(self, text: str, style: str | None = None) -> bytes:
        """An error after output started: one more line."""
        return wire.error_body(text) + b"\n"


def error_object(status: int, text: str) -> dict:
    """``openai.NewError``: the type follows the status."""
    return {"error": {"message": text, "type": _ERROR_TYPES.get(status, "api_error"), "param": None, "code": None}}


def openai_tool_calls(calls: list) -> list:
    """``openai.ToToolCalls``: id, index, type, function with the arguments as a JSON string."""
    out = []
    for call in calls:
        fn = call.get("function") or {}
        ident = call.get("id") or "call_" + hashlib.sha1(wire.go_bytes(call) + str(random.random()).encode()).hexdigest()[:8]
        out.append({"id": ident, "index": fn.get("index", 0), "type": "function",
                    "function": {"name": fn.get("name", ""), "arguments": wire.go_json(fn.get("arguments") or {})}})
    return out


def usage(metrics: dict) -> dict:
    """``openai.ToUsage``."""
    p, e = metrics.get("prompt_eval_count", 0), metrics.get("eval_count", 0)
    return {"prompt_tokens": p, "completion_tokens": e, "total_tokens": p + e}


class OpenAIFront:
    """``/v1/chat/completions``: SSE chunks or one ``chat.completion``, OpenAI error bodies."""

    stream_type = "text/event-stream"
    end = b"\n\n"
    _FIELD = {"content": b'"content":', "thinking": b'"content":"","reasoning":'}

    def __init__(self, model: str, include_usage: bool = False):
        self.model, self.include_usage = model, include_usage
        self.id = "chatcmpl-%d" % random.randrange(999)
        self.tool_sent = False
        self._head = b'data: {"id":"' + self.id.encode() + b'","object":"chat.completion.chunk","created":'
        self._mid = (b',"model":' + wire.go_bytes(model) + b',"system_fingerprint":"fp_ollama","choices":'
                     b'[{"index":0,"delta":{"role":"assistant",')

    def _chunk(self, finish, delta: dict | None = None) -> dict:
        return {"id": self.id, "object": "chat.completion.chunk", "created": int(time.time()), "model": self.model,
                "system_fingerprint": "fp_ollama",
                "choices": [{"index": 0, "delta": delta or {"role": "assistant", "content": ""},
                             "finish_reason": finish}]}

    def line(self, field: str, value) -> bytes:
        """One chunk event; ``value`` is a JSON-encoded piece or a list of Ollama tool calls."""
        if field == "tool_calls":
            self.tool_sent = True
            body = b'"content":"","tool_calls":' + wire.go_bytes(openai_tool_calls(value))
        else:
            body = self._FIELD[field] + value
        return b"".join((self._head, b"%d" % int(time.time()), self._mid, body, b'},"finish_reason":null}]}\n\n'))

    def text_line(self, text: str) -> bytes:
        """A content event with ``text`` (for the malformed and long-line faults)."""
        return self.line("content", wire.go_bytes(text))

    def final(self, done_reason: str, metrics: dict) -> bytes:
        """The finish chunk, the usage chunk when asked for, and ``[DONE]``."""
        finish = ("tool_calls" if self.tool_sent else done_reason) if done_reason else None
        chunk = self._chunk(finish)
        out = b"data: " + wire.go_bytes(chunk) + b"\n\n"
        if self.include_usage:
            chunk["choices"], chunk["usage"] = [], usage(metrics)
            out += b"data: " + wire.go_bytes(chunk) + b"\n\n"
        return out + b"data: [DONE]\n\n"

    def whole(self, content: str, thinking: str, calls: list, done_reason: str, metrics: dict) -> tuple[bytes, str]:
        """``stream: false``: one ``chat.completion`` (``openai.ToChatCompletion``)."""
        msg = {"role": "assistant", "content": content}
        if thinking:
            msg["reasoning"] = thinking
        if calls:
            msg["tool_calls"] = openai_tool_calls(calls)
        finish = "tool_calls" if calls else done_reason or None
        obj = {"id": self.id, "object": "chat.completion", "created": int(time.time()), "model": self.model,
               "system_fingerprint": "fp_ollama", "choices": [{"index": 0, "message": msg, "finish_reason": finish}],
               "usage": usage(metrics)}
        return wire.go_bytes(obj) + b"\n", "application/json"

    def error(self, status: int, text: str, streaming: bool = False) -> tuple[bytes, str]:
        """``ChatWriter.writeError``: any non-200 reply of the handler, re-shaped."""
        return wire.go_bytes(error_object(status, text)) + b"\n", "application/json"

    def error_event(self, text: str, style: str | None = None) -> bytes:
        """An error after output started. Default: ``data: {"error": {...}}`` as vLLM, llama.cpp's server
        and OpenAI send; ``style: "ollama"``: what Ollama itself sends (its ``{"error"}`` line decoded as
        an empty chunk), after which the stream ends without ``[DONE]``."""
        if style == "ollama":
            return b"data: " + wire.go_bytes(self._chunk(None)) + b"\n\n"
        return b"data: " + wire.go_bytes(error_object(500, text)) + b"\n\n"
