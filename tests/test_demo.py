"""`./scripts/demo`, the main job on a fresh machine: a streamed conversation with the real tiny
model over real ROS 2 topics, and nothing left running afterwards, also after Ctrl-C."""
from __future__ import annotations

import importlib.util
import os
import re
import shutil
import signal
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from harness import fresh_namespace, wait_until
from helpers import free_port

REPO = Path(__file__).resolve().parents[1]
needs_model = pytest.mark.skipif(importlib.util.find_spec("xllamacpp") is None,
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


@needs_model
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


@needs_model
@pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng is not installed")
def test_demo_speak_has_the_tts_node_say_the_answer_into_wav_files_without_an_audio_device(tmp_path):
    """`./scripts/demo --speak` on a machine with no audio device (no sound server here): the
    espeak-ng TTS node writes the robot's voice to WAV files and the demo says where."""
    import wave
    mark = f"ob-demo-{uuid.uuid4()}"
    env = dict(demo_env(mark), XDG_RUNTIME_DIR=str(tmp_path))      # no PulseAudio / PipeWire socket there
    env.pop("PULSE_SERVER", None)
    args = [str(REPO / "scripts/demo"), "--speak", "Hello! Who are you?"]
    if list(Path("/dev/snd").glob("pcmC*D*p")):                       # a sound card: ask for files outright
        args[2:2] = ["--wav-dir", str(tmp_path / "voice")]
    done = subprocess.run(args, env=env, capture_output=True, text=True, timeout=300)
    out = done.stdout
    assert done.returncode == 0, out + done.stderr
    where = re.search(r"WAV files in (\S+)", out)
    assert where and "text-to-speech node started (espeak-ng, WAV files in" in out, out
    wav_dir = Path(where.group(1))
    try:
        assert "[spoken by the text-to-speech node: " in out, out
        files = sorted(wav_dir.glob("*.wav"))
        assert files and f"the robot's voice: {len(files)} WAV file(s) in {wav_dir}" in out, out
        for path in files:
            with wave.open(str(path)) as w:
                assert w.getnframes() > 0 and w.getframerate() == 22050, path
    finally:
        shutil.rmtree(wav_dir, ignore_errors=True)
    assert processes_marked(mark) == []


@needs_model
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


def cargo_target_dir() -> Path:
    """The cargo target folder of the node binary under test (a no-op `cargo build` there)."""
    if os.environ.get("OB_NODE_BINARY"):
        return Path(os.environ["OB_NODE_BINARY"]).resolve().parents[1]
    return Path(os.environ.get("CARGO_TARGET_DIR") or REPO / "target")


@pytest.fixture(scope="module")
def colcon_prefix(tmp_path_factory) -> Path:
    """The package built and installed by its CMakeLists.txt alone, the steps `colcon build` runs
    (cmake configure, build, install) into a fresh prefix, with no help from scripts/."""
    root = tmp_path_factory.mktemp("colcon")
    prefix = root / "install"
    env = dict(os.environ, CARGO_TARGET_DIR=str(cargo_target_dir()))
    for step in (["cmake", "-S", REPO, "-B", root / "build", f"-DCMAKE_INSTALL_PREFIX={prefix}",
                  f"-DPython3_EXECUTABLE={sys.executable}", f"-DOLLAMA_BRIDGE_PYTHON={sys.executable}"],
                 ["cmake", "--build", root / "build"], ["cmake", "--install", root / "build"]):
        done = subprocess.run(list(map(str, step)), env=env, capture_output=True, text=True, timeout=1800)
        assert done.returncode == 0, f"{step}:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return prefix


def launch_env(prefix: Path) -> dict:
    """The environment of a shell that sourced `prefix` (first on the ament path) and nothing of
    this checkout: the repository is not on PYTHONPATH."""
    env = dict(os.environ)
    env["AMENT_PREFIX_PATH"] = f"{prefix}:{env['AMENT_PREFIX_PATH']}"
    env["PYTHONPATH"] = ":".join(p for p in env.get("PYTHONPATH", "").split(":")
                                 if p and Path(p).resolve() != REPO)
    return env


def test_colcon_install_holds_what_the_launch_files_start(colcon_prefix):
    lib, share = colcon_prefix / "lib/ollama_bridge", colcon_prefix / "share/ollama_bridge"
    assert os.access(lib / "ollama_bridge", os.X_OK) and os.access(lib / "ollama_server", os.X_OK)
    assert os.access(lib / "espeak_tts_node", os.X_OK) and (lib / "python/espeak_tts_node.py").is_file()
    assert (lib / "python/ollama_server/__main__.py").is_file()
    assert {p.name for p in (share / "launch").iterdir()} == {p.name for p in (REPO / "launch").iterdir()}
    assert (share / "config/params.yaml").is_file() and (share / "package.xml").is_file()
    assert (colcon_prefix / "share/ament_index/resource_index/packages/ollama_bridge").is_file()
    # the installed server runs from anywhere, without this checkout on PYTHONPATH
    done = subprocess.run([lib / "ollama_server", "--help"], env=launch_env(colcon_prefix), cwd="/",
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and "--backend" in done.stdout, done.stderr


@needs_model
@pytest.mark.skipif(shutil.which("ros2") is None, reason="the ros2 CLI is not installed (see scripts/setup)")
def test_demo_launch_file_serves_the_tiny_model_to_the_bridge(ros, logs_dir, colcon_prefix):
    """`ros2 launch ollama_bridge demo.launch.xml` from the colcon-built package: the model server
    and the bridge, then SIGINT."""
    port, ns = free_port(), fresh_namespace("demo")
    env = launch_env(colcon_prefix)
    prefix = subprocess.run(["ros2", "pkg", "prefix", "ollama_bridge"], env=env, capture_output=True, text=True)
    assert prefix.stdout.strip() == str(colcon_prefix), prefix
    log_path = logs_dir / "demo_launch.log"
    with open(log_path, "w") as log:
        launch = subprocess.Popen(["ros2", "launch", "ollama_bridge", "demo.launch.xml", f"port:={port}",
                                   f"namespace:={ns[1:]}"], env=env, cwd="/",
                                  stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    ep = ros.endpoints(ns)
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


LONG_REPLY = ("Here is my answer to {last_user}: one two three four five six seven eight nine ten eleven "
              "twelve thirteen fourteen fifteen sixteen seventeen eighteen nineteen twenty, turn {turns}.")


def test_demo_client_prints_every_answer_whole_against_a_fast_server(start_bridge, emu):
    """30 requests to an unpaced server: DDS delivers some partials after their final (another
    topic); the client waits for `chunk_count` pieces, so each `robot>` line is exactly the final
    text, with nothing trailing into the next turn."""
    emu.set_models({"fast": {"reply": LONG_REPLY}})
    _, ep = start_bridge(model="fast", max_history_turns=100)
    prompts = [f"question {n}" for n in range(30)]
    done = subprocess.run([sys.executable, str(REPO / "scripts/demo_client.py"), "--namespace", ep.ns,
                           "--timeout", "30", *prompts], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    finals = ep.wait_finals(30)
    assert [f.prompt for f in finals] == prompts and all(f.done_reason == "stop" for f in finals)
    assert all(f.chunk_count >= 1 for f in finals), [f.chunk_count for f in finals]
    turns = re.findall(r"you> (.*)\nrobot> (.*)\n\[first chunk [^\n]*\]\n", done.stdout)
    assert [t[0] for t in turns] == prompts, done.stdout[-3000:]
    assert [t[1] for t in turns] == [f.text for f in finals]
    # the emulator counts the user turns it was sent: every earlier one (max_history_turns 100) + the new one
    assert [t[1] for t in turns] == [LONG_REPLY.format(last_user=p, turns=n + 1) for n, p in enumerate(prompts)]
