"""Names that stand for a declared one without being spelt like it: abbreviations (`lr` for
`learning_rate`, `bs` for `--batch-size`, `wd` for `weightDecay`) and a declaration's own words
for it (`--discount` for `--gamma`, whose help reads "discount factor").

A name abbreviates another when it is one word whose letters are the other's word initials
(words split on `_`, `-` and camelCase). Matching works in either direction: the unknown name may
be the long form of a declared abbreviation, or the abbreviation of a declared long form.
Several declared names can share initials (`lr`: `learning_rate`, `local_rank`), so a match
is accepted only when it is unique once the evidence the declarations carry is weighed:

- a declared type the value written for it does not fit (`--lr=5e-4` is no int `local_rank`);
- a description (argparse help, the comment or docstring next to a global or field): a declared
  abbreviation's help that spells a long form confirms it and rules out any other (`--lr`,
  "learning rate ..."); a declared long form's that uses the abbreviation confirms it (`peak LR`).
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass

_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])")


@dataclass
class Declared:
    """What a declaration says about the name it declares, besides the name."""

    description: str = ""  # help text, comment or docstring
    kind: str | None = None  # "int" | "float" | "str" | "bool", when the declaration says


def words(name: str) -> list[str]:
    """`--learning-rate` → [learning, rate]; `weightDecay` → [weight, Decay]; `lr` → [lr]."""
    parts = [p for p in re.split(r"[-_+~.]+", name) if p]
    return [w for p in parts for w in _CAMEL.split(p) if w]


def initials(name: str) -> str:
    return "".join(w[0] for w in words(name)).lower()


def abbreviation(name: str, known: dict[str, Declared] | list[str], value: str | None = None) -> str | None:
    """The one declared name that `name` abbreviates or is the abbreviation of; None when there
    is none, or more than one and the declarations' evidence does not single one out."""
    notes = known if isinstance(known, dict) else dict.fromkeys(known, Declared())
    candidates = [k for k in notes if k != name and _pair(name, k) is not None]
    candidates = [k for k in candidates if not _contradicted(name, k, notes[k], value)]
    if len(candidates) == 1:
        return candidates[0]
    confirmed = [k for k in candidates if _confirmed(name, k, notes[k])]
    return confirmed[0] if len(confirmed) == 1 else None


def described(name: str, known: dict[str, Declared] | list[str], value: str | None = None) -> str | None:
    """The one declared name whose description (help text, comment) names `name` in words of its
    own, the value written fitting its type: `--discount 0.95` for `--gamma`, "discount factor
    (default: 0.99)". None when no description or several do: "batch" is in the help of both
    `--batch-size` and `--test-batch-size`. A name of under four letters is not matched so."""
    wanted = [_norm(w) for w in words(name)]
    if not isinstance(known, dict) or len("".join(wanted)) < 4:
        return None
    n = len(wanted)
    found = [
        k
        for k, note in known.items()
        if k != name
        and (value is None or _fits(value, note.kind))
        and any(run == wanted for run in _runs(_tokens(note.description), n))
    ]
    return found[0] if len(found) == 1 else None


def _runs(tokens: list[str], n: int) -> list[list[str]]:
    return [tokens[i : i + n] for i in range(len(tokens) - n + 1)]


def _pair(a: str, b: str) -> tuple[str, list[str]] | None:
    """(abbreviation, long form's words) when one of `a`, `b` abbreviates the other."""
    for short, long in ((a, b), (b, a)):
        short_words, long_words = words(short), words(long)
        if len(short_words) == 1 and len(long_words) >= 2 and short_words[0].lower() == initials(long):
            return short_words[0].lower(), [_norm(w) for w in long_words]
    return None


def _contradicted(name: str, declared: str, note: Declared, value: str | None) -> bool:
    if value is not None and not _fits(value, note.kind):
        return True
    pair = _pair(name, declared)
    if pair is None:
        return True
    short, long_words = pair
    if len(words(declared)) != 1:
        return False
    # A declared abbreviation whose help spells a different long form (`--lr`, "local rank").
    spelled = _spelled(short, _tokens(note.description))
    return bool(spelled) and long_words not in spelled


def _confirmed(name: str, declared: str, note: Declared) -> bool:
    pair = _pair(name, declared)
    if pair is None:
        return False
    short, long_words = pair
    tokens = _tokens(note.description)
    if len(words(declared)) == 1:  # `--lr`, "learning rate": its help spells the unknown name
        return long_words in _spelled(short, tokens)
    # `learning_rate`, "peak LR": its description names it by the unknown abbreviation (spelling
    # its own long form would tell nothing).
    return _norm(short) in tokens


def _spelled(short: str, tokens: list[str]) -> list[list[str]]:
    """The runs of words in `tokens` whose initials are `short`."""
    return [run for run in _runs(tokens, len(short)) if "".join(w[0] for w in run) == short]


def _tokens(text: str) -> list[str]:
    return [_norm(t) for t in re.findall(r"[a-z0-9]+", text.lower())]


def _norm(word: str) -> str:
    """Lower case, a plural's `s` dropped: "learning rates" spells `learning_rate` as well."""
    word = word.lower()
    return word[:-1] if len(word) > 3 and word.endswith("s") else word


def _fits(value: str, kind: str | None) -> bool:
    """Whether the value as written can be parsed as `kind` (argparse's `type=`, nanoGPT's check
    that an override keeps the global's type; an int is a fine float)."""
    if kind not in ("int", "float"):
        return True
    try:
        parsed = ast.literal_eval(value.strip("'\""))
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        return False
    if isinstance(parsed, bool):
        return False
    return isinstance(parsed, int) if kind == "int" else isinstance(parsed, (int, float))
