"""A warm model on the real node: `warm_up` loads the model (an `/api/chat` with no messages) at
start and after every model change, in the background and never fatally, and again on a server
that could not be reached once it answers; `unload_on_exit` unloads it when the node stops. What the node sent, and when, is read from the emulator's request log;
the emulator pays `load_ms` on a model's first request and reports it as `load_duration`."""
from __future__ import annotations

import signal

import pytest

from harness import wait_until
from helpers import ask, free_port
from ollama_server.testing import EmulatorProcess

LOAD_MS = 1500


def loads(emu, model=None, finished=True):
    """The logged load requests (empty `messages`, not an unload), of `model` if given."""
    out = []
    for r in emu.requests():
        body = r["body"]
        if body.get("messages") or body.get("keep_alive") == 0 or (model and body.get("model") != model):
            continue
        if finished and (r["outcome"] or {}).get("result") != "load":
            continue
        out.append(r)
    return out


def unloads(emu):
    return [r for r in emu.requests() if (r["outcome"] or {}).get("result") == "unload"]


def wait_loaded(emu, model, n=1):
    return emu.wait_for(lambda e: (lambda got: got if len(got) >= n else None)(loads(e, model)), 15,
                        what=f"{n} finished load(s) of {model}")


@pytest.mark.parametrize("warm_up", [None, True, False], ids=["default", "on", "off"])
def test_the_first_answer_does_not_wait_for_the_load_with_warm_up(start_bridge, emu, warm_up):
    emu.set_models({"llama3.2": {"reply": "Hello there.", "load_ms": LOAD_MS}})
    _, ep = start_bridge(warm_up=warm_up)
    if warm_up is False:
        first = ask(ep, "hi")
        assert first.done_reason == "stop"
        assert first.load_duration_ns >= 0.9 * LOAD_MS * 1e6, first.load_duration_ns
        assert first.time_to_first_chunk_s >= 0.9 * LOAD_MS / 1e3
        assert loads(emu, finished=False) == [], "no load request without warm_up"
        return
    (load,) = wait_loaded(emu, "llama3.2")
    assert load["body"]["messages"] == [] and "keep_alive" not in load["body"], load["body"]
    # what the first request would look up (the context window, /api/show) is known too
    emu.wait_for(lambda e: len(e.requests("/api/show")) == 1, 10, what="the context-window lookup")
    first = ask(ep, "hi")
    assert (first.done_reason, first.load_duration_ns) == ("stop", 0), first
    assert first.time_to_first_chunk_s < 0.5 * LOAD_MS / 1e3
    assert [r["body"]["model"] for r in emu.requests("/api/show")] == ["llama3.2"], "not looked up again"


def test_the_node_takes_inputs_while_the_model_loads(start_bridge, emu):
    """The load runs in the background: the node is ready, answers services and refuses a bad
    input at once while the load request is still open."""
    emu.set_models({"slow-to-load": {"reply": "Hi.", "load_ms": 20_000}})
    _, ep = start_bridge(model="slow-to-load", warm_up=True, keep_alive="10m")
    pending = emu.wait_for(lambda e: loads(e, "slow-to-load", finished=False), 10, what="the load request")
    assert pending[0]["outcome"] is None, "still loading"
    assert pending[0]["body"]["keep_alive"] == 600, "the keep_alive parameter keeps the warm model"
    assert ep.reset().success
    ep.utter("\x01bad", "refused at once")
    assert ep.wait_finals(1, timeout=5)[0].error
    assert loads(emu, "slow-to-load", finished=False)[0]["outcome"] is None, "the load was still running"


@pytest.mark.parametrize("how", ["set_model", "ros2 param set model", "ollama_url", "load_timeout_s"])
def test_a_model_change_loads_the_model_in_the_background(start_bridge, emu, how):
    emu.set_models({"qwen3:0.6b": {"reply": "Switched.", "load_ms": LOAD_MS}})
    _, ep = start_bridge(warm_up=True)
    wait_loaded(emu, "llama3.2")
    if how == "set_model":
        assert ep.set_model("qwen3:0.6b").success
    elif how == "ros2 param set model":
        assert ep.set_params(model="qwen3:0.6b")[0].successful
    elif how == "ollama_url":
        # the same emulator under another name: a new server for the node, so its model is loaded there
        assert ep.set_params(ollama_url=emu.url.replace("127.0.0.1", "localhost"))[0].successful
        wait_loaded(emu, "llama3.2", n=2)
        return
    else:
        # a timeout builds a new fleet (health and affinity start afresh): it is warmed and watched anew
        assert ep.set_params(load_timeout_s=200.0)[0].successful
        wait_loaded(emu, "llama3.2", n=2)
        return
    # answered before the load ended: the change never waits for it
    pending = emu.wait_for(lambda e: loads(e, "qwen3:0.6b", finished=False), 10, what="the new model's load")
    assert pending[0]["outcome"] is None
    wait_loaded(emu, "qwen3:0.6b")
    first = ask(ep, "which model?")
    assert (first.model, first.done_reason, first.load_duration_ns) == ("qwen3:0.6b", "stop", 0)


def test_a_refused_model_change_loads_nothing(start_bridge, emu):
    _, ep = start_bridge(warm_up=True)
    wait_loaded(emu, "llama3.2")
    assert not ep.set_model("no-such-model").success
    assert not ep.set_params(model="no-such-model")[0].successful
    assert ep.set_params(system_prompt="Another prompt.")[0].successful   # not a model change
    ask(ep, "still here?")
    assert [r["body"]["model"] for r in loads(emu, finished=False)] == ["llama3.2"]


@pytest.mark.parametrize("failure", ["server error", "unknown model", "server down"])
def test_a_failed_warm_up_is_a_warning_and_the_node_works_on(start_bridge, emu, failure):
    params = {"warm_up": True}
    if failure == "server error":
        emu.push_fault({"kind": "status", "status": 500, "message": "no memory", "include_load": True})
    elif failure == "unknown model":
        params["model"] = "not-pulled"
    else:
        params["ollama_url"] = f"http://127.0.0.1:{free_port()}"
    node, ep = start_bridge(**params)
    wait_until(lambda: "warm_up: could not load model" in node.log(), 15, "the warm-up warning")
    warning = next(line for line in node.log().splitlines() if "warm_up: could not load model" in line)
    assert "[WARN]" in warning, warning
    node.assert_healthy()
    answer = ask(ep, "are you there?")
    if failure == "server error":
        assert (answer.done_reason, answer.text) == ("stop", 'You said: "are you there?". This is turn 1.')
    else:
        assert answer.done_reason == "error" and answer.error


@pytest.mark.parametrize("when", ["not listening yet at start", "restarted after a failed request"])
def test_one_server_that_could_not_be_reached_is_warmed_once_it_answers(start_bridge, when):
    """A launch file may start the node before its own `ollama serve` listens, and a restarted
    server has nothing loaded: either way the model is loaded there once the server answers."""
    server = EmulatorProcess({"models": {"llama3.2": {"reply": "Hello there.", "load_ms": 300}}}, port=free_port())
    shown = f"http://robot:***@127.0.0.1:{server.port}"
    node, ep = start_bridge(ollama_url=f"http://robot:pw-Warm-1@127.0.0.1:{server.port}", warm_up=True, max_retries=0)
    try:
        if when == "not listening yet at start":
            wait_until(lambda: f"could not load model 'llama3.2' on {shown}" in node.log(), 15, "the warm-up warning")
            warning = next(line for line in node.log().splitlines() if "warm_up: could not load model" in line)
            assert "[WARN]" in warning and "it is loaded there when the server answers" in warning, warning
            assert "the first answer there will wait" not in warning, warning
        else:
            server.start()
            wait_loaded(server, "llama3.2")
            server.kill()
            failed = ask(ep, "anyone there?")
            assert failed.done_reason == "error" and "connect" in failed.error, failed.error
            wait_until(lambda: f"server {shown} is down" in node.log(), 10, "the server marked down")
            assert "its requests are still sent to it; probing it every 1-30 s" in node.log()
        server.start()  # a new process: nothing loaded, an empty request log
        (load,) = wait_loaded(server, "llama3.2")
        assert load["body"]["messages"] == []
        wait_until(lambda: f"warm_up: model 'llama3.2' is loaded on {shown}" in node.log(), 10, "the load logged")
        first = ask(ep, "hi")
        assert (first.done_reason, first.load_duration_ns) == ("stop", 0), first
        assert "pw-Warm-1" not in node.log()
        node.assert_healthy()
    finally:
        server.stop()


@pytest.mark.parametrize("unload_on_exit", [True, False])
def test_unload_on_exit(start_bridge, emu, unload_on_exit):
    node, ep = start_bridge(unload_on_exit=unload_on_exit)
    ask(ep, "hello")
    assert "llama3.2:latest" in emu.state()["loaded"]
    assert node.stop(signal.SIGINT) == 0
    if unload_on_exit:
        (unload,) = unloads(emu)
        assert unload["body"]["messages"] == [] and unload["body"]["keep_alive"] == 0
        assert "llama3.2:latest" not in emu.state()["loaded"]
        assert "unload_on_exit: model 'llama3.2' unloaded" in node.log()
    else:
        assert unloads(emu) == [] and "llama3.2:latest" in emu.state()["loaded"]
