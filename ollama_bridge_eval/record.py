"""``scripts/eval --record OUT --topic T``: records one topic into a rosbag2 folder (mcap), for
machines where ``ros2 bag`` is not installed (it is not on PyPI, so the project's venv setup has
no ``ros2 bag record``).

Like ``ros2 bag record``: the type comes from the topic's publishers (waited for up to
``--timeout`` s); the subscription is reliable when every publisher is (else best effort) and
transient-local when every publisher is; each message is stamped with its receive time and the
publishers' offered QoS go into metadata.yaml. Messages are written as they arrive; Ctrl-C (or
SIGTERM, or ``--count N`` messages) ends the recording and finishes the bag.
"""
from __future__ import annotations

import threading
import time
from pathlib import Path

from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy
from rosidl_runtime_py.utilities import get_message

from . import EvalError
from .bridge import RosNode, wait_for
from .msgtypes import typestore
from .recorder import bag_writer, qos_of

DEPTH = 1000


def subscription_qos(profiles) -> QoSProfile:
    """The QoS that matches every publisher (``profiles``) and loses as little as they allow."""
    reliable = all(p.reliability == ReliabilityPolicy.RELIABLE for p in profiles)
    latched = all(p.durability == DurabilityPolicy.TRANSIENT_LOCAL for p in profiles)
    return QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=DEPTH,
                      reliability=ReliabilityPolicy.RELIABLE if reliable else ReliabilityPolicy.BEST_EFFORT,
                      durability=DurabilityPolicy.TRANSIENT_LOCAL if latched else DurabilityPolicy.VOLATILE)


class _BagSink:
    """Writes received messages (from the spin thread) until closed; counts them."""

    def __init__(self, writer, connection, limit: int | None):
        self.writer, self.connection, self.limit = writer, connection, limit
        self.count, self.lock, self.full = 0, threading.Lock(), threading.Event()
        self.closed = False

    def __call__(self, raw: bytes):
        stamp = time.time_ns()
        with self.lock:
            if self.closed:
                return
            self.writer.write(self.connection, stamp, bytes(raw))
            self.count += 1
            if self.limit and self.count >= self.limit:
                self.full.set()

    def close(self):
        with self.lock:
            self.closed = True
            self.writer.close()


def record(out: Path, topic: str, timeout: float, count: int | None, log) -> int:
    """Records ``topic`` into the new bag folder ``out``; returns the number of messages."""
    topic = topic if topic.startswith("/") else "/" + topic
    if out.exists():
        raise EvalError(f"{str(out)!r} exists: --record writes a new bag folder")
    ros = RosNode("record")
    try:
        infos = wait_for(lambda: ros.node.get_publishers_info_by_topic(topic), timeout)
        if not infos:
            raise EvalError(f"no publisher on {topic} within {timeout:g}s (its type comes from a publisher)")
        types = sorted({i.topic_type for i in infos})
        if len(types) != 1:
            raise EvalError(f"{topic} is published with several types: {', '.join(types)}")
        msgtype, store = types[0], typestore()
        if msgtype not in store.types:
            raise EvalError(f"cannot record {topic}: type {msgtype} is not known to the bag writer")
        writer = bag_writer(out, {"ollama_bridge_eval.recorded_topic": topic})
        writer.open()
        connection = writer.add_connection(topic, msgtype, typestore=store,
                                           offered_qos_profiles=[qos_of(i.qos_profile) for i in infos])
        sink = _BagSink(writer, connection, count)
        sub = ros.node.create_subscription(get_message(msgtype), topic, sink,
                                           subscription_qos([i.qos_profile for i in infos]), raw=True)
        log(f"recording {topic} ({msgtype}) into {out}" + (f" until {count} message(s)" if count else "")
            + "; Ctrl-C stops")
        try:
            while not sink.full.wait(0.2):
                pass
        except KeyboardInterrupt:
            pass
        ros.node.destroy_subscription(sub)
        sink.close()
    finally:
        ros.close()
    log(f"recorded {sink.count} message(s) of {topic} into {out}")
    return sink.count
