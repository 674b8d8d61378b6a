"""Real rclpy servers for the tool tests: a std_srvs/srv/SetBool service, an action server
(ollama_bridge_msgs/action/PullModel, the action type this build has), and a topic recorder, on a
node of their own with a multi-threaded executor so a slow handler never blocks the test's client.

Every handler records what it got; handlers that must hold a call wait on an Event (released by
the test or by a cancel request), never on a fixed sleep."""
from __future__ import annotations

import threading

import rclpy
from rclpy.action import ActionServer, CancelResponse, GoalResponse
from rclpy.callback_groups import ReentrantCallbackGroup
from rclpy.executors import MultiThreadedExecutor

from harness import DEEP, Recorder
from ollama_bridge_msgs.action import PullModel
from std_msgs.msg import String
from std_srvs.srv import SetBool

# The README's worked example ("Tools"): relative names resolve in the node's namespace.
TOOLS_YAML = """\
tools:
  - name: set_led
    description: Switch the robot's LED on or off.
    service: led/set
    type: std_srvs/srv/SetBool
    timeout_s: 5
  - name: fetch_model
    description: Download a model onto the robot.
    action: pull
    type: ollama_bridge_msgs/action/PullModel
    timeout_s: 10
  - name: say_on_screen
    description: Show a text on the face display.
    topic: face/text
    type: std_msgs/msg/String
"""

# The README's `parameters` example: the team's schema narrows what the type allows, and the node
# enforces it on every call (the model is shown this schema instead of the one derived from Twist).
DRIVE_YAML = """\
  - name: drive
    description: Drive the base (m/s forward, rad/s turning).
    topic: cmd_vel
    type: geometry_msgs/msg/Twist
    parameters:
      type: object
      properties:
        linear:
          type: object
          properties:
            x: {type: number, minimum: -0.5, maximum: 0.5}
          required: [x]
        angular:
          type: object
          properties:
            z: {type: number, minimum: -1.0, maximum: 1.0}
      required: [linear]
"""


class ToolServers:
    """Servers under one namespace; `hold` makes the service and the action wait until `release()`."""

    def __init__(self, ns: str, screen: bool = True):
        self.node = rclpy.create_node(f"tool_servers_{ns.strip('/').replace('/', '_')}")
        group = ReentrantCallbackGroup()
        self.led_requests = Recorder()
        self.goals = Recorder()
        self.cancels = Recorder()
        self.screen = Recorder()
        self.hold = False
        self.reject_goals = False
        self.released = threading.Event()
        self.service = self.node.create_service(SetBool, f"{ns}/led/set", self._set_led, callback_group=group)
        self.action = ActionServer(self.node, PullModel, f"{ns}/pull", self._execute, callback_group=group,
                                   goal_callback=self._goal, cancel_callback=self._cancel)
        self.screen_sub = self.node.create_subscription(String, f"{ns}/face/text", self.screen, DEEP) if screen else None
        self.executor = MultiThreadedExecutor(num_threads=4)
        self.executor.add_node(self.node)
        self.thread = threading.Thread(target=self.executor.spin, daemon=True)
        self.thread.start()

    def _set_led(self, request, response):
        self.led_requests(request.data)
        if self.hold:
            self.released.wait(30)
        response.success = True
        response.message = "LED on" if request.data else "LED off"
        return response

    def _goal(self, goal):
        return GoalResponse.REJECT if self.reject_goals else GoalResponse.ACCEPT

    def _cancel(self, goal_handle):
        self.cancels(goal_handle.request.model)
        self.released.set()
        return CancelResponse.ACCEPT

    def _execute(self, goal_handle):
        model = goal_handle.request.model
        self.goals(model)
        result = PullModel.Result()
        if self.hold:
            self.released.wait(30)
            if goal_handle.is_cancel_requested:
                goal_handle.canceled()
                result.message = "cancelled"
                return result
        feedback = PullModel.Feedback(status="downloading", completed=1, total=2)
        goal_handle.publish_feedback(feedback)
        goal_handle.succeed()
        result.success, result.message = True, f"pulled {model}"
        return result

    def release(self):
        self.released.set()

    def close(self):
        self.released.set()
        self.action.destroy()
        self.executor.shutdown()
        self.node.destroy_node()
        self.thread.join(5)
