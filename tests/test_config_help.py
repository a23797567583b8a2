"""Every config setting has help text, read from its field's comment, and ``--help-config``
prints every setting with its default (tailor_evo.config_help)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import ClassVar

import pytest
from click.testing import CliRunner

from tailor_evo.cli import cli
from tailor_evo.config_help import field_help, format_settings_help, settings_help
from tests.cli_helpers import leaf_commands
from tests.test_config_domains import TOP


@dataclass
class _Inner:
    depth: int = 3                  # how deep
    # a comment block above a field
    # that goes on for two lines
    width: float = 0.5


@dataclass
class _Outer:
    # a comment that belongs to the class variable, not to a field
    SAFE: ClassVar[tuple[str, ...]] = ("a",)
    name: str = "x"                 # a trailing comment
                                    # continued on the next line
    size: int = 4
    inner: _Inner = field(default_factory=lambda: _Inner(depth=7))
    undocumented: bool = False


@dataclass
class _Child(_Outer):
    name: str = "y"
    size: int = 8                   # the child's own words


def test_comments_become_help_text():
    helps = field_help(_Outer)
    assert helps == {"name": "a trailing comment continued on the next line"}    # size has none; SAFE is no field
    assert field_help(_Inner) == {"depth": "how deep",
                                  "width": "a comment block above a field that goes on for two lines"}


def test_a_subclass_keeps_its_bases_help_unless_it_comments_the_field_itself():
    helps = field_help(_Child)
    assert helps["name"] == "a trailing comment continued on the next line" and helps["size"] == "the child's own words"


def test_nested_configs_get_dotted_keys_and_the_defaults_that_run():
    rows = {r.key: r for r in settings_help(_Child)}
    assert list(rows) == ["name", "size", "inner.depth", "inner.width", "undocumented"]
    assert (rows["name"].default, rows["size"].default, rows["inner.depth"].default) == ("y", 8, 7)
    assert rows["inner.width"].help.startswith("a comment block") and rows["undocumented"].help == ""
    text = format_settings_help(_Child)
    assert re.search(r"^inner\.depth +\(default: 7\)  how deep$", text, re.M)
    assert re.search(r"^undocumented +\(default: false\)$", text, re.M)


@pytest.mark.parametrize("cls", TOP, ids=lambda c: c.__name__)
def test_every_setting_of_every_config_has_help_text(cls):
    missing = [r.key for r in settings_help(cls) if not r.help.strip()]
    assert not missing, f"{cls.__name__}: settings without a comment (their help text): {missing}"


def _help_config(path: list[str]):
    return CliRunner().invoke(cli, [*path, "--help-config"])


CONFIG_COMMANDS = [path for path, command in leaf_commands() if any(p.name == "config_path" for p in command.params)]


def test_every_command_with_a_config_offers_help_config():
    assert len(CONFIG_COMMANDS) >= 8                                # search, train sft/rl, eval, run, ...
    for path, command in leaf_commands():
        names = {p.name for p in command.params}
        assert ("config_path" in names) == ("overrides" in names), path
        has_help = any("--help-config" in getattr(p, "opts", ()) for p in command.params)
        assert has_help == ("config_path" in names), path


@pytest.mark.parametrize("path", CONFIG_COMMANDS, ids=" ".join)
def test_help_config_lists_every_setting_with_its_default_and_help(path):
    result = _help_config(path)
    assert result.exit_code == 0, result.output
    rows = [line for line in result.output.splitlines()[2:] if line.strip()]
    assert len(rows) >= 10
    for line in rows:
        assert re.match(r"^[\w.]+ +\(default: .*\)  \S", line), line


@pytest.mark.parametrize("path, expected", [
    (["train", "rl"], [("group_size", "8"), ("eps_high", "0.2"), ("lora.r", "8"), ("eval.every", "10")]),
    (["run"], [("rl.steps", "4"), ("search.evolution.generations", "6"), ("warmstart.size", "4000"),
               ("backbone", "tiny-base")]),
    (["data", "warmstart"], [("size", "512"), ("n_problems", "null")]),
])
def test_help_config_shows_known_keys_with_their_defaults(path, expected):
    output = _help_config(path).output
    for key, default in expected:
        assert re.search(rf"^{re.escape(key)} +\(default: {re.escape(default)}\)  \S", output, re.M), (key, output)


def test_help_config_needs_no_required_option():
    result = _help_config(["search"])                               # --out is required for a search
    assert result.exit_code == 0 and "novelty.k" in result.output
