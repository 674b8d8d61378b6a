"""scripts/eval (the `ollama_bridge_eval` package) on its inputs and outputs: bags of both storages,
metadata versions 4 to 9, compressed, and disagreeing with their storage file; bad input as one line
and exit 2; `--record` into an mcap bag that replays."""
from __future__ import annotations

import os
import signal
import subprocess
import sys

import pytest
import yaml
from rclpy.duration import Duration
from rclpy.qos import QoSProfile, ReliabilityPolicy
from rosbags.rosbag2 import StoragePlugin, Writer
from rosbags.typesys import Stores, get_types_from_msg, get_typestore

from harness import fresh_namespace, wait_until
from ollama_bridge_eval import EvalError, graph
from ollama_bridge_eval.bag_input import read_utterances
from ollama_bridge_eval.sessions import Sessions
from ollama_bridge_eval.msgtypes import STRING, UTTERANCE
from std_msgs.msg import String

from eval_bags import REPO, T0, speech_bag, run_eval, read_bag


# --------------------------------------------------------------------------- bag formats
@pytest.mark.parametrize("storage,version,single_file", [
    ("sqlite3", 4, False), ("sqlite3", 5, False), ("sqlite3", 8, False), ("sqlite3", 9, True),
    ("mcap", 6, False), ("mcap", 8, True), ("mcap", 9, False)])
def test_bags_of_both_storages_and_metadata_versions_4_to_9_are_read(tmp_path, storage, version, single_file):
    bag = speech_bag(tmp_path / "bag", ["one", "two", "three"], storage, version)
    path = next(bag.glob("*.mcap" if storage == "mcap" else "*.db3")) if single_file else bag
    read = read_utterances(path, "/asr/text")
    assert [(u.index, u.session_id, u.text) for u in read.utterances] == [
        (0, "default", "one"), (1, "default", "two"), (2, "default", "three")]
    assert [u.stamp_ns - T0 for u in read.utterances] == [10_000_000, 510_000_000, 1_010_000_000]
    assert (read.storage, read.metadata_version) == (storage, None if single_file else version)


@pytest.mark.parametrize("storage,compression", [("sqlite3", "file"), ("mcap", "file"), ("sqlite3", "message")])
def test_compressed_bags_are_read(tmp_path, storage, compression):
    bag = speech_bag(tmp_path / "bag", ["one", "two"], storage, compression=compression)
    assert [u.text for u in read_utterances(bag, "/asr/text").utterances] == ["one", "two"]


HUMBLE_QOS = """- history: 3
  depth: 0
  reliability: 1
  durability: 2
  deadline:
    sec: 2147483647
    nsec: 4294967295
  lifespan:
    sec: 2147483647
    nsec: 4294967295
  liveliness: 1
  liveliness_lease_duration:
    sec: 2147483647
    nsec: 4294967295
  avoid_ros_namespace_conventions: false
"""


def _each_topic(field, value):
    def edit(info):
        for t in info["topics_with_message_count"]:
            t["topic_metadata"][field] = value
    return edit


def _stale_counts(info):
    info["message_count"] = 0
    for t in info["topics_with_message_count"]:
        t["message_count"] = 0
    for f in info.get("files", []):
        f["message_count"] = 0


def _only_other_topics(info):
    info["topics_with_message_count"] = [t for t in info["topics_with_message_count"]
                                         if t["topic_metadata"]["name"] != "/asr/text"]


#: ways a metadata.yaml disagrees with its storage file (another rosbag2 release, reindexed, edited)
DISAGREEING_METADATA = {
    "QoS string of another release": _each_topic("offered_qos_profiles", HUMBLE_QOS),
    "QoS that does not parse": _each_topic("offered_qos_profiles", "{history: [keep_last"),
    "topics in another order": lambda info: info["topics_with_message_count"].reverse(),
    "other type hashes": _each_topic("type_description_hash", "RIHS01_" + "0" * 64),
    "no type hashes (older release)": _each_topic("type_description_hash", ""),
    "stale message counts": _stale_counts,
    "topic not listed": _only_other_topics,
}


@pytest.mark.parametrize("storage", ["sqlite3", "mcap"])
@pytest.mark.parametrize("case", DISAGREEING_METADATA)
def test_bags_are_read_from_their_storage_file_whatever_metadata_yaml_says(tmp_path, storage, case):
    """Like rosbag2's player: metadata.yaml names the files, the files hold the topics and messages."""
    bag = speech_bag(tmp_path / "bag", ["one", "two", "three"], storage)
    meta_path = bag / "metadata.yaml"
    meta = yaml.safe_load(meta_path.read_text())
    DISAGREEING_METADATA[case](meta["rosbag2_bagfile_information"])
    meta_path.write_text(yaml.safe_dump(meta))
    read = read_utterances(bag, "/asr/text")
    assert [u.text for u in read.utterances] == ["one", "two", "three"]
    assert (read.msgtype, read.storage, read.metadata_version) == (STRING, storage, 9)


@pytest.mark.parametrize("storage", [StoragePlugin.SQLITE3, StoragePlugin.MCAP])
def test_utterance_bags_recorded_before_attach_image_are_decoded_with_their_own_definition(tmp_path, storage):
    old = get_typestore(Stores.ROS2_JAZZY)
    old.register(get_types_from_msg("string session_id\nstring text\n", UTTERANCE))
    with Writer(tmp_path / "bag", version=9, storage_plugin=storage) as writer:
        conn = writer.add_connection("/asr/utterance", UTTERANCE, typestore=old)
        for n, (session, text) in enumerate([("ada", "hello"), ("bob", "hi there")]):
            writer.write(conn, T0 + n, old.serialize_cdr(old.types[UTTERANCE](session_id=session, text=text), UTTERANCE))
    read = read_utterances(tmp_path / "bag", "/asr/utterance")
    assert [(u.session_id, u.text) for u in read.utterances] == [("ada", "hello"), ("bob", "hi there")]


# ------------------------------------------------------------------------------ bad input
@pytest.fixture
def good_bag(tmp_path):
    return speech_bag(tmp_path / "good", ["hello"], "mcap", version=9)


def broken_metadata(tmp_path, good_bag):
    (good_bag / "metadata.yaml").write_text("rosbag2_bagfile_information: {version: 8, storage_identifier: mcap")
    return good_bag


BAD = {
    "missing topic": (lambda tmp, bag: [bag, "--topic", "/asr/nothing"], "topic /asr/nothing is not in bag"),
    "wrong type": (lambda tmp, bag: [bag, "--topic", "/rosout"], "has type rcl_interfaces/msg/Log; expected"),
    "garbage mcap": (lambda tmp, bag: [tmp / "x.mcap", "--topic", "/asr/text"], "cannot read bag"),
    "broken metadata": (lambda tmp, bag: [broken_metadata(tmp, bag), "--topic", "/asr/text"], "cannot read bag"),
    "no such bag": (lambda tmp, bag: [tmp / "missing", "--topic", "/asr/text"], "does not exist"),
    "bad regex": (lambda tmp, bag: [bag, "--topic", "/asr/text", "--expect", tmp / "e.yaml"], "bad regex"),
    "bad remap": (lambda tmp, bag: [bag, "--topic", "/asr/text", "--remap", "final:=/x"], "expected ROLE:=/absolute/name"),
    "empty session prefix": (lambda tmp, bag: [bag, "--topic", "/asr/text", "--session-prefix", ""],
                             "--session-prefix must not be empty"),
    "record into an existing folder": (lambda tmp, bag: ["--record", bag, "--topic", "/asr/text"], "exists"),
}


@pytest.mark.parametrize("case", BAD)
def test_bad_input_is_one_line_on_stderr_and_exit_2(tmp_path, good_bag, case):
    (tmp_path / "x.mcap").write_bytes(b"\x89MCAP0\r\n" + os.urandom(64))
    (tmp_path / "e.yaml").write_text("0: {match: '(unclosed'}\n")
    make_args, message = BAD[case]
    result = run_eval(*make_args(tmp_path, good_bag), "--out", tmp_path / "out", "--timeout", 2)
    assert result.returncode == 2, result
    assert result.stderr.startswith("eval: error: ") and result.stderr.count("\n") == 1, result.stderr
    assert message in result.stderr
    assert not (tmp_path / "out").exists()


def test_sessions_of_the_bag_map_to_valid_sessions_of_the_replay():
    sessions = Sessions()
    assert [sessions.own(s) for s in ("default", "alice")] == ["eval/default", "eval/alice"]
    long = sessions.own("x" * 200)
    assert long.startswith("eval/") and len(long) <= 128 and long == sessions.own("x" * 200) != sessions.own("y" * 200)
    assert sessions.own("tab\there").isprintable()
    assert Sessions(shared=True).own("alice") == "default"


def test_a_role_the_graph_cannot_tell_apart_is_named_like_the_role_or_asked_for():
    assert graph._pick("response_text", ["/a/tts", "/a/response_text"]) == "/a/response_text"
    with pytest.raises(EvalError, match="--remap response_text:=TOPIC"):
        graph._pick("response_text", ["/a/tts", "/b/say"])


def test_no_bridge_answering_is_exit_2(tmp_path, good_bag):
    ns = fresh_namespace("nobody")
    result = run_eval(good_bag, "--topic", "/asr/text", "--namespace", ns, "--out", tmp_path / "out", "--timeout", 2)
    assert result.returncode == 2
    assert f"no ollama_bridge answering under namespace '{ns}' within 2s" in result.stderr
    assert result.stderr.strip().splitlines()[-1].startswith("eval: error: ")
    assert not (tmp_path / "out").exists()


# ---------------------------------------------------------------------------------- --record
def start_record(out, topic, *extra):
    return subprocess.Popen([sys.executable, "-m", "ollama_bridge_eval", "--record", str(out), "--topic", topic,
                             "--timeout", "20", *map(str, extra)], cwd=REPO, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


@pytest.mark.parametrize("reliability", [ReliabilityPolicy.RELIABLE, ReliabilityPolicy.BEST_EFFORT])
def test_record_writes_a_topic_into_an_mcap_bag_that_replays(ros, tmp_path, reliability):
    """`scripts/eval --record OUT --topic T` where `ros2 bag` is not installed; best effort is what
    many speech recognisers publish with (sensor-data QoS)."""
    topic, out = f"/asr{os.getpid()}_{reliability.name.lower()}/text", tmp_path / "talk1"
    pub = ros.node.create_publisher(String, topic, QoSProfile(depth=10, reliability=reliability))
    proc = start_record(out, topic, "--count", 3)
    try:
        wait_until(lambda: pub.get_subscription_count() >= 1, 30, "the recorder to subscribe")
        for text in ("hello robot", "what is my name?", "bye"):
            pub.publish(String(data=text))
        _, stderr = proc.communicate(timeout=30)
    finally:
        proc.kill()
        ros.node.destroy_publisher(pub)
    assert proc.returncode == 0, stderr
    assert f"recorded 3 message(s) of {topic} into {out}" in stderr
    topics, connections = read_bag(out)
    assert [m.data for _, m in topics[topic]] == ["hello robot", "what is my name?", "bye"]
    [conn] = connections
    assert (conn.msgtype, conn.msgdef.data, conn.digest.startswith("RIHS01_")) == (STRING, "string data\n", True)
    assert [q.reliability.name for q in conn.ext.offered_qos_profiles] == [reliability.name]
    assert [u.text for u in read_utterances(out, topic).utterances] == ["hello robot", "what is my name?", "bye"]


def test_record_stops_on_ctrl_c_with_a_complete_bag(ros, tmp_path):
    topic, out = f"/asr{os.getpid()}_int/text", tmp_path / "talk"
    pub = ros.node.create_publisher(String, topic, 10)
    proc = start_record(out, topic)
    try:
        wait_until(lambda: pub.get_subscription_count() >= 1, 30, "the recorder to subscribe")
        sent = ["one", "two"]
        for text in sent:
            pub.publish(String(data=text))
        assert pub.wait_for_all_acked(Duration(seconds=10))
        proc.send_signal(signal.SIGINT)
        _, stderr = proc.communicate(timeout=30)
    finally:
        proc.kill()
        ros.node.destroy_publisher(pub)
    assert proc.returncode == 0, stderr
    topics, connections = read_bag(out)                      # metadata.yaml written, storage closed
    assert [c.topic for c in connections] == [topic]
    got = [m.data for _, m in topics.get(topic, [])]
    assert got == sent[:len(got)], "whatever arrived before Ctrl-C, in order"


def test_record_without_a_publisher_is_exit_2(tmp_path):
    result = run_eval("--record", tmp_path / "x", "--topic", f"/nobody{os.getpid()}/speaks", "--timeout", 1)
    assert result.returncode == 2 and "no publisher on" in result.stderr and not (tmp_path / "x").exists()
