"""The output bag: every message the bridge published during the replay (``response_partial``,
``response_final``, ``response_text``, under the bridge's namespace) with the time it was received,
plus the inputs as they were played (with their send time). Written as a rosbag2 folder with mcap
storage (metadata version 9) with full message definitions, so ``ros2 bag info``/``play``,
Foxglove and rosbags open it."""
from __future__ import annotations

import threading
from pathlib import Path

from rosbags.interfaces import Qos, QosDurability, QosHistory, QosLiveliness, QosReliability, QosTime
from rosbags.rosbag2 import StoragePlugin, Writer

from .msgtypes import QUEUE_DEPTH, typestore

#: what the bridge offers on its outputs (and takes on its inputs): reliable, volatile, keep last 1000
OFFERED_QOS = Qos(QosHistory.KEEP_LAST, QUEUE_DEPTH, QosReliability.RELIABLE, QosDurability.VOLATILE,
                  QosTime(0, 0), QosTime(0, 0), QosLiveliness.AUTOMATIC, QosTime(0, 0), False)


class Recorder:
    """Collects serialized messages (thread-safe, in memory) and writes them out at the end."""

    def __init__(self):
        self._lock = threading.Lock()
        self._topics: dict[str, str] = {}         # topic -> type, in first-declared order
        self._messages: list[tuple[str, int, bytes]] = []

    def declare(self, topic: str, msgtype: str):
        """Adds a topic to the bag (also when no message comes on it)."""
        with self._lock:
            self._topics.setdefault(topic, msgtype)

    def __call__(self, topic: str, stamp_ns: int, data: bytes):
        """Records one message (the sink of :class:`~ollama_bridge_eval.bridge.BridgeLink`)."""
        with self._lock:
            self._messages.append((topic, stamp_ns, data))

    def counts(self) -> dict[str, int]:
        """Messages recorded per topic."""
        with self._lock:
            counts = dict.fromkeys(self._topics, 0)
            for topic, _, _ in self._messages:
                counts[topic] = counts.get(topic, 0) + 1
            return counts

    def write(self, path: Path, metadata: dict[str, str] | None = None) -> Path:
        """Writes the bag folder ``path`` (which must not exist); ``metadata`` goes to custom_data."""
        with self._lock:
            topics, messages = dict(self._topics), sorted(self._messages, key=lambda m: m[1])
        store = typestore()
        writer = Writer(path, version=9, storage_plugin=StoragePlugin.MCAP)
        for key, value in (metadata or {}).items():
            writer.set_custom_data(key, value)
        with writer:
            connections = {topic: writer.add_connection(topic, msgtype, typestore=store,
                                                        offered_qos_profiles=[OFFERED_QOS])
                           for topic, msgtype in topics.items()}
            for topic, stamp, data in messages:
                writer.write(connections[topic], stamp, data)
        return path
