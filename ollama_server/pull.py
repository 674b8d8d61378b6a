"""``POST /api/pull``: Ollama's PullHandler with progress a test can pace, fault and cancel.

Like ``server/routes.go`` ``PullHandler`` + ``server/images.go`` ``PullModel``: a body error → 400
(``missing request body``, Go's JSON texts), an empty name → 400 ``invalid model name``; then an
NDJSON stream: ``pulling manifest``, ``pull_steps`` lines ``pulling <digest[:12]>`` with ``digest``,
``total`` and a growing ``completed``, ``verifying sha256 digest``, ``writing manifest``, ``success``.
A name neither installed nor in the backend's registry gets ``pulling manifest`` then
``{"error":"pull model manifest: file does not exist"}`` (the registry's 404), status 200 since output
started. A registry model is installed when its pull succeeds. ``stream: false`` waits and answers
the last status (``application/json``) or the error with 500.

Pace: the model's ``pull_ms`` (or a ``timing`` fault's) is spread over the progress lines, so a
test can cancel mid-pull; a client that leaves stops the pull (outcome ``canceled``, ``chunks`` sent).
Queued faults with ``"path": "/api/pull"`` apply (``status``, ``error_line``, ``cut``, ``stall``, ...,
``after`` counting progress lines).
"""
from __future__ import annotations

from . import faults, http, wire
from .scripted import pause

UNKNOWN = "pull model manifest: file does not exist"


def steps(model) -> list[dict]:
    """The progress objects of a successful pull (``api.ProgressResponse``, omitempty fields)."""
    digest, size, n = "sha256:" + model.digest, model.size, getattr(model, "pull_steps", 4)
    layer = [{"status": "pulling " + model.digest[:12], "digest": digest, "total": size,
              "completed": size * i // n} for i in range(1, n + 1)]
    return ([{"status": "pulling manifest"}] + layer +
            [{"status": "verifying sha256 digest"}, {"status": "writing manifest"}, {"status": "success"}])


async def handle(app, req: http.Request, conn: http.Connection, entry: dict) -> None:
    """Serve one ``/api/pull``."""
    front = app.ollama_front
    try:
        body = wire.decode_body(req.body, req.path)
    except wire.DecodeError as err:
        return await app.json(conn, entry, {"error": str(err)}, 400)
    name = (body.get("model") or body.get("name") or "").strip()
    if not name:
        return await app.json(conn, entry, {"error": "invalid model name"}, 400)
    plan = faults.FaultPlan(app.book.take(req.path, name, False))
    entry["faults"] = plan.kinds
    if plan.status is not None:
        status, payload, ctype = faults.status_response(plan.status, name, front)
        await http.send(conn, status, payload, ctype, shaper=plan.shaper)
        entry["status"], entry["outcome"] = status, {"result": "status_fault"}
        return
    model = app.backend.pullable(name) if hasattr(app.backend, "pullable") else app.backend.get(name)
    lines = steps(model) if model is not None else [{"status": "pulling manifest"}, {"error": UNKNOWN}]
    pace = plan.timing.get("pull_ms", getattr(model, "pull_ms", 0)) / 1000 / max(1, len(lines) - 1)
    if body.get("stream", True) is False:
        await pause(pace * (len(lines) - 1), conn.gone)
        if conn.gone.is_set():
            entry["outcome"] = {"result": "canceled", "chunks": 0}
            return
        last = lines[-1]
        if "error" not in last and hasattr(app.backend, "install"):
            app.backend.install(model)
        await http.send(conn, 500 if "error" in last else 200, wire.go_bytes(last), "application/json")
        entry["status"] = 500 if "error" in last else 200
        entry["outcome"] = {"result": "error" if "error" in last else "completed", "chunks": 0}
        return
    stream = http.ChunkedStream(conn, 200, "application/x-ndjson", plan.shaper)
    sent, result = 0, None
    for i, line in enumerate(lines):
        for action in plan.due(sent):
            result = result or await faults.run_action(action, stream, conn, front)
        if result:
            break
        if i:
            await pause(pace, conn.gone)
        if conn.gone.is_set() or not await stream.send_line(wire.go_bytes(line) + b"\n"):
            result = "canceled"
            break
        sent += 1
    else:
        for action in plan.due(faults.INF):
            result = result or await faults.run_action(action, stream, conn, front)
        if not result:
            result = "error" if "error" in lines[-1] else "completed"
            if not await stream.finish():
                result = "canceled"
            elif result == "completed" and hasattr(app.backend, "install"):
                app.backend.install(model)
    entry["status"] = 200 if stream.started else entry.get("status")
    entry["outcome"] = {"result": result, "chunks": sent, "model": wire.canonical_name(name),
                        "completed": max((l.get("completed", 0) for l in lines[:sent]), default=0)}
    if result == "error":
        entry["outcome"]["error"] = UNKNOWN
