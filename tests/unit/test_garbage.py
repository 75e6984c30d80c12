"""Reclaimable space and ownership on hand-built Distribution stores (the real registry: tests/integration)."""

from __future__ import annotations

import hashlib
import json
import os
import dataclasses
import random
import shutil
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from exporter import inotify, manifests
from exporter.garbage import OTHER, BlobSizes, Estimator, Owner, Reclaim, short
from tests.support import inotify_queue, push_digests
from exporter.manifests import ManifestError

SCHEMA2 = "application/vnd.docker.distribution.manifest.v2+json"
LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
OCI = "application/vnd.oci.image.manifest.v1+json"
INDEX = "application/vnd.oci.image.index.v1+json"


def digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


class Store:
    """Writes the filesystem driver's layout directly, as the registry would."""

    def __init__(self, root: Path):
        self.v2 = root / "docker/registry/v2"
        self.v2.mkdir(parents=True)
        self.sizes: dict[str, int] = {}

    def blob(self, data: bytes) -> str:
        d = digest(data)
        path = self.v2 / "blobs/sha256" / d[7:9] / d[7:] / "data"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        self.sizes[d] = len(data)
        return d

    def layer(self, repo: str, size: int) -> str:
        d = self.blob(os.urandom(size))
        self._link(self.v2 / "repositories" / repo / "_layers/sha256" / d[7:], d)
        return d

    def manifest(self, repo: str, document: dict, tag: str | None = None) -> str:
        d = self.blob(json.dumps(document).encode())
        self._link(self.v2 / "repositories" / repo / "_manifests/revisions/sha256" / d[7:], d)
        if tag:
            self.tag(repo, tag, d)
        return d

    def image(self, repo: str, layers: list[str], tag: str | None = None, media_type: str = SCHEMA2) -> str:
        config = self.blob(json.dumps({"layers": layers, "nonce": os.urandom(4).hex()}).encode())
        self._link(self.v2 / "repositories" / repo / "_layers/sha256" / config[7:], config)
        return self.manifest(repo, {"schemaVersion": 2, "mediaType": media_type,
                                    "config": {"digest": config, "size": self.sizes[config]},
                                    "layers": [{"digest": d, "size": self.sizes[d]} for d in layers]}, tag)

    def tag(self, repo: str, tag: str, d: str) -> None:
        tags = self.v2 / "repositories" / repo / "_manifests/tags" / tag
        self._link(tags / "current", d)
        self._link(tags / "index/sha256" / d[7:], d)

    def untag(self, repo: str, tag: str) -> None:
        shutil.rmtree(self.v2 / "repositories" / repo / "_manifests/tags" / tag)

    @staticmethod
    def _link(directory: Path, d: str) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        (directory / "link").write_text(d)


@pytest.fixture
def store(tmp_path):
    return Store(tmp_path)


def sizes(store: Store, *digests: str) -> Reclaim:
    return Reclaim(len(set(digests)), sum(store.sizes[d] for d in set(digests)))


# --- parsing -------------------------------------------------------------------------------------------

def refs(document) -> set[str]:
    return {manifests.name(k) for k in manifests.parse(json.dumps(document).encode()).references()}


A, B, C = ("sha256:" + c * 64 for c in "abc")


@pytest.mark.parametrize("document, expected", [
    ({"schemaVersion": 2, "mediaType": SCHEMA2, "config": {"digest": A}, "layers": [{"digest": B}]}, {A, B}),
    ({"schemaVersion": 2, "mediaType": OCI, "config": {"digest": A}, "layers": [{"digest": B}, {"digest": C}]},
     {A, B, C}),
    ({"schemaVersion": 2, "config": {"digest": A}, "layers": [{"digest": B}]}, {A, B}),  # OCI without mediaType
    ({"schemaVersion": 2, "mediaType": LIST, "manifests": [{"digest": A}, {"digest": B}]}, {A, B}),
    ({"schemaVersion": 2, "mediaType": INDEX, "manifests": [{"digest": C}]}, {C}),
    ({"schemaVersion": 2, "manifests": [{"digest": C}]}, {C}),  # OCI index without mediaType
    ({"schemaVersion": 1, "fsLayers": [{"blobSum": A}, {"blobSum": A}, {"blobSum": B}]}, {A, B}),
    ({"schemaVersion": 2, "mediaType": SCHEMA2, "layers": [{"digest": "sha256:nothex"}, {"digest": ""}]}, set()),
])
def test_parse_keeps_what_references_returns(document, expected):
    assert refs(document) == expected


@pytest.mark.parametrize("content", [
    b'{"schemaVersion": 2, "mediaType": "application/vnd.docker.distribution.manifest.v2+json", "lay',
    b"[]", b'{"schemaVersion": 3}', b'{"mediaType": "x"}', b'{"schemaVersion": "2"}',
    b'{"schemaVersion": 2, "mediaType": "text/plain"}', b'{"schemaVersion": 2, "layers": {"digest": "x"}}',
    b'{"schemaVersion": 2, "mediaType": 5}', b"\xff\xfe",
])
def test_parse_rejects_what_distribution_cannot_read(content):
    with pytest.raises(ManifestError):
        manifests.parse(content)


def test_keys_are_raw_bytes_and_round_trip():
    assert manifests.key(A) == bytes.fromhex("a" * 64) and manifests.name(manifests.key(A)) == A
    long = "sha512:" + "0f" * 64
    assert manifests.name(manifests.key(long)) == long
    assert manifests.key("sha256:" + "A" * 64) is None  # the store's paths are lower case
    assert manifests.key("sha256:abc") is None


# --- reclaimable ---------------------------------------------------------------------------------------

def test_unreferenced_counts_blobs_no_manifest_references(store):
    shared = store.layer("a", 1000)
    store.layer("b", 10)  # linked but used by no manifest
    orphan = store.blob(b"x" * 77)  # in no repository at all
    store.image("a", [shared], tag="v1")
    store.image("b", [shared], tag="v1")
    estimate = Estimator(store.v2).estimate()
    loose = [d for d in store.sizes if store.sizes[d] == 10]
    assert estimate.unreferenced == sizes(store, orphan, *loose)
    assert estimate.blobs == len(store.sizes) and estimate.blob_bytes == sum(store.sizes.values())
    assert not estimate.lower_bound


def test_untagged_frees_manifests_no_current_tag_names_and_what_only_they_use(store):
    shared, old_only = store.layer("a", 100), store.layer("a", 200)
    old = store.image("a", [shared, old_only], tag="v1")
    old_config = next(d for d in store.sizes if d not in (shared, old_only, old))
    store.image("a", [shared], tag="v1")  # re-tag: v1 now names the new manifest
    estimate = Estimator(store.v2).estimate()
    assert estimate.unreferenced == Reclaim(0, 0)
    # v1's index still lists the old manifest: history, which Distribution ignores
    assert estimate.untagged == sizes(store, old, old_config, old_only)
    assert estimate.untagged_distribution28 == estimate.untagged


def test_tagged_index_keeps_its_children_and_their_layers_unlike_distribution_28(store):
    amd, arm = store.layer("m", 300), store.layer("m", 400)
    child_amd = store.image("m", [amd], media_type=OCI)
    child_arm = store.image("m", [arm], media_type=OCI)
    store.manifest("m", {"schemaVersion": 2, "mediaType": INDEX,
                         "manifests": [{"digest": child_amd}, {"digest": child_arm}]}, tag="latest")
    configs = [d for d in store.sizes if store.sizes[d] not in (300, 400) and
               d not in (child_amd, child_arm) and b"layers" in _data(store, d)]
    estimate = Estimator(store.v2).estimate()
    assert estimate.untagged == Reclaim(0, 0)
    # 2.8 keeps the children's blobs (the index references them) but frees their layers and configs
    assert estimate.untagged_distribution28 == sizes(store, amd, arm, *configs)


def test_untagged_index_frees_its_children_too(store):
    child = store.image("m", [store.layer("m", 50)], media_type=OCI)
    store.manifest("m", {"schemaVersion": 2, "mediaType": LIST, "manifests": [{"digest": child}]})
    estimate = Estimator(store.v2).estimate()
    assert estimate.untagged.blobs == len(store.sizes)


def test_repositories_nest_and_only_directories_with_layers_count(store):
    inner = store.image("team/app/sub", [store.layer("team/app/sub", 10)], tag="t")
    store.image("team/app", [store.layer("team/app", 20)], tag="t")
    # a repository without _layers is not enumerated by Distribution: its manifests mark nothing
    lost = store.image("lonely", [], tag="t")
    shutil.rmtree(store.v2 / "repositories/lonely/_layers")
    estimate = Estimator(store.v2).estimate()
    assert sorted(o.repository for o in estimate.repositories) == ["team/app", "team/app/sub"]
    lost_config = json.loads(_data(store, lost))["config"]["digest"]
    assert estimate.unreferenced == sizes(store, lost, lost_config)
    sub = next(o for o in estimate.repositories if o.repository == "team/app/sub")
    assert sub.unique_bytes >= store.sizes[inner]  # the nested repository's manifests count


def test_links_to_missing_blobs_and_deleted_revisions_are_skipped(store):
    layer = store.layer("a", 10)
    kept = store.image("a", [layer], tag="t")
    gone = store.image("a", [], tag="u")
    gone_config = json.loads(_data(store, gone))["config"]["digest"]  # referenced only by the lost manifest
    shutil.rmtree(store.v2 / "blobs/sha256" / gone[7:9] / gone[7:])
    del store.sizes[gone]
    deleted = store.image("a", [store.layer("a", 30)])
    (store.v2 / "repositories/a/_manifests/revisions/sha256" / deleted[7:] / "link").unlink()  # API delete
    estimate = Estimator(store.v2).estimate()
    deleted_refs = [manifests.name(k) for k in manifests.parse(_data(store, deleted)).references()]
    assert estimate.unreferenced == sizes(store, deleted, *deleted_refs, gone_config)
    assert estimate.errors == 0 and estimate.repositories[0].bytes >= store.sizes[kept]


def test_a_damaged_manifest_is_an_error_and_keeps_what_it_still_names(store):
    named, lost = store.layer("a", 10), store.layer("a", 20)
    d = store.image("a", [named, lost], tag="t")
    path = store.v2 / "blobs/sha256" / d[7:9] / d[7:] / "data"
    text = path.read_bytes()
    path.write_bytes(text[:text.index(lost[7:].encode())])  # truncated before the second layer
    estimate = Estimator(store.v2).estimate()
    assert estimate.errors == 1 and estimate.lower_bound
    assert estimate.unreferenced == sizes(store, lost)  # a lower bound: deleting the manifest frees more


def test_a_link_that_is_not_a_digest_is_an_error(store):
    store.image("a", [], tag="t")
    (store.v2 / "repositories/a/_manifests/tags/t/current/link").write_text("sha256:zz")
    assert Estimator(store.v2).estimate().lower_bound


# --- passes --------------------------------------------------------------------------------------------

def test_later_passes_parse_only_new_manifests_and_forget_gone_ones(store):
    estimator = Estimator(store.v2)
    first = store.image("a", [store.layer("a", 10)], tag="t")
    assert estimator.estimate().parsed == 1
    assert estimator.estimate().parsed == 0
    store.image("a", [store.layer("a", 10)], tag="u")
    again = estimator.estimate()
    assert (again.parsed, again.manifests) == (1, 2)
    shutil.rmtree(store.v2 / "repositories/a/_manifests/revisions/sha256" / first[7:])
    assert estimator.estimate().manifests == 1


def test_blob_sizes_refresh_says_what_came_and_went_and_stats_only_new_digests(store, monkeypatch):
    for _ in range(20):
        store.blob(os.urandom(8))
    sizes_ = BlobSizes(store.v2)
    assert sizes_.refresh(now=2e9) == (20, 0)
    expected = {short(manifests.key(d)): n for d, n in store.sizes.items()}
    assert dict(sizes_) == {k: n for k, n, added in sizes_.changes() if added} == expected
    assert (sizes_.blobs, sizes_.bytes) == (20, 160)
    new = store.blob(b"new")
    gone = next(iter(store.sizes))
    shutil.rmtree(store.v2 / "blobs/sha256" / gone[7:9] / gone[7:])
    stats = []
    real_size = BlobSizes._size
    monkeypatch.setattr(BlobSizes, "_size", lambda self, p: stats.append(p) or real_size(self, p))
    assert sizes_.refresh(now=2e9) == (1, 1)
    assert sorted(sizes_.changes()) == sorted([(short(manifests.key(new)), 3, True),
                                               (short(manifests.key(gone)), 8, False)])
    del store.sizes[gone]
    assert dict(sizes_) == {short(manifests.key(d)): n for d, n in store.sizes.items()}
    assert stats == [str(store.v2 / "blobs/sha256" / new[7:9] / new[7:] / "data")]
    assert sizes_.size(short(manifests.key(new))) == 3 and sizes_.size(short(manifests.key(gone))) is None
    sizes_.close()


def test_blob_sizes_relist_a_changed_prefix_streamed(tmp_path):
    """Without inotify's names (none, or more than its limit) a changed prefix is listed again and compared
    name by name with its rows, never held whole: at 10M blobs a prefix is 40,000 names."""
    import tracemalloc
    v2 = tmp_path / "v2"
    prefix = v2 / "blobs/sha256/00"
    for i in range(20000):
        (prefix / f"00{i:014x}{'e' * 48}").mkdir(parents=True)
        (prefix / f"00{i:014x}{'e' * 48}" / "data").write_bytes(b"x")
    sizes_ = BlobSizes(v2)
    sizes_._journal.close()
    sizes_._journal = None
    assert sizes_.refresh(now=2e9) == (20000, 0)
    for i in range(30):
        (prefix / f"01{i:014x}{'e' * 48}").mkdir()
        (prefix / f"01{i:014x}{'e' * 48}" / "data").write_bytes(b"yy")
    for i in (3, 7):
        shutil.rmtree(prefix / f"00{i:014x}{'e' * 48}")
    tracemalloc.start()
    try:
        assert sizes_.refresh(now=2e9 + 60) == (30, 2)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert (sizes_.blobs, sizes_.bytes) == (20028, 20028 + 30)
    assert sorted(k for k, _, added in sizes_.changes() if not added) == sorted(
        int(f"00{i:014x}{'e' * 48}"[:16], 16) for i in (3, 7))
    assert peak < 1_000_000, peak  # a listing of 20,000 names, a dict and a set of their keys: about 5 MB
    sizes_.close()



def test_blob_sizes_hear_a_push_bigger_than_the_kernels_event_queue(tmp_path, monkeypatch):
    """100,000 new digests (1 % at 10M blobs) are past the kernel's inotify queue: read as they come, no
    prefix is listed again."""
    queue = inotify_queue()
    v2 = tmp_path / "v2"
    push_digests(v2, 0, 256)
    sizes_ = BlobSizes(v2)
    assert sizes_.refresh(now=2e9) == (256, 0)
    push_digests(v2, 256, queue + 2000)
    monkeypatch.setattr(BlobSizes, "_unlisted", lambda *a: pytest.fail("a prefix was listed"))
    assert sizes_.refresh(now=2e9 + 60) == (queue + 2000, 0)
    assert (sizes_.blobs, sizes_.bytes) == (queue + 2256, sum(i % 7 for i in range(queue + 2256)))
    sizes_.close()


def test_blob_sizes_list_a_prefix_whose_names_cannot_be_read_back(tmp_path, monkeypatch):
    v2 = tmp_path / "v2"
    push_digests(v2, 0, 256)
    sizes_ = BlobSizes(v2, names=str(tmp_path / "names"))
    assert sizes_.refresh(now=2e9) == (256, 0)
    push_digests(v2, 256, 300)
    monkeypatch.setattr(inotify.Batch, "created", lambda self, path: None)  # its file gone
    assert sizes_.refresh(now=2e9 + 60) == (300, 0)
    assert (sizes_.blobs, sizes_.bytes) == (556, sum(i % 7 for i in range(556)))
    sizes_.close()
    assert not (tmp_path / "names").exists()

# --- ownership -----------------------------------------------------------------------------------------

def test_repository_bytes_count_shared_blobs_in_each_and_unique_only_once(store):
    shared = store.layer("a", 1000)
    store.layer("b", 1)
    a = store.image("a", [shared, store.layer("a", 100)], tag="t")
    b = store.image("b", [shared], tag="t")
    estimate = Estimator(store.v2).estimate()
    used = {repo: {d, *(manifests.name(k) for k in manifests.parse(_data(store, d)).references())}
            for repo, d in (("a", a), ("b", b))}
    expect = {repo: Owner(repo, sum(store.sizes[d] for d in ds),
                          sum(store.sizes[d] for d in ds - used["b" if repo == "a" else "a"]))
              for repo, ds in used.items()}
    assert estimate.repositories == (expect["a"], expect["b"])


def test_repositories_below_the_top_k_are_summed_as_other(store):
    for n in range(5):
        store.image(f"r{n}", [store.layer(f"r{n}", 1000 * (n + 1))], tag="t")
    owners = Estimator(store.v2, top=2).estimate().repositories
    assert [o.repository for o in owners] == ["r4", "r3", OTHER]
    everyone = Estimator(store.v2, top=10).estimate().repositories
    assert owners[2] == Owner(OTHER, sum(o.bytes for o in everyone[2:]), sum(o.unique_bytes for o in everyone[2:]))


def test_reclaimable_takes_a_mode(store):
    estimate = Estimator(store.v2).estimate()
    assert estimate.reclaimable("untagged") is estimate.untagged
    with pytest.raises(ValueError, match="unreferenced, untagged"):
        estimate.reclaimable("all")


def _data(store: Store, d: str) -> bytes:
    return (store.v2 / "blobs/sha256" / d[7:9] / d[7:] / "data").read_bytes()


# --- incremental passes --------------------------------------------------------------------------------

def trusting(clock_skew: float = 3600.0):
    """A clock far enough ahead that no stat key is too recent to trust: every cache shortcut is taken."""
    return lambda: time.time() + clock_skew


def test_a_later_pass_reads_only_the_links_that_changed(store, monkeypatch):
    from exporter import garbage
    for repo in ("a", "b", "c"):
        store.image(repo, [store.layer(repo, 10)], tag="v1")
    estimator = Estimator(store.v2, clock=trusting())
    estimator.estimate()
    time.sleep(0.02)  # past the filesystem's timestamp tick
    store.image("b", [store.layer("b", 20)], tag="v2")
    read = []
    real = garbage._read_link
    monkeypatch.setattr(garbage, "_read_link", lambda path, errors: read.append(path) or real(path, errors))
    again = estimator.estimate()
    assert again.parsed == 1 and len(read) == 2  # the new revision's link and the new tag's
    assert all("/repositories/b/" in p for p in read)
    assert again == dataclasses.replace(Estimator(store.v2).estimate(), parsed=1)


OPS = ("push", "push", "index", "retag", "untag", "delete", "drop_repo", "remove_blob", "orphan")


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.tuples(st.sampled_from(OPS), st.integers(0, 10 ** 6)), min_size=1, max_size=14))
def test_incremental_passes_equal_a_pass_from_scratch(tmp_path_factory, steps):
    """Pushes, deletes, re-tags, repository removal and blob removal, estimated after each step by one
    long-lived estimator and by a fresh one: the same answer."""
    store = Store(tmp_path_factory.mktemp("store"))
    estimator = Estimator(store.v2, clock=trusting())
    pushed: dict[str, list[str]] = {}
    for op, seed in steps:
        _step(store, pushed, op, random.Random(seed))
        time.sleep(0.012)  # changes after the estimate land in a later timestamp tick, as in service
        incremental = estimator.estimate()
        fresh = Estimator(store.v2).estimate()
        assert dataclasses.replace(incremental, parsed=0) == dataclasses.replace(fresh, parsed=0), (op, steps)
    estimator.close()


def _step(store: Store, pushed: dict[str, list[str]], op: str, rnd: random.Random) -> None:
    repo = rnd.choice(("a", "b", "team/c"))
    mine = pushed.setdefault(repo, [])
    layers = [d for d in store.sizes if store.sizes[d] < 100]  # layers are small, manifests are not
    if op == "push" or (op in ("retag", "delete") and not mine):
        reuse = rnd.sample(layers, min(len(layers), rnd.randint(0, 2)))
        fresh = [store.layer(repo, rnd.randint(1, 99)) for _ in range(rnd.randint(0, 2))]
        for d in reuse:
            store._link(store.v2 / "repositories" / repo / "_layers/sha256" / d[7:], d)
        mine.append(store.image(repo, reuse + fresh, tag=rnd.choice((None, "v1", "v2"))))
    elif op == "index":
        children = [store.image(repo, [store.layer(repo, rnd.randint(1, 99))], media_type=OCI) for _ in range(2)]
        mine += children
        mine.append(store.manifest(repo, {"schemaVersion": 2, "mediaType": INDEX,
                                          "manifests": [{"digest": d} for d in children]}, tag="multi"))
    elif op == "retag":
        store.tag(repo, rnd.choice(("v1", "v2", "multi")), rnd.choice(mine))
    elif op == "untag":
        tags = store.v2 / "repositories" / repo / "_manifests/tags"
        if tags.is_dir() and any(tags.iterdir()):
            store.untag(repo, rnd.choice(sorted(p.name for p in tags.iterdir())))
    elif op == "delete":  # as the registry's API does: the revision link goes, and the tags naming it
        d = rnd.choice(mine)
        (store.v2 / "repositories" / repo / "_manifests/revisions/sha256" / d[7:] / "link").unlink(missing_ok=True)
        tags = store.v2 / "repositories" / repo / "_manifests/tags"
        for tag in list(tags.iterdir()) if tags.is_dir() else ():
            if (tag / "current/link").read_text() == d:
                shutil.rmtree(tag)
    elif op == "drop_repo":
        shutil.rmtree(store.v2 / "repositories" / repo, ignore_errors=True)
        mine.clear()
    elif op == "remove_blob" and store.sizes:  # as garbage collection does, or anything else
        d = rnd.choice(sorted(store.sizes))
        shutil.rmtree(store.v2 / "blobs/sha256" / d[7:9] / d[7:])
        del store.sizes[d]
    elif op == "orphan":
        store.blob(os.urandom(rnd.randint(1, 300)))


# --- the database --------------------------------------------------------------------------------------

def test_the_database_is_a_cache_in_the_state_directory(store, tmp_path):
    store.image("a", [store.layer("a", 10)], tag="t")
    state = tmp_path / "state"
    estimator = Estimator(store.v2, state_dir=state)
    (path,) = state.glob("garbage-*.sqlite")
    estimator.close()
    path.write_bytes(b"not a database")  # left by an older run, or damaged: recreated, not read
    estimator = Estimator(store.v2, state_dir=state)
    assert estimator.estimate() == Estimator(store.v2).estimate()
    estimator.close()
    assert not path.exists()


def test_an_unusable_state_directory_falls_back_to_a_temporary_database(store, tmp_path):
    (tmp_path / "file").write_text("")
    store.image("a", [store.layer("a", 10)], tag="t")
    estimator = Estimator(store.v2, state_dir=tmp_path / "file")
    assert estimator.estimate() == Estimator(store.v2).estimate()


def test_a_pass_that_fails_half_way_starts_the_next_one_afresh(store, monkeypatch):
    from exporter import garbage
    for repo in ("a", "b"):
        store.image(repo, [store.layer(repo, 10)], tag="v1")
    estimator = Estimator(store.v2, clock=trusting())
    estimator.estimate()
    store.image("b", [store.layer("b", 20)], tag="v2")
    real = garbage._read_link
    monkeypatch.setattr(garbage, "_read_link", lambda path, errors: 1 / 0)
    with pytest.raises(ZeroDivisionError):
        estimator.estimate()
    monkeypatch.setattr(garbage, "_read_link", real)
    assert estimator.estimate() == Estimator(store.v2).estimate()


def test_a_pass_leaves_sqlite_holding_next_to_nothing(store, tmp_path):
    """Its page cache (up to 1 MiB) is given back after each pass: kept, it stayed resident between passes."""
    import _sqlite3
    import ctypes
    used = ctypes.CDLL(_sqlite3.__file__).sqlite3_memory_used  # found in the library _sqlite3 links to
    used.restype = ctypes.c_int64
    for n in range(300):
        repo = f"team/app{n % 30}"
        store.image(repo, [store.blob(os.urandom(8)) for _ in range(18)], tag=f"v{n}")
    estimator = Estimator(store.v2, clock=trusting(), state_dir=tmp_path / "state")
    before = used()
    estimator.estimate()
    assert used() - before < 256 << 10
