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
from dataclasses import dataclass, field
from typing import Callable

from . import __version__, statuspage
from .exposition import Renderer
from .sampler import Snapshot

log = logging.getLogger(__name__)

READ_TIMEOUT = 10.0  # seconds to send a request head, and to keep an idle keep-alive open
HANDSHAKE_TIMEOUT = 5.0
MAX_HEAD = 16 * 1024
MAX_CONNECTIONS = 512
METRICS_TYPE = "text/plain; version=0.0.4; charset=utf-8"
REASONS = {200: "OK", 304: "Not Modified", 400: "Bad Request", 401: "Unauthorized", 404: "Not Found",
           405: "Method Not Allowed", 408: "Request Timeout", 431: "Request Header Fields Too Large",
           503: "Service Unavailable"}


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

    def __call__(self, request: Request) -> Response:
        config = self.web_config.current() if self.web_config else None
        if config is not None and not config.authorized(request.headers.get("authorization")):
            return Response(401, b"Unauthorized\n", headers={"WWW-Authenticate": 'Basic realm="dtr-sizing-exporter"'})
        response = self.route(request)
        if config is not None:
            response.headers.update(config.headers)
        return response

    def route(self, request: Request) -> Response:
        path = request.path.split("?", 1)[0]
        if path == "/metrics":
            return self.metrics(request)
        if path == "/":
            verdicts, _ = self.renderer.render(self.snapshot())
            return Response(200, statuspage.render(self.snapshot(), verdicts, __version__).encode(),
                            "text/html; charset=utf-8")
        if path == "/-/healthy":
            return Response(200, b"Healthy\n")
        if path == "/-/ready":
            ready = self.snapshot().ready
            return Response(200, b"Ready\n") if ready else Response(503, b"Not ready: first sampling pass running\n")
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


class Server:
    def __init__(self, app: App, host: str | None, port: int, ssl_context=None):
        self.app, self.host, self.port, self.ssl_context = app, host, port, ssl_context
        self.connections = 0

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            if self.connections > MAX_CONNECTIONS:
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
                if request.method not in ("GET", "HEAD"):
                    response = Response(405, b"Method Not Allowed\n", headers={"Allow": "GET, HEAD"})
                else:
                    response = self.app(request)
                body = b"" if request.method == "HEAD" else response.body
                writer.write(_head(response.status, response, len(response.body), keep_alive) + body)
                await writer.drain()
                if not keep_alive:
                    return
        except Exception:  # never let one connection's fault reach the server
            log.exception("request failed")
        finally:
            self.connections -= 1
            writer.close()

    async def serve(self, stop: asyncio.Event) -> None:
        server = await asyncio.start_server(
            self.handle, self.host, self.port, ssl=self.ssl_context, limit=MAX_HEAD,
            ssl_handshake_timeout=HANDSHAKE_TIMEOUT if self.ssl_context else None, backlog=1024)
        addresses = ", ".join(str(s.getsockname()[:2]) for s in server.sockets)
        log.info("listening", extra={"address": addresses, "tls": self.ssl_context is not None})
        async with server:
            await stop.wait()


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
