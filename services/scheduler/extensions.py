"""Extensions: how a package built on the scheduler adds job kinds and CLI commands.

The scheduler core knows nothing about videos; ``services.pipeline`` plugs in through
this protocol. An extension is any object with these two methods:

- ``install(scheduler)``: register kinds in ``scheduler.registry`` and, if it wants,
  set ``scheduler.default_kind`` (the kind ``add-job`` uses without ``--kind``);
- ``add_commands(subparsers, common)``: add CLI sub-commands (``common`` is the parent
  parser holding ``--data-dir``); each sets ``run=callable`` as a parser default, called
  as ``run(args, settings) -> exit code``.
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from .scheduler import Scheduler

__all__ = ["Extension"]


class Extension(Protocol):
    """What the scheduler calls on a package built on it."""

    def install(self, scheduler: Scheduler) -> None: ...

    def add_commands(
        self, subparsers: argparse._SubParsersAction, common: argparse.ArgumentParser
    ) -> None: ...
