"""latency.png: a bar per utterance (total time, with the time to the first chunk as its darker
lower part; failed utterances as a red mark), drawn by a small rasterizer and written as PNG with
zlib and struct only, so the tool needs no plotting library.
"""
from __future__ import annotations

import math
import struct
import zlib
from pathlib import Path

# 5x7 glyphs (HD44780 style): seven rows, five bits each, most significant bit leftmost.
_FONT = {
    "0": "0E11131519110E", "1": "040C040404040E", "2": "0E11010204081F", "3": "1F02040201110E",
    "4": "02060A121F0202", "5": "1F101E0101110E", "6": "0608101E11110E", "7": "1F010204080808",
    "8": "0E11110E11110E", "9": "0E11110F01020C", "A": "0E1111111F1111", "B": "1E11111E11111E",
    "C": "0E11101010110E", "D": "1C12111111121C", "E": "1F10101E10101F", "F": "1F10101E101010",
    "G": "0E11101711110F", "H": "1111111F111111", "I": "0E04040404040E", "J": "0702020202120C",
    "K": "11121418141211", "L": "1010101010101F", "M": "111B1515111111", "N": "11111915131111",
    "O": "0E11111111110E", "P": "1E11111E101010", "Q": "0E11111115120D", "R": "1E11111E141211",
    "S": "0F10100E01011E", "T": "1F040404040404", "U": "1111111111110E", "V": "11111111110A04",
    "W": "1111111515150A", "X": "11110A040A1111", "Y": "1111110A040404", "Z": "1F01020408101F",
    " ": "00000000000000", ".": "00000000000C0C", ",": "000000000C0408", ":": "000C0C000C0C00",
    "(": "02040808080402", ")": "08040202020408", "-": "0000001F000000", "/": "00010204081000",
    "%": "18190204081303", "#": "0A0A1F0A1F0A0A", "_": "0000000000001F", "+": "0004041F040400",
    "=": "00001F001F0000", "?": "0E110102040004", "<": "02040810080402", ">": "08040201020408",
}

WHITE, BLACK, GRID = (255, 255, 255), (40, 40, 40), (225, 225, 225)
TOTAL, FIRST, FAIL = (246, 168, 80), (52, 101, 164), (204, 0, 0)


class Canvas:
    """An RGB image with rectangles and 5x7 text; ``png()`` encodes it."""

    def __init__(self, width: int, height: int, background=WHITE):
        self.width, self.height = width, height
        self.pixels = bytearray(bytes(background) * (width * height))

    def rect(self, x0: int, y0: int, x1: int, y1: int, color):
        """Fills [x0, x1) x [y0, y1), clipped to the canvas."""
        x0, x1 = max(0, min(x0, x1)), min(self.width, max(x0, x1))
        y0, y1 = max(0, min(y0, y1)), min(self.height, max(y0, y1))
        if x0 >= x1:
            return
        line = bytes(color) * (x1 - x0)
        for y in range(y0, y1):
            start = (y * self.width + x0) * 3
            self.pixels[start:start + len(line)] = line

    def text(self, x: int, y: int, text: str, color=BLACK, scale: int = 1, anchor: str = "left"):
        """Draws upper-cased ``text`` with its top at ``y``; anchor left, center or right of ``x``."""
        text = text.upper()
        if anchor != "left":
            x -= text_width(text, scale) // (2 if anchor == "center" else 1)
        for ch in text:
            glyph = _FONT.get(ch, _FONT["?"])
            for row in range(7):
                bits = int(glyph[2 * row:2 * row + 2], 16)
                for col in range(5):
                    if bits & (0x10 >> col):
                        self.rect(x + col * scale, y + row * scale, x + (col + 1) * scale, y + (row + 1) * scale, color)
            x += 6 * scale

    def png(self) -> bytes:
        """The image as an 8-bit RGB PNG."""
        def chunk(kind: bytes, data: bytes) -> bytes:
            return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        stride = self.width * 3
        raw = b"".join(b"\x00" + bytes(self.pixels[y * stride:(y + 1) * stride]) for y in range(self.height))
        header = struct.pack(">IIBBBBB", self.width, self.height, 8, 2, 0, 0, 0)
        return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw, 9))
                + chunk(b"IEND", b""))


def text_width(text: str, scale: int = 1) -> int:
    return max(0, 6 * len(text) - 1) * scale


def nice_step(span: float, ticks: int = 5) -> float:
    """A round tick step (1, 2 or 5 times a power of ten) giving about ``ticks`` intervals."""
    raw = max(span, 1e-9) / ticks
    power = 10 ** math.floor(math.log10(raw))
    return next(m * power for m in (1, 2, 5, 10) if m * power >= raw)


def latency_chart(rows: list[dict], title: str) -> Canvas:
    """The chart of a report's rows (``time_to_first_chunk_s``, ``total_time_s``, ``status``)."""
    n = max(1, len(rows))
    left, right, top, bottom = 64, 20, 46, 44
    width, height = max(560, left + right + 3 * n), 320
    bar = (width - left - right) / n                     # slot per utterance
    c = Canvas(width, height)
    plot_h = height - top - bottom
    peak = max([r.get("total_time_s") or 0.0 for r in rows] + [1e-3])
    step = nice_step(peak)
    y_max = step * math.ceil(peak / step)

    def y_of(v: float) -> int:
        return top + plot_h - round(plot_h * min(v, y_max) / y_max)
    c.text(8, 10, title[: (width - 16) // 12], scale=2)
    for k in range(int(round(y_max / step)) + 1):          # grid lines and y labels
        y = y_of(k * step)
        c.rect(left, y, width - right, y + 1, GRID)
        label = f"{k * step:.{max(0, -math.floor(math.log10(step)))}f}"
        c.text(left - 6, y - 3, label, anchor="right")
    label_every = math.ceil((text_width(str(n)) + 6) / bar)
    for i, r in enumerate(rows):
        pad = min(8, max(1, int(bar / 6)))
        x0, x1 = round(left + i * bar) + pad, round(left + (i + 1) * bar) - pad
        if r.get("status") == "ok":
            c.rect(x0, y_of(r["total_time_s"]), x1, y_of(0), TOTAL)
            c.rect(x0, y_of(r["time_to_first_chunk_s"]), x1, y_of(0), FIRST)
        elif r.get("status") != "skipped":
            c.rect(x0, y_of(0) - 6, x1, y_of(0), FAIL)
        if i % label_every == 0:
            c.text((x0 + x1) // 2, y_of(0) + 6, str(r["index"]), anchor="center")
    c.rect(left, y_of(0), width - right, y_of(0) + 1, BLACK)
    c.rect(left, top, left + 1, y_of(0) + 1, BLACK)
    legend_y = height - 14
    for x, color, name in ((left, FIRST, "time to first chunk"), (left + 170, TOTAL, "total time"),
                           (left + 290, FAIL, "failed")):
        c.rect(x, legend_y, x + 9, legend_y + 7, color)
        c.text(x + 14, legend_y, name)
    c.text(left - 6, top - 16, "seconds", anchor="right")
    return c


def write(rows: list[dict], title: str, path: Path):
    """Writes latency.png."""
    path.write_bytes(latency_chart(rows, title).png())
