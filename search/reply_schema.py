"""The move grammar as a JSON schema: what an LLM may write when its decoding is constrained.

A reply is ``{"description": TEXT, "program": TREE}``. Each (type, depth) pair becomes
one schema definition whose alternatives are the moves returning that type, each an
object with a constant ``op`` and exactly its arity of ``args`` of the argument types
one level deeper. Depth is bounded exactly: only moves whose arguments can still be
completed within ``max_depth`` levels are offered, and at the last level only terminals.
The node count is bounded by giving the arguments of a move equal shares of its node
budget. So every reply the schema admits is a program that the search's check accepts
(``Grammar.validate(program, max_depth)`` and at most ``max_nodes`` nodes); the check
still runs after decoding, and the operator counts what it refuses.

JSON schema, rather than a grammar format of one library, because every constrained
decoder takes it: llguidance and xgrammar locally, vLLM and SGLang servers, and the
OpenAI API (``response_format`` ``json_schema``).
"""

from __future__ import annotations

from typing import Any

from tailor_evo.tasks.base import Grammar, MoveSpec

MAX_DESCRIPTION_CHARS = 400


def program_schema(grammar: Grammar, max_depth: int, max_nodes: int | None = None) -> tuple[dict, dict]:
    """(schema of a program rooted at ``grammar.root``, its ``$defs``).

    Each definition is a (type, depth, node budget) triple. A move with ``k`` arguments
    gives each of them an equal share of what is left of its budget, so every admitted
    tree has at most ``max_nodes`` nodes (a few lopsided trees within the limit are left
    out: a schema cannot make sibling sizes add up).
    """
    budget0 = max_nodes if max_nodes is not None else 10**6
    memo: dict[tuple[str, int, int], list[MoveSpec]] = {}

    def moves(tp: str, depth: int, budget: int) -> list[MoveSpec]:
        key = (tp, depth, min(budget, 10**6))
        if key not in memo:
            memo[key] = []          # a type referring to itself at the same key is not (yet) feasible
            memo[key] = [m for m in grammar.moves if m.ret == tp and budget >= 1 + len(m.args) and (
                not m.args or (depth < max_depth and all(moves(a, depth + 1, share(m, budget)) for a in m.args)))]
        return memo[key]

    def share(m: MoveSpec, budget: int) -> int:
        return (budget - 1) // len(m.args)

    if not moves(grammar.root, 0, budget0):
        raise ValueError(f"no program of type {grammar.root} fits in depth {max_depth}"
                         + (f" and {max_nodes} nodes" if max_nodes is not None else ""))
    defs: dict[str, Any] = {}

    def ref(tp: str, depth: int, budget: int) -> dict:
        name = f"{tp}_d{depth}" + (f"_n{budget}" if max_nodes is not None else "")
        if name not in defs:
            defs[name] = {}       # placeholder while the alternatives are built
            defs[name] = {"anyOf": [node(m, depth, budget) for m in moves(tp, depth, budget)]}
        return {"$ref": f"#/$defs/{name}"}

    def node(m: MoveSpec, depth: int, budget: int) -> dict:
        props: dict[str, Any] = {"op": {"const": m.name}}
        if not m.args:
            return {"type": "object", "properties": props, "required": ["op"], "additionalProperties": False}
        props["args"] = {"type": "array", "prefixItems": [ref(a, depth + 1, share(m, budget)) for a in m.args],
                         "minItems": len(m.args), "maxItems": len(m.args), "items": False}
        return {"type": "object", "properties": props, "required": ["op", "args"], "additionalProperties": False}

    return ref(grammar.root, 0, budget0), defs


def reply_schema(grammar: Grammar, max_depth: int, max_nodes: int | None = None,
                 max_description_chars: int = MAX_DESCRIPTION_CHARS) -> dict:
    """The schema of a whole reply: a short description, then the program."""
    program, defs = program_schema(grammar, max_depth, max_nodes)
    return {
        "type": "object",
        "properties": {"description": {"type": "string", "minLength": 1, "maxLength": max_description_chars},
                       "program": program},
        "required": ["description", "program"],
        "additionalProperties": False,
        "$defs": defs,
    }
