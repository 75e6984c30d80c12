"""What garbage collection would free in a Distribution filesystem store, and which repositories use the space.

Counts what Distribution's mark and sweep (registry/storage/garbagecollect.go)
deletes, in two modes:

- ``unreferenced`` (``registry garbage-collect``): every blob no manifest of
  any repository references; a manifest's own blob counts as referenced;
- ``untagged`` (``garbage-collect --delete-untagged``): manifests no tag points
  at are deleted first, so also their blobs and what only they reference.

Which manifests and tags count, as Distribution reads the store:

- a repository is a directory under ``repositories/`` holding ``_layers``
  (names nest; directories starting with ``_`` are not entered); one without
  ``_manifests`` simply has no manifests;
- its manifests are ``_manifests/revisions/<alg>/<hex>/link``; a link whose blob
  is missing is skipped;
- a manifest is tagged when some ``_manifests/tags/<tag>/current/link`` of the
  same repository names it; the ``tags/<tag>/index`` links (a tag's history)
  do not count;
- in untagged mode the child manifests of a tagged manifest list or OCI index
  in the same repository are kept with everything they reference, as
  Distribution 3 does. Distribution 2.8 keeps the children's own blobs but
  deletes their layers and configs (distribution#3004, #3178);
  ``untagged_distribution28`` is what 2.8 frees, for comparison.

A manifest Distribution cannot read, or a link that is not a digest, is
counted in ``errors``: Distribution's collector stops on it and frees nothing,
and the estimate is a lower bound of what it frees once that manifest is
deleted (every digest its bytes still name counts as used).

The estimate is incremental: the mark state is kept between passes, and a
pass costs what changed since the last one. What grows with the store lives in
one SQLite database (a cache, recreated at start: in the state directory when
there is one, else SQLite's private temporary file), with a 1 MiB page cache
(emptied after each pass) and a soft heap limit of 3 MiB, so the Python heap holds
only a small record per blob prefix directory and the repository a pass is looking at.

- Keys are the leading 8 bytes of a digest (``exporter.scan``'s KEY), stored as
  a signed integer (the unsigned one minus 2^63, so the order is kept). Tables:
  ``blob`` (key -> size, and its prefix directory), ``manifest`` (parsed once;
  damaged or not) and ``ref`` (manifest, key it references), ``repo`` (name, its
  bytes and unique bytes), ``dir`` (the stat hash of each directory of links),
  ``entry`` (per repository, every revision and current tag link: its stat hash,
  the key it names, its errors) and ``mark`` (repository, key -> the highest
  level it marks the key at: 0 used, 1 kept by --delete-untagged, 2 kept by
  2.8's too).
- A pass lists the repositories tree (``seen`` collects the repositories found,
  so those that went are the rest), stats every revision directory and current
  tag link, reads a link only when its stat changed, and looks again only at
  repositories where some link changed: one SQL statement (a recursive query
  for the children of indexes) gives what the repository marks now, and the
  difference from its ``mark`` rows moves the totals, key by key. The first
  pass inserts the marks in bulk and computes the totals with GROUP BY.
- Blob sizes: inotify names the digest directories created since the last pass,
  a changed prefix without it is listed and compared with its rows, and only new
  digests are stat-ed. The blobs added and removed this pass (table ``change``)
  move the totals of the keys some repository marks.
- The reclaimable totals are the store's total minus the bytes of present
  blobs marked at each level, kept up to date on every mark change and every
  blob added or removed; each repository's bytes and unique bytes likewise.

A stat key (inode, mtime, ctime) younger than ``RACY_SECONDS`` is not trusted:
that entry is read again next pass.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import sqlite3
import stat
import time
from array import array
from bisect import bisect_left
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

from . import inotify, manifests
from .manifests import ManifestError
from .scan import CHUNK, KEY, RACY_SECONDS, is_real_dir

MODES = ("unreferenced", "untagged")
OTHER = "(other)"
DEFAULT_TOP = 20
# reference.WithName: Distribution's collector stops on a repository name it cannot parse
_NAME = re.compile(r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*")
_KEPT_BY_ALL, _KEPT_UNLESS_28, _KEPT_IF_UNREFERENCED = 2, 1, 0  # how far a mark reaches, by mode
_HALF = 1 << 63  # SQLite integers are signed: a key is stored as key - 2^63
_REVISIONS, _TAGS = 0, 1  # entry.kind
_REVISIONS_DIR, _TAGS_DIR = "revisions", "tags"  # keys of _Repo.dirs, under _manifests
_NEW = -1  # entry.link of a name not in the table yet (1: a link, 0: a tag without current)
log = logging.getLogger(__name__)
_SQLITE_HEAP = 3 << 20  # bytes SQLite may hold before it frees cache pages: the page cache (1 MiB) and sorts


@dataclass(frozen=True)
class Reclaim:
    blobs: int = 0
    bytes: int = 0


@dataclass(frozen=True)
class Owner:
    repository: str  # OTHER sums the repositories below the top K
    bytes: int  # bytes of the blobs it references
    unique_bytes: int  # of which no other repository references


@dataclass(frozen=True)
class Estimate:
    unreferenced: Reclaim
    untagged: Reclaim
    untagged_distribution28: Reclaim  # what Distribution 2.8's --delete-untagged frees
    repositories: tuple[Owner, ...]  # top K by bytes, then OTHER when there are more
    blobs: int
    blob_bytes: int
    manifests: int
    parsed: int  # manifests read this pass (the rest came from the cache)
    errors: int

    @property
    def lower_bound(self) -> bool:
        """Something could not be read: the reclaimable figures may be short of the truth."""
        return self.errors > 0

    def reclaimable(self, mode: str) -> Reclaim:
        if mode not in MODES:
            raise ValueError(f"mode must be one of {', '.join(MODES)}, not {mode!r}")
        return getattr(self, mode)


def short(k: bytes) -> int:
    """The KEY-byte integer of a full key (manifests.key), as scan.digest_key gives it for a digest directory."""
    raw = k if len(k) == manifests.SHA256_BYTES else k.partition(b":")[2]
    return int.from_bytes(raw[:KEY], "big")


_SCHEMA = """
CREATE TABLE blob(key INTEGER PRIMARY KEY, size INTEGER NOT NULL, dir INTEGER NOT NULL) WITHOUT ROWID;
CREATE INDEX blob_dir ON blob(dir, key);
CREATE TABLE change(key INTEGER NOT NULL, size INTEGER NOT NULL, dir INTEGER NOT NULL, added INTEGER NOT NULL);
CREATE TABLE manifest(key INTEGER PRIMARY KEY, damaged INTEGER NOT NULL) WITHOUT ROWID;
CREATE TABLE ref(manifest INTEGER, key INTEGER, PRIMARY KEY(manifest, key)) WITHOUT ROWID;
CREATE TABLE repo(id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE, bytes INTEGER NOT NULL DEFAULT 0,
                  uniq INTEGER NOT NULL DEFAULT 0, unresolved INTEGER NOT NULL DEFAULT 0);
CREATE TABLE seen(id INTEGER PRIMARY KEY);
CREATE TABLE dir(repo INTEGER, name TEXT, stat INTEGER, names TEXT, PRIMARY KEY(repo, name)) WITHOUT ROWID;
CREATE TABLE entry(repo INTEGER, kind INTEGER, name TEXT, stat INTEGER, key INTEGER, errors INTEGER NOT NULL,
                   link INTEGER NOT NULL, PRIMARY KEY(repo, kind, name)) WITHOUT ROWID;
CREATE INDEX entry_key ON entry(key) WHERE kind = 0;
CREATE TABLE mark(repo INTEGER, key INTEGER, level INTEGER NOT NULL, PRIMARY KEY(repo, key)) WITHOUT ROWID;
CREATE INDEX mark_key ON mark(key, repo, level);
CREATE TABLE new_mark(key INTEGER PRIMARY KEY, level INTEGER NOT NULL) WITHOUT ROWID;
"""

# What repository :repo marks, key -> highest level: 0 its present manifests and what they reference; 1 the
# manifests reachable from its tagged ones through present manifests (an index's children) and what they
# reference; 2 its tagged manifests and what they reference (all 2.8 keeps).
_MARKS = """
WITH RECURSIVE
  present(k) AS MATERIALIZED (SELECT DISTINCT e.key FROM entry e JOIN manifest m ON m.key = e.key
                              WHERE e.repo = :repo AND e.kind = 0),
  tagged(k) AS MATERIALIZED (SELECT DISTINCT e.key FROM entry e
                             WHERE e.repo = :repo AND e.kind = 1 AND e.key IN present),
  reach(k) AS (SELECT k FROM tagged
               UNION SELECT f.key FROM reach JOIN ref f ON f.manifest = reach.k WHERE f.key IN present),
  marks(k, l) AS (SELECT k, 0 FROM present UNION ALL SELECT f.key, 0 FROM present JOIN ref f ON f.manifest = k
                  UNION ALL SELECT k, 1 FROM reach UNION ALL SELECT f.key, 1 FROM reach JOIN ref f ON f.manifest = k
                  UNION ALL SELECT k, 2 FROM tagged UNION ALL SELECT f.key, 2 FROM tagged JOIN ref f ON f.manifest = k)
SELECT k, max(l) FROM marks GROUP BY k
"""

# the rows of mark that differ from new_mark for :repo: (key, old level or None, new level or None)
_DIFF = """
SELECT n.key, o.level, n.level FROM new_mark n LEFT JOIN mark o ON o.repo = :repo AND o.key = n.key
WHERE o.level IS NOT n.level
UNION ALL
SELECT o.key, o.level, NULL FROM mark o
WHERE o.repo = :repo AND NOT EXISTS (SELECT 1 FROM new_mark n WHERE n.key = o.key)
"""


def _connect(state_dir: str | Path | None, v2: Path) -> tuple[sqlite3.Connection, str]:
    """The estimator's database, empty, and its file ("": SQLite's private temporary one, on disk once it
    outgrows the cache, deleted on close). A cache: any earlier file is dropped."""
    if state_dir:
        path = str(Path(state_dir) / f"garbage-{hashlib.sha256(str(v2).encode()).hexdigest()[:16]}.sqlite")
        try:
            Path(state_dir).mkdir(parents=True, exist_ok=True)
            _unlink(path)
            return _open(path), path
        except (OSError, sqlite3.Error) as err:
            log.warning("cannot keep the garbage estimate's database in the state directory, using a "
                        "temporary file", extra={"path": path, "err": str(err)})
    return _open(""), ""


def _open(path: str) -> sqlite3.Connection:
    # one pass at a time, from whichever thread runs it; statements are grouped in a transaction per pass
    db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
    # soft_heap_limit (process-wide) makes SQLite give back cache pages rather than grow, sorts included
    for pragma in ("journal_mode=OFF", "synchronous=OFF", "cache_size=-1024", "temp_store=FILE",
                   "locking_mode=EXCLUSIVE", f"soft_heap_limit={_SQLITE_HEAP}"):
        db.execute(f"PRAGMA {pragma}")
    db.executescript(_SCHEMA)
    return db


def _unlink(path: str) -> None:
    if path:
        for stale in (path, path + "-journal"):
            if os.path.exists(stale):
                os.unlink(stale)


@dataclass(eq=False, slots=True)
class _Repo:
    """A repository while a pass looks at it: what lasts between passes is in its rows."""
    id: int
    name: str
    unresolved: bool = False  # a revision's manifest was missing or unreadable: try again next pass
    was_unresolved: bool = False  # as loaded
    # directory under _manifests -> (stat key, names or None: its links are entry rows), and as loaded
    dirs: dict = field(default_factory=dict)
    loaded: dict = field(default_factory=dict)
    fulls: dict | None = None  # key -> full key, of the links read this pass
    errors: int = 0


class Estimator:
    """Estimates one store, again and again, incrementally. One pass at a time; ``close`` frees the inotify
    instance and the database."""

    def __init__(self, v2: Path, top: int = DEFAULT_TOP, clock=time.time, state_dir: str | Path | None = None):
        self.v2 = Path(v2)
        self.top = top
        self.clock = clock
        self.state_dir = state_dir
        self.sizes: BlobSizes | None = None
        self._start()

    def _start(self) -> None:
        if self.sizes is not None:
            self.sizes.close()
        self._db, self._path = _connect(self.state_dir, self.v2)
        self.sizes = BlobSizes(self.v2, self._db, self._path and self._path.replace(".sqlite", ".inotify"))
        self._ids = 0
        self._delta: dict[int, list[int]] = {}  # repository id -> [bytes, unique bytes] to add at the end of a pass
        self._marked = False  # some pass has marked: later ones move the totals key by key
        self.kept = [0, 0, 0]  # present blobs marked at least at level 0, 1, 2
        self.kept_bytes = [0, 0, 0]

    def close(self) -> None:
        self.sizes.close()
        _unlink(self._path)

    def estimate(self) -> Estimate:
        """One pass. Should it fail half way, the next one starts afresh (the database has no journal)."""
        try:
            self._db.execute("BEGIN")
            estimate = self._pass()
            self._db.execute("COMMIT")
            # the page cache back to the heap (the sampler trims it): between passes it was 1 MiB resident; a pass
            # after 1 % pushes reads the pages it needs again from the OS's cache, no slower (docs/performance.md)
            self._db.execute("PRAGMA shrink_memory")
            return estimate
        except BaseException:
            self._start()
            raise

    def _pass(self) -> Estimate:
        db = self._db
        now = self.clock()
        self.sizes.refresh(now)
        self._blobs_changed()
        errors = [0]
        parsed, bulk, prune = 0, not self._marked, False
        db.execute("DELETE FROM seen")
        for name in self._walk(errors):
            repo = self._load(name)
            got, changed = self._refresh(repo, now, bulk)
            self._save(repo)
            parsed += got
            prune |= changed
            errors[0] += repo.errors
        for (gone,) in db.execute("SELECT id FROM repo WHERE id NOT IN (SELECT id FROM seen)").fetchall():
            self._apply(_Repo(gone, ""), new=False)
            db.execute("DELETE FROM entry WHERE repo = ?", (gone,))
            db.execute("DELETE FROM dir WHERE repo = ?", (gone,))
            db.execute("DELETE FROM repo WHERE id = ?", (gone,))
            prune = True
        self._flush()
        if bulk:
            self._totals()
        if prune:
            self._forget()
        self._marked = True
        self._db.execute("DELETE FROM change")  # now, rather than at the start of a pass that should be short
        total, total_bytes = self.sizes.blobs, self.sizes.bytes
        reclaim = [Reclaim(total - self.kept[level], total_bytes - self.kept_bytes[level]) for level in range(3)]
        count, damaged = db.execute("SELECT count(*), total(damaged) FROM manifest").fetchone()
        return Estimate(reclaim[_KEPT_IF_UNREFERENCED], reclaim[_KEPT_UNLESS_28], reclaim[_KEPT_BY_ALL],
                        self._owners(), total, total_bytes, count, parsed,
                        errors[0] + self.sizes.errors + int(damaged))

    def _owners(self) -> tuple[Owner, ...]:
        db = self._db
        top = [Owner(*row) for row in db.execute("SELECT name, bytes, uniq FROM repo ORDER BY bytes DESC, name "
                                                 "LIMIT ?", (self.top + 1,))]
        if len(top) <= self.top:
            return tuple(top)
        everyone, unique = db.execute("SELECT sum(bytes), sum(uniq) FROM repo").fetchone()
        top.pop()
        return (*top, Owner(OTHER, everyone - sum(o.bytes for o in top), unique - sum(o.unique_bytes for o in top)))

    # --- repositories --------------------------------------------------------------------------------

    def _walk(self, errors: list[int]) -> Iterator[str]:
        """Repository names as Distribution's collector enumerates them. Every directory is listed each pass: a
        directory per repository or namespace, cheaper than keeping their listings."""
        top = f"{self.v2}/repositories"
        stack = [""]
        while stack:
            name = stack.pop()  # relative to top: a repository's name
            directory = f"{top}/{name}" if name else top
            names = _list(directory, errors)
            if names is None:
                continue
            if name and "_layers" in names:
                if _NAME.fullmatch(name) is None or len(name) > 255:
                    errors[0] += 1  # Distribution stops here: "failed to parse repo name"
                else:
                    yield name
            stack.extend(f"{name}/{n}" if name else n for n in sorted(names, reverse=True)
                         if not n.startswith("_") and is_real_dir(directory, n))

    def _load(self, name: str) -> _Repo:
        """The repository's record, a new one when it was not there last pass; marked as seen."""
        db = self._db
        row = db.execute("SELECT id, unresolved FROM repo WHERE name = ?", (name,)).fetchone()
        if row is None:
            self._ids += 1  # ids are never reused
            db.execute("INSERT INTO repo(id, name) VALUES (?, ?)", (self._ids, name))
            repo = _Repo(self._ids, name)
        else:
            repo = _Repo(row[0], name, bool(row[1]), bool(row[1]))
            for d, key, names in db.execute("SELECT name, stat, names FROM dir WHERE repo = ?", (repo.id,)):
                repo.dirs[d] = (key, None if names is None else tuple(names.split("/")) if names else ())
            repo.loaded = dict(repo.dirs)
        db.execute("INSERT INTO seen VALUES (?)", (repo.id,))
        return repo

    def _save(self, repo: _Repo) -> None:
        """Write what changed of the repository's record."""
        db = self._db
        db.executemany("INSERT OR REPLACE INTO dir VALUES (?, ?, ?, ?)", [
            (repo.id, d, key, None if names is None else "/".join(names))
            for d, (key, names) in repo.dirs.items() if repo.loaded.get(d) != (key, names)])
        db.executemany("DELETE FROM dir WHERE repo = ? AND name = ?",
                       [(repo.id, d) for d in repo.loaded if d not in repo.dirs])
        if repo.unresolved != repo.was_unresolved:
            db.execute("UPDATE repo SET unresolved = ? WHERE id = ?", (repo.unresolved, repo.id))

    def _add(self, repo: int, size: int, unique: int) -> None:
        delta = self._delta.setdefault(repo, [0, 0])
        delta[0] += size
        delta[1] += unique

    def _flush(self) -> None:
        self._db.executemany("UPDATE repo SET bytes = bytes + ?, uniq = uniq + ? WHERE id = ?",
                             [(size, unique, repo) for repo, (size, unique) in self._delta.items()])
        self._delta.clear()

    def _refresh(self, repo: _Repo, now: float, bulk: bool) -> tuple[int, bool]:
        """Look at a repository's links again; recompute what it marks when one changed. (Manifests parsed, some
        link was modified or removed.)"""
        mdir = f"{self.v2}/repositories/{repo.name}/_manifests"
        errors = [0]
        revisions, only_added = self._links(repo, _REVISIONS, mdir, now, errors)
        tags, tags_only_added = self._links(repo, _TAGS, mdir, now, errors)
        repo.errors = errors[0]
        if not (revisions or tags or repo.unresolved):
            return 0, False
        parsed = self._parse_new(repo, mdir)
        self._apply(repo, new=True, bulk=bulk)
        return parsed, not (only_added and tags_only_added)

    def _links(self, repo: _Repo, kind: int, mdir: str, now: float, errors: list[int]) -> tuple[bool, bool]:
        """Refresh the repository's ``entry`` rows of revisions (<alg>/<hex>/link, named "<alg>/<hex>") or tags
        (<tag>/current/link): (some link changed, and all changes are new links)."""
        dirs: dict = {}
        if kind == _REVISIONS:
            root = f"{mdir}/revisions"
            top = _listing(root, repo.dirs.get(_REVISIONS_DIR), now, errors)
            if top is not None:
                dirs[_REVISIONS_DIR] = top
            bottoms = [(f"{root}/{alg}", f"revisions/{alg}", f"{alg}/") for alg in (top[1] if top else ())]
        else:
            bottoms = [(f"{mdir}/tags", _TAGS_DIR, "")]
        changed = modified = False
        for directory, relative, prefix in bottoms:
            c, m = self._bottom(repo, kind, directory, relative, prefix, dirs, now, errors)
            changed, modified = changed or c, modified or m
        if kind == _REVISIONS and dirs.get(_REVISIONS_DIR) is not repo.dirs.get(_REVISIONS_DIR):
            # the <alg> directories were listed again: forget the rows of those that went
            kept = tuple(prefix for _, _, prefix in bottoms)
            gone = [(repo.id, kind, name) for name, link in self._db.execute(
                "SELECT name, link FROM entry WHERE repo = ? AND kind = 0", (repo.id,)) if not name.startswith(kept)]
            modified |= bool(gone)
            self._db.executemany("DELETE FROM entry WHERE repo = ? AND kind = ? AND name = ?", gone)
        root = _REVISIONS_DIR if kind == _REVISIONS else _TAGS_DIR
        for stale in [d for d in repo.dirs if d.startswith(root) and d not in dirs]:
            del repo.dirs[stale]
        repo.dirs.update(dirs)
        return changed or modified, not modified

    def _bottom(self, repo: _Repo, kind: int, directory: str, relative: str, prefix: str, dirs: dict, now: float,
                errors: list[int]) -> tuple[bool, bool]:
        """The links in one directory of links (named ``prefix`` + name; ``relative`` to _manifests): (some changed,
        some modified or gone)."""
        db = self._db
        known = repo.dirs.get(relative)
        key = _stat_key(directory, now, errors)
        high = prefix[:-1] + chr(ord(prefix[-1]) + 1) if prefix else "\U0010ffff"
        old = db.execute("SELECT name, stat, key, errors, link FROM entry WHERE repo = ? AND kind = ? AND name >= ? "
                         "AND name < ?", (repo.id, kind, prefix, high)).fetchall()
        cut, gone, there = len(prefix), [], True
        if key is False:
            listed, gone, there = [], old, False  # gone: so are its links
        elif known is not None and key is not None and known[0] == key:
            listed = old  # an unchanged listing: its names are the rows'
        else:
            names = _list(directory, errors)
            if names is None:
                listed, gone, there = [], old, False
            else:
                rows = {row[0]: row for row in old}
                listed = [rows.get(prefix + n) or (prefix + n, None, None, 0, _NEW) for n in names]
                names = set(names)
                gone = [row for row in old if row[0][cut:] not in names]
        if there:
            dirs[relative] = (key, None)
        changed = modified = False
        writes = []
        link = "/link" if kind == _REVISIONS else "/current/link"
        for row in listed:
            full_name, last, was, row_errors, linked = row
            path = f"{directory}/{full_name[cut:]}"
            stat_key = _stat_key(path if kind == _REVISIONS else path + link, now, errors)  # a revision's
            if stat_key is False:  # directory changes when its link is deleted
                if kind == _REVISIONS:
                    if linked != _NEW:
                        gone.append(row)
                elif linked != 0:  # a tag without current: remembered, not a link
                    writes.append((repo.id, kind, full_name, None, None, 0, 0))
                    changed |= linked == 1
                    modified |= linked == 1
                continue
            if linked == 1 and stat_key is not None and last == stat_key:
                errors[0] += row_errors
                continue
            link_errors = [0]
            full = _read_link(path + link, link_errors)
            k = None if full is None else short(full) - _HALF
            if full is not None:
                if repo.fulls is None:
                    repo.fulls = {}
                repo.fulls[k] = full
            writes.append((repo.id, kind, full_name, stat_key, k, link_errors[0], 1))
            errors[0] += link_errors[0]
            changed |= linked != 1 or was != k
            modified |= linked == 1 and was != k
        db.executemany("INSERT OR REPLACE INTO entry VALUES (?, ?, ?, ?, ?, ?, ?)", writes)
        db.executemany("DELETE FROM entry WHERE repo = ? AND kind = ? AND name = ?",
                       [(repo.id, kind, row[0]) for row in gone])
        return changed or bool(gone), modified or any(row[4] == 1 for row in gone)

    def _parse_new(self, repo: _Repo, mdir: str) -> int:
        """Parse the manifests the repository links that are not known yet; how many."""
        db = self._db
        repo.unresolved = False
        unknown = db.execute("SELECT e.key, min(e.name) FROM entry e WHERE e.repo = ? AND e.kind = 0 AND e.key "
                             "NOT NULL AND NOT EXISTS (SELECT 1 FROM manifest m WHERE m.key = e.key) GROUP BY e.key",
                             (repo.id,)).fetchall()
        found, refs = [], []
        for k, name in unknown:
            alg, _, hexa = name.partition("/")
            full = (repo.fulls or {}).get(k) or _read_link(f"{mdir}/revisions/{alg}/{hexa}/link", [0])
            got = None if full is None else self._read_manifest(full, repo)
            if got is not None:
                found.append((k, got[0]))
                refs += ((k, r) for r in got[1])
        db.executemany("INSERT INTO manifest VALUES (?, ?)", found)
        db.executemany("INSERT INTO ref VALUES (?, ?)", refs)
        repo.fulls = None
        return len(found)

    def _read_manifest(self, full: bytes, repo: _Repo) -> tuple[bool, set[int]] | None:
        """(damaged, the keys it references), None when it cannot be read now."""
        try:
            content = blob_path(self.v2, full).read_bytes()
        except FileNotFoundError:
            repo.unresolved = True  # a link to a missing blob: Distribution skips it
            return None
        except OSError:
            repo.unresolved = True
            repo.errors += 1
            return None
        damaged = False
        try:
            found = manifests.parse(content)
        except ManifestError:
            found = manifests.salvage(content)
            damaged = True
        return damaged, {short(k) - _HALF for k in found.references()}

    # --- marks and totals ------------------------------------------------------------------------------

    def _apply(self, repo: _Repo, new: bool, bulk: bool = False) -> None:
        """Replace what ``repo`` marks by what its links mark now (nothing unless ``new``); the totals move by
        the difference, key by key, except in a bulk pass (``_totals`` follows)."""
        db = self._db
        if bulk:
            db.execute(f"INSERT INTO mark SELECT :repo, * FROM ({_MARKS})", {"repo": repo.id})
            return
        db.execute("DELETE FROM new_mark")
        if new:
            db.execute(f"INSERT INTO new_mark {_MARKS}", {"repo": repo.id})
        for k, old, level in db.execute(_DIFF, {"repo": repo.id}).fetchall():
            self._change(repo, k, old, level)

    def _change(self, repo: _Repo, k: int, old: int | None, level: int | None) -> None:
        db = self._db
        size = self.sizes.size_of(k)
        if size is not None:
            c0, top, owner = self._marks_of(k)
        if level is None:
            db.execute("DELETE FROM mark WHERE repo = ? AND key = ?", (repo.id, k))
        else:
            db.execute("INSERT OR REPLACE INTO mark VALUES (?, ?, ?)", (repo.id, k, level))
        if size is None:
            return  # not in the store: frees nothing, weighs nothing
        c0_after, top_after, owner_after = self._marks_of(k)
        self._move(top, top_after, size)
        if old is None:
            self._add(repo.id, size, 0)
        elif level is None:
            self._add(repo.id, -size, 0)
        if c0 == 1:
            self._add(owner, 0, -size)
        if c0_after == 1:
            self._add(owner_after, 0, size)

    def _marks_of(self, k: int) -> tuple[int, int, int | None]:
        """How many repositories mark ``k``, the highest level (-1: none), the one that marks it when only one."""
        count, top, owner = self._db.execute("SELECT count(*), max(level), min(repo) FROM mark WHERE key = ?",
                                             (k,)).fetchone()
        return count, -1 if top is None else top, owner

    def _move(self, before: int, after: int, size: int) -> None:
        one = 1 if after > before else -1
        for at in range(min(before, after) + 1, max(before, after) + 1):
            self.kept[at] += one
            self.kept_bytes[at] += one * size

    def _blobs_changed(self) -> None:
        """Blobs came or went: the totals of the keys some repository marks move; a manifest whose blob went is
        forgotten, and the repositories linking it look again."""
        db = self._db
        for (k,) in db.execute("SELECT c.key FROM change c JOIN manifest m ON m.key = c.key "
                               "WHERE NOT c.added").fetchall():
            db.execute("DELETE FROM manifest WHERE key = ?", (k,))
            db.execute("DELETE FROM ref WHERE manifest = ?", (k,))
            db.execute("UPDATE repo SET unresolved = 1 WHERE id IN (SELECT repo FROM entry WHERE kind = 0 AND key = ?)",
                       (k,))
        if not self._marked:
            return  # nothing is marked before the first pass has read the repositories
        for k, size, added in db.execute("SELECT key, size, added FROM change c WHERE EXISTS "
                                         "(SELECT 1 FROM mark m WHERE m.key = c.key)").fetchall():
            signed = size if added else -size
            c0, top, owner = self._marks_of(k)
            self._move(-1, top, signed) if added else self._move(top, -1, size)
            if c0 == 1:
                self._add(owner, signed, signed)
            else:  # rare: a blob several repositories use came back or went away
                for (repo,) in db.execute("SELECT repo FROM mark WHERE key = ?", (k,)).fetchall():
                    self._add(repo, signed, 0)

    def _totals(self) -> None:
        """Every total from the marks, in SQL: after a bulk pass."""
        db = self._db
        self.kept, self.kept_bytes = [0, 0, 0], [0, 0, 0]
        for level, blobs, size in db.execute(
                "SELECT m.level, count(*), sum(b.size) FROM (SELECT key, max(level) level FROM mark GROUP BY key) m "
                "JOIN blob b ON b.key = m.key GROUP BY m.level"):
            for at in range(level + 1):
                self.kept[at] += blobs
                self.kept_bytes[at] += size
        db.execute("UPDATE repo SET bytes = (SELECT coalesce(sum(b.size), 0) FROM mark m JOIN blob b ON b.key = m.key "
                   "WHERE m.repo = repo.id), uniq = (SELECT coalesce(sum(b.size), 0) FROM mark m JOIN blob b "
                   "ON b.key = m.key WHERE m.repo = repo.id AND NOT EXISTS "
                   "(SELECT 1 FROM mark o WHERE o.key = m.key AND o.repo != m.repo))")

    def _forget(self) -> None:
        """Drop the manifests no repository links any more."""
        db = self._db
        gone = db.execute("SELECT key FROM manifest m WHERE NOT EXISTS "
                          "(SELECT 1 FROM entry e WHERE e.kind = 0 AND e.key = m.key)").fetchall()
        db.executemany("DELETE FROM manifest WHERE key = ?", gone)
        db.executemany("DELETE FROM ref WHERE manifest = ?", gone)
# --- reading the store ---------------------------------------------------------------------------------


def blob_path(v2: Path, k: bytes) -> Path:
    alg, _, hexa = manifests.name(k).partition(":")
    return v2 / "blobs" / alg / hexa[:2] / hexa / "data"


def _stat_key(path: str, now: float, errors: list[int]):
    """A hash of (inode, mtime, ctime, size) of a directory or link file; None when too recent to trust; False
    when absent."""
    try:
        st = os.stat(path, follow_symlinks=False)
    except (FileNotFoundError, NotADirectoryError):
        return False
    except OSError:
        errors[0] += 1
        return False
    if now - st.st_mtime_ns / 1e9 < RACY_SECONDS or now - st.st_ctime_ns / 1e9 < RACY_SECONDS:
        return None  # may change again within the same timestamp tick
    return hash((st.st_ino, st.st_mtime_ns, st.st_ctime_ns, st.st_size))  # one int, not four, per link


def _listing(directory: str, known: tuple | None, now: float, errors: list[int]) -> tuple | None:
    """(stat key, names) of a directory, ``known`` itself while its stat key is unchanged; None when it cannot be
    read."""
    key = _stat_key(directory, now, errors)
    if key is False:
        return None
    if known is not None and key is not None and known[0] == key:
        return known
    names = _list(directory, errors)
    return None if names is None else (key, tuple(names))


def _read_link(path: str, errors: list[int]) -> bytes | None:
    try:
        with open(path, "rb") as f:
            text = f.read().decode("ascii")
    except (FileNotFoundError, NotADirectoryError):
        return None  # a deleted revision leaves its directory without a link
    except (OSError, UnicodeDecodeError):
        errors[0] += 1
        return None
    k = manifests.key(text)
    if k is None:
        errors[0] += 1  # not a digest: Distribution's collector stops on it
    return k


def _list(directory: str | Path, errors: list[int]) -> list[str] | None:
    try:
        return os.listdir(directory)
    except (FileNotFoundError, NotADirectoryError):
        return None
    except OSError:
        errors[0] += 1
        return None


@dataclass(frozen=True, slots=True)
class _Prefix:
    key: tuple | None  # (inode, mtime_ns, ctime_ns) when listed; None: look again
    dir: int  # its blob rows' dir
    errors: int = 0  # names that are not digests
    pending: tuple[str, ...] = ()  # digest directories without data yet (a push in flight)
    watched: bool = False


class BlobSizes:
    """(key, size) of every blob ``data`` file, as rows of the ``blob`` table; ``refresh`` puts the blobs that
    came and went in ``change``. Only new digests are stat-ed: inotify names them (as for exporter.scan), else a
    prefix whose stat changed is listed, names only, and compared with its rows."""

    def __init__(self, v2: Path, db: sqlite3.Connection | None = None, names: str | None = None):
        self.v2 = Path(v2)
        self._db = _connect(None, self.v2)[0] if db is None else db
        self.errors = 0
        self.blobs = self.bytes = 0
        self._prefixes: dict[str, _Prefix] = {}
        self._dirs = 0
        try:  # the new names' files in ``names`` (None: a temporary directory)
            self._journal: inotify.Journal | None = inotify.Journal(names or None)
        except OSError:
            self._journal = None  # out of inotify instances: listing changed prefixes still works

    def close(self) -> None:
        if self._journal:
            self._journal.close()
            self._journal = None
        self._db.close()

    def refresh(self, now: float | None = None) -> tuple[int, int]:
        """(blobs added, blobs removed) since the last refresh; ``changes`` lists them."""
        now = time.time() if now is None else now
        db = self._db
        db.execute("DELETE FROM change")  # the estimator empties it after a pass: cheap here
        batch = self._journal.take() if self._journal is not None else None
        self.errors, errors = 0, [0]
        seen: dict[str, _Prefix] = {}
        for alg in _list(self.v2 / "blobs", errors) or ():
            for prefix in _list(self.v2 / "blobs" / alg, errors) or ():
                path = f"{self.v2}/blobs/{alg}/{prefix}"
                created = None if batch is None or batch.relist(path) else batch.created(path)
                got = self._prefix(path, alg, self._prefixes.get(path), now, created)
                if got is not None:
                    seen[path] = got
        for path, gone in self._prefixes.items():
            if path not in seen:
                db.execute("INSERT INTO change SELECT key, size, dir, 0 FROM blob WHERE dir = ?", (gone.dir,))
                db.execute("DELETE FROM blob WHERE dir = ?", (gone.dir,))
        db.execute("INSERT OR IGNORE INTO blob SELECT key, size, dir FROM change WHERE added")
        self._prefixes = seen
        self.errors += errors[0] + sum(p.errors for p in seen.values())
        counts = {True: 0, False: 0}
        for added, blobs, size in db.execute("SELECT added, count(*), sum(size) FROM change GROUP BY added"):
            counts[bool(added)] = blobs
            self.blobs += blobs if added else -blobs
            self.bytes += size if added else -size
        return counts[True], counts[False]

    def changes(self) -> Iterator[tuple[int, int, bool]]:
        """(key, size, added) of the blobs the last refresh found added or removed."""
        for k, size, added in self._db.execute("SELECT key, size, added FROM change"):
            yield k + _HALF, size, bool(added)

    def size(self, k: int) -> int | None:
        """The size of the blob with key ``k``, None when the store has none."""
        return self.size_of(k - _HALF)

    def size_of(self, stored: int) -> int | None:
        """As ``size``, for a key as stored (minus 2^63)."""
        row = self._db.execute("SELECT size FROM blob WHERE key = ?", (stored,)).fetchone()
        return None if row is None else row[0]

    def __iter__(self) -> Iterator[tuple[int, int]]:
        for k, size in self._db.execute("SELECT key, size FROM blob"):
            yield k + _HALF, size

    def _watch(self, path: str) -> bool:
        # out of watches (or none): this prefix is listed when it changes
        return self._journal is not None and self._journal.watch(path)

    def _prefix(self, path: str, alg: str, known: _Prefix | None, now: float,
                created: dict[str, bool] | None) -> _Prefix | None:
        """``created``: the names inotify heard created here, None when they do not say all (a listing)."""
        try:
            st = os.stat(path, follow_symlinks=False)
            if not stat.S_ISDIR(st.st_mode):
                return None
            key = (st.st_ino, st.st_mtime_ns, st.st_ctime_ns)
            if known is not None and known.key == key and not known.pending:
                return known
            racy = now - st.st_mtime_ns / 1e9 < RACY_SECONDS or now - st.st_ctime_ns / 1e9 < RACY_SECONDS
            if known is None:
                watched = self._watch(path)  # before listing, so nothing added meanwhile is missed
                self._dirs += 1
                known = _Prefix(None, self._dirs, watched=watched)
                errors, pending = self._first(path, alg, known.dir)
            elif known.watched and created is not None:
                names = dict.fromkeys(known.pending, False)  # inotify named what was added: no listing
                names.update(created)
                errors, pending = self._count(path, alg, known.dir, names, None)
            else:
                watched = self._watch(path)
                known = _Prefix(None, known.dir, watched=watched)
                errors, pending = self._count(path, alg, known.dir, self._unlisted(path, known.dir), set())
        except FileNotFoundError:
            return None
        except OSError:
            self.errors += 1
            return None
        # known.errors: names counted before, when only inotify's new names were looked at (0 after a listing)
        return _Prefix(None if racy or pending else key, known.dir, errors + known.errors, tuple(pending),
                       known.watched)

    def _first(self, path: str, alg: str, directory: int) -> tuple[int, list[str]]:
        """``_count`` over a prefix listed for the first time, CHUNK entries at a time: a prefix's whole
        listing (40,000 entries at 10M blobs) would be 15 MiB of heap at once."""
        errors, pending = 0, []
        try:
            with os.scandir(path) as listing:  # d_type: no stat per entry, symlinks not followed
                dirs = ((d.inode(), d.name) for d in listing if d.is_dir(follow_symlinks=False))
                while chunk := [d for _, d in zip(range(CHUNK), dirs)]:
                    chunk.sort()  # inode order, as du: sequential on a cold cache
                    e, p = self._count(path, alg, directory, {name: True for _, name in chunk}, set())
                    errors, pending = errors + e, pending + p
        except OSError:
            self._db.execute("DELETE FROM change WHERE dir = ?", (directory,))  # the chunks already counted
            raise
        return errors, pending

    def _count(self, path: str, alg: str, directory: int, names: dict[str, bool],
               have: set[int] | None) -> tuple[int, list[str]]:
        """Put the blobs among ``names`` (name: known to be a directory) that are neither in ``have`` nor (when
        it is None) in the blob rows into ``change``; (names that are not digests, digest directories without
        data yet)."""
        db = self._db
        errors, pending, new = 0, [], []
        sha256 = alg == "sha256"
        for name, is_dir in names.items():
            if (_SHA256_HEX.fullmatch(name) is None) if sha256 else (manifests.key_of(alg, name) is None):
                errors += 1  # Distribution's collector stops on a blob path that is not a digest
                continue
            k = int(name[:2 * KEY], 16) - _HALF
            if (k in have if have is not None else
                    db.execute("SELECT 1 FROM blob WHERE key = ?", (k,)).fetchone() is not None):
                continue
            if not (is_dir or is_real_dir(path, name)):
                continue
            n = self._size(f"{path}/{name}/data")
            if n is None:
                pending.append(name)  # a digest directory without data yet: look again next time
                continue
            new.append((k, n, directory))
        db.executemany("INSERT INTO change VALUES (?, ?, ?, 1)", new)
        return errors, pending

    def _unlisted(self, path: str, directory: int) -> dict[str, bool]:
        """The names of ``path`` without a row of ``directory``; its rows no longer listed go (to ``change``).
        Streamed against the rows' keys as sorted numbers: a listing and sets of keys would be 10 MiB for a
        prefix of 40,000 digests (10M blobs)."""
        db = self._db
        known = array("q", (k for (k,) in db.execute("SELECT key FROM blob WHERE dir = ? ORDER BY key",
                                                     (directory,))))
        listed, names = bytearray(len(known)), {}
        with os.scandir(path) as listing:
            for entry in listing:
                k = _name_key(entry.name)
                at = len(known) if k is None else bisect_left(known, k)
                if at < len(known) and known[at] == k:
                    listed[at] = 1
                else:
                    names[entry.name] = entry.is_dir(follow_symlinks=False)  # d_type: no lstat of each new name
        at = listed.find(0)
        while at >= 0:
            db.execute("INSERT INTO change SELECT key, size, dir, 0 FROM blob WHERE key = ?", (known[at],))
            db.execute("DELETE FROM blob WHERE key = ?", (known[at],))
            at = listed.find(0, at + 1)
        return names

    def _size(self, data: str) -> int | None:
        try:
            st = os.stat(data, follow_symlinks=False)
        except FileNotFoundError:
            return None  # a push in flight, or a directory emptied by garbage collection
        except OSError:
            self.errors += 1
            return None
        return st.st_size if stat.S_ISREG(st.st_mode) else None


_SHA256_HEX = re.compile(r"[0-9a-f]{64}")


def _name_key(name: str) -> int | None:
    """The stored key of a digest directory's name, None when it has no leading hex."""
    try:
        return int(name[:2 * KEY], 16) - _HALF if len(name) >= 2 * KEY else None
    except ValueError:
        return None
