"""The ``failover`` phase of ``benches/bench.py``: the failover gap of a fleet, the time from a
server's death to the next answered input of a session that server was answering.

Two scripted emulators (``failover_a``, ``failover_b``) behind one node (``ollama_url`` lists both,
``max_retries`` 0). Each trial opens a session, lets one server answer it, then:

* **killed**: SIGKILL of that server (connection refused from then on), restarted after the trial;
* **busy**: that server answers the next request with 503;
* **frozen**: SIGSTOP of that server (the kernel still accepts connections, nothing answers), with
  ``connect_timeout_s`` 0.5 and ``load_timeout_s`` 1: the request moves on when the response is
  overdue (its headers are due ``connect_timeout_s + load_timeout_s`` after sending); SIGCONT after.

and at once sends the session's next input. Per trial: the gap (disturbance → the first partial of
that input, which another server answers, measured by an rclpy probe), the same input's own time to
first partial, and a healthy request's time to first partial for comparison; after the trial, the
time from the server's return (restart, SIGCONT) to the node putting it back into rotation (its log
line ``server URL answers again``), which the probes' 1 s → 30 s backoff decides.
"""
from __future__ import annotations

import os
import signal
import time

from bench_support import Probe, ReadyProbe, summary
from ollama_server.testing import EmulatorFleet

MODEL = "talk"
REPLY = "Sure, the kitchen robot can bring you a cup of tea in about two minutes."


def _rejoined(node, url: str, before: int, timeout: float = 40.0) -> float:
    """Seconds until the node's log has one more ``server URL answers again`` line than ``before``."""
    t0, needle = time.monotonic(), f"server {url} answers again"
    while node.log().count(needle) <= before:
        if time.monotonic() - t0 > timeout:
            raise RuntimeError(f"{url} not back in rotation within {timeout}s")
        time.sleep(0.01)
    return time.monotonic() - t0


def _trial(probe: Probe, node, fleet: EmulatorFleet, kind: str, k: int) -> dict:
    session = f"{kind}-{k}"
    healthy_ms, _ = probe.one(session, "first question, please")
    server = probe.final.server
    victim = fleet[fleet.urls.index(server)]
    rejoins = node.log().count(f"server {server} answers again")
    t_disturb = time.perf_counter_ns()
    if kind == "killed":
        victim.kill()
    elif kind == "busy":
        victim.push_fault({"kind": "status", "status": 503})
    else:
        os.kill(victim.proc.pid, signal.SIGSTOP)
    t_send = time.perf_counter_ns()
    own_ttfp_ms, _ = probe.one(session, "second question, please", timeout=30.0)
    gap_ms = (probe.t_first - t_disturb) / 1e6
    answered_by = probe.final.server
    if answered_by == server:
        raise RuntimeError(f"{kind} trial {k}: answered by the disturbed server {server}")
    t_back = time.monotonic()
    if kind == "killed":
        victim.start()
    elif kind == "frozen":
        os.kill(victim.proc.pid, signal.SIGCONT)
    _rejoined(node, server, rejoins)
    rejoin_s = time.monotonic() - t_back
    return {"gap_ms": gap_ms, "ttfp_ms": own_ttfp_ms, "healthy_ttfp_ms": healthy_ms,
            "send_after_ms": (t_send - t_disturb) / 1e6, "rejoin_s": rejoin_s}


def run(bench) -> None:
    """Runs the trials; results go to ``bench.results["failover"]``."""
    a = bench.a
    trials = 3 if a.smoke else a.failover_trials
    models = {"models": {MODEL: {"reply": REPLY, "chunk_delay_ms": 1.0}}}
    out = {"trials": trials, "model": MODEL, "scenarios": {}}
    with EmulatorFleet([{"server_id": "a", "config": models, "python": a.python, "args": ["--log-level", "WARNING"]},
                        {"server_id": "b", "config": models, "python": a.python, "args": ["--log-level", "WARNING"]}]) \
            as fleet:
        frozen = {"connect_timeout_s": 0.5, "load_timeout_s": 1.0}   # the header wait is their sum
        for kind, params in (("killed", {}), ("busy", {}), ("frozen", frozen)):
            ns = f"/failover_{kind}"
            ready = ReadyProbe(ns, f"failover_ready_{kind}", services=False)
            node = bench.bridge(ns, MODEL, ollama_url=",".join(fleet.urls), max_retries=0, **params)
            probe = Probe(ns, f"failover_probe_{kind}")
            try:
                ready.wait(node)
                ready.destroy()
                probe.wait_matched()
                rows = [_trial(probe, node, fleet, kind, k) for k in range(trials)]
                node.check()
            finally:
                probe.destroy()
                node.stop()
            out["scenarios"][kind] = {key: summary([r[key] for r in rows]) for key in rows[0]} | {"values": rows}
            s = out["scenarios"][kind]
            print(f"[bench] failover ({kind}): gap p50 {s['gap_ms']['p50']:.1f} ms, max {s['gap_ms']['max']:.1f} ms; "
                  f"healthy first partial p50 {s['healthy_ttfp_ms']['p50']:.1f} ms; back in rotation "
                  f"p50 {s['rejoin_s']['p50']:.2f} s", flush=True)
    bench.results["failover"] = out


def target_rows(fo: dict) -> list[tuple]:
    """Rows of the report's targets table: the gap of a killed server over a healthy first partial."""
    s = fo["scenarios"].get("killed")
    if not s:
        return []
    extra = s["gap_ms"]["p50"] - s["healthy_ttfp_ms"]["p50"]
    return [(f"failover gap, server killed (p50 of {fo['trials']}): death → next input's first partial, minus a "
             "healthy first partial", f"{extra:.1f} ms ({s['gap_ms']['p50']:.1f} − {s['healthy_ttfp_ms']['p50']:.1f} ms)",
             "≤ 50 ms (no backoff, no retry)", extra <= 50, f"{extra - 50:.1f} ms over" if extra > 50 else "")]


def section(fo: dict) -> list[str]:
    """The report's section."""
    L = ["## Failover", "",  # noqa: N806
         f"Two emulators behind one node, {fo['trials']} trial(s) per scenario: a session is answered by one server, "
         "that server is disturbed, and the session's next input is sent at once (see `benches/failover.py`). "
         "Gap: disturbance → that input's first partial (from the other server). Back in rotation: the server's "
         "return → the node's `answers again` log line (probes 1 s, 2 s, 4 s ... after the failure).", "",
         "| scenario | gap p50 ms | gap max ms | its own first partial p50 ms | healthy first partial p50 ms | "
         "back in rotation p50 s |", "| --- | ---: | ---: | ---: | ---: | ---: |"]
    for kind, s in fo["scenarios"].items():
        L.append(f"| {kind} | {s['gap_ms']['p50']:.1f} | {s['gap_ms']['max']:.1f} | {s['ttfp_ms']['p50']:.1f} | "
                 f"{s['healthy_ttfp_ms']['p50']:.1f} | {s['rejoin_s']['p50']:.2f} |")
    return L + [""]
