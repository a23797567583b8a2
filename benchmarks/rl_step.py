"""Seconds per RL step and rollout tokens/s: this trainer vs TRL's ``GRPOTrainer``, side by side.

Both run on the same freshly built tiny Llama (fp32, ~3.5 M parameters), the same
prompts in the same order, the same group size (prompts x completions per step),
completion length forced to exactly ``--tokens`` (eos never ends a sample), the same
loss (token-level normalisation over the batch, clip 0.2, k3 KL with beta 0.04, one
optimisation pass per batch) and the same micro-batch size. The first step of each
is a warm-up and is not counted.

    nice .venv/bin/python benchmarks/rl_step.py --steps 4

TRL is needed only here: ``.venv/bin/pip install trl`` (check that it keeps the torch version).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import torch


def build_model(out: Path, hidden: int, layers: int) -> Path:
    from tailor_evo.models.tiny import build_tiny

    return build_tiny(out, seed=0, hidden_size=hidden, layers=layers, heads=4, intermediate_size=640)


def ours(model_dir: Path, args: argparse.Namespace, work: Path) -> dict:
    from tailor_evo.generation.hf import HFEngine
    from tailor_evo.rundir import RunDir
    from tailor_evo.trainers.base import EvalSettings
    from tailor_evo.trainers.rl import RLConfig, train_rl

    def engine_factory(model, tokenizer):
        engine = HFEngine(model, tokenizer, batch_size=args.prompts * args.group, num_threads=args.threads,
                          show_progress=False)
        engine.eos_ids = set()          # matched lengths: every completion is exactly --tokens long
        return engine

    cfg = RLConfig(model=str(model_dir), task=args.task, levels=[args.level], seed=0, steps=args.steps + 1,
                   prompts_per_step=args.prompts, group_size=args.group, max_new_tokens=args.tokens, beta=0.04,
                   lr=1e-6, micro_batch=args.micro_batch, save_every=0, coverage=False, threads=args.threads,
                   pool_size=max(64, args.prompts * (args.steps + 1)), eval=EvalSettings(every=0, n=0))
    run = RunDir.create(work / "ours")
    train_rl(cfg, run, engine_factory=engine_factory)
    rows = [r for r in run.read_metrics() if "reward" in r][1:]
    return {
        "seconds_per_step": statistics.mean(r["seconds"] for r in rows),
        "generate": statistics.mean(r["seconds_generate"] for r in rows),
        "logprobs": statistics.mean(r["seconds_logprobs"] for r in rows),
        "train": statistics.mean(r["seconds_train"] for r in rows),
        "tokens_per_s": sum(r["rollout_tokens"] for r in rows) / sum(r["seconds_generate"] for r in rows),
        "mean_length": statistics.mean(r["response_length"] for r in rows),
    }


def trl(model_dir: Path, args: argparse.Namespace, work: Path) -> dict:
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer, TrainerCallback
    from trl import GRPOConfig, GRPOTrainer

    from tailor_evo.tasks.registry import get_task
    from tailor_evo.trainers.data import epoch_order
    from tailor_evo.trainers.rl import RLConfig, rl_problem_pool

    task = get_task(args.task)
    # the very problems our trainer used, in the order it used them
    cfg = RLConfig(task=args.task, levels=[args.level], seed=0, prompts_per_step=args.prompts,
                   pool_size=max(64, args.prompts * (args.steps + 1)))
    pool = rl_problem_pool(task, cfg, []).problems
    order = epoch_order(len(pool), cfg.seed, 0)
    problems = [pool[i] for i in order[: args.prompts * (args.steps + 1)]]
    by_prompt = {task.prompt(p): p for p in problems}
    dataset = Dataset.from_list([{"prompt": task.prompt(p)} for p in problems])

    def reward(prompts, completions, **_):
        return [task.verify(by_prompt[p], c).reward for p, c in zip(prompts, completions)]

    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    tokenizer.padding_side = "left"
    per_step = args.prompts * args.group
    gconf = GRPOConfig(
        output_dir=str(work / "trl"), use_cpu=True, bf16=False, fp16=False, report_to="none", seed=0,
        max_steps=args.steps + 1, learning_rate=1e-6, logging_steps=1, save_strategy="no",
        per_device_train_batch_size=args.micro_batch, gradient_accumulation_steps=per_step // args.micro_batch,
        num_generations=args.group, max_completion_length=args.tokens, beta=0.04, epsilon=0.2,
        loss_type="dapo", scale_rewards="group", num_iterations=1, shuffle_dataset=False,
        generation_kwargs={"min_new_tokens": args.tokens}, gradient_checkpointing=False,
        dataloader_num_workers=0, disable_tqdm=True,
    )
    times: list[float] = []
    gen_times: list[float] = []

    class Timer(TrainerCallback):
        def on_step_begin(self, a, state, control, **kw):
            self.t0 = time.perf_counter()

        def on_step_end(self, a, state, control, **kw):
            times.append(time.perf_counter() - self.t0)

    torch.set_num_threads(args.threads)
    trainer = GRPOTrainer(model=model, reward_funcs=reward, args=gconf, train_dataset=dataset,
                          processing_class=tokenizer, callbacks=[Timer()])
    original = trainer._generate_single_turn

    def timed(*a, **kw):
        t = time.perf_counter()
        out = original(*a, **kw)
        gen_times.append(time.perf_counter() - t)
        return out

    trainer._generate_single_turn = timed
    trainer.train()
    lengths = [h["completions/mean_length"] for h in trainer.state.log_history if "completions/mean_length" in h]
    # generation happens once per optimizer step (one generation batch per step); skip the warm-up
    gen = gen_times[1:] if len(gen_times) > 1 else gen_times
    return {
        "seconds_per_step": statistics.mean(times[1:]),
        "generate": sum(gen) / max(1, len(times) - 1),
        "tokens_per_s": per_step * args.tokens * len(gen) / sum(gen),
        "mean_length": statistics.mean(lengths) if lengths else float("nan"),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--steps", type=int, default=4, help="measured steps (after one warm-up step)")
    ap.add_argument("--prompts", type=int, default=8)
    ap.add_argument("--group", type=int, default=8)
    ap.add_argument("--tokens", type=int, default=128)
    ap.add_argument("--micro-batch", type=int, default=16)
    ap.add_argument("--task", default="kk")
    ap.add_argument("--level", type=int, default=3)
    ap.add_argument("--hidden", type=int, default=256)
    ap.add_argument("--layers", type=int, default=4)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--skip-trl", action="store_true")
    args = ap.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        model_dir = build_model(work / "model", args.hidden, args.layers)
        from transformers import AutoModelForCausalLM

        n_params = sum(p.numel() for p in AutoModelForCausalLM.from_pretrained(model_dir).parameters())
        print(f"model: {n_params / 1e6:.2f} M parameters, fp32, {args.threads} threads; "
              f"{args.prompts} prompts x {args.group} completions x {args.tokens} tokens, beta 0.04, "
              f"micro-batch {args.micro_batch}, {args.steps} measured steps")
        a = ours(model_dir, args, work)
        print(f"tailor-evo : {a['seconds_per_step']:.2f} s/step (generate {a['generate']:.2f}, "
              f"ref log-probs {a['logprobs']:.2f}, train {a['train']:.2f}), rollout {a['tokens_per_s']:.0f} tok/s, "
              f"mean length {a['mean_length']:.1f}")
        if args.skip_trl:
            return
        b = trl(model_dir, args, work)
        print(f"TRL GRPO   : {b['seconds_per_step']:.2f} s/step (generate {b['generate']:.2f}), "
              f"rollout {b['tokens_per_s']:.0f} tok/s, mean length {b['mean_length']:.1f}")
        print(f"speed-up per step: {b['seconds_per_step'] / a['seconds_per_step']:.2f}x")


if __name__ == "__main__":
    main()
