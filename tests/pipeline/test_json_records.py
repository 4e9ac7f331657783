"""json_records: the one lock-and-rewrite of the daemon's small JSON files, and their versions."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from services.pipeline.json_records import (
    JsonRecordError,
    UnknownVersionError,
    encode_record,
    parse_record,
    read_json,
    update_json,
)


def test_a_missing_file_is_an_empty_record_and_the_first_change_creates_it(tmp_path: Path) -> None:
    path = tmp_path / "new" / "records.json"
    assert read_json(path, version=1) == {}
    assert update_json(path, lambda record: record.setdefault("a", {"n": 1}), version=1) == {"n": 1}
    assert json.loads(path.read_text(encoding="utf-8")) == {"version": 1, "a": {"n": 1}}
    assert read_json(path, version=1) == {"a": {"n": 1}}  # callers never see the version
    assert (tmp_path / "new" / "records.json.lock").exists()


def test_the_file_is_readable_utf8_with_the_version_first(tmp_path: Path) -> None:
    path = tmp_path / "records.json"
    update_json(path, lambda record: record.update(b="Chương 2", a="Chương 1"), version=3, sort_keys=True)
    text = path.read_text(encoding="utf-8")
    assert text == '{\n  "version": 3,\n  "a": "Chương 1",\n  "b": "Chương 2"\n}\n'


def test_an_unversioned_file_reads_as_the_current_version_and_gains_the_field(tmp_path: Path) -> None:
    path = tmp_path / "records.json"
    path.write_text(json.dumps({"2026-02-06": {"count": 3}}))  # written before versions
    assert read_json(path, version=1) == {"2026-02-06": {"count": 3}}
    update_json(path, lambda record: record.update({"2026-02-07": {"count": 1}}), version=1)
    assert json.loads(path.read_text()) == {
        "version": 1,
        "2026-02-06": {"count": 3},
        "2026-02-07": {"count": 1},
    }


@pytest.mark.parametrize("found", [2, 0, "1", True, None], ids=["newer", "zero", "text", "bool", "null"])
def test_another_version_is_refused_and_the_file_left_alone(tmp_path: Path, found: object) -> None:
    path = tmp_path / "records.json"
    written = json.dumps({"version": found, "kept": True})
    path.write_text(written)
    message = rf"records\.json has format version {found!r}; this scheduler reads version 1 \(upgrade"
    with pytest.raises(UnknownVersionError, match=message):
        read_json(path, version=1)
    with pytest.raises(UnknownVersionError, match=message):
        update_json(path, lambda record: record.clear(), version=1)
    assert path.read_text() == written


@pytest.mark.parametrize(
    ("content", "message"),
    [("{not json", "is not valid JSON"), ("[1, 2]", "must hold a JSON object, not list")],
    ids=["not-json", "a-list"],
)
def test_a_file_that_is_no_record_is_refused_by_name(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "records.json"
    path.write_text(content)
    with pytest.raises(JsonRecordError, match=f"{re.escape(str(path))}.*{message}"):
        read_json(path, version=1)


def test_a_failed_change_and_an_unchanged_record_leave_the_file_as_it_was(tmp_path: Path) -> None:
    path = tmp_path / "records.json"
    path.write_text('{"a": 1}')  # unversioned: rewriting it would add the field
    with pytest.raises(RuntimeError):
        update_json(path, lambda record: (record.update(a=2), _fail()), version=1)
    assert update_json(path, lambda record: record.get("a"), version=1) == 1
    assert path.read_text() == '{"a": 1}'
    update_json(tmp_path / "none.json", lambda record: None, version=1)
    assert not (tmp_path / "none.json").exists()


def test_without_a_version_the_file_is_read_and_written_as_is(tmp_path: Path) -> None:
    path = tmp_path / "ledger.json"
    path.write_text('{"version": {"1": "job-a"}}')  # a manga folder named "version"
    update_json(path, lambda record: record.update(other={"1": "job-b"}), version=None)
    assert json.loads(path.read_text()) == {"version": {"1": "job-a"}, "other": {"1": "job-b"}}


def test_a_record_may_not_carry_its_own_version_key(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="must not carry its own 'version' key"):
        encode_record({"version": 2}, version=1)
    assert parse_record(tmp_path / "r.json", encode_record({"a": 1}, version=1), version=1) == {"a": 1}


def test_concurrent_updates_from_four_processes_all_land(tmp_path: Path) -> None:
    path = tmp_path / "records.json"
    script = (
        "import sys; from pathlib import Path;"
        "from services.pipeline.json_records import update_json\n"
        "def add(record, who=sys.argv[2]):\n"
        "    record['total'] = record.get('total', 0) + 1\n"
        "    record[who] = record.get(who, 0) + 1\n"
        "for _ in range(25): update_json(Path(sys.argv[1]), add, version=1)"
    )
    workers = [subprocess.Popen([sys.executable, "-c", script, str(path), f"w{n}"]) for n in range(4)]
    assert [w.wait(timeout=60) for w in workers] == [0, 0, 0, 0]
    assert read_json(path, version=1) == {"total": 100, "w0": 25, "w1": 25, "w2": 25, "w3": 25}
    assert json.loads(path.read_text())["version"] == 1


def _fail() -> None:
    raise RuntimeError("the change failed half way")
