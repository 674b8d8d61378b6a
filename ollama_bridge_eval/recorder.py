"""Bags this tool writes: rosbag2 folders with mcap storage (metadata version 9) and full message
definitions, so ``ros2 bag info``/``play``, Foxglove and rosbags open them.

* :class:`Recorder`: a replay's output bag: every message the bridge published for the replay's
  sessions (``response_partial``, ``response_final``, ``response_text``, on the topics the bridge
  really uses) with the time it was received, plus the inputs as they were played (with their
  send time); kept in memory and written at the end, in time order.
* :func:`bag_writer` and :func:`qos_of`: for ``--record``, which writes as messages arrive."""
from __future__ import annotations

import threading
from pathlib import Path

from rosbags.interfaces import Qos, QosDurability, QosHistory, QosLiveliness, QosReliability, QosTime
from rosbags.rosbag2 import StoragePlugin, Writer

from .msgtypes import QUEUE_DEPTH, typestore

#: what the bridge offers on its outputs (and takes on its inputs): reliable, volatile, keep last 1000
OFFERED_QOS = Qos(QosHistory.KEEP_LAST, QUEUE_DEPTH, QosReliability.RELIABLE, QosDurability.VOLATILE,
                  QosTime(0, 0), QosTime(0, 0), QosLiveliness.AUTOMATIC, QosTime(0, 0), False)


def _time(duration) -> QosTime:
    ns = duration.nanoseconds
    return QosTime(ns // 1_000_000_000, ns % 1_000_000_000)


def qos_of(profile) -> Qos:
    """An rclpy ``QoSProfile`` (e.g. a publisher's, from ``get_publishers_info_by_topic``) as
    rosbags writes it into metadata.yaml (``offered_qos_profiles``)."""
    return Qos(QosHistory[profile.history.name], profile.depth, QosReliability[profile.reliability.name],
               QosDurability[profile.durability.name], _time(profile.deadline), _time(profile.lifespan),
               QosLiveliness[profile.liveliness.name], _time(profile.liveliness_lease_duration),
               bool(profile.avoid_ros_namespace_conventions))


def bag_writer(path: Path, metadata: dict[str, str] | None = None) -> Writer:
    """An mcap bag writer for ``path`` (which must not exist), to be opened (``with`` or ``open()``);
    ``metadata`` goes to custom_data."""
    writer = Writer(path, version=9, storage_plugin=StoragePlugin.MCAP)
    for key, value in (metadata or {}).items():
        writer.set_custom_data(key, value)
    return writer


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
        with bag_writer(path, metadata) as writer:
            connections = {topic: writer.add_connection(topic, msgtype, typestore=store,
                                                        offered_qos_profiles=[OFFERED_QOS])
                           for topic, msgtype in topics.items()}
            for topic, stamp, data in messages:
                writer.write(connections[topic], stamp, data)
        return path
