"""Which blobs the registry served, from its request log, read incrementally.

Distribution (docker-registry 2.8) writes two lines per request: its app log
line ``msg="response completed"`` (logrus ``text`` or, with
``log.formatter: json``, one JSON object) carrying ``http.request.method``,
``http.request.uri``, ``http.response.status`` and ``http.response.written``,
and, unless ``log.accesslog.disabled``, an Apache combined-format access line
(``... [04/Dec/2026:09:58:12 +0000] "GET /v2/<name>/blobs/sha256:<hex> HTTP/1.1"
200 100000 ...``). Through Docker's json-file driver each line arrives wrapped
as ``{"log": "<line>\\n", ...}``. A GET of ``/v2/<name>/blobs/<digest>``
answered 200 or 206 is a read of that blob's data file.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Iterator

APP, ACCESS = "app", "access"
READ_STATUSES = (200, 206)
DIGEST_BYTES = {"sha256": 32, "sha384": 48, "sha512": 64}
_URI = re.compile(r"^/v2/.+/blobs/(sha256|sha384|sha512):([0-9a-f]{64,128})(?:\?|$)")
_PAIR = re.compile(r'([\w.]+)=("(?:[^"\\]|\\.)*"|\S*)')
_ACCESS = re.compile(r'^\S+ \S+ \S+ \[([^\]]+)\] "(\S+) (\S+)[^"]*" (\d{3}) (\d+|-)')


@dataclass(frozen=True)
class BlobRead:
    digest: bytes  # the raw hash: 32 bytes for sha256, its length names the algorithm
    time: int  # unix seconds, from the log line
    written: int  # bytes sent to the client
    kind: str  # APP or ACCESS: each request appears once in each kind that is enabled


def parse_line(line: str) -> BlobRead | None:
    """The blob read a log line records, or None (another request, another status, not a request line)."""
    if "/blobs/" not in line:
        return None
    line = line.strip()
    if line.startswith('{"log":'):  # Docker's json-file driver
        try:
            return parse_line(json.loads(line)["log"])
        except (ValueError, KeyError, TypeError):
            return None
    if line.startswith("{"):
        try:
            return _from_fields(json.loads(line))
        except ValueError:
            return None
    if "response completed" in line:
        return _from_fields({k: _unquote(v) for k, v in _PAIR.findall(line)})
    return _from_access(line)


def _from_fields(f: dict) -> BlobRead | None:
    if not isinstance(f, dict) or f.get("http.request.method") != "GET":
        return None
    try:
        status, written = int(f["http.response.status"]), int(f.get("http.response.written", 0))
        when = int(datetime.fromisoformat(str(f["time"])).timestamp())
    except (KeyError, ValueError, TypeError):
        return None
    return _read(str(f.get("http.request.uri", "")), status, written, when, APP)


def _from_access(line: str) -> BlobRead | None:
    m = _ACCESS.match(line)
    if not m or m.group(2) != "GET":
        return None
    try:  # Go writes English month names whatever the locale
        when = int(datetime.strptime(m.group(1), "%d/%b/%Y:%H:%M:%S %z").timestamp())
    except ValueError:
        return None
    written = 0 if m.group(5) == "-" else int(m.group(5))
    return _read(m.group(3), int(m.group(4)), written, when, ACCESS)


def _read(uri: str, status: int, written: int, when: int, kind: str) -> BlobRead | None:
    m = _URI.match(uri)
    if status not in READ_STATUSES or not m or len(m.group(2)) != 2 * DIGEST_BYTES[m.group(1)]:
        return None
    return BlobRead(bytes.fromhex(m.group(2)), when, written, kind)


def _unquote(value: str) -> str:
    if len(value) >= 2 and value[0] == '"' == value[-1]:
        return value[1:-1].replace('\\"', '"').replace("\\\\", "\\")
    return value


def blob_path(v2: Path, digest: bytes) -> str:
    """The data file of a blob in a filesystem-driver store (``v2`` is ``.../docker/registry/v2``)."""
    alg = next(a for a, n in DIGEST_BYTES.items() if n == len(digest))
    hexa = digest.hex()
    return os.path.join(v2, "blobs", alg, hexa[:2], hexa, "data")


class LogTail:
    """New complete lines of a growing log file, across rotation (a new inode) and truncation.

    The open file is kept between calls, so lines written to a rotated file
    before the next call are still read. On the first open only the last
    ``backlog`` bytes are read: a log of many GB would otherwise cost minutes.
    """

    CHUNK = 1 << 20
    MAX_LINE = 1 << 16  # a longer "line" is not a request line: dropped
    MAX_READ = 64 << 20  # per call, so one call's cost is bounded; the rest comes next time

    def __init__(self, path: Path, backlog: int = 64 << 20):
        self.path = Path(path)
        self.backlog = backlog
        self._file = None
        self._id: tuple[int, int] | None = None
        self._partial = b""
        self.whole = False  # True when the current file was read from its first byte

    def lines(self) -> list[bytes]:
        """Raises OSError when the log cannot be opened (absent, permission denied)."""
        return [line for batch in self.batches() for line in batch]

    def batches(self) -> Iterator[list[bytes]]:
        """The new lines, a chunk's worth at a time; raises OSError as ``lines``."""
        if self._file is None:
            self._open(first=True)
            yield from self._drain()
            return
        yield from self._drain()
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            return  # rotated, its successor not created yet: keep the old file
        if (st.st_dev, st.st_ino) != self._id:
            self.close()
            self._open(first=False)
        elif st.st_size < self._file.tell():  # copytruncate
            self._file.seek(0)
            self._partial = b""
        yield from self._drain()

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None

    def _open(self, first: bool) -> None:
        f = open(self.path, "rb")
        st = os.fstat(f.fileno())
        self._file, self._id, self._partial = f, (st.st_dev, st.st_ino), b""
        start = max(0, st.st_size - self.backlog) if first else 0
        self.whole = start == 0
        if start:
            f.seek(start)
            f.readline()  # the first line read from the middle is a fragment

    def _drain(self) -> Iterator[list[bytes]]:
        read = 0
        while read < self.MAX_READ:
            chunk = self._file.read(self.CHUNK)
            if not chunk:
                break
            read += len(chunk)
            parts = (self._partial + chunk).split(b"\n")
            self._partial = parts.pop()
            if len(self._partial) > self.MAX_LINE:
                self._partial = b""
            yield parts
