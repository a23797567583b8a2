"""reasoning-gym's procedural datasets as tasks: ``--task rg:NAME`` (``rg:knights_knaves``, ...).

reasoning-gym (the ``reasoning-gym`` extra) ships about a hundred generators, each with its
own verifier, and many RL users start from it. This adapter makes any of them a task:

- **problems** come from the dataset's generator. A difficulty level is a level of the
  dataset's curriculum (0 the easiest, each attribute at that level, capped at its last);
  a dataset without a curriculum has one configuration, whatever the level. ``--opt KEY=VALUE``
  sets a field of the dataset's config (``--opt n_people=3``), over the level's.
- **verification** is the dataset's ``score_answer`` on the text inside ``<answer>``, given
  the problem's own entry (regenerated from its seed and index, so metadata keeps its types);
  a score of 1 is correct, and the ``partial`` reward uses the score itself.
- **prompts** are the package's ``<think>``/``<answer>`` system prompt (``DeepSeekZero``).

There is no move grammar or executor: these tasks serve evaluation, RL (rewards and
``--data``) and ``data generate``, which need none. reasoning-gym ships no reasoning
traces, so the reference completion holds the answer with empty reasoning.
"""

from __future__ import annotations

import functools
import json
import re
from typing import Any

from tailor_evo.errors import InputError
from tailor_evo.extras import require
from tailor_evo.tasks.base import ANSWER_CLOSE, ANSWER_OPEN, THINK_CLOSE, THINK_OPEN, Problem, Task, Verdict, split_seed

PREFIX = "rg"                      # task names are "rg:<dataset>"
SYSTEM_PROMPT = "DeepSeekZero"     # the package's prompt for the <think>/<answer> format
SHAPED_FORMAT = 0.1                # the shaped reward: this much for the format, the rest by score
GENERATION_TRIES = 4               # draws allowed per wanted problem (some generators give up on a draw)


def _json_safe(value: Any) -> Any:
    """A dataset entry as plain JSON (numpy scalars to Python, tuples to lists, the rest to text),
    so that records of these problems can be written and read back."""
    def default(obj: Any) -> Any:
        if hasattr(obj, "item"):
            return obj.item()
        if isinstance(obj, (set, frozenset)):
            return sorted(obj, key=str)
        return str(obj)

    return json.loads(json.dumps(value, default=default))


def _rg() -> Any:
    require("reasoning-gym", what="the rg:NAME tasks", field="task")
    import reasoning_gym

    return reasoning_gym


def dataset_names() -> list[str]:
    """The datasets of the installed reasoning-gym."""
    return sorted(_rg().factory.DATASETS)


class ReasoningGymTask(Task):
    """One reasoning-gym dataset as a task (see the module's docstring)."""

    difficulty_name = "level"
    default_levels = (0,)

    def __init__(self, dataset: str) -> None:
        rg = _rg()
        if dataset not in rg.factory.DATASETS:
            close = [n for n in sorted(rg.factory.DATASETS) if dataset and dataset[:4] in n][:8]
            hint = f" (close: {', '.join(close)})" if close else ""
            raise InputError(f"reasoning-gym has no dataset {dataset!r}{hint}; {len(rg.factory.DATASETS)} "
                             "datasets in all (python -c 'import reasoning_gym; "
                             "print(sorted(reasoning_gym.factory.DATASETS))')", field="task")
        self.dataset = dataset
        self.name = f"{PREFIX}:{dataset}"
        self._dataset_cls, self._config_cls = rg.factory.DATASETS[dataset]
        self._curriculum = rg.factory.create_curriculum(dataset) if rg.factory.has_curriculum(dataset) else None

    # --- problems -----------------------------------------------------------------
    def _config(self, level: int, seed: int, size: int, options: dict[str, Any]) -> Any:
        """The dataset config of a level: the curriculum's values at that level (upper-bound mode:
        the level's own values, not a range from the easiest), then ``options`` on top."""
        fields = set(getattr(self._config_cls, "__dataclass_fields__", {}))
        for key in options:
            if key not in fields:
                raise InputError(f"{self.name} has no option {key!r} (its config fields: "
                                 f"{', '.join(sorted(fields - {'seed', 'size'}))})", field=key)
        base = {**{k: v for k, v in (("seed", seed), ("size", size)) if k in fields}, **options}
        if self._curriculum is None:
            return self._config_cls(**base)
        from reasoning_gym.coaching.base_curriculum import DefaultCurriculumContext, RangeAttributeMode

        self._curriculum.set_global_level(level)
        config = self._curriculum.generate_configuration(
            {k: v for k, v in base.items() if k not in options},
            context=DefaultCurriculumContext(mode=RangeAttributeMode.UPPER_BOUND))
        for key, value in options.items():
            setattr(config, key, value)
        return config

    @functools.lru_cache(maxsize=32)
    def _dataset(self, level: int, seed: int, size: int, options_json: str) -> Any:
        options = json.loads(options_json)
        config = self._config(level, seed, size, options)
        try:
            if hasattr(config, "validate"):
                config.validate()
            return self._dataset_cls(config=config)
        except (AssertionError, ValueError, TypeError) as exc:
            raise InputError(f"reasoning-gym refused the configuration of {self.name} at level {level}"
                             f"{' with ' + options_json if options else ''}: {exc}", field="levels") from None

    def generate(self, n: int, seed: int, levels: list[int] | None = None, **options: Any) -> list[Problem]:
        """``n`` problems spread evenly over ``levels``, each level drawn from its own seed."""
        levels = list(levels or self.default_levels)
        if any(isinstance(lv, bool) or not isinstance(lv, int) or lv < 0 for lv in levels):
            raise InputError(f"levels of {self.name} are curriculum levels 0, 1, ..., got {levels}", field="levels")
        counts = {lv: n // len(levels) + (1 if i < n % len(levels) else 0) for i, lv in enumerate(levels)}
        options_json = json.dumps(options, sort_keys=True)
        problems = []
        for level in levels:
            level_seed = split_seed(seed, f"{self.name}:L{level}")
            wanted = counts[level]
            if wanted == 0:
                continue
            # a few generators give up on some draws (countdown: "failed to generate a valid
            # expression"): those indices are skipped, within a bounded number of tries
            size = GENERATION_TRIES * wanted
            data = self._dataset(level, level_seed, size, options_json)
            entries, failures = [], []
            for index in range(size):
                if len(entries) == wanted:
                    break
                try:
                    entries.append((index, data[index]))
                except Exception as exc:  # noqa: BLE001 - the package's own failure, reported below
                    failures.append(f"{type(exc).__name__}: {exc}")
            if len(entries) < wanted:
                raise InputError(f"reasoning-gym generated {len(entries)} of {wanted} problems of {self.name} at "
                                 f"level {level} ({failures[-1][:160]})", field="levels")
            for index, entry in entries:
                answer = str(entry["answer"])
                problems.append(Problem(
                    id=f"{self.name}-L{level}-{level_seed}-{index}", task=self.name, difficulty=level,
                    question=str(entry["question"]), answer=answer, answer_text=answer,
                    meta={"dataset": self.dataset, "level": level, "seed": level_seed, "size": size,
                          "index": index, "options": options, "entry": _json_safe(entry)}))
        return problems

    def solve(self, problem: Problem) -> Any:
        """reasoning-gym has no solver apart from its generator: the gold answer."""
        return problem.answer

    # --- prompts and answers ------------------------------------------------------
    def instruction(self) -> str:
        from reasoning_gym.utils import SYSTEM_PROMPTS

        return SYSTEM_PROMPTS[SYSTEM_PROMPT].strip()

    def _scorer(self, problem: Problem) -> tuple[Any, dict]:
        """(dataset, entry) that ``score_answer`` needs: the problem's own dataset and entry,
        regenerated from its level, seed and index where that reproduces its question (so the
        metadata keeps its types), else a default dataset and the entry the record carries."""
        meta = problem.meta or {}
        try:
            data = self._dataset(int(meta["level"]), int(meta["seed"]), int(meta["size"]),
                                 json.dumps(meta.get("options") or {}, sort_keys=True))
            entry = data[int(meta["index"])]
            if str(entry["question"]) == problem.question and str(entry["answer"]) == str(problem.answer):
                return data, entry
        except Exception:  # noqa: BLE001 - a record from elsewhere: score it from what it carries
            pass
        stored = meta.get("entry")
        if not (isinstance(stored, dict) and str(stored.get("answer")) == str(problem.answer)):
            stored = {"question": problem.question, "answer": problem.answer, "metadata": {}}
        return self._default_dataset(), stored

    @functools.lru_cache(maxsize=1)
    def _default_dataset(self) -> Any:
        return self._dataset_cls(config=self._config_cls())

    def score(self, problem: Problem, answer: str | None) -> float:
        """The dataset's own score of ``answer`` in [0, 1]."""
        data, entry = self._scorer(problem)
        return float(data.score_answer(answer, entry))

    def verify(self, problem: Problem, completion: str, shaped: bool = False) -> Verdict:
        """``<think> ... </think> <answer> ... </answer>``, each tag once, scored by the dataset."""
        try:
            answer, reason = split_answer(completion)
            if answer is None:
                return Verdict(0.0, False, False, reason)
            score = max(0.0, min(1.0, self.score(problem, answer)))
            correct = score >= 1.0
            reward = SHAPED_FORMAT + (1 - SHAPED_FORMAT) * score if shaped else (1.0 if correct else 0.0)
            why = "ok" if correct else ("wrong answer" if score == 0 else f"partly right: score {score:.2f}")
            return Verdict(reward, correct, True, why, answer)
        except Exception as exc:  # noqa: BLE001 - a verifier must return a verdict for any input
            return Verdict(0.0, False, False, f"verifier error: {type(exc).__name__}")

    def partial_credit(self, problem: Problem, verdict: Verdict, completion: str = "") -> float:
        """The dataset's score of the parsed answer (several datasets give partial scores)."""
        if not verdict.format_ok or verdict.parsed is None:
            return 0.0
        try:
            return max(0.0, min(1.0, self.score(problem, verdict.parsed)))
        except Exception:  # noqa: BLE001
            return 0.0

    def reference_solution(self, problem: Problem) -> str:
        return ""

    def reference_completion(self, problem: Problem) -> str:
        return f"{THINK_OPEN} {THINK_CLOSE} {ANSWER_OPEN} {problem.answer_text} {ANSWER_CLOSE}"


_TAGS = re.compile("|".join(re.escape(t) for t in (THINK_OPEN, THINK_CLOSE, ANSWER_OPEN, ANSWER_CLOSE)))


def split_answer(text: str) -> tuple[str | None, str]:
    """(the text inside <answer>, stripped, "ok"), or (None, why the format is wrong)."""
    if not isinstance(text, str):
        return None, "completion is not text"
    tags = _TAGS.findall(text)
    expected = [THINK_OPEN, THINK_CLOSE, ANSWER_OPEN, ANSWER_CLOSE]
    if tags != expected:
        for tag in expected:
            if tags.count(tag) != 1:
                return None, f"expected exactly one {tag}, found {tags.count(tag)}"
        return None, "tags out of order"
    if text[:text.index(THINK_OPEN)].strip():
        return None, "text before <think>"
    inner = text[text.index(ANSWER_OPEN) + len(ANSWER_OPEN):text.index(ANSWER_CLOSE)].strip()
    if not inner:
        return None, "empty answer"
    return inner, "ok"
