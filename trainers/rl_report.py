"""What an RL run leaves for a reader: each step's metrics row, ``report.md``, its curves and
the model card's facts.

Kept apart from the training loop so that the loop reads as the algorithm. Besides
reward and evaluation, the report gives where a step's time went (generation, scoring,
the log-prob passes, training), the share of truncated rollouts and, under dynamic
sampling, how many groups were dropped and refilled: the figures that decide the next
run's budget (``max_new_tokens``, ``max_refill_rounds``).
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

from tailor_evo.rundir import RunDir
from tailor_evo.trainers.base import plot_lines
from tailor_evo.trainers.rollout import is_truncated
from tailor_evo.trainers.sampling import Truncation

# metric keys of the step's time split, in the order the step runs them
TIME_PARTS = (("generate", "seconds_generate"), ("score", "seconds_score"), ("log-probs", "seconds_logprobs"),
              ("train", "seconds_train"))


def step_record(step: int, sample: Any, res: Any, lr: float, *, seconds: float,
                times: dict[str, float]) -> dict[str, Any]:
    """The metrics row of one step (``sample``: its ``StepSample``, ``res``: its ``StepResult``).
    Reward, accuracy, lengths and truncation are measured on the step's own prompts (round 0):
    the policy's unbiased sample, whatever dynamic sampling kept."""
    own = [(r, v) for g in sample.first_round for r, v in zip(g.rollouts, g.verdicts)]
    n = max(1, len(own))
    scored = [float(v.reward) for _, v in own if not math.isnan(v.reward)]
    return {
        "step": step, "reward": sum(scored) / max(1, len(scored)), "skipped": (len(own) - len(scored)) / n,
        "accuracy": sum(bool(v.correct) for _, v in own) / n, "format_ok": sum(bool(v.format_ok) for _, v in own) / n,
        "kl": res.kl, "entropy": res.entropy,
        "response_length": sum(len(r.completion.token_ids) for r, _ in own) / n,
        "truncated": sum(is_truncated(r.completion) for r, _ in own) / n,
        "overlong_penalty": sum(sum(g.penalties or ()) for g in sample.first_round) / n,
        "clip_fraction": res.clip_fraction, "loss": res.loss, "grad_norm": res.grad_norm, "lr": lr,
        "zero_signal_groups": sum(not g.has_signal(Truncation()) for g in sample.first_round), **sample.counts(),
        "rollout_tokens": sum(len(r.completion.token_ids) for g in sample.groups for r in g.rollouts),
        "seconds": seconds, "seconds_generate": times["generate"], "seconds_score": times["score"],
        "seconds_logprobs": times["logprobs"], "seconds_train": times["train"],
        # the weights of the means above, for merging the rows of several processes (not logged)
        "_own": len(own), "_scored": len(scored), "_tokens": res.tokens,
    }


# How each process's row of a step combines into the logged one (trainers.distributed.merge_rows).
# A process's loss is its share of the whole step's loss times the number of processes, so the
# step's loss is their plain mean; the gradient norm and learning rate are the same on every process.
MERGE_RULES = {
    "reward": "mean:_scored", "skipped": "mean:_own", "accuracy": "mean:_own", "format_ok": "mean:_own",
    "response_length": "mean:_own", "truncated": "mean:_own", "overlong_penalty": "mean:_own",
    "kl": "mean:_tokens", "entropy": "mean:_tokens", "clip_fraction": "mean:_tokens", "loss": "mean",
    "zero_signal_groups": "sum", "groups_generated": "sum", "groups_dropped": "sum", "groups_refilled": "sum",
    "groups_trained": "sum", "rollout_tokens": "sum", "generation_rounds": "max",
    "seconds": "max", "seconds_generate": "max", "seconds_score": "max", "seconds_logprobs": "max",
    "seconds_train": "max",
}


def rl_card(cfg: Any, run_dir: RunDir, pool: Any) -> Any:
    """The model card of the exported RL model (``cfg``: the run's ``RLConfig``, ``pool``: its ``ProblemPool``)."""
    from tailor_evo.trainers.model_card import CardInfo, results_from_metrics

    facts = {"problems": pool.source, "levels": list(cfg.levels), "pool": len(pool.problems),
             "left_out_for_eval_overlap": pool.overlaps, "reward": cfg.reward}
    return CardInfo(stage="rl", base_model=cfg.model, task=cfg.task, seed=cfg.seed, recipe=dataclasses.asdict(cfg),
                    data=facts, results=results_from_metrics(run_dir.read_metrics(), cfg.task, cfg.seed))


def _mean(rows: list[dict], key: str) -> float:
    vals = [float(r[key]) for r in rows if key in r]
    return sum(vals) / len(vals) if vals else 0.0


def time_split_line(steps: list[dict]) -> str:
    """Mean seconds per step and the share of each part, e.g. ``generate 3.1 s (40%), ...``."""
    total = _mean(steps, "seconds")
    parts = [(name, _mean(steps, key)) for name, key in TIME_PARTS if any(key in r for r in steps)]
    split = ", ".join(f"{name} {sec:.2f} s ({100 * sec / total:.0f}%)" if total else f"{name} {sec:.2f} s"
                      for name, sec in parts)
    return f"- mean seconds per step: {total:.2f} ({split})"


def idle_step_warning(record: dict) -> str | None:
    """A warning for a step whose groups all scored alike within themselves, so the loss had no
    advantage to follow and the step changed nothing; None otherwise. Every rollout wrong after
    right ones earlier usually means the policy broke (a learning rate too high: at 1e-4 SmolLM2's
    iGSM rollouts fell from 0.27 to 0.00 in three steps, half of them loops); every rollout right
    means the problems are too easy for RL to teach."""
    generated = int(record.get("groups_generated", 0))
    if not generated:
        return None
    idle = int(record.get("groups_trained", 1)) == 0 or int(record.get("zero_signal_groups", 0)) >= generated
    if not idle:
        return None
    return (f"step {record['step']} trained nothing: in each of its {generated} groups every rollout scored the "
            f"same (mean reward {record['reward']:.2f}, {record.get('truncated', 0.0):.0%} cut at the budget). "
            "All wrong where earlier steps had right answers usually means the policy broke (lower rl.lr); "
            "all right means the problems are too easy to learn from.")


def sampling_lines(steps: list[dict], cfg: Any) -> list[str]:
    """Truncation and, under dynamic sampling, the dropped and refilled groups."""
    lines = []
    if any("truncated" in r for r in steps):
        masked = Truncation.of_config(cfg).report_note()
        lines.append(f"- truncated rollouts (hit max_new_tokens={cfg.max_new_tokens}): "
                     f"{_mean(steps, 'truncated'):.3f} of the step's own samples on average{masked}")
    if cfg.overlong_buffer > 0:
        lines.append(f"- overlong penalty (up to {cfg.overlong_penalty:g} over the last {cfg.overlong_buffer} tokens "
                     f"of the budget): {_mean(steps, 'overlong_penalty'):.3f} per rollout on average")
    if cfg.dynamic_sampling:
        dropped = sum(int(r.get("groups_dropped", 0)) for r in steps)
        refilled = sum(int(r.get("groups_refilled", 0)) for r in steps)
        empty = sum(int(r.get("groups_trained", 1)) == 0 for r in steps)
        lines.append(f"- dynamic sampling: {dropped} groups without reward signal dropped, {refilled} refilled "
                     f"from new prompts, {_mean(steps, 'generation_rounds'):.2f} generation rounds per step "
                     f"(at most {1 + cfg.max_refill_rounds}), {_mean(steps, 'groups_trained'):.2f} groups trained "
                     f"per step of {cfg.prompts_per_step} asked; steps with nothing to train: {empty}")
    return lines


def _plots(run_dir: RunDir, steps: list[dict], evals: list[dict]) -> None:
    if steps:
        xs = [r["step"] for r in steps]
        plot_lines(run_dir.plots / "rl_reward.png", [("reward", xs, [r["reward"] for r in steps]),
                                                     ("accuracy", xs, [r["accuracy"] for r in steps])],
                   "RL rollouts", "step")
        plot_lines(run_dir.plots / "rl_kl_entropy.png", [("KL", xs, [r["kl"] for r in steps]),
                                                         ("entropy", xs, [r["entropy"] for r in steps])],
                   "KL to reference and entropy", "step")
    if evals:
        plot_lines(run_dir.plots / "rl_eval.png", [("held-out greedy accuracy", [r["step"] for r in evals],
                                                    [r["eval_accuracy"] for r in evals])], "Evaluation", "step")


def write_rl_report(run_dir: RunDir, cfg: Any, overlaps: int) -> None:
    """``report.md`` plus reward/accuracy/KL curves in ``plots/``."""
    from tailor_evo.io import write_text_atomic

    metrics = run_dir.read_metrics()
    steps = [r for r in metrics if "reward" in r]
    evals = [r for r in metrics if "eval_accuracy" in r]
    _plots(run_dir, steps, evals)
    source = f", prompts from `{cfg.data}`" if cfg.data else ""
    lines = ["# RL run", "", f"- model: `{cfg.model}`, task: {cfg.task}, levels: {cfg.levels}, reward: {cfg.reward}"
             f"{source}",
             f"- steps: {len(steps)}, {cfg.prompts_per_step} prompts x {cfg.group_size} samples, "
             f"beta {cfg.beta}, clip [{1 - cfg.eps_low:.2f}, {1 + cfg.eps_high:.2f}], {cfg.loss} loss "
             f"({cfg.normalisation}-level), {cfg.advantage} advantages",
             f"- RL problems overlapping the eval set (dropped): {overlaps}"]
    if steps:
        k = max(1, len(steps) // 5)
        first = sum(r["reward"] for r in steps[:k]) / k
        last = sum(r["reward"] for r in steps[-k:]) / k
        lines.append(f"- mean rollout reward: first {k} steps {first:.3f}, last {k} steps {last:.3f}")
        lines.append(time_split_line(steps))
        lines += sampling_lines(steps, cfg)
    if evals:
        lines.append(f"- held-out greedy accuracy: start {evals[0]['eval_accuracy']:.3f}, "
                     f"end {evals[-1]['eval_accuracy']:.3f} (n={int(evals[-1]['eval_n'])})")
    if cfg.rollout_log_every > 0:
        lines.append(f"- rollout samples: `rollouts.jsonl` (step 1 and every {cfg.rollout_log_every} steps)")
    lines.append(f"- output: `{run_dir.path / 'model'}`")
    if steps:
        lines += ["", "![reward](plots/rl_reward.png)", "", "![kl](plots/rl_kl_entropy.png)"]
    if evals:
        lines += ["", "![eval](plots/rl_eval.png)"]
    write_text_atomic(run_dir.report_path, "\n".join(lines) + "\n")
