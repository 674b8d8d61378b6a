"""The node as a citizen of a ROS graph and a shell (issue 12, kinds 8 and 9), on the real binary:
`--help` without starting ROS, a one-line error and exit code 2 for every malformed argument or
parameter value (never a panic), the log on /rosout with failed requests at WARN, and input
publishers with sensor-data QoS: heard with `input_reliability: best_effort`, named in a warning
otherwise (also through a remap)."""
from __future__ import annotations

import os
import subprocess

import pytest
from rcl_interfaces.msg import Log
from rclpy.qos import QoSProfile, DurabilityPolicy, ReliabilityPolicy, qos_profile_sensor_data
from std_msgs.msg import String

from harness import NODE_BINARY, Recorder, fresh_namespace, wait_until
from helpers import ask, final_for


def run_binary(*args: str, env: dict | None = None, timeout: float = 20) -> subprocess.CompletedProcess:
    return subprocess.run([str(NODE_BINARY), *args], capture_output=True, text=True, timeout=timeout,
                          env=dict(os.environ, **(env or {})))


def test_help_prints_usage_and_every_parameter_without_starting_ros():
    # with an invalid ROS_DOMAIN_ID, starting ROS fails: --help must not get that far
    for flag in ("--help", "-h"):
        done = run_binary(flag, env={"ROS_DOMAIN_ID": "not-a-number"})
        assert done.returncode == 0, done
        out = done.stdout
        assert out.startswith("ollama_bridge: a ROS 2 node") and "Usage: ollama_bridge" in out
        for line in ("max_retries (integer, 0 to 100; default 2)",
                     "max_concurrent_requests (integer, 1 to 1024, read-only; default 4)",
                     "load_timeout_s (double, 0.001 to 1000000000; default 300.0)",
                     "request_timeout_s (double, 0.001 to 1000000000; default 60.0)",
                     'input_reliability (string, one of: reliable, best_effort, read-only; default "reliable")',
                     'model (string; default "llama3.2")'):
            assert line in out, (line, out)


BAD_ARGUMENTS = [
    (["--ros-args", "-p", "max_retries"], "Couldn't parse parameter override rule"),
    (["--ros-args", "-p", "max_retries:=[1,"], "Couldn't parse parameter override rule"),
    (["--ros-args", "--params-file", "/nonexistent/params.yaml"], "/nonexistent/params.yaml"),
    (["--ros-args", "--params-file", "BAD_YAML"], "Couldn't parse params file"),
    (["--ros-args", "-p", "max_retries:=abc"], "invalid parameter 'max_retries': expected an integer"),
    (["--ros-args", "-p", "max_retries:=-1"], "invalid parameter 'max_retries': -1 is out of range"),
    (["--ros-args", "-p", "request_timeout_s:=0"], "invalid parameter 'request_timeout_s'"),
    (["--ros-args", "-p", "think:=3"], "invalid parameter 'think': expected true or false"),
    (["--ros-args", "-p", "input_reliability:=sometimes"], "not one of: reliable, best_effort"),
    (["--ros-args", "-p", "options_json:=[1]"], "invalid parameter 'options_json'"),
    (["--ros-args", "--log-level", "chatty"], "Couldn't parse log level"),
    (["--ros-args", "-r", "speech_text"], "Couldn't parse remap rule"),
    (["--ros-args", "-r", "__node:=1bad"], "Couldn't parse remap rule"),
    (["--ros-args", "--no-such-flag"], "unknown ROS argument(s): --no-such-flag"),
    (["--model", "x"], "unknown argument '--model'"),
]


@pytest.mark.parametrize("args,reason", BAD_ARGUMENTS, ids=[" ".join(a) for a, _ in BAD_ARGUMENTS])
def test_a_malformed_argument_or_value_gives_one_line_and_exit_code_2(args, reason, tmp_path):
    bad_yaml = tmp_path / "bad.yaml"
    bad_yaml.write_text("/**:\n  ros__parameters:\n    max_retries: [1,\n")
    args = [str(bad_yaml) if a == "BAD_YAML" else a for a in args]
    done = run_binary(*args)
    lines = [line for line in (done.stdout + done.stderr).splitlines() if line.strip()]
    assert done.returncode == 2, (done.returncode, lines)
    assert len(lines) == 1, lines
    assert reason in lines[0] and "panicked" not in lines[0], lines


def rosout_recorder(ros):
    """Every /rosout record, as rqt_console subscribes (reliable, transient local: earlier
    records of a running node arrive too)."""
    rec = Recorder()
    qos = QoSProfile(depth=1000, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.TRANSIENT_LOCAL)
    return rec, ros.node.create_subscription(Log, "/rosout", rec, qos)


def test_logs_reach_rosout_and_a_failed_request_is_logged_as_a_warning(ros, start_bridge, emu):
    rec, sub = rosout_recorder(ros)
    try:
        quiet, quiet_ep = start_bridge(extra_args=["--disable-rosout-logs"])
        node, ep = start_bridge(model="not-pulled", max_retries=0)
        logger = f"{ep.ns[1:].replace('/', '.')}.ollama_bridge"
        mine = lambda: [m for m in rec.snapshot() if m.name == logger]  # noqa: E731
        wait_until(lambda: any("ready: model 'not-pulled'" in m.msg for m in mine()), 20, "the ready line on /rosout",
                   rec.cond)
        ready = next(m for m in mine() if "ready:" in m.msg)
        assert ready.level == Log.INFO and ready.stamp.sec > 0 and ready.file.endswith(".rs")
        failed = ask(ep, "hello?")
        assert failed.done_reason == "error"
        wait_until(lambda: any(f"request {failed.request_id} " in m.msg and "error" in m.msg for m in mine()), 20,
                   "the failed request's log line", rec.cond)
        line = next(m for m in mine() if f"request {failed.request_id} " in m.msg and "error" in m.msg)
        assert line.level >= Log.WARN, (line.level, line.msg)
        node.assert_healthy()
        # --disable-rosout-logs is honoured: that node's ready line (logged before the other
        # node even started) never came, though it is in its console log
        assert "ready:" in quiet.log()
        quiet_logger = f"{quiet_ep.ns[1:].replace('/', '.')}.ollama_bridge"
        assert not [m for m in rec.snapshot() if m.name == quiet_logger]
    finally:
        ros.node.destroy_subscription(sub)


def sensor_data_publisher(ros, topic: str):
    return ros.node.create_publisher(String, topic, qos_profile_sensor_data)


def test_a_best_effort_publisher_is_heard_with_input_reliability_best_effort(ros, start_bridge):
    node, ep = start_bridge(input_reliability="best_effort")
    asr = sensor_data_publisher(ros, f"{ep.ns}/speech_text")
    try:
        wait_until(lambda: asr.get_subscription_count() >= 1, 20, "the node to match a best-effort publisher")
        # Best effort has no handshake: matching seen from our side may precede the node's, and a
        # sample sent in between is gone. Like a speech recogniser, keep talking until heard.
        def heard():
            asr.publish(String(data="heard over best effort"))
            return next((f for f in ep.finals.snapshot() if f.prompt == "heard over best effort"), None)
        final = wait_until(heard, 20, "an answer to a best-effort input", ep.finals.cond)
        assert final.done_reason == "stop"
        # reliable publishers (the test's own) are still heard
        ep.say("and over reliable")
        assert final_for(ep, "and over reliable").done_reason == "stop"
        assert "offers best-effort" not in node.log()
    finally:
        ros.node.destroy_publisher(asr)


def test_a_best_effort_publisher_on_a_reliable_input_is_named_in_a_warning(ros, start_bridge):
    node, ep = start_bridge()
    asr = sensor_data_publisher(ros, f"{ep.ns}/speech_text")
    try:
        me = f"/{ros.node.get_name()}"
        wait_until(lambda: "offers best-effort" in node.log(), 20, "the QoS warning")
        warning = next(line for line in node.log().splitlines() if "offers best-effort" in line)
        assert "[WARN]" in warning and f"{ep.ns}/speech_text" in warning and me in warning, warning
        assert "input_reliability:=best_effort" in warning
        assert asr.get_subscription_count() == 0, "DDS does not match them: that is what the warning explains"
    finally:
        ros.node.destroy_publisher(asr)


def test_the_warning_follows_remapped_input_topics(ros, start_bridge):
    topic = f"{fresh_namespace('asr')}/text"
    node, _ = start_bridge(expect_ready=False, extra_args=["-r", f"speech_text:={topic}"])
    asr = sensor_data_publisher(ros, topic)
    try:
        wait_until(lambda: "offers best-effort" in node.log(), 20, f"the QoS warning about {topic}")
        warning = next(line for line in node.log().splitlines() if "offers best-effort" in line)
        assert f"input 'speech_text' ({topic})" in warning, warning
        node.assert_healthy()
    finally:
        ros.node.destroy_publisher(asr)
