"""The prompt follows a failure to its source: declaration sites of the names in it, the launch
command with the scripts and config files it uses, and the branch diff with code first."""

from __future__ import annotations

import copy
import subprocess
from pathlib import Path

from bot.core.settings import Settings
from bot.diagnosis.model import ConfigKey, Diagnosis, KeyProblem
from bot.fixers.llm import sources
from bot.fixers.llm.prompt import build_context
from bot.fixers.model import FixContext
from bot.repo.config import DEFAULTS

PARSER = (
    "import argparse\n\nparser = argparse.ArgumentParser()\n"
    + "".join(f"parser.add_argument('--flag-{i}', type=int, default={i})\n" for i in range(30))
    + "parser.add_argument('--weight-decay', type=float, default=0.01)\nargs = parser.parse_args()\n"
    + ("x = 1\n" * 600)
    + "print(args.warmup_steps)\n"
)
DATACLASS = (
    '''from dataclasses import dataclass


@dataclass
class Args:
    seed: int = 1
    ent_coef: float = 0.01
    """coefficient of the entropy"""
    vf_coef: float = 0.5
'''
    + "y = 2\n" * 600
    + "args = Args()\nprint(args.ent_coef_final)\n"
)


def git(root: Path, *args: str) -> None:
    subprocess.run(["git", *args], cwd=root, check=True, capture_output=True)


def make_repo(tmp_path: Path, files: dict[str, str], branch_files: dict[str, str] | None = None) -> Path:
    root = tmp_path / "repo"
    for rel, text in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)
    git(root, "init", "-q", "-b", "main")
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "base")
    git(root, "checkout", "-q", "-b", "exp/x")
    for rel, text in (branch_files or {}).items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "exp", "--allow-empty")
    return root


def ctx(root: Path, diagnosis: Diagnosis, command: str) -> FixContext:
    config = copy.deepcopy(DEFAULTS)
    config["launch"]["command"] = command
    return FixContext(worktree=root, branch="exp/x", diagnosis=diagnosis, config=config, base_branch="main")


def rendered(fix_ctx: FixContext) -> str:
    return build_context(fix_ctx, Settings()).render()


def test_a_missing_argparse_argument_shows_the_end_of_the_parser(tmp_path):
    root = make_repo(tmp_path, {"train.py": PARSER})
    d = Diagnosis(
        "config_error",
        False,
        exception={"type": "AttributeError", "message": "'Namespace' object has no attribute 'warmup_steps'"},
        location={"file": "train.py", "line": 637, "function": "<module>"},
        config_key=ConfigKey("warmup_steps", KeyProblem.MISSING),
    )
    text = rendered(ctx(root, d, "python train.py"))
    assert "parser.add_argument('--weight-decay', type=float, default=0.01)" in text
    assert "the end of its add_argument calls" in text


def test_a_missing_dataclass_field_shows_its_neighbour(tmp_path):
    root = make_repo(tmp_path, {"ppo.py": DATACLASS})
    d = Diagnosis(
        "config_error",
        False,
        exception={"type": "AttributeError", "message": "'Args' object has no attribute 'ent_coef_final'"},
        location={"file": "ppo.py", "line": 613, "function": "<module>"},
        config_key=ConfigKey("ent_coef_final", KeyProblem.MISSING),
    )
    text = rendered(ctx(root, d, "python ppo.py"))
    assert '    """coefficient of the entropy"""' in text
    assert "a neighbour of ent_coef_final" in text


def test_a_misspelt_flag_in_a_launch_script_shows_the_script_and_the_declaration(tmp_path):
    files = {
        "train.py": PARSER.replace("--flag-3", "--batch-size"),
        "scripts/train.sh": "#!/bin/bash\npython train.py --batch_size 64\n",
    }
    root = make_repo(tmp_path, files)
    d = Diagnosis(
        "config_error",
        False,
        exception={"type": "SystemExit", "message": "train.py: error: unrecognized arguments: --batch_size 64"},
        config_key=ConfigKey("batch_size", KeyProblem.UNKNOWN, flag="--batch_size"),
    )
    text = rendered(ctx(root, d, "bash scripts/train.sh"))
    assert '<section name="run_file:scripts/train.sh"' in text and "python train.py --batch_size 64" in text
    assert "parser.add_argument('--batch-size', type=int, default=3)" in text
    assert '<section name="launch"' in text and "command: bash scripts/train.sh" in text


def test_hydra_primary_config_and_experiment_file_are_shown(tmp_path):
    files = {
        "src/train.py": '@hydra.main(version_base="1.3", config_path="../configs", config_name="train.yaml")\ndef main(cfg): ...\n',
        "configs/train.yaml": "defaults:\n  - _self_\n\nseed: null\n",
        "configs/experiment/tiny.yaml": "trainer:\n  max_epochs: 1\n",
    }
    root = make_repo(tmp_path, files)
    d = Diagnosis(
        "config_error",
        False,
        exception={"type": "ConfigAttributeError", "message": "Key 'matmul_precision' is not in struct"},
        config_key=ConfigKey("matmul_precision", KeyProblem.MISSING),
    )
    text = rendered(ctx(root, d, "python src/train.py experiment=tiny"))
    assert '<section name="run_file:configs/train.yaml"' in text and "seed: null" in text
    assert '<section name="run_file:configs/experiment/tiny.yaml"' in text


def test_the_branch_diff_puts_code_before_data(tmp_path):
    root = make_repo(
        tmp_path,
        {"main.py": "lr = 0.1\n"},
        {"aaa_data.csv": "".join(f"{i},{i * 2}\n" for i in range(5_000)), "main.py": "lr = 10.0\n"},
    )
    d = Diagnosis("nan_loss", False, summary="loss diverged")
    text = rendered(ctx(root, d, "python main.py"))
    diff = text.split('<section name="branch_diff"')[1].split("</section>")[0]
    assert "+lr = 10.0" in diff
    assert diff.index("main.py") < diff.index("aaa_data.csv")


def test_names_from_the_failure():
    d = Diagnosis(
        "config_error",
        False,
        exception={"type": "X", "message": "Could not override 'data.batchsize'. unrecognized --num-env 8"},
        config_key=ConfigKey("data.batchsize", KeyProblem.UNKNOWN),
    )
    names = sources.failure_names(FixContext(worktree=Path("."), branch="b", diagnosis=d, config={}))
    assert names[:1] == ["data.batchsize"] and "num-env" in names
    assert sources.relation("batch_size", "data.batchsize") == (8.0, "declares batch_size, spelled like data.batchsize")
    assert sources.relation("num_envs", "num-env") is not None
    assert sources.relation("seed", "num-env") is None
