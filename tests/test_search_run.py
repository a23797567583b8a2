"""End-to-end tests of the search loop on the toy task: outputs, exact resume, archive CLI, LLM paths."""

from __future__ import annotations

import ast
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import polars as pl
import pytest
import test_search_toytask as toy
from click.testing import CliRunner

from tailor_evo.cli import cli
from tailor_evo.generation.base import Completion
from tailor_evo.rundir import RunDir
from tailor_evo.search.archive import load_archive
from tailor_evo.search.engine import CHECKPOINT, SearchConfig, load_checkpoint, run_search
from tailor_evo.tasks.base import split_seed

TESTS = Path(__file__).parent


def small_cfg(tmp_path: Path, generations: int = 4, **kw) -> SearchConfig:
    cfg = SearchConfig(task=toy.TOY, workers=1, **kw)
    cfg.evolution.seed_libraries = [toy.seed_library(tmp_path / "rb.json", {"left": toy.LEFT})]
    cfg.evolution.generations = generations
    cfg.evolution.population = 8
    cfg.evolution.offspring = 8
    cfg.evolution.init_random = 4
    cfg.problems.pool = 64
    cfg.problems.per_eval = 8
    cfg.problems.probe = 4
    cfg.problems.report = 6
    cfg.archive.min_problems = 12
    return cfg


def archive_rows(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "archive.jsonl").read_text().splitlines()]


def test_search_writes_all_outputs(tmp_path):
    cfg = small_cfg(tmp_path)
    res = run_search(cfg, tmp_path / "run", progress=False)
    run = tmp_path / "run"
    assert res.archive and res.generations == 4
    for p in res.archive:
        assert p.quality >= cfg.archive.quality_floor and p.n_problems >= 12 and p.samples
    metrics = RunDir(run).read_metrics()
    assert [m["generation"] for m in metrics] == [0, 1, 2, 3, 4]
    assert all({"best_quality", "mean_quality", "coverage", "archive_size", "operator_ok"} <= set(m) for m in metrics)
    assert [m["archive_size"] for m in metrics] == sorted(m["archive_size"] for m in metrics)
    assert pl.read_parquet(run / "archive.parquet").height == len(res.archive)
    assert [p.id for p in load_archive(run)] == [p.id for p in res.archive]
    assert (run / "plots" / "progress.png").stat().st_size > 0
    assert (run / "plots" / "archive_scatter.png").stat().st_size > 0
    report = (run / "report.md").read_text()
    assert "coverage" in report and f"**{len(res.archive)}**" in report
    assert (run / "checkpoints" / CHECKPOINT).exists()


def test_same_seed_same_archive_any_worker_count(tmp_path):
    a = run_search(small_cfg(tmp_path, 3), tmp_path / "a", progress=False, report=False)
    cfg = small_cfg(tmp_path, 3)
    cfg.workers = 2
    run_search(cfg, tmp_path / "b", progress=False, report=False)
    assert archive_rows(tmp_path / "a") == archive_rows(tmp_path / "b")
    c = run_search(small_cfg(tmp_path, 3, seed=1), tmp_path / "c", progress=False, report=False)
    assert [p.id for p in c.archive] != [p.id for p in a.archive]


class _Interrupt(Exception):
    pass


def test_resume_after_interruption_equals_uninterrupted(tmp_path):
    full = tmp_path / "full"
    run_search(small_cfg(tmp_path, 5), full, progress=False, report=False)

    calls = {"n": 0}

    def flaky_map(fn, jobs):
        for job in jobs:
            calls["n"] += 1
            if calls["n"] > 20:        # dies inside generation 2
                raise _Interrupt
            yield fn(job)

    part = tmp_path / "part"
    with pytest.raises(_Interrupt):
        run_search(small_cfg(tmp_path, 5), part, progress=False, report=False, map_fn=flaky_map)
    assert load_checkpoint(RunDir(part)).generation == 1
    run_search(small_cfg(tmp_path, 5), part, resume=True, progress=False, report=False)
    assert archive_rows(part) == archive_rows(full)
    assert [m["generation"] for m in RunDir(part).read_metrics()] == [0, 1, 2, 3, 4, 5]


KILL_SCRIPT = """
import sys
sys.path.insert(0, {tests!r})
from pathlib import Path
import test_search_run as t
from tailor_evo.search.engine import run_search
cfg = t.small_cfg(Path({tmp!r}), 6)
cfg.workers = 2
run_search(cfg, Path({run!r}), resume={resume}, progress=False, report=False)
"""


@pytest.mark.integration
def test_killed_subprocess_resumes_to_the_same_archive(tmp_path):
    full = tmp_path / "full"
    run_search(small_cfg(tmp_path, 6), full, progress=False, report=False)
    run = tmp_path / "killed"
    env = {**os.environ, "TOY_DELAY": "0.005"}

    def start(resume: bool) -> subprocess.Popen:
        code = KILL_SCRIPT.format(tests=str(TESTS), tmp=str(tmp_path), run=str(run), resume=resume)
        return subprocess.Popen([sys.executable, "-c", code], env=env, start_new_session=True,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)

    proc = start(False)
    ckpt = run / "checkpoints" / CHECKPOINT
    deadline = time.time() + 60
    while time.time() < deadline and proc.poll() is None:
        if ckpt.exists() and load_checkpoint(RunDir(run)).generation >= 1:
            break
        time.sleep(0.02)
    assert proc.poll() is None, proc.communicate()
    time.sleep(0.05)                                   # now inside a later generation
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    done = load_checkpoint(RunDir(run)).generation
    assert done < 6
    proc = start(True)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err.decode()[-2000:]
    assert archive_rows(run) == archive_rows(full)
    assert [m["generation"] for m in RunDir(run).read_metrics()] == list(range(7))


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("arch")
    run_search(small_cfg(tmp, 4), tmp / "run", progress=False)
    run_search(small_cfg(tmp, 2, seed=3), tmp / "other", progress=False, report=False)
    return tmp


def test_archive_show_top_lineage(finished_run):
    run = str(finished_run / "run")
    r = CliRunner().invoke(cli, ["archive", "show", run])
    assert r.exit_code == 0, r.output
    prims = load_archive(run)
    assert f"{len(prims)} primitives" in r.output and all(p.id[:12] in r.output for p in prims)
    r = CliRunner().invoke(cli, ["archive", "top", run, "-k", "2", "--by", "novelty"])
    assert r.exit_code == 0
    best = max(prims, key=lambda p: (p.novelty, p.quality))
    assert r.output.splitlines()[2].startswith(best.id[:12]) and len(r.output.splitlines()) == 4
    child = max(prims, key=lambda p: p.generation)
    r = CliRunner().invoke(cli, ["archive", "lineage", run, child.id[:8]])
    assert r.exit_code == 0, r.output
    assert child.id[:12] in r.output.splitlines()[0]
    for parent in child.parents:
        assert parent[:12] in r.output
    r = CliRunner().invoke(cli, ["archive", "lineage", run, "zzzz"])
    assert r.exit_code != 0


def test_archive_export_and_diff(finished_run, tmp_path):
    run = str(finished_run / "run")
    out = tmp_path / "a.parquet"
    r = CliRunner().invoke(cli, ["archive", "export", run, "--format", "parquet", "-o", str(out)])
    assert r.exit_code == 0, r.output
    df = pl.read_parquet(out)
    assert df["id"].to_list() == [p.id for p in load_archive(run)]
    assert json.loads(df["program"][0]) == load_archive(run)[0].program
    r = CliRunner().invoke(cli, ["archive", "export", run])
    assert [json.loads(x)["id"] for x in r.output.splitlines() if x.startswith("{")] == df["id"].to_list()
    r = CliRunner().invoke(cli, ["archive", "diff", run, run])
    assert r.exit_code == 0 and "A covers 100.0% of B" in r.output
    r = CliRunner().invoke(cli, ["archive", "diff", run, str(finished_run / "other")])
    assert r.exit_code == 0 and "shared" in r.output


def test_search_cli_and_resume_guard(tmp_path):
    cfg_path = tmp_path / "c.yaml"
    cfg = small_cfg(tmp_path, 1)
    from tailor_evo.config import dump_yaml

    cfg_path.write_text(dump_yaml(cfg))
    out = tmp_path / "run"
    r = CliRunner().invoke(cli, ["search", "--config", str(cfg_path), "--out", str(out), "--quiet",
                                 "--set", "evolution.population=6"])
    assert r.exit_code == 0, (r.output, r.exception)
    assert "archive:" in r.output and (out / "report.md").exists()
    r = CliRunner().invoke(cli, ["search", "--config", str(cfg_path), "--out", str(out)])
    assert r.exit_code != 0            # non-empty run directory without --resume/--overwrite
    r = CliRunner().invoke(cli, ["search", "--out", str(out), "--resume", "--operator", "llm"])
    assert r.exit_code != 0 and "cannot change" in str(r.exception)
    r = CliRunner().invoke(cli, ["search", "--config", str(cfg_path), "--out", str(tmp_path / "x"), "--operator", "llm"])
    assert r.exit_code != 0 and "llm" in str(r.exception)


class FakeEngine:
    """Replies like a weak model: some valid JSON primitives, some junk; solves toy sums if asked."""

    def __init__(self) -> None:
        self.calls = 0
        self.chat = False

    def generate(self, prompts, params):
        out = []
        for prompt in prompts:
            self.calls += 1
            if isinstance(prompt, list):
                self.chat = True
                prompt = "\n".join(m["content"] for m in prompt)
            if "Add [" in prompt:
                nums = ast.literal_eval(re.search(r"Add (\[.*?\])", prompt).group(1))
                ans = sum(nums) + (1 if self.calls % 5 == 0 else 0)
                text = f" I add {nums[0]} first. Then the rest. </think> <answer> {ans} </answer>"
            elif self.calls % 3 == 0:
                text = "I think the strategy is good."
            elif self.calls % 3 == 1:
                prog = {"op": "seq", "args": [{"op": "check", "args": []},
                                              {"op": "seq", "args": [{"op": "take_right", "args": []},
                                                                     {"op": "end", "args": []}]}]}
                if self.calls % 2:
                    prog = {"op": "seq", "args": [{"op": "take_left", "args": []}, prog]}
                text = json.dumps({"description": f"idea {self.calls}", "program": prog})
            else:
                text = '{"description": "bad", "program": {"op": "teleport", "args": []}}'
            out.append([Completion(text=text, token_ids=[])])
        return out


@pytest.mark.parametrize("chat", [False, True])
def test_llm_operator_and_renderer_with_fake_engine(tmp_path, chat):
    cfg = small_cfg(tmp_path, 2, operator="llm", renderer="llm")
    cfg.llm.spec = "fake:engine"
    cfg.llm.chat = chat
    cfg.archive.quality_floor = 0.5
    engine = FakeEngine()
    res = run_search(cfg, tmp_path / "run", progress=False, engine=engine)
    assert engine.chat == chat
    metrics = RunDir(tmp_path / "run").read_metrics()
    invalid = {}
    for m in metrics:
        for k, v in m["llm_invalid"].items():
            invalid[k] = invalid.get(k, 0) + v
    assert invalid.get("no JSON object", 0) > 0 and any(k.startswith("invalid") for k in invalid)
    assert metrics[-1]["renderer_wrong"] > 0
    assert any(p.operator.startswith("llm:") for p in res.archive) or sum(m["llm_valid"] for m in metrics) > 0
    task = toy.ToySum()
    problems = {q.id: q for q in task.generate(cfg.problems.pool, split_seed(cfg.seed, "search"))
                + task.generate(cfg.problems.probe, split_seed(cfg.seed, "search-probe"))}
    samples = [s for p in res.archive for s in p.samples]
    assert samples and all(task.verify(problems[s["problem_id"]], s["completion"]).correct for s in samples)


def test_map_elites_selection_runs_and_keeps_cell_elites(tmp_path):
    cfg = small_cfg(tmp_path, 3, selection="map-elites")
    res = run_search(cfg, tmp_path / "run", progress=False, report=False)
    state = load_checkpoint(RunDir(tmp_path / "run"))
    from tailor_evo.search.selection import MapElitesGrid

    cells = [MapElitesGrid().cell(p.descriptors, ("length", "take", "verify")) for p in state.population]
    assert len(cells) == len(set(cells))            # one elite per behaviour cell
    assert res.archive and all(p.quality >= 0.9 for p in res.archive)


def test_unusable_seeds_are_reported_not_dropped_silently(tmp_path):
    cfg = small_cfg(tmp_path, 1)
    cfg.evolution.seed_libraries = cfg.evolution.seed_libraries + [str(tmp_path / "missing.json")]
    run_search(cfg, tmp_path / "run", progress=False)
    first = RunDir(tmp_path / "run").read_metrics()[0]
    assert len(first["seed_errors"]) == 1 and "missing.json" in first["seed_errors"][0]
    assert "missing.json" in (tmp_path / "run" / "report.md").read_text()
