"""The config key or flag a configuration failure names, read from the failing exception.

One place for it: when the diagnosis carries the name itself (a typed field the classifier may
add), `config_subject` is where that field is read; until then the exception message is.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import Enum

from bot.diagnosis.model import Diagnosis
from bot.fixers.text import quoted


class SubjectKind(Enum):
    ATTRIBUTE = "attribute"  # `args.x` on an argparse Namespace or a config dataclass
    GLOBAL = "global"  # a module-level config global that is not defined
    KEY = "key"  # a mapping or OmegaConf key that is missing
    UNKNOWN = "unknown"  # an override the config does not know: flag, key, Hydra override or option


@dataclass(frozen=True)
class Subject:
    name: str  # "warmup_steps", "model.optimizer.lr", "--batch_size", "callbacks/defualt"
    kind: SubjectKind
    holder: str | None = None  # the object's type for ATTRIBUTE: "Namespace", "Args"
    message: str = ""  # "Type: message", the evidence


_ATTRIBUTE = re.compile(r"'(?P<holder>\w+)' object has no attribute '(?P<name>\w+)'")
_NAME = re.compile(r"name '(?P<name>\w+)' is not defined")
_UNRECOGNIZED = re.compile(r"unrecognized arguments: (?P<args>.+)$", re.M)
_TYRO_UNKNOWN = re.compile(r"Unrecognized (?:options?|arguments?):? (?P<args>[^\n]+)")
_UNKNOWN_KEY = re.compile(r"Unknown config key:? ['\"]?(?P<name>[\w.-]+)")
_OVERRIDE = re.compile(r"Could not override '(?P<name>[\w.]+)'")
_GROUP_OPTION = re.compile(r"Could not (?:find|load) '(?P<name>[\w/.-]+)'")
_UNEXPECTED_KW = re.compile(r"got an unexpected keyword argument '(?P<name>\w+)'")
_OMEGACONF_KEY = (
    re.compile(r"full_key: (?P<name>[\w.]+)"),
    re.compile(r"Key '(?P<name>\w+)' is not in struct"),
    re.compile(r"Missing key (?P<name>\w+)"),
    re.compile(r"Missing mandatory value:? (?P<name>[\w.]+)"),
)
_OMEGACONF = ("ConfigAttributeError", "ConfigKeyError", "MissingMandatoryValue")


def config_subject(diagnosis: Diagnosis, log_tail: list[str] | None = None) -> Subject | None:
    """The key or flag the failure is about, or None when it names none. An unknown override is
    also looked for in the log tail (bottom up): a parser's refusal is often no exception."""
    exc = diagnosis.exception or {}
    kind, message = exc.get("type") or "", exc.get("message") or ""
    headline = f"{kind}: {message}".strip(": ")
    lines = [headline, *reversed(diagnosis.evidence), *reversed(log_tail or [])]
    for text in lines:
        found = _unknown(text)
        if found is not None:
            return Subject(found, SubjectKind.UNKNOWN, message=text.strip())
    return _missing(kind, message, headline)


def _unknown(text: str) -> str | None:
    """An override the config does not know, in argparse, tyro, nanoGPT or Hydra words."""
    for pattern in (_UNRECOGNIZED, _TYRO_UNKNOWN):
        found = pattern.search(text)
        if found:
            flags = [w for w in found.group("args").split() if w.startswith("-")]
            if flags:
                return flags[0].split("=", 1)[0].strip("'\",")
    for pattern in (_UNKNOWN_KEY, _OVERRIDE, _GROUP_OPTION):
        found = pattern.search(text)
        if found:
            return found.group("name")
    return None


def _missing(kind: str, message: str, headline: str) -> Subject | None:
    if any(name in kind or name in message for name in _OMEGACONF) or "is not in struct" in message:
        for pattern in _OMEGACONF_KEY:
            found = pattern.search(message)
            if found:
                return Subject(found.group("name"), SubjectKind.KEY, message=headline)
        return None
    if kind.endswith("AttributeError"):
        found = _ATTRIBUTE.search(message)
        if found and found.group("holder") not in ("module", "NoneType", "str", "dict", "list"):
            return Subject(found.group("name"), SubjectKind.ATTRIBUTE, found.group("holder"), headline)
        return None
    if kind.endswith("NameError"):
        found = _NAME.search(message)
        return Subject(found.group("name"), SubjectKind.GLOBAL, message=headline) if found else None
    if kind.endswith("KeyError"):
        names = quoted(message) or [message.strip()]
        if names and re.fullmatch(r"[\w.-]+", names[0]):
            return Subject(names[0], SubjectKind.KEY, message=headline)
    return None


def unexpected_keyword(diagnosis: Diagnosis) -> str | None:
    """The keyword an instantiated class refused (`__init__() got an unexpected keyword
    argument 'batchsize'`): a misspelt key of the config that builds it."""
    for text in [(diagnosis.exception or {}).get("message") or "", *reversed(diagnosis.evidence)]:
        found = _UNEXPECTED_KW.search(text)
        if found:
            return found.group("name")
    return None
