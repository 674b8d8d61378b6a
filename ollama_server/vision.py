"""Images in chat messages: Go's base64 rules, and an image's format and size read from its header.

Ollama's ``api.Message.images`` is ``[]ImageData`` (``[]byte``): Go's ``encoding/json`` decodes each
string with ``base64.StdEncoding`` (padding required, ``\\r``/``\\n`` skipped) and a bad one fails the
whole request with 400 ``illegal base64 data at input byte N`` (``encoding/base64``'s
``CorruptInputError``; ``go_base64_error`` reproduces its offsets). A vision model's runner then
decodes the picture with Go's ``image.Decode``: an unknown format fails the generation with
``image: unknown format``. Only headers are read here (PNG IHDR, JPEG SOFn, GIF, WebP, BMP), which
is enough for a scripted model to say what it "sees": ``640x480 (jpeg)``.
"""
from __future__ import annotations

import base64
import struct

_B64 = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/")
_NEWLINE = frozenset(b"\r\n")
# JPEG start-of-frame markers (C4 = DHT, C8 = JPG extension, CC = DAC are not frames).
_SOF = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}


def go_base64_error(text: str) -> str | None:
    """Go's error for decoding ``text`` with ``base64.StdEncoding``, or ``None`` if it decodes.

    A port of ``decodeQuantum`` (``encoding/base64``): same offsets for bad characters, bad or
    missing padding and trailing garbage.
    """
    src = text.encode("utf-8", "surrogatepass")
    n, si = len(src), 0
    while si < n:
        j = 0
        while j < 4:
            if si == n:
                return None if j == 0 else _corrupt(si - j)
            c = src[si]
            si += 1
            if c in _B64:
                j += 1
                continue
            if c in _NEWLINE:
                continue
            if c != 0x3D or j < 2:                 # not '=', or '=' too early
                return _corrupt(si - 1)
            if j == 2:                             # "==" expected, the first is consumed
                while si < n and src[si] in _NEWLINE:
                    si += 1
                if si == n:
                    return _corrupt(n)
                if src[si] != 0x3D:
                    return _corrupt(si - 1)
                si += 1
            while si < n and src[si] in _NEWLINE:
                si += 1
            return _corrupt(si) if si < n else None
    return None


def _corrupt(offset: int) -> str:
    return "illegal base64 data at input byte %d" % offset


def decode(text: str) -> bytes:
    """The bytes of a base64 image that ``go_base64_error`` accepted."""
    return base64.b64decode(text.replace("\r", "").replace("\n", ""))


def describe(data: bytes) -> dict | None:
    """``{"format", "width", "height"}`` from the image header, ``None`` for an unknown format."""
    for probe in (_png, _jpeg, _gif, _webp, _bmp):
        try:
            found = probe(data)
        except (struct.error, IndexError):
            found = None
        if found:
            fmt, width, height = found
            return {"format": fmt, "width": width, "height": height, "bytes": len(data)}
    return None


def _png(d: bytes):
    if d[:8] == b"\x89PNG\r\n\x1a\n" and d[12:16] == b"IHDR":
        return ("png",) + struct.unpack(">II", d[16:24])
    return None


def _jpeg(d: bytes):
    if d[:2] != b"\xff\xd8":
        return None
    i = 2
    while i + 4 <= len(d):
        if d[i] != 0xFF:
            return None
        marker = d[i + 1]
        if marker == 0xFF:                         # fill byte
            i += 1
            continue
        if marker == 0x01 or 0xD0 <= marker <= 0xD8:   # markers without a length
            i += 2
            continue
        if marker in _SOF:
            height, width = struct.unpack(">HH", d[i + 5:i + 9])
            return "jpeg", width, height
        i += 2 + struct.unpack(">H", d[i + 2:i + 4])[0]
    return None


def _gif(d: bytes):
    if d[:6] in (b"GIF87a", b"GIF89a"):
        return ("gif",) + struct.unpack("<HH", d[6:10])
    return None


def _webp(d: bytes):
    if d[:4] != b"RIFF" or d[8:12] != b"WEBP":
        return None
    chunk = d[12:16]
    if chunk == b"VP8 ":
        w, h = struct.unpack("<HH", d[26:30])
        return "webp", w & 0x3FFF, h & 0x3FFF
    if chunk == b"VP8L":
        bits = struct.unpack("<I", d[21:25])[0]
        return "webp", (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
    if chunk == b"VP8X":
        return "webp", 1 + int.from_bytes(d[24:27], "little"), 1 + int.from_bytes(d[27:30], "little")
    return None


def _bmp(d: bytes):
    if d[:2] == b"BM":
        w, h = struct.unpack("<ii", d[18:26])
        return "bmp", w, abs(h)
    return None


def summary(infos: list[dict]) -> str:
    """``640x480 (jpeg)``, or ``a and b`` / ``a, b and c`` for several images."""
    parts = ["%dx%d (%s)" % (i["width"], i["height"], i["format"]) for i in infos]
    return parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1] if parts else ""
