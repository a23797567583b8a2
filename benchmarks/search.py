"""Search benchmarks: candidate evaluation throughput and FAISS novelty query latency.

    python benchmarks/search.py                      # both parts, task kk
    python benchmarks/search.py --part faiss --sizes 1000,100000,1000000
    python benchmarks/search.py --part eval --task igsm --candidates 48

Evaluation: the executor renderer on ``--candidates`` programs (seed libraries plus
random programs) x (per_eval + probe) problems, with the builtin map (1 worker) and
a process pool of 2 workers; prints candidates per second.

Novelty: kNN (k=1) queries of one candidate's worth of states (``--queries`` unit
vectors) against archives of 1e3 / 1e5 / 1e6 random unit embeddings (dimension of
the hash embedder), with an exact flat index and two approximate ones (IVF-Flat with
nprobe 8, HNSW with M 32), side by side: build seconds, query milliseconds, and
recall@1 of the approximate indexes against the exact one.
"""

from __future__ import annotations

import argparse
import multiprocessing
import random
import sys
import time
from pathlib import Path

# this file is called search.py: keep its directory off the path so ``import search`` finds the package
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

import faiss  # noqa: E402  (after the path fix above)
import numpy as np  # noqa: E402


def bench_eval(task_name: str, n_candidates: int) -> None:
    from tailor_evo.search.engine import SearchConfig
    from tailor_evo.search.genome import program_id
    from tailor_evo.search.gp import TreeOperators
    from tailor_evo.search.render import EvalJob, ExecutorRenderer
    from tailor_evo.search.seeds import load_seed_library
    from tailor_evo.tasks.base import split_seed
    from tailor_evo.tasks.registry import get_task

    cfg = SearchConfig(task=task_name)
    task = get_task(task_name)
    ops = TreeOperators(task.grammar(), max_depth=cfg.evolution.max_depth, max_nodes=cfg.evolution.max_nodes)
    programs = []
    for lib in cfg.evolution.seed_libraries:
        programs += [s.program for s in load_seed_library(lib, task_name)]
    rng = random.Random(0)
    while len(programs) < n_candidates:
        p = ops.gps.grow(task.grammar().root, rng, cfg.evolution.random_depth)
        if ops.check(p) is None:
            programs.append(p)
    programs = programs[:n_candidates]
    problems = task.generate(cfg.problems.per_eval + cfg.problems.probe, split_seed(0, "bench"))
    mask = [i >= cfg.problems.per_eval for i in range(len(problems))]
    jobs = [EvalJob(program_id(p), p, "", problems, mask, 0) for p in programs]
    renderer = ExecutorRenderer(task, cfg.problems.max_steps, cfg.samples, cfg.quality)
    print(f"## candidate evaluation: task {task_name}, {len(jobs)} candidates x {len(problems)} problems")
    print(f"{'workers':>8} {'seconds':>9} {'candidates/s':>13}")
    for workers in (1, 2):
        if workers == 1:
            t0 = time.perf_counter()
            results = list(map(renderer, jobs))
            dt = time.perf_counter() - t0
        else:
            with multiprocessing.get_context("fork").Pool(workers) as pool:
                list(pool.imap(renderer, jobs[:workers]))          # start-up is not part of the rate
                t0 = time.perf_counter()
                results = list(pool.imap(renderer, jobs, chunksize=4))
                dt = time.perf_counter() - t0
        assert len(results) == len(jobs)
        print(f"{workers:>8} {dt:>9.2f} {len(jobs) / dt:>13.1f}")


def _unit(rng: np.random.Generator, n: int, d: int) -> np.ndarray:
    x = rng.standard_normal((n, d)).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    return x


def bench_faiss(sizes: list[int], dim: int, n_queries: int, threads: int, hnsw_max: int) -> None:
    faiss.omp_set_num_threads(threads)
    rng = np.random.default_rng(0)
    print(f"## novelty kNN (k=1): dim {dim}, {n_queries} queries per call, {threads} thread(s)")
    print(f"{'archive':>9} | {'flat build s':>12} {'flat ms':>9} | {'ivf build s':>11} {'ivf ms':>8} {'ivf recall':>10}"
          f" | {'hnsw build s':>12} {'hnsw ms':>8} {'hnsw recall':>11}")
    for n in sizes:
        base = _unit(rng, n, dim)
        # queries near archive points, as real candidate states are (they share most states with the archive)
        q = base[rng.integers(0, n, n_queries)] + 0.05 * _unit(rng, n_queries, dim)
        q /= np.linalg.norm(q, axis=1, keepdims=True)

        nlist = max(1, min(int(np.sqrt(n)), n // 40))

        def timed(index, train: bool) -> tuple[float, float, np.ndarray]:
            t0 = time.perf_counter()
            if train:
                index.train(base[rng.choice(n, min(n, 40 * nlist), replace=False)])
            index.add(base)
            build = time.perf_counter() - t0
            index.search(q[:4], 1)                      # warm-up
            reps = 5 if n <= 100_000 else 1
            t0 = time.perf_counter()
            for _ in range(reps):
                _, ids = index.search(q, 1)
            return build, (time.perf_counter() - t0) / reps * 1000, ids[:, 0]

        fb, fq, fid = timed(faiss.IndexFlatL2(dim), False)
        quantizer = faiss.IndexFlatL2(dim)
        ivf = faiss.IndexIVFFlat(quantizer, dim, nlist)
        ivf.nprobe = 8
        ib, iq, iid = timed(ivf, True)
        row = (f"{n:>9.0e} | {fb:>12.2f} {fq:>9.2f} | {ib:>11.2f} {iq:>8.2f} {np.mean(iid == fid):>10.3f}")
        if n <= hnsw_max:
            hnsw = faiss.IndexHNSWFlat(dim, 32)
            hb, hq, hid = timed(hnsw, False)
            row += f" | {hb:>12.2f} {hq:>8.2f} {np.mean(hid == fid):>11.3f}"
        else:
            row += f" | {'skipped (--hnsw-max)':>33}"
        print(row, flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--part", choices=["all", "eval", "faiss"], default="all")
    ap.add_argument("--task", default="kk")
    ap.add_argument("--candidates", type=int, default=48)
    ap.add_argument("--sizes", default="1000,100000,1000000")
    ap.add_argument("--dim", type=int, default=256)
    ap.add_argument("--queries", type=int, default=256)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--hnsw-max", type=int, default=100000, help="largest archive to build HNSW for (slow to build)")
    args = ap.parse_args()
    if args.part in ("all", "eval"):
        bench_eval(args.task, args.candidates)
    if args.part in ("all", "faiss"):
        bench_faiss([int(s) for s in args.sizes.split(",")], args.dim, args.queries, args.threads, args.hnsw_max)


if __name__ == "__main__":
    main()
