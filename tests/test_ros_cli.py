"""The bridge with the real ROS 2 Jazzy command line and launch framework, exactly as a ROS
developer uses them. README's usage section is copied from the commands in this file."""
from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest
import yaml
from std_msgs.msg import String

from harness import fresh_namespace, wait_until

REPO = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.skipif(shutil.which("ros2") is None, reason="the ros2 CLI is not installed (see scripts/setup)")


def ros2(command: str, timeout: float = 60) -> str:
    """Runs one `ros2 ...` command line; returns its output, failing the test on a non-zero exit.
    "Node not found" is retried: the ROS daemon's graph lags a fresh node by up to a few seconds."""
    deadline = time.monotonic() + timeout
    while True:
        done = subprocess.run(shlex.split(command), capture_output=True, text=True, timeout=timeout)
        if "Node not found" not in done.stderr or time.monotonic() > deadline:
            break
    assert done.returncode == 0, f"{command!r} exited {done.returncode}:\n{done.stdout}\n{done.stderr}"
    return done.stdout


def wait_for_node_in_graph(name: str = "/ollama_bridge"):
    """`ros2 param` asks the ROS daemon, whose graph lags a new node by up to ~3 s."""
    wait_until(lambda: name in subprocess.run(["ros2", "node", "list"], capture_output=True, text=True).stdout,
               30, f"{name} in `ros2 node list`")


@pytest.fixture
def root_bridge(start_bridge):
    """The node in the root namespace, as a user would start it with `ros2 run`."""
    node, ep = start_bridge(namespace="")
    yield node, ep
    subprocess.run(["ros2", "daemon", "stop"], capture_output=True)


def start_echo(ros, command: str, topic: str) -> subprocess.Popen:
    """A `ros2 topic echo --once` command in the background, returned once it subscribed `topic`."""
    before = ros.node.count_subscribers(topic)
    proc = subprocess.Popen(shlex.split(command), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    wait_until(lambda: ros.node.count_subscribers(topic) > before, 30, f"`{command}` to subscribe")
    return proc


def echo_answer(ros, echo_command: str, topic: str, publish_command: str, attempts: int = 5) -> str:
    """Runs `ros2 topic echo --once` on `topic`, then `publish_command` until the echo printed a
    message; returns what it printed. The echo's reader is matched as seen from the test; the
    node's writer may learn of it a moment later (a busy machine), and a message published before
    that is not delivered (volatile QoS), so the input is published again until the echo has one."""
    echo = start_echo(ros, echo_command, topic)
    for _ in range(attempts):
        ros2(publish_command)
        try:
            out, _ = echo.communicate(timeout=15)
            assert echo.returncode == 0, out
            return out
        except subprocess.TimeoutExpired:
            continue
    echo.kill()
    raise AssertionError(f"`{echo_command}` never printed a message")


def test_topic_pub_speech_text_and_echo_response_text(ros, root_bridge):
    out = echo_answer(ros, "ros2 topic echo --once response_text std_msgs/msg/String", "/response_text",
                      "ros2 topic pub --once speech_text std_msgs/msg/String \"{data: 'Hello robot, who are you?'}\"")
    assert re.search(r'data: \'You said: "Hello robot, who are you\?". This is turn \d+.\'', out), out


def test_service_call_set_model_and_reset(root_bridge):
    out = ros2("ros2 service call set_model ollama_bridge_msgs/srv/SetModel \"{model: 'qwen3:0.6b'}\"")
    assert "success=True" in out and "previous_model='llama3.2'" in out
    out = ros2("ros2 service call set_model ollama_bridge_msgs/srv/SetModel \"{model: 'no-such-model'}\"")
    assert "success=False" in out and "not found" in out
    out = ros2("ros2 service call reset ollama_bridge_msgs/srv/Reset \"{session_id: ''}\"")
    assert "success=True" in out
    out = ros2("ros2 service call cancel ollama_bridge_msgs/srv/Cancel \"{session_id: ''}\"")
    assert "success=True" in out and "history kept" in out


def test_param_set_and_get(root_bridge, emu):
    _, ep = root_bridge
    wait_for_node_in_graph()
    assert "Set parameter successful" in ros2("ros2 param set /ollama_bridge system_prompt 'You are a pirate robot.'")
    assert "You are a pirate robot." in ros2("ros2 param get /ollama_bridge system_prompt")
    assert "Set parameter successful" in ros2("ros2 param set /ollama_bridge model qwen3:0.6b")
    assert "qwen3:0.6b" in ros2("ros2 param get /ollama_bridge model")
    # the CLI reads values as YAML: quote a JSON object once more so it stays a string
    assert "Set parameter successful" in ros2(r'''ros2 param set /ollama_bridge options_json "'{\"temperature\": 0, \"seed\": 42}'"''')
    refused = subprocess.run(shlex.split("ros2 param set /ollama_bridge options_json 'not json'"), capture_output=True, text=True)
    assert "Setting parameter failed" in refused.stderr and "not valid JSON" in refused.stderr
    ep.say("ahoy")
    ep.wait_finals(1)
    body = emu.chat_bodies()[-1]
    assert body["model"] == "qwen3:0.6b" and body["messages"][0]["content"] == "You are a pirate robot."
    assert body["options"] == {"temperature": 0, "seed": 42}


def test_interface_show():
    out = ros2("ros2 interface show ollama_bridge_msgs/msg/Response")
    for field in ("string session_id", "uint64 request_id", "string done_reason", "float64 time_to_first_chunk_s"):
        assert field in out


class Launch:
    """`ros2 launch ollama_bridge LAUNCH_FILE ARGS` in its own process group, logging to a file;
    `stop()` sends SIGINT (Ctrl-C) and checks that every process finished cleanly."""

    def __init__(self, logs_dir, args: str, launch_file: str = "ollama_bridge.launch.xml", env=None):
        self.log_path = logs_dir / f"launch_{time.monotonic_ns()}.log"
        with open(self.log_path, "w") as log:
            self.proc = subprocess.Popen(shlex.split(f"ros2 launch ollama_bridge {launch_file} {args}"),
                                         stdout=log, stderr=subprocess.STDOUT, start_new_session=True, env=env)

    def stop(self, processes: int = 1) -> str:
        self.proc.send_signal(signal.SIGINT)
        code = self.proc.wait(30)
        text = self.log_path.read_text()
        assert code == 0, text
        assert text.count("process has finished cleanly") == processes, text
        assert "panicked" not in text
        return text


def test_launch_with_namespace_and_remap_then_sigint_stops_everything(ros, emu, logs_dir):
    launch = Launch(logs_dir, f"namespace:=robot1 speech_topic:=/asr/text ollama_url:={emu.url} model:=llama3.2")
    ep = ros.endpoints("/robot1")
    asr = ros.node.create_publisher(type(ep.speech_pub.msg_type()), "/asr/text", 10)
    try:
        wait_until(lambda: asr.get_subscription_count() >= 1 and all(s.get_publisher_count() >= 1 for s in ep.subs),
                   30, "the launched node on /asr/text and /robot1/response_*")
        asr.publish(ep.speech_pub.msg_type(data="hello from the ASR"))
        final = ep.wait_finals(1)[0]
        assert final.prompt == "hello from the ASR" and final.done_reason == "stop"
        assert ep.texts.wait_count(1, 10, "response_text")[0].data == final.text
    finally:
        ros.node.destroy_publisher(asr)
        ep.destroy()
        launch.stop()


@pytest.mark.parametrize("given", ["none", "model", "ollama_url", "both"])
def test_launch_arguments_override_the_params_file_only_when_given(ros, emu, logs_dir, tmp_path, given):
    """params_file's model and ollama_url hold unless `model:=` / `ollama_url:=` are given."""
    host, port = emu.url.rsplit(":", 1)
    file_url, arg_url = emu.url, f"http://localhost:{port}"      # the same emulator, named two ways
    params = tmp_path / "robot.yaml"
    params.write_text(yaml.safe_dump({"/**": {"ros__parameters": {
        "model": "qwen3:0.6b", "ollama_url": file_url, "system_prompt": "From the file."}}}))
    args = {"model": "model:=smollm2:135m", "ollama_url": f"ollama_url:={arg_url}"}
    chosen = [a for k, a in args.items() if given in (k, "both")]
    ns = fresh_namespace("launch")
    launch = Launch(logs_dir, f"namespace:={ns[1:]} params_file:={params} " + " ".join(chosen))
    ep = ros.endpoints(ns)
    try:
        ep.wait_ready(30)
        expected_model = "smollm2:135m" if given in ("model", "both") else "qwen3:0.6b"
        expected_url = arg_url if given in ("ollama_url", "both") else file_url
        assert ep.get_params("model", "ollama_url", "system_prompt") == [expected_model, expected_url,
                                                                          "From the file."]
        ep.say("which model?")
        final = ep.wait_finals(1)[0]
        assert (final.done_reason, final.model) == ("stop", expected_model), final.error
    finally:
        ep.destroy()
        launch.stop()


def test_readme_launch_line_then_record_and_replay_with_scripts_eval(ros, emu, logs_dir, tmp_path):
    """README: the launch line (speech_topic:=/asr/text), then `scripts/eval --record` and the
    replay line, which finds the remapped bridge and plays into sessions of its own."""
    ns = fresh_namespace("robot")
    launch = Launch(logs_dir, f"namespace:={ns[1:]} speech_topic:=/asr/text ollama_url:={emu.url} model:=llama3.2")
    asr = ros.node.create_publisher(String, "/asr/text", 10)
    talk = tmp_path / "talk1"
    try:
        record = subprocess.Popen([str(REPO / "scripts/eval"), "--record", str(talk), "--topic", "/asr/text",
                                   "--count", "2"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        wait_until(lambda: asr.get_subscription_count() >= 2, 30, "the bridge and the recorder on /asr/text")
        for text in ("my name is Ada", "what is my name?"):
            asr.publish(String(data=text))
        _, err = record.communicate(timeout=60)
        assert record.returncode == 0, err
        # the robot heard them live, in its session 'default' (besides warm_up's load, no messages)
        emu.wait_for(lambda e: len([r for r in e.requests() if r["body"]["messages"] and r["outcome"]]) >= 2)
        replay = subprocess.run([str(REPO / "scripts/eval"), str(talk), "--topic", "/asr/text", "--namespace", ns,
                                 "--seed", "42", "--out", str(tmp_path / "out")],
                                capture_output=True, text=True, timeout=120)
        assert replay.returncode == 0, replay.stderr
    finally:
        ros.node.destroy_publisher(asr)
        launch.stop()
    report = json.loads((tmp_path / "out/report.json").read_text())
    assert report["bridge"]["input_topic"] == f"{ns}/utterance"
    assert [(r["bridge_session"], r["answer"]) for r in report["utterances"]] == [
        ("eval/default", 'You said: "my name is Ada". This is turn 1.'),
        ("eval/default", 'You said: "what is my name?". This is turn 2.')]
    answered = [b for b in emu.chat_bodies() if b["messages"]]
    assert [b.get("options") for b in answered[2:]] == [{"seed": 42, "temperature": 0}] * 2


def answer_once_then_stop(ros, proc: subprocess.Popen, namespace: str, stop) -> str:
    """Waits for the node `proc` started under `namespace`, gets one answer from it, then calls
    `stop(proc)`; returns the node's output once it exited."""
    ep = ros.endpoints(namespace)
    try:
        ep.wait_ready()
        ep.say("ping")
        assert ep.wait_finals(1)[0].done_reason == "stop"
    finally:
        stop(proc)
        out, _ = proc.communicate(timeout=15)
        ep.destroy()
    assert proc.returncode == 0, out
    return out


def test_ros2_run_starts_the_installed_node(ros, emu):
    proc = subprocess.Popen(shlex.split(f"ros2 run ollama_bridge ollama_bridge --ros-args -r __ns:=/runner "
                                        f"-p ollama_url:={emu.url}"),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
    # like Ctrl-C in a terminal: the whole process group (`ros2 run` does not forward signals)
    out = answer_once_then_stop(ros, proc, "/runner", lambda p: os.killpg(p.pid, signal.SIGINT))
    assert "stopped cleanly" in out


def test_the_installed_binary_runs_with_an_empty_environment(ros, emu):
    """The installed node carries its library paths (RPATH): no sourced setup file is needed."""
    from harness import NODE_BINARY
    env = {k: os.environ[k] for k in ("HOME", "ROS_DOMAIN_ID", "ROS_AUTOMATIC_DISCOVERY_RANGE", "ROS_HOME")}
    proc = subprocess.Popen([str(NODE_BINARY), "--ros-args", "-r", "__ns:=/bare", "-p", f"ollama_url:={emu.url}"],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    answer_once_then_stop(ros, proc, "/bare", lambda p: p.send_signal(signal.SIGINT))


@pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng is not installed")
def test_speaking_robot_launch_file_runs_the_bridge_and_the_tts_node(ros, emu, logs_dir, tmp_path):
    """README's robot-loop launch line: the bridge (barge_in on) and the espeak-ng TTS node writing
    WAV files, in one namespace; an utterance comes back spoken, then SIGINT stops both."""
    from harness import Recorder, DEEP
    from ollama_bridge_msgs.msg import Spoken
    ns, wav_dir = fresh_namespace("robot"), tmp_path / "tts"
    emu.set_models({"llama3.2": {"reply": "Hello there. I am your robot."}})
    spoken = Recorder()
    sub = ros.node.create_subscription(Spoken, f"{ns}/spoken", spoken, DEEP)
    launch = Launch(logs_dir, f"namespace:={ns[1:]} ollama_url:={emu.url} model:=llama3.2 tts_wav_dir:={wav_dir} "
                    "tts_voice:=en-gb", launch_file="speaking_robot.launch.xml")
    ep = ros.endpoints(ns)
    try:
        ep.wait_ready(30)
        wait_until(lambda: sub.get_publisher_count() >= 1
                   and ros.node.count_subscribers(f"{ns}/response_sentence") >= 1, 30, "the TTS node")
        assert ep.get_params("barge_in", "warm_up") == [True, True]
        for k in range(10):   # until the TTS node hears the bridge (its first sentence may precede the match)
            ep.say(f"hello {k}")
            final = ep.wait_finals(k + 1)[-1]
            try:
                wait_until(lambda: any(s.request_id == final.request_id and s.text == final.text
                                       for s in spoken.snapshot()), 5, "the answer spoken", spoken.cond)
                break
            except AssertionError:
                continue
        assert final.done_reason == "stop"
        assert sorted(p.name for p in wav_dir.glob(f"{final.request_id}_*.wav")) == [
            f"{final.request_id}_0.wav", f"{final.request_id}_1.wav"]
    finally:
        ros.node.destroy_subscription(sub)
        ep.destroy()
        text = launch.stop(processes=2)
    assert "voice en-gb" in text and f"writing WAV files to {wav_dir}" in text
