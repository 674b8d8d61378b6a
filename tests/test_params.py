"""The node's parameters behave like an rclcpp node's (issue 12, kind 8 and the parameter side of
kinds 2 and 5), checked with the real `ros2 param` CLI and rclpy against the real binary:
descriptors with ranges and read-only flags, refusals with a reason, integers where seconds are
expected and numbers for keep_alive (at start, in a params file, via `ros2 param set`), every
accepted change on /parameter_events, and a password in `ollama_url` shown nowhere."""
from __future__ import annotations

import shlex
import subprocess
import time
import threading

import pytest
from rcl_interfaces.msg import ParameterEvent
from rclpy.qos import QoSProfile, ReliabilityPolicy

from harness import wait_until
from helpers import ask
from test_ros_cli import ros2, wait_for_node_in_graph

pytestmark = pytest.mark.skipif(__import__("shutil").which("ros2") is None,
                                reason="the ros2 CLI is not installed (see scripts/setup)")


def param_set(node: str, name: str, value: str) -> subprocess.CompletedProcess:
    """`ros2 param set` (it exits 0 also when the node refuses; the outcome is in its output).
    "Node not found" is retried like in `ros2()`: the daemon's graph may lag the node (a busy machine)."""
    deadline = time.monotonic() + 30
    while True:
        done = subprocess.run(shlex.split(f"ros2 param set {node} {name} {value}"), capture_output=True, text=True,
                              timeout=60)
        if "Node not found" not in done.stderr or time.monotonic() > deadline:
            return done


@pytest.fixture
def cli_bridge(start_bridge):
    """Starts a node and waits until the ROS daemon's graph knows it; returns (node, ep, name)."""
    def start(**params):
        node, ep = start_bridge(**params)
        name = f"{ep.ns}/ollama_bridge"
        wait_for_node_in_graph(name)
        return node, ep, name
    yield start
    subprocess.run(["ros2", "daemon", "stop"], capture_output=True)


@pytest.fixture
def param_events(ros):
    """Every ParameterEvent on /parameter_events, received by the test's rclpy node."""
    events, cond = [], threading.Condition()

    def on_event(msg):
        with cond:
            events.append(msg)
            cond.notify_all()
    sub = ros.node.create_subscription(ParameterEvent, "/parameter_events", on_event,
                                       QoSProfile(depth=1000, reliability=ReliabilityPolicy.RELIABLE))
    yield events, cond
    ros.node.destroy_subscription(sub)


def test_parameters_read_at_start_are_read_only_and_set_is_refused_with_a_reason(cli_bridge):
    node, ep, name = cli_bridge(max_concurrent_requests=3)
    for param, value in [("max_concurrent_requests", "8"), ("history_dir", "/tmp/elsewhere"),
                         ("input_reliability", "best_effort")]:
        refused = param_set(name, param, value)
        assert "Setting parameter failed" in refused.stderr and "read-only" in refused.stderr, (param, refused)
    assert "Integer value is: 3" in ros2(f"ros2 param get {name} max_concurrent_requests")
    described = ros2(f"ros2 param describe {name} max_concurrent_requests history_dir")
    assert described.count("Read only: true") == 2, described
    node.assert_healthy()


def test_descriptors_carry_ranges_and_out_of_range_values_are_refused(cli_bridge):
    node, ep, name = cli_bridge()
    described = ros2(f"ros2 param describe {name} max_retries request_timeout_s load_timeout_s model")
    blocks = {b.split("\n", 1)[0]: b for b in described.split("Parameter name: ")[1:]}
    assert "Min value: 0\n" in blocks["max_retries"] and "Max value: 100" in blocks["max_retries"], described
    assert "Min value: 0.001" in blocks["request_timeout_s"] and "Type: double" in blocks["request_timeout_s"]
    assert "first streamed line" in blocks["load_timeout_s"], described
    assert "Description: Model used for new requests" in blocks["model"] and "Read only" not in blocks["model"]
    for param, value in [("max_retries", "101"), ("max_retries", "-1"), ("request_timeout_s", "0"),
                         ("max_sessions", "0"), ("think", "3")]:
        refused = param_set(name, param, value)
        assert "Setting parameter failed" in refused.stderr and param in refused.stderr, (param, value, refused)
    assert ep.get_params("max_retries", "request_timeout_s", "max_sessions") == [2, 60.0, 1000]
    node.assert_healthy()


def test_integers_for_seconds_and_numbers_for_keep_alive_at_start_in_a_file_and_by_set(cli_bridge, emu, tmp_path):
    params_file = tmp_path / "params.yaml"
    params_file.write_text("/**:\n  ros__parameters:\n    connect_timeout_s: 3\n    keep_alive: 300\n"
                           "    session_ttl_s: 600\n    load_timeout_s: 200\n")
    node, ep, name = cli_bridge(request_timeout_s=120, keep_alive=-1)
    ask(ep, "one")
    assert emu.chat_bodies()[-1]["keep_alive"] == -1
    assert ep.get_params("request_timeout_s", "keep_alive") == [120.0, "-1"]
    assert "Set parameter successful" in ros2(f"ros2 param set {name} keep_alive 300")
    assert "Set parameter successful" in ros2(f"ros2 param set {name} request_timeout_s 90")
    assert "Set parameter successful" in ros2(f"ros2 param set {name} session_ttl_s 0")
    ask(ep, "two")
    assert emu.chat_bodies()[-1]["keep_alive"] == 300
    assert "Double value is: 90.0" in ros2(f"ros2 param get {name} request_timeout_s")
    node.assert_healthy()

    node2, ep2, name2 = cli_bridge(extra_args=["--params-file", str(params_file)])
    assert ep2.get_params("connect_timeout_s", "keep_alive", "session_ttl_s", "load_timeout_s") == [3.0, "300", 600.0, 200.0]
    ask(ep2, "three")
    assert emu.chat_bodies()[-1]["keep_alive"] == 300
    node2.assert_healthy()


def test_accepted_changes_are_published_on_parameter_events(ros, start_bridge, param_events):
    events, cond = param_events
    node, ep = start_bridge()
    me = f"{ep.ns}/ollama_bridge"
    wait_until(lambda: any(f"{i.node_namespace}/{i.node_name}" == me
                           for i in ros.node.get_publishers_info_by_topic("/parameter_events")), 20,
               "the node's /parameter_events publisher in the graph")
    [ok] = ep.set_params(system_prompt="Be brief.")
    assert ok.successful
    [refused] = ep.set_params(max_retries=-5)
    assert not refused.successful and "out of range" in refused.reason
    [ok] = ep.set_params(request_timeout_s=30)
    assert ok.successful, ok.reason
    wait_until(lambda: len([e for e in events if e.node == me and e.changed_parameters]) >= 2, 20,
               "two change events", cond)
    changes = [(p.name, p.value) for e in events if e.node == me for p in e.changed_parameters]
    assert [(n, v.string_value or v.double_value) for n, v in changes] == [("system_prompt", "Be brief."),
                                                                          ("request_timeout_s", 30.0)]
    assert changes[1][1].type == 3, "stored as a double although an integer was sent"
    node.assert_healthy()


def test_a_password_in_ollama_url_is_shown_nowhere_and_writing_it_back_keeps_it(cli_bridge, emu, param_events):
    events, cond = param_events
    url = f"http://robot:s3cret-pw@127.0.0.1:{emu.port}"
    shown = f"http://robot:***@127.0.0.1:{emu.port}"
    node, ep, name = cli_bridge(ollama_url=url)
    assert ep.get_params("ollama_url") == [shown]
    assert shown in ros2(f"ros2 param get {name} ollama_url")
    dump = ros2(f"ros2 param dump {name}")
    assert shown in dump and "s3cret" not in dump
    # a tool that reads the parameters and writes them back must not replace the password with ***
    [same] = ep.set_params(ollama_url=shown)
    assert same.successful, same.reason
    [other] = ep.set_params(ollama_url=f"http://robot:***@10.9.9.9:{emu.port}")
    assert not other.successful and "hidden password" in other.reason
    assert ep.get_params("ollama_url") == [shown]
    me = f"{ep.ns}/ollama_bridge"
    wait_until(lambda: any(e.node == me and e.changed_parameters for e in events), 20, "the change event", cond)
    published = [p.value.string_value for e in events if e.node == me for p in e.new_parameters + e.changed_parameters
                 if p.name == "ollama_url"]
    assert published and all(v == shown for v in published), published
    assert "s3cret" not in node.log()
    node.assert_healthy()


def test_the_shipped_params_file_declares_exactly_the_node_parameters_with_their_defaults(cli_bridge):
    import yaml
    from pathlib import Path
    path = Path(__file__).resolve().parents[1] / "config/params.yaml"
    shipped = yaml.safe_load(path.read_text())["/**"]["ros__parameters"]
    node, ep, name = cli_bridge(extra_args=["--params-file", str(path)])
    listed = set(ros2(f"ros2 param list {name}").split())
    assert listed - set(shipped) == {"use_sim_time"} and set(shipped) <= listed, (listed, set(shipped))
    assert "not a parameter of this node" not in node.log()
    shown = dict(zip(shipped, ep.get_params(*shipped)))
    assert shown == shipped
    assert f"default {shipped['max_retries']})" in subprocess.run(
        [str(__import__("harness").NODE_BINARY), "--help"], capture_output=True, text=True).stdout
