"""A speaking robot, end to end on the real node: the `cancel` service, barge-in, the history of a
cancelled answer holding only what the text-to-speech node reported as spoken, and `session_state`.
What the node sent to Ollama is checked on the emulator's request log."""
from __future__ import annotations

import pytest
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy

from harness import DEEP, Recorder, wait_until
from helpers import SYSTEM, ask, assistant, messages, user, wait_streaming
from ollama_bridge_msgs.msg import SessionState, Spoken
from ollama_bridge_msgs.srv import Cancel

LONG = ("First sentence is here. Second sentence follows now. Third one comes next. "
        "Fourth sentence is long enough. Fifth and last sentence.")
SLOW = {"llama3.2": {"reply": LONG, "chunk_delay_ms": 40}}
LATCHED = QoSProfile(depth=100, reliability=ReliabilityPolicy.RELIABLE, history=HistoryPolicy.KEEP_LAST,
                     durability=DurabilityPolicy.TRANSIENT_LOCAL)


class Speaking:
    """The speaking-robot interfaces of one node, seen from the test."""

    def __init__(self, ros, ns):
        node = ros.node
        self.node = node
        self.cancel_client = node.create_client(Cancel, f"{ns}/cancel")
        self.spoken_pub = node.create_publisher(Spoken, f"{ns}/spoken", DEEP)
        self.states = Recorder()
        self.state_sub = node.create_subscription(SessionState, f"{ns}/session_state", self.states, LATCHED)
        wait_until(lambda: self.cancel_client.service_is_ready() and self.spoken_pub.get_subscription_count() > 0
                   and self.state_sub.get_publisher_count() > 0, 20, "cancel, spoken and session_state")

    def cancel(self, ep, session_id=""):
        return ep.call(self.cancel_client, Cancel.Request(session_id=session_id))

    def say_spoken(self, session_id, request_id, text):
        self.spoken_pub.publish(Spoken(session_id=session_id, request_id=request_id, text=text))

    def states_of(self, request_id):
        return [s.state for s in self.states.snapshot() if s.request_id == request_id]

    def destroy(self):
        self.node.destroy_client(self.cancel_client)
        self.node.destroy_publisher(self.spoken_pub)
        self.node.destroy_subscription(self.state_sub)


@pytest.fixture
def speaking(ros):
    made = []

    def make(ep):
        made.append(Speaking(ros, ep.ns))
        return made[-1]
    yield make
    for s in made:
        s.destroy()


def first_request_id(ep, after=0):
    """The request id of the first partial of a request newer than `after`."""
    return wait_until(lambda: next((p.request_id for p in ep.partials.snapshot() if p.request_id > after), None),
                      15, "a partial", ep.partials.cond)


def test_cancel_stops_the_stream_keeps_the_history_and_stops_generation(start_bridge, emu, speaking):
    _, ep = start_bridge()
    sp = speaking(ep)
    first = ask(ep, "remember me", session="s")
    ep.finals.clear()
    emu.set_models(SLOW)
    ep.utter("s", "talk for a while")
    ep.utter("s", "queued behind it")
    rid = first_request_id(ep, after=first.request_id)
    answer = sp.cancel(ep, "s")
    assert answer.success and "1 streaming request(s) cancelled, 1 queued input(s) dropped" in answer.message
    finals = ep.wait_finals(2)
    by_prompt = {f.prompt: f for f in finals}
    assert by_prompt["talk for a while"].done_reason == "cancelled"
    assert by_prompt["talk for a while"].request_id == rid
    assert by_prompt["queued behind it"].done_reason == "cancelled"
    # Closing the stream made the server stop generating: its log says the client went away
    logged = emu.wait_for_requests(2)
    assert logged[-1]["outcome"]["result"] == "canceled", logged[-1]["outcome"]
    assert len(by_prompt["talk for a while"].text) < len(LONG)
    # The history stays (nothing was reported spoken, so the cancelled exchange is not in it)
    emu.set_models({"llama3.2": {"reply": "ok"}})
    ask(ep, "still there?", session="s")
    assert messages(emu.chat_bodies()[-1]) == [SYSTEM, user("remember me"), assistant(first.text), user("still there?")]
    assert "nothing to cancel" in sp.cancel(ep, "nobody").message


def test_a_cancelled_answer_enters_the_history_as_far_as_it_was_spoken(start_bridge, emu, speaking):
    emu.set_models(SLOW)
    _, ep = start_bridge()
    sp = speaking(ep)
    ep.utter("s", "tell me a story")
    rid = first_request_id(ep)
    sp.say_spoken("s", rid + 1000, "a report for another request is ignored")
    sp.say_spoken("s", rid, "First sentence is here.")
    sp.say_spoken("s", rid, "First sentence is here. Second sentence follows now.")
    # the node takes reports in order; wait for a later partial so the reports have surely arrived
    wait_until(lambda: len(ep.partials_of(rid)) >= 12, 20, "more of the answer", ep.partials.cond)
    sp.cancel(ep, "s")
    ep.wait_finals(1)
    emu.set_models({"llama3.2": {"reply": "ok"}})
    ask(ep, "and then?", session="s")
    assert messages(emu.chat_bodies()[-1]) == [
        SYSTEM, user("tell me a story"), assistant("First sentence is here. Second sentence follows now."),
        user("and then?")]


def test_barge_in_cancels_the_answer_and_answers_the_new_input_next(start_bridge, emu, speaking):
    emu.set_models(SLOW)
    _, ep = start_bridge(barge_in=True)
    sp = speaking(ep)
    ep.utter("s", "tell me a story")
    rid = first_request_id(ep)
    sp.say_spoken("s", rid, "First sentence is here.")
    wait_until(lambda: len(ep.partials_of(rid)) >= 10, 20, "more of the answer", ep.partials.cond)
    ep.utter("s", "stop, what time is it?")
    finals = ep.wait_finals(2, timeout=30)
    assert [(f.prompt, f.done_reason) for f in finals] == [
        ("tell me a story", "cancelled"), ("stop, what time is it?", "stop")]
    assert finals[1].text == LONG
    assert messages(emu.chat_bodies()[-1]) == [
        SYSTEM, user("tell me a story"), assistant("First sentence is here."), user("stop, what time is it?")]


def test_without_barge_in_a_new_input_waits_for_the_answer(start_bridge, emu):
    emu.set_models({"llama3.2": {"reply": LONG, "chunk_delay_ms": 5}})
    _, ep = start_bridge()
    ep.utter("s", "one")
    wait_streaming(ep, 1)
    ep.utter("s", "two")
    finals = ep.wait_finals(2, timeout=30)
    assert [(f.prompt, f.done_reason, f.text) for f in finals] == [("one", "stop", LONG), ("two", "stop", LONG)]


def test_session_state_follows_each_request_and_is_latched(start_bridge, emu, speaking, ros):
    emu.set_models({"llama3.2": {"reply": "Hello there.", "ttft_ms": 50}})
    _, ep = start_bridge()
    sp = speaking(ep)
    done = ask(ep, "hi", session="s")
    wait_until(lambda: sp.states_of(done.request_id)[-1:] == ["idle"], 10, "idle", sp.states.cond)
    assert sp.states_of(done.request_id) == ["thinking", "answering", "idle"]
    emu.push_fault({"kind": "status", "status": 404})
    failed = ask(ep, "fail please", session="s")
    assert failed.done_reason == "error"
    wait_until(lambda: sp.states_of(failed.request_id)[-1:] == ["error"], 10, "error state", sp.states.cond)
    assert sp.states_of(failed.request_id) == ["thinking", "error"]
    # a dialogue manager that starts now still sees the last states (transient local)
    late = Speaking(ros, ep.ns)
    try:
        wait_until(lambda: late.states_of(failed.request_id) == ["thinking", "error"], 10, "latched states",
                   late.states.cond)
        assert all(s.stamp.sec > 0 for s in late.states.snapshot())
    finally:
        late.destroy()
