"""Helpers shared by the integration tests: asking and waiting, chat bodies, raw CDR, history
files, process numbers."""
from __future__ import annotations

import contextlib
import json
import socket
import struct
from pathlib import Path

from harness import NodeProcess, fresh_namespace, wait_until

SYSTEM_TEXT = "You are a test robot."
SYSTEM = {"role": "system", "content": SYSTEM_TEXT}


def user(text):
    return {"role": "user", "content": text}


def assistant(text):
    return {"role": "assistant", "content": text}


def messages(body):
    """The messages of a logged chat body, reduced to role and content."""
    return [{"role": m["role"], "content": m["content"]} for m in body["messages"]]


def conversation(*turns, then):
    """The messages a request should carry: system prompt, (user, answer) turns, the new input."""
    out = [SYSTEM]
    for u, a in turns:
        out += [user(u), assistant(a)]
    return out + [user(then)]


def ask(ep, text, session=None, timeout=30.0):
    """Sends one input and returns the next final response (one request at a time)."""
    before = len(ep.finals.snapshot())
    ep.say(text) if session is None else ep.utter(session, text)
    return ep.wait_finals(before + 1, timeout)[before]


def final_for(ep, prompt, timeout=30.0):
    """The (single) final response whose prompt is `prompt`, once it arrived."""
    return wait_until(lambda: next((f for f in ep.finals.snapshot() if f.prompt == prompt), None),
                      timeout, f"the final response to {prompt!r}", ep.finals.cond)


def joined_partials(ep, final, timeout=10.0):
    """Waits until the request's partials add up to its text; returns them in arrival order."""
    wait_until(lambda: "".join(p.text for p in ep.partials_of(final.request_id)) == final.text, timeout,
               f"partials of request {final.request_id} to add up to {final.text!r} "
               f"(have {[p.text for p in ep.partials_of(final.request_id)]})")
    parts = ep.partials_of(final.request_id)
    assert [p.seq for p in parts] == list(range(len(parts))), "partials are numbered 0.. with no duplicate"
    return parts


def wait_streaming(ep, n_partials=1, timeout=15.0, request_ids=None):
    """Until `n_partials` partials arrived (of each of `request_ids` if given)."""
    if request_ids is None:
        return ep.partials.wait_count(n_partials, timeout, "partials")
    wait_until(lambda: all(len(ep.partials_of(r)) >= n_partials for r in request_ids), timeout,
               f"{n_partials} partials of each of requests {request_ids}", ep.partials.cond)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cdr_strings(*fields: bytes) -> bytes:
    """A little-endian CDR message made of string fields (std_msgs/String, Utterance), built by
    hand so it can carry bytes that are not UTF-8: header 00 01 00 00, then per string a u32
    length including the NUL (4-aligned), the bytes and the NUL."""
    out = bytearray(b"\x00\x01\x00\x00")
    for raw in fields:
        while (len(out) - 4) % 4:
            out.append(0)
        out += struct.pack("<I", len(raw) + 1) + raw + b"\x00"
    return bytes(out)


def history_file_name(session_id: str) -> str:
    """The node's file name for a session: bytes outside [A-Za-z0-9_-] percent-encoded."""
    safe = set(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-")
    return "".join(chr(b) if b in safe else f"%{b:02X}" for b in session_id.encode()) + ".jsonl"


def read_history(path: Path) -> list[dict]:
    """Every line of a history file, each of which must be a complete JSON object."""
    data = path.read_bytes()
    assert data == b"" or data.endswith(b"\n"), f"{path.name} ends inside a line: {data[-80:]!r}"
    lines = [json.loads(line) for line in data.decode("utf-8").splitlines()]
    for line in lines:
        assert set(line) >= {"session", "user", "assistant", "time"}, line
    return lines


def history_pairs(directory: Path, session_id: str) -> list[tuple[str, str]]:
    """(user, assistant) of every saved exchange of a session ([] without a file)."""
    path = directory / history_file_name(session_id)
    if not path.exists():
        return []
    return [(line["user"], line["assistant"]) for line in read_history(path)]


def proc_status(pid: int) -> dict:
    """Numbers from /proc/PID/status (kB for memory fields) plus the open file descriptors."""
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        parts = value.split()
        if parts and parts[0].isdigit():
            fields[key] = int(parts[0])
    fields["fds"] = len(list(Path(f"/proc/{pid}/fd").iterdir()))
    return fields


def finished_bodies(emu, n: int) -> list[dict]:
    """The bodies of the emulator's logged chat requests, once at least `n` have finished (a
    request is logged when its response ends, which can be just after the node's final)."""
    return [r["body"] for r in emu.wait_for_requests(n)]


@contextlib.contextmanager
def running_bridge(ros, logs_dir, extra_args=None, **params):
    """The real node for more than one test (`start_bridge` is per test), as a context manager for a
    module-scoped fixture: started in a fresh namespace with `params`, yields (NodeProcess,
    BridgeEndpoints) once ready; then SIGINT, which it must survive with exit code 0, no panic."""
    node = NodeProcess(fresh_namespace(), params, logs_dir, extra_args=extra_args)
    ep = ros.endpoints(node.namespace)
    try:
        try:
            ep.wait_ready()
        except AssertionError:
            raise AssertionError(f"node not ready:\n{node.log()[-3000:]}")
        yield node, ep
    finally:
        was_alive = node.alive()
        code = node.stop()
        ep.destroy()
        assert "panicked" not in node.log(), f"node panicked:\n{node.log()[-4000:]}"
        assert not was_alive or code == 0, f"node exited with {code} on SIGINT:\n{node.log()[-3000:]}"
