"""Load and soak against a real exporter: 16 scrapers for 60 s behind 64 idle connections.

One run covers three things: no scrape fails under load; a fresh scrape behind
64 idle and half-open connections (plus a client dripping one byte at a time)
answers within a second, and the server drops those clients after its read
timeout; resident memory (VmRSS) after at least 100k scrapes stays within 5 %
of where it settled. Takes about 65 s here; LOAD_SECONDS shortens it locally.
"""

from __future__ import annotations

import os
import socket
import threading
import time
from pathlib import Path

from exporter import web
from tests.integration.web_harness import LoggedExporter

SECONDS = float(os.environ.get("LOAD_SECONDS", 60))
SCRAPERS, IDLE, SOAK_SCRAPES = 16, 64, 100_000


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


def get(sock: socket.socket, buf: bytes = b"") -> bytes:
    """One keep-alive GET /metrics; returns bytes read past the answer."""
    sock.sendall(b"GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
    while b"\r\n\r\n" not in buf:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("closed mid-answer")
        buf += chunk
    head, _, rest = buf.partition(b"\r\n\r\n")
    if not head.startswith(b"HTTP/1.1 200 "):
        raise AssertionError(head[:80])
    length = int(next(l for l in head.split(b"\r\n") if l.lower().startswith(b"content-length:")).split(b":")[1])
    while len(rest) < length:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("closed mid-body")
        rest += chunk
    if b"dtr_exporter_collector_success" not in rest[:length]:
        raise AssertionError("answer without metrics")
    return rest[length:]


def test_load_idle_connections_and_soak(tmp_path):
    config = tmp_path / "exporter.yml"  # fast intervals: the exposition is re-rendered several times a second
    config.write_text("collectors:\n" + "".join(f"  {n}: {{interval: 200ms}}\n"
                                                for n in ("memory", "cpu", "filesystem", "diskio")))
    with LoggedExporter("--config.file", str(config), "--log.level", "warn", log_path=tmp_path / "log") as exporter:
        idle = [socket.create_connection(("127.0.0.1", exporter.port)) for _ in range(IDLE)]
        for sock in idle[: IDLE // 2]:  # half-open: a request head that never ends
            sock.sendall(b"GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
        opened = time.monotonic()

        counts, errors, probes, rss = [0] * SCRAPERS, [], [], []
        stop = threading.Event()

        def scraper(i: int) -> None:
            try:
                with socket.create_connection(("127.0.0.1", exporter.port), timeout=10) as sock:
                    buf = b""
                    while not stop.is_set():
                        buf = get(sock, buf)
                        counts[i] += 1
            except Exception as err:  # counted, and the test fails on any
                errors.append(repr(err))

        def prober() -> None:
            while not stop.wait(0.5):
                start = time.perf_counter()
                try:
                    with socket.create_connection(("127.0.0.1", exporter.port), timeout=5) as sock:
                        get(sock)
                    probes.append(time.perf_counter() - start)
                except Exception as err:
                    errors.append(f"probe: {err!r}")

        def dripper(result: list) -> None:
            with socket.create_connection(("127.0.0.1", exporter.port), timeout=30) as sock:
                start = time.monotonic()
                try:
                    for byte in b"GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Drip: " + b"a" * 200:
                        sock.sendall(bytes([byte]))
                        time.sleep(0.5)
                    result.append(("never cut off", None))
                except OSError:
                    result.append(("cut off", time.monotonic() - start))

        threads = [threading.Thread(target=scraper, args=(i,)) for i in range(SCRAPERS)]
        threads.append(threading.Thread(target=prober))
        drip: list = []
        threads.append(threading.Thread(target=dripper, args=(drip,)))
        for t in threads:
            t.start()
        started = time.monotonic()
        while time.monotonic() - started < SECONDS or (sum(counts) < SOAK_SCRAPES and time.monotonic() - started < 2 * SECONDS):
            rss.append((sum(counts), rss_kib(exporter.proc.pid)))
            time.sleep(1)
        stop.set()
        for t in threads:
            t.join()
        elapsed = time.monotonic() - started
        total = sum(counts)
        rss.append((total, rss_kib(exporter.proc.pid)))

        # the server dropped every idle client once its read timeout passed
        assert time.monotonic() - opened > web.READ_TIMEOUT
        for sock in idle:
            sock.settimeout(2)
            assert sock.recv(1024) == b"", "an idle connection outlived the read timeout"
            sock.close()

        settled = next(kib for n, kib in rss if n >= total // 4)
        print(f"\nload: {total} scrapes in {elapsed:.0f} s ({total / elapsed:.0f}/s) by {SCRAPERS} scrapers, "
              f"{len(probes)} probes behind {IDLE} idle connections, slowest {max(probes) * 1000:.1f} ms; "
              f"RSS settled {settled} KiB, final {rss[-1][1]} KiB, max {max(k for _, k in rss)} KiB; drip {drip}")
        assert errors == [], errors[:5]
        assert total >= SOAK_SCRAPES or SECONDS < 60, f"only {total} scrapes"
        assert probes and max(probes) < 1.0
        assert drip and drip[0][0] == "cut off" and drip[0][1] < web.READ_TIMEOUT + 3
        assert rss[-1][1] <= settled * 1.05, f"RSS grew from {settled} to {rss[-1][1]} KiB"
        assert exporter.proc.poll() is None
