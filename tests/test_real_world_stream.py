"""Issue 12, kinds 3, 4 and 5 on the real node, against the emulator:

* kind 4: a pooled keep-alive connection the server closed just as a request went out on it
  (`stale_close`: FIN or RST, no response byte) is sent again once on a new connection, with
  `max_retries: 0`, for a chat request and for the model check of `set_model`; a stream cut after
  its output started is never sent again;
* kind 5: waiting for the first line (model load, prompt evaluation, the server's queue) is bounded
  by `load_timeout_s`, silence between lines by `request_timeout_s`; each error names its limit;
* kind 3, spot checks end to end (the unit tables in src/ollama/chunk_tests.rs cover every
  variant): JSON escapes, keys in other cases, unknown fields, a lone surrogate and bytes that are
  not UTF-8 (U+FFFD, as Go's encoding/json), a final line of an Ollama-compatible server, and a
  clean end without `done` (`done_reason: end_of_stream`)."""
from __future__ import annotations

import json

import pytest

from basic_auth_proxy import BasicAuthProxy
from helpers import ask, conversation, joined_partials, messages, wait_streaming

FAST_FAIL = {"max_retries": 0}


def logged_results(emu, n):
    logged = emu.wait_for_requests(n)
    return logged, [r["outcome"]["result"] for r in logged]


def assert_answered_in_full_and_kept(node, ep, emu, final, prompt, expected, then):
    """``final`` is the whole answer ``expected`` (done, no error), its partials join to it, the next
    input ``then`` is sent with it in the history, and the node logged nothing unexpected."""
    assert (final.done_reason, final.error, final.text) == ("stop", "", expected), final
    assert "".join(p.text for p in joined_partials(ep, final)) == expected
    ask(ep, then)
    assert messages(emu.chat_bodies()[-1]) == conversation((prompt, expected), then=then)
    node.assert_healthy()


# --------------------------------------------------------------------------------------- kind 4
@pytest.mark.parametrize("reset", [False, True], ids=["fin", "rst"])
def test_a_request_on_a_pooled_connection_the_server_closed_is_sent_again_once(start_bridge, emu, reset):
    node, ep = start_bridge(**FAST_FAIL)
    first = ask(ep, "first")                                  # leaves a pooled keep-alive connection
    emu.push_fault({"kind": "stale_close", "reset": reset, "path": "/api/chat"})
    second = ask(ep, "second")
    assert (second.done_reason, second.error) == ("stop", ""), second
    assert second.text == 'You said: "second". This is turn 2.'
    logged, results = logged_results(emu, 3)
    assert results == ["completed", "stale_close", "completed"], results
    stale, resent = logged[1]["connection"], logged[2]["connection"]
    assert stale["request"] >= 2, "the closed connection was a reused one"
    assert resent["id"] != stale["id"] and resent["request"] == 1, "sent again on a new connection"
    assert logged[1]["body"] == logged[2]["body"], "the same request, once more"
    assert messages(logged[2]["body"]) == conversation(("first", first.text), then="second")
    assert "".join(p.text for p in joined_partials(ep, second)) == second.text
    assert len(ep.finals.snapshot()) == 2, "one final per input"
    node.assert_healthy()


def test_the_model_check_of_set_model_is_sent_again_too(start_bridge, emu):
    node, ep = start_bridge(**FAST_FAIL)
    assert ep.set_model("qwen3:0.6b").success                 # /api/show leaves a pooled connection
    emu.push_fault({"kind": "stale_close", "path": "/api/show"})
    answer = ep.set_model("llama3.2")
    assert answer.success, answer.message
    shows = [r["outcome"]["result"] for r in emu.requests(path="/api/show") if r["body"].get("model") == "llama3.2"]
    assert shows[:2] == ["stale_close", "completed"], shows
    node.assert_healthy()


@pytest.mark.parametrize("max_retries", [0, 2])
def test_a_stream_cut_after_its_output_started_is_not_sent_again(start_bridge, emu, max_retries):
    node, ep = start_bridge(max_retries=max_retries)
    first = ask(ep, "first")
    emu.push_fault({"kind": "cut", "after": 2})
    failed = ask(ep, "second")
    assert failed.done_reason == "error" and "stream ended before the final chunk" in failed.error, failed.error
    assert len(joined_partials(ep, failed)) == 2 and failed.chunk_count == 2
    third = ask(ep, "third")
    logged, results = logged_results(emu, 3)
    assert results == ["completed", "cut", "completed"], "the cut request was sent once"
    assert messages(logged[2]["body"]) == conversation(("first", first.text), then="third")
    assert third.done_reason == "stop"
    node.assert_healthy()


# --------------------------------------------------------------------------------------- kind 5
# A long wait before the first line (3 s) answers when it is within load_timeout_s, although it is
# longer than request_timeout_s + connect_timeout_s (2 s: the one limit the old node applied to it).
# warm_up off: the request itself must wait for the load.
PATIENT = {"request_timeout_s": 1, "load_timeout_s": 10, "connect_timeout_s": 1, "warm_up": False, **FAST_FAIL}


def test_a_model_load_longer_than_request_timeout_answers_within_load_timeout(start_bridge, emu):
    emu.set_models({"big": {"reply": "Loaded and ready.", "load_ms": 3000}})
    node, ep = start_bridge(model="big", **PATIENT)
    final = ask(ep, "wake up")
    assert (final.done_reason, final.error, final.text) == ("stop", "", "Loaded and ready."), final
    assert final.load_duration_ns >= 2.9e9 and final.time_to_first_chunk_s >= 2.9, final
    assert len(emu.requests()) == 1, "answered by the first request"
    node.assert_healthy()


def test_a_long_prompt_evaluation_answers_within_load_timeout(start_bridge, emu):
    emu.set_models({"slowstart": {"reply": "After a long think.", "ttft_ms": 3000}})
    node, ep = start_bridge(model="slowstart", **PATIENT)
    final = ask(ep, "a long prompt")
    assert (final.done_reason, final.error) == ("stop", ""), final
    assert final.time_to_first_chunk_s >= 2.9
    node.assert_healthy()


def test_a_request_queued_at_the_server_answers_within_load_timeout(start_bridge, emu):
    # one slot at the server: the second session's request waits ~3 s for the first's answer
    emu.set_models({"single": {"reply": "one two three four five six seven eight nine ten",
                               "chunk_delay_ms": 300, "num_parallel": 1}})
    node, ep = start_bridge(model="single", **PATIENT)
    ep.utter("a", "first in line")
    wait_streaming(ep, 1)                                     # a holds the server's only slot
    ep.utter("b", "second in line")
    finals = {f.session_id: f for f in ep.wait_finals(2, timeout=30)}
    assert [(finals[s].done_reason, finals[s].error) for s in "ab"] == [("stop", "")] * 2, finals
    assert finals["b"].time_to_first_chunk_s > 2.5, "it waited in the server's queue longer than request_timeout_s"
    node.assert_healthy()


def test_a_load_longer_than_load_timeout_fails_naming_load_timeout(start_bridge, emu):
    emu.set_models({"huge": {"reply": "never heard", "load_ms": 6000}})
    node, ep = start_bridge(model="huge", request_timeout_s=10, load_timeout_s=1, connect_timeout_s=0.5, warm_up=False,
                            **FAST_FAIL)
    failed = ask(ep, "wake up")
    assert failed.done_reason == "error" and "load_timeout_s" in failed.error, failed.error
    assert "request_timeout_s" not in failed.error, failed.error
    assert failed.total_time_s < 4, "it gave up at load_timeout_s (+ connect_timeout_s), not at the load's end"
    node.assert_healthy()


def test_silence_mid_stream_fails_naming_request_timeout(start_bridge, emu):
    node, ep = start_bridge(**PATIENT)
    emu.push_fault({"kind": "stall", "after": 2, "seconds": 4})
    failed = ask(ep, "speak")
    assert failed.done_reason == "error" and "request_timeout_s" in failed.error, failed.error
    assert "load_timeout_s" not in failed.error, failed.error
    assert failed.total_time_s < 3.5 and len(joined_partials(ep, failed)) == 2
    node.assert_healthy()


# --------------------------------------------------------------------------------------- kind 3
def line(message: str) -> str:
    """A chunk line as a server may write it: `message` is the raw JSON text of the object."""
    return '{"model":"llama3.2","created_at":"2025-01-01T00:00:00Z","message":%s,"done":false}' % message


# (raw JSON line injected after the first piece, the text Go's client reads from it)
ODD_LINES = [
    (line(r'{"role":"assistant","content":" \"q\" \u00e9\u003c\ud83e\udd16\/\t"}'), ' "q" é<🤖/\t'),
    ('{"MESSAGE":{"Content":" caps","ROLE":"assistant"},"Done":false,"usage":{"n":[1,null,{}]},"id":"x"}', " caps"),
    (line(r'{"role":"assistant","content":" a\ud800b","images":null,"extra":true}'), " a\ufffdb"),
    ('{"message":{"content":" no done field"}}', " no done field"),
]


def test_unusual_but_valid_lines_read_as_go_reads_them(start_bridge, emu):
    node, ep = start_bridge()
    injected = [{"kind": "malformed", "after": 1, "line": raw} for raw, _ in ODD_LINES]
    emu.push_fault({"all": [{"kind": "script", "pieces": ["Start.", " End."]}, *injected]})
    final = ask(ep, "odd lines")
    expected = "Start." + "".join(text for _, text in ODD_LINES) + " End."
    assert_answered_in_full_and_kept(node, ep, emu, final, "odd lines", expected, then="next")


def test_bytes_that_are_not_utf8_become_u_fffd_and_the_answer_completes(start_bridge, emu):
    # a server that writes Latin-1 (é as one byte) and cuts an emoji's UTF-8 short: one U+FFFD per bad byte
    emu.set_models({"llama3.2": {"reply": "Caf§ au lait 🤖!"}})
    rewrite = {"§".encode(): b"\xe9", "🤖".encode(): "🤖".encode()[:3]}
    with BasicAuthProxy(emu.url, None, None, rewrite=rewrite) as proxy:
        node, ep = start_bridge(ollama_url=proxy.url)
        final = ask(ep, "coffee?")
        expected = "Caf\ufffd au lait \ufffd\ufffd\ufffd!"
        assert_answered_in_full_and_kept(node, ep, emu, final, "coffee?", expected, then="more?")


def test_a_compatible_servers_final_line_ends_the_answer(start_bridge, emu):
    # done without message, usage/timings extras (llama.cpp / vLLM style); lines after it are not read
    final_line = json.dumps({"message": None, "done": True, "done_reason": "length",
                             "usage": {"prompt_tokens": 5, "completion_tokens": 2}, "timings": {"predicted_n": 2}})
    node, ep = start_bridge()
    emu.push_fault({"all": [{"kind": "script", "pieces": ["Cut", " short", " never read"]},
                            {"kind": "malformed", "after": 2, "line": final_line}]})
    final = ask(ep, "go")
    assert (final.done_reason, final.error, final.text) == ("length", "", "Cut short"), final
    assert "".join(p.text for p in joined_partials(ep, final)) == "Cut short"
    node.assert_healthy()


def test_a_clean_end_without_done_is_a_complete_answer(start_bridge, emu):
    node, ep = start_bridge()
    emu.push_fault({"all": [{"kind": "script", "pieces": ["All", " there"]}, {"kind": "truncate", "after": 2}]})
    final = ask(ep, "go")
    assert (final.done_reason, final.error, final.text) == ("end_of_stream", "", "All there"), final
    ask(ep, "again")
    assert messages(emu.chat_bodies()[-1]) == conversation(("go", "All there"), then="again")
    node.assert_healthy()
