"""``tailor-evo data``: generate problems, solve them, score completions, build warm-start data."""

from __future__ import annotations

import importlib
from collections import Counter

import click

from tailor_evo.commands.common import COUNT, OutputFile, echo_summary, parse_levels
from tailor_evo.errors import InputError
from tailor_evo.io import read_records, write_records
from tailor_evo.tasks import get_task


class _DataGroup(click.Group):
    """``warmstart`` lives with the warm-start stage; import it only when it is asked for."""

    _lazy = {"warmstart": "tailor_evo.warmstart.cli:warmstart"}

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(set(super().list_commands(ctx)) | set(self._lazy))

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name in self._lazy:
            module, attr = self._lazy[name].split(":")
            return getattr(importlib.import_module(module), attr)
        return super().get_command(ctx, name)


@click.group(cls=_DataGroup)
def data() -> None:
    """Task data: generate, solve, score, warmstart."""


def parse_options(items: tuple[str, ...]) -> dict:
    import yaml

    out = {}
    for item in items:
        if "=" not in item:
            raise InputError(f"option {item!r} must look like key=value", field="--opt")
        key, raw = item.split("=", 1)
        out[key.strip()] = yaml.safe_load(raw)
    return out


@data.command("generate")
@click.option("--task", "task_name", required=True, help="Task name (kk, igsm).")
@click.option("--n", "n", type=COUNT, default=100, show_default=True, help="Number of problems.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--levels", default=None, help="Difficulty levels, e.g. 3,4,5 (KK people) or 2-6 (iGSM op).")
@click.option("--opt", "options", multiple=True, metavar="KEY=VALUE",
              help="Task-specific generator option, e.g. --opt depth=3 (KK) or --opt max_edge=20 (iGSM).")
@click.option("-o", "--output", required=True, type=OutputFile(),
              help="Output .jsonl or .parquet file, or - for standard output (JSONL).")
def generate(task_name: str, n: int, seed: int, levels: str | None, options: tuple[str, ...], output: str) -> None:
    """Generate N problems with their gold answers and reference solutions."""
    task = get_task(task_name)
    problems = task.generate(n, seed, parse_levels(levels), **parse_options(options))
    records = []
    for p in problems:
        rec = task.to_record(p)
        rec.setdefault("reference_completion", task.reference_completion(p))
        records.append(rec)
    write_records(output, records)
    per_level = Counter(p.difficulty for p in problems)
    echo_summary(f"wrote {len(records)} {task.name} problems to {output} ({task.difficulty_name}: "
                 + ", ".join(f"{k}={v}" for k, v in sorted(per_level.items())) + ")", output)


def _load_problems(task, path: str) -> list[tuple[dict, object]]:
    """Records with their parsed problems; errors name the file and the line."""
    from tailor_evo.io import read_problems

    return read_problems(task, path)


@data.command("solve")
@click.option("--task", "task_name", required=True)
@click.option("--input", "input_path", required=True, type=click.Path(dir_okay=False))
@click.option("-o", "--output", required=True, type=OutputFile(),
              help="Output .jsonl or .parquet file, or - for standard output (JSONL).")
def solve(task_name: str, input_path: str, output: str) -> None:
    """Add the task solver's answer to each record (our format or the task's public format)."""
    task = get_task(task_name)
    pairs = _load_problems(task, input_path)
    agree = with_gold = 0
    records = []
    for rec, problem in pairs:
        answer = task.solve(problem)
        rec = dict(rec)
        rec["solver_answer"] = answer
        if problem.answer is not None:
            with_gold += 1
            agree += int(answer == problem.answer)
        records.append(rec)
    write_records(output, records)
    msg = f"solved {len(records)} problems -> {output}"
    if with_gold:
        msg += f"; solver agrees with the record's answer on {agree}/{with_gold}"
    echo_summary(msg, output)


@data.command("score")
@click.option("--task", "task_name", required=True)
@click.option("--input", "input_path", required=True, type=click.Path(dir_okay=False),
              help="Records holding the problem and a 'completion' field.")
@click.option("-o", "--output", required=True, type=OutputFile(),
              help="Output .jsonl or .parquet file, or - for standard output (JSONL).")
@click.option("--shaped", is_flag=True, help="Use the format+answer shaped reward instead of the binary one.")
def score(task_name: str, input_path: str, output: str, shaped: bool) -> None:
    """Verify each record's completion: writes reward, correct, format_ok, reason; prints accuracy."""
    task = get_task(task_name)
    records = []
    reasons: Counter[str] = Counter()
    for i, rec in enumerate(read_records(input_path), start=1):
        if "completion" not in rec:
            raise InputError("missing field", file=str(input_path), line=i, field="completion")
        if not isinstance(rec["completion"], str):
            raise InputError("must be a string", file=str(input_path), line=i, field="completion")
        problem = task.from_record(rec, source=str(input_path), line=i)
        verdict = task.verify(problem, rec["completion"], shaped=True) if shaped else task.verify(problem, rec["completion"])
        out = dict(rec)
        out.update(reward=verdict.reward, correct=verdict.correct, format_ok=verdict.format_ok, reason=verdict.reason)
        records.append(out)
        reasons[verdict.reason] += 1
    if not records:
        raise InputError("no records", file=str(input_path))
    write_records(output, records)
    n = len(records)
    acc = sum(r["correct"] for r in records) / n
    fmt = sum(r["format_ok"] for r in records) / n
    echo_summary(f"scored {n} completions -> {output}", output)
    echo_summary(f"accuracy {acc:.3f}  format_ok {fmt:.3f}  mean reward {sum(r['reward'] for r in records) / n:.3f}",
                 output)
    for reason, count in reasons.most_common(8):
        echo_summary(f"  {count:6d}  {reason}", output)

