"""Fixtures that several integration modules share, defined once so a session scope is one instance
(a fixture imported into two modules is set up once for each)."""

from __future__ import annotations

import pytest

from tests.prom import watched_dtr_node
from tests.support import ROOT


@pytest.fixture(scope="session")
def dtr_stack(tmp_path_factory):
    """tests.prom.watched_dtr_node with the alert rules loaded: for the dashboard and alert-rule modules.
    Call its ``ready()`` first in each module."""
    with watched_dtr_node(tmp_path_factory.mktemp("dtr-stack"),
                          rule_files=[ROOT / "alerts" / "dtr-sizing.rules.yml"]) as stack:
        yield stack


def pytest_collection_modifyitems(items):
    """Tests on the shared DTR stack run last, side by side: the stack (a dockerd with eight
    containers, an exporter and a Prometheus at 1 s) then never runs beside the other tests."""
    items.sort(key=lambda item: "dtr_stack" in getattr(item, "fixturenames", ()))
