"""A tiny arithmetic task and a scripted engine shared by the evaluation and warm-start tests.

The toy task has everything the real tasks offer (generator, verifier, move grammar,
executor with step states) but its answers are trivially known, so tests can compute
every expected metric by hand. Its moves include a deliberately sloppy strategy
(finishes with a wrong answer) and a stalling one (never finishes) so that the
filters have something to drop.
"""

from __future__ import annotations

import random
import re

from tailor_evo.generation.base import Completion, SamplingParams
from tailor_evo.tasks.base import Grammar, MoveSpec, Problem, Step, Task, Trajectory, Verdict
from tailor_evo.tasks.registry import register

ANSWER_RE = re.compile(r"<answer>\s*(-?\d+)\s*</answer>")


@register
class ToySumTask(Task):
    name = "toysum"
    difficulty_name = "terms"
    default_levels = (2, 3, 4)

    def generate(self, n, seed, levels=None, **options):
        rng = random.Random(seed)
        levels = list(levels or self.default_levels)
        out = []
        for i in range(n):
            level = levels[i % len(levels)]
            nums = [rng.randint(0, 9) for _ in range(level)]
            tag = rng.randrange(10**9)
            out.append(Problem(id=f"toy-{seed}-{i}", task=self.name, difficulty=level,
                               question=f"Add {' + '.join(map(str, nums))}. (card {tag})",
                               answer=sum(nums), answer_text=str(sum(nums)), meta={"numbers": nums}))
        return out

    def solve(self, problem):
        return sum(problem.meta["numbers"])

    def instruction(self):
        return "Add the numbers. Answer inside <answer></answer>."

    def verify(self, problem, completion):
        m = ANSWER_RE.search(completion)
        if m is None or "<think>" not in completion:
            return Verdict(0.0, False, False, "format")
        ok = int(m.group(1)) == problem.answer
        return Verdict(float(ok), ok, True, "ok" if ok else "wrong answer", int(m.group(1)))

    def reference_solution(self, problem):
        total, parts = 0, []
        for x in problem.meta["numbers"]:
            total += x
            parts.append(f"Running total {total}.")
        return " ".join(parts)

    def grammar(self):
        return Grammar(self.name, "Strategy", [MoveSpec(m, "Strategy") for m in
                                               ("forward", "backward", "pairs", "sloppy", "stall")])

    def execute(self, program, problem, rng, max_steps=400):
        nums = list(problem.meta["numbers"])
        op = program["op"]
        if op == "stall":
            return Trajectory([], None, False, "", reason=f"step budget: stuck after {len(nums)} terms")
        steps = []
        if op == "backward":
            total = 0
            for i, x in enumerate(reversed(nums)):
                total += x
                steps.append(Step(f"From the right, {x} gives {total}.", f"suffix of {i + 1} sums to {total}",
                                  f"b{i}:{total}", "compute"))
        elif op == "pairs":
            vals = nums
            while len(vals) > 1:
                vals = [sum(vals[i:i + 2]) for i in range(0, len(vals), 2)]
                steps.append(Step(f"Pairwise sums {vals}.", f"pair level values {' '.join(map(str, vals))}",
                                  f"p:{vals}", "compute"))
            total = vals[0]
        else:
            total = 0
            for i, x in enumerate(nums):
                total += x
                steps.append(Step(f"Add {x}: {total}.", f"prefix of {i + 1} sums to {total}", f"f{i}:{total}",
                                  "compute"))
            if op == "sloppy":
                total += 1
        text = " ".join(s.text for s in steps)
        return Trajectory(steps, total, True, self.format_response(text, str(total)))


def correct_completion(problem: Problem) -> str:
    return f"<think> sum </think> <answer> {problem.answer} </answer>"


def wrong_completion(problem: Problem) -> str:
    return f"<think> sum </think> <answer> {problem.answer + 1} </answer>"


class ScriptedEngine:
    """Returns fixed texts: ``greedy[prompt]`` at temperature 0, ``samples[prompt][:n]`` otherwise."""

    def __init__(self, greedy: dict[str, str], samples: dict[str, list[str]] | None = None) -> None:
        self.greedy, self.samples, self.calls = greedy, samples or {}, []

    def generate(self, prompts, params: SamplingParams):
        self.calls.append((len(prompts), params))
        out = []
        for p in prompts:
            texts = [self.greedy[p]] if params.temperature == 0 else self.samples[p][:params.n]
            out.append([Completion(t, token_ids=list(range(len(t.split()))), finish_reason="stop") for t in texts])
        return out
