"""Model cards: the ``README.md`` (YAML metadata + text) of every exported model directory.

A researcher who finds a ``model/`` folder should learn from it alone what it was
trained from, on what data, with which recipe, how well it does and how to make it
again, in the form the Hugging Face hub reads (``huggingface_hub.ModelCard``, with the
results as ``model-index`` entries). Trainers write the card when they export; each
evaluation of the directory (``tailor-evo eval``, the pipeline's eval stages) adds its
results to it, replacing an earlier result on the same problems.
"""

from __future__ import annotations

import shlex
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tailor_evo.io import read_json, write_text_atomic

CARD_NAME = "README.md"
TASK_TYPE = "text-generation"


@dataclass
class CardEval:
    """One result: accuracy on a set of held-out problems of one task and level."""

    task: str
    level: int | str            # difficulty level, or "all"
    accuracy: float
    n_problems: int
    split: str = "held-out"     # where the problems came from: "held-out" (seeded eval stream) or a file name
    seed: int | None = None

    def name(self) -> str:
        return f"{self.task} level {self.level} ({self.split}, {self.n_problems} problems)"


@dataclass
class CardInfo:
    """What a trainer knows at export time."""

    stage: str                              # "sft", "rl" or "pretrain"
    base_model: str                         # what it was trained from (backbone name or directory; "" = scratch)
    task: str
    seed: int
    recipe: dict[str, Any]                  # the resolved config
    data: dict[str, Any] = field(default_factory=dict)     # training data: source, size, method, coverage...
    results: list[CardEval] = field(default_factory=list)
    command: str = ""                       # default: this process's command line


def command_line() -> str:
    """The command that is running, as a user would type it again."""
    prog = Path(sys.argv[0]).name if sys.argv else "python"
    return shlex.join([prog, *sys.argv[1:]])


def warmstart_facts(data_path: str | Path) -> dict[str, Any]:
    """Method, size and coverage of a warm-start data file, from the ``stats.json`` the
    warm-start builder leaves beside it (empty when the data came from elsewhere)."""
    stats_path = Path(data_path).parent / "stats.json"
    if not stats_path.is_file():
        return {}
    try:
        stats = read_json(stats_path)
    except Exception:  # noqa: BLE001 - a card is written even when the stats beside the data are unreadable
        return {}
    rows = stats if isinstance(stats, list) else [stats]
    keys = ("method", "n_selected", "n_verified", "coverage_selected", "coverage_abstract", "coverage_measure")
    return {"warm_start": [{k: r.get(k) for k in keys if k in r} for r in rows if isinstance(r, dict)]}


def _lineage(base_model: str) -> list[str]:
    """``base_model`` and what it came from, read from its own card when it has one."""
    card_path = Path(base_model) / CARD_NAME
    chain = [base_model]
    if card_path.is_file():
        try:
            from huggingface_hub import ModelCard

            earlier = ModelCard.load(card_path).data.to_dict().get("tailor_evo", {}).get("lineage", [])
            chain += [str(x) for x in earlier]
        except Exception:  # noqa: BLE001 - an unreadable earlier card only shortens the lineage
            pass
    return chain


def _eval_result(r: CardEval) -> Any:
    from huggingface_hub import EvalResult

    return EvalResult(task_type=TASK_TYPE, dataset_type=f"tailor-evo/{r.task}", dataset_name=r.name(),
                      dataset_config=f"level-{r.level}", dataset_split=r.split, metric_type="accuracy",
                      metric_name="greedy accuracy", metric_value=round(float(r.accuracy), 4),
                      dataset_args={"n_problems": r.n_problems, **({"seed": r.seed} if r.seed is not None else {})})


def _results_table(results: list[Any]) -> str:
    if not results:
        return "Not evaluated yet: `tailor-evo eval --model THIS_DIR ...` adds its results here."
    lines = ["| problems | split | accuracy |", "|---|---|---:|"]
    for r in results:
        lines.append(f"| {r.dataset_name} | {r.dataset_split} | {r.metric_value:.3f} |")
    return "\n".join(lines)


def _body(meta: dict[str, Any], results: list[Any]) -> str:
    te = meta["tailor_evo"]
    data = te.get("data") or {}
    data_lines = "\n".join(f"- {k}: `{v}`" for k, v in data.items() if k != "warm_start") or "- (none recorded)"
    for ws in data.get("warm_start", []):
        data_lines += "\n- warm start: " + ", ".join(f"{k} `{v}`" for k, v in ws.items())
    recipe = te.get("recipe") or {}
    key_fields = ("lr", "epochs", "max_steps", "steps", "batch_size", "group_size", "reward", "kl_coef",
                  "temperature", "max_new_tokens", "lora")
    recipe_lines = "\n".join(f"- {k}: `{recipe[k]}`" for k in key_fields if k in recipe) or "- see config.yaml"
    lineage = " <- ".join(f"`{x}`" for x in te.get("lineage", []))
    return f"""
# {meta.get('model_name', 'tailor-evo model')}

A `{te['stage']}` model made by tailor-evo for the `{te['task']}` task.

## Trained from

{lineage}

## Data

{data_lines}

## Recipe

{recipe_lines}

The full configuration is in `tailor_evo.recipe` of this card's metadata and in the run
directory's `config.yaml`.

## Evaluation

{_results_table(results)}

## Reproduce

```
{te['command']}
```

Seed `{te['seed']}`.
"""


def _render(meta: dict[str, Any], results: list[Any]) -> str:
    from huggingface_hub import ModelCard, ModelCardData

    data = ModelCardData(base_model=meta.get("base_model"), library_name="transformers", pipeline_tag=TASK_TYPE,
                         model_name=meta.get("model_name"), tags=meta.get("tags"),
                         eval_results=results or None, tailor_evo=meta["tailor_evo"])
    return str(ModelCard(f"---\n{data.to_yaml()}\n---\n{_body(meta, results)}"))


def write_model_card(model_dir: str | Path, info: CardInfo) -> Path:
    """Write ``model_dir/README.md`` (atomically) from what the trainer knows."""
    model_dir = Path(model_dir)
    lineage = _lineage(info.base_model) if info.base_model else ["random initialisation"]
    root = lineage[-1]
    meta = {
        "base_model": root if info.base_model and not Path(root).is_dir() else None,
        "model_name": f"tailor-evo {info.stage} {info.task} (seed {info.seed})",
        "tags": ["tailor-evo", info.stage, info.task],
        "tailor_evo": {"stage": info.stage, "task": info.task, "seed": info.seed, "lineage": lineage,
                       "data": info.data, "recipe": info.recipe, "command": info.command or command_line()},
    }
    results = [_eval_result(r) for r in info.results]
    path = model_dir / CARD_NAME
    write_text_atomic(path, _render(meta, results))
    return path


def add_eval_results(model_dir: str | Path, results: list[CardEval]) -> bool:
    """Add ``results`` to the card of ``model_dir`` (same task, level and split: replaced).

    Returns False, writing nothing, when the directory has no tailor-evo card (a backbone
    or someone else's model: evaluating it must not write into it).
    """
    from huggingface_hub import ModelCard

    path = Path(model_dir) / CARD_NAME
    if not path.is_file():
        return False
    card = ModelCard.load(path)
    meta = card.data.to_dict()
    if "tailor_evo" not in meta:
        return False
    meta["model_name"] = card.data.model_name or meta.get("model_name")
    old = list(card.data.eval_results or [])
    new = [_eval_result(r) for r in results]
    def key(e):
        return (e.dataset_type, e.dataset_config, e.dataset_split, e.metric_type)

    replaced = {key(e) for e in new}
    merged = [e for e in old if key(e) not in replaced] + new
    write_text_atomic(path, _render(meta, merged))
    return True


def results_from_metrics(rows: list[dict], task: str, seed: int) -> list[CardEval]:
    """The last in-training evaluation of a metrics log (``eval_accuracy`` rows), as one entry."""
    evals = [r for r in rows if "eval_accuracy" in r]
    if not evals:
        return []
    last = evals[-1]
    levels = sorted(k.rsplit("_", 1)[1] for k in last if k.startswith("eval_accuracy_"))
    return [CardEval(task, ",".join(levels) or "all", last["eval_accuracy"], int(last.get("eval_n", 0)),
                     "held-out, during training", seed)]


def model_dir_of(spec: str | None) -> Path | None:
    """The local model directory an engine spec points at (``DIR``, ``hf:DIR`` or ``vllm:DIR``), else None."""
    if not spec:
        return None
    for prefix in ("hf:", "vllm:"):
        if spec.startswith(prefix):
            spec = spec[len(prefix):]
            break
    path = Path(spec)
    return path if path.is_dir() else None


def card_results(per_level: list[Any], overall: Any, task: str, *, split: str = "held-out",
                 seed: int | None = None) -> list[CardEval]:
    """Card entries from an evaluation's per-level metrics (objects with ``level``,
    ``accuracy``, ``n_problems``), plus the overall figure when there are several levels."""
    out = [CardEval(task, m.level, m.accuracy, m.n_problems, split, seed) for m in per_level]
    if len(per_level) > 1:
        out.append(CardEval(task, "all", overall.accuracy, overall.n_problems, split, seed))
    return out
