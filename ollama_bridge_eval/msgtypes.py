"""Message types of the bridge, for rosbags: a Jazzy typestore with ``ollama_bridge_msgs`` added
from its ``.msg`` files, so Utterance bags can be read and the output bag carries full message
definitions (and the same RIHS01 type hashes as the ROS build)."""
from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path

from rosbags.typesys import Stores, get_types_from_msg, get_typestore
from rosbags.typesys.store import Typestore

from . import EvalError

STRING = "std_msgs/msg/String"
UTTERANCE = "ollama_bridge_msgs/msg/Utterance"
RESPONSE = "ollama_bridge_msgs/msg/Response"
RESPONSE_CHUNK = "ollama_bridge_msgs/msg/ResponseChunk"

#: the bag types that can be played -> the bridge input (relative) that takes that type
INPUT_TOPICS = {STRING: "speech_text", UTTERANCE: "utterance"}
#: the bridge's output topics (relative) -> their types
OUTPUT_TOPICS = {"response_partial": RESPONSE_CHUNK, "response_final": RESPONSE, "response_text": STRING}
#: what the bridge names the session of a `speech_text` input or an Utterance with an empty id
DEFAULT_SESSION = "default"
#: depth of the reliable queues on both sides (the node's inputs and outputs use 1000)
QUEUE_DEPTH = 1000


def msg_dirs() -> list[Path]:
    """Where the ``.msg`` files are: the repository's ``msg/msg``, then installed shares."""
    dirs = [Path(__file__).resolve().parents[1] / "msg" / "msg"]
    for prefix in filter(None, os.environ.get("AMENT_PREFIX_PATH", "").split(os.pathsep)):
        dirs.append(Path(prefix) / "share" / "ollama_bridge_msgs" / "msg")
    return dirs


@lru_cache(maxsize=1)
def typestore() -> Typestore:
    """The Jazzy typestore plus the three ollama_bridge_msgs messages."""
    store = get_typestore(Stores.ROS2_JAZZY)
    folder = next((d for d in msg_dirs() if (d / "Utterance.msg").is_file()), None)
    if folder is None:
        raise EvalError("cannot find the ollama_bridge_msgs .msg files (looked in "
                        + ", ".join(str(d) for d in msg_dirs()) + ")")
    types = {}
    for path in sorted(folder.glob("*.msg")):
        types.update(get_types_from_msg(path.read_text(encoding="utf-8"), f"ollama_bridge_msgs/msg/{path.stem}"))
    store.register(types)
    return store


def join_topic(namespace: str, name: str) -> str:
    """``/robot1`` + ``speech_text`` -> ``/robot1/speech_text`` (root namespace: ``/speech_text``)."""
    return f"{namespace.rstrip('/')}/{name}"


def normalize_namespace(namespace: str) -> str:
    """``robot1/`` -> ``/robot1``; empty or ``/`` -> ``""`` (the root namespace)."""
    parts = [p for p in namespace.strip().split("/") if p]
    return "/" + "/".join(parts) if parts else ""
