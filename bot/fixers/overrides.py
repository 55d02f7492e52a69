"""The settings a launch passes its script on the command line, and the config files it names:

- argparse/tyro/nanoGPT flags: `--learning-rate 0.1`, `--learning_rate=0.1`, `-l 0.1`;
- Hydra/OmegaConf overrides: `model.optimizer.lr=0.1`, `+trainer.x=1`, `++seed=3`;
- config files: `-c FILE` / `--config FILE` (a YAML of argparse defaults, as timm's train.py),
  a positional `config/x.py` exec'd over the script's globals (nanoGPT), and Hydra group choices
  (`experiment=tiny`: `<config dir>/experiment/tiny.yaml`).

Each override keeps where its value is written, as a `Site`, so a rule can change it there.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from bot.fixers.config_sites import Site
from bot.fixers.declarations import arguments
from bot.fixers.invocations import Invocation, Word, invocations, join_path
from bot.fixers.text import read_text

_CONFIG_FLAGS = ("-c", "--config", "--config-file", "--config_file", "--cfg", "--config-path")
_HYDRA_MAIN = re.compile(r"""@hydra\.main\((?P<args>[^)]*)\)""")
_HYDRA_KEY = re.compile(r"^(?P<prefix>\+{0,2}|~)(?P<key>[A-Za-z_][\w.@/-]*)=(?P<value>.*)$")


@dataclass
class Override:
    key: str  # "learning_rate", "model.optimizer.lr"
    flag: Word  # the word that names it
    site: Site | None  # where its value is written; None for a flag without a value (`--track`)
    style: str  # "flag" | "hydra"

    @property
    def leaf(self) -> str:
        return self.key.rsplit(".", 1)[-1]


@dataclass
class LaunchView:
    """One invocation seen with its script's config style."""

    invocation: Invocation
    overrides: list[Override]
    config_files: list[str]  # repo-relative, lowest precedence first
    hydra_dir: str | None  # the Hydra config folder, when the script is a Hydra app


def launch_views(root: Path, config: dict) -> list[LaunchView]:
    return [view(root, inv) for inv in invocations(root, config)]


def view(root: Path, inv: Invocation) -> LaunchView:
    script_text = read_text(root, inv.script) or ""
    hydra_dir = hydra_config_dir(inv.script, script_text)
    aliases = {option: arg.dest for arg in arguments(script_text) for option in arg.options}
    flags_taking_no_value = {
        option
        for arg in arguments(script_text)
        if arg.action in ("store_true", "store_false", "count", "help", "version")
        for option in arg.options
    }
    overrides: list[Override] = []
    files: list[str] = []
    words = inv.args
    i = 0
    while i < len(words):
        word = words[i]
        text = word.text
        if hydra_dir is not None and not text.startswith("-"):
            overrides_or_file = _hydra_word(root, word, hydra_dir)
            if isinstance(overrides_or_file, str):
                files.append(overrides_or_file)
            elif overrides_or_file is not None:
                overrides.append(overrides_or_file)
            i += 1
            continue
        if text.startswith("-") and len(text) > 1 and not _is_number(text):
            name, eq, inline = text.partition("=")
            key = aliases.get(name) or name.lstrip("-").replace("-", "_")
            if eq:
                overrides.append(Override(key, word, _site(word, key, word.text.index("=") + 1), "flag"))
                i += 1
                continue
            takes_value = (
                i + 1 < len(words)
                and name not in flags_taking_no_value
                and (not words[i + 1].text.startswith("-") or _is_number(words[i + 1].text))
            )
            if takes_value:
                if name in _CONFIG_FLAGS:
                    files.append(_rel(inv.cwd, words[i + 1].text))
                overrides.append(Override(key, word, _site(words[i + 1], key, 0), "flag"))
                i += 2
                continue
            overrides.append(Override(key, word, None, "flag"))
            i += 1
            continue
        if text.endswith((".py", ".yaml", ".yml", ".json", ".toml")) and (root / _rel(inv.cwd, text)).is_file():
            files.append(_rel(inv.cwd, text))  # nanoGPT: a positional config file exec'd over the globals
        i += 1
    return LaunchView(inv, overrides, files, hydra_dir)


def hydra_config_dir(script: str, text: str) -> str | None:
    """The repo-relative config folder of a Hydra app (`@hydra.main(config_path=…)`)."""
    found = _HYDRA_MAIN.search(text)
    if found is None:
        return None
    path = re.search(r"""config_path\s*=\s*['"]([^'"]*)['"]""", found.group("args"))
    folder = script.rsplit("/", 1)[0] if "/" in script else ""
    return _rel(folder, path.group(1) if path else ".")


def _hydra_word(root: Path, word: Word, hydra_dir: str) -> Override | str | None:
    match = _HYDRA_KEY.match(word.text)
    if match is None:
        return None
    key, value = match.group("key"), match.group("value")
    group_file = _rel(hydra_dir, f"{key}/{value}.yaml")
    if "." not in key and (root / group_file).is_file():
        return group_file  # a group choice: that file joins the config
    offset = word.text.index("=") + 1
    return Override(key, word, _site(word, key, offset), "hydra")


def _site(word: Word, key: str, offset: int) -> Site:
    """The value of `word` from character `offset` on, as a Site (quotes around it left out)."""
    raw = word.line_text[word.col : word.end_col]
    start, end = _value_span(raw, offset)
    line = word.line_text
    col, end_col = word.col + start, word.col + end
    return Site(word.path, word.line, col, end_col, line[col:end_col], key, "flag", line, scope="launch")


def _value_span(raw: str, offset: int) -> tuple[int, int]:
    """Where the value sits in the word as written: the text after `offset` (the `=`), or the
    whole word, without one pair of enclosing quotes."""
    # `--lr=0.1` written as '--lr=0.1' or --lr='0.1': find the written `=` for an inline value.
    if offset:
        written = raw.find("=")
        start = written + 1 if written >= 0 else 0
    else:
        start = 0
    end = len(raw)
    if end - start >= 2 and raw[start] in "'\"" and raw[end - 1] == raw[start]:
        return start + 1, end - 1
    if raw[:1] in "'\"" and raw[-1:] == raw[:1]:
        end -= 1  # the quote closing a word quoted whole, e.g. '--lr=0.1'
    return start, end


def _rel(cwd: str, path: str) -> str:
    return join_path(cwd, path)


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True
