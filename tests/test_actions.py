"""The `chat` action on the real node binary: goals with feedback and a result, goals interleaved
with topic inputs, many goals at once, cancel (streaming, queued, finished), failures and bad
input, with rclpy's ActionClient, the ros2 CLI and the example client."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from action_msgs.msg import GoalStatus
from action_msgs.srv import CancelGoal
from ollama_bridge_msgs.action import Chat

from goal_client import Goal, action_client
from helpers import conversation, final_for, joined_partials, messages
from test_ros_cli import root_bridge, ros2  # noqa: F401 (root_bridge is a fixture)

SUCCEEDED, CANCELED, ABORTED = GoalStatus.STATUS_SUCCEEDED, GoalStatus.STATUS_CANCELED, GoalStatus.STATUS_ABORTED
EXAMPLE = Path(__file__).resolve().parents[1] / "examples/chat_action_client.py"


@pytest.fixture
def chat(ros):
    """`chat(ep)`: an ActionClient of the node's `chat` action, destroyed after the test."""
    clients = []

    def make(ep):
        clients.append(action_client(ros, Chat, f"{ep.ns}/chat"))
        return clients[-1]
    yield make
    for client in clients:
        client.destroy()


def send(client, text: str, session: str = "") -> Goal:
    return Goal(client, Chat.Goal(session_id=session, text=text))


def feedback_text(goal: Goal, response) -> str:
    """Waits for one feedback per published partial; checks their numbering; returns them joined.
    Only for paced answers: rclpy drops a goal's feedback that it handles after the result (see
    `check_feedback`)."""
    got = goal.feedback.wait_count(response.chunk_count, 10, "feedback messages")
    assert [f.seq for f in got] == list(range(response.chunk_count))
    return "".join(f.partial for f in got)


def check_feedback(ep, goal: Goal, response):
    """Every feedback message is the partial published with its `seq` on response_partial, in order.
    rclpy's ActionClient forgets a goal's feedback callback once its result is handled, and handles
    one feedback message per executor cycle: the tail of an unpaced burst may never reach it."""
    published = {p.seq: p.text for p in joined_partials(ep, response)}
    got = [(f.seq, f.partial) for f in goal.feedback.snapshot()]
    assert got == sorted(got) and all(published.get(seq) == text for seq, text in got), (got, published)


def barrier(ep, k: int):
    """Returns once every utterance published before it reached the node: an input refused at once
    (control character in the session id) on the same topic is answered, and a reliable topic
    delivers in order."""
    ep.utter("\x01barrier", f"barrier {k}")
    final_for(ep, f"barrier {k}")


def test_a_goal_streams_feedback_and_succeeds_with_the_answer_like_a_topic_input(start_bridge, emu, chat):
    emu.set_models({"llama3.2": {"chunk_delay_ms": 20}})     # the speed of a model, not a burst
    _, ep = start_bridge()
    client = chat(ep)
    goal = send(client, "hello robot", "kitchen")
    status, result = goal.outcome()
    r = result.response
    assert status == SUCCEEDED
    assert (r.session_id, r.prompt, r.done_reason, r.error, r.model) == ("kitchen", "hello robot", "stop", "", "llama3.2")
    assert r.text == 'You said: "hello robot". This is turn 1.' and r.eval_count > 0 and r.time_to_first_chunk_s > 0
    assert r.chunk_count >= 2 and feedback_text(goal, r) == r.text
    on_topic = final_for(ep, "hello robot")
    assert (on_topic.request_id, on_topic.text) == (r.request_id, r.text), "also published on response_final"
    # the session's history continues across goals and topic inputs
    second = send(client, "and again", "kitchen").outcome()[1].response
    assert second.text.endswith("This is turn 2.")
    assert messages(emu.chat_bodies()[-1]) == conversation(("hello robot", r.text), then="and again")
    ep.utter("kitchen", "by topic")
    assert final_for(ep, "by topic").text.endswith("This is turn 3.")
    default = send(client, "no session").outcome()[1].response
    assert (default.session_id, default.text) == ("default", 'You said: "no session". This is turn 1.')


def test_goals_and_topic_inputs_of_two_sessions_keep_their_order(start_bridge, emu, chat):
    emu.set_models({"llama3.2": {"reply": "{last_user} is turn {turns}", "chunk_delay_ms": 30}})
    _, ep = start_bridge()
    client = chat(ep)
    sessions, goals = ("alice", "bob"), {}
    for step in range(1, 5):
        for s in sessions:
            if step % 2:
                ep.utter(s, f"{s} {step} topic")
            else:
                goals[s, step] = send(client, f"{s} {step} goal", s)
        if step % 2:
            barrier(ep, step)              # the topic inputs arrived before the next goals
        else:
            assert all(g.accepted() for g in goals.values()), "accepted = queued, before the next inputs"
    for s in sessions:
        expected = [f"{s} 1 topic", f"{s} 2 goal", f"{s} 3 topic", f"{s} 4 goal"]
        for prompt in expected:
            final_for(ep, prompt)
        mine = sorted((f for f in ep.finals.snapshot() if f.session_id == s), key=lambda f: f.request_id)
        assert [f.prompt for f in mine] == expected
        assert [f.text for f in mine] == [f"{p} is turn {i}" for i, p in enumerate(expected, 1)]
        for step in (2, 4):
            status, result = goals[s, step].outcome()
            final = next(f for f in mine if f.prompt == f"{s} {step} goal")
            assert status == SUCCEEDED and (result.response.request_id, result.response.text) == (final.request_id, final.text)
    last_alice = next(b for b in emu.chat_bodies() if b["messages"][-1]["content"] == "alice 4 goal")
    assert [m["content"] for m in last_alice["messages"] if m["role"] == "user"] == [
        "alice 1 topic", "alice 2 goal", "alice 3 topic", "alice 4 goal"]


def test_many_goals_at_once_over_several_sessions(start_bridge, emu, chat):
    """Ten goals sent at once (the most rcl's default service queue of depth 10 takes in one
    burst: r2r 0.9.7 does not let a node deepen it), five sessions, three request slots."""
    emu.set_models({"llama3.2": {"reply": "{last_user} is turn {turns}", "chunk_delay_ms": 5}})
    _, ep = start_bridge(max_concurrent_requests=3)
    client = chat(ep)
    goals = [(s, i, send(client, f"{s}{i}", s)) for i in range(1, 3) for s in ("s1", "s2", "s3", "s4", "s5")]
    for s, i, goal in goals:
        status, result = goal.outcome(timeout=60)
        assert status == SUCCEEDED, result.response
        assert (result.response.session_id, result.response.text) == (s, f"{s}{i} is turn {i}")
        check_feedback(ep, goal, result.response)


def slow_model(emu, words: int = 40, delay_ms: int = 100) -> str:
    reply = " ".join(f"w{i}" for i in range(words))
    emu.set_models({"slow": {"reply": reply, "chunk_delay_ms": delay_ms}})
    return reply


def test_cancel_a_streaming_goal_closes_the_http_stream_and_keeps_the_history(start_bridge, emu, chat):
    reply = slow_model(emu)
    _, ep = start_bridge(model="slow")
    client = chat(ep)
    first = send(client, "remember this", "s").outcome()[1].response
    goal = send(client, "count slowly", "s")
    goal.feedback.wait_count(2, 15, "feedback")
    answer = goal.cancel()
    assert answer.return_code == CancelGoal.Response.ERROR_NONE and len(answer.goals_canceling) == 1
    status, result = goal.outcome()
    r = result.response
    assert status == CANCELED
    assert (r.prompt, r.done_reason, r.error) == ("count slowly", "cancelled", "")
    assert 2 <= r.chunk_count < 40 and reply.startswith(r.text)
    check_feedback(ep, goal, r)
    assert final_for(ep, "count slowly").done_reason == "cancelled"
    cancelled = emu.wait_for_requests(2)[1]
    assert cancelled["outcome"]["result"] == "canceled", "the bridge closed the HTTP stream"
    after = send(client, "and now?", "s").outcome()
    assert after[0] == SUCCEEDED
    assert messages(emu.chat_bodies()[-1]) == conversation(("remember this", first.text), then="and now?")
    # a finished goal cannot be cancelled any more
    late = goal.cancel()
    assert late.return_code != CancelGoal.Response.ERROR_NONE and not late.goals_canceling


def test_cancel_a_queued_goal_answers_it_without_asking_ollama(start_bridge, emu, chat):
    slow_model(emu, words=10)
    _, ep = start_bridge(model="slow")
    client = chat(ep)
    running = send(client, "first", "s")
    running.feedback.wait_count(1, 15, "feedback of the first goal")
    queued = send(client, "second", "s")
    assert queued.accepted()
    answer = queued.cancel()
    assert answer.return_code == CancelGoal.Response.ERROR_NONE
    status, result = queued.outcome()
    assert status == CANCELED
    assert (result.response.done_reason, result.response.text, result.response.chunk_count) == ("cancelled", "", 0)
    assert running.outcome()[0] == SUCCEEDED, "cancelling one goal leaves the session's other request alone"
    assert [messages(b)[-1]["content"] for b in emu.chat_bodies()] == ["first"]


def test_a_reset_while_a_goal_streams_aborts_it_as_cancelled(start_bridge, emu, chat):
    slow_model(emu)
    _, ep = start_bridge(model="slow")
    client = chat(ep)
    goal = send(client, "long story", "s")
    goal.feedback.wait_count(1, 15, "feedback")
    assert ep.reset("s").success
    status, result = goal.outcome()
    assert status == ABORTED and result.response.done_reason == "cancelled"


def test_shutdown_while_goals_stream_or_wait_aborts_them_as_cancelled(start_bridge, emu, chat):
    slow_model(emu)
    node, ep = start_bridge(model="slow")
    client = chat(ep)
    streaming, waiting = send(client, "long story", "s"), send(client, "next one", "s")
    streaming.feedback.wait_count(1, 15, "feedback")
    assert waiting.accepted()
    assert node.stop() == 0
    for goal in (streaming, waiting):
        status, result = goal.outcome(timeout=10)
        assert status == ABORTED and result.response.done_reason == "cancelled", result.response


@pytest.mark.parametrize("session,text,params,reason", [
    ("s", "", {}, "the text is empty"),
    ("s", "  \n ", {}, "the text is empty"),
    ("bad\x01id", "hello", {}, "control characters"),
    ("x" * 129, "hello", {}, "the limit is 128"),
    ("s", "far too long for the limit", {"max_input_chars": 10}, "max_input_chars"),
    ("s", "hello", {"model": "ghost"}, "model 'ghost' not found"),
], ids=["empty", "blank", "control-char-session", "long-session-id", "long-text", "model-missing"])
def test_a_bad_or_failing_goal_is_aborted_with_the_error_response(start_bridge, emu, chat, session, text, params, reason):
    _, ep = start_bridge(**params)
    client = chat(ep)
    status, result = send(client, text, session).outcome()
    r = result.response
    assert status == ABORTED
    assert r.done_reason == "error" and reason in r.error, r.error
    assert final_for(ep, text).request_id == r.request_id, "the error also goes to response_final"


def test_an_ollama_failure_aborts_the_goal_and_leaves_the_history_alone(start_bridge, emu, chat):
    _, ep = start_bridge(max_retries=0)
    client = chat(ep)
    emu.push_fault({"kind": "status", "status": 500, "message": "runner crashed"})
    status, result = send(client, "hello", "s").outcome()
    assert status == ABORTED and "runner crashed" in result.response.error
    emu.push_fault({"kind": "error_line", "after": 2, "message": "out of memory"})
    goal = send(client, "again", "s")
    status, result = goal.outcome()
    assert status == ABORTED and "out of memory" in result.response.error
    # the two pieces before the error line (together in one partial when they came in one burst)
    assert result.response.text == "You said" and 1 <= result.response.chunk_count <= 2
    check_feedback(ep, goal, result.response)
    status, result = send(client, "third", "s").outcome()
    assert status == SUCCEEDED and result.response.text.endswith("This is turn 1.")


def test_a_goal_beyond_the_session_queue_limit_is_aborted(start_bridge, emu, chat):
    slow_model(emu, words=10)
    _, ep = start_bridge(model="slow", max_queue_per_session=1)
    client = chat(ep)
    first = send(client, "first", "s")
    first.feedback.wait_count(1, 15, "feedback of the first goal")
    second, third = send(client, "second", "s"), send(client, "third", "s")
    status, result = third.outcome()
    assert status == ABORTED and "max_queue_per_session" in result.response.error
    assert first.outcome()[0] == SUCCEEDED and second.outcome()[0] == SUCCEEDED


def test_the_example_action_client(start_bridge, emu):
    node, ep = start_bridge()
    done = subprocess.run([sys.executable, str(EXAMPLE), "Hello robot", "--ros-args", "-r", f"__ns:={ep.ns}"],
                          capture_output=True, text=True, timeout=60, env=dict(os.environ))
    assert done.returncode == 0, done.stdout + done.stderr
    assert 'You said: "Hello robot". This is turn 1.' in done.stdout
    assert "SUCCEEDED" in done.stdout


@pytest.mark.skipif(shutil.which("ros2") is None, reason="the ros2 CLI is not installed (see scripts/setup)")
def test_ros2_action_send_goal_with_feedback(root_bridge):
    out = ros2("ros2 action send_goal --feedback chat ollama_bridge_msgs/action/Chat "
               "\"{session_id: 'kitchen', text: 'Hello robot'}\"")
    assert "Goal accepted" in out and "Feedback:" in out and "partial:" in out, out
    assert "Goal finished with status: SUCCEEDED" in out, out
    assert "You said: \"Hello robot\". This is turn 1." in out, out
