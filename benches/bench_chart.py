"""``bench/latency.png``: the distributions of publish → first partial per path, one panel per
pacing, drawn with matplotlib (Agg backend)."""
from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (after choosing the backend)
from matplotlib.ticker import PercentFormatter  # noqa: E402

COLORS = {"direct": "#787878", "direct_py": "#be96d2", "floor": "#4e9a06",
          "bridge": "#204a87", "peer": "#f57900", "compare": "#cc0000"}
LABELS = {"direct": "direct reqwest client", "direct_py": "direct ollama-python client", "floor": "floor: r2r echo",
          "bridge": "ollama_bridge", "peer": "rclpy peer bridge", "poll": "r2r echo, polling spin (10 ms)",
          "compare": "ollama_bridge, --compare-node build"}


def write(lat: dict, path: Path):
    """One panel per pacing: the cumulative distribution (0–100 %) of publish → first partial
    (milliseconds) per path, cut at 1.15 × the highest p99 so the tails do not squash the rest."""
    pacings = list(lat["pacings"].items())
    kinds = [k for k in ("direct", "direct_py", "floor", "bridge", "compare", "peer") if k in pacings[0][1]["samples"]]
    fig, axes = plt.subplots(1, len(pacings), figsize=(6.2 * len(pacings), 4.6), dpi=100, squeeze=False)
    try:
        for ax, (pacing, data) in zip(axes[0], pacings):
            for k in kinds:
                v = sorted(data["samples"][k]["ttfp"])
                ax.step(v, [(j + 1) / len(v) for j in range(len(v))], where="post", color=COLORS[k], label=LABELS[k])
            ax.set_xlim(0, max(data["summary"][k]["p99"] for k in kinds) * 1.15)
            ax.set_ylim(0, 1)
            ax.yaxis.set_major_formatter(PercentFormatter(1.0))
            ax.set_title(f"{pacing} ({data['pause_ms']} ms pause)" if data["pause_ms"] else pacing, fontsize=10)
            ax.set_xlabel("milliseconds")
            ax.grid(color="#e1e1e1")
        axes[0][0].legend(loc="lower right", fontsize=8)
        fig.suptitle("time from publish (or send) to first chunk: cumulative distribution")
        fig.text(0.01, 0.01, "added latency of a bridge = its curve minus the direct reqwest client curve, "
                 "percentile by percentile (rclpy probe)", fontsize=8)
        fig.tight_layout(rect=(0, 0.04, 1, 1))
        fig.savefig(path, format="png")
    finally:
        plt.close(fig)
