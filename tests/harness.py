"""Real-ROS test harness: runs the real node binary and talks to it over real topics/services.

* `NodeProcess` starts the installed `ollama_bridge` binary in its own namespace, with a log file,
  and stops it with a signal, failing the test if it crashed, panicked or exited non-zero.
* `RosClient` is one rclpy node for the whole test session, spun on a background thread.
  `RosClient.endpoints(ns)` gives a `BridgeEndpoints`: publishers for the inputs, recorders of
  every output, clients of the services and of the parameter services, all under `ns`.

Every wait here waits for an event (a message, a match, a service, a process exit) with a
timeout; nothing sleeps a fixed time to synchronise.
"""
from __future__ import annotations

import itertools
import os
import signal
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import rclpy
from rclpy.executors import SingleThreadedExecutor
from rclpy.qos import QoSProfile, ReliabilityPolicy, HistoryPolicy
from rcl_interfaces.msg import Parameter, ParameterType, ParameterValue
from rcl_interfaces.srv import GetParameters, SetParameters
from std_msgs.msg import String
from ollama_bridge_msgs.msg import Response, ResponseChunk, Sentence, Utterance
from ollama_bridge_msgs.srv import Reset, SetModel

ROS_INSTALL = Path(os.environ.get("ROS_INSTALL", Path(__file__).resolve().parents[1] / ".build/install"))
# OB_NODE_BINARY runs another build (e.g. a work tree's target/release) against the same install prefix.
NODE_BINARY = Path(os.environ.get("OB_NODE_BINARY") or ROS_INSTALL / "lib/ollama_bridge/ollama_bridge")
# Deep, reliable queues on the test side so the probe itself never loses messages.
DEEP = QoSProfile(depth=10000, reliability=ReliabilityPolicy.RELIABLE, history=HistoryPolicy.KEEP_LAST)
_namespaces = itertools.count(1)


def fresh_namespace(prefix: str = "t") -> str:
    """A namespace no earlier test used, so lingering DDS endpoints never mix into a test."""
    return f"/{prefix}{os.getpid()}_{next(_namespaces)}"


def wait_until(predicate, timeout: float, what: str, poll: threading.Condition | None = None):
    """Waits for `predicate()` to be truthy; with `poll` (a Condition notified on every change)
    it wakes on events, else it re-checks every 20 ms. Raises AssertionError naming `what`."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        left = deadline - time.monotonic()
        if left <= 0:
            raise AssertionError(f"timed out after {timeout:.1f}s waiting for {what}")
        if poll is not None:
            with poll:
                poll.wait(min(left, 0.05))
        else:
            time.sleep(min(left, 0.02))


class NodeProcess:
    """The real `ollama_bridge` binary, started with `--ros-args`."""

    def __init__(self, namespace: str, params: dict, log_dir: Path, extra_env: dict | None = None,
                 extra_args: list[str] | None = None):
        self.namespace = namespace
        self.log_path = log_dir / f"node{namespace.replace('/', '_') or '_root'}_{id(self)}.log"
        args = [str(NODE_BINARY), "--ros-args", "-r", f"__ns:={namespace or '/'}", *param_args(params)]
        args += extra_args or []
        env = dict(os.environ, **(extra_env or {}))
        self._log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(args, stdout=self._log, stderr=subprocess.STDOUT, env=env,
                                     start_new_session=True)

    def log(self) -> str:
        if not self._log.closed:
            self._log.flush()
        return self.log_path.read_text(errors="replace")

    def alive(self) -> bool:
        return self.proc.poll() is None

    def stop(self, sig=signal.SIGINT, timeout: float = 10.0) -> int:
        """Signals the node and waits for it; returns its exit code."""
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                raise AssertionError(f"node did not exit within {timeout}s of {sig!r}:\n{self.log()[-3000:]}")
        self._log.close()
        return self.proc.returncode

    def assert_healthy(self):
        text = self.log()
        assert "panicked" not in text, f"node panicked:\n{text[-4000:]}"
        assert self.alive(), f"node exited with {self.proc.returncode}:\n{text[-4000:]}"


def param_args(params: dict) -> list[str]:
    """``-p name:=value`` pairs for ``--ros-args``. Values are YAML there: strings are quoted so
    that "{}" or "0" stay strings."""
    out = []
    for key, value in params.items():
        if isinstance(value, bool):
            text = "true" if value else "false"
        elif isinstance(value, str):
            text = "'" + value.replace("'", "''") + "'"
        else:
            text = str(value)
        out += ["-p", f"{key}:={text}"]
    return out


@dataclass
class Recorder:
    """Every message of one topic, in arrival order, with a condition to wait on."""
    messages: list = field(default_factory=list)
    cond: threading.Condition = field(default_factory=threading.Condition)

    def __call__(self, msg):
        with self.cond:
            self.messages.append(msg)
            self.cond.notify_all()

    def clear(self):
        with self.cond:
            self.messages.clear()

    def snapshot(self) -> list:
        with self.cond:
            return list(self.messages)

    def wait_count(self, n: int, timeout: float, what: str) -> list:
        wait_until(lambda: len(self.messages) >= n, timeout, f"{n} {what} (have {len(self.messages)})", self.cond)
        return self.snapshot()


class BridgeEndpoints:
    """The node's topics and services as seen from the test, under one namespace."""

    def __init__(self, client: "RosClient", ns: str):
        node = client.node
        self.client, self.ns = client, ns
        self.partials, self.finals, self.texts = Recorder(), Recorder(), Recorder()
        self.speech_pub = node.create_publisher(String, f"{ns}/speech_text", DEEP)
        self.utterance_pub = node.create_publisher(Utterance, f"{ns}/utterance", DEEP)
        self.subs = [
            node.create_subscription(ResponseChunk, f"{ns}/response_partial", self.partials, DEEP),
            node.create_subscription(Response, f"{ns}/response_final", self.finals, DEEP),
            node.create_subscription(String, f"{ns}/response_text", self.texts, DEEP),
        ]
        self.reset_client = node.create_client(Reset, f"{ns}/reset")
        self.set_model_client = node.create_client(SetModel, f"{ns}/set_model")
        self.set_params_client = node.create_client(SetParameters, f"{ns}/ollama_bridge/set_parameters")
        self.get_params_client = node.create_client(GetParameters, f"{ns}/ollama_bridge/get_parameters")

    def wait_ready(self, timeout: float = 20.0):
        """Until the node's inputs, outputs and services are all matched with ours, and one of its
        responses has reached us (see `settle`)."""
        wait_until(lambda: self.speech_pub.get_subscription_count() >= 1
                   and self.utterance_pub.get_subscription_count() >= 1
                   and all(s.get_publisher_count() >= 1 for s in self.subs)
                   and self.reset_client.service_is_ready() and self.set_model_client.service_is_ready()
                   and self.set_params_client.service_is_ready(),
                   timeout, f"the node's topics and services under {self.ns}")
        self.settle(timeout)

    def settle(self, timeout: float = 20.0):
        """Discovery is seen from our side only: our reader of `response_final` can know the
        node's writer before that writer knows our reader, and a final published in that window
        is lost (volatile durability). So an input the node refuses at once (a control character
        in the session id: no Ollama request, no history) is repeated until its error response
        arrives; then every recorder is emptied. Reliable delivery is in order, so no earlier
        probe's response can come later."""
        deadline = time.monotonic() + timeout
        for k in itertools.count():
            prompt = f"probe {k}"
            self.utter("\x01probe", prompt)
            try:
                wait_until(lambda: any(f.prompt == prompt for f in self.finals.snapshot()), 0.5,
                           "a probe's final", self.finals.cond)
                break
            except AssertionError:
                if time.monotonic() > deadline:
                    raise AssertionError(f"the node's response_final did not reach the test within {timeout}s")
        for recorder in (self.finals, self.partials, self.texts):
            recorder.clear()

    def say(self, text: str):
        self.speech_pub.publish(String(data=text))

    def utter(self, session_id: str, text: str):
        self.utterance_pub.publish(Utterance(session_id=session_id, text=text))

    def wait_finals(self, n: int, timeout: float = 30.0) -> list:
        return self.finals.wait_count(n, timeout, "final responses")

    def partials_of(self, request_id: int) -> list:
        return [p for p in self.partials.snapshot() if p.request_id == request_id]

    def call(self, client, request, timeout: float = 15.0):
        future = client.call_async(request)
        done = threading.Event()
        future.add_done_callback(lambda _f: done.set())
        assert done.wait(timeout), f"service {client.srv_name} did not answer within {timeout}s"
        return future.result()

    def reset(self, session_id: str = ""):
        return self.call(self.reset_client, Reset.Request(session_id=session_id))

    def set_model(self, model: str):
        return self.call(self.set_model_client, SetModel.Request(model=model))

    def set_params(self, **values):
        """Like `ros2 param set`: returns the list of SetParametersResult."""
        params = [Parameter(name=k, value=_param_value(v)) for k, v in values.items()]
        return self.call(self.set_params_client, SetParameters.Request(parameters=params)).results

    def get_params(self, *names):
        values = self.call(self.get_params_client, GetParameters.Request(names=list(names))).values
        return [_from_param_value(v) for v in values]

    def destroy(self):
        node = self.client.node
        for entity in (self.speech_pub, self.utterance_pub):
            node.destroy_publisher(entity)
        for sub in self.subs:
            node.destroy_subscription(sub)
        for c in (self.reset_client, self.set_model_client, self.set_params_client, self.get_params_client):
            node.destroy_client(c)


class SpeechTopics:
    """`response_sentence` and `response_sentence_text` of one namespace, and for event-order
    checks one log of every partial, sentence and final in arrival order (`events`: ("partial" |
    "sentence" | "final", msg)). Create it before the node starts, then `settle` it."""

    def __init__(self, client: "RosClient", ns: str):
        node = client.node
        self.client, self.ns = client, ns
        self.sentences, self.texts, self.events = Recorder(), Recorder(), Recorder()
        self.subs = [
            node.create_subscription(Sentence, f"{ns}/response_sentence", self._sentence, DEEP),
            node.create_subscription(String, f"{ns}/response_sentence_text", self.texts, DEEP),
            node.create_subscription(ResponseChunk, f"{ns}/response_partial", lambda m: self.events(("partial", m)), DEEP),
            node.create_subscription(Response, f"{ns}/response_final", lambda m: self.events(("final", m)), DEEP),
        ]

    def _sentence(self, msg):
        self.sentences(msg)
        self.events(("sentence", msg))

    def settle(self, ep: BridgeEndpoints, timeout: float = 20.0):
        """Like `BridgeEndpoints.settle` for the sentence topics (volatile, so one published before
        the node's writer knew our reader is lost): asks in session `sentence-probe` until a
        sentence of the answer arrives, then empties every recorder (`ep`'s too). Needs a
        server that answers."""
        deadline = time.monotonic() + timeout
        for k in itertools.count():
            ep.utter("sentence-probe", f"sentence probe {k}")
            final = ep.wait_finals(1, timeout)[-1]
            try:
                # all of the probe's sentences (joined, they are its response_text), on both topics
                wait_until(lambda: ep.texts.snapshot() and len(self.texts.snapshot()) == len(self.of(final.request_id))
                           and " ".join(s.text for s in self.of(final.request_id)) == ep.texts.snapshot()[-1].data,
                           0.5, "a probe's sentences", self.sentences.cond)
                break
            except AssertionError:
                if time.monotonic() > deadline:
                    raise AssertionError(f"no response_sentence under {self.ns} within {timeout}s")
                ep.finals.clear()
        for recorder in (self.sentences, self.texts, self.events, ep.finals, ep.partials, ep.texts):
            recorder.clear()

    def of(self, request_id: int) -> list:
        """The sentences of one request, in arrival order."""
        return [s for s in self.sentences.snapshot() if s.request_id == request_id]

    def wait_for(self, final, n: int | None = None, timeout: float = 10.0) -> list:
        """The sentences of `final`'s request once `n` arrived (default: until its sentences
        joined cover its text, checked by the caller; here: at least one)."""
        return wait_until(lambda: (lambda got: got if len(got) >= (n or 1) else None)(self.of(final.request_id)),
                          timeout, f"{n or 1} sentence(s) of request {final.request_id}", self.sentences.cond)

    def destroy(self):
        for sub in self.subs:
            self.client.node.destroy_subscription(sub)


def _param_value(v) -> ParameterValue:
    if isinstance(v, bool):
        return ParameterValue(type=ParameterType.PARAMETER_BOOL, bool_value=v)
    if isinstance(v, int):
        return ParameterValue(type=ParameterType.PARAMETER_INTEGER, integer_value=v)
    if isinstance(v, float):
        return ParameterValue(type=ParameterType.PARAMETER_DOUBLE, double_value=v)
    return ParameterValue(type=ParameterType.PARAMETER_STRING, string_value=str(v))


def _from_param_value(v: ParameterValue):
    return {ParameterType.PARAMETER_BOOL: v.bool_value, ParameterType.PARAMETER_INTEGER: v.integer_value,
            ParameterType.PARAMETER_DOUBLE: v.double_value,
            ParameterType.PARAMETER_STRING: v.string_value}.get(v.type)


class RosClient:
    """One rclpy node for the test session, spinning on a background thread."""

    def __init__(self):
        rclpy.init()
        self.node = rclpy.create_node(f"ob_test_{os.getpid()}")
        self.executor = SingleThreadedExecutor()
        self.executor.add_node(self.node)
        self._thread = threading.Thread(target=self._spin, daemon=True)
        self._stop = threading.Event()
        self._thread.start()

    def _spin(self):
        while not self._stop.is_set() and rclpy.ok():
            self.executor.spin_once(timeout_sec=0.05)

    def endpoints(self, ns: str) -> BridgeEndpoints:
        return BridgeEndpoints(self, ns)

    def close(self):
        self._stop.set()
        self._thread.join(5)
        self.node.destroy_node()
        rclpy.shutdown()
