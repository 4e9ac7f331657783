"""Small versioned JSON files the daemon rewrites in place: read, or lock-change-replace.

The daily counters (``counters.json``), the fetch ledgers (``mangadex_ledger.json``,
``fetch_ledger.json``) and the task results (``tasks/<token>/result.json``) are each one
JSON object, pretty-printed UTF-8 (Vietnamese readable, not ``\\u``-escaped), with a
top-level ``"version"`` beside the record's own keys::

    {"version": 1, "2026-02-07": {"count": 4, "updated_at": "..."}}

The version sits beside the keys rather than around them so that a file written before
versions existed *is* a version-1 file without the field: a missing ``"version"`` reads
as 1, no upgrade step is needed, and nothing is lost. A version this code does not know
(a newer daemon wrote it) is refused with :class:`UnknownVersionError`, never rewritten.
Callers see the record without the ``"version"`` key; it is put back on every write.

- :func:`update_json` is the read-modify-write: an exclusive ``flock`` on ``<path>.lock``
  (a file of its own, so the lock survives the data file being replaced), read (a missing
  file is ``{}``), the version checked, ``change(record)`` mutating it, and, if the record
  changed, the file replaced with ``services.scheduler.atomic_file.write_atomic`` (temp
  file, fsync, ``os.replace``, fsync of the folder). Two processes updating at once both
  land; a crash leaves the old file or the new one.
- :func:`read_json` reads without the lock: the file is only ever replaced whole, so a
  reader sees one version of it or the other.
- :func:`parse_record` and :func:`encode_record` are the pure halves, for a file written
  once (a task result) rather than updated.

``version=None`` is for a file whose shape predates versions and is pinned by its
readers: it is read and written as is, with no ``"version"`` key.

Errors (both ``ValueError``, so a stage fails with the message)::

    JsonRecordError          not JSON, or not a JSON object: fix or remove the file
      UnknownVersionError    written by a newer daemon (a version this one does not read)
"""

from __future__ import annotations

import copy
import fcntl
import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

from services.pipeline.errors import VideoPipelineError
from services.scheduler.atomic_file import write_atomic

__all__ = [
    "VERSION_KEY",
    "JsonRecordError",
    "UnknownVersionError",
    "encode_record",
    "parse_record",
    "read_json",
    "update_json",
]

VERSION_KEY = "version"

T = TypeVar("T")


class JsonRecordError(VideoPipelineError, ValueError):
    """A record file that cannot be read as what it should be (the message names it)."""


class UnknownVersionError(JsonRecordError):
    """A record file in a format version this code does not read."""

    def __init__(self, path: Path, found: Any, expected: int) -> None:
        super().__init__(
            f"{path} has format version {found!r}; this scheduler reads version {expected} "
            "(upgrade the scheduler, or move the file aside)"
        )
        self.path = path
        self.found = found
        self.expected = expected


def parse_record(path: Path, raw: bytes, *, version: int | None) -> dict[str, Any]:
    """The record in ``raw`` (the bytes of ``path``) without its version field.

    No ``"version"`` key reads as ``version`` (a file from before versions). Raises
    :class:`JsonRecordError` for bytes that are not a JSON object and
    :class:`UnknownVersionError` for another version.
    """
    try:
        record = json.loads(raw)
    except ValueError as exc:
        raise JsonRecordError(f"{path} is not valid JSON ({exc}); fix or remove it") from None
    if not isinstance(record, dict):
        raise JsonRecordError(f"{path} must hold a JSON object, not {type(record).__name__}")
    if version is None:
        return record
    found = record.pop(VERSION_KEY, version)
    if type(found) is not int or found != version:  # True == 1, but it is no version
        raise UnknownVersionError(path, found, version)
    return record


def encode_record(record: dict[str, Any], *, version: int | None, sort_keys: bool = False) -> bytes:
    """The file's bytes: ``"version"`` first, then ``record`` (its top-level keys sorted if asked)."""
    if VERSION_KEY in record and version is not None:
        raise ValueError(f"a record must not carry its own {VERSION_KEY!r} key")
    body = dict(sorted(record.items())) if sort_keys else record
    if version is not None:
        body = {VERSION_KEY: version, **body}
    return (json.dumps(body, ensure_ascii=False, indent=2) + "\n").encode("utf-8")


def read_json(path: Path, *, version: int | None) -> dict[str, Any]:
    """The record in ``path`` without its version field; ``{}`` when there is no file."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return {}
    return parse_record(path, raw, version=version)


def update_json(
    path: Path,
    change: Callable[[dict[str, Any]], T],
    *,
    version: int | None,
    sort_keys: bool = False,
) -> T:
    """Apply ``change`` to the record in ``path`` under an exclusive lock; return its result.

    :param path: the JSON file; its folder is created if missing, the lock is ``<path>.lock``.
    :param change: mutates the record it is handed (``{}`` when there is no file yet); an
        exception leaves the file as it was.
    :param version: the format version written and the only one accepted (a missing field
        reads as it); ``None``: the file has no version field.
    :param sort_keys: write the top-level keys in order (after ``"version"``).
    """
    with _locked(path):
        record = read_json(path, version=version)
        before = copy.deepcopy(record)
        result = change(record)
        if record != before:
            write_atomic(path, encode_record(record, version=version, sort_keys=sort_keys))
    return result


@contextmanager
def _locked(path: Path) -> Iterator[None]:
    """An exclusive ``flock`` on ``<path>.lock`` for the block (released when the file closes)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_name(f"{path.name}.lock"), "a+b") as lock:
        fcntl.flock(lock.fileno(), fcntl.LOCK_EX)
        yield
