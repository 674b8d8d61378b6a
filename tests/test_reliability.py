"""Never lose a conversation: faults of the Ollama server, bursts, bounded resources
and secrets (bad inputs: test_bad_input.py), end to end (the real node binary over real ROS topics, against the emulator).

Every failure must end in exactly one final response (`done_reason: error` with a text a person
can act on), leave the session's history as it was (checked on what the emulator receives next),
and never take the node down."""
from __future__ import annotations

import collections
import socket
import time

import pytest

from harness import wait_until
from ollama_server.testing import EmulatorProcess
from helpers import SYSTEM, ask, conversation, free_port, joined_partials, messages, proc_status, user, wait_streaming

# ------------------------------------------------------------------------------------- faults
# name: (fault, node parameters, texts the error must contain)
FAULTS = {
    "http_400": ({"kind": "status", "status": 400}, {}, ["HTTP 400", "does not support chat"]),
    "http_404": ({"kind": "status", "status": 404}, {}, ["HTTP 404", "not found", "ollama pull"]),
    "http_429": ({"kind": "status", "status": 429}, {"max_retries": 0}, ["HTTP 429", "too many requests"]),
    "http_500": ({"kind": "status", "status": 500}, {}, ["HTTP 500", "failed to generate a response"]),
    "http_503": ({"kind": "status", "status": 503}, {"max_retries": 0}, ["HTTP 503", "server busy"]),
    "proxy_502_html": ({"kind": "status", "status": 502}, {}, ["HTTP 502", "Bad Gateway"]),
    "error_line_mid_stream": ({"kind": "error_line", "after": 2}, {}, ["error was encountered while running"]),
    "malformed_line": ({"kind": "malformed", "after": 2}, {}, ["unexpected data from the server"]),
    "line_over_8MB": ({"kind": "long_line", "after": 1, "bytes": 8_000_100}, {}, ["8000000"]),
}


def test_a_stream_that_ends_cleanly_without_done_ends_the_answer_as_ollamas_client_does(start_bridge, emu):
    """Ollama's Go client (api/client.go `stream`) reads lines until the body ends and returns
    success: an answer whose HTTP response ends cleanly without a `done` line is complete. The
    final says why it ended (`end_of_stream`) and the exchange enters the history."""
    node, ep = start_bridge()
    emu.push_fault({"kind": "truncate", "after": 2})
    ended = ask(ep, "first")
    assert (ended.done_reason, ended.error) == ("end_of_stream", ""), ended
    assert ended.text and "".join(p.text for p in joined_partials(ep, ended)) == ended.text
    second = ask(ep, "second")
    assert messages(emu.chat_bodies()[-1]) == conversation(("first", ended.text), then="second")
    assert second.done_reason == "stop"
    node.assert_healthy()


@pytest.mark.parametrize("name", FAULTS)
def test_a_fault_gives_one_clear_error_keeps_history_and_the_next_request_works(start_bridge, emu, name):
    fault, params, expected = FAULTS[name]
    node, ep = start_bridge(**params)
    first = ask(ep, "first")
    emu.push_fault(fault)
    failed = ask(ep, "second")
    print(f"\n{name}: {failed.error}")
    assert failed.done_reason == "error", failed
    for text in expected:
        assert text.lower() in failed.error.lower(), f"{text!r} not in {failed.error!r}"
    assert emu.url in failed.error and "llama3.2" in failed.error, "the error names the server and the model"
    assert len(failed.error) < 1500, "no raw dump of the server's answer"
    assert "".join(p.text for p in joined_partials(ep, failed)) == failed.text
    assert len(emu.requests()) == 2, "a fault that is not transient is not retried"
    third = ask(ep, "third")
    assert third.done_reason == "stop"
    assert messages(emu.chat_bodies()[-1]) == conversation(("first", first.text), then="third")
    assert len(ep.finals.snapshot()) == 3, "exactly one final per input"
    spoken = ep.texts.wait_count(2, 10, "response_text of the two answers")  # another topic than the final
    assert [t.data for t in spoken] == [first.text, third.text], "errors are never spoken"
    node.assert_healthy()


def test_a_stall_mid_stream_fails_after_request_timeout_not_when_ollama_resumes(start_bridge, emu):
    node, ep = start_bridge(request_timeout_s=1.0)
    first = ask(ep, "first")
    emu.push_fault({"kind": "stall", "after": 2, "seconds": 3})
    started = time.monotonic()
    failed = ask(ep, "second")
    waited = time.monotonic() - started
    assert failed.done_reason == "error"
    assert "stopped sending" in failed.error and "1s" in failed.error and emu.url in failed.error, failed.error
    assert failed.text == "You said", "the two pieces before the stall"
    assert 1 <= len(joined_partials(ep, failed)) == failed.chunk_count <= 2
    assert 0.9 <= failed.total_time_s < 2.5 and waited < 2.8, (failed.total_time_s, waited)
    third = ask(ep, "third")
    assert third.done_reason == "stop"
    assert messages(emu.chat_bodies()[-1]) == conversation(("first", first.text), then="third")
    node.assert_healthy()


SLOW_CONFIG = {"models": {"llama3.2": {"reply": "one two three four five six seven eight nine ten",
                                        "chunk_delay_ms": 60}}}


def test_ollama_killed_mid_stream_then_restarted(start_bridge):
    with EmulatorProcess(config=SLOW_CONFIG) as own:
        node, ep = start_bridge(ollama_url=own.url)
        first = ask(ep, "first")
        ep.say("second")
        wait_streaming(ep, len(ep.partials_of(first.request_id)) + 2)
        own.kill()
        failed = ep.wait_finals(2)[1]
        assert (failed.prompt, failed.done_reason) == ("second", "error")
        assert "stream ended before the final chunk" in failed.error and own.url in failed.error, failed.error
        assert "".join(p.text for p in joined_partials(ep, failed)) == failed.text != ""
        own.restart()
        third = ask(ep, "third")
        assert third.done_reason == "stop", third.error
        assert messages(own.chat_bodies()[-1]) == conversation(("first", first.text), then="third")
        node.assert_healthy()


def test_ollama_absent_at_start_is_reported_and_the_node_recovers_when_it_appears(start_bridge):
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    node, ep = start_bridge(ollama_url=url, max_retries=1)
    failed = ask(ep, "anyone there?")
    assert failed.done_reason == "error"
    assert f"cannot connect to the server at {url}" in failed.error and "refused" in failed.error, failed.error
    assert "retry 1/1" in node.log(), "connection refused is retried (max_retries) before the error"
    with EmulatorProcess(port=port) as late:
        answer = ask(ep, "now?")
        assert answer.done_reason == "stop", answer.error
        assert messages(late.chat_bodies()[-1]) == [SYSTEM, user("now?")]
    node.assert_healthy()


@pytest.fixture
def unanswering_listener():
    """A loopback port whose TCP handshakes go unanswered: a listener with a zero backlog whose
    accept queue is already full (Linux drops further SYNs), like a GPU box that is off the network.
    Yields its URL."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(0)
    fillers = []
    for _ in range(4):                     # fill the accept queue; later connects get no SYN-ACK
        c = socket.socket()
        c.setblocking(False)
        c.connect_ex(server.getsockname())
        fillers.append(c)
    probe = socket.socket()
    probe.settimeout(0.3)
    try:
        probe.connect(server.getsockname())
        pytest.skip("this kernel answers handshakes beyond the backlog; cannot make a connect timeout on loopback")
    except (socket.timeout, TimeoutError):
        pass
    finally:
        probe.close()
    yield "http://127.0.0.1:%d" % server.getsockname()[1]
    for c in fillers:
        c.close()
    server.close()


def test_a_connect_timeout_is_reported_without_waiting_longer(start_bridge, unanswering_listener):
    node, ep = start_bridge(ollama_url=unanswering_listener, connect_timeout_s=0.5, max_retries=0)
    started = time.monotonic()
    failed = ask(ep, "hello?")
    assert failed.done_reason == "error"
    assert "timed out" in failed.error and unanswering_listener in failed.error, failed.error
    assert time.monotonic() - started < 5, "connect_timeout_s bounds the wait"
    node.assert_healthy()


# ------------------------------------------------------------------------------------ retries
def test_transient_503s_are_retried_with_backoff_without_duplicate_partials(start_bridge, emu):
    node, ep = start_bridge(max_retries=2)
    emu.push_fault({"kind": "status", "status": 503, "count": 2})
    final = ask(ep, "hello")
    assert final.done_reason == "stop", final.error
    assert len(emu.requests()) == 3
    parts = joined_partials(ep, final)
    assert "".join(p.text for p in parts) == final.text
    assert final.total_time_s >= 0.7, "0.25 s then 0.5 s of backoff"
    log = node.log()
    assert "retry 1/2" in log and "retry 2/2" in log


def test_retries_are_bounded_by_max_retries(start_bridge, emu):
    _, ep = start_bridge(max_retries=2)
    emu.push_fault({"kind": "status", "status": 503, "count": 3})
    failed = ask(ep, "hello")
    assert failed.done_reason == "error" and "HTTP 503" in failed.error
    assert len(emu.requests()) == 3, "1 attempt + 2 retries"
    assert ep.partials_of(failed.request_id) == []
    assert ask(ep, "again").done_reason == "stop"


@pytest.mark.parametrize("fault,attempts", [
    ({"kind": "status", "status": 500}, 1),                 # would fail again
    ({"kind": "cut", "after": 3}, 1),                       # partials were published already
    ({"kind": "cut", "after": 0}, 2),                       # nothing was sent: safe to retry
])
def test_retry_only_when_nothing_was_published(start_bridge, emu, fault, attempts):
    _, ep = start_bridge(max_retries=2)
    emu.push_fault(fault)
    final = ask(ep, "hello")
    emu.wait_for_requests(attempts)
    assert len(emu.requests()) == attempts
    assert final.done_reason == ("stop" if attempts > 1 else "error")
    assert "".join(p.text for p in joined_partials(ep, final)) == final.text


# -------------------------------------------------------------------------------------- burst
def test_a_burst_of_500_inputs_over_50_sessions_gets_exactly_one_final_each(start_bridge, emu):
    emu.set_models({"fast": {"reply": "ok {last_user}"}})
    _, ep = start_bridge(model="fast", max_concurrent_requests=8)
    prompts = []
    for i in range(500):
        prompt = f"m{i}"
        prompts.append(prompt)
        if i % 10 == 0:
            ep.say(prompt)                                   # session "default"
        else:
            ep.utter(f"s{i % 49}", prompt)                   # 49 more sessions
    finals = ep.wait_finals(500, timeout=120)
    per_prompt = collections.Counter(f.prompt for f in finals)
    assert per_prompt == collections.Counter(prompts), "every input exactly one final"
    assert len({f.request_id for f in finals}) == 500
    answered = [f for f in finals if f.done_reason == "stop"]
    refused = [f for f in finals if f.done_reason != "stop"]
    assert all(f.text == f"ok {f.prompt}" for f in answered)
    assert all(f.done_reason == "error" and "max_queue_per_session" in f.error for f in refused), refused[:3]
    assert len(answered) >= 400, f"only {len(answered)} answered"
    logged = emu.wait_for_requests(len(answered))
    assert len(logged) == len(answered), "one Ollama request per answered input"

    def partials_incomplete():
        joined = collections.defaultdict(str)
        for p in ep.partials.snapshot():
            joined[p.request_id] += p.text
        return [(f.request_id, f.text, joined[f.request_id]) for f in answered if joined[f.request_id] != f.text]
    wait_until(lambda: not partials_incomplete(), 10, "every answer's partials", ep.partials.cond)
    assert len(ep.finals.snapshot()) == 500, "no late duplicates"


# ---------------------------------------------------------------------------- bounded resources
def test_per_session_queue_limit_answers_the_overflow_with_an_error(start_bridge, emu):
    emu.set_models({"slow": {"reply": "a b c d e f g h i j", "chunk_delay_ms": 50}})
    _, ep = start_bridge(model="slow", max_queue_per_session=2)
    ep.utter("q", "one")
    wait_streaming(ep, 1)
    for text in ("two", "three", "four", "five"):
        ep.utter("q", text)
    finals = ep.wait_finals(5)
    by_prompt = {f.prompt: f for f in finals}
    for text in ("four", "five"):
        assert by_prompt[text].done_reason == "error"
        assert "2 inputs waiting" in by_prompt[text].error and "max_queue_per_session" in by_prompt[text].error
    assert [by_prompt[t].done_reason for t in ("one", "two", "three")] == ["stop"] * 3
    assert [messages(b)[-1]["content"] for b in emu.chat_bodies()] == ["one", "two", "three"]


def test_session_limit_evicts_the_least_recently_used_session(start_bridge, emu):
    node, ep = start_bridge(max_sessions=3)
    a1 = ask(ep, "a1", session="a")
    ask(ep, "b1", session="b")
    c1 = ask(ep, "c1", session="c")
    a2 = ask(ep, "a2", session="a")                          # b is now the least recently used
    ask(ep, "d1", session="d")
    assert "evicted least recently used session 'b'" in node.log()
    ask(ep, "b2", session="b")                               # b starts over; evicts c
    assert messages(emu.chat_bodies()[-1]) == [SYSTEM, user("b2")]
    assert "evicted least recently used session 'c'" in node.log()
    ask(ep, "a3", session="a")
    assert messages(emu.chat_bodies()[-1]) == conversation(("a1", a1.text), ("a2", a2.text), then="a3")
    ask(ep, "c2", session="c")
    assert messages(emu.chat_bodies()[-1]) == [SYSTEM, user("c2")], f"c's history ({c1.text!r}) is gone"


def test_history_is_limited_to_max_history_turns(start_bridge, emu):
    _, ep = start_bridge(max_history_turns=2)
    answers = [(f"t{i}", ask(ep, f"t{i}").text) for i in range(1, 5)]
    ask(ep, "t5")
    assert messages(emu.chat_bodies()[-1]) == conversation(*answers[-2:], then="t5")


def test_memory_stays_flat_over_10000_requests(start_bridge, emu):
    # ~3 kB per exchange: 10,000 exchanges kept anywhere (history, finished requests) would be 30 MB
    reply, padding = "ok " + "x" * 2000, " " + "u" * 1000
    emu.set_models({"zero": {"reply": reply, "piece_chars": 4096}})
    sessions, turns = 250, 4
    node, ep = start_bridge(model="zero", max_concurrent_requests=32, max_history_turns=turns,
                            max_queue_per_session=64, system_prompt="")
    sent = 0

    def waves(n):
        nonlocal sent
        for _ in range(n):
            for s in range(sessions):
                ep.utter(f"soak{s}", f"q{sent}{padding}")
                sent += 1
            ep.wait_finals(sent, timeout=60)
            emu.clear_requests()

    waves(10)                                                # warm-up: every history at its bound, pools full
    before = proc_status(node.proc.pid)
    waves(40)                                                # 10,000 more
    after = proc_status(node.proc.pid)
    finals = ep.finals.snapshot()
    assert len(finals) == sent and all(f.done_reason == "stop" and f.text == reply for f in finals)
    growth_mb = (after["VmRSS"] - before["VmRSS"]) / 1024
    print(f"\nRSS {before['VmRSS'] / 1024:.1f} MB -> {after['VmRSS'] / 1024:.1f} MB "
          f"({growth_mb:+.1f} MB), threads {before['Threads']} -> {after['Threads']}, "
          f"fds {before['fds']} -> {after['fds']}")
    assert growth_mb < 15, f"RSS grew by {growth_mb:.1f} MB over 10,000 requests"
    assert after["Threads"] <= before["Threads"] + 2
    assert after["fds"] < 200, "open files stay bounded (pooled connections come and go, none leak)"
    ep.utter("soak0", "check")
    ep.wait_finals(sent + 1)
    assert len(emu.chat_bodies()[-1]["messages"]) <= 2 * turns + 1, "history stayed within max_history_turns"
    node.assert_healthy()


# ------------------------------------------------------------------------------------ secrets
KEY = "sk-test-0123456789abcdefSECRET"


def provoke_key_echoes(emu, ep):
    """Four failures whose server text echoes the API key; returns their final responses."""
    failures = []
    for fault in ({"kind": "status", "status": 401, "message": f"invalid api key '{KEY}'"},
                  {"kind": "status", "status": 403, "body": f"<html>token {KEY} refused</html>",
                   "content_type": "text/html"},
                  {"kind": "error_line", "after": 1, "message": f"key {KEY} expired"},
                  {"kind": "malformed", "after": 1, "line": f"<html>{KEY}</html>"}):
        emu.push_fault(fault)
        failures.append(ask(ep, f"provoke {fault['kind']}"))
    return failures


def test_the_api_key_is_sent_as_bearer_and_never_appears_in_a_response(start_bridge, emu):
    node, ep = start_bridge(extra_env={"OLLAMA_API_KEY": KEY})
    assert ask(ep, "hello").done_reason == "stop"
    failures = provoke_key_echoes(emu, ep)
    for failed in failures:
        assert failed.done_reason == "error" and failed.error, failed
        assert KEY not in failed.error, f"the key leaked into a response: {failed.error!r}"
        assert "<redacted>" in failed.error
    assert "HTTP 401" in failures[0].error and "HTTP 403" in failures[1].error
    assert ask(ep, "bye").done_reason == "stop"
    requests = emu.requests()
    assert len(requests) == 6
    for request in requests:
        assert request["headers"].get("authorization") == f"Bearer {KEY}"
    assert KEY not in node.log()


def test_the_api_key_never_appears_in_the_debug_log(start_bridge, emu):
    node, ep = start_bridge(extra_env={"OLLAMA_API_KEY": KEY}, extra_args=["--log-level", "debug"])
    assert ask(ep, "hello").done_reason == "stop"
    provoke_key_echoes(emu, ep)
    log = node.log()
    assert "[DEBUG]" in log, "the node ran at debug level"
    assert KEY not in log, "the key leaked into the log:\n" + "\n".join(l for l in log.splitlines() if KEY in l)
