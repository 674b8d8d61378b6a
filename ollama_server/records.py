"""What the emulator saw: the request log and the counters behind ``GET /_emulator/stats``.

A log entry (``GET /_emulator/requests``) has ``id``, ``method``, ``path``, ``query``, ``headers``,
``body`` (the parsed JSON, whole: messages, tools, base64 images), ``raw_body`` (text when not
JSON), ``received_at`` (RFC 3339), ``received_ns``, ``connection`` (``{"id", "request"}``: which
TCP connection and its n-th request), ``status``, ``ttfb_ms``, ``faults``, ``outcome`` (``result``,
``chunks`` sent, ``duration_ms``, ``generated``/``planned`` pieces, ``done_reason``, ...), and
``cancelled`` (the client closed the connection before the reply ended). ``/v1`` requests also
have ``ollama_body``, the ``api.ChatRequest`` Ollama's middleware turns them into.

Stats count every Ollama-API request (not the control API) by outcome: ``completed`` (including
load/unload replies), ``cancelled`` (the client left), ``failed`` (error replies and injected
faults), with ``in_flight`` for those not finished, ``chunks`` sent, and the same per model and
per path, plus ``results`` (count per outcome result).
"""
from __future__ import annotations

import collections
import json

from . import http, wire

COMPLETED = frozenset(("completed", "load", "unload"))
CANCELLED = "canceled"


def _counters() -> dict:
    return {"requests": 0, "in_flight": 0, "completed": 0, "cancelled": 0, "failed": 0, "chunks": 0}


class Stats:
    """Request counters, in total, per model and per path."""

    def __init__(self):
        self.reset()

    def reset(self) -> None:
        """Counters back to zero; requests still running stay counted (as requests and in flight)."""
        running = list(getattr(self, "_open", {}).values())
        self.total = _counters()
        self.models: dict[str, dict] = collections.defaultdict(_counters)
        self.paths: dict[str, dict] = collections.defaultdict(_counters)
        self.results: collections.Counter = collections.Counter()
        self._open: dict[int, dict] = {}
        for entry in running:
            self.opened(entry)

    def _groups(self, entry: dict) -> list[dict]:
        groups = [self.total, self.paths[entry["path"]]]
        model = entry.get("model")
        if model:
            groups.append(self.models[model])
        return groups

    def opened(self, entry: dict) -> None:
        """A request arrived."""
        self._open[entry["id"]] = entry
        for g in self._groups(entry):
            g["requests"] += 1
            g["in_flight"] += 1

    def closed(self, entry: dict) -> None:
        """A request ended with ``entry["outcome"]``."""
        if entry["id"] not in self._open:
            return
        del self._open[entry["id"]]
        result = entry["outcome"]["result"]
        kind = "completed" if result in COMPLETED else "cancelled" if result == CANCELLED else "failed"
        self.results[result] += 1
        for g in self._groups(entry):
            g["in_flight"] -= 1
            g[kind] += 1
            g["chunks"] += entry["outcome"].get("chunks", 0)

    def snapshot(self) -> dict:
        """The JSON answer of ``GET /_emulator/stats``."""
        return {**self.total, "results": dict(self.results), "models": dict(self.models), "paths": dict(self.paths)}


class RequestLog:
    """Every Ollama request with its outcome; optionally appended to a JSONL file when it ends."""

    def __init__(self, path: str | None = None):
        self.entries: list[dict] = []
        self.path = path
        self.stats = Stats()
        self._next = 1

    def open(self, req: http.Request, conn: http.Connection) -> dict:
        """A new entry for ``req`` (body parsed when it is JSON)."""
        entry = {"id": self._next, "method": req.method, "path": req.path, "query": req.query,
                 "headers": req.headers, "body": None, "received_at": wire.rfc3339(req.wall_ns),
                 "received_ns": req.wall_ns, "connection": {"id": conn.id, "request": conn.served + 1},
                 "status": None, "ttfb_ms": None, "faults": [], "outcome": None, "cancelled": False}
        self._next += 1
        if req.body:
            try:
                entry["body"] = json.loads(req.body)
            except ValueError:
                entry["raw_body"] = req.body[:10000].decode("utf-8", "replace")
        body = entry["body"]
        name = (body.get("model") or body.get("name")) if isinstance(body, dict) else None
        if isinstance(name, str) and name:
            entry["model"] = wire.canonical_name(name)
        self.entries.append(entry)
        self.stats.opened(entry)
        return entry

    def close(self, entry: dict) -> None:
        """The request is over: count it, and write it to the file, if any."""
        if entry["outcome"] is None:
            entry["outcome"] = {"result": "completed" if (entry["status"] or 500) < 400 else "error"}
        entry["cancelled"] = entry["outcome"]["result"] == CANCELLED
        self.stats.closed(entry)
        if self.path:
            with open(self.path, "a", encoding="utf-8") as fh:
                fh.write(json.dumps(entry, ensure_ascii=False) + "\n")

    def select(self, path: str | None) -> list[dict]:
        """Entries, optionally only those for one path."""
        return [e for e in self.entries if path in (None, "", e["path"])]
