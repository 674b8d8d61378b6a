"""The ``long`` phase of ``benches/bench.py``: a long conversation on a real model, where history
trimming decides what the server's prompt (KV) cache can reuse.

The model is SmolLM2-135M in the project's emulator (llamacpp backend: llama.cpp's own server code,
one slot, prompt cache on, ``--long-threads`` threads, 4096-token context), started through
``benches/llamacpp_timings.py`` so that llama.cpp's ``prompt_n`` (prompt tokens evaluated) and
``cache_n`` (reused) of every generation are known. One thread by default: on a shared 2-core machine
llama.cpp's spinning thread pool slows down several times when its threads wait for a core. Each run
is one conversation of ``--long-turns`` turns with ``max_history_turns`` = ``--long-limit``, the questions of ``../shared/perf/
prompt_cache_trimming.py`` (naming their conversation), ``temperature 0``, ``seed 42``, ``num_predict 32``:

* **today** (``--long-today-runs``): the node's trimming before this change (one exchange dropped from
  the front per turn past the limit), replayed by a direct streaming HTTP client with the messages the
  node sent then;
* **bridge** (``--long-runs``): the node itself (block trimming, context budget), driven over ROS by
  an rclpy probe.

Per turn: time to first partial (ms; the probe's publish → first ``response_partial`` for the
bridge, the client's send → first content chunk for today), prompt tokens evaluated, prompt
tokens in all, the answer's tokens. The *new turn* is what the prompt gained beyond the previous
prompt and its answer: the new user message with its template (total − previous total − previous
answer); where the history was trimmed it cannot be read off, and the median of the run's other
turns is used (the questions are all of one length).
"""
from __future__ import annotations

import json
import subprocess
import tempfile
import time
import urllib.request
from pathlib import Path

from bench_support import Probe, ReadyProbe, pct

REPO = Path(__file__).resolve().parents[1]
SYSTEM = "You are RICBot, a helpful robot at a research institute in Bremen. Answer briefly and kindly. " * 3
OPTIONS = {"temperature": 0, "seed": 42, "num_predict": 32}
MODEL = "smollm2:135m"


def question(i: int, conversation: str) -> str:
    """The shared script's question ``i``, naming its conversation: every conversation is its own, so
    llama.cpp's host-memory prompt cache cannot serve one run the prompts of another."""
    return (f"This is question number {i} of conversation {conversation}: tell me something about robots and the "
            f"weather in Bremen on day {i}.")


class LlamaServer:
    """The emulator with the real model, recording llama.cpp's timings (see llamacpp_timings.py)."""

    def __init__(self, python: str, log_dir: Path, threads: int):
        self.timings = Path(tempfile.mkdtemp(prefix="ob-long-")) / "timings.jsonl"
        self.log = open(log_dir / "llamacpp_emulator.log", "wb")
        self.proc = subprocess.Popen([python, str(REPO / "benches/llamacpp_timings.py"), "--timings", str(self.timings),
                                      "--ctx", "4096", "--threads", str(threads), "--log-level", "WARNING"],
                                     stdout=subprocess.PIPE, stderr=self.log, text=True)
        line = self.proc.stdout.readline().strip()  # the emulator's one ready line (or EOF if it failed)
        if not line.startswith("ollama_server listening on "):
            self.stop()
            raise RuntimeError(f"the llamacpp emulator did not start: {line!r} (see {self.log.name})")
        self.url = line.rsplit(" ", 1)[1]
        self.seen = 0

    def next_timing(self, user: str) -> dict:
        """The timings line of the generation whose last user message is ``user``."""
        lines = self.timings.read_text().splitlines() if self.timings.exists() else []
        for i in range(self.seen, len(lines)):
            entry = json.loads(lines[i])
            if entry["last_user"] == user:
                self.seen = i + 1
                return entry
        raise RuntimeError(f"no llama.cpp timings for {user!r}")

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.log.close()


def direct_turn(url: str, history: list, user: str) -> tuple[float, str, int]:
    """One streamed /api/chat with ``history``; returns (ms to the first content, answer, eval_count)."""
    msgs = [{"role": "system", "content": SYSTEM}]
    for u, a in history:
        msgs += [{"role": "user", "content": u}, {"role": "assistant", "content": a}]
    body = {"model": MODEL, "messages": msgs + [{"role": "user", "content": user}], "options": OPTIONS, "think": False}
    req = urllib.request.Request(url + "/api/chat", data=json.dumps(body).encode(),
                                 headers={"Content-Type": "application/json"})
    t0, first, text, evals = time.perf_counter(), None, "", 0
    with urllib.request.urlopen(req, timeout=300) as resp:
        for raw in resp:
            chunk = json.loads(raw)
            piece = (chunk.get("message") or {}).get("content", "")
            if piece and first is None:
                first = time.perf_counter()
            text += piece
            if chunk.get("done"):
                evals = chunk.get("eval_count", 0)
    return (first - t0) * 1e3, text, evals


def today_run(server: LlamaServer, conversation: str, turns: int, limit: int) -> list[dict]:
    """One conversation with the old trimming: past the limit, the oldest exchange goes each turn."""
    history, rows = [], []
    for i in range(1, turns + 1):
        user = question(i, conversation)
        ttfp, answer, evals = direct_turn(server.url, history, user)
        rows.append(turn_row(i, ttfp, len(history), server.next_timing(user), evals))
        history = (history + [(user, answer)])[-limit:]
    return rows


def bridge_run(probe: Probe, server: LlamaServer, session: str, turns: int) -> list[dict]:
    rows = []
    for i in range(1, turns + 1):
        user = question(i, session)
        ttfp, _ = probe.one(session, user, timeout=300)
        rows.append(turn_row(i, ttfp, None, server.next_timing(user), probe.final.eval_count))
    return rows


def turn_row(i: int, ttfp: float, history: int | None, timing: dict, answer_tokens: int) -> dict:
    return {"turn": i, "ttfp_ms": ttfp, "history": history, "evaluated": timing["prompt_n"],
            "total": timing["prompt_n"] + timing["cache_n"], "answer": answer_tokens, "prompt_ms": timing["prompt_ms"]}


def add_new_turn_sizes(rows: list[dict]) -> None:
    """``new``: the prompt's growth beyond the previous prompt and answer (see the module doc)."""
    grown = [r["total"] - p["total"] - p["answer"] for p, r in zip(rows, rows[1:])]
    plausible = sorted(g for g in grown if g > 0)
    typical = plausible[len(plausible) // 2] if plausible else rows[0]["total"]
    rows[0]["new"] = rows[0]["total"]
    for r, g in zip(rows[1:], grown):
        r["new"] = g if 0 < g <= 2 * typical else typical


def run(bench) -> None:
    """Runs the phase and stores ``bench.results["long_conversation"]``."""
    a = bench.a
    server = LlamaServer(a.python, bench.logs, a.long_threads)
    out = {"turns": a.long_turns, "runs": a.long_runs, "today_runs": a.long_today_runs, "limit": a.long_limit,
           "options": OPTIONS, "model": MODEL, "threads": a.long_threads, "today": [], "bridge": []}
    ns = "/long_bridge"
    ready = ReadyProbe(ns, "long_ready", services=False)
    proc = bench.bridge(ns, MODEL, ollama_url=server.url, system_prompt=SYSTEM, max_history_turns=a.long_limit,
                        options_json=json.dumps(OPTIONS), request_timeout_s=300.0)
    probe = None
    try:
        ready.wait(proc)
        ready.destroy()
        probe = Probe(ns, "long_probe")
        probe.wait_matched()
        direct_turn(server.url, [], "Hello!")                 # loads the model: no run pays for it
        for r in range(max(a.long_runs, a.long_today_runs)):  # interleaved: the machine's load hits both
            for kind in ("bridge", "today"):
                if r >= (a.long_runs if kind == "bridge" else a.long_today_runs):
                    continue
                rows = today_run(server, f"T{r}", a.long_turns, a.long_limit) if kind == "today" else \
                    bridge_run(probe, server, f"B{r}", a.long_turns)
                add_new_turn_sizes(rows)
                out[kind].append(rows)
                s = summarize(out[kind][-1:], a.long_turns)
                print(f"[bench] long conversation {kind} run {r + 1}: turn-{a.long_turns} ÷ turn-5 TTFP "
                      f"{s['ttfp_ratio']:.2f}, evaluated ≤ 2× new turn on {100 * s['cache_share']:.0f} % of turns",
                      flush=True)
        proc.check()
    finally:
        if probe:
            probe.destroy()
        proc.stop()
        server.stop()
    out["summary"] = {k: summarize(out[k], a.long_turns) for k in ("today", "bridge")}
    bench.results["long_conversation"] = out


def summarize(runs: list[list[dict]], turns: int) -> dict:
    """TTFP p50 per turn over the runs, turn-N ÷ turn-5, and the share of turns whose evaluated
    prompt is at most twice the new turn."""
    p50 = [pct([run[t]["ttfp_ms"] for run in runs], 50) for t in range(turns)]  # index: turn - 1
    rows = [r for run in runs for r in run]
    cached = sum(r["evaluated"] <= 2 * r["new"] for r in rows)
    first = min(5, turns)
    return {"ttfp_p50": p50, "ttfp_first": p50[first - 1], "ttfp_last": p50[-1], "ttfp_ratio": p50[-1] / p50[first - 1],
            "first_turn": first, "cache_share": cached / len(rows), "turns": len(rows),
            "evaluated_mean": sum(r["evaluated"] for r in rows) / len(rows),
            "new_mean": sum(r["new"] for r in rows) / len(rows)}


# ------------------------------------------------------------------------------------ the report
def target_rows(long: dict) -> list[tuple]:
    """Rows of the report's targets table: (target, measured, goal, met, by how much)."""
    s, t, n = long["summary"]["bridge"], long["summary"]["today"], long["turns"]
    ratio, share = s["ttfp_ratio"], s["cache_share"]
    return [
        (f"long conversation: turn-{n} TTFP ÷ turn-{s['first_turn']} TTFP (p50 of {long['runs']} run(s), "
         f"max_history_turns {long['limit']})", f"{ratio:.2f}× ({s['ttfp_last']:.0f} ÷ {s['ttfp_first']:.0f} ms; "
         f"today {t['ttfp_ratio']:.2f}×)", "≤ 1.3×", ratio <= 1.3, f"{ratio - 1.3:.2f}× over" if ratio > 1.3 else ""),
        ("long conversation: turns with evaluated prompt ≤ 2× the new turn",
         f"{100 * share:.0f} % of {s['turns']} (today {100 * t['cache_share']:.0f} %)", "≥ 80 %", share >= 0.8,
         f"{100 * (0.8 - share):.0f} points short" if share < 0.8 else ""),
    ]


def section(long: dict) -> list[str]:
    """The report's section: per-turn figures, today vs the bridge."""
    s, t = long["summary"]["bridge"], long["summary"]["today"]
    L = ["## Long conversation: prompt-cache-friendly trimming", "",
         f"{long['runs']} bridge and {long['today_runs']} today conversation(s) of {long['turns']} turns, "
         f"`max_history_turns` {long['limit']}, {long['model']} on llama.cpp (emulator's llamacpp backend, one "
         f"slot, prompt cache on, {long['threads']} thread(s)), options "
         f"`{json.dumps(long['options'])}`. *today* replays the old trimming (one exchange dropped from the front "
         "per turn past the limit) with a direct HTTP client; *bridge* is the node (trimming to half the limit at "
         "once). Evaluated = llama.cpp's `prompt_n`; new turn = the prompt's growth beyond the previous prompt "
         "and answer.", "",
         f"Mean evaluated prompt tokens per turn: today {t['evaluated_mean']:.0f}, bridge {s['evaluated_mean']:.0f} "
         f"(new turn: {s['new_mean']:.0f}).", "",
         "| turn | today TTFP p50 ms | today evaluated | bridge TTFP p50 ms | bridge evaluated | bridge prompt |",
         "| ---: | ---: | ---: | ---: | ---: | ---: |"]
    today, bridge = long["today"][0], long["bridge"][0]
    for i in range(long["turns"]):
        L.append(f"| {i + 1} | {t['ttfp_p50'][i]:.0f} | {today[i]['evaluated']} | {s['ttfp_p50'][i]:.0f} | "
                 f"{bridge[i]['evaluated']} | {bridge[i]['total']} tokens |")
    return L + ["", "(evaluated: the first run of each kind)", ""]
