"""A raw HTTP/1.1 client for tests: every ``recv`` with its time, SSE and NDJSON decoding, keep-alive.

``raw_request`` sends one request on a fresh connection; ``KeepAliveClient`` keeps one connection
for several requests (what a pooled client does), so a test can see a stale keep-alive connection die.
"""
from __future__ import annotations

import json
import socket
import time
import urllib.parse


class RawExchange:
    """What one request got back, read straight off the socket: every read with its time."""

    def __init__(self, reads: list[tuple[float, bytes]], eof: bool, reset: bool = False):
        self.reads, self.eof, self.reset = reads, eof, reset     # reset: the server sent a TCP RST
        self.data = b"".join(d for _, d in reads)
        self.status, self.headers, self.chunks, self.complete, self.body = _parse_response(self.data)

    def header(self, name: str) -> str | None:
        """A response header by case-insensitive name."""
        return next((v for k, v in self.headers if k.lower() == name.lower()), None)

    @property
    def lines(self) -> list[bytes]:
        """The NDJSON lines of the body (without their newlines); a last partial line is kept."""
        parts = self.body.split(b"\n")
        return parts[:-1] + ([parts[-1]] if parts[-1] else [])

    def json_lines(self) -> list[dict]:
        """Every line decoded as JSON (fails on a malformed one)."""
        return [json.loads(line) for line in self.lines]

    @property
    def events(self) -> list[bytes]:
        """The server-sent events of the body: each ``data:`` payload (``b"[DONE]"`` included)."""
        out = []
        for block in self.body.split(b"\n\n"):
            data = [line[5:].lstrip(b" ") for line in block.split(b"\n") if line.startswith(b"data:")]
            if data:
                out.append(b"\n".join(data))
        return out

    def sse(self) -> list:
        """Every event decoded as JSON, ``"[DONE]"`` kept as that string."""
        return ["[DONE]" if e == b"[DONE]" else json.loads(e) for e in self.events]


def _parse_response(data: bytes):
    head, sep, rest = data.partition(b"\r\n\r\n")
    if not sep:
        return None, [], [], False, b""
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ")[1])
    headers = [tuple(x.strip() for x in line.split(":", 1)) for line in lines[1:]]
    hdr = {k.lower(): v for k, v in headers}
    if "content-length" in hdr:
        length = int(hdr["content-length"])
        return status, headers, [rest[:length]], len(rest) >= length, rest[:length]
    if "chunked" not in hdr.get("transfer-encoding", ""):
        return status, headers, [rest], False, rest
    chunks, pos = [], 0
    while True:
        eol = rest.find(b"\r\n", pos)
        if eol < 0:
            return status, headers, chunks, False, b"".join(chunks)
        size = int(rest[pos:eol], 16)
        if size == 0:
            done = rest.find(b"\r\n", eol + 2) >= 0
            return status, headers, chunks, done, b"".join(chunks)
        if len(rest) < eol + 2 + size + 2:
            chunks.append(rest[eol + 2:eol + 2 + size])           # partial chunk (cut mid-chunk)
            return status, headers, chunks, False, b"".join(chunks)
        chunks.append(rest[eol + 2:eol + 2 + size])
        pos = eol + 2 + size + 2


def raw_request(url: str, path: str = "/api/chat", body=None, method: str = "POST",
                headers: dict | None = None, timeout: float = 10.0, close_after: float | None = None,
                on_read=None) -> RawExchange:
    """Send one request on a fresh TCP connection and record every ``recv`` until the response is
    complete, the server closes, or ``timeout`` passes. ``close_after`` (seconds after the first
    byte) or ``on_read(exchange_so_far) -> True`` closes the connection early, like a client leaving.
    """
    parsed = urllib.parse.urlsplit(url)
    sock = socket.create_connection((parsed.hostname, parsed.port), timeout=timeout)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    try:
        return _exchange(sock, parsed.netloc, path, body, method, headers, timeout, close_after, on_read)
    finally:
        sock.close()


def _request_bytes(netloc: str, path: str, body, method: str, headers: dict | None) -> bytes:
    payload = body if isinstance(body, (bytes, type(None))) else json.dumps(body).encode()
    head = ["%s %s HTTP/1.1" % (method, path), "Host: %s" % netloc, "User-Agent: ollama-emulator-test"]
    if payload is not None:
        head += ["Content-Type: application/json", "Content-Length: %d" % len(payload)]
    head += ["%s: %s" % kv for kv in (headers or {}).items()]
    return ("\r\n".join(head) + "\r\n\r\n").encode() + (payload or b"")


def _exchange(sock, netloc, path, body, method, headers, timeout, close_after=None, on_read=None) -> RawExchange:
    reads, eof, reset, t0 = [], False, False, time.monotonic()
    sock.sendall(_request_bytes(netloc, path, body, method, headers))
    deadline = t0 + timeout
    while True:
        left = deadline - time.monotonic()
        if close_after is not None and reads:
            left = min(left, reads[0][0] + close_after - (time.monotonic() - t0))
        if left <= 0:
            break
        sock.settimeout(left)
        try:
            data = sock.recv(1 << 20)
        except socket.timeout:
            continue
        except ConnectionResetError:
            eof = reset = True
            break
        if not data:
            eof = True
            break
        reads.append((time.monotonic() - t0, data))
        ex = RawExchange(reads, False)
        leave = on_read(ex) if on_read is not None else False
        if ex.complete or leave:
            break
    return RawExchange(reads, eof, reset)


class KeepAliveClient:
    """One TCP connection reused for request after request, like a pooled HTTP client."""

    def __init__(self, url: str, timeout: float = 10.0):
        parsed = urllib.parse.urlsplit(url)
        self.netloc, self.timeout = parsed.netloc, timeout
        self.sock = socket.create_connection((parsed.hostname, parsed.port), timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def request(self, path: str = "/api/chat", body=None, method: str = "POST", headers: dict | None = None):
        """Send on the kept connection and read the reply; ``.eof`` with no ``.data`` = the server closed
        the connection without answering (the send itself may fail with ``ConnectionError`` too)."""
        return _exchange(self.sock, self.netloc, path, body, method, headers, self.timeout)

    def close(self) -> None:
        """Close the connection."""
        self.sock.close()

    def __enter__(self) -> "KeepAliveClient":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
