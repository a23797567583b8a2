"""Hugging Face datasets as input (SFT --data, eval --data) and output (data warmstart)."""

from __future__ import annotations

import json

import pytest
from test_eval_data import PUBLIC, _eval_with

from tailor_evo.errors import InputError
from tailor_evo.hf_datasets import is_dataset_source, load_rows, split_source, write_dataset_dict
from tailor_evo.io import read_problems
from tailor_evo.tasks import get_task
from tests.cli_helpers import run_cli

datasets = pytest.importorskip("datasets")


def _kk_dataset(tmp_path, problems, name="kk-ds"):
    task = get_task("kk")
    rows = [{**task.to_record(p), "meta": json.dumps(p.meta)} for p in problems]
    return write_dataset_dict(tmp_path / name, {"test": rows, "train": rows[:1]})


def test_sources_are_told_apart(tmp_path):
    (tmp_path / "a.jsonl").write_text("{}\n")
    assert not is_dataset_source(tmp_path / "a.jsonl") and not is_dataset_source(tmp_path / "missing.jsonl")
    assert is_dataset_source("owner/name") and is_dataset_source("owner/name:test")
    assert split_source("owner/name:test") == ("owner/name", "test")
    assert not is_dataset_source(tmp_path)        # a plain directory is not a dataset


def test_eval_scores_a_saved_dataset_and_a_split_of_it(tmp_path, monkeypatch, capsys):
    problems = get_task("kk").generate(4, 321, levels=[3])
    path = _kk_dataset(tmp_path, problems)
    loaded = datasets.load_from_disk(str(path))
    assert set(loaded) == {"test", "train"} and loaded["test"].num_rows == 4
    _eval_with(monkeypatch, problems, {problems[0].question})
    code, cap = run_cli(monkeypatch, capsys, ["eval", "--model", "x", "--task", "kk", "--data", str(path), "--k", "1",
                                            "--out", str(tmp_path / "r")])
    assert code == 0, cap.err
    res = json.loads((tmp_path / "r" / "results.json").read_text())
    assert res["overall"]["n_problems"] == 4 and res["overall"]["accuracy"] == pytest.approx(0.25)  # "test" split
    assert [p.id for _, p in read_problems(get_task("kk"), f"{path}:train")] == [problems[0].id]


def test_eval_reads_the_public_format_from_a_dataset(tmp_path, monkeypatch, capsys):
    if not PUBLIC.exists():
        pytest.skip("the public KK sample is not beside this checkout")
    rows = [json.loads(line) for line in PUBLIC.read_text().splitlines()][:6]
    path = write_dataset_dict(tmp_path / "public", {"test": rows})
    problems = [p for _, p in read_problems(get_task("kk"), str(path))]
    from_file = [p for _, p in read_problems(get_task("kk"), PUBLIC)][:6]
    assert [p.to_dict() for p in problems] == [p.to_dict() for p in from_file]


def test_a_dataset_id_in_the_local_hub_cache(tmp_path, monkeypatch):
    from huggingface_hub import constants

    commit = "0" * 40
    repo = tmp_path / "hub" / "datasets--tailor--kk-mini"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(commit)
    data = repo / "snapshots" / commit / "data"
    data.mkdir(parents=True)
    task = get_task("kk")
    problems = task.generate(3, 5, levels=[3])
    (data / "test.jsonl").write_text("".join(json.dumps(task.to_record(p)) + "\n" for p in problems))
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    got = [p for _, p in read_problems(task, "tailor/kk-mini")]
    assert [p.to_dict() for p in got] == [p.to_dict() for p in problems]
    with pytest.raises(InputError, match="local Hugging Face cache only"):
        load_rows("tailor/not-there", "test")


def test_bad_datasets_are_named(tmp_path):
    path = write_dataset_dict(tmp_path / "two", {"a": [{"x": 1}], "b": [{"x": 2}]})
    with pytest.raises(InputError, match=r"choose a split .*splits: a, b"):
        load_rows(path, "train")
    with pytest.raises(InputError, match="splits: a, b"):
        load_rows(f"{path}:c", "train")
    task = get_task("kk")
    rec = {**task.to_record(task.generate(1, 0, levels=[3])[0]), "meta": "{not json"}
    bad = write_dataset_dict(tmp_path / "bad", {"test": [rec]})
    with pytest.raises(InputError) as exc:
        read_problems(task, str(bad))
    assert (exc.value.line, exc.value.field) == (1, "meta")


def test_warmstart_writes_a_dataset_dict_that_sft_reads(tmp_path):
    from click.testing import CliRunner

    from tailor_evo.cli import cli
    from tailor_evo.trainers.checkpoint import load_backbone
    from tailor_evo.trainers.data import load_sft_data

    out = tmp_path / "ws"
    result = CliRunner().invoke(cli, ["data", "warmstart", "--task", "kk", "--method", "rule-based,four-behaviour",
                                      "--size", "6", "--levels", "3", "--format", "datasets", "-o", str(out)])
    assert result.exit_code == 0, result.output + repr(result.exception)
    loaded = datasets.load_from_disk(str(out))
    assert set(loaded) == {"rule_based", "four_behaviour"}
    assert loaded["rule_based"].num_rows == 6 and set(loaded["rule_based"]["method"]) == {"rule-based"}
    assert "Warm-start data card" in (out / "README.md").read_text()
    _, tokenizer = load_backbone("tiny")
    data = load_sft_data(f"{out}:four_behaviour", tokenizer, 4096)
    assert data.total == 6 and len(data.examples) == 6
    bad = CliRunner().invoke(cli, ["data", "warmstart", "--task", "kk", "--method", "rule-based", "--size", "2",
                                   "--format", "datasets", "-o", str(tmp_path / "x.jsonl")])
    assert isinstance(bad.exception, InputError) and "one directory" in str(bad.exception)
