"""How many streamed chat chunks per second the emulator delivers to many concurrent clients.

    python benches/emulator_throughput.py                    # 100 streams, 5 s, no pacing
    python benches/emulator_throughput.py --chunk-delay-ms 5 --streams 100 --seconds 5
    python benches/emulator_throughput.py --url http://127.0.0.1:11434   # an emulator already running
    python benches/emulator_throughput.py --api openai       # the /v1/chat/completions SSE front

Starts the emulator (unless ``--url``), scripts a model whose reply is ``--pieces`` chunks, then runs
``--streams`` keep-alive connections that each request streamed replies back to back for
``--seconds``. Prints chunks/s received by the clients and the CPU the server used (from /proc), so a
reader can tell the server from the client as the limit (both share this machine's cores).
Standard library only; the client counts lines without decoding JSON to stay cheap.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from ollama_server.testing import EmulatorProcess  # noqa: E402

MODEL = "bench"
# per API: request path, extra body fields, and the marker counted once per streamed piece
APIS = {"ollama": (b"/api/chat", {}, b'"done":false'),
        "openai": (b"/v1/chat/completions", {"stream": True}, b'"finish_reason":null')}
WORDS = ("alpha", "beta", "gamma", "delta", "omega", "zeta", "theta", "kappa")   # one piece each


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process, in seconds."""
    with open("/proc/%d/stat" % pid) as fh:
        fields = fh.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def stream_loop(host: str, port: int, request: bytes, stop_at: float, counts: list,
                      marker: bytes = b'"done":false') -> None:
    """One client: keep-alive connection, streamed requests back to back until ``stop_at``."""
    reader, writer = await asyncio.open_connection(host, port)
    try:
        while time.monotonic() < stop_at:
            writer.write(request)
            buf = bytearray()
            while not buf.endswith(b"\r\n0\r\n\r\n"):
                data = await reader.read(262144)
                if not data:
                    raise ConnectionError("server closed the connection")
                buf += data
            if not buf.startswith(b"HTTP/1.1 200"):
                raise RuntimeError(bytes(buf[:200]))
            counts[0] += buf.count(marker)
            counts[1] += 1
    finally:
        writer.close()


async def measure(url: str, streams: int, seconds: float, pid: int | None,
                  api: str = "ollama") -> tuple[int, int, float, float]:
    """(chunks, replies, elapsed, server CPU seconds) over the measured window, after a warm-up."""
    host, port = url.split("//", 1)[1].rsplit(":", 1)
    path, extra, marker = APIS[api]
    body = json.dumps({"model": MODEL, "messages": [{"role": "user", "content": "go"}], **extra}).encode()
    request = (b"POST %s HTTP/1.1\r\nHost: %s:%s\r\nContent-Type: application/json\r\n"
               b"Content-Length: %d\r\n\r\n%s" % (path, host.encode(), port.encode(), len(body), body))
    warm = [0, 0]
    await asyncio.gather(*(stream_loop(host, int(port), request, time.monotonic() + 0.5, warm, marker)
                           for _ in range(min(streams, 10))))
    counts = [0, 0]
    cpu0 = cpu_seconds(pid) if pid else float("nan")
    t0 = time.monotonic()
    await asyncio.gather(*(stream_loop(host, int(port), request, t0 + seconds, counts, marker)
                           for _ in range(streams)))
    elapsed = time.monotonic() - t0
    return counts[0], counts[1], elapsed, (cpu_seconds(pid) if pid else float("nan")) - cpu0


def main() -> int:
    """Parse options, run the measurement, print the figures."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--url", help="use a running emulator instead of starting one")
    ap.add_argument("--streams", type=int, default=100)
    ap.add_argument("--seconds", type=float, default=5.0)
    ap.add_argument("--pieces", type=int, default=200, help="chunks per reply")
    ap.add_argument("--chunk-delay-ms", type=float, default=0.0)
    ap.add_argument("--ttft-ms", type=float, default=0.0)
    ap.add_argument("--api", choices=sorted(APIS), default="ollama", help="/api/chat NDJSON or /v1 SSE")
    args = ap.parse_args()
    script = {"reply": " ".join(WORDS[i % len(WORDS)] for i in range(args.pieces)),
              "chunk_delay_ms": args.chunk_delay_ms, "ttft_ms": args.ttft_ms}
    emu = None
    if args.url:
        url, pid = args.url.rstrip("/"), None
    else:
        emu = EmulatorProcess(config={"models": {MODEL: script}}, args=["--log-level", "WARNING"]).start()
        url, pid = emu.url, emu.proc.pid
    try:
        if emu is None:
            from urllib.request import Request, urlopen
            urlopen(Request(url + "/_emulator/models", json.dumps({"models": {MODEL: script}}).encode(),
                            method="POST"), timeout=10).read()
        own0 = time.process_time()
        chunks, replies, elapsed, server_cpu = asyncio.run(measure(url, args.streams, args.seconds, pid, args.api))
        server_cpu /= elapsed
        client_cpu = (time.process_time() - own0) / elapsed     # includes the warm-up: an upper bound
    finally:
        if emu is not None:
            emu.stop()
    rate = chunks / elapsed
    print("api=%s streams=%d chunks/reply=%d chunk_delay_ms=%g seconds=%.1f" % (
        args.api, args.streams, chunks // max(replies, 1), args.chunk_delay_ms, elapsed))
    print("replies=%d chunks=%d  ->  %.0f chunks/s, %.1f replies/s" % (replies, chunks, rate, replies / elapsed))
    print("cpu: server %.0f%% of a core, client %.0f%% of a core (%d cores)" % (
        server_cpu * 100, client_cpu * 100, os.cpu_count()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
