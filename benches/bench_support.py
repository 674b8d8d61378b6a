"""Pieces of ``benches/bench.py``: the processes under test, /proc readings, percentiles, and the
rclpy side (a latency probe that times publish → first ``response_partial``, and a readiness probe).

Import this only after setting a private ROS domain (``bench.py`` does). Every wait has a deadline
and waits for a message, a match or a process; discovery is re-checked every millisecond.
"""
from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import time
from pathlib import Path

import rclpy
from rclpy.executors import SingleThreadedExecutor
from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy
from rcl_interfaces.srv import GetParameters, SetParameters
from std_msgs.msg import String
from ollama_bridge_msgs.msg import Response, ResponseChunk, Utterance
from ollama_bridge_msgs.srv import Reset, SetModel

# The probe's own queues are deep and reliable: the probe must never be what loses a message.
DEEP = QoSProfile(depth=10000, reliability=ReliabilityPolicy.RELIABLE, history=HistoryPolicy.KEEP_LAST)
CLK_TCK = os.sysconf("SC_CLK_TCK")
# The system prompt of every bridge, peer and direct client of the benchmarks.
SYSTEM_PROMPT = "You are a helpful robot. Answer in one or two short sentences."


# ----------------------------------------------------------------------------------- /proc, stats
def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process, in seconds."""
    with open(f"/proc/{pid}/stat") as fh:
        fields = fh.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def rss_kb(pid: int) -> int:
    """Resident set size, kB."""
    with open(f"/proc/{pid}/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def loadavg() -> str:
    with open("/proc/loadavg") as fh:
        return " ".join(fh.read().split()[:3])


def pct(values: list[float], p: float) -> float:
    """The p-th percentile, linear between closest ranks (numpy's default)."""
    if not values:
        return float("nan")
    v = sorted(values)
    k = (len(v) - 1) * p / 100.0
    lo, hi = math.floor(k), math.ceil(k)
    return v[lo] + (v[hi] - v[lo]) * (k - lo)


def summary(values: list[float]) -> dict:
    return {"n": len(values), "p50": pct(values, 50), "p95": pct(values, 95), "p99": pct(values, 99),
            "min": min(values) if values else float("nan"), "max": max(values) if values else float("nan")}


# --------------------------------------------------------------------------------------- processes
class Proc:
    """A process under test, its output in a log file, stopped with SIGINT (then SIGKILL)."""

    def __init__(self, name: str, args: list[str], log_dir: Path, env: dict | None = None):
        self.name = name
        self.log_path = log_dir / f"{name}.log"
        self._log = open(self.log_path, "wb")
        self.started = time.monotonic()
        # Same session as the bench (no setsid): with the kernel's scheduler autogroups, a process in
        # a session of its own gets a CPU share as a group, which on 2 cores squeezes the emulator and
        # the probe into the other half and makes the probe, not the target, lose messages.
        self.proc = subprocess.Popen(args, stdout=self._log, stderr=subprocess.STDOUT,
                                     env=dict(os.environ, **(env or {})))

    @property
    def pid(self) -> int:
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc.poll() is None

    def log(self) -> str:
        if not self._log.closed:
            self._log.flush()
        return self.log_path.read_text(errors="replace")

    def check(self):
        if not self.alive():
            raise RuntimeError(f"{self.name} exited with {self.proc.returncode}:\n{self.log()[-2000:]}")

    def stop(self, timeout: float = 10.0) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()
        return self.proc.returncode


def run_json(args: list[str], timeout: float, env: dict | None = None) -> dict:
    """Runs a measuring program that prints one JSON line; raises with its stderr on failure."""
    done = subprocess.run(args, capture_output=True, text=True, timeout=timeout, env=dict(os.environ, **(env or {})))
    if done.returncode != 0:
        raise RuntimeError(f"{Path(args[0]).name} failed ({done.returncode}):\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


# ------------------------------------------------------------------------------------------ rclpy
class Probe:
    """An rclpy node of its own (own executor, so a wait set holds only its entities) that talks to
    one target under ``ns``: publishes ``utterance``, listens to ``response_partial``/``_final``."""

    def __init__(self, ns: str, name: str):
        self.node = rclpy.create_node(name)
        self.executor = SingleThreadedExecutor()
        self.executor.add_node(self.node)
        self.pub = self.node.create_publisher(Utterance, f"{ns}/utterance", DEEP)
        self.subs = [self.node.create_subscription(ResponseChunk, f"{ns}/response_partial", self._partial, DEEP),
                     self.node.create_subscription(Response, f"{ns}/response_final", self._final, DEEP)]
        self.current, self.t_first, self.t_final, self.final = None, None, None, None

    def _partial(self, msg):
        if msg.session_id == self.current and self.t_first is None:
            self.t_first = time.perf_counter_ns()

    def _final(self, msg):
        if msg.session_id == self.current:
            self.t_final, self.final = time.perf_counter_ns(), msg

    def wait_matched(self, timeout: float = 30.0):
        deadline = time.monotonic() + timeout
        while not (self.pub.get_subscription_count() >= 1 and all(s.get_publisher_count() >= 1 for s in self.subs)):
            if time.monotonic() > deadline:
                raise RuntimeError(f"probe {self.node.get_name()}: target not matched within {timeout}s")
            self.executor.spin_once(timeout_sec=0.01)

    def one(self, session: str, text: str, timeout: float = 10.0) -> tuple[float, float]:
        """Publishes one utterance; returns (ms to the first partial, ms to the final)."""
        self.current, self.t_first, self.t_final, self.final = session, None, None, None
        t0 = time.perf_counter_ns()
        self.pub.publish(Utterance(session_id=session, text=text))
        deadline = time.monotonic() + timeout
        while self.final is None:
            if time.monotonic() > deadline:
                raise RuntimeError(f"no final for {session} within {timeout}s")
            self.executor.spin_once(timeout_sec=0.5)
        # DDS does not order two topics: the first partial can arrive after the final (most likely
        # when the bridge published the rest of the answer at once, right after it).
        while self.t_first is None and self.final.chunk_count > 0 and time.monotonic() < deadline:
            self.executor.spin_once(timeout_sec=0.05)
        if self.final.done_reason in ("error", "cancelled") or self.t_first is None:
            raise RuntimeError(f"{session}: {self.final.done_reason} {self.final.error}")
        return (self.t_first - t0) / 1e6, (self.t_final - t0) / 1e6

    def destroy(self):
        self.executor.remove_node(self.node)
        self.node.destroy_node()


class ReadyProbe:
    """Everything a user of the bridge under ``ns`` needs, to time "all topics and services
    discoverable" from the process start."""

    def __init__(self, ns: str, name: str, services: bool = True):
        self.node = rclpy.create_node(name)
        n = self.node
        self.pubs = [n.create_publisher(String, f"{ns}/speech_text", DEEP),
                     n.create_publisher(Utterance, f"{ns}/utterance", DEEP)] if services else \
                    [n.create_publisher(Utterance, f"{ns}/utterance", DEEP)]
        self.subs = [n.create_subscription(ResponseChunk, f"{ns}/response_partial", lambda _m: None, DEEP),
                     n.create_subscription(Response, f"{ns}/response_final", lambda _m: None, DEEP)]
        if services:
            self.subs.append(n.create_subscription(String, f"{ns}/response_text", lambda _m: None, DEEP))
        self.clients = [n.create_client(Reset, f"{ns}/reset"), n.create_client(SetModel, f"{ns}/set_model"),
                        n.create_client(GetParameters, f"{ns}/ollama_bridge/get_parameters"),
                        n.create_client(SetParameters, f"{ns}/ollama_bridge/set_parameters")] if services else []

    def ready(self) -> bool:
        return (all(p.get_subscription_count() >= 1 for p in self.pubs)
                and all(s.get_publisher_count() >= 1 for s in self.subs)
                and all(c.service_is_ready() for c in self.clients))

    def wait(self, proc: Proc, timeout: float = 30.0) -> float:
        """Seconds from the process start until ready (checked every millisecond)."""
        deadline = time.monotonic() + timeout
        while not self.ready():
            proc.check()
            if time.monotonic() > deadline:
                raise RuntimeError(f"{proc.name} not ready within {timeout}s:\n{proc.log()[-2000:]}")
            time.sleep(0.001)
        return time.monotonic() - proc.started

    def destroy(self):
        self.node.destroy_node()
