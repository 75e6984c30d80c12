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

import binascii
import json
import os
import re
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Callable, Iterator

APP, ACCESS = "app", "access"
READ_STATUSES = (200, 206)
DIGEST_BYTES = {"sha256": 32, "sha384": 48, "sha512": 64}
_URI = re.compile(r"^/v2/.+/blobs/(sha256|sha384|sha512):([0-9a-f]{64,128})(?:\?|$)")
_PAIR = re.compile(r'([\w.]+)=("(?:[^"\\]|\\.)*"|\S*)')
_ACCESS = re.compile(r'^\S+ \S+ \S+ \[([^\]]+)\] "(\S+) (\S+)[^"]*" (\d{3}) (\d+|-)')
# Blob reads in the two text formats Distribution writes by default, bare or wrapped by
# Docker's json-file driver (quotes escaped), found over a whole chunk of lines in one scan so
# that no per-line object is made (they fragmented the heap: about 2.5 MiB left resident after
# the first 64 MiB pass, docs/performance.md): the logrus text app line, whose keys after
# ``msg`` logrus writes sorted, and the combined access line. Any other line naming a blob
# that starts with "{" (the json formatter, an escape the scan does not expect) is parsed
# alone by parse_line.
_ALG = rb"(sha256|sha384|sha512):([0-9a-f]+)"
_Q = rb'\\?"'  # a quote, escaped inside Docker's {"log": "..."}
_READS = re.compile(
    rb'^(?:\{"log": ?")?(?:'
    rb'time=' + _Q + rb'([^"\\\n]+)' + _Q + rb' [^\n]*?msg=' + _Q + rb'response completed' + _Q + rb' '
    rb'[^\n]*?http\.request\.method=GET [^\n]*?http\.request\.uri=' + _Q + rb'/v2/[^"\n]+/blobs/' + _ALG
    + rb'(?:\?[^"\n]*)?' + _Q + rb' [^\n]*?http\.response\.status=20[06] [^\n]*?http\.response\.written=(\d+)'
    rb'|\S+ \S+ \S+ \[([^\]\n]+)\] ' + _Q + rb'GET /v2/\S+/blobs/' + _ALG + rb'(?:\?\S*)? [^"\n]*' + _Q
    + rb' 20[06] (\d+|-))'
    rb'|^(\{[^\n]*/blobs/[^\n]*)', re.M)


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


def reads(lines: bytes | memoryview) -> Iterator[BlobRead]:
    """The blob reads among whole lines of a log (one chunk of it, many lines at once)."""
    for m in _READS.finditer(lines):
        app_time, alg, hexa, written, access_time, a_alg, a_hexa, a_written, other = m.groups()
        if other is not None:
            read = parse_line(other.decode("utf-8", "replace"))
        elif app_time is not None:
            read = _blob(alg, hexa, written, app_time, _iso_seconds, APP)
        else:
            read = _blob(a_alg, a_hexa, a_written, access_time, _clf_seconds, ACCESS)
        if read is not None:
            yield read


def _blob(alg: bytes, hexa: bytes, written: bytes, stamp: bytes, seconds: Callable[[str], int],
          kind: str) -> BlobRead | None:
    if len(hexa) != 2 * DIGEST_BYTES[alg.decode()]:
        return None
    try:
        when = seconds(stamp.decode("ascii"))
    except (ValueError, UnicodeDecodeError):
        return None
    return BlobRead(binascii.unhexlify(hexa), when, 0 if written == b"-" else int(written), kind)


def _iso_seconds(text: str) -> int:
    return int(datetime.fromisoformat(text).timestamp())


def _clf_seconds(text: str) -> int:  # Go writes English month names whatever the locale
    return int(datetime.strptime(text, "%d/%b/%Y:%H:%M:%S %z").timestamp())


def _from_fields(f: dict) -> BlobRead | None:
    if not isinstance(f, dict) or f.get("http.request.method") != "GET":
        return None
    try:
        status, written = int(f["http.response.status"]), int(f.get("http.response.written", 0))
        when = _iso_seconds(str(f["time"]))
    except (KeyError, ValueError, TypeError):
        return None
    return _read(str(f.get("http.request.uri", "")), status, written, when, APP)


def _from_access(line: str) -> BlobRead | None:
    m = _ACCESS.match(line)
    if not m or m.group(2) != "GET":
        return None
    try:
        when = _clf_seconds(m.group(1))
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
    MIN_CHUNK = 1 << 16  # the least read at once, when little is pending
    MAX_LINE = 1 << 16  # a longer "line" is not a request line: dropped
    MAX_READ = 64 << 20  # per call, so one call's cost is bounded; the rest comes next time

    def __init__(self, path: Path, backlog: int = 64 << 20):
        self.path = Path(path)
        self.backlog = backlog
        self._file = None
        self._id: tuple[int, int] | None = None
        self._partial = b""
        self.whole = False  # True when the current file was read from its first byte

    def chunks(self) -> Iterator[bytes | memoryview]:
        """The new complete lines, many to an item and up to a chunk's worth, each item ending with a newline.

        An item is valid until the next one is asked for: its memory is read into again.

        Raises OSError when the log cannot be opened (absent, permission denied).
        """
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

    def _drain(self) -> Iterator[bytes | memoryview]:
        # One buffer read into again and again: a new chunk each time would be allocated while
        # the last one is still referenced (by the caller's loop), two held at once. Sized to
        # what is there: a minute's lines need a few KiB, and a 1 MiB buffer every minute stayed
        # resident (the heap is trimmed after long runs only)
        pending = os.fstat(self._file.fileno()).st_size - self._file.tell()
        buf, read = bytearray(min(self.CHUNK, max(pending, self.MIN_CHUNK))), 0
        with memoryview(buf) as view:
            while read < self.MAX_READ:
                got = self._file.readinto(buf)
                if not got:
                    break
                read += got
                first, end = buf.find(b"\n", 0, got) + 1, buf.rfind(b"\n", 0, got) + 1
                if first:  # the line the last read began, then the whole lines after it, uncopied
                    yield self._partial + view[:first]
                    if end > first:
                        yield view[first:end]
                    self._partial = b""
                self._partial += view[end:got]
                if len(self._partial) > self.MAX_LINE:
                    self._partial = b""
