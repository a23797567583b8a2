"""``rollouts.jsonl``: samples of what the policy wrote during RL, for reading a run afterwards.

Curves say that reward moved; only the completions say why (a format the verifier
rejects, answers cut at the token budget, one phrase repeated by every sample). Every
``rollout_log_every`` steps (and at step 1) each rollout of the step is one line: the
prompt's id, the completion, its reward (null where the reward skipped it), the verifier's reason, whether it was truncated
and whether the step trained on it.

A step's lines go out in one write that is flushed and synced, so a crash leaves at most
one torn last line; on resume the file is cut back to the checkpoint's step (rewritten
atomically, torn lines dropped), so every logged step appears once, as in ``metrics.jsonl``.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

from tailor_evo.io import write_text_atomic

ROLLOUTS_FILE = "rollouts.jsonl"


def due(step: int, every: int) -> bool:
    """Whether step ``step`` (1-based) is logged: the first step, then every ``every`` steps (0: never)."""
    return every > 0 and (step == 1 or step % every == 0)


def rollout_rows(step: int, groups: list[Any]) -> list[dict]:
    """One row per rollout of ``groups`` (:class:`~tailor_evo.trainers.sampling.ScoredGroup`)."""
    rows = []
    for g in groups:
        for i, (r, v, cut) in enumerate(zip(g.rollouts, g.verdicts, g.truncated)):
            rows.append({"step": step, "round": g.round, "prompt_id": str(g.problem.id),
                         "difficulty": g.problem.difficulty, "sample": i, "completion": r.completion.text,
                         "tokens": len(r.completion.token_ids),
                         "reward": None if math.isnan(v.reward) else float(v.reward),
                         "correct": bool(v.correct), "format_ok": bool(v.format_ok), "reason": str(v.reason),
                         "truncated": bool(cut), "trained": bool(g.kept)})
    return rows


def append_rows(path: Path, rows: list[dict]) -> None:
    """Append ``rows`` in one write, flushed and synced to disk."""
    if not rows:
        return
    text = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a", encoding="utf-8") as fh:
        fh.write(text)
        fh.flush()
        os.fsync(fh.fileno())


def read_rows(path: Path) -> list[dict]:
    """The logged rows; a torn line (a crash mid-write) is skipped."""
    if not path.exists():
        return []
    out = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(row, dict):
            out.append(row)
    return out


def cut_back(path: Path, last_step: int) -> None:
    """On resume: keep only the rows of steps up to ``last_step`` (the checkpoint's), atomically."""
    if not path.exists():
        return
    rows = [r for r in read_rows(path) if int(r.get("step", 0)) <= last_step]
    write_text_atomic(path, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
