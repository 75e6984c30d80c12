"""What a plain `serve` leaves out of its resident memory: libraries only some configurations need."""

from __future__ import annotations

import subprocess
import sys

from tests.support import ROOT

# serve on a busy address: it gets as far as binding (config, collectors, web server), then exits 2
SERVE_ON_A_BUSY_PORT = """
import socket, sys
from exporter import cli
busy = socket.create_server(("127.0.0.1", 0))
status = cli.main(["serve", f"--web.listen-address=127.0.0.1:{busy.getsockname()[1]}", "--log.level=error"])
print(status, sorted({"bcrypt", "exporter.webconfig", "encodings.idna", "difflib"} & set(sys.modules)))
"""


def test_serve_without_a_web_config_loads_neither_bcrypt_nor_the_idna_codec():
    """bcrypt (with its shared library) only for a web config; the idna codec's Unicode tables never for an
    ASCII listen address; difflib only for a mistyped flag or key. Each would stay resident for the life
    of the process."""
    done = subprocess.run([sys.executable, "-c", SERVE_ON_A_BUSY_PORT], capture_output=True, text=True, cwd=ROOT)
    assert "cannot listen on 127.0.0.1:" in done.stderr
    assert done.stdout.split(" ", 1) == ["2", "[]\n"]
