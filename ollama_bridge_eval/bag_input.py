"""Reading the utterances of one topic of a recorded bag.

Accepted: a rosbag2 folder (``metadata.yaml`` of version 4 to 9, sqlite3 or mcap storage, as
``ros2 bag record`` writes it), a folder without ``metadata.yaml`` holding exactly one storage file
(a recording that was killed), or a single ``.mcap`` / ``.db3`` file. Only the chosen topic is read;
it must be ``std_msgs/msg/String`` or ``ollama_bridge_msgs/msg/Utterance``.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import yaml
from rosbags.rosbag2 import Reader

from . import EvalError
from .msgtypes import DEFAULT_SESSION, INPUT_TOPICS, STRING, typestore

STORAGE_SUFFIXES = (".mcap", ".db3")


@dataclass(frozen=True)
class Utterance:
    """One input of the bag, in bag order (``index`` from 0)."""
    index: int
    stamp_ns: int          # the bag's (receive) timestamp
    session_id: str        # "default" for std_msgs/String, else the Utterance's (empty -> "default")
    text: str


@dataclass
class BagInput:
    """The utterances of one topic, and what the bag is."""
    path: str
    topic: str
    msgtype: str
    storage: str                               # "mcap" or "sqlite3"
    metadata_version: int | None               # None for a bare storage file
    utterances: list[Utterance] = field(default_factory=list)

    @property
    def bridge_input(self) -> str:
        """The bridge topic (relative) that takes these messages."""
        return INPUT_TOPICS[self.msgtype]


def resolve_bag_path(path: str | Path) -> Path:
    """The path to hand to rosbags' Reader (a folder with metadata.yaml, or a storage file)."""
    p = Path(path)
    if not p.exists():
        raise EvalError(f"bag {str(path)!r} does not exist")
    if p.is_file() and p.name == "metadata.yaml":
        p = p.parent
    if p.is_dir():
        if (p / "metadata.yaml").is_file():
            return p
        files = [f for f in sorted(p.iterdir()) if f.suffix in STORAGE_SUFFIXES]
        if len(files) == 1:
            return files[0]
        raise EvalError(f"{str(path)!r} is not a rosbag2 folder (no metadata.yaml"
                        + (f", and {len(files)} storage files)" if files else ")"))
    if p.suffix not in STORAGE_SUFFIXES:
        raise EvalError(f"{str(path)!r} is not a bag (expected a rosbag2 folder, a .mcap or a .db3 file)")
    return p


def _metadata_version(bag: Path) -> int | None:
    if not bag.is_dir():
        return None
    try:
        info = yaml.safe_load((bag / "metadata.yaml").read_text(encoding="utf-8"))
        return int(info["rosbag2_bagfile_information"]["version"])
    except Exception:  # noqa: BLE001 - the Reader reports a broken metadata.yaml clearly
        return None


def _storage_of(bag: Path, reader: Reader) -> str:
    if bag.is_dir():
        files = getattr(reader.storage, "storages", [])
        suffix = Path(str(getattr(files[0], "path", ""))).suffix if files else ""
        return "mcap" if suffix == ".mcap" else "sqlite3"
    return "mcap" if bag.suffix == ".mcap" else "sqlite3"


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= 300 else text[:297] + "..."


def read_utterances(path: str | Path, topic: str) -> BagInput:
    """Every message of ``topic`` in ``path``, in timestamp order. Raises :class:`EvalError` for
    a missing or unreadable bag, an absent topic, or a topic of another type."""
    bag = resolve_bag_path(path)
    wanted = topic if topic.startswith("/") else "/" + topic
    try:
        with Reader(bag) as reader:
            connections = [c for c in reader.connections if c.topic == wanted]
            if not connections:
                topics = sorted({c.topic for c in reader.connections})
                raise EvalError(f"topic {wanted} is not in bag {str(path)!r} (it has: "
                                f"{', '.join(topics) or 'no topics'})")
            types = sorted({c.msgtype for c in connections})
            if len(types) != 1 or types[0] not in INPUT_TOPICS:
                raise EvalError(f"topic {wanted} in bag {str(path)!r} has type {', '.join(types)}; expected "
                                + " or ".join(INPUT_TOPICS))
            msgtype = types[0]
            store = typestore()
            raw = sorted(((stamp, data) for _, stamp, data in reader.messages(connections=connections)),
                         key=lambda item: item[0])
            result = BagInput(str(path), wanted, msgtype, _storage_of(bag, reader), _metadata_version(bag))
            for index, (stamp, data) in enumerate(raw):
                msg = store.deserialize_cdr(data, msgtype)
                if msgtype == STRING:
                    session, text = DEFAULT_SESSION, msg.data
                else:
                    session, text = msg.session_id or DEFAULT_SESSION, msg.text
                result.utterances.append(Utterance(index, stamp, session, text))
    except EvalError:
        raise
    except Exception as exc:  # noqa: BLE001 - rosbags, sqlite and mcap raise many kinds
        raise EvalError(f"cannot read bag {str(path)!r}: {_one_line(exc)}") from None
    if not result.utterances:
        raise EvalError(f"topic {wanted} in bag {str(path)!r} has no messages")
    return result
