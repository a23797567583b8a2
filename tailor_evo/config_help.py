"""Help text of every config setting, read from the comment beside (or above) its field.

Why from the comments: a config dataclass already explains each field where a reader of
the code looks for it, so the help a user reads (``tailor-evo ... --help-config``) is that
text, never a second copy that drifts from it. A field's help is its trailing comment
(with the comment lines aligned under it that continue it), else the block of comment
lines directly above it at the field's indentation; a field a subclass redeclares without
a comment keeps its base class's. ``tests/test_config_help.py`` fails on a field without one, so a new
setting cannot arrive undocumented.
"""

from __future__ import annotations

import ast
import dataclasses
import functools
import inspect
import io
import json
import textwrap
import tokenize
from typing import Any, NamedTuple


class SettingHelp(NamedTuple):
    key: str           # dotted, as ``--set`` takes it
    default: Any
    help: str


def field_help(cls: type) -> dict[str, str]:
    """Field name -> help text of dataclass ``cls``, base classes included (the nearest
    class in the MRO that comments a field wins); a field without a comment is left out."""
    out: dict[str, str] = {}
    for klass in reversed(cls.__mro__):
        if dataclasses.is_dataclass(klass):
            out.update(_own_comments(klass))
    return out


@functools.cache
def _own_comments(cls: type) -> dict[str, str]:
    """The comments of the fields ``cls`` itself declares (its class body only)."""
    try:
        source = textwrap.dedent(inspect.getsource(cls))
    except (OSError, TypeError):         # no source (a class built at run time): no help to read
        return {}
    tree = ast.parse(source)
    body = next(n for n in tree.body if isinstance(n, ast.ClassDef)).body
    comments = _comments(source)         # line -> (column, text, whole line)
    fields = [(n.target.id, n.lineno, n.end_lineno or n.lineno, n.col_offset) for n in body
              if isinstance(n, ast.AnnAssign) and isinstance(n.target, ast.Name) and not _is_classvar(n.annotation)]
    out: dict[str, str] = {}
    for name, first, last, indent in fields:
        trailing = [(line, comments[line]) for line in range(first, last + 1)
                    if line in comments and not comments[line][2]]
        parts = [text for _, (_, text, _) in trailing]
        if trailing:                     # lines aligned under the trailing comment continue it
            line, column = last + 1, trailing[-1][1][0]
            while line in comments and comments[line][2] and comments[line][0] == column:
                parts.append(comments[line][1])
                line += 1
        else:                            # else the block of comment lines directly above the field
            line, above = first - 1, []
            while line in comments and comments[line][2] and comments[line][0] == indent:
                above.insert(0, comments[line][1])
                line -= 1
            parts = above
        text = " ".join(p for p in parts if p)
        if text:
            out[name] = text
    return out


def _comments(source: str) -> dict[int, tuple[int, str, bool]]:
    """Line -> (column, text without '#', whether the comment is the whole line) of each comment."""
    lines = source.splitlines()
    out = {}
    for tok in tokenize.generate_tokens(io.StringIO(source).readline):
        if tok.type == tokenize.COMMENT:
            row, col = tok.start
            whole = not lines[row - 1][:col].strip()
            out[row] = (col, tok.string.lstrip("#").strip(), whole)
    return out


def _is_classvar(annotation: ast.expr) -> bool:
    node = annotation.value if isinstance(annotation, ast.Subscript) else annotation
    return (isinstance(node, ast.Name) and node.id == "ClassVar") or \
        (isinstance(node, ast.Attribute) and node.attr == "ClassVar") or \
        (isinstance(annotation, ast.Constant) and str(annotation.value).startswith("ClassVar"))


def settings_help(config: Any, prefix: str = "") -> list[SettingHelp]:
    """Every setting of ``config`` (a config dataclass, or an instance of one) with its default
    and help, nested configs walked with dotted keys. Defaults are read from the instance, so a
    section whose default its parent changes (the pipeline's ``sft``) shows the value that runs."""
    instance = config() if isinstance(config, type) else config
    helps = field_help(type(instance))
    out: list[SettingHelp] = []
    for f in dataclasses.fields(instance):
        value = getattr(instance, f.name)
        if dataclasses.is_dataclass(value) and not isinstance(value, type):
            out += settings_help(value, f"{prefix}{f.name}.")
        else:
            out.append(SettingHelp(f"{prefix}{f.name}", value, helps.get(f.name, "")))
    return out


def show_value(value: Any) -> str:
    """A default as ``--set`` would take it (YAML: null, true, [1, 2], a bare string)."""
    if isinstance(value, str):
        return value if value else '""'
    return json.dumps(value)


def format_settings_help(cls: type) -> str:
    """The text ``--help-config`` prints: ``key  (default: value)  help`` per setting."""
    rows = settings_help(cls)
    width = max(len(r.key) for r in rows)
    lines = [f"Settings of {cls.__name__} with their built-in defaults; --config FILE (YAML), --set KEY=VALUE "
             "and the command's own options change them.", ""]
    for r in rows:
        lines.append(f"{r.key:<{width}}  (default: {show_value(r.default)})  {r.help}".rstrip())
    return "\n".join(lines)

