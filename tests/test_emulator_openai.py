"""The OpenAI-compatible front as Ollama serves it (``middleware/openai.go``, ``openai/openai.go``):
SSE chunks and their key order, usage, ``[DONE]``, one ``chat.completion`` when not streaming, tool
calls with JSON-string arguments, ``max_tokens`` → ``length``, request conversion, OpenAI error
bodies, ``/v1/models``, and the fault kinds on this path, all read off the socket."""
import json
import re
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from ollama_server.testing import EmulatorError, raw_request  # noqa: E402
from emulator_fixtures import fresh, module_emulator, openai_chat as v1  # noqa: E402,F401

WEATHER = {"type": "function", "function": {"name": "get_weather", "parameters": {
    "type": "object", "properties": {"city": {"type": "string"}, "days": {"type": "integer", "minimum": 1}}}}}
CONFIG = {"models": {
    "llama3.2": {"reply": "Hello there, {last_user}!", "capabilities": ["completion", "tools"],
                 "tool_rounds": ["auto"], "tool_reply": "Weather: {tool_results}"},
    "qwen3:0.6b": {"reply": "Answer.", "thinking": "Hmm."},
    "long": {"reply": "word " * 300, "chunk_delay_ms": 10},
}}
USER = [{"role": "user", "content": "Sam"}]
CHUNK_RE = re.compile(rb'^data: \{"id":"chatcmpl-\d{1,3}","object":"chat\.completion\.chunk","created":\d+,'
                      rb'"model":"llama3\.2","system_fingerprint":"fp_ollama","choices":\[\{"index":0,'
                      rb'"delta":\{"role":"assistant","content":"(?:[^"\\]|\\.)*"\},"finish_reason":null\}\]\}$')

emu = module_emulator(CONFIG)


def text(events):
    return "".join(e["choices"][0]["delta"].get("content", "") for e in events if e != "[DONE]" and e["choices"])


def test_stream_is_sse_chunks_then_finish_usage_and_done(emu):
    got = v1(emu, {"model": "llama3.2", "messages": USER, "stream": True,
                   "stream_options": {"include_usage": True}})
    assert got.status == 200 and got.complete
    assert [k for k, _ in got.headers] == ["Content-Type", "Date", "Transfer-Encoding"]
    assert got.header("Content-Type") == "text/event-stream"
    events = got.sse()
    assert events[-1] == "[DONE]" and text(events) == "Hello there, Sam!"
    raw = got.body.split(b"\n\n")
    assert all(CHUNK_RE.match(e) for e in raw[:-4]), raw[0]         # pieces: exact bytes and key order
    finish, usage = events[-3], events[-2]
    assert finish["choices"] == [{"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": "stop"}]
    assert usage["choices"] == [] and list(usage) == ["id", "object", "created", "model", "system_fingerprint",
                                                      "choices", "usage"]
    pieces = len(events) - 3
    assert usage["usage"] == {"prompt_tokens": usage["usage"]["prompt_tokens"], "completion_tokens": pieces,
                              "total_tokens": usage["usage"]["prompt_tokens"] + pieces}
    assert len({e["id"] for e in events[:-1]}) == 1
    assert got.chunks[-1] == b"\n\n".join(raw[-4:-1]) + b"\n\n"     # finish, usage and [DONE]: one HTTP chunk
    [entry] = emu.wait_for_requests(1, path="/v1/chat/completions")
    assert entry["body"]["stream_options"] == {"include_usage": True}
    assert entry["ollama_body"]["options"] == {"temperature": 1.0, "top_p": 1.0}


def test_no_usage_chunk_unless_asked_and_stream_defaults_to_false(emu):
    events = v1(emu, {"model": "llama3.2", "messages": USER, "stream": True}).sse()
    assert "usage" not in json.dumps(events) and events[-1] == "[DONE]"
    whole = v1(emu, {"model": "llama3.2", "messages": USER})
    assert whole.header("Content-Type") == "application/json" and whole.body.endswith(b"}\n")
    obj = json.loads(whole.body)
    assert list(obj) == ["id", "object", "created", "model", "system_fingerprint", "choices", "usage"]
    assert obj["object"] == "chat.completion" and obj["choices"] == [
        {"index": 0, "message": {"role": "assistant", "content": "Hello there, Sam!"}, "finish_reason": "stop"}]
    assert obj["usage"]["completion_tokens"] > 0


def test_tool_calls_have_json_string_arguments_and_finish_reason_tool_calls(emu):
    got = v1(emu, {"model": "llama3.2", "messages": [{"role": "user", "content": "Paris"}], "tools": [WEATHER],
                   "stream": True})
    events = got.sse()
    call = events[0]["choices"][0]["delta"]["tool_calls"]
    assert re.fullmatch(r"call_[0-9a-z]{8}", call[0]["id"])
    assert call == [{"id": call[0]["id"], "index": 0, "type": "function",
                     "function": {"name": "get_weather", "arguments": '{"city":"Paris","days":1}'}}]
    assert events[-2]["choices"][0]["finish_reason"] == "tool_calls"
    history = [{"role": "user", "content": "Paris"},
               {"role": "assistant", "content": None, "tool_calls": call},
               {"role": "tool", "tool_call_id": call[0]["id"], "content": "12 C and sunny"}]
    answer = json.loads(v1(emu, {"model": "llama3.2", "messages": history, "tools": [WEATHER]}).body)
    assert answer["choices"][0]["message"]["content"] == "Weather: get_weather: 12 C and sunny"
    converted = emu.requests("/v1/chat/completions")[-1]["ollama_body"]["messages"]
    assert converted[1]["tool_calls"][0]["function"]["arguments"] == {"city": "Paris", "days": 1}
    assert converted[2] == {"role": "tool", "content": "12 C and sunny", "tool_name": "get_weather"}
    whole = json.loads(v1(emu, {"model": "llama3.2", "messages": USER, "tools": [WEATHER]}).body)
    assert whole["choices"][0]["finish_reason"] == "tool_calls"
    assert json.loads(whole["choices"][0]["message"]["tool_calls"][0]["function"]["arguments"]) == {
        "city": "Sam", "days": 1}


def test_max_tokens_is_num_predict_and_finish_reason_length(emu):
    events = v1(emu, {"model": "llama3.2", "messages": USER, "max_tokens": 2, "stream": True}).sse()
    assert len(events) == 4 and events[-2]["choices"][0]["finish_reason"] == "length"
    obj = json.loads(v1(emu, {"model": "llama3.2", "messages": USER, "max_tokens": 2, "stop": "x",
                              "seed": 3, "temperature": 0}).body)
    assert obj["choices"][0]["finish_reason"] == "length" and obj["usage"]["completion_tokens"] == 2
    opts = emu.requests("/v1/chat/completions")[-1]["ollama_body"]["options"]
    assert opts == {"stop": ["x"], "num_predict": 2, "temperature": 0, "seed": 3, "top_p": 1.0}


def test_reasoning_and_response_format(emu):
    events = v1(emu, {"model": "qwen3:0.6b", "messages": USER, "stream": True}).sse()
    assert events[0]["choices"][0]["delta"] == {"role": "assistant", "content": "", "reasoning": "Hmm"}
    off = json.loads(v1(emu, {"model": "qwen3:0.6b", "messages": USER, "reasoning_effort": "none"}).body)
    assert "reasoning" not in off["choices"][0]["message"]
    schema = {"type": "object", "properties": {"n": {"type": "integer"}}}
    obj = json.loads(v1(emu, {"model": "llama3.2", "messages": USER, "response_format": {
        "type": "json_schema", "json_schema": {"name": "x", "schema": schema}}}).body)
    assert json.loads(obj["choices"][0]["message"]["content"]) == {"n": 0}


@pytest.mark.parametrize("body,status,message,etype", [
    (b"", 400, "EOF", "invalid_request_error"),
    (b"{x", 400, "invalid character 'x' looking for beginning of object key string", "invalid_request_error"),
    ({"model": 5, "messages": USER}, 400,
     "json: cannot unmarshal number into Go struct field ChatCompletionRequest.model of type string",
     "invalid_request_error"),
    ({"model": "llama3.2", "messages": USER, "max_tokens": 1.5}, 400,
     "json: cannot unmarshal number 1.5 into Go struct field ChatCompletionRequest.max_tokens of type int",
     "invalid_request_error"),
    ({"model": "llama3.2", "messages": []}, 400, "[] is too short - 'messages'", "invalid_request_error"),
    ({"model": "llama3.2", "messages": [{"role": "user", "content": 5}]}, 400,
     "invalid message content type: float64", "invalid_request_error"),
    ({"model": "llama3.2", "messages": [{"role": "user", "content": [
        {"type": "image_url", "image_url": {"url": "https://example.com/a.png"}}]}]}, 400,
     "invalid image input", "invalid_request_error"),
    ({"model": "llama3.2", "messages": [{"role": "assistant", "content": "", "tool_calls": [
        {"function": {"name": "f", "arguments": "{oops"}}]}]}, 400, "invalid tool call arguments",
     "invalid_request_error"),
    ({"model": "", "messages": USER}, 400, "model is required", "invalid_request_error"),
    ({"model": "nope", "messages": USER}, 404, "model 'nope' not found", "not_found_error"),
    ({"model": "qwen3:0.6b", "messages": USER, "reasoning_effort": "max"}, 400,
     "invalid reasoning value: 'max' (must be \"high\", \"medium\", \"low\", or \"none\")", "invalid_request_error"),
])
def test_errors_have_the_openai_shape(emu, body, status, message, etype):
    got = v1(emu, body)
    assert got.status == status and got.header("Content-Type") == "application/json"
    assert got.body == json.dumps({"error": {"message": message, "type": etype, "param": None, "code": None}},
                                  separators=(",", ":")).encode() + b"\n"


def test_models_list_and_one_model(emu):
    got = raw_request(emu.url, "/v1/models", method="GET")
    obj = json.loads(got.body)
    assert obj["object"] == "list" and got.body.endswith(b"\n")
    assert {m["id"] for m in obj["data"]} == {"llama3.2:latest", "qwen3:0.6b", "long:latest"}
    assert all(list(m) == ["id", "object", "created", "owned_by"] and m["owned_by"] == "library"
               for m in obj["data"])
    one = json.loads(raw_request(emu.url, "/v1/models/llama3.2", method="GET").body)
    assert one == {"id": "llama3.2", "object": "model", "created": one["created"], "owned_by": "library"}
    missing = raw_request(emu.url, "/v1/models/nope", method="GET")
    assert missing.status == 404 and json.loads(missing.body)["error"]["message"] == "model 'nope' not found"
    emu.set_models({}, replace=True)
    assert json.loads(raw_request(emu.url, "/v1/models", method="GET").body) == {"object": "list", "data": None}


def test_status_fault_and_error_events_on_this_path(emu):
    emu.push_fault({"kind": "status", "status": 503})
    busy = v1(emu, {"model": "llama3.2", "messages": USER, "stream": True})
    assert busy.status == 503 and json.loads(busy.body)["error"] == {
        "message": "server busy, please try again.  maximum pending requests exceeded", "type": "api_error",
        "param": None, "code": None}
    emu.push_fault({"kind": "error_line", "after": 2, "message": "boom"})
    got = v1(emu, {"model": "llama3.2", "messages": USER, "stream": True})
    events = got.sse()
    assert got.status == 200 and got.complete and len(events) == 3 and "[DONE]" not in events
    assert events[2] == {"error": {"message": "boom", "type": "api_error", "param": None, "code": None}}
    emu.push_fault({"kind": "error_line", "after": 1, "style": "ollama"})
    ollama_style = v1(emu, {"model": "llama3.2", "messages": USER, "stream": True}).sse()
    assert len(ollama_style) == 2 and ollama_style[1]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    emu.push_fault({"kind": "error_line", "after": 0, "message": "no runner"})
    early = v1(emu, {"model": "llama3.2", "messages": USER, "stream": True})
    assert early.status == 500 and json.loads(early.body)["error"]["message"] == "no runner"


def test_ignore_stream_answers_a_streamed_request_whole(emu):
    emu.push_fault({"kind": "ignore_stream"})
    compact = v1(emu, {"model": "llama3.2", "messages": USER, "stream": True})
    emu.push_fault({"kind": "ignore_stream", "pretty": True})
    pretty = v1(emu, {"model": "llama3.2", "messages": USER, "stream": True, "stream_options": {"include_usage": True}})
    for got in (compact, pretty):
        assert got.status == 200 and got.complete and got.header("Content-Type") == "application/json"
        obj = json.loads(got.body)
        assert obj["object"] == "chat.completion" and obj["choices"] == [
            {"index": 0, "message": {"role": "assistant", "content": "Hello there, Sam!"}, "finish_reason": "stop"}]
        assert obj["usage"]["completion_tokens"] > 0
    assert compact.body.count(b"\n") == 1 and pretty.body.startswith(b"{\n  ") and pretty.body.count(b"\n") > 10
    assert [r["faults"] for r in emu.requests("/v1/chat/completions")] == [["ignore_stream"]] * 2
    with pytest.raises(EmulatorError, match="pretty"):
        emu.push_fault({"kind": "ignore_stream", "pretty": "yes"})


def test_cut_stall_and_malformed_on_this_path(emu):
    emu.push_fault({"kind": "cut", "after": 2, "path": "/v1/chat/completions"})
    cut = v1(emu, {"model": "llama3.2", "messages": USER, "stream": True})
    assert cut.eof and not cut.complete and len(cut.events) == 2
    emu.push_fault({"kind": "stall", "seconds": 0.5, "after": 1})
    seen = []
    stalled = v1(emu, {"model": "llama3.2", "messages": USER, "stream": True},
                 on_read=lambda ex: seen.append((ex.reads[-1][0], len(ex.events))) and False)
    assert stalled.complete
    assert min(t for t, n in seen if n > 1) - max(t for t, n in seen if n <= 1) >= 0.45
    emu.push_fault({"kind": "malformed", "after": 1})
    bad = v1(emu, {"model": "llama3.2", "messages": USER, "stream": True})
    with pytest.raises(ValueError):
        bad.sse()
    emu.push_fault({"kind": "cut", "after": 1, "path": "/api/chat"})       # an explicit path: only that one
    assert v1(emu, {"model": "llama3.2", "messages": USER, "stream": True}).complete


def test_closing_the_sse_stream_stops_generation(emu):
    got = v1(emu, {"model": "long", "messages": USER, "stream": True}, on_read=lambda ex: len(ex.events) >= 3)
    assert not got.complete
    stats = emu.wait_stats(cancelled=1)
    [entry] = emu.requests("/v1/chat/completions")
    assert entry["cancelled"] and stats["in_flight"] == 0
    assert entry["outcome"]["generated"] < 60 < entry["outcome"]["planned"]        # 300 planned, 10 ms apart
