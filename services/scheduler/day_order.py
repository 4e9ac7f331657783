"""DayOrder: one daily file's job ids in file order, each with its encoded entry kept.

A day file lists its jobs by ``(scheduled_time, job_id)``. ``JobStorage`` keeps one
DayOrder per day it has written: the ids in that order, and beside each id the bytes of
its entry in the file (or None once the job changed, until the next write encodes it
again). A flush of today's file then encodes only the jobs that changed and joins the
kept bytes, instead of looking up thousands of entries on the loop for every write
(with four clients triggering schedules, that lookup was a tenth of the daemon's time).

Ids are placed by bisection on their key, so the list is never re-sorted. A change that
keeps a job's key only marks its entry stale (``touch``). The key function reads the
storage's current jobs; an id whose key changed is found by a linear search (in C).
"""

from __future__ import annotations

import bisect
from collections.abc import Callable, Hashable, Iterable

__all__ = ["DayOrder"]

Key = Callable[[str], Hashable]


class DayOrder:
    """The ids of one day's jobs in file order, and their entries (None: to be encoded).

    :param ids: the ids, already in file order.
    :param entries: each id's kept entry, or None.
    :param key: an id's sort key (from the storage's current job).
    """

    __slots__ = ("_key", "entries", "ids", "stale")

    def __init__(self, ids: list[str], entries: list[bytes | None], key: Key) -> None:
        self.ids = ids
        self.entries = entries
        self.stale = {job_id for job_id, entry in zip(ids, entries) if entry is None}
        self._key = key

    @classmethod
    def build(cls, ids: Iterable[str], kept: Callable[[str], bytes | None], key: Key) -> DayOrder:
        """Sort ``ids`` by ``key``; take each one's entry from ``kept`` (None if it has none)."""
        ordered = sorted(ids, key=key)
        return cls(ordered, [kept(job_id) for job_id in ordered], key)

    def insert(self, job_id: str) -> None:
        """Put a new id in its place; its entry is to be encoded."""
        index = bisect.bisect_left(self.ids, self._key(job_id), key=self._key)
        self.ids.insert(index, job_id)
        self.entries.insert(index, None)
        self.stale.add(job_id)

    def remove(self, job_id: str) -> bool:
        """Take an id out (its key may have changed already); False if it was not here."""
        try:
            index = self.ids.index(job_id)
        except ValueError:
            return False
        del self.ids[index]
        del self.entries[index]
        self.stale.discard(job_id)
        return True

    def touch(self, job_id: str) -> bool:
        """Mark an id's entry stale (its job changed, its key did not); False if not here."""
        index = self._index(job_id)
        if index is None:
            return False
        self.entries[index] = None
        self.stale.add(job_id)
        return True

    def encoded(self, encode: Callable[[str], bytes]) -> list[bytes]:
        """Every entry in file order, encoding the stale ones with ``encode``.

        The list returned is this order's own: join it before the next change.
        """
        for job_id in self.stale:
            index = self._index(job_id)
            if index is None:  # cannot happen: a stale id is one of ours
                raise KeyError(job_id)
            self.entries[index] = encode(job_id)
        self.stale.clear()
        return self.entries  # type: ignore[return-value]  # no None left

    def _index(self, job_id: str) -> int | None:
        ids = self.ids
        index = bisect.bisect_left(ids, self._key(job_id), key=self._key)
        if index < len(ids) and ids[index] == job_id:
            return index
        try:  # its key changed since it was placed: look for it
            return ids.index(job_id)
        except ValueError:
            return None
