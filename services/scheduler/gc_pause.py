"""``gc_paused``: run a bulk load with the cyclic garbage collector off.

Loading 100,000 jobs allocates about 100 objects per job and frees almost none, so the
collector would run hundreds of times, each time scanning the whole growing heap, for no
garbage at all. Reference counting still frees everything as usual meanwhile.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["gc_paused"]


@contextmanager
def gc_paused() -> Iterator[None]:
    """Disable the cyclic collector inside the block (restoring its previous state)."""
    collecting = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if collecting:
            gc.enable()
