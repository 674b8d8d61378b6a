"""An Ollama server emulator that is indistinguishable from the real one on the wire.

# Layout (data path order)

* ``http``: minimal HTTP/1.1 on asyncio streams (keep-alive, chunked streams, Go's header habits)
* ``wire``: Ollama's JSON as Go writes it (key order, omitempty, created_at), request decoding
* ``routes``: Ollama endpoints, the request log and the ``/_emulator/`` control API
* ``records``: the request log and the request counters (``/_emulator/requests``, ``/_emulator/stats``)
* ``chat``: ``/api/chat`` step for step like Ollama's ChatHandler, faults applied on the wire
* ``fronts``: one reply on the wire: Ollama NDJSON, or the OpenAI-compatible SSE/JSON Ollama writes
* ``openai``: ``/v1/chat/completions`` and ``/v1/models`` (request conversion as Ollama's middleware)
* ``pull``: ``/api/pull`` progress, paced, faultable, cancellable
* ``scheduler``: loaded models and keep_alive, per-model parallelism, the 512-deep queue
* ``faults``: fault specs, the one-shot queue, TCP write shapers, mid-stream actions
* ``scripted``: the scripted backend (reply templates, token-like chunking, thinking, tools, images)
* ``tools``: scripted tool-call rounds, arguments from JSON schemas, tool results in replies
* ``vision``: Go's base64 rules for images, image format and size from headers
* ``llamacpp``: the real-model backend (llama.cpp via xllamacpp, in a worker thread)
* ``testing``: ``EmulatorProcess`` for tests (subprocess, readiness line, control API client)

Run: ``python -m ollama_server --port 11434`` (see ``README.md`` beside this file).
"""

__all__ = ["serve"]


async def serve(app, host: str = "127.0.0.1", port: int = 0, ready=None, stop=None, ssl_context=None) -> None:
    """Serve ``app`` until ``stop`` (an ``asyncio.Event``) is set; ``ready(url)`` once listening.
    With ``ssl_context`` it speaks HTTPS (as Ollama behind a TLS proxy does)."""
    import asyncio

    from .http import HttpServer

    server = HttpServer(app.handle, host, port, ssl_context, getattr(app, "extra_headers", ()))
    bound_host, bound_port = await server.start()
    if ready is not None:
        ready("%s://%s:%d" % ("https" if ssl_context else "http", bound_host if ":" not in bound_host else "[%s]" % bound_host, bound_port))
    try:
        await (stop or asyncio.Event()).wait()
    finally:
        await server.close()
