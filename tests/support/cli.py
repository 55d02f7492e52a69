"""The command line as a test runs it: in-process, its output captured by pytest."""

from __future__ import annotations

import json
from typing import Any

import pytest

from bot.cli.main import main as cli


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    """Exit status, stdout and stderr of `python -m bot ARGS`."""
    code = cli(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def run_json(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, Any]:
    """Exit status and the parsed stdout of a `--json` command."""
    code, out, _ = run(capsys, *args)
    return code, json.loads(out)
