"""Never lose a conversation: durable history (`history_dir`), end to end. Completed exchanges are
appended to one JSONL file per session, restored on start, survive `kill -9`, are deleted by
reset, and damaged files are reported and skipped line by line without taking the node down."""
from __future__ import annotations

import json
import os
import signal

from harness import wait_until
from helpers import (ask, conversation, history_file_name, history_pairs, messages,
                     read_history, wait_streaming)


def test_each_completed_exchange_is_on_disk_when_its_final_is_published(start_bridge, emu, tmp_path):
    history = tmp_path / "history"
    node, ep = start_bridge(history_dir=str(history))
    saved = {"kitchen": [], "../../escape": [], "default": []}
    for i in range(6):
        for session in saved:
            final = ask(ep, f"{session} {i}", session=session)
            assert final.done_reason == "stop"
            saved[session].append((final.prompt, final.text))
            # no waiting: a listener that saw the answer can rely on it being saved
            assert history_pairs(history, session) == saved[session], f"{session} after {final.prompt!r}"
    assert sorted(p.name for p in history.iterdir()) == sorted(history_file_name(s) for s in saved)
    assert not (tmp_path / "escape.jsonl").exists() and not list(tmp_path.glob("*.jsonl"))
    lines = read_history(history / history_file_name("kitchen"))
    assert [line["session"] for line in lines] == ["kitchen"] * 6
    assert all(isinstance(line["time"], float) and line["time"] > 1.6e9 for line in lines)
    # failed and refused inputs are not exchanges
    emu.push_fault({"kind": "error_line", "after": 2})
    assert ask(ep, "fails", session="kitchen").done_reason == "error"
    assert history_pairs(history, "kitchen") == saved["kitchen"]
    node.assert_healthy()


def test_sessions_are_restored_on_start(start_bridge, emu, tmp_path):
    history = str(tmp_path / "history")
    first_node, ep = start_bridge(history_dir=history)
    k1 = ask(ep, "my name is Ada", session="kitchen")
    k2 = ask(ep, "I like tea", session="kitchen")
    d1 = ask(ep, "hello")
    assert first_node.stop() == 0
    node, ep = start_bridge(history_dir=history)
    assert "restored 2 session(s), 3 exchange(s)" in node.log()
    k3 = ask(ep, "what is my name?", session="kitchen")
    assert messages(emu.chat_bodies()[-1]) == conversation(
        ("my name is Ada", k1.text), ("I like tea", k2.text), then="what is my name?")
    ask(ep, "and again")
    assert messages(emu.chat_bodies()[-1]) == conversation(("hello", d1.text), then="and again")
    # a smaller max_history_turns applies to restored sessions too
    node.stop()
    _, ep = start_bridge(history_dir=history, max_history_turns=1)
    ask(ep, "short memory", session="kitchen")
    assert messages(emu.chat_bodies()[-1]) == conversation(("what is my name?", k3.text), then="short memory")


def test_memory_holds_the_recent_sessions_the_files_hold_the_rest(start_bridge, emu, tmp_path):
    history = str(tmp_path / "history")
    first_node, ep = start_bridge(history_dir=history)
    old = ask(ep, "I am the old one", session="old")
    ask(ep, "I am the new one", session="new")
    assert first_node.stop() == 0
    # at most max_sessions sessions come back at start, the most recent first ...
    node, ep = start_bridge(history_dir=history, max_sessions=1)
    assert "restored 1 session(s), 1 exchange(s)" in node.log()
    # ... and a session that was left out (or evicted later) continues from its file when it speaks
    ask(ep, "do you remember me?", session="old")
    assert messages(emu.chat_bodies()[-1]) == conversation(("I am the old one", old.text), then="do you remember me?")
    assert "evicted least recently used session 'new'" in node.log()


def test_an_expired_session_is_forgotten_on_disk_too(start_bridge, emu, tmp_path):
    history = tmp_path / "history"
    node, ep = start_bridge(history_dir=str(history), session_ttl_s=1.0)
    ask(ep, "short-lived", session="brief")
    assert history_pairs(history, "brief")
    wait_until(lambda: not (history / history_file_name("brief")).exists(), 10, "the expired session's file to go")
    assert "forgotten after" in node.log()
    ask(ep, "hello again", session="brief")
    assert messages(emu.chat_bodies()[-1]) == conversation(then="hello again")


LONG = " ".join(f"word{i}" for i in range(40))


def test_kill_9_mid_stream_keeps_completed_exchanges_and_drops_the_interrupted_one(start_bridge, emu, tmp_path):
    history = tmp_path / "history"
    emu.set_models({"llama3.2": {"reply": ["Short one.", "Short two.", LONG], "chunk_delay_ms": 40}})
    node, ep = start_bridge(history_dir=str(history))
    s1 = ask(ep, "s1", session="s")
    s2 = ask(ep, "s2", session="s")
    t1 = ask(ep, "t1", session="t")
    ep.utter("s", "s3 interrupted")                          # turn 3: the long answer
    ep.utter("t", "t2 interrupted")                          # turn 2: short, may complete or not
    wait_streaming(ep, len(ep.partials.snapshot()) + 3)
    os.kill(node.proc.pid, signal.SIGKILL)
    assert node.proc.wait(10) == -signal.SIGKILL
    assert history_pairs(history, "s") == [("s1", s1.text), ("s2", s2.text)]
    t_saved = history_pairs(history, "t")
    assert t_saved[:1] == [("t1", t1.text)] and len(t_saved) <= 2
    for path in history.iterdir():
        read_history(path)                                   # every file is whole JSONL
    emu.set_models({"llama3.2": {"reply": "fine"}})
    node, ep = start_bridge(history_dir=str(history))
    assert "restored 2 session(s)" in node.log()
    ask(ep, "after the crash", session="s")
    assert messages(emu.chat_bodies()[-1]) == conversation(("s1", s1.text), ("s2", s2.text), then="after the crash")
    ask(ep, "t after", session="t")
    assert messages(emu.chat_bodies()[-1]) == conversation(*t_saved, then="t after")
    assert history_pairs(history, "s")[-1] == ("after the crash", "fine")
    node.assert_healthy()


def test_reset_deletes_the_session_file_and_a_cancelled_stream_does_not_bring_it_back(start_bridge, emu, tmp_path):
    history = tmp_path / "history"
    emu.set_models({"slow": {"reply": LONG, "chunk_delay_ms": 30}})
    node, ep = start_bridge(history_dir=str(history))
    ask(ep, "a1", session="a")
    b1 = ask(ep, "b1", session="b")
    ask(ep, "c1", session="c")
    assert ep.reset("a").success
    assert not (history / history_file_name("a")).exists()
    assert history_pairs(history, "b") == [("b1", b1.text)]
    # a reset that cancels a stream: the cancelled exchange is not saved afterwards
    assert ep.set_model("slow").success
    ep.utter("b", "b2 long")
    wait_streaming(ep, len(ep.partials.snapshot()) + 2)
    answer = ep.reset("b")
    assert answer.success and "1 streaming request(s) cancelled" in answer.message
    cancelled = ep.wait_finals(4)[3]
    assert cancelled.done_reason == "cancelled"
    emu.wait_for(lambda e: e.requests()[-1]["outcome"] is not None, what="the emulator to see the cancel")
    assert not (history / history_file_name("b")).exists()
    assert ep.reset("").success and list(history.iterdir()) == []
    node.stop()
    node, _ = start_bridge(history_dir=str(history))
    assert "restored 0 session(s), 0 exchange(s)" in node.log()


def test_corrupt_and_torn_files_are_reported_and_skipped_line_by_line(start_bridge, emu, tmp_path):
    history = tmp_path / "history"
    history.mkdir()

    def line(session, u, a):
        return json.dumps({"session": session, "user": u, "assistant": a, "time": 1.7e9}).encode() + b"\n"

    (history / "good.jsonl").write_bytes(
        line("good", "g1", "G1") + b"not json at all\n" + b'{"foo": 1}\n' + b"\xff\xfe\x00garbage\n"
        + b"\n" + line("good", "g2", "G2"))
    (history / "torn.jsonl").write_bytes(line("torn", "t1", "T1") + b'{"session":"torn","user":"t2","assi')
    (history / "empty.jsonl").write_bytes(b"")
    (history / "junk.jsonl").write_bytes(os.urandom(3000).replace(b"\n", b"x"))
    (history / "folder.jsonl").mkdir()
    (history / "notes.txt").write_text("not a history file\n")
    node, ep = start_bridge(history_dir=str(history))
    log = node.log()
    assert "good.jsonl line 2" in log and "good.jsonl line 3" in log and "good.jsonl line 4" in log, log[-3000:]
    assert "unfinished last line" in log and "no complete line" in log and "folder.jsonl" in log
    assert "restored 2 session(s), 3 exchange(s)" in log
    ask(ep, "g3", session="good")
    assert messages(emu.chat_bodies()[-1]) == conversation(("g1", "G1"), ("g2", "G2"), then="g3")
    final = ask(ep, "t2 again", session="torn")
    assert messages(emu.chat_bodies()[-1]) == conversation(("t1", "T1"), then="t2 again")
    assert history_pairs(history, "torn") == [("t1", "T1"), ("t2 again", final.text)], "appends start on a new line"
    node.assert_healthy()


def test_an_unusable_history_dir_is_reported_and_conversations_go_on_in_memory(start_bridge, emu, tmp_path):
    not_a_dir = tmp_path / "file"
    not_a_dir.write_text("x")
    node, ep = start_bridge(history_dir=str(not_a_dir))
    assert "is unusable" in node.log() and str(not_a_dir) in node.log()
    first = ask(ep, "one")
    ask(ep, "two")
    assert messages(emu.chat_bodies()[-1]) == conversation(("one", first.text), then="two")
    node.assert_healthy()
