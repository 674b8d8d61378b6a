"""Run the emulator as a subprocess in tests and drive its control API (standard library only).

    from ollama_server.testing import EmulatorProcess

    with EmulatorProcess(config={"models": {"llama3.2": {"reply": "Hi {last_user}"}}}) as emu:
        ...  # point the code under test at emu.url
        emu.push_fault({"kind": "cut", "after": 2})
        assert emu.requests()[-1]["body"]["messages"][-1]["content"] == "hello"

Readiness is the server's own ``ollama_server listening on URL`` line, awaited with a deadline; no
sleeps. ``restart()`` comes back on the same port, so a client configured with ``emu.url`` keeps working.
"""
from __future__ import annotations

import json
import os
import selectors
import signal
import ssl
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request

READY_PREFIX = "ollama_server listening on "
REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class EmulatorError(RuntimeError):
    """The emulator did not start, or a control call failed."""


class EmulatorProcess:
    """An ``python -m ollama_server`` child process and a client for its control API."""

    def __init__(self, config: dict | None = None, *, python: str = sys.executable, host: str = "127.0.0.1",
                 port: int = 0, backend: str = "scripted", args: list[str] | tuple = (),
                 env: dict | None = None, ready_timeout: float = 30.0, request_log: str | None = None):
        self.config, self.python, self.host, self.port = config, python, host, port
        self.backend, self.args, self.env, self.ready_timeout = backend, list(args), env, ready_timeout
        self.request_log = request_log
        self.proc: subprocess.Popen | None = None
        self.url: str | None = None
        self._tmp = tempfile.TemporaryDirectory(prefix="ollama_emu_")
        self.stderr_path = os.path.join(self._tmp.name, "stderr.log")

    # ------------------------------------------------------------------------------ lifecycle
    def start(self) -> "EmulatorProcess":
        """Start the process and wait for its readiness line (raises ``EmulatorError`` on failure)."""
        cmd = [self.python, "-m", "ollama_server", "--host", self.host, "--port", str(self.port),
               "--backend", self.backend, *self.args]
        if self.config is not None:
            path = os.path.join(self._tmp.name, "config.json")
            with open(path, "w", encoding="utf-8") as fh:
                json.dump(self.config, fh)
            cmd += ["--config", path]
        if self.request_log:
            cmd += ["--request-log", self.request_log]
        env = dict(os.environ if self.env is None else self.env)
        env["PYTHONPATH"] = REPO_ROOT + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
        env.setdefault("PYTHONUNBUFFERED", "1")
        self._stderr = open(self.stderr_path, "ab")
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=self._stderr, env=env)
        line = self._read_ready_line()
        self.url = line[len(READY_PREFIX):].strip()
        self.port = int(self.url.rsplit(":", 1)[1])
        return self

    def _read_ready_line(self) -> str:
        deadline = time.monotonic() + self.ready_timeout
        buf = b""
        with selectors.DefaultSelector() as sel:
            sel.register(self.proc.stdout, selectors.EVENT_READ)
            while b"\n" not in buf:
                left = deadline - time.monotonic()
                if left <= 0 or not sel.select(left):
                    self.kill()
                    raise EmulatorError("no readiness line within %.0fs; stderr:\n%s"
                                        % (self.ready_timeout, self.stderr_text()[-3000:]))
                chunk = os.read(self.proc.stdout.fileno(), 4096)
                if not chunk:
                    self.proc.wait()
                    raise EmulatorError("emulator exited with %s before it was ready; stderr:\n%s"
                                        % (self.proc.returncode, self.stderr_text()[-3000:]))
                buf += chunk
        line = buf.split(b"\n", 1)[0].decode()
        if not line.startswith(READY_PREFIX):
            self.kill()
            raise EmulatorError("unexpected first line on stdout: %r" % line)
        return line

    def stop(self, timeout: float = 10.0) -> int:
        """SIGTERM and wait; returns the exit status (SIGKILL after ``timeout``)."""
        if self.proc is None:
            return 0
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self._reap()

    def kill(self) -> int:
        """SIGKILL (a crash, as the client sees it); returns the exit status."""
        if self.proc is None:
            return 0
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        return self._reap()

    def _reap(self) -> int:
        code = self.proc.returncode
        self.proc.stdout.close()
        self._stderr.close()
        self.proc = None
        return code

    def restart(self, timeout: float = 10.0) -> "EmulatorProcess":
        """Stop (if running) and start again on the same port; scripts set at run time are lost."""
        self.stop(timeout)
        self.start()
        return self

    @property
    def running(self) -> bool:
        """Whether the process is alive."""
        return self.proc is not None and self.proc.poll() is None

    def stderr_text(self) -> str:
        """Everything the emulator logged so far."""
        try:
            with open(self.stderr_path, encoding="utf-8", errors="replace") as fh:
                return fh.read()
        except OSError:
            return ""

    def __enter__(self) -> "EmulatorProcess":
        return self.start() if self.proc is None else self

    def __exit__(self, *exc) -> None:
        self.stop()
        self._tmp.cleanup()

    # ---------------------------------------------------------------------------- control API
    def call(self, method: str, path: str, body=None, timeout: float = 10.0):
        """One HTTP call to the emulator; returns the decoded JSON answer."""
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.url + path, data=data, method=method,
                                     headers={"Content-Type": "application/json"})
        # an HTTPS emulator uses a test certificate: the control client does not verify it
        context = ssl._create_unverified_context() if self.url.startswith("https") else None
        try:
            with urllib.request.urlopen(req, timeout=timeout, context=context) as resp:
                raw = resp.read()
        except urllib.error.HTTPError as err:
            raise EmulatorError("%s %s -> %d %s" % (method, path, err.code, err.read().decode(errors="replace")))
        return json.loads(raw) if raw else None

    def requests(self, path: str | None = "/api/chat") -> list[dict]:
        """Logged requests (default: chat requests only; ``path=None`` for all)."""
        query = "?" + urllib.parse.urlencode({"path": path}) if path else ""
        return self.call("GET", "/_emulator/requests" + query)["requests"]

    def chat_bodies(self) -> list[dict]:
        """The JSON bodies of the logged chat requests, in order."""
        return [r["body"] for r in self.requests("/api/chat")]

    def clear_requests(self) -> int:
        """Empty the request log; returns how many entries it had."""
        return self.call("DELETE", "/_emulator/requests")["cleared"]

    def push_fault(self, *entries: dict, **fields) -> int:
        """Queue fault entries (``push_fault({"kind": "cut", "after": 2})`` or ``push_fault(kind="cut")``)."""
        items = list(entries) + ([fields] if fields else [])
        return self.call("POST", "/_emulator/faults", {"faults": items})["queued"]

    def clear_faults(self) -> int:
        """Drop every queued fault."""
        return self.call("DELETE", "/_emulator/faults")["cleared"]

    def set_models(self, models: dict, replace: bool = False) -> list[str]:
        """Add or replace model scripts at run time."""
        return self.call("POST", "/_emulator/models", {"models": models, "replace": replace})["models"]

    def reset(self) -> None:
        """Start-up models, no faults, empty log, nothing loaded."""
        self.call("POST", "/_emulator/reset", {})

    def state(self) -> dict:
        """Loaded models, running/waiting requests, queue and log sizes."""
        return self.call("GET", "/_emulator/state")

    def wait_for(self, predicate, timeout: float = 10.0, interval: float = 0.01, what: str = "condition"):
        """Poll ``predicate(self)`` until it returns something truthy (returned), or raise on timeout."""
        deadline = time.monotonic() + timeout
        while True:
            value = predicate(self)
            if value:
                return value
            if time.monotonic() > deadline:
                raise EmulatorError("timed out after %.1fs waiting for %s" % (timeout, what))
            time.sleep(interval)

    def wait_for_requests(self, n: int, path: str | None = "/api/chat", finished: bool = True,
                          timeout: float = 10.0) -> list[dict]:
        """Wait until ``n`` requests (finished ones, by default) are logged; returns them."""
        def enough(emu):
            reqs = [r for r in emu.requests(path) if r["outcome"] is not None or not finished]
            return reqs if len(reqs) >= n else None
        return self.wait_for(enough, timeout, what="%d logged requests" % n)


# -------------------------------------------------------------------------------- raw client
class RawExchange:
    """What one request got back, read straight off the socket: every read with its time."""

    def __init__(self, reads: list[tuple[float, bytes]], eof: bool):
        self.reads, self.eof = reads, eof
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
    import socket

    parsed = urllib.parse.urlsplit(url)
    payload = body if isinstance(body, (bytes, type(None))) else json.dumps(body).encode()
    head = ["%s %s HTTP/1.1" % (method, path), "Host: %s" % parsed.netloc, "User-Agent: ollama-emulator-test"]
    if payload is not None:
        head += ["Content-Type: application/json", "Content-Length: %d" % len(payload)]
    head += ["%s: %s" % kv for kv in (headers or {}).items()]
    sock = socket.create_connection((parsed.hostname, parsed.port), timeout=timeout)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    reads, eof, t0 = [], False, time.monotonic()
    try:
        sock.sendall(("\r\n".join(head) + "\r\n\r\n").encode() + (payload or b""))
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
                eof = True
                break
            if not data:
                eof = True
                break
            reads.append((time.monotonic() - t0, data))
            ex = RawExchange(reads, False)
            leave = on_read(ex) if on_read is not None else False
            if ex.complete or leave:
                break
    finally:
        sock.close()
    return RawExchange(reads, eof)
