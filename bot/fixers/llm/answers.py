"""The model's three ways to answer, as tools: a patch, "relaunch unchanged", or "no safe fix".

A transient failure (a preemption, a node lost) needs no change, and some failures have no fix
a bot should make; forcing a patch out of the model then costs repair rounds and ends in a
give-up anyway. Each answer is checked field by field; MalformedAnswer says what is wrong.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from bot.core.errors import OperationFailed
from bot.fixers.model import Edit

PROPOSE_FIX = "propose_fix"
RELAUNCH_UNCHANGED = "relaunch_unchanged"
NO_SAFE_FIX = "no_safe_fix"
ANSWER_TOOLS = (PROPOSE_FIX, RELAUNCH_UNCHANGED, NO_SAFE_FIX)
TOOL_NAME = PROPOSE_FIX  # the name earlier code and tests know
DESCRIPTION_MAX = 72


class LLMError(OperationFailed):
    """The LLM fixer could not get a usable answer. `attempts`: what was tried before."""

    def __init__(self, message: str, *, attempts: list[dict] | None = None):
        super().__init__(message)
        self.attempts = attempts or []


class MalformedAnswer(LLMError):
    """The model answered, but not with a well-formed answer: worth a repair round."""


class AnswerKind(Enum):
    PATCH = "patch"
    RELAUNCH = "relaunch"
    NO_SAFE_FIX = "no_safe_fix"


@dataclass(frozen=True)
class Answer:
    kind: AnswerKind
    root_cause: str
    explanation: str = ""
    description: str = ""
    edits: list[Edit] = field(default_factory=list)
    look_at: str = ""  # no safe fix: what a human should look at


def answer_tool_definitions() -> list[dict[str, Any]]:
    edit = {
        "type": "object",
        "properties": {
            "path": {"type": "string", "description": "file path relative to the repository root"},
            "search": {"type": "string", "description": "exact text to replace; occurs once; empty to create a file"},
            "replace": {"type": "string", "description": "the text to put in its place"},
        },
        "required": ["path", "search", "replace"],
    }
    return [
        {
            "name": PROPOSE_FIX,
            "description": "Propose the fix for the failed training run as search/replace edits.",
            "input_schema": {
                "type": "object",
                "properties": {
                    "root_cause": {"type": "string"},
                    "explanation": {"type": "string"},
                    "description": {"type": "string", "description": "short, for the commit subject 'Fix: ...'"},
                    "edits": {"type": "array", "items": edit, "minItems": 1},
                },
                "required": ["root_cause", "explanation", "description", "edits"],
            },
        },
        {
            "name": RELAUNCH_UNCHANGED,
            "description": (
                "The failure is transient (preemption, a lost node, a network or disk hiccup): "
                "relaunch the same code unchanged. Say why the code is not at fault."
            ),
            "input_schema": {
                "type": "object",
                "properties": {"reason": {"type": "string"}},
                "required": ["reason"],
            },
        },
        {
            "name": NO_SAFE_FIX,
            "description": (
                "No change the bot should make: the cause is outside the repository, or fixing it "
                "would change what the experiment is about. Say what a human should look at."
            ),
            "input_schema": {
                "type": "object",
                "properties": {"root_cause": {"type": "string"}, "look_at": {"type": "string"}},
                "required": ["root_cause", "look_at"],
            },
        },
    ]


def parse_answer(name: str, data: Any) -> Answer:
    if name == RELAUNCH_UNCHANGED:
        reason = _text(name, data, "reason")
        return Answer(AnswerKind.RELAUNCH, root_cause=reason, description="relaunch unchanged")
    if name == NO_SAFE_FIX:
        return Answer(
            AnswerKind.NO_SAFE_FIX, root_cause=_text(name, data, "root_cause"), look_at=_text(name, data, "look_at")
        )
    fix = parse_tool_input(data)
    return Answer(AnswerKind.PATCH, fix["root_cause"], fix["explanation"], fix["description"], fix["edits"])


def _text(tool: str, data: Any, key: str) -> str:
    if not isinstance(data, dict):
        raise MalformedAnswer(f"{tool} input must be an object, got {type(data).__name__}")
    value = data.get(key)
    if not isinstance(value, str) or not value.strip():
        raise MalformedAnswer(f"{tool}.{key} must be a non-empty string, got {_shown(value)}")
    return value.strip()


def parse_tool_input(data: Any) -> dict:
    """The propose_fix input, checked field by field; MalformedAnswer says what is wrong."""
    if not isinstance(data, dict):
        raise MalformedAnswer(f"{PROPOSE_FIX} input must be an object, got {type(data).__name__}")
    for key in ("root_cause", "explanation", "description"):
        value = data.get(key)
        if not isinstance(value, str) or not value.strip():
            raise MalformedAnswer(f"{PROPOSE_FIX}.{key} must be a non-empty string, got {_shown(value)}")
    raw_edits = data.get("edits")
    if not isinstance(raw_edits, list) or not raw_edits:
        raise MalformedAnswer(
            f"{PROPOSE_FIX}.edits must be a non-empty list of edits, got {_shown(raw_edits)} "
            f"(call {RELAUNCH_UNCHANGED} or {NO_SAFE_FIX} when no edit is right)"
        )
    edits = [_parse_edit(i, e) for i, e in enumerate(raw_edits)]
    description = data["description"].strip().splitlines()[0].strip()
    if description.lower().startswith("fix:"):
        description = description[4:].strip()
    return {
        "root_cause": data["root_cause"].strip(),
        "explanation": data["explanation"].strip(),
        "description": _cut_at_word(description, DESCRIPTION_MAX),
        "edits": edits,
    }


def _cut_at_word(text: str, limit: int) -> str:
    """At most `limit` characters, cut between words: half a token would not be recognised as one
    by the redaction that runs on the commit subject and the comment."""
    if len(text) <= limit:
        return text
    if text[limit].isspace() or text[limit - 1].isspace():  # the cut falls between words
        return text[:limit].rstrip()
    words = text[:limit].rsplit(None, 1)
    return words[0].rstrip() if len(words) == 2 else text[:limit]


def _parse_edit(i: int, raw: Any) -> Edit:
    where = f"{TOOL_NAME}.edits[{i}]"
    if not isinstance(raw, dict):
        raise MalformedAnswer(f"{where} must be an object with path, search and replace, got {_shown(raw)}")
    for key in ("path", "search", "replace"):
        if not isinstance(raw.get(key), str):
            raise MalformedAnswer(f"{where}.{key} must be a string, got {_shown(raw.get(key))}")
    if not raw["path"].strip():
        raise MalformedAnswer(f"{where}.path is empty")
    if raw["search"] == raw["replace"]:
        raise MalformedAnswer(f"{where} changes nothing: search and replace are the same")
    return Edit(path=raw["path"].strip(), search=raw["search"], replace=raw["replace"])


def _shown(value: Any) -> str:
    return "nothing" if value is None else f"{type(value).__name__} {str(value)[:60]!r}"
