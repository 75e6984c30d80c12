"""Repositories and uploads of a Distribution store: the small part of the tree, walked in full each scan.

A repository is a directory under ``repositories/`` holding ``_manifests``,
``_layers`` or ``_uploads``; names nest (``a/b/c``), and a repository may
hold another (``a`` and ``a/b``). An upload is ``_uploads/<id>/`` with its
bytes in ``data`` and its start time (RFC 3339) in ``startedat``. Symlinks
are not followed; entries vanishing mid-walk are not errors.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Callable

ABANDONED_AFTER = 3600.0  # an upload whose data has not been written for an hour is abandoned


@dataclass
class Uploads:
    count: int = 0
    bytes: int = 0
    oldest_started: float | None = None  # Unix seconds
    abandoned: int = 0
    abandoned_bytes: int = 0


@dataclass
class Repositories:
    count: int = 0
    uploads: Uploads = field(default_factory=Uploads)
    errors: int = 0  # directories that could not be read


def walk(root: Path, now: float, tick: Callable[[], None] = lambda: None) -> Repositories:
    """Count repositories and uploads under ``root``; ``tick`` is called once per upload examined."""
    out = Repositories()
    stack = [root]
    while stack:
        directory = stack.pop()
        is_repo = False
        for entry in subdirs(directory, out):
            if entry.name in ("_manifests", "_layers"):
                is_repo = True
            elif entry.name == "_uploads":
                is_repo = True
                _uploads(Path(entry.path), out, now, tick)
            elif not entry.name.startswith("_"):
                stack.append(Path(entry.path))
        out.count += is_repo
    return out


def _uploads(path: Path, out: Repositories, now: float, tick: Callable[[], None]) -> None:
    total = out.uploads
    for upload in subdirs(path, out):
        tick()
        size, written, started = _upload(Path(upload.path))
        if started is None:
            continue  # vanished mid-scan
        total.count += 1
        total.bytes += size
        if total.oldest_started is None or started < total.oldest_started:
            total.oldest_started = started
        if now - written > ABANDONED_AFTER:
            total.abandoned += 1
            total.abandoned_bytes += size


def _upload(path: Path) -> tuple[int, float, float | None]:
    """(bytes, last write time, start time) of one upload; start None when it is gone."""
    try:
        st = os.stat(path, follow_symlinks=False)
    except OSError:
        return 0, 0.0, None
    size, written, started = 0, st.st_mtime, st.st_mtime
    try:
        data = os.stat(path / "data", follow_symlinks=False)
        if stat.S_ISREG(data.st_mode):
            size, written = data.st_size, data.st_mtime
    except OSError:
        pass  # an upload just created has no data yet
    try:
        text = (path / "startedat").read_text(encoding="ascii", errors="replace").strip()
        started = datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()
    except (OSError, ValueError):
        pass  # no readable start time: the directory's time stands in
    return size, written, started


def subdirs(path: str | Path, out=None) -> list[os.DirEntry]:
    """Real subdirectories of ``path`` (symlinks not followed); an unreadable one adds to ``out.errors``."""
    try:
        with os.scandir(path) as entries:
            return [e for e in entries if e.is_dir(follow_symlinks=False)]
    except FileNotFoundError:
        return []  # no repositories yet, or removed meanwhile
    except OSError:
        if out is not None:
            out.errors += 1
        return []
