"""The repo config: defaults, validation naming the offending key, the deny list's floor."""

from __future__ import annotations

import pytest

from bot.core.errors import BadInput
from bot.repo import config as repo_config


def test_an_absent_or_empty_file_means_the_defaults(tmp_path):
    assert repo_config.load(tmp_path) == repo_config.parse("") == repo_config.parse("# nothing\n")
    config = repo_config.load(tmp_path)
    assert config["launch"]["backend"] == "local" and config["fix"]["max_attempts"] == 3
    assert config["wandb"]["branch_key"] == "branch"


def test_given_keys_override_and_the_rest_stay_default(tmp_path):
    (tmp_path / ".github").mkdir()
    (tmp_path / ".github" / "fix-and-relaunch.yml").write_text(
        "launch:\n  backend: slurm\n  command: python train.py\nverify:\n  min_steps: 5\nwandb:\n  entity: team\n"
    )
    config = repo_config.load(tmp_path)
    assert config["launch"] == {**repo_config.DEFAULTS["launch"], "backend": "slurm", "command": "python train.py"}
    assert config["verify"]["min_steps"] == 5 and config["verify"]["timeout"] == 900
    assert config["wandb"]["entity"] == "team"


@pytest.mark.parametrize(
    "text,message",
    [
        ("launch: [1]", "'launch' must be a mapping"),
        ("- a\n- b", "the top level must be a mapping"),
        ("lanch:\n  backend: local", "unknown key 'lanch'"),
        ("verify:\n  min_stepz: 3", "unknown key 'verify.min_stepz'"),
        ("launch:\n  backend: k8s", "'launch.backend' must be one of"),
        ("fix:\n  max_attempts: true", "'fix.max_attempts' must be int, got bool"),
        ("fix:\n  max_attempts: 0", "'fix.max_attempts' must be at least 1"),
        ("fix:\n  max_attempts:", "'fix.max_attempts' must not be empty"),
        ("fix:\n  denied_paths: null", "'fix.denied_paths' must not be empty"),
        ("fix:\n  allowed_paths: [1]", "'fix.allowed_paths' must be a list of glob strings"),
        ("verify:\n  timeout: .nan", "'verify.timeout' must be a positive number of seconds"),
        ("verify:\n  timeout: .inf", "'verify.timeout' must be a positive number of seconds"),
        ("verify:\n  timeout: -1", "'verify.timeout' must be a positive number of seconds"),
        ("launch: {command: [", "not valid YAML"),
    ],
)
def test_a_bad_file_names_the_key(text, message):
    with pytest.raises(BadInput) as err:
        repo_config.parse(text)
    assert message in str(err.value)
    assert str(err.value).startswith(".github/fix-and-relaunch.yml: ")


def test_the_deny_list_cannot_be_narrowed_below_its_floor():
    config = repo_config.parse("fix:\n  denied_paths: ['secrets/**']\n")
    assert config["fix"]["denied_paths"][: len(repo_config.ALWAYS_DENIED)] == list(repo_config.ALWAYS_DENIED)
    assert "secrets/**" in config["fix"]["denied_paths"]
    assert repo_config.parse("fix:\n  denied_paths: []\n")["fix"]["denied_paths"] == list(repo_config.ALWAYS_DENIED)


def test_a_linked_config_is_refused_and_broken_yaml_is_not_quoted(tmp_path):
    secret = tmp_path / "elsewhere.yml"
    secret.write_text("db:\n  password: hunter2: [oops\n")
    repo = tmp_path / "repo"
    (repo / ".github").mkdir(parents=True)
    (repo / ".github" / "fix-and-relaunch.yml").symlink_to(secret)
    with pytest.raises(BadInput, match="must be a file of the repository"):
        repo_config.load(repo)
    with pytest.raises(BadInput) as err:
        repo_config.parse(secret.read_text())
    assert "line 2, column" in str(err.value) and "hunter2" not in str(err.value)
