"""Scripted model behaviours other developers' integration tests drive: reasoning left in
``message.content`` as a ``<think>`` block (cut at configurable points), tool calls round by round
with replies that quote the tool results, images seen by vision models (size and format from the
header) and ignored or refused by others, and one-request script overrides."""
import base64
import json
import struct
import sys
import zlib
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from ollama_server.testing import EmulatorError, raw_request  # noqa: E402
from emulator_fixtures import chat, fresh, module_emulator  # noqa: E402,F401

THINK = "\nThe user says hi. Keep it short.\n"
CONFIG = {"models": {
    "r1": {"reply": "Hello! How can I help?", "thinking": THINK, "think_tag": "think"},
    "llama3.2": {"reply": "Plain {last_user}", "capabilities": ["completion", "tools"], "tool_call_ids": True,
                 "tool_rounds": [[{"name": "get_weather", "arguments": {"city": "{last_user}"}}],
                                 [{"name": "get_time", "arguments": {"zone": "CET"}},
                                  {"name": "not_offered", "arguments": {}}]],
                 "tool_reply": "Done: {tool_results}"},
    "auto": {"capabilities": ["completion", "tools"], "tool_calls": "auto"},
    "llava": {"reply": "Text only.", "capabilities": ["completion", "vision"]},
    "blind": {"reply": "I read: {last_user}"},
    "broken-vision": {"reply": "x", "images_without_vision": "error"},
}}
USER = [{"role": "user", "content": "hi"}]
TOOLS = [{"type": "function", "function": {"name": n, "parameters": {"type": "object"}}}
         for n in ("get_weather", "get_time")]

emu = module_emulator(CONFIG)


def contents(got, field="content"):
    return [o["message"].get(field, "") for o in got.json_lines() if not o.get("done")]


# ------------------------------------------------------------------------------ think in content
def test_reasoning_arrives_in_content_as_a_think_block(emu):
    got = chat(emu, {"model": "r1", "messages": USER})
    pieces = contents(got)
    assert "".join(pieces) == "<think>" + THINK + "</think>\n\nHello! How can I help?"
    assert len(pieces) > 10 and not any("thinking" in o["message"] for o in got.json_lines())
    assert "<think>" not in pieces and "</think>" not in pieces          # the tags are cut like tokens
    show = raw_request(emu.url, "/api/show", {"model": "r1"}).json_lines()[0]
    assert "thinking" not in show["capabilities"]                       # a server that does not separate
    off = chat(emu, {"model": "r1", "messages": USER, "think": False, "stream": False}).json_lines()[0]
    assert off["message"]["content"].startswith("<think>") and "thinking" not in off["message"]


@pytest.mark.parametrize("script,expected", [
    ({"think_tag": "thinking"}, "<thinking>" + THINK + "</thinking>\n\nHello! How can I help?"),
    ({"thinking": ""}, "<think></think>\n\nHello! How can I help?"),
    ({"think_gap": "  \n \n\t"}, "<think>" + THINK + "</think>  \n \n\tHello! How can I help?"),
    ({"think_close": False}, "<think>" + THINK),
])
def test_think_block_variants(emu, script, expected):
    emu.push_fault({"kind": "script", **script})
    assert "".join(contents(chat(emu, {"model": "r1", "messages": USER}))) == expected


def test_split_points_cut_inside_the_tags(emu):
    emu.push_fault({"kind": "script", "split_at": [2, "nk>", "/th"]})
    pieces = contents(chat(emu, {"model": "r1", "messages": USER}))
    assert pieces[:5] == ["<", "t", "hi", "nk", ">"]               # the tokenizer's cuts, then offset 2, "nk>"
    closing = pieces.index("/")
    assert pieces[closing - 1:closing + 4] == ["<", "/", "thi", "nk", ">"]      # cut before "/th" and "nk>"
    assert "".join(pieces) == "<think>" + THINK + "</think>\n\nHello! How can I help?"
    emu.push_fault({"kind": "script", "pieces": ["<thi", "nk>\nHmm {last_user}\n</th", "ink>\n", "\nOK"]})
    assert contents(chat(emu, {"model": "r1", "messages": USER})) == ["<thi", "nk>\nHmm hi\n</th", "ink>\n", "\nOK"]
    assert "".join(contents(chat(emu, {"model": "r1", "messages": USER}))).endswith("</think>\n\nHello! How can I help?")


def test_think_block_on_the_openai_path(emu):
    got = raw_request(emu.url, "/v1/chat/completions", {"model": "r1", "messages": USER, "stream": True})
    events = [e for e in got.sse() if e != "[DONE]"]
    text = "".join(e["choices"][0]["delta"]["content"] for e in events)
    assert text == "<think>" + THINK + "</think>\n\nHello! How can I help?"
    assert not any("reasoning" in e["choices"][0]["delta"] for e in events)


def test_script_fault_is_one_request_and_checked(emu):
    emu.push_fault({"kind": "script", "reply": "once", "model": "blind"})
    assert contents(chat(emu, {"model": "r1", "messages": USER}))[-1] != "once"        # other model: untouched
    assert "".join(contents(chat(emu, {"model": "blind", "messages": USER}))) == "once"
    assert "".join(contents(chat(emu, {"model": "blind", "messages": USER}))) == "I read: hi"
    with pytest.raises(EmulatorError, match="unknown model field"):
        emu.push_fault({"kind": "script", "rpely": "x"})


# ------------------------------------------------------------------------------------- tools
def test_tool_rounds_then_an_answer_that_quotes_the_results(emu):
    msgs = [{"role": "user", "content": "Oslo"}]
    first = chat(emu, {"model": "llama3.2", "messages": msgs, "tools": TOOLS}).json_lines()
    calls = first[0]["message"]["tool_calls"]
    assert [c["function"] for c in calls] == [{"index": 0, "name": "get_weather", "arguments": {"city": "Oslo"}}]
    assert calls[0]["id"].startswith("call_") and list(calls[0]) == ["id", "function"]
    msgs += [first[0]["message"], {"role": "tool", "tool_name": "get_weather", "content": '{"temp": 3}'}]
    second = chat(emu, {"model": "llama3.2", "messages": msgs, "tools": TOOLS}).json_lines()
    calls = second[0]["message"]["tool_calls"]
    assert [c["function"]["name"] for c in calls] == ["get_time"]          # not_offered is dropped
    msgs += [second[0]["message"], {"role": "tool", "tool_name": "get_time", "content": "12:00"},
             {"role": "tool", "content": "extra"}]
    third = chat(emu, {"model": "llama3.2", "messages": msgs, "tools": TOOLS}).json_lines()
    assert "".join(o["message"]["content"] for o in third[:-1]) == "Done: get_time: 12:00; extra"
    logged = emu.requests()[-1]["body"]
    assert logged["tools"] == TOOLS and logged["messages"] == msgs           # the whole request is kept
    fresh_turn = chat(emu, {"model": "llama3.2", "messages": msgs + [{"role": "user", "content": "Rome"}],
                            "tools": TOOLS}).json_lines()
    assert fresh_turn[0]["message"]["tool_calls"][0]["function"]["arguments"] == {"city": "Rome"}
    no_tools = chat(emu, {"model": "llama3.2", "messages": USER, "stream": False}).json_lines()[0]
    assert no_tools["message"] == {"role": "assistant", "content": "Plain hi"}


def test_auto_calls_the_first_offered_tool_with_arguments_from_its_schema(emu):
    schema = {"type": "object", "required": ["room"], "properties": {
        "room": {"type": "string", "enum": ["kitchen", "hall"]}, "on": {"type": "boolean"},
        "level": {"type": "integer", "minimum": 2}, "ratio": {"type": "number", "exclusiveMinimum": 0},
        "color": {"type": "object", "properties": {"r": {"type": "integer"}}},
        "tags": {"type": "array", "items": {"type": "string"}}, "note": {"type": "string"},
        "mode": {"type": "string", "default": "eco"}}}
    tools = [{"type": "function", "function": {"name": "set_light", "parameters": schema}}] + TOOLS
    got = chat(emu, {"model": "auto", "messages": [{"role": "user", "content": "lights"}], "tools": tools})
    [call] = got.json_lines()[0]["message"]["tool_calls"]
    assert call == {"function": {"index": 0, "name": "set_light", "arguments": {
        "color": {"r": 0}, "level": 2, "mode": "eco", "note": "lights", "on": False, "ratio": 1,
        "room": "kitchen", "tags": ["lights"]}}}
    assert list(call["function"]["arguments"]) == sorted(call["function"]["arguments"])   # a Go map
    result = [{"role": "user", "content": "lights"}, got.json_lines()[0]["message"],
              {"role": "tool", "tool_name": "set_light", "content": "ok"}]
    answer = chat(emu, {"model": "auto", "messages": result, "tools": tools, "stream": False}).json_lines()[0]
    assert answer["message"]["content"] == "The tool returned: set_light: ok"


# ------------------------------------------------------------------------------------ images
def png(width: int, height: int) -> str:
    """A real (all-black, greyscale) PNG, base64."""
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    raw = b"".join(b"\0" + b"\0" * width for _ in range(height))
    data = (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))
    return base64.b64encode(data).decode()


def jpeg(width: int, height: int, sof: int = 0xC0) -> str:
    """JPEG headers as an encoder writes them: SOI, APP0 (JFIF), DQT, a fill byte, SOFn, DHT, SOS, EOI."""
    def seg(marker, body):
        return bytes([0xFF, marker]) + struct.pack(">H", len(body) + 2) + body
    data = (b"\xff\xd8" + seg(0xE0, b"JFIF\0\x01\x01\0\0\x01\0\x01\0\0") + seg(0xDB, b"\0" + bytes(64)) + b"\xff"
            + seg(sof, struct.pack(">BHHB", 8, height, width, 3) + bytes(9)) + seg(0xC4, bytes(17))
            + seg(0xDA, bytes(10)) + b"\x00" * 16 + b"\xff\xd9")
    return base64.b64encode(data).decode()


def test_a_vision_model_reports_what_it_sees(emu):
    show = raw_request(emu.url, "/api/show", {"model": "llava"}).json_lines()[0]
    assert show["capabilities"] == ["completion", "vision"]
    for image, seen in ((png(640, 480), "640x480 (png)"), (jpeg(1280, 720), "1280x720 (jpeg)"),
                        (jpeg(33, 17, sof=0xC2), "33x17 (jpeg)")):
        body = {"model": "llava", "stream": False, "messages": [{"role": "user", "content": "?", "images": [image]}]}
        assert chat(emu, body).json_lines()[0]["message"]["content"] == "I see an image of %s." % seen
    two = {"model": "llava", "messages": [{"role": "user", "content": "?", "images": [png(2, 3), jpeg(4, 5)]}]}
    assert "".join(contents(chat(emu, two))) == "I see an image of 2x3 (png) and 4x5 (jpeg)."
    entry = emu.requests()[-1]
    assert [(i["width"], i["height"], i["format"]) for i in entry["outcome"]["images"]] == [(2, 3, "png"), (4, 5, "jpeg")]
    later = {"model": "llava", "messages": two["messages"] + [{"role": "assistant", "content": "ok"},
                                                             {"role": "user", "content": "and now?"}]}
    assert "".join(contents(chat(emu, later))) == "Text only."             # no image in this turn


def test_images_on_the_openai_path(emu):
    url = "data:image/png;base64," + png(64, 48)
    body = {"model": "llava", "messages": [{"role": "user", "content": [
        {"type": "text", "text": "What is this?"}, {"type": "image_url", "image_url": {"url": url}}]}]}
    obj = json.loads(raw_request(emu.url, "/v1/chat/completions", body).body)
    assert obj["choices"][0]["message"]["content"] == "I see an image of 64x48 (png)."
    converted = emu.requests("/v1/chat/completions")[-1]["ollama_body"]["messages"]
    assert converted == [{"role": "user", "content": "What is this?"},
                         {"role": "user", "content": "", "images": [png(64, 48)]}]


def test_models_without_vision_ignore_images_or_fail_like_ollama(emu):
    body = {"model": "blind", "messages": [{"role": "user", "content": "hello", "images": [png(8, 8)]}]}
    assert "".join(contents(chat(emu, body))) == "I read: hello"           # a text runner ignores them
    text = ("Failed to create new sequence: failed to process inputs: this model is missing data required "
            "for image input")
    for stream, ctype in ((True, "application/json"), (False, "application/json; charset=utf-8")):
        got = chat(emu, dict(body, model="broken-vision", stream=stream))
        assert (got.status, got.json_lines(), got.header("Content-Type")) == (500, [{"error": text}], ctype)
    bad = chat(emu, {"model": "llava", "messages": [{"role": "user", "content": "?",
                                                     "images": [base64.b64encode(b"not an image").decode()]}]})
    assert bad.status == 500 and bad.json_lines() == [
        {"error": "Failed to create new sequence: failed to process inputs: image: unknown format"}]


@pytest.mark.parametrize("image,offset", [
    ("aGVsbG8=!", 8),        # a character outside the alphabet
    ("aGk", 0),              # missing padding: the quantum's start
    ("a===", 1),             # padding too early
    ("aGk=aGk=", 4),         # data after the padding
    ("aG==x", 4),            # trailing garbage after "=="
    ("aG=x", 2),             # one "=" where two are needed
])
def test_bad_base64_is_refused_with_gos_offset(emu, image, offset):
    got = chat(emu, {"model": "llava", "messages": [{"role": "user", "content": "?", "images": [image]}]})
    assert got.status == 400 and got.json_lines() == [{"error": "illegal base64 data at input byte %d" % offset}]
    wrapped = png(2, 2)[:8] + "\r\n" + png(2, 2)[8:]                     # Go skips CR and LF
    ok = chat(emu, {"model": "llava", "stream": False, "messages": [{"role": "user", "content": "?", "images": [wrapped]}]})
    assert ok.json_lines()[0]["message"]["content"] == "I see an image of 2x2 (png)."


def test_a_non_string_image_is_a_go_type_error(emu):
    got = chat(emu, {"model": "llava", "messages": [{"role": "user", "content": "?", "images": [5]}]})
    assert got.json_lines() == [{"error": "json: cannot unmarshal number into Go struct field "
                                          "ChatRequest.messages.images of type api.ImageData"}]


def test_log_send_times_records_when_each_piece_left(emu):
    """`log_send_times`: one CLOCK_MONOTONIC time per streamed piece (the same clock as this
    process's), paced by chunk_delay_ms; other scripts log none."""
    import time
    emu.set_models({"timed": {"reply": "one two three four", "chunk_delay_ms": 20, "log_send_times": True}})
    t0 = time.monotonic_ns()
    got = chat(emu, {"model": "timed", "messages": USER})
    t1 = time.monotonic_ns()
    assert "".join(contents(got)) == "one two three four"
    outcome = emu.requests()[-1]["outcome"]
    sent = outcome["sent_ns"]
    assert len(sent) == outcome["chunks"] == 4
    assert t0 < sent[0] < sent[-1] < t1
    assert all(later - earlier >= 15_000_000 for earlier, later in zip(sent, sent[1:])), sent
    chat(emu, {"model": "blind", "messages": USER})
    assert "sent_ns" not in emu.requests()[-1]["outcome"]
