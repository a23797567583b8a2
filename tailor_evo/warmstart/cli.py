"""``tailor-evo data warmstart``: warm-start data for one or several methods on the same problems.

Every knob is a :class:`WarmstartConfig` field: the options below set the common ones,
``--config FILE`` and ``--set key=value`` any of them (``--set oversample=8``). The
input is validated before any work, and a bad value raises :class:`InputError`, which
the CLI prints as one line with exit code 2.
"""

from __future__ import annotations

from pathlib import Path

import click

from tailor_evo.commands.common import (
    COUNT,
    RECORD_FORMATS,
    OutputFile,
    config_options,
    output_problem,
    parse_levels,
    resolve_config,
)
from tailor_evo.errors import InputError
from tailor_evo.warmstart.config import WarmstartConfig
from tailor_evo.warmstart.methods import get_method, method_names


def _needing(what: str) -> str:
    """The registered methods that need ``what`` (archive or teacher), for the options' help."""
    return ", ".join(m for m in method_names() if getattr(get_method(m), f"needs_{what}"))


def _output_for(output: str, method: str, several: bool) -> Path:
    if several and "{method}" not in output:
        raise InputError("with several methods the output path must contain {method}", field="-o")
    return Path(output.replace("{method}", method))


@click.command("warmstart")
@click.option("--task", "task_name", required=True, help="Task: kk or igsm.")
@click.option("--method", "method", required=True,
              help=f"{', '.join(method_names())} or another registered method; several comma-separated build "
                   "them all on the same problems (then -o must contain {method}).")
@click.option("--archive", "archive_dir", default=None, type=click.Path(),
              help=f"Search run directory (for the methods that render an archive: {_needing('archive')}).")
@click.option("--teacher", default=None,
              help=f"Teacher engine BACKEND:MODEL (for the methods that need one: {_needing('teacher')}).")
@click.option("--size", type=COUNT, default=None, help="Number of records per method (default 512).")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--levels", default=None, help="Difficulty levels (default: the task's).")
@click.option("--problems", "n_problems", type=COUNT, default=None,
              help="Training problems (default size + size/4; identical for every method).")
@click.option("--max-primitives", type=COUNT, default=None, help="Use at most this many archive elites (default 32).")
@click.option("--teacher-samples", type=COUNT, default=None, help="Teacher answers per problem (redistill; default 2).")
@click.option("--max-new-tokens", type=COUNT, default=None, help="Teacher answer length limit (default 384).")
@click.option("--embedder", default=None, help="State embedder: hash (default) or minilm.")
@click.option("--chat/--no-chat", default=False, help="Chat prompts for the teacher.")
@click.option("-o", "--output", required=True,
              help="Output .jsonl or .parquet ({method} is replaced), or a directory with --format datasets.")
@click.option("--format", "fmt", type=click.Choice(["file", "datasets"]), default="file", show_default=True,
              help="file: JSONL/Parquet by extension; datasets: a Hugging Face DatasetDict directory, "
                   "one split per method (datasets.load_from_disk reads it).")
@click.option("--card", "card_path", default=None, type=OutputFile((".md",), stdout=False),
              help="Data card path (default: card.md next to the output; README.md inside a datasets directory).")
@config_options(WarmstartConfig)
def warmstart(task_name: str, method: str, archive_dir: str | None, teacher: str | None,
              size: int | None, seed: int, levels: str | None, n_problems: int | None, max_primitives: int | None,
              teacher_samples: int | None, max_new_tokens: int | None, embedder: str | None, chat: bool,
              output: str, fmt: str, card_path: str | None, config_path: str | None,
              overrides: tuple[str, ...]) -> None:
    """Build warm-start data from verified trajectories chosen for reasoning-state coverage."""
    from tailor_evo.generation import make_engine
    from tailor_evo.io import write_records, write_text_atomic
    from tailor_evo.tasks import get_task
    from tailor_evo.warmstart.build import build_warmstart
    from tailor_evo.warmstart.card import render_card

    cfg = resolve_config(WarmstartConfig, config_path, overrides, None, size=size, n_problems=n_problems,
                         max_primitives=max_primitives, teacher=teacher, teacher_samples=teacher_samples,
                         teacher_max_new_tokens=max_new_tokens, embedder=embedder)
    cfg.check()
    teacher = cfg.teacher

    methods = [m.strip() for m in method.split(",") if m.strip()]
    specs = [get_method(m, field="--method") for m in methods]
    if fmt == "file" and output_problem(output, RECORD_FORMATS, stdout=False):
        raise click.BadParameter(f"{output}: {output_problem(output, RECORD_FORMATS, stdout=False)} (or use "
                                 "--format datasets)", param_hint="'-o' / '--output'")
    if fmt == "datasets" and (Path(output).suffix or "{method}" in output):
        raise InputError("with --format datasets the output is one directory (no extension, no {method}): "
                         "each method is a split", file=output, field="-o")
    if fmt == "datasets":
        from tailor_evo.hf_datasets import require_datasets

        require_datasets()               # a missing extra is reported before any work
    for spec in specs:
        spec.check_inputs(archive=bool(archive_dir), teacher=bool(teacher))
    outputs = ({m: Path(output) for m in methods} if fmt == "datasets" else
               {m: _output_for(output, m, len(methods) > 1) for m in methods})
    task = get_task(task_name)
    lv = parse_levels(levels)
    teacher_engine = make_engine(teacher, batch_size=16) if teacher else None
    results = []
    for m in methods:
        res = build_warmstart(task, m, cfg, seed, levels=lv, chat=chat, archive_dir=archive_dir,
                              teacher=teacher_engine, teacher_name=f"teacher:{teacher}" if teacher else "teacher")
        s = res.stats
        if not res.records:
            drops = ", ".join(f"{k} {v}" for k, v in sorted(s.dropped.items())) or "none recorded"
            skipped = sum(s.skipped_primitives.values())
            raise InputError(f"the {m} method produced no warm-start records: {s.n_primitives} primitives "
                             f"({skipped} skipped), {s.n_rendered} rendered, {s.n_verified} verified; dropped: {drops}",
                             file=archive_dir or None)
        if fmt == "file":
            write_records(outputs[m], res.records)
        click.echo(f"{m}: {s.n_selected}/{cfg.size} records -> {outputs[m]}  (verified {s.n_verified} of "
                   f"{s.n_rendered}, dropped {sum(s.dropped.values())}; coverage {s.coverage_selected:.0f} "
                   f"cells vs {s.coverage_random:.0f} for a random subset)")
        if s.shortfall:
            click.echo(f"  warning: {s.shortfall} records short of the budget", err=True)
        results.append(res)
    if fmt == "datasets":
        from tailor_evo.hf_datasets import split_name, write_dataset_dict

        write_dataset_dict(output, {r.stats.method: r.records for r in results})
        click.echo(f"datasets directory: {output} (splits: {', '.join(split_name(m) for m in methods)})")
    default_card = Path(output) / "README.md" if fmt == "datasets" else Path(outputs[methods[0]]).parent / "card.md"
    card = Path(card_path) if card_path else default_card
    write_text_atomic(card, render_card(results))
    click.echo(f"data card: {card}")
