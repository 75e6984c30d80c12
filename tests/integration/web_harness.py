"""A real exporter whose log goes to a file, with a readiness probe the test chooses (TLS, auth),
optionally started through a command prefix (setpriv, to run as an unprivileged user)."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Callable

import pytest
import requests

from tests.support import ROOT, Exporter, exporter_cmd, wait_for


class LoggedExporter(Exporter):
    def __init__(self, *args: str, log_path: Path, probe: Callable[["LoggedExporter"], bool] | None = None,
                 scheme: str = "http", env: dict | None = None, prefix: tuple[str, ...] = ()):
        super().__init__(*args, env=env)
        self.prefix = prefix  # e.g. setpriv ... to run as another user
        self.url = f"{scheme}://127.0.0.1:{self.port}"
        self.log_path = Path(log_path)
        self.probe = probe or (lambda e: requests.get(e.url + "/-/healthy", timeout=2).status_code == 200)

    def start(self, ready: bool = True) -> "LoggedExporter":
        with open(self.log_path, "w") as log:
            self.proc = subprocess.Popen([*self.prefix, *exporter_cmd(*self.args)], cwd=ROOT, env=self.env,
                                         stdout=subprocess.DEVNULL, stderr=log)

        def up() -> bool:
            if self.proc.poll() is not None:
                pytest.fail(f"exporter exited {self.proc.returncode}: {self.log()}")
            return self.probe(self)
        try:
            wait_for(up, timeout=30, what="exporter to answer")
        except BaseException:
            self.stop()
            raise
        return self

    def log(self) -> str:
        return self.log_path.read_text()
