"""``tailor-evo search`` and ``tailor-evo archive {show,top,lineage,export,diff}``."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from tailor_evo.commands.common import (
    COUNT,
    OutputFile,
    RegistryChoice,
    config_options,
    direct_overrides,
    global_seed,
    output_problem,
    resolve_config,
)
from tailor_evo.errors import InputError
from tailor_evo.io import read_json


def _operator_names() -> list[str]:
    """The registered variation families (imported when asked: ``archive`` commands need none)."""
    from tailor_evo.search.operators import operator_names

    return operator_names()


@click.command()
@click.option("--task", default=None, help="Task name (required unless the config sets it).")
@config_options("tailor_evo.search.engine:SearchConfig")
@click.option("--operator", type=RegistryChoice(_operator_names), default=None,
              help="Variation operator family (tailor_evo.search.operators).")
@click.option("--renderer", type=click.Choice(["executor", "llm"]), default=None, help="How primitives become trajectories.")
@click.option("--llm", "llm_spec", default=None, metavar="BACKEND:MODEL",
              help="LLM for the llm operator/renderer, e.g. hf:tiny or openai:http://127.0.0.1:8000/v1#tiny.")
@click.option("--workers", type=COUNT, default=None, help="Processes evaluating candidates in parallel.")
@click.option("--out", "out", required=True, type=click.Path(file_okay=False), help="Run directory.")
@click.option("--resume", is_flag=True, help="Continue the interrupted run in --out from its last checkpoint.")
@click.option("--overwrite", is_flag=True, help="Start again in a non-empty --out.")
@click.option("--quiet", is_flag=True, help="No progress bars.")
@click.pass_context
def search(ctx: click.Context, task: str | None, config_path: str | None, overrides: tuple[str, ...],
           operator: str | None, renderer: str | None, llm_spec: str | None, workers: int | None, out: str,
           resume: bool, overwrite: bool, quiet: bool) -> None:
    """Evolve reasoning primitives for a task into an archive in --out."""
    from tailor_evo.config import resumed_config
    from tailor_evo.rundir import RunDir
    from tailor_evo.search.engine import SearchConfig, run_search

    direct = dict(task=task, operator=operator, renderer=renderer, workers=workers, **{"llm.spec": llm_spec})
    if resume:
        cfg = resumed_config(SearchConfig, Path(out) / "config.yaml", config_path, direct_overrides(overrides, direct),
                             seed=global_seed(ctx), safe=SearchConfig.RESUME_SAFE)
    else:   # validate before touching the run directory
        cfg = resolve_config(SearchConfig, config_path, overrides, ctx, **direct)
        cfg.check()
    rd = RunDir.create(out, resume=resume, overwrite=overwrite)
    rd.save_config(cfg)
    result = run_search(cfg, rd, resume=resume, progress=not quiet)
    cov_path = rd.path / "coverage.json"
    ratios = read_json(cov_path)["ratios"] if cov_path.exists() else {}
    ratio_text = ", ".join(f"{k} {v:.2f}x" for k, v in ratios.items())
    click.echo(f"archive: {len(result.archive)} primitives after {result.generations} generations"
               + (f"; coverage {ratio_text}" if ratio_text else "") + f"; report: {rd.report_path}")


# --- archive inspection ----------------------------------------------------------------------
@click.group()
def archive() -> None:
    """Inspect a search archive: show, top, lineage, export, diff."""


def _table(rows: list[list[str]], header: list[str]) -> str:
    widths = [max(len(str(x)) for x in col) for col in zip(header, *rows)]
    fmt = "  ".join(f"{{:<{w}}}" for w in widths)
    return "\n".join([fmt.format(*header), fmt.format(*["-" * w for w in widths])] +
                     [fmt.format(*map(str, r)) for r in rows])


def _rows(prims) -> list[list[str]]:
    return [[p.id[:12], f"{p.quality:.3f}", f"{p.novelty:.3f}", f"{p.length:.1f}", f"{p.n_correct}/{p.n_problems}",
             p.operator, p.generation, (p.description[:60] + "...") if len(p.description) > 60 else p.description]
            for p in prims]


HEADER = ["id", "quality", "novelty", "length", "verified", "operator", "gen", "description"]


@archive.command()
@click.argument("run_dir", type=click.Path())
def show(run_dir: str) -> None:
    """Summary and table of all archived primitives."""
    from collections import Counter

    from tailor_evo.search.archive import load_archive

    prims = load_archive(run_dir)
    if not prims:
        click.echo("archive is empty")
        return
    q = [p.quality for p in prims]
    ops = Counter(p.operator.split(":")[0] for p in prims)
    click.echo(f"{len(prims)} primitives, task {prims[0].task}; quality min {min(q):.3f} mean {sum(q) / len(q):.3f} "
               f"max {max(q):.3f}; by operator: {', '.join(f'{k} {v}' for k, v in sorted(ops.items()))}")
    click.echo(_table(_rows(prims), HEADER))


@archive.command()
@click.argument("run_dir", type=click.Path())
@click.option("-k", "k", type=COUNT, default=10, show_default=True, help="How many primitives to show.")
@click.option("--by", type=click.Choice(["quality", "novelty", "length"]), default="quality", show_default=True)
def top(run_dir: str, k: int, by: str) -> None:
    """The k best primitives by a score (ties broken by the other score)."""
    from tailor_evo.search.archive import load_archive

    prims = load_archive(run_dir)
    other = "novelty" if by == "quality" else "quality"
    prims.sort(key=lambda p: (-getattr(p, by), -getattr(p, other), p.id))
    click.echo(_table(_rows(prims[:k]), HEADER))


def _load_lineage(run_dir: Path) -> dict[str, dict]:
    from tailor_evo.io import check_types, iter_jsonl
    from tailor_evo.search.engine import LINEAGE
    from tailor_evo.search.genome import Primitive

    path = run_dir / LINEAGE
    if not path.exists():
        return {}
    known = {}
    for line, rec in iter_jsonl(path, required=("id", "parents", "generation", "operator", "quality")):
        check_types(rec, Primitive, file=str(path), line=line)      # the fields it shares with the archive rows
        known[rec["id"]] = rec
    return known


@archive.command()
@click.argument("run_dir", type=click.Path())
@click.argument("pid")
@click.option("--depth", type=COUNT, default=12, show_default=True, help="Generations of ancestry to show.")
def lineage(run_dir: str, pid: str, depth: int) -> None:
    """Ancestry tree of a primitive (id or unique id prefix); archived ancestors are marked *."""
    from tailor_evo.search.archive import load_archive

    prims = {p.id: p for p in load_archive(run_dir)}
    known = _load_lineage(Path(run_dir))
    for p in prims.values():
        known.setdefault(p.id, {"id": p.id, "parents": p.parents, "operator": p.operator,
                                "generation": p.generation, "quality": p.quality, "description": p.description})
    matches = [i for i in known if i.startswith(pid)]
    if len(matches) != 1:
        raise InputError("no primitive with this id" if not matches else f"ambiguous id prefix ({len(matches)} matches)",
                         file=str(run_dir), field="id")

    def walk(i: str, prefix: str, last: bool, level: int) -> None:
        rec = known.get(i)
        mark = "*" if i in prims else " "
        branch = "" if level == 0 else ("└─ " if last else "├─ ")
        if rec is None:
            click.echo(f"{prefix}{branch}{i[:12]} (not recorded)")
            return
        click.echo(f"{prefix}{branch}{mark}{i[:12]} gen {rec['generation']} {rec['operator']} "
                   f"q={rec['quality']:.3f}  {rec.get('description', '')[:50]}")
        if level >= depth:
            return
        parents = rec.get("parents", [])
        child_prefix = prefix + ("" if level == 0 else ("   " if last else "│  "))
        for j, par in enumerate(parents):
            walk(par, child_prefix, j == len(parents) - 1, level + 1)

    walk(matches[0], "", True, 0)


@archive.command()
@click.argument("run_dir", type=click.Path())
@click.option("--format", "fmt", type=click.Choice(["jsonl", "parquet"]), default="jsonl", show_default=True)
@click.option("-o", "--output", type=OutputFile(), default=None,
              help="Output .jsonl or .parquet file, matching --format (default: stdout for jsonl, "
                   "RUN_DIR/export.parquet for parquet).")
def export(run_dir: str, fmt: str, output: str | None) -> None:
    """Write the archive as JSONL or Parquet (nested fields as JSON text)."""
    from tailor_evo.io import write_jsonl_atomic, write_records
    from tailor_evo.search.archive import _flat_row, load_archive

    problem = output_problem(output, (f".{fmt}",), stdout=fmt == "jsonl") if output is not None else None
    if problem:      # the extension must also be the one --format writes
        raise click.BadParameter(f"{output}: {problem} (--format {fmt})", param_hint="'-o' / '--output'")
    prims = load_archive(run_dir)
    if fmt == "jsonl":
        if output is None:
            for p in prims:
                sys.stdout.write(json.dumps(p.to_dict(), ensure_ascii=False) + "\n")
            return
        n = write_jsonl_atomic(output, [p.to_dict() for p in prims])
    else:
        output = output or str(Path(run_dir) / "export.parquet")
        if not prims:
            raise InputError("archive is empty: nothing to export", file=str(run_dir))
        n = write_records(output, [_flat_row(p) for p in prims])
    click.echo(f"wrote {n} primitives to {output}", err=True)


@archive.command()
@click.argument("run_a", type=click.Path())
@click.argument("run_b", type=click.Path())
def diff(run_a: str, run_b: str) -> None:
    """Coverage of one archive against the other (cells of their probe states, shared codebook)."""
    from tailor_evo.search.archive import load_archive, load_states
    from tailor_evo.search.coverage import Coverage
    from tailor_evo.search.embed import make_embedder

    def setup(run: str) -> dict:
        import yaml

        from tailor_evo.io import read_text

        path = Path(run) / "config.yaml"
        if not path.exists():
            return {}
        try:
            cfg = yaml.safe_load(read_text(path, "config file"))
        except yaml.YAMLError as exc:
            raise InputError(f"invalid YAML: {exc}", file=str(path)) from None
        return cfg if isinstance(cfg, dict) else {}

    ca, cb = setup(run_a), setup(run_b)
    nov = (ca.get("novelty") or {})
    embedder = make_embedder(nov.get("embedder", "hash"))
    cov = Coverage(embedder, bits=int(nov.get("coverage_bits", 16)), seed=int(nov.get("coverage_seed", 0)))
    cells = {}
    for name, run in (("A", run_a), ("B", run_b)):
        ids = {p.id for p in load_archive(run)}
        states = load_states(run)
        missing = ids - set(states)
        if missing:
            raise InputError(f"{len(missing)} archived primitives have no saved states", file=str(run))
        cells[name] = cov.cells([s for i in ids for traj in states[i] for s in traj])
    a, b = cells["A"], cells["B"]
    for key in ("task", "seed"):
        if ca.get(key) != cb.get(key):
            click.echo(f"warning: runs differ in {key} ({ca.get(key)} vs {cb.get(key)}); probe problems differ", err=True)
    if (ca.get("problems") or {}).get("probe") != (cb.get("problems") or {}).get("probe"):
        click.echo("warning: runs use different probe sets; coverage is not on the same problems", err=True)
    click.echo(_table([["A", run_a, len(a), len(a - b)], ["B", run_b, len(b), len(b - a)]],
                      ["", "run", "coverage (cells)", "cells the other lacks"]))
    union = len(a | b)
    click.echo(f"shared {len(a & b)} cells, union {union}; "
               f"A covers {len(a & b) / len(b) if b else 0:.1%} of B, B covers {len(a & b) / len(a) if a else 0:.1%} of A")
