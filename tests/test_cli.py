import subprocess
import sys

from click.testing import CliRunner

from tailor_evo import __version__
from tailor_evo.cli import COMMANDS, cli


def test_help_lists_every_command_without_importing_them():
    result = CliRunner().invoke(cli, ["--help"])
    assert result.exit_code == 0
    for name in COMMANDS:
        assert name in result.output


def test_version():
    result = CliRunner().invoke(cli, ["--version"])
    assert result.exit_code == 0 and __version__ in result.output


def test_every_registered_command_imports():
    for name in COMMANDS:
        result = CliRunner().invoke(cli, [name, "--help"])
        assert result.exit_code == 0, (name, result.output, result.exception)


def test_run_help_names_the_pipeline_defaults():
    from tailor_evo.pipeline import PipelineConfig

    result = CliRunner().invoke(cli, ["run", "--help"], terminal_width=200)
    defaults = PipelineConfig()
    assert result.exit_code == 0
    for option, value in (("--task", defaults.task), ("--backbone", defaults.backbone), ("--method", defaults.method)):
        line = next(line for line in result.output.splitlines() if line.strip().startswith(option))
        assert f"(default {value}" in line, line


def test_console_entry_point_reports_user_errors_in_one_line(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "tailor_evo", "data", "score", "--task", "kk",
                           "--input", str(tmp_path / "missing.jsonl"), "-o", str(tmp_path / "o.jsonl")],
                          capture_output=True, text=True)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "missing.jsonl" in lines[0] and "not found" in lines[0]
