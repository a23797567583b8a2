"""Wording styles for executor steps, in three renderings.

A style changes only the words, never the reasoning: the same step in every
style has the same kind, state, key and fact.

Three renderings:

- ``explicit`` (the default): every decision is preceded by its written inputs (the
  current case, the claim's connective, each atom's value, the combination, the comparison
  with the speaker's role; see :mod:`kleene`). The sentence that follows the evidence only names the
  decision, so the claims that the evidence has just restated are not repeated.
- ``quoted``: ``explicit``, and each written check first copies the speaker's clause as the
  question words it, then its atoms from that copy: the atoms of a claim are then copied from a
  clause just written, not picked out of the question between look-ups.
- ``classic``: the decisions come without their inputs. ``style_classic`` then reproduces
  the public rule-based chain of thought word for word for the moves that chain uses,
  for comparisons with published work.
"""

from __future__ import annotations

from dataclasses import dataclass

from tailor_evo.tasks.kk import text as T

_CLASSIC = {
    "intro": T.COT_HEAD,
    "restate": "{P} claims that {C}; so {P} is a knight exactly when {C}.",
    "assume_ok": "Assume {P} is a {R}. No contradiction is found in their {F}claim that {C}.",
    "conflict": "{P} cannot be a {R}, because this would contradict the {F}claim of {Q} that {C}.",
    "backtrack": "We have exhausted all possibilities for {X}, so let us go back and reconsider {P}.",
    "assume": "Assume {P} is a {R}.",
    "propagate": "Then the {F}claim of {Q} that {C} makes {P} a {R}.",
    "propagate_joint": "Then the claims so far make {P} a {R}.",
    "hyp_conflict": "This would contradict the {F}claim of {Q} that {C}.",
    "hyp_conflict_joint": "The claims so far cannot all hold together.",
    "refuted": "So {P} cannot be a {notR}, and {P} is a {R}.",
    "no_conflict": "No contradiction is found when {P} is a {R}.",
    "undecided": "Both roles remain possible for {P} for now.",
    "eliminate": "{P} cannot be a {notR}, because this would contradict the {F}claim of {Q} that {C}. "
                 "So {P} is a {R}.",
    "derive": "Given the {F}claim of {Q} that {C}, {P} must be a {R}.",
    "derive_joint": "Given the claims so far, {P} must be a {R}.",
    "choose": "Consider {P} next, {why}.",
    "plan": "Let us settle the people one at a time: {X}.",
    "subgoal": "Subgoal: decide whether {P} is a knight or a knave.",
    "backward_goal": "To decide {P}, look at who talks about {P}: {X}.",
    "backward_none": "Nobody else talks about {P}, so we decide {P} directly.",
    "backward_done": "This settles {P}: {P} is a {R}.",
    "enum_fail": "Try {X}: this fails, because {Q} would be a {R} whose claim that {C} is {V}.",
    "enum_ok": "Try {X}: every claim agrees with its speaker's role.",
    "verify": "Check {P}: as a {R}, their claim that {C} must be {V}, and it is.",
    "conclude": T.COT_FOOT_OK,
    "assign": "{P} is a {R}",
    "why_referenced": "since {k} other claim(s) mention them",
    "why_self": "since their claim is about themselves",
    "why_short": "since their claim has {k} part(s)",
}

_TERSE = {
    "intro": "Case analysis on roles.",
    "restate": "{P}: {C}.",
    "assume_ok": "{P} = {R}: consistent.",
    "conflict": "{P} = {R} fails: breaks {Qs} claim.",
    "backtrack": "Dead end for {X}; back to {P}.",
    "assume": "Suppose {P} = {R}.",
    "propagate": "{Qs} claim => {P} = {R}.",
    "propagate_joint": "Claims so far => {P} = {R}.",
    "hyp_conflict": "Contradiction with {Qs} claim.",
    "hyp_conflict_joint": "Contradiction.",
    "refuted": "So {P} = {R}.",
    "no_conflict": "{P} = {R}: no contradiction.",
    "undecided": "{P} still open.",
    "eliminate": "{P} = {notR} breaks {Qs} claim, so {P} = {R}.",
    "derive": "{Qs} claim => {P} = {R}.",
    "derive_joint": "Known roles => {P} = {R}.",
    "choose": "Next: {P} ({why}).",
    "plan": "Order: {X}.",
    "subgoal": "Goal: {P}.",
    "backward_goal": "{P} is mentioned by {X}.",
    "backward_none": "{P} is mentioned by nobody else.",
    "backward_done": "Hence {P} = {R}.",
    "enum_fail": "{X}: fails at {Qs} claim.",
    "enum_ok": "{X}: all claims hold.",
    "verify": "{P} = {R}, claim {V}: ok.",
    "conclude": "Done.",
    "assign": "{P}={R}",
    "why_referenced": "{k} mentions",
    "why_self": "self-reference",
    "why_short": "{k} part(s)",
}

_FORMAL = {
    "intro": "Let K(x) mean that x is a knight; every person x asserts S(x), and K(x) ↔ S(x).",
    "restate": "K({P}) ↔ {L}.",
    "assume_ok": "Let K({P}) = {RB}; S({P}) = {L} remains satisfiable and no statement is violated.",
    "conflict": "K({P}) = {RB} is impossible: {Qs} statement {L} must be {CV} but cannot be.",
    "backtrack": "No value of {X} works; revise {P}.",
    "assume": "Suppose K({P}) = {RB}.",
    "propagate": "From {Qs} statement {L} = {CV}: K({P}) = {RB}.",
    "propagate_joint": "From the statements so far: K({P}) = {RB}.",
    "hyp_conflict": "{Qs} statement {L} must be {CV}, which is impossible: contradiction.",
    "hyp_conflict_joint": "The statements so far are unsatisfiable: contradiction.",
    "refuted": "Therefore K({P}) = {RB}.",
    "no_conflict": "K({P}) = {RB} is consistent so far.",
    "undecided": "K({P}) is not yet determined.",
    "eliminate": "K({P}) = {notRB} makes {Qs} statement {L} unsatisfiable; hence K({P}) = {RB}.",
    "derive": "From {Qs} statement {L} = {CV}: K({P}) = {RB}.",
    "derive_joint": "From the known values: K({P}) = {RB}.",
    "choose": "Select {P} ({why}).",
    "plan": "Goals, in order: {X}.",
    "subgoal": "Goal: determine K({P}).",
    "backward_goal": "K({P}) occurs in the statements of {X}.",
    "backward_none": "K({P}) occurs in no other statement.",
    "backward_done": "Hence K({P}) = {RB}.",
    "enum_fail": "Assignment {X}: K({Q}) = {RB} but {L} = {V}; contradiction.",
    "enum_ok": "Assignment {X}: every K(x) ↔ S(x) holds.",
    "verify": "Check: K({P}) = {RB} and S({P}) = {L} = {V}.",
    "conclude": "All constraints are satisfied.",
    "assign": "K({P})={RB}",
    "why_referenced": "occurs in {k} other statements",
    "why_self": "self-referential",
    "why_short": "{k} literal(s)",
}

_CHATTY = {
    "intro": "Okay, let me work out who could be lying here.",
    "restate": "{P} is basically saying {C}.",
    "assume_ok": "Let me try {P} as a {R}. Their {F}claim that {C} still works out, so far so good.",
    "conflict": "Hmm, {P} can't be a {R}: that would break the {F}claim of {Q} that {C}.",
    "backtrack": "I've run out of options for {X}, so I need to go back and rethink {P}.",
    "assume": "What if {P} is a {R}?",
    "propagate": "Then {Qs} {F}claim that {C} means {P} has to be a {R}.",
    "propagate_joint": "Then, putting the claims together, {P} has to be a {R}.",
    "hyp_conflict": "But that clashes with {Qs} {F}claim that {C}.",
    "hyp_conflict_joint": "But then the claims can't all work together.",
    "refuted": "So {P} isn't a {notR}; {P} must be a {R}.",
    "no_conflict": "Nothing breaks if {P} is a {R}.",
    "undecided": "I can't pin {P} down yet.",
    "eliminate": "If {P} were a {notR}, {Qs} {F}claim that {C} would break, so {P} is a {R}.",
    "derive": "Since {Qs} {F}claim that {C} has to come out right, {P} is a {R}.",
    "derive_joint": "Putting what I know together, {P} is a {R}.",
    "choose": "I'll look at {P} next, {why}.",
    "plan": "My plan: figure out {X}, one at a time.",
    "subgoal": "Now, is {P} a knight or a knave?",
    "backward_goal": "To figure out {P}, I should look at who talks about {P}: {X}.",
    "backward_none": "Nobody else mentions {P}, so I'll tackle {P} head on.",
    "backward_done": "That tells me {P} is a {R}.",
    "enum_fail": "What about {X}? No: {Q} would be a {R}, yet their claim that {C} is {V}.",
    "enum_ok": "What about {X}? Every claim fits!",
    "verify": "Double-checking {P}: a {R}, and their claim that {C} is indeed {V}.",
    "conclude": "Everything checks out.",
    "assign": "{P} a {R}",
    "why_referenced": "since {k} other claim(s) mention them",
    "why_self": "since they talk about themselves",
    "why_short": "since their claim is short",
}

STYLE_TABLES = {"style_classic": _CLASSIC, "style_terse": _TERSE, "style_formal": _FORMAL,
                "style_chatty": _CHATTY}

# The explicit rendering's sentences after written evidence: they name the decision the
# evidence has just decided, in the style's voice, without restating the claim.
_EXPLICIT = {
    "style_classic": {
        "conflict": "So {P} cannot be a {R}.",
        "hyp_conflict": "This is a contradiction.",
        "eliminate": "So {P} cannot be a {notR}, and {P} is a {R}.",
        "no_conflict": "No contradiction is found when {P} is a {R}.",
        "propagate": "So {P} is a {R}.",
        "derive": "So {P} must be a {R}.",
        "enum_fail": "This case fails.",
        "enum_ok": "Every claim agrees with its speaker's role.",
        "suppose": "If {P} were a {R}:",
    },
    "style_terse": {
        "conflict": "{P} = {R} fails.", "hyp_conflict": "Contradiction.",
        "eliminate": "So {P} = {R}.", "no_conflict": "{P} = {R}: no contradiction.",
        "propagate": "=> {P} = {R}.", "derive": "=> {P} = {R}.",
        "enum_fail": "Fails.", "enum_ok": "All claims hold.", "suppose": "{P} = {R}?",
    },
    "style_formal": {
        "conflict": "K({P}) = {RB} is impossible.", "hyp_conflict": "Contradiction.",
        "eliminate": "Hence K({P}) = {RB}.", "no_conflict": "K({P}) = {RB} is consistent so far.",
        "propagate": "Therefore K({P}) = {RB}.", "derive": "Therefore K({P}) = {RB}.",
        "enum_fail": "Assignment rejected.", "enum_ok": "Every K(x) ↔ S(x) holds.",
        "suppose": "Suppose K({P}) = {RB}:",
    },
    "style_chatty": {
        "conflict": "So {P} can't be a {R}.", "hyp_conflict": "That clashes.",
        "eliminate": "So {P} has to be a {R}.", "no_conflict": "Nothing breaks if {P} is a {R}.",
        "propagate": "So {P} has to be a {R}.", "derive": "So {P} must be a {R}.",
        "enum_fail": "Nope, that one breaks.", "enum_ok": "Every claim fits!",
        "suppose": "What if {P} were a {R}?",
    },
}

RENDERINGS = ("explicit", "quoted", "classic")


@dataclass
class Wording:
    name: str
    rendering: str = "explicit"

    def __post_init__(self) -> None:
        if self.rendering not in RENDERINGS:
            raise ValueError(f"unknown rendering {self.rendering!r} (known: {', '.join(RENDERINGS)})")
        self.table = dict(STYLE_TABLES[self.name])
        if self.explicit:
            self.table.update(_EXPLICIT[self.name])

    @property
    def explicit(self) -> bool:
        """Every decision after its written check (``explicit`` and ``quoted``)."""
        return self.rendering in ("explicit", "quoted")

    @property
    def quoted(self) -> bool:
        """Each written check copies the speaker's clause first."""
        return self.rendering == "quoted"

    def say(self, key: str, **fields: object) -> str:
        return self.table[key].format(**fields)
