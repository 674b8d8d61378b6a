"""Benchmarks of the ollama_bridge node against its floor (a minimal r2r relay), a direct streaming
HTTP client, and the usual rclpy bridge (``benches/rclpy_peer_bridge.py``). Run by ``scripts/bench``:

    scripts/bench            # the full run (400 requests per latency figure), about 5 minutes
    scripts/bench --smoke    # every phase, small counts, about 1.5 minutes
    scripts/bench --only latency,throughput --requests 400

Phases: ``startup`` (process start → every topic and service discoverable), ``latency`` (publish →
first ``response_partial``, minus the direct client's send → first chunk on the same emulator
settings and pacing; with ``--compare-node``, another build of the node measured in the same rounds;
see ``latency.py``),
``throughput`` (1/10/100 sessions streaming: pieces/s and messages/s, pieces lost, CPU, RSS),
``memory`` (RSS idle and after 1,000 sessions × 20 exchanges), ``long`` (a long conversation on a real
model: time to first partial and prompt tokens evaluated per turn, see ``long_conversation.py``),
``sentence`` and ``warmup`` (time to first sentence; the first answer after start, see ``speaking.py``), ``failover``
(two servers: a server's death → the next answered input, see ``failover.py``). Writes ``bench/report.md``,
``bench/latency.png``, ``bench/results.json`` and the processes' logs in ``bench/logs/``.
"""
from __future__ import annotations

import argparse
import json
import os
import random
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benches"))
sys.path.insert(0, str(REPO / "tests"))

# A private, localhost-only ROS graph (before rclpy is imported anywhere).
os.environ["ROS_DOMAIN_ID"] = os.environ.get("OB_BENCH_DOMAIN_ID", str(random.Random(os.getpid()).randint(101, 199)))
os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
os.environ.pop("ROS_LOCALHOST_ONLY", None)
os.environ.pop("OLLAMA_HOST", None)
os.environ.pop("OLLAMA_API_KEY", None)
_ros_home = tempfile.mkdtemp(prefix="ob-bench-ros-")
os.environ["ROS_HOME"] = _ros_home
os.environ["ROS_LOG_DIR"] = os.path.join(_ros_home, "log")

import rclpy  # noqa: E402

import bench_report  # noqa: E402
import failover  # noqa: E402
import latency  # noqa: E402
import long_conversation  # noqa: E402
import speaking  # noqa: E402
from bench_support import SYSTEM_PROMPT, Proc, ReadyProbe, loadavg, rss_kb, run_json, summary  # noqa: E402
from harness import param_args  # noqa: E402  (the tests' way of passing node parameters)
from ollama_server.scripted import pieces  # noqa: E402
from ollama_server.testing import EmulatorProcess  # noqa: E402

WORDS = ("alpha", "beta", "gamma", "delta", "omega", "zeta", "theta", "kappa")
LATENCY_REPLY = "Hello! I heard you, and here is a short answer for you."
TALK_REPLY = ("Sure. The kitchen robot can carry a tray to the table, open the fridge door and bring you "
              "a cup of tea in about two minutes. Shall I ask it to start now?")


def options() -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--smoke", action="store_true", help="small counts, every phase (a quick check)")
    ap.add_argument("--report-only", action="store_true", help="rewrite report.md and latency.png from results.json")
    ap.add_argument("--only", default="startup,latency,throughput,memory,long,sentence,warmup,failover",
                    help="phases to run, comma-separated")
    ap.add_argument("--out", default=str(REPO / "bench"), help="report folder (default bench/)")
    ap.add_argument("--node", default=None, help="node binary (default: target/release/ollama_bridge)")
    ap.add_argument("--node-args", default="", help="extra --ros-args for the node, e.g. '--log-level warn'")
    ap.add_argument("--compare-node", default=None,
                    help="another build of the node (e.g. before a change): its latency is measured in the same rounds")
    ap.add_argument("--examples", default=None, help="folder of the built examples (default: target/release/examples)")
    ap.add_argument("--requests", type=int, help="measured requests per latency figure (default 400; smoke 30)")
    ap.add_argument("--rounds", type=int, help="interleaved rounds the requests are split into (default 8; smoke 2)")
    ap.add_argument("--pause-ms", type=int, default=10, help="idle time between two requests (the 'paused' pacing)")
    ap.add_argument("--ttft-ms", type=float, default=0.0, help="emulator time to first token (latency model)")
    ap.add_argument("--chunk-delay-ms", type=float, default=1.0, help="emulator per-chunk delay (latency model)")
    ap.add_argument("--pieces", type=int, default=200, help="pieces per answer in the throughput runs")
    ap.add_argument("--relay-chunk-delay-ms", type=float, default=0.0, help="per-chunk delay in the unpaced throughput runs")
    ap.add_argument("--paced-chunk-delay-ms", type=float, default=10.0, help="per-chunk delay in the paced throughput run")
    ap.add_argument("--sessions", default="1,10,100", help="concurrent sessions of the throughput runs")
    ap.add_argument("--scenarios", default="default,deep_shm,paced", help="throughput scenarios to run")
    ap.add_argument("--targets", default="bridge,peer", help="what the throughput runs drive (bridge, peer)")
    ap.add_argument("--seconds", type=float, help="length of one throughput run (default 5; smoke 1)")
    ap.add_argument("--mem-sessions", type=int, help="sessions of the memory run (default 1000; smoke 100)")
    ap.add_argument("--mem-exchanges", type=int, help="exchanges per session of the memory run (default 20; smoke 5)")
    ap.add_argument("--startup-runs", type=int, help="start-ups timed (default 5; smoke 2)")
    ap.add_argument("--long-turns", type=int, help="turns of each long conversation (default 40; smoke 12)")
    ap.add_argument("--long-runs", type=int, help="long conversations through the bridge (default 3; smoke 1)")
    ap.add_argument("--long-today-runs", type=int, default=1, help="long conversations with the old trimming")
    ap.add_argument("--long-threads", type=int, default=1, help="llama.cpp threads of the long conversations")
    ap.add_argument("--long-limit", type=int, default=10, help="max_history_turns of the long conversations")
    ap.add_argument("--sentence-requests", type=int, help="requests of the sentence phase (default 200; smoke 30)")
    ap.add_argument("--warmup-runs", type=int, help="node starts per setting in the warmup phase (default 3; smoke 1)")
    ap.add_argument("--failover-trials", type=int, default=10, help="trials per failover scenario (smoke 3)")
    a = ap.parse_args()
    defaults = dict(requests=(30, 400), rounds=(2, 8), seconds=(1.0, 5.0), mem_sessions=(100, 1000),
                    mem_exchanges=(5, 20), startup_runs=(2, 5), long_turns=(12, 40), long_runs=(1, 3),
                    sentence_requests=(30, 200), warmup_runs=(1, 3))
    for key, (smoke, full) in defaults.items():
        if getattr(a, key) is None:
            setattr(a, key, smoke if a.smoke else full)
    a.only = [p.strip() for p in a.only.split(",") if p.strip()]
    a.sessions = [int(s) for s in a.sessions.split(",")]
    target = Path(os.environ.get("CARGO_TARGET_DIR", REPO / "target"))
    a.node = Path(a.node or target / "release/ollama_bridge")
    a.examples = Path(a.examples or target / "release/examples")
    a.python = sys.executable
    return a


class Bench:
    """Starts what a phase needs, measures, and collects everything into ``self.results``."""

    def __init__(self, a: argparse.Namespace, emu: EmulatorProcess):
        self.a, self.emu = a, emu
        self.out = Path(a.out)
        self.logs = self.out / "logs"
        self.logs.mkdir(parents=True, exist_ok=True)
        self.results: dict = {}
        self._names = 0

    def name(self, what: str) -> str:
        self._names += 1
        return f"{what}_{self._names}"

    # ---------------------------------------------------------------------------- the processes
    def bridge(self, ns: str, model: str, env: dict | None = None, node: str | None = None, **params) -> Proc:
        p = {"ollama_url": self.emu.url, "model": model, "system_prompt": SYSTEM_PROMPT, **params}
        return Proc(self.name("bridge"), [node or str(self.a.node), "--ros-args", "-r", f"__ns:={ns}", *param_args(p),
                                          *self.a.node_args.split()], self.logs, env)

    def peer(self, ns: str, model: str, env: dict | None = None) -> Proc:
        p = {"ollama_url": self.emu.url, "model": model, "system_prompt": SYSTEM_PROMPT}
        return Proc(self.name("peer"), [self.a.python, str(REPO / "benches/rclpy_peer_bridge.py"), "--ros-args",
                                        "-r", f"__ns:={ns}", *param_args(p)], self.logs, env)

    def echo(self, ns: str, spin: str = "wait") -> Proc:
        return Proc(self.name(f"echo_{spin}"), [str(self.a.examples / "echo_node"), "--spin", spin, "--ros-args",
                                                "-r", f"__ns:={ns}"], self.logs)

    def chunk_probe(self, ns: str, pid: int, prefix: str, sessions: int, pieces_per_answer: int,
                    seconds: float = 0.0, exchanges: int = 0, timeout: float = 10.0, env: dict | None = None) -> dict:
        args = [str(self.a.examples / "chunk_probe"), "--ns", ns, "--sessions", str(sessions), "--seconds",
                str(seconds), "--exchanges", str(exchanges), "--pieces", str(pieces_per_answer), "--pid", str(pid),
                "--other-pid", str(self.emu.proc.pid), "--prefix", prefix, "--request-timeout", str(timeout)]
        return run_json(args, timeout=600, env=env)

    # ---------------------------------------------------------------------------------- phases
    def startup(self):
        """Process start → every topic and service of the node discoverable by a client."""
        out = {"bridge": [], "echo": []}
        for i in range(self.a.startup_runs):
            for kind in ("bridge", "echo"):
                ns = f"/start_{kind}{i}"
                probe = ReadyProbe(ns, f"ready_{kind}{i}", services=kind == "bridge")
                proc = self.bridge(ns, "bench") if kind == "bridge" else self.echo(ns)
                try:
                    out[kind].append(probe.wait(proc))
                finally:
                    code = proc.stop()
                    probe.destroy()
                if code != 0:
                    raise RuntimeError(f"{proc.name} exited with {code} on SIGINT:\n{proc.log()[-2000:]}")
        self.results["startup"] = {k: summary(v) | {"values": v} for k, v in out.items()}
        print(f"[bench] startup: bridge ready in {max(out['bridge']) * 1e3:.0f} ms at most", flush=True)

    def throughput(self):
        """Sessions streaming 200-piece answers back to back: pieces relayed per second (counted in
        answer text: the bridge may publish several pieces in one message), pieces lost, CPU, RSS.
        Three scenarios: unpaced with Fast DDS defaults (what a user gets), unpaced with deeper
        shared-memory port queues (so the transport of the receiver is not the limit), and 100
        sessions paced like fast models (10 ms per piece each, 10,000 pieces/s offered) on defaults."""
        a = self.a
        n_pieces = len(pieces(relay_reply(a.pieces)))
        deep = {"FASTRTPS_DEFAULT_PROFILES_FILE": str(REPO / "benches/fastdds_deep_shm.xml")}
        scenarios = [("default", "relay", a.relay_chunk_delay_ms, {}, a.sessions),
                     ("deep_shm", "relay", a.relay_chunk_delay_ms, deep, a.sessions),
                     ("paced", "paced", a.paced_chunk_delay_ms, {}, [max(a.sessions)])]
        out = {"pieces": n_pieces, "seconds": a.seconds, "scenarios": {}}
        for name, model, delay, env, sessions in scenarios:
            if name not in a.scenarios.split(","):
                continue
            sc = out["scenarios"][name] = {"chunk_delay_ms": delay, "env": env, "runs": {"bridge": [], "peer": []}}
            # Both targets up at once (the idle one costs nothing) and their runs interleaved, so a
            # change in the machine's load during the phase hits both alike.
            procs = {}
            if "bridge" in a.targets:
                procs["bridge"] = self.bridge(f"/thr_{name}_bridge", model, env=env,
                                              max_concurrent_requests=max(100, max(sessions)))
            if "peer" in a.targets:
                procs["peer"] = self.peer(f"/thr_{name}_peer", model, env=env)
            try:
                for n in sessions:
                    for kind, proc in procs.items():
                        got = self.chunk_probe(f"/thr_{name}_{kind}", proc.pid, f"{name}{kind}{n}", n, n_pieces,
                                               seconds=a.seconds, timeout=5.0 + n_pieces * delay / 1e3, env=env)
                        got["rss_kb_now"] = rss_kb(proc.pid)
                        sc["runs"][kind].append(got)
                        print(f"[bench] throughput {name} {kind} x{n}: {got['pieces_per_s']:.0f} pieces/s in "
                              f"{got['messages_per_s']:.0f} messages/s, lost {got['pieces_lost']} pieces / "
                              f"{got['messages_lost']} messages / {got['inputs_lost']} inputs, cpu {got['cpu_pct']:.0f}%",
                              flush=True)
                        self.emu.clear_requests()
                for proc in procs.values():
                    proc.check()
            finally:
                for proc in procs.values():
                    proc.stop()
        self.results["throughput"] = out

    def memory(self):
        """RSS: a minimal r2r node, the bridge idle, and after many sessions with full histories."""
        a = self.a
        settle = 1.0 if a.smoke else 2.0
        out = {"sessions": a.mem_sessions, "exchanges": a.mem_exchanges, "answer_words": len(TALK_REPLY.split()),
               "history_text_bytes": a.mem_sessions * a.mem_exchanges * (60 + len(TALK_REPLY))}
        for kind in ("echo", "peer"):
            ns = f"/mem_{kind}"
            probe = ReadyProbe(ns, f"mem_ready_{kind}", services=False)
            proc = self.echo(ns) if kind == "echo" else self.peer(ns, "talk")
            try:
                probe.wait(proc)
                probe.destroy()
                time.sleep(settle)
                out[f"{kind}_idle_kb"] = rss_kb(proc.pid)
            finally:
                proc.stop()
        ns = "/mem_bridge"
        probe = ReadyProbe(ns, "mem_ready_bridge")
        proc = self.bridge(ns, "talk", max_sessions=max(1000, a.mem_sessions), max_history_turns=max(20, a.mem_exchanges))
        try:
            probe.wait(proc)
            probe.destroy()
            time.sleep(settle)
            out["bridge_idle_kb"] = rss_kb(proc.pid)
            n_pieces = len(pieces(TALK_REPLY))
            self.chunk_probe(ns, proc.pid, "one", 1, n_pieces, exchanges=1)
            time.sleep(settle)
            out["bridge_after_one_kb"] = rss_kb(proc.pid)
            t0 = time.monotonic()
            load = self.chunk_probe(ns, proc.pid, "mem", a.mem_sessions, n_pieces, exchanges=a.mem_exchanges, timeout=120)
            out["load"] = {k: v for k, v in load.items() if k != "ttfp_ms"}
            out["load_seconds"] = time.monotonic() - t0
            time.sleep(settle)
            out["bridge_after_kb"] = rss_kb(proc.pid)
            proc.check()
            print(f"[bench] memory: bridge idle {out['bridge_idle_kb'] / 1024:.1f} MB, after {a.mem_sessions}x"
                  f"{a.mem_exchanges} {out['bridge_after_kb'] / 1024:.1f} MB; echo {out['echo_idle_kb'] / 1024:.1f} MB",
                  flush=True)
        finally:
            proc.stop()
        self.results["memory"] = out


def relay_reply(n: int) -> str:
    return " ".join(WORDS[i % len(WORDS)] for i in range(n))


def main() -> int:
    a = options()
    if a.report_only:
        out = Path(a.out)
        print(f"[bench] {bench_report.write(json.loads((out / 'results.json').read_text()), out)}")
        return 0
    examples = [a.examples / e for e in ("echo_node", "direct_stream", "chunk_probe")] \
        if set(a.only) - {"long", "sentence", "warmup", "failover"} else []
    for binary in [a.node, *examples, *([Path(a.compare_node)] if a.compare_node else [])]:
        if not binary.exists():
            print(f"[bench] missing {binary}: run scripts/bench (it builds them)", file=sys.stderr)
            return 2
    models = {
        "bench": {"reply": LATENCY_REPLY, "ttft_ms": a.ttft_ms, "chunk_delay_ms": a.chunk_delay_ms},
        "relay": {"reply": relay_reply(a.pieces), "chunk_delay_ms": a.relay_chunk_delay_ms},
        "paced": {"reply": relay_reply(a.pieces), "chunk_delay_ms": a.paced_chunk_delay_ms},
        "talk": {"reply": TALK_REPLY},
    }
    started = time.time()
    meta = {"mode": "smoke" if a.smoke else "full", "started": time.strftime("%Y-%m-%d %H:%M:%S"),
            "cores": os.cpu_count(), "loadavg_start": loadavg(), "node": str(a.node),
            "ros_domain_id": os.environ["ROS_DOMAIN_ID"], "options": {k: str(v) for k, v in vars(a).items()},
            "models": models, "system_prompt": SYSTEM_PROMPT}
    print(f"[bench] {meta['mode']} run, ROS_DOMAIN_ID {meta['ros_domain_id']}, load {meta['loadavg_start']}", flush=True)
    rclpy.init()
    try:
        with EmulatorProcess(config={"models": models}, python=a.python, args=["--log-level", "WARNING"]) as emu:
            meta["emulator_pid"] = emu.proc.pid
            bench = Bench(a, emu)
            bench.results["meta"] = meta
            modules = {"latency": latency.run, "long": long_conversation.run, "sentence": speaking.sentence, "warmup": speaking.warmup,
                       "failover": failover.run}
            for phase in ("startup", "latency", "throughput", "memory", "long", "sentence", "warmup", "failover"):
                if phase in a.only:
                    modules[phase](bench) if phase in modules else getattr(bench, phase)()
                    emu.clear_requests()
    finally:
        rclpy.try_shutdown()
    meta["loadavg_end"] = loadavg()
    meta["seconds"] = time.time() - started
    out = Path(a.out)
    (out / "results.json").write_text(json.dumps(bench.results, indent=1))
    report = bench_report.write(bench.results, out)
    print(f"[bench] done in {meta['seconds']:.0f} s: {report} and {out / 'latency.png'}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
