"""A test camera and image helpers: publishes real sensor_msgs frames like a camera driver,
builds PNGs without an imaging library, reads a JPEG's or PNG's size from its header."""
from __future__ import annotations

import struct
import threading
import time
import zlib

from builtin_interfaces.msg import Time
from sensor_msgs.msg import Image

from ollama_bridge_msgs.msg import Utterance


def png_bytes(width, height, rgb=(200, 30, 30)) -> bytes:
    """A valid RGB PNG, built with zlib (no imaging library in the test venv)."""
    rows = b"".join(b"\x00" + bytes(rgb) * width for _ in range(height))

    def chunk(tag, data):
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data) & 0xFFFFFFFF)
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b"")


def image_size(data: bytes):
    """(format, width, height) from a PNG IHDR or a JPEG start-of-frame header."""
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return ("png",) + struct.unpack(">II", data[16:24])
    assert data.startswith(b"\xff\xd8"), data[:8]
    i = 2
    while i + 9 < len(data):
        marker, length = data[i + 1], struct.unpack(">H", data[i + 2:i + 4])[0]
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
            height, width = struct.unpack(">HH", data[i + 5:i + 9])
            return ("jpeg", width, height)
        i += 2 + length
    raise AssertionError("no JPEG frame header")


class Camera:
    """Publishes `frame` (set by the test) at 10 Hz, like a camera driver, stamped now unless
    `stamp_age_s` is set."""

    def __init__(self, ros, topic, msg_type):
        self.pub = ros.node.create_publisher(msg_type, topic, 10)
        self.frame = None
        self.stamp_age_s = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self):
        while not self._stop.wait(0.1):
            frame = self.frame
            if frame is not None:
                t = time.time() - self.stamp_age_s
                frame.header.stamp = Time(sec=int(t), nanosec=int((t % 1) * 1e9))
                self.pub.publish(frame)

    def close(self, ros):
        self._stop.set()
        self._thread.join(5)
        ros.node.destroy_publisher(self.pub)


def raw(encoding, width, height, channels, value=90):
    return Image(encoding=encoding, width=width, height=height, step=width * channels,
                 data=bytes([value]) * (width * channels * height))


def look(ep, text, session="s", until_not=None, timeout=20.0):
    """Asks with attach_image; repeats while the error contains `until_not` (a frame still on its
    way to the node). Returns the final response."""
    deadline = time.monotonic() + timeout
    while True:
        before = len(ep.finals.snapshot())
        ep.utterance_pub.publish(Utterance(session_id=session, text=text, attach_image=True))
        final = ep.wait_finals(before + 1)[before]
        if until_not is None or until_not not in final.error or time.monotonic() > deadline:
            return final
