"""Every test is sealed from the machine: no settings file, no setting variable, os.environ restored."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from services.pipeline import settings as pipeline_settings
from services.pipeline.settings import load_settings, settings_file
from tests.conftest import SEALED_ENV, sealed

ROOT = Path(__file__).resolve().parents[1]
HOSTILE = 'upload_target = "youtube"\n'  # a developer's live settings: tests would upload


def test_a_test_reads_neither_the_repo_settings_file_nor_a_setting_variable(tmp_path: Path) -> None:
    assert settings_file() != ROOT / "config" / "settings.toml"
    assert settings_file() != pipeline_settings.DEFAULT_SETTINGS_FILE
    assert not settings_file().exists()
    # the two file settings point at files that do not exist; no other setting is set
    assert [name for name in SEALED_ENV if name in os.environ] == ["PIPELINE_SETTINGS_FILE", "SCHEDULER_CONFIG"]
    assert not Path(os.environ["SCHEDULER_CONFIG"]).exists()
    assert load_settings().upload_target == "local"


def test_the_machine_settings_file_is_not_read(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    hostile = tmp_path / "developer-settings.toml"
    hostile.write_text(HOSTILE)
    monkeypatch.setattr(pipeline_settings, "DEFAULT_SETTINGS_FILE", hostile)  # as if it were config/settings.toml
    assert load_settings().upload_target == "local"
    monkeypatch.delenv("PIPELINE_SETTINGS_FILE")  # unsealed, the same file would be read
    assert load_settings().upload_target == "youtube"


def test_a_subprocess_inherits_the_seal() -> None:
    probe = (
        "import json, os, sys; from services.pipeline.settings import settings_file; "
        "print(json.dumps([str(settings_file()), sorted(set(sys.argv[1:]) & set(os.environ))]))"
    )
    shown = subprocess.run(
        [sys.executable, "-c", probe, *SEALED_ENV], env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True, text=True, check=True, timeout=60,
    )
    path, leaked = json.loads(shown.stdout)
    assert path == os.environ["PIPELINE_SETTINGS_FILE"] and not Path(path).exists()
    assert leaked == ["PIPELINE_SETTINGS_FILE", "SCHEDULER_CONFIG"]


def test_the_seal_hides_the_machine_and_undoes_what_a_test_writes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("UPLOAD_TARGET", "youtube")  # the machine's environment
    monkeypatch.setenv("DATA_DIR", "/srv/live-data")
    monkeypatch.setenv("PIPELINE_SETTINGS_FILE", str(tmp_path / "live.toml"))
    outside = dict(os.environ)
    with sealed(tmp_path / "inner"):
        assert "UPLOAD_TARGET" not in os.environ and "DATA_DIR" not in os.environ
        assert os.environ["PIPELINE_SETTINGS_FILE"] == str(tmp_path / "inner" / "no-settings-file.toml")
        os.environ.update({"UPLOAD_TARGET": "local", "TTS_ENGINE": "local"})  # what a test may set
        os.environ["DATA_DIR"] = str(tmp_path / "demo")
        os.environ["SOMETHING_NEW"] = "1"
        del os.environ["PATH"]
    assert dict(os.environ) == outside
