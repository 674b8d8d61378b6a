"""`./scripts/demo`, the main job on a fresh machine: a streamed conversation with the real tiny
model over real ROS 2 topics, and nothing left running afterwards, also after Ctrl-C."""
from __future__ import annotations

import importlib.util
import os
import re
import shutil
import signal
import subprocess
import uuid
from pathlib import Path

import pytest

from harness import wait_until
from helpers import free_port

REPO = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.skipif(importlib.util.find_spec("xllamacpp") is None,
                                reason="the tiny model is not installed (scripts/setup without --no-model)")
SUMMARY = re.compile(r"\[first chunk \d+ ms · \d+ tokens/s · \d+ tokens in [\d.]+ s · smollm2:135m · (stop|length)\]")


def processes_marked(mark: str) -> list[int]:
    """PIDs whose environment carries `mark` (everything the demo started inherits it)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if mark.encode() in (entry / "environ").read_bytes():
                    found.append(int(entry.name))
            except OSError:
                pass
    return found


def demo_env(mark: str) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("ROS_DOMAIN_ID", "OLLAMA_HOST")}
    # no Ollama on this port: the demo must fall back to the embedded tiny model
    return dict(env, OB_TEST_MARK=mark, OLLAMA_HOST="127.0.0.1:9")


def test_demo_holds_a_two_turn_conversation_and_cleans_up():
    mark = f"ob-demo-{uuid.uuid4()}"
    done = subprocess.run([str(REPO / "scripts/demo"), "Hello! My name is Ada.", "What is my name?"],
                          env=demo_env(mark), capture_output=True, text=True, timeout=300)
    out = done.stdout
    assert done.returncode == 0, out + done.stderr
    assert "starting the embedded server with SmolLM2-135M" in out
    assert "you> Hello! My name is Ada." in out and "you> What is my name?" in out
    answers = re.findall(r"robot> (.+)", out)
    assert len(answers) == 2 and all(a.strip() for a in answers)
    assert len(SUMMARY.findall(out)) == 2, out
    assert processes_marked(mark) == []


def test_ctrl_c_stops_the_demo_and_everything_it_started():
    mark = f"ob-demo-{uuid.uuid4()}"
    demo = subprocess.Popen([str(REPO / "scripts/demo"), "--interactive"], env=demo_env(mark), text=True,
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            start_new_session=True)
    lines = []
    for line in demo.stdout:              # wait for the prompt: server, node and client all running
        lines.append(line)
        if "Type what the robot hears" in line:
            break
    assert any("bridge node started" in l for l in lines), "".join(lines)
    assert len(processes_marked(mark)) >= 3
    os.killpg(demo.pid, signal.SIGINT)     # Ctrl-C in a terminal signals the whole process group
    demo.communicate(timeout=30)
    wait_until(lambda: processes_marked(mark) == [], 15, "every process of the demo to exit")


@pytest.mark.skipif(shutil.which("ros2") is None, reason="the ros2 CLI is not installed (see scripts/setup)")
def test_demo_launch_file_serves_the_tiny_model_to_the_bridge(ros, logs_dir):
    """`ros2 launch ollama_bridge demo.launch.xml`: the model server and the bridge, then SIGINT."""
    port = free_port()
    log_path = logs_dir / "demo_launch.log"
    with open(log_path, "w") as log:
        launch = subprocess.Popen(["ros2", "launch", "ollama_bridge", "demo.launch.xml", f"port:={port}"],
                                  stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    ep = ros.endpoints("/demo")
    try:
        ep.wait_ready(60)
        ep.say("Hello! Who are you?")
        final = ep.wait_finals(1, timeout=120)[0]
        assert final.done_reason in ("stop", "length") and final.text.strip() and final.model == "smollm2:135m"
    finally:
        launch.send_signal(signal.SIGINT)
        code = launch.wait(30)
        ep.destroy()
    text = log_path.read_text()
    assert code == 0, text
    assert text.count("process has finished cleanly") == 2, text
