"""The HTTP side: /metrics, the status page, health and readiness.

A small asyncio server: an idle or slow client costs a coroutine, not a
thread, so half-open connections cannot starve a scrape. Every read has a
timeout, the head of a request is bounded, only GET and HEAD are answered.
"""

from __future__ import annotations

import asyncio
import gzip
import logging
import signal
import socket
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Callable

from . import __version__, statuspage, webtls
from .exposition import Renderer
from .sampler import Snapshot

log = logging.getLogger(__name__)

READ_TIMEOUT = 10.0  # seconds to send a request head, and to keep an idle keep-alive open
WRITE_TIMEOUT = 10.0  # seconds a client may take to read an answer before we drop it
HANDSHAKE_TIMEOUT = 5.0
CONFIG_CHECK = 1.0  # seconds between looks at the web config file
BCRYPT_WORKERS = 2  # threads for password checks that miss the cache: bcrypt never runs on the event loop
MAX_HEAD = 16 * 1024
MAX_CONNECTIONS = 512
METRICS_TYPE = "text/plain; version=0.0.4; charset=utf-8"
REASONS = {200: "OK", 304: "Not Modified", 400: "Bad Request", 401: "Unauthorized", 404: "Not Found",
           405: "Method Not Allowed", 408: "Request Timeout", 429: "Too Many Requests",
           431: "Request Header Fields Too Large", 503: "Service Unavailable"}


@dataclass
class Response:
    status: int
    body: bytes = b""
    content_type: str = "text/plain; charset=utf-8"
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class Request:
    method: str
    path: str
    headers: dict[str, str]  # lower-case names


class App:
    """Routes a request to an answer; holds no sockets, so tests call it directly."""

    def __init__(self, snapshot: Callable[[], Snapshot], renderer: Renderer, web_config=None):
        self.snapshot, self.renderer, self.web_config = snapshot, renderer, web_config
        self._gzip: tuple[bytes, bytes] | None = None

    def respond(self, request: Request, config, allowed: bool) -> Response:
        """The answer once authorization is decided; the configured headers go on every answer."""
        if allowed:
            response = self.route(request)
        else:
            response = Response(401, b"Unauthorized\n", headers={"WWW-Authenticate": 'Basic realm="dtr-sizing-exporter"'})
        if config is not None:
            response.headers.update(config.headers)
        return response

    def route(self, request: Request) -> Response:
        path = request.path.split("?", 1)[0]
        if path == "/metrics":
            return self.metrics(request)
        if path == "/":
            snapshot = self.snapshot()  # one snapshot: the page and its verdicts must agree
            verdicts, _ = self.renderer.render(snapshot)
            return Response(200, statuspage.render(snapshot, verdicts, __version__).encode(),
                            "text/html; charset=utf-8")
        if path == "/-/healthy":
            return Response(200, b"Healthy\n")
        if path == "/-/ready":  # ready means measured: every enabled collector has read or failed once
            snapshot = self.snapshot()
            if snapshot.ready:
                return Response(200, b"Ready\n")
            return Response(503, f"Not ready: no first reading yet from {', '.join(snapshot.pending)}\n".encode())
        return Response(404, b"Not Found\n")

    def metrics(self, request: Request) -> Response:
        _, text = self.renderer.render(self.snapshot())
        if "gzip" not in request.headers.get("accept-encoding", ""):
            return Response(200, text, METRICS_TYPE)
        if self._gzip is None or self._gzip[0] is not text:
            self._gzip = (text, gzip.compress(text, compresslevel=1))
        return Response(200, self._gzip[1], METRICS_TYPE, {"Content-Encoding": "gzip"})


def _head(status: int, response: Response, length: int, keep_alive: bool) -> bytes:
    lines = [f"HTTP/1.1 {status} {REASONS.get(status, 'Error')}",
             f"Content-Type: {response.content_type}", f"Content-Length: {length}",
             "Connection: keep-alive" if keep_alive else "Connection: close"]
    lines += [f"{k}: {v}" for k, v in response.headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def parse_head(raw: bytes) -> Request | None:
    try:
        text = raw.decode("latin-1")
        request_line, *header_lines = text.split("\r\n")
        method, target, version = request_line.split(" ")
        if not version.startswith("HTTP/1."):
            return None
        headers = {}
        for line in header_lines:
            if line:
                name, _, value = line.partition(":")
                headers[name.strip().lower()] = value.strip()
        headers[":version"] = version
        return Request(method, target, headers)
    except ValueError:
        return None


def listen(host: str | None, port: int) -> list[socket.socket]:
    """Listening sockets for host:port (every interface when host is None); raises OSError."""
    if host is None:
        if socket.has_dualstack_ipv6():
            return [socket.create_server(("", port), family=socket.AF_INET6, dualstack_ipv6=True, backlog=1024)]
        return [socket.create_server(("", port), backlog=1024)]
    # an ASCII host as bytes: getaddrinfo sends a str through the idna codec, whose tables then stay resident
    name = host.encode() if host.isascii() else host
    sockets: list[socket.socket] = []
    try:
        for family, _, _, _, address in dict.fromkeys(
                socket.getaddrinfo(name, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)):
            sockets.append(socket.create_server(address, family=family, backlog=1024))
    except OSError:
        for sock in sockets:
            sock.close()
        raise
    return sockets


class Server:
    """Binds at construction, so a busy or bad address is one error line before anything starts."""

    def __init__(self, app: App, host: str | None, port: int, ssl_context=None):
        self.app, self.ssl_context = app, ssl_context
        self.sockets = listen(host, port)
        self._servers: list[asyncio.Server] = []
        self.connections = 0
        self._handlers: set[asyncio.Task] = set()  # open connections, ended at shutdown
        self._bcrypt = ThreadPoolExecutor(BCRYPT_WORKERS, thread_name_prefix="bcrypt")

    async def answer(self, request: Request) -> Response:
        web_config = self.app.web_config
        config = web_config.current() if web_config else None
        if config is not None and not web_config.admit():  # rate_limit counts every request, as the toolkit's
            return Response(429, b"Too Many Requests\n", headers=dict(config.headers))
        if request.method not in ("GET", "HEAD"):
            return Response(405, b"Method Not Allowed\n", headers={"Allow": "GET, HEAD"})
        header = request.headers.get("authorization")
        allowed = True if config is None else config.cached(header)
        if allowed is None:  # a cache miss costs a bcrypt: off the loop, so other scrapes go on
            allowed = await asyncio.get_running_loop().run_in_executor(self._bcrypt, config.authorized, header)
        return self.app.respond(request, config, allowed)

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        self._handlers.add(asyncio.current_task())
        try:
            if self.connections > MAX_CONNECTIONS:
                return
            if not webtls.client_allowed(writer.get_extra_info("ssl_object")):
                log.debug("client certificate has none of client_allowed_sans: connection closed")
                return
            while True:
                try:
                    raw = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), READ_TIMEOUT)
                except (asyncio.TimeoutError, asyncio.IncompleteReadError, ConnectionError):
                    return
                except asyncio.LimitOverrunError:
                    writer.write(_head(431, Response(431), 0, False))
                    return
                request = parse_head(raw[:-4])
                if request is None:
                    writer.write(_head(400, Response(400), 0, False))
                    return
                if "content-length" in request.headers or "transfer-encoding" in request.headers:
                    keep_alive = False  # a body we will not read: answer and close
                else:
                    keep_alive = request.headers[":version"] == "HTTP/1.1" and \
                        request.headers.get("connection", "").lower() != "close"
                response = await self.answer(request)
                body = b"" if request.method == "HEAD" else response.body
                writer.write(_head(response.status, response, len(response.body), keep_alive) + body)
                await asyncio.wait_for(writer.drain(), WRITE_TIMEOUT)
                if not keep_alive:
                    return
        except (asyncio.TimeoutError, ConnectionError):  # a client that stopped reading
            return
        except asyncio.CancelledError:  # shutdown: end quietly, asyncio would log a cancelled handler
            return
        except Exception:  # never let one connection's fault reach the server
            log.exception("request failed")
        finally:
            self.connections -= 1
            self._handlers.discard(asyncio.current_task())
            writer.close()

    async def _start(self, context) -> None:
        """Serves new connections with this SSL context; the servers of the last one stop accepting."""
        old = self._servers
        self._servers = [await asyncio.start_server(  # a dup per server: closing one leaves the socket listening
            self.handle, sock=sock.dup(), ssl=context, limit=MAX_HEAD,
            ssl_handshake_timeout=HANDSHAKE_TIMEOUT if context else None) for sock in self.sockets]
        self.ssl_context = context
        for server in old:
            server.close()

    async def serve(self, stop: asyncio.Event) -> None:
        await self._start(self.ssl_context)
        addresses = ", ".join(_show(s.getsockname()) for s in self.sockets)
        log.info("listening", extra={"address": addresses, "tls": self.ssl_context is not None})
        watch = asyncio.create_task(self.watch_config(stop)) if self.app.web_config else None
        await stop.wait()
        if watch:  # first: it may be starting servers with a reloaded context
            await watch
        for server in self._servers:
            server.close()
        for sock in self.sockets:
            sock.close()
        handlers = list(self._handlers)  # idle keep-alive connections: end them before the loop goes
        for task in handlers:
            task.cancel()
        await asyncio.gather(*handlers, return_exceptions=True)

    async def watch_config(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            config = self.app.web_config.refresh()
            if self.ssl_context is not None and config.context is not self.ssl_context:
                await self._start(config.context)  # the toolkit's rule: a new connection sees the new file
            try:
                await asyncio.wait_for(stop.wait(), CONFIG_CHECK)
            except asyncio.TimeoutError:
                pass


def _show(sockname: tuple) -> str:
    host, port = sockname[:2]
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def split_address(address: str) -> tuple[str | None, int]:
    host, _, port = address.rpartition(":")
    host = host.strip("[]") or None
    return host, int(port)


def run(server: Server) -> None:
    """Serve until SIGTERM or SIGINT."""
    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await server.serve(stop)
    asyncio.run(main())
