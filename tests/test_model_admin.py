"""`list_models` and the `pull_model` action on the real node binary: the emulator's models and
loaded models, a successful and a failed pull with progress, bad input, an unreachable server, and
cancel of a long pull (which must close the HTTP connection), with rclpy and the ros2 CLI."""
from __future__ import annotations

import shutil
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from action_msgs.msg import GoalStatus
from action_msgs.srv import CancelGoal
from ollama_bridge_msgs.action import PullModel
from ollama_bridge_msgs.srv import ListModels

from goal_client import Goal, action_client
from helpers import ask, free_port
from test_ros_cli import root_bridge, ros2  # noqa: F401 (root_bridge is a fixture)

EMULATED = ["llama3.2:latest", "qwen3:0.6b", "smollm2:135m"]
PULL_STEPS = ["pulling manifest"] + ["pulling "] * 4 + ["verifying sha256 digest", "writing manifest", "success"]


@pytest.fixture
def admin(ros):
    """`admin(ep)`: (list_models service client, pull_model action client), destroyed after the test."""
    made = []

    def make(ep):
        lister = ros.node.create_client(ListModels, f"{ep.ns}/list_models")
        made.append((lister, action_client(ros, PullModel, f"{ep.ns}/pull_model")))
        return made[-1]
    yield make
    for lister, puller in made:
        ros.node.destroy_client(lister)
        puller.destroy()


def list_models(ep, lister):
    assert lister.wait_for_service(timeout_sec=20), "list_models is not offered"
    return ep.call(lister, ListModels.Request())


def pull(puller, model: str) -> Goal:
    return Goal(puller, PullModel.Goal(model=model))


def test_list_models_names_the_installed_the_loaded_and_the_current_model(start_bridge, emu, admin):
    _, ep = start_bridge()
    lister, _ = admin(ep)
    answer = list_models(ep, lister)
    assert answer.success, answer.message
    assert (list(answer.models), list(answer.loaded), answer.current_model) == (EMULATED, [], "llama3.2")
    assert "3 model(s)" in answer.message
    ask(ep, "hello")                                  # loads the model
    assert list(list_models(ep, lister).loaded) == ["llama3.2:latest"]
    assert ep.set_model("qwen3:0.6b").success
    assert list_models(ep, lister).current_model == "qwen3:0.6b"


def test_list_models_without_a_server_says_why(start_bridge, admin):
    _, ep = start_bridge(ollama_url=f"http://127.0.0.1:{free_port()}")
    lister, _ = admin(ep)
    answer = list_models(ep, lister)
    assert not answer.success and "cannot connect to the server" in answer.message, answer.message
    assert (list(answer.models), answer.current_model) == ([], "llama3.2")


def progress_is_ollamas(feedback: list) -> None:
    """The feedback is Ollama's progress lines, in order (rclpy may drop the tail of an unpaced burst:
    see test_actions.check_feedback), with the layer's byte counts growing to its total."""
    assert feedback, "at least one progress line"
    statuses = [f.status for f in feedback]
    it = iter(PULL_STEPS)
    assert all(any(s.startswith(step) for step in it) for s in statuses), statuses
    layer = [(f.completed, f.total) for f in feedback if f.status.startswith("pulling ") and f.total]
    assert all(0 < c <= t for c, t in layer) and layer == sorted(layer), layer


def test_pull_model_reports_progress_and_succeeds(start_bridge, emu, admin):
    _, ep = start_bridge()
    _, puller = admin(ep)
    goal = pull(puller, "llama3.2")
    status, result = goal.outcome()
    assert status == GoalStatus.STATUS_SUCCEEDED
    assert (result.success, result.message) == (True, "pulled 'llama3.2'")
    progress_is_ollamas(goal.feedback.snapshot())
    assert [r["body"] for r in emu.requests("/api/pull")] == [{"model": "llama3.2", "stream": True}]


@pytest.mark.parametrize("model,url,message", [
    ("no-such-model", None, "pull model manifest: file does not exist"),
    ("  ", None, "the model name is empty"),
    ("llama3.2", "dead", "cannot connect to the server"),
], ids=["unknown-model", "empty-name", "unreachable"])
def test_a_failed_pull_is_aborted_with_ollamas_reason(start_bridge, emu, admin, model, url, message):
    params = {"ollama_url": f"http://127.0.0.1:{free_port()}"} if url == "dead" else {}
    _, ep = start_bridge(**params)
    _, puller = admin(ep)
    goal = pull(puller, model)
    status, result = goal.outcome()
    assert status == GoalStatus.STATUS_ABORTED
    assert not result.success and message in result.message, result.message
    if model == "no-such-model":
        assert [f.status for f in goal.feedback.snapshot()] in ([], ["pulling manifest"])


class SlowPull:
    """Stands in for an Ollama pulling a big model (the emulator's pull is instant): `/api/pull`
    sends a progress line every 50 ms for a minute and notes when the client hangs up."""

    def __init__(self):
        self.hung_up = threading.Event()
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                self.rfile.read(int(self.headers.get("Content-Length", 0)))
                if self.path != "/api/pull":
                    return self.send_error(404)
                self.send_response(200)
                self.send_header("Content-Type", "application/x-ndjson")
                self.end_headers()             # HTTP/1.0: the body ends when the connection closes
                try:
                    for i in range(1, 1200):
                        line = f'{{"status":"pulling aabbccddeeff","total":120000,"completed":{i * 100}}}\n'
                        self.wfile.write(line.encode())
                        self.wfile.flush()
                        time.sleep(0.05)       # the pace of a download, not a synchronisation
                except (BrokenPipeError, ConnectionResetError):
                    owner.hung_up.set()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


def test_cancel_a_pull_closes_the_connection(start_bridge, admin):
    slow = SlowPull()
    try:
        _, ep = start_bridge(ollama_url=slow.url)
        _, puller = admin(ep)
        goal = pull(puller, "big-model")
        progress = goal.feedback.wait_count(3, 15, "progress lines")
        assert [f.completed for f in progress[:3]] == [100, 200, 300] and progress[0].total == 120000
        answer = goal.cancel()
        assert answer.return_code == CancelGoal.Response.ERROR_NONE and len(answer.goals_canceling) == 1
        status, result = goal.outcome()
        assert status == GoalStatus.STATUS_CANCELED
        assert (result.success, result.message) == (False, "pull of 'big-model' cancelled")
        assert slow.hung_up.wait(10), "the node kept the pull's connection open after the cancel"
    finally:
        slow.close()


def test_shutdown_during_a_pull_aborts_it_and_closes_the_connection(start_bridge, admin):
    slow = SlowPull()
    try:
        node, ep = start_bridge(ollama_url=slow.url)
        _, puller = admin(ep)
        goal = pull(puller, "big-model")
        goal.feedback.wait_count(1, 15, "progress lines")
        assert node.stop() == 0
        status, result = goal.outcome(timeout=10)
        assert status == GoalStatus.STATUS_ABORTED
        assert (result.success, result.message) == (False, "the node is shutting down")
        assert slow.hung_up.wait(10)
    finally:
        slow.close()


@pytest.mark.skipif(shutil.which("ros2") is None, reason="the ros2 CLI is not installed (see scripts/setup)")
def test_ros2_service_call_list_models_and_action_send_goal_pull_model(root_bridge):
    out = ros2("ros2 service call list_models ollama_bridge_msgs/srv/ListModels")
    assert "success=True" in out and "'llama3.2:latest'" in out and "current_model='llama3.2'" in out, out
    out = ros2("ros2 action send_goal --feedback pull_model ollama_bridge_msgs/action/PullModel \"{model: 'llama3.2'}\"")
    assert "Goal finished with status: SUCCEEDED" in out and "success: true" in out, out
