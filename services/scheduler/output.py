"""Output: how a CLI command prints its answer, and what it says when the answer cannot be printed.

A command writes its answer through ``Output.line`` and records what it changed with
``Output.changed`` before it prints. If standard output fails:

- a closed pipe (``list | head -1``): the command ends quietly, exit 141 (128 + SIGPIPE,
  what a shell reports for ``cat`` or ``grep`` in the same place);
- any other failure (``>/dev/full``, a disk error): one line on stderr, exit 1, saying
  whether the change was made, e.g. ``error: cannot write the answer to stdout (No space
  left on device); the job was added: 3f2c… (see `show 3f2c…`)``.

``printable`` makes text safe for a terminal: control characters are shown escaped.
"""

from __future__ import annotations

import errno
import os
import re
import sys
from typing import IO

__all__ = ["EXIT_BROKEN_PIPE", "Output", "OutputFailed", "printable"]

EXIT_BROKEN_PIPE = 141

_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def printable(text: str) -> str:
    """``text`` with every control character but newline and tab shown as ``\\x1b`` etc."""
    return _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", text)


class OutputFailed(Exception):
    """Standard output refused the answer; ``closed`` is True for a closed pipe."""

    def __init__(self, error: OSError, change: str | None) -> None:
        super().__init__(str(error))
        self.error = error
        self.change = change

    @property
    def closed(self) -> bool:
        return isinstance(self.error, BrokenPipeError) or self.error.errno == errno.EPIPE

    def message(self) -> str:
        """The one line for stderr."""
        reason = self.error.strerror or str(self.error)
        outcome = self.change or "nothing was changed"
        return f"cannot write the answer to stdout ({reason}); {outcome}"


class Output:
    """A command's standard output.

    :param stream: where the answer goes (default ``sys.stdout``).
    """

    def __init__(self, stream: IO[str] | None = None) -> None:
        self.stream = stream or sys.stdout
        self.change: str | None = None

    def changed(self, what: str) -> None:
        """Record what the command changed (said if the answer cannot be printed)."""
        self.change = what

    def line(self, text: str = "") -> None:
        """Print one line (or several, joined by newlines)."""
        self.write(text + "\n")

    def write(self, text: str) -> None:
        """Print ``text`` as it is."""
        try:
            self.stream.write(text)
        except OSError as exc:
            raise OutputFailed(exc, self.change) from None

    def flush(self) -> None:
        """Push what is buffered to the file (failures surface here, e.g. on /dev/full)."""
        try:
            self.stream.flush()
        except OSError as exc:
            raise OutputFailed(exc, self.change) from None

    def discard(self) -> None:
        """After a failure: drop what is buffered, so the interpreter's exit does not retry it."""
        try:
            fd = self.stream.fileno()
        except (OSError, ValueError):
            return
        devnull = os.open(os.devnull, os.O_WRONLY)
        try:
            os.dup2(devnull, fd)
        finally:
            os.close(devnull)
