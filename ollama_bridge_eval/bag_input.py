"""Reading the utterances of one topic of a recorded bag.

Accepted: a rosbag2 folder (``metadata.yaml`` of version 4 to 9, sqlite3 or mcap storage, zstd
file or message compression, as ``ros2 bag record`` writes it), a folder without ``metadata.yaml``
holding storage files (a recording that was killed), or a single ``.mcap`` / ``.db3`` file. Only
the chosen topic is read; it must be ``std_msgs/msg/String`` or ``ollama_bridge_msgs/msg/Utterance``.

Read the way rosbag2 plays a bag: ``metadata.yaml`` says which storage files there are (and their
compression); the topics, types and messages come from the storage files themselves. So a
metadata.yaml that disagrees with them (QoS strings of another rosbag2 release, topics in another
order, other type hashes, stale message counts: bags from another release, reindexed or edited by
hand) changes nothing. (rosbags' own folder reader pairs metadata topics with storage topics by
QoS and hash too, and finds no messages when they differ.)

Messages are decoded with the definition the bag carries (mcap schemas, rosbag2's
``message_definitions``) when it has one, so bags recorded with an earlier ``Utterance`` (before
``attach_image``) still read; bags without definitions are decoded with today's types.
"""
from __future__ import annotations

import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path, PurePath

import yaml
from backports import zstd
from rosbags.interfaces import MessageDefinitionFormat
from rosbags.rosbag2 import Reader
from rosbags.typesys import Stores, get_types_from_msg, get_typestore

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


def resolve_bag_path(path: str | Path) -> Path:
    """The bag folder, or the single storage file, that ``path`` names."""
    p = Path(path)
    if not p.exists():
        raise EvalError(f"bag {str(path)!r} does not exist")
    if p.is_file() and p.name == "metadata.yaml":
        p = p.parent
    if p.is_file() and p.suffix not in STORAGE_SUFFIXES:
        raise EvalError(f"{str(path)!r} is not a bag (expected a rosbag2 folder, a .mcap or a .db3 file)")
    return p


@dataclass
class _Storage:
    """What metadata.yaml (if any) says about a bag folder: its storage files and compression."""
    files: list[Path]
    version: int | None = None
    compression: str | None = None             # None, "file" or "message" (zstd)


def _storage_of_folder(bag: Path) -> _Storage:
    """The storage files of a bag folder (``bag`` may also be one storage file)."""
    if not bag.is_dir():
        return _Storage([bag])
    meta = bag / "metadata.yaml"
    if not meta.is_file():
        return _Storage([f for f in sorted(bag.iterdir()) if f.suffix in STORAGE_SUFFIXES])
    info = yaml.safe_load(meta.read_text(encoding="utf-8"))["rosbag2_bagfile_information"]
    names = info.get("relative_file_paths") or []
    files = [bag / PurePath(n).name for n in names] or [f for f in sorted(bag.iterdir())
                                                         if f.suffix in STORAGE_SUFFIXES]
    if missing := [str(f) for f in files if not f.exists()]:
        raise FileNotFoundError(f"storage files listed in metadata.yaml are missing: {', '.join(missing)}")
    mode = str(info.get("compression_mode") or "").lower()
    compression = mode if mode in ("file", "message") else None
    if compression and str(info.get("compression_format") or "zstd") != "zstd":
        raise ValueError(f"compression {info.get('compression_format')!r} is not supported (only zstd)")
    return _Storage(files, int(info["version"]), compression)


def _plain_files(storage: _Storage, scratch: Path) -> list[Path]:
    """The storage files, decompressed into ``scratch`` when the bag is file-compressed."""
    if storage.compression != "file":
        return storage.files
    plain = []
    for path in storage.files:
        target = scratch / path.name.removesuffix(".zstd")
        with path.open("rb") as src, zstd.open(src, "rb") as unpacked, target.open("wb") as dst:
            shutil.copyfileobj(unpacked, dst)
        plain.append(target)
    return plain


def _read_topic(files: list[Path], topic: str, message_compressed: bool):
    """(every topic, the types of ``topic``, [(stamp, data, msgdef)] of ``topic``) as the storage
    files themselves say."""
    topics, types, raw = set(), set(), []
    for path in files:
        with Reader(path) as reader:
            topics |= {c.topic for c in reader.connections}
            connections = [c for c in reader.connections if c.topic == topic]
            if not connections:                # (an empty filter would read every topic)
                continue
            types |= {c.msgtype for c in connections}
            for conn, stamp, data in reader.messages(connections=connections):
                raw.append((stamp, zstd.decompress(data) if message_compressed else data, conn.msgdef))
    return topics, types, raw


def _decoder(msgtype: str):
    """deserialize(data, msgdef): with the bag's own definition of ``msgtype`` when it has one."""
    stores = {}

    def deserialize(data: bytes, msgdef):
        key = msgdef.data if msgdef is not None and msgdef.format == MessageDefinitionFormat.MSG else ""
        if key not in stores:
            store = typestore()
            if key.strip():
                try:
                    store = get_typestore(Stores.EMPTY)
                    store.register(get_types_from_msg(key, msgtype))
                except Exception:  # noqa: BLE001 - a definition rosbags cannot parse: today's types
                    store = typestore()
            stores[key] = store
        return stores[key].deserialize_cdr(data, msgtype)
    return deserialize


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= 300 else text[:297] + "..."


def read_utterances(path: str | Path, topic: str) -> BagInput:
    """Every message of ``topic`` in ``path``, in timestamp order. Raises :class:`EvalError` for
    a missing or unreadable bag, an absent topic, or a topic of another type."""
    bag = resolve_bag_path(path)
    wanted = topic if topic.startswith("/") else "/" + topic
    try:
        storage = _storage_of_folder(bag)
        if not storage.files:
            raise FileNotFoundError("no metadata.yaml and no storage file (.mcap or .db3) in it")
        with tempfile.TemporaryDirectory(prefix="ollama_bridge_eval-") as scratch:
            files = _plain_files(storage, Path(scratch))
            topics, types, raw = _read_topic(files, wanted, storage.compression == "message")
        if not types:
            raise EvalError(f"topic {wanted} is not in bag {str(path)!r} (it has: "
                            f"{', '.join(sorted(topics)) or 'no topics'})")
        if len(types) != 1 or next(iter(types)) not in INPUT_TOPICS:
            raise EvalError(f"topic {wanted} in bag {str(path)!r} has type {', '.join(sorted(types))}; expected "
                            + " or ".join(INPUT_TOPICS))
        msgtype = types.pop()
        deserialize = _decoder(msgtype)
        result = BagInput(str(path), wanted, msgtype, "mcap" if ".mcap" in storage.files[0].name else "sqlite3",
                          storage.version)
        for index, (stamp, data, msgdef) in enumerate(sorted(raw, key=lambda item: item[0])):
            msg = deserialize(data, msgdef)
            if msgtype == STRING:
                session, text = DEFAULT_SESSION, msg.data
            else:
                session, text = msg.session_id or DEFAULT_SESSION, msg.text
            result.utterances.append(Utterance(index, stamp, session, text))
    except EvalError:
        raise
    except Exception as exc:  # noqa: BLE001 - yaml, rosbags, sqlite, mcap and zstd raise many kinds
        raise EvalError(f"cannot read bag {str(path)!r}: {_one_line(exc)}") from None
    if not result.utterances:
        raise EvalError(f"topic {wanted} in bag {str(path)!r} has no messages")
    return result
