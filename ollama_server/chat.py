"""``POST /api/chat``: Ollama's ChatHandler, step for step, over any backend, with faults applied.

Order of checks (as in ``server/routes.go``): body → ``model is required`` → ``model 'x' not found``
→ unload (empty messages + keep_alive 0) → thinking/tools capability → options → queue + load →
load reply (empty messages) → format → generation. A streamed reply sends its status line with
its first line; the final line carries honest counters (eval_count = generated pieces sent,
prompt_eval_count = the backend's prompt token count, durations from real clocks in ns,
load_duration only when this request waited for a load). ``serve`` is shared with the
OpenAI-compatible path (``openai.py``), which only changes the front (``fronts.py``).
"""
from __future__ import annotations

import contextlib
import json
import logging
import time

from . import faults, http, wire
from .fronts import JSON, OllamaFront
from .scheduler import QueueFull

log = logging.getLogger("ollama_server.chat")


class Exchange:
    """One chat request in flight: its connection, log entry, front, timing and what was sent."""

    def __init__(self, app, req: http.Request, conn: http.Connection, entry: dict, front=None):
        self.app, self.req, self.conn, self.entry, self.front = app, req, conn, entry, front
        self.sent = 0
        self.eval_count = 0
        self.t_loaded = self.t_first = None
        self.load_ns = 0
        self.gen = None
        self.sent_ns = None                   # with the script's log_send_times: CLOCK_MONOTONIC per line

    def outcome(self, result: str, status: int | None = None, **extra) -> None:
        """Record how the request ended (visible in the request log)."""
        self.entry["status"] = status if status is not None else self.entry.get("status")
        out = {"result": result, "chunks": self.sent,
               "duration_ms": (time.perf_counter_ns() - self.req.t0) / 1e6, **extra}
        if self.sent_ns is not None:
            out["sent_ns"] = self.sent_ns
        if self.gen is not None and hasattr(self.gen, "planned"):
            out.update(generated=self.gen.produced, planned=self.gen.planned)
            if self.gen.images:
                out["images"] = self.gen.images
        self.entry["outcome"] = out
        if result == "canceled":
            log.info("chat %s canceled after %d chunks", self.entry["id"], self.sent)

    async def reply(self, status: int, body: bytes, content_type: str, result: str = "error",
                    shaper=None) -> None:
        """A whole (non-streamed) response."""
        await http.send(self.conn, status, body, content_type, shaper=shaper)
        if self.entry.get("ttfb_ms") is None:
            self.entry["ttfb_ms"] = (time.perf_counter_ns() - self.req.t0) / 1e6
        self.outcome(result if not self.conn.gone.is_set() else "canceled", status)

    async def error(self, status: int, text: str) -> None:
        """An error reply in the front's shape (Ollama: ``{"error": text}``)."""
        body, ctype = self.front.error(status, text)
        await self.reply(status, body, ctype, result="error")
        self.entry["outcome"]["error"] = text

    def final_metrics(self, gen) -> dict:
        """The metrics of the final line, measured now."""
        now = time.perf_counter_ns()
        first = self.t_first or now
        return wire.metrics(total_duration=now - self.req.t0, load_duration=self.load_ns,
                            prompt_eval_count=gen.prompt_eval_count,
                            prompt_eval_duration=first - (self.t_loaded or self.req.t0),
                            eval_count=gen.eval_count if gen.eval_count is not None else self.eval_count,
                            eval_duration=now - self.t_first if self.t_first else 0)


async def handle(app, req: http.Request, conn: http.Connection, entry: dict) -> None:
    """Serve one ``/api/chat`` request end to end."""
    try:
        body = wire.decode_body(req.body, req.path)
    except wire.DecodeError as err:
        ex = Exchange(app, req, conn, entry, OllamaFront(""))
        return await ex.error(400, str(err))
    await serve(app, body, req, conn, entry, OllamaFront(body.get("model") or "", app.local_time))


async def serve(app, body: dict, req: http.Request, conn: http.Connection, entry: dict, front) -> None:
    """ChatHandler from ``keep_alive`` on, for a decoded ``api.ChatRequest`` body."""
    ex = Exchange(app, req, conn, entry, front)
    try:
        keep_alive = wire.parse_keep_alive(body.get("keep_alive"))
    except wire.DecodeError as err:
        return await ex.error(400, str(err))
    name = body.get("model") or ""
    if not name:
        return await ex.error(400, "model is required")
    model = app.backend.get(name)
    if model is None:
        return await ex.error(404, "model '%s' not found" % name)
    messages = body.get("messages") or []
    plan = faults.FaultPlan(list(model.faults) + app.book.take(req.path, name, not messages))
    entry["faults"] = plan.kinds
    if plan.script:
        model = model.with_overrides(plan.script)
    if plan.status is not None:
        status, payload, ctype = faults.status_response(plan.status, name, front)
        return await ex.reply(status, payload, ctype, result="status_fault", shaper=plan.shaper)
    if not messages and keep_alive == 0:
        app.scheduler.unload(model)
        return await ex.reply(200, _done_only(app, name, "unload"), JSON, result="unload")
    think = body.get("think")
    if "thinking" not in model.capabilities and think not in (None, False):
        return await ex.error(400, '"%s" does not support thinking' % name)
    if body.get("tools") and "tools" not in model.capabilities:
        return await ex.error(400, "%s does not support tools" % wire.qualified_name(name))
    if "completion" not in model.capabilities:
        return await ex.error(400, '"%s" does not support chat' % name)
    bad_option = wire.check_options(body.get("options"))
    if bad_option:
        return await ex.error(500, bad_option)
    try:
        if not await app.scheduler.acquire(model, conn.gone):
            return ex.outcome("canceled", 499)
    except QueueFull as err:
        return await ex.error(503, str(err))
    try:
        await _run(ex, body, model, name, plan, keep_alive, think is None or bool(think))
    finally:
        app.scheduler.release(model)


async def _run(ex: Exchange, body: dict, model, name: str, plan, keep_alive, think: bool) -> None:
    app, conn = ex.app, ex.conn
    load_ms = plan.timing.get("load_ms", getattr(model, "load_ms", 0))
    try:
        ex.load_ns = await app.scheduler.ensure_loaded(model, keep_alive, lambda cancel: app.backend.load(
            model, load_ms, cancel), conn.gone)
    except Exception as err:                  # a backend that cannot load: Ollama's 500
        log.exception("loading %s failed", name)
        return await ex.error(500, str(err))
    if ex.load_ns is None:                    # the client left while the model was loading
        return ex.outcome("canceled", 499)
    if getattr(model, "log_send_times", False):
        ex.sent_ns = []
    try:
        ex.t_loaded = time.perf_counter_ns()
        if conn.gone.is_set():
            return ex.outcome("canceled", 499)
        if not body.get("messages"):
            return await ex.reply(200, _done_only(app, name, "load"), JSON, result="load")
        fmt = body.get("format")
        if fmt not in (None, "", "json") and not isinstance(fmt, dict):
            return await ex.error(500, 'invalid format: %s; expected "json" or a valid JSON Schema object'
                                  % wire.go_json(wire.go_json(fmt)))
        ex.gen = gen = app.backend.generate(model, body, think, plan.timing, conn.gone)
        if body.get("stream", True) is False or plan.whole is not None:
            await _whole(ex, gen, plan)
        else:
            await _stream(ex, gen, plan)
    finally:
        app.scheduler.finish(model)


async def _stream(ex: Exchange, gen, plan: faults.FaultPlan) -> None:
    """Stream the reply line by line, applying mid-stream faults at their line counts."""
    conn, front = ex.conn, ex.front
    stream = http.ChunkedStream(conn, 200, front.stream_type, plan.shaper)

    async def due(sent) -> str | None:
        for action in plan.due(sent):
            started = stream.started
            result = await faults.run_action(action, stream, conn, front)
            if result == "error_line" and not started:
                ex.entry["status"] = action.get("status", 500)
            if result:
                return result
        return None

    result = await due(0) if plan.actions else None
    failure = {}
    if result is None:
        try:
            result = await _pump(ex, gen, stream, plan, due)
        except Exception as err:              # the model failed: Ollama's {"error"} (500 if nothing sent)
            log.info("generation failed: %s", err)
            if not stream.started:
                ex.entry["status"] = 500
            result = await faults.run_action({"kind": "error_line", "message": str(err)}, stream, conn, front)
            failure["error"] = str(err)
    if result is None and conn.gone.is_set():
        result = "canceled"
    if result is None and plan.actions:
        result = await due(faults.INF)
    if result is not None:
        return ex.outcome(result, 200 if stream.started else ex.entry.get("status"), **failure)
    metrics = ex.final_metrics(gen)
    ok = await stream.send_line(front.final(gen.done_reason, metrics)) and await stream.finish()
    ex.outcome("completed" if ok else "canceled", 200, done_reason=gen.done_reason,
               eval_count=metrics.get("eval_count", 0), prompt_eval_count=metrics.get("prompt_eval_count", 0))


async def _pump(ex: Exchange, gen, stream, plan, due) -> str | None:
    """Send the generated items as lines; returns a fault outcome if one ended the stream."""
    line = ex.front.line
    async with contextlib.aclosing(aiter(gen)) as items:
        async for field, value, tokens in items:
            if ex.t_first is None:
                ex.t_first = time.perf_counter_ns()
            if not await stream.send_line(line(field, value)):
                return None
            if ex.sent_ns is not None:
                ex.sent_ns.append(time.monotonic_ns())
            if ex.sent == 0:
                ex.entry["ttfb_ms"] = (time.perf_counter_ns() - ex.req.t0) / 1e6
            ex.sent += 1
            ex.eval_count += tokens
            if plan.actions:
                result = await due(ex.sent)
                if result:
                    return result
    return None


async def _whole(ex: Exchange, gen, plan: faults.FaultPlan) -> None:
    """``stream: false``: one object with the whole message; faults act on that one body."""
    parts = {"content": [], "thinking": [], "tool_calls": []}
    try:
        async with contextlib.aclosing(aiter(gen)) as items:
            async for field, value, tokens in items:
                if ex.t_first is None:
                    ex.t_first = time.perf_counter_ns()
                parts[field].append(value)
                ex.eval_count += tokens
    except Exception as err:
        log.info("generation failed: %s", err)
        return await ex.error(500, str(err))
    if ex.conn.gone.is_set():
        return ex.outcome("canceled", 499)
    content = "".join(wire.decode_piece(p) for p in parts["content"])
    for action in plan.due(faults.INF):
        if action["kind"] in ("stall", "cut"):
            result = await faults.run_action(action, None, ex.conn, ex.front)
            if result:
                return ex.outcome(result)
        elif action["kind"] == "error_line":
            return await ex.error(action.get("status", 500), action.get("message", faults.STREAM_ERROR))
        elif action["kind"] == "long_line":
            content += "x" * int(action.get("bytes", 8_000_100))
    metrics = ex.final_metrics(gen)
    data, ctype = ex.front.whole(content, "".join(wire.decode_piece(p) for p in parts["thinking"]),
                                 [c for calls in parts["tool_calls"] for c in calls], gen.done_reason, metrics)
    if plan.whole is not None and plan.whole["pretty"]:
        data = json.dumps(json.loads(data), indent=2, ensure_ascii=False).encode() + b"\n"
    if "malformed" in plan.kinds:
        data = data[: len(data) // 2]
    await ex.reply(200, data, ctype, result="completed", shaper=plan.shaper)
    ex.entry["outcome"].update(done_reason=gen.done_reason, eval_count=metrics.get("eval_count", 0),
                               prompt_eval_count=metrics.get("prompt_eval_count", 0))


def _done_only(app, name: str, reason: str) -> bytes:
    """The load/unload reply: a done message with no metrics."""
    return wire.go_bytes(wire.chat_response(name, wire.rfc3339(None, app.local_time),
                                            wire.message("assistant", ""), True, reason))
