"""The ROS side of a replay: one rclpy node, spun on a background thread, that publishes into a
running ollama_bridge, subscribes to everything it publishes (serialized, for the output bag, and
decoded, for the player), and calls its reset and parameter services.

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

from . import EvalError
from .msgtypes import OUTPUT_TOPICS, QUEUE_DEPTH, STRING, join_topic

QOS = QoSProfile(depth=QUEUE_DEPTH, reliability=ReliabilityPolicy.RELIABLE, history=HistoryPolicy.KEEP_LAST)
_CLASSES = {"response_partial": ResponseChunk, "response_final": Response, "response_text": String}

#: listener(relative_topic, decoded message, monotonic receive time)
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


class BridgeLink:
    """Publisher into, subscriptions to, and service clients of the bridge under ``namespace``."""

    def __init__(self, namespace: str, input_type: str, listener: Listener, sink: Sink,
                 node_name: str = "ollama_bridge"):
        self.namespace, self.node_name = namespace, node_name
        self.listener, self.sink = listener, sink
        # No rclpy signal handlers: Ctrl-C must not shut ROS down before the parameters are restored.
        rclpy.init(args=[], signal_handler_options=SignalHandlerOptions.NO)
        self.node = rclpy.create_node(f"ollama_bridge_eval_{os.getpid()}")
        self.input_class = String if input_type == STRING else UtteranceMsg
        self.input_topic = join_topic(namespace, "speech_text" if input_type == STRING else "utterance")
        self.input_pub = self.node.create_publisher(self.input_class, self.input_topic, QOS)
        self.subs = {rel: self.node.create_subscription(_CLASSES[rel], join_topic(namespace, rel),
                                                        self._receiver(rel), QOS, raw=True)
                     for rel in OUTPUT_TOPICS}
        services = join_topic(namespace, node_name)
        self.reset_client = self.node.create_client(Reset, join_topic(namespace, "reset"))
        self.get_params_client = self.node.create_client(GetParameters, f"{services}/get_parameters")
        self.set_params_client = self.node.create_client(SetParameters, f"{services}/set_parameters")
        self.executor = SingleThreadedExecutor()
        self.executor.add_node(self.node)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._spin, name="ros-spin", daemon=True)
        self._thread.start()

    def _spin(self):
        while not self._stop.is_set() and rclpy.ok():
            self.executor.spin_once(timeout_sec=0.05)

    def _receiver(self, rel: str):
        topic, cls = join_topic(self.namespace, rel), _CLASSES[rel]

        def receive(raw: bytes):
            wall, mono = time.time_ns(), time.monotonic()
            self.sink(topic, wall, bytes(raw))
            self.listener(rel, deserialize_message(raw, cls), mono)
        return receive

    # ------------------------------------------------------------------------------ readiness
    def missing(self, need_reset: bool, need_params: bool) -> list[str]:
        """What of the bridge is not (yet) matched with us; empty when all is."""
        gaps = []
        if self.input_pub.get_subscription_count() < 1:
            gaps.append(f"nothing subscribes to {self.input_topic}")
        gaps += [f"nothing publishes {join_topic(self.namespace, rel)}"
                 for rel, sub in self.subs.items() if sub.get_publisher_count() < 1]
        if need_reset and not self.reset_client.service_is_ready():
            gaps.append(f"no service {self.reset_client.srv_name}")
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
            raise EvalError(f"no ollama_bridge answering under namespace '{self.namespace or '/'}' within "
                            f"{timeout:g}s ({'; '.join(gaps)}); start the node first")

    def still_there(self) -> bool:
        """Whether the bridge's input and final-response endpoints are still matched."""
        return (self.input_pub.get_subscription_count() >= 1
                and self.subs["response_final"].get_publisher_count() >= 1)

    # ------------------------------------------------------------------------------- inputs
    def publish(self, session_id: str, text: str) -> tuple[int, float]:
        """Sends one input; returns (wall-clock ns, monotonic s) of the send. The serialized
        message goes to the sink too, so the output bag shows what was played."""
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

    def reset(self, timeout: float):
        """Clears every session of the bridge (Reset with an empty session id)."""
        answer = self._call(self.reset_client, Reset.Request(session_id=""), timeout)
        if not answer.success:
            raise EvalError(f"the bridge refused the reset: {answer.message}")

    def get_string_param(self, name: str, timeout: float) -> str:
        """One string parameter of the bridge node."""
        [value] = self._call(self.get_params_client, GetParameters.Request(names=[name]), timeout).values
        if value.type != ParameterType.PARAMETER_STRING:
            raise EvalError(f"parameter {name} of {self.get_params_client.srv_name.rsplit('/', 1)[0]} "
                            "is not a string (wrong node?)")
        return value.string_value

    def set_string_param(self, name: str, value: str, timeout: float):
        """Sets one string parameter, like ``ros2 param set``; EvalError when refused."""
        param = Parameter(name=name, value=ParameterValue(type=ParameterType.PARAMETER_STRING, string_value=value))
        [result] = self._call(self.set_params_client, SetParameters.Request(parameters=[param]), timeout).results
        if not result.successful:
            raise EvalError(f"the bridge refused {name}={value!r}: {' '.join(result.reason.split())}")

    def close(self):
        """Stops spinning and shuts rclpy down."""
        self._stop.set()
        self._thread.join(5)
        self.executor.shutdown()
        self.node.destroy_node()
        if rclpy.ok():
            rclpy.shutdown()
