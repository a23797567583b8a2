"""``tailor-evo eval --data FILE``: problems from a file, in our format or the public KK format."""

import json
from pathlib import Path

import pytest

from tailor_evo.tasks import get_task
from tailor_evo.tasks.base import Problem
from tests.cli_helpers import run_cli

PUBLIC = Path(__file__).resolve().parents[2] / "shared" / "data" / "kk-official" / "test-sample.jsonl"


class Oracle:
    """An engine that answers gold for the problems whose question is in ``right``, garbage otherwise."""

    def __init__(self, problems: list[Problem], right: set[str]):
        self.by_question = {p.question: p for p in problems}
        self.right = right
        self.task = get_task("kk")

    def generate(self, prompts, params, **kw):
        from tailor_evo.generation.base import Completion

        out = []
        for prompt in prompts:
            text = prompt if isinstance(prompt, str) else prompt[-1]["content"]
            p = next(p for q, p in self.by_question.items() if q in text)
            reply = self.task.reference_completion(p) if p.question in self.right else "no idea"
            out.append([Completion(text=reply, token_ids=[1, 2], logprobs=None, finish_reason="stop")
                        for _ in range(params.n)])
        return out


def _eval_with(monkeypatch, problems, right):
    import tailor_evo.trainers.eval_cli as eval_cli

    monkeypatch.setattr(eval_cli, "make_engine", lambda spec, **kw: Oracle(problems, right))


def test_eval_data_in_our_format_scores_the_files_problems(tmp_path, monkeypatch, capsys):
    task = get_task("kk")
    problems = task.generate(6, 123, levels=[2, 3])
    path = tmp_path / "mine.jsonl"
    path.write_text("".join(json.dumps(task.to_record(p)) + "\n" for p in problems))
    _eval_with(monkeypatch, problems, {problems[0].question, problems[1].question, problems[3].question})
    out = tmp_path / "r"
    code, cap = run_cli(monkeypatch, capsys, ["eval", "--model", "x", "--task", "kk", "--data", str(path), "--k", "1",
                                            "--out", str(out)])
    assert code == 0, cap.err
    res = json.loads((out / "results.json").read_text())
    assert res["overall"]["accuracy"] == pytest.approx(3 / 6) and res["data"] == str(path)
    assert {m["level"]: m["n_problems"] for m in res["per_level"]} == {2: 3, 3: 3}
    # --levels picks a level of the file; --n-per-level caps it
    code, cap = run_cli(monkeypatch, capsys, ["eval", "--model", "x", "--task", "kk", "--data", str(path), "--k", "1",
                                            "--levels", "3", "--n-per-level", "2", "--out", str(tmp_path / "r3")])
    assert code == 0, cap.err
    res = json.loads((tmp_path / "r3" / "results.json").read_text())
    assert [(m["level"], m["n_problems"]) for m in res["per_level"]] == [(3, 2)]


@pytest.mark.skipif(not PUBLIC.exists(), reason="the public KK sample is not beside the repository")
def test_eval_data_reads_the_public_kk_format(tmp_path, monkeypatch, capsys):
    task = get_task("kk")
    rows = [json.loads(line) for line in PUBLIC.read_text().splitlines()]
    problems = [task.from_record(r) for r in rows]
    three = [p for p in problems if p.difficulty == 3]
    _eval_with(monkeypatch, problems, {p.question for p in three[:5]})
    out = tmp_path / "pub"
    code, cap = run_cli(monkeypatch, capsys, ["eval", "--model", "x", "--task", "kk", "--data", str(PUBLIC),
                                            "--levels", "3", "--k", "1", "--out", str(out)])
    assert code == 0, cap.err
    res = json.loads((out / "results.json").read_text())
    assert res["overall"]["n_problems"] == len(three) == 20
    assert res["overall"]["accuracy"] == pytest.approx(5 / 20)


def test_eval_data_malformed_row_names_the_line(tmp_path, monkeypatch, capsys):
    task = get_task("kk")
    good = json.dumps(task.to_record(task.generate(1, 1, levels=[3])[0]))
    bad = json.dumps({"quiz": "x", "names": ["Rosa", "Mei"], "statements": "(('telling-truth', 1),)"})
    path = tmp_path / "bad.jsonl"
    path.write_text(good + "\n" + good + "\n" + bad + "\n")
    code, cap = run_cli(monkeypatch, capsys, ["eval", "--model", "x", "--task", "kk", "--data", str(path),
                                            "--out", str(tmp_path / "r")])
    assert code == 2
    line = cap.err.strip()
    assert "bad.jsonl:3" in line and "statements" in line, line
    # a level the file does not hold is an error, not an empty score
    code, cap = run_cli(monkeypatch, capsys, ["eval", "--model", "x", "--task", "kk",
                                            "--data", str(path.with_name("ok.jsonl")), "--out", str(tmp_path / "r2")])
    assert code == 2 and "not found" in cap.err
    ok = tmp_path / "ok.jsonl"
    ok.write_text(good + "\n")
    code, cap = run_cli(monkeypatch, capsys, ["eval", "--model", "x", "--task", "kk", "--data", str(ok), "--levels", "5",
                                            "--out", str(tmp_path / "r3")])
    assert code == 2 and "people=[5]" in cap.err and "3: 1" in cap.err
