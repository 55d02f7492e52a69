"""Where the value a run used came from, when the launch says: a flag or override on the command
line (in `launch.command` or a launch script it calls), else a config file the launch names
(`-c FILE`, an exec'd `config/x.py`, a Hydra experiment or group choice), in precedence order.
The declared default (argparse, dataclass, global, dict, YAML) is the hyperparameter rules'
fallback when the launch sets nothing.
"""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from bot.fixers.config_sites import Site, file_sites
from bot.fixers.overrides import LaunchView, launch_views
from bot.fixers.text import read_text


def sites_in_effect(root: Path, config: dict, keys: tuple[str, ...]) -> list[Site]:
    """The sites that set one of `keys` for the launch's runs, the one that wins first.

    Command-line values beat config files; a later flag or file beats an earlier one.
    """
    found: list[Site] = []
    for view in launch_views(root, config):
        flags = [o.site for o in view.overrides if o.site is not None and o.leaf in keys]
        found += reversed(flags)
        for rel in reversed(_files_in_order(root, view)):
            found += reversed(file_sites(root, rel, keys))
    return found


def config_files_used(root: Path, config: dict) -> list[str]:
    """Every config file the launch names or (for a Hydra app) composes, lowest precedence first."""
    files: list[str] = []
    for view in launch_views(root, config):
        files += [f for f in _files_in_order(root, view) if f not in files]
    return files


def _files_in_order(root: Path, view: LaunchView) -> list[str]:
    if view.hydra_dir is None:
        return [f for f in view.config_files if (root / f).is_file()]
    return hydra_files(root, view)


def hydra_files(root: Path, view: LaunchView) -> list[str]:
    """A Hydra app's composed files, lowest precedence first: the primary config, the group
    options its defaults list picks, then the files chosen on the command line (an experiment
    file, `# @package _global_`, overrides everything before it) and their own defaults."""
    folder = view.hydra_dir or ""
    primary = _primary_config(root, view)
    cli_files = [f for f in view.config_files if (root / f).is_file()]
    # The group each file chosen on the command line stands for, and the groups it overrides.
    chosen = {f.split("/")[-2]: f for f in cli_files if "/" in f}
    for rel in cli_files:
        for group, option in _defaults(root, rel):
            chosen.setdefault(group, _group_file(folder, group, option))
    ordered: list[str] = []
    for rel in ([primary] if primary else []) + cli_files:
        for group, option in _defaults(root, rel):
            target = chosen.get(group) or _group_file(folder, group, option)
            if (root / target).is_file() and target not in ordered and target not in cli_files:
                ordered.append(target)
        if rel not in ordered:
            ordered.append(rel)
    # Files chosen on the command line win over the defaults lists: they go last.
    return [f for f in ordered if f not in cli_files] + [f for f in ordered if f in cli_files]


def _group_file(folder: str, group: str, option: str) -> str:
    return f"{folder}/{group}/{option}.yaml".lstrip("/")


def _primary_config(root: Path, view: LaunchView) -> str | None:
    text = read_text(root, view.invocation.script) or ""
    found = re.search(r"""config_name\s*=\s*['"]([^'"]+)['"]""", text)
    if found is None:
        return None
    name = found.group(1)
    name = name if name.endswith((".yaml", ".yml")) else f"{name}.yaml"
    return f"{view.hydra_dir}/{name}".lstrip("/")


def _defaults(root: Path, rel: str) -> list[tuple[str, str]]:
    """(group, option) pairs of a Hydra file's defaults list (`- model: mnist`,
    `- override /trainer: cpu`); `_self_`, null and optional entries without a file are skipped."""
    try:
        data = yaml.safe_load(read_text(root, rel) or "")
    except yaml.YAMLError:
        return []
    entries = data.get("defaults") if isinstance(data, dict) else None
    pairs = []
    for entry in entries or []:
        if not isinstance(entry, dict) or len(entry) != 1:
            continue
        (key, option), *_ = entry.items()
        group = str(key).replace("override ", "").replace("optional ", "").strip().lstrip("/")
        if isinstance(option, str) and group and "@" not in group:
            pairs.append((group, option))
    return pairs


def hydra_home(root: Path, config: dict, key_path: list[str]) -> tuple[str, list[str]] | None:
    """For a Hydra app, the file a key belongs in and the key's path inside it: the composed
    option file of its group (`model.optimizer.x` → `configs/model/mnist.yaml`, `optimizer.x`),
    else the primary config. None when the launch runs no Hydra app."""
    for view in launch_views(root, config):
        if view.hydra_dir is None:
            continue
        composed = hydra_files(root, view)
        group_files = {f.split("/")[-2]: f for f in composed if f.startswith(f"{view.hydra_dir}/") and f.count("/") > 1}
        if len(key_path) > 1 and key_path[0] in group_files:
            chosen = group_files[key_path[0]]
            if chosen not in view.config_files:  # a group option, not an experiment (global package)
                return chosen, key_path[1:]
        primary = _primary_config(root, view)
        if primary and (root / primary).is_file():
            return primary, key_path
    return None
