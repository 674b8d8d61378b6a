"""scripts/eval (the `ollama_bridge_eval` package), end to end: bags written here with rosbags (sqlite3
and mcap, folders and single files, metadata versions 4 to 9, with unrelated topics in them), played
by the tool as a subprocess into the real node started by the `start_bridge` fixture, and checked
against what the Ollama emulator actually received and sent."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys

import pytest
import yaml

from harness import wait_until
from helpers import final_for, ask, history_file_name, history_pairs
from ollama_bridge_eval.msgtypes import STRING, UTTERANCE

from eval_bags import REPO, T0, LOG, reply, speech, utterance, log_line, write_bag, speech_bag, run_eval, replay, read_bag


# ------------------------------------------------------------------------------ turn mode
def test_turn_mode_replays_in_order_from_empty_histories_and_reports_what_the_emulator_sent(
        start_bridge, emu, tmp_path):
    node, ep = start_bridge(options_json='{"num_ctx": 2048}')
    ep.say("said before the replay")                     # the robot's own conversation: not the replay's
    ep.wait_finals(1)
    emu.clear_requests()
    prompts = ["hello robot", "what is your name?", "   ", "thank you"]
    bag = speech_bag(tmp_path / "in", prompts, "sqlite3", version=5)
    report, result = replay(bag, ep.ns, tmp_path / "run", "--seed", 7)

    played = [p for p in prompts if p.strip()]
    logged = emu.requests()
    assert [r["body"]["messages"][-1]["content"] for r in logged] == played
    assert [[m["content"] for m in r["body"]["messages"] if m["role"] == "user"] for r in logged] == [
        played[:1], played[:2], played[:3]], "started from an empty history, one turn after the other"
    assert all(r["body"]["options"] == {"num_ctx": 2048, "seed": 7, "temperature": 0} for r in logged)
    assert ep.get_params("options_json") == ['{"num_ctx": 2048}'], "options_json restored"

    rows = report["utterances"]
    assert [(r["index"], r["prompt"], r["status"]) for r in rows] == [
        (0, "hello robot", "ok"), (1, "what is your name?", "ok"), (2, "   ", "skipped"), (3, "thank you", "ok")]
    assert {(r["session_id"], r["bridge_session"]) for r in rows if r["status"] == "ok"} == {("default", "eval/default")}
    assert report["bridge"]["reset_sessions"] == ["eval/default"] and report["bridge"]["input_topic"] == f"{ep.ns}/utterance"
    ok = [r for r in rows if r["status"] == "ok"]
    assert [r["answer"] for r in ok] == [reply(p, n + 1) for n, p in enumerate(played)]
    for r, req in zip(ok, logged):
        # unpaced pieces may be published together: partials (messages) ≤ pieces (eval_count)
        assert r["eval_count"] == req["outcome"]["eval_count"] >= r["chunks"] == r["chunk_count"] >= 1
        assert r["prompt_eval_count"] == req["outcome"]["prompt_eval_count"]
        assert (r["done_reason"], r["error"], r["model"], r["server"]) == ("stop", "", "llama3.2", emu.url)
        assert r["tokens_per_s"] == pytest.approx(r["eval_count"] / (r["eval_duration_ns"] / 1e9))
        assert 0 < r["time_to_first_chunk_s"] <= r["total_time_s"] <= r["client_total_s"] + 0.05
    sent = [r["sent_at_s"] for r in ok]
    assert all(later >= earlier + first["client_total_s"] for earlier, later, first in zip(sent, sent[1:], ok)), \
        "turn mode sends the next utterance only after the previous answer"
    s = report["summary"]
    totals = sorted(r["total_time_s"] for r in ok)
    assert (s["count"], s["ok"], s["failures"], s["skipped"], s["model"]) == (4, 3, 0, 1, "llama3.2")
    assert (s["total_time_s"]["p50"], s["total_time_s"]["max"]) == (totals[1], totals[2])
    assert s["total_time_s"]["p50"] <= s["total_time_s"]["p95"] <= s["total_time_s"]["max"]
    assert s["tokens_per_s_mean"] == pytest.approx(sum(r["tokens_per_s"] for r in ok) / 3)
    assert report["bag"] | {"path": None} == {"path": None, "topic": "/asr/text", "type": STRING,
                                              "storage": "sqlite3", "metadata_version": 5, "utterances": 4}
    assert report["settings"]["applied"]["options_json"] == '{"num_ctx": 2048, "seed": 7, "temperature": 0}'

    md = (tmp_path / "run/report.md").read_text()
    assert "| total time p95 (s) |" in md and reply("thank you", 3) in md
    assert "| done | server | error |" in md and f"| stop | {emu.url} |" in md, "the server that answered each"
    assert (tmp_path / "run/latency.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "3 ok, 0 failed" in result.stdout

    # the output bag: inputs as played, every partial, final and spoken text, with definitions
    topics, connections = read_bag(tmp_path / "run/bag")
    ns = ep.ns
    assert {c.topic: c.msgtype for c in connections} == {
        f"{ns}/utterance": UTTERANCE, f"{ns}/response_partial": "ollama_bridge_msgs/msg/ResponseChunk",
        f"{ns}/response_final": "ollama_bridge_msgs/msg/Response", f"{ns}/response_text": STRING}
    assert all(c.msgdef.data and c.digest.startswith("RIHS01_") for c in connections)
    assert [(m.session_id, m.text) for _, m in topics[f"{ns}/utterance"]] == [("eval/default", p) for p in played]
    finals = [m for _, m in topics[f"{ns}/response_final"]]
    assert [(f.prompt, f.text) for f in finals] == [(r["prompt"], r["answer"]) for r in ok]
    for f in finals:
        parts = sorted((m for _, m in topics[f"{ns}/response_partial"] if m.request_id == f.request_id),
                       key=lambda m: m.seq)
        assert "".join(p.text for p in parts) == f.text and len(parts) == f.chunk_count
    assert [m.data for _, m in topics[f"{ns}/response_text"]] == [r["answer"] for r in ok]
    stamps = [t for _, t_msgs in topics.items() for t, _ in t_msgs]
    assert min(stamps) >= T0, "receive times, not bag times"
    # the robot's own conversation went on as if no replay had happened
    ep.say("and now?")
    final_for(ep, "and now?")      # (the replay's finals are on the same topic: wait for this one)
    [body] = [b for b in emu.chat_bodies() if b["messages"][-1]["content"] == "and now?"]
    assert [m["content"] for m in body["messages"] if m["role"] == "user"] == ["said before the replay", "and now?"]
    node.assert_healthy()


# -------------------------------------------------------------------------- realtime mode
def test_realtime_mode_keeps_the_bag_timing_scaled_by_rate(start_bridge, emu, tmp_path):
    emu.set_models({"slow": {"reply": "{last_user} is turn {turns} of a rather slow answer", "chunk_delay_ms": 60}})
    _, ep = start_bridge(model="slow")
    items = [("/rosout", LOG, 0.0, log_line("start")),
             ("/asr/utterance", UTTERANCE, 0.0, utterance("alice", "a1")),
             ("/asr/utterance", UTTERANCE, 0.2, utterance("bob", "b1")),
             ("/parameter_events_like", STRING, 0.3, speech("ignored")),
             ("/asr/utterance", UTTERANCE, 1.6, utterance("alice", "a2"))]
    bag = write_bag(tmp_path / "in", items, "mcap", version=8)
    out = tmp_path / "run"
    result = run_eval(next(bag.glob("*.mcap")), "--topic", "/asr/utterance", "--namespace", ep.ns, "--mode",
                      "realtime", "--rate", 2, "--out", out, "--timeout", 20, "--session-prefix", "replay:")
    assert result.returncode == 0, result.stderr
    rows = json.loads((out / "report.json").read_text())["utterances"]
    assert [r["bridge_session"] for r in rows] == ["replay:alice", "replay:bob", "replay:alice"]
    assert [(r["session_id"], r["prompt"], r["answer"]) for r in rows] == [
        ("alice", "a1", "a1 is turn 1 of a rather slow answer"), ("bob", "b1", "b1 is turn 1 of a rather slow answer"),
        ("alice", "a2", "a2 is turn 2 of a rather slow answer")]
    sent = [r["sent_at_s"] for r in rows]
    assert sent == sorted(sent)
    assert sent[1] - sent[0] < rows[0]["client_total_s"], "b1 went out while a1 was still being answered"
    assert 0.7 <= sent[2] - sent[0] < 3.0, f"1.6 s of bag time at rate 2 is about 0.8 s (sent at {sent})"
    assert [b["messages"][-1]["content"] for b in emu.chat_bodies()] == ["a1", "b1", "a2"]
    topics, _ = read_bag(out / "bag")
    assert [(m.session_id, m.text) for _, m in topics[f"{ep.ns}/utterance"]] == [
        ("replay:alice", "a1"), ("replay:bob", "b1"), ("replay:alice", "a2")]
    assert len(topics[f"{ep.ns}/response_final"]) == 3


# ------------------------------------------------------------------ expectations, compare
EXPECT_OK = {0: {"match": "turn 1"}, "what is my name?": {"match": ["turn 2"], "not_match": ["(?i)sorry"]},
             "*": {"not_match": "ERROR"}}


def test_expect_file_scores_both_reports_and_sets_the_exit_code(start_bridge, emu, tmp_path):
    _, ep = start_bridge()
    bag = speech_bag(tmp_path / "in", ["my name is Ada", "what is my name?"], "mcap", version=9)
    good = tmp_path / "good.yaml"
    good.write_text(yaml.safe_dump(EXPECT_OK))
    report, _ = replay(bag, ep.ns, tmp_path / "a", "--expect", good)
    assert report["expect"] == {"total": 5, "passed": 5, "failed": 0, "failures": []}
    assert all(r["expect"]["passed"] for r in report["utterances"])

    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump([{"index": 1, "match": "Ada"}, {"prompt": "my name is Ada", "match": "turn 1"},
                                   {"prompt": "never said", "match": "x"}]))
    report, result = replay(bag, ep.ns, tmp_path / "b", "--expect", bad, expect_code=1)
    assert (report["expect"]["total"], report["expect"]["passed"], report["expect"]["failed"]) == (3, 1, 2)
    assert report["expect"]["failures"] == ["#1 'what is my name?': answer does not match /Ada/",
                                            "'never said': no such utterance in the bag"]
    assert [r["expect"]["passed"] for r in report["utterances"]] == [True, False]
    assert "expectations: 1/3 passed" in result.stdout
    md = (tmp_path / "b/report.md").read_text()
    assert "| expectations | 1/3 passed |" in md and "FAIL" in md and "## Failed expectations" in md


def test_model_and_seed_apply_to_one_run_and_compare_prints_both_side_by_side(start_bridge, emu, tmp_path):
    emu.set_models({"smollm2:135m": {"reply": "Small model heard {last_user}."}})
    _, ep = start_bridge()
    bag = speech_bag(tmp_path / "in", ["hi", "bye"], "sqlite3", version=9)
    replay(bag, ep.ns, tmp_path / "a")
    replay(bag, ep.ns, tmp_path / "b", "--model", "smollm2:135m", "--seed", 3)
    assert [b["model"] for b in emu.chat_bodies()] == ["llama3.2"] * 2 + ["smollm2:135m"] * 2
    assert [b.get("options") for b in emu.chat_bodies()][2:] == [{"seed": 3, "temperature": 0}] * 2
    assert ep.get_params("model", "options_json") == ["llama3.2", "{}"], "restored after the run"

    result = run_eval("--compare", tmp_path / "a/report.json", tmp_path / "b/report.json")
    assert result.returncode == 0, result.stderr
    table = result.stdout
    assert "| model | llama3.2 | smollm2:135m | ≠ |" in table
    assert "| utterances | 2 | 2 | 0 |" in table
    assert f"| 0 | hi | {reply('hi', 1)} | Small model heard hi. |" in table
    assert f"| 1 | bye | {reply('bye', 2)} | Small model heard bye. |" in table
    assert "| failures | 0 | 0 | 0 |" in table


SLOW = {"slow": {"reply": "one two three four five six seven eight nine ten", "chunk_delay_ms": 150}}


def start_eval(bag, ns, out, *extra):
    """The tool in the background (to be disturbed while it plays)."""
    return subprocess.Popen([sys.executable, "-m", "ollama_bridge_eval", str(bag), "--topic", "/asr/text",
                             "--namespace", ns, "--out", str(out), *map(str, extra)],
                            cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_ctrl_c_restores_the_parameters_and_writes_a_partial_report(start_bridge, emu, tmp_path):
    emu.set_models(SLOW)
    _, ep = start_bridge(options_json='{"num_ctx": 1024}')
    bag = speech_bag(tmp_path / "in", ["first", "second"], "mcap")
    proc = start_eval(bag, ep.ns, tmp_path / "run", "--seed", 5, "--model", "slow")
    try:
        wait_until(lambda: ep.partials.snapshot(), 30, "the first answer to stream")
        assert ep.get_params("options_json", "model") == ['{"num_ctx": 1024, "seed": 5, "temperature": 0}',
                                                          "slow"]
        proc.send_signal(signal.SIGINT)
        proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 130
    assert ep.get_params("options_json", "model") == ['{"num_ctx": 1024}', "llama3.2"]
    rows = json.loads((tmp_path / "run/report.json").read_text())["utterances"]
    assert [r["status"] for r in rows] == ["interrupted", "not played"]


def test_a_bridge_that_goes_away_mid_replay_leaves_a_partial_report_and_exit_2(start_bridge, emu, tmp_path):
    emu.set_models(SLOW)
    node, ep = start_bridge(model="slow")
    bag = speech_bag(tmp_path / "in", ["first", "second", "third"], "mcap")
    out = tmp_path / "run"
    proc = start_eval(bag, ep.ns, out, "--timeout", 10)
    try:
        wait_until(lambda: ep.partials.snapshot(), 30, "the first answer to stream")
        assert node.stop() == 0                   # SIGINT: the node cancels the stream and leaves
        _, stderr = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 2, stderr
    assert stderr.splitlines()[-1].startswith("eval: error: the bridge went away during the replay")
    report = json.loads((out / "report.json").read_text())
    statuses = [r["status"] for r in report["utterances"]]
    # the stream is cancelled by the shutdown; what follows is cancelled, unanswered or not played
    assert statuses[0] in ("cancelled", "timeout"), statuses
    assert set(statuses[1:]) <= {"cancelled", "timeout", "not played"}, statuses
    assert report["summary"]["failures"] == 3 and report["aborted"] == "the bridge went away during the replay"
    assert (out / "bag/metadata.yaml").exists() and (out / "latency.png").exists()


# ------------------------------------------------------------- its own sessions, the graph
def user_turns(body):
    return [m["content"] for m in body["messages"] if m["role"] == "user"]


def test_replay_resets_only_its_own_sessions_and_leaves_other_conversations_and_files(start_bridge, emu, tmp_path):
    history = tmp_path / "history"
    _, ep = start_bridge(history_dir=str(history))
    ask(ep, "I am the robot's owner")                       # session default (speech_text)
    ask(ep, "alice was here", session="alice")
    others = {p.name: p.read_bytes() for p in history.iterdir()}
    assert set(others) == {history_file_name("default"), history_file_name("alice")}
    bag = speech_bag(tmp_path / "in", ["first", "second"], "mcap")
    for run in ("a", "b"):                                  # default --reset, twice
        emu.clear_requests()
        report, _ = replay(bag, ep.ns, tmp_path / run)
        assert [user_turns(b) for b in emu.chat_bodies()] == [["first"], ["first", "second"]], \
            f"run {run} started from an empty history"
        assert [r["answer"] for r in report["utterances"]] == [reply("first", 1), reply("second", 2)]
    assert {p.name: p.read_bytes() for p in history.iterdir() if p.name in others} == others, \
        "other sessions' history files are untouched"
    assert history_pairs(history, "eval/default") == [("first", reply("first", 1)), ("second", reply("second", 2))]
    ask(ep, "still there?")
    ask(ep, "and you?", session="alice")
    assert [user_turns(b) for b in emu.chat_bodies()[-2:]] == [["I am the robot's owner", "still there?"],
                                                               ["alice was here", "and you?"]]


REMAPS = {"utterance": "/in/utterance", "speech_text": "/asr/text", "response_partial": "/out/partial",
          "response_final": "/out/final", "response_text": "/tts/say", "reset": "/ctl/reset"}


def test_replay_finds_a_remapped_bridge_in_the_graph_and_never_publishes_on_the_speech_topic(
        ros, start_bridge, emu, tmp_path):
    node_name = f"brain_{os.getpid()}"
    args = ["-r", f"__node:={node_name}"] + [a for k, v in REMAPS.items() for a in ("-r", f"{k}:={v}")]
    _, ep = start_bridge(extra_args=args, expect_ready=False)
    heard = []
    asr = ros.node.create_subscription(type(ep.speech_pub.msg_type()), "/asr/text", heard.append, 10)
    bag = speech_bag(tmp_path / "in", ["hello", "again"], "sqlite3")
    try:
        # found by node name alone (no --namespace); then by explicit names, with no node to find
        explicit = [a for k, v in REMAPS.items() for a in ("--remap", f"{k}:={v}")]
        runs = {"graph": ["--node", node_name], "explicit": ["--node", "nobody", "--namespace", ep.ns, *explicit]}
        for run, extra in runs.items():
            out = tmp_path / run
            result = run_eval(bag, "--topic", "/asr/text", "--out", out, "--timeout", 20, *extra)
            assert result.returncode == 0, result.stderr
            report = json.loads((out / "report.json").read_text())
            assert [r["answer"] for r in report["utterances"]] == [reply("hello", 1), reply("again", 2)], run
            assert report["bridge"]["input_topic"] == "/in/utterance"
            topics, _ = read_bag(out / "bag")
            assert set(topics) == {"/in/utterance", "/out/partial", "/out/final", "/tts/say"}
        assert report["bridge"]["topics"] == REMAPS
    finally:
        ros.node.destroy_subscription(asr)
    assert heard == [], "the replay never speaks on the ASR topic (other nodes listen there)"


def test_replay_through_the_speech_input_shares_session_default_and_resets_it_only_when_asked(
        ros, start_bridge, emu, tmp_path):
    _, ep = start_bridge(extra_args=["-r", "speech_text:=/asr/text"], expect_ready=False)
    bag = speech_bag(tmp_path / "in", ["first"], "mcap")
    ep.settle()                                             # (its speech_text is elsewhere: no wait_ready)
    ep.utter("default", "said live")                        # the robot's conversation, session default
    ep.wait_finals(1)
    emu.clear_requests()
    result = run_eval(bag, "--topic", "/asr/text", "--namespace", ep.ns, "--input", "speech_text",
                      "--out", tmp_path / "a", "--timeout", 20)
    assert result.returncode == 0, result.stderr
    assert "not reset: the replay continues that conversation" in result.stderr
    assert [user_turns(b) for b in emu.chat_bodies()] == [["said live", "first"]]
    report = json.loads((tmp_path / "a/report.json").read_text())
    assert (report["bridge"]["input_topic"], report["utterances"][0]["bridge_session"]) == ("/asr/text", "default")
    emu.clear_requests()
    result = run_eval(bag, "--topic", "/asr/text", "--namespace", ep.ns, "--input", "speech_text", "--reset",
                      "--out", tmp_path / "b", "--timeout", 20)
    assert result.returncode == 0, result.stderr
    assert [user_turns(b) for b in emu.chat_bodies()] == [["first"]]
