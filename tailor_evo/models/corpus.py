"""The pretraining corpus of the ``tiny-base`` backbones: reading exercises and procedural data.

Why this text: a model trained from random weights on a few hundred warm-start
traces never learns to copy a puzzle's names from its prompt (it scored 0.007
next-name accuracy), so every warm start ends at accuracy 0. Copying forms only
after millions of tokens; cheap, short, solution-free text provides them:

* **task reading exercises** (``Task.reading_text``): the problem followed by
  questions about its text (what did X say, list the inhabitants, a guessed answer
  in the answer format, which sentence defines a quantity). Never the solution.
* **procedural sequences**: copy a random list, number a list, recall a value by
  its key. Short contexts and repeated spans are known to make induction (copy)
  heads form quickly.
* **drills** (:data:`DRILLS`, each with its own share in ``CorpusMix.drills``): the
  component skills a task's explicit traces use and a reading corpus never shows,
  such as the modular facts of iGSM and reading a stated quantity's value. Like the
  reading exercises they never pair a problem with its solution.

The stream is deterministic: document ``j`` of batch ``step`` depends only on
(seed, step, j), so a resumed pretraining sees exactly the text it would have seen.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from tailor_evo.errors import InputError

# Words for procedural sequences: a mix of names and task words, so the copy skill
# is learnt on the tokens it will be used on.
_WORDS = (
    "Amelia Olivia Emma Sophia Mia Charlotte Harper Evelyn Abigail Emily Ella Scarlett Grace Chloe Victoria "
    "Riley Aria Lily Aubrey Zoey Penelope Hannah Layla Nora Violet Noah William James Logan Benjamin Mason "
    "Elijah Oliver Jacob Lucas Michael Alexander Ethan Daniel Matthew Aiden Henry Joseph Samuel Sebastian "
    "David Carter Wyatt Jack Owen Gabriel Avery Rosa Tariq Mei knight knave red blue green sum number "
    "school zoo lab park river lion penguin 0 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20 21 22"
).split()


@dataclass
class CorpusMix:
    """What the corpus is made of: shares of each source (normalised) and difficulty levels per task."""

    # share of each task's reading exercises (task name -> share)
    tasks: dict[str, float] = field(default_factory=lambda: {"kk": 0.55, "igsm": 0.2})
    procedural: float = 0.25     # share of procedural sequences (copy, number and recall lists)
    # difficulty levels of each task's problems in the corpus (a task not named: its default levels)
    levels: dict[str, list[int]] = field(default_factory=lambda: {"kk": [2, 3, 4, 5], "igsm": [2, 3, 4, 5]})
    prompt_form: float = 0.0     # share of task documents whose problem sits inside the task's own prompt
    varied: bool = False         # tasks' varied exercise layouts (Task.reading_text(varied=True))
    transfer: bool = False       # with varied: half the KK answers copy roles stated just before (random roles)
    role_drills: float = 0.0     # share of short role-transfer drills (names bound to random roles, then the answer)
    # shares of the component-skill drills (DRILLS); a share of 0 leaves a drill out
    drills: dict[str, float] = field(default_factory=lambda: {"igsm_mod_facts": 0.05, "igsm_values": 0.05})
    # generator options per task for the problems (and KK drills) the corpus shows, e.g.
    # {"kk": {"names": "pool"}}: hundreds of names instead of the evaluation sets' 55
    task_options: dict[str, dict] = field(default_factory=dict)

    def check(self) -> None:
        from tailor_evo.tasks import get_task
        from tailor_evo.tasks.base import Task

        for name, share in self.tasks.items():
            task = get_task(name)
            if type(task).reading_text is Task.reading_text:
                raise InputError(f"task {name!r} has no reading exercises (Task.reading_text)",
                                 field=f"corpus.tasks.{name}")
            if share < 0:
                raise InputError(f"share must be >= 0, got {share}", field=f"corpus.tasks.{name}")
        for name, options in self.task_options.items():
            if not isinstance(options, dict):
                raise InputError("expected a mapping of generator options", field=f"corpus.task_options.{name}")
            try:
                get_task(name).generate(1, 0, **options)        # the task names a bad option itself
            except InputError as exc:
                raise InputError(exc.detail, field=f"corpus.task_options.{name}") from None
        if self.role_drills < 0:
            raise InputError(f"share must be >= 0, got {self.role_drills}", field="corpus.role_drills")
        for name, share in self.drills.items():
            if name not in DRILLS:
                raise InputError(f"unknown drill {name!r} (known: {', '.join(DRILLS)})", field=f"corpus.drills.{name}")
            if share < 0:
                raise InputError(f"share must be >= 0, got {share}", field=f"corpus.drills.{name}")
        if self.procedural < 0 or self.procedural + sum(self.tasks.values()) + sum(self.drills.values()) <= 0:
            raise InputError("the shares must be >= 0 and not all zero", field="corpus.procedural")
        if not 0.0 <= self.prompt_form <= 1.0:
            raise InputError(f"must be in [0, 1], got {self.prompt_form}", field="corpus.prompt_form")


def _rng(seed: int, step: int, j: int) -> random.Random:
    digest = hashlib.sha256(f"corpus:{seed}:{step}:{j}".encode()).digest()
    return random.Random(int.from_bytes(digest[:8], "little"))


def procedural_text(rng: random.Random) -> str:
    """One short copy, numbering or key-value recall exercise over random words."""
    kind = rng.randrange(3)
    items = rng.sample(_WORDS, k=rng.randint(3, 9))
    if kind == 0:
        return f"Copy the list: {', '.join(items)}. The list again: {', '.join(items)}."
    if kind == 1:
        return f"Number the list: {', '.join(items)}. Numbered: " + " ".join(
            f"({i + 1}) {w}" for i, w in enumerate(items)) + "."
    values = [rng.choice(_WORDS) for _ in items]
    pairs = "; ".join(f"{k} = {v}" for k, v in zip(items, values))
    asked = rng.sample(range(len(items)), k=min(3, len(items)))
    return f"Remember: {pairs}. " + " ".join(f"{items[i]} = {values[i]}." for i in asked)


def kk_names(mix: CorpusMix) -> tuple[str, ...]:
    """The names KK documents draw from: the generator's list named in ``task_options``."""
    from tailor_evo.tasks.kk.text import NAME_LISTS

    return NAME_LISTS[mix.task_options.get("kk", {}).get("names", "common")]


def role_drill_text(rng: random.Random, drills: int = 3, names_pool: tuple[str, ...] | None = None) -> str:
    """Short role-transfer drills: people introduced, a random role stated for each (any order and
    wording), then the answer block that binds each person, in introduction order, to that role.

    Dense practice of the step an answer takes from the reasoning before it; no puzzle and no
    solution is involved (the roles are random).
    """
    from tailor_evo.tasks.kk import text as T
    from tailor_evo.tasks.kk.reading import transfer_text

    out = []
    for _ in range(drills):
        names = rng.sample(names_pool or T.COMMON_NAMES, k=rng.randint(2, 5))
        out.append(f"You meet {len(names)} inhabitants: {T.list_names(names)}. {transfer_text(rng, names)}")
    return "\n".join(out)


def igsm_mod_facts(rng: random.Random, mix: CorpusMix) -> str:
    """All mod-23 +, -, x facts, as iGSM's explicit traces write them (no problem involved)."""
    from tailor_evo.tasks.igsm.drills import mod_facts_text

    return mod_facts_text(rng)


def _igsm_problem_drill(rng: random.Random, mix: CorpusMix, text_of: Callable[..., str | None]) -> str:
    """``text_of(problem, rng)`` on fresh iGSM problems of the mix's levels until one gives a
    document (a drill returns None for a problem it has nothing to show of)."""
    from tailor_evo.tasks import get_task

    task = get_task("igsm")
    levels = mix.levels.get("igsm") or list(task.default_levels)
    while True:
        problem = task.generate(1, rng.randrange(2**31), levels=[rng.choice(levels)])[0]
        text = text_of(problem, rng)
        if text is not None:
            return text


def igsm_values(rng: random.Random, mix: CorpusMix) -> str:
    """An iGSM problem, then quantities it states as numbers beside their values (never the
    queried one)."""
    from tailor_evo.tasks.igsm.drills import value_reading_text

    return _igsm_problem_drill(rng, mix, value_reading_text)


def igsm_quotes(rng: random.Random, mix: CorpusMix) -> str:
    """An iGSM problem, then some of its sentences copied by name as a quoted trace copies
    them (never the queried quantity's)."""
    from tailor_evo.tasks.igsm.drills import quote_text

    return _igsm_problem_drill(rng, mix, quote_text)


def kk_checks(rng: random.Random, mix: CorpusMix) -> str:
    """Random cases and random claims checked as a KK explicit trace checks them (no puzzle involved)."""
    from tailor_evo.tasks.kk.drills import checks_text

    return checks_text(rng, kk_names(mix))


def kk_cases(rng: random.Random, mix: CorpusMix) -> str:
    """Successive cases over the same people, each person with one claim checked in some of
    them: the look-up must find the latest case (no puzzle involved)."""
    from tailor_evo.tasks.kk.drills import cases_text

    return cases_text(rng, kk_names(mix))


def kk_truth(rng: random.Random, mix: CorpusMix) -> str:
    """Rows of the three-valued truth tables, in a KK trace's wording."""
    from tailor_evo.tasks.kk.drills import truth_text

    return truth_text(rng)


# name -> document text from (rng, mix): the drills a CorpusMix may name, each a source of its own
DRILLS = {"igsm_mod_facts": igsm_mod_facts, "igsm_values": igsm_values, "igsm_quotes": igsm_quotes,
          "kk_checks": kk_checks, "kk_cases": kk_cases, "kk_truth": kk_truth}


@dataclass
class Document:
    source: str                    # a task name or "procedural"
    text: str
    problem: Any = None            # the task problem the text is about (None for procedural text)


class Corpus:
    """An endless, seeded stream of pretraining documents drawn according to a :class:`CorpusMix`."""

    def __init__(self, mix: CorpusMix, seed: int) -> None:
        from tailor_evo.tasks import get_task

        mix.check()
        self.mix, self.seed = mix, seed
        self.tasks = {name: get_task(name) for name, share in mix.tasks.items() if share > 0}
        drills = [name for name, share in mix.drills.items() if share > 0]
        self.sources = list(self.tasks) + (["procedural"] if mix.procedural > 0 else []) \
            + (["roles"] if mix.role_drills > 0 else []) + drills
        self.weights = [mix.tasks[n] for n in self.tasks] + ([mix.procedural] if mix.procedural > 0 else []) \
            + ([mix.role_drills] if mix.role_drills > 0 else []) + [mix.drills[n] for n in drills]

    def document(self, step: int, j: int) -> Document:
        """Document ``j`` of batch ``step``."""
        rng = _rng(self.seed, step, j)
        source = rng.choices(self.sources, weights=self.weights)[0]
        if source == "procedural":
            return Document(source, procedural_text(rng))
        if source == "roles":
            return Document(source, role_drill_text(rng, names_pool=kk_names(self.mix)))
        if source in DRILLS:
            return Document(source, DRILLS[source](rng, self.mix))
        task = self.tasks[source]
        levels = self.mix.levels.get(source) or list(task.default_levels)
        problem = task.generate(1, rng.randrange(2**31), levels=[rng.choice(levels)],
                                **self.mix.task_options.get(source, {}))[0]
        if self.mix.varied:
            text = task.reading_text(problem, rng, varied=True, **({"transfer": True} if self.mix.transfer else {}))
        else:
            text = task.reading_text(problem, rng)
        if self.mix.prompt_form > 0 and rng.random() < self.mix.prompt_form:
            # the same exercises, read where SFT, RL and evaluation show the problem: inside the
            # task's prompt, the exercises taking the place of the reply
            prompt = task.prompt(problem)
            if isinstance(prompt, str) and text.startswith(problem.question):
                text = prompt + " " + text[len(problem.question):].lstrip("\n")
        return Document(source, text, problem)
