"""Bursts on the real node: pieces that were already received when the node published one go out
together as one `response_partial` (fewer DDS messages, the same text); at a model's pace every
piece is its own partial. `seq` and `Response.chunk_count` count messages, `eval_count` pieces."""
from __future__ import annotations

from ollama_server.scripted import pieces

from helpers import joined_partials

LONG = " ".join(f"word{i}" for i in range(300)) + "."


def check_answer(ep, final):
    assert (final.done_reason, final.error, final.text) == ("stop", "", LONG)
    parts = joined_partials(ep, final)     # they add up to the text, numbered 0.. without a gap
    assert final.chunk_count == len(parts)
    assert final.eval_count == len(pieces(LONG))
    return parts


def test_unpaced_answers_of_concurrent_sessions_arrive_whole(start_bridge, emu):
    emu.set_models({"llama3.2": {"reply": LONG}})
    node, ep = start_bridge(max_concurrent_requests=10)
    for i in range(10):
        ep.utter(f"s{i}", f"burst {i}")
    finals = ep.wait_finals(10)
    for final in finals:
        check_answer(ep, final)     # nothing lost (before coalescing, Fast DDS defaults lost pieces here)
    # 10 × 601 pieces as fast as the emulator sends them: when the node falls behind it publishes
    # the pieces already received together. How many it joins depends on timing (0.05–1.0 as many
    # partials as pieces on 2 busy cores), so it is measured by the bench (pieces per message), and
    # proven deterministically by the unit tests in src/exchange_tests.rs; here: nothing is lost.
    assert all(1 <= f.chunk_count <= f.eval_count for f in finals), sorted(f.chunk_count for f in finals)
    node.assert_healthy()


def test_at_a_models_pace_pieces_are_published_one_by_one(start_bridge, emu):
    reply = " ".join(f"word{i}" for i in range(30)) + "."
    emu.set_models({"llama3.2": {"reply": reply, "chunk_delay_ms": 20}})
    _, ep = start_bridge()
    ep.utter("s", "paced")
    final = ep.wait_finals(1)[0]
    assert (final.done_reason, final.text, final.eval_count) == ("stop", reply, len(pieces(reply)))
    parts = joined_partials(ep, final)
    # One partial per piece, as each came; only a node kept off the CPU for longer than a piece's
    # 20 ms (a busy machine) finds two already received, and publishes them together.
    assert len(parts) == final.chunk_count >= 0.9 * final.eval_count, [p.text for p in parts]
