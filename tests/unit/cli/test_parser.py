"""The command line's surface: --version, the defaults, and the environment each --help lists."""

from __future__ import annotations

from collections.abc import Iterator, Mapping

import pytest

from bot.cli import environment
from bot.cli.main import COMMANDS, main
from bot.cli.parser import build_parser, package_version
from bot.core.settings import Settings


def test_version(capsys):
    with pytest.raises(SystemExit) as done:
        main(["--version"])
    assert done.value.code == 0
    assert capsys.readouterr().out.strip() == f"fix-and-relaunch {package_version()}"
    assert package_version() != "unknown"


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_each_commands_help_lists_the_environment_it_reads(capsys, command):
    with pytest.raises(SystemExit):
        main([command, "--help"])
    text = capsys.readouterr().out
    assert "environment:" in text
    for name in environment.COMMANDS[command]:
        assert name in text, f"{command} --help does not list {name}"
    assert "to redact them" in text


def test_serve_lists_what_it_needs():
    assert {"GITHUB_APP_ID", "GITHUB_WEBHOOK_SECRET", "WANDB_WEBHOOK_SECRET"} <= set(environment.COMMANDS["serve"])


class Recording(Mapping[str, str]):
    """An environment that remembers every name asked for."""

    def __init__(self) -> None:
        self.asked: set[str] = set()

    def __getitem__(self, key: str) -> str:
        self.asked.add(key)
        raise KeyError(key)

    def get(self, key, default=None):  # type: ignore[override]
        self.asked.add(key)
        return default

    def __iter__(self) -> Iterator[str]:
        return iter(())

    def __len__(self) -> int:
        return 0


def test_every_variable_the_settings_read_is_documented_for_some_command():
    env = Recording()
    Settings.from_env(env)
    documented = {name for names in environment.COMMANDS.values() for name in names} | set(environment.SECRETS)
    assert env.asked, "Settings.from_env read nothing"
    assert env.asked <= documented, f"undocumented: {sorted(env.asked - documented)}"
    assert set(COMMANDS) == set(environment.COMMANDS)


def test_repo_and_branch_default_to_the_current_checkout():
    args = build_parser().parse_args(["fix"])
    assert str(args.repo) == "." and args.branch is None and args.run is None and not args.quiet
    args = build_parser().parse_args(["diagnose", "--run", "abc", "--json"])
    assert args.run == "abc" and args.json
    args = build_parser().parse_args(["launch", "-q", "--wait"])
    assert args.quiet and args.wait
