"""README's worked examples for the camera and the tools, with the real `ros2` command line: the
node in the root namespace as `ros2 run` starts it, the exact tools.yaml of the README, an rclpy
camera and rclpy tool servers standing in for the robot's drivers. README copies these commands."""
from __future__ import annotations

import shutil
import subprocess

import pytest
from sensor_msgs.msg import Image

from camera import Camera, look, raw
from harness import wait_until
from helpers import finished_bodies
from test_ros_cli import echo_answer
from tool_servers import TOOLS_YAML, ToolServers

pytestmark = pytest.mark.skipif(shutil.which("ros2") is None, reason="the ros2 CLI is not installed (see scripts/setup)")


@pytest.fixture(autouse=True)
def stop_daemon():
    yield
    subprocess.run(["ros2", "daemon", "stop"], capture_output=True)

LLAVA = {"llava": {"capabilities": ["completion", "vision"], "reply": "I see a grey wall.", "vision_reply": "I see a grey wall."}}


def tool_model(calls):
    """qwen3:0.6b as the emulator scripts it (tools capability), making `calls`, then answering."""
    return {"qwen3:0.6b": {"capabilities": ["completion", "tools"], "tool_calls": calls,
                           "reply": "Done, the tool said: {last_tool}"}}


def test_camera_example(ros, start_bridge, emu):
    emu.set_models(LLAVA)
    _, ep = start_bridge(namespace="", model="llava", image_topic="/camera/image_raw")
    cam = Camera(ros, "/camera/image_raw", Image)
    try:
        wait_until(lambda: cam.pub.get_subscription_count() >= 1, 15, "the node's camera subscription")
        cam.frame = raw("rgb8", 640, 480, 3)
        assert look(ep, "warm up", until_not="no camera frame received yet").error == "", "the node has frames"
        finished_bodies(emu, 1)
        emu.clear_requests()
        out = echo_answer(ros, "ros2 topic echo --once response_final ollama_bridge_msgs/msg/Response", "/response_final",
                          "ros2 topic pub --once utterance ollama_bridge_msgs/msg/Utterance "
                          "\"{session_id: 'kitchen', text: 'What do you see?', attach_image: true}\"")
        assert "text: I see a grey wall." in out and "error: ''" in out, out
        for body in finished_bodies(emu, 1):  # one a question asked (asked again if the echo missed it)
            assert len(body["messages"][-1]["images"]) == 1
    finally:
        cam.close(ros)


@pytest.mark.parametrize("call, expected", [
    ({"name": "set_led", "arguments": {"data": True}}, "result_json: '{\"message\":\"LED on\",\"success\":true}'"),
    ({"name": "fetch_model", "arguments": {"model": "smollm2:135m"}},
     "result_json: '{\"result\":{\"message\":\"pulled smollm2:135m\",\"success\":true},\"status\":\"succeeded\"}'"),
])
def test_tool_examples(ros, start_bridge, emu, tmp_path, call, expected):
    (tmp_path / "tools.yaml").write_text(TOOLS_YAML)
    emu.set_models(tool_model([call]))
    start_bridge(namespace="", model="qwen3:0.6b", tools_file=str(tmp_path / "tools.yaml"))
    servers = ToolServers("")
    try:
        out = echo_answer(ros, "ros2 topic echo --once tool_calls ollama_bridge_msgs/msg/ToolCall", "/tool_calls",
                          "ros2 topic pub --once speech_text std_msgs/msg/String \"{data: 'Turn on the light'}\"")
        assert f"name: {call['name']}" in out and expected in out and "error: ''" in out, out
    finally:
        servers.close()
