"""reasoning-gym datasets as tasks (rg:NAME): their generator, their verifier, the <think>/<answer>
format, and the commands that take a task: data generate, eval, train rl."""

from __future__ import annotations

import json
import re

import pytest

pytest.importorskip("reasoning_gym", reason="reasoning-gym is not installed: pip install 'tailor-evo[reasoning-gym]'")

from tailor_evo.errors import InputError  # noqa: E402
from tailor_evo.tasks import get_task  # noqa: E402
from tailor_evo.tasks.base import Problem  # noqa: E402
from tailor_evo.tasks.reasoning_gym import split_answer  # noqa: E402
from tests.cli_helpers import run_cli  # noqa: E402

ROLES = re.compile(r"\b(a|an) (\w+)")


def _wrong_knights(problem: Problem) -> str:
    """The gold assignment with the first person's role swapped for the other role of the puzzle."""
    terms = problem.meta["entry"]["metadata"]["knight_knave_terms"]
    first = ROLES.search(problem.answer)
    other = terms["knave"] if first.group(2) == terms["knight"] else terms["knight"]
    return problem.answer[:first.start(2)] + other + problem.answer[first.end(2):]


PERTURB = {
    "knights_knaves": _wrong_knights,
    "chain_sum": lambda p: str(int(p.answer) + 1),
    "countdown": lambda p: f"{p.answer} + 1",
}


def completion(answer: str) -> str:
    return f"<think> worked it out </think> <answer> {answer} </answer>"


@pytest.mark.parametrize("name", sorted(PERTURB))
def test_known_answers_score_correct_and_perturbed_ones_wrong(name):
    task = get_task(f"rg:{name}")
    assert task.name == f"rg:{name}" and "<think>" in task.instruction() and "<answer>" in task.instruction()
    problems = task.generate(6, seed=3, levels=[0, 1])
    assert [p.difficulty for p in problems] == [0, 0, 0, 1, 1, 1]
    assert len({p.question for p in problems}) == 6
    for p in problems:
        assert p.task == task.name and task.solve(p) == p.answer
        right = task.verify(p, completion(p.answer))
        assert right.correct and right.reward == 1.0 and right.format_ok, right
        assert task.verify(p, task.reference_completion(p)).correct
        wrong = task.verify(p, completion(PERTURB[name](p)))
        assert not wrong.correct and wrong.reward == 0.0 and wrong.format_ok, (p.answer, wrong)
        assert task.partial_credit(p, right) == 1.0 and task.partial_credit(p, wrong) < 1.0


def test_the_generator_is_seeded_and_levels_follow_the_curriculum():
    task = get_task("rg:knights_knaves")
    assert [p.question for p in task.generate(4, 1, [0])] == [p.question for p in task.generate(4, 1, [0])]
    assert task.generate(2, 1, [0])[0].question != task.generate(2, 2, [0])[0].question
    people = {lv: {p.meta["entry"]["metadata"]["difficulty"]["n_people"] for p in task.generate(4, 0, [lv])}
              for lv in (0, 2)}
    assert people == {0: {2}, 2: {4}}              # the curriculum's n_people at each level
    assert {p.meta["entry"]["metadata"]["difficulty"]["n_people"]
            for p in task.generate(3, 0, [0], n_people=3)} == {3}        # --opt over the level
    with pytest.raises(InputError, match="no option 'people'") as err:
        task.generate(2, 0, [0], people=3)
    assert err.value.field == "people"


def test_format_is_strict_and_the_verifier_never_raises():
    task = get_task("rg:chain_sum")
    p = task.generate(1, 0, [0])[0]
    for text, reason in [(f"<answer> {p.answer} </answer>", "expected exactly one <think>"),
                         (f"hi <think> x </think> <answer> {p.answer} </answer>", "text before <think>"),
                         (f"<think> x </think> <answer> {p.answer} </answer> <answer> 1 </answer>",
                          "expected exactly one <answer>"),
                         ("<think> x </think> <answer>  </answer>", "empty answer"),
                         (f"<answer> {p.answer} </answer> <think> x </think>", "tags out of order")]:
        verdict = task.verify(p, text)
        assert not verdict.correct and not verdict.format_ok and verdict.reason.startswith(reason), (text, verdict)
    assert split_answer(completion(" 7 ")) == ("7", "ok")
    assert not task.verify(p, None).correct                          # type: ignore[arg-type]
    shaped = task.verify(p, completion(p.answer), shaped=True)
    assert shaped.correct and shaped.reward == pytest.approx(1.0)
    assert task.verify(p, completion("x"), shaped=True).reward == pytest.approx(0.1)


def test_records_round_trip_and_score_from_what_they_carry():
    task = get_task("rg:knights_knaves")
    p = task.generate(1, 0, [1])[0]
    record = json.loads(json.dumps(task.to_record(p)))               # through JSON, as data generate writes it
    back = task.from_record(record)
    assert task.verify(back, completion(back.answer)).correct
    assert not task.verify(back, completion(_wrong_knights(back))).correct
    record["meta"]["seed"] += 1                                       # cannot be regenerated: the stored entry
    assert task.verify(task.from_record(record), completion(back.answer)).correct
    with pytest.raises(InputError, match="task"):
        get_task("rg:knights_knaves").from_record({**record, "task": "rg:chain_sum"})


def test_unknown_dataset_is_an_error_naming_the_task_field():
    with pytest.raises(InputError, match="no dataset 'knight_knave'") as err:
        get_task("rg:knight_knave")
    assert err.value.field == "task"




class AnswerEngine:
    """Answers each prompt with its problem's gold answer, or a wrong one for the questions in ``wrong``."""

    def __init__(self, problems: list[Problem], wrong: set[str]) -> None:
        self.problems, self.wrong = problems, wrong

    def generate(self, prompts, params):
        from tailor_evo.generation.base import Completion

        out = []
        for prompt in prompts:
            text = prompt if isinstance(prompt, str) else prompt[-1]["content"]
            p = next(p for p in self.problems if p.question in text)
            answer = str(int(p.answer) + 1) if p.question in self.wrong else p.answer
            out.append([Completion(completion(answer), token_ids=[1, 2, 3], finish_reason="stop")
                        for _ in range(params.n)])
        return out


def test_data_generate_then_eval(tmp_path, monkeypatch, capsys):
    import tailor_evo.trainers.eval_cli as eval_cli

    data = tmp_path / "chain.jsonl"
    code, cap = run_cli(monkeypatch, capsys, ["data", "generate", "--task", "rg:chain_sum", "--n", "6",
                                            "--levels", "0,1", "-o", str(data)])
    assert code == 0, cap.err
    records = [json.loads(line) for line in data.read_text().splitlines()]
    assert len(records) == 6 and {r["task"] for r in records} == {"rg:chain_sum"}
    task = get_task("rg:chain_sum")
    problems = [task.from_record(r) for r in records]
    assert all(task.verify(p, r["reference_completion"]).correct for p, r in zip(problems, records))

    engine = AnswerEngine(problems, wrong={problems[0].question, problems[3].question})
    monkeypatch.setattr(eval_cli, "make_engine", lambda spec, **kw: engine)
    out = tmp_path / "eval"
    code, cap = run_cli(monkeypatch, capsys, ["eval", "--model", "fake", "--task", "rg:chain_sum",
                                            "--data", str(data), "--out", str(out)])
    assert code == 0, cap.err
    results = json.loads((out / "results.json").read_text())
    assert results["overall"]["accuracy"] == pytest.approx(4 / 6)


def test_rl_rewards_come_from_the_dataset_verifier(small_tiny_dir, tmp_path):
    """A few RL steps on rg:chain_sum through train_rl: every rollout scored by reasoning-gym."""
    from tailor_evo.rundir import RunDir
    from tailor_evo.trainers.base import EvalSettings
    from tailor_evo.trainers.rl import RLConfig, train_rl

    class Engine:
        """Works each chain_sum sum out from the prompt; gets every other completion of a group wrong."""

        def __init__(self, tokenizer):
            self.tok = tokenizer

        def generate(self, prompts, params):
            from tailor_evo.generation.base import Completion

            out = []
            for prompt in prompts:
                expression = re.search(r"problem: ([-+0-9 ]+)=", prompt).group(1)
                gold = sum(int(t) for t in re.findall(r"[-+]?\d+", expression.replace(" ", "")))
                group = []
                for i in range(params.n):
                    text = completion(str(gold + i % 2))
                    ids = self.tok(text, add_special_tokens=False)["input_ids"][:params.max_new_tokens - 1]
                    group.append(Completion(text=text, token_ids=ids + [self.tok.eos_token_id], finish_reason="stop",
                                            prompt_token_ids=self.tok(prompt)["input_ids"]))
                out.append(group)
            return out

    cfg = RLConfig(model=str(small_tiny_dir), task="rg:chain_sum", levels=[0], seed=0, steps=2, prompts_per_step=2,
                   group_size=2, max_new_tokens=8, micro_batch=4, pool_size=8, threads=1, coverage=False,
                   save_every=0, rollout_log_every=1, eval=EvalSettings(every=0, n=0))
    run = RunDir.create(tmp_path / "rl")
    train_rl(cfg, run, engine_factory=lambda m, t: Engine(t))
    rows = [json.loads(line) for line in (tmp_path / "rl" / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows if "reward" in r] == [1, 2]
    assert all(r["reward"] == pytest.approx(0.5) and r["accuracy"] == pytest.approx(0.5) for r in rows if "reward" in r)
    logged = [json.loads(line) for line in (tmp_path / "rl" / "rollouts.jsonl").read_text().splitlines()]
    assert logged and all(r.get("task", "rg:chain_sum") == "rg:chain_sum" for r in logged)
