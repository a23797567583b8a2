"""Which rollout groups an RL step trains on: plain sampling, or dynamic sampling.

A group-relative objective learns nothing from a group whose rewards are all equal: every
advantage is zero, so such a group only adds KL gradient and dilutes the token
normaliser. Near the edge of competence most groups are like that (all wrong on hard
prompts, all right on easy ones), and the step's effective batch shrinks to a few groups.

Dynamic sampling drops those groups and draws new prompts from the RL stream to fill the
batch, for at most ``max_refill_rounds`` extra generation rounds per step. A group is kept
only when some row it trains on has an advantage: the rewards its statistics count differ,
and a trained row's reward is not their mean. How completions cut at the budget count is
a :class:`Truncation` rule: by default they are rows like any other; with
``mask_truncated`` they count as never sampled, so the finished rows must differ among
themselves; with ``truncated_in_group`` too they leave only the loss, and their reward
still enters their group's mean and std. A kept group therefore always has reward
variance, and a step may end with fewer groups than asked (the rounds are bounded), or
with none (then no update is made).

The module knows nothing of models: generation and prompt drawing come in as callables,
so its rules are tested with scripted rewards.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from tailor_evo.trainers.rollout import is_truncated


@dataclass(frozen=True)
class Truncation:
    """How completions cut at the budget (no end of sequence) enter a step.

    ``in_loss``: their tokens are trained on. ``in_group``: their reward enters their group's
    mean and std, so their finished siblings are reinforced against them. Plain RL keeps both.
    ``mask_truncated`` drops both, as if they were never sampled: at the edge of competence,
    where most failures are cut loops, the groups they fail in then look all right and carry
    no signal. With ``truncated_in_group`` as well, only the loss drops them (DAPO's overlong
    filtering): a cut trace is not pushed down, and the finished ones beside it are pushed up.
    """

    in_loss: bool = True
    in_group: bool = True

    @classmethod
    def of(cls, mask_truncated: bool, in_group: bool = False) -> "Truncation":
        """The rule of ``rl.mask_truncated`` and ``rl.truncated_in_group``."""
        return cls(in_loss=not mask_truncated, in_group=not mask_truncated or in_group)

    @classmethod
    def of_config(cls, cfg: Any) -> "Truncation":
        """The rule of an RL config (its ``mask_truncated`` and ``truncated_in_group``)."""
        return cls.of(cfg.mask_truncated, cfg.truncated_in_group)

    def report_note(self) -> str:
        """What the RL report says after the share of truncated rollouts ("" when they are trained)."""
        if self.in_loss:
            return ""
        if self.in_group:
            return " (left out of the loss; counted in their groups' statistics)"
        return " (left out of the loss and of their groups' statistics)"


@dataclass
class ScoredGroup:
    """One prompt's ``group_size`` rollouts, scored under the configured reward."""

    problem: Any
    rollouts: list                    # trainers.rollout.Rollout, one per sample
    verdicts: list                    # tasks.base.Verdict under the training reward, one per rollout
    round: int = 0                    # generation round of the step that made it (0 = the step's own prompts)
    kept: bool = True                 # trained on this step
    penalties: list[float] | None = None  # overlong penalty already subtracted from each reward (None: none)

    @property
    def rewards(self) -> list[float]:
        return [float(v.reward) for v in self.verdicts]

    @property
    def truncated(self) -> list[bool]:
        return [is_truncated(r.completion) for r in self.rollouts]

    def counted_rows(self, rule: Truncation) -> list[bool]:
        """Which rows' rewards enter the group's mean and std: not skipped by the reward (NaN: every
        term was None) and, unless ``rule`` counts them, not truncated. The others count as never sampled."""
        return [not math.isnan(r) and (rule.in_group or not cut) for r, cut in zip(self.rewards, self.truncated)]

    def loss_rows(self, rule: Truncation) -> list[bool]:
        """Which rows' tokens enter the loss: counted rows, and of the truncated ones only where
        ``rule`` trains them."""
        return [keep and (rule.in_loss or not cut) for keep, cut in zip(self.counted_rows(rule), self.truncated)]

    def has_signal(self, rule: Truncation) -> bool:
        """Whether training on this group moves the policy: the counted rewards differ and some
        row of the loss has a reward other than their mean. Exact comparison, so equal shaped or
        partial rewards never pass."""
        counted = [r for r, keep in zip(self.rewards, self.counted_rows(rule)) if keep]
        if len(set(counted)) < 2:
            return False
        mean = sum(counted) / len(counted)
        return any(r != mean for r, keep in zip(self.rewards, self.loss_rows(rule)) if keep)


@dataclass
class StepSample:
    """Every group an RL step generated, which of them it trains on, and what that cost."""

    groups: list[ScoredGroup] = field(default_factory=list)
    rounds: int = 0                   # generation rounds, the first included

    @property
    def kept(self) -> list[ScoredGroup]:
        return [g for g in self.groups if g.kept]

    @property
    def first_round(self) -> list[ScoredGroup]:
        """The groups of the step's own prompts: an unbiased sample of the policy's rewards."""
        return [g for g in self.groups if g.round == 0]

    def counts(self) -> dict[str, int]:
        """Bookkeeping for the metrics row: groups generated, dropped, refilled; rounds; prompts trained."""
        return {"generation_rounds": self.rounds, "groups_generated": len(self.groups),
                "groups_dropped": sum(not g.kept for g in self.groups),
                "groups_refilled": sum(g.kept and g.round > 0 for g in self.groups),
                "groups_trained": len(self.kept)}


Generate = Callable[[list, int], list[ScoredGroup]]     # (problems, round) -> scored groups
Draw = Callable[[int], list]                              # how many -> the next problems of the RL stream


def refill_size(wanted: int, missing: int, seen: int, useful: int) -> int:
    """Prompts to draw for the next round: the missing groups divided by the share of useful
    groups seen so far (at least one in ``wanted``), capped at one full batch. A step that
    kept half its groups asks for twice the gap, so one refill round usually suffices."""
    share = max(useful / seen if seen else 1.0, 1.0 / wanted)
    return max(1, min(wanted, math.ceil(missing / share)))


def sample_step(problems: list, generate: Generate, draw: Draw, *, wanted: int, dynamic: bool,
                max_refill_rounds: int, truncation: Truncation) -> StepSample:
    """The groups of one step. Without ``dynamic`` every group of ``problems`` is trained (as
    before). With it, groups without signal are dropped and new prompts are drawn and
    generated until ``wanted`` groups have signal or ``max_refill_rounds`` extra rounds ran;
    surplus useful groups of the last round are not trained either."""
    sample = StepSample(groups=generate(problems, 0), rounds=1)
    if not dynamic:
        return sample
    kept = 0
    for g in sample.groups:
        g.kept = kept < wanted and g.has_signal(truncation)
        kept += g.kept
    while kept < wanted and sample.rounds <= max_refill_rounds:
        useful = sum(g.has_signal(truncation) for g in sample.groups)
        more = generate(draw(refill_size(wanted, wanted - kept, len(sample.groups), useful)), sample.rounds)
        for g in more:
            g.round = sample.rounds
            g.kept = kept < wanted and g.has_signal(truncation)
            kept += g.kept
        sample.groups.extend(more)
        sample.rounds += 1
    return sample


class PromptStream:
    """The RL problem pool, read in an order that depends only on (seed, epoch).

    The position lives in the checkpointed ``TrainState`` (``epoch``, ``position``), so the
    prompts a refill round draws are drawn again on resume, and a resumed run follows the
    uninterrupted one. A draw that would run past the pool starts the next epoch's order.
    """

    def __init__(self, pool: list, seed: int, state: Any) -> None:
        from tailor_evo.trainers.data import epoch_order

        self._order_of = lambda epoch: epoch_order(len(pool), seed, epoch)
        self.pool, self.state = pool, state
        self.order = self._order_of(state.epoch)

    def take(self, k: int) -> list:
        """The next ``k`` problems (``k`` is at most the pool's size)."""
        if self.state.position + k > len(self.pool):
            self.state.epoch, self.state.position = self.state.epoch + 1, 0
            self.order = self._order_of(self.state.epoch)
        start = self.state.position
        self.state.position += k
        return [self.pool[i] for i in self.order[start: start + k]]
