"""``bench/latency.png``: the distributions of publish → first partial per path, one panel per
pacing, drawn with the repo's small PNG rasterizer (``ollama_bridge_eval/chart.py``)."""
from __future__ import annotations

import math

from ollama_bridge_eval.chart import BLACK, GRID, Canvas, nice_step, text_width

COLORS = {"direct": (120, 120, 120), "direct_py": (190, 150, 210), "floor": (78, 154, 6),
          "bridge": (32, 74, 135), "peer": (245, 121, 0), "compare": (204, 0, 0)}
LABELS = {"direct": "direct reqwest client", "direct_py": "direct ollama-python client", "floor": "floor: r2r echo",
          "bridge": "ollama_bridge", "peer": "rclpy peer bridge", "poll": "r2r echo, polling spin (10 ms)",
          "compare": "ollama_bridge, --compare-node build"}


def _line(c: Canvas, x0: float, y0: float, x1: float, y1: float, color, width: int = 2):
    steps = int(max(abs(x1 - x0), abs(y1 - y0))) + 1
    for i in range(steps + 1):
        t = i / steps
        x, y = round(x0 + (x1 - x0) * t), round(y0 + (y1 - y0) * t)
        c.rect(x, y, x + width, y + width, color)


def chart(lat: dict) -> Canvas:
    """One panel per pacing: the cumulative distribution of publish → first partial per path."""
    pacings = list(lat["pacings"].items())
    kinds = [k for k in ("direct", "direct_py", "floor", "bridge", "compare", "peer") if k in pacings[0][1]["samples"]]
    panel_w, panel_h, left, top, gap = 560, 300, 60, 56, 70
    width = left + len(pacings) * (panel_w + gap)
    height = top + panel_h + 110
    c = Canvas(width, height)
    c.text(10, 10, "time from publish (or send) to first chunk: cumulative distribution", scale=2)
    for i, (pacing, data) in enumerate(pacings):
        x0 = left + i * (panel_w + gap)
        samples = {k: sorted(data["samples"][k]["ttfp"]) for k in kinds}
        peak = max(data["summary"][k]["p99"] for k in kinds) * 1.15
        step = nice_step(peak)
        x_max = step * math.ceil(peak / step)

        def px(v: float) -> float:
            return x0 + panel_w * min(v, x_max) / x_max

        def py(q: float) -> float:
            return top + panel_h - panel_h * q
        title = f"{pacing} ({data['pause_ms']} ms pause)" if data["pause_ms"] else pacing
        c.text(x0, top - 22, title, scale=1)
        for k in range(0, 11):                                   # horizontal grid: 0..100 %
            y = round(py(k / 10))
            c.rect(x0, y, x0 + panel_w, y + 1, GRID)
            if k % 2 == 0:
                c.text(x0 - 6, y - 3, f"{k * 10}%", anchor="right")
        for k in range(int(round(x_max / step)) + 1):            # vertical grid and ms labels
            x = round(px(k * step))
            c.rect(x, top, x + 1, top + panel_h, GRID)
            c.text(x, top + panel_h + 6, f"{k * step:.{max(0, -math.floor(math.log10(step)))}f}", anchor="center")
        c.text(x0 + panel_w // 2, top + panel_h + 20, "milliseconds", anchor="center")
        c.rect(x0, top + panel_h, x0 + panel_w, top + panel_h + 1, BLACK)
        c.rect(x0, top, x0 + 1, top + panel_h + 1, BLACK)
        for k in kinds:
            v = samples[k]
            n = len(v)
            prev = None
            for j, value in enumerate(v):
                point = (px(value), py((j + 1) / n))
                if prev is not None:
                    _line(c, prev[0], prev[1], point[0], prev[1], COLORS[k])
                    _line(c, point[0], prev[1], point[0], point[1], COLORS[k])
                prev = point
            if v and v[-1] > x_max:
                c.text(x0 + panel_w + 4, round(py(1.0)) - 3, ">", color=COLORS[k])
    y = top + panel_h + 44
    x = left
    for k in kinds:
        c.rect(x, y, x + 12, y + 8, COLORS[k])
        c.text(x + 18, y, LABELS[k])
        x += 18 + text_width(LABELS[k]) + 26
        if x > width - 200:
            x, y = left, y + 18
    c.text(left, height - 16, "added latency of a bridge = its curve minus the direct reqwest client curve, percentile by percentile (rclpy probe)")
    return c
