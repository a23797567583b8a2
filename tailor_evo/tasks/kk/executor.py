"""Running a move program on a puzzle: a verbalised, checkable reasoning trajectory.

The executor reasons with the exact mask-based logic of :mod:`logic`, so every
derived role is sound and a program that finishes always states the unique
solution. Each step records the reasoning state it visits:

- ``state``: readable, e.g. ``"Rosa=knight, Tariq=knave?, Mei=? | conflict: Tariq's claim"``
  (a trailing ``?`` marks a hypothetical role),
- ``key``: canonical, e.g. ``"A:Tf?|cf:1"`` (upper case = established, lower case =
  hypothetical, ``?`` = open; then the move tag and the person it concerns),
- ``fact``: a JSON claim that :func:`facts.check_fact` can decide (None for steps
  that claim nothing: assumptions and plans).

Programs that cannot finish (step budget, or a strategy that leaves people
undecided) return ``finished=False`` with a reason; the executor never raises.

Two renderings (:mod:`styles`). In the ``explicit`` one (the default) every decision is
made by the three-valued evaluation that the trace writes just before it
(:mod:`kleene`): a claim is contradicted where its written value disagrees with its
speaker's role, consistent where it agrees, and open where it is unknown, so the trace
and the decision cannot disagree. The ``classic`` rendering decides by the exact check
over all completions (``first_unsat``, ``chain``) and writes only the decision.
"""

from __future__ import annotations

import itertools
import random
from dataclasses import dataclass, field
from typing import Callable, Iterable

import tailor_evo.tasks.kk.text as T
from tailor_evo.tasks.base import THINK_CLOSE, THINK_OPEN, Problem, Step, Task, Trajectory
from tailor_evo.tasks.kk.facts import enc
from tailor_evo.tasks.kk.kleene import CONTRADICTION, ClaimCheck, case_text, check_claim, value3, verdict, word
from tailor_evo.tasks.kk.logic import LEAF_OPS, Puzzle, index_of, mentions, size, to_json
from tailor_evo.tasks.kk.moves import GRAMMAR
from tailor_evo.tasks.kk.styles import Wording


class _OutOfSteps(Exception):
    pass


class _Unfinished(Exception):
    pass


@dataclass
class _Ctx:
    puzzle: Puzzle
    names: list[str]
    words: Wording
    max_steps: int
    known: dict[int, bool] = field(default_factory=dict)
    steps: list[Step] = field(default_factory=list)

    def __post_init__(self) -> None:
        st = self.puzzle.statements
        self.n = self.puzzle.n
        self.clauses = [T.clause(s, self.names) for s in st]
        self.formulas = [T.formula(s, self.names) if s[0] in LEAF_OPS else f"({T.formula(s, self.names)})" for s in st]
        self.mentions = [mentions(s) for s in st]
        self.referenced = [sum(1 for i in range(self.n) if i != j and j in self.mentions[i]) for j in range(self.n)]
        self.sizes = [size(s) for s in st]

    # ---- emitting -------------------------------------------------------------------
    def emit(self, kind: str, text: str, view: dict[int, bool], tag: str, focus: str, fact: dict | None) -> None:
        if len(self.steps) >= self.max_steps:
            raise _OutOfSteps
        chars, parts = [], []
        for i in range(self.n):
            if i in view:
                hyp = i not in self.known
                c = "T" if view[i] else "F"
                chars.append(c.lower() if hyp else c)
                parts.append(f"{self.names[i]}={T.role_word(view[i])}{'?' if hyp else ''}")
            else:
                chars.append("?")
                parts.append(f"{self.names[i]}=?")
        self.steps.append(Step(text=text, state=", ".join(parts) + " | " + focus,
                               key="A:" + "".join(chars) + "|" + tag, kind=kind, fact=fact))

    def fields(self, p: int, knight: bool, q: int | None = None, q_knight: bool | None = None) -> dict:
        """Template fields: P/R about person p; Q/C/F/L/CV about claimant q (default p)."""
        q = p if q is None else q
        qk = knight if q_knight is None else q_knight
        return dict(P=self.names[p], R=T.role_word(knight), notR=T.role_word(not knight),
                    RB=_tf(knight), notRB=_tf(not knight),
                    Q="their own" if q == p else self.names[q], Qs="their own" if q == p else self.names[q] + "'s",
                    C=self.clauses[q], L=self.formulas[q], F="" if qk else "false ", CV=_tf(qk))

    def say(self, key: str, **f: object) -> str:
        return self.words.say(key, **f)

    @property
    def explicit(self) -> bool:
        return self.words.explicit

    # ---- the explicit rendering: written three-valued checks -------------------------------
    def checks(self, view: dict[int, bool], people: Iterable[int]) -> list[ClaimCheck]:
        """Written checks of the claims of ``people`` (all assigned), up to the first contradiction."""
        out = []
        for k in people:
            out.append(self.written_check(k, view))
            if out[-1].outcome == CONTRADICTION:
                break
        return out

    def written_check(self, speaker: int, view: dict[int, bool]) -> ClaimCheck:
        """The written check of ``speaker``'s claim under ``view``, quoting the claim as the
        question words it first in the ``quoted`` rendering."""
        quote = self.clauses[speaker] if self.words.quoted else None
        return check_claim(self.puzzle.statements[speaker], speaker, view, self.names, quote, shaped=True)

    def affected(self, view: dict[int, bool], person: int) -> list[int]:
        """Assigned speakers whose claim's value can change when ``person`` gets a role: their own
        claim and every assigned claim that mentions them, in introduction order."""
        return [k for k in sorted(view) if k == person or person in self.mentions[k]]

    def evidence(self, view: dict[int, bool], checks: list[ClaimCheck]) -> str:
        return " ".join([case_text(view, self.names)] + [c.text for c in checks])

    @staticmethod
    def check_facts(view: dict[int, bool], checks: list[ClaimCheck]) -> dict:
        return {"type": "all", "facts": [{"type": "value3", "given": enc(view), "person": c.speaker,
                                          "value": word(c.value)} for c in checks]}

    def try_role(self, p: int, b: bool, view: dict[int, bool], conflict_key: str = "hyp_conflict") -> int | None:
        """Emit the assumption ``p = b`` (already in ``view``) with the written checks of the claims
        it affects, then a conflict step if one fails; return the contradicted speaker, if any."""
        checks = self.checks(view, self.affected(view, p))
        self.emit("assume", self.say("assume", **self.fields(p, b)) + " " + self.evidence(view, checks), view,
                  f"as:{p}", f"assuming {self.names[p]} is a {T.role_word(b)}", self.check_facts(view, checks))
        if not checks or checks[-1].outcome != CONTRADICTION:
            return None
        q = checks[-1].speaker
        self.emit("conflict", self.say(conflict_key, **self.fields(p, b, q, view[q])), view, f"cf:{q}",
                  f"conflict with {self.names[q]}'s claim", {"type": "refutes", "given": enc(view), "person": q})
        return q

    def forced(self, view: dict[int, bool]) -> tuple[int, bool, int] | None:
        """The first unassigned person whose other role makes an assigned claim's written value
        contradict its speaker: (person, the role left, that speaker)."""
        for j in range(self.n):
            if j in view:
                continue
            for k in sorted(view):
                if j not in self.mentions[k]:
                    continue
                for b in (True, False):
                    if verdict(view[k], value3(self.puzzle.statements[k], {**view, j: b})) == CONTRADICTION:
                        return j, not b, k
        return None

    def chain_written(self, view: dict[int, bool], hypothetical: bool, on_derive: Callable[[int, bool], None]) -> bool:
        """Propagation in the explicit rendering: a role is derived when the trace has written that
        the other role contradicts a claim; each derived role's affected claims are then checked."""
        while True:
            found = self.forced(view)
            if found is None:
                return True
            j, b, k = found
            trial = {**view, j: not b}
            check = self.written_check(k, trial)
            text = " ".join([self.say("suppose", **self.fields(j, not b)), self.evidence(trial, [check]),
                             self.say("propagate" if hypothetical else "derive", **self.fields(j, b))])
            fact: dict = {"type": "refutes", "given": enc(trial), "person": k}
            if not hypothetical:
                fact = {"type": "all", "facts": [fact, {"type": "role", "person": j, "knight": b}]}
            view[j] = b
            on_derive(j, b)
            self.emit("propagate", text, view, f"pr:{j}", f"derived {self.names[j]}", fact)
            checks = self.checks(view, self.affected(view, j))
            self.emit("check", self.evidence(view, checks), view, f"ck:{j}", f"checking {self.names[j]}",
                      self.check_facts(view, checks))
            if checks and checks[-1].outcome == CONTRADICTION:
                q = checks[-1].speaker
                self.emit("conflict", self.say("hyp_conflict", **self.fields(q, view[q])), view, f"cf:{q}",
                          "conflict", {"type": "refutes", "given": enc(view), "person": q})
                return False

    # ---- logic helpers --------------------------------------------------------------
    def first_unsat(self, view: dict[int, bool]) -> int | None:
        """First assigned person (index order) whose claim no completion of ``view`` satisfies."""
        pm = self.puzzle.partial_mask(view)
        for k in sorted(view):
            if not self.puzzle.claim_mask(k, view[k]) & pm:
                return k
        return None

    def ranking(self, order: str) -> list[int]:
        idx = list(range(self.n))
        if order == "order_most_referenced":
            return sorted(idx, key=lambda j: (-self.referenced[j], j))
        if order == "order_self_first":
            return sorted(idx, key=lambda j: (j not in self.mentions[j], j))
        if order == "order_shortest":
            return sorted(idx, key=lambda j: (self.sizes[j], j))
        if order == "order_mentioned":
            out: list[int] = []
            for i in idx:
                for j in [i] + self.mentions[i]:
                    if j not in out:
                        out.append(j)
            return out
        return idx

    def why(self, order: str, p: int) -> tuple[str, dict]:
        if order == "order_most_referenced":
            k = self.referenced[p]
            return self.say("why_referenced", k=k), {"type": "referenced", "person": p, "count": k}
        if order == "order_self_first":
            if p in self.mentions[p]:
                return self.say("why_self"), {"type": "mentions", "person": p, "about": [p]}
            k = self.referenced[p]
            return self.say("why_referenced", k=k), {"type": "referenced", "person": p, "count": k}
        k = self.sizes[p]
        return self.say("why_short", k=k), {"type": "size", "person": p, "leaves": k}

    # ---- chaining consequences ------------------------------------------------------------
    def chain(self, view: dict[int, bool], hypothetical: bool, on_derive: Callable[[int, bool], None]) -> bool:
        """Unit propagation over the claims of assigned people, to a fixpoint.

        Emits one step per derived role; returns False (after a conflict step) if the
        assigned claims cannot hold together.
        """
        if self.explicit:
            return self.chain_written(view, hypothetical, on_derive)
        pz = self.puzzle
        while True:
            pm = pz.partial_mask(view)
            m = pm
            for k in view:
                m &= pz.consistent[k]
            if not m:
                q = self.first_unsat(view)
                if q is None:
                    fact = {"type": "infeasible", "given": enc(view)}
                    text = self.say("hyp_conflict_joint")
                    tag = "cf:*"
                else:
                    fact = {"type": "unsat", "given": enc(view), "person": q}
                    text = self.say("hyp_conflict", **{**self.fields(q, view[q]), "Q": self.names[q],
                                                       "Qs": self.names[q] + "'s"})
                    tag = f"cf:{q}"
                self.emit("conflict", text, view, tag, "conflict", fact)
                return False
            forced = None
            for j in range(self.n):
                if j in view:
                    continue
                if not m & pz.knights[j]:
                    forced = (j, False)
                elif not m & (pz.full ^ pz.knights[j]):
                    forced = (j, True)
                if forced:
                    break
            if forced is None:
                return True
            j, b = forced
            using = None
            for k in sorted(view):
                if j in self.mentions[k]:
                    mk = pm & pz.consistent[k]
                    if mk and not mk & pz.role_mask(j, not b):
                        using = k
                        break
            fact = {"type": "entails", "given": enc(view), "using": [using] if using is not None else sorted(view),
                    "person": j, "knight": b}
            kind = "propagate"
            if using is not None:
                key = "propagate" if hypothetical else "derive"
                text = self.say(key, **{**self.fields(j, b, using, view[using]), "P": self.names[j]})
            else:
                text = self.say("propagate_joint" if hypothetical else "derive_joint", **self.fields(j, b))
            if not hypothetical:
                fact = {"type": "all", "facts": [fact, {"type": "role", "person": j, "knight": b}]}
            view[j] = b
            on_derive(j, b)
            self.emit(kind, text, view, f"pr:{j}", f"derived {self.names[j]}", fact)

    def learn(self, j: int, b: bool) -> None:
        self.known[j] = b

    def propagate_known(self) -> None:
        self.chain(dict(self.known), False, self.learn)

    # ---- refutation of one person's roles -------------------------------------------------
    def refute(self, j: int) -> bool:
        """Assume each role of j, chain; a contradiction settles j. Returns whether j is settled."""
        for b in (True, False):
            view = dict(self.known)
            view[j] = b
            if self.explicit:
                failed = self.try_role(j, b, view) is not None or not self.chain(view, True, lambda *_: None)
            else:
                self.emit("assume", self.say("assume", **self.fields(j, b)), view, f"as:{j}",
                          f"assuming {self.names[j]} is a {T.role_word(b)}", None)
                failed = not self.chain(view, True, lambda *_: None)
            if failed:
                self.known[j] = not b
                self.emit("eliminate", self.say("refuted", **self.fields(j, not b)), self.known, f"el:{j}",
                          f"settled {self.names[j]}", {"type": "role", "person": j, "knight": not b})
                return True
            sat = {"type": "open3" if self.explicit else "sat", "given": enc(view), "people": sorted(view)}
            self.emit("check", self.say("no_conflict", **self.fields(j, b)), view, f"ok:{j}", "no contradiction", sat)
        self.emit("check", self.say("undecided", **self.fields(j, True)), self.known, f"un:{j}",
                  f"{self.names[j]} undecided", None)
        return False


def _tf(b: bool) -> str:
    return "true" if b else "false"


# ---- phases ---------------------------------------------------------------------------------
def _restate(ctx: _Ctx, order: str) -> None:
    for i in ctx.ranking(order):
        ctx.emit("restate", ctx.say("restate", **ctx.fields(i, True)), ctx.known, f"rs:{i}",
                 f"restating {ctx.names[i]}'s claim",
                 {"type": "statement", "person": i, "tree": to_json(ctx.puzzle.statements[i])})


def _eliminate(ctx: _Ctx, order: str) -> None:
    if ctx.explicit:
        return _eliminate_written(ctx, order)
    for j in ctx.ranking(order):
        if j in ctx.known:
            continue
        for b in (True, False):
            view = dict(ctx.known)
            view[j] = b
            q = ctx.first_unsat(view)
            if q is not None:
                ctx.known[j] = not b
                text = ctx.say("eliminate", **ctx.fields(j, not b, q, view[q]))
                fact = {"type": "all", "facts": [{"type": "unsat", "given": enc(view), "person": q},
                                                 {"type": "role", "person": j, "knight": not b}]}
                ctx.emit("eliminate", text, ctx.known, f"el:{j}", f"ruled out {ctx.names[j]} as a "
                         f"{T.role_word(b)}", fact)
                break


def _eliminate_written(ctx: _Ctx, order: str) -> None:
    """Try each role of each undecided person against the claims it affects, writing every check;
    a role whose checks end in a contradiction is ruled out."""
    for j in ctx.ranking(order):
        if j in ctx.known:
            continue
        for b in (True, False):
            view = {**ctx.known, j: b}
            q = ctx.try_role(j, b, view)
            if q is not None:
                ctx.known[j] = not b
                ctx.emit("eliminate", ctx.say("eliminate", **ctx.fields(j, not b, q, view[q])), ctx.known,
                         f"el:{j}", f"ruled out {ctx.names[j]} as a {T.role_word(b)}",
                         {"type": "all", "facts": [{"type": "refutes", "given": enc(view), "person": q},
                                                   {"type": "role", "person": j, "knight": not b}]})
                break


def _refute(ctx: _Ctx, order: str) -> None:
    for j in ctx.ranking(order):
        if j not in ctx.known:
            ctx.refute(j)


def _plan(ctx: _Ctx, order: str) -> None:
    todo = [j for j in ctx.ranking(order) if j not in ctx.known]
    if not todo:
        return
    ctx.emit("subgoal", ctx.say("plan", X=T.join_and([ctx.names[j] for j in todo])), ctx.known, "plan",
             "planning subgoals", None)
    for j in todo:
        if j in ctx.known:
            continue
        ctx.emit("subgoal", ctx.say("subgoal", **ctx.fields(j, True)), ctx.known, f"sg:{j}",
                 f"subgoal {ctx.names[j]}", None)
        if ctx.refute(j):
            ctx.propagate_known()


def _backward(ctx: _Ctx, order: str) -> None:
    for t in ctx.ranking(order):
        if t in ctx.known:
            continue
        speakers = [s for s in range(ctx.n) if s != t and t in ctx.mentions[s]]
        if speakers:
            ctx.emit("backward", ctx.say("backward_goal", **ctx.fields(t, True),
                                         X=T.join_and([ctx.names[s] for s in speakers])),
                     ctx.known, f"bw:{t}", f"goal {ctx.names[t]}",
                     {"type": "all", "facts": [{"type": "mentions", "person": s, "about": [t]} for s in speakers]})
        else:
            ctx.emit("backward", ctx.say("backward_none", **ctx.fields(t, True)), ctx.known, f"bw:{t}",
                     f"goal {ctx.names[t]}", {"type": "referenced", "person": t, "count": 0})
        for s in speakers:
            if t in ctx.known:
                break
            if s in ctx.known:
                continue
            ctx.emit("subgoal", ctx.say("subgoal", **ctx.fields(s, True)), ctx.known, f"sg:{s}",
                     f"subgoal {ctx.names[s]} for {ctx.names[t]}", None)
            if ctx.refute(s):
                ctx.propagate_known()
        if t in ctx.known:
            ctx.emit("backward", ctx.say("backward_done", **ctx.fields(t, ctx.known[t])), ctx.known, f"bd:{t}",
                     f"settled {ctx.names[t]}", {"type": "role", "person": t, "knight": ctx.known[t]})
        elif ctx.refute(t):
            ctx.propagate_known()


class _CaseSplit:
    """Depth-first case split: assume a role for the next open person, check the assumption the way
    ``check`` says, go deeper; when that fails try the other role, and backtrack when both fail.
    ``hyp`` holds the assumed roles (and those derived from them) on top of ``ctx.known``."""

    def __init__(self, ctx: _Ctx, order: str, role: str, check: str) -> None:
        self.ctx, self.order, self.check = ctx, order, check
        self.roles = (True, False) if role == "knight_first" else (False, True)
        self.dynamic = order in ("order_given", "order_mentioned")
        self.ranking = ctx.ranking(order)
        self.hyp: dict[int, bool] = {}

    def view(self) -> dict[int, bool]:
        return {**self.ctx.known, **self.hyp}

    def _drop(self, added: list[int]) -> None:
        for j in added:
            self.hyp.pop(j, None)

    def _keeper(self, added: list[int]):
        def keep(j: int, r: bool) -> None:
            self.hyp[j] = r
            added.append(j)
        return keep

    def _holds(self, p: int, b: bool, v: dict[int, bool], added: list[int]) -> bool:
        """Whether the assumption ``p`` is ``b`` (already in ``hyp``) survives the check, writing the
        steps that say so; when it does not, what it added to ``hyp`` is taken back."""
        ctx = self.ctx
        if ctx.explicit:
            failed = ctx.try_role(p, b, v, conflict_key="conflict") is not None
            if not failed and self.check == "check_forward":
                failed = not ctx.chain(v, True, self._keeper(added))
            if failed:
                self._drop(added)
            return not failed
        if self.check == "check_claims":
            q = ctx.first_unsat(v)
            if q is not None:
                text = ctx.say("conflict", **ctx.fields(p, b, q, v[q]))
                ctx.emit("conflict", text, v, f"cf:{q}", f"conflict with {ctx.names[q]}'s claim",
                         {"type": "unsat", "given": enc(v), "person": q})
                del self.hyp[p]
                return False
            ctx.emit("assume", ctx.say("assume_ok", **ctx.fields(p, b)), v, f"as:{p}",
                     f"assumed {ctx.names[p]} is a {T.role_word(b)}",
                     {"type": "sat", "given": enc(v), "people": sorted(v)})
            return True
        ctx.emit("assume", ctx.say("assume", **ctx.fields(p, b)), v, f"as:{p}",
                 f"assumed {ctx.names[p]} is a {T.role_word(b)}", None)
        if not ctx.chain(v, True, self._keeper(added)):
            self._drop(added)
            return False
        return True

    def search(self, queue: list[int]) -> list[int] | None:
        """None when every person got a role consistently, else the people whose cases all failed."""
        ctx, hyp = self.ctx, self.hyp
        open_ = [j for j in (queue if self.dynamic else self.ranking) if j not in ctx.known and j not in hyp]
        if not open_:
            return None
        p = open_[0]
        if not self.dynamic:
            why, fact = ctx.why(self.order, p)
            ctx.emit("choose", ctx.say("choose", **ctx.fields(p, True), why=why), self.view(), f"ch:{p}",
                     f"choosing {ctx.names[p]}", fact)
        for idx, b in enumerate(self.roles):
            added = [p]
            hyp[p] = b
            if not self._holds(p, b, self.view(), added):
                continue
            front = [j for j in ctx.mentions[p] if j not in ctx.known and j not in hyp] \
                if self.order == "order_mentioned" else []
            failed = self.search(front + [j for j in queue if j not in front])
            if failed is None:
                return None
            if idx == 0:
                ctx.emit("backtrack", ctx.say("backtrack", X=T.join_and([ctx.names[j] for j in failed]),
                                              P=ctx.names[p]),
                         self.view(), f"bt:{p}", f"backtracking to {ctx.names[p]}",
                         {"type": "infeasible", "given": enc(self.view())})
                self._drop(added)
            else:
                self._drop(added)
                return failed + [p]
        return [p]


def _split(ctx: _Ctx, order: str, role: str, check: str) -> None:
    split = _CaseSplit(ctx, order, role, check)
    if split.search(list(range(ctx.n))) is not None:
        raise _Unfinished("case split found no consistent assignment")
    final = split.view()
    if len(final) != ctx.n or not ctx.puzzle.solutions_mask() >> index_of([final[i] for i in range(ctx.n)]) & 1:
        raise _Unfinished("case split ended without a consistent assignment")
    ctx.known.update(split.hyp)


def _enumerate(ctx: _Ctx, order: str) -> None:
    """Try full candidates in turn, knight first, up to the first consistent one.

    The classic rendering counts in the order move's ranking. The explicit rendering counts in
    introduction order, the order its case header lists people in, so that each next header is
    the previous one plus one read as a binary number over the header as written. Counting in a
    ranking the header does not show made the next header a carry over hidden positions, and the
    first header a ranking decided without its inputs: on seed 0 (``order_self_first``) the SFT
    model's traces left the gold trace at a case header in 13 of 31 failures with the header in
    introduction order, and in 30 of 36 with the header in ranking order (docs/results/main-job/
    README.md, "Case headers that count")."""
    pz = ctx.puzzle
    counting = range(ctx.n) if ctx.explicit else ctx.ranking(order)
    free = [j for j in counting if j not in ctx.known]
    if not free:
        return  # nothing left to enumerate: every role is already established
    for bits in itertools.product((True, False), repeat=len(free)):
        cand = {**ctx.known, **dict(zip(free, bits))}
        roles = [cand[i] for i in range(ctx.n)]
        a = index_of(roles)
        listing = ", ".join(ctx.say("assign", P=ctx.names[j], R=T.role_word(cand[j]), RB=_tf(cand[j]))
                            for j in free)
        bad = next((k for k in range(ctx.n) if not pz.consistent[k] >> a & 1), None)
        if ctx.explicit:
            _enumerate_written(ctx, cand, listing, bad)
            if bad is None:
                ctx.known.update(cand)
                return
            continue
        if bad is None:
            ctx.known.update(cand)
            ctx.emit("enumerate", ctx.say("enum_ok", X=listing), cand, "en:ok", "candidate accepted",
                     {"type": "candidate", "given": enc(cand), "consistent": True})
            return
        value = bool(pz.true[bad] >> a & 1)
        f = ctx.fields(bad, cand[bad])
        ctx.emit("enumerate", ctx.say("enum_fail", **{**f, "Q": ctx.names[bad], "Qs": ctx.names[bad] + "'s"},
                                      X=listing, V=_tf(value)),
                 cand, f"en:{bad}", f"candidate fails at {ctx.names[bad]}",
                 {"type": "candidate", "given": enc(cand), "consistent": False, "person": bad})
    raise _Unfinished("enumeration found no consistent assignment")


def _enumerate_written(ctx: _Ctx, cand: dict[int, bool], listing: str, bad: int | None) -> None:
    """One candidate of the enumeration, every claim checked in order up to the first contradiction."""
    checks = ctx.checks(cand, range(ctx.n))
    failed = checks[-1].speaker if checks[-1].outcome == CONTRADICTION else None
    if failed != bad:
        raise _Unfinished("written checks disagree with the exact check")  # cannot happen: full assignment
    facts = ctx.check_facts(cand, checks)["facts"] + [
        {"type": "candidate", "given": enc(cand), "consistent": bad is None,
         **({} if bad is None else {"person": bad})}]
    if bad is None:
        text = ctx.say("enum_ok", X=listing)
        ctx.emit("enumerate", f"{ctx.evidence(cand, checks)} {text}", cand, "en:ok", "candidate accepted",
                 {"type": "all", "facts": facts})
        return
    text = ctx.say("enum_fail", **{**ctx.fields(bad, cand[bad]), "Q": ctx.names[bad], "Qs": ctx.names[bad] + "'s"},
                   X=listing, V=_tf(not cand[bad]))
    ctx.emit("enumerate", f"{ctx.evidence(cand, checks)} {text}", cand, f"en:{bad}",
             f"candidate fails at {ctx.names[bad]}", {"type": "all", "facts": facts})


def _run_phase(ctx: _Ctx, node: dict) -> None:
    op, args = node["op"], [a["op"] for a in node.get("args", [])]
    if op == "restate_claims":
        _restate(ctx, *args)
    elif op == "propagate":
        ctx.propagate_known()
    elif op == "eliminate":
        _eliminate(ctx, *args)
    elif op == "refute":
        _refute(ctx, *args)
    elif op == "plan":
        _plan(ctx, *args)
    elif op == "backward":
        _backward(ctx, *args)
    elif op == "split":
        _split(ctx, *args)
    elif op == "enumerate":
        _enumerate(ctx, *args)
    else:
        raise _Unfinished(f"unknown phase {op!r}")


def _conclude(ctx: _Ctx, verify: bool) -> list[bool]:
    missing = [ctx.names[i] for i in range(ctx.n) if i not in ctx.known]
    if missing:
        raise _Unfinished("incomplete strategy: undecided " + ", ".join(missing))
    roles = [ctx.known[i] for i in range(ctx.n)]
    if verify and ctx.explicit:
        checks = ctx.checks(ctx.known, range(ctx.n))
        for i, check in enumerate(checks):
            text = check.text if i else f"{case_text(ctx.known, ctx.names)} {check.text}"
            ctx.emit("verify", text, ctx.known, f"vf:{i}", f"verifying {ctx.names[i]}'s claim",
                     {"type": "claim", "person": i, "value": bool(check.value)})
    elif verify:
        for i in range(ctx.n):
            value = bool(ctx.puzzle.true[i] >> index_of(roles) & 1)
            ctx.emit("verify", ctx.say("verify", **ctx.fields(i, roles[i]), V=_tf(value)), ctx.known, f"vf:{i}",
                     f"verifying {ctx.names[i]}'s claim", {"type": "claim", "person": i, "value": value})
    ctx.emit("conclude", ctx.say("conclude"), ctx.known, "cc", "solution", {"type": "solution", "roles": roles})
    return roles


def execute(task: Task, program: dict, problem: Problem, rng: random.Random,
            max_steps: int = 400, rendering: str = "explicit") -> Trajectory:
    """Run ``program`` on ``problem``; see the module docstring. ``rng`` is accepted for the
    interface; KK wording is deterministic so that a primitive's trajectories are reproducible."""
    errors = GRAMMAR.validate(program)
    if errors:
        return Trajectory(steps=[], answer=None, finished=False, completion="",
                          reason="invalid program: " + "; ".join(errors[:3]))
    from tailor_evo.tasks.kk.logic import puzzle_of

    try:
        puzzle = puzzle_of(problem)
        names = list(problem.meta["names"])
    except Exception as exc:  # noqa: BLE001 - malformed problems give an unfinished trajectory
        return Trajectory(steps=[], answer=None, finished=False, completion="", reason=f"bad problem: {exc}")
    style, strategy = program["args"]
    ctx = _Ctx(puzzle, names, Wording(style["op"], rendering), max_steps)
    answer: list[bool] | None = None
    reason = "ok"
    try:
        node = strategy
        while node["op"] == "then":
            _run_phase(ctx, node["args"][0])
            node = node["args"][1]
        answer = _conclude(ctx, verify=node["op"] == "verify_conclude")
    except _OutOfSteps:
        reason = f"step budget of {max_steps} exceeded"
    except _Unfinished as exc:
        reason = str(exc)
    except Exception as exc:  # noqa: BLE001 - the search must never crash on one program
        reason = f"executor error: {type(exc).__name__}: {exc}"
    reasoning = " ".join([ctx.say("intro")] + [s.text for s in ctx.steps])
    if answer is None:
        completion = f"{THINK_OPEN} {reasoning} {THINK_CLOSE}"
        return Trajectory(steps=ctx.steps, answer=None, finished=False, completion=completion, reason=reason)
    completion = task.format_response(reasoning, T.solution_text_format(names, answer))
    return Trajectory(steps=ctx.steps, answer=answer, finished=True, completion=completion, reason="ok")
