"""The RL and SFT losses against values computed independently, element by element in Python."""

from __future__ import annotations

import math

import pytest
import torch

from tailor_evo.trainers.losses import (
    entropy_from_logits,
    group_advantages,
    k3_kl,
    policy_loss,
    sft_loss,
    token_logprobs,
)

# A hand-made batch: 3 sequences x 4 token slots, the last sequence shorter (mask).
LOGP = [[-1.0, -0.5, -2.0, -0.1], [-0.3, -1.2, -0.7, -0.9], [-2.5, -0.2, 0.0, 0.0]]
OLD = [[-1.5, -0.5, -1.0, -0.1], [-0.3, -0.2, -0.9, -2.0], [-2.0, -0.6, 0.0, 0.0]]
REF = [[-1.2, -0.4, -1.8, -0.3], [-0.5, -1.0, -0.7, -1.1], [-2.2, -0.3, 0.0, 0.0]]
MASK = [[1, 1, 1, 1], [1, 1, 1, 1], [1, 1, 0, 0]]
ADV = [1.0, -0.5, 2.0]
EPS_LOW, EPS_HIGH, BETA = 0.2, 0.28, 0.1


def reference_per_token(i: int, t: int, beta: float) -> float:
    """The objective for one token, written out with math (no torch)."""
    ratio = math.exp(LOGP[i][t] - OLD[i][t])
    a = ADV[i]
    clipped_ratio = min(max(ratio, 1 - EPS_LOW), 1 + EPS_HIGH)
    pg = -min(ratio * a, clipped_ratio * a)
    d = REF[i][t] - LOGP[i][t]
    kl = math.exp(d) - d - 1
    return pg + beta * kl


def tensors():
    return (torch.tensor(LOGP), torch.tensor(OLD), torch.tensor(REF), torch.tensor(MASK, dtype=torch.float32),
            torch.tensor(ADV))


def test_batch_has_clipping_on_some_tokens():
    # guard on the fixture itself: the test below is only meaningful if clipping is active somewhere
    ratios = [math.exp(LOGP[i][t] - OLD[i][t]) for i in range(3) for t in range(4) if MASK[i][t]]
    assert any(r > 1 + EPS_HIGH for r in ratios) and any(r < 1 - EPS_LOW for r in ratios)
    assert any(1 - EPS_LOW <= r <= 1 + EPS_HIGH for r in ratios)


def test_token_level_loss_matches_hand_computation():
    logp, old, ref, mask, adv = tensors()
    loss, stats = policy_loss(logp, old, adv, mask, ref_logp=ref, beta=BETA, eps_low=EPS_LOW,
                              eps_high=EPS_HIGH, normalisation="token")
    cells = [(i, t) for i in range(3) for t in range(4) if MASK[i][t]]
    expected = sum(reference_per_token(i, t, BETA) for i, t in cells) / len(cells)
    assert loss.item() == pytest.approx(expected, rel=1e-6)
    assert stats.tokens == len(cells)
    # tokens where the clipped term is the one the min picks (and differs from the unclipped)
    n_clipped = 0
    for i, t in cells:
        r = math.exp(LOGP[i][t] - OLD[i][t])
        cr = min(max(r, 1 - EPS_LOW), 1 + EPS_HIGH)
        n_clipped += int(cr * ADV[i] < r * ADV[i])
    assert n_clipped > 0
    assert stats.clipped == n_clipped


def test_sequence_level_loss_matches_hand_computation():
    logp, old, ref, mask, adv = tensors()
    loss, _ = policy_loss(logp, old, adv, mask, ref_logp=ref, beta=BETA, eps_low=EPS_LOW,
                          eps_high=EPS_HIGH, normalisation="sequence")
    per_seq = []
    for i in range(3):
        ts = [t for t in range(4) if MASK[i][t]]
        per_seq.append(sum(reference_per_token(i, t, BETA) for t in ts) / len(ts))
    assert loss.item() == pytest.approx(sum(per_seq) / 3, rel=1e-6)
    token_loss, _ = policy_loss(logp, old, adv, mask, ref_logp=ref, beta=BETA, eps_low=EPS_LOW,
                                eps_high=EPS_HIGH, normalisation="token")
    assert loss.item() != pytest.approx(token_loss.item())   # the two normalisations differ on ragged lengths


def test_micro_batches_with_global_normaliser_sum_to_full_batch_loss():
    logp, old, ref, mask, adv = tensors()
    for how in ("token", "sequence"):
        full, _ = policy_loss(logp, old, adv, mask, ref_logp=ref, beta=BETA, normalisation=how)
        norm = float(mask.sum()) if how == "token" else 3.0
        parts = [policy_loss(logp[s:e], old[s:e], adv[s:e], mask[s:e], ref_logp=ref[s:e], beta=BETA,
                             normalisation=how, normaliser=norm)[0] for s, e in ((0, 2), (2, 3))]
        assert sum(p.item() for p in parts) == pytest.approx(full.item(), rel=1e-6)


def test_gradient_of_clipped_tokens_is_zero():
    logp, old, _, mask, adv = tensors()
    logp = logp.clone().requires_grad_(True)
    loss, _ = policy_loss(logp, old, adv, mask, eps_low=EPS_LOW, eps_high=EPS_HIGH)
    loss.backward()
    # sequence 0 token 0: ratio e^0.5 > 1.28 with positive advantage -> clipped, no gradient
    assert logp.grad[0, 0].item() == 0.0
    # sequence 0 token 1: ratio 1 -> inside the range, gradient -A/n
    assert logp.grad[0, 1].item() == pytest.approx(-1.0 / 10)


def test_kl_is_zero_when_policy_equals_reference():
    logp = torch.tensor(LOGP)
    assert torch.all(k3_kl(logp, logp.clone()) == 0)
    _, stats = policy_loss(logp, logp.clone(), torch.tensor(ADV), torch.ones(3, 4), ref_logp=logp.clone(), beta=1.0)
    assert stats.kl_sum == 0.0
    # and positive otherwise (k3 is non-negative)
    assert torch.all(k3_kl(logp, torch.tensor(REF)) >= 0) and k3_kl(logp, torch.tensor(REF)).sum() > 0


def test_beta_zero_ignores_reference():
    logp, old, ref, mask, adv = tensors()
    a, _ = policy_loss(logp, old, adv, mask, ref_logp=ref, beta=0.0)
    b, _ = policy_loss(logp, old, adv, mask, ref_logp=None, beta=0.0)
    assert a.item() == b.item()


def test_advantages_zero_for_equal_rewards_and_normalised_otherwise():
    rewards = torch.tensor([1.0, 1.0, 1.0, 1.0, 0.0, 1.0, 0.0, 0.0])
    adv = group_advantages(rewards, 4)
    assert torch.all(adv[:4] == 0)
    g = [0.0, 1.0, 0.0, 0.0]
    mean = sum(g) / 4
    std = math.sqrt(sum((x - mean) ** 2 for x in g) / 3)
    assert adv[4:].tolist() == pytest.approx([(x - mean) / (std + 1e-4) for x in g], rel=1e-5)
    unscaled = group_advantages(rewards, 4, scale=False)
    assert unscaled[4:].tolist() == pytest.approx([x - mean for x in g])
    with pytest.raises(ValueError):
        group_advantages(rewards, 3)


def test_advantages_leave_invalid_rows_out_of_their_group():
    rewards = torch.tensor([1.0, 0.0, 1.0, 0.5, 0.0, 0.0, 1.0, 1.0])
    all_valid = torch.ones(8, dtype=torch.bool)
    for scale in (True, False):
        assert torch.allclose(group_advantages(rewards, 4, scale=scale, valid=all_valid),
                              group_advantages(rewards, 4, scale=scale), atol=1e-6)
    valid = torch.tensor([True, True, False, True, False, False, True, True])
    adv = group_advantages(rewards, 4, valid=valid)
    assert adv[2] == 0 and adv[4] == 0 and adv[5] == 0
    # the first group's valid rows [1, 0, 0.5] alone, as a group of three
    assert torch.allclose(adv[[0, 1, 3]], group_advantages(torch.tensor([1.0, 0.0, 0.5]), 3), atol=1e-6)
    assert torch.allclose(adv[6:], torch.zeros(2))            # equal valid rewards: no signal


def test_token_logprobs_and_entropy_match_softmax():
    torch.manual_seed(0)
    logits = torch.randn(2, 3, 5)
    targets = torch.randint(0, 5, (2, 3))
    lp = token_logprobs(logits, targets)
    expected = torch.log_softmax(logits, -1).gather(-1, targets.unsqueeze(-1)).squeeze(-1)
    assert torch.allclose(lp, expected, atol=1e-6)
    p = torch.softmax(logits, -1)
    assert torch.allclose(entropy_from_logits(logits), -(p * p.log()).sum(-1), atol=1e-6)


def test_sft_loss_only_counts_labelled_positions():
    torch.manual_seed(1)
    logits = torch.randn(1, 5, 7)
    labels = torch.tensor([[-100, -100, 3, 4, -100]])
    # position t's logits predict label t+1: only (1 -> 3) and (2 -> 4) count
    lp = torch.log_softmax(logits, -1)
    expected = -(lp[0, 1, 3] + lp[0, 2, 4]) / 2
    assert sft_loss(logits, labels).item() == pytest.approx(expected.item(), rel=1e-6)
