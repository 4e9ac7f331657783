"""``check FILE.mp4 [--json] [--subtitles TEXT]``: the gate before upload, on any file.

Prints each figure the gate measures and whether it passes (``quality/gate.py`` has the
limits), or with ``--json`` the figures and the failures as one object. Exit 0 if the
file passes, 1 if a figure fails, 2 if the file cannot be read as a video. ``--subtitles``
names a text file whose characters must all be in the subtitle font.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from services.pipeline.quality import judge, measure
from services.scheduler.output import Output
from services.scheduler.settings import Settings

__all__ = ["check_command"]


def check_command(args: argparse.Namespace, settings: Settings) -> int:
    """Measure ``args.file`` and judge it; print the report."""
    out: Output = args.out
    path: Path = args.file
    if not path.is_file():
        sys.stderr.write(f"error: {path}: no such file\n")
        return 2
    subtitles = ""
    if args.subtitles is not None:
        try:
            subtitles = args.subtitles.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            sys.stderr.write(f"error: --subtitles {args.subtitles}: {exc}\n")
            return 2
    try:
        figures = measure(path, subtitles=subtitles).to_dict()
    except ValueError as exc:
        sys.stderr.write(f"error: {' '.join(str(exc).split())}\n")
        return 2
    failures = judge(figures)
    if args.json:
        report = {"file": str(path), "passed": not failures, "figures": figures,
                  "failures": [{"figure": f.figure, "value": f.value, "limit": f.limit} for f in failures]}
        out.write(json.dumps(report, ensure_ascii=False, indent=2) + "\n")
        return 1 if failures else 0
    bad = {f.figure: f for f in failures}
    for name, value in figures.items():
        mark = "FAIL" if name in bad else "ok"
        shown = "".join(value) if isinstance(value, list) else value
        line = f"  {mark:<4}  {name:<24} {shown}"
        if name in bad:
            line += f"  (must be {bad[name].limit})"
        out.write(line + "\n")
    out.write(f"{path}: {'passes the gate' if not failures else f'fails {len(failures)} figure(s)'}\n")
    return 1 if failures else 0
