"""Recognising DTR containers, their store and the shared-store rule, on a recorded Docker answer.

tests/fixtures/docker/containers-dtr-node.json is ``GET /containers/json?all=1`` recorded from
tests/dtr_node.py's node (replica 3f1a9c5e7b2d, jobrunner stopped) plus a created, never started
plain ``registry:2.8.2`` container with REGISTRY_STORAGE=s3 and a volume at /var/lib/registry.
"""

from __future__ import annotations

import json

import pytest

from exporter import dtr
from tests.support import FIXTURES

REPLICA = "3f1a9c5e7b2d"


@pytest.fixture(scope="module")
def listed():
    return json.loads((FIXTURES / "docker" / "containers-dtr-node.json").read_text())


def test_every_dtr_component_and_the_plain_registry_are_recognised(listed):
    members = {m.name: m for c in listed if (m := dtr.identify(c))}
    dtr_members = [m for m in members.values() if m.replica_id]
    assert sorted(m.component for m in dtr_members) == sorted(
        ["api", "garant", "jobrunner", "nginx", "notary-server", "notary-signer", "rethinkdb", "registry"])
    assert {m.replica_id for m in dtr_members} == {REPLICA}
    assert {m.version for m in dtr_members} == {"2.9.4"}
    assert not members[f"dtr-jobrunner-{REPLICA}"].running and members[f"dtr-api-{REPLICA}"].running
    plain = members["plain-registry"]
    assert (plain.component, plain.replica_id, plain.version, plain.running) == ("registry", None, "2.8.2", False)
    assert dtr.choose_replica(list(members.values())) == REPLICA
    assert dtr.version_of(dtr_members) == "2.9.4"


def test_the_store_is_the_replica_volume_or_the_plain_registry_mount(listed):
    stores = {m.name: dtr.store_of(c, m) for c in listed if (m := dtr.identify(c))}
    store = stores[f"dtr-registry-{REPLICA}"]
    assert store.volume == f"dtr-registry-{REPLICA}" and not store.nfs
    assert store.source.endswith(f"/volumes/dtr-registry-{REPLICA}/_data")
    assert stores["plain-registry"].source.endswith("/volumes/plain-store/_data")
    assert stores[f"dtr-api-{REPLICA}"] is None


def test_an_nfs_store_volume_and_another_replicas_volume():
    member = dtr.identify({"Names": ["/dtr-registry-aaaaaaaaaaaa"], "Image": "docker/dtr-registry:2.8.0",
                           "State": "running", "Id": "x"})
    nfs = {"Name": "dtr-nfs-registry-aaaaaaaaaaaa", "Source": "/var/lib/docker/volumes/n/_data", "Destination": "/storage"}
    other = {"Name": "dtr-registry-bbbbbbbbbbbb", "Source": "/elsewhere", "Destination": "/storage"}
    assert dtr.store_of({"Mounts": [other, nfs]}, member) == dtr.Store(nfs["Source"], nfs["Name"], True)
    assert dtr.store_of({"Mounts": [other]}, member) is None


@pytest.mark.parametrize("name", ["dtr-api-0123456789a", "dtr-api-0123456789abc", "dtr-api-0123456789AB",
                                  "xdtr-api-0123456789ab", "dtr--0123456789ab"])
def test_names_that_are_not_dtr(name):
    assert dtr.identify({"Names": [f"/{name}"], "Image": "busybox", "State": "running"}) is None


@pytest.mark.parametrize("image, repository, tag", [
    ("registry:2", "registry", "2"),
    ("registry", "registry", None),
    ("docker.io/library/registry:2.8@sha256:" + "0" * 64, "library/registry", "2.8"),
    ("localhost:5000/distribution/distribution:edge", "distribution/distribution", "edge"),
    ("mirantis/dtr-api:2.9.16", "mirantis/dtr-api", "2.9.16"),
    ("myregistry:5000/registry", "registry", None),
])
def test_split_image(image, repository, tag):
    assert dtr.split_image(image) == (repository, tag)


def test_plain_registry_images():
    assert dtr.is_plain_registry("registry:2") and dtr.is_plain_registry("ghcr.io/distribution/distribution:3")
    assert not dtr.is_plain_registry("myorg/registry-ui:1") and not dtr.is_plain_registry("docker/dtr-registry:2.9.4")


@pytest.mark.parametrize("mode, network, me, replicas, scans", [
    ("always", True, "b", ("a", "b"), True),
    ("never", True, "a", ("a", "b"), False),
    ("never", False, "a", (), True),  # a local store is this replica's own, whatever the setting
    ("auto", False, "b", ("a", "b"), True),
    ("auto", True, "a", ("a", "b"), True),  # the lowest replica walks the shared store
    ("auto", True, "b", ("a", "b"), False),  # the others leave it to that one
    ("auto", True, "b", (), True),  # no replica list (no DTR API): walk rather than go blind
    ("auto", True, None, ("a", "b"), True),  # a plain registry on NFS
])
def test_scan_shared_store(mode, network, me, replicas, scans):
    assert dtr.scan_shared_store(mode, network, me, replicas) is scans


# ---- what the docker collector hands on: the DTR processes' CPU limits, a plain registry's driver

@pytest.mark.parametrize("host_config, cpus", [
    ({}, None),
    ({"NanoCpus": 1_500_000_000}, 1.5),
    ({"CpuQuota": 50000, "CpuPeriod": 100000}, 0.5),
    ({"CpuQuota": 200000, "CpuPeriod": 0}, 2.0),  # period 0 is Docker's default, 100 ms
    ({"CpuQuota": -1, "CpusetCpus": "0-2,7"}, 4),
    ({"NanoCpus": 3_000_000_000, "CpusetCpus": "0,1"}, 2),  # the least wins
])
def test_hostconfig_cpus(host_config, cpus):
    assert dtr.hostconfig_cpus(host_config) == cpus


class FakeApi:
    """The Engine API calls the collector makes, answered from recorded-shape dictionaries."""

    def __init__(self, listed, inspected):
        self.listed, self.inspected = listed, inspected

    def containers(self):
        return self.listed

    def inspect(self, container_id):
        return self.inspected[container_id]

    def stats(self, container_id):
        return {}


def collect_with(listed, inspected):
    from exporter.collectors import Context, create
    from exporter.config import Config
    ctx = Context(config=Config(docker_host="tcp://127.0.0.1:1"))
    collector = create("docker", ctx)
    collector._api = FakeApi(listed, inspected)
    return ctx, collector.collect()


def plain_registry(mounts):
    return {"Id": "c1", "Names": ["/registry"], "Image": "registry:2.8.3", "State": "running", "Mounts": mounts}


S3_ENV = {"Config": {"Env": ["REGISTRY_STORAGE=s3", "REGISTRY_STORAGE_S3_BUCKET=images", "PATH=/usr/bin"]},
          "State": {"Pid": 4711}, "HostConfig": {"NanoCpus": 2_000_000_000}}


@pytest.mark.parametrize("mounts", [
    [],  # configured by environment, nothing mounted
    [{"Type": "volume", "Name": "4f1e" * 16, "Source": "/var/lib/docker/volumes/anon/_data",
      "Destination": "/var/lib/registry"}],  # the anonymous volume the image's VOLUME declares: holds nothing
])
def test_a_plain_registry_on_s3_by_environment(mounts):
    ctx, reading = collect_with([plain_registry(mounts)], {"c1": S3_ENV})
    assert reading.storage_driver == "s3" and reading.found.storage_driver == "s3"
    assert reading.storage_source is None and reading.found.storage_path is None
    assert reading.found.dtr_processes == (dtr.Process("registry", "registry", 4711, 2.0),)


def test_a_plain_registry_on_a_volume_stays_filesystem():
    mounts = [{"Type": "volume", "Name": "store", "Source": "/var/lib/docker/volumes/store/_data",
               "Destination": "/var/lib/registry"}]
    ctx, reading = collect_with([plain_registry(mounts)], {"c1": {"Config": {"Env": []}, "State": {"Pid": 9}}})
    assert reading.storage_driver == "filesystem" and reading.storage_source == "/var/lib/docker/volumes/store/_data"
