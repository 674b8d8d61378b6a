"""Tools served by real ROS: the real node calls a real rclpy service, action server and topic
when the (emulated) model makes tool calls, answers the model with the results, publishes an
audit record per call on `tool_calls`, and keeps only the text of the turn in the history.
Errors (arguments that do not fit the type or break the entry's `parameters` schema, no server,
timeout, rejected goal) reach the model as `{"error": ...}` tool results; the request itself
answers normally. A tools file that is not right (a `parameters` that is no JSON schema too)
stops the node with the reason."""
from __future__ import annotations

import json

import pytest
import yaml

from harness import DEEP, Recorder, wait_until
from helpers import SYSTEM, assistant, finished_bodies, user
from geometry_msgs.msg import Twist
from ollama_bridge_msgs.msg import ToolCall
from std_msgs.msg import String
from tool_servers import DRIVE_YAML, TOOLS_YAML, ToolServers

def toolbot(calls, reply="Done: {last_tool}", capabilities=("completion", "tools")):
    """A scripted model that makes `calls` when offered tools, then answers with `reply`."""
    return {"toolbot": {"capabilities": list(capabilities), "tool_calls": calls, "reply": reply}}


@pytest.fixture
def tools_file(tmp_path):
    path = tmp_path / "tools.yaml"
    path.write_text(TOOLS_YAML)
    return path


@pytest.fixture
def robot(ros, start_bridge, emu, tools_file):
    """Starts servers + node for a model script; returns (ep, servers, audit records)."""
    made = []

    def start(models, screen=True, **params):
        emu.set_models(models)
        params.setdefault("tools_file", str(tools_file))
        node, ep = start_bridge(model="toolbot", **params)
        servers = ToolServers(ep.ns, screen=screen)
        records = Recorder()
        sub = ros.node.create_subscription(ToolCall, f"{ep.ns}/tool_calls", records, DEEP)
        made.append(sub)
        wait_until(lambda: sub.get_publisher_count() >= 1, 10, "the tool_calls publisher")
        made.append(servers)
        return node, ep, servers, records

    yield start
    for thing in made:
        if isinstance(thing, ToolServers):
            thing.close()
        else:
            ros.node.destroy_subscription(thing)


def ask(ep, text, session="s", timeout=30.0):
    before = len(ep.finals.snapshot())
    ep.utter(session, text)
    return ep.wait_finals(before + 1, timeout)[before]


def tool_messages(body):
    return [m for m in body["messages"] if m["role"] == "tool"]


def test_service_tool_round_trip_then_history_keeps_only_the_text(robot, emu):
    node, ep, servers, records = robot(toolbot([{"name": "set_led", "arguments": {"data": True}}]))
    final = ask(ep, "turn the light on")
    assert final.error == "" and final.done_reason == "stop", final
    assert servers.led_requests.snapshot() == [True], "the real service got the model's arguments"
    result = {"message": "LED on", "success": True}
    assert final.text == "Done: " + json.dumps(result, separators=(",", ":"), sort_keys=True)
    first, second = finished_bodies(emu, 2)
    assert [t["function"]["name"] for t in first["tools"]] == ["set_led", "fetch_model", "say_on_screen"]
    assert first["tools"][0]["function"]["parameters"]["properties"] == {"data": {"type": "boolean"}}
    assert second["messages"][-2]["tool_calls"][0]["function"] == {"index": 0, "name": "set_led", "arguments": {"data": True}}
    [tool] = tool_messages(second)
    assert tool["tool_name"] == "set_led" and json.loads(tool["content"]) == result
    [record] = records.wait_count(1, 10, "tool_calls records")
    assert (record.session_id, record.request_id, record.round, record.name, record.error, record.dry_run) == \
        ("s", final.request_id, 0, "set_led", "", False)
    assert json.loads(record.arguments_json) == {"data": True} and json.loads(record.result_json) == result
    assert record.duration_s > 0
    # the next request carries the turn's text only: no tool calls, no tool results
    ask(ep, "thanks")
    third = finished_bodies(emu, 3)[2]  # the first request of the next turn
    assert third["messages"] == [SYSTEM, user("turn the light on"), assistant(final.text), user("thanks")]
    node.assert_healthy()


def test_two_service_rounds(robot, emu):
    two_rounds = {"toolbot": {"capabilities": ["completion", "tools"], "tool_reply": "Now: {tool_results}",
                              "tool_rounds": [[{"name": "set_led", "arguments": {"data": True}}],
                                              [{"name": "set_led", "arguments": {"data": False}}]]}}
    emu.set_models(two_rounds)
    _, ep, servers, records = robot(two_rounds)
    final = ask(ep, "blink once")
    assert final.error == "", final
    assert servers.led_requests.snapshot() == [True, False]
    assert [r.round for r in records.wait_count(2, 10, "records")] == [0, 1]
    assert len(finished_bodies(emu, 3)) == 3
    assert "LED off" in final.text


def test_action_tool_waits_for_the_result(robot, emu):
    _, ep, servers, records = robot(toolbot([{"name": "fetch_model", "arguments": {"model": "tiny"}}]))
    final = ask(ep, "get the tiny model")
    assert final.error == "", final
    assert servers.goals.snapshot() == ["tiny"]
    [tool] = tool_messages(finished_bodies(emu, 2)[-1])
    assert json.loads(tool["content"]) == {"status": "succeeded", "result": {"success": True, "message": "pulled tiny"}}
    assert records.wait_count(1, 10, "records")[0].error == ""


def test_topic_tool_publishes_the_message(robot, emu):
    _, ep, servers, _ = robot(toolbot([{"name": "say_on_screen", "arguments": {"data": "hello"}}]))
    wait_until(lambda: servers.screen_sub.get_publisher_count() >= 1, 10, "the node's face/text publisher")
    final = ask(ep, "show hello")
    assert final.error == "", final
    assert [m.data for m in servers.screen.wait_count(1, 10, "face/text messages")] == ["hello"]
    [tool] = tool_messages(finished_bodies(emu, 2)[-1])
    assert json.loads(tool["content"]) == {"published": True, "topic": "face/text", "subscribers": 1}


def test_a_topic_tool_waits_for_a_subscriber_still_being_discovered(robot, ros, emu):
    """A display node that starts with the robot: when the model calls the tool, no subscription
    has matched yet. The node waits for one (at most 2 s) rather than publishing into the void
    (a volatile topic delivers only to readers already matched)."""
    _, ep, _, _ = robot(toolbot([{"name": "say_on_screen", "arguments": {"data": "hello"}}]), screen=False)
    before = len(ep.finals.snapshot())
    ep.utter("s", "show hello")
    emu.wait_for_requests(1)                      # the model's tool call has reached the node
    screen = Recorder()
    sub = ros.node.create_subscription(String, f"{ep.ns}/face/text", screen, DEEP)
    try:
        assert [m.data for m in screen.wait_count(1, 10, "face/text messages")] == ["hello"]
        assert ep.wait_finals(before + 1, 30)[before].error == ""
        [tool] = tool_messages(finished_bodies(emu, 2)[-1])
        assert json.loads(tool["content"]) == {"published": True, "topic": "face/text", "subscribers": 1}
    finally:
        ros.node.destroy_subscription(sub)


def tool_error(emu):
    [tool] = tool_messages(finished_bodies(emu, 2)[-1])
    return json.loads(tool["content"])["error"]


def test_arguments_that_do_not_fit_are_refused_to_the_model(robot, emu):
    _, ep, servers, records = robot(toolbot([{"name": "set_led", "arguments": {"data": "yes"}}]))
    final = ask(ep, "light please")
    assert final.error == "" and final.done_reason == "stop", "the request does not fail"
    expected = 'the arguments do not fit the std_srvs/srv/SetBool request: data: expected true or false, got "yes"'
    assert tool_error(emu) == expected
    assert servers.led_requests.snapshot() == [], "nothing reached the service"
    assert records.wait_count(1, 10, "records")[0].error == expected


def test_a_call_that_breaks_the_parameters_schema_reaches_nothing(robot, ros, emu, tmp_path):
    """The team's `parameters` schema limits linear.x to ±0.5 m/s (Twist itself takes any float):
    the model's 2.0 is refused with the rule and the path, the 0.3 after it is published."""
    path = tmp_path / "drive.yaml"
    path.write_text(TOOLS_YAML + DRIVE_YAML)
    calls = [{"name": "drive", "arguments": {"linear": {"x": 2.0}}},
             {"name": "drive", "arguments": {"linear": {"x": 0.3}, "angular": {"z": 0.1}}}]
    cmd_vel = Recorder()
    _, ep, _, records = robot(toolbot(calls), tools_file=str(path))
    sub = ros.node.create_subscription(Twist, f"{ep.ns}/cmd_vel", cmd_vel, DEEP)
    try:
        wait_until(lambda: sub.get_publisher_count() >= 1, 10, "the node's cmd_vel publisher")
        final = ask(ep, "drive forward fast")
        assert final.error == "" and final.done_reason == "stop", "the request does not fail"
        # reliable and in order from one publisher: had the refused call been published, it came first
        assert [m.linear.x for m in cmd_vel.wait_count(1, 10, "cmd_vel messages")] == [0.3]
        expected = "the arguments break the parameters schema of tool 'drive': linear.x: 2.0 is greater than the maximum of 0.5"
        first, second = finished_bodies(emu, 2)
        [drive] = [t["function"] for t in first["tools"] if t["function"]["name"] == "drive"]
        assert drive["parameters"] == yaml.safe_load(DRIVE_YAML)[0]["parameters"], "the model is shown the team's schema"
        told = [json.loads(t["content"]) for t in tool_messages(second)]
        assert told[0] == {"error": expected} and "error" not in told[1], told
        assert [r.error for r in records.wait_count(2, 10, "records")] == [expected, ""]
        assert [m.linear.x for m in cmd_vel.snapshot()] == [0.3], "nothing else reached cmd_vel"
    finally:
        ros.node.destroy_subscription(sub)


def test_absent_servers_and_timeouts_become_error_results(robot, emu, tmp_path):
    absent = tmp_path / "absent.yaml"
    absent.write_text("tools:\n  - {name: set_led, service: nobody/here, type: std_srvs/srv/SetBool, timeout_s: 1}\n"
                      "  - {name: fetch_model, action: nobody/acts, type: ollama_bridge_msgs/action/PullModel, timeout_s: 1}\n")
    both = [{"name": "set_led", "arguments": {"data": True}}, {"name": "fetch_model", "arguments": {"model": "x"}}]
    _, ep, _, _ = robot(toolbot(both), tools_file=str(absent))
    final = ask(ep, "do both")
    assert final.error == "", final
    errors = [json.loads(t["content"])["error"] for t in tool_messages(finished_bodies(emu, 2)[-1])]
    assert errors == ["the service nobody/here is not available (no server found within 0.5s)",
                      "the action server nobody/acts is not available (no server found within 0.5s)"]


def test_a_slow_service_times_out_and_a_rejected_goal_is_an_error(robot, emu, tmp_path):
    fast = tmp_path / "fast.yaml"
    fast.write_text(TOOLS_YAML.replace("timeout_s: 5", "timeout_s: 1"))
    both = [{"name": "set_led", "arguments": {"data": True}}, {"name": "fetch_model", "arguments": {"model": "x"}}]
    _, ep, servers, _ = robot(toolbot(both), tools_file=str(fast))
    servers.hold, servers.reject_goals = True, True
    final = ask(ep, "slow and rejected")
    servers.release()
    assert final.error == "", final
    errors = [json.loads(t["content"])["error"] for t in tool_messages(finished_bodies(emu, 2)[-1])]
    assert errors == ["no result within 1.0s (timeout_s of tool 'set_led')", "the action server pull rejected the goal"]


def test_reset_cancels_a_running_goal_and_the_history_stays(robot, emu):
    _, ep, servers, _ = robot(toolbot([{"name": "fetch_model", "arguments": {"model": "big"}}]))
    servers.hold = True
    ep.utter("s", "fetch the big model")
    servers.goals.wait_count(1, 15, "the goal")
    assert ep.reset("s").success
    assert servers.cancels.wait_count(1, 10, "a cancel request at the action server") == ["big"]
    final = ep.wait_finals(1)[0]
    assert final.done_reason == "cancelled"
    ask(ep, "hello again")
    [next_turn] = [b for b in finished_bodies(emu, 3) if b["messages"][-1] == user("hello again")]
    assert next_turn["messages"] == [SYSTEM, user("hello again")], "the cancelled exchange left no trace"


def test_dry_run_publishes_the_call_without_executing_it(robot, emu):
    _, ep, servers, records = robot(toolbot([{"name": "set_led", "arguments": {"data": True}}]), tools_dry_run=True)
    final = ask(ep, "light on")
    assert final.error == "", final
    [record] = records.wait_count(1, 10, "records")
    assert record.dry_run and record.name == "set_led" and json.loads(record.arguments_json) == {"data": True}
    [tool] = tool_messages(finished_bodies(emu, 2)[-1])
    told = json.loads(tool["content"])
    assert told["dry_run"] is True and "not executed" in told["note"], "the model is told so"
    assert servers.led_requests.snapshot() == [], "nothing was executed"


def test_max_tool_rounds_withdraws_the_tools(robot, emu):
    _, ep, _, _ = robot(toolbot([{"name": "set_led", "arguments": {"data": True}}]), max_tool_rounds=1)
    assert ask(ep, "light").error == ""
    first, second = finished_bodies(emu, 2)
    assert "tools" in first and "tools" not in second, "after max_tool_rounds the model answers in words"


def test_a_model_without_the_tools_capability_is_asked_without_tools(robot, emu):
    node, ep, servers, _ = robot(toolbot([{"name": "set_led", "arguments": {"data": True}}], reply="No tools here.",
                                         capabilities=("completion",)))
    assert ask(ep, "light").text == "No tools here."
    assert ask(ep, "light again").text == "No tools here."
    assert all("tools" not in body for body in finished_bodies(emu, 2))
    assert node.log().count("has no 'tools' capability") == 1, "logged once"
    assert servers.led_requests.snapshot() == []


@pytest.mark.parametrize("yaml_text, expected", [
    ("tools:\n  - {name: state, service: lc/get, type: lifecycle_msgs/srv/GetState}\n",
     "type lifecycle_msgs/srv/GetState is not built into this node; r2r generated bindings only for: "),
    ("tools:\n  - {name: x, service: x, type: nope_msgs/srv/X}\n", "tool 'x': no type description of nope_msgs/srv/X"),
    ("tools:\n  - {name: x, service: x}\n", "missing field `type`"),
    # a parameters schema that is not a JSON schema: a misspelt type, a bound that is not a number
    ("tools:\n  - {name: drive, topic: cmd_vel, type: geometry_msgs/msg/Twist,\n"
     "     parameters: {type: object, properties: {linear: {type: objet}}}}\n",
     "tools[0]: 'drive': parameters: not a valid JSON schema: /properties/linear/type: \"objet\" is not valid"),
    ("tools:\n  - {name: drive, topic: cmd_vel, type: geometry_msgs/msg/Twist,\n"
     "     parameters: {type: object, properties: {speed: {type: number, maximum: fast}}}}\n",
     "tools[0]: 'drive': parameters: not a valid JSON schema: /properties/speed/maximum: \"fast\" is not of type \"number\""),
])
def test_a_bad_tools_file_stops_the_node_with_the_reason(start_bridge, tmp_path, yaml_text, expected):
    path = tmp_path / "bad.yaml"
    path.write_text(yaml_text)
    node, _ = start_bridge(tools_file=str(path), warm_up=True, expect_ready=False)
    code = node.proc.wait(30)
    assert code != 0
    assert expected in node.log(), node.log()[-2000:]
    assert "warm_up" not in node.log(), "a node that cannot start loads no model first"
    if "not built into" in expected:
        assert "OLLAMA_BRIDGE_INTERFACES='lifecycle_msgs' ./scripts/setup" in node.log()
