"""Run the emulator as a subprocess in tests and drive its control API (standard library only).

    from ollama_server.testing import EmulatorProcess

    with EmulatorProcess(config={"models": {"llama3.2": {"reply": "Hi {last_user}"}}}) as emu:
        ...  # point the code under test at emu.url
        emu.push_fault({"kind": "cut", "after": 2})
        assert emu.requests()[-1]["body"]["messages"][-1]["content"] == "hello"

Readiness is the server's own ``ollama_server listening on URL`` line, awaited with a deadline; no
sleeps. ``restart()`` comes back on the same port, so a client configured with ``emu.url`` keeps working.
``stats()``/``wait_stats(cancelled=1)``/``wait_idle()`` poll the request counters instead of sleeping;
``EmulatorFleet`` runs several emulators (ids, model subsets) for multi-server tests. The raw client
(``raw_request``, ``KeepAliveClient``) lives in ``rawclient`` and is re-exported here.
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

from .rawclient import KeepAliveClient, RawExchange, raw_request  # noqa: F401  (part of this API)

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
        """Server id, loaded models, running/waiting requests, queue and log sizes."""
        return self.call("GET", "/_emulator/state")

    def stats(self) -> dict:
        """Request counters: ``requests``, ``in_flight``, ``completed``, ``cancelled``, ``failed``,
        ``chunks``, ``results``, and the same per ``models`` / ``paths``."""
        return self.call("GET", "/_emulator/stats")

    def wait_idle(self, timeout: float = 10.0) -> dict:
        """Wait until no request is in flight (every started one has ended); returns the stats."""
        return self.wait_for(lambda e: (lambda s: s if s["in_flight"] == 0 else None)(e.stats()), timeout,
                             what="no request in flight")

    def wait_stats(self, timeout: float = 10.0, **at_least) -> dict:
        """Wait until every named counter reaches its value (``wait_stats(cancelled=1)``); returns the stats."""
        def enough(e):
            s = e.stats()
            return s if all(s.get(k, 0) >= v for k, v in at_least.items()) else None
        return self.wait_for(enough, timeout, what="stats %s" % at_least)

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


class EmulatorFleet:
    """Several emulators at once (a multi-server test): each item of ``servers`` is a dict of
    ``EmulatorProcess`` keyword arguments plus optional ``server_id`` and ``models`` (the names it
    serves; the others are missing on that server).

        with EmulatorFleet([{"server_id": "a"}, {"server_id": "b", "models": ["llama3.2"]}]) as fleet:
            fleet.urls; fleet[1].kill(); fleet[1].start()
    """

    def __init__(self, servers: list[dict]):
        self.members = []
        for spec in servers:
            spec = dict(spec)
            args = list(spec.pop("args", []))
            if spec.get("server_id"):
                args += ["--server-id", str(spec.pop("server_id"))]
            if spec.get("models"):
                args += ["--models", ",".join(spec.pop("models"))]
            spec.pop("server_id", None), spec.pop("models", None)
            self.members.append(EmulatorProcess(args=args, **spec))

    def __getitem__(self, i: int) -> EmulatorProcess:
        return self.members[i]

    def __len__(self) -> int:
        return len(self.members)

    @property
    def urls(self) -> list[str]:
        """The members' URLs, in order (as a comma-separated ``ollama_url`` would list them)."""
        return [m.url for m in self.members]

    def fresh(self) -> "EmulatorFleet":
        """Every member running again (a test may have stopped one), with its start-up models, no
        faults and an empty request log; returns the fleet (for a per-test fixture)."""
        for member in self.members:
            if not member.running:
                member.start()
            member.reset()
        return self

    def __enter__(self) -> "EmulatorFleet":
        try:
            for m in self.members:
                m.__enter__()
        except BaseException:
            self.__exit__()
            raise
        return self

    def __exit__(self, *exc) -> None:
        for m in self.members:
            m.__exit__()
