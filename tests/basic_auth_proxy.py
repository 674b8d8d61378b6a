"""A reverse proxy with HTTP Basic auth on loopback, as nginx with `auth_basic` in front of an
Ollama server (standard library only).

    with BasicAuthProxy(emu.url, "robot", "pw") as proxy:
        proxy.url                # http://127.0.0.1:PORT (no credentials)
        proxy.authorizations     # the Authorization header of every request (None when absent)

A request without the right `Authorization: Basic base64(user:password)` gets nginx's 401 (HTML
body, `WWW-Authenticate: Basic realm=...`); the others are forwarded to `upstream` and the answer
streamed back line by line in chunked encoding (nginx with `proxy_buffering off`, as Ollama
setups configure it), so an NDJSON stream keeps its pacing. An upstream that cannot be reached
gives nginx's 502. With `user` None every request passes (a plain proxy). `rewrite` maps bytes of the upstream's answer to other bytes, line by line
(e.g. to send text that is not UTF-8, as some Ollama-compatible servers do). `stop()` closes the
listening socket and every open connection, so a client's pooled connections die too."""
from __future__ import annotations

import base64
import http.client
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

NGINX_401 = (b"<html>\r\n<head><title>401 Authorization Required</title></head>\r\n<body>\r\n"
             b"<center><h1>401 Authorization Required</h1></center>\r\n<hr><center>nginx/1.24.0</center>\r\n"
             b"</body>\r\n</html>\r\n")
NGINX_502 = (b"<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n"
             b"<center><h1>502 Bad Gateway</h1></center>\r\n<hr><center>nginx/1.24.0</center>\r\n"
             b"</body>\r\n</html>\r\n")
HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "content-length", "te", "trailer", "upgrade",
              "proxy-authorization", "proxy-authenticate"}


def basic(user: str, password: str) -> str:
    """The `Authorization` value for `user`/`password` (RFC 7617: base64 of `user:password`)."""
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


class BasicAuthProxy:
    def __init__(self, upstream: str, user: str | None, password: str | None,
                 rewrite: dict[bytes, bytes] | None = None):
        parts = urlsplit(upstream)
        self.upstream = (parts.hostname, parts.port)
        self.expected = None if user is None else basic(user, password or "")
        self.rewrite = dict(rewrite or {})
        self.authorizations: list[str | None] = []
        self._connections: set[socket.socket] = set()
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def __enter__(self) -> "BasicAuthProxy":
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def stop(self) -> None:
        """Stops listening and closes every open connection (later connects are refused)."""
        self._server.shutdown()
        self._server.server_close()
        with self._lock:
            for conn in list(self._connections):
                try:
                    conn.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
        self._thread.join(5)

    def _handler_class(self):
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def setup(self):
                super().setup()
                with proxy._lock:
                    proxy._connections.add(self.connection)

            def finish(self):
                with proxy._lock:
                    proxy._connections.discard(self.connection)
                try:
                    super().finish()
                except OSError:
                    pass

            def log_message(self, *args):       # quiet
                pass

            def do_GET(self):
                self._serve()

            do_POST = do_HEAD = do_DELETE = do_GET

            def _serve(self):
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                given = self.headers.get("Authorization")
                with proxy._lock:
                    proxy.authorizations.append(given)
                if proxy.expected is not None and given != proxy.expected:
                    return self._reply(401, NGINX_401, [("WWW-Authenticate", 'Basic realm="ollama"')])
                upstream = http.client.HTTPConnection(*proxy.upstream, timeout=60)
                try:
                    headers = {k: v for k, v in self.headers.items()
                               if k.lower() not in HOP_BY_HOP and k.lower() != "authorization"}
                    upstream.request(self.command, self.path, body=body or None, headers=headers)
                    answer = upstream.getresponse()
                except OSError:
                    upstream.close()
                    return self._reply(502, NGINX_502)
                try:
                    self._relay(answer)
                finally:
                    upstream.close()

            def _reply(self, status, body, extra=()):
                self.send_response(status)
                self.send_header("Content-Type", "text/html")
                for key, value in extra:
                    self.send_header(key, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(body)

            def _relay(self, answer):
                self.send_response(answer.status)
                for key, value in answer.getheaders():
                    if key.lower() not in HOP_BY_HOP:
                        self.send_header(key, value)
                self.send_header("Transfer-Encoding", "chunked")
                self.end_headers()
                if self.command == "HEAD":
                    return
                while True:
                    try:
                        line = answer.readline()
                    except (OSError, http.client.HTTPException):
                        self.close_connection = True            # the upstream cut its answer: cut ours
                        return
                    if not line:
                        break
                    for old, new in proxy.rewrite.items():
                        line = line.replace(old, new)
                    self.wfile.write(b"%x\r\n%s\r\n" % (len(line), line))
                    self.wfile.flush()
                self.wfile.write(b"0\r\n\r\n")
                self.wfile.flush()

        return Handler
