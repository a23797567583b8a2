"""Evaluation: pass@k estimator, metrics against a scripted engine, problem-set disjointness, CLI."""

from __future__ import annotations

import json
from itertools import combinations

import pytest

from tailor_evo.errors import InputError
from tailor_evo.generation.base import SamplingParams
from tailor_evo.tasks.streams import eval_problems, training_problems
from tailor_evo.trainers.evaluate import OverlapError, assert_disjoint, evaluate, pass_at_k
from tests.cli_helpers import run_cli
from tests.toy_eval import ScriptedEngine, ToySumTask, correct_completion, wrong_completion


def _brute_pass_at_k(n: int, c: int, k: int) -> float:
    """Enumerate every k-subset of n samples (c correct) and count those with a correct one."""
    samples = [True] * c + [False] * (n - c)
    subsets = list(combinations(range(n), k))
    return sum(any(samples[i] for i in s) for s in subsets) / len(subsets)


@pytest.mark.parametrize("n,c,k", [(5, 2, 2), (4, 1, 1), (6, 0, 3), (3, 3, 2), (8, 3, 4), (10, 1, 10)])
def test_pass_at_k_matches_enumeration(n, c, k):
    assert pass_at_k(n, c, k) == pytest.approx(_brute_pass_at_k(n, c, k))


def test_pass_at_k_hand_values():
    # 1 - C(3,2)/C(5,2) = 1 - 3/10
    assert pass_at_k(5, 2, 2) == pytest.approx(0.7)
    assert pass_at_k(4, 1, 1) == pytest.approx(0.25)
    with pytest.raises(ValueError):
        pass_at_k(3, 1, 4)


def _scripted(problems, greedy_ok, greedy_bad_format, sample_correct, n_samples=4):
    """Greedy text per problem (correct / wrong / unformatted) and samples with a given number correct."""
    task = ToySumTask()
    greedy, samples = {}, {}
    for p in problems:
        prompt = task.prompt(p)
        if p.id in greedy_bad_format:
            greedy[prompt] = "the answer is probably " + str(p.answer)
        else:
            greedy[prompt] = correct_completion(p) if p.id in greedy_ok else wrong_completion(p)
        c = sample_correct[p.id]
        samples[prompt] = [correct_completion(p)] * c + [wrong_completion(p)] * (n_samples - c)
    return ScriptedEngine(greedy, samples)


def test_evaluate_metrics_against_known_answers():
    task = ToySumTask()
    problems = eval_problems(task, seed=3, levels=[2, 3], n_per_level=4)
    by_level = {2: [p for p in problems if p.difficulty == 2], 3: [p for p in problems if p.difficulty == 3]}
    greedy_ok = {by_level[2][0].id, by_level[2][1].id, by_level[2][2].id, by_level[3][0].id}
    bad_format = {by_level[3][3].id}
    correct_counts = dict(zip([p.id for p in problems], [4, 2, 0, 1, 3, 0, 0, 1]))
    engine = _scripted(problems, greedy_ok, bad_format, correct_counts)

    res = evaluate(engine, task, problems, k=[1, 2, 4], n_samples=4, batch_size=3, progress=False)

    assert res.level(2).accuracy == pytest.approx(3 / 4)
    assert res.level(3).accuracy == pytest.approx(1 / 4)
    assert res.overall.accuracy == pytest.approx(4 / 8)
    assert res.macro_accuracy == pytest.approx((0.75 + 0.25) / 2)
    assert res.level(3).format_error_rate == pytest.approx(1 / 4)
    assert res.overall.format_error_rate == pytest.approx(1 / 8)
    for level in (2, 3):
        counts = [correct_counts[p.id] for p in by_level[level]]
        for k in (1, 2, 4):
            want = sum(_brute_pass_at_k(4, c, k) for c in counts) / 4
            assert res.level(level).pass_at_k[k] == pytest.approx(want)
    assert res.overall.sample_accuracy == pytest.approx(sum(correct_counts.values()) / 32)
    # token length = number of fake token ids = whitespace words of the greedy text
    want_len = sum(len(engine.greedy[task.prompt(p)].split()) for p in problems) / 8
    assert res.overall.mean_response_tokens == pytest.approx(want_len)
    # greedy calls at temperature 0, sampling calls with n=4, batched by 3
    assert [c[0] for c in engine.calls] == [3, 3, 2, 3, 3, 2]
    assert all(c[1].temperature == 0 for c in engine.calls[:3]) and all(c[1].n == 4 for c in engine.calls[3:])
    assert json.loads(json.dumps(res.to_dict()))["overall"]["pass_at_k"]["4"] == pytest.approx(
        res.overall.pass_at_k[4])


def test_evaluate_greedy_only_skips_sampling():
    task = ToySumTask()
    problems = eval_problems(task, seed=0, levels=[2], n_per_level=3)
    engine = _scripted(problems, {problems[0].id}, set(), {p.id: 0 for p in problems})
    res = evaluate(engine, task, problems, k=[1], progress=False)
    assert res.n_samples == 0 and res.overall.pass_at_k == {}
    assert len(engine.calls) == 1
    assert res.overall.accuracy == pytest.approx(1 / 3)


class BudgetEngine(ScriptedEngine):
    """The scripted texts cut at ``max_new_tokens`` words, as a real engine cuts at its token budget."""

    def generate(self, prompts, params: SamplingParams):
        groups = super().generate(prompts, params)
        for group in groups:
            for c in group:
                if len(c.token_ids) > params.max_new_tokens:
                    c.text = " ".join(c.text.split()[:params.max_new_tokens])
                    c.token_ids, c.finish_reason = c.token_ids[:params.max_new_tokens], "length"
        return groups


def test_truncation_is_counted_per_level_and_reported():
    from tailor_evo.trainers.evaluate import render_report

    task = ToySumTask()
    problems = eval_problems(task, seed=1, levels=[2, 3], n_per_level=3)
    engine = _scripted(problems, {p.id for p in problems}, set(), {p.id: 0 for p in problems})
    for i, p in enumerate(problems):                  # the first of each level rambles on
        if i % 3 == 0:
            engine.greedy[task.prompt(p)] += " and so on" * 5
    lengths = {p.id: len(engine.greedy[task.prompt(p)].split()) for p in problems}
    budget = max(lengths.values()) - 1                # the rambling ones no longer fit
    res = evaluate(BudgetEngine(engine.greedy, {}), task, problems, k=[1], max_new_tokens=budget, progress=False)
    cut = {p.id for p in problems if lengths[p.id] > budget}
    assert 0 < len(cut) < len(problems)
    assert [o.truncated for o in res.outcomes] == [p.id in cut for p in problems]
    assert res.overall.truncated == len(cut) and res.overall.truncated_share == pytest.approx(len(cut) / 6)
    for level in (2, 3):
        assert res.level(level).truncated == sum(p.id in cut for p in problems if p.difficulty == level)
    data = json.loads(json.dumps(res.to_dict()))
    assert data["overall"]["truncated"] == len(cut) and data["max_new_tokens"] == budget
    report = render_report(res, model="m", seed=1)
    assert f"max_new_tokens={budget}" in report and f"{len(cut)} of 6" in report
    assert "truncated" in res.summary_line()


def test_the_reason_tally_counts_kinds_and_each_outcome_keeps_its_own_reason():
    from tailor_evo.tasks import get_task

    kk = get_task("kk")
    problems = eval_problems(kk, seed=0, levels=[3], n_per_level=3)
    greedy = {}
    for i, p in enumerate(problems):       # person i of problem i gets the wrong role
        roles = [("knave" if r else "knight") if j == i else ("knight" if r else "knave")
                 for j, r in enumerate(p.answer)]
        answer = ", ".join(f"{nm} is a {role}" for nm, role in zip(p.meta["names"], roles))
        greedy[kk.prompt(p)] = f"<think> x </think> <answer> {answer} </answer>"
    res = evaluate(ScriptedEngine(greedy, {}), kk, problems, k=[1], progress=False)
    assert res.reasons == {"wrong role for 1 person": 3}
    assert [o.reason for o in res.outcomes] == [f"wrong role for {p.meta['names'][i]}" for i, p in enumerate(problems)]


def test_eval_and_training_problems_are_disjoint_and_stable():
    task = ToySumTask()
    ev = eval_problems(task, seed=7, levels=[2, 3, 4], n_per_level=30)
    tr = training_problems(task, seed=7, n=90, levels=[2, 3, 4])
    assert_disjoint(tr, ev)
    assert {p.question for p in ev}.isdisjoint({p.question for p in tr})
    # more levels do not change the problems of an existing level
    ev2 = eval_problems(task, seed=7, levels=[3], n_per_level=30)
    assert [p.question for p in ev2] == [p.question for p in ev if p.difficulty == 3]


def test_assert_disjoint_raises_on_constructed_overlap():
    task = ToySumTask()
    ev = eval_problems(task, seed=1, levels=[2], n_per_level=5)
    tr = training_problems(task, seed=1, n=5, levels=[2]) + [ev[2]]
    with pytest.raises(OverlapError, match="1 problem"):
        assert_disjoint(tr, ev)
    # whitespace differences do not hide an overlap
    with pytest.raises(OverlapError):
        assert_disjoint(["  " + ev[0].question.replace(" ", "  ")], ev)


@pytest.mark.parametrize("task_name", ["kk", "igsm"])
def test_real_tasks_eval_and_training_disjoint(task_name):
    from tailor_evo.tasks import get_task

    try:
        task = get_task(task_name)
    except InputError:
        pytest.skip(f"task {task_name} not registered")
    levels = list(task.default_levels)[:2]
    ev = eval_problems(task, seed=0, levels=levels, n_per_level=10)
    tr = training_problems(task, seed=0, n=20, levels=levels)
    assert len(ev) == 20 and len(tr) == 20
    assert_disjoint(tr, ev)


# --------------------------------------------------------------------------------------------------
# CLI


def test_cli_eval_writes_results_plots_and_report(tmp_path, monkeypatch, capsys):
    import tailor_evo.trainers.eval_cli as eval_cli

    task = ToySumTask()
    problems = eval_problems(task, seed=0, levels=[2, 3], n_per_level=3)
    engine = _scripted(problems, {p.id for p in problems[:4]}, set(), {p.id: 1 for p in problems})
    monkeypatch.setattr(eval_cli, "make_engine", lambda spec, **kw: engine)
    out = tmp_path / "run"
    code, cap = run_cli(monkeypatch, capsys, ["eval", "--model", "fake", "--task", "toysum", "--levels", "2,3",
                                            "--n-per-level", "3", "--k", "4", "--out", str(out)])
    assert code == 0, cap.err
    res = json.loads((out / "results.json").read_text())
    assert res["overall"]["accuracy"] == pytest.approx(4 / 6)
    assert res["overall"]["pass_at_k"]["4"] == pytest.approx(1.0)
    assert res["overall"]["pass_at_k"]["1"] == pytest.approx(0.25)
    assert (out / "plots" / "accuracy_per_level.png").stat().st_size > 0
    assert "accuracy" in (out / "report.md").read_text()
    assert (out / "config.yaml").exists() and len((out / "samples.jsonl").read_text().splitlines()) == 6


def test_cli_eval_adds_its_results_to_the_model_card(tmp_path, monkeypatch, capsys):
    from huggingface_hub import ModelCard

    import tailor_evo.trainers.eval_cli as eval_cli
    from tailor_evo.trainers.model_card import CardInfo, write_model_card

    task = ToySumTask()
    problems = eval_problems(task, seed=0, levels=[2, 3], n_per_level=3)
    engine = _scripted(problems, {p.id for p in problems[:4]}, set(), {p.id: 1 for p in problems})
    monkeypatch.setattr(eval_cli, "make_engine", lambda spec, **kw: engine)
    model = tmp_path / "model"
    model.mkdir()
    write_model_card(model, CardInfo(stage="rl", base_model="tiny", task="toysum", seed=0, recipe={}))
    code, cap = run_cli(monkeypatch, capsys, ["eval", "--model", str(model), "--task", "toysum", "--levels", "2,3",
                                            "--n-per-level", "3", "--out", str(tmp_path / "run")])
    assert code == 0, cap.err
    res = json.loads((tmp_path / "run" / "results.json").read_text())
    assert res["model_card_updated"] is True
    got = {r.dataset_config: r.metric_value for r in ModelCard.load(model / "README.md").data.eval_results}
    assert got == {"level-2": round(res["per_level"][0]["accuracy"], 4),
                   "level-3": round(res["per_level"][1]["accuracy"], 4), "level-all": round(res["overall"]["accuracy"], 4)}


@pytest.mark.parametrize("argv,needle", [
    (["--task", "toysum", "--model", "x", "--n-per-level", "0"], "--n-per-level"),
    (["--task", "toysum", "--model", "x", "--set", "n_per_level=0"], "n_per_level"),
    (["--task", "nosuchtask", "--model", "x"], "nosuchtask"),
    (["--task", "toysum", "--model", "x", "--levels", "2,x"], "--levels"),
    (["--task", "toysum", "--model", "x", "--k", "4", "--samples", "2"], "n_samples"),
    (["--task", "toysum"], "--model"),
])
def test_cli_eval_bad_input_exits_2_with_one_line(tmp_path, monkeypatch, capsys, argv, needle):
    code, cap = run_cli(monkeypatch, capsys, ["eval", *argv, "--out", str(tmp_path / "r")])
    assert code == 2
    lines = cap.err.strip().splitlines()
    assert len(lines) == 1 and needle in lines[0], cap.err


def test_cli_eval_train_data_overlap_exits_2(tmp_path, monkeypatch, capsys):
    task = ToySumTask()
    ev = eval_problems(task, seed=0, levels=[2], n_per_level=3)
    data = tmp_path / "train.jsonl"
    data.write_text(json.dumps({"question": ev[1].question}) + "\n")
    code, cap = run_cli(monkeypatch, capsys, ["eval", "--task", "toysum", "--model", "x", "--levels", "2",
                                            "--n-per-level", "3", "--train-data", str(data),
                                            "--out", str(tmp_path / "r")])
    assert code == 2 and "both" in cap.err and len(cap.err.strip().splitlines()) == 1
    assert not (tmp_path / "r").exists()


def test_accuracy_is_reported_per_kind_of_question_where_the_task_splits_them():
    """iGSM labels each problem by its question's parameter (a stated instance quantity or an
    abstract total); the evaluation's per-kind accuracy must count exactly those outcomes."""
    from tailor_evo.tasks import get_task
    from tailor_evo.tasks.igsm import graph_of
    from tailor_evo.trainers.evaluate import render_report

    igsm = get_task("igsm")
    problems = eval_problems(igsm, seed=2, levels=[3], n_per_level=24)
    kinds = [graph_of(p).params[graph_of(p).question].kind for p in problems]
    assert set(kinds) == {"abstract", "instance"}          # the sample holds both kinds
    right = {p.id for i, p in enumerate(problems) if i % 3 == 0}
    greedy = {igsm.prompt(p): igsm.format_response("", str(p.answer if p.id in right else (p.answer + 1) % 23))
              for p in problems}
    res = evaluate(ScriptedEngine(greedy, {}), igsm, problems, k=[1], progress=False)

    assert [o.kind for o in res.outcomes] == kinds
    for kind in ("abstract", "instance"):
        mine = [p for p, k in zip(problems, kinds) if k == kind]
        assert res.per_kind[kind].n_problems == len(mine)
        assert res.per_kind[kind].accuracy == pytest.approx(sum(p.id in right for p in mine) / len(mine))
    assert json.loads(json.dumps(res.to_dict()))["per_kind"]["abstract"]["n_problems"] == kinds.count("abstract")
    report = render_report(res, model="m", seed=2)
    assert f"| abstract | {kinds.count('abstract')} | {res.per_kind['abstract'].accuracy:.3f} |" in report
    assert f"abstract:{res.per_kind['abstract'].accuracy:.3f}" in res.summary_line()

    toy = ToySumTask()                                      # a task without a split reports none
    plain = eval_problems(toy, seed=0, levels=[2], n_per_level=2)
    res = evaluate(_scripted(plain, set(), set(), {p.id: 0 for p in plain}), toy, plain, k=[1], progress=False)
    assert res.per_kind == {} and "By what the problem asks" not in render_report(res, model="m", seed=0)


def test_partial_credit_shows_how_far_the_wrong_answers_got():
    """Each greedy answer's partial credit is the task's (iGSM: the necessary quantities its trace
    states right), averaged per level and overall; a task without parts gives its accuracy."""
    from tailor_evo.tasks import get_task
    from tailor_evo.tasks.igsm import graph_of
    from tailor_evo.trainers.evaluate import render_report

    igsm = get_task("igsm")
    problems = eval_problems(igsm, seed=4, levels=[3, 4], n_per_level=3)
    right = {problems[0].id, problems[3].id}
    greedy = {}
    for p in problems:
        gold = igsm.reference_completion(p)
        greedy[igsm.prompt(p)] = gold if p.id in right else gold.replace(
            f"<answer> {p.answer} </answer>", f"<answer> {(p.answer + 1) % 23} </answer>")
    res = evaluate(ScriptedEngine(greedy, {}), igsm, problems, k=[1], progress=False)

    want = {p.id: 1.0 if p.id in right else (len(graph_of(p).needed()) - 1) / len(graph_of(p).needed())
            for p in problems}
    assert [o.partial_credit for o in res.outcomes] == pytest.approx([want[p.id] for p in problems])
    assert 0 < res.overall.accuracy < res.overall.partial_credit < 1
    assert res.level(4).partial_credit == pytest.approx(sum(want[p.id] for p in problems[3:]) / 3)
    assert json.loads(json.dumps(res.to_dict()))["overall"]["partial_credit"] == pytest.approx(res.overall.partial_credit)
    assert f"{res.overall.partial_credit:.3f}" in render_report(res, model="m", seed=4)
    assert f"partial credit {res.overall.partial_credit:.3f}" in res.summary_line()

    toy = ToySumTask()
    plain = eval_problems(toy, seed=0, levels=[2], n_per_level=3)
    res = evaluate(_scripted(plain, {plain[0].id}, set(), {p.id: 0 for p in plain}), toy, plain, k=[1], progress=False)
    assert res.overall.partial_credit == pytest.approx(res.overall.accuracy) == pytest.approx(1 / 3)
