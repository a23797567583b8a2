"""The data commands on generated data, on the public KK sample, and on bad input."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

PUBLIC = Path(__file__).resolve().parents[2] / "shared" / "data" / "kk-official" / "test-sample.jsonl"


def run(*args):
    return subprocess.run([sys.executable, "-m", "tailor_evo", "data", *args], capture_output=True, text=True)


def read(path):
    return [json.loads(line) for line in Path(path).read_text().splitlines()]


@pytest.mark.parametrize("task,levels", [("kk", "3,4"), ("igsm", "2-3")])
def test_generate_solve_score_round_trip(tmp_path, task, levels):
    gen = tmp_path / "p.jsonl"
    proc = run("generate", "--task", task, "--levels", levels, "--n", "6", "--seed", "3", "-o", str(gen))
    assert proc.returncode == 0, proc.stderr
    records = read(gen)
    assert len(records) == 6 and all(r["task"] == task for r in records)
    solved = tmp_path / "s.jsonl"
    proc = run("solve", "--task", task, "--input", str(gen), "-o", str(solved))
    assert proc.returncode == 0 and "agrees with the record's answer on 6/6" in proc.stdout
    # the reference completion scores correct; a corrupted answer does not
    with_completion = tmp_path / "c.jsonl"
    rows = [dict(r, completion=r["reference_completion"]) for r in records]
    rows[0]["completion"] = rows[0]["completion"].replace("</answer>", "")   # truncated: no credit
    with_completion.write_text("".join(json.dumps(r) + "\n" for r in rows))
    scored = tmp_path / "scored.jsonl"
    proc = run("score", "--task", task, "--input", str(with_completion), "-o", str(scored))
    assert proc.returncode == 0, proc.stderr
    out = read(scored)
    assert [r["correct"] for r in out] == [False] + [True] * 5
    assert "accuracy 0.833" in proc.stdout


@pytest.mark.skipif(not PUBLIC.exists(), reason="public KK sample not present beside the repository")
def test_public_kk_sample_is_solved_and_scored(tmp_path):
    solved = tmp_path / "solved.jsonl"
    proc = run("solve", "--task", "kk", "--input", str(PUBLIC), "-o", str(solved))
    assert proc.returncode == 0, proc.stderr
    rows = read(solved)
    assert len(rows) == 100 and all(r["solver_answer"] == r["solution"] for r in rows)
    answers = tmp_path / "answers.jsonl"
    answers.write_text("".join(
        json.dumps(dict(r, completion=f"<think> ... </think> <answer> {r['solution_text_format']} </answer>")) + "\n"
        for r in read(PUBLIC)))
    proc = run("score", "--task", "kk", "--input", str(answers), "-o", str(tmp_path / "scored.jsonl"))
    assert proc.returncode == 0, proc.stderr
    assert "accuracy 1.000" in proc.stdout


def one_line_error(proc):
    assert proc.returncode == 2, (proc.stdout, proc.stderr)
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    return lines[0]


def test_bad_input_names_file_line_and_field(tmp_path):
    good = tmp_path / "p.jsonl"
    assert run("generate", "--task", "kk", "--levels", "3", "--n", "2", "-o", str(good)).returncode == 0
    lines = good.read_text().splitlines()

    bad_json = tmp_path / "bad.jsonl"
    bad_json.write_text(lines[0] + "\n{not json\n")
    msg = one_line_error(run("solve", "--task", "kk", "--input", str(bad_json), "-o", str(tmp_path / "o.jsonl")))
    assert f"{bad_json}:2" in msg and "invalid JSON" in msg

    no_completion = tmp_path / "nc.jsonl"
    no_completion.write_text(lines[0] + "\n")
    msg = one_line_error(run("score", "--task", "kk", "--input", str(no_completion), "-o", str(tmp_path / "o.jsonl")))
    assert f"{no_completion}:1" in msg and "'completion'" in msg

    wrong_task = tmp_path / "igsm.jsonl"
    assert run("generate", "--task", "igsm", "--levels", "2", "--n", "1", "-o", str(wrong_task)).returncode == 0
    msg = one_line_error(run("solve", "--task", "kk", "--input", str(wrong_task), "-o", str(tmp_path / "o.jsonl")))
    assert f"{wrong_task}:1" in msg

    msg = one_line_error(run("generate", "--task", "chess", "--n", "1", "-o", str(tmp_path / "o.jsonl")))
    assert "unknown task 'chess'" in msg
    msg = one_line_error(run("solve", "--task", "kk", "--input", str(tmp_path / "missing.jsonl"),
                             "-o", str(tmp_path / "o.jsonl")))
    assert "missing.jsonl" in msg and "not found" in msg
