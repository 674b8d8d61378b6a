"""A ROS 2 action client for the tests: sends one goal with rclpy's ActionClient on the session's
test node and records its acceptance, feedback and result, each awaited as an event (the node
spins on `RosClient`'s background thread, so every callback lands there)."""
from __future__ import annotations

import threading

from rclpy.action import ActionClient

from harness import DEEP, Recorder, wait_until


def action_client(ros, action_type, name: str, timeout: float = 20.0) -> ActionClient:
    """An ActionClient for `name`, returned once the node's action server is discovered. Its
    readers are deep: with rcl's default depth 10, a burst of goals loses goal responses (and the
    client waits forever for goals the node accepted)."""
    client = ActionClient(ros.node, action_type, name, goal_service_qos_profile=DEEP, result_service_qos_profile=DEEP,
                          cancel_service_qos_profile=DEEP, feedback_sub_qos_profile=DEEP)
    wait_until(client.server_is_ready, timeout, f"the action server {name}")
    return client


def _wait(future, timeout: float, what: str):
    done = threading.Event()
    future.add_done_callback(lambda _f: done.set())
    assert done.wait(timeout), f"timed out after {timeout:.0f}s waiting for {what}"
    return future.result()


class Goal:
    """One goal: `feedback` records every feedback message in arrival order."""

    def __init__(self, client: ActionClient, goal_msg):
        self.feedback = Recorder()
        self._accepted, self._finished = threading.Event(), threading.Event()
        self.handle = self.status = self.result = None
        future = client.send_goal_async(goal_msg, feedback_callback=lambda msg: self.feedback(msg.feedback))
        future.add_done_callback(self._on_goal_response)

    def _on_goal_response(self, future):
        self.handle = future.result()
        self._accepted.set()
        if self.handle.accepted:
            self.handle.get_result_async().add_done_callback(self._on_result)

    def _on_result(self, future):
        response = future.result()
        self.status, self.result = response.status, response.result
        self._finished.set()

    def accepted(self, timeout: float = 15.0) -> bool:
        """Waits for the goal response; whether the server accepted the goal."""
        assert self._accepted.wait(timeout), f"no goal response within {timeout:.0f}s"
        return self.handle.accepted

    def outcome(self, timeout: float = 30.0):
        """Waits for the result; returns (GoalStatus status, result message)."""
        assert self.accepted(timeout), "the goal was rejected"
        assert self._finished.wait(timeout), f"no result within {timeout:.0f}s (feedback: {len(self.feedback.messages)})"
        return self.status, self.result

    def cancel(self, timeout: float = 15.0):
        """Sends a cancel request; returns the `action_msgs/srv/CancelGoal` response."""
        assert self.accepted(timeout), "the goal was rejected"
        return _wait(self.handle.cancel_goal_async(), timeout, "the cancel response")
