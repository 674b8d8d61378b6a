"""The emulator's replies against real Ollama: the transcripts in shared/reference/ollama-docs and the
wire rules of shared/ollama-api.md (key order of the raw bytes, created_at, omitempty), headers,
error texts, load/unload and /api/ps, readiness and shutdown of the CLI.

Everything is checked on what arrives on the socket (``raw_request``), not on internals.
"""
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
from ollama_server.testing import EmulatorProcess, raw_request  # noqa: E402
from emulator_fixtures import chat, fresh, module_emulator  # noqa: E402,F401

SHARED = Path(os.environ.get("OLLAMA_BRIDGE_SHARED", REPO.parent / "shared"))
DOCS = SHARED / "reference" / "ollama-docs"
RFC3339_NANO = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{0,8}[1-9])?(Z|[+-]\d\d:\d\d)$")
WEATHER = [{"name": "get_weather", "arguments": {"city": "Tokyo"}},
           {"name": "get_current_weather", "arguments": {"location": "Paris, FR", "format": "celsius"}}]
CONFIG = {"models": {
    "llama3.2": {"reply": "You said: {last_user}", "capabilities": ["completion", "tools"], "tool_calls": WEATHER},
    "llama3.1": {"reply": "ok", "json_reply": {"age": 22, "available": False}},
    "llava": {"reply": "A pig.", "capabilities": ["completion", "vision"]},
    "qwen3:0.6b": {"reply": "Answer.", "thinking": "Hmm, {last_user}?"},
    "smollm2:135m": {"reply": "Small reply."},
}}


emu = module_emulator(CONFIG)


# ------------------------------------------------------------------------ reference transcripts
def doc_examples():
    """(title, request body, [response objects]) for every example of api-chat.md; none when the
    reference folder (../shared, or $OLLAMA_BRIDGE_SHARED) is not beside the checkout."""
    if not (DOCS / "api-chat.md").exists():
        return []
    text = (DOCS / "api-chat.md").read_text()
    out = []
    for section in re.split(r"^#### ", text, flags=re.M)[1:]:
        title = section.splitlines()[0].strip()
        req = re.search(r"-d '(.*?)'\s*\n```", section, re.S)
        if not req:
            continue
        body = json.loads("\n".join(l for l in req.group(1).splitlines() if not l.strip().startswith("//")))
        responses = [json.loads(b) for b in re.findall(r"```json\n(.*?)```", section, re.S)]
        out.append((title, body, responses))
    return out


def json_type(v):
    return {bool: "bool", int: "number", float: "number", str: "string", list: "array",
            dict: "object", type(None): "null"}[type(v)]


# Keys a transcript may lack because its Ollama version predates them (ollama-api.md lists them).
NEWER_KEYS = {"done_reason", "index"}


def assert_shape(ref, got, where, extra_ok=frozenset()):
    """Same keys with the same JSON types; a key null in the reference (old Go without omitempty,
    e.g. ``"images": null``) must be absent now; keys only in ``got`` must be newer fields."""
    for key, rv in ref.items():
        if rv is None:
            assert got.get(key) is None, "%s.%s: expected omitted, got %r" % (where, key, got.get(key))
            continue
        assert key in got, "%s: key %r missing (have %s)" % (where, key, sorted(got))
        assert json_type(got[key]) == json_type(rv), "%s.%s: %r vs %r" % (where, key, got[key], rv)
        if isinstance(rv, dict) and key != "arguments":
            assert_shape(rv, got[key], where + "." + key)
        if isinstance(rv, list) and rv and isinstance(rv[0], dict):
            assert_shape(rv[0], got[key][0], where + "." + key + "[0]")
    extra = set(got) - set(ref) - NEWER_KEYS - extra_ok
    assert not extra, "%s: keys not in the reference: %s" % (where, extra)


@pytest.mark.skipif(not DOCS.exists(), reason=f"Ollama's reference transcripts are not at {DOCS}")
def test_transcripts_are_there():
    titles = [t for t, _, _ in doc_examples()]
    assert len(titles) >= 10 and "Load a model" in titles, titles


@pytest.mark.parametrize("title,body,refs", doc_examples(), ids=lambda x: x if isinstance(x, str) else "")
def test_reply_shapes_match_reference_transcripts(emu, title, body, refs):
    emu.reset()                                   # cold model: load_duration is present, as in the docs
    got = chat(emu, body)
    assert got.status == 200 and got.complete, got.data[:300]
    objs = got.json_lines()
    streamed = body.get("stream", True) is not False and body.get("messages")
    pairs = [(refs[0], objs[0]), (refs[-1], objs[-1])] if streamed and len(refs) == 2 else [(refs[-1], objs[-1])]
    for i, (ref, obj) in enumerate(pairs):
        # The docs' "With History" final omits "message"; Go always encodes it (no omitempty).
        extra = {"message"} if "message" not in ref else frozenset()
        assert_shape(ref, obj, "%s[%d]" % (title, i), extra)
        assert obj["model"] == body["model"] and obj["done"] == ref["done"]
        assert RFC3339_NANO.match(obj["created_at"]), obj["created_at"]
        if "done_reason" in ref:
            assert obj["done_reason"] == ref["done_reason"]
        if ref.get("message", {}).get("tool_calls"):
            assert obj["message"]["tool_calls"][0]["function"]["name"] == ref["message"]["tool_calls"][0]["function"]["name"]
            assert obj["message"]["tool_calls"][0]["function"]["arguments"] == ref["message"]["tool_calls"][0]["function"]["arguments"]
    if body.get("format"):
        assert json.loads(objs[-1]["message"]["content"]) == {"age": 22, "available": False}


# ---------------------------------------------------------------------------- ollama-api.md rules
CHUNK_RE = re.compile(rb'^\{"model":"llama3\.2","created_at":"[^"]+","message":\{"role":"assistant",'
                      rb'"content":"(?:[^"\\]|\\.)*"\},"done":false\}$')
FINAL_ORDER = ["model", "created_at", "message", "done", "done_reason", "total_duration", "load_duration",
               "prompt_eval_count", "prompt_eval_duration", "eval_count", "eval_duration"]


def test_raw_line_key_order_and_no_done_reason_on_non_final(emu):
    got = chat(emu, {"model": "llama3.2", "messages": [{"role": "user", "content": "hello there"}]})
    lines = got.lines
    assert len(lines) >= 3
    for line in lines[:-1]:
        assert CHUNK_RE.match(line), line          # exact order, no done_reason, no metrics, no images
    final = json.loads(lines[-1])
    keys = list(final)                             # json keeps the wire order
    assert keys == [k for k in FINAL_ORDER if k in keys] and keys[:5] == FINAL_ORDER[:5]
    assert final["message"] == {"role": "assistant", "content": ""}
    assert all(isinstance(final[k], int) and final[k] > 0 for k in keys[5:])


def test_created_at_is_rfc3339_nano_utc_with_trimmed_zeros(emu):
    stamps = [o["created_at"] for o in chat(emu, {"model": "llama3.2", "messages": [
        {"role": "user", "content": "a b c d e f g h"}]}).json_lines()]
    assert all(RFC3339_NANO.match(s) and s.endswith("Z") for s in stamps), stamps
    assert stamps == sorted(stamps)
    assert any(len(s.split(".")[1]) > 7 for s in stamps if "." in s)   # nanoseconds, not micro


def test_local_time_option_uses_the_local_offset():
    env = dict(os.environ, TZ="America/Los_Angeles")
    with EmulatorProcess(config=CONFIG, args=["--local-time"], env=env) as e:
        obj = chat(e, {"model": "llama3.2", "messages": [], "stream": False}).json_lines()[0]
    assert re.search(r"-0[78]:00$", obj["created_at"]), obj["created_at"]


def test_zero_metrics_are_omitted_on_a_warm_model(emu):
    first = chat(emu, {"model": "llama3.2", "messages": [{"role": "user", "content": "x"}]}).json_lines()[-1]
    second = chat(emu, {"model": "llama3.2", "messages": [{"role": "user", "content": "x"}]}).json_lines()[-1]
    assert first["load_duration"] > 0
    assert "load_duration" not in second and second["eval_count"] > 0


def test_go_html_escaping_and_raw_utf8(emu):
    got = chat(emu, {"model": "llama3.2", "stream": False, "messages": [{"role": "user", "content": "<b>&é"}]})
    assert b"\\u003cb\\u003e\\u0026" in got.body and "é".encode() in got.body
    assert got.json_lines()[0]["message"]["content"] == "You said: <b>&é"


# ------------------------------------------------------------------------------------ headers
def test_stream_headers_are_go_like(emu):
    got = chat(emu, {"model": "llama3.2", "messages": [{"role": "user", "content": "x"}]})
    assert [k for k, _ in got.headers] == ["Content-Type", "Date", "Transfer-Encoding"]
    assert got.header("Content-Type") == "application/x-ndjson" and got.header("Transfer-Encoding") == "chunked"
    assert all(c.endswith(b"\n") and c.count(b"\n") == 1 for c in got.chunks)   # one line per HTTP chunk


def test_whole_replies_have_content_length(emu):
    got = chat(emu, {"model": "llama3.2", "stream": False, "messages": [{"role": "user", "content": "x"}]})
    assert [k for k, _ in got.headers] == ["Content-Type", "Date", "Content-Length"]
    assert got.header("Content-Type") == "application/json; charset=utf-8"
    assert not got.body.endswith(b"\n")            # gin's c.JSON adds no newline


def test_big_whole_reply_is_chunked_like_go(emu):
    emu.set_models({"llama3.2": {"reply": "word " * 1000}})
    got = chat(emu, {"model": "llama3.2", "stream": False, "messages": [{"role": "user", "content": "x"}]})
    assert got.header("Transfer-Encoding") == "chunked" and got.header("Content-Length") is None
    assert len(got.chunks) == 1 and got.complete


def test_root_head_version_and_unknown_path(emu):
    root = raw_request(emu.url, "/", method="GET")
    assert (root.status, root.body, root.header("Content-Type")) == (200, b"Ollama is running", "text/plain; charset=utf-8")
    head = raw_request(emu.url, "/", method="HEAD", timeout=2)
    assert head.status == 200 and head.header("Content-Length") == "17" and head.data.endswith(b"\r\n\r\n")
    assert raw_request(emu.url, "/api/version", method="GET").json_lines() == [{"version": "0.12.3"}]
    nf = raw_request(emu.url, "/api/generate-nope", method="GET")
    assert (nf.status, nf.body, nf.header("Content-Type")) == (404, b"404 page not found", "text/plain")
    wrong_method = raw_request(emu.url, "/api/chat", method="GET")
    assert wrong_method.status == 404 and wrong_method.body == b"404 page not found"


# ------------------------------------------------------------------------------------- errors
@pytest.mark.parametrize("body,status,text", [
    (b"", 400, "missing request body"),
    (b"   ", 400, "missing request body"),
    ({"messages": []}, 400, "model is required"),
    ({"model": "", "messages": []}, 400, "model is required"),
    (b'{"model": x}', 400, "invalid character 'x' looking for beginning of value"),
    (b'{"model": "llama3.2"', 400, "unexpected EOF"),
    (b'{"model": "llama3.2"} x', 400, "invalid character 'x' after top-level value"),
    (b'[1]', 400, "json: cannot unmarshal array into Go value of type api.ChatRequest"),
    ({"model": 5}, 400, "json: cannot unmarshal number into Go struct field ChatRequest.model of type string"),
    ({"model": "llama3.2", "keep_alive": "10"}, 400, 'time: missing unit in duration "10"'),
    ({"model": "llama3.2", "messages": ["hi"]}, 400,
     "json: cannot unmarshal string into Go struct field ChatRequest.messages of type api.Message"),
    ({"model": "llama3.2", "messages": [{"role": "user", "content": 5}]}, 400,
     "json: cannot unmarshal number into Go struct field ChatRequest.messages.content of type string"),
    ({"model": "llama3.2", "messages": [], "tools": ["x"]}, 400,
     "json: cannot unmarshal string into Go struct field ChatRequest.tools of type api.Tool"),
    ({"model": "missing-model", "messages": []}, 404, "model 'missing-model' not found"),
    ({"model": "llama3.2", "think": True, "messages": [{"role": "user", "content": "x"}]}, 400,
     '"llama3.2" does not support thinking'),
    ({"model": "smollm2:135m", "tools": [{"type": "function", "function": {"name": "f"}}],
      "messages": [{"role": "user", "content": "x"}]}, 400,
     "registry.ollama.ai/library/smollm2:135m does not support tools"),
    ({"model": "llama3.2", "options": {"num_predict": "many"}, "messages": [{"role": "user", "content": "x"}]},
     500, 'option "num_predict" must be of type integer'),
    ({"model": "llama3.2", "format": "xml", "messages": [{"role": "user", "content": "x"}]}, 500,
     'invalid format: "\\"xml\\""; expected "json" or a valid JSON Schema object'),
])
def test_error_replies_use_ollamas_texts(emu, body, status, text):
    got = chat(emu, body)
    assert got.status == status and got.complete
    assert got.json_lines() == [{"error": text}]
    assert got.header("Content-Type") == "application/json; charset=utf-8"


# ---------------------------------------------------------------------- load, unload, /api/ps
def ps(emu):
    return raw_request(emu.url, "/api/ps", method="GET").json_lines()[0]["models"]


def test_load_unload_and_ps_follow_keep_alive(emu):
    assert ps(emu) == []
    load = chat(emu, {"model": "llama3.2", "messages": [], "keep_alive": "10m"})
    assert load.header("Content-Type") == "application/json; charset=utf-8"   # c.JSON even when streaming
    assert load.json_lines() == [{"model": "llama3.2", "created_at": load.json_lines()[0]["created_at"],
                                  "message": {"role": "assistant", "content": ""}, "done": True,
                                  "done_reason": "load"}]
    [m] = ps(emu)
    assert list(m) == ["name", "model", "size", "digest", "details", "expires_at", "size_vram", "context_length"]
    assert m["name"] == "llama3.2:latest" and RFC3339_NANO.match(m["expires_at"])
    left = time.mktime(time.strptime(m["expires_at"][:19], "%Y-%m-%dT%H:%M:%S")) - time.mktime(time.gmtime())
    assert 9 * 60 < left <= 10 * 60
    chat(emu, {"model": "qwen3:0.6b", "messages": [], "keep_alive": -1})
    assert [x["name"] for x in ps(emu)] == ["qwen3:0.6b", "llama3.2:latest"]   # longest remaining first
    unload = chat(emu, {"model": "llama3.2", "messages": [], "keep_alive": 0}).json_lines()[0]
    assert unload["done_reason"] == "unload" and "total_duration" not in unload
    assert [x["name"] for x in ps(emu)] == ["qwen3:0.6b"]


def test_keep_alive_zero_on_a_chat_unloads_after_it(emu):
    chat(emu, {"model": "llama3.2", "keep_alive": 0, "messages": [{"role": "user", "content": "x"}]})
    assert ps(emu) == []


# ------------------------------------------------------------------------------ other endpoints
def test_tags_show_pull(emu):
    tags = raw_request(emu.url, "/api/tags", method="GET").json_lines()[0]["models"]
    assert {t["name"] for t in tags} >= {"llama3.2:latest", "qwen3:0.6b", "smollm2:135m"}
    assert list(tags[0]) == ["name", "model", "modified_at", "size", "digest", "details"]
    assert list(tags[0]["details"]) == ["parent_model", "format", "family", "families", "parameter_size",
                                        "quantization_level"]
    show = raw_request(emu.url, "/api/show", {"model": "qwen3:0.6b"}).json_lines()[0]
    assert show["capabilities"] == ["completion", "thinking"] and list(show["model_info"]) == sorted(show["model_info"])
    assert raw_request(emu.url, "/api/show", {"model": "nope"}).json_lines() == [{"error": "model 'nope' not found"}]
    pull = raw_request(emu.url, "/api/pull", {"model": "llama3.2"})
    lines = pull.json_lines()
    assert pull.header("Content-Type") == "application/x-ndjson" and lines[-1] == {"status": "success"}
    assert any(set(l) == {"status", "digest", "total", "completed"} for l in lines)
    quiet = raw_request(emu.url, "/api/pull", {"model": "llama3.2", "stream": False})
    assert quiet.json_lines() == [{"status": "success"}]
    bad = raw_request(emu.url, "/api/pull", {"model": "no-such-model"}).json_lines()
    assert bad[-1] == {"error": "pull model manifest: file does not exist"}


# ---------------------------------------------------------------------------- CLI lifecycle
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_cli_prints_one_readiness_line_and_exits_0_on_signal(sig):
    proc = subprocess.Popen([sys.executable, "-m", "ollama_server", "--port", "0", "--version-string", "9.9.9"],
                            cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        line = proc.stdout.readline().decode()
        m = re.fullmatch(r"ollama_server listening on (http://127\.0\.0\.1:(\d+))\n", line)
        assert m, line
        assert raw_request(m.group(1), "/api/version", method="GET").json_lines() == [{"version": "9.9.9"}]
        proc.send_signal(sig)
        assert proc.wait(10) == 0
        assert proc.stdout.read() == b""           # exactly one line on stdout
    finally:
        proc.kill()
        proc.wait()
        proc.stdout.close()
        proc.stderr.close()


def test_sigterm_during_a_stream_exits_0_at_once():
    import threading
    with EmulatorProcess(config={"models": {"slow": {"reply": "a " * 100, "chunk_delay_ms": 200}}}) as e:
        got = []
        reader = threading.Thread(target=lambda: got.append(chat(e, {"model": "slow", "messages": [
            {"role": "user", "content": "x"}]}, timeout=30)))
        reader.start()
        e.wait_for(lambda x: x.state()["active"], what="the stream to start")
        t0 = time.monotonic()
        assert e.stop() == 0 and time.monotonic() - t0 < 3
        reader.join(10)
        assert got[0].eof and not got[0].complete


def test_restart_keeps_the_port_and_kill_is_a_crash():
    with EmulatorProcess(config=CONFIG) as e:
        url = e.url
        assert e.kill() == -signal.SIGKILL
        e.start()
        assert e.url == url and raw_request(url, "/", method="GET").status == 200
        e.restart()
        assert e.url == url and e.running
