"""Lifecycle facts a client's integration test waits on: a closed stream stops generation (and the
stats say so), model load time (cold, warm, unload, expiry, a client leaving mid-load), a pooled
keep-alive connection the server closes as the next request arrives, /api/pull progress that can be
paced, faulted and cancelled, and several emulators that differ in models and identity."""
import json
import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from ollama_server.testing import EmulatorFleet, KeepAliveClient, raw_request  # noqa: E402
from emulator_fixtures import chat, fresh, module_emulator  # noqa: E402,F401

CONFIG = {"models": {
    "llama3.2": {"reply": "one two three"},
    "long": {"reply": "word " * 300, "chunk_delay_ms": 10},
    "cold": {"reply": "warm now", "load_ms": 400},
    "big": {"pull_ms": 800, "pull_steps": 8, "size": 8000},
}, "registry": {"fresh:1b": {"reply": "new", "pull_steps": 3, "size": 300}}}
USER = [{"role": "user", "content": "hi"}]

emu = module_emulator(CONFIG)


def ps(emu):
    return [m["name"] for m in raw_request(emu.url, "/api/ps", method="GET").json_lines()[0]["models"]]


# ------------------------------------------------------------------------------- cancellation
def test_closing_the_stream_stops_generation_and_is_counted(emu):
    got = chat(emu, {"model": "long", "messages": USER}, on_read=lambda ex: len(ex.lines) >= 3)
    assert not got.complete
    stats = emu.wait_stats(cancelled=1)
    assert (stats["requests"], stats["in_flight"], stats["completed"], stats["failed"]) == (1, 0, 0, 0)
    assert stats["models"]["long:latest"]["cancelled"] == 1 and stats["paths"]["/api/chat"]["cancelled"] == 1
    [entry] = emu.requests()
    out = entry["outcome"]
    assert entry["cancelled"] and out["result"] == "canceled" and 3 <= out["chunks"] <= out["generated"]
    assert out["generated"] <= out["chunks"] + 2 < 60 < out["planned"]         # generation stopped with the stream
    assert out["duration_ms"] < 1500                                            # not the 3 s a full reply takes
    chat(emu, {"model": "llama3.2", "messages": USER})
    chat(emu, {"model": "nope", "messages": USER})
    stats = emu.wait_idle()
    assert (stats["requests"], stats["completed"], stats["failed"]) == (3, 1, 1)
    assert stats["results"] == {"canceled": 1, "completed": 1, "error": 1} and stats["chunks"] >= 3 + 3


def test_in_flight_is_visible_while_streaming(emu):
    import threading
    done = []
    reader = threading.Thread(target=lambda: done.append(chat(emu, {"model": "long", "messages": USER}, timeout=20)))
    reader.start()
    stats = emu.wait_stats(requests=1)
    assert stats["in_flight"] == 1 and stats["models"]["long:latest"]["in_flight"] == 1
    reader.join(20)
    assert done[0].complete and emu.wait_idle()["completed"] == 1


# -------------------------------------------------------------------------------------- load
def test_a_cold_model_pays_its_load_time_once(emu):
    cold = chat(emu, {"model": "cold", "messages": USER})
    assert cold.reads[0][0] >= 0.38 and cold.json_lines()[-1]["load_duration"] >= 380e6
    warm = chat(emu, {"model": "cold", "messages": USER})
    assert warm.reads[0][0] < 0.3 and "load_duration" not in warm.json_lines()[-1]


def test_a_load_request_answers_after_the_load_and_the_next_chat_is_warm(emu):
    load = chat(emu, {"model": "cold", "messages": []})
    assert load.reads[0][0] >= 0.38 and load.json_lines()[0]["done_reason"] == "load"
    assert ps(emu) == ["cold:latest"]
    warm = chat(emu, {"model": "cold", "messages": USER})
    assert warm.reads[0][0] < 0.3 and "load_duration" not in warm.json_lines()[-1]
    unload = chat(emu, {"model": "cold", "messages": [], "keep_alive": 0}).json_lines()[0]
    assert unload["done_reason"] == "unload" and ps(emu) == []
    again = chat(emu, {"model": "cold", "messages": USER})
    assert again.reads[0][0] >= 0.38 and again.json_lines()[-1]["load_duration"] >= 380e6


def test_an_expired_model_is_cold_again(emu):
    chat(emu, {"model": "cold", "messages": [], "keep_alive": "300ms"})
    assert ps(emu) == ["cold:latest"]
    emu.wait_for(lambda e: ps(e) == [], timeout=5, what="keep_alive to expire")
    assert chat(emu, {"model": "cold", "messages": USER}).json_lines()[-1]["load_duration"] >= 380e6


def test_a_client_leaving_mid_load_does_not_cut_the_load_short(emu):
    t0 = time.monotonic()
    left = chat(emu, {"model": "cold", "messages": []}, timeout=0.1)        # gives up after 100 ms
    assert left.data == b""
    [entry] = emu.wait_for_requests(1)
    assert entry["cancelled"] and entry["outcome"]["result"] == "canceled"
    emu.wait_for(lambda e: ps(e) == ["cold:latest"], timeout=5, what="the load to finish")
    assert time.monotonic() - t0 >= 0.38                                      # the whole load_ms, not 100 ms
    assert "load_duration" not in chat(emu, {"model": "cold", "messages": USER}).json_lines()[-1]


# -------------------------------------------------------------------------- stale keep-alive
def test_a_pooled_connection_is_closed_as_the_next_request_arrives(emu):
    with KeepAliveClient(emu.url) as client:
        first = client.request("/api/chat", {"model": "llama3.2", "messages": USER})
        assert first.complete and first.json_lines()[-1]["done"]
        emu.push_fault({"kind": "stale_close"})
        second = client.request("/api/chat", {"model": "llama3.2", "messages": USER})
    assert second.eof and second.data == b"" and not second.reset            # FIN, no response byte
    entry = emu.requests()[-1]
    assert entry["connection"]["request"] == 2 and entry["outcome"]["result"] == "stale_close"
    assert chat(emu, {"model": "llama3.2", "messages": USER}).complete        # a new connection works
    with KeepAliveClient(emu.url) as client:                                  # the fault was used up
        assert all(client.request("/api/tags", method="GET").complete for _ in range(3))


def test_stale_close_variants(emu):
    emu.push_fault({"kind": "stale_close", "reset": True, "request": 3})
    with KeepAliveClient(emu.url) as client:
        assert client.request("/api/version", method="GET").complete
        assert client.request("/api/chat", {"model": "llama3.2", "messages": USER}).complete
        third = client.request("/api/chat", {"model": "llama3.2", "messages": USER})
    assert third.eof and third.reset and third.data == b""                    # RST
    emu.push_fault({"kind": "stale_close", "count": -1})                     # every connection, until cleared
    for _ in range(2):
        with KeepAliveClient(emu.url) as client:
            assert client.request("/", method="GET").complete
            assert client.request("/", method="GET").data == b""
    emu.clear_faults()
    emu.push_fault({"kind": "stale_close", "idle_ms": 300})
    with KeepAliveClient(emu.url) as client:
        assert client.request("/", method="GET").complete
        assert client.request("/", method="GET").complete                    # reused at once: served
        time.sleep(0.35)                                                      # the idle time is the input here
        assert client.request("/", method="GET").data == b""
    assert [e["connection"]["request"] for e in emu.requests(None) if e["outcome"]["result"] == "stale_close"] == [
        3, 2, 2, 3]


# -------------------------------------------------------------------------------------- pull
def test_pull_streams_progress_and_installs_a_registry_model(emu):
    names = lambda: [m["name"] for m in raw_request(emu.url, "/api/tags", method="GET").json_lines()[0]["models"]]
    assert "fresh:1b" not in names()
    got = raw_request(emu.url, "/api/pull", {"model": "fresh:1b"})
    lines = got.json_lines()
    assert [l["status"] for l in lines] == ["pulling manifest"] + ["pulling " + lines[1]["digest"][7:19]] * 3 + [
        "verifying sha256 digest", "writing manifest", "success"]
    assert [l["completed"] for l in lines[1:4]] == [100, 200, 300] and {l["total"] for l in lines[1:4]} == {300}
    assert "fresh:1b" in names()
    assert "".join(o["message"]["content"] for o in chat(emu, {"model": "fresh:1b", "messages": USER}).json_lines()[:-1]) == "new"
    emu.reset()
    assert "fresh:1b" not in names()


def test_a_paced_pull_can_be_cancelled_midway(emu):
    got = raw_request(emu.url, "/api/pull", {"model": "big"}, on_read=lambda ex: len(ex.lines) >= 3)
    assert not got.complete and got.reads[-1][0] >= 0.14                    # 800 ms over 11 lines: 80 ms apart
    emu.wait_stats(cancelled=1)
    [entry] = emu.requests("/api/pull")
    assert entry["cancelled"] and 3 <= entry["outcome"]["chunks"] < 11 and entry["outcome"]["completed"] < 8000


@pytest.mark.parametrize("body,stream_status,lines,whole_status,whole", [
    ({"model": "no-such-model"}, 200, [{"status": "pulling manifest"},
                                       {"error": "pull model manifest: file does not exist"}],
     500, {"error": "pull model manifest: file does not exist"}),
    ({"model": ""}, 400, [{"error": "invalid model name"}], 400, {"error": "invalid model name"}),
])
def test_pull_errors_as_ollama(emu, body, stream_status, lines, whole_status, whole):
    got = raw_request(emu.url, "/api/pull", body)
    assert (got.status, got.json_lines()) == (stream_status, lines)
    quiet = raw_request(emu.url, "/api/pull", dict(body, stream=False))
    assert (quiet.status, quiet.json_lines()) == (whole_status, [whole])


def test_pull_faults(emu):
    emu.push_fault({"kind": "error_line", "after": 2, "message": "max retries exceeded", "path": "/api/pull"})
    lines = raw_request(emu.url, "/api/pull", {"model": "llama3.2"}).json_lines()
    assert len(lines) == 3 and lines[-1] == {"error": "max retries exceeded"}
    emu.push_fault({"kind": "status", "status": 500, "path": "/api/pull", "message": "disk full"})
    failed = raw_request(emu.url, "/api/pull", {"model": "llama3.2"})
    assert (failed.status, failed.json_lines()) == (500, [{"error": "disk full"}])
    assert raw_request(emu.url, "/api/pull", {"model": "llama3.2"}).json_lines()[-1] == {"status": "success"}


# ------------------------------------------------------------------------------------ fleets
def test_a_fleet_of_emulators_that_differ():
    servers = [{"config": CONFIG, "server_id": "gpu1"},
               {"config": {"models": {"llama3.2": {"reply": "{server} says hi"}}}, "server_id": "gpu2",
                "models": ["llama3.2", "extra"]}]
    with EmulatorFleet(servers) as fleet:
        assert len(fleet) == 2 and fleet.urls == [fleet[0].url, fleet[1].url]
        tags = [sorted(m["name"] for m in raw_request(u, "/api/tags", method="GET").json_lines()[0]["models"])
                for u in fleet.urls]
        assert "cold:latest" in tags[0] and tags[1] == ["extra:latest", "llama3.2:latest"]
        assert chat(fleet[1], {"model": "cold", "messages": USER}).status == 404
        got = chat(fleet[1], {"model": "llama3.2", "messages": USER})
        assert "".join(o["message"]["content"] for o in got.json_lines()[:-1]) == "gpu2 says hi"
        assert got.header("X-Emulator-Server") == "gpu2" and fleet[1].state()["server_id"] == "gpu2"
        assert [k for k, _ in got.headers] == ["Content-Type", "X-Emulator-Server", "Date", "Transfer-Encoding"]
        assert raw_request(fleet[0].url, "/", method="GET").header("X-Emulator-Server") == "gpu1"
        fleet[0].kill()
        fleet[0].start()
        assert json.loads(raw_request(fleet[0].url, "/api/version", method="GET").body)["version"]
