"""Process-level settings the server applies at start-up (labtrack.server)."""

from __future__ import annotations

import gc

from labtrack.server import GC_YOUNG_THRESHOLD, tune_gc


def test_tune_gc_freezes_start_up_objects_and_paces_young_collections() -> None:
    before = gc.get_threshold()
    try:
        tune_gc()
        assert gc.get_threshold()[0] == GC_YOUNG_THRESHOLD
        assert gc.get_freeze_count() > 0
        # Cycles made after start-up are still found.
        cycle: list = []
        cycle.append(cycle)
        del cycle
        assert gc.collect() >= 1
    finally:
        gc.unfreeze()
        gc.set_threshold(*before)
