"""Bad input never loses a conversation: empty, too long, invalid UTF-8 in raw CDR, odd session ids,
bad options and parameters, end to end (the real node binary over real ROS topics, against the
emulator). Each gets a clear error response or warning, or a non-zero exit at start."""
from __future__ import annotations

import pytest

from harness import wait_until
from helpers import SYSTEM, ask, cdr_strings, messages, user


def test_empty_and_whitespace_inputs_are_ignored_with_a_warning(start_bridge, emu):
    node, ep = start_bridge()
    ep.say("")
    ep.say("   \n\t ")
    ep.utter("kitchen", " ")
    final = ask(ep, "real question")
    assert final.prompt == "real question" and len(ep.finals.snapshot()) == 1
    assert len(emu.chat_bodies()) == 1
    wait_until(lambda: node.log().count("ignored an empty input") == 3, 5, "three warnings")


def test_too_long_input_is_refused_and_not_sent(start_bridge, emu):
    _, ep = start_bridge(max_input_chars=50)
    refused = ask(ep, "é" * 51)
    assert refused.done_reason == "error"
    assert "51 characters" in refused.error and "max_input_chars" in refused.error and "50" in refused.error
    assert emu.chat_bodies() == []
    assert ask(ep, "é" * 50).done_reason == "stop"
    assert messages(emu.chat_bodies()[-1]) == [SYSTEM, user("é" * 50)]


def test_invalid_utf8_in_raw_cdr_gets_an_error_response(start_bridge, emu):
    node, ep = start_bridge()
    ep.speech_pub.publish(cdr_strings(b"caf\xe9 au lait"))                 # Latin-1, not UTF-8
    bad_text = ep.wait_finals(1)[0]
    assert (bad_text.session_id, bad_text.done_reason) == ("default", "error")
    assert "not valid UTF-8" in bad_text.error and "offset 3" in bad_text.error
    assert bad_text.prompt == "caf\ufffd au lait"
    ep.utterance_pub.publish(cdr_strings(b"kit\xffchen", b"hello"))      # bad session id
    bad_session = ep.wait_finals(2)[1]
    assert bad_session.done_reason == "error" and "session id" in bad_session.error
    assert "not valid UTF-8" in bad_session.error
    ep.utterance_pub.publish(cdr_strings(b"kitchen", "h\u00e9llo".encode()))   # valid, by hand
    good = ep.wait_finals(3)[2]
    assert (good.session_id, good.prompt, good.done_reason) == ("kitchen", "h\u00e9llo", "stop")
    assert [messages(b)[-1] for b in emu.chat_bodies()] == [user("h\u00e9llo")], "bad inputs are not sent"
    node.assert_healthy()


def test_session_ids_empty_long_path_like_and_with_control_characters(start_bridge, emu):
    node, ep = start_bridge()
    for session, expected in [("", "default"), ("x" * 128, "x" * 128), ("../../etc/passwd", "../../etc/passwd"),
                              ("living room/sofa", "living room/sofa")]:
        first = ask(ep, f"hi {session}", session=session)
        second = ask(ep, f"again {session}", session=session)
        assert (first.session_id, first.done_reason, second.done_reason) == (expected, "stop", "stop"), first
        assert second.text.endswith("turn 2."), f"{session!r} keeps its own history"
    sent = len(emu.chat_bodies())
    for session, why in [("x" * 129, "129 characters long; the limit is 128"), ("bad\x01id", "control characters"),
                         ("two\nlines", "control characters"), ("tab\there", "control characters")]:
        refused = ask(ep, "hi", session=session)
        assert (refused.session_id, refused.done_reason) == (session, "error")
        assert why in refused.error, refused.error
        assert "\n" not in refused.error and "\x01" not in refused.error, "the id is printed safely"
    assert len(emu.chat_bodies()) == sent, "refused inputs are not sent"
    node.assert_healthy()


def test_bad_options_and_format_are_refused_at_set_parameters(start_bridge, emu):
    _, ep = start_bridge(options_json='{"seed": 1}')
    for name, value, reason in [("options_json", "[1]", "JSON object"), ("options_json", "{seed: 1", "not valid JSON"),
                                ("format", "yaml", "format")]:
        [result] = ep.set_params(**{name: value})
        assert not result.successful and reason in result.reason, (name, value, result.reason)
    assert ep.get_params("options_json", "format") == ['{"seed": 1}', ""]
    ask(ep, "still fine?")
    body = emu.chat_bodies()[-1]
    assert body["options"] == {"seed": 1} and "format" not in body
    for model in ("", "   "):
        answer = ep.set_model(model)
        assert not answer.success and "empty" in answer.message and answer.previous_model == "llama3.2"


@pytest.mark.parametrize("name,value,reason", [("options_json", "[1]", "JSON object"),
                                               ("format", "yaml", "format")])
def test_bad_parameter_at_start_exits_non_zero_with_a_clear_message(start_bridge, name, value, reason):
    node, _ = start_bridge(expect_ready=False, **{name: value})
    code = node.proc.wait(timeout=15)
    log = node.log()
    assert code != 0, log
    assert "cannot start" in log and name in log and reason in log, log[-2000:]
    assert "panicked" not in log
