"""Where RL prompts come from: the task's generated RL stream, or the records of a data set.

By default the pool is generated from the run seed (the ``rl`` stream of
:mod:`tailor_evo.tasks.streams`). With ``rl.data`` (``train rl --data FILE|DIR_OR_ID[:SPLIT]``)
it is the records of a JSONL or Parquet file, a ``datasets`` directory or a cached
dataset id, each parsed by the task (our records or the task's public format, such as
the public K&K split) and verified by it; the records' columns also reach function
rewards as keywords. Either way, problems that also occur in the held-out evaluation set
are dropped and counted, so RL never trains on an evaluation question.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from tailor_evo.errors import InputError


@dataclass
class ProblemPool:
    """The RL problems, the record behind each (for function rewards) and what was left out."""

    problems: list
    records: dict[str, dict] = field(default_factory=dict)   # problem id -> its record's columns
    overlaps: int = 0                                        # dropped for occurring in the eval set
    source: str = ""                                         # what the model card names as the problems

    def columns_of(self, problem: Any, task: Any) -> dict:
        """The columns a function reward sees for ``problem``: its record's, or the task's record of it."""
        rec = self.records.get(problem.id)
        return rec if rec is not None else task.to_record(problem)


def _data_records(task: Any, cfg: Any) -> tuple[list, dict[str, dict]]:
    """The problems of ``cfg.data`` at ``cfg.levels``, in file order, at most ``cfg.pool_size``."""
    from tailor_evo.io import read_problems

    pairs = read_problems(task, cfg.data, default_split="train")
    held = Counter(p.difficulty for _, p in pairs)
    pairs = [(rec, p) for rec, p in pairs if p.difficulty in cfg.levels]
    if not pairs:
        raise InputError(f"no problems at {task.difficulty_name}={list(cfg.levels)} in the data (it holds "
                         + ", ".join(f"{k}: {v}" for k, v in sorted(held.items())) + "); set rl.levels",
                         file=str(cfg.data), field="levels")
    unanswered = sum(p.answer is None for _, p in pairs)
    if unanswered:
        raise InputError(f"{unanswered} record(s) have no gold answer for the verifier to score against",
                         file=str(cfg.data))
    pairs = pairs[: cfg.pool_size]
    ids = Counter(p.id for _, p in pairs)
    if max(ids.values()) > 1:
        raise InputError(f"problem id {ids.most_common(1)[0][0]!r} occurs twice; ids must be unique",
                         file=str(cfg.data), field="id")
    return [p for _, p in pairs], {p.id: rec for rec, p in pairs}


def rl_problem_pool(task: Any, cfg: Any, eval_problems: list) -> ProblemPool:
    """The RL problems (generated, or read from ``cfg.data``) without those in the eval set."""
    from tailor_evo.tasks import streams
    from tailor_evo.tasks.base import question_key

    if cfg.data:
        problems, records = _data_records(task, cfg)
        source = f"{cfg.data} ({len(problems)} records at {task.difficulty_name} {list(cfg.levels)})"
    else:
        problems, records = streams.flat(task, cfg.seed, "rl", cfg.pool_size, cfg.levels), {}
        source = f"{cfg.task} RL stream of seed {cfg.seed}"
    held = {question_key(p) for p in eval_problems}
    kept = [p for p in problems if question_key(p) not in held]
    if len(kept) < cfg.prompts_per_step:
        raise InputError(f"only {len(kept)} RL problems left after removing eval overlaps (prompts_per_step "
                         f"is {cfg.prompts_per_step})", field="data" if cfg.data else "pool_size")
    return ProblemPool(kept, records, len(problems) - len(kept), source)
