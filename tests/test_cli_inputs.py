"""Bad option values are refused before any work: exit code 2 and one line naming the option.

Every count option of every command is a ``COUNT`` and every output file an ``OutputFile``
(``tailor_evo.commands.common``); the cases below are generated from the command tree, so a
new command or option is checked the day it is added.
"""

from __future__ import annotations

import click
import pytest

from tailor_evo.commands.common import Count, OutputFile
from tests.cli_helpers import leaf_commands, run_cli

# integer options that are not counts: any value is meaningful
NOT_COUNTS = {"seed"}
# output paths checked by the command itself, because what they may be depends on another option
OWN_OUTPUT_CHECK = {("data", "warmstart", "output")}       # a file, or a directory with --format datasets


def _options() -> list[tuple[list[str], click.Option]]:
    return [(path, p) for path, command in leaf_commands() for p in command.params if isinstance(p, click.Option)]


def _is_output(option: click.Option) -> bool:
    return bool({"-o", "--output", "--card"} & set(option.opts))


def _flag(option: click.Option) -> str:
    return max(option.opts, key=len)


COUNT_CASES = [(path + [_flag(o), value], _flag(o)) for path, o in _options() if isinstance(o.type, Count)
               for value in ("0", "-1")]
OUTPUT_CASES = [(path + [_flag(o), "out.csv"], _flag(o)) for path, o in _options()
                if isinstance(o.type, OutputFile)]


def test_every_count_and_output_option_uses_the_shared_types():
    wrong = []
    for path, option in _options():
        key = " ".join(path + [option.name or ""])
        if type(option.type) is click.types.IntParamType and option.name not in NOT_COUNTS:
            wrong.append(f"{key}: a plain integer (use COUNT)")
        if _is_output(option) and not isinstance(option.type, OutputFile) \
                and tuple(path + [option.name]) not in OWN_OUTPUT_CHECK:
            wrong.append(f"{key}: not an OutputFile")
    assert not wrong, wrong
    assert len(COUNT_CASES) >= 40 and len(OUTPUT_CASES) >= 6          # the walk found the commands


@pytest.mark.parametrize("argv, flag", COUNT_CASES + OUTPUT_CASES,
                         ids=lambda x: " ".join(x) if isinstance(x, list) else "")
def test_every_count_below_1_and_every_unwritable_output_exits_2_in_one_line(tmp_path, monkeypatch, capsys, argv,
                                                                            flag):
    monkeypatch.chdir(tmp_path)
    code, cap = run_cli(monkeypatch, capsys, argv)
    assert code == 2, cap
    err = cap.err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("error: ") and flag in err, err
    assert "must be 1 or more" in err or "no writer produces '.csv' files" in err, err
    assert list(tmp_path.iterdir()) == []                                       # refused before any work


@pytest.mark.parametrize("argv, needle", [
    (["data", "generate", "--task", "kk", "--n", "2", "-o", "g.csv"],
     "no writer produces '.csv' files; the output must end in .jsonl or .parquet"),
    (["data", "generate", "--task", "kk", "--n", "2", "-o", "g"], "the file name has no extension"),
    (["data", "generate", "--task", "kk", "--n", "0", "-o", "g.jsonl"], "'--n': must be 1 or more, got 0"),
    (["archive", "top", "RUN", "-k", "-1"], "'-k': must be 1 or more, got -1"),
    (["archive", "top", "RUN", "-k", "x"], "'-k': 'x' is not an integer"),
    (["archive", "lineage", "RUN", "abc", "--depth", "0"], "'--depth': must be 1 or more"),
    (["archive", "export", "RUN", "--format", "parquet", "-o", "a.jsonl"], "(--format parquet)"),
    (["archive", "export", "RUN", "-o", "a.txt"], "no writer produces '.txt' files"),
    (["data", "solve", "--task", "kk", "--input", "x.jsonl", "-o", "s.json"], "no writer produces '.json' files"),
    (["data", "score", "--task", "kk", "--input", "x.jsonl", "-o", "s.csv"], "no writer produces '.csv' files"),
    (["data", "warmstart", "--task", "kk", "--method", "rule-based", "-o", "w.csv"], "no writer produces"),
    (["data", "warmstart", "--task", "kk", "--method", "rule-based", "--size", "0", "-o", "w.jsonl"],
     "'--size': must be 1 or more"),
    (["generate", "--model", "tiny", "--input", "p.jsonl", "-o", "c.parquet"], "the output must end in .jsonl"),
    (["data", "warmstart", "--task", "kk", "--method", "rule-based", "-o", "w.jsonl", "--card", "c.txt"],
     "the output must end in .md"),
    (["eval", "--model", "tiny", "--out", "e", "--k", "0"], "'--k': must be 1 or more"),
    (["eval", "--model", "tiny", "--out", "e", "--n-per-level", "-3"], "'--n-per-level': must be 1 or more"),
    (["eval", "--model", "tiny", "--out", "e", "--samples", "0"], "'--samples': must be 1 or more"),
    (["search", "--task", "kk", "--out", "s", "--workers", "0"], "'--workers': must be 1 or more"),
    (["serve", "--model", "tiny", "--batch-size", "0"], "'--batch-size': must be 1 or more"),
])
def test_bad_counts_and_outputs_in_a_whole_command_line_exit_2_in_one_line(tmp_path, monkeypatch, capsys, argv,
                                                                          needle):
    monkeypatch.chdir(tmp_path)
    code, cap = run_cli(monkeypatch, capsys, argv)
    assert code == 2, cap
    assert len(cap.err.strip().splitlines()) == 1 and cap.err.startswith("error: ") and needle in cap.err, cap.err
    assert list(tmp_path.iterdir()) == []                                       # refused before any work
