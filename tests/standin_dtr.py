"""A STAND-IN for the DTR API, not DTR: DTR is proprietary and cannot be run here.

An ``http.server`` on loopback that answers the three calls the exporter makes,
in the shapes DTR documents:

- ``GET /_ping``: "Checks if the DTR replica is healthy, and returns a simple
  json response" (Docker/Mirantis docs, "Monitor DTR", health check endpoints,
  https://docs.mirantis.com/containers/v2.1/dockeree-products/dtr/dtr-admin/monitor-and-troubleshoot/monitor-dtr.html);
  the fields ``Healthy`` / ``Error`` are as DTR 2.x answers them.
- ``GET /api/v0/meta/cluster_status`` (admin, HTTP basic auth): an object with
  ``current_issues`` (a list of {critical, description}) and ``replica_health``
  (replica id -> "OK"), as in the Mirantis docs' "Cluster status" example
  (https://docs.mirantis.com/msr/current/ops/monitor-msr/cluster-status.html).
- ``GET /api/v0/admin/settings/registry/simple`` (admin): an object whose
  ``storage`` member is Distribution's ``storage`` configuration section, one
  key naming the driver (filesystem, s3, azure, swift, gcs, ...) beside
  ``delete`` / ``redirect`` / ``cache`` / ``maintenance`` (DTR docs, "Configure
  DTR image storage"; Distribution's configuration reference).

``mode`` turns it hostile: ``timeout`` (never answers in time), ``500``,
``html`` (a login page), ``huge`` (a 50 MB body with no length given),
``wrong_json`` (valid JSON of the wrong shape), ``redirect_loop``.
"""

from __future__ import annotations

import base64
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from tests.support import free_port

MODES = ("ok", "timeout", "500", "html", "huge", "wrong_json", "redirect_loop")
HUGE_BYTES = 50 * 2**20


class StandinDtr:
    def __init__(self, replicas: dict[str, str], driver: str = "filesystem",
                 username: str = "admin", password: str = "s3cr3t-Passw0rd"):
        self.replicas, self.driver = replicas, driver
        self.username, self.password = username, password
        self.mode = "ok"
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.requests: list[tuple[str, str | None]] = []  # (path, Authorization header)
        self.huge_bytes_sent = 0
        self._release = threading.Event()  # lets a "timeout" answer go when the server stops
        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), self._handler())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def documents(self) -> dict[str, object]:
        return {
            "/_ping": {"Error": "", "Healthy": True},
            "/api/v0/meta/cluster_status": {
                "current_issues": [{"critical": False, "description": "... some replicas are not ready."}],
                "replica_health": self.replicas,
            },
            "/api/v0/admin/settings/registry/simple": {
                "storage": {self.driver: {"rootdirectory": "/storage"} if self.driver == "filesystem"
                            else {"bucket": "registry", "region": "us-east-1"},
                            "delete": {"enabled": True}},
            },
        }

    def _authorized(self, header: str | None) -> bool:
        wanted = base64.b64encode(f"{self.username}:{self.password}".encode()).decode()
        return header == f"Basic {wanted}"

    def _handler(self):
        standin = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # keep the test output clean
                pass

            def _send(self, status: int, body: bytes, content_type: str = "application/json") -> None:
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self):
                auth = self.headers.get("Authorization")
                standin.requests.append((self.path, auth))
                mode = standin.mode
                if mode == "timeout":
                    standin._release.wait(60)
                    return
                if mode == "500":
                    return self._send(500, b'{"errors":[{"code":"UNKNOWN"}]}')
                if mode == "html":
                    return self._send(200, b"<!DOCTYPE html><html><body>Sign in</body></html>", "text/html")
                if mode == "redirect_loop":
                    self.send_response(302)
                    self.send_header("Location", self.path)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                if mode == "huge":
                    return self._huge()
                docs = standin.documents()
                if self.path not in docs:
                    return self._send(404, b'{"errors":[{"code":"NOT_FOUND"}]}')
                if self.path != "/_ping" and not standin._authorized(auth):
                    return self._send(401, b'{"errors":[{"code":"NOT_AUTHENTICATED"}]}')
                doc = docs[self.path]
                if mode == "wrong_json":
                    doc = [doc]  # valid JSON, not the documented object
                return self._send(200, json.dumps(doc).encode())

            def _huge(self):
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Connection", "close")
                self.end_headers()  # no Content-Length: only reading it tells its size
                chunk = b" " * 65536
                try:
                    while standin.huge_bytes_sent < HUGE_BYTES:
                        self.wfile.write(chunk)
                        standin.huge_bytes_sent += len(chunk)
                except OSError:
                    pass  # the client hung up, as it should

        return Handler

    def start(self) -> "StandinDtr":
        self._thread.start()
        return self

    def stop(self) -> None:
        self._release.set()
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()
