"""The serving process itself."""

from __future__ import annotations

import gc

from proxy.server import freeze_startup_heap


def test_the_startup_heap_is_frozen_out_of_full_collections() -> None:
    before = gc.get_freeze_count()
    try:
        freeze_startup_heap()
        assert gc.get_freeze_count() > before  # full collections no longer walk it
    finally:
        gc.unfreeze()
