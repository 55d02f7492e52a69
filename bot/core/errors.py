"""Errors that map onto the command line's exit codes (DESIGN.md: 1 failed, 2 bad input)."""

from __future__ import annotations

from collections.abc import Iterable

from bot.core.secrets import mask


class BotError(Exception):
    """Base class: the message is one line meant for a human."""

    exit_code = 1


class BadInput(BotError):
    """Bad usage or bad input: a missing run, an unreadable file, a broken repo config."""

    exit_code = 2


class OperationFailed(BotError):
    """The operation ran and failed: the run failed, the fix gave up."""

    exit_code = 1


def first_line(text: str, secrets: Iterable[str] = ()) -> str:
    """What a one-line error may quote of a client library's message: its first non-empty line,
    at most 300 characters, with any of `secrets` masked."""
    text = mask(text, secrets)
    first = next((line.strip() for line in text.splitlines() if line.strip()), "")
    return first[:300]


def exception_line(exc: BaseException, secrets: Iterable[str] = ()) -> str:
    """`first_line` of an exception, or its type name when it says nothing."""
    return first_line(str(exc) or type(exc).__name__, secrets)
