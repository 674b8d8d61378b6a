"""`api: openai` against llama.cpp's own HTTP server (SmolLM2-135M on the CPU), so the OpenAI path
is proven on a server implementation no one here wrote: a streamed answer with its usage
counters, `seed` + temperature 0 determinism, `num_predict` → `max_tokens` → `length`, a
cancelled stream that stops generation on the server, and the context window read from
`/v1/models`. Slow (a real model): `-m "not slow"` leaves these out."""
from __future__ import annotations

import importlib.util

import pytest

from harness import wait_until
from llamacpp_server import MODEL, LlamaCppServer
from ollama_bridge_msgs.srv import Cancel

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(importlib.util.find_spec("xllamacpp") is None,
                                 reason="the tiny model is not installed (scripts/setup without --no-model)")]

DETERMINISTIC = '{"temperature": 0, "seed": 42, "num_predict": 24}'


@pytest.fixture(scope="module")
def llamacpp():
    with LlamaCppServer() as server:
        yield server


def start(start_bridge, llamacpp, options=DETERMINISTIC, **params):
    return start_bridge(ollama_url=llamacpp.url, api="openai", model=MODEL, options_json=options,
                        system_prompt="You are a helpful robot. Answer briefly.", **params)


def ask(ep, text, session="s", timeout=120.0):
    before = len(ep.finals.snapshot())
    ep.utter(session, text)
    return ep.wait_finals(before + 1, timeout)[before]


def test_a_streamed_answer_with_counts_and_a_deterministic_repeat(start_bridge, llamacpp):
    node, ep = start(start_bridge, llamacpp)
    first = ask(ep, "Hello! Who are you?")
    assert first.error == "" and first.done_reason in ("stop", "length") and first.text.strip(), first
    assert first.prompt_eval_count > 0 and 0 < first.eval_count <= 24, "usage of llama.cpp's last event"
    assert first.eval_duration_ns > 0 and first.server == llamacpp.url and first.model == MODEL
    parts = ep.partials_of(first.request_id)
    assert len(parts) >= 2 and "".join(p.text for p in parts) == first.text
    ep.reset("s")
    again = ask(ep, "Hello! Who are you?")
    assert again.text == first.text, "seed + temperature 0 give the same answer"
    node.assert_healthy()


def test_num_predict_becomes_max_tokens_and_ends_with_length(start_bridge, llamacpp):
    _, ep = start(start_bridge, llamacpp, options='{"temperature": 0, "seed": 1, "num_predict": 5}')
    final = ask(ep, "Tell me a long story about a robot.")
    assert (final.error, final.done_reason, final.eval_count) == ("", "length", 5), final


def test_a_cancelled_stream_stops_generation_on_the_server(ros, start_bridge, llamacpp):
    _, ep = start(start_bridge, llamacpp, options='{"temperature": 0.7, "num_predict": 400}')
    cancel = ros.node.create_client(Cancel, f"{ep.ns}/cancel")
    try:
        wait_until(cancel.service_is_ready, 15, "the cancel service")
        before = llamacpp.metrics()["llamacpp:tokens_predicted_total"]
        ep.utter("s", "Tell me a very long story about a robot and its friends.")
        wait_until(lambda: len(ep.partials.snapshot()) >= 3, 120, "the answer streaming", ep.partials.cond)
        ep.call(cancel, Cancel.Request(session_id="s"))
        final = ep.wait_finals(1)[0]
        assert final.done_reason == "cancelled"
        wait_until(lambda: llamacpp.metrics()["llamacpp:requests_processing"] == 0, 10, "llama.cpp to stop")
        predicted = llamacpp.metrics()["llamacpp:tokens_predicted_total"] - before
        assert predicted < 100, f"generation went on after the stream closed: {predicted} tokens"
    finally:
        ros.node.destroy_client(cancel)


def test_the_context_window_comes_from_v1_models(start_bridge, llamacpp):
    _, ep = start(start_bridge, llamacpp, options='{"num_predict": 64}')
    final = ask(ep, "word " * 1590)  # within max_input_chars, beyond 2048 tokens
    assert final.done_reason == "error" and "2048-token context window" in final.error, final.error
