"""A service's start-up objects leave the collector's view; GC_FREEZE=false keeps the defaults."""

from __future__ import annotations

import gc
from types import SimpleNamespace

import pytest

from shared.chassis.gctuning import YOUNG_THRESHOLD, GcTuning


@pytest.fixture
def restored_gc():
    threshold = gc.get_threshold()
    yield
    gc.unfreeze()
    gc.set_threshold(*threshold)


def started(config: dict) -> None:
    tuning = GcTuning()
    tuning.container = SimpleNamespace(config=config)
    tuning.start()


def test_once_started_the_objects_built_so_far_are_frozen(restored_gc):
    started({})
    assert gc.get_freeze_count() > 1000
    assert gc.get_threshold()[0] == YOUNG_THRESHOLD


def test_gc_freeze_false_leaves_cpythons_defaults(restored_gc):
    before = gc.get_threshold()
    started({"GC_FREEZE": "false"})
    assert gc.get_freeze_count() == 0
    assert gc.get_threshold() == before
