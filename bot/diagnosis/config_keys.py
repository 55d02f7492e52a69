"""The name a config error is about, for the rules that fix it (`Diagnosis.config_key`).

Whatever the config style, the failure names one key: the argparse attribute the code reads
(`'Namespace' object has no attribute 'warmup'`), a config global (`NameError`), a config
file's or flag's key the code does not define (`Unknown config key: x`), an OmegaConf/Hydra key
(`full_key: trainer.max_epochz`), or a command-line flag (`unrecognized arguments: --lr_decay`,
tyro's `Unrecognized options: --learning-ratee`). Whether it is *missing* (the code reads what
the config lacks: add it) or *unknown* (the launch sets what the config lacks: rename it to the
key meant) decides the fix, so it is said too, with the tool's own suggestion when it printed one.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import replace

from bot.diagnosis.model import ConfigKey, KeyProblem
from bot.diagnosis.tracebacks import ParsedTraceback

Finder = Callable[[str], "ConfigKey | None"]

_FLAG = re.compile(r"(?<![\w-])(-{1,2}[A-Za-z][\w.-]*)")
_SUGGESTION = re.compile(
    r"(?i)(?:did you mean|perhaps you meant)\s*:?\s*[\"'`]?(-{0,2}[A-Za-z_][\w.-]*)[\"'`]?(?: instead of|\?|\s|$)"
)


def _flag_key(flag: str, problem: KeyProblem, text: str = "") -> ConfigKey:
    bare = flag.split("=", 1)[0]
    return ConfigKey(bare.lstrip("-"), problem, bare, _suggestion(text))


def _suggestion(text: str) -> str | None:
    found = _SUGGESTION.search(text)
    return found.group(1) if found else None


def _first_flag(rest: str) -> str | None:
    found = _FLAG.search(rest)
    return found.group(1) if found else None


def _unrecognized(text: str) -> ConfigKey | None:
    """argparse's `unrecognized arguments: --x 3`, tyro's `Unrecognized options: --x, 3`,
    HfArgumentParser's `… not used by the HfArgumentParser: ['--x', '3']`, fire, click."""
    found = re.search(
        r"(?i)unrecognized (?:arguments?|options?):\s*(?P<rest>.+)|not used by the HfArgumentParser:\s*(?P<hf>.+)|"
        r"Could not consume arg:\s*(?P<fire>\S+)|No such option:\s*(?P<click>\S+)",
        text,
    )
    if not found:
        return None
    flag = _first_flag(next(g for g in found.groups() if g))
    return _flag_key(flag, KeyProblem.UNKNOWN, text[found.end() :]) if flag else None


def _absl_flag(text: str) -> ConfigKey | None:
    found = re.search(r"Unknown command line flag '(?P<name>[\w.-]+)'", text)
    if not found:
        return None
    return ConfigKey(found["name"], KeyProblem.UNKNOWN, f"--{found['name']}", _suggestion(text[found.end() :]))


def _required(text: str) -> ConfigKey | None:
    """argparse's `the following arguments are required: --data`, tyro's `Missing from x.py:` box."""
    found = re.search(
        r"the following arguments are required:\s*(?P<rest>.+)|^Missing from [\w.-]+:\s*\n\s*(?P<tyro>\S+)", text, re.M
    )
    if not found:
        return None
    rest = found["rest"] or found["tyro"]
    flag = _first_flag(rest)
    if flag:
        return _flag_key(flag, KeyProblem.MISSING)
    name = re.match(r"[\w.-]+", rest.strip())
    return ConfigKey(name.group(0), KeyProblem.MISSING) if name else None


def _bad_value(text: str) -> ConfigKey | None:
    """argparse's `error: argument --lr/-l: invalid float value`, tyro's `Error parsing --x:`."""
    found = re.search(r"error: argument (?P<flag>-{1,2}[\w.-]+)[^:]*: |Error parsing (?P<tyro>--[\w.-]+):", text)
    if not found:
        return None
    return _flag_key(found["flag"] or found["tyro"], KeyProblem.INVALID)


def _hydra_override(text: str) -> ConfigKey | None:
    found = re.search(r"Could not override '(?P<name>[\w.\[\]/+~-]+)'", text)
    if not found:
        return None
    return ConfigKey(found["name"].lstrip("+~"), KeyProblem.UNKNOWN, suggestion=_suggestion(text[found.end() :]))


def _hydra_option(text: str) -> ConfigKey | None:
    """A Hydra group option that has no file: `In 'experiment/x': Could not find 'callbacks/defualt'`
    (the name is `group/option`, as a defaults list or a `group=option` override writes it)."""
    found = re.search(r"Could not (?:find|load) '(?P<name>[\w.-]+(?:/[\w.-]+)+)'", text)
    if not found:
        return None
    return ConfigKey(found["name"].lstrip("/"), KeyProblem.UNKNOWN, suggestion=_suggestion(text[found.end() :]))


def _omegaconf(text: str) -> ConfigKey | None:
    """ConfigAttributeError/ConfigKeyError (`Key 'x' is not in struct`, `Missing key x`, each
    with `full_key: a.b.x`) and MissingMandatoryValue (`Missing mandatory value: a.b`)."""
    found = re.search(
        r"Key '(?P<key>[\w.-]+)' (?:is )?not in (?:struct|'\w+')|Missing key (?P<missing>[\w.-]+)|"
        r"Missing mandatory value:? (?P<mandatory>[\w.\[\]-]+)",
        text,
    )
    if not found:
        return None
    full = re.search(r"full_key: (?P<full>[\w.\[\]-]+)", text)
    name = full["full"] if full else (found["key"] or found["missing"] or found["mandatory"])
    return ConfigKey(name, KeyProblem.MISSING, suggestion=_suggestion(text))


_ATTRIBUTE = re.compile(r"AttributeError: '(?P<holder>\w+)' object has no attribute '(?P<name>\w+)'")


def _attribute(text: str) -> ConfigKey | None:
    found = _ATTRIBUTE.search(text)
    if not found:
        return None
    suggestion = _suggestion(text[found.end() :])
    return ConfigKey(found["name"], KeyProblem.MISSING, suggestion=suggestion, holder=found["holder"])


def _config_library(text: str) -> ConfigKey | None:
    """ml_collections: `AttributeError: "'lrr'\\nDid you mean "lr" instead of "lrr"?"`."""
    found = re.search(r"(?:AttributeError|KeyError): [\"']*'(?P<name>[\w.-]+)'", text)
    if not found:
        return None
    return ConfigKey(found["name"], KeyProblem.MISSING, suggestion=_suggestion(text[found.end() :]))


def _name_error(text: str) -> ConfigKey | None:
    found = re.search(r"NameError: name '(?P<name>\w+)' is not defined", text)
    return ConfigKey(found["name"], KeyProblem.MISSING, suggestion=_suggestion(text)) if found else None


def _unknown_key(text: str) -> ConfigKey | None:
    """nanoGPT's configurator: `ValueError: Unknown config key: warmup_iter`."""
    found = re.search(
        r"(?i)\bunknown (?:config(?:uration)?|hyper-?parameter|override) (?:key|option|parameter|name)s?\b[:\s]*"
        r"[\"'`]?(?P<name>-{0,2}[\w.-]+)",
        text,
    )
    if not found:
        return None
    name = found["name"]
    flag = name if name.startswith("-") else None
    return ConfigKey(name.lstrip("-"), KeyProblem.UNKNOWN, flag, _suggestion(text[found.end() :]))


# A config object's own check of an override (minGPT's CfgNode.merge_from_args: `trainer.lr is
# not an attribute that exists in the config`, yacs-style `Non-existent config key: x`).
NOT_IN_CONFIG = (
    r"[\"'`]?(?P<name>[A-Za-z_][\w.-]*)[\"'`]? is not (?:an? )?(?:valid |known |existing )?"
    r"(?:attribute|key|option|field|parameter|setting)\b[^\n]{0,40}?\b(?:in|of) (?:the |this )?config(?:uration)?\b|"
    r"(?i:non-?existent config(?:uration)? (?:key|attribute|option)):?\s*[\"'`]?(?P<yacs>[A-Za-z_][\w.-]*)"
)


def _not_in_config(text: str) -> ConfigKey | None:
    found = re.search(NOT_IN_CONFIG, text)
    if not found:
        return None
    return ConfigKey(found["name"] or found["yacs"], KeyProblem.UNKNOWN, suggestion=_suggestion(text[found.end() :]))


def _keyword(text: str) -> ConfigKey | None:
    """A config class built with a field it lacks, or without one it requires."""
    found = re.search(
        r"got an unexpected keyword argument '(?P<unknown>\w+)'|"
        r"missing \d+ required (?:positional |keyword-only )?arguments?: '(?P<missing>\w+)'",
        text,
    )
    if not found:
        return None
    if found["unknown"]:
        return ConfigKey(found["unknown"], KeyProblem.UNKNOWN)
    return ConfigKey(found["missing"], KeyProblem.MISSING)


def _key_error(text: str) -> ConfigKey | None:
    found = re.search(r"KeyError: [\"']*'?(?P<name>[^'\"\s]+)'", text)
    return ConfigKey(found["name"], KeyProblem.MISSING) if found else None


# Most specific first: a Hydra override error also carries OmegaConf's "Key 'x' is not in struct";
# a missing group option is named beside the override of its group that failed.
FINDERS: tuple[Finder, ...] = (
    _hydra_option,
    _hydra_override,
    _omegaconf,
    _unrecognized,
    _absl_flag,
    _required,
    _bad_value,
    _unknown_key,
    _not_in_config,
    _attribute,
    _name_error,
    _keyword,
    _config_library,
    _key_error,
)
# A code_error's exception that looks a name up as a global or a mapping's key: the name may be
# a config key (a fixer checks the code). (An attribute of a config-like object, or a keyword a
# config class refuses, is a config_error already; on any other object it is code.)
LOOKUP_FINDERS: tuple[Finder, ...] = (_name_error, _key_error)


def find_config_key(exception: ParsedTraceback | None, lines: Iterable[str]) -> ConfigKey | None:
    """The key a config error names: from the failing exception first, then the log's lines
    (argparse and Hydra print their errors without a traceback)."""
    lines = list(lines)
    log = "\n".join(lines)
    texts = ([exception.text] if exception and exception.exc_type else []) + [log]
    found = next((key for text in texts for finder in FINDERS if (key := finder(text)) is not None), None)
    if found is None or found.suggestion is not None:
        return found
    # A suggestion printed on its own line after the error (ml_collections) is not part of it.
    named = [i for i, line in enumerate(lines) if found.name in line and "Error" in line]
    suggestion = _suggestion("\n".join(lines[named[-1] : named[-1] + 8])) if named else None
    return replace(found, suggestion=suggestion) if suggestion and suggestion != found.name else found


def find_lookup_key(exception: ParsedTraceback | None) -> ConfigKey | None:
    """The name a failing lookup (NameError, KeyError) names, from the exception alone: for a
    code_error, whose log does not say the name is configuration."""
    if exception is None or not exception.exc_type:
        return None
    return next((key for finder in LOOKUP_FINDERS if (key := finder(exception.text)) is not None), None)
