"""Rendering Knights-and-Knaves puzzles as text, in the public dataset's exact wording.

The question paragraph, the statement clauses, the 18 speech templates and the
answer formats follow the public data word for word (irregular punctuation
included), so that a model trained on our puzzles sees the same surface form as
on the official benchmark, and so that public records can be re-rendered and
checked. Deeper statements (an option beyond the public grammar) put compound
sub-clauses in parentheses, which the public renderer never needs.
"""

from __future__ import annotations

import re
from typing import Sequence

from tailor_evo.tasks.kk.logic import LEAF_OPS, Tree

# Common English first names: single alphabetic words, none a substring of another
# (checked at import time below), so word-boundary and substring matchers agree.
COMMON_NAMES: tuple[str, ...] = (
    "Amelia", "Olivia", "Emma", "Sophia", "Mia", "Charlotte", "Harper", "Evelyn", "Abigail", "Emily",
    "Ella", "Scarlett", "Grace", "Chloe", "Victoria", "Riley", "Aria", "Lily", "Aubrey", "Zoey",
    "Penelope", "Hannah", "Layla", "Nora", "Violet", "Noah", "William", "James",
    "Logan", "Benjamin", "Mason", "Elijah", "Oliver", "Jacob", "Lucas", "Michael", "Alexander", "Ethan",
    "Daniel", "Matthew", "Aiden", "Henry", "Joseph", "Samuel", "Sebastian", "David", "Carter", "Wyatt",
    "Jack", "Owen", "Gabriel", "Avery", "Rosa", "Tariq", "Mei",
)
# Less common names, for out-of-distribution puzzles (``names="rare"``).
RARE_NAMES: tuple[str, ...] = (
    "Quillon", "Marisol", "Thaddeus", "Ysolde", "Caspian", "Odalys", "Bartholomew", "Zephyrine", "Lucan",
    "Persephone", "Ignatius", "Seraphina", "Evander", "Clementine", "Ambrose", "Leopold",
    "Henrietta", "Cyprian", "Philippa", "Benedikt", "Wilhelmina", "Osric", "Ottilie", "Fergus",
    "Imogen", "Lysander", "Perpetua", "Barnaby", "Cordelia",
)

# More names for training streams and the reading corpus (``names="pool"`` draws from these and
# COMMON_NAMES): a base that copies only 55 single-token names fails on puzzles with others,
# so training sees hundreds, most of them split into several tokens by the tiny tokenizer.
EXTRA_NAMES: tuple[str, ...] = (
    "Camila", "Luna", "Ellie", "Nova", "Skylar", "Lucy", "Caroline", "Genesis", "Aaliyah", "Kennedy",
    "Kinsley", "Allison", "Maya", "Sarah", "Madelyn", "Adeline", "Elena", "Alice", "Sadie", "Emilia", "Autumn",
    "Quinn", "Nevaeh", "Piper", "Ruby", "Serenity", "Willow", "Everly", "Cora", "Kaylee", "Lydia", "Aubree",
    "Eliana", "Peyton", "Melanie", "Isla", "Vivian", "Brielle", "Lila", "Clara", "Ivy", "Hazel", "Valentina",
    "Natalie", "Leah", "Brooklyn", "Ximena", "Faith", "Athena", "Iris", "Eden", "Andrea", "Margaret", "Lyla",
    "Jasmine", "Daisy", "Beatrice", "Harriet", "Agnes", "Edith", "Florence", "Mabel", "Matilda", "Phoebe",
    "Tessa", "Wren", "Juniper", "Marigold", "Fiona", "Joy", "June", "Kate", "Laura", "Megan", "Molly", "Paige",
    "Rebecca", "Talia", "Uma", "Vera", "Wendy", "Zara", "Bianca", "Carmen", "Dahlia", "Frida", "Greta",
    "Ingrid", "Jolene", "Kira", "Maren", "Nadia", "Odette", "Petra", "Rhea", "Selma", "Thea", "Veda", "Wanda",
    "Xenia", "Yvette", "Zelda", "Jayden", "Grayson", "Lincoln", "Julian", "Isaac", "Anthony", "Dylan",
    "Thomas", "Charles", "Joshua", "Andrew", "Hudson", "Ezra", "Asher", "Jaxon", "Nathan", "Christian",
    "Cameron", "Aaron", "Colton", "Adrian", "Easton", "Jordan", "Dominic", "Austin", "Adam", "Robert",
    "Brayden", "Kai", "Josiah", "Ryan", "Everett", "Ezekiel", "Miles", "Roman", "Jason", "Theodore", "Bennett",
    "Silas", "Xavier", "Kayden", "Declan", "Jace", "Ryder", "Tyler", "Brandon", "Parker", "Calvin", "Felix",
    "Miguel", "Rowan", "Nicholas", "Finn", "Ivan", "Oscar", "Emmett", "Edward", "George", "Arthur", "Albert",
    "Frank", "Harold", "Ralph", "Eugene", "Louis", "Howard", "Clarence", "Stanley", "Leonard", "Vincent",
    "Ernest", "Gordon", "Hugo", "Otto", "Rufus", "Tobias", "Vaughn", "Warren", "Yusuf", "Zane", "Amir",
    "Bruno", "Dmitri", "Elias", "Fabian", "Gideon", "Hector", "Idris", "Joel", "Kenji", "Lorenzo", "Nikolai",
    "Omar", "Quentin", "Stefan", "Tomas", "Viktor", "Wesley", "Yosef", "Zachary", "Bilal", "Chen", "Deepak",
    "Eitan", "Farid", "Goran", "Haruto", "Ibrahim", "Kofi", "Lars", "Mehmet", "Nuno", "Olu", "Ravi", "Sanjay",
    "Tomoko", "Wei", "Yuki", "Amara", "Chidi", "Emeka", "Fatima", "Imani", "Jia", "Kamala", "Leila", "Malik",
    "Rania", "Sakura", "Zuri",
)
# Names never used in training (neither the pool, the corpus nor the procedural words): puzzles
# with them (``names="heldout"``) measure whether copying a name generalises to names never seen.
HELDOUT_NAMES: tuple[str, ...] = (
    "Gianna", "Paisley", "Naomi", "Hailey", "Jade", "Audrey", "Samantha", "Nicole", "Rylee", "Esther", "Ruth",
    "Hope", "Nina", "Rachel", "Sienna", "Yara", "Esme", "Ursula", "Levi", "Mateo", "Christopher", "Hunter",
    "Isaiah", "Nolan", "Axel", "Harrison", "Weston", "Jesse", "Walter", "Silvio", "Ulrich", "Cedric", "Magnus",
    "Pablo", "Rafael", "Ahmed", "Priya", "Zainab", "Hana", "Yasmin",
)
POOL_NAMES: tuple[str, ...] = COMMON_NAMES + EXTRA_NAMES


def _no_substrings(names: Sequence[str]) -> None:
    low = [x.lower() for x in names]
    for a in low:
        if not a.isalpha():
            raise AssertionError(f"name {a!r} is not a single alphabetic word")
        for b in low:
            if a != b and a in b:
                raise AssertionError(f"name {a!r} is a substring of {b!r}")
    if len(set(low)) != len(low):
        raise AssertionError("duplicate names")


ALL_NAMES: tuple[str, ...] = POOL_NAMES + RARE_NAMES + HELDOUT_NAMES
_no_substrings(ALL_NAMES)
NAME_LISTS = {"common": COMMON_NAMES, "rare": RARE_NAMES, "pool": POOL_NAMES, "heldout": HELDOUT_NAMES}
# Any known name as a whole word (names are case-sensitive, capitalised words).
NAME_PATTERN = re.compile(r"\b(?:" + "|".join(sorted(ALL_NAMES, key=len, reverse=True)) + r")\b")
_INTRO_NAMES = re.compile(r"You meet \d+ inhabitants?: ([^.]*)\.")


def intro_names(question: str) -> list[str]:
    """The people in the order the question introduces them ("You meet 3 inhabitants: A, B, and C.");
    empty when the text has no such sentence."""
    m = _INTRO_NAMES.search(question)
    if not m:
        return []
    parts = re.split(r",\s*(?:and\s+)?|\s+and\s+", m.group(1))
    return [p.strip() for p in parts if p.strip()]

# The public data's 18 speech templates; {N} = speaker's name, {C} = statement clause.
SPEECH_TEMPLATES: tuple[str, ...] = (
    "{N} said that {C}.",
    "{N} told you that {C}.",
    '{N} said, "{C}."',
    '{N} stated, "{C}".',
    'According to {N}, "{C}".',
    'In {N}\'s words: "{C}".',
    '{N} remarked, "{C}".',
    '"{C}," {N} declared.',
    '{N} was heard saying, "{C}".',
    "{N} expressed that {C}.",
    '"{C}" - {N}.',
    'As {N} put it, "{C}".',
    '{N} asserted: "{C}".',
    '"{C}," {N} mentioned.',
    '{N} commented, "{C}".',
    'In a statement by {N}: "{C}".',
    '{N} noted, "{C}".',
    '"{C}," {N} claimed.',
)

INTRO = ("A very special island is inhabited only by knights and knaves. "
         "Knights always tell the truth, and knaves always lie.")
OUTRO = "So who is a knight and who is a knave?"

COT_HEAD = ("Let's think step by step, by considering whether each person is lying and "
            "if that leads to contradiction.")
COT_FOOT_OK = "This leads to a feasible solution."
COT_FOOT_FAIL = "All the configurations lead to contradictions."


def role_word(knight: bool) -> str:
    return "knight" if knight else "knave"


def clause(tree: Tree, names: Sequence[str]) -> str:
    """The statement as a third-person clause ("Rosa is a knight or Mei is a knave")."""
    op = tree[0]
    if op in LEAF_OPS:
        return f"{names[tree[1]]} is a {op}"
    if op == "not":
        child = tree[1]
        if child[0] in LEAF_OPS:
            return f"{names[child[1]]} is not a {child[0]}"
        return f"it is not the case that {_wrap(child, names)}"
    if op in ("and", "or"):
        return f" {op} ".join(_wrap(c, names) for c in tree[1:])
    if op == "implies":
        return f"If {_wrap(tree[1], names)} then {_wrap(tree[2], names)}"
    if op == "iff":
        return f"{_wrap(tree[1], names)} if and only if {_wrap(tree[2], names)}"
    raise ValueError(f"unknown operator {op!r}")


def _wrap(tree: Tree, names: Sequence[str]) -> str:
    simple = tree[0] in LEAF_OPS or (tree[0] == "not" and tree[1][0] in LEAF_OPS)
    text = clause(tree, names)
    return text if simple else f"({text})"


def speech(template: int, name: str, content: str) -> str:
    return SPEECH_TEMPLATES[template].format(N=name, C=content)


def list_names(names: Sequence[str]) -> str:
    """"A, B, and C" (the public data writes "A, and B" for two)."""
    if len(names) == 1:
        return names[0]
    return ", ".join(names[:-1]) + ", and " + names[-1]


def quiz_text(statements: Sequence[Tree], names: Sequence[str], templates: Sequence[int]) -> str:
    parts = [INTRO, f"You meet {len(names)} inhabitants: {list_names(names)}."]
    for i, st in enumerate(statements):
        parts.append(speech(templates[i], names[i], clause(st, names)))
    parts.append(OUTRO)
    return " ".join(parts)


def solution_text(names: Sequence[str], roles: Sequence[bool]) -> str:
    items = [f"{nm} is a {role_word(r)}" for nm, r in zip(names, roles)]
    if len(items) == 1:
        return items[0] + "."
    return ", ".join(items[:-1]) + ", and " + items[-1] + "."


def solution_text_format(names: Sequence[str], roles: Sequence[bool]) -> str:
    return "\n".join(f"({i + 1}) {nm} is a {role_word(r)}" for i, (nm, r) in enumerate(zip(names, roles)))


# ---- the rule-based chain of thought's sentences -------------------------------------------
def cot_ok(name: str, knight: bool, claim: str) -> str:
    false = "" if knight else "false "
    return f"Assume {name} is a {role_word(knight)}. No contradiction is found in their {false}claim that {claim}."


def cot_conflict(name: str, knight: bool, claimant: str, claimant_knight: bool, claim: str) -> str:
    false = "" if claimant_knight else "false "
    return (f"{name} cannot be a {role_word(knight)}, because this would contradict the "
            f"{false}claim of {claimant} that {claim}.")


def join_and(items: Sequence[str]) -> str:
    """"A", "A and B", "A, B, and C"."""
    if len(items) <= 2:
        return " and ".join(items)
    return ", ".join(items[:-1]) + ", and " + items[-1]


def cot_backtrack(exhausted: Sequence[str], back_to: str) -> str:
    return (f"We have exhausted all possibilities for {join_and(exhausted)}, "
            f"so let us go back and reconsider {back_to}.")


def formula(tree: Tree, names: Sequence[str]) -> str:
    """The statement in logic notation: K(x) for "x is a knight", ¬K(x) for "x is a knave"."""
    op = tree[0]
    if op == "knight":
        return f"K({names[tree[1]]})"
    if op == "knave":
        return f"¬K({names[tree[1]]})"
    if op == "not":
        inner = formula(tree[1], names)
        return f"¬{inner}" if tree[1][0] == "knight" else f"¬({inner})"
    sym = {"and": " ∧ ", "or": " ∨ ", "implies": " → ", "iff": " ↔ "}[op]
    parts = [formula(c, names) if c[0] in LEAF_OPS else f"({formula(c, names)})" for c in tree[1:]]
    return sym.join(parts)
