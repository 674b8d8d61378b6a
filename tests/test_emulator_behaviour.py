"""What the scripted models answer and how: templates over the conversation, token-like chunking of
UTF-8 and emoji, thinking, tool calls, structured output, num_predict, honest counters, timing,
the request log, the 512-style queue with 503, and cancellation when the client leaves."""
import json
import socket
import sys
import threading
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from ollama_server.testing import EmulatorProcess, raw_request  # noqa: E402
from emulator_fixtures import chat, fresh, module_emulator  # noqa: E402,F401

CONFIG = {"models": {
    "echo": {"reply": "u={last_user}|t={turns}|n={n_messages}|s={system}|m={model}|tool={last_tool}"},
    "llama3.2": {"reply": "The weather in {last_tool}", "capabilities": ["completion", "tools"],
                 "tool_calls": [{"name": "get_weather", "arguments": {"city": "{last_user}", "days": 2}}]},
    "qwen3:0.6b": {"reply": "Answer here.", "thinking": "Hmm, {last_user}?"},
    "cycle": {"reply": ["first", "second", "third"]},
    "slow": {"reply": "one two three four five", "ttft_ms": 300, "chunk_delay_ms": 100},
    "solo": {"reply": "a b c", "ttft_ms": 5000, "num_parallel": 1},
}}
USER = [{"role": "user", "content": "hello"}]


emu = module_emulator(CONFIG, args=("--max-queue", "1"))


def content(objs, field="content"):
    return "".join(o["message"].get(field, "") for o in objs if not o["done"])


# ------------------------------------------------------------------------------------ templates
def test_template_sees_the_history_the_client_sent(emu):
    msgs = [{"role": "system", "content": "be brief"}, {"role": "user", "content": "a"},
            {"role": "assistant", "content": "b"}, {"role": "user", "content": "c"}]
    objs = chat(emu, {"model": "echo", "messages": msgs}).json_lines()
    assert content(objs) == "u=c|t=2|n=4|s=be brief|m=echo|tool="


def test_reply_list_is_used_in_turn_order(emu):
    turns = [[{"role": "user", "content": "x"}] * n for n in (1, 2, 3, 4)]
    got = [chat(emu, {"model": "cycle", "messages": m, "stream": False}).json_lines()[0]["message"]["content"]
           for m in turns]
    assert got == ["first", "second", "third", "first"]


def test_models_can_be_replaced_at_run_time(emu):
    emu.set_models({"fresh:1b": {"reply": "new {model}"}})
    objs = chat(emu, {"model": "fresh:1b", "messages": USER}).json_lines()
    assert content(objs) == "new fresh:1b"
    tags = raw_request(emu.url, "/api/tags", method="GET").json_lines()[0]["models"]
    assert "fresh:1b" in [t["name"] for t in tags]
    with pytest.raises(Exception, match="unknown field"):
        emu.set_models({"typo": {"rpely": "x"}})


# ------------------------------------------------------------------------------------- chunking
def test_chunks_are_token_like_and_never_split_a_character(emu):
    text = "Hi café 日本 👍🏽 internationalization, ok!"
    emu.set_models({"echo": {"reply": text}})
    got = chat(emu, {"model": "echo", "messages": USER})
    pieces = [o["message"]["content"] for o in got.json_lines()[:-1]]
    assert "".join(pieces) == text
    assert pieces[:2] == ["Hi", " caf"] and "é" in pieces
    for ch in "日本👍🏽":                              # every non-ASCII code point is its own piece
        assert any(p.strip() == ch for p in pieces), (ch, pieces)
    assert max(len(p) for p in pieces) <= 7 and " intern" in pieces
    for chunk in got.chunks:                       # each HTTP chunk is one whole, valid UTF-8 line
        chunk.decode("utf-8")


# ---------------------------------------------------------------------- thinking, tools, format
def test_thinking_model_thinks_first_unless_told_not_to(emu):
    objs = chat(emu, {"model": "qwen3:0.6b", "messages": USER}).json_lines()
    fields = ["thinking" if "thinking" in o["message"] else "content" for o in objs[:-1]]
    assert fields == sorted(fields, key=lambda f: f != "thinking") and fields[0] == "thinking"
    assert content(objs, "thinking") == "Hmm, hello?" and content(objs) == "Answer here."
    assert all(o["message"]["content"] == "" for o in objs[:-1] if "thinking" in o["message"])
    off = chat(emu, {"model": "qwen3:0.6b", "think": False, "messages": USER}).json_lines()
    assert not any("thinking" in o["message"] for o in off) and content(off) == "Answer here."
    level = chat(emu, {"model": "qwen3:0.6b", "think": "low", "stream": False, "messages": USER}).json_lines()[0]
    assert level["message"]["thinking"] == "Hmm, hello?"


def test_tool_call_arrives_whole_in_one_chunk(emu):
    tools = [{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}]
    objs = chat(emu, {"model": "llama3.2", "tools": tools,
                      "messages": [{"role": "user", "content": "Tokyo"}]}).json_lines()
    assert len(objs) == 2
    call = objs[0]["message"]
    assert call == {"role": "assistant", "content": "",
                    "tool_calls": [{"function": {"index": 0, "name": "get_weather",
                                                 "arguments": {"city": "Tokyo", "days": 2}}}]}
    assert objs[1]["done_reason"] == "stop" and objs[1]["eval_count"] > 1
    result = [{"role": "user", "content": "Tokyo"}, {"role": "assistant", "content": "", "tool_calls":
              call["tool_calls"]}, {"role": "tool", "content": "11 degrees", "tool_name": "get_weather"}]
    answer = chat(emu, {"model": "llama3.2", "tools": tools, "messages": result}).json_lines()
    assert content(answer) == "The weather in 11 degrees"
    unknown = [{"type": "function", "function": {"name": "other"}}]
    assert "tool_calls" not in chat(emu, {"model": "llama3.2", "tools": unknown, "messages": USER,
                                          "stream": False}).json_lines()[0]["message"]


def test_format_json_and_schema_give_valid_json(emu):
    plain = chat(emu, {"model": "echo", "format": "json", "stream": False, "messages": USER}).json_lines()[0]
    assert isinstance(json.loads(plain["message"]["content"]), dict)
    schema = {"type": "object", "properties": {"age": {"type": "integer"}, "ok": {"type": "boolean"},
                                               "tags": {"type": "array", "items": {"type": "string"}}}}
    objs = chat(emu, {"model": "echo", "format": schema, "messages": USER}).json_lines()
    value = json.loads(content(objs))
    assert set(value) == {"age", "ok", "tags"} and isinstance(value["age"], int) and isinstance(value["tags"], list)


def test_num_predict_caps_the_reply_with_done_reason_length(emu):
    objs = chat(emu, {"model": "echo", "options": {"num_predict": 3}, "messages": USER}).json_lines()
    assert len(objs) == 4 and objs[-1]["done_reason"] == "length" and objs[-1]["eval_count"] == 3
    stop = chat(emu, {"model": "echo", "options": {"stop": ["|t="]}, "stream": False, "messages": USER})
    assert stop.json_lines()[0]["message"]["content"] == "u=hello"


# ----------------------------------------------------------------------------- counters, timing
def test_counters_are_honest(emu):
    objs = chat(emu, {"model": "slow", "messages": USER}).json_lines()
    final = objs[-1]
    assert final["eval_count"] == len(objs) - 1 == 5
    assert final["prompt_eval_count"] >= 5
    assert final["prompt_eval_duration"] >= 280e6                     # the 300 ms time to first token
    assert 380e6 <= final["eval_duration"] <= 1e9                     # 4 gaps of 100 ms
    assert final["total_duration"] >= final["prompt_eval_duration"] + final["eval_duration"]


def test_time_to_first_token_and_chunk_pacing_are_real(emu):
    got = chat(emu, {"model": "slow", "messages": USER})
    first, last = got.reads[0][0], got.reads[-1][0]
    assert first >= 0.28 and last - first >= 0.38
    assert len(got.reads) >= 5                   # paced lines do not arrive together


# ---------------------------------------------------------------------------------- request log
def test_request_log_has_bodies_and_outcomes(emu, tmp_path):
    body = {"model": "echo", "messages": USER, "options": {"temperature": 0, "seed": 7}, "keep_alive": "1m"}
    chat(emu, body)
    raw_request(emu.url, "/api/tags", method="GET")
    [entry] = emu.requests()
    assert entry["body"] == body and entry["method"] == "POST" and entry["status"] == 200
    assert entry["outcome"]["result"] == "completed" and entry["outcome"]["done_reason"] == "stop"
    assert entry["outcome"]["chunks"] == entry["outcome"]["eval_count"] > 0
    assert [e["path"] for e in emu.requests(None)] == ["/api/chat", "/api/tags"]
    assert emu.clear_requests() == 2 and emu.requests(None) == []
    log = tmp_path / "requests.jsonl"
    with EmulatorProcess(config=CONFIG, request_log=str(log)) as other:
        chat(other, {"model": "echo", "messages": []})
    [line] = log.read_text().splitlines()
    assert json.loads(line)["outcome"]["result"] == "load"


# ------------------------------------------------------------------------- concurrency and cancel
def test_queue_full_is_503_with_ollamas_text(emu):
    results = []

    def run(msg):
        results.append(chat(emu, {"model": "solo", "messages": [{"role": "user", "content": msg}]}, timeout=2))

    threads = [threading.Thread(target=run, args=(m,)) for m in ("a", "b")]
    for t in threads:
        t.start()
        emu.wait_for(lambda e, n=len([x for x in threads if x.is_alive()]):
                     e.state()["active"].get("solo:latest", 0) + e.state()["waiting"] >= n, what="queueing")
    assert emu.state()["waiting"] == 1                       # one running (num_parallel 1), one queued
    busy = chat(emu, {"model": "solo", "messages": USER})    # the queue (max 1) is full
    assert busy.status == 503 and busy.json_lines() == [
        {"error": "server busy, please try again.  maximum pending requests exceeded"}]
    for t in threads:
        t.join()                                             # both clients give up after 2 s
    emu.wait_for(lambda e: e.state()["waiting"] == 0 and not e.state()["active"], what="the queue to drain")
    results = emu.wait_for_requests(3)
    assert sorted(r["outcome"]["result"] for r in results) == ["canceled", "canceled", "error"]


def test_closing_the_connection_cancels_generation(emu):
    emu.set_models({"long": {"reply": "word " * 200, "chunk_delay_ms": 20}})
    got = chat(emu, {"model": "long", "messages": USER}, on_read=lambda ex: len(ex.lines) >= 3)
    assert not got.complete
    [entry] = emu.wait_for_requests(1)
    assert entry["outcome"]["result"] == "canceled" and 3 <= entry["outcome"]["chunks"] < 100
    assert "canceled" in emu.stderr_text()


def test_keep_alive_connection_serves_several_requests(emu):
    body = json.dumps({"model": "echo", "messages": USER, "stream": False}).encode()
    req = b"POST /api/chat HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body)
    host, port = emu.url.split("//")[1].split(":")
    with socket.create_connection((host, int(port)), timeout=5) as s:
        s.sendall(req + req)                                  # pipelined
        data = b""
        deadline = time.monotonic() + 5
        while data.count(b"HTTP/1.1 200 OK") < 2 and time.monotonic() < deadline:
            data += s.recv(65536)
    assert data.count(b"HTTP/1.1 200 OK") == 2
