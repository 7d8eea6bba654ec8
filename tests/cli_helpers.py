"""Running the CLI as a user would, in-process, and reading its one-line errors."""

from __future__ import annotations

from typing import Any

from typer.testing import CliRunner, Result

from costsim.cli import app

runner = CliRunner()


def run(*args: object, **kwargs: Any) -> Result:
    """``costsim ARGS...`` (each argument turned into text)."""
    return runner.invoke(app, [str(a) for a in args], **kwargs)


def one_error(result: Result, *fragments: str) -> str:
    """The single ``error:`` line of a bad-input run (exit 2, no traceback), holding every
    fragment."""
    assert result.exit_code == 2, (result.exit_code, result.stdout, result.stderr)
    assert "Traceback" not in result.stdout + result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    return lines[0]
