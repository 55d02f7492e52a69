"""Classify a failed run from its log tail, its exceptions and its run facts.

Evidence, strongest first:

1. Structured run facts (fact_rules.py): the scheduler's verdict, the kernel's OOM kills, the
   signal that killed the job, the loss curve.
2. The failing exception: the exception that ended the run (a worker's or torchrun's original
   first) and those chained to it. Its rule matches weigh `EXCEPTION_BONUS` more than the same
   rule on a stray line, and when no rule fits it, it is still a `code_error` worth more than
   most stray text (`UNCLASSIFIED_EXCEPTION`): a warning about the network does not make a
   `ValueError` in the user's code a network failure.
3. Free text: the log's message lines (frame and source lines of tracebacks skipped: code can
   mention anything), with paths masked (paths.py).

Each match scores its rule's weight (rules.py) plus the exception bonus; a category scores its
best match; the highest wins, ties going to the rule table's order. So a specific signal deep in
a chained traceback (CUDA OOM, 10) still beats the generic wrapper around it.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from bot.core.secrets import redact, redact_lines
from bot.diagnosis.config_keys import find_config_key, find_lookup_key
from bot.diagnosis.fact_rules import fact_matches
from bot.diagnosis.facts import RunFacts
from bot.diagnosis.model import ConfigKey, Diagnosis
from bot.diagnosis.paths import mask_paths
from bot.diagnosis.rules import RULES, R, Rule
from bot.diagnosis.tail import clean_line
from bot.diagnosis.tracebacks import (
    ParsedTraceback,
    find_location,
    frame_line_indices,
    normalize_lines,
    parse_normalized,
)

RETRYABLE_BY_DEFAULT = {"infra"}
EXCEPTION_BONUS = 1.5
UNCLASSIFIED_EXCEPTION = 7.5
# Exceptions that say how the process was stopped, not what went wrong: never code_error alone.
# (CalledProcessError: a child process failed; its own output, above, says why.)
_NOT_A_CAUSE = re.compile(
    r"(?:^|\.)(?:KeyboardInterrupt|SystemExit|SignalException|ChildFailedError|CalledProcessError)$"
)


@dataclass
class Match:
    rule: Rule
    text: str
    index: int | None = None  # log line index, None for an exception-only match
    traceback: ParsedTraceback | None = None
    score: float = 0.0

    def __post_init__(self) -> None:
        self.score = self.score or self.rule.weight


def match_rules(
    lines: list[str],
    skip: set[int],
    tracebacks: list[ParsedTraceback],
    failing: list[ParsedTraceback] | None = None,
) -> list[Match]:
    """Every (rule, line) and (rule, exception) match; paths masked; the failing exceptions'
    matches scored up."""
    found: list[Match] = []
    masked = {parts: [mask_paths(line, parts) for line in lines] for parts in {r.path_parts for r in RULES}}
    for rule in RULES:
        if rule.when is None:
            texts = masked[rule.path_parts]
            found += [
                Match(rule, line, i)
                for i, line in enumerate(lines)
                if i not in skip and line and rule.pattern.search(texts[i])
            ]
        for tb in tracebacks:
            m = rule.pattern.search(mask_paths(tb.text, rule.path_parts)) if tb.exc_type else None
            if m and (rule.when is None or rule.when(m, tb)):
                bonus = EXCEPTION_BONUS if failing and any(tb is f for f in failing) else 0.0
                found.append(Match(rule, tb.text.split("\n", 1)[0], None, tb, rule.weight + bonus))
    return found


def best_category(matches: list[Match]) -> tuple[str, float, list[Match]] | None:
    """The winning category, its score and its matches (strongest first)."""
    if not matches:
        return None
    order = {r.category: n for n, r in reversed(list(enumerate(RULES)))}
    scores: dict[str, float] = {}
    for m in matches:
        scores[m.rule.category] = max(scores.get(m.rule.category, 0), m.score)
    category = max(scores, key=lambda c: (scores[c], -order.get(c, len(RULES))))
    won = sorted((m for m in matches if m.rule.category == category), key=lambda m: -m.score)
    return category, scores[category], won


def retryable(category: str, matches: list[Match]) -> bool:
    """What the strongest rule of the category says (by its own weight: the exception bonus
    picks the category, not how transient the failure is), else the category's default."""
    top = max(matches, key=lambda m: m.rule.weight).rule if matches else None
    if top is not None and top.retryable is not None:
        return top.retryable
    return category in RETRYABLE_BY_DEFAULT


def nan_in_history(history: list[dict] | None, last: int = 5) -> str | None:
    """A line describing a NaN/inf loss in the last history rows, or None."""
    for row in reversed((history or [])[-last:]):
        for key, value in row.items():
            if "loss" in str(key).lower() and _not_finite(value):
                step = row.get("_step", row.get("step", "?"))
                return f"history step {step}: {key}={value}"
    return None


def _not_finite(value) -> bool:
    if isinstance(value, str):
        return value.strip().lower() in {"nan", "inf", "-inf", "+inf", "infinity", "-infinity"}
    try:
        return isinstance(value, (int, float)) and not math.isfinite(value)
    except TypeError:
        return False


def failing_chain(tracebacks: list[ParsedTraceback]) -> list[ParsedTraceback]:
    """The exception that ended the run (the last one, a worker's or torchrun's original first)
    and the exceptions chained to it ("During handling…", "The above exception…")."""
    with_exc = [tb for tb in tracebacks if tb.exc_type]
    if not with_exc:
        return []
    last = next((tb for tb in reversed(with_exc) if tb.kind in ("worker", "torchrun")), with_exc[-1])
    index = next(i for i, tb in enumerate(tracebacks) if tb is last)
    chain = [last]
    while index > 0 and tracebacks[index].chained:
        index -= 1
        chain.insert(0, tracebacks[index])
    # The same exception raised on every rank is one failure, however short each rank's copy.
    chain += [tb for tb in with_exc if tb.text == last.text and all(tb is not c for c in chain)]
    return [tb for tb in chain if tb.exc_type]


# --- putting it together -------------------------------------------------------------------------

_LABELS = {
    "import_error": "Missing or broken import",
    "oom": "Out of memory",
    "nan_loss": "Loss became NaN/inf",
    "data_not_found": "Data, checkpoint or artifact not found",
    "config_error": "Bad configuration or arguments",
    "shape_error": "Tensor shape mismatch",
    "device_error": "GPU/device error",
    "distributed": "Distributed training failure",
    "infra": "Infrastructure failure",
    "code_error": "Error in the training code",
    "unknown": "No failure cause found in the log",
}
_UNCLASSIFIED = R("code_error", r".", UNCLASSIFIED_EXCEPTION)
_ANY_EXCEPTION = R("code_error", r".", 1)
_HISTORY_NAN = R("nan_loss", r".", 9)
_MAX_EVIDENCE = 6
_MAX_CHARS = 300


def diagnose_lines(
    lines: list[str],
    *,
    repo_root: Path | None = None,
    history: list[dict] | None = None,
    facts: RunFacts | None = None,
    extra_secrets: Iterable[str] = (),
) -> Diagnosis:
    """Classify a failed run from its log lines, and its history rows and run facts when given."""
    norm = normalize_lines([clean_line(line) for line in lines])
    tracebacks = parse_normalized(norm)
    failing = failing_chain(tracebacks)
    matches = match_rules(norm, frame_line_indices(norm), tracebacks, failing)
    # A torchrun record always names an exception: the worker's own, or ChildFailedError.
    if any(tb.kind == "torchrun" and not (tb.exc_type or "").endswith("ChildFailedError") for tb in tracebacks):
        matches = [m for m in matches if not m.rule.wrapper]  # the root cause speaks for itself
    nan_row = nan_in_history(history)
    if nan_row:
        matches.append(Match(_HISTORY_NAN, nan_row))
    matches += [Match(rule, line) for rule, line in fact_matches(facts, failing[-1] if failing else None)]
    matches += _unclassified(failing, matches)
    best = best_category(matches)
    if best is None:
        return Diagnosis(
            "unknown", False, summary=_LABELS["unknown"], location=find_location(list(reversed(tracebacks)), repo_root)
        )
    category, _score, won = best
    tb = _chosen_traceback(won, tracebacks)
    ordered = ([tb] if tb else []) + [t for t in reversed(tracebacks) if t is not tb]
    location = find_location(ordered, Path(repo_root) if repo_root else None)
    secrets = tuple(extra_secrets)
    exception = None
    if tb and tb.exc_type:
        exception = {"type": tb.exc_type, "message": redact(tb.message[:2000], secrets)}
    evidence = redact_lines(_evidence(won, norm), secrets)
    summary = redact(_summary(category, exception, won, location), secrets)
    config_key = _config_key(category, tb, norm)
    return Diagnosis(category, retryable(category, won), exception, location, evidence, summary, config_key)


def _config_key(category: str, tb: ParsedTraceback | None, lines: list[str]) -> ConfigKey | None:
    if category == "config_error":
        return find_config_key(tb, lines[-80:])
    if category == "code_error":
        return find_lookup_key(tb)
    return None


def diagnose_text(text: str, **kwargs) -> Diagnosis:
    return diagnose_lines(text.splitlines(), **kwargs)


def _unclassified(failing: list[ParsedTraceback], matches: list[Match]) -> list[Match]:
    """The failing exception as code_error evidence when no rule named what it is."""
    if not failing:
        return []
    last = failing[-1]
    if any(m.traceback is not None and any(m.traceback is f for f in failing) for m in matches):
        return []  # a rule read it: that says more
    rule = _ANY_EXCEPTION if _NOT_A_CAUSE.search(last.exc_type or "") else _UNCLASSIFIED
    if rule is _ANY_EXCEPTION and matches:
        return []
    return [Match(rule, last.text.split("\n", 1)[0], None, last)]


def _chosen_traceback(won: list[Match], tracebacks: list[ParsedTraceback]) -> ParsedTraceback | None:
    """The exception that shows the winning signal: a worker's or torchrun's original first,
    then the last matching one; without a match, the last exception (the root cause, usually)."""
    hits = [m.traceback for m in won if m.traceback is not None]
    for kind in ("worker", "torchrun"):
        kind_hits = [t for t in hits if t.kind == kind]
        if kind_hits:
            return kind_hits[-1]
    if hits:
        return max(hits, key=lambda t: next(i for i, x in enumerate(tracebacks) if x is t))
    return next((t for t in reversed(tracebacks) if t.exc_type), tracebacks[-1] if tracebacks else None)


def _evidence(won: list[Match], lines: list[str]) -> list[str]:
    """The strongest few matching lines, in log order, without repeats."""
    picked: dict[str, int] = {}
    for m in won:
        text = (lines[m.index] if m.index is not None else m.text).strip()
        if text and text not in picked and len(picked) < _MAX_EVIDENCE:
            picked[text] = m.index if m.index is not None else len(lines)
    return [_clip(text) for text, _ in sorted(picked.items(), key=lambda kv: kv[1])]


def _summary(category: str, exception: dict | None, won: list[Match], location: dict | None) -> str:
    """Label + the exception, or + the strongest evidence line when the exception is not what showed it."""
    top = won[0] if won else None
    detail = top.text.strip() if top else ""
    if exception and (top is None or top.traceback is not None or exception["type"] in detail):
        detail = f"{exception['type']}: {exception['message']}".strip().split("\n", 1)[0]
        line = next((m for m in won if m.index is not None), None)
        if detail.endswith(":") and line is not None:
            detail += " " + line.text.strip()
    where = f" (at {location['file']}:{location['line']})" if location else ""
    return _clip(f"{_LABELS[category]}: {detail}".rstrip(": ") + where, 240)


def _clip(text: str, limit: int = _MAX_CHARS) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"
