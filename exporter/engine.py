"""The three Docker Engine API calls the docker collector makes, with the standard library.

The Engine API is HTTP with JSON bodies on the daemon's unix socket (or a TCP address),
and the collector needs three GETs: the container list, one container's inspect and one
sample of its stats. ``http.client``, loaded anyway for the web server, does that in a
page; the Docker SDK and the requests stack beneath it added 6.6 MiB to the resident
size of every DTR node's exporter (docs/performance.md, "Scale").

Paths carry no API version, so the daemon answers in its own current one, as the SDK's
``version="auto"`` did; every field the collector reads has the same shape from API 1.24
(Docker 1.12) on. A connection per call: a unix socket costs microseconds to open, and
the stats calls run on several threads at once.
"""

from __future__ import annotations

import http.client
import json
import socket
from urllib.parse import quote, urlsplit

ACCEPTED = "unix:///path/to/docker.sock or tcp://host:port"
MAX_BODY = 16 << 20  # a busy node's container list is a few hundred KiB; this bounds a peer gone wrong


class EngineError(Exception):
    """A call got no usable answer; the message says which call and why, in one line."""

    def __init__(self, message: str, status: int | None = None):
        super().__init__(message)
        self.status = status


class NotFound(EngineError):
    """404: the container went between the listing and this call."""


def parse_host(host: str) -> tuple[str, str | tuple[str, int]]:
    """("unix", socket path) or ("tcp", (host, port)); ValueError names what is accepted."""
    url = urlsplit(host)
    if url.scheme == "unix" and url.path.startswith("/") and not url.netloc:
        return "unix", url.path
    try:
        port = url.port
    except ValueError:
        port = None
    if url.scheme in ("tcp", "http") and url.hostname and port and url.path in ("", "/"):
        return "tcp", (url.hostname, port)
    raise ValueError(f"{host!r} is not {ACCEPTED} (TLS to the Engine API is not supported: mount the socket)")


class _UnixConnection(http.client.HTTPConnection):
    def __init__(self, path: str, timeout: float):
        super().__init__("localhost", timeout=timeout)  # the Host header the daemon expects on its socket
        self.path = path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        try:
            sock.connect(self.path)
        except OSError:
            sock.close()
            raise
        self.sock = sock


def _message(body: bytes) -> str:
    """The daemon's error text (``{"message": ...}``), else the start of the body."""
    try:
        return str(json.loads(body)["message"])
    except (ValueError, KeyError, TypeError):
        return body[:200].decode("utf-8", "replace").strip() or "empty answer"


class Engine:
    """A client for ``host`` (see ``parse_host``); ``timeout`` bounds each socket operation."""

    def __init__(self, host: str, timeout: float):
        self.host = host
        self.kind, self.address = parse_host(self.host)
        self.timeout = timeout

    def _connection(self) -> http.client.HTTPConnection:
        if self.kind == "unix":
            return _UnixConnection(self.address, self.timeout)
        return http.client.HTTPConnection(*self.address, timeout=self.timeout)

    def get(self, path: str) -> object:
        """GET ``path`` and parse the JSON answer; EngineError (NotFound for a 404) otherwise."""
        conn = self._connection()
        try:
            conn.request("GET", path, headers={"Accept": "application/json"})
            answer = conn.getresponse()
            body = answer.read(MAX_BODY + 1)
        except (OSError, http.client.HTTPException) as err:
            reason = err.strerror if isinstance(err, OSError) and err.strerror else (str(err) or type(err).__name__)
            raise EngineError(f"Docker Engine API at {self.host}: GET {path}: {reason}") from None
        finally:
            conn.close()
        if len(body) > MAX_BODY:
            raise EngineError(f"Docker Engine API at {self.host}: GET {path}: answer over {MAX_BODY} bytes")
        if answer.status != 200:
            kind = NotFound if answer.status == 404 else EngineError
            raise kind(f"Docker Engine API at {self.host}: GET {path}: HTTP {answer.status}: {_message(body)}",
                       answer.status)
        try:
            return json.loads(body)
        except ValueError:
            raise EngineError(f"Docker Engine API at {self.host}: GET {path}: answer is not JSON") from None

    def containers(self) -> list[dict]:
        """Every container, stopped ones included (``docker ps -a``)."""
        return self.get("/containers/json?all=1")

    def inspect(self, container_id: str) -> dict:
        return self.get(f"/containers/{quote(container_id, safe='')}/json")

    def stats(self, container_id: str) -> dict:
        """One stats sample. ``one-shot`` (API 1.41) skips the second CPU sample the collector
        does not read; older daemons ignore it and take about a second."""
        return self.get(f"/containers/{quote(container_id, safe='')}/stats?stream=false&one-shot=true")
