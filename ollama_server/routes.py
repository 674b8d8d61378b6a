"""Endpoints: Ollama's (``/``, ``/api/version|tags|show|ps|pull|chat``, ``/v1/...``) and the control API.

Control API (not Ollama; every answer is JSON):

* ``GET /_emulator/requests[?path=/api/chat]`` → ``{"requests": [entry, ...]}`` (see ``records``),
  ``DELETE`` empties the log → ``{"cleared": n}``
* ``GET /_emulator/stats`` → request counters (total, ``in_flight``, ``completed``, ``cancelled``,
  ``failed``, ``chunks``, per model and per path; see ``records``); ``DELETE`` zeroes them.
* ``POST /_emulator/faults`` (``{"faults": [entry, ...]}``, a list or one entry) → ``{"queued": n}``;
  ``GET`` lists the queue, ``DELETE`` empties it.
* ``POST /_emulator/models`` ``{"models": {name: script}, "replace": false}`` → ``{"models": [names]}``;
  ``GET`` lists the scripts.
* ``POST /_emulator/reset`` → start-up models, no faults, empty log and stats, nothing loaded.
* ``GET /_emulator/state`` → server id, loaded models, running and waiting requests, queue and log sizes.
"""
from __future__ import annotations

import json
import logging
import time
import urllib.parse

from . import chat, faults, http, openai, pull, wire
from .fronts import OllamaFront
from .records import RequestLog
from .scheduler import Scheduler

log = logging.getLogger("ollama_server.routes")
JSON = "application/json; charset=utf-8"
CONTROL = "/_emulator/"


class App:
    """The server's state and request dispatch; ``backend`` supplies models and generations."""

    def __init__(self, backend, version: str = "0.12.3", max_queue: int = 512, local_time: bool = False,
                 request_log: str | None = None, server_id: str = ""):
        self.backend, self.version, self.local_time = backend, version, local_time
        self.server_id = server_id or getattr(backend, "server_id", "")
        if self.server_id and hasattr(backend, "server_id"):
            backend.server_id = self.server_id
        self.extra_headers = [("X-Emulator-Server", self.server_id)] if self.server_id else []
        self.scheduler = Scheduler(max_queue, on_unload=getattr(backend, "unload", None))
        self.book = faults.FaultBook()
        self.log = RequestLog(request_log)
        self.ollama_front = OllamaFront("")
        self.routes = {
            ("GET", "/"): self.root, ("HEAD", "/"): self.root,
            ("GET", "/api/version"): self.version_, ("HEAD", "/api/version"): self.version_,
            ("GET", "/api/tags"): self.tags, ("HEAD", "/api/tags"): self.tags,
            ("POST", "/api/show"): self.show, ("GET", "/api/ps"): self.ps,
            ("POST", "/api/pull"): self.pull, ("POST", "/api/chat"): self.chat,
            ("POST", "/v1/chat/completions"): self.v1_chat, ("GET", "/v1/models"): self.v1_models,
        }

    async def handle(self, req: http.Request, conn: http.Connection) -> None:
        """Dispatch one request; Ollama requests are logged, control requests are not."""
        if req.path.startswith(CONTROL):
            return await self.control(req, conn)
        entry = self.log.open(req, conn)
        handler = self.routes.get((req.method, req.path))
        if handler is None and req.method == "GET" and req.path.startswith("/v1/models/"):
            handler = self.v1_models
        try:
            stale = conn.served and self.book.take_stale(req.path, conn.served + 1,
                                                         (time.monotonic() - conn.idle_since) * 1000, entry.get("model"))
            if stale:                         # the server closed this idle connection as the request came
                conn.close(reset=bool(stale.get("reset")))
                entry["faults"], entry["outcome"] = ["stale_close"], {"result": "stale_close", "chunks": 0}
            elif handler is None:             # gin: unknown route or method → plain-text 404
                await self.send(conn, entry, 404, b"404 page not found", "text/plain")
            else:
                await handler(req, conn, entry)
        except Exception:                     # gin's Recovery: a panic becomes an empty 500
            log.exception("%s %s failed", req.method, req.path)
            if entry["status"] is None and not conn.closed:
                await self.send(conn, entry, 500, b"", None)
            entry["outcome"] = {"result": "server_error"}
        finally:
            self.log.close(entry)

    async def send(self, conn, entry, status: int, body: bytes, ctype: str, head_only: bool = False) -> None:
        """Send a whole response and note its status."""
        await http.send(conn, status, body, ctype, head_only=head_only)
        entry["status"] = status

    async def json(self, conn, entry, obj, status: int = 200, head_only: bool = False) -> None:
        """gin's ``c.JSON``."""
        await self.send(conn, entry, status, wire.go_bytes(obj), JSON, head_only)

    # ------------------------------------------------------------------------------ Ollama API
    async def root(self, req, conn, entry):
        """``GET|HEAD /``: the heartbeat."""
        await self.send(conn, entry, 200, b"Ollama is running", "text/plain; charset=utf-8",
                        head_only=req.method == "HEAD")

    async def version_(self, req, conn, entry):
        """``GET|HEAD /api/version``."""
        await self.json(conn, entry, {"version": self.version}, head_only=req.method == "HEAD")

    async def tags(self, req, conn, entry):
        """``GET|HEAD /api/tags``: every model the backend has."""
        models = [{"name": m.display, "model": m.display, "modified_at": wire.rfc3339(m.modified_ns, True),
                   "size": m.size, "digest": m.digest, "details": m.details()}
                  for m in self.backend.models.values()]
        await self.json(conn, entry, {"models": models}, head_only=req.method == "HEAD")

    async def show(self, req, conn, entry):
        """``POST /api/show``: details, model_info, capabilities."""
        try:
            body = wire.decode_body(req.body, req.path)
        except wire.DecodeError as err:
            return await self.json(conn, entry, {"error": str(err)}, 400)
        name = body.get("model") or body.get("name") or ""
        if not name:
            return await self.json(conn, entry, {"error": "model is required"}, 400)
        m = self.backend.get(name)
        if m is None:
            return await self.json(conn, entry, {"error": "model '%s' not found" % name}, 404)
        info = {"modelfile": "# Modelfile generated by \"ollama show\"\nFROM %s\n" % m.display,
                "template": "{{ .Prompt }}", "details": m.details(), "model_info": m.model_info(),
                "capabilities": m.capabilities, "modified_at": wire.rfc3339(m.modified_ns, True)}
        await self.json(conn, entry, info)

    async def ps(self, req, conn, entry):
        """``GET /api/ps``: the loaded models, longest-lived first."""
        now = time.time_ns()
        models = [{"name": r.model.display, "model": r.model.display, "size": r.model.size,
                   "digest": r.model.digest, "details": r.model.details(),
                   "expires_at": wire.rfc3339(r.expiry(now), True), "size_vram": 0,
                   "context_length": r.model.context_length}
                  for r in self.scheduler.loaded()]
        await self.json(conn, entry, {"models": models})

    async def pull(self, req, conn, entry):
        """``POST /api/pull`` (see ``pull.py``)."""
        await pull.handle(self, req, conn, entry)

    async def chat(self, req, conn, entry):
        """``POST /api/chat`` (see ``chat.py``)."""
        await chat.handle(self, req, conn, entry)

    async def v1_chat(self, req, conn, entry):
        """``POST /v1/chat/completions`` (see ``openai.py``)."""
        await openai.chat_completions(self, req, conn, entry)

    async def v1_models(self, req, conn, entry):
        """``GET /v1/models[/name]`` (see ``openai.py``)."""
        await openai.models(self, req, conn, entry)

    # ----------------------------------------------------------------------------- control API
    async def control(self, req: http.Request, conn: http.Connection) -> None:
        """The ``/_emulator/`` endpoints (see the module doc)."""
        what = req.path[len(CONTROL):].strip("/")
        try:
            payload = json.loads(req.body) if req.body.strip() else {}
            result = self._control(req.method, what, req.query, payload)
        except (ValueError, TypeError, faults.FaultError) as err:
            return await http.send(conn, 400, wire.error_body(str(err)), JSON)
        if result is None:
            return await http.send(conn, 404, b"404 page not found", "text/plain")
        await http.send(conn, 200, json.dumps(result, ensure_ascii=False).encode(), JSON)

    def _control(self, method: str, what: str, query: str, payload):
        params = dict(urllib.parse.parse_qsl(query))
        if (method, what) == ("GET", "requests"):
            return {"requests": self.log.select(params.get("path"))}
        if (method, what) == ("DELETE", "requests"):
            n, self.log.entries = len(self.log.entries), []
            return {"cleared": n}
        if (method, what) == ("GET", "stats"):
            return self.log.stats.snapshot()
        if (method, what) == ("DELETE", "stats"):
            self.log.stats.reset()
            return self.log.stats.snapshot()
        if (method, what) == ("POST", "faults"):
            return {"queued": self.book.push(payload)}
        if (method, what) == ("GET", "faults"):
            return {"faults": self.book.snapshot()}
        if (method, what) == ("DELETE", "faults"):
            n, self.book.queue = len(self.book.queue), []
            return {"cleared": n}
        if (method, what) == ("POST", "models"):
            if not hasattr(self.backend, "set_models"):
                raise ValueError("the %s backend has fixed models" % self.backend.kind)
            specs = payload.get("models", payload) if isinstance(payload, dict) else None
            if not isinstance(specs, dict):
                raise ValueError('expected {"models": {name: script}}')
            return {"models": self.backend.set_models(specs, replace=bool(payload.get("replace")))}
        if (method, what) == ("GET", "models"):
            return {"models": {m.display: getattr(m, "spec", {}) for m in self.backend.models.values()}}
        if (method, what) == ("POST", "reset"):
            self.log.entries, self.book.queue = [], []
            self.log.stats.reset()
            self.scheduler.reset()
            if hasattr(self.backend, "reset"):
                self.backend.reset()
            return {"reset": True}
        if (method, what) == ("GET", "state"):
            return {"backend": self.backend.kind, "version": self.version, "server_id": self.server_id,
                    "loaded": [r.model.display for r in self.scheduler.loaded()],
                    "active": {k: v for k, v in self.scheduler.active.items() if v},
                    "waiting": self.scheduler.pending, "faults": len(self.book.queue),
                    "requests": len(self.log.entries)}
        return None

