"""latency.png: a bar per utterance (total time, with the time to the first chunk as its darker
lower part; failed utterances as a red mark below the axis), drawn with matplotlib (Agg backend:
no display needed)."""
from __future__ import annotations

from pathlib import Path

TOTAL, FIRST, FAIL = "#f6a850", "#3465a4", "#cc0000"


def write(rows: list[dict], title: str, path: Path):
    """Writes latency.png for a report's rows (``index``, ``status``, ``time_to_first_chunk_s``,
    ``total_time_s``; seconds). Skipped utterances leave their slot empty. matplotlib is imported
    here, not with the tool (it takes most of a second)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator
    width = min(30.0, max(7.0, 0.12 * len(rows)))
    fig, ax = plt.subplots(figsize=(width, 3.6), dpi=100)
    try:
        ok = [r for r in rows if r.get("status") == "ok"]
        failed = [r for r in rows if r.get("status") not in ("ok", "skipped")]
        ax.bar([r["index"] for r in ok], [r["total_time_s"] for r in ok], color=TOTAL, label="total time")
        ax.bar([r["index"] for r in ok], [r["time_to_first_chunk_s"] for r in ok], color=FIRST,
               label="time to first chunk")
        if failed:
            ax.scatter([r["index"] for r in failed], [0] * len(failed), marker="v", color=FAIL, label="failed",
                       zorder=3, clip_on=False)
        ax.set_title(title, loc="left", fontsize=10)
        ax.set_xlabel("utterance")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))   # utterance numbers, never 0.25
        ax.set_ylabel("seconds")
        ax.set_ylim(bottom=0)
        ax.grid(axis="y", color="#e1e1e1")
        ax.set_axisbelow(True)
        ax.legend(loc="lower right", bbox_to_anchor=(1.0, 1.0), fontsize=8, frameon=False, ncols=3)
        fig.tight_layout()
        fig.savefig(path, format="png")
    finally:
        plt.close(fig)
