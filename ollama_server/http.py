"""A small HTTP/1.1 server on asyncio streams that answers like Go's ``net/http`` and can misbehave.

Why hand-written: faults must be placed at the byte level (a line split across two TCP writes, a
connection cut before the terminating chunk, a stall before the status line), which no framework
allows. What it copies from Go's server, since clients see it:

* keep-alive by default, ``Connection: close`` honoured, request bodies by Content-Length or chunked,
  ``Expect: 100-continue`` answered;
* header order ``<handler headers sorted>``, ``Date``, ``Content-Length`` | ``Transfer-Encoding``;
  a body of up to 2048 bytes gets a Content-Length, a bigger one is sent chunked (Go's
  ``bufferBeforeChunkingSize``); status text for 499 is ``status code 499``;
* a streamed response sends nothing, not even the status line, until its first line is ready
  (gin flushes only after each step of ``c.Stream``).

A peer that closes its side while a handler runs sets ``Connection.gone``; handlers check it to
cancel work (Ollama cancels generation when the client goes away).
"""
from __future__ import annotations

import asyncio
import email.utils
import itertools
import logging
import socket
import struct
import time
from http import HTTPStatus

log = logging.getLogger("ollama_server.http")

MAX_HEADER_BYTES = 1 << 20          # Go's DefaultMaxHeaderBytes
GO_CHUNKING_THRESHOLD = 2048        # Go's bufferBeforeChunkingSize
_HIGH_WATER = 256 * 1024


def reason(status: int) -> str:
    """Go's status text, ``status code N`` when Go has none (e.g. Ollama's 499)."""
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "status code %d" % status


_date_cache = [0, b""]


def http_date() -> bytes:
    """The ``Date`` header value, cached per second."""
    now = int(time.time())
    if _date_cache[0] != now:
        _date_cache[0], _date_cache[1] = now, email.utils.formatdate(now, usegmt=True).encode()
    return _date_cache[1]


class Request:
    """One parsed request: method, path, query, lower-cased headers, body bytes and arrival times."""

    __slots__ = ("method", "target", "path", "query", "version", "headers", "body", "keep_alive",
                 "wall_ns", "t0", "peer")

    def __init__(self, method, target, version, headers, peer):
        self.method, self.target, self.version, self.headers, self.peer = method, target, version, headers, peer
        self.path, _, self.query = target.partition("?")
        self.body = b""
        conn = headers.get("connection", "").lower()
        self.keep_alive = "close" not in conn and (version == "HTTP/1.1" or "keep-alive" in conn)
        self.wall_ns, self.t0 = time.time_ns(), time.perf_counter_ns()


class BadRequest(Exception):
    """A request Go would refuse before any handler runs (status, text)."""

    def __init__(self, status: int, text: str):
        super().__init__(text)
        self.status, self.text = status, text


class Connection:
    """One client connection: request reading, response writing, peer-gone detection.

    ``served`` counts the requests answered on it, ``idle_since`` (monotonic seconds) is when the
    last one ended: what a keep-alive fault needs to know about a pooled connection.
    """

    _ids = itertools.count(1)

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, extra_headers=()):
        self.id = next(self._ids)
        self.served, self.idle_since = 0, time.monotonic()
        self.extra_headers = list(extra_headers)
        self.reader, self.writer = reader, writer
        self.transport = writer.transport
        self.buf = bytearray()
        self.gone = asyncio.Event()
        self.closed = False
        self.closing_after = False            # answer with "Connection: close", then close
        self._watch: asyncio.Task | None = None
        self.peer = writer.get_extra_info("peername")

    # ------------------------------------------------------------------------------- reading
    async def _fill(self) -> bool:
        data = await self.reader.read(65536)
        if not data:
            return False
        self.buf += data
        return True

    async def _read_until(self, sep: bytes, limit: int) -> bytes | None:
        while True:
            idx = self.buf.find(sep)
            if idx >= 0:
                out = bytes(self.buf[:idx])
                del self.buf[:idx + len(sep)]
                return out
            if len(self.buf) > limit:
                raise BadRequest(431, "431 Request Header Fields Too Large")
            if not await self._fill():
                return None

    async def _read_exact(self, n: int) -> bytes:
        while len(self.buf) < n:
            if not await self._fill():
                raise BadRequest(400, "400 Bad Request")
        out = bytes(self.buf[:n])
        del self.buf[:n]
        return out

    async def read_request(self) -> Request | None:
        """The next request with its body, ``None`` at a clean end of the connection."""
        head = await self._read_until(b"\r\n\r\n", MAX_HEADER_BYTES)
        if head is None:
            return None
        lines = head.decode("latin-1").split("\r\n")
        while lines and not lines[0]:
            lines.pop(0)                      # tolerate CRLFs between requests, as Go does
        parts = lines[0].split(" ") if lines else []
        if len(parts) != 3 or not parts[2].startswith("HTTP/1."):
            raise BadRequest(400, "400 Bad Request")
        headers = {}
        for line in lines[1:]:
            name, sep, value = line.partition(":")
            if not sep or not name or name != name.strip():
                raise BadRequest(400, "400 Bad Request")
            headers[name.lower()] = value.strip()
        req = Request(parts[0], parts[1], parts[2], headers, self.peer)
        if headers.get("expect", "").lower() == "100-continue":
            self.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        if "chunked" in headers.get("transfer-encoding", "").lower():
            req.body = await self._read_chunked_body()
        elif headers.get("content-length"):
            try:
                length = int(headers["content-length"])
            except ValueError:
                raise BadRequest(400, "400 Bad Request") from None
            req.body = await self._read_exact(length)
        return req

    async def _read_chunked_body(self) -> bytes:
        body = bytearray()
        while True:
            size_line = await self._read_until(b"\r\n", 4096)
            if size_line is None:
                raise BadRequest(400, "400 Bad Request")
            size = int(size_line.split(b";")[0].strip() or b"0", 16)
            if size == 0:
                while await self._read_until(b"\r\n", MAX_HEADER_BYTES):
                    pass                      # trailers
                return bytes(body)
            body += await self._read_exact(size)
            await self._read_exact(2)

    def watch_peer(self) -> None:
        """While a handler runs, notice the peer closing (sets ``gone``); keeps pipelined bytes."""
        async def watch():
            try:
                while await self._fill():
                    pass
            except (ConnectionError, OSError):
                pass
            self.gone.set()
        self._watch = asyncio.get_running_loop().create_task(watch())

    async def unwatch_peer(self) -> None:
        """Stop watching before the next request is read."""
        if self._watch is not None:
            self._watch.cancel()
            try:
                await self._watch
            except asyncio.CancelledError:
                pass
            self._watch = None

    # ------------------------------------------------------------------------------- writing
    def write(self, data: bytes) -> bool:
        """Queue bytes; ``False`` once the peer is gone or the socket was closed."""
        if self.closed or self.gone.is_set() or self.transport.is_closing():
            return False
        self.transport.write(data)
        return True

    async def drain(self, force: bool = False) -> bool:
        """Wait for the kernel to take queued bytes (always when ``force``, else past a high mark)."""
        if not force and self.transport.get_write_buffer_size() < _HIGH_WATER:
            return not self.gone.is_set()
        try:
            await self.writer.drain()
        except (ConnectionError, OSError, RuntimeError):
            self.gone.set()
            return False
        return not self.gone.is_set()

    def head(self, status: int, headers: list[tuple[str, str]], length: int | None) -> bytes:
        """The status line and headers in Go's order (``length=None`` means chunked)."""
        out = [b"HTTP/1.1 %d %s\r\n" % (status, reason(status).encode())]
        out += [b"%s: %s\r\n" % (k.encode(), v.encode()) for k, v in sorted(headers + self.extra_headers)]
        out.append(b"Date: " + http_date() + b"\r\n")
        if length is not None:
            out.append(b"Content-Length: %d\r\n" % length)
        if self.closing_after:
            out.append(b"Connection: close\r\n")
        if length is None:
            out.append(b"Transfer-Encoding: chunked\r\n")
        out.append(b"\r\n")
        return b"".join(out)

    def close(self, reset: bool = False) -> None:
        """Close the socket: FIN after the queued bytes, or an immediate RST when ``reset``."""
        if self.closed:
            return
        self.closed = True
        if reset:
            sock = self.writer.get_extra_info("socket")
            if sock is not None:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.transport.abort()
        else:
            self.writer.close()


async def send(conn: Connection, status: int, body: bytes, content_type: str | None,
               head_only: bool = False, shaper=None) -> None:
    """A whole response the way Go sends a handler's buffered output (length or one big chunk)."""
    headers = [("Content-Type", content_type)] if content_type else []
    if len(body) <= GO_CHUNKING_THRESHOLD or head_only:
        data = conn.head(status, headers, len(body)) + (b"" if head_only else body)
    else:
        data = conn.head(status, headers, None) + b"%x\r\n" % len(body) + body + b"\r\n0\r\n\r\n"
    if shaper is not None:
        await shaper.write(conn, data, whole=True)
    else:
        conn.write(data)
        await conn.drain()


class ChunkedStream:
    """A streamed NDJSON response: headers go out with the first line, one HTTP chunk per line."""

    def __init__(self, conn: Connection, status: int, content_type: str, shaper=None):
        self.conn, self.shaper = conn, shaper
        self._status, self._headers = status, [("Content-Type", content_type)]
        self.started = False

    def _head(self) -> bytes:
        self.started = True
        return self.conn.head(self._status, self._headers, None)    # Date: when it is really sent

    async def send_line(self, line: bytes) -> bool:
        """Send one line as one chunk (with the headers first time); ``False`` if the peer is gone."""
        frame = b"%x\r\n%s\r\n" % (len(line), line)
        if not self.started:
            frame = self._head() + frame
        if self.shaper is not None:
            return await self.shaper.write(self.conn, frame)
        if not self.conn.write(frame):
            return False
        return await self.conn.drain()

    async def finish(self) -> bool:
        """End the response properly with the terminating zero-length chunk."""
        tail = b"0\r\n\r\n" if self.started else self._head() + b"0\r\n\r\n"
        if self.shaper is not None:
            return await self.shaper.write(self.conn, tail, whole=True)
        ok = self.conn.write(tail)
        return await self.conn.drain(force=True) and ok


class HttpServer:
    """Accepts connections and runs ``handler(request, connection)`` for each request in turn."""

    def __init__(self, handler, host: str = "127.0.0.1", port: int = 0, ssl_context=None, extra_headers=()):
        self.handler, self.host, self.port, self.ssl_context = handler, host, port, ssl_context
        self.extra_headers = list(extra_headers)      # sent on every response (e.g. a server id)
        self._server: asyncio.base_events.Server | None = None
        self._conns: set[Connection] = set()
        self._tasks: set[asyncio.Task] = set()

    async def start(self) -> tuple[str, int]:
        """Bind and listen; returns the bound (host, port)."""
        self._server = await asyncio.start_server(self._serve, self.host, self.port, backlog=1024,
                                                  reuse_address=True, limit=1 << 20, ssl=self.ssl_context)
        sockname = self._server.sockets[0].getsockname()
        self.port = sockname[1]
        return sockname[0], sockname[1]

    async def close(self) -> None:
        """Stop listening, drop every open connection and end the handlers still running."""
        if self._server is not None:
            self._server.close()
        for conn in list(self._conns):
            conn.close(reset=False)
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.wait(list(self._tasks), timeout=2)
        if self._server is not None:
            try:
                await asyncio.wait_for(self._server.wait_closed(), 2)
            except asyncio.TimeoutError:
                log.warning("connections still open at shutdown")

    async def _serve(self, reader, writer) -> None:
        sock = writer.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)   # Go's default too
        conn = Connection(reader, writer, self.extra_headers)
        self._conns.add(conn)
        task = asyncio.current_task()
        self._tasks.add(task)
        try:
            while not conn.closed:
                try:
                    req = await conn.read_request()
                except BadRequest as err:
                    conn.write(b"HTTP/1.1 %d %s\r\nContent-Type: text/plain; charset=utf-8\r\n"
                               b"Connection: close\r\n\r\n%s" % (err.status, reason(err.status).encode(),
                                                                 err.text.encode()))
                    break
                if req is None:
                    break
                conn.closing_after = not req.keep_alive
                conn.watch_peer()
                try:
                    await self.handler(req, conn)
                finally:
                    await conn.unwatch_peer()
                    conn.served += 1
                    conn.idle_since = time.monotonic()
                if conn.closing_after or conn.gone.is_set():
                    break
        except (ConnectionError, OSError):
            pass
        except Exception:                    # a bug in a handler must not kill the server
            log.exception("handler failed")
        finally:
            self._conns.discard(conn)
            self._tasks.discard(task)
            if not conn.closed:
                try:
                    await conn.drain(force=True)
                except Exception:
                    pass
                conn.close()
