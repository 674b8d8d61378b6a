"""The ROS side of a replay: one rclpy node, spun on a background thread, that finds the running
ollama_bridge in the ROS graph (:mod:`~ollama_bridge_eval.graph`), publishes into its input,
subscribes to everything it publishes (serialized, for the output bag, and decoded, for the
player), and calls its reset and parameter services.

Every wait here waits for an event (a match, a service, a reply) with a deadline.
"""
from __future__ import annotations

import os
import threading
import time
from typing import Callable

import rclpy
from rclpy.executors import SingleThreadedExecutor
from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy
from rclpy.serialization import deserialize_message, serialize_message
from rclpy.signals import SignalHandlerOptions
from rcl_interfaces.msg import Parameter, ParameterType, ParameterValue
from rcl_interfaces.srv import GetParameters, SetParameters
from std_msgs.msg import String
from ollama_bridge_msgs.msg import Response, ResponseChunk, Utterance as UtteranceMsg
from ollama_bridge_msgs.srv import Reset

from . import EvalError, graph
from .msgtypes import QUEUE_DEPTH

QOS = QoSProfile(depth=QUEUE_DEPTH, reliability=ReliabilityPolicy.RELIABLE, history=HistoryPolicy.KEEP_LAST)
_CLASSES = {"response_partial": ResponseChunk, "response_final": Response, "response_text": String}

#: listener(role, decoded message, monotonic receive time)
Listener = Callable[[str, object, float], None]
#: sink(absolute_topic, wall-clock ns, serialized CDR bytes)
Sink = Callable[[str, int, bytes], None]


def wait_for(predicate, timeout: float, interval: float = 0.02):
    """``predicate()``'s first truthy value, or None when ``timeout`` passed."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value or time.monotonic() >= deadline:
            return value
        time.sleep(min(interval, max(0.0, deadline - time.monotonic())))


class RosNode:
    """An rclpy node of this tool, spinning on a background thread until :meth:`close`."""

    def __init__(self, role: str):
        # No rclpy signal handlers: Ctrl-C must not shut ROS down before the parameters are restored.
        rclpy.init(args=[], signal_handler_options=SignalHandlerOptions.NO)
        self.node = rclpy.create_node(f"ollama_bridge_{role}_{os.getpid()}")
        self.executor = SingleThreadedExecutor()
        self.executor.add_node(self.node)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._spin, name="ros-spin", daemon=True)
        self._thread.start()

    def _spin(self):
        while not self._stop.is_set() and rclpy.ok():
            self.executor.spin_once(timeout_sec=0.05)

    def close(self):
        """Stops spinning and shuts rclpy down."""
        self._stop.set()
        self._thread.join(5)
        self.executor.shutdown()
        self.node.destroy_node()
        if rclpy.ok():
            rclpy.shutdown()


class BridgeLink(RosNode):
    """Publisher into, subscriptions to, and service clients of the bridge found as ``endpoints``.

    ``input_role`` is ``utterance`` (sessions of the tool's own) or ``speech_text``; the outputs
    of sessions not in ``sessions`` (a set, filled as the replay goes) reach neither the listener
    nor the sink, except ``response_text``, which carries no session."""

    def __init__(self, listener: Listener, sink: Sink):
        super().__init__("eval")
        self.listener, self.sink = listener, sink
        self.sessions: set[str] = set()
        self.endpoints: graph.Endpoints | None = None

    def locate(self, name: str, namespace: str | None, remaps: dict[str, str], need_reset: bool,
               timeout: float) -> graph.Endpoints:
        """Finds the bridge in the graph (see :func:`ollama_bridge_eval.graph.find`)."""
        need = graph.OUTPUTS + (("reset",) if need_reset else ())
        return graph.find(self.node, name, namespace, remaps, need, timeout)

    def attach(self, endpoints: graph.Endpoints, input_role: str):
        """Creates the input publisher, the output subscriptions and the service clients."""
        self.endpoints, self.input_role = endpoints, input_role
        self.input_class = UtteranceMsg if input_role == "utterance" else String
        self.input_topic = endpoints[input_role]
        self.input_pub = self.node.create_publisher(self.input_class, self.input_topic, QOS)
        self.subs = {role: self.node.create_subscription(_CLASSES[role], endpoints[role], self._receiver(role),
                                                         QOS, raw=True)
                     for role in graph.OUTPUTS}
        self.reset_client = self.node.create_client(Reset, endpoints["reset"]) if endpoints["reset"] else None
        self.get_params_client = self.node.create_client(GetParameters, f"{endpoints.fqn}/get_parameters")
        self.set_params_client = self.node.create_client(SetParameters, f"{endpoints.fqn}/set_parameters")

    def _receiver(self, role: str):
        topic, cls = self.endpoints[role], _CLASSES[role]

        def receive(raw: bytes):
            wall, mono = time.time_ns(), time.monotonic()
            msg = deserialize_message(raw, cls)
            if role != "response_text" and msg.session_id not in self.sessions:
                return                              # another conversation: not ours to record
            self.sink(topic, wall, bytes(raw))
            self.listener(role, msg, mono)
        return receive

    # ------------------------------------------------------------------------------ readiness
    def missing(self, need_reset: bool, need_params: bool) -> list[str]:
        """What of the bridge is not (yet) matched with us; empty when all is."""
        gaps = []
        if self.input_pub.get_subscription_count() < 1:
            gaps.append(f"nothing subscribes to {self.input_topic}")
        gaps += [f"nothing publishes {self.endpoints[role]}"
                 for role, sub in self.subs.items() if sub.get_publisher_count() < 1]
        if need_reset and not (self.reset_client and self.reset_client.service_is_ready()):
            gaps.append(f"no service {self.endpoints['reset']}")
        if need_params and not (self.get_params_client.service_is_ready()
                                and self.set_params_client.service_is_ready()):
            gaps.append(f"no service {self.set_params_client.srv_name}")
        return gaps

    def wait_ready(self, timeout: float, need_reset: bool, need_params: bool):
        """Until the bridge's input, outputs and the services we need are matched, else EvalError."""
        if wait_for(lambda: not self.missing(need_reset, need_params), timeout):
            return
        gaps = self.missing(need_reset, need_params)
        if gaps:
            raise EvalError(f"no ollama_bridge answering under namespace '{self.endpoints.namespace or '/'}' "
                            f"within {timeout:g}s ({'; '.join(gaps)}); start the node first")

    def still_there(self) -> bool:
        """Whether the bridge's input and final-response endpoints are still matched."""
        return (self.input_pub.get_subscription_count() >= 1
                and self.subs["response_final"].get_publisher_count() >= 1)

    # ------------------------------------------------------------------------------- inputs
    def publish(self, session_id: str, text: str) -> tuple[int, float]:
        """Sends one input to ``session_id`` (ignored on the speech input: that is ``default``);
        returns (wall-clock ns, monotonic s) of the send. The serialized message goes to the sink
        too, so the output bag shows what was played."""
        self.sessions.add(session_id)
        if self.input_class is String:
            msg = String(data=text)
        else:
            msg = UtteranceMsg(session_id=session_id, text=text)
        wall, mono = time.time_ns(), time.monotonic()
        self.input_pub.publish(msg)
        self.sink(self.input_topic, wall, serialize_message(msg))
        return wall, mono

    # ----------------------------------------------------------------------------- services
    def _call(self, client, request, timeout: float):
        if not client.wait_for_service(timeout_sec=timeout):
            raise EvalError(f"service {client.srv_name} is not available")
        future = client.call_async(request)
        done = threading.Event()
        future.add_done_callback(lambda _f: done.set())
        if not done.wait(timeout):
            raise EvalError(f"service {client.srv_name} did not answer within {timeout:g}s")
        return future.result()

    def reset(self, session_id: str, timeout: float):
        """Clears one session of the bridge (its history, and its history file)."""
        if not session_id:
            raise EvalError("refusing to reset every session of the bridge")
        answer = self._call(self.reset_client, Reset.Request(session_id=session_id), timeout)
        if not answer.success:
            raise EvalError(f"the bridge refused to reset session {session_id!r}: {answer.message}")

    def get_string_param(self, name: str, timeout: float) -> str:
        """One string parameter of the bridge node."""
        [value] = self._call(self.get_params_client, GetParameters.Request(names=[name]), timeout).values
        if value.type != ParameterType.PARAMETER_STRING:
            raise EvalError(f"parameter {name} of {self.endpoints.fqn} is not a string (wrong node?)")
        return value.string_value

    def set_string_param(self, name: str, value: str, timeout: float):
        """Sets one string parameter, like ``ros2 param set``; EvalError when refused."""
        param = Parameter(name=name, value=ParameterValue(type=ParameterType.PARAMETER_STRING, string_value=value))
        [result] = self._call(self.set_params_client, SetParameters.Request(parameters=[param]), timeout).results
        if not result.successful:
            raise EvalError(f"the bridge refused {name}={value!r}: {' '.join(result.reason.split())}")
