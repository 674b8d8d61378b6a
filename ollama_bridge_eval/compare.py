"""``--compare A B``: two runs side by side, as Markdown.

Utterances are paired by prompt and occurrence (the n-th "hello" of A with the n-th "hello" of B),
which is pairing by index when both runs replayed the same bag, and still pairs sensibly when one
bag has extra or missing utterances; unpaired ones get a row of their own.
"""
from __future__ import annotations

from collections import Counter

from .report import SUMMARY_METRICS, expect_score, md_table, metric


def pair_rows(rows_a: list[dict], rows_b: list[dict]) -> list[tuple[dict | None, dict | None]]:
    """(A row, B row) pairs in A's order, then B's unpaired rows."""
    def keyed(rows):
        seen, out = Counter(), {}
        for r in rows:
            seen[r["prompt"]] += 1
            out[(r["prompt"], seen[r["prompt"]])] = r
        return out
    a, b = keyed(rows_a), keyed(rows_b)
    pairs = [(ra, b.get(key)) for key, ra in a.items()]
    pairs += [(None, rb) for key, rb in b.items() if key not in a]
    return pairs


def _answer(row: dict | None) -> str | None:
    if row is None:
        return None
    if row["status"] == "ok":
        return row["answer"]
    detail = row.get("error") or row.get("note") or ""
    return f"[{row['status']}{': ' + detail if detail and detail != row['status'] else ''}] {row.get('answer') or ''}".strip()


def _delta(a, b):
    """B − A with a sign for numbers ("0" when equal), "≠" for differing text, else nothing."""
    numbers = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in (a, b))
    if not numbers:
        return None if a == b else "≠"
    if isinstance(a, int) and isinstance(b, int):
        return f"{b - a:+d}" if b != a else "0"
    text = f"{b - a:+.3f}"
    if float(text) == 0:                       # smaller than the table's 3 decimals: say how small
        return "0" if b == a else f"{b - a:+.1e}"
    return text


def _setting(report: dict, key: str):
    return report.get("settings", {}).get(key)


def _param(report: dict, name: str):
    return report.get("bridge", {}).get("parameters", {}).get(name)


def summary_table(a: dict, b: dict, name_a: str, name_b: str) -> str:
    """Settings and summary metrics of both runs, with B − A for numbers."""
    rows = [["report", name_a, name_b, None], ["bag", a["bag"]["path"], b["bag"]["path"], None]]
    rows += [[key, _setting(a, key), _setting(b, key), None] for key in ("mode", "seed")]
    rows += [[name, _param(a, name), _param(b, name), None] for name in ("system_prompt", "options_json")]
    for name, path in SUMMARY_METRICS:
        va, vb = metric(a, path), metric(b, path)
        rows.append([name, va, vb, _delta(va, vb)])
    if expect_score(a) or expect_score(b):
        rows.append(["expectations", expect_score(a), expect_score(b), None])
    return md_table(["", "A", "B", "B − A"], rows)


def utterance_table(a: dict, b: dict) -> str:
    """Per utterance: the prompt, both answers, both latencies."""
    rows = []
    for ra, rb in pair_rows(a["utterances"], b["utterances"]):
        first = ra or rb
        index = ra["index"] if ra is not None else f"B#{rb['index']}"
        rows.append([index, first["prompt"], _answer(ra), _answer(rb),
                     (ra or {}).get("time_to_first_chunk_s"), (rb or {}).get("time_to_first_chunk_s"),
                     (ra or {}).get("total_time_s"), (rb or {}).get("total_time_s"),
                     "yes" if ra and rb and ra.get("answer") == rb.get("answer") else "no"])
    return md_table(["#", "prompt", "answer A", "answer B", "first chunk A (s)", "first chunk B (s)",
                     "total A (s)", "total B (s)", "same answer"], rows)


def markdown(a: dict, b: dict, name_a: str = "A", name_b: str = "B") -> str:
    """The whole comparison."""
    return "\n".join(["# Comparison of two replays", "", summary_table(a, b, name_a, name_b), "",
                      "## Utterances", "", utterance_table(a, b), ""])
