"""Rollouts: generate completions for problems and score them with the task verifier.

Shared by RL (which also needs token ids and log-probs) and evaluation.
"""

from __future__ import annotations

from dataclasses import dataclass

from tailor_evo.generation.base import Completion, Engine, SamplingParams
from tailor_evo.tasks.base import Problem, Task, Verdict


@dataclass
class Rollout:
    problem: Problem
    completion: Completion
    verdict: Verdict


def is_truncated(completion: Completion) -> bool:
    """A completion that stopped at the token budget, without an end-of-sequence or stop string."""
    return completion.finish_reason == "length"


def build_prompts(task: Task, problems: list[Problem], chat: bool) -> list:
    return [task.prompt(p, chat=chat) for p in problems]


def rollout(engine: Engine, task: Task, problems: list[Problem], params: SamplingParams,
            chat: bool = False) -> list[list[Rollout]]:
    """``params.n`` scored completions per problem, grouped by problem (result[i] is problems[i]'s group)."""
    groups = engine.generate(build_prompts(task, problems, chat), params)
    return [[Rollout(p, c, task.verify(p, c.text)) for c in group] for p, group in zip(problems, groups)]
