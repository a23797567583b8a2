"""Renderers turn a primitive into trajectories on problems and verify them.

- :class:`ExecutorRenderer` runs the program with the task's executor. It is a small
  picklable object so that a process pool (or any other ``map``) can evaluate many
  candidates in parallel; all randomness comes from seeds in the job, so the result
  does not depend on which worker ran it.
- :class:`LLMRenderer` asks a teacher model to solve each problem following the
  description. Only verified completions count; wrong ones are kept as statistics.

Both return an :class:`EvalResult`, whose ``probe_states`` (the states visited by the
verified trajectories on the shared probe problems) feed novelty and coverage.
"""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import dataclass, field

from tailor_evo.generation.base import Engine, SamplingParams
from tailor_evo.search.coverage import split_steps
from tailor_evo.search.quality import QualityConfig, score_quality
from tailor_evo.tasks.base import Problem, Step, Task, Trajectory


@dataclass
class EvalJob:
    """Everything a worker needs to evaluate one candidate."""

    id: str
    program: dict
    description: str
    problems: list[Problem]
    probe: list[bool]               # problems[i] belongs to the shared probe set
    seed: int


@dataclass
class EvalResult:
    id: str
    n_problems: int = 0
    n_correct: int = 0
    n_unfinished: int = 0
    mean_steps: float = 0.0         # over verified trajectories
    quality: float = 0.0
    kind_counts: dict[str, float] = field(default_factory=dict)   # mean per verified trajectory
    probe_states: list[list[str]] = field(default_factory=list)   # one list per verified probe trajectory
    samples: list[dict] = field(default_factory=list)
    failures: dict[str, int] = field(default_factory=dict)        # verdict/executor reason -> count


def _summarise(job: EvalJob, outcomes: list[tuple[Trajectory, bool, str]], n_samples: int, max_steps: int,
               quality: QualityConfig) -> EvalResult:
    res = EvalResult(id=job.id, n_problems=len(outcomes))
    kinds: Counter = Counter()
    failures: Counter = Counter()
    lengths: list[int] = []
    for (traj, correct, reason), is_probe, problem in zip(outcomes, job.probe, job.problems):
        if not traj.finished:
            res.n_unfinished += 1
        if not correct:
            failures[reason] += 1
            continue
        res.n_correct += 1
        lengths.append(len(traj.steps))
        kinds.update(s.kind for s in traj.steps)
        if is_probe:
            res.probe_states.append([s.state for s in traj.steps])
        if len(res.samples) < n_samples:
            res.samples.append({"problem_id": problem.id, **traj.to_dict()})
    res.mean_steps = sum(lengths) / len(lengths) if lengths else 0.0
    res.kind_counts = {k: v / max(1, res.n_correct) for k, v in sorted(kinds.items())}
    res.failures = dict(failures)
    res.quality = score_quality(res.n_problems, res.n_correct, res.n_unfinished, res.mean_steps, max_steps, quality)
    return res


@dataclass
class ExecutorRenderer:
    """Evaluate a job with ``task.execute`` + ``task.verify`` (picklable, worker-safe)."""

    task: Task
    max_steps: int = 400
    n_samples: int = 2
    quality: QualityConfig = field(default_factory=QualityConfig)

    def __call__(self, job: EvalJob) -> EvalResult:
        outcomes = []
        for problem in job.problems:
            rng = random.Random(f"{job.seed}:{job.id}:{problem.id}")
            try:
                traj = self.task.execute(job.program, problem, rng, self.max_steps)
            except Exception as exc:  # the executor must not raise; if it does, count it, don't crash the search
                traj = Trajectory(steps=[], answer=None, finished=False, completion="",
                                  reason=f"executor error: {type(exc).__name__}")
            if not traj.finished:
                outcomes.append((traj, False, f"unfinished: {traj.reason}"))
                continue
            verdict = self.task.verify(problem, traj.completion)
            outcomes.append((traj, verdict.correct, verdict.reason))
        return _summarise(job, outcomes, self.n_samples, self.max_steps, self.quality)


def split_reasoning(completion: str) -> list[Step]:
    """Steps of a free-text completion (:func:`search.coverage.split_steps`), as trajectory steps."""
    return [Step(text=s, state=s, key="", kind="text") for s in split_steps(completion)]


class LLMRenderer:
    """A teacher engine solves each problem following the primitive's description.

    All prompts of a generation go to the engine in one batch. Completions the verifier
    rejects are counted (``self.wrong``) but never become trajectories of the primitive.
    """

    def __init__(self, engine: Engine, task: Task, template: str, *, max_new_tokens: int = 512,
                 temperature: float = 0.7, n_samples: int = 2, max_steps: int = 400,
                 quality: QualityConfig | None = None, chat: bool = False, chat_template: str = "") -> None:
        self.engine, self.task, self.template = engine, task, template
        self.chat, self.chat_template = chat, chat_template
        self.params = SamplingParams(n=1, temperature=temperature, max_new_tokens=max_new_tokens)
        self.n_samples, self.max_steps = n_samples, max_steps
        self.quality = quality or QualityConfig()
        self.wrong = 0
        self.total = 0

    def prompt(self, description: str, problem: Problem) -> str | list[dict]:
        """A plain completion prompt, or chat messages (system: rules + strategy, user: problem) when ``chat``."""
        if self.chat:
            system = self.chat_template.format(instruction=self.task.instruction(), strategy=description)
            return [{"role": "system", "content": system}, {"role": "user", "content": problem.question}]
        return self.template.format(instruction=self.task.instruction(), strategy=description,
                                    question=problem.question)

    def render_batch(self, jobs: list[EvalJob], seed: int = 0) -> list[EvalResult]:
        prompts = [self.prompt(job.description, p) for job in jobs for p in job.problems]
        if not prompts:
            return []
        params = SamplingParams(**{**self.params.__dict__, "seed": seed})
        groups = self.engine.generate(prompts, params)
        results, pos = [], 0
        for job in jobs:
            outcomes = []
            for problem in job.problems:
                text = groups[pos][0].text if groups[pos] else ""
                pos += 1
                verdict = self.task.verify(problem, text)
                steps = split_reasoning(text)
                traj = Trajectory(steps=steps, answer=verdict.parsed, finished=verdict.format_ok, completion=text,
                                  reason="ok" if verdict.format_ok else verdict.reason)
                self.total += 1
                self.wrong += 0 if verdict.correct else 1
                outcomes.append((traj, verdict.correct, verdict.reason))
            results.append(_summarise(job, outcomes, self.n_samples, self.max_steps, self.quality))
        return results
