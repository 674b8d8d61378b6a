"""The core bridge, end to end: the real node binary over real ROS topics and services, talking
to the Ollama emulator. What the node sent is checked on the emulator's request log."""
from __future__ import annotations

import pytest

from harness import wait_until

from helpers import SYSTEM, ask, assistant, free_port, joined_partials, messages, user


def test_speech_text_streams_partials_then_one_final_and_the_text(start_bridge, emu):
    node, ep = start_bridge()
    final = ask(ep, "hello robot")
    assert (final.done_reason, final.error) == ("stop", "")
    assert (final.session_id, final.prompt, final.model) == ("default", "hello robot", "llama3.2")
    parts = joined_partials(ep, final)
    # An unpaced answer arrives faster than it is published: pieces already received when one is
    # published go out together, so there are at most as many partials as pieces (eval_count).
    assert [p.seq for p in parts] == list(range(len(parts))) and 1 <= final.chunk_count == len(parts)
    assert final.text == 'You said: "hello robot". This is turn 1.'
    assert ep.texts.wait_count(1, 10, "response_text")[0].data == final.text
    # Ollama's counters are passed through; the bridge's own clocks are consistent
    assert final.eval_count == emu.requests()[-1]["outcome"]["eval_count"] >= len(parts)
    assert final.prompt_eval_count > 0
    assert final.total_duration_ns > 0 and final.eval_duration_ns > 0
    assert 0 < final.time_to_first_chunk_s <= final.total_time_s
    body = emu.chat_bodies()[-1]
    assert body["stream"] is True and body["think"] is False and body["model"] == "llama3.2"
    assert messages(body) == [SYSTEM, user("hello robot")]
    node.assert_healthy()


def test_second_turn_carries_the_first_exchange(start_bridge, emu):
    _, ep = start_bridge()
    first = ask(ep, "my name is Ada")
    second = ask(ep, "what is my name?")
    assert second.text.endswith("This is turn 2.")
    first_body, second_body = emu.chat_bodies()
    assert messages(second_body) == [SYSTEM, user("my name is Ada"), assistant(first.text), user("what is my name?")]


def test_interleaved_sessions_keep_separate_histories_in_order(start_bridge, emu):
    emu.set_models({"llama3.2": {"reply": "{last_user} is turn {turns}", "chunk_delay_ms": 2}})
    _, ep = start_bridge()
    for i in range(10):                      # a burst of 20 inputs, two sessions interleaved
        ep.utter("alice", f"a{i}")
        ep.utter("bob", f"b{i}")
    finals = ep.wait_finals(20, timeout=60)
    for session, letter in (("alice", "a"), ("bob", "b")):
        mine = sorted((f for f in finals if f.session_id == session), key=lambda f: f.request_id)
        assert [f.prompt for f in mine] == [f"{letter}{i}" for i in range(10)]
        assert [f.text for f in mine] == [f"{letter}{i} is turn {i + 1}" for i in range(10)]
        assert all(f.done_reason == "stop" for f in mine)
    last_alice = [b for b in emu.chat_bodies() if b["messages"][-1]["content"] == "a9"][0]
    assert [m["content"] for m in last_alice["messages"] if m["role"] == "user"] == [f"a{i}" for i in range(10)]


def test_reset_one_session_all_sessions_and_an_unknown_one(start_bridge, emu):
    _, ep = start_bridge()
    ask(ep, "x", session="a")
    ask(ep, "y", session="b")
    answer = ep.reset("a")
    assert answer.success and "'a' reset" in answer.message
    assert ask(ep, "x2", session="a").text.endswith("turn 1.")
    assert ask(ep, "y2", session="b").text.endswith("turn 2."), "session b must keep its history"
    answer = ep.reset("")
    assert answer.success and "all 2 sessions reset" in answer.message
    assert ask(ep, "y3", session="b").text.endswith("turn 1.")
    answer = ep.reset("ghost")
    assert answer.success and "not known" in answer.message


def test_reset_during_a_stream_cancels_it_and_clears_history(start_bridge, emu):
    emu.set_models({"slow": {"reply": "one two three four five six seven eight nine ten eleven twelve",
                             "chunk_delay_ms": 150}})
    _, ep = start_bridge(model="slow")
    ask(ep, "remember this")
    ep.say("count slowly")
    first = ep.finals.snapshot()[0]
    wait_until(lambda: len(ep.partials.snapshot()) > len(ep.partials_of(first.request_id)) + 1, 15,
               "the second stream to start")
    assert ep.reset("default").success
    cancelled = ep.wait_finals(2)[1]
    assert cancelled.done_reason == "cancelled" and cancelled.error == ""
    assert "".join(p.text for p in joined_partials(ep, cancelled)) == cancelled.text
    assert 0 < len(cancelled.text) < len("one two three four five six seven eight nine ten eleven twelve")
    emu.wait_for(lambda e: e.requests()[-1]["outcome"] is not None, what="the emulator to see the cancel")
    final = ask(ep, "again")
    assert messages(emu.chat_bodies()[-1]) == [SYSTEM, user("again")]
    assert final.done_reason == "stop"


def test_set_model_checks_the_server_and_keeps_the_old_model_on_failure(start_bridge, emu):
    _, ep = start_bridge()
    answer = ep.set_model("qwen3:0.6b")
    assert answer.success and answer.previous_model == "llama3.2"
    final = ask(ep, "hi")
    assert final.model == "qwen3:0.6b" and emu.chat_bodies()[-1]["model"] == "qwen3:0.6b"
    missing = ep.set_model("nope:1b")
    assert not missing.success and "not found" in missing.message and missing.previous_model == "qwen3:0.6b"
    assert not ep.set_model("").success
    assert ep.get_params("model") == ["qwen3:0.6b"]
    ask(ep, "still there?")
    assert emu.chat_bodies()[-1]["model"] == "qwen3:0.6b"


FAULTS = {
    "http_404": ({"kind": "status", "status": 404}, "not found"),
    "http_500": ({"kind": "status", "status": 500}, "500"),
    "error_line_mid_stream": ({"kind": "error_line", "after": 2}, "error was encountered"),
    "cut_mid_stream": ({"kind": "cut", "after": 2}, ""),
}


@pytest.mark.parametrize("name", FAULTS)
def test_a_failed_request_reports_an_error_and_leaves_history_unchanged(start_bridge, emu, name):
    fault, expected_text = FAULTS[name]
    node, ep = start_bridge()
    first = ask(ep, "first")
    emu.push_fault(fault)
    failed = ask(ep, "second")
    assert failed.done_reason == "error" and failed.error
    assert expected_text.lower() in failed.error.lower()
    assert "".join(p.text for p in joined_partials(ep, failed)) == failed.text
    third = ask(ep, "third")
    assert third.done_reason == "stop"
    assert messages(emu.chat_bodies()[-1]) == [SYSTEM, user("first"), assistant(first.text), user("third")]
    assert all(t.data != failed.text or not failed.text for t in ep.texts.snapshot()), "errors are not spoken"
    node.assert_healthy()


def test_ollama_down_gives_a_clear_error_and_recovers_after_a_url_change(start_bridge, emu):
    dead = f"http://127.0.0.1:{free_port()}"
    node, ep = start_bridge(ollama_url=dead, max_retries=0)
    failed = ask(ep, "anyone there?")
    assert failed.done_reason == "error"
    assert dead in failed.error and "connect" in failed.error.lower()
    [result] = ep.set_params(ollama_url=emu.url)
    assert result.successful, result.reason
    assert ask(ep, "now?").done_reason == "stop"
    node.assert_healthy()


def test_parameter_changes_apply_to_the_next_request_and_bad_values_are_refused(start_bridge, emu):
    _, ep = start_bridge()
    [ok] = ep.set_params(system_prompt="Be terse.")
    assert ok.successful
    ask(ep, "one")
    assert emu.chat_bodies()[-1]["messages"][0] == {"role": "system", "content": "Be terse."}
    [ok] = ep.set_params(model="qwen3:0.6b", )
    assert ok.successful, ok.reason
    ask(ep, "two")
    assert emu.chat_bodies()[-1]["model"] == "qwen3:0.6b"
    [missing] = ep.set_params(model="missing:7b")
    assert not missing.successful and "not found" in missing.reason
    [bad] = ep.set_params(options_json="[1, 2]")
    assert not bad.successful and "JSON object" in bad.reason
    [opts] = ep.set_params(options_json='{"temperature": 0, "seed": 42}')
    assert opts.successful
    ask(ep, "three")
    body = emu.chat_bodies()[-1]
    assert body["model"] == "qwen3:0.6b" and body["options"] == {"temperature": 0, "seed": 42}
    assert ep.get_params("model", "system_prompt") == ["qwen3:0.6b", "Be terse."]


def test_empty_input_is_ignored_and_the_next_one_answered(start_bridge, emu):
    node, ep = start_bridge()
    ep.say("   ")
    final = ask(ep, "real question")
    assert final.prompt == "real question" and len(ep.finals.snapshot()) == 1
    assert len(emu.chat_bodies()) == 1
    assert "ignored an empty input" in node.log()
