"""Never lose a conversation: a graceful stop. On SIGINT or SIGTERM every request in flight (streaming,
queued, or waiting for Ollama) gets a final response with `done_reason: cancelled`, completed
exchanges are saved, and the node exits 0 within 2 s."""
from __future__ import annotations

import signal
import time

import pytest

from harness import wait_until
from helpers import ask, conversation, history_pairs, joined_partials, messages

LONG = " ".join(f"word{i}" for i in range(60))


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_a_signal_during_streams_cancels_each_request_saves_history_and_exits_0_quickly(
        start_bridge, emu, tmp_path, sig):
    history = tmp_path / "history"
    emu.set_models({"llama3.2": {"reply": ["Done.", LONG], "chunk_delay_ms": 50}})
    node, ep = start_bridge(history_dir=str(history), max_concurrent_requests=4)
    sessions = ["a", "b", "c"]
    done = {s: ask(ep, f"{s}1", session=s) for s in sessions}
    for s in sessions:
        ep.utter(s, f"{s}2 long")                            # turn 2: the long answer, streaming
    ep.utter("a", "a3 queued")                               # waits behind a2
    completed_ids = [f.request_id for f in done.values()]
    wait_until(lambda: {p.session_id for p in ep.partials.snapshot() if p.request_id not in completed_ids}
               == set(sessions), 15, "the three long answers to stream", ep.partials.cond)
    started = time.monotonic()
    code = node.stop(sig, timeout=10)
    took = time.monotonic() - started
    assert code == 0, node.log()[-3000:]
    assert took < 2.0, f"the node took {took:.2f}s to stop"
    finals = ep.wait_finals(len(sessions) * 2 + 1, timeout=5)
    cut = {f.prompt: f for f in finals if f.request_id not in completed_ids}
    assert sorted(cut) == ["a2 long", "a3 queued", "b2 long", "c2 long"]
    for prompt, final in cut.items():
        assert (final.done_reason, final.error) == ("cancelled", ""), final
        assert "".join(p.text for p in joined_partials(ep, final)) == final.text
        assert (final.text != "") == (prompt != "a3 queued")
    assert len(ep.finals.snapshot()) == 7, "exactly one final per input"
    for s in sessions:
        assert history_pairs(history, s) == [(f"{s}1", done[s].text)], "completed saved, cancelled not"
    log = node.log()
    assert f"{sig.name} received" in log and "stopped cleanly" in log and "did not finish" not in log
    emu.set_models({"llama3.2": {"reply": "back"}})
    _, ep = start_bridge(history_dir=str(history))
    ask(ep, "after the restart", session="b")
    assert messages(emu.chat_bodies()[-1]) == conversation(("b1", done["b"].text), then="after the restart")


def test_a_signal_while_waiting_for_ollama_cancels_at_once(start_bridge, emu):
    """Requests that have no answer yet (Ollama silent before its headers, a retry backing off,
    one waiting for a free slot) are cancelled too, without waiting for their timeouts."""
    emu.push_fault({"kind": "stall", "after": 0, "seconds": 30})
    emu.push_fault({"kind": "status", "status": 503, "count": 5})
    node, ep = start_bridge(max_concurrent_requests=2, max_retries=5, request_timeout_s=30.0)
    ep.utter("stalled", "no headers yet")
    emu.wait_for_requests(1, finished=False)
    ep.utter("retrying", "busy server")
    emu.wait_for(lambda e: len(e.requests()) >= 2, what="the retried request's first attempt")
    ep.utter("waiting", "no free slot")
    started = time.monotonic()
    code = node.stop(signal.SIGTERM, timeout=10)
    took = time.monotonic() - started
    assert code == 0 and took < 2.0, (code, took, node.log()[-2000:])
    finals = ep.wait_finals(3, timeout=5)
    assert sorted(f.session_id for f in finals) == ["retrying", "stalled", "waiting"]
    assert all((f.done_reason, f.error, f.text) == ("cancelled", "", "") for f in finals), finals
