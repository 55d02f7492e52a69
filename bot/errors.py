"""Errors that map onto the command line's exit codes (DESIGN.md: 1 failed, 2 bad input)."""


class BotError(Exception):
    """Base class: the message is one line meant for a human."""

    exit_code = 1


class BadInput(BotError):
    """Bad usage or bad input: a missing run, an unreadable file, a broken repo config."""

    exit_code = 2


class OperationFailed(BotError):
    """The operation ran and failed: the run failed, the fix gave up."""

    exit_code = 1
