"""Bags and runs of scripts/eval for its tests: rosbag2 folders written with rosbags (either storage,
any metadata version, compressed), the tool run as a subprocess, and output bags read back."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import yaml
from rosbags.rosbag2 import Reader, StoragePlugin, Writer
from rosbags.rosbag2.enums import CompressionFormat, CompressionMode

from ollama_bridge_eval.msgtypes import STRING, UTTERANCE, typestore
from ollama_bridge_eval.recorder import OFFERED_QOS

REPO = Path(__file__).resolve().parents[1]
STORE = typestore()
T0 = 1_700_000_000_000_000_000
LOG = "rcl_interfaces/msg/Log"


def reply(text, turn):
    """The emulator's default scripted answer."""
    return f'You said: "{text}". This is turn {turn}.'


def speech(text):
    return STORE.types[STRING](data=text)


def utterance(session, text):
    return STORE.types[UTTERANCE](session_id=session, text=text, attach_image=False)


def log_line(text):
    time = STORE.types["builtin_interfaces/msg/Time"](sec=1, nanosec=0)
    return STORE.types[LOG](stamp=time, level=20, name="asr", msg=text, file="", function="", line=0)


def write_bag(path: Path, items, storage="sqlite3", version=9, compression=None) -> Path:
    """Writes (topic, type, seconds, message) items as a rosbag2 folder, each topic with the QoS
    `ros2 bag record` saves; versions below 8 are made by stripping what later versions added from
    metadata.yaml (as older `ros2 bag record` wrote it). `compression`: "file" or "message" (zstd)."""
    plugin = StoragePlugin.MCAP if storage == "mcap" else StoragePlugin.SQLITE3
    writer = Writer(path, version=9 if version == 9 else 8, storage_plugin=plugin)
    if compression:
        writer.set_compression(CompressionMode[compression.upper()], CompressionFormat.ZSTD)
    with writer:
        connections = {}
        for topic, msgtype, seconds, msg in items:
            if topic not in connections:
                connections[topic] = writer.add_connection(topic, msgtype, typestore=STORE,
                                                           offered_qos_profiles=[OFFERED_QOS])
            writer.write(connections[topic], T0 + int(seconds * 1e9), STORE.serialize_cdr(msg, msgtype))
    if version < 8:
        meta_path = path / "metadata.yaml"
        meta = yaml.safe_load(meta_path.read_text())
        info = meta["rosbag2_bagfile_information"]
        info["version"] = version
        info.pop("ros_distro", None)
        if version < 7:
            for topic in info["topics_with_message_count"]:
                topic["topic_metadata"].pop("type_description_hash", None)
        if version < 6:
            info.pop("custom_data", None)
        if version < 5:
            info.pop("files", None)
        meta_path.write_text(yaml.safe_dump(meta))
    return path


def speech_bag(path, prompts, storage="sqlite3", version=9, spacing=0.5, compression=None):
    """/asr/text with `prompts`, interleaved with /rosout and an unrelated String topic."""
    items = []
    for n, text in enumerate(prompts):
        items += [("/rosout", LOG, n * spacing, log_line(f"heard {n}")),
                  ("/asr/text", STRING, n * spacing + 0.01, speech(text)),
                  ("/chatter", STRING, n * spacing + 0.02, speech(f"not for the bridge {n}"))]
    return write_bag(path, items, storage, version, compression)


def run_eval(*args, timeout=120):
    """`python -m ollama_bridge_eval ARGS` as the user would run it (the test's ROS domain)."""
    return subprocess.run([sys.executable, "-m", "ollama_bridge_eval", *map(str, args)], cwd=REPO,
                          capture_output=True, text=True, timeout=timeout, env=dict(os.environ))


def replay(bag, ns, out, *extra, expect_code=0):
    result = run_eval(bag, "--topic", "/asr/text", "--namespace", ns, "--out", out, "--timeout", 20, *extra)
    assert result.returncode == expect_code, f"exit {result.returncode}\n{result.stdout}\n{result.stderr}"
    return json.loads((out / "report.json").read_text()), result


def read_bag(path):
    """{topic: [(timestamp, message)]} and the connections of an output bag."""
    out = {}
    with Reader(path) as reader:
        for conn, stamp, data in reader.messages():
            out.setdefault(conn.topic, []).append((stamp, STORE.deserialize_cdr(data, conn.msgtype)))
        return out, list(reader.connections)
