"""`/diagnostics` from the real node binary: OK with every value, ERROR while the Ollama server is
down and OK again when it is back, WARN for a missing model, failed requests and a full node, and
the ros2 CLI line."""
from __future__ import annotations

import shutil

import pytest
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus

from harness import DEEP, Recorder, wait_until
from helpers import ask, free_port
from test_ros_cli import root_bridge, ros2  # noqa: F401 (root_bridge is a fixture)

KEYS = ["ollama_url", "server_version", "model", "model_loaded", "requests_in_flight", "requests_queued",
        "sessions", "requests_total", "errors_total", "last_error", "ttft_p50_s"]
LEVELS = {DiagnosticStatus.OK: "OK", DiagnosticStatus.WARN: "WARN", DiagnosticStatus.ERROR: "ERROR"}


@pytest.fixture
def diagnostics(ros):
    """`diagnostics(ep)`: waits for the node's next status matching a predicate (see `Watch`)."""
    recorder = Recorder()
    sub = ros.node.create_subscription(DiagnosticArray, "/diagnostics", recorder, DEEP)
    yield lambda ep: Watch(recorder, f"ollama_bridge: {ep.ns}/ollama_bridge")
    ros.node.destroy_subscription(sub)


class Watch:
    """The statuses one node publishes on /diagnostics (other nodes of the domain publish there too)."""

    def __init__(self, recorder: Recorder, name: str):
        self.recorder, self.name = recorder, name

    def statuses(self) -> list:
        return [s for array in self.recorder.snapshot() for s in array.status if s.name == self.name]

    def next(self, level: str, check=lambda status, values: True, timeout: float = 15.0):
        """The first status from now on at `level` for which `check(status, values)` holds."""
        start = len(self.statuses())

        def found():
            for status in self.statuses()[start:]:
                values = {kv.key: kv.value for kv in status.values}
                if LEVELS[status.level] == level and check(status, values):
                    return status, values
            return None
        seen = lambda: [(LEVELS[s.level], s.message) for s in self.statuses()[start:][-3:]]  # noqa: E731
        try:
            return wait_until(found, timeout, f"a {level} status of {self.name}", self.recorder.cond)
        except AssertionError as e:
            raise AssertionError(f"{e}; last seen: {seen()}") from None


def test_ok_then_error_while_the_server_is_down_then_ok_again(start_bridge, emu, diagnostics):
    _, ep = start_bridge()
    watch = diagnostics(ep)
    status, values = watch.next("OK")
    assert status.hardware_id == emu.url and status.message == f"ok: model 'llama3.2' (not loaded) at {emu.url}"
    assert [kv.key for kv in status.values] == KEYS
    assert (values["ollama_url"], values["server_version"], values["model"], values["model_loaded"]) == (
        emu.url, "0.12.3", "llama3.2", "false")
    total = int(values["requests_total"])
    ask(ep, "hello", session="kitchen")
    _, values = watch.next("OK", lambda s, v: v["requests_total"] == str(total + 1) and v["model_loaded"] == "true")
    assert float(values["ttft_p50_s"]) > 0 and values["sessions"] == "1"
    assert (values["requests_in_flight"], values["requests_queued"]) == ("0", "0")
    try:
        emu.stop()
        status, values = watch.next("ERROR")
        assert "unreachable" in status.message and "cannot connect" in status.message, status.message
        assert values["server_version"] == "" and values["model_loaded"] == ""
    finally:
        if not emu.running:
            emu.start()                          # same port
    status, values = watch.next("OK")
    assert values["server_version"] == "0.12.3"


def test_error_when_no_server_answers_from_the_start(start_bridge, diagnostics):
    url = f"http://127.0.0.1:{free_port()}"
    _, ep = start_bridge(ollama_url=url)
    status, _ = diagnostics(ep).next("ERROR")
    assert status.hardware_id == url and "cannot connect" in status.message


def test_warn_when_the_model_is_not_on_the_server(start_bridge, emu, diagnostics):
    _, ep = start_bridge(model="ghost")
    status, values = diagnostics(ep).next("WARN")
    assert "model 'ghost' is not on the server" in status.message, status.message
    assert values["model"] == "ghost"


def test_warn_after_failed_requests_with_the_last_error(start_bridge, emu, diagnostics):
    _, ep = start_bridge(max_retries=0)
    watch = diagnostics(ep)
    _, values = watch.next("OK")
    errors = int(values["errors_total"])
    emu.push_fault({"kind": "status", "status": 500, "message": "runner crashed"})
    assert ask(ep, "hello").done_reason == "error"
    status, values = watch.next("WARN", lambda s, v: v["errors_total"] == str(errors + 1))
    assert "1 request(s) failed in the last 60s" in status.message and "runner crashed" in status.message
    assert "runner crashed" in values["last_error"]


def test_warn_when_every_request_slot_is_taken_and_inputs_wait(start_bridge, emu, diagnostics):
    emu.set_models({"slow": {"reply": " ".join(["word"] * 100), "chunk_delay_ms": 100}})
    _, ep = start_bridge(model="slow", max_concurrent_requests=1)
    watch = diagnostics(ep)
    ep.utter("a", "first")
    ep.utter("b", "second")
    status, values = watch.next("WARN", lambda s, v: "busy" in s.message)
    assert "all 1 request slots in use, 1 input(s) waiting" in status.message
    assert (values["requests_in_flight"], values["requests_queued"], values["sessions"]) == ("1", "1", "2")
    ep.reset("")


@pytest.mark.skipif(shutil.which("ros2") is None, reason="the ros2 CLI is not installed (see scripts/setup)")
def test_ros2_topic_echo_diagnostics(root_bridge):
    out = ros2("ros2 topic echo --once /diagnostics diagnostic_msgs/msg/DiagnosticArray")
    assert "name: 'ollama_bridge: /ollama_bridge'" in out and "key: ollama_url" in out, out
    assert "key: ttft_p50_s" in out
