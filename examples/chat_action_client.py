"""Ask the bridge one question through its `chat` action and print the answer as it streams.
Usage: python examples/chat_action_client.py "Hello robot" [session] [--ros-args -r __ns:=/robot1]"""
import sys

import rclpy
from rclpy.action import ActionClient
from ollama_bridge_msgs.action import Chat

args = rclpy.utilities.remove_ros_args(sys.argv)
rclpy.init()
node = rclpy.create_node("chat_action_client")
client = ActionClient(node, Chat, "chat")             # relative: follows the node's namespace
client.wait_for_server()
goal = Chat.Goal(text=args[1], session_id=args[2] if len(args) > 2 else "")
sent = client.send_goal_async(goal, feedback_callback=lambda m: print(m.feedback.partial, end="", flush=True))
rclpy.spin_until_future_complete(node, sent)
result = sent.result().get_result_async()             # the goal handle; a BT node would keep it to cancel
rclpy.spin_until_future_complete(node, result)
status = {4: "SUCCEEDED", 5: "CANCELED", 6: "ABORTED"}.get(result.result().status, "?")
response = result.result().result.response
print(f"\n[{status}] {response.text!r} ({response.done_reason}{': ' + response.error if response.error else ''})")
rclpy.shutdown()
