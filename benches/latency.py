"""The ``latency`` phase of ``benches/bench.py``: publish → first ``response_partial`` of the echo
floor (``examples/echo_node``, waiting and polling), the bridge, the rclpy peer and (``--compare-node``)
another build of the node, against the direct clients on the same emulator settings and pacing: the
Rust client (``examples/direct_stream``) and ollama-python in this process. Requests run in
interleaved rounds, ``paused`` (``--pause-ms`` apart) and back to back, so a change in the machine's
load hits every target alike.
"""
from __future__ import annotations

import gc
import time

from bench_support import SYSTEM_PROMPT, Probe, Proc, cpu_seconds, run_json, summary


def run(bench) -> None:
    """Publish → first partial for the echo floor, the bridge and the peer, against the direct clients;
    stores ``bench.results["latency"]``."""
    a = bench.a
    targets = {"floor": bench.echo("/lat_echo"), "poll": bench.echo("/lat_poll", "poll"),
               "bridge": bench.bridge("/lat_bridge", "bench", max_concurrent_requests=100),
               "peer": bench.peer("/lat_peer", "bench")}
    if a.compare_node:
        targets["compare"] = bench.bridge("/lat_compare", "bench", node=a.compare_node, max_concurrent_requests=100)
    probes = {k: Probe(f"/lat_{'echo' if k == 'floor' else k}", f"lat_probe_{k}") for k in targets}
    try:
        for k, probe in probes.items():
            probe.wait_matched()
            targets[k].check()
        idle = idle_cpu(targets, 1.0 if a.smoke else 3.0)
        results = {"idle_cpu_pct": idle, "pacings": {}}
        per_round = max(1, a.requests // a.rounds)
        warm = 5
        for pacing, pause_ms in (("paused", a.pause_ms), ("back-to-back", 0)):
            samples: dict[str, dict[str, list]] = {}
            order = ["direct", "direct_py", "floor", "bridge", "peer", "poll"] + (["compare"] if a.compare_node else [])
            for r in range(a.rounds):
                for k in order[r % len(order):] + order[:r % len(order)]:
                    s = samples.setdefault(k, {"ttfp": [], "total": []})
                    if k == "direct":
                        got = run_json([str(a.examples / "direct_stream"), "--url", bench.emu.url, "--model", "bench",
                                        "--requests", str(per_round), "--warmup", str(warm), "--pause-ms",
                                        str(pause_ms), "--system", SYSTEM_PROMPT], timeout=300)
                        if got["errors"]:
                            raise RuntimeError(f"direct client: {got['errors']} failed requests")
                        s["ttfp"] += got["ttfc_ms"]
                        s["total"] += got["total_ms"]
                    elif k == "direct_py":
                        first, total = direct_python(bench.emu.url, per_round, warm, pause_ms / 1e3)
                        s["ttfp"] += first
                        s["total"] += total
                    else:
                        first, total = ros_requests(probes[k], f"{pacing[0]}{r}", per_round, warm, pause_ms / 1e3)
                        s["ttfp"] += first
                        s["total"] += total
            results["pacings"][pacing] = {"pause_ms": pause_ms, "samples": samples,
                                          "summary": {k: summary(v["ttfp"]) for k, v in samples.items()}}
            sm = results["pacings"][pacing]["summary"]
            print(f"[bench] latency ({pacing}): p50 direct {sm['direct']['p50']:.3f} ms, floor "
                  f"{sm['floor']['p50']:.3f}, bridge {sm['bridge']['p50']:.3f}, peer {sm['peer']['p50']:.3f}",
                  flush=True)
        for k, proc in targets.items():
            proc.check()
        bench.results["latency"] = results
    finally:
        for probe in probes.values():
            probe.destroy()
        for proc in targets.values():
            proc.stop()


def idle_cpu(procs: dict[str, Proc], seconds: float) -> dict[str, float]:
    """CPU % of each process over the same idle window."""
    c0, t0 = {k: cpu_seconds(p.pid) for k, p in procs.items()}, time.monotonic()
    time.sleep(seconds)
    dt = time.monotonic() - t0
    return {k: 100.0 * (cpu_seconds(p.pid) - c0[k]) / dt for k, p in procs.items()}


def measured(n: int, warmup: int, pause: float, one) -> tuple[list, list]:
    """Runs ``one(i)`` (→ first-chunk ms, total ms) ``warmup`` + ``n`` times, ``pause`` s apart, with
    the garbage collector off; returns the last ``n`` results as two lists."""
    first, total = [], []
    gc.disable()
    try:
        for i in range(warmup + n):
            if i and pause:
                time.sleep(pause)
            f, t = one(i)
            if i >= warmup:
                first.append(f)
                total.append(t)
    finally:
        gc.enable()
    return first, total


def ros_requests(probe: Probe, tag: str, n: int, warmup: int, pause: float) -> tuple[list, list]:
    """``warmup`` + ``n`` utterances one after another, each in a new session (so every request
    carries the same system + user messages as the direct client's); returns the measured ones."""
    return measured(n, warmup, pause, lambda i: probe.one(f"{probe.node.get_name()}-{tag}-{i}",
                                                          f"utterance number {i}, please answer"))


def direct_python(url: str, n: int, warmup: int, pause: float) -> tuple[list, list]:
    """The same requests through ollama-python (what the peer uses), in this process."""
    from ollama import Client
    client = Client(host=url)

    def one(i):
        messages = [{"role": "system", "content": SYSTEM_PROMPT},
                    {"role": "user", "content": f"utterance number {i}, please answer"}]
        t0, t_first = time.perf_counter_ns(), None
        for part in client.chat(model="bench", messages=messages, stream=True, think=False):
            if part.message.content and t_first is None:
                t_first = time.perf_counter_ns()
        return (t_first - t0) / 1e6, (time.perf_counter_ns() - t0) / 1e6
    return measured(n, warmup, pause, one)
