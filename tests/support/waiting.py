"""Polling for a condition, with a wall-clock deadline rather than a count of tries, so a
slow machine waits longer instead of failing."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any


def wait_until(predicate: Callable[[], Any], timeout: float = 30.0, what: str = "condition", poll: float = 0.1) -> Any:
    """Poll until `predicate` returns something truthy, and return it."""
    deadline = time.monotonic() + timeout
    while not (value := predicate()):
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(poll)
    return value


async def until(
    predicate: Callable[[], Any], timeout: float = 30.0, what: str = "condition", poll: float = 0.01
) -> Any:
    """The same inside an event loop: the loop runs on while we wait."""
    deadline = time.monotonic() + timeout
    while not (value := predicate()):
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(poll)
    return value
