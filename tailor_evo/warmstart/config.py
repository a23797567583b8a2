"""``WarmstartConfig``: every knob of building warm-start data, in one record.

``tailor-evo data warmstart`` reads it from its options, ``--config`` and ``--set``; the
pipeline's ``warmstart:`` section is the same record plus ``fit_rl_budget``, the one
setting only the pipeline can honour (it knows the RL token budget and the backbone).
"""

from __future__ import annotations

from dataclasses import dataclass

from tailor_evo.errors import InputError

CODEBOOKS = ("simhash", "kmeans")
SELECT_ON = ("states", "abstract")


@dataclass
class WarmstartConfig:
    size: int = 512                   # records per method (the same budget for every method)
    n_problems: int | None = None     # training problems; None = size + size // 4 (identical for every method)
    oversample: float = 4.0           # each primitive is rendered on at most ceil(oversample * size / #primitives)
    max_primitives: int | None = 32   # elite primitives of the archive (tailor methods); None = all
    teacher: str | None = None        # engine spec of the redistill teacher (e.g. hf:smollm2-135m)
    teacher_samples: int = 2          # teacher answers per problem (per round)
    teacher_rounds: int = 1           # more rounds of teacher_samples while fewer than ``size`` answers verify,
                                      # so that a weak teacher can still fill the same budget as the others
    teacher_temperature: float = 0.7  # sampling temperature of the teacher's answers
    teacher_max_new_tokens: int = 384 # length limit of a teacher answer
    embedder: str = "hash"            # embedder of the coverage measure: hash | minilm
    codebook: str = "simhash"         # cells of the selection: the search's SimHash codebook, or kmeans
    # what the selection covers: the completions' text steps with the problem's names replaced by roles
    # ("abstract": counts reasoning moves, not people; the coverage the card and the experiment report),
    # or the executor's step states as they are ("states"). Measured on the main job, seed 0: abstract
    # coverage 901 vs 817, held-out accuracy after RL 0.13 vs 0.11 (docs/results/main-job)
    select_on: str = "abstract"
    check_eval: bool = True           # leave out (and count) training problems that are also evaluation problems
    # how the task's executor writes the traces (KK: explicit | quoted | classic; iGSM: explicit | quoted |
    # compact); None = the task's default (explicit: every decision after its written check). Every
    # method of a run uses the same one.
    rendering: str | None = None

    def check(self) -> None:
        checks = [("size", self.size > 0), ("n_problems", self.n_problems is None or self.n_problems > 0),
                  ("oversample", self.oversample > 0),
                  ("max_primitives", self.max_primitives is None or self.max_primitives > 0),
                  ("teacher_samples", self.teacher_samples > 0), ("teacher_rounds", self.teacher_rounds > 0),
                  ("teacher_temperature", self.teacher_temperature >= 0),
                  ("teacher_max_new_tokens", self.teacher_max_new_tokens > 0)]
        for name, ok in checks:
            if not ok:
                raise InputError(f"invalid value {getattr(self, name)!r}", field=name)
        if self.codebook not in CODEBOOKS:
            raise InputError(f"unknown codebook {self.codebook!r} (known: {', '.join(CODEBOOKS)})", field="codebook")
        if self.select_on not in SELECT_ON:
            raise InputError(f"unknown value {self.select_on!r} (known: {', '.join(SELECT_ON)})", field="select_on")


@dataclass
class PipelineWarmstart(WarmstartConfig):
    # The main job's budget on a 2 M base (docs/results/main-job, "A warm start a 2 M model can learn"):
    # one strategy learns from about 4,000 fresh traces (held-out 0.95; 2,560: 0.27), while mixtures
    # of 4 or 30 elites at 2,560 stay at chance (0.12, 0.19). So the run renders its best elite
    # (quality first, then fewest steps: an enumeration on every measured seed) on 4,000 problems.
    size: int = 4000                  # records = SFT examples of one epoch, each on a fresh problem
    max_primitives: int | None = 1    # elites of the archive the warm start renders
    fit_rl_budget: bool = True        # keep only trajectories that fit rl.max_new_tokens (backbone tokens)
