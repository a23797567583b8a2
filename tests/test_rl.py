"""RL trainer: batch layout, problem streams, a few-step run writing files and metrics, exact resume."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
import torch

from tailor_evo.errors import InputError
from tailor_evo.generation.base import SamplingParams
from tailor_evo.rundir import RunDir
from tailor_evo.tasks.base import Problem, Task, Verdict, question_key
from tailor_evo.tasks.registry import register
from tailor_evo.trainers import loop as loop_module
from tailor_evo.trainers import rl_batch as batch_module
from tailor_evo.trainers import rl_step as step_module
from tailor_evo.trainers.base import EvalSettings
from tailor_evo.trainers.checkpoint import load_backbone
from tailor_evo.trainers.losses import token_logprobs
from tailor_evo.trainers.rl import RLConfig, rl_problem_pool, train_rl
from tailor_evo.trainers.rl_batch import build_batch, completion_logits
from tailor_evo.trainers.rollout_log import append_rows

CORPUS = ["Question: say something with the letter e. Assistant: <think> yes </think> <answer> here </answer>",
          "Question: say something short. Assistant: <think> ok </think> <answer> no </answer>"] * 20


class LetterTask(Task):
    """A toy task with a reward a random model sometimes earns: the completion contains the letter 'e'."""

    name = "toy-letter"
    default_levels = (1, 2)

    def generate(self, n, seed, levels=None, **options):
        rng = random.Random(seed)
        levels = levels or list(self.default_levels)
        return [Problem(id=f"{seed}-{i}", task=self.name, difficulty=levels[i % len(levels)],
                        question=f"say something with the letter e, number {rng.randrange(10 ** 4)}",
                        answer="e", answer_text="e") for i in range(n)]

    def solve(self, problem):
        return "e"

    def instruction(self):
        return "Answer briefly."

    def verify(self, problem, completion, shaped=False):
        ok = "e" in completion
        reward = float(ok) if not shaped else 0.5 * float(ok) + 0.5 * float("<" in completion)
        return Verdict(reward=reward, correct=ok, format_ok=True, reason="ok")

    def reference_solution(self, problem):
        return "e"


@pytest.fixture(scope="module", autouse=True)
def toy_task_registered():
    """Register the toy task for this module only, so other tests see the built-in registry."""
    from tailor_evo.tasks.registry import unregister

    register(LetterTask)
    yield
    unregister(LetterTask.name)


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory) -> Path:
    from tailor_evo.models.tiny import build_tiny

    return build_tiny(tmp_path_factory.mktemp("tiny"), seed=0, hidden_size=32, layers=2, heads=2,
                      vocab_size=400, max_positions=512, corpus=CORPUS)


def _cfg(tiny_dir: Path, **kw) -> RLConfig:
    base = dict(model=str(tiny_dir), task="toy-letter", levels=[1, 2], seed=5, steps=4, prompts_per_step=2,
                group_size=4, max_new_tokens=8, lr=1e-3, beta=0.04, micro_batch=3, pool_size=16, save_every=2,
                threads=1, eval=EvalSettings(every=2, n=4, levels=[1, 2], max_new_tokens=6, batch_size=8))
    base.update(kw)
    return RLConfig(**base)


def _params(model_dir: Path) -> dict[str, torch.Tensor]:
    model, _ = load_backbone(str(model_dir))
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def test_training_batch_logprobs_match_the_engine(tiny_dir):
    """Left-padded prompts + right-padded completions give the same log-probs the sampler saw."""
    from tailor_evo.generation.hf import HFEngine

    model, tok = load_backbone(str(tiny_dir))
    engine = HFEngine(model, tok, batch_size=8, show_progress=False)
    prompts = ["Question: say something.\nAssistant:", "Question: a much longer prompt about the letter e.\nAssistant:"]
    groups = engine.generate(prompts, SamplingParams(n=3, max_new_tokens=7, seed=1))
    flat = [c for g in groups for c in g]
    assert len({len(c.prompt_token_ids) for c in flat}) == 2          # prompts really differ in length
    batch = build_batch([(c.prompt_token_ids, c.token_ids, c.logprobs) for c in flat], [0.0] * 6, [False] * 6,
                        [True] * 6, tok.pad_token_id)
    with torch.no_grad():
        lp = token_logprobs(completion_logits(model, batch), batch.completion_ids)
    mask = batch.completion_mask.bool()
    assert torch.allclose(lp[mask], batch.engine_logp[mask], atol=1e-4)
    assert int(mask.sum()) == sum(len(c.token_ids) for c in flat)


def test_rl_pool_is_disjoint_from_eval(tiny_dir):
    task = LetterTask()
    cfg = _cfg(tiny_dir, pool_size=30)
    from tailor_evo.tasks.base import split_seed

    overlapping = task.generate(30, split_seed(cfg.seed, "rl"), cfg.levels)[:5]
    pool = rl_problem_pool(task, cfg, overlapping)
    assert pool.overlaps == 5 and len(pool.problems) == 25
    assert not {question_key(p) for p in pool.problems} & {question_key(p) for p in overlapping}


def test_rl_run_writes_model_metrics_and_report(tiny_dir, tmp_path, monkeypatch):
    calls = []
    original = batch_module.sequence_logprobs
    monkeypatch.setattr(batch_module, "sequence_logprobs", lambda *a, **k: calls.append(1) or original(*a, **k))
    run = RunDir.create(tmp_path / "rl")

    def coverage(task, problems, texts):
        return len(set(texts)) / len(texts)

    out = train_rl(_cfg(tiny_dir, steps=3, beta=0.0, coverage=True), run, coverage_fn=coverage)
    assert calls == []        # beta = 0 and mu = 1: no reference and no extra forward pass
    assert (out / "config.json").exists() and list(out.glob("*.safetensors"))
    rows = run.read_metrics()
    assert rows[0]["step"] == 0 and "eval_accuracy" in rows[0] and 0 <= rows[0]["eval_truncated"] <= 1
    steps = [r for r in rows if "reward" in r]
    assert [r["step"] for r in steps] == [1, 2, 3]
    for r in steps:
        for key in ("reward", "accuracy", "kl", "entropy", "response_length", "clip_fraction", "coverage"):
            assert key in r, key
        assert 0 <= r["accuracy"] <= 1 and 0 < r["response_length"] <= 8 and r["entropy"] > 0
        assert r["kl"] == 0.0 and 0 < r["coverage"] <= 1 and 0 <= r["truncated"] <= 1
        assert r["seconds"] >= r["seconds_generate"] + r["seconds_score"] + r["seconds_logprobs"] + r["seconds_train"]
        assert r["generation_rounds"] == 1 and r["groups_trained"] == 2 and r["groups_dropped"] == 0
    assert "eval_accuracy" in steps[1] and "eval_accuracy" in steps[2]
    assert (run.path / "report.md").exists() and (run.plots / "rl_reward.png").exists()
    report = (run.path / "report.md").read_text()
    assert "mean seconds per step" in report and "log-probs" in report and "truncated rollouts" in report
    logged = [json.loads(x) for x in (run.path / "rollouts.jsonl").read_text().splitlines()]
    assert len(logged) == 2 * 4 and {x["step"] for x in logged} == {1}      # rollout_log_every 10: step 1 only
    assert set(logged[0]) >= {"prompt_id", "completion", "reward", "reason", "truncated"}
    assert any(not torch.equal(a, b) for a, b in zip(_params(tiny_dir).values(), _params(out).values()))


def test_rl_resume_matches_uninterrupted_run(tiny_dir, tmp_path, monkeypatch):
    cfg = dict(mu=2, beta=0.1, eps_low=0.1, eps_high=0.1, normalisation="sequence")
    full_run = RunDir.create(tmp_path / "full")
    full = train_rl(_cfg(tiny_dir, **cfg), full_run)

    original = loop_module.save_checkpoint

    def crash_after_first(root, state, *args, **kwargs):
        path = original(root, state, *args, **kwargs)
        if state.step == 2:
            raise KeyboardInterrupt
        return path

    monkeypatch.setattr(loop_module, "save_checkpoint", crash_after_first)
    with pytest.raises(KeyboardInterrupt):
        train_rl(_cfg(tiny_dir, **cfg), RunDir.create(tmp_path / "resumed"))
    monkeypatch.setattr(loop_module, "save_checkpoint", original)
    torch.manual_seed(999)
    run = RunDir.create(tmp_path / "resumed", resume=True)
    resumed = train_rl(_cfg(tiny_dir, **cfg), run, resume=True)

    a, b = _params(full), _params(resumed)
    for k in a:
        assert torch.allclose(a[k], b[k], atol=1e-5), k
    rows = [r for r in run.read_metrics() if "reward" in r]
    full_rows = [r for r in full_run.read_metrics() if "reward" in r]
    assert [r["step"] for r in rows] == [1, 2, 3, 4]
    assert [r["reward"] for r in rows] == [r["reward"] for r in full_rows]
    assert any(r["kl"] > 0 for r in rows[1:])                 # the KL term was active
    assert any(r["clip_fraction"] > 0 for r in full_rows)     # and so was clipping (mu = 2)


def test_shared_prompt_pass_equals_plain_pass(tiny_dir):
    """Running each prompt once per group gives the same log-probs and the same gradients."""
    from tailor_evo.generation.hf import HFEngine
    from tailor_evo.trainers.rl_batch import micro_batches

    model, tok = load_backbone(str(tiny_dir))
    engine = HFEngine(model, tok, batch_size=8, show_progress=False)
    prompts = ["Question: hi.\nAssistant:", "Question: a longer prompt about the letter e here.\nAssistant:"]
    flat = [c for g in engine.generate(prompts, SamplingParams(n=4, max_new_tokens=6, seed=2)) for c in g]
    batch = build_batch([(c.prompt_token_ids, c.token_ids, c.logprobs) for c in flat], [0.0] * 8, [False] * 8,
                        [True] * 8, tok.pad_token_id)
    assert micro_batches(batch, 8, 4) == (8, 4)
    model.train()
    grads = []
    for share in (1, 4):
        model.zero_grad()
        lp = token_logprobs(completion_logits(model, batch, share), batch.completion_ids)
        (lp * batch.completion_mask).sum().backward()
        grads.append({n: p.grad.clone() for n, p in model.named_parameters()})
        if share == 1:
            plain = lp.detach()
        else:
            assert torch.allclose(lp.detach() * batch.completion_mask, plain * batch.completion_mask, atol=1e-5)
    for n in grads[0]:
        assert torch.allclose(grads[0][n], grads[1][n], atol=1e-5, rtol=1e-4), n
    # rows of different prompts in one group cannot share
    mixed = batch.rows(2, 6)
    assert micro_batches(mixed, 4, 4) == (4, 1)


def test_default_coverage_is_the_search_rollout_coverage(tiny_dir, tmp_path):
    run = RunDir.create(tmp_path / "rl")
    train_rl(_cfg(tiny_dir, steps=1, reward="shaped", eval=EvalSettings(every=0, n=0)), run)
    rows = [r for r in run.read_metrics() if "reward" in r]
    assert len(rows) == 1 and rows[0]["coverage"] >= 0
    # shaped rewards of the toy task are multiples of 0.5, the mean of 8 of them a multiple of 1/16
    assert (rows[0]["reward"] * 16) == int(rows[0]["reward"] * 16)
    assert not [r for r in run.read_metrics() if "eval_accuracy" in r]     # n = 0 switches evaluation off


def test_partial_reward_trains_on_the_task_partial_credit(tiny_dir, tmp_path):
    run = RunDir.create(tmp_path / "rl")
    train_rl(_cfg(tiny_dir, steps=1, reward="partial", eval=EvalSettings(every=0, n=0)), run)
    rows = [r for r in run.read_metrics() if "reward" in r]
    # the toy task keeps the default all-or-nothing credit, so reward equals accuracy
    assert len(rows) == 1 and rows[0]["reward"] == rows[0]["accuracy"]
    with pytest.raises(InputError, match="reward"):
        train_rl(_cfg(tiny_dir, steps=1, reward="dense"), RunDir.create(tmp_path / "bad"))


def test_a_registered_loss_and_advantage_are_selected_by_name(tiny_dir, tmp_path):
    """A new loss or advantage estimator is one function and one registration; rl.loss and
    rl.advantage select it, and the trainer calls it on every micro-batch / step."""
    from tailor_evo.trainers.losses import (
        ADVANTAGES,
        LOSSES,
        group_advantages,
        policy_loss,
        register_advantage,
        register_loss,
    )
    from tailor_evo.trainers.rl_config import check_rl_config

    losses, advantages = [], []

    @register_loss("toy-half")
    def half_loss(logp, old_logp, adv, mask, **settings):
        losses.append(settings["normaliser"])
        loss, stats = policy_loss(logp, old_logp, adv, mask, **settings)
        return 0.5 * loss, stats

    @register_advantage("toy-centred")
    def centred(rewards, group_size, *, scale, valid):
        advantages.append(rewards.numel())
        return group_advantages(rewards, group_size, scale=False, valid=valid)

    try:
        run = RunDir.create(tmp_path / "rl")
        train_rl(_cfg(tiny_dir, steps=2, loss="toy-half", advantage="toy-centred", coverage=False,
                      eval=EvalSettings(every=0, n=0)), run)
    finally:
        del LOSSES["toy-half"], ADVANTAGES["toy-centred"]
    assert advantages == [2 * 4, 2 * 4]                     # once per step, on its 2 prompts x 4 samples
    assert len(losses) == 2 * 3                              # 8 rows in micro-batches of 3, per step
    assert "toy-half loss" in (run.path / "report.md").read_text()
    with pytest.raises(InputError, match=r"unknown loss 'toy-half' \(known: clipped"):
        check_rl_config(RLConfig(loss="toy-half"))
    with pytest.raises(InputError, match=r"unknown advantage 'toy-centred' \(known: group"):
        check_rl_config(RLConfig(advantage="toy-centred"))


def test_lora_rl_uses_the_base_model_as_reference(tiny_dir, tmp_path):
    pytest.importorskip("peft")
    from tailor_evo.trainers.base import LoraSettings

    run = RunDir.create(tmp_path / "rl")
    out = train_rl(_cfg(tiny_dir, steps=2, beta=0.5, lr=5e-2, coverage=False, eval=EvalSettings(every=0, n=0),
                        lora=LoraSettings(enabled=True, r=4, alpha=8, target_modules=["q_proj", "v_proj"])), run)
    rows = [r for r in run.read_metrics() if "reward" in r]
    assert rows[0]["kl"] == pytest.approx(0.0, abs=1e-6)   # adapters start at zero: policy == base
    assert rows[1]["kl"] > 0                                  # after one update they differ
    assert (out / "config.json").exists() and not (out / "adapter_config.json").exists()


def test_rl_learns_the_toy_reward(tiny_dir, tmp_path):
    """End to end, the objective pushes the policy towards rewarded completions."""
    run = RunDir.create(tmp_path / "rl")
    train_rl(_cfg(tiny_dir, steps=30, prompts_per_step=4, group_size=8, max_new_tokens=4, lr=1e-2, beta=0.0,
                  coverage=False, save_every=0, eval=EvalSettings(every=0, n=0)), run)
    rewards = [r["reward"] for r in run.read_metrics() if "reward" in r]
    first, last = sum(rewards[:5]) / 5, sum(rewards[-5:]) / 5
    assert last > first + 0.3 and last > 0.8, rewards


def test_trimmed_micro_batches_give_the_same_update(tiny_dir, monkeypatch):
    """Dropping columns that are padding in every row of a micro-batch changes no loss, log-prob or gradient."""
    from tailor_evo.generation.hf import HFEngine
    from tailor_evo.trainers.rl_batch import RolloutBatch, sequence_logprobs
    from tailor_evo.trainers.rl_step import optimise

    model, tok = load_backbone(str(tiny_dir))
    engine = HFEngine(model, tok, batch_size=16, show_progress=False)
    prompts = ["Question: hi.\nAssistant:", "Question: a much longer prompt about the letter e, and more.\nAssistant:"]
    flat = [c for g in engine.generate(prompts, SamplingParams(n=4, max_new_tokens=12, seed=3)) for c in g]
    for i, keep in enumerate((2, 5, 3, 4)):     # the short prompt's completions are short too
        flat[i].token_ids, flat[i].logprobs = flat[i].token_ids[:keep], flat[i].logprobs[:keep]
    batch = build_batch([(c.prompt_token_ids, c.token_ids, c.logprobs) for c in flat],
                        [float(i % 3) for i in range(8)], [False] * 8, [True] * 8, tok.pad_token_id)
    short = batch.rows(0, 4).trimmed()          # the short prompt's group: both ends trimmed
    assert short.width < batch.width and short.input_ids.shape[1] < batch.input_ids.shape[1]
    assert torch.equal(short.completion_mask.sum(1), batch.completion_mask[:4].sum(1))
    cfg = RLConfig(micro_batch=4, group_size=4, beta=0.04)
    advantages = torch.tensor([1.0, -1.0, 0.5, -0.5, 0.2, -0.2, 1.0, -1.0])
    results = []
    for trim in (False, True):
        if not trim:
            monkeypatch.setattr(RolloutBatch, "trimmed", lambda self: self)
        else:
            monkeypatch.undo()
        torch.manual_seed(0)
        m, _ = load_backbone(str(tiny_dir))
        m.train()
        ref = sequence_logprobs(m, batch, 4, 4)
        opt = torch.optim.SGD(m.parameters(), lr=0.0)      # lr 0: the step leaves the gradients to compare
        sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda _: 1.0)
        opt.zero_grad = lambda set_to_none=True: None      # keep the gradients after the step
        res = optimise(m, opt, sched, batch, advantages, ref - 0.01, batch.engine_logp, cfg)
        results.append((ref, res, {n: p.grad.clone() for n, p in m.named_parameters()}))
    (ref_a, res_a, grad_a), (ref_b, res_b, grad_b) = results
    assert torch.allclose(ref_a * batch.completion_mask, ref_b * batch.completion_mask, atol=1e-5)
    assert res_a.loss == pytest.approx(res_b.loss, abs=1e-5) and res_a.kl == pytest.approx(res_b.kl, abs=1e-6)
    assert res_a.entropy == pytest.approx(res_b.entropy, rel=1e-5)
    for n in grad_a:
        assert torch.allclose(grad_a[n], grad_b[n], atol=1e-5, rtol=1e-4), n


# --------------------------------------------------------------------------------------------
# dynamic sampling, truncation and the rollout log, through the trainer on a scripted engine


class KindTask(LetterTask):
    """Problems of three kinds, which the scripted engine answers differently; reward: 'yes' in the text."""

    name = "toy-kinds"

    def generate(self, n, seed, levels=None, **options):
        kinds = ("easy", "hard", "mixed")
        return [Problem(id=f"{seed}-{i}", task=self.name, difficulty=1, question=f"{kinds[i % 3]} question {seed}-{i}",
                        answer="yes", answer_text="yes") for i in range(n)]

    def verify(self, problem, completion, shaped=False):
        ok = "yes" in completion
        return Verdict(reward=float(ok), correct=ok, format_ok=True, reason="ok" if ok else "wrong")


class ScriptedEngine:
    """Answers by the problem's kind: easy all 'yes', hard all 'no', mixed 'yes', 'no no', 'no', 'no no'
    in turn, where 'no no' runs to the token budget (finish reason 'length', no eos)."""

    def __init__(self, tokenizer):
        self.tok = tokenizer

    def generate(self, prompts, params):
        from tailor_evo.generation.base import Completion

        out = []
        for prompt in prompts:
            kind = next(k for k in ("easy", "hard", "mixed") if f"{k} question" in prompt)
            group = []
            for i in range(params.n):
                text = {"easy": "yes", "hard": "no"}.get(kind) or ("yes", "no no", "no", "no no")[i % 4]
                cut = text == "no no"
                ids = self.tok(text, add_special_tokens=False)["input_ids"] + ([] if cut else [self.tok.eos_token_id])
                group.append(Completion(text=text, token_ids=ids, finish_reason="length" if cut else "stop",
                                        prompt_token_ids=self.tok(prompt)["input_ids"]))
            out.append(group)
        return out


@pytest.fixture()
def kinds_registered():
    from tailor_evo.tasks.registry import unregister

    register(KindTask)
    yield
    unregister(KindTask.name)


def _capture_batches(monkeypatch) -> list:
    seen = []
    original = step_module.optimise

    def spy(model, optimizer, scheduler, batch, advantages, *args, **kwargs):
        seen.append((batch, advantages))
        return original(model, optimizer, scheduler, batch, advantages, *args, **kwargs)

    monkeypatch.setattr(step_module, "optimise", spy)
    return seen


def test_dynamic_sampling_refills_a_batch_and_never_trains_on_a_zero_variance_group(tiny_dir, tmp_path, monkeypatch,
                                                                                       kinds_registered):
    seen = _capture_batches(monkeypatch)
    run = RunDir.create(tmp_path / "rl")
    train_rl(_cfg(tiny_dir, task="toy-kinds", steps=3, prompts_per_step=3, dynamic_sampling=True, max_refill_rounds=8,
                  rollout_log_every=1, coverage=False, eval=EvalSettings(every=0, n=0)), run,
             engine_factory=lambda m, t: ScriptedEngine(t))
    assert len(seen) == 3
    for batch, advantages in seen:
        assert batch.size == 3 * 4                                         # refilled to the full 3 groups
        assert torch.all(batch.rewards.view(-1, 4).std(dim=1) > 0)         # every trained group has signal
        assert torch.all(advantages.view(-1, 4).abs().sum(dim=1) > 0)
    rows = [r for r in run.read_metrics() if "reward" in r]
    for r in rows:
        assert r["groups_trained"] == 3 and r["groups_refilled"] >= 2 and r["generation_rounds"] >= 2
        assert r["groups_dropped"] == r["groups_generated"] - 3
        assert r["zero_signal_groups"] >= 2                                 # measured on the step's own prompts
    logged = [json.loads(x) for x in (run.path / "rollouts.jsonl").read_text().splitlines()]
    assert {x["step"] for x in logged} == {1, 2, 3}
    assert sum(x["trained"] for x in logged) == 3 * 3 * 4
    groups: dict = {}
    for x in logged:
        groups.setdefault((x["step"], x["round"], x["prompt_id"]), []).append(x)
    assert {len(g) for g in groups.values()} == {4} and {len({x["trained"] for x in g}) for g in groups.values()} == {1}
    assert all(len({x["reward"] for x in g}) == 2 for g in groups.values() if g[0]["trained"])
    assert any(x["round"] > 0 and x["trained"] for x in logged)
    report = (run.path / "report.md").read_text()
    assert "dynamic sampling:" in report and "generate" in report and "train" in report


class HardTask(KindTask):
    """Only the kind the scripted engine always answers wrong: no group ever has a reward spread."""

    name = "toy-hard"

    def generate(self, n, seed, levels=None, **options):
        return [Problem(id=f"{seed}-{i}", task=self.name, difficulty=1, question=f"hard question {seed}-{i}",
                        answer="yes", answer_text="yes") for i in range(n)]


def test_a_step_that_trains_nothing_is_warned_about(tiny_dir, tmp_path, caplog):
    from tailor_evo.tasks.registry import unregister
    from tailor_evo.trainers.rl_report import idle_step_warning

    register(HardTask)
    try:
        run = RunDir.create(tmp_path / "rl")
        with caplog.at_level("WARNING", logger="tailor_evo.trainers.rl"):
            train_rl(_cfg(tiny_dir, task="toy-hard", steps=2, prompts_per_step=3, dynamic_sampling=True,
                          max_refill_rounds=0, coverage=False, eval=EvalSettings(every=0, n=0)), run,
                     engine_factory=lambda m, t: ScriptedEngine(t))
    finally:
        unregister(HardTask.name)
    warned = [r.getMessage() for r in caplog.records if "trained nothing" in r.getMessage()]
    assert [w.split(" trained")[0] for w in warned] == ["step 1", "step 2"]
    assert "3 groups" in warned[0] and "mean reward 0.00" in warned[0] and "rl.lr" in warned[0]
    assert idle_step_warning({"step": 3, "reward": 0.5, "groups_generated": 8, "groups_trained": 5,
                              "zero_signal_groups": 3}) is None
    # without dynamic sampling every group is kept, and a step is idle when none has a spread
    assert idle_step_warning({"step": 4, "reward": 1.0, "groups_generated": 8, "groups_trained": 8,
                              "zero_signal_groups": 8}) is not None


def test_truncated_completions_are_masked_out_of_the_loss_and_counted(tiny_dir, tmp_path, monkeypatch,
                                                                      kinds_registered):
    seen = _capture_batches(monkeypatch)
    run = RunDir.create(tmp_path / "rl")
    train_rl(_cfg(tiny_dir, task="toy-kinds", steps=2, prompts_per_step=3, mask_truncated=True, coverage=False,
                  eval=EvalSettings(every=0, n=0)), run, engine_factory=lambda m, t: ScriptedEngine(t))
    rows = [r for r in run.read_metrics() if "reward" in r]
    assert len(seen) == len(rows) == 2
    mixed_groups = 0
    for (batch, advantages), row in zip(seen, rows):
        cut = batch.completion_mask.sum(dim=1) == 0
        assert row["truncated"] == pytest.approx(float(cut.float().mean()))
        assert torch.all(batch.rewards[cut] == 0) and torch.all(advantages[cut] == 0)
        for g in range(3):      # a mixed group keeps its signal from the untruncated 'yes' and 'no' alone
            rows_g = slice(4 * g, 4 * g + 4)
            if cut[rows_g].any():
                mixed_groups += 1
                assert cut[rows_g].tolist() == [False, True, False, True]
                kept = advantages[rows_g][[0, 2]]
                assert torch.allclose(kept, torch.tensor([0.7071, -0.7071]), atol=1e-3)
            else:
                assert torch.all(advantages[rows_g] == 0)
    assert mixed_groups > 0


def test_truncated_completions_can_leave_the_loss_and_stay_in_their_group(tiny_dir, tmp_path, monkeypatch,
                                                                          kinds_registered):
    seen = _capture_batches(monkeypatch)
    run = RunDir.create(tmp_path / "rl")
    train_rl(_cfg(tiny_dir, task="toy-kinds", steps=2, prompts_per_step=3, mask_truncated=True,
                  truncated_in_group=True, coverage=False, eval=EvalSettings(every=0, n=0)),
             run, engine_factory=lambda m, t: ScriptedEngine(t))
    mixed_groups = 0
    for batch, advantages in seen:
        cut = batch.completion_mask.sum(dim=1) == 0
        for g in range(3):      # 'yes', cut, 'no', cut: rewards 1, 0, 0, 0 all counted, the cut rows untrained
            rows_g = slice(4 * g, 4 * g + 4)
            if cut[rows_g].any():
                mixed_groups += 1
                assert cut[rows_g].tolist() == [False, True, False, True]
                assert batch.rewards[rows_g].tolist() == [1.0, 0.0, 0.0, 0.0]
                assert torch.allclose(advantages[rows_g], torch.tensor([1.5, -0.5, -0.5, -0.5]), atol=1e-3)
    assert mixed_groups > 0
    assert "counted in their groups' statistics" in (run.path / "report.md").read_text()


def test_truncated_in_group_needs_mask_truncated(tiny_dir, tmp_path):
    with pytest.raises(InputError, match="mask_truncated"):
        train_rl(_cfg(tiny_dir, truncated_in_group=True), RunDir.create(tmp_path / "rl"))


def test_the_overlong_penalty_ramps_to_the_budget():
    from tailor_evo.trainers.rewards import overlong_penalty

    assert [overlong_penalty(n, 100, 20, 1.0) for n in (50, 80, 90, 100)] == [0.0, 0.0, 0.5, 1.0]
    assert overlong_penalty(95, 100, 20, 0.4) == pytest.approx(0.3)
    assert overlong_penalty(100, 100, 0, 1.0) == 0.0          # off


def test_overlong_completions_lose_reward_and_loops_are_pushed_below_wrong_answers(tiny_dir, tmp_path, monkeypatch,
                                                                                    kinds_registered):
    seen = _capture_batches(monkeypatch)
    run = RunDir.create(tmp_path / "rl")
    train_rl(_cfg(tiny_dir, task="toy-kinds", steps=2, prompts_per_step=3, overlong_buffer=4, coverage=False,
                  eval=EvalSettings(every=0, n=0)), run, engine_factory=lambda m, t: ScriptedEngine(t))
    rows = [r for r in run.read_metrics() if "reward" in r]
    mixed_groups = 0
    for (batch, advantages), row in zip(seen, rows):
        lengths = batch.completion_mask.sum(dim=1)
        for g in range(3):
            rows_g = slice(4 * g, 4 * g + 4)
            if batch.rewards[rows_g].min() < 0:
                # 'yes', cut, 'no', cut: the cut loops (8 tokens of budget, 4 of buffer) lose the whole reward
                # of 1, the short wrong answer nothing, so a loop now scores below a wrong answer
                mixed_groups += 1
                assert batch.rewards[rows_g].tolist() == [1.0, -1.0, 0.0, -1.0]
                assert advantages[rows_g][1] < advantages[rows_g][2] < advantages[rows_g][0]
            assert torch.all(lengths[rows_g] <= 4)     # no finished answer reached the buffer: unpenalised
        cut_share = row["truncated"]
        assert row["overlong_penalty"] == pytest.approx(cut_share)
    assert mixed_groups > 0
    assert "overlong penalty (up to 1 over the last 4 tokens of the budget)" in (run.path / "report.md").read_text()


@pytest.mark.parametrize("settings, field", [(dict(overlong_buffer=9), "overlong_buffer"),
                                             (dict(overlong_buffer=-1), "overlong_buffer"),
                                             (dict(overlong_penalty=0.5), "overlong_penalty"),
                                             (dict(overlong_buffer=4, overlong_penalty=float("nan")), "overlong_penalty")])
def test_overlong_settings_outside_their_domain_are_refused(tiny_dir, tmp_path, settings, field):
    with pytest.raises(InputError, match=field):
        train_rl(_cfg(tiny_dir, **settings), RunDir.create(tmp_path / "rl"))


def test_rollout_log_is_cut_back_on_resume(tiny_dir, tmp_path, monkeypatch):
    cfg = dict(dynamic_sampling=True, group_size=2, rollout_log_every=1, coverage=False)
    full_run = RunDir.create(tmp_path / "full")
    full = train_rl(_cfg(tiny_dir, **cfg), full_run)

    original = loop_module.save_checkpoint

    def crash_after_third_step(root, state, *args, **kwargs):
        path = original(root, state, *args, **kwargs)
        if state.step == 2:
            append_rows(root.parent / "rollouts.jsonl", [{"step": 3, "sample": "written, then lost"}])
            raise KeyboardInterrupt
        return path

    monkeypatch.setattr(loop_module, "save_checkpoint", crash_after_third_step)
    with pytest.raises(KeyboardInterrupt):
        train_rl(_cfg(tiny_dir, **cfg), RunDir.create(tmp_path / "resumed"))
    monkeypatch.setattr(loop_module, "save_checkpoint", original)
    run = RunDir.create(tmp_path / "resumed", resume=True)
    resumed = train_rl(_cfg(tiny_dir, **cfg), run, resume=True)
    a, b = _params(full), _params(resumed)
    for k in a:
        assert torch.allclose(a[k], b[k], atol=1e-5), k
    assert (run.path / "rollouts.jsonl").read_text() == (full_run.path / "rollouts.jsonl").read_text()
    full_rows = [r for r in full_run.read_metrics() if "reward" in r]
    assert any(r["groups_refilled"] > 0 for r in full_rows)         # refills moved the prompt stream
    assert [r["groups_generated"] for r in full_rows] == [r["groups_generated"] for r in run.read_metrics()
                                                          if "reward" in r]
