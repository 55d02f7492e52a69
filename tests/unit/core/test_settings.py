"""Settings are read from the environment once, by name, and nothing reads it at import time."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from bot.core.errors import BadInput
from bot.core.settings import MIN_SECRET_LENGTH, Settings
from tests.support.paths import REPO_ROOT

ROOT = REPO_ROOT


def test_every_documented_name_is_read(tmp_path: Path):
    key_file = tmp_path / "app.pem"
    key_file.write_text("-----BEGIN RSA PRIVATE KEY-----abc")
    env = {
        "WANDB_API_KEY": "w" * 40,
        "WANDB_BASE_URL": "http://wandb.local",
        "WANDB_ENTITY": "team",
        "WANDB_PROJECT": "vision",
        "ANTHROPIC_API_KEY": " sk-ant-x-0123456789 ",
        "ANTHROPIC_BASE_URL": "http://llm.local",
        "ANTHROPIC_MODEL": "claude-test",
        "GITHUB_APP_ID": "42",
        "GITHUB_PRIVATE_KEY_PATH": str(key_file),
        "GITHUB_WEBHOOK_SECRET": "hook-secret-0123456789",
        "GITHUB_API_URL": "http://gh.local/api/",
        "WANDB_WEBHOOK_SECRET": "wandb-secret-0123456789",
        "GITHUB_GIT_URL": "http://git.local/{repo}.git",
        "FIX_AND_RELAUNCH_STATE_DIR": str(tmp_path / "s"),
    }

    settings = Settings.from_env(env)

    assert (settings.wandb_api_key, settings.wandb_base_url, settings.wandb_entity, settings.wandb_project) == (
        "w" * 40,
        "http://wandb.local",
        "team",
        "vision",
    )
    assert (settings.anthropic_api_key, settings.anthropic_base_url, settings.anthropic_model) == (
        "sk-ant-x-0123456789",
        "http://llm.local",
        "claude-test",
    )
    assert settings.github_app_id == "42" and settings.github_private_key == "-----BEGIN RSA PRIVATE KEY-----abc"
    assert settings.github_api_url == "http://gh.local/api" and settings.github_git_url == "http://git.local/{repo}.git"
    assert (settings.github_webhook_secret, settings.wandb_webhook_secret) == (
        "hook-secret-0123456789",
        "wandb-secret-0123456789",
    )
    assert settings.state_dir == tmp_path / "s" and settings.online_wandb


@pytest.mark.parametrize(
    "name", ["WANDB_WEBHOOK_SECRET", "GITHUB_WEBHOOK_SECRET", "WANDB_API_KEY", "ANTHROPIC_API_KEY"]
)
def test_a_secret_too_short_to_be_one_is_refused_by_name_never_by_value(name, tmp_path: Path):
    with pytest.raises(BadInput) as refused:
        Settings.from_env({"HOME": str(tmp_path), name: "s"})
    message = str(refused.value)
    assert f"{name} is 1 character long" in message and f"at least {MIN_SECRET_LENGTH} characters" in message
    assert Settings.from_env({"HOME": str(tmp_path), name: "s" * MIN_SECRET_LENGTH}).secrets() == ["s" * 16]


def test_every_command_refuses_a_short_secret_with_exit_2(tmp_path: Path):
    import os

    env = {**os.environ, "HOME": str(tmp_path), "WANDB_WEBHOOK_SECRET": "s"}
    for command in (["serve"], ["runs"], ["diagnose", "--log", str(tmp_path / "none.log")]):
        done = subprocess.run(
            [sys.executable, "-m", "bot", *command], cwd=ROOT, env=env, capture_output=True, text=True
        )
        assert done.returncode == 2, (command, done.stderr)
        assert "WANDB_WEBHOOK_SECRET is 1 character long" in done.stderr and "[REDACTED]" not in done.stderr


def test_no_credentials_means_the_embedded_defaults(tmp_path: Path):
    settings = Settings.from_env({"HOME": str(tmp_path)})
    assert settings.state_dir == tmp_path / ".local" / "state" / "fix-and-relaunch"
    assert not settings.online_wandb and settings.anthropic_api_key is None and settings.secrets() == []
    assert settings.anthropic_model == Settings.anthropic_model
    assert Settings.from_env({"XDG_STATE_HOME": str(tmp_path / "x")}).state_dir == tmp_path / "x" / "fix-and-relaunch"


def test_importing_every_module_reads_no_environment():
    # Libraries may read their own variables; only reads from our code, at import, fail.
    probe = """
import os, sys, pkgutil, importlib
OURS = (os.path.abspath("bot") + os.sep, os.path.abspath("handlers") + os.sep)
class Watched(dict):
    def _check(self, k):
        for depth in (2, 3):   # the reader, or the caller of os.getenv
            if sys._getframe(depth).f_code.co_filename.startswith(OURS):
                raise SystemExit(f"read {k} at import")
    def __getitem__(self, k):
        self._check(k)
        return dict.__getitem__(self, k)
    def get(self, k, d=None):
        self._check(k)
        return dict.get(self, k, d)
os.environ = Watched(os.environ)
import bot, handlers
for pkg in (bot, handlers):
    for info in pkgutil.walk_packages(pkg.__path__, pkg.__name__ + "."):
        if info.name not in ("bot.__main__",):
            importlib.import_module(info.name)
print("ok")
"""
    done = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr[-2000:]
