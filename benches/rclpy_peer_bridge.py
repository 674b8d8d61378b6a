"""A peer baseline for the benchmarks: the ROS 2 ↔ Ollama bridge as users usually write it in
Python. rclpy, the official ollama-python client, ``chat(stream=True)`` inside the subscription
callback, one ``response_partial`` per streamed piece and one ``response_final`` at the end (with
``chunk_count``, so the bench's probe can count lost messages as for the bridge), default
queue depth 10, a per-session history list, ``rclpy.spin`` (a single-threaded executor).

It speaks the bridge's topics and message types so the same probes drive both:

    python benches/rclpy_peer_bridge.py --ros-args -r __ns:=/peer -p ollama_url:=http://127.0.0.1:11434 \
        -p model:=llama3.2

Not a product: ``scripts/bench`` starts it to show what the Rust node saves over this.
"""
from __future__ import annotations

import rclpy
from ollama import Client
from rclpy.executors import ExternalShutdownException
from rclpy.node import Node

from ollama_bridge_msgs.msg import Response, ResponseChunk, Utterance


class PeerBridge(Node):
    def __init__(self):
        super().__init__("rclpy_peer_bridge")
        self.model = self.declare_parameter("model", "llama3.2").value
        self.system_prompt = self.declare_parameter("system_prompt", "You are a helpful robot.").value
        self.max_turns = self.declare_parameter("max_history_turns", 20).value
        self.client = Client(host=self.declare_parameter("ollama_url", "http://127.0.0.1:11434").value)
        self.history: dict[str, list[dict]] = {}
        self.request_id = 0
        self.partial_pub = self.create_publisher(ResponseChunk, "response_partial", 10)
        self.final_pub = self.create_publisher(Response, "response_final", 10)
        self.create_subscription(Utterance, "utterance", self.on_utterance, 10)

    def on_utterance(self, msg: Utterance):
        self.request_id += 1
        session = msg.session_id or "default"
        history = self.history.setdefault(session, [])
        messages = [{"role": "system", "content": self.system_prompt}, *history,
                    {"role": "user", "content": msg.text}]
        text, seq, reason = "", 0, "stop"
        try:
            for part in self.client.chat(model=self.model, messages=messages, stream=True):
                piece = part.message.content
                if piece:
                    self.partial_pub.publish(ResponseChunk(session_id=session, request_id=self.request_id,
                                                           seq=seq, text=piece))
                    seq += 1
                    text += piece
                if part.done:
                    reason = part.done_reason or "stop"
        except Exception as e:  # noqa: BLE001 - a user's bridge reports and carries on
            self.get_logger().error(f"chat failed: {e}")
            self.final_pub.publish(Response(session_id=session, request_id=self.request_id, prompt=msg.text,
                                            text=text, model=self.model, done_reason="error", error=str(e)))
            return
        history += [{"role": "user", "content": msg.text}, {"role": "assistant", "content": text}]
        del history[:-2 * self.max_turns]
        self.final_pub.publish(Response(session_id=session, request_id=self.request_id, prompt=msg.text,
                                        text=text, model=self.model, done_reason=reason, chunk_count=seq))


def main():
    rclpy.init()
    node = PeerBridge()
    print("rclpy_peer_bridge ready", flush=True)
    try:
        rclpy.spin(node)
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        node.destroy_node()
        rclpy.try_shutdown()


if __name__ == "__main__":
    main()
