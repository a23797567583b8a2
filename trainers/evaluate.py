"""Evaluation of a generation engine on a task: accuracy per difficulty level, pass@k, lengths, format errors.

The same function serves ``tailor-evo eval``, the periodic evaluation inside the
trainers and the experiment grid, so all of them report identical metrics.

* Greedy accuracy: one completion per problem at temperature 0.
* pass@k: ``n_samples`` sampled completions per problem and the unbiased estimator
  ``1 - C(n - c, k) / C(n, k)`` (Chen et al., 2021), averaged over problems. Using
  ``n >= k`` samples instead of exactly ``k`` lowers the variance without biasing it.
* Response length: sampled tokens when the engine reports them, characters always.
* Format-error rate: the share of greedy completions the verifier could not parse
  (``Verdict.format_ok`` false).
* Truncation: the count and share of greedy completions cut at ``max_new_tokens``
  (no end-of-sequence); with a budget set from the training data's lengths, this says
  whether the budget or the model lost the answer.

Problem sets come from the ``eval`` stream (:func:`tailor_evo.tasks.streams.eval_problems`);
:func:`assert_disjoint` is the guard every consumer of training data uses to prove no
evaluation problem leaked into training. :class:`EvalOptions` holds the settings that
``tailor-evo eval`` and the pipeline's evaluations share.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field

from tqdm.auto import tqdm

from tailor_evo.errors import InputError, TailorError
from tailor_evo.generation.base import Engine, SamplingParams
from tailor_evo.tasks.base import Problem, Task, question_key
from tailor_evo.trainers.rollout import Rollout, is_truncated, rollout


class OverlapError(TailorError):
    """Training and evaluation problem sets share a problem."""


EVAL_BACKENDS = ("hf", "vllm")


@dataclass
class EvalOptions:
    """What an evaluation draws and how it samples: the fields ``tailor-evo eval``
    (:class:`~tailor_evo.trainers.eval_cli.EvalConfig`) and the pipeline's evaluations
    (``eval:`` of ``tailor-evo run``) share. Each adds its own ``k`` and may change a default.
    """

    levels: list[int] = field(default_factory=list)   # levels evaluated; empty: the task's defaults (eval --data: all)
    n_per_level: int | None = None   # problems per level (None: the caller's default)
    n_samples: int = 0               # sampled completions per problem for pass@k (0: max(k) when k > 1)
    temperature: float = 1.0         # of the pass@k samples (greedy accuracy is always temperature 0)
    top_p: float = 1.0               # nucleus sampling of the pass@k samples (1 = off)
    max_new_tokens: int = 256        # answer length limit
    batch_size: int = 16             # sequences per generation batch
    backend: str = "hf"              # engine for a bare model name or directory: hf, or vllm (a GPU with the
                                     # vllm extra, or CPU in `make vllm-env`)

    def check(self, ks: Sequence[int]) -> None:
        """Clear errors, naming the field, before any model is loaded."""
        if self.backend not in EVAL_BACKENDS:
            raise InputError(f"unknown backend {self.backend!r} (known: {', '.join(EVAL_BACKENDS)})", field="backend")
        if self.n_per_level is not None and self.n_per_level <= 0:
            raise InputError("must be positive", field="n_per_level")
        if any(k < 1 for k in ks):
            raise InputError("must be >= 1", field="k")
        if self.n_samples and self.n_samples < max(ks):
            raise InputError(f"must be at least k={max(ks)}", field="n_samples")
        if not 0 < self.top_p <= 1 or self.temperature < 0 or self.max_new_tokens < 1 or self.batch_size < 1:
            raise InputError("temperature >= 0, 0 < top_p <= 1, max_new_tokens >= 1 and batch_size >= 1 are needed",
                             field="eval")


# --------------------------------------------------------------------------------------------------
# keeping training and evaluation problems apart


def assert_disjoint(train: Iterable[Problem | str], held_out: Iterable[Problem | str], *,
                    train_name: str = "training", held_out_name: str = "evaluation") -> None:
    """Raise :class:`OverlapError` if any problem (by normalised question text) is in both sets.

    Accepts problems or already computed question keys, so callers holding only a
    data file's question texts can use it too.
    """
    def keys(items: Iterable[Problem | str]) -> dict[str, str]:
        out = {}
        for it in items:
            if isinstance(it, Problem):
                out[question_key(it)] = it.id
            else:
                k = " ".join(str(it).split())
                out[k] = k[:60]
        return out

    a, b = keys(train), keys(held_out)
    shared = sorted(set(a) & set(b))
    if shared:
        example = a[shared[0]]
        raise OverlapError(f"{len(shared)} problem(s) appear in both the {train_name} and the {held_out_name} "
                           f"set (first: {example!r}); use a different seed or split")


# --------------------------------------------------------------------------------------------------
# metrics


def pass_at_k(n: int, c: int, k: int) -> float:
    """Unbiased pass@k from ``n`` samples of which ``c`` are correct: 1 - C(n-c, k) / C(n, k)."""
    if not 0 <= c <= n:
        raise ValueError(f"need 0 <= c <= n, got n={n}, c={c}")
    if not 1 <= k <= n:
        raise ValueError(f"need 1 <= k <= n, got n={n}, k={k}")
    if n - c < k:
        return 1.0
    # product form avoids huge binomials: prod_{i=n-c+1}^{n} (1 - k / i)
    prob_all_wrong = 1.0
    for i in range(n - c + 1, n + 1):
        prob_all_wrong *= 1.0 - k / i
    return 1.0 - prob_all_wrong


@dataclass
class ProblemOutcome:
    """What happened on one problem: the greedy completion's verdict and the sampled success count."""

    problem_id: str
    difficulty: int
    completion: str
    correct: bool
    format_ok: bool
    reason: str
    response_tokens: int | None
    response_chars: int
    truncated: bool = False           # the greedy completion hit max_new_tokens without an end-of-sequence
    kind: str | None = None           # the task's label for what the problem asks (Task.problem_kind)
    partial_credit: float = 0.0       # the greedy completion's Task.partial_credit (the RL ``partial`` reward)
    n_samples: int = 0
    n_correct_samples: int = 0
    sample_format_errors: int = 0


@dataclass
class LevelMetrics:
    """Metrics over a group of problems (one difficulty level, or all of them with ``level=None``)."""

    level: int | None
    n_problems: int
    accuracy: float
    format_error_rate: float
    mean_response_tokens: float | None
    mean_response_chars: float
    pass_at_k: dict[int, float] = field(default_factory=dict)
    sample_accuracy: float | None = None      # mean correctness of sampled completions
    truncated: int = 0                        # greedy completions cut at max_new_tokens
    truncated_share: float = 0.0
    partial_credit: float = 0.0               # mean share of the answer right (Task.partial_credit), greedy

    def to_dict(self) -> dict:
        d = asdict(self)
        d["pass_at_k"] = {str(k): v for k, v in self.pass_at_k.items()}
        return d


@dataclass
class EvalResult:
    task: str
    difficulty_name: str
    k: list[int]
    n_samples: int
    temperature: float
    per_level: list[LevelMetrics]
    overall: LevelMetrics
    macro_accuracy: float
    outcomes: list[ProblemOutcome]
    reasons: dict[str, int]
    max_new_tokens: int = 0           # the generation budget (a truncated completion hit it)
    per_kind: dict[str, LevelMetrics] = field(default_factory=dict)   # by Task.problem_kind; empty if none

    def level(self, level: int) -> LevelMetrics:
        for m in self.per_level:
            if m.level == level:
                return m
        raise KeyError(level)

    def to_dict(self, with_outcomes: bool = False) -> dict:
        d = {
            "task": self.task, "difficulty_name": self.difficulty_name, "k": self.k,
            "n_samples": self.n_samples, "temperature": self.temperature,
            "overall": self.overall.to_dict(), "macro_accuracy": self.macro_accuracy,
            "per_level": [m.to_dict() for m in self.per_level], "reasons": dict(self.reasons),
            "max_new_tokens": self.max_new_tokens,
            "per_kind": {kind: m.to_dict() for kind, m in self.per_kind.items()},
        }
        if with_outcomes:
            d["outcomes"] = [asdict(o) for o in self.outcomes]
        return d

    def summary_line(self) -> str:
        levels = "  ".join(f"{self.difficulty_name}={m.level}:{m.accuracy:.3f}" for m in self.per_level)
        levels += "".join(f"  {kind}:{m.accuracy:.3f}" for kind, m in self.per_kind.items())
        pk = "  ".join(f"pass@{k}={v:.3f}" for k, v in self.overall.pass_at_k.items())
        return (f"accuracy {self.overall.accuracy:.3f}  ({levels})  {pk}  partial credit "
                f"{self.overall.partial_credit:.3f}  format errors {self.overall.format_error_rate:.3f}  "
                f"truncated {self.overall.truncated_share:.3f}")


def _aggregate(level: int | None, outcomes: list[ProblemOutcome], ks: list[int]) -> LevelMetrics:
    n = len(outcomes)
    toks = [o.response_tokens for o in outcomes if o.response_tokens is not None]
    pk: dict[int, float] = {}
    sample_acc = None
    sampled = [o for o in outcomes if o.n_samples > 0]
    if sampled:
        for k in ks:
            if all(o.n_samples >= k for o in sampled):
                pk[k] = sum(pass_at_k(o.n_samples, o.n_correct_samples, k) for o in sampled) / len(sampled)
        sample_acc = sum(o.n_correct_samples for o in sampled) / sum(o.n_samples for o in sampled)
    return LevelMetrics(
        level=level, n_problems=n,
        accuracy=sum(o.correct for o in outcomes) / n if n else 0.0,
        format_error_rate=sum(not o.format_ok for o in outcomes) / n if n else 0.0,
        mean_response_tokens=sum(toks) / len(toks) if toks else None,
        mean_response_chars=sum(o.response_chars for o in outcomes) / n if n else 0.0,
        pass_at_k=pk, sample_accuracy=sample_acc,
        truncated=sum(o.truncated for o in outcomes), truncated_share=sum(o.truncated for o in outcomes) / n if n else 0.0,
        partial_credit=sum(o.partial_credit for o in outcomes) / n if n else 0.0,
    )


def _chunks(items: list, size: int) -> Iterable[tuple[int, list]]:
    for start in range(0, len(items), size):
        yield start, items[start:start + size]


def _run(engine: Engine, task: Task, problems: list[Problem], params: SamplingParams, chat: bool,
         batch_size: int, desc: str, progress: bool) -> list[list[Rollout]]:
    groups: list[list[Rollout]] = []
    with tqdm(total=len(problems), desc=desc, unit="problem", disable=not progress, leave=False) as bar:
        for start, chunk in _chunks(problems, batch_size):
            p = params if params.seed is None else SamplingParams(**{**asdict(params), "seed": params.seed + start})
            groups.extend(rollout(engine, task, chunk, p, chat=chat))
            bar.update(len(chunk))
    return groups


def evaluate(engine: Engine, task: Task, problems: Sequence[Problem], *, k: Sequence[int] = (1,),
             n_samples: int | None = None, temperature: float = 1.0, top_p: float = 1.0,
             max_new_tokens: int = 256, chat: bool = False, batch_size: int = 16, seed: int = 0,
             progress: bool = True) -> EvalResult:
    """Evaluate ``engine`` on ``problems``: greedy accuracy per level, pass@k from sampling, lengths, format errors.

    ``k`` lists the pass@k values wanted; sampling runs only when some k > 1 or
    ``n_samples`` is given (``n_samples`` defaults to ``max(k)``, and must be >= max(k)).
    """
    problems = list(problems)
    if not problems:
        raise ValueError("no problems to evaluate")
    ks = sorted({int(x) for x in k})
    if any(x < 1 for x in ks):
        raise ValueError(f"k must be >= 1, got {ks}")
    if n_samples is None:
        n_samples = max(ks) if max(ks) > 1 else 0
    if n_samples and n_samples < max(ks):
        raise ValueError(f"n_samples={n_samples} is smaller than the largest k={max(ks)}")

    greedy = _run(engine, task, problems,
                  SamplingParams(n=1, temperature=0.0, max_new_tokens=max_new_tokens, seed=seed),
                  chat, batch_size, "eval greedy", progress)
    sampled: list[list[Rollout]] | None = None
    if n_samples:
        sampled = _run(engine, task, problems,
                       SamplingParams(n=n_samples, temperature=temperature, top_p=top_p,
                                      max_new_tokens=max_new_tokens, seed=seed),
                       chat, batch_size, f"eval sample x{n_samples}", progress)

    outcomes: list[ProblemOutcome] = []
    reasons: dict[str, int] = defaultdict(int)
    for i, (problem, group) in enumerate(zip(problems, greedy)):
        r = group[0]
        reasons[task.reason_kind(r.verdict.reason)] += 1
        o = ProblemOutcome(
            problem_id=problem.id, difficulty=problem.difficulty, completion=r.completion.text,
            correct=bool(r.verdict.correct), format_ok=bool(r.verdict.format_ok), reason=r.verdict.reason,
            response_tokens=len(r.completion.token_ids) if r.completion.token_ids else None,
            response_chars=len(r.completion.text), truncated=is_truncated(r.completion),
            kind=task.problem_kind(problem),
            partial_credit=float(task.partial_credit(problem, r.verdict, r.completion.text)),
        )
        if sampled is not None:
            o.n_samples = len(sampled[i])
            o.n_correct_samples = sum(bool(s.verdict.correct) for s in sampled[i])
            o.sample_format_errors = sum(not s.verdict.format_ok for s in sampled[i])
        outcomes.append(o)

    by_level: dict[int, list[ProblemOutcome]] = defaultdict(list)
    by_kind: dict[str, list[ProblemOutcome]] = defaultdict(list)
    for o in outcomes:
        by_level[o.difficulty].append(o)
        if o.kind is not None:
            by_kind[o.kind].append(o)
    per_level = [_aggregate(level, by_level[level], ks) for level in sorted(by_level)]
    per_kind = {kind: _aggregate(None, by_kind[kind], ks) for kind in sorted(by_kind)}
    return EvalResult(
        task=task.name, difficulty_name=task.difficulty_name, k=ks, n_samples=n_samples or 0,
        temperature=temperature, per_level=per_level, overall=_aggregate(None, outcomes, ks),
        macro_accuracy=sum(m.accuracy for m in per_level) / len(per_level),
        outcomes=outcomes, reasons=dict(reasons), max_new_tokens=max_new_tokens, per_kind=per_kind,
    )


# --------------------------------------------------------------------------------------------------
# report


def plot_results(result: EvalResult, plots_dir: str) -> list[str]:
    """Accuracy per level (greedy and pass@k as grouped bars) and overall bars; returns the PNG paths."""
    from pathlib import Path

    from tailor_evo.trainers.plots import plot_bars, plot_grouped_bars

    plots = Path(plots_dir)
    groups = {}
    for m in result.per_level:
        g = {"greedy": m.accuracy}
        g.update({f"pass@{k}": v for k, v in m.pass_at_k.items()})
        groups[str(m.level)] = g
    paths = [plot_grouped_bars(groups, plots / "accuracy_per_level.png",
                               title=f"{result.task}: accuracy per {result.difficulty_name}",
                               xlabel=result.difficulty_name, ylabel="accuracy", ylim=(0, 1.05))]
    overall = {"greedy acc": result.overall.accuracy, "format errors": result.overall.format_error_rate}
    overall.update({f"pass@{k}": v for k, v in result.overall.pass_at_k.items()})
    paths.append(plot_bars(overall, plots / "overall.png", title=f"{result.task}: overall", ylabel="rate",
                           ylim=(0, 1.05)))
    return [str(p) for p in paths]


def render_report(result: EvalResult, *, model: str, seed: int, plots: Sequence[str] = ()) -> str:
    """A short Markdown report: settings, the per-level table and the plots."""
    from pathlib import Path

    pk_cols = [f"pass@{k}" for k in result.overall.pass_at_k]
    head = ["level", "n", "greedy acc", *pk_cols, "partial credit", "format err", "truncated", "mean tokens",
            "mean chars"]
    lines = [
        f"# Evaluation: {result.task}",
        "",
        f"- model: `{model}`",
        f"- problems: eval stream of seed {seed}, {result.overall.n_problems} in total",
        f"- sampling for pass@k: {result.n_samples} samples per problem at temperature {result.temperature}"
        if result.n_samples else "- sampling for pass@k: off (greedy only)",
        f"- truncated greedy completions (cut at max_new_tokens={result.max_new_tokens}, no end-of-sequence): "
        f"{result.overall.truncated} of {result.overall.n_problems} ({result.overall.truncated_share:.3f})",
        "- partial credit: the greedy answers' mean share right, as the RL `partial` reward counts it "
        "(1 for a right answer; KK: people with the right role; iGSM: the necessary quantities the trace "
        "states right)",
        "",
        "| " + " | ".join(head) + " |",
        "|" + "---|" * len(head),
    ]

    def row(name: str, m: LevelMetrics) -> str:
        toks = "-" if m.mean_response_tokens is None else f"{m.mean_response_tokens:.1f}"
        cells = [name, str(m.n_problems), f"{m.accuracy:.3f}",
                 *(f"{m.pass_at_k.get(int(c[5:]), math.nan):.3f}" for c in pk_cols), f"{m.partial_credit:.3f}",
                 f"{m.format_error_rate:.3f}", f"{m.truncated} ({m.truncated_share:.3f})", toks,
                 f"{m.mean_response_chars:.0f}"]
        return "| " + " | ".join(cells) + " |"

    for m in result.per_level:
        lines.append(row(f"{result.difficulty_name}={m.level}", m))
    lines.append(row("all", result.overall))
    if result.per_kind:
        lines += ["", "By what the problem asks (all levels together):", "",
                  "| " + " | ".join(["kind", *head[1:]]) + " |", "|" + "---|" * len(head)]
        lines += [row(kind, m) for kind, m in result.per_kind.items()]
    lines += ["", f"Macro accuracy (mean over levels): {result.macro_accuracy:.3f}", "",
              "Verifier reasons (greedy): " + ", ".join(f"{r}: {c}" for r, c in
                                                      sorted(result.reasons.items(), key=lambda x: -x[1])), ""]
    for p in plots:
        lines.append(f"![{Path(p).stem}](plots/{Path(p).name})")
    return "\n".join(lines) + "\n"
