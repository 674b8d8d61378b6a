"""`api: openai`: the real node against an OpenAI-compatible server (the emulator's `/v1` front,
which turns each request into the `/api/chat` request Ollama's own middleware makes, and logs
both). The node must behave as on Ollama's API: conversations with history, options, structured
output, tools, camera frames, cancel, the model check, the API key, and the fault matrix (one
clear error, history untouched, the next request works)."""
from __future__ import annotations

import base64
import json

import pytest
from sensor_msgs.msg import Image

from camera import Camera, image_size, look, raw
from harness import DEEP, Recorder, wait_until
from helpers import SYSTEM, assistant, conversation, joined_partials, messages, user
from ollama_bridge_msgs.msg import ToolCall
from ollama_bridge_msgs.srv import Cancel
from test_reliability import KEY, provoke_key_echoes
from tool_servers import TOOLS_YAML

V1 = "/v1/chat/completions"


def v1_requests(emu, n):
    """The emulator's logged `/v1/chat/completions` requests, once `n` have finished."""
    return emu.wait_for_requests(n, path=V1)


def ask(ep, text, session="s", timeout=30.0):
    before = len(ep.finals.snapshot())
    ep.utter(session, text)
    return ep.wait_finals(before + 1, timeout)[before]


def test_a_conversation_streams_with_history_counts_and_the_server(start_bridge, emu):
    node, ep = start_bridge(api="openai")
    first = ask(ep, "hello")
    second = ask(ep, "and again")
    for final in (first, second):
        assert (final.error, final.done_reason) == ("", "stop"), final
        assert final.eval_count > 0 and final.prompt_eval_count > 0, "usage read from the last event"
        assert final.eval_duration_ns > 0 and final.total_duration_ns >= final.eval_duration_ns, "measured by the node"
        assert final.server == emu.url
        assert "".join(p.text for p in joined_partials(ep, final)) == final.text
    logged = v1_requests(emu, 2)
    assert [r["path"] for r in logged] == [V1, V1] and emu.requests() == [], "nothing on /api/chat"
    body = logged[1]["body"]
    assert body["stream"] is True and body["stream_options"] == {"include_usage": True}
    assert messages(body) == conversation(("hello", first.text), then="and again")
    assert first.eval_count == logged[0]["outcome"]["eval_count"]
    node.assert_healthy()


def test_options_and_format_are_mapped_to_the_openai_body(start_bridge, emu):
    _, ep = start_bridge(api="openai", options_json='{"temperature": 0, "seed": 42, "num_predict": 3, "top_k": 5}',
                         format="json")
    final = ask(ep, "one two three four five")
    assert final.error == "" and final.done_reason == "length", final
    [logged] = v1_requests(emu, 1)
    body, converted = logged["body"], logged["ollama_body"]
    assert (body["max_tokens"], body["seed"], body["temperature"], body["top_k"]) == (3, 42, 0, 5)
    assert body["response_format"] == {"type": "json_object"} and "num_predict" not in body
    assert (converted["options"]["num_predict"], converted["format"]) == (3, "json"), "what Ollama's middleware made of it"


# name: (fault, node parameters, texts the error must contain)
FAULTS = {
    "http_400": ({"kind": "status", "status": 400}, {}, ["HTTP 400"]),
    "http_404": ({"kind": "status", "status": 404}, {}, ["HTTP 404", "not found"]),
    "http_429": ({"kind": "status", "status": 429}, {"max_retries": 0}, ["HTTP 429"]),
    "http_500": ({"kind": "status", "status": 500}, {}, ["HTTP 500"]),
    "http_503": ({"kind": "status", "status": 503}, {"max_retries": 0}, ["HTTP 503", "server busy"]),
    "error_event_mid_stream": ({"kind": "error_line", "after": 2}, {}, ["error was encountered while running"]),
    "ollama_error_mid_stream": ({"kind": "error_line", "after": 2, "style": "ollama"}, {},
                                ["stream ended before the final chunk", "without data: [DONE]"]),
    "cut_mid_stream": ({"kind": "cut", "after": 2}, {}, ["stream ended before the final chunk"]),
    "malformed_event": ({"kind": "malformed", "after": 2}, {}, ["unexpected data", "not JSON"]),
    "stall_mid_stream": ({"kind": "stall", "after": 2, "seconds": 3}, {"request_timeout_s": 1.0}, ["stopped sending"]),
}


@pytest.mark.parametrize("name", FAULTS)
def test_a_fault_gives_one_clear_error_keeps_history_and_the_next_request_works(start_bridge, emu, name):
    fault, params, expected = FAULTS[name]
    node, ep = start_bridge(api="openai", **params)
    first = ask(ep, "first")
    emu.push_fault(dict(fault, path=V1))
    failed = ask(ep, "second")
    print(f"\n{name}: {failed.error}")
    assert failed.done_reason == "error", failed
    for text in expected:
        assert text.lower() in failed.error.lower(), f"{text!r} not in {failed.error!r}"
    assert emu.url in failed.error and "llama3.2" in failed.error and len(failed.error) < 1500
    assert "Ollama" not in failed.error.replace("(Ollama)", ""), "the server is not Ollama: " + failed.error
    assert "".join(p.text for p in joined_partials(ep, failed)) == failed.text
    third = ask(ep, "third")
    assert third.done_reason == "stop", third
    assert messages(v1_requests(emu, 3)[-1]["body"]) == conversation(("first", first.text), then="third")
    spoken = ep.texts.wait_count(2, 10, "response_text of the two answers")  # another topic than the final
    assert [t.data for t in spoken] == [first.text, third.text], "errors are never spoken"
    node.assert_healthy()


def test_tool_calls_with_json_string_arguments_and_tool_call_ids(ros, start_bridge, emu, tmp_path):
    emu.set_models({"toolbot": {"capabilities": ["completion", "tools"], "reply": "Done: {last_tool}",
                                "tool_calls": [{"name": "set_led", "arguments": {"data": True}}]}})
    (tmp_path / "tools.yaml").write_text(TOOLS_YAML)
    _, ep = start_bridge(api="openai", model="toolbot", tools_file=str(tmp_path / "tools.yaml"), tools_dry_run=True)
    records = Recorder()
    sub = ros.node.create_subscription(ToolCall, f"{ep.ns}/tool_calls", records, DEEP)
    try:
        wait_until(lambda: sub.get_publisher_count() >= 1, 10, "the tool_calls publisher")
        final = ask(ep, "turn the light on")
        assert final.error == "" and final.done_reason == "stop", final
        [record] = records.wait_count(1, 10, "tool_calls records")
        assert (record.name, json.loads(record.arguments_json), record.dry_run) == ("set_led", {"data": True}, True)
        first, second = (r["body"] for r in v1_requests(emu, 2))
        assert [t["function"]["name"] for t in first["tools"]] == ["set_led", "fetch_model", "say_on_screen"]
        [call] = second["messages"][-2]["tool_calls"]
        assert call["type"] == "function" and call["function"] == {"name": "set_led", "arguments": '{"data":true}'}
        tool = second["messages"][-1]
        assert tool["role"] == "tool" and tool["tool_call_id"] == call["id"] and "dry_run" in tool["content"]
        ask(ep, "thanks")
        assert messages(v1_requests(emu, 3)[2]["body"]) == [SYSTEM, user("turn the light on"), assistant(final.text),
                                                           user("thanks")], "the history keeps only the text"
    finally:
        ros.node.destroy_subscription(sub)


def test_a_camera_frame_goes_as_an_image_url_part(ros, start_bridge, emu):
    emu.set_models({"eyebot": {"capabilities": ["completion", "vision"], "reply": "I see {images}."}})
    _, ep = start_bridge(api="openai", model="eyebot", image_topic="camera/image_raw")
    cam = Camera(ros, f"{ep.ns}/camera/image_raw", Image)
    try:
        wait_until(lambda: cam.pub.get_subscription_count() >= 1, 15, "the node's camera subscription")
        cam.frame = raw("rgb8", 320, 240, 3)
        final = look(ep, "what do you see?", until_not="no camera frame received yet")
        assert final.error == "" and final.text == "I see an image of 320x240 (jpeg).", final
        parts = v1_requests(emu, 1)[-1]["body"]["messages"][-1]["content"]
        assert parts[0] == {"type": "text", "text": "what do you see?"}
        url = parts[1]["image_url"]["url"]
        assert parts[1]["type"] == "image_url" and url.startswith("data:image/jpeg;base64,")
        assert image_size(base64.b64decode(url.split(",", 1)[1])) == ("jpeg", 320, 240)
    finally:
        cam.close(ros)


SLOW = {"models": {"llama3.2": {"reply": " ".join(f"w{i}" for i in range(60)), "chunk_delay_ms": 50}}}


def test_cancel_closes_the_stream_and_keeps_the_history(ros, start_bridge, emu):
    emu.set_models(SLOW["models"])
    _, ep = start_bridge(api="openai")
    cancel = ros.node.create_client(Cancel, f"{ep.ns}/cancel")
    try:
        wait_until(cancel.service_is_ready, 15, "the cancel service")
        ep.utter("s", "talk for a while")
        wait_until(lambda: len(ep.partials.snapshot()) >= 2, 15, "the answer streaming", ep.partials.cond)
        assert "1 streaming request(s) cancelled" in ep.call(cancel, Cancel.Request(session_id="s")).message
        assert ep.wait_finals(1)[0].done_reason == "cancelled"
        stats = emu.wait_stats(cancelled=1)
        assert stats["paths"][V1]["cancelled"] == 1, "the server saw the stream closed and stopped"
        after = ask(ep, "next")
        assert after.done_reason == "stop"
        assert messages(v1_requests(emu, 2)[-1]["body"]) == [SYSTEM, user("next")], "nothing was spoken: no turn kept"
    finally:
        ros.node.destroy_client(cancel)


def test_the_model_check_reads_v1_models(start_bridge, emu):
    _, ep = start_bridge(api="openai")
    missing = ep.set_model("no-such-model")
    assert not missing.success and "not served by the server at" in missing.message and "/v1/models" in missing.message
    ok = ep.set_model("qwen3:0.6b")
    assert ok.success, ok.message
    assert any(r["path"] == "/v1/models" for r in emu.requests(path=None))
    assert not any(r["path"] == "/api/show" for r in emu.requests(path=None)), "no Ollama call on api: openai"


def test_openai_api_key_is_sent_as_bearer_and_never_shown(start_bridge, emu):
    node, ep = start_bridge(api="openai", extra_env={"OPENAI_API_KEY": KEY, "OLLAMA_API_KEY": "not-this-one"},
                            extra_args=["--log-level", "debug"])
    assert ask(ep, "hello").error == ""
    failures = provoke_key_echoes(emu, ep)
    assert [f.done_reason for f in failures[:3]] == ["error"] * 3, failures
    for failed in failures:
        assert KEY not in failed.error and "<redacted>" in failed.error or failed.error == "", failed.error
    # a line that is not `data:` is no event for SSE (an unknown field): ignored, the answer completes
    assert failures[3].done_reason == "stop" and KEY not in failures[3].text
    requests = [r for r in emu.requests(path=None) if r["path"] in (V1, "/v1/models")]
    assert len(requests) >= 6 and all(r["headers"].get("authorization") == f"Bearer {KEY}" for r in requests)
    assert KEY not in node.log()


@pytest.mark.parametrize("pretty", [False, True], ids=["compact", "pretty_printed"])
def test_a_server_that_ignores_stream_answers_whole_and_the_answer_is_kept(start_bridge, emu, pretty):
    emu.set_models({"llama3.2": {"reply": "One. Two, {last_user}. Three!"}})
    node, ep = start_bridge(api="openai")
    first = ask(ep, "first")
    emu.push_fault({"kind": "ignore_stream", "pretty": pretty, "path": V1})
    whole = ask(ep, "second")
    third = ask(ep, "third")
    logged = v1_requests(emu, 3)
    assert len(emu.requests(path=V1)) == 3, "answered the first time, no retry"
    assert logged[1]["faults"] == ["ignore_stream"] and logged[1]["body"]["stream"] is True
    outcome = logged[1]["outcome"]
    assert (whole.error, whole.done_reason, whole.text) == ("", outcome["done_reason"], "One. Two, second. Three!"), whole
    assert (whole.eval_count, whole.prompt_eval_count) == (outcome["eval_count"], outcome["prompt_eval_count"])
    assert whole.eval_count > 0 and whole.total_duration_ns > 0
    parts = joined_partials(ep, whole)
    assert whole.chunk_count == len(parts) >= 1
    assert messages(logged[2]["body"]) == conversation(("first", first.text), ("second", whole.text), then="third")
    spoken = ep.texts.wait_count(3, 10, "response_text of the three answers")
    assert [t.data for t in spoken] == [first.text, whole.text, third.text]
    node.assert_healthy()
