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

Manifests are content-addressed: each is parsed once and kept reduced to its
references (exporter.manifests); a pass reads only manifests not seen before
and forgets those gone. A manifest Distribution cannot read, or a link that is
not a digest, is counted in ``errors``: Distribution's collector stops on it
and frees nothing, and the estimate is a lower bound of what it frees once
that manifest is deleted (every digest its bytes still name counts as used).

Blob sizes come from the ``data`` files: ``BlobSizes`` keeps them per prefix
directory and on a later pass stats only digests it has not seen.
"""

from __future__ import annotations

import os
import re
import time
from array import array
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator

from . import manifests
from .manifests import Manifest, ManifestError
from .scan import RACY_SECONDS

MODES = ("unreferenced", "untagged")
OTHER = "(other)"
DEFAULT_TOP = 20
# reference.WithName: Distribution's collector stops on a repository name it cannot parse
_NAME = re.compile(r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*")
_KEPT_BY_ALL, _KEPT_UNLESS_28, _KEPT_IF_UNREFERENCED = 2, 1, 0  # how far a mark reaches, by mode


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


@dataclass
class Repository:
    name: str
    revisions: list[bytes]  # manifest keys linked in _manifests/revisions
    tagged: set[bytes]  # keys named by a tag's current link


class Estimator:
    """Estimates one store, again and again; keeps parsed manifests between passes. One pass at a time."""

    def __init__(self, v2: Path, top: int = DEFAULT_TOP):
        self.v2 = Path(v2)
        self.top = top
        self._manifests: dict[bytes, Manifest] = {}

    def estimate(self, blobs: Iterable[tuple[bytes, int]] | None = None) -> Estimate:
        """``blobs``: every (key, size) of the store's blobs; walked here when None."""
        errors = [0]
        repos = read_repositories(self.v2 / "repositories", errors)
        parsed = self._load(repos, errors)
        marks = _Marks()
        for index, repo in enumerate(repos):
            marks.repository(index, repo, self._manifests)
        if blobs is None:
            sizes = BlobSizes(self.v2)
            sizes.refresh()
            blobs, errors[0] = sizes, errors[0] + sizes.errors
        swept = marks.sweep(blobs)
        return Estimate(**swept, repositories=marks.owners(repos, self.top), manifests=len(self._manifests),
                        parsed=parsed, errors=errors[0] + sum(m.damaged for m in self._manifests.values()))

    def _load(self, repos: list[Repository], errors: list[int]) -> int:
        """Parse manifests not seen before, forget those gone; the number parsed."""
        wanted = {k for repo in repos for k in repo.revisions}
        known, parsed = self._manifests, 0
        for k in wanted.difference(known):
            try:
                content = blob_path(self.v2, k).read_bytes()
            except FileNotFoundError:
                continue  # a link to a missing blob: Distribution skips it
            except OSError:
                errors[0] += 1
                continue
            parsed += 1
            try:
                known[k] = manifests.parse(content)
            except ManifestError:
                known[k] = manifests.salvage(content)
        for gone in set(known).difference(wanted):
            del known[gone]
        return parsed


class _Marks:
    """The mark phase for all modes at once: how far each key's mark reaches, and who references it."""

    def __init__(self):
        self.level: dict[bytes, int] = {}
        self.owner: dict[bytes, int] = {}  # repository index, or -1 when several reference the key
        self.per_repo: list[set[bytes]] = []
        self.size: dict[bytes, int] = {}

    def _mark(self, k: bytes, level: int) -> None:
        if self.level.get(k, -1) < level:
            self.level[k] = level

    def repository(self, index: int, repo: Repository, known: dict[bytes, Manifest]) -> None:
        present = [k for k in repo.revisions if k in known]
        used: set[bytes] = set()
        for k in present:
            used.add(k)
            used.update(known[k].references())
        for k in used:
            self._mark(k, _KEPT_IF_UNREFERENCED)
            self.owner[k] = index if self.owner.get(k, index) == index else -1
        self.per_repo.append(used)
        tagged = [k for k in present if k in repo.tagged]
        for k in tagged:  # what 2.8 marks: tagged manifests and their direct references
            self._mark(k, _KEPT_BY_ALL)
            for ref in known[k].references():
                self._mark(ref, _KEPT_BY_ALL)
        # children of kept lists and indexes that are manifests of this repository, and theirs, recursively
        revisions, seen, stack = set(present), set(tagged), list(tagged)
        while stack:
            for ref in known[stack.pop()].references():
                if ref in revisions and ref not in seen:
                    seen.add(ref)
                    stack.append(ref)
                    for child_ref in known[ref].references():
                        self._mark(child_ref, _KEPT_UNLESS_28)

    def sweep(self, blobs: Iterable[tuple[bytes, int]]) -> dict:
        """Reclaimable blobs and bytes per mode, and the store's totals, over every (key, size) of the store."""
        unref = untagged = v28 = total = 0
        unref_bytes = untagged_bytes = v28_bytes = total_bytes = 0
        level, size = self.level, self.size
        for k, n in blobs:
            total += 1
            total_bytes += n
            mark = level.get(k, -1)
            if mark >= 0:
                size[k] = n
            if mark < _KEPT_BY_ALL:
                v28 += 1
                v28_bytes += n
                if mark < _KEPT_UNLESS_28:
                    untagged += 1
                    untagged_bytes += n
                    if mark < _KEPT_IF_UNREFERENCED:
                        unref += 1
                        unref_bytes += n
        return {"unreferenced": Reclaim(unref, unref_bytes), "untagged": Reclaim(untagged, untagged_bytes),
                "untagged_distribution28": Reclaim(v28, v28_bytes), "blobs": total, "blob_bytes": total_bytes}

    def owners(self, repos: list[Repository], top: int) -> tuple[Owner, ...]:
        everyone = []
        for index, used in enumerate(self.per_repo):
            total = unique = 0
            for k in used:
                n = self.size.get(k, 0)
                total += n
                unique += n if self.owner[k] == index else 0
            everyone.append(Owner(repos[index].name, total, unique))
        everyone.sort(key=lambda o: (-o.bytes, o.repository))
        rest = everyone[top:]
        if not rest:
            return tuple(everyone)
        return (*everyone[:top], Owner(OTHER, sum(o.bytes for o in rest), sum(o.unique_bytes for o in rest)))


# --- reading the store ---------------------------------------------------------------------------------


def blob_path(v2: Path, k: bytes) -> Path:
    alg, _, hexa = manifests.name(k).partition(":")
    return v2 / "blobs" / alg / hexa[:2] / hexa / "data"


def read_repositories(root: Path, errors: list[int]) -> list[Repository]:
    """Every repository as Distribution's collector enumerates them, with its manifests and tagged manifests."""
    top = str(root)
    found, stack = [], [top]
    while stack:  # plain strings, not Path: a pass reads every link of every repository
        directory = stack.pop()
        names = _list(directory, errors)
        if names is None:
            continue
        if "_layers" in names and directory != top:
            name = directory[len(top) + 1:]
            if _NAME.fullmatch(name) is None or len(name) > 255:
                errors[0] += 1  # Distribution stops here: "failed to parse repo name"
            else:
                found.append(_repository(name, f"{directory}/_manifests", errors))
        stack.extend(f"{directory}/{n}" for n in sorted(names, reverse=True)
                     if not n.startswith("_") and _is_dir(f"{directory}/{n}"))
    return found


def _repository(name: str, manifests_dir: str, errors: list[int]) -> Repository:
    revisions = []
    for alg in _list(f"{manifests_dir}/revisions", errors) or ():
        for hexa in _list(f"{manifests_dir}/revisions/{alg}", errors) or ():
            k = _read_link(f"{manifests_dir}/revisions/{alg}/{hexa}/link", errors)
            if k is not None:
                revisions.append(k)
    tagged = set()
    for tag in _list(f"{manifests_dir}/tags", errors) or ():
        k = _read_link(f"{manifests_dir}/tags/{tag}/current/link", errors)
        if k is not None:
            tagged.add(k)
    return Repository(name, revisions, tagged)


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


def _is_dir(path: str) -> bool:
    try:
        return (os.lstat(path).st_mode & 0o170000) == 0o040000  # symlinks are not followed
    except OSError:
        return False


@dataclass(frozen=True)
class _Prefix:
    key: tuple[int, int, int] | None  # (inode, mtime_ns, ctime_ns) when listed; None: list again
    keys: bytes  # sha256 keys, packed, in the order of sizes
    sizes: array
    other: tuple[tuple[bytes, int], ...] = ()  # (key, size) of other algorithms


class BlobSizes:
    """(key, size) of every blob ``data`` file; ``refresh`` stats only digests not seen before in changed
    prefix directories (a 2-hex prefix directory's mtime changes when a digest directory comes or goes)."""

    def __init__(self, v2: Path):
        self.v2 = Path(v2)
        self.errors = 0
        self._prefixes: dict[str, _Prefix] = {}

    def refresh(self, now: float | None = None) -> None:
        now = time.time() if now is None else now
        self.errors = 0
        seen: dict[str, _Prefix] = {}
        errors = [0]
        for alg in _list(self.v2 / "blobs", errors) or ():
            for prefix in _list(self.v2 / "blobs" / alg, errors) or ():
                path = f"{self.v2}/blobs/{alg}/{prefix}"
                got = self._prefix(path, alg, self._prefixes.get(path), now)
                if got is not None:
                    seen[path] = got
        self.errors += errors[0]
        self._prefixes = seen

    def __iter__(self) -> Iterator[tuple[bytes, int]]:
        width = manifests.SHA256_BYTES
        for prefix in self._prefixes.values():
            keys = prefix.keys
            for i, n in enumerate(prefix.sizes):
                yield keys[i * width:(i + 1) * width], n
            yield from prefix.other

    def _prefix(self, path: str, alg: str, known: _Prefix | None, now: float) -> _Prefix | None:
        try:
            st = os.stat(path, follow_symlinks=False)
            if (st.st_mode & 0o170000) != 0o040000:
                return None
            key = (st.st_ino, st.st_mtime_ns, st.st_ctime_ns)
            if known is not None and known.key == key:
                return known
            names = os.listdir(path)
        except FileNotFoundError:
            return None
        except OSError:
            self.errors += 1
            return None
        racy = now - st.st_mtime_ns / 1e9 < RACY_SECONDS or now - st.st_ctime_ns / 1e9 < RACY_SECONDS
        old = {}
        if known is not None:  # blobs never change: keep what is still listed, stat the rest
            width = manifests.SHA256_BYTES
            old = {known.keys[i * width:(i + 1) * width]: n for i, n in enumerate(known.sizes)}
            old.update(known.other)
        keys, sizes, other, pending = [], array("Q"), [], False
        for hexa in names:
            k = manifests.key_of(alg, hexa)
            if k is None:
                self.errors += 1  # Distribution's collector stops on a blob path that is not a digest
                continue
            n = old.get(k)
            if n is None:
                n = self._size(f"{path}/{hexa}/data")
                if n is None:
                    pending = True
                    continue
            if len(k) == manifests.SHA256_BYTES:
                keys.append(k)
                sizes.append(n)
            else:
                other.append((k, n))
        # a digest directory without data yet (a push in flight): list again next time
        return _Prefix(None if racy or pending else key, b"".join(keys), sizes, tuple(other))

    def _size(self, data: str) -> int | None:
        try:
            st = os.stat(data, follow_symlinks=False)
        except FileNotFoundError:
            return None  # a push in flight, or a directory emptied by garbage collection
        except OSError:
            self.errors += 1
            return None
        return st.st_size if (st.st_mode & 0o170000) == 0o100000 else None
