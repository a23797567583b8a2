"""Pure loss functions of the trainers (no model, no I/O), so that they can be checked by hand.

The RL objective is group-relative, clipped and KL-regularised:

* advantages: each completion's reward minus its group's mean reward, optionally
  divided by the group's standard deviation (a group whose rewards are all equal
  carries no signal and gets zero advantage);
* policy term per token: ``-min(r * A, clip(r, 1 - eps_low, 1 + eps_high) * A)``
  with ``r = exp(logp - logp_rollout)``;
* KL term per token: the k3 estimator ``exp(ref - logp) - (ref - logp) - 1``
  (unbiased, non-negative, zero where the policy equals the reference), times ``beta``;
* normalisation: ``"token"`` sums over all completion tokens of the batch and
  divides by their number (long answers weigh per token, not per sequence);
  ``"sequence"`` averages per-sequence means.

For gradient accumulation the caller can pass the normaliser of the *whole*
batch, so that the losses of micro-batches add up to the full-batch loss.

The RL trainer reaches its objective only through two tables, so that a variant is one
function plus one registration and no edit of the optimisation step:

* :data:`ADVANTAGES`: ``rl.advantage`` -> rewards to advantages (:class:`AdvantageFn`),
  filled by :func:`register_advantage`; ``group`` (:func:`group_advantages`) is the default;
* :data:`LOSSES`: ``rl.loss`` -> the per-micro-batch loss (:class:`PolicyLoss`), filled by
  :func:`register_loss`; ``clipped`` (:func:`policy_loss`) is the default.

A function registered from outside this module must be imported before the run starts.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol, TypeVar

import torch
from torch import Tensor

NORMALISATIONS = ("token", "sequence")


class AdvantageFn(Protocol):
    """Rewards ``[B * G]`` (groups of ``group_size`` contiguous) -> advantages ``[B * G]``.

    ``scale`` is ``rl.scale_advantages``; ``valid`` (bool ``[B * G]`` or None) marks the rows
    that count: the others must get advantage 0 and stay out of every group statistic.
    """

    def __call__(self, rewards: Tensor, group_size: int, *, scale: bool, valid: Tensor | None) -> Tensor: ...


class PolicyLoss(Protocol):
    """One micro-batch's loss and its diagnostics (see :func:`policy_loss` for the arguments).

    The returned losses of a batch's micro-batches are summed into one backward pass each,
    so a loss must divide by ``normaliser`` (the whole batch's token or sequence count) where
    it is given, rather than by the micro-batch's own count.
    """

    def __call__(self, logp: Tensor, old_logp: Tensor, advantages: Tensor, mask: Tensor, *,
                 ref_logp: Tensor | None, beta: float, eps_low: float, eps_high: float, normalisation: str,
                 normaliser: float | None) -> tuple[Tensor, "PolicyLossStats"]: ...


ADVANTAGES: dict[str, AdvantageFn] = {}
LOSSES: dict[str, PolicyLoss] = {}
_F = TypeVar("_F", bound=Callable)


def _registrar(table: dict, kind: str, name: str) -> Callable[[_F], _F]:
    def add(fn: _F) -> _F:
        if table.get(name, fn) is not fn:
            raise ValueError(f"an RL {kind} named {name!r} is already registered")
        table[name] = fn
        return fn
    return add


def register_advantage(name: str) -> Callable[[_F], _F]:
    """Decorator: make an :class:`AdvantageFn` selectable as ``rl.advantage: NAME``."""
    return _registrar(ADVANTAGES, "advantage estimator", name)


def register_loss(name: str) -> Callable[[_F], _F]:
    """Decorator: make a :class:`PolicyLoss` selectable as ``rl.loss: NAME``."""
    return _registrar(LOSSES, "loss", name)


@register_advantage("group")
def group_advantages(rewards: Tensor, group_size: int, scale: bool = True, eps: float = 1e-4,
                     valid: Tensor | None = None) -> Tensor:
    """Rewards ``[B * G]`` (groups contiguous) -> advantages ``[B * G]``.

    The standard deviation is the unbiased one (as in most group-relative
    implementations); with ``scale=False`` only the mean is subtracted. ``valid`` (bool
    ``[B * G]``) leaves rows out as if they had not been sampled: they get advantage 0 and
    do not enter their group's mean or std (truncated completions under ``mask_truncated``).
    """
    if rewards.numel() % group_size:
        raise ValueError(f"{rewards.numel()} rewards do not split into groups of {group_size}")
    if valid is not None:
        return _masked_group_advantages(rewards.float().view(-1, group_size),
                                        valid.float().view(-1, group_size), scale, eps)
    grouped = rewards.float().view(-1, group_size)
    adv = grouped - grouped.mean(dim=1, keepdim=True)
    if scale:
        std = grouped.std(dim=1, keepdim=True) if group_size > 1 else torch.zeros_like(grouped[:, :1])
        adv = adv / (std + eps)
    return adv.reshape(-1)


def _masked_group_advantages(grouped: Tensor, weight: Tensor, scale: bool, eps: float) -> Tensor:
    """:func:`group_advantages` over the rows whose weight is 1 (a group of one valid row gets 0)."""
    n = weight.sum(dim=1, keepdim=True)
    mean = (grouped * weight).sum(dim=1, keepdim=True) / n.clamp(min=1.0)
    adv = (grouped - mean) * weight
    if scale:
        var = (adv ** 2).sum(dim=1, keepdim=True) / (n - 1.0).clamp(min=1.0)
        adv = adv / (var.sqrt() + eps)
    return adv.reshape(-1)


def k3_kl(logp: Tensor, ref_logp: Tensor) -> Tensor:
    """Per-token k3 estimate of KL(policy || reference) from sampled-token log-probs."""
    delta = ref_logp - logp
    return torch.exp(delta) - delta - 1.0


def masked_sum(x: Tensor, mask: Tensor) -> Tensor:
    return (x * mask).sum()


def normalise(per_token: Tensor, mask: Tensor, how: str, normaliser: float | None = None) -> Tensor:
    """Reduce ``[N, T]`` per-token values to a scalar.

    ``normaliser`` overrides the denominator: the total token count of the whole
    batch for ``"token"``, the total sequence count for ``"sequence"``.
    """
    mask = mask.to(per_token.dtype)
    if how == "token":
        denom = normaliser if normaliser is not None else mask.sum().clamp(min=1.0)
        return masked_sum(per_token, mask) / denom
    if how == "sequence":
        per_seq = (per_token * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1.0)
        denom = normaliser if normaliser is not None else per_token.shape[0]
        return per_seq.sum() / denom
    raise ValueError(f"unknown normalisation {how!r} (known: {', '.join(NORMALISATIONS)})")


@dataclass
class PolicyLossStats:
    """Diagnostics of one loss evaluation (plain floats, summed over the masked tokens)."""

    tokens: float          # number of completion tokens seen
    kl_sum: float          # sum of per-token k3 KL
    clipped: float         # tokens where the clipped term was the one taken (and differed)
    ratio_sum: float


@register_loss("clipped")
def policy_loss(logp: Tensor, old_logp: Tensor, advantages: Tensor, mask: Tensor, *,
                ref_logp: Tensor | None = None, beta: float = 0.0, eps_low: float = 0.2,
                eps_high: float = 0.2, normalisation: str = "token",
                normaliser: float | None = None) -> tuple[Tensor, PolicyLossStats]:
    """The clipped, KL-regularised group-relative loss.

    Shapes: ``logp``, ``old_logp``, ``ref_logp`` and ``mask`` are ``[N, T]`` (sampled-token
    log-probs of the current, rollout and reference policies; mask 1 on completion tokens),
    ``advantages`` is ``[N]``.
    """
    mask = mask.to(logp.dtype)
    adv = advantages.to(logp.dtype).unsqueeze(1)
    ratio = torch.exp(logp - old_logp)
    unclipped = ratio * adv
    clipped = torch.clamp(ratio, 1.0 - eps_low, 1.0 + eps_high) * adv
    per_token = -torch.minimum(unclipped, clipped)
    kl = None
    if beta and ref_logp is not None:
        kl = k3_kl(logp, ref_logp)
        per_token = per_token + beta * kl
    loss = normalise(per_token, mask, normalisation, normaliser)
    with torch.no_grad():
        was_clipped = (clipped < unclipped).to(logp.dtype)
        stats = PolicyLossStats(
            tokens=float(mask.sum()),
            kl_sum=float(masked_sum(kl, mask)) if kl is not None else 0.0,
            clipped=float(masked_sum(was_clipped, mask)),
            ratio_sum=float(masked_sum(ratio, mask)),
        )
    return loss, stats


def token_logprobs(logits: Tensor, targets: Tensor, temperature: float = 1.0) -> Tensor:
    """Log-prob of each target token: ``logits [N, T, V]``, ``targets [N, T]`` -> ``[N, T]``.

    Uses ``logsumexp`` so that the full ``[N, T, V]`` log-softmax is never materialised twice.
    """
    logits = logits.float()
    if temperature != 1.0:
        logits = logits / temperature
    picked = logits.gather(-1, targets.unsqueeze(-1)).squeeze(-1)
    return picked - torch.logsumexp(logits, dim=-1)


def entropy_from_logits(logits: Tensor) -> Tensor:
    """Per-position entropy of the softmax distribution: ``[N, T, V]`` -> ``[N, T]``."""
    logits = logits.float()
    logp = torch.log_softmax(logits, dim=-1)
    return -(logp.exp() * logp).sum(dim=-1)


def sft_loss(logits: Tensor, labels: Tensor, ignore_index: int = -100,
             normaliser: float | None = None) -> Tensor:
    """Next-token cross-entropy on the positions whose label is not ``ignore_index``.

    ``labels`` are aligned with the inputs (as in transformers); the shift happens here.
    ``normaliser`` (total supervised tokens of the whole batch) makes accumulation exact.
    """
    shift_logits = logits[:, :-1].float()
    shift_labels = labels[:, 1:]
    total = torch.nn.functional.cross_entropy(
        shift_logits.reshape(-1, shift_logits.shape[-1]), shift_labels.reshape(-1),
        ignore_index=ignore_index, reduction="sum")
    denom = normaliser if normaliser is not None else (shift_labels != ignore_index).sum().clamp(min=1)
    return total / denom
