import pytest
import yaml

from tailor_evo.errors import InputError
from tailor_evo.io import atomic_open, iter_jsonl, read_records, write_records
from tailor_evo.rundir import RunDir


def test_jsonl_errors_name_file_line_and_field(tmp_path):
    path = tmp_path / "d.jsonl"
    path.write_text('{"a": 1}\n\n{"a": 2\n')
    with pytest.raises(InputError) as err:
        list(iter_jsonl(path))
    assert f"{path}:3" in str(err.value) and "invalid JSON" in str(err.value)
    path.write_text('{"a": 1}\n{"b": 2}\n')
    with pytest.raises(InputError) as err:
        list(iter_jsonl(path, required=["a"]))
    assert f"{path}:2" in str(err.value) and "'a'" in str(err.value)
    with pytest.raises(InputError, match="not found"):
        list(iter_jsonl(tmp_path / "nope.jsonl"))


def test_atomic_write_keeps_old_file_on_failure(tmp_path):
    path = tmp_path / "out.txt"
    path.write_text("old")
    with pytest.raises(RuntimeError):
        with atomic_open(path) as fh:
            fh.write("new partial")
            raise RuntimeError("crash")
    assert path.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["out.txt"]


@pytest.mark.parametrize("suffix", [".jsonl", ".parquet"])
def test_records_round_trip(tmp_path, suffix):
    rows = [{"id": "a", "x": 1, "s": "t"}, {"id": "b", "x": 2, "s": "u"}]
    path = tmp_path / f"r{suffix}"
    write_records(path, rows)
    assert read_records(path) == rows


def test_rundir_refuses_non_empty_without_resume(tmp_path):
    run = RunDir.create(tmp_path / "run")
    run.log({"step": 1})
    with pytest.raises(InputError, match="--resume"):
        RunDir.create(tmp_path / "run")
    with pytest.raises(InputError, match="nothing to resume"):
        RunDir.create(tmp_path / "run", resume=True)
    run.save_config({"a": 1})
    with pytest.raises(InputError, match="nothing to resume from: no checkpoint"):
        RunDir.create(tmp_path / "run", resume=True)
    (run.checkpoints / "step-000001").mkdir()
    again = RunDir.create(tmp_path / "run", resume=True)
    # a torn last line (crash mid-write) is dropped, not fatal
    with open(again.metrics_path, "a") as fh:
        fh.write('{"step": 2, "lo')
    assert again.read_metrics() == [{"step": 1}]
    again.truncate_metrics(lambda r: r["step"] < 1)
    assert again.read_metrics() == []
    assert yaml.safe_load((tmp_path / "run" / "config.yaml").read_text()) == {"a": 1}
