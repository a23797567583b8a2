"""No function of the package is longer than 80 lines, found from the source with ``ast``.

A function's length runs from its ``def`` line to its last line, docstring and nested
functions included: a long function is read as one, whatever it nests. The package is
every folder ``pyproject.toml`` installs (``package-dir`` maps ``search/``, ``trainers/``
and ``populations/`` into ``tailor_evo``) plus the task plugins under ``plugins/``.

``python tests/test_function_length.py [N]`` lists the N longest (default 10).
"""

from __future__ import annotations

import ast
import sys
from dataclasses import dataclass
from pathlib import Path

import tomllib

ROOT = Path(__file__).resolve().parents[1]
LIMIT = 80


@dataclass(frozen=True)
class FunctionSize:
    lines: int
    path: str             # relative to the repository root
    line: int
    name: str             # qualified by its enclosing classes and functions

    def __str__(self) -> str:
        return f"{self.lines:4d}  {self.path}:{self.line}  {self.name}"


def package_folders() -> list[Path]:
    """The folders whose modules the installed package (and its plugins) is made of."""
    setuptools = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["tool"]["setuptools"]
    mapped = setuptools.get("package-dir", {})
    tops = {name.split(".")[0] for name in setuptools["packages"] if name not in mapped}
    folders = {ROOT / top for top in tops} | {ROOT / folder for folder in mapped.values()}
    folders |= {p.parent for p in (ROOT / "plugins").glob("*/pyproject.toml")}
    return sorted(f for f in folders if f.is_dir())


def _sizes(tree: ast.AST, path: str, prefix: str = "") -> list[FunctionSize]:
    out = []
    for node in ast.iter_child_nodes(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            name = prefix + node.name
            out.append(FunctionSize(node.end_lineno - node.lineno + 1, path, node.lineno, name))
            out += _sizes(node, path, name + ".")
        elif isinstance(node, ast.ClassDef):
            out += _sizes(node, path, prefix + node.name + ".")
        else:
            out += _sizes(node, path, prefix)
    return out


def function_sizes() -> list[FunctionSize]:
    """Every function and method of the package, longest first."""
    sizes = []
    for folder in package_folders():
        for path in sorted(folder.rglob("*.py")):
            if ".venv" in path.parts or "build" in path.parts:
                continue
            tree = ast.parse(path.read_text(encoding="utf-8"))
            sizes += _sizes(tree, str(path.relative_to(ROOT)))
    return sorted(sizes, key=lambda s: (-s.lines, s.path, s.line))


def test_the_package_folders_are_found():
    names = {f.name for f in package_folders()}
    assert {"tailor_evo", "search", "trainers", "populations"} <= names


def test_no_function_is_longer_than_the_limit():
    long = [s for s in function_sizes() if s.lines > LIMIT]
    assert not long, f"functions over {LIMIT} lines (split them):\n" + "\n".join(map(str, long))


if __name__ == "__main__":
    for size in function_sizes()[: int(sys.argv[1]) if len(sys.argv) > 1 else 10]:
        print(size)
