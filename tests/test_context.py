"""The context budget and prompt-cache-friendly trimming, end to end against the emulator (whose
`/api/show` reports each model's `context_length` and whose replies carry `prompt_eval_count` /
`eval_count`): old exchanges leave in blocks, the system prompt always stays, every prompt fits the
window by the server's own count, an input that cannot fit gets an error naming the numbers, and
the token counts are saved with each exchange."""
from __future__ import annotations

import json

import pytest

from helpers import SYSTEM, ask, assistant, conversation, history_file_name, messages, read_history, user

REPLY = "Sure, here is a short answer about that for you."
MODELS = {"short": {"reply": REPLY},
          "small": {"reply": REPLY, "context_length": 300},
          "huge": {"reply": REPLY, "context_length": 131072}}


@pytest.fixture
def models(emu):
    emu.set_models(MODELS)


def history_turns(body) -> int:
    """Exchanges a chat request carries: messages minus the system prompt and the new input."""
    return (len(body["messages"]) - 2) // 2


def extends(previous_body, answer, body) -> bool:
    """Whether `body`'s prompt starts with the previous prompt and its answer (a prompt-cache hit)."""
    before = messages(previous_body) + [assistant(answer)]
    return messages(body)[:len(before)] == before


WINDOWS = {  # how the window is set → (node parameters, what the error names)
    "context_tokens": ({"context_tokens": 300}, "300-token context window (context_tokens)"),
    "num_ctx": ({"options_json": '{"num_ctx": 300}'}, "300-token context window (num_ctx in options_json)"),
    "server": ({"model": "small"}, "300-token context window (model 'small')"),
}


@pytest.mark.parametrize("source", WINDOWS)
def test_old_exchanges_leave_in_blocks_and_the_system_prompt_stays(start_bridge, emu, models, source):
    params, _ = WINDOWS[source]
    _, ep = start_bridge(**{"model": "short", "reply_reserve_tokens": 40, "max_history_turns": 100, **params})
    finals = [ask(ep, f"question number {i} about the weather") for i in range(24)]
    assert all(f.done_reason == "stop" for f in finals), [f.error for f in finals if f.error]
    bodies = emu.chat_bodies()
    assert len(bodies) == 24
    for f, body in zip(finals, bodies):
        assert messages(body)[0] == SYSTEM, "the system prompt is never dropped"
        assert messages(body)[-1] == user(f.prompt)
        assert f.prompt_eval_count + 40 <= 300, f"prompt {f.prompt_eval_count} + reserve 40 > the window (server's count)"
    turns = [history_turns(b) for b in bodies]
    drops = [turns[i - 1] + 1 - turns[i] for i in range(1, len(turns)) if turns[i] < turns[i - 1] + 1]
    assert drops, f"the window filled up: {turns}"
    assert all(d >= 2 for d in drops), f"whole blocks leave at once, not one exchange per request: {turns}"
    extending = sum(extends(bodies[i - 1], finals[i - 1].text, bodies[i]) for i in range(1, len(bodies)))
    assert extending >= 0.75 * (len(bodies) - 1), f"most prompts extend the previous one: {turns}"


def test_max_history_turns_trims_to_half_at_once(start_bridge, emu, models):
    _, ep = start_bridge(model="short", max_history_turns=4)
    for i in range(10):
        ask(ep, f"t{i}")
    assert [history_turns(b) for b in emu.chat_bodies()] == [0, 1, 2, 3, 4, 2, 3, 4, 2, 3]


@pytest.mark.parametrize("source", WINDOWS)
def test_an_input_that_cannot_fit_gets_an_error_and_changes_nothing(start_bridge, emu, models, source):
    params, named = WINDOWS[source]
    node, ep = start_bridge(**{"model": "short", "reply_reserve_tokens": 40, **params})
    first = ask(ep, "hello")
    too_long = "please remember this " * 60  # 1260 bytes: ~319 tokens estimated
    failed = ask(ep, too_long)
    assert failed.done_reason == "error" and failed.text == "", failed
    for part in (named, "~319", "reply reserve 40", "reply_reserve_tokens", "context_tokens"):
        assert part in failed.error, f"{part!r} not in {failed.error!r}"
    assert len(emu.chat_bodies()) == 1, "nothing was sent to the server"
    assert "does not fit the context window" in node.log(), "logged"
    ask(ep, "and now?")
    assert messages(emu.chat_bodies()[-1]) == conversation(("hello", first.text), then="and now?"), \
        "the history is untouched"
    node.assert_healthy()


def test_the_reply_reserve_is_num_predict_when_set(start_bridge, emu, models):
    _, ep = start_bridge(model="short", context_tokens=300, options_json='{"num_predict": 100}')
    failed = ask(ep, "x" * 760)  # ~194 tokens + the system prompt ~10 + 100 > 300
    assert failed.done_reason == "error" and "reply reserve 100" in failed.error, failed.error
    assert ask(ep, "x" * 600).done_reason == "stop", "~154 + ~10 + 100 fit in 300 (reply_reserve_tokens 512 would not)"


def test_the_server_window_is_capped_at_ollamas_default_and_context_tokens_lifts_it(start_bridge, emu, models):
    long_input = "tell me about robots " * 700  # 14700 bytes: ~3679 tokens
    _, ep = start_bridge(model="huge", max_input_chars=20000)
    failed = ask(ep, long_input)
    assert failed.done_reason == "error"
    assert "4096-token context window (model 'huge' supports 131072" in failed.error, failed.error
    assert "context_tokens" in failed.error
    _, ep = start_bridge(model="huge", max_input_chars=20000, context_tokens=8192)
    assert ask(ep, long_input).done_reason == "stop"


def test_token_counts_are_saved_and_old_files_still_load(start_bridge, emu, models, tmp_path):
    history = tmp_path / "history"
    history.mkdir()
    # a file written before token counts existed
    old = [{"session": "default", "user": "my name is Ada", "assistant": "Hello Ada.", "time": 1.7e9}]
    (history / history_file_name("default")).write_text("".join(json.dumps(line) + "\n" for line in old))
    node, ep = start_bridge(model="short", history_dir=str(history))
    finals = [ask(ep, f"question {i}") for i in range(4)]
    assert messages(emu.chat_bodies()[0]) == conversation(("my name is Ada", "Hello Ada."), then="question 0")
    lines = read_history(history / history_file_name("default"))
    assert "user_tokens" not in lines[0] and "assistant_tokens" not in lines[0], "old lines stay as they were"
    for i, (line, final) in enumerate(zip(lines[1:], finals)):
        assert line["assistant_tokens"] == final.eval_count > 0, line
        if i > 0:
            # the user turn is what the server's prompt grew by beyond the previous prompt and answer
            before = finals[i - 1]
            assert line["user_tokens"] == final.prompt_eval_count - before.prompt_eval_count - before.eval_count, line
    # restored with their counts: the budget uses them after a restart
    node.stop()
    _, ep = start_bridge(model="short", history_dir=str(history))
    assert ask(ep, "still there?").done_reason == "stop"
    assert history_turns(emu.chat_bodies()[-1]) == 5
