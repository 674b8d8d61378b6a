"""The real node against a real language model (SmolLM2-135M through llama.cpp, behind the project's
Ollama-protocol server). Structure and determinism are asserted, never particular words."""
from __future__ import annotations

import importlib.util

import pytest

from ollama_server.testing import EmulatorProcess

pytestmark = pytest.mark.skipif(importlib.util.find_spec("xllamacpp") is None,
                                reason="the tiny model is not installed (scripts/setup without --no-model)")

MODEL = "smollm2:135m"
DETERMINISTIC = '{"temperature": 0, "seed": 42, "num_predict": 40}'


@pytest.fixture(scope="module")
def model_server():
    with EmulatorProcess(backend="llamacpp", ready_timeout=120) as server:
        yield server


@pytest.fixture
def real_bridge(start_bridge, model_server):
    model_server.clear_requests()
    return start_bridge(ollama_url=model_server.url, model=MODEL, options_json=DETERMINISTIC,
                        system_prompt="You are a helpful robot. Answer briefly.")


def ask(ep, text, n_before):
    ep.say(text)
    return ep.wait_finals(n_before + 1, timeout=120)[n_before]


def assert_well_formed(final, ep):
    assert final.done_reason in ("stop", "length"), (final.done_reason, final.error)
    assert final.error == "" and final.text.strip() and final.model == MODEL
    assert final.prompt_eval_count > 0 and final.eval_count > 0
    assert final.total_duration_ns > 0 and final.eval_duration_ns > 0
    assert 0 < final.time_to_first_chunk_s <= final.total_time_s
    parts = ep.partials_of(final.request_id)
    assert [p.seq for p in parts] == list(range(len(parts))) and len(parts) >= 2
    assert "".join(p.text for p in parts) == final.text


def test_two_turns_reset_and_a_deterministic_repeat(real_bridge, model_server):
    node, ep = real_bridge
    first = ask(ep, "Hello! My name is Ada. Who are you?", 0)
    assert_well_formed(first, ep)
    second = ask(ep, "What is my name?", 1)
    assert_well_formed(second, ep)
    bodies = model_server.chat_bodies()
    assert [(m["role"], m["content"]) for m in bodies[1]["messages"][1:]] == [
        ("user", "Hello! My name is Ada. Who are you?"), ("assistant", first.text), ("user", "What is my name?")]
    assert ep.reset("default").success
    repeat = ask(ep, "Hello! My name is Ada. Who are you?", 2)
    assert_well_formed(repeat, ep)
    assert len(model_server.chat_bodies()[2]["messages"]) == 2, "reset must clear the history"
    assert repeat.text == first.text, "temperature 0 + a fixed seed must repeat exactly"
    node.assert_healthy()
