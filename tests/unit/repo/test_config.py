"""The repo config: defaults, validation naming the offending key, the deny list's floor."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml

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
        ("lanch:\n  backend: local", "'lanch' is not a known key (did you mean 'launch'?)"),
        ("verify:\n  min_stepz: 3", "'verify.min_stepz' is not a known key (did you mean 'verify.min_steps'?)"),
        ("launch:\n  backend: k8s", "'launch.backend' must be one of 'local', 'command', 'slurm'"),
        ("fix:\n  max_attempts: true", "'fix.max_attempts' must be an integer, got bool True"),
        ("fix:\n  max_attempts: '3'", "'fix.max_attempts' must be an integer, got str '3'"),
        ("fix:\n  max_attempts: 0", "'fix.max_attempts' must be at least 1"),
        ("fix:\n  max_attempts:", "'fix.max_attempts' must not be empty"),
        ("fix:\n  denied_paths: null", "'fix.denied_paths' must not be empty"),
        ("fix:\n  allowed_paths: [1]", "'fix.allowed_paths[0]' must be a string"),
        ("verify:\n  timeout: .nan", "'verify.timeout' must be a finite number"),
        ("verify:\n  timeout: .inf", "'verify.timeout' must be a finite number"),
        ("verify:\n  timeout: -1", "'verify.timeout' must be more than 0"),
        ("launch: {command: [", "not valid YAML"),
    ],
)
def test_a_bad_file_names_the_key(text, message):
    with pytest.raises(BadInput) as err:
        repo_config.parse(text)
    assert message in str(err.value)
    assert str(err.value).startswith(".github/fix-and-relaunch.yml")


def test_every_problem_is_reported_at_once_with_its_line():
    text = (
        "launch:\n"
        "  comand: python train.py\n"
        "  backend: slurm\n"
        "  slurm:\n"
        "    partiton: gpu\n"
        "    time: true\n"
        "    extra: ['--exclusive', 'oops']\n"
        "  ray: {adress: 'http://head:8265', num_gpus: -1}\n"
        "  wandb: {queue: q, jbo: x}\n"
        "verify:\n"
        "  min_steps: 0\n"
    )
    with pytest.raises(repo_config.ConfigError) as err:
        repo_config.parse(text)
    lines = str(err.value).splitlines()
    assert lines == [
        ".github/fix-and-relaunch.yml:2: 'launch.comand' is not a known key (did you mean 'launch.command'?)",
        ".github/fix-and-relaunch.yml:5: 'launch.slurm.partiton' is not a known key "
        "(did you mean 'launch.slurm.partition'?)",
        ".github/fix-and-relaunch.yml:6: 'launch.slurm.time' must be an integer or a string, got bool True",
        ".github/fix-and-relaunch.yml:7: 'launch.slurm.extra[1]' must be one sbatch option starting with '-', "
        "on one line, got str 'oops'",
        ".github/fix-and-relaunch.yml:8: 'launch.ray.adress' is not a known key (did you mean 'launch.ray.address'?)",
        ".github/fix-and-relaunch.yml:8: 'launch.ray.num_gpus' must be at least 0, got int -1",
        ".github/fix-and-relaunch.yml:9: 'launch.wandb.jbo' is not a known key (did you mean 'launch.wandb.job'?)",
        ".github/fix-and-relaunch.yml:11: 'verify.min_steps' must be at least 1, got int 0",
    ]
    assert [p.path for p in err.value.problems][:2] == ["launch.comand", "launch.slurm.partiton"]
    assert repo_config.check(text) == err.value.problems
    assert repo_config.check("verify:\n  min_steps: 3\n") == []


def test_an_unknown_key_far_from_any_known_one_lists_them():
    problems = repo_config.check("launch:\n  zzz: 1\n")
    assert (
        problems[0].message
        == "is not a known key (known: backend, setup, install, command, slurm, ray, wandb, sandbox)"
    )


def test_backend_options_are_checked_by_the_file_and_passed_as_set():
    config = repo_config.parse("launch:\n  backend: slurm\n  slurm: {time: 60, partition: gpu, requeue: true}\n")
    assert config["launch"]["slurm"] == {"time": 60, "partition": "gpu", "requeue": True}
    assert config["launch"]["ray"] == {} and config["launch"]["wandb"] == {}
    assert repo_config.check("launch:\n  slurm: {partition: 'gpu; rm -rf /'}\n")[0].message.startswith(
        "must be one word of letters"
    )
    problems = repo_config.check("launch:\n  backend: wandb-launch\n  wandb: {queue: q}\n")
    assert [(p.path, p.message) for p in problems] == [
        ("launch", "needs exactly one of launch.wandb.job or launch.wandb.docker_image for backend wandb-launch")
    ]


def test_numbers_keep_their_type_and_empty_sections_mean_defaults():
    config = repo_config.parse("launch:\nverify:\n  timeout: 60\n  smoke_timeout: 2.5\n")
    assert config["verify"]["timeout"] == 60 and isinstance(config["verify"]["timeout"], int)
    assert config["verify"]["smoke_timeout"] == 2.5
    assert config["launch"] == repo_config.DEFAULTS["launch"]


@pytest.mark.parametrize(
    "text,message",
    [
        ("a: " + "[" * 5000 + "]" * 5000, "nested too deeply"),
        ("launch:\n  command: " + "x" * (2 * 1024 * 1024) + "\n", "is over 256 KiB"),
        (
            "a: &a [x, x, x, x, x, x, x, x, x, x]\n"
            + "".join(f"{n}: &{n} [{', '.join(['*' + p] * 10)}]\n" for p, n in zip("abcdefg", "bcdefgh", strict=True))
            + "launch: {command: *h}\n",
            "expands to more than",
        ),
    ],
)
def test_a_hostile_document_is_a_config_error_not_a_crash(text, message):
    with pytest.raises(repo_config.ConfigError, match=message):
        repo_config.parse(text)


def test_deep_nesting_is_refused_by_the_pure_python_loader_too(monkeypatch):
    from bot.repo import config_problems

    monkeypatch.setattr(config_problems, "_Loader", yaml.SafeLoader)  # PyYAML built without libyaml
    with pytest.raises(repo_config.ConfigError, match="nested too deeply"):
        repo_config.parse("a: " + "[" * 600 + "]" * 600)


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


def test_the_shipped_json_schema_is_the_models():
    shipped = Path(__file__).parents[3] / "docs" / "fix-and-relaunch.schema.json"
    assert shipped.read_text() == repo_config.json_schema(), (
        "regenerate it: fix-and-relaunch check-config --schema > docs/fix-and-relaunch.schema.json"
    )


def test_editors_validate_the_file_with_the_schema_as_the_bot_does():
    jsonschema = pytest.importorskip("jsonschema")
    schema = json.loads(repo_config.json_schema())
    readme = (Path(__file__).parents[3] / "README.md").read_text()
    examples = [block for block in re.findall(r"```yaml\n(.*?)```", readme, re.S) if "launch:" in block]
    assert len(examples) >= 4
    for example in examples:
        repo_config.parse(example)
        jsonschema.validate(yaml.safe_load(example), schema)
    bad = {"launch": {"comand": "python train.py", "slurm": {"cpus": True}}}
    assert len(list(jsonschema.Draft202012Validator(schema).iter_errors(bad))) == 2
