"""``gc_paused``: run a bulk load with the cyclic garbage collector off, then freeze it.

Loading 100,000 jobs allocates about 100 objects per job and frees almost none, so the
collector would run hundreds of times, each time scanning the whole growing heap, for no
garbage at all. Reference counting still frees everything as usual meanwhile.

Pausing alone only postpones the cost: the loaded jobs (over 300,000 tracked objects for
100,000 jobs) would stay in the collector's generations, and every *full* collection
would walk them all again, 0.2-0.6 s with the GIL held. The first one comes a few
thousand allocations after the load, at a moment set by allocation counts, not by what
the process is doing: in the dispatch jitter benchmark it fell inside the measured 10 s
in about half the runs and held the event loop for all of it. So the outermost block,
when it ends normally, calls ``gc.freeze()``: every object then alive moves to the
permanent generation, which collections skip; they scan only what was made since.
Frozen objects are still freed by reference counting when dropped (a replaced or deleted
job); only a reference cycle among them would never be collected. So that no garbage is
frozen, the block begins with one full collection, while the heap is still small (about
30 ms). A block that raises freezes nothing.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["gc_paused"]


@contextmanager
def gc_paused() -> Iterator[None]:
    """Disable the cyclic collector inside the block (restoring its previous state).

    The outermost block (the collector was on when it began) collects once on entry and,
    if the block succeeds, freezes everything alive on exit (see the module docstring).
    """
    collecting = gc.isenabled()
    if collecting:
        gc.collect()  # the garbage made before the load must not be frozen with it
    gc.disable()
    loaded = False
    try:
        yield
        loaded = True
    finally:
        if collecting:
            if loaded:
                gc.freeze()  # the loaded objects are long-lived: no collection scans them again
            gc.enable()
