"""The config key or flag a configuration failure names, as the rules need it.

The classifier names it (`Diagnosis.config_key`, bot/diagnosis/config_keys.py: one parser of
the exception messages and parser refusals); this module only says what kind of name it is for
the rules, from the key's problem and the failing exception's type: an attribute of a config
object, a config global, a mapping key, or an override the config does not know.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from bot.diagnosis.model import ConfigKey, Diagnosis, KeyProblem


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
    omegaconf: bool = False  # KEY: an OmegaConf/Hydra key (a YAML tree), not a Python mapping's


# Exceptions OmegaConf raises for a key its config lacks (ConfigAttributeError ends in
# AttributeError, ConfigKeyError in KeyError: they are told apart by name first).
_OMEGACONF = ("ConfigAttributeError", "ConfigKeyError", "MissingMandatoryValue")


def config_subject(diagnosis: Diagnosis) -> Subject | None:
    """The key or flag the failure is about, or None when it names none."""
    key = diagnosis.config_key
    if key is None:
        return None
    exc_type = (diagnosis.exception or {}).get("type") or ""
    message = _headline(diagnosis, key)
    if key.problem is KeyProblem.UNKNOWN:
        return Subject(key.flag or key.name, SubjectKind.UNKNOWN, message=message)
    if key.problem is not KeyProblem.MISSING or key.flag or not exc_type:
        return None  # a bad value, a required flag left out, a name without its exception
    if any(name in exc_type for name in _OMEGACONF):
        return Subject(key.name, SubjectKind.KEY, message=message, omegaconf=True)
    if exc_type.endswith("NameError"):
        return Subject(key.name, SubjectKind.GLOBAL, message=message)
    if exc_type.endswith("AttributeError") and key.holder:
        return Subject(key.name, SubjectKind.ATTRIBUTE, key.holder, message)
    if exc_type.endswith("KeyError"):
        return Subject(key.name, SubjectKind.KEY, message=message)
    return None


def _headline(diagnosis: Diagnosis, key: ConfigKey) -> str:
    """The evidence that names the key: the exception, else the log line that does."""
    exc = diagnosis.exception or {}
    if exc.get("type"):
        return f"{exc['type']}: {exc.get('message') or ''}".strip(": ")
    named = [line for line in diagnosis.evidence if key.name in line or (key.flag or "\0") in line]
    return (named or diagnosis.evidence or [diagnosis.summary])[-1].strip()
