"""What goes to every server of a fleet, not only the first: the warm-up's load (at start, after a
model change, and on a server whenever it rejoins the rotation), the unload at exit (neither on a
server known not to have the model), and the context-window lookup (a session is fitted to the window of the server it is routed to).
The real node against two emulator processes (a, b); what each was sent is read from its log."""
from __future__ import annotations

import signal

import pytest

from harness import wait_until
from ollama_server.testing import EmulatorFleet
from test_warm_up import loads, unloads

LOAD_MS = 300
REPLY = "Sure, here is a short answer about that for you."
CONFIG = {"models": {"llama3.2": {"reply": "{server} answers", "load_ms": LOAD_MS},
                     "qwen3:0.6b": {"reply": "{server} qwen", "load_ms": LOAD_MS},
                     "m": {"reply": REPLY}}}


@pytest.fixture(scope="module")
def servers():
    with EmulatorFleet([{"server_id": "a", "config": CONFIG}, {"server_id": "b", "config": CONFIG}]) as fleet:
        yield fleet


@pytest.fixture
def fleet(servers):
    """Both servers running, with their start-up models, nothing loaded and empty logs."""
    return servers.fresh()


def bridge(start_bridge, fleet, urls=None, **params):
    params.setdefault("max_retries", 0)
    return start_bridge(ollama_url=",".join(urls or fleet.urls), **params)


def wait_loaded(server, model, n=1, timeout=15):
    return server.wait_for(lambda e: (lambda got: got if len(got) >= n else None)(loads(e, model)), timeout,
                           what=f"{n} finished load(s) of {model} on {server.url}")


def ask(ep, session, text, timeout=30.0):
    before = len(ep.finals.snapshot())
    ep.utter(session, text)
    return ep.wait_finals(before + 1, timeout)[before]


def loaded_line(node, model, url):
    return f"warm_up: model '{model}' is loaded on {url}" in node.log()


@pytest.mark.parametrize("how", ["start", "set_model", "ros2 param set model", "ollama_url"])
def test_the_warm_up_loads_the_model_on_every_server(start_bridge, fleet, how):
    a, b = fleet
    first = [a.url] if how == "ollama_url" else fleet.urls
    node, ep = bridge(start_bridge, fleet, urls=first, warm_up=True)
    warmed = (a, b) if how != "ollama_url" else (a,)
    for server in warmed:
        (load,) = wait_loaded(server, "llama3.2")
        assert load["body"]["messages"] == [], load["body"]
    if how == "start":
        for server in warmed:
            wait_until(lambda: loaded_line(node, "llama3.2", server.url), 10, f"the outcome logged with {server.url}")
        assert node.log().count("warm_up at start: loading model 'llama3.2' on") == 2
        return
    if how == "set_model":
        assert ep.set_model("qwen3:0.6b").success
    elif how == "ros2 param set model":
        assert ep.set_params(model="qwen3:0.6b")[0].successful
    else:
        assert ep.set_params(ollama_url=",".join(fleet.urls))[0].successful
    model = "llama3.2" if how == "ollama_url" else "qwen3:0.6b"
    for server in (a, b):
        wait_loaded(server, model, n=2 if (how == "ollama_url" and server is a) else 1)
    for server in (a, b):
        wait_until(lambda: loaded_line(node, model, server.url), 10, f"the outcome logged with {server.url}")
    # each session's first answer finds its server's model loaded, whichever server it goes to
    firsts = [ask(ep, s, "hello") for s in ("s1", "s2")]
    assert sorted(f.server for f in firsts) == sorted(fleet.urls)
    assert [(f.done_reason, f.load_duration_ns) for f in firsts] == [("stop", 0)] * 2, firsts
    node.assert_healthy()


def test_a_server_failing_its_load_does_not_stop_the_others(start_bridge, fleet):
    a, b = fleet
    a.push_fault({"kind": "status", "status": 500, "message": "no memory", "include_load": True})
    node, _ = bridge(start_bridge, fleet, warm_up=True)
    wait_loaded(b, "llama3.2")
    wait_until(lambda: f"warm_up: could not load model 'llama3.2' on {a.url}" in node.log(), 10, "a's warning")
    warning = next(line for line in node.log().splitlines() if f"could not load model 'llama3.2' on {a.url}" in line)
    assert "[WARN]" in warning and "no memory" in warning, warning
    assert loaded_line(node, "llama3.2", b.url)


@pytest.mark.parametrize("when", ["at start", "at a model change"])
def test_a_server_that_is_down_is_warmed_when_it_is_back_in_the_rotation(start_bridge, fleet, when):
    a, b = fleet
    if when == "at start":
        a.kill()
        node, ep = bridge(start_bridge, fleet, warm_up=True)
        model = "llama3.2"
        wait_loaded(b, model)
        wait_until(lambda: f"could not load model '{model}' on {a.url}" in node.log(), 10, "a's warning")
    else:
        node, ep = bridge(start_bridge, fleet, warm_up=True)
        wait_loaded(a, "llama3.2")
        wait_loaded(b, "llama3.2")
        assert ask(ep, "s1", "hello").server == a.url
        a.kill()
        # the session's next request finds its server gone and passes it over (which marks it down)
        assert ask(ep, "s1", "again").server == b.url
        wait_until(lambda: f"server {a.url} is down" in node.log(), 10, "a marked down")
        model = "qwen3:0.6b"
        assert ep.set_model(model).success
        wait_loaded(b, model)
        wait_until(lambda: f"{a.url} is down; model '{model}' is loaded there when it is back" in node.log(), 10,
                   "the wait for a logged")
    a.start()
    wait_until(lambda: f"server {a.url} answers again" in node.log(), 15, "a back in the rotation")
    (load,) = wait_loaded(a, model)
    assert load["body"]["messages"] == []
    wait_until(lambda: loaded_line(node, model, a.url), 10, "a's load logged")


def test_a_warm_server_that_died_and_came_back_is_warmed_again(start_bridge, fleet):
    """A restarted `ollama serve` has nothing loaded: each time a server rejoins the rotation the
    model is loaded there again, logged with its URL (password as `***`)."""
    a, b = fleet
    shown_a = a.url.replace("http://", "http://robot:***@")
    node, ep = bridge(start_bridge, fleet, urls=[a.url.replace("http://", "http://robot:pw-Back-1@"), b.url], warm_up=True)
    wait_loaded(a, "llama3.2")
    wait_loaded(b, "llama3.2")
    for n in (1, 2):
        session = f"s{n}"  # a new session goes to a: b holds the earlier ones
        assert ask(ep, session, "hello").server == shown_a
        a.kill()
        assert ask(ep, session, "again").server == b.url  # a is passed over and marked down
        a.start()  # a new process: nothing loaded, an empty request log
        wait_until(lambda: node.log().count(f"server {shown_a} answers again") == n, 15, "a back in the rotation")
        (load,) = wait_loaded(a, "llama3.2")
        assert load["body"]["messages"] == []
        wait_until(lambda: node.log().count(f"warm_up: model 'llama3.2' is loaded on {shown_a}") == n + 1, 10,
                   "a's load logged")
        assert f"warm_up: {shown_a} is back in the rotation: loading model 'llama3.2' there again" in node.log()
    first = ask(ep, "s3", "warm?")
    assert (first.server, first.done_reason, first.load_duration_ns) == (shown_a, "stop", 0), first
    assert len(loads(b, "llama3.2")) == 1, "b never left the rotation: loaded once"
    assert "pw-Back-1" not in node.log()


@pytest.mark.parametrize("when", ["at start", "after set_model"])
def test_a_server_known_to_lack_the_model_is_neither_warmed_nor_unloaded(start_bridge, fleet, when):
    a, b = fleet
    model = "qwen3:0.6b"
    b.set_models({"llama3.2": CONFIG["models"]["llama3.2"]}, replace=True)  # b lacks qwen3:0.6b
    node, ep = bridge(start_bridge, fleet, warm_up=True, unload_on_exit=True,
                      model=model if when == "at start" else "llama3.2")
    if when == "after set_model":
        wait_loaded(b, "llama3.2")
        answer = ep.set_model(model)
        assert answer.success and f"not on {b.url} (does not have it)" in answer.message, answer.message
    wait_loaded(a, model)
    skipped = f"{b.url} does not have model '{model}' (its model list): not loaded there"
    wait_until(lambda: skipped in node.log(), 10, "b skipped")
    assert ask(ep, "s1", "hello").server == a.url
    assert node.stop(signal.SIGINT) == 0
    (unload,) = unloads(a)
    assert unload["body"]["model"] == model
    assert [r["body"] for r in b.requests() if r["body"].get("model") == model] == [], "nothing of the model sent to b"
    lines = node.log().splitlines()
    for said in (skipped, f"unload_on_exit: {b.url} does not have model '{model}' (its model list): nothing to unload"):
        (line,) = [line for line in lines if said in line]
        assert line.startswith("[INFO]"), line
    assert f"could not load model '{model}'" not in node.log() and "could not unload" not in node.log()


@pytest.mark.parametrize("api", ["ollama", "openai"])
def test_unload_on_exit_unloads_on_every_server(start_bridge, fleet, api):
    a, b = fleet
    node, ep = bridge(start_bridge, fleet, api=api, unload_on_exit=True)
    if api == "ollama":
        for s in ("s1", "s2"):
            ask(ep, s, "hello")
        assert all("llama3.2:latest" in server.state()["loaded"] for server in fleet)
    assert node.stop(signal.SIGINT) == 0
    if api == "openai":
        assert [unloads(server) for server in fleet] == [[], []], "the OpenAI API has no unload"
        assert "unload_on_exit: not sent (api: openai" in node.log()
        return
    for server in fleet:
        (unload,) = unloads(server)
        assert unload["body"]["messages"] == [] and unload["body"]["keep_alive"] == 0
        assert "llama3.2:latest" not in server.state()["loaded"]
    for server in fleet:
        assert f"unload_on_exit: model 'llama3.2' unloaded on {server.url}" in node.log()


def history_turns(body) -> int:
    """Exchanges a chat request carries: messages minus the system prompt and the new input."""
    return (len(body["messages"]) - 2) // 2


@pytest.mark.parametrize("warm_up", [False, True], ids=["looked up by the first request", "looked up at warm-up"])
def test_a_session_is_fitted_to_the_window_of_its_own_server(start_bridge, fleet, warm_up):
    a, b = fleet
    b.set_models({"m": {"reply": REPLY, "context_length": 300}})  # a: the default 4096
    node, ep = bridge(start_bridge, fleet, model="m", reply_reserve_tokens=40, max_history_turns=100, warm_up=warm_up)
    if warm_up:
        for server in fleet:
            server.wait_for(lambda e: len(e.requests("/api/show")) == 1, 10, what=f"the lookup on {server.url}")
    answers = {"s1": [], "s2": []}
    for i in range(16):
        for session in answers:  # s1 first: it goes to a, then s2 to b
            answers[session].append(ask(ep, session, f"question number {i} about the weather"))
    assert {f.server for f in answers["s1"]} == {a.url} and {f.server for f in answers["s2"]} == {b.url}
    assert all(f.done_reason == "stop" for fs in answers.values() for f in fs)
    on_a, on_b = ([body for body in server.chat_bodies() if body["messages"]] for server in fleet)  # not the load
    assert [history_turns(body) for body in on_a] == list(range(16)), "a's 4096-token window holds them all"
    turns_b = [history_turns(body) for body in on_b]
    assert any(turns_b[i] < turns_b[i - 1] for i in range(1, 16)), f"b's 300-token window trims: {turns_b}"
    for f in answers["s2"]:
        assert f.prompt_eval_count + 40 <= 300, f"prompt {f.prompt_eval_count} + reserve 40 > b's window"
    assert "300-token context window (model 'm')" in node.log()
    assert [len(server.requests("/api/show")) for server in fleet] == [1, 1], "looked up once per server"


def test_a_session_is_fitted_to_the_window_of_the_only_server_that_has_the_model(start_bridge, fleet):
    """Nothing is known of the servers' models before the first request: the window is looked up
    where the request goes (b), not on the first server (a, which lacks the model)."""
    a, b = fleet
    b.set_models({"only-b": {"reply": REPLY, "context_length": 300}})
    node, ep = bridge(start_bridge, fleet, model="only-b", reply_reserve_tokens=40, max_history_turns=100)
    finals = [ask(ep, "s1", f"question number {i} about the weather") for i in range(16)]
    assert {f.server for f in finals} == {b.url} and all(f.done_reason == "stop" for f in finals)
    turns = [history_turns(body) for body in b.chat_bodies()]
    assert any(turns[i] < turns[i - 1] for i in range(1, 16)), f"b's 300-token window trims: {turns}"
    assert all(f.prompt_eval_count + 40 <= 300 for f in finals), [f.prompt_eval_count for f in finals]
    assert a.requests("/api/show") == [] and "could not look up the context length" not in node.log()
