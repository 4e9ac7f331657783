"""Pipeline settings (environment over file, secrets only from env or 0600 files) and doctor."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from services.pipeline.settings import load_settings
from services.scheduler.settings import SettingsError
from tests.pipeline.conftest import PIPELINE_ENV
from tests.pipeline.stage_context import RecordingContext

ROOT = Path(__file__).resolve().parents[2]


def test_defaults_without_a_file(settings_path: Path) -> None:
    settings = load_settings()
    assert (settings.tts_voice, settings.tts_fallback_voice) == ("vi-VN-HoaiMyNeural", "vi-VN-NamMinhNeural")
    assert settings.youtube_privacy == "private" and settings.openai_key() is None


def test_the_environment_wins_over_the_file(settings_path: Path, monkeypatch) -> None:
    settings_path.write_text('openai_model = "llama3.1"\nyoutube_privacy = "unlisted"\n')
    monkeypatch.setenv("OPENAI_MODEL", "qwen2.5")
    settings = load_settings()
    assert (settings.openai_model, settings.youtube_privacy) == ("qwen2.5", "unlisted")


def test_the_example_file_is_valid(monkeypatch) -> None:
    for name in PIPELINE_ENV:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("PIPELINE_SETTINGS_FILE", str(ROOT / "config" / "settings.example.toml"))
    assert load_settings().fetch_source == "local"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('openai_api_key = "sk-live"\n', "is a secret and is not read from the settings file"),
        ('tts_rat = "+5%"\n', "TTS_RAT"),  # a typo is an error, not ignored
        ('youtube_privacy = "secret"\n', "YOUTUBE_PRIVACY"),
        ("tts_rate = \n", "not valid TOML"),
    ],
)
def test_a_broken_file_is_refused_with_a_reason(settings_path: Path, text: str, message: str) -> None:
    settings_path.write_text(text)
    with pytest.raises(SettingsError, match=message):
        load_settings()


def test_a_secret_file_must_be_0600(settings_path: Path, tmp_path: Path, monkeypatch) -> None:
    key = tmp_path / "openai.key"
    key.write_text("sk-from-file\n")
    key.chmod(0o644)
    monkeypatch.setenv("OPENAI_API_KEY_FILE", str(key))
    with pytest.raises(SettingsError, match="readable by others .*chmod 600"):
        load_settings().openai_key()
    key.chmod(0o600)
    secret = load_settings().openai_key()
    assert secret is not None and secret.get_secret_value() == "sk-from-file"
    assert "sk-from-file" not in repr(load_settings()) + str(secret)


def doctor(
    env_extra: dict[str, str], tmp_path: Path, *args: str, command: str = "doctor"
) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in PIPELINE_ENV}
    env.update({"DATA_DIR": str(tmp_path / "data"), **env_extra})
    return subprocess.run(
        [sys.executable, str(ROOT / "run_scheduler.py"), command, *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_doctor_names_each_backend_and_passes_on_the_defaults(tmp_path: Path) -> None:
    done = doctor({"PIPELINE_SETTINGS_FILE": str(tmp_path / "none.toml")}, tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    for stage in ("fetch:", "script:", "tts:", "render:", "upload:"):
        assert stage in done.stdout
    assert "not present" in done.stdout
    for check in ("ok    ffmpeg", "ok    font: Be Vietnam Pro", "ok    data dir"):
        assert check in done.stdout


def test_doctor_exits_1_on_a_broken_setting_or_secret_file(tmp_path: Path) -> None:
    broken = doctor({"PIPELINE_SETTINGS_FILE": str(tmp_path / "none.toml"), "TTS_PITCH": "high"}, tmp_path)
    assert broken.returncode == 1 and "BROKEN  TTS_PITCH" in broken.stdout
    assert "Traceback" not in broken.stderr
    key = tmp_path / "token.json"
    key.write_text("{}")
    key.chmod(0o640)
    loose = doctor(
        {"PIPELINE_SETTINGS_FILE": str(tmp_path / "none.toml"), "YOUTUBE_TOKEN_FILE": str(key)}, tmp_path
    )
    assert (
        loose.returncode == 1 and "FAIL  YOUTUBE_TOKEN_FILE" in loose.stdout and "chmod 600" in loose.stdout
    )


def test_doctor_fails_a_chosen_backend_whose_settings_are_missing(tmp_path: Path) -> None:
    settings = tmp_path / "settings.toml"
    settings.write_text('fetch_source = "mangadex"\nupload_target = "youtube"\nscript_writer = "openai"\n')
    done = doctor({"PIPELINE_SETTINGS_FILE": str(settings)}, tmp_path, "--offline")
    assert done.returncode == 1, done.stdout
    assert "FAIL  mangadex: FETCH_SOURCE=mangadex needs MANGA_IDS or MANGA_SEARCH" in done.stdout
    assert "FAIL  youtube: UPLOAD_TARGET=youtube needs YOUTUBE_TOKEN_FILE" in done.stdout
    assert "FAIL  openai: SCRIPT_WRITER=openai for api.openai.com needs OPENAI_API_KEY" in done.stdout
    assert "You must hold the rights to what you publish" in done.stdout  # MangaDex is opt-in


def test_doctor_shows_each_accounts_backends(tmp_path: Path) -> None:
    token = tmp_path / "kenh-a.json"
    token.write_text("{}")
    token.chmod(0o600)
    settings = tmp_path / "settings.toml"
    settings.write_text(
        'fetch_source = "mangadex"\ntts_engine = "edge-tts"\nupload_target = "youtube"\n'
        f'[accounts.kenh-a]\nmanga_search = "rồng"\nyoutube_token_file = "{token}"\n'
        'tts_voice = "vi-VN-NamMinhNeural"\n',
        encoding="utf-8",
    )
    done = doctor({"PIPELINE_SETTINGS_FILE": str(settings)}, tmp_path, "--offline")
    assert done.returncode == 0, done.stdout
    lines = done.stdout.splitlines()
    assert "fetch:  per account, below" in lines and "account kenh-a:" in lines
    assert "  fetch:  mangadex at https://api.mangadex.org, search 'rồng', chapters in vi" in lines
    assert "  tts:    edge-tts, voice vi-VN-NamMinhNeural, rate +0%, pitch +0Hz" in lines
    assert f"  upload: youtube, private, token {token}" in lines


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((), "error: --client-secrets: name the OAuth client JSON"),
        (("--client-secrets", "/nonexistent.json"), "(/nonexistent.json does not exist)"),
        (("--client-secrets", __file__), "error: --token-file: name where to write the token"),
        (("--client-secrets", __file__, "--token-file", "t.json", "--port", "0"), "error: --port"),
        (("--client-secrets", __file__, "--token-file", "t.json"), "is not an OAuth client file"),
    ],
    ids=["no-client", "missing-client", "no-token-file", "bad-port", "not-a-client"],
)
def test_youtube_auth_refuses_what_it_cannot_use_with_exit_2(
    tmp_path: Path, args: tuple[str, ...], message: str
) -> None:
    done = doctor(
        {"PIPELINE_SETTINGS_FILE": str(tmp_path / "none.toml")}, tmp_path, *args, command="youtube-auth"
    )
    assert done.returncode == 2 and message in done.stderr, done.stderr
    assert "Traceback" not in done.stderr and len(done.stderr.strip().splitlines()) == 1


def test_doctor_reads_the_data_dir_without_creating_it(tmp_path: Path) -> None:
    env = {"PIPELINE_SETTINGS_FILE": str(tmp_path / "none.toml")}
    done = doctor(env, tmp_path, "--offline")
    assert done.returncode == 0, done.stdout + done.stderr
    data = tmp_path / "data"
    said = f"ok    data dir: {data} does not exist yet; it can be created ({tmp_path} is writable)"
    assert said in done.stdout
    assert not data.exists()
    (tmp_path / "a-file").write_text("")
    blocked = doctor({**env, "DATA_DIR": str(tmp_path / "a-file" / "data")}, tmp_path, "--offline")
    assert blocked.returncode == 1
    said = f"FAIL  data dir: {tmp_path / 'a-file' / 'data'} does not exist and cannot be created"
    assert said in blocked.stdout


def test_doctor_warns_when_the_local_source_has_no_chapter_left(
    settings_path: Path, tmp_path: Path, monkeypatch
) -> None:
    from services.pipeline.doctor import run_checks
    from services.pipeline.providers.fetch import sample_chapter
    from services.pipeline.stages.fetcher import handler as fetch

    data = tmp_path / "data"
    monkeypatch.setenv("DATA_DIR", str(data))
    monkeypatch.delenv("SAMPLES_DIR", raising=False)

    def local_check():
        (check,) = [c for c in run_checks(load_settings(), data, online=False) if c.name == "local chapters"]
        assert not check.required  # a warning: a fresh data dir is not broken
        return check

    empty = local_check()
    assert not empty.ok
    assert empty.detail.startswith(f"no chapter in {data / 'samples'}: a video job would find no manga")
    assert "SAMPLES_DIR/<manga>/chapter-0001/panel-*.png" in empty.detail
    assert "FETCH_SOURCE=mangadex" in empty.detail
    assert not data.exists()  # the check only reads
    sample_chapter.make_chapter(data / "samples", panels=1)
    left = local_check()
    assert left.ok and left.detail == f"1 of 1 chapter(s) in {data / 'samples'} not made into a video yet"
    assert fetch({"job_id": "job-takes-it"}, RecordingContext(data_dir=data))["status"] == "success"
    taken = local_check()
    assert not taken.ok and taken.detail.startswith(f"all 1 chapter(s) in {data / 'samples'} are taken")
    monkeypatch.setenv("FETCH_SOURCE", "mangadex")
    monkeypatch.setenv("MANGA_IDS", '["8f1c2d3e-0000-4000-8000-000000000001"]')
    assert [c for c in run_checks(load_settings(), data, online=False) if c.name == "local chapters"] == []
