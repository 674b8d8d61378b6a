"""The report of one replay: a row per utterance and a summary, as ``report.json`` (the data,
read back by ``--compare``) and ``report.md`` (for people), plus the Markdown helpers.

Latency statistics cover the utterances answered without error; percentiles interpolate linearly
between the closest ranks (like numpy's default). Tokens per second is Ollama's
``eval_count / eval_duration`` when Ollama reported both, else null.
"""
from __future__ import annotations

import json
import math
from pathlib import Path

from .player import Result, Tracker

FAILED = ("error", "cancelled", "timeout", "interrupted", "not played")


def percentile(values: list[float], q: float) -> float | None:
    """The ``q``-th percentile (0..100) of ``values``, linearly interpolated; None when empty."""
    if not values:
        return None
    ordered = sorted(values)
    pos = (len(ordered) - 1) * q / 100.0
    low, high = math.floor(pos), math.ceil(pos)
    return ordered[low] + (ordered[high] - ordered[low]) * (pos - low)


def stats(values: list[float]) -> dict:
    """p50, p95, max and mean of ``values`` (all None when there are none)."""
    return {"p50": percentile(values, 50), "p95": percentile(values, 95), "max": max(values, default=None),
            "mean": sum(values) / len(values) if values else None}


def status_of(result: Result) -> str:
    """ok | error | cancelled | timeout | interrupted | skipped | not played"""
    if not result.answered:
        return "skipped" if result.outcome.startswith("skipped") else result.outcome
    final = result.final
    if final.done_reason == "cancelled":
        return "cancelled"
    return "error" if final.error or final.done_reason == "error" else "ok"


def row(result: Result, tracker: Tracker, stamp0: int, run_start: float) -> dict:
    """The report row of one utterance."""
    u, f = result.utterance, result.final
    out = {"index": u.index, "bag_time_s": round((u.stamp_ns - stamp0) / 1e9, 6), "session_id": u.session_id,
           "bridge_session": result.session_id or None, "prompt": u.text, "status": status_of(result), "note": result.outcome,
           "sent_at_s": None if result.sent_mono is None else round(result.sent_mono - run_start, 6)}
    if f is None:
        return out | {"answer": None, "error": result.outcome if status_of(result) in FAILED else ""}
    tokens_per_s = f.eval_count / (f.eval_duration_ns / 1e9) if f.eval_count and f.eval_duration_ns else None
    first = tracker.first_partial_mono(f.request_id)
    return out | {
        "answer": f.text, "request_id": f.request_id, "model": f.model, "server": f.server, "done_reason": f.done_reason,
        "error": f.error, "time_to_first_chunk_s": f.time_to_first_chunk_s, "total_time_s": f.total_time_s,
        "tokens_per_s": tokens_per_s, "prompt_eval_count": f.prompt_eval_count, "eval_count": f.eval_count,
        "eval_duration_ns": f.eval_duration_ns, "total_duration_ns": f.total_duration_ns,
        "load_duration_ns": f.load_duration_ns, "prompt_eval_duration_ns": f.prompt_eval_duration_ns,
        "chunks": tracker.chunk_count(f.request_id), "chunk_count": f.chunk_count,
        "client_first_chunk_s": None if first is None else first - result.sent_mono,
        "client_total_s": result.final_mono - result.sent_mono,
    }


def summarize(rows: list[dict], wall_time_s: float) -> dict:
    """Counts and latency statistics of a run."""
    ok = [r for r in rows if r["status"] == "ok"]
    models = sorted({r["model"] for r in rows if r.get("model")})
    rates = [r["tokens_per_s"] for r in ok if r.get("tokens_per_s") is not None]
    return {
        "count": len(rows), "played": sum(r["sent_at_s"] is not None for r in rows), "ok": len(ok),
        "failures": sum(r["status"] in FAILED for r in rows), "skipped": sum(r["status"] == "skipped" for r in rows),
        "time_to_first_chunk_s": stats([r["time_to_first_chunk_s"] for r in ok]),
        "total_time_s": stats([r["total_time_s"] for r in ok]),
        "tokens_per_s_mean": sum(rates) / len(rates) if rates else None,
        "eval_count_total": sum(r.get("eval_count") or 0 for r in rows),
        "model": ", ".join(models), "wall_time_s": round(wall_time_s, 3),
    }


def build(results: list[Result], tracker: Tracker, run_start: float, wall_time_s: float, header: dict) -> dict:
    """The whole report (``header`` holds the bag, bridge and settings sections)."""
    stamp0 = min((r.utterance.stamp_ns for r in results), default=0)
    rows = [row(r, tracker, stamp0, run_start) for r in results]
    return header | {"summary": summarize(rows, wall_time_s), "utterances": rows, "expect": None,
                     "unmatched_finals": tracker.unmatched_finals}


# ------------------------------------------------------------------------------- Markdown
def md_cell(value, digits: int = 3) -> str:
    """A value as one Markdown table cell (numbers rounded, `|` and newlines escaped)."""
    if value is None or value == "":
        return "–"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value).replace("\\", "\\\\").replace("|", "\\|").replace("\r", "").replace("\n", "<br>")


def md_table(headers: list[str], rows: list[list]) -> str:
    """A GitHub-flavoured Markdown table."""
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    lines += ["| " + " | ".join(md_cell(c) for c in r) + " |" for r in rows]
    return "\n".join(lines)


SUMMARY_METRICS = [("utterances", ("count",)), ("ok", ("ok",)), ("failures", ("failures",)),
                   ("time to first chunk p50 (s)", ("time_to_first_chunk_s", "p50")),
                   ("time to first chunk p95 (s)", ("time_to_first_chunk_s", "p95")),
                   ("time to first chunk max (s)", ("time_to_first_chunk_s", "max")),
                   ("total time p50 (s)", ("total_time_s", "p50")), ("total time p95 (s)", ("total_time_s", "p95")),
                   ("total time max (s)", ("total_time_s", "max")), ("tokens/s mean", ("tokens_per_s_mean",)),
                   ("model", ("model",))]


def metric(report: dict, path: tuple) -> object:
    """A summary value by its key path, e.g. ("total_time_s", "p95")."""
    value = report["summary"]
    for key in path:
        value = value.get(key) if isinstance(value, dict) else None
    return value


def expect_score(report: dict) -> str | None:
    """"3/4 passed" when the run had expectations."""
    exp = report.get("expect")
    return f"{exp['passed']}/{exp['total']} passed" if exp else None


def _verdict(row: dict) -> str | None:
    """pass / FAIL of a row's expectations (None when it had none)."""
    return None if not row.get("expect") else ("pass" if row["expect"]["passed"] else "FAIL")


def _fqn(bridge: dict) -> str:
    return f"{(bridge.get('namespace') or '').rstrip('/')}/{bridge.get('node', 'ollama_bridge')}"


def markdown(report: dict) -> str:
    """report.md"""
    s, bag, st = report["summary"], report["bag"], report["settings"]
    out = [f"# Replay of {bag['topic']} from `{bag['path']}`", "",
           f"Bridge `{_fqn(report['bridge'])}` (input `{report['bridge'].get('input_topic')}`), mode **{st['mode']}**"
           + (f" (rate {st['rate']:g})" if st["mode"] == "realtime" else "")
           + f", model {s['model'] or '–'}, seed {st['seed'] if st['seed'] is not None else '–'}, "
           f"{report['created']}. Output bag: `{report['output_bag']}`.", "", "## Summary", ""]
    rows = [[name, metric(report, path)] for name, path in SUMMARY_METRICS]
    if expect_score(report):
        rows.append(["expectations", expect_score(report)])
    out += [md_table(["metric", "value"], rows), "", "![latency per utterance](latency.png)", "",
            "## Utterances", ""]
    per = [[r["index"], r["session_id"], r["prompt"], r["answer"], r.get("time_to_first_chunk_s"),
            r.get("total_time_s"), r.get("tokens_per_s"), r.get("done_reason") or r["status"], r.get("server"), r["error"]]
           + ([_verdict(r)] if report["expect"] else []) for r in report["utterances"]]
    heads = ["#", "session", "prompt", "answer", "first chunk (s)", "total (s)", "tokens/s", "done", "server", "error"]
    out += [md_table(heads + (["expect"] if report["expect"] else []), per), ""]
    if report["expect"] and report["expect"]["failed"]:
        out += ["## Failed expectations", ""]
        out += [f"- {f}" for f in report["expect"]["failures"]] + [""]
    return "\n".join(out)


def write(report: dict, folder: Path):
    """Writes report.json and report.md into ``folder``."""
    (folder / "report.json").write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    (folder / "report.md").write_text(markdown(report), encoding="utf-8")


def load(path: str | Path) -> dict:
    """A report.json (or a run folder holding one); ValueError/OSError when it is not one."""
    p = Path(path)
    p = p / "report.json" if p.is_dir() else p
    report = json.loads(p.read_text(encoding="utf-8"))
    if not isinstance(report, dict) or "summary" not in report or "utterances" not in report:
        raise ValueError(f"{p} is not a report.json of scripts/eval")
    return report
