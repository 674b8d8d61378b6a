"""Faults: what can go wrong between an Ollama server and its client, on demand.

A fault spec is a JSON object with a ``kind``:

====================  ========================================================================
``status``            answer ``status`` (400/404/429/500/503/...) with Ollama's error body, or with
                      ``body`` + ``content_type`` verbatim (e.g. a proxy's HTML 502)
``error_line``        after ``after`` lines, send ``{"error": message}`` and end the stream
                      (``after`` 0: nothing was sent yet, so Go answers 500 + JSON, as here)
``cut``               after ``after`` lines, close the socket: no final line, no terminating chunk
                      (``reset: true`` sends a TCP RST instead of a FIN)
``truncate``          after ``after`` lines, end the HTTP response cleanly without the done line
``stall``             send nothing for ``seconds``: ``after`` 0 = before the status line,
                      N = after N lines; ``then``: ``continue`` (default) or ``cut``
``malformed``         after ``after`` lines, send a non-JSON line (``line``, default: half a line)
``long_line``         after ``after`` lines, send one valid chunk line of ``bytes`` bytes (8,000,100)
``split_lines``       write every line in two TCP writes, ``gap_ms`` apart, split ``at``
                      ``middle`` | ``utf8`` (inside the first multi-byte character) | a byte offset
``trickle``           write the whole response one byte at a time, ``byte_delay_ms`` apart
``timing``            this request only: override ``ttft_ms``, ``chunk_delay_ms``, ``load_ms``, ``pull_ms``
``script``            this request only: any model-script fields (``reply``, ``think_tag``, ...)
``stale_close``       a pooled keep-alive connection dies as a request arrives on it: its next reuse
                      (or exactly its ``request``-th request, >= 2) after at least ``idle_ms`` idle;
                      the request is read, then the socket closes before any response byte (FIN,
                      or RST with ``reset``)
``ignore_stream``     answer a ``stream: true`` request as ``stream: false`` (one whole object, as
                      servers and proxies that ignore ``stream`` do); ``pretty: true`` indents it
                      over several lines
====================  ========================================================================

``after`` counts lines (NDJSON lines, or SSE events on ``/v1``) already sent; a fault whose
``after`` is beyond the reply fires just before the final line. A queued entry adds ``count``
(requests it applies to, default 1, ``-1`` = until cleared), ``model`` (only requests for that
model), ``path`` (default: both chat endpoints, ``/api/chat`` and ``/v1/chat/completions``;
``stale_close``: any path; ``"*"`` = any), ``include_load`` (also match load/unload requests with
empty ``messages``; default false) and may combine several specs as ``{"all": [spec, ...]}``.
"""
from __future__ import annotations

import asyncio
import math

from . import http, wire

KINDS = ("status", "error_line", "cut", "truncate", "stall", "malformed", "long_line",
         "split_lines", "trickle", "timing", "script", "stale_close", "ignore_stream")
CHAT_PATHS = ("/api/chat", "/v1/chat/completions")
ENTRY_KEYS = frozenset(("kind", "count", "model", "path", "include_load", "all"))   # not part of a spec
TIMING_KEYS = ("ttft_ms", "chunk_delay_ms", "load_ms", "pull_ms")
_MID_STREAM = ("error_line", "cut", "truncate", "stall", "malformed", "long_line")

DEFAULT_MESSAGES = {
    400: '"{model}" does not support chat',
    404: 'model "{model}" not found, try pulling it first',
    429: "too many requests",
    499: "request canceled",
    500: "the model failed to generate a response",
    503: "server busy, please try again.  maximum pending requests exceeded",
}
PROXY_502 = ("<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n<center><h1>502 Bad "
             "Gateway</h1></center>\r\n<hr><center>nginx/1.24.0</center>\r\n</body>\r\n</html>\r\n")
STREAM_ERROR = "an error was encountered while running the model"


class FaultError(ValueError):
    """A fault spec that cannot be used (the control API answers 400 with this text)."""


def parse_spec(spec) -> dict:
    """Validate one spec and fill its defaults."""
    if not isinstance(spec, dict) or spec.get("kind") not in KINDS:
        raise FaultError("fault kind must be one of %s, got %r" % (", ".join(KINDS), spec))
    out = dict(spec)
    kind = out["kind"]
    if kind in _MID_STREAM:
        after = out.setdefault("after", 0)
        if not isinstance(after, int) or isinstance(after, bool) or after < 0:
            raise FaultError("%s: 'after' must be an integer >= 0" % kind)
    if kind == "status":
        if not isinstance(out.get("status"), int) or not 400 <= out["status"] <= 599:
            raise FaultError("status: 'status' must be an HTTP error code (400-599)")
        if out["status"] == 502 and "body" not in out and "message" not in out:
            out.update(body=PROXY_502, content_type="text/html")
    if kind == "stall":
        if not isinstance(out.get("seconds"), (int, float)) or out["seconds"] < 0:
            raise FaultError("stall: 'seconds' must be a number >= 0")
        if out.setdefault("then", "continue") not in ("continue", "cut"):
            raise FaultError("stall: 'then' must be 'continue' or 'cut'")
    if kind == "ignore_stream" and not isinstance(out.setdefault("pretty", False), bool):
        raise FaultError("ignore_stream: 'pretty' must be true or false")
    if kind == "script":
        from .scripted import FIELDS              # here: scripted imports this module
        unknown = set(out) - FIELDS - ENTRY_KEYS
        if unknown:
            raise FaultError("script: unknown model field(s) %s" % ", ".join(sorted(unknown)))
    if kind == "stale_close":
        nth, idle = out.setdefault("request", None), out.setdefault("idle_ms", 0)
        if nth is not None and (not isinstance(nth, int) or isinstance(nth, bool) or nth < 2):
            raise FaultError("stale_close: 'request' must be an integer >= 2 (a request on a reused connection)")
        if not isinstance(idle, (int, float)) or idle < 0:
            raise FaultError("stale_close: 'idle_ms' must be a number >= 0")
    return out


def parse_entry(entry) -> dict:
    """A queued entry: its specs plus count/model/path/include_load."""
    if not isinstance(entry, dict):
        raise FaultError("a fault entry must be an object")
    specs = entry.get("all")
    specs = [parse_spec(s) for s in specs] if isinstance(specs, list) else [parse_spec(entry)]
    count = entry.get("count", 1)
    if not isinstance(count, int) or isinstance(count, bool) or (count < 1 and count != -1):
        raise FaultError("'count' must be an integer >= 1, or -1 (until cleared)")
    stale = any(s["kind"] == "stale_close" for s in specs)
    if stale and len(specs) > 1:
        raise FaultError("stale_close cannot be combined: no response is sent")
    model = entry.get("model")
    return {"specs": specs, "count": count, "model": wire.canonical_name(model) if model else None,
            "path": entry.get("path", "*" if stale else None), "include_load": bool(entry.get("include_load")),
            "stale": stale}


def _path_matches(pattern, path: str) -> bool:
    return pattern == "*" or path == pattern or (pattern is None and path in CHAT_PATHS)


class FaultBook:
    """The queue of one-shot faults, taken first-in first-out by matching requests."""

    def __init__(self):
        self.queue: list[dict] = []

    def push(self, payload) -> int:
        """Queue ``{"faults": [...]}``, a list of entries or one entry; returns how many."""
        entries = payload.get("faults") if isinstance(payload, dict) and "faults" in payload else payload
        parsed = [parse_entry(e) for e in (entries if isinstance(entries, list) else [entries])]
        self.queue.extend(parsed)
        return len(parsed)

    def take(self, path: str, model: str | None, is_load: bool) -> list[dict]:
        """The specs of the first entry matching this request (using up one of its count)."""
        canon = wire.canonical_name(model) if model else None
        for entry in self.queue:
            if entry["stale"] or not _path_matches(entry["path"], path) or entry["model"] not in (None, canon):
                continue
            if is_load and not entry["include_load"]:
                continue
            self._use(entry)
            return entry["specs"]
        return []

    def take_stale(self, path: str, nth: int, idle_ms: float, model: str | None) -> dict | None:
        """The ``stale_close`` spec for the ``nth`` request of a connection idle for ``idle_ms``, if any."""
        canon = wire.canonical_name(model) if model else None
        for entry in self.queue:
            spec = entry["specs"][0]
            if (entry["stale"] and _path_matches(entry["path"], path) and entry["model"] in (None, canon)
                    and spec["request"] in (None, nth) and idle_ms >= spec["idle_ms"]):
                self._use(entry)
                return spec
        return None

    def _use(self, entry: dict) -> None:
        if entry["count"] > 0:
            entry["count"] -= 1
            if entry["count"] == 0:
                self.queue.remove(entry)

    def snapshot(self) -> list[dict]:
        """The queue as JSON-able data."""
        return [dict(e) for e in self.queue]


class SplitShaper:
    """Writes each frame in two TCP writes, the cut inside the JSON line, ``gap_ms`` apart."""

    def __init__(self, at="middle", gap_ms: float = 20):
        self.at, self.gap = at, gap_ms / 1000

    def _cut(self, data: bytes) -> int:
        start = data.find(b"\r\n\r\n") + 4 if data.startswith(b"HTTP/") else 0
        start = data.find(b"\r\n", start) + 2 if data[start:start + 1] not in (b"", b"{") else start
        if self.at == "utf8":
            for i in range(start, len(data)):
                if data[i] >= 0xC0:
                    return i + 1
        if isinstance(self.at, int) and not isinstance(self.at, bool):
            return min(max(start + self.at, 1), len(data) - 1)
        return start + max(1, (len(data) - 2 - start) // 2)

    async def write(self, conn, data: bytes, whole: bool = False) -> bool:
        """Send ``data`` in two writes, waiting for the first to leave before the second."""
        if len(data) < 2:
            return conn.write(data) and await conn.drain(force=True)
        k = self._cut(data)
        if not conn.write(data[:k]) or not await conn.drain(force=True):
            return False
        await asyncio.sleep(self.gap)
        return conn.write(data[k:]) and await conn.drain(force=True)


class TrickleShaper:
    """Writes every byte on its own, ``byte_delay_ms`` apart."""

    def __init__(self, byte_delay_ms: float = 1):
        self.delay = byte_delay_ms / 1000

    async def write(self, conn, data: bytes, whole: bool = False) -> bool:
        """Send ``data`` byte by byte; stops early when the peer is gone."""
        for i in range(len(data)):
            if not conn.write(data[i:i + 1]) or not await conn.drain(force=True):
                return False
            await asyncio.sleep(self.delay)
        return True


class FaultPlan:
    """The faults in force for one request, resolved from persistent and queued specs."""

    def __init__(self, specs: list[dict]):
        self.kinds = [s["kind"] for s in specs]
        self.status = next((s for s in specs if s["kind"] == "status"), None)
        self.timing = {}
        self.script = {}
        self.shaper = None
        self.actions: list[dict] = []
        self.whole = next((s for s in specs if s["kind"] == "ignore_stream"), None)
        for s in specs:
            if s["kind"] == "timing":
                self.timing.update({k: s[k] for k in TIMING_KEYS if k in s})
            elif s["kind"] == "script":
                self.script.update({k: v for k, v in s.items() if k not in ENTRY_KEYS})
            elif s["kind"] == "split_lines":
                self.shaper = SplitShaper(s.get("at", "middle"), s.get("gap_ms", 20))
            elif s["kind"] == "trickle":
                self.shaper = TrickleShaper(s.get("byte_delay_ms", 1))
            elif s["kind"] in _MID_STREAM:
                self.actions.append(s)
        self.actions.sort(key=lambda s: s["after"])

    def due(self, sent: float) -> list[dict]:
        """Remove and return the actions whose ``after`` is reached (``math.inf``: all left)."""
        due = [a for a in self.actions if a["after"] <= sent]
        if due:
            self.actions = [a for a in self.actions if a["after"] > sent]
        return due


def status_response(spec: dict, model: str, front) -> tuple[int, bytes, str]:
    """(status, body, content type) of a ``status`` fault, in the front's error shape."""
    if "body" in spec:
        return spec["status"], str(spec["body"]).encode(), spec.get("content_type", "text/plain")
    text = spec.get("message") or DEFAULT_MESSAGES.get(spec["status"], http.reason(spec["status"]).lower())
    body, ctype = front.error(spec["status"], text.replace("{model}", model))
    return spec["status"], body, ctype


async def run_action(action: dict, stream: http.ChunkedStream, conn: http.Connection, front) -> str | None:
    """Carry out one mid-stream fault; returns the outcome if it ended the response, else ``None``.

    ``front`` (``fronts.py``) shapes error bodies, error events and filler lines.
    """
    kind = action["kind"]
    if kind == "stall":
        try:
            await asyncio.wait_for(conn.gone.wait(), action["seconds"])
            return "canceled"
        except asyncio.TimeoutError:
            pass
        if action["then"] == "cut":
            conn.close()
            return "cut"
        return None
    if kind == "cut":
        await conn.drain(force=True)
        conn.close(reset=bool(action.get("reset")))
        return "cut"
    if kind == "truncate":
        await stream.finish()
        return "truncated"
    if kind == "error_line":
        text = action.get("message", STREAM_ERROR)
        if not stream.started:
            body, ctype = front.error(action.get("status", 500), text, streaming=True)
            await http.send(conn, action.get("status", 500), body, ctype, shaper=stream.shaper)
        else:
            await stream.send_line(front.error_event(text, action.get("style")))
            await stream.finish()
        return "error_line"
    if kind == "malformed":
        line = action.get("line")
        empty = front.text_line("")
        raw = line.encode() if isinstance(line, str) else empty[: len(empty) // 2]
        await stream.send_line(raw.rstrip(b"\n") + front.end)
    elif kind == "long_line":
        size = int(action.get("bytes", 8_000_100))
        base = len(front.text_line(""))
        await stream.send_line(front.text_line("x" * max(0, size - base)))
    return None


INF = math.inf
