"""The reward RL trains on: the task's own, Python functions, or a weighted sum of several.

``rl.reward`` is a comma-separated list of terms ``[WEIGHT*]NAME``; the reward of a
completion is the weighted sum of its terms. A NAME is

* a reward of the task: ``binary`` (1 correct, 0 otherwise), ``shaped`` (the task's
  format + answer shaping) or ``partial`` (the share of the answer that is right);
* ``module:function``, a Python function with the reward-function signature that TRL's
  GRPO trainer uses, so existing ones work unchanged: it is called once per generation
  round as ``function(prompts=..., completions=..., completion_ids=..., **columns)``,
  with one entry per completion in every list (``completions`` are strings for string
  prompts, ``[{"role": "assistant", "content": text}]`` for chat prompts) and each column
  of the problem's record (``train rl --data``; the task's own record for generated
  problems) as a keyword, and returns one float per completion, or None where it does not
  apply. A term that is None is left out of the sum; a completion whose every term is None
  is skipped (left out of the loss and of its group's statistics, like a truncated one).

Examples: ``binary`` (the default), ``mypkg.rewards:brevity``,
``binary, 0.1*mypkg.rewards:brevity``. Accuracy stays the task verifier's in every case.

Whatever the terms, ``rl.overlong_buffer`` then subtracts a length penalty from the sum
(:func:`overlong_penalty`), the one reward that needs the run's token budget.
"""

from __future__ import annotations

import dataclasses
import importlib
import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from tailor_evo.errors import InputError
from tailor_evo.trainers.rollout import is_truncated

BUILTIN_REWARDS = ("binary", "shaped", "partial")
_TERM = re.compile(r"^(?:(?P<weight>[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)\s*\*\s*)?(?P<name>\S+)$")
_RESERVED = ("prompt", "prompts", "completions", "completion_ids")   # keywords the call itself uses


@dataclass(frozen=True)
class RewardTerm:
    """One term of the reward: a built-in name or an imported function, and its weight."""

    name: str
    weight: float = 1.0
    fn: Callable[..., Any] | None = None     # None for a reward of the task


@dataclass(frozen=True)
class RewardSpec:
    terms: tuple[RewardTerm, ...]

    @property
    def single_builtin(self) -> str | None:
        """The task reward's name when the spec is exactly one of them with weight 1 (the plain path)."""
        if len(self.terms) == 1 and self.terms[0].fn is None and self.terms[0].weight == 1.0:
            return self.terms[0].name
        return None


def _import(name: str) -> Callable[..., Any]:
    module, _, attr = name.partition(":")
    if not module or not attr:
        raise InputError(f"{name!r} is neither a task reward ({', '.join(BUILTIN_REWARDS)}) nor module:function",
                         field="reward")
    try:
        fn = getattr(importlib.import_module(module), attr)
    except ImportError as exc:
        raise InputError(f"cannot import {module!r} for {name!r}: {exc}", field="reward") from None
    except AttributeError:
        raise InputError(f"module {module!r} has no {attr!r}", field="reward") from None
    if not callable(fn):
        raise InputError(f"{name!r} is not callable", field="reward")
    return fn


def parse_reward(text: str) -> RewardSpec:
    """The terms of a ``reward`` setting, each function imported now, so that a typo stops the
    run before any model is loaded."""
    if not isinstance(text, str) or not text.strip():
        raise InputError(f"expected a reward such as binary or module:function, got {text!r}", field="reward")
    terms = []
    for part in (p.strip() for p in text.split(",")):
        m = _TERM.match(part)
        if not m:
            raise InputError(f"cannot read the term {part!r} (expected [WEIGHT*]NAME)", field="reward")
        name, weight = m.group("name"), float(m.group("weight") or 1.0)
        terms.append(RewardTerm(name, weight, None if name in BUILTIN_REWARDS else _import(name)))
    names = [t.name for t in terms]
    if len(set(names)) < len(names):
        raise InputError(f"a term appears twice in {text!r}", field="reward")
    return RewardSpec(tuple(terms))


def builtin_reward(task: Any, rollout_item: Any, name: str) -> Any:
    """The verdict under one of the task's rewards.

    ``binary``: 1 correct, 0 otherwise (the rollout's own verdict). ``shaped``: the task's
    format + answer shaping. ``partial``: the task's share of the answer that is right
    (KK: people with the right role; iGSM: the necessary quantities the trace states
    right), so that a group of all-wrong answers still ranks near misses above guesses;
    accuracy stays the measure either way.
    """
    if name == "shaped":
        return task.verify(rollout_item.problem, rollout_item.completion.text, shaped=True)
    verdict = rollout_item.verdict
    if name == "partial":
        credit = task.partial_credit(rollout_item.problem, verdict, rollout_item.completion.text)
        return dataclasses.replace(verdict, reward=float(credit))
    return verdict


def _columns(flat: list, columns_of: Callable[[Any], dict]) -> dict[str, list]:
    """Each record column as one list over the completions (None where a record lacks it)."""
    records = [columns_of(r.problem) for r in flat]
    keys = sorted({k for rec in records for k in rec if k not in _RESERVED and str(k).isidentifier()})
    return {k: [rec.get(k) for rec in records] for k in keys}


def call_reward(term: RewardTerm, task: Any, flat: list, columns_of: Callable[[Any], dict],
                chat: bool) -> list[float | None]:
    """One function term over every completion of a round, its answer checked."""
    prompts = [task.prompt(r.problem, chat=chat) for r in flat]
    completions = [r.completion.text if isinstance(p, str) else [{"role": "assistant", "content": r.completion.text}]
                   for p, r in zip(prompts, flat)]
    out = term.fn(prompts=prompts, completions=completions,
                  completion_ids=[list(r.completion.token_ids) for r in flat], **_columns(flat, columns_of))
    try:
        values = list(out)
    except TypeError:
        raise InputError(f"{term.name} returned {type(out).__name__}, not a list of floats", field="reward") from None
    if len(values) != len(flat):
        raise InputError(f"{term.name} returned {len(values)} rewards for {len(flat)} completions", field="reward")
    for v in values:
        if v is not None and (isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v)):
            raise InputError(f"{term.name} returned {v!r}: each reward must be a finite number or None",
                             field="reward")
    return [None if v is None else float(v) for v in values]


def score_round(spec: RewardSpec, task: Any, flat: list, columns_of: Callable[[Any], dict],
                chat: bool) -> list[Any]:
    """The training verdict of every rollout of a round: the task's verdict with the reward
    replaced by the weighted sum of the terms (NaN where every term is None)."""
    plain = spec.single_builtin
    if plain is not None:
        return [builtin_reward(task, r, plain) for r in flat]
    per_term = []
    for term in spec.terms:
        if term.fn is None:
            per_term.append([float(builtin_reward(task, r, term.name).reward) for r in flat])
        else:
            per_term.append(call_reward(term, task, flat, columns_of, chat))
    verdicts = []
    for i, r in enumerate(flat):
        parts = [t.weight * vals[i] for t, vals in zip(spec.terms, per_term) if vals[i] is not None]
        verdicts.append(dataclasses.replace(r.verdict, reward=sum(parts) if parts else math.nan))
    return verdicts


def overlong_penalty(length: int, max_new_tokens: int, buffer: int, penalty: float) -> float:
    """DAPO's soft overlong punishment (arXiv 2503.14476): what a completion of ``length`` tokens
    loses, nothing up to ``max_new_tokens - buffer`` tokens, then rising linearly to ``penalty``
    at the budget.

    Without it a loop that runs to the budget scores what a wrong answer scores (0 under the
    binary reward), or is left out of the loss under ``mask_truncated``: nothing pushes back
    against the length a policy drifts to. The ramp, rather than a cliff at the budget, tells
    a long finished answer apart from a cut one. ``buffer = 0``: no penalty.
    """
    if buffer <= 0:
        return 0.0
    over = length - (max_new_tokens - buffer)
    return penalty * min(1.0, max(0, over) / buffer)


def penalise_overlong(verdicts: list, completions: list, max_new_tokens: int, buffer: int,
                      penalty: float) -> tuple[list, list[float]]:
    """The verdicts with each completion's overlong penalty subtracted from its reward (a skipped,
    NaN reward stays NaN), and the penalties, for the step's metrics. A completion cut at the
    budget takes the whole penalty, whatever length its engine reports."""
    cuts = [overlong_penalty(max_new_tokens if is_truncated(c) else len(c.token_ids), max_new_tokens, buffer, penalty)
            for c in completions]
    out = [v if not cut or math.isnan(v.reward) else dataclasses.replace(v, reward=float(v.reward) - cut)
           for v, cut in zip(verdicts, cuts)]
    return out, cuts
