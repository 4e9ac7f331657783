"""The worker a Spot instance installs: a wheel built from this checkout, once per version.

The wheel's folder is named by a digest of what goes into it (``pyproject.toml`` and every
file under ``services/``), so a change to the code makes a new wheel and the bucket keeps
each one under ``wheels/<digest>/``; an unchanged checkout reuses the wheel it built. It is
built by pip (``pip wheel --no-deps --no-build-isolation``: this environment's
setuptools, no download), so the instance installs exactly this code, not a clone of a
private repository.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

__all__ = ["REPO_ROOT", "build_wheel", "code_digest"]

REPO_ROOT = Path(__file__).resolve().parents[3]


def code_digest(root: Path = REPO_ROOT) -> str:
    """A short digest of the package's sources and its metadata."""
    digest = hashlib.sha256()
    files = [root / "pyproject.toml", *sorted(p for p in (root / "services").rglob("*") if p.is_file())]
    for path in files:
        if "__pycache__" in path.parts or path.suffix == ".pyc":
            continue
        digest.update(path.relative_to(root).as_posix().encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:16]


def build_wheel(cache: Path, root: Path = REPO_ROOT) -> Path:
    """The wheel of this checkout in ``cache/<digest>/`` (built now if it is not there)."""
    folder = cache / code_digest(root)
    built = sorted(folder.glob("*.whl"))
    if built:
        return built[0]
    cache.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=cache) as temp:
        done = subprocess.run(
            [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--quiet", "-w", temp,
             str(root)],
            capture_output=True, text=True, check=False,
        )
        wheels = sorted(Path(temp).glob("*.whl"))
        if done.returncode != 0 or not wheels:
            raise RuntimeError(f"could not build the worker's wheel: {done.stderr.strip()[-300:]}")
        folder.mkdir(exist_ok=True)
        target = folder / wheels[0].name
        shutil.move(str(wheels[0]), target)
    return target
