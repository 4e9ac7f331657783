"""Pipeline test fixtures: settings read from a test's own file, nothing from the caller's environment."""

from __future__ import annotations

from pathlib import Path

import pytest

from services.pipeline.settings import PipelineSettings

PIPELINE_ENV = tuple(name.upper() for name in PipelineSettings.model_fields)
"""Every environment variable the pipeline's settings read (one per field)."""


@pytest.fixture
def settings_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The settings file a test may write (not created).

    The environment is already sealed (``tests/conftest.py``): no pipeline variable is set.
    """
    path = tmp_path / "settings.toml"
    monkeypatch.setenv("PIPELINE_SETTINGS_FILE", str(path))
    return path
