"""The repo config `.github/fix-and-relaunch.yml`: parsed, validated, defaults filled in.

Every key is optional. A bad file raises `BadInput` naming the offending key, so the bot
reports it instead of running on a guess.
"""

from __future__ import annotations

import copy
import math
from pathlib import Path
from typing import Any

import yaml

from bot.core.errors import BadInput
from bot.launchers.sandbox.policy import SandboxSpec

CONFIG_PATH = ".github/fix-and-relaunch.yml"
# Never edited by a fix, whatever the repo config says: CI, git's own files, the bot's config.
ALWAYS_DENIED = (".github/**", ".git/**", ".gitmodules", ".gitattributes")
MAX_CONFIG_CHARS = 256 * 1024  # a real config is a few hundred bytes; this bounds parse time and memory
BACKENDS = ("local", "command", "slurm", "ray", "wandb-launch")

DEFAULTS: dict[str, Any] = {
    "launch": {
        "backend": "local",
        "setup": None,
        "install": True,  # local backend, no setup: install what the repo declares (bot/launchers/jobenv.py)
        "command": "python main.py",
        "slurm": {},
        "ray": {},
        "wandb": {},
        "sandbox": "auto",  # auto | on | off, or a mapping: see bot/launchers/sandbox/policy.py
    },
    "verify": {"min_steps": 20, "timeout": 900, "smoke": None, "smoke_timeout": 300},
    "fix": {
        "max_attempts": 3,
        "allowed_paths": ["**/*.py", "requirements*.txt", "configs/**", "docs/**"],
        "denied_paths": [".github/**"],
        "delete_failed_run": False,
        "max_patch_lines": 200,
    },
    "wandb": {"entity": None, "project": None, "branch_key": "branch"},
}

# key -> the types its value may have; None allowed where the default is None.
_TYPES: dict[str, tuple[type, ...]] = {
    "launch.backend": (str,),
    "launch.setup": (str,),
    "launch.install": (bool,),
    "launch.command": (str,),
    "launch.slurm": (dict,),
    "launch.ray": (dict,),
    "launch.wandb": (dict,),
    "launch.sandbox": (str, bool, dict),
    "verify.min_steps": (int,),
    "verify.timeout": (int, float),
    "verify.smoke": (str,),
    "verify.smoke_timeout": (int, float),
    "fix.max_attempts": (int,),
    "fix.allowed_paths": (list,),
    "fix.denied_paths": (list,),
    "fix.delete_failed_run": (bool,),
    "fix.max_patch_lines": (int,),
    "wandb.entity": (str,),
    "wandb.project": (str,),
    "wandb.branch_key": (str,),
}


def parse(text: str, source: str = CONFIG_PATH) -> dict[str, Any]:
    """Parse and validate the YAML text of a repo config; return the full config with defaults."""
    if len(text) > MAX_CONFIG_CHARS:
        raise BadInput(f"{source}: {len(text)} characters; a repo config may have at most {MAX_CONFIG_CHARS}")
    try:
        data = yaml.safe_load(text) if text.strip() else {}
    except yaml.YAMLError as exc:
        raise BadInput(f"{source}: not valid YAML{_where(exc)}") from None
    except RecursionError:  # PyYAML composes nested nodes recursively
        raise BadInput(f"{source}: nested too deeply to be a repo config") from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise BadInput(f"{source}: the top level must be a mapping of sections, got {type(data).__name__}")
    config = copy.deepcopy(DEFAULTS)
    for section, values in data.items():
        if section not in DEFAULTS:
            raise BadInput(f"{source}: unknown key '{section}' (known: {', '.join(DEFAULTS)})")
        if values is None:
            continue
        if not isinstance(values, dict):
            raise BadInput(f"{source}: '{section}' must be a mapping, got {type(values).__name__}")
        for key, value in values.items():
            config[section][key] = _check(f"{section}.{key}", value, source)
    denied = config["fix"]["denied_paths"]
    config["fix"]["denied_paths"] = [*ALWAYS_DENIED, *(p for p in denied if p not in ALWAYS_DENIED)]
    return config


def load(repo: Path) -> dict[str, Any]:
    """The config of the checkout at `repo`; defaults when it has none."""
    path = Path(repo) / CONFIG_PATH
    if not path.exists() and not path.is_symlink():
        return parse("")
    if path.is_symlink() or not path.resolve().is_relative_to(Path(repo).resolve()):
        raise BadInput(f"{CONFIG_PATH}: must be a file of the repository, not a link")
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise BadInput(f"{CONFIG_PATH}: cannot read: {exc}") from None
    return parse(text)


def _has_type(value: Any, types: tuple[type, ...]) -> bool:
    # bool is an int in Python; a `true` where a number belongs is still a mistake.
    return isinstance(value, types) and not (isinstance(value, bool) and bool not in types)


def _check(key: str, value: Any, source: str) -> Any:
    types = _TYPES.get(key)
    if types is None:
        raise BadInput(f"{source}: unknown key '{key}'")
    if value is None:
        section, name = key.split(".")
        if DEFAULTS[section][name] is not None:
            raise BadInput(f"{source}: '{key}' must not be empty")
        return value
    if not _has_type(value, types):
        names = " or ".join(t.__name__ for t in types)
        raise BadInput(f"{source}: '{key}' must be {names}, got {type(value).__name__} {value!r}")
    if key == "launch.backend" and value not in BACKENDS:
        raise BadInput(f"{source}: 'launch.backend' must be one of {', '.join(BACKENDS)}, got {value!r}")
    if key == "launch.sandbox":
        try:
            SandboxSpec.parse(value, key)
        except BadInput as exc:  # it names the part that is wrong
            raise BadInput(f"{source}: {exc}") from None
    if key.endswith(("_paths",)) and not all(isinstance(p, str) and p for p in value):
        raise BadInput(f"{source}: '{key}' must be a list of glob strings")
    if key in ("verify.min_steps", "fix.max_attempts", "fix.max_patch_lines") and value < 1:
        raise BadInput(f"{source}: '{key}' must be at least 1, got {value}")
    if key in ("verify.timeout", "verify.smoke_timeout") and not (0 < value < math.inf):
        raise BadInput(f"{source}: '{key}' must be a positive number of seconds, got {value}")
    return value


def _where(exc: yaml.YAMLError) -> str:
    """Where the YAML is broken and why, without quoting the file (it may not be ours to show)."""
    mark = getattr(exc, "problem_mark", None)
    problem = getattr(exc, "problem", None) or "cannot be parsed"
    if mark is None:
        return f": {problem}"
    return f" at line {mark.line + 1}, column {mark.column + 1}: {problem}"
