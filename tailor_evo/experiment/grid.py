"""The experiment grid: expand a config into cells, run them in a safe order, resume, estimate cost."""

from __future__ import annotations

import copy
import itertools
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path

from tailor_evo.errors import InputError
from tailor_evo.pipeline import PipelineConfig, stage_marker
from tailor_evo.warmstart.methods import default_grid, get_method, method_names, run_order

log = logging.getLogger(__name__)


def _comparison_base() -> PipelineConfig:
    """The main job's defaults, with two exceptions. The tailor cells render the archive's elites
    up to the warm start's own default (32), not only the best one: the comparison is about that
    diversity, while the main job renders a single elite so that a 2 M model learns it in 15 min.
    And RL keeps one refill round: the main job drops it because its SFT models start near the
    ceiling, where a refill finds little signal, while comparison cells start wherever their
    warm start leaves them."""
    from tailor_evo.warmstart.config import WarmstartConfig

    base = PipelineConfig()
    base.warmstart.max_primitives = WarmstartConfig.max_primitives
    base.rl.max_refill_rounds = 1
    return base


@dataclass
class ExperimentConfig:
    name: str = "experiment"                                  # the experiment's title in its report
    tasks: list[str] = field(default_factory=lambda: ["kk"])  # one grid axis: the tasks
    # training difficulty settings per task; each entry is one grid value (a list of levels)
    difficulties: dict = field(default_factory=lambda: {"kk": [[3]], "igsm": [[2, 3, 4]]})
    # evaluation levels per task (the cells' base.eval.levels); a task not named keeps base.eval.levels
    eval_levels: dict = field(default_factory=lambda: {"kk": [3, 4], "igsm": [2, 3, 4, 5]})
    backbones: list[str] = field(default_factory=lambda: ["tiny"])       # one grid axis: names or model directories
    # one grid axis: warm-start methods (tailor_evo.warmstart.methods); default: those registered
    # in_default_grid (rule-based, four-behaviour, tailor, redistill; the tailor-gp ablation on request)
    methods: list[str] = field(default_factory=default_grid)
    seeds: list[int] = field(default_factory=lambda: [0, 1, 2])          # one grid axis: the seeds of each cell
    # teacher of the methods that need one (redistill): "STAGE:METHOD" = the model of another cell
    # of the same task, levels, backbone and seed after that stage, e.g. "sft:rule-based" (its SFT
    # model) or "rl:rule-based" (its RL model, which solves more); or any engine spec (hf:NAME,
    # openai:URL#MODEL, vllm:NAME)
    redistill_teacher: str = "sft:rule-based"
    target_reward: float = 0.5        # for "steps to reach target reward"
    # for "steps to reach target accuracy" on the periodic held-out RL evaluations; set it from a
    # measured range before the grid runs (the report says whether it changed since)
    target_accuracy: float | None = None
    chat_backbones: list[str] = field(default_factory=list)   # backbones prompted through their chat template
    base: PipelineConfig = field(default_factory=_comparison_base)

    def check(self) -> None:
        from tailor_evo.tasks import get_task

        for t in self.tasks:
            get_task(t)
            if t not in self.difficulties:
                raise InputError(f"no difficulty settings for task {t!r}", field="difficulties")
        bad = [m for m in self.methods if m not in method_names()]
        if bad:
            raise InputError(f"unknown method(s) {bad} (known: {', '.join(method_names())})", field="methods")
        if not self.seeds:
            raise InputError("needs at least one seed", field="seeds")
        source = teacher_source(self.redistill_teacher)
        taught = [m for m in self.methods if get_method(m).needs_teacher]
        if source and taught and source[1] not in self.methods:
            raise InputError(f"the {taught[0]} teacher {self.redistill_teacher!r} is a cell of method "
                             f"{source[1]!r}, which is not in methods", field="redistill_teacher")
        if self.target_accuracy is not None and not 0 <= self.target_accuracy <= 1:
            raise InputError(f"invalid value {self.target_accuracy!r} (an accuracy in [0, 1])",
                             field="target_accuracy")
        if self.target_accuracy is not None and (self.base.rl.eval.every <= 0 or self.base.rl.eval.n <= 0):
            raise InputError("target_accuracy needs periodic RL evaluations (base.rl.eval.every and "
                             "base.rl.eval.n > 0)", field="target_accuracy")


@dataclass
class Cell:
    task: str
    levels: list[int]
    backbone: str
    method: str
    seed: int

    @property
    def difficulty_tag(self) -> str:
        return "L" + "-".join(str(x) for x in self.levels)

    @property
    def name(self) -> str:
        backbone = Path(self.backbone).name if "/" in self.backbone else self.backbone
        return f"{self.task}-{self.difficulty_tag}-{backbone}-{self.method}-s{self.seed}"

    def search_name(self) -> str:
        """The search this cell's archive comes from (shared by the cells of one task, levels and seed;
        a method with a search of its own gets its own, named by its tag)."""
        own = get_method(self.method).own_search
        return f"{self.task}-{self.difficulty_tag}-s{self.seed}" + (f"-{own.tag}" if own is not None else "")


def expand(cfg: ExperimentConfig) -> list[Cell]:
    """All cells, ordered so that every cell's dependencies (a teacher cell) come earlier: the
    methods in the registry's run order."""
    methods = run_order(cfg.methods)
    cells = []
    for task in cfg.tasks:
        for levels, backbone, seed in itertools.product(cfg.difficulties[task], cfg.backbones, cfg.seeds):
            for method in methods:
                cells.append(Cell(task, list(levels), backbone, method, seed))
    return cells


def cell_config(cfg: ExperimentConfig, cell: Cell) -> PipelineConfig:
    """The pipeline config of one cell: the shared base with the cell's coordinates filled in."""
    pc = copy.deepcopy(cfg.base)
    pc.task, pc.levels, pc.backbone, pc.method, pc.seed = cell.task, list(cell.levels), cell.backbone, cell.method, cell.seed
    pc.chat = cell.backbone in cfg.chat_backbones
    if cell.task in cfg.eval_levels:
        pc.eval.levels = list(cfg.eval_levels[cell.task])
    return pc


def teacher_for(cfg: ExperimentConfig, cell: Cell, out: Path) -> str | None:
    """The teacher engine spec of a cell whose method needs one, else None."""
    if not get_method(cell.method).needs_teacher:
        return None
    spec = cfg.redistill_teacher
    source = teacher_cell(cfg, cell)
    if source is None:
        return spec
    stage, _ = teacher_source(spec)
    marker = stage_marker(out / "cells" / source.name, stage)
    if not marker.exists():
        raise InputError(f"{cell.method} teacher {spec!r} needs the {stage} stage of cell {source.name} "
                         f"(include {source.method!r} in methods)", field="redistill_teacher")
    return f"hf:{json.loads(marker.read_text())['model']}"


def teacher_budget(cfg: ExperimentConfig, cell: Cell, out: Path) -> int:
    """The new-token budget the teacher cell's model was trained and evaluated with (its warm
    start's data budget), 0 where the teacher is not a cell of this grid or has not recorded one.
    A teacher answers in the trace style it was trained on, so a shorter cap cuts its answers
    before they verify (explicit 3-person KK traces run to about 1,200 tokens)."""
    source = teacher_cell(cfg, cell)
    if source is None:
        return 0
    marker = stage_marker(out / "cells" / source.name, "warmstart")
    return int(json.loads(marker.read_text()).get("max_new_tokens") or 0) if marker.exists() else 0


TEACHER_STAGES = ("sft", "rl")


def teacher_source(spec: str) -> tuple[str, str] | None:
    """(stage, method) of a "STAGE:METHOD" teacher spec; None for an engine spec (hf:, vllm:, ...)."""
    stage, _, method = spec.partition(":")
    return (stage, method) if stage in TEACHER_STAGES else None


def teacher_cell(cfg: ExperimentConfig, cell: Cell) -> Cell | None:
    """The cell whose model teaches ``cell`` (a cell of a method that needs a teacher, with a
    "STAGE:METHOD" teacher spec), else None."""
    source = teacher_source(cfg.redistill_teacher)
    if not get_method(cell.method).needs_teacher or source is None:
        return None
    return Cell(cell.task, cell.levels, cell.backbone, source[1], cell.seed)


# --------------------------------------------------------------------------------------------------
# cost estimate


# Seconds per unit of work on an otherwise idle 2-core CPU with the tiny backbone, measured with
# benchmarks/rl_step.py, the default search and SFT runs (see docs/experiments.md).
UNIT_SECONDS = {
    "search_candidate_problem": 0.003,   # one executor trajectory + verification + embedding
    "sft_token": 1.6e-4,                 # one training token (forward + backward), prompt included
    "rl_token": 8e-4,                    # one generated rollout token incl. its share of the update
    "eval_token": 4.5e-4,                # one greedy evaluation token (batched)
}
PROMPT_TOKENS = 200                      # typical prompt length in tiny-tokenizer tokens
BACKBONE_SCALE = {"tiny": 1.0, "tiny-base": 1.0, "tiny-base-m": 1.2, "smollm2-135m": 40.0, "gemma3-270m": 90.0}


def estimate_cell_seconds(pc: PipelineConfig, with_search: bool) -> float:
    u = UNIT_SECONDS
    scale = BACKBONE_SCALE.get(pc.backbone, 40.0)
    s = 0.0
    if with_search:
        ev = pc.search.evolution
        per = pc.search.problems.per_eval + pc.search.problems.probe
        s += (ev.generations + 1) * (ev.population + ev.offspring) * per * u["search_candidate_problem"]
    # a warm-start record is about as long as the RL completion budget plus its prompt
    record_tokens = PROMPT_TOKENS + pc.rl.max_new_tokens
    epochs = pc.sft.epochs if pc.sft.max_steps <= 0 else pc.sft.max_steps * pc.sft.batch_size / max(1, pc.warmstart.size)
    sft_steps_tokens = pc.warmstart.size * epochs * record_tokens
    s += sft_steps_tokens * u["sft_token"] * scale
    s += pc.rl.steps * pc.rl.prompts_per_step * pc.rl.group_size * pc.rl.max_new_tokens * u["rl_token"] * scale
    if get_method(pc.method).needs_teacher:     # the teacher's samples, every round (the most it may take)
        ws = pc.warmstart
        n_problems = ws.n_problems or ws.size + ws.size // 4
        s += (ws.teacher_rounds * n_problems * ws.teacher_samples * ws.teacher_max_new_tokens
              * u["eval_token"] * scale)
    s += ((2 + int(pc.eval.base)) * len(pc.eval.levels) * pc.eval.n_per_level * pc.eval.max_new_tokens
          * u["eval_token"] * scale)
    if pc.rl.eval.n > 0 and pc.rl.eval.every > 0:
        evals = pc.rl.steps // pc.rl.eval.every + 1
        s += evals * pc.rl.eval.n * pc.rl.eval.max_new_tokens * u["eval_token"] * scale
    return s


def estimate(cfg: ExperimentConfig, cells: list[Cell]) -> dict[str, float]:
    """Rough seconds per cell and in total; a search shared by several cells is counted once."""
    seen_search: set[str] = set()
    per_cell = {}
    for cell in cells:
        needs_search = get_method(cell.method).needs_archive and cell.search_name() not in seen_search
        if needs_search:
            seen_search.add(cell.search_name())
        per_cell[cell.name] = estimate_cell_seconds(cell_config(cfg, cell), needs_search)
    return per_cell
