"""The hot set: request-log lines as docker-registry 2.8 writes them, the log tail, the windows, atime."""

from __future__ import annotations

import ctypes
import ctypes.util
import hashlib
import json
import os
import sys
import subprocess
import tracemalloc
from pathlib import Path

import pytest

from exporter import accesslog, hotset
from tests.support import ROOT
from exporter.accesslog import LogTail, parse_line, reads

HEX = "e05d4ed15a9b5ab59ea6b61da086229d5e11f5fe61083238ca3ce2d7ac883ce5"
T = 1796378292  # 2026-12-04T09:58:12Z

# Lines written by docker-registry 2.8.2+ds1 (Debian) with accesslog enabled, as recorded here
TEXT_200 = ('time="2026-12-04T09:58:12.710780289Z" level=info msg="response completed" go.version=go1.19.8 '
            'http.request.host="127.0.0.1:5999" http.request.id=c9d75d7c-b749-4343-899c-f7828b131989 '
            'http.request.method=GET http.request.remoteaddr="127.0.0.1:45476" '
            f'http.request.uri="/v2/a/b/blobs/sha256:{HEX}" http.request.useragent=python-requests/2.34.2 '
            'http.response.contenttype=application/octet-stream http.response.duration=2.284307ms '
            'http.response.status=200 http.response.written=100000')
TEXT_HEAD = TEXT_200.replace("method=GET", "method=HEAD").replace("written=100000", "written=0")
TEXT_404 = ('time="2026-12-04T09:58:12.726782734Z" level=error msg="response completed with error" '
            'err.code="blob unknown" http.request.method=GET '
            f'http.request.uri="/v2/a/b/blobs/sha256:{HEX}" http.response.status=404 http.response.written=157')
JSON_206 = json.dumps({"go.version": "go1.19.8", "http.request.method": "GET",
                       "http.request.uri": f"/v2/a/b/blobs/sha256:{HEX}", "http.response.status": 206,
                       "http.response.written": 100, "level": "info", "msg": "response completed",
                       "time": "2026-12-04T09:58:12.72086378Z"})
ACCESS_200 = f'127.0.0.1 - - [04/Dec/2026:09:58:12 +0000] "GET /v2/a/b/blobs/sha256:{HEX} HTTP/1.1" 200 100000 "" "ua"'
ACCESS_UPLOAD = ('127.0.0.1 - - [04/Dec/2026:09:58:12 +0000] "PUT /v2/a/b/blobs/uploads/2c5a?_state=x'
                 f'&digest=sha256:{HEX} HTTP/1.1" 201 0 "" "ua"')


@pytest.mark.parametrize("line, written, kind", [
    (TEXT_200, 100000, "app"),
    (JSON_206, 100, "app"),
    (ACCESS_200, 100000, "access"),
    (json.dumps({"log": TEXT_200 + "\n", "stream": "stderr", "time": "2026-12-04T09:58:12Z"}), 100000, "app"),
    (json.dumps({"log": ACCESS_200 + "\n", "stream": "stdout"}), 100000, "access"),
])
def test_a_blob_get_is_a_read_of_that_digest_at_the_lines_time(line, written, kind):
    read = parse_line(line)
    assert read == accesslog.BlobRead(bytes.fromhex(HEX), T, written, kind)


@pytest.mark.parametrize("line", [TEXT_HEAD, TEXT_404, ACCESS_UPLOAD, ACCESS_200.replace('" 200 ', '" 404 '),
                                  'time="x" level=info msg="listening on 127.0.0.1:5999"', "{not json /blobs/",
                                  TEXT_200.replace(HEX, HEX[:40])])
def test_anything_else_is_not_a_read(line):
    assert parse_line(line) is None


def test_a_sha512_digest_keeps_its_algorithm_in_its_length(tmp_path):
    hexa = "ab" * 64
    read = parse_line(ACCESS_200.replace(f"sha256:{HEX}", f"sha512:{hexa}"))
    assert len(read.digest) == 64
    assert accesslog.blob_path(tmp_path, read.digest) == str(tmp_path / "blobs/sha512/ab" / hexa / "data")


def lines(tail: LogTail) -> list[bytes]:
    return b"".join(bytes(c) for c in tail.chunks()).splitlines()  # an item is valid until the next


def test_the_tail_reads_complete_lines_once_across_rotation_and_truncation(tmp_path):
    log = tmp_path / "registry.log"
    log.write_bytes(b"one\ntw")
    tail = LogTail(log)
    assert lines(tail) == [b"one"]
    with log.open("ab") as f:
        f.write(b"o\nthree\n")
    assert lines(tail) == [b"two", b"three"]
    assert lines(tail) == []
    # logrotate's create mode: the old file is renamed (and still written once), a new one appears
    with log.open("ab") as f:
        f.write(b"late\n")
    log.rename(tmp_path / "registry.log.1")
    log.write_bytes(b"fresh\n")
    assert lines(tail) == [b"late", b"fresh"]
    # copytruncate: same inode, shorter than what was read
    log.write_bytes(b"x\n")
    assert lines(tail) == [b"x"]


def test_the_first_open_reads_only_the_backlog_and_drops_the_fragment(tmp_path):
    log = tmp_path / "registry.log"
    log.write_bytes(b"a" * 100 + b"\nkept\n")
    tail = LogTail(log, backlog=10)
    assert lines(tail) == [b"kept"]
    assert not tail.whole


def test_an_unreadable_log_raises(tmp_path):
    with pytest.raises(OSError):
        lines(LogTail(tmp_path / "absent.log"))


def store(tmp_path: Path, sizes: dict[str, int]) -> Path:
    v2 = tmp_path / "docker/registry/v2"
    for hexa, size in sizes.items():
        data = v2 / "blobs/sha256" / hexa[:2] / hexa / "data"
        data.parent.mkdir(parents=True)
        data.write_bytes(b"x" * size)
    return v2


def test_windows_count_distinct_digests_once_with_their_sizes(tmp_path):
    a, b, c, gone = ("a" * 64, "b" * 64, "c" * 64, "d" * 64)
    reads = hotset.LastReads(store(tmp_path, {a: 1000, b: 300, c: 7}))
    now = 100_000
    for hexa, when in ((a, now - 10), (a, now - 20), (b, now - 7200), (c, now - 90_000), (gone, now - 5)):
        reads.note(bytes.fromhex(hexa), when)
    assert reads.window(now, 3600) == (hotset.Window(1000, 1), 1)
    assert reads.window(now, 86400) == (hotset.Window(1300, 2), 1)
    reads.prune(now)
    assert reads.last_read(bytes.fromhex(c)) is None and reads.last_read(bytes.fromhex(a)) == now - 10
    assert reads.window(now, 86400) == (hotset.Window(1300, 2), 1)


def test_last_reads_stay_right_across_merges(tmp_path, monkeypatch):
    monkeypatch.setattr(hotset.LastReads, "MERGE", 3)
    reads = hotset.LastReads(tmp_path)  # no data files: every digest unsized
    digests = [hashlib.sha256(str(i).encode()).digest() for i in range(10)]
    for i, digest in enumerate(digests):
        reads.note(digest, 1000 + i)
    reads.note(digests[0], 5000)
    reads.note(digests[9], 10)  # an older line of a digest already seen: the later read stays
    assert [reads.last_read(d) for d in digests] == [5000, *range(1001, 1010)]
    assert reads.window(5000, 86400) == (hotset.Window(0, 0), 10)


def test_a_days_reads_on_a_big_store_stay_off_the_heap(tmp_path):
    """50,000 digests (a day reading 5 % of a 1M-blob store): nothing per digest in Python's heap, and
    SQLite's own memory within its page cache bound, whatever the count (docs/performance.md)."""
    sqlite_used = ctypes.CDLL(ctypes.util.find_library("sqlite3")).sqlite3_memory_used
    sqlite_used.restype = ctypes.c_int64
    reads = hotset.LastReads(tmp_path)
    digests = [hashlib.sha256(str(i).encode()).digest() for i in range(50_000)]
    before = sqlite_used()
    tracemalloc.start()
    for i, digest in enumerate(digests):
        reads.note(digest, T + i)
    reads.prune(T + 50_000)
    kept = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    assert kept < 64 * 1024  # the heap: the dict of unmerged digests at most
    assert sqlite_used() - before < 1024 * 1024  # cache_size=-512: pages beyond it went to the file
    assert reads.db.execute("SELECT count(*) FROM reads").fetchone()[0] == 50_000


def test_the_log_is_read_a_chunk_at_a_time_in_whole_lines(tmp_path, monkeypatch):
    monkeypatch.setattr(LogTail, "CHUNK", 8)
    log = tmp_path / "registry.log"
    log.write_bytes(b"one\ntwo\nthree\nfour\n")
    # 8 bytes a read: the line a read finishes, then the whole lines after it, uncopied
    assert [bytes(c) for c in LogTail(log).chunks()] == [b"one\n", b"two\n", b"three\n", b"four\n"]


def test_a_chunk_yields_the_reads_its_lines_record_in_any_format():
    wrapped = [json.dumps({"log": line + "\n", "stream": "stderr"}) for line in (TEXT_200, ACCESS_200, TEXT_HEAD)]
    query = TEXT_200.replace(f"{HEX}\"", f"{HEX}?ns=docker.io\"")
    sha512 = ACCESS_200.replace(f"sha256:{HEX}", "sha512:" + "ab" * 64)
    lines = [TEXT_200, TEXT_HEAD, TEXT_404, JSON_206, ACCESS_200, ACCESS_UPLOAD, ACCESS_200.replace('" 200 ', '" 404 '),
             'time="x" level=info msg="listening on 127.0.0.1:5999"', "{not json /blobs/", *wrapped, query, sha512,
             TEXT_200.replace(HEX, HEX[:40]), ACCESS_200.replace("04/Dec", "04/Foo"), TEXT_200.replace("200 ", "206 ")]
    chunk = "".join(line + "\n" for line in lines).encode()
    expected = [read for line in lines if (read := parse_line(line))]
    assert len(expected) == 8
    assert list(reads(chunk)) == expected
    assert list(reads(memoryview(chunk))) == expected


def test_text_lines_bare_or_wrapped_by_docker_are_read_without_parsing_each_line(monkeypatch):
    """The formats of a bare registry and of DTR's container (json-file): one scan, no per-line objects."""
    docker = [json.dumps({"log": line + "\n", "stream": "stderr", "time": "2026-12-04T09:58:12.7Z"},
                         separators=(",", ":")) for line in (TEXT_200, ACCESS_200)]
    lines = [TEXT_200, ACCESS_200, TEXT_HEAD, TEXT_404, ACCESS_UPLOAD, *docker]
    expected = [read for line in lines if (read := parse_line(line))]
    monkeypatch.setattr(accesslog, "parse_line", lambda line: pytest.fail(f"parsed alone: {line}"))
    assert list(reads("".join(line + "\n" for line in lines).encode())) == expected


def test_the_first_pass_holds_one_chunk_of_the_log_at_a_time(tmp_path, monkeypatch):
    """No copy of the chunk, no per-line objects: what fragmented the heap (docs/performance.md)."""
    monkeypatch.setattr(LogTail, "CHUNK", 64 << 10)
    hexes = [hashlib.sha256(str(i).encode()).hexdigest() for i in range(10)]
    day = [line.replace(HEX, hexa) for hexa in hexes for line in (TEXT_200, ACCESS_200)]
    log = tmp_path / "registry.log"
    log.write_text("".join(day[i % len(day)] + "\n" for i in range(2000)))  # 0.7 MiB
    hotset.LogHotSet(log, tmp_path).update()  # once first: the first-use imports and caches
    source = hotset.LogHotSet(log, tmp_path)
    tracemalloc.start()
    source.update()
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    every, unsized = source.reads.window(T + 10**9, 10**10)  # a window reaching back before any line
    assert every.blobs + unsized == 10
    assert peak < 1.5 * LogTail.CHUNK


def test_a_steady_pass_reads_into_a_buffer_the_size_of_the_new_lines(tmp_path):
    """Not a whole chunk every minute: it stayed resident between trims (docs/performance.md)."""
    log = tmp_path / "registry.log"
    log.write_text(ACCESS_200 + "\n")
    source = hotset.LogHotSet(log, tmp_path)
    source.update()
    with log.open("a") as f:
        f.write(ACCESS_200 + "\n")
    tracemalloc.start()
    source.update()
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert source.served_bytes() == 200000
    assert peak < LogTail.CHUNK / 8


def log_source(tmp_path: Path, lines: list[str], now: float) -> hotset.HotSetSource:
    log = tmp_path / "registry.log"
    log.write_text("".join(line + "\n" for line in lines))
    return hotset.HotSetSource(tmp_path / "docker/registry/v2", log, clock=lambda: now)


def test_the_log_method_reports_both_windows_and_the_served_bytes(tmp_path):
    store(tmp_path, {HEX: 100000})
    source = log_source(tmp_path, [TEXT_200, ACCESS_200, JSON_206, TEXT_HEAD], now=T + 60)
    hot = source.measure()
    assert (hot.method, hot.reason) == ("log", "")
    assert hot.windows == {"1h": hotset.Window(100000, 1), "24h": hotset.Window(100000, 1)}
    assert hot.covered_seconds == 60
    assert source.log.served_bytes() == 100100  # app lines only: the access line is the same request


def test_an_unreadable_log_falls_back_to_atime_and_says_why(tmp_path, monkeypatch):
    v2 = store(tmp_path, {HEX: 100000})
    monkeypatch.setattr(os, "statvfs", lambda path: os.statvfs_result((0,) * 8 + (os.ST_RELATIME, 255)))
    hot = hotset.HotSetSource(v2, tmp_path / "absent.log", clock=lambda: T).measure()
    assert hot.method == "atime"
    assert "absent.log: No such file or directory" in hot.reason and "relatime" in hot.reason
    assert set(hot.windows) == {"24h"}


def test_a_noatime_store_without_a_log_measures_nothing_and_says_why(tmp_path, monkeypatch):
    v2 = store(tmp_path, {HEX: 100000})
    monkeypatch.setattr(os, "statvfs", lambda path: os.statvfs_result((0,) * 8 + (os.ST_NOATIME, 255)))
    hot = hotset.HotSetSource(v2, None).measure()
    assert (hot.method, hot.windows) == ("none", {})
    assert hot.reason == "no registry log configured; store mounted noatime, so atime says nothing"


@pytest.mark.parametrize("flags, policy", [(os.ST_NOATIME, "noatime"), (os.ST_RELATIME, "relatime"),
                                           (0, "strictatime"), (os.ST_RELATIME | os.ST_NOSUID, "relatime")])
def test_atime_policy(flags, policy):
    assert hotset.atime_policy(flags) == policy


def test_atime_counts_blobs_read_since_written_within_the_window(tmp_path):
    now = 1_000_000
    hexes = {"1" * 64: 10, "2" * 64: 20, "3" * 64: 40, "4" * 64: 80}
    v2 = store(tmp_path, hexes)
    times = {"1": (now - 60, now - 600),  # read a minute ago
             "2": (now - 7200, now - 9000),  # read two hours ago
             "3": (now - 600, now - 600),  # written, never read (atime == mtime)
             "4": (now - 200_000, now - 300_000)}  # read days ago
    for hexa in hexes:
        os.utime(accesslog.blob_path(v2, bytes.fromhex(hexa)), times[hexa[0]])
    assert hotset.atime_hot(v2, now, strict=False) == {"24h": hotset.Window(30, 2)}
    assert hotset.atime_hot(v2, now, strict=True) == {"1h": hotset.Window(10, 1), "24h": hotset.Window(30, 2)}


SPILL = """
import hashlib, os, sys
from pathlib import Path
from exporter import cli, config, hotset
cli.sqlite_temp_dir(config.Config(state_dir=sys.argv[1]))  # as build() does, before SQLite's first file
reads = hotset.LastReads(Path(sys.argv[1]))
for i in range(50_000):  # past the 512 KiB page cache
    reads.note(hashlib.sha256(str(i).encode()).digest(), 1796378292 + i)
reads.prune(1796378292 + 50_000)
for fd in os.listdir("/proc/self/fd"):
    try:
        print(os.readlink(f"/proc/self/fd/{fd}"))
    except OSError:
        pass  # the listing's own descriptor, closed by now
"""


def test_the_table_spills_into_the_state_directory(tmp_path):
    """Not /var/tmp or /tmp, which a read-only root file system (the Helm chart's) cannot write: the CLI
    points SQLite's temporary directory at the state directory before any database is opened."""
    state = tmp_path / "state"
    env = {k: v for k, v in os.environ.items() if k != "SQLITE_TMPDIR"}
    done = subprocess.run([sys.executable, "-c", SPILL, str(state)], capture_output=True, text=True, env=env,
                          cwd=ROOT, timeout=120)
    assert done.returncode == 0, done.stderr
    held = done.stdout.splitlines()
    assert any(target.startswith(f"{state}/") for target in held), held  # unlinked, still open
