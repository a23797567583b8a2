"""A tiny task used by the search tests: add up a list of numbers with a program of moves.

Strategies differ in the order they consume numbers (left, right), so they visit
different reasoning states, and ``skip`` breaks correctness, so quality matters.
Importing this module registers the task as ``toy-sum``.
"""

from __future__ import annotations

import json
import os
import random
import re
import time

from tailor_evo.tasks.base import Grammar, MoveSpec, Problem, Step, Task, Trajectory, Verdict
from tailor_evo.tasks.registry import register

TOY = "toy-sum"


@register
class ToySum(Task):
    name = TOY
    default_levels = (3, 4, 5)

    def generate(self, n, seed, levels=None, **options):
        rng = random.Random(seed)
        levels = list(levels or self.default_levels)
        out = []
        for i in range(n):
            k = levels[i % len(levels)]
            nums = [rng.randint(1, 9) for _ in range(k)]
            out.append(Problem(id=f"toy-{seed}-{i}", task=TOY, difficulty=k, question=f"Add {nums}.",
                               answer=sum(nums), answer_text=str(sum(nums)), meta={"nums": nums}))
        return out

    def solve(self, problem):
        return sum(problem.meta["nums"])

    def instruction(self):
        return "Add the numbers."

    def verify(self, problem, completion, shaped=False):
        m = re.search(r"<answer>\s*(-?\d+)\s*</answer>", completion or "")
        if not m:
            return Verdict(0.0, False, False, "missing answer")
        ok = int(m.group(1)) == problem.answer
        return Verdict(float(ok), ok, True, "ok" if ok else "wrong answer", int(m.group(1)))

    def reference_solution(self, problem):
        return f"The sum is {problem.answer}."

    def grammar(self):
        return Grammar(TOY, "plan", [
            MoveSpec("seq", "plan", ("step", "plan"), "{0}, then {1}"),
            MoveSpec("end", "plan", (), "repeat"),
            MoveSpec("both", "step", ("step", "step"), "{0} and {1}"),
            MoveSpec("take_left", "step", (), "add the leftmost number"),
            MoveSpec("take_right", "step", (), "add the rightmost number"),
            MoveSpec("check", "step", (), "check the running total"),
            MoveSpec("skip", "step", (), "drop a number"),
        ])

    def behaviour_kinds(self):
        return ("take", "verify")

    def execute(self, program, problem, rng, max_steps=400):
        delay = float(os.environ.get("TOY_DELAY", "0"))
        if delay:
            time.sleep(delay)
        flat: list[str] = []

        def walk(node):
            if node["op"] in ("seq", "both"):
                for a in node["args"]:
                    walk(a)
            elif node["op"] != "end":
                flat.append(node["op"])

        walk(program)
        left = list(problem.meta["nums"])
        taken: list[int] = []
        total, steps = 0, []
        while left and len(steps) < max_steps and flat:
            for op in flat:
                if not left or len(steps) >= max_steps:
                    break
                if op in ("take_left", "take_right"):
                    x = left.pop(0 if op == "take_left" else -1)
                    taken.append(x)
                    total += x
                    kind = "take"
                elif op == "skip":
                    left.pop(0)
                    kind = "skip"
                else:
                    kind = "verify"
                state = f"taken {taken} total {total} left {left}"
                steps.append(Step(text=f"{op}: {state}.", state=state, key=json.dumps(taken), kind=kind))
        finished = not left
        completion = f"<think> {' '.join(s.text for s in steps)} </think> <answer> {total} </answer>"
        return Trajectory(steps, total if finished else None, finished, completion if finished else "",
                          "ok" if finished else "step budget")


def seed_library(path, programs):
    """Write a seed library JSON file with the given {name: program} and return its path."""
    path.write_text(json.dumps({"task": TOY, "library": path.stem, "primitives": [
        {"name": n, "description": n, "program": p} for n, p in programs.items()]}))
    return str(path)


LEFT = {"op": "seq", "args": [{"op": "take_left", "args": []}, {"op": "end", "args": []}]}
RIGHT = {"op": "seq", "args": [{"op": "take_right", "args": []}, {"op": "end", "args": []}]}


def test_toy_task_runs_and_verifies():
    task = ToySum()
    p = task.generate(1, 0)[0]
    traj = task.execute(LEFT, p, random.Random(0))
    assert traj.finished and task.verify(p, traj.completion).correct
    bad = {"op": "seq", "args": [{"op": "skip", "args": []}, {"op": "end", "args": []}]}
    assert not task.verify(p, task.execute(bad, p, random.Random(0)).completion).correct
    assert task.grammar().validate(LEFT) == []
