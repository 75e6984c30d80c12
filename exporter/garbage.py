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
pass costs what changed since the last one.

- Keys are the leading 8 bytes of a digest, as an integer (``exporter.scan``'s
  KEY); manifests are parsed once and kept as an ``array('Q')`` of the keys
  they reference.
- Each repository's contribution (what it marks at each level) is kept as
  sorted ``array('Q')``; a global count per key and level says how many
  repositories mark it, and which one when only one does (the XOR of their
  ids). A pass stats every revision directory and current tag link, reads a
  link only when its stat changed, and looks again only at repositories where
  some link changed: one that only gained links adds what the new ones mark;
  any other is recomputed and the counts move by the difference.
- Blob sizes (``BlobSizes``) are kept per 2-hex prefix directory as sorted
  ``array('Q')`` keys and sizes (16 bytes a blob); inotify names the digest
  directories created since the last pass, a changed prefix without it is
  listed, and only new digests are stat-ed. The blobs added and removed are
  handed to the marks.
- The reclaimable totals are the store's total minus the bytes of present
  blobs marked at each level, kept up to date on every count change and every
  blob added or removed; each repository's bytes and unique bytes likewise.

A stat key (inode, mtime, ctime) younger than ``RACY_SECONDS`` is not trusted:
that entry is read again next pass.
"""

from __future__ import annotations

import os
import re
import stat
import time
from array import array
from bisect import bisect_left
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator

from . import inotify, manifests
from .manifests import ManifestError
from .scan import KEY, RACY_SECONDS, digest_key, is_real_dir

MODES = ("unreferenced", "untagged")
OTHER = "(other)"
DEFAULT_TOP = 20
# reference.WithName: Distribution's collector stops on a repository name it cannot parse
_NAME = re.compile(r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*")
_KEPT_BY_ALL, _KEPT_UNLESS_28, _KEPT_IF_UNREFERENCED = 2, 1, 0  # how far a mark reaches, by mode
_BITS, _COUNT = 21, (1 << 21) - 1  # per key: how many repositories mark it at each level, 21 bits each
_LOW = (1 << 64) - 1
_ERRORS_AT = 130  # bit of a link entry where its error count starts
_ALG = {64: "sha256", 96: "sha384", 128: "sha512"}  # by the length of the hex


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


_EMPTY = array("Q")


@dataclass(eq=False)
class _Repo:
    id: int
    name: str
    listings: dict = field(default_factory=dict)  # directory -> (stat key, names)
    revisions: dict = field(default_factory=dict)  # <hex> -> _link_entry
    tags: dict = field(default_factory=dict)  # tag -> _link_entry
    fulls: dict = field(default_factory=dict)  # key -> full key, of the links read this pass
    tagged: array = field(default_factory=lambda: _EMPTY)  # present manifests a tag names, sorted
    present: array = field(default_factory=lambda: _EMPTY)  # manifests of its revisions that could be read, sorted
    levels: tuple = (_EMPTY, _EMPTY, _EMPTY)  # never changed in place; keys it marks at least at level 0, 1, 2; sorted
    bytes: int = 0
    unique: int = 0
    errors: int = 0
    unresolved: bool = False  # a revision's manifest was missing or unreadable: try again next pass


class Estimator:
    """Estimates one store, again and again, incrementally. One pass at a time; ``close`` frees the inotify
    instance."""

    def __init__(self, v2: Path, top: int = DEFAULT_TOP, clock=time.time):
        self.v2 = Path(v2)
        self.top = top
        self.clock = clock
        self.sizes = BlobSizes(self.v2)
        self._marks = _Marks(self.sizes)
        self._manifests: dict[int, array] = {}  # key -> the keys it references, sorted
        self._damaged: set[int] = set()  # manifests Distribution cannot read
        self._prune = False  # a repository stopped linking a manifest: forget those none links
        self._repos: dict[str, _Repo] = {}
        self._tree: dict[str, tuple] = {}  # directory under repositories/ -> (stat key, subdirectories, repository?)
        self._ids = 0

    def close(self) -> None:
        self.sizes.close()

    def estimate(self) -> Estimate:
        now = self.clock()
        added, removed = self.sizes.refresh(now)
        for keys, sizes in removed:
            for k, n in zip(keys, sizes):
                self._marks.blob(k, -n)
                if k in self._manifests:  # a manifest's blob went: the repositories linking it skip it now
                    del self._manifests[k]
                    self._damaged.discard(k)
                    for repo in self._repos.values():
                        repo.unresolved |= _contains(repo.present, k)
        if self._marks.counts:  # nothing is marked before the first pass has read the repositories
            for keys, sizes in added:
                for k, n in zip(keys, sizes):
                    self._marks.blob(k, n)
        errors = [0]
        names = self._walk(now, errors)
        parsed = 0
        for gone in set(self._repos).difference(names):
            repo = self._repos.pop(gone)
            self._apply(repo, set(), (set(), set(), set()))
            del self._marks.repos[repo.id]
        for name in names:
            repo = self._repos.get(name)
            if repo is None:
                self._ids += 1  # ids are never reused: the XOR in the counts names repositories by them
                repo = self._repos[name] = self._marks.repos[self._ids] = _Repo(self._ids, name)
            parsed += self._refresh(repo, now)
            errors[0] += repo.errors
        self._marks.counts.merge()
        if self._prune:
            self._forget()
        m = self._marks
        total, total_bytes = self.sizes.blobs, self.sizes.bytes
        reclaim = [Reclaim(total - m.kept[level], total_bytes - m.kept_bytes[level]) for level in range(3)]
        damaged = len(self._damaged)
        return Estimate(reclaim[_KEPT_IF_UNREFERENCED], reclaim[_KEPT_UNLESS_28], reclaim[_KEPT_BY_ALL],
                        self._owners(), total, total_bytes, len(self._manifests), parsed,
                        errors[0] + self.sizes.errors + damaged)

    def _owners(self) -> tuple[Owner, ...]:
        everyone = sorted((Owner(r.name, r.bytes, r.unique) for r in self._repos.values()),
                          key=lambda o: (-o.bytes, o.repository))
        rest = everyone[self.top:]
        if not rest:
            return tuple(everyone)
        return (*everyone[:self.top], Owner(OTHER, sum(o.bytes for o in rest), sum(o.unique_bytes for o in rest)))

    # --- repositories --------------------------------------------------------------------------------

    def _walk(self, now: float, errors: list[int]) -> list[str]:
        """Repository names as Distribution's collector enumerates them; a directory is listed again only when
        its stat changed."""
        top = f"{self.v2}/repositories"
        found, stack, tree = [], [top], {}
        while stack:
            directory = stack.pop()
            entry = _listing(directory, self._tree.get(directory), now, errors, _repository_entry)
            if entry is None:
                continue
            tree[directory] = entry
            _, subdirs, is_repo = entry
            if is_repo and directory != top:
                name = directory[len(top) + 1:]
                if _NAME.fullmatch(name) is None or len(name) > 255:
                    errors[0] += 1  # Distribution stops here: "failed to parse repo name"
                else:
                    found.append(name)
            stack.extend(f"{directory}/{n}" for n in reversed(subdirs))
        self._tree = tree
        return found

    def _refresh(self, repo: _Repo, now: float) -> int:
        """Look at a repository's links again; recompute what it marks when one changed. Manifests parsed."""
        mdir = f"{self.v2}/repositories/{repo.name}/_manifests"
        errors = [0]
        revisions, only_added = self._links(repo, "revisions", f"{mdir}/revisions", 2, now, errors)
        tags, tags_only_added = self._links(repo, "tags", f"{mdir}/tags", 1, now, errors)
        repo.errors = errors[0]
        if not (revisions or tags or repo.unresolved):
            return 0
        if only_added and tags_only_added and not repo.unresolved and repo.present:
            return self._add(repo, mdir)  # pushes: what it marks only grows
        return self._recompute(repo, mdir)

    def _links(self, repo: _Repo, kind: str, root: str, depth: int, now: float,
               errors: list[int]) -> tuple[bool, bool]:
        """Refresh ``repo.revisions`` (alg/hex/link) or ``repo.tags`` (tag/current/link): (some link changed, and
        all changes are new links)."""
        known: dict = getattr(repo, kind)
        links, listings = {}, {}
        level = [(root, "")]
        for _ in range(depth):  # the directories holding links, listed again only when their stat changed
            below = []
            for directory, _ in level:
                entry = _listing(directory, repo.listings.get(directory), now, errors)
                if entry is not None:
                    listings[directory] = entry
                    below += [(f"{directory}/{n}", n) for n in entry[1]]  # names shared with the listing
            level = below
        changed = modified = False
        link = "/link" if kind == "revisions" else "/current/link"
        for directory, name in level:
            path = directory if kind == "revisions" else directory + link  # a revision's directory changes
            key = _stat_key(path, now, errors)  # when its link is deleted
            if key is False:
                continue  # a deleted revision leaves its directory without a link; a tag without current
            old = known.get(name)
            if old is not None and key is not None and old & 1 and (old >> 1) & _LOW == key & _LOW:
                links[name] = old
                errors[0] += old >> _ERRORS_AT
                continue
            link_errors = [0]
            full = _read_link(directory + link, link_errors)
            k = None if full is None else short(full)
            if full is not None:
                repo.fulls[k] = full
            links[name] = _link_entry(key, k, link_errors[0])
            errors[0] += link_errors[0]
            changed |= old is None or _link_key(old) != k
            modified |= old is not None and _link_key(old) != k
        modified |= any(p not in links for p in known)
        changed |= modified
        repo.listings.update(listings)
        for stale in [d for d in repo.listings if d.startswith(root) and d not in listings]:
            del repo.listings[stale]
        setattr(repo, kind, links)
        return changed, not modified

    def _present(self, repo: _Repo, mdir: str, skip: set[int]) -> tuple[set[int], int]:
        """The repository's manifests that can be read, but those in ``skip``; how many were parsed."""
        parsed, repo.unresolved = 0, False
        known = self._manifests
        present = set()
        for name, entry in repo.revisions.items():
            k = _link_key(entry)
            if k is None or k in skip:
                continue
            if k not in known:
                full = repo.fulls.get(k) or _read_link(f"{mdir}/revisions/{_ALG.get(len(name))}/{name}/link", [0])
                got = None if full is None else self._read_manifest(full, repo)
                if got is None:
                    continue
                parsed += 1
                known[k] = got
            present.add(k)
        repo.fulls = {}
        return present, parsed

    def _children(self, tagged: set[int], present: set[int]) -> set[int]:
        """What the children of tagged lists and indexes that are manifests of this repository reference, and
        their children's, recursively."""
        known = self._manifests
        children, seen = set(), set(tagged)
        stack = [k for k in tagged if not present.isdisjoint(known[k])]  # image manifests have no children
        while stack:
            for ref in known[stack.pop()]:
                if ref in present and ref not in seen:
                    seen.add(ref)
                    stack.append(ref)
                    children.update(known[ref])
        return children

    def _add(self, repo: _Repo, mdir: str) -> int:
        """Only new links since the last pass: add what they mark, without recomputing the rest."""
        known = self._manifests
        before = set(repo.present)
        new, parsed = self._present(repo, mdir, before)
        present = before | new
        tagged = {k for k in map(_link_key, repo.tags.values()) if k is not None} & present
        added = [set(new), set(), tagged.difference(repo.tagged)]
        for k in new:
            added[0].update(known[k])
        for k in list(added[2]):
            added[2].update(known[k])
        added[1] = self._children(tagged, present) | added[2]
        changes: dict[int, list[int]] = {}
        for level, keys in enumerate(added):
            old = repo.levels[level]
            for k in keys:
                if not _contains(old, k):
                    changes.setdefault(k, [0, 0, 0])[level] = 1
        for k, (d0, d1, d2) in changes.items():
            self._marks.change(k, repo, d0, d1, d2)
        repo.levels = tuple(_union(old, sorted(k for k, d in changes.items() if d[level]))
                            for level, old in enumerate(repo.levels))
        repo.present = _union(repo.present, sorted(new))
        repo.tagged = array("Q", sorted(tagged))
        return parsed

    def _recompute(self, repo: _Repo, mdir: str) -> int:
        """What the repository marks at each level, from its links; the counts adjusted by the difference."""
        known = self._manifests
        present, parsed = self._present(repo, mdir, set())
        tagged = {k for k in map(_link_key, repo.tags.values()) if k is not None} & present
        repo.tagged = array("Q", sorted(tagged))
        used = set(present)
        for k in present:
            used.update(known[k])
        kept = set(tagged)
        for k in tagged:  # what 2.8 marks: tagged manifests and their direct references
            kept.update(known[k])
        children = self._children(tagged, present)
        self._apply(repo, present, (used, children | kept, kept))
        return parsed

    def _read_manifest(self, full: bytes, repo: _Repo) -> array | None:
        try:
            content = blob_path(self.v2, full).read_bytes()
        except FileNotFoundError:
            repo.unresolved = True  # a link to a missing blob: Distribution skips it
            return None
        except OSError:
            repo.unresolved = True
            repo.errors += 1
            return None
        try:
            found = manifests.parse(content)
        except ManifestError:
            found = manifests.salvage(content)
            self._damaged.add(short(full))
        return array("Q", sorted({short(k) for k in found.references()}))

    def _apply(self, repo: _Repo, present: set[int], levels: tuple[set, set, set]) -> None:
        """Replace what ``repo`` marks by ``levels``, adjusting the counts of the keys that differ."""
        self._prune |= not present.issuperset(repo.present)
        repo.present = array("Q", sorted(present))
        old = [set(a) for a in repo.levels]
        if old == list(levels):
            return
        for k in (old[0] ^ levels[0]) | (old[1] ^ levels[1]) | (old[2] ^ levels[2]):
            self._marks.change(k, repo, *((k in n) - (k in o) for o, n in zip(old, levels)))
        repo.levels = tuple(array("Q", sorted(level)) for level in levels)

    def _forget(self) -> None:
        """Drop the manifests no repository links any more."""
        wanted = set().union(*(r.present for r in self._repos.values()))
        for k in set(self._manifests).difference(wanted):
            del self._manifests[k]
        self._damaged &= wanted
        self._prune = False


def _link_entry(stat: int | None, k: int | None, errors: int) -> int:
    """One int per link: bit 0 the stat is trusted, then its hash, the link's key + 1 (0: none), its errors."""
    return (stat is not None) | (0 if stat is None else stat & _LOW) << 1 | \
        (0 if k is None else k + 1) << 65 | errors << _ERRORS_AT


def _link_key(entry: int) -> int | None:
    k = (entry >> 65) & ((1 << 65) - 1)
    return k - 1 if k else None


class _Marks:
    """Per key: how many repositories mark it at each level, and the XOR of their ids (the owner when one); the
    store's blobs and bytes kept at each level; each repository's bytes and unique bytes."""

    def __init__(self, sizes: BlobSizes):
        self.sizes = sizes
        self.counts = _Counts()
        self.kept = [0, 0, 0]  # present blobs marked at least at level 0, 1, 2
        self.kept_bytes = [0, 0, 0]
        self.repos: dict[int, _Repo] = {}

    def change(self, k: int, repo: _Repo, d0: int, d1: int, d2: int) -> None:
        old, xor = self.counts.get(k)
        c0 = old & _COUNT
        new = old + d0 + (d1 << _BITS) + (d2 << 2 * _BITS)
        new_xor = xor ^ repo.id if d0 else xor  # in or out of the XOR of the marking repositories
        self.counts.set(k, new, new_xor)
        size = self.sizes.size(k)
        if size is None:
            return  # not in the store: frees nothing, weighs nothing
        self._level(_level(old), _level(new), size)
        if d0 > 0:
            repo.bytes += size
            if c0 == 0:
                repo.unique += size
            elif c0 == 1:
                self.repos[xor].unique -= size
        elif d0 < 0:
            repo.bytes -= size
            if c0 == 1:
                repo.unique -= size
            elif c0 == 2:
                self.repos[new_xor].unique += size

    def blob(self, k: int, signed_size: int) -> None:
        """A blob came (size > 0) or went (-size) under key ``k``."""
        counts, xor = self.counts.get(k)
        one = 1 if signed_size >= 0 else -1
        level = _level(counts)
        for at in range(level + 1):
            self.kept[at] += one
            self.kept_bytes[at] += signed_size
        c0 = counts & _COUNT
        if c0 == 1:
            repo = self.repos[xor]
            repo.bytes += signed_size
            repo.unique += signed_size
        elif c0 > 1:  # rare: a blob several repositories use came back or went away
            for repo in self.repos.values():
                if _contains(repo.levels[0], k):
                    repo.bytes += signed_size

    def _level(self, before: int, after: int, size: int) -> None:
        for at in range(min(before, after) + 1, max(before, after) + 1):
            one = 1 if after > before else -1
            self.kept[at] += one
            self.kept_bytes[at] += one * size


class _Counts:
    """Per key, sorted and packed: the counts of each level in one array('Q') and the XOR of the marking
    repositories' ids in an array('L'), 20 bytes a key. Keys new in a pass wait in a dict until ``merge``; a key
    no longer marked stays as zero until there are many."""

    def __init__(self):
        self.keys, self.values, self.owners = array("Q"), array("Q"), array("L")
        self._new: dict[int, int] = {}  # key -> value | xor << 64

    def __bool__(self) -> bool:
        return bool(self.keys or self._new)

    def get(self, k: int) -> tuple[int, int]:
        got = self._new.get(k)
        if got is not None:
            return got & _LOW, got >> 64
        at = bisect_left(self.keys, k)
        if at < len(self.keys) and self.keys[at] == k:
            return self.values[at], self.owners[at]
        return 0, 0

    def set(self, k: int, value: int, xor: int) -> None:
        at = bisect_left(self.keys, k)
        if at < len(self.keys) and self.keys[at] == k:
            self.values[at], self.owners[at] = value, xor
        else:
            self._new[k] = value | xor << 64
            if len(self._new) > max(4096, len(self.keys) // 4):  # bounded, and O(1) merge work a key
                self.merge()

    def merge(self) -> None:
        """Fold the pass's new keys into the arrays; drop the zeros once they are an eighth of them."""
        new = sorted((k, v) for k, v in self._new.items() if v & _LOW)
        self._new = {}
        if new:
            keys, values, owners, start = array("Q"), array("Q"), array("L"), 0
            for k, packed in new:
                v, x = packed & _LOW, packed >> 64
                at = bisect_left(self.keys, k, start)
                keys += self.keys[start:at]
                values += self.values[start:at]
                owners += self.owners[start:at]
                keys.append(k)
                values.append(v)
                owners.append(x)
                start = at
            keys += self.keys[start:]
            values += self.values[start:]
            owners += self.owners[start:]
            self.keys, self.values, self.owners = keys, values, owners
        if self.values.count(0) * 8 > len(self.values):
            kept = [i for i, v in enumerate(self.values) if v]
            self.keys = array("Q", (self.keys[i] for i in kept))
            self.values = array("Q", (self.values[i] for i in kept))
            self.owners = array("L", (self.owners[i] for i in kept))


def _union(keys: array, new: list[int]) -> array:
    """The sorted ``keys`` with the sorted ``new`` ones (none of them in ``keys``) merged in."""
    if not new:
        return keys
    out, start = array("Q"), 0
    for k in new:
        at = bisect_left(keys, k, start)
        out += keys[start:at]
        out.append(k)
        start = at
    out += keys[start:]
    return out


def _contains(keys: array, k: int) -> bool:
    at = bisect_left(keys, k)
    return at < len(keys) and keys[at] == k


def _level(counts: int) -> int:
    if (counts >> 2 * _BITS) & _COUNT:
        return _KEPT_BY_ALL
    if (counts >> _BITS) & _COUNT:
        return _KEPT_UNLESS_28
    return _KEPT_IF_UNREFERENCED if counts & _COUNT else -1


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


def _listing(directory: str, known: tuple | None, now: float, errors: list[int],
             shape: Callable[[str, list[str]], tuple] = lambda _, names: (tuple(names),)) -> tuple | None:
    """(key, *shape(names)) of a directory, ``known`` itself while its stat key is unchanged; None
    when it cannot be read."""
    key = _stat_key(directory, now, errors)
    if key is False:
        return None
    if known is not None and key is not None and known[0] == key:
        return known
    names = _list(directory, errors)
    return None if names is None else (key, *shape(directory, names))


def _repository_entry(directory: str, names: list[str]) -> tuple[tuple[str, ...], bool]:
    """A directory of the repositories tree: its subdirectories to walk, and whether it is a repository."""
    return tuple(n for n in sorted(names) if not n.startswith("_") and is_real_dir(directory, n)), "_layers" in names


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


@dataclass(frozen=True)
class _Prefix:
    key: tuple | None  # (inode, mtime_ns, ctime_ns) when listed; None: look again
    keys: array  # array('Q') of KEY-byte keys, sorted: 8 bytes a blob
    sizes: array  # array('Q'), in the order of keys: 8 bytes a blob
    errors: int = 0  # names that are not digests
    pending: tuple[str, ...] = ()  # digest directories without data yet (a push in flight)
    watched: bool = False


Blobs = list[tuple[array, array]]  # (keys, sizes) chunks: no Python object per blob


class BlobSizes:
    """(key, size) of every blob ``data`` file, kept per 2-hex prefix directory; ``refresh`` says which blobs came
    and went. Only new digests are stat-ed: inotify names them (as for exporter.scan), else a prefix whose stat
    changed is listed, names only."""

    def __init__(self, v2: Path):
        self.v2 = Path(v2)
        self.errors = 0
        self.blobs = self.bytes = 0
        self._prefixes: dict[str, _Prefix] = {}
        self._sha256: list[_Prefix | None] = [None] * 256  # by leading byte, for size()
        try:
            self._watcher: inotify.Watcher | None = inotify.Watcher()
        except OSError:
            self._watcher = None  # out of inotify instances: listing changed prefixes still works

    def close(self) -> None:
        if self._watcher:
            self._watcher.close()
            self._watcher = None

    def refresh(self, now: float | None = None) -> tuple[Blobs, Blobs]:
        """(added, removed) since the last refresh."""
        now = time.time() if now is None else now
        created, dirty = self._drain()
        self.errors, errors = 0, [0]
        seen: dict[str, _Prefix] = {}
        added: Blobs = []
        removed: Blobs = []
        for alg in _list(self.v2 / "blobs", errors) or ():
            for prefix in _list(self.v2 / "blobs" / alg, errors) or ():
                path = f"{self.v2}/blobs/{alg}/{prefix}"
                got = self._prefix(path, alg, self._prefixes.get(path), now, created.get(path, {}),
                                   dirty is None or path in dirty, added, removed)
                if got is not None:
                    seen[path] = got
        removed += [(p.keys, p.sizes) for path, p in self._prefixes.items() if path not in seen]
        self._prefixes = seen
        self._sha256 = [seen.get(f"{self.v2}/blobs/sha256/{i:02x}") for i in range(256)]
        self.errors += errors[0] + sum(p.errors for p in seen.values())
        self.blobs += sum(len(k) for k, _ in added) - sum(len(k) for k, _ in removed)
        self.bytes += sum(sum(n) for _, n in added) - sum(sum(n) for _, n in removed)
        return added, removed

    def size(self, k: int) -> int | None:
        """The size of the blob with key ``k``, None when the store has none."""
        prefix = self._sha256[k >> 8 * KEY - 8]
        if prefix is not None:
            at = bisect_left(prefix.keys, k)
            if at < len(prefix.keys) and prefix.keys[at] == k:
                return prefix.sizes[at]
        if len(self._prefixes) > 256:  # other algorithms than sha256 (rare)
            for path, other in self._prefixes.items():
                if not path.startswith(f"{self.v2}/blobs/sha256/"):
                    at = bisect_left(other.keys, k)
                    if at < len(other.keys) and other.keys[at] == k:
                        return other.sizes[at]
        return None

    def __iter__(self) -> Iterator[tuple[int, int]]:
        for prefix in self._prefixes.values():
            yield from zip(prefix.keys, prefix.sizes)

    def _drain(self) -> tuple[dict[str, dict[str, bool]], set[str] | None]:
        """Names created per watched prefix, and the prefixes that need a listing (None: all)."""
        created: dict[str, dict[str, bool]] = {}
        dirty: set[str] = set()
        if self._watcher is None:
            return created, None
        try:
            events = self._watcher.read()
        except inotify.Overflow:
            return created, None
        for path, mask, name in events:
            if mask & (inotify.IN_CREATE | inotify.IN_MOVED_TO) and name:
                created.setdefault(path, {})[name] = bool(mask & inotify.IN_ISDIR)
            else:  # a removal, a move away, a chmod of the prefix itself
                dirty.add(path)
        return created, dirty

    def _watch(self, path: str) -> bool:
        # out of watches (or none): this prefix is listed when it changes
        return self._watcher is not None and self._watcher.try_watch(path)

    def _prefix(self, path: str, alg: str, known: _Prefix | None, now: float, created: dict[str, bool],
                dirty: bool, added: Blobs, removed: Blobs) -> _Prefix | None:
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
                with os.scandir(path) as listing:  # d_type: no stat per entry, symlinks not followed
                    names = {d.name: True for d in sorted(listing, key=os.DirEntry.inode)
                             if d.is_dir(follow_symlinks=False)}  # inode order, as du: sequential on a cold cache
                known = _Prefix(None, array("Q"), array("Q"), watched=watched)
            elif known.watched and not dirty:
                names = dict.fromkeys(known.pending, False)  # inotify named what was added: no listing
                names.update(created)
            else:
                watched = self._watch(path)
                listed = os.listdir(path)  # names only
                names = dict.fromkeys(listed, False)
                keys, sizes = _without(known.keys, known.sizes, {digest_key(n) for n in listed}, removed)
                known = _Prefix(None, keys, sizes, watched=watched)
        except FileNotFoundError:
            return None
        except OSError:
            self.errors += 1
            return None
        keys, sizes, errors, pending, new = known.keys, known.sizes, 0, [], []
        sha256 = alg == "sha256"
        for name, is_dir in names.items():
            if (_SHA256_HEX.fullmatch(name) is None) if sha256 else (manifests.key_of(alg, name) is None):
                errors += 1  # Distribution's collector stops on a blob path that is not a digest
                continue
            k = int(name[:2 * KEY], 16)
            at = bisect_left(keys, k)
            if (at < len(keys) and keys[at] == k) or not (is_dir or is_real_dir(path, name)):
                continue
            n = self._size(f"{path}/{name}/data")
            if n is None:
                pending.append(name)  # a digest directory without data yet: look again next time
                continue
            new.append((k, n))
        if new:
            new.sort()
            added.append((array("Q", (k for k, _ in new)), array("Q", (n for _, n in new))))
            keys, sizes = _merged(keys, sizes, added[-1])
        # known.errors: names counted before, when only inotify's new names were looked at (0 after a listing)
        return _Prefix(None if racy or pending else key, keys, sizes, errors + known.errors, tuple(pending),
                       known.watched)

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


def _without(keys: array, sizes: array, listed: set[bytes], removed: Blobs) -> tuple[array, array]:
    """``keys`` and ``sizes`` without the blobs no longer ``listed`` (their scan.digest_key), those appended to
    ``removed``."""
    gone = [i for i, k in enumerate(keys) if k.to_bytes(KEY, "big") not in listed]
    if not gone:
        return keys, sizes
    removed.append((array("Q", (keys[i] for i in gone)), array("Q", (sizes[i] for i in gone))))
    drop = set(gone)
    kept = [i for i in range(len(keys)) if i not in drop]
    return array("Q", (keys[i] for i in kept)), array("Q", (sizes[i] for i in kept))


def _merged(keys: array, sizes: array, new: tuple[array, array]) -> tuple[array, array]:
    """Two sorted (keys, sizes) runs as one; the new run is short after the first pass."""
    if not keys:
        return new
    out_keys, out_sizes, start = array("Q"), array("Q"), 0
    for k, n in zip(*new):
        at = bisect_left(keys, k, start)
        out_keys += keys[start:at]
        out_sizes += sizes[start:at]
        out_keys.append(k)
        out_sizes.append(n)
        start = at
    out_keys += keys[start:]
    out_sizes += sizes[start:]
    return out_keys, out_sizes
