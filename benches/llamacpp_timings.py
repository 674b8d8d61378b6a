"""The project's Ollama emulator with the llamacpp backend (a real model), recording what llama.cpp
reports for every generation as one JSON line in ``--timings FILE``: ``prompt_n`` (prompt tokens
evaluated), ``cache_n`` (prompt tokens reused from the prompt cache), ``predicted_n``, ``prompt_ms``
and the request's last user message. Ollama's wire has no such numbers (its ``prompt_eval_count``
counts the whole prompt: runner/ollamarunner/runner.go), so the long-conversation benchmark reads
them here. Everything else is the emulator as it is; the ready line and signals are its own.

    python benches/llamacpp_timings.py --timings FILE --ctx 4096 [other ollama_server options]
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ollama_server import __main__ as emulator  # noqa: E402
from ollama_server import llamacpp  # noqa: E402


def record_timings(path: str) -> None:
    """Makes every ``LlamaGeneration`` append its final llama.cpp timings to ``path``."""
    items, run = llamacpp.LlamaGeneration._items, llamacpp.LlamaGeneration._run

    def _items(self, chunk):
        if chunk.get("timings"):
            self.last_timings = chunk["timings"]
        return items(self, chunk)

    async def _run(self):
        async for item in run(self):
            yield item
        timings = getattr(self, "last_timings", None)
        if timings is not None:
            users = [m.get("content", "") for m in self.request.get("messages", []) if m.get("role") == "user"]
            line = {k: timings.get(k) for k in ("prompt_n", "cache_n", "predicted_n", "prompt_ms")}
            with open(path, "a", encoding="utf-8") as fh:
                fh.write(json.dumps(dict(line, last_user=users[-1] if users else "")) + "\n")

    llamacpp.LlamaGeneration._items, llamacpp.LlamaGeneration._run = _items, _run


def main() -> int:
    argv = sys.argv[1:]
    if "--timings" not in argv or argv.index("--timings") + 1 >= len(argv):
        print(__doc__, file=sys.stderr)
        return 2
    i = argv.index("--timings")
    record_timings(argv[i + 1])
    return emulator.main(argv[:i] + argv[i + 2:] + ["--backend", "llamacpp"])


if __name__ == "__main__":
    sys.exit(main())
