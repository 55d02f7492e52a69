"""A toy experiment repo with one branch per kind of failure, for end-to-end pipeline tests.

Every run is a real subprocess of `python main.py` launched by the bot's local launcher;
nothing here is mocked. Each branch breaks the baseline the way a real experiment would.
"""

from __future__ import annotations

import base64
import hashlib
import sys
import zipfile
from pathlib import Path

from tests.support.git_repos import commit_on_origin, git, make_origin

TRAIN_PY = """import time

from src.model import build


def train(config):
    with open(config["data_path"]) as f:
        rows = f.read().split()
    if config["batch_size"] > 64:
        raise RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB (GPU 0; 15.78 GiB total "
                           "capacity; 13.10 GiB already allocated; 1.20 GiB free)")
    model = build(len(rows))
    for step in range(config["steps"]):
        print(f"step {step} loss {1.0 / (step + 1):.4f} model {model}", flush=True)
        time.sleep(config.get("step_time", 0.01))
"""

MODEL_PY = """def build(size):
    return f"mlp-{size}"
"""

MAIN_PY = """from src.config import DEFAULTS
from src.train import train

if __name__ == "__main__":
    train(dict(DEFAULTS))
"""

CONFIG_PY = """DEFAULTS = {{
    "lr": 0.1,  # tuned on main
    "steps": 5,
    "batch_size": {batch_size},
    "data_path": "{data_path}",
}}
"""

REPO_CONFIG = """launch:
  command: {command}
{setup}verify:
  min_steps: 3
  timeout: 60
fix:
  max_attempts: {max_attempts}
"""


def repo_config(*, command: str | None = None, setup: str | None = None, max_attempts: int = 3) -> str:
    return REPO_CONFIG.format(
        command=command or f"{sys.executable} main.py",
        setup=f"  setup: {setup}\n" if setup else "",
        max_attempts=max_attempts,
    )


BASE_FILES = {
    "main.py": MAIN_PY,
    "src/__init__.py": "",
    "src/model.py": MODEL_PY,
    "src/train.py": TRAIN_PY,
    "src/config.py": CONFIG_PY.format(batch_size=32, data_path="data/train.csv"),
    "data/train.csv": "a\nb\nc\n",
    "requirements.txt": "# what the experiment needs\n",
    ".github/fix-and-relaunch.yml": repo_config(),
}


def doc(branch: str, text: str) -> dict[str, str]:
    return {f"docs/{branch}.md": f"# {branch}\n\n{text}\n"}


def wheel(wheelhouse: Path, name: str, version: str = "1.0") -> Path:
    """A real, minimal wheel of a pure-Python package, so pip can install it offline."""
    wheelhouse.mkdir(parents=True, exist_ok=True)
    dist = f"{name}-{version}.dist-info"
    files = {
        f"{name}/__init__.py": f'"""{name}, a stand-in library."""\nVERSION = "{version}"\n',
        f"{dist}/METADATA": f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n",
        f"{dist}/WHEEL": "Wheel-Version: 1.0\nGenerator: tests\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
    }
    record = "".join(f"{path},sha256={_digest(text)},{len(text.encode())}\n" for path, text in files.items())
    path = wheelhouse / f"{name}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(path, "w") as zf:
        for rel, text in files.items():
            zf.writestr(rel, text)
        zf.writestr(f"{dist}/RECORD", record + f"{dist}/RECORD,,\n")
    return path


def _digest(text: str) -> str:
    raw = hashlib.sha256(text.encode()).digest()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def branches(wheelhouse: Path) -> dict[str, dict[str, str]]:
    install = (
        f"{sys.executable} -m pip install -q --no-index --find-links {wheelhouse} --target .deps -r requirements.txt"
    )
    return {
        "exp-oom": {
            "src/config.py": CONFIG_PY.format(batch_size=128, data_path="data/train.csv"),
            **doc("exp-oom", "Bigger batches."),
        },
        "exp-data": {
            "src/config.py": CONFIG_PY.format(batch_size=32, data_path="data/trian.csv"),
            **doc("exp-data", "Point at the training split."),
        },
        "exp-config": {
            "src/train.py": TRAIN_PY.replace(
                "    model = build(len(rows))\n", '    model = build(len(rows))\n    warmup = config["warmup_steps"]\n'
            ),
            **doc("exp-config", "Add a warmup: warmup_steps=2 before the full learning rate."),
        },
        "exp-import": {
            "main.py": "import toyaug\n" + MAIN_PY,
            ".github/fix-and-relaunch.yml": repo_config(
                setup=install, command=f"PYTHONPATH=.deps {sys.executable} main.py"
            ),
            **doc("exp-import", "Augment the data with toyaug."),
        },
        "exp-localimport": {
            "src/train.py": TRAIN_PY.replace("from src.model import", "from src.modle import"),
            **doc("exp-localimport", "Refactor the model import."),
        },
        "exp-dry": {
            "src/train.py": TRAIN_PY.replace("from src.model import", "from src.modle import"),
            **doc("exp-dry", "The same typo, fixed only in a dry run."),
        },
        "exp-bug": {
            "src/train.py": TRAIN_PY.replace(
                "    model = build(len(rows))\n", "    model = build(len(rows))\n    width = len(5)\n"
            ),
            **doc("exp-bug", "A bug no rule can fix."),
        },
    }


PREEMPTIBLE_TRAIN_PY = (
    """import signal
import sys


def _preempted(signum, frame):
    # What PyTorch Lightning prints when the cluster sends SIGTERM before preempting a job.
    print("[rank: 0] Received SIGTERM: 15", flush=True)
    sys.exit(143)


signal.signal(signal.SIGTERM, _preempted)
"""
    + TRAIN_PY
)

BUGGY_TRAIN_PY = TRAIN_PY.replace(
    "    model = build(len(rows))\n",
    "    model = build(len(rows))\n"
    "    print(\"debug env:\", {k: v for k, v in __import__('os').environ.items() if 'TOKEN' in k})\n"
    "    width = len(5)\n",
)

LLM_CASES = ("good", "denied", "nomatch", "malformed", "overloaded", "secret", "hopeless", "human")


def extra_branches() -> dict[str, dict[str, str]]:
    slow = CONFIG_PY.format(batch_size=32, data_path="data/train.csv").replace(
        '"steps": 5,', '"steps": 8,\n    "step_time": 0.3,'
    )
    out = {
        "exp-ok": doc("exp-ok", "Same as main: trains fine."),
        "exp-slow": {"src/config.py": slow, **doc("exp-slow", "A run long enough to watch.")},
        "exp-badconfig": {
            ".github/fix-and-relaunch.yml": "verify:\n  min_stepz: 3\n",
            **doc("exp-badconfig", "A typo in the bot's config."),
        },
        "exp-preempt": {
            "src/train.py": PREEMPTIBLE_TRAIN_PY,
            "src/config.py": slow,
            **doc("exp-preempt", "Runs on a preemptible partition."),
        },
        "exp-resume": {
            "src/config.py": CONFIG_PY.format(batch_size=128, data_path="data/train.csv"),
            **doc("exp-resume", "Bigger batches, interrupted fixer."),
        },
        "exp-norelaunch": {
            "src/config.py": CONFIG_PY.format(batch_size=128, data_path="data/train.csv"),
            **doc("exp-norelaunch", "Bigger batches, fixed now, run later."),
        },
        "exp-cli-resume": {
            "src/config.py": slow.replace('"batch_size": 32', '"batch_size": 128'),
            **doc("exp-cli-resume", "Bigger, slower batches; the fixer is stopped."),
        },
        "exp-unpushed": {
            "src/config.py": CONFIG_PY.format(batch_size=128, data_path="data/train.csv"),
            **doc("exp-unpushed", "Bigger batches; the remote refuses the first push."),
        },
        "exp-cancel": {
            "src/config.py": CONFIG_PY.format(batch_size=128, data_path="data/train.csv"),
            **doc("exp-cancel", "Bigger batches; the PR gets closed."),
        },
        "exp-revert": {
            "src/config.py": CONFIG_PY.format(batch_size=128, data_path="data/train.csv"),
            **doc("exp-revert", "Bigger batches, and a human who disagrees with the bot."),
        },
        "exp-oom-stuck": {
            "src/config.py": CONFIG_PY.format(batch_size=256, data_path="data/train.csv"),
            **doc("exp-oom-stuck", "Much bigger batches: halving once is not enough."),
        },
        "exp-cleanup": {
            "src/config.py": CONFIG_PY.format(batch_size=128, data_path="data/train.csv"),
            ".github/fix-and-relaunch.yml": repo_config() + "  delete_failed_run: true\n",
            **doc("exp-cleanup", "Bigger batches; failed runs are deleted once fixed."),
        },
        "exp-human-config": {
            "src/config.py": CONFIG_PY.format(batch_size=128, data_path="data/train.csv"),
            **doc("exp-human-config", "Bigger batches; a human tries a fix after the crash."),
        },
        "exp-human-readme": {
            "src/config.py": CONFIG_PY.format(batch_size=128, data_path="data/train.csv"),
            **doc("exp-human-readme", "Bigger batches; a human edits the notes after the crash."),
        },
    }
    for case in LLM_CASES:
        out[f"exp-llm-{case}"] = {"src/train.py": BUGGY_TRAIN_PY, **doc(f"exp-llm-{case}", "A new feature.")}
    return out


def build(tmp: Path) -> tuple[Path, Path]:
    """(bare origin, working clone) with every failure branch pushed."""
    wheelhouse = tmp / "wheelhouse"
    wheel(wheelhouse, "toyaug")
    return make_origin(tmp, BASE_FILES, {**branches(wheelhouse), **extra_branches()})


def stacked_branches(origin: Path) -> str:
    """Push exp-warmup (off main: adds `warmup_steps` to the config and uses it) and exp-tidy,
    stacked on it, whose tidied config dropped the key; exp-tidy's head. Only exp-warmup's
    config holds the value a fix of exp-tidy must restore."""
    train = TRAIN_PY.replace("    model = build(len(rows))\n", "    model = build(config['warmup_steps'])\n")
    config = CONFIG_PY.format(batch_size=32, data_path="data/train.csv")
    with_warmup = config.replace('"steps": 5,', '"steps": 5,\n    "warmup_steps": 3,')
    git(origin, "branch", "exp-warmup", "main")
    commit_on_origin(origin, "exp-warmup", {"src/train.py": train, "src/config.py": with_warmup}, "Add a warmup")
    git(origin, "branch", "exp-tidy", "exp-warmup")
    return commit_on_origin(origin, "exp-tidy", {"src/config.py": config}, "Tidy the config")
