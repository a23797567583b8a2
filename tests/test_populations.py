"""Seed library loading and validation, and the ``populations`` command."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from tailor_evo.errors import InputError
from tailor_evo.populations.library import SEEDS_DIR, list_libraries, load_library, validate_library

GOOD_PROGRAM = {"op": "primitive", "args": [{"op": "style_terse"}, {"op": "conclude"}]}


def write(tmp_path: Path, data, name: str = "lib.json") -> Path:
    path = tmp_path / name
    path.write_text(data if isinstance(data, str) else json.dumps(data), encoding="utf-8")
    return path


def test_shipped_libraries_are_valid() -> None:
    paths = list_libraries()
    assert SEEDS_DIR / "kk" / "rule-based.json" in paths and SEEDS_DIR / "kk" / "four-behaviour.json" in paths
    for path in paths:
        assert validate_library(path) == [], path


def test_load_by_name_path_and_task() -> None:
    a = load_library("kk/rule-based")
    b = load_library("rule-based", "kk")
    c = load_library(SEEDS_DIR / "kk" / "rule-based.json")
    assert a == b == c and a.task == "kk" and a.name == "rule-based"
    assert all(set(p) >= {"name", "description", "program"} for p in a)
    assert a.primitives[0].name == a[0]["name"] and a.primitives[0].program == a[0]["program"]
    assert len(load_library("kk/four-behaviour")) == 4


def test_bare_list_needs_a_task(tmp_path: Path) -> None:
    path = write(tmp_path, [{"name": "x", "description": "d", "program": GOOD_PROGRAM}])
    assert any("cannot tell the task" in e for e in validate_library(path))
    assert validate_library(path, "kk") == []
    assert load_library(path, "kk")[0]["name"] == "x"


def test_errors_name_file_entry_and_field(tmp_path: Path) -> None:
    data = {"task": "kk", "primitives": [
        {"name": "a", "description": "d", "program": {"op": "primitive", "args": [{"op": "style_terse"}]}},
        {"name": "a", "description": "", "program": GOOD_PROGRAM},
        {"description": "d", "program": GOOD_PROGRAM, "colour": "red"},
        "not an object",
    ]}
    path = write(tmp_path, data)
    errors = validate_library(path)
    assert all(e.startswith(str(path)) for e in errors)
    assert any("entry 0 (a): field 'program'" in e and "takes 2 argument(s)" in e for e in errors)
    assert any("entry 1 (a): field 'name': duplicate of entry 0" in e for e in errors)
    assert any("entry 1 (a): field 'description'" in e for e in errors)
    assert any("entry 2: field 'name': missing" in e for e in errors)
    assert any("entry 2" in e and "colour" in e for e in errors)
    assert any("entry 3: expected an object" in e for e in errors)
    with pytest.raises(InputError, match="more"):
        load_library(path)


@pytest.mark.parametrize("content, needle", [
    ("{\n  \"task\": \"kk\",\n  oops\n}", ":3: invalid JSON"),
    (json.dumps({"task": "chess", "primitives": []}), "unknown task 'chess'"),
    (json.dumps({"task": "kk"}), "field 'primitives': missing"),
    (json.dumps({"task": "kk", "primitives": {}}), "must be a list"),
    (json.dumps(42), "expected a list of primitives"),
])
def test_malformed_files(tmp_path: Path, content: str, needle: str) -> None:
    errors = validate_library(write(tmp_path, content))
    assert errors and any(needle in e for e in errors), errors


def test_wrong_task_is_reported(tmp_path: Path) -> None:
    path = write(tmp_path, {"task": "kk", "primitives": [{"name": "x", "description": "d", "program": GOOD_PROGRAM}]})
    assert any("not 'igsm'" in e for e in validate_library(path, "igsm"))


def test_cli_validate_and_list(tmp_path: Path) -> None:
    from tailor_evo.cli import cli

    runner = CliRunner()
    ok = runner.invoke(cli, ["populations", "validate", "kk/rule-based"])
    assert ok.exit_code == 0 and "OK" in ok.output
    listed = runner.invoke(cli, ["populations", "list", "--task", "kk"])
    assert listed.exit_code == 0 and "kk/four-behaviour" in listed.output and "backward-chaining" in listed.output
    shown = runner.invoke(cli, ["populations", "show", "kk/four-behaviour"])
    assert shown.exit_code == 0 and "verify every claim" in shown.output


def test_cli_validate_bad_file_exits_2(tmp_path: Path) -> None:
    import subprocess
    import sys

    bad = write(tmp_path, {"task": "kk", "primitives": [{"name": "x", "program": GOOD_PROGRAM}]})
    exe = Path(sys.executable).parent / "tailor-evo"
    proc = subprocess.run([str(exe), "populations", "validate", str(bad)], capture_output=True, text=True)
    assert proc.returncode == 2
    assert f"{bad}: entry 0 (x): field 'description': missing" in proc.stderr
