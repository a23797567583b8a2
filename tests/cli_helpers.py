"""Running the ``tailor-evo`` command line inside a test, and walking its command tree.

``run_cli`` goes through ``tailor_evo.cli.main``, the console entry point, so a test sees
the exit code and the one-line error a user sees (click's test runner would bypass it).
"""

from __future__ import annotations

import sys

import click


def run_cli(monkeypatch, capsys, argv: list[str]):
    """(exit code, captured stdout/stderr) of ``tailor-evo ARGV``."""
    from tailor_evo.cli import main

    monkeypatch.setattr(sys, "argv", ["tailor-evo", *argv])
    try:
        main()
        code = 0
    except SystemExit as exc:
        code = exc.code
    return code, capsys.readouterr()


def leaf_commands() -> list[tuple[list[str], click.Command]]:
    """(path, command) of every command that runs something (``["archive", "top"]``, ...)."""
    from tailor_evo.cli import cli

    out: list[tuple[list[str], click.Command]] = []

    def walk(group: click.Group, path: list[str]) -> None:
        ctx = click.Context(group)
        for name in group.list_commands(ctx):
            command = group.get_command(ctx, name)
            if isinstance(command, click.Group):
                walk(command, path + [name])
            elif command is not None:
                out.append((path + [name], command))

    walk(cli, [])
    return out
