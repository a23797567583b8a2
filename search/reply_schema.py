"""The move grammar as a JSON schema: what an LLM may write when its decoding is constrained.

A reply is ``{"description": TEXT, "program": TREE}``. Each (type, depth) pair becomes
one schema definition whose alternatives are the moves returning that type, each an
object with a constant ``op`` and exactly its arity of ``args`` of the argument types
one level deeper. Depth is bounded exactly: only moves whose arguments can still be
completed within ``max_depth`` levels are offered, and at the last level only terminals.
So every reply the schema admits is a program that ``Grammar.validate(program,
max_depth)`` accepts. A bound a schema cannot express (the total node count) is still
checked after decoding; those rejections are counted by the operator.

JSON schema, rather than a grammar format of one library, because every constrained
decoder takes it: llguidance and xgrammar locally, vLLM and SGLang servers, and the
OpenAI API (``response_format`` ``json_schema``).
"""

from __future__ import annotations

from typing import Any

from tailor_evo.tasks.base import Grammar, MoveSpec

MAX_DESCRIPTION_CHARS = 400


def _feasible(grammar: Grammar, max_depth: int) -> dict[tuple[str, int], list[MoveSpec]]:
    """For every (type, depth): the moves that can start a subtree there and finish by ``max_depth``."""
    types = {m.ret for m in grammar.moves} | {a for m in grammar.moves for a in m.args}
    table: dict[tuple[str, int], list[MoveSpec]] = {}
    for depth in range(max_depth, -1, -1):
        for tp in types:
            table[(tp, depth)] = [m for m in grammar.moves if m.ret == tp and (
                not m.args if depth == max_depth else all(table[(a, depth + 1)] for a in m.args))]
    return table


def program_schema(grammar: Grammar, max_depth: int) -> tuple[dict, dict]:
    """(schema of a program rooted at ``grammar.root``, its ``$defs``)."""
    table = _feasible(grammar, max_depth)
    if not table[(grammar.root, 0)]:
        raise ValueError(f"no program of type {grammar.root} fits in depth {max_depth}")
    defs: dict[str, Any] = {}

    def ref(tp: str, depth: int) -> dict:
        name = f"{tp}_{depth}"
        if name not in defs:
            defs[name] = {}       # placeholder: a type may refer to itself one level down
            defs[name] = {"anyOf": [node(m, depth) for m in table[(tp, depth)]]}
        return {"$ref": f"#/$defs/{name}"}

    def node(m: MoveSpec, depth: int) -> dict:
        props: dict[str, Any] = {"op": {"const": m.name}}
        if not m.args:
            return {"type": "object", "properties": props, "required": ["op"], "additionalProperties": False}
        props["args"] = {"type": "array", "prefixItems": [ref(a, depth + 1) for a in m.args],
                         "minItems": len(m.args), "maxItems": len(m.args), "items": False}
        return {"type": "object", "properties": props, "required": ["op", "args"], "additionalProperties": False}

    return ref(grammar.root, 0), defs


def reply_schema(grammar: Grammar, max_depth: int, max_description_chars: int = MAX_DESCRIPTION_CHARS) -> dict:
    """The schema of a whole reply: a short description, then the program."""
    program, defs = program_schema(grammar, max_depth)
    return {
        "type": "object",
        "properties": {"description": {"type": "string", "minLength": 1, "maxLength": max_description_chars},
                       "program": program},
        "required": ["description", "program"],
        "additionalProperties": False,
        "$defs": defs,
    }
