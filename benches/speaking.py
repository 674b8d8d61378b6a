"""The ``sentence`` and ``warmup`` phases of ``benches/bench.py``: what a speaking robot waits for.

* **sentence**: time to first sentence. Each request (a new session, so every one carries the same
  messages) is published by an rclpy probe at t0; the probe notes when the first
  ``response_sentence`` arrives (t_s). The emulator logs when it handed each piece to the socket
  (script field ``log_send_times``: ``CLOCK_MONOTONIC``, the probe's clock too), so the bridge's
  added time is t_s minus the send time of the piece that *completes* the first sentence: the
  piece that carries the first letter after its period (``Hello there, I heard you. Here``: the
  segmenter must see ``H`` to know ``you.`` ended a sentence and is not ``e.g.``). The time from
  the sentence's own last piece (its period) is reported too; it adds one chunk of pacing.
* **warmup**: the first answer after start with a model that takes ``LOAD_MS`` to load (emulator
  ``load_ms``; unloaded before each run; ``WARM_TTFT_MS`` to the first token once loaded). The node
  starts; once it is ready and the time a load
  takes has passed (with warm-up: the emulator lists the model as loaded), the first input is sent,
  then a second one: time to first partial of the first ÷ of the second (warm). With ``warm_up``
  on the first answer must not pay the load (≤ 1.2× the warm one); with it off it does (≥ 2 s).
"""
from __future__ import annotations

import json
import time
import urllib.request

from ollama_bridge_msgs.msg import Sentence

from bench_support import DEEP, Probe, ReadyProbe, summary
from ollama_server.scripted import pieces

SENTENCE_REPLY = "Hello there, I heard you. Here is a short answer for you, and then one more sentence."
FIRST_SENTENCE = "Hello there, I heard you."
LOAD_MS = 2000
#: the warmup model's time to first token once loaded: prompt evaluation of a small model on a GPU
#: (at 0 ms the ratio would compare a few ms of HTTP and ROS with each other, i.e. measure noise)
WARM_TTFT_MS = 50
WARM_REPLY = "Good morning. I am awake and ready."


class SentenceProbe(Probe):
    """A latency probe that also notes the first ``response_sentence`` of the current session."""

    def __init__(self, ns: str, name: str):
        super().__init__(ns, name)
        self.subs.append(self.node.create_subscription(Sentence, f"{ns}/response_sentence", self._sentence, DEEP))
        self.t_sentence, self.first_sentence = None, None

    def _sentence(self, msg):
        if msg.session_id == self.current and self.t_sentence is None:
            self.t_sentence, self.first_sentence = time.monotonic_ns(), msg.text

    def ask(self, session: str, text: str) -> tuple[int, int]:
        """(t0, t first sentence), CLOCK_MONOTONIC ns, once the final and the sentence are in."""
        self.t_sentence, self.first_sentence = None, None
        t0 = time.monotonic_ns()
        self.one(session, text)
        deadline = time.monotonic() + 10
        while self.t_sentence is None:
            if time.monotonic() > deadline:
                raise RuntimeError(f"{session}: no response_sentence")
            self.executor.spin_once(timeout_sec=0.1)
        if self.first_sentence != FIRST_SENTENCE:
            raise RuntimeError(f"{session}: first sentence {self.first_sentence!r}")
        return t0, self.t_sentence


def completing_pieces(reply: str, sentence: str) -> tuple[int, int]:
    """(index of the sentence's last piece, index of the piece that completes it: the one with the
    first non-space character after it) in the emulator's cut of ``reply``."""
    ends = []
    offset = 0
    for piece in pieces(reply):
        offset += len(piece)
        ends.append(offset)
    end = reply.index(sentence) + len(sentence)
    proof = end + len(reply[end:]) - len(reply[end:].lstrip())
    last = next(i for i, e in enumerate(ends) if e >= end)
    completing = next(i for i, e in enumerate(ends) if e > proof)
    return last, completing


def sentence(bench) -> None:
    """Runs the ``sentence`` phase; stores ``bench.results["sentence"]``."""
    a, emu = bench.a, bench.emu
    emu.set_models({"sentence": {"reply": SENTENCE_REPLY, "chunk_delay_ms": a.chunk_delay_ms,
                                 "log_send_times": True}})
    last, completing = completing_pieces(SENTENCE_REPLY, FIRST_SENTENCE)
    ns = "/sent_bridge"
    proc = bench.bridge(ns, "sentence", max_concurrent_requests=100)
    probe = SentenceProbe(ns, "sent_probe")
    added, from_last, first = [], [], []
    try:
        probe.wait_matched()
        emu.clear_requests()
        asked = {}
        for i in range(5 + a.sentence_requests):        # the first 5 warm the connection up
            text = f"sentence request {i}, please answer"
            t0, t_s = probe.ask(f"sent-{i}", text)
            if i >= 5:
                asked[text] = (t0, t_s)
            if a.pause_ms:
                time.sleep(a.pause_ms / 1e3)
        for r in emu.requests():
            text = (r["body"]["messages"] or [{}])[-1].get("content")   # (a warm-up load has no messages)
            if text in asked:
                t0, t_s = asked[text]
                sent = r["outcome"]["sent_ns"]
                added.append((t_s - sent[completing]) / 1e6)
                from_last.append((t_s - sent[last]) / 1e6)
                first.append((t_s - t0) / 1e6)
        proc.check()
    finally:
        probe.destroy()
        proc.stop()
        emu.clear_requests()
    out = {"reply": SENTENCE_REPLY, "first_sentence": FIRST_SENTENCE, "chunk_delay_ms": a.chunk_delay_ms,
           "pieces": pieces(SENTENCE_REPLY), "last_piece": last, "completing_piece": completing,
           "added_ms": summary(added), "from_last_piece_ms": summary(from_last), "first_sentence_ms": summary(first),
           "samples": {"added": added, "from_last": from_last, "first": first}}
    bench.results["sentence"] = out
    print(f"[bench] sentence: bridge's added time to first sentence p50 {out['added_ms']['p50']:.3f} ms "
          f"(p99 {out['added_ms']['p99']:.3f}); publish → first sentence p50 {out['first_sentence_ms']['p50']:.1f} ms",
          flush=True)


def unload(url: str, model: str) -> None:
    """Unloads ``model`` on the emulator (``keep_alive: 0``), so the next request loads it again."""
    body = json.dumps({"model": model, "messages": [], "keep_alive": 0}).encode()
    with urllib.request.urlopen(urllib.request.Request(url + "/api/chat", data=body), timeout=10) as resp:
        resp.read()


def warmup_run(bench, warm_up: bool, run: int, wait_s: float | None) -> dict:
    """One start of the node with ``warm_up``; returns its figures (``ready_s`` start → ready,
    ``waited_s`` start → first input, first and warm time to first partial)."""
    emu = bench.emu
    unload(emu.url, "warmload")
    ns = f"/warm_{'on' if warm_up else 'off'}{run}"
    ready = ReadyProbe(ns, f"warm_ready_{'on' if warm_up else 'off'}{run}", services=False)
    proc = bench.bridge(ns, "warmload", warm_up=warm_up)
    probe = None
    try:
        ready_s = ready.wait(proc)
        ready.destroy()
        probe = Probe(ns, f"warm_probe_{'on' if warm_up else 'off'}{run}")
        probe.wait_matched()
        deadline = time.monotonic() + 30
        if warm_up:       # until the emulator has it loaded
            while "warmload:latest" not in emu.state()["loaded"]:
                if time.monotonic() > deadline:
                    raise RuntimeError("warm_up did not load the model within 30 s")
                time.sleep(0.01)
        else:             # as long after the start as the warm-up run waited
            time.sleep(max(0.0, (wait_s or LOAD_MS / 1e3) - (time.monotonic() - proc.started)))
        waited_s = time.monotonic() - proc.started
        first, _ = probe.one(f"warm-{run}-first", "good morning")
        warm, _ = probe.one(f"warm-{run}-second", "good morning again")
        proc.check()
        load_ns = probe.final.load_duration_ns
    finally:
        if probe:
            probe.destroy()
        proc.stop()
    return {"ready_s": ready_s, "waited_s": waited_s, "first_ms": first, "warm_ms": warm, "ratio": first / warm,
            "second_load_duration_ns": load_ns}


def warmup(bench) -> None:
    """Runs the ``warmup`` phase; stores ``bench.results["warmup"]``."""
    a = bench.a
    bench.emu.set_models({"warmload": {"reply": WARM_REPLY, "load_ms": LOAD_MS, "ttft_ms": WARM_TTFT_MS,
                                       "chunk_delay_ms": a.chunk_delay_ms}})
    out = {"load_ms": LOAD_MS, "ttft_ms": WARM_TTFT_MS, "runs": a.warmup_runs, "on": [], "off": []}
    for run in range(a.warmup_runs):
        on = warmup_run(bench, True, run, None)
        out["on"].append(on)
        out["off"].append(warmup_run(bench, False, run, on["waited_s"]))
        print(f"[bench] warmup run {run + 1}: first answer ÷ warm answer {on['ratio']:.2f}× with warm_up "
              f"({on['first_ms']:.1f} ÷ {on['warm_ms']:.1f} ms), {out['off'][-1]['ratio']:.1f}× without "
              f"({out['off'][-1]['first_ms']:.0f} ms)", flush=True)
    for kind in ("on", "off"):
        runs = out[kind]
        out[f"{kind}_summary"] = {k: summary([r[k] for r in runs]) for k in ("first_ms", "warm_ms", "ratio")}
    bench.results["warmup"] = out


def target_rows(results: dict) -> list[tuple]:
    """Rows of the report's targets table: (target, measured, goal, met, by how much)."""
    rows = []
    s = results.get("sentence")
    if s:
        p50 = s["added_ms"]["p50"]
        rows.append(("time to first sentence: bridge's added p50", f"{p50:.3f} ms (p99 {s['added_ms']['p99']:.3f} ms, "
                     f"n {s['added_ms']['n']})", "≤ 1 ms", p50 <= 1.0, f"{p50 - 1:.3f} ms over" if p50 > 1 else ""))
    w = results.get("warmup")
    if w:
        on, off = w["on_summary"], w["off_summary"]
        ratio, cold = on["ratio"]["p50"], off["first_ms"]["p50"]
        rows.append((f"first answer after start ÷ warm answer, time to first partial (load {w['load_ms']} ms, "
                     f"ttft {w['ttft_ms']} ms, p50 of {w['runs']})", f"{ratio:.2f}× with warm_up ({on['first_ms']['p50']:.1f} ÷ "
                     f"{on['warm_ms']['p50']:.1f} ms); without: {cold:.0f} ms", "≤ 1.2×; without ≥ 2 s",
                     ratio <= 1.2 and cold >= 2000, "" if ratio <= 1.2 else f"{ratio - 1.2:.2f}× over"))
    return rows


def section(results: dict) -> list[str]:
    """The report's section on the two phases."""
    L = []   # noqa: N806
    s = results.get("sentence")
    if s:
        a, f, t = s["added_ms"], s["from_last_piece_ms"], s["first_sentence_ms"]
        L += ["## Speaking robot: time to first sentence", "",
              f"{a['n']} requests, each in a new session, reply `{s['reply']}` cut into {len(s['pieces'])} pieces, "
              f"{s['chunk_delay_ms']} ms apart. The first sentence `{s['first_sentence']}` ends in piece "
              f"{s['last_piece']} (`{s['pieces'][s['last_piece']]}`) and is proven by piece {s['completing_piece']} "
              f"(`{s['pieces'][s['completing_piece']]}`: a letter after the period).", "",
              "| ms | p50 | p95 | p99 | max |", "| --- | ---: | ---: | ---: | ---: |",
              f"| bridge's added: first `response_sentence` − emulator sent the completing piece | {a['p50']:.3f} | "
              f"{a['p95']:.3f} | {a['p99']:.3f} | {a['max']:.3f} |",
              f"| from the sentence's last piece (+ one chunk of pacing) | {f['p50']:.3f} | {f['p95']:.3f} | "
              f"{f['p99']:.3f} | {f['max']:.3f} |",
              f"| publish → first `response_sentence` | {t['p50']:.3f} | {t['p95']:.3f} | {t['p99']:.3f} | "
              f"{t['max']:.3f} |", ""]
    w = results.get("warmup")
    if w:
        L += ["## Speaking robot: the first answer after start", "",
              f"A model that takes {w['load_ms']} ms to load (emulator `load_ms`, unloaded before each start) and, "
              f"loaded, {w['ttft_ms']} ms to its first token (`ttft_ms`, a small model's prompt evaluation). The "
              "first input is sent once the node is ready and the load is over (with `warm_up` off: as long after "
              "the start as the run with it on waited), then a second one.", "",
              "| warm_up | run | start → ready s | start → first input s | first answer TTFP ms | second TTFP ms | "
              "first ÷ second |", "| --- | ---: | ---: | ---: | ---: | ---: | ---: |"]
        for kind in ("on", "off"):
            for i, r in enumerate(w[kind]):
                L.append(f"| {kind} | {i + 1} | {r['ready_s']:.3f} | {r['waited_s']:.3f} | {r['first_ms']:.1f} | "
                         f"{r['warm_ms']:.1f} | {r['ratio']:.2f}× |")
        L += [""]
    return L

