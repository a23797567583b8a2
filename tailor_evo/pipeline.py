"""The whole method on one (task, backbone, warm-start method, seed): search -> warm start -> SFT -> RL -> eval.

``tailor-evo run`` runs it once on the built-in defaults; ``tailor-evo experiment``
runs it for every cell of a grid. Both go through :func:`run_pipeline`, so a cell of
an experiment is exactly what a single run would have produced.

Each stage writes into its own sub-directory and leaves a marker in ``stages/``
when it has finished. Running again with ``resume=True`` skips finished stages and
lets the interrupted one continue from its last checkpoint, so a crash or Ctrl-C
loses at most the work since that checkpoint.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, ClassVar, Mapping

from tailor_evo.errors import InputError
from tailor_evo.io import read_json, write_json_atomic, write_records, write_text_atomic
from tailor_evo.machine import probe_machine
from tailor_evo.rundir import LOCK, RunDir, has_checkpoint
from tailor_evo.search.engine import SearchConfig
from tailor_evo.tasks import get_task
from tailor_evo.trainers.base import EvalSettings
from tailor_evo.trainers.evaluate import EvalOptions
from tailor_evo.trainers.rl import RLConfig
from tailor_evo.trainers.sft import SFTConfig
from tailor_evo.warmstart.config import PipelineWarmstart
from tailor_evo.warmstart.methods import get_method

log = logging.getLogger(__name__)



@dataclass
class FinalEval(EvalOptions):
    """The pipeline's evaluations (of the base, after SFT, after RL): the shared
    :class:`EvalOptions` with the pipeline's defaults, a list of k, and ``base``."""

    levels: list[int] = field(default_factory=lambda: [3])
    n_per_level: int | None = 100
    k: list[int] = field(default_factory=lambda: [1])   # pass@k for each k (1 = greedy accuracy only)
    max_new_tokens: int = 384
    batch_size: int = 32
    base: bool = True                 # also evaluate the backbone itself, so the report shows what SFT added


def _default_search() -> SearchConfig:
    cfg = SearchConfig()
    cfg.evolution.generations = 6
    return cfg


def _default_sft() -> SFTConfig:
    # one epoch over fresh problems (every SFT example is a new puzzle): explicit traces teach each
    # decision once per step that makes it, and repeating puzzles only teaches them by heart.
    # lr 1e-3 measured better than 3e-3 (docs/results/main-job, the explicit-rendering ladder);
    # batch 4 better than 8 on the same 4,000 traces in the same time (0.95 against 0.82)
    return SFTConfig(epochs=1, batch_size=4, lr=1e-3, max_length=2048, save_every=50, eval=EvalSettings(every=0))


def _default_rl() -> RLConfig:
    # The generation budget follows the warm start (PipelineConfig.budget); 320 is only its floor.
    # No evaluation inside RL: the pipeline's eval stage measures the RL model on the held-out set.
    # Binary reward with dynamic sampling: groups whose rollouts all score the same carry no signal
    # and are replaced by new prompts; completions cut at the budget are left out of the loss.
    # lr 3e-5: from SFT models at 0.95-0.97 only 1-2 groups a step carry signal, and at 1e-4 each Adam
    # step follows them far enough to turn right answers into loops (seeds 0/1/2 after RL 0.88 / 0.84 /
    # 0.94 against 0.94 / 0.93 / 0.97 at 3e-5; docs/results/main-job, "The defaults again on a slower day")
    # No refill rounds: near the ceiling a refill round generates 64 more rollouts for about one group
    # with signal; without it RL takes 69-79 s instead of 133-157 s and ends at 0.95 / 0.94 / 0.95
    # (pooled 0.947, the same as with one round; docs/results/main-job, "RL without refill rounds").
    return RLConfig(steps=4, lr=3e-5, max_new_tokens=320, reward="binary", dynamic_sampling=True,
                    max_refill_rounds=0, mask_truncated=True, eval=EvalSettings(every=0, n=0))


@dataclass
class PipelineConfig:
    # a resumed run changes nothing: each finished stage is final (start a new run directory instead)
    RESUME_SAFE: ClassVar[tuple[str, ...]] = ()
    task: str = "kk"                                           # a registered task name (every stage's)
    backbone: str = "tiny-base"                                # model every method starts from: name or directory
    method: str = "tailor"                                     # warm-start method (see data warmstart --method)
    seed: int = 0                                              # every stage's seed
    levels: list[int] = field(default_factory=lambda: [3])     # training difficulty (search, warm start, RL)
    chat: bool = False                                         # prompts through the tokenizer's chat template
    # how the executor writes every method's traces (KK: explicit | quoted | classic; iGSM: explicit |
    # quoted | compact); None = the task's default (explicit: each decision after its written check)
    rendering: str | None = None
    # new-token budget of RL rollouts and every evaluation. "data": the warm start's longest
    # completion (backbone tokens) x 1.2, rounded up to 32, or the configured rl/eval
    # max_new_tokens where larger, so that traces are never cut by a budget set for shorter ones;
    # "fixed": the configured values, and the warm start drops longer completions (fit_rl_budget).
    # In an experiment grid, "data" also raises a redistill teacher's cap to its teacher cell's budget.
    budget: str = "data"
    # RL's overlong penalty (rl.overlong_buffer) over the budget's margin: true sets the buffer to the
    # tokens between the longest warm-start completion SFT trains on and RL's budget, so the penalty
    # starts past every length the warm start wrote, whatever budget the data set
    # (rl.overlong_penalty still sets its size; rl.overlong_buffer must then stay 0)
    overlong_margin: bool = False
    report_to: list[str] = field(default_factory=list)         # trackers for every stage: tensorboard, wandb
    search: SearchConfig = field(default_factory=_default_search)
    warmstart: PipelineWarmstart = field(default_factory=PipelineWarmstart)
    sft: SFTConfig = field(default_factory=_default_sft)
    rl: RLConfig = field(default_factory=_default_rl)
    eval: FinalEval = field(default_factory=FinalEval)

    def check(self) -> None:
        from tailor_evo.trackers import check_report_to

        get_task(self.task)
        check_report_to(self.report_to)
        get_method(self.method)
        if not self.levels:
            raise InputError("needs at least one difficulty level", field="levels")
        if self.budget not in BUDGETS:
            raise InputError(f"must be one of {', '.join(BUDGETS)}, got {self.budget!r}", field="budget")
        if self.overlong_margin and self.rl.overlong_buffer:
            raise InputError(f"sets rl.overlong_buffer from the warm start's lengths, so rl.overlong_buffer="
                             f"{self.rl.overlong_buffer} would be ignored: set one of the two",
                             field="overlong_margin")
        refused, defaults = [], PipelineConfig()
        for key, source in PIPELINE_OWNED.items():
            value, default = _get_dotted(self, key), _get_dotted(defaults, key)
            if value != default and value != _owned_value(self, key):
                how = f"set `{source}` instead" if source else "it is the previous stage's output"
                refused.append((key, f"{key}={value!r} ({how})"))
        if refused:
            raise InputError("is set by the pipeline, not by its stages' sections: "
                             + "; ".join(text for _, text in refused), field=refused[0][0])

    def fill_owned(self) -> None:
        """Write the values the pipeline gives its stages into their sub-configs, so that the
        saved ``config.yaml`` is exactly what ran (the stages' inputs, like the SFT data file,
        are recorded in each stage's own ``config.yaml``)."""
        for key in PIPELINE_OWNED:
            wanted = _owned_value(self, key)
            if wanted is not None:
                _set_dotted_attr(self, key, wanted)


BUDGETS = ("data", "fixed")
BUDGET_MARGIN = 1.2      # the data budget: longest trained-on completion x this, rounded up to BUDGET_ROUND
BUDGET_ROUND = 32


def longest_trained(lengths: list[int], longest: int | None = None) -> int:
    """The longest warm-start completion SFT trains on (0 without data): ``longest`` caps the
    lengths considered, since SFT skips longer examples (its ``max_length``)."""
    return max((n for n in lengths if longest is None or n <= longest), default=0)


def data_budget(lengths: list[int], longest: int | None = None) -> int:
    """The new-token budget that fits every warm-start completion SFT trains on, with a margin
    (0 without data); one outlier trace longer than ``longest``, which the model never saw, does
    not set it."""
    top = longest_trained(lengths, longest)
    if not top:
        return 0
    return -(-int(top * BUDGET_MARGIN) // BUDGET_ROUND) * BUDGET_ROUND


def apply_budget(cfg: "PipelineConfig", budget: int) -> None:
    """Raise RL's and the evaluations' generation budgets to ``budget`` (never lower them)."""
    cfg.rl.max_new_tokens = max(cfg.rl.max_new_tokens, budget)
    cfg.rl.eval.max_new_tokens = max(cfg.rl.eval.max_new_tokens, budget)
    cfg.eval.max_new_tokens = max(cfg.eval.max_new_tokens, budget)


def overlong_margin(budget: int, longest: int) -> int:
    """The tokens of a ``budget`` past the ``longest`` warm-start completion SFT trained on: an
    overlong penalty over them never touches a length the warm start wrote (0 without data)."""
    return max(0, budget - longest) if longest > 0 else 0


def apply_overlong_margin(cfg: "PipelineConfig", warmstart: dict) -> None:
    """Set RL's overlong buffer to the margin of its budget over the warm start's longest trained-on
    completion (``warmstart``: that stage's record), and say so when there is none to set."""
    longest = warmstart.get("longest_trained") or (warmstart.get("completion_tokens") or {}).get("max", 0)
    cfg.rl.overlong_buffer = overlong_margin(cfg.rl.max_new_tokens, longest)
    if cfg.rl.overlong_buffer == 0:
        why = ("the warm start has no completions" if not longest
               else f"its longest completion ({longest} tokens) fills RL's budget ({cfg.rl.max_new_tokens})")
        log.warning("overlong_margin: no overlong penalty, since %s", why)
    else:
        log.info("overlong penalty over the last %d of RL's %d new tokens", cfg.rl.overlong_buffer,
                 cfg.rl.max_new_tokens)


# Sub-config keys that the pipeline sets from its own fields (value: the field a user sets
# instead) or from the previous stage's output (""). `check` refuses any other value, so a
# setting is never accepted and then ignored.
PIPELINE_OWNED = {
    "search.task": "task", "search.seed": "seed", "search.problems.levels": "levels",
    "sft.task": "task", "sft.seed": "seed", "sft.model": "backbone", "sft.chat": "chat", "sft.data": "",
    "rl.task": "task", "rl.seed": "seed", "rl.levels": "levels", "rl.chat": "chat", "rl.model": "",
    "search.report_to": "report_to", "sft.report_to": "report_to", "rl.report_to": "report_to",
    "search.rendering": "rendering", "warmstart.rendering": "rendering",
}


def _owned_value(cfg: PipelineConfig, key: str):
    source = PIPELINE_OWNED[key]
    if not source:
        return None
    value = getattr(cfg, source)
    return list(value) if isinstance(value, list) else value


def _get_dotted(obj, key: str):
    for part in key.split("."):
        obj = getattr(obj, part)
    return obj


def _set_dotted_attr(obj, key: str, value) -> None:
    *path, last = key.split(".")
    for part in path:
        obj = getattr(obj, part)
    setattr(obj, last, value)


def stage_marker(root: Path, name: str) -> Path:
    """The file in which a run records a finished stage and what it produced."""
    return root / "stages" / f"{name}.json"


def _run_stage(root: Path, name: str, fn: Callable[[], dict], seconds: dict[str, float]) -> dict:
    """Run ``fn`` unless its marker exists; store its (JSON) result as the marker."""
    marker = stage_marker(root, name)
    if marker.exists():
        log.info("stage %s already done, skipping", name)
        result = read_json(marker)
        seconds[name] = result.get("_seconds", 0.0)
        return result
    start = time.time()
    result = fn()
    result["_seconds"] = round(time.time() - start, 1)
    seconds[name] = result["_seconds"]
    write_json_atomic(marker, result)
    return result


def _sub_rundir(path: Path) -> tuple[RunDir, bool]:
    """A stage's run directory: resumed when an earlier attempt left its config and a checkpoint
    there. An attempt that stopped before its first checkpoint has nothing to continue from,
    so the stage starts again (and says so)."""
    resume = (path / "config.yaml").exists() and has_checkpoint(path)
    if not resume and (path / "config.yaml").exists():
        log.warning("%s holds no checkpoint of the earlier attempt; the stage starts again", path)
    return RunDir.create(path, resume=resume, overwrite=not resume), resume


# --------------------------------------------------------------------------------------------------
# stages


def stage_search(cfg: PipelineConfig, out: Path) -> dict:
    from tailor_evo.search.engine import run_search

    scfg = cfg.search                   # task, seed and levels: filled by PipelineConfig.fill_owned
    own = get_method(cfg.method).own_search
    if own is not None:                 # e.g. tailor-gp: the offline operators, whatever the config says
        scfg = dataclasses.replace(scfg, **own.settings)
    rd, resume = _sub_rundir(out)
    result = run_search(scfg, rd, resume=resume)
    return {"archive_dir": str(out), "archive_size": result.archive_size,
            "coverage_ratios": result.coverage_ratios, "coverage": result.coverage}


def stage_warmstart(cfg: PipelineConfig, out: Path, archive_dir: Path | None, teacher_spec: str | None) -> dict:
    from tailor_evo.warmstart.build import build_warmstart
    from tailor_evo.warmstart.card import render_card

    task = get_task(cfg.task)
    teacher = None
    spec = get_method(cfg.method)
    spec.check_inputs(archive=archive_dir is not None, teacher=bool(teacher_spec), archive_field="search",
                      teacher_field="warmstart.teacher")
    if spec.needs_teacher:
        from tailor_evo.generation import make_engine

        teacher = make_engine(teacher_spec)
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(_backbone_dir(cfg))

    def count_tokens(text: str) -> int:
        return len(tokenizer(text, add_special_tokens=False).input_ids) + 1     # + the end of sequence

    budget: dict = {}
    if cfg.warmstart.fit_rl_budget and cfg.budget == "fixed":
        budget = {"max_completion_tokens": cfg.rl.max_new_tokens, "count_tokens": count_tokens}
    result = build_warmstart(task, cfg.method, cfg.warmstart, cfg.seed, levels=cfg.levels, chat=cfg.chat,
                             archive_dir=archive_dir, teacher=teacher, teacher_name=teacher_spec or "teacher",
                             **budget)
    lengths = sorted(count_tokens(r["completion"]) for r in result.records)
    if not result.records:
        # e.g. a teacher that solves nothing: the cell goes on with no warm start
        # (SFT is skipped) and the summary and report say so
        log.warning("the %s method produced no verified warm-start records; SFT will be skipped", cfg.method)
    out.mkdir(parents=True, exist_ok=True)
    data_path = out / "data.jsonl"
    write_records(data_path, result.records)
    write_text_atomic(out / "card.md", render_card([result]))
    stats = result.stats.to_dict() if hasattr(result.stats, "to_dict") else asdict(result.stats)
    write_json_atomic(out / "stats.json", stats)
    return {"data": str(data_path), "records": len(result.records), "coverage": stats.get("coverage_selected"),
            "coverage_abstract": stats.get("coverage_abstract"), "stats": stats,
            "completion_tokens": _length_summary(lengths),
            "longest_trained": longest_trained(lengths, cfg.sft.max_length),
            "max_new_tokens": data_budget(lengths, cfg.sft.max_length) if cfg.budget == "data" else cfg.rl.max_new_tokens}


def _length_summary(lengths: list[int]) -> dict:
    """Median, 90th percentile and longest of sorted token counts (empty without data)."""
    if not lengths:
        return {}
    return {"median": lengths[len(lengths) // 2], "p90": lengths[int(0.9 * (len(lengths) - 1))],
            "max": lengths[-1], "n": len(lengths)}


def _backbone_dir(cfg: PipelineConfig) -> str:
    from tailor_evo.models.registry import resolve

    return str(resolve(cfg.backbone))


def stage_sft(cfg: PipelineConfig, out: Path, data_path: str, n_records: int) -> dict:
    from tailor_evo.trainers.sft import train_sft

    if n_records == 0:
        from tailor_evo.models.registry import resolve

        return {"model": str(resolve(cfg.backbone)), "skipped": "no verified warm-start data: RL starts from "
                "the backbone without SFT"}

    scfg = dataclasses.replace(cfg.sft, data=data_path)      # the rest: filled by PipelineConfig.fill_owned
    rd, resume = _sub_rundir(out)
    if not resume:
        rd.save_config(scfg)
    model_dir = train_sft(scfg, rd, resume=resume)
    return {"model": str(model_dir)}


def stage_rl(cfg: PipelineConfig, out: Path, model_dir: str) -> dict:
    from tailor_evo.trainers.rl import train_rl

    rcfg = dataclasses.replace(cfg.rl, model=model_dir)      # the rest: filled by PipelineConfig.fill_owned
    rd, resume = _sub_rundir(out)
    if not resume:
        rd.save_config(rcfg)
    final = train_rl(rcfg, rd, resume=resume)
    metrics = rd.read_metrics()
    rows = [r for r in metrics if "reward" in r]
    return {"model": str(final), "reward_curve": [r["reward"] for r in rows],
            "accuracy_curve": [r.get("accuracy", r["reward"]) for r in rows],
            "eval_curve": [[r["step"], r["eval_accuracy"]] for r in metrics if "eval_accuracy" in r],
            "max_new_tokens": rcfg.max_new_tokens, "overlong_buffer": rcfg.overlong_buffer}


def stage_eval(cfg: PipelineConfig, out: Path, model_dir: str) -> dict:
    from tailor_evo.generation import engine_spec, make_engine
    from tailor_evo.tasks.streams import eval_problems
    from tailor_evo.trackers import Trackers
    from tailor_evo.trainers.eval_cli import record_on_card
    from tailor_evo.trainers.evaluate import evaluate, plot_results, render_report

    task = get_task(cfg.task)
    opts = cfg.eval
    try:
        opts.check(opts.k)
    except InputError as exc:
        raise InputError(exc.detail, field=f"eval.{exc.field}") from None
    problems = eval_problems(task, cfg.seed, opts.levels, opts.n_per_level or 100)
    engine = make_engine(engine_spec(model_dir, opts.backend), batch_size=opts.batch_size)
    result = evaluate(engine, task, problems, k=opts.k, n_samples=opts.n_samples or None, temperature=opts.temperature,
                      top_p=opts.top_p, max_new_tokens=opts.max_new_tokens, chat=cfg.chat, batch_size=opts.batch_size,
                      seed=cfg.seed)
    out.mkdir(parents=True, exist_ok=True)
    data = result.to_dict(with_outcomes=True)
    write_json_atomic(out / "results.json", data)
    plots = plot_results(result, str(out / "plots"))
    write_text_atomic(out / "report.md", render_report(result, model=model_dir, seed=cfg.seed, plots=plots))
    record_on_card(model_dir, result, task.name, data=None, seed=cfg.seed)
    trackers = Trackers(cfg.report_to, out, {"model": model_dir, "eval": asdict(cfg.eval)}, out.name)
    for m in result.per_level:
        trackers.log({"level": m.level, **m.to_dict()})
    trackers.close()
    return {"accuracy": result.overall.accuracy, "macro_accuracy": result.macro_accuracy,
            "per_level": {str(m.level): m.accuracy for m in result.per_level},
            "per_kind": {kind: m.accuracy for kind, m in result.per_kind.items()},
            "format_error_rate": result.overall.format_error_rate, "truncated_share": result.overall.truncated_share,
            "partial_credit": result.overall.partial_credit, "summary": result.summary_line()}


# --------------------------------------------------------------------------------------------------
# the pipeline


@dataclass
class PipelineResult:
    root: Path
    stages: dict[str, dict]
    seconds: dict[str, float]

    @property
    def acc_base(self) -> float | None:
        return self.stages["eval_base"]["accuracy"] if "eval_base" in self.stages else None

    @property
    def acc_sft(self) -> float:
        return self.stages["eval_sft"]["accuracy"]

    @property
    def acc_rl(self) -> float:
        return self.stages["eval_rl"]["accuracy"]


def check_single_process(env: Mapping[str, str]) -> None:
    """The whole job runs in one process: under ``accelerate launch`` every process would search,
    build data and evaluate again. Several processes are for the training stages, launched alone."""
    processes = int(env.get("WORLD_SIZE", "1") or 1)
    if processes > 1:
        raise InputError(f"the whole job runs in one process, and this launch has {processes}: run `tailor-evo run` "
                         "without accelerate launch, or launch the training stages alone (`accelerate launch ... -m "
                         "tailor_evo.cli train sft|rl`, docs/training.md#scaling-out)", field="accelerate")


def run_pipeline(cfg: PipelineConfig, root: str | Path, *, resume: bool = False,
                 search_dir: str | Path | None = None, teacher_spec: str | None = None) -> PipelineResult:
    """Run every stage for one cell into ``root``.

    ``search_dir`` reuses a finished (or resumable) search shared by several cells;
    without it a method that needs an archive (tailor) searches into ``root/search``.
    ``teacher_spec`` overrides ``cfg.warmstart.teacher`` for a method that needs a teacher
    (redistill).
    """
    cfg.check()
    check_single_process(os.environ)
    cfg.fill_owned()
    root = Path(root)
    rd = RunDir.locked(root)       # one process per run directory, before the emptiness check
    if any(p.name != LOCK for p in root.iterdir()) and not resume:
        rd.release()
        raise InputError("run directory exists and is not empty; pass --resume to continue it", file=str(root))
    if not rd.config_path.exists():
        rd.save_config(cfg)
    timer: dict[str, float] = {}
    stages: dict[str, dict] = {}

    # the machine's speed beside the stages' times, so that a slow day is told from slow code
    stages["machine"] = _run_stage(root, "machine", lambda: probe_machine().to_dict(), timer)
    archive_dir = None
    if get_method(cfg.method).needs_archive:
        sdir = Path(search_dir) if search_dir else root / "search"
        stages["search"] = _run_stage(root, "search", lambda: stage_search(cfg, sdir), timer)
        archive_dir = sdir
    stages["warmstart"] = _run_stage(
        root, "warmstart",
        lambda: stage_warmstart(cfg, root / "warmstart", archive_dir, teacher_spec or cfg.warmstart.teacher), timer)
    if cfg.budget == "data":
        apply_budget(cfg, stages["warmstart"].get("max_new_tokens", 0))
        log.info("generation budget from the warm start: %d new tokens (RL %d, evaluation %d)",
                 stages["warmstart"].get("max_new_tokens", 0), cfg.rl.max_new_tokens, cfg.eval.max_new_tokens)
    if cfg.overlong_margin:
        apply_overlong_margin(cfg, stages["warmstart"])
    if cfg.eval.base:
        stages["eval_base"] = _run_stage(root, "eval_base",
                                         lambda: stage_eval(cfg, root / "eval_base", _backbone_dir(cfg)), timer)
    stages["sft"] = _run_stage(root, "sft", lambda: stage_sft(cfg, root / "sft", stages["warmstart"]["data"],
                                                  stages["warmstart"]["records"]), timer)
    stages["eval_sft"] = _run_stage(root, "eval_sft",
                                    lambda: stage_eval(cfg, root / "eval_sft", stages["sft"]["model"]), timer)
    stages["rl"] = _run_stage(root, "rl", lambda: stage_rl(cfg, root / "rl", stages["sft"]["model"]), timer)
    stages["eval_rl"] = _run_stage(root, "eval_rl",
                                   lambda: stage_eval(cfg, root / "eval_rl", stages["rl"]["model"]), timer)
    result = PipelineResult(root=root, stages=stages, seconds=timer)
    write_json_atomic(root / "summary.json", {"stages": stages, "seconds": timer})
    return result
