"""Several servers in `ollama_url`: the real node against three emulator processes (ids a, b, c;
c serves only llama3.2). Each answer names the server that made it (`{server}`), and
`Response.server` names its URL. Sessions spread over the servers and stay on theirs while it is
up; a server killed, stopped, or answering 503 passes its sessions on before any output, with
their whole history, and rejoins once it answers again; `set_model` names the servers that lack
a model; `/diagnostics` reports a server down."""
from __future__ import annotations

import pytest

from harness import wait_until
from helpers import conversation, joined_partials, messages
from ollama_bridge_msgs.srv import ListModels
from ollama_server.testing import EmulatorFleet
from test_diagnostics import diagnostics  # noqa: F401 (a fixture)

REPLY = "{server} turn {turns}"
CONFIG = {"models": {"llama3.2": {"reply": REPLY}, "qwen3:0.6b": {"reply": "{server} qwen"}}}
SLOW = {"llama3.2": {"reply": " ".join(["word"] * 40), "chunk_delay_ms": 50}}
V1 = "/v1/chat/completions"


@pytest.fixture(scope="module")
def servers():
    specs = [{"server_id": "a", "config": CONFIG}, {"server_id": "b", "config": CONFIG},
             {"server_id": "c", "config": CONFIG, "models": ["llama3.2"]}]
    with EmulatorFleet(specs) as fleet:
        yield fleet


@pytest.fixture
def fleet(servers):
    """The three servers, all running, with their start-up models and empty logs."""
    return servers.fresh()


def bridge(start_bridge, fleet, **params):
    params.setdefault("max_retries", 0)
    return start_bridge(ollama_url=",".join(fleet.urls), **params)


def ask(ep, session, text, timeout=30.0):
    before = len(ep.finals.snapshot())
    ep.utter(session, text)
    return ep.wait_finals(before + 1, timeout)[before]


def member(fleet, url):
    return fleet[fleet.urls.index(url)]


def chat_bodies(server, path):
    return [r["body"] for r in server.requests(path) if r["outcome"] is not None]


def rejoined(node, url):
    return lambda: f"server {url} answers again" in node.log()


def test_sessions_spread_over_the_servers_and_stay_on_theirs(start_bridge, fleet):
    # README's form: `-p ollama_url:=URL1,URL2,URL3` (unquoted; it comes after, so it wins over the harness's)
    node, ep = start_bridge(extra_args=["-p", "ollama_url:=" + ",".join(fleet.urls)], max_retries=0)
    first = {s: ask(ep, s, "hello") for s in ("s1", "s2", "s3")}
    assert sorted(f.server for f in first.values()) == sorted(fleet.urls), "each new session to the least used server"
    for s, answer in first.items():
        assert answer.error == "" and answer.text == f"{member(fleet, answer.server).args[1]} turn 1", answer
    for s in ("s1", "s2", "s3"):
        again = ask(ep, s, "again")
        assert again.server == first[s].server, f"session {s} stays on its server"
        assert again.text.endswith("turn 2")
        server = member(fleet, again.server)
        assert messages(chat_bodies(server, "/api/chat")[-1]) == conversation(("hello", first[s].text), then="again")
    node.assert_healthy()


@pytest.mark.parametrize("how", ["kill", "stop"])
@pytest.mark.parametrize("api", ["ollama", "openai"])
def test_a_server_gone_between_turns_passes_the_session_on_with_its_history_and_rejoins(start_bridge, fleet, how, api):
    path = V1 if api == "openai" else "/api/chat"
    node, ep = bridge(start_bridge, fleet, api=api)
    first = ask(ep, "kitchen", "first")
    gone = member(fleet, first.server)
    gone.kill() if how == "kill" else gone.stop()
    second = ask(ep, "kitchen", "second")
    assert second.error == "" and second.server != first.server, second
    assert second.text.endswith("turn 2"), "the history went with the request"
    assert messages(chat_bodies(member(fleet, second.server), path)[-1]) == conversation(("first", first.text), then="second")
    assert f"{first.server} failed before answering" in node.log() and "retry 1/" not in node.log(), "moved on, not retried"
    third = ask(ep, "kitchen", "third")
    assert third.server == second.server, "the session stays on its new server"
    gone.start()
    wait_until(rejoined(node, first.server), 10, f"{first.server} back in the rotation")
    later = {ask(ep, s, "hi").server for s in ("n1", "n2", "n3")}
    assert first.server in later, "new sessions go to the server that rejoined"
    node.assert_healthy()


def test_a_server_killed_mid_answer_ends_that_answer_with_an_error_and_the_next_input_moves(start_bridge, fleet):
    for m in fleet.members:
        m.set_models(SLOW)
    node, ep = bridge(start_bridge, fleet)
    first = ask(ep, "s", "first")
    ep.utter("s", "second")
    wait_until(lambda: len(ep.partials.snapshot()) > first.chunk_count + 2, 15, "the second answer streaming",
               ep.partials.cond)
    member(fleet, first.server).kill()
    failed = ep.wait_finals(2)[1]
    assert failed.done_reason == "error" and "stream ended before the final chunk" in failed.error, failed
    assert "".join(p.text for p in joined_partials(ep, failed)) == failed.text != "", "never spoken twice"
    third = ask(ep, "s", "third")
    assert third.error == "" and third.server != first.server
    assert messages(chat_bodies(member(fleet, third.server), "/api/chat")[-1]) == \
        conversation(("first", first.text), then="third"), "the failed exchange is not in the history"


def test_a_503_server_passes_the_request_on_and_rejoins(start_bridge, fleet):
    node, ep = bridge(start_bridge, fleet)
    first = ask(ep, "s", "first")
    busy = member(fleet, first.server)
    busy.push_fault({"kind": "status", "status": 503})
    second = ask(ep, "s", "second")
    assert second.error == "" and second.server != first.server and second.text.endswith("turn 2"), second
    assert busy.requests()[-1]["status"] == 503
    wait_until(rejoined(node, first.server), 10, "the busy server probed back")


def test_set_model_names_the_servers_that_lack_it_and_sessions_avoid_them(ros, start_bridge, fleet):
    node, ep = bridge(start_bridge, fleet)
    lister = ros.node.create_client(ListModels, f"{ep.ns}/list_models")
    wait_until(lister.service_is_ready, 15, "list_models")
    listed = ep.call(lister, ListModels.Request())
    ros.node.destroy_client(lister)
    assert listed.success and {"llama3.2:latest", "qwen3:0.6b"} <= set(listed.models), listed
    assert all(url in listed.message for url in fleet.urls), "the models of every server"
    answer = ep.set_model("qwen3:0.6b")
    lacking = fleet[2].url
    assert answer.success and f"{lacking} (does not have it)" in answer.message, answer.message
    servers = {ask(ep, s, "hello").server for s in ("q1", "q2", "q3", "q4")}
    assert servers == {fleet[0].url, fleet[1].url}, "never the server without the model"
    refused = ep.set_model("no-such-model")
    assert not refused.success and "is on none of the servers" in refused.message, refused.message
    node.assert_healthy()


def test_diagnostics_warn_while_one_server_is_down(start_bridge, fleet, diagnostics):  # noqa: F811
    _, ep = bridge(start_bridge, fleet)
    watch = diagnostics(ep)
    status, _ = watch.next("OK")
    assert status.hardware_id == ",".join(fleet.urls)
    fleet[1].kill()
    status, values = watch.next("WARN", lambda s, v: "1 of 3 servers unreachable" in s.message)
    assert fleet[1].url in status.message and values["server_version"]
