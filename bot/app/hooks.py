"""Calling a dependency the composer handed in, whether it is async or blocking."""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Callable
from typing import Any


async def call_hook(func: Callable[..., Any], *args: Any) -> Any:
    """Await an async hook; run a plain (blocking) one in a thread, off the event loop."""
    if inspect.iscoroutinefunction(func):
        return await func(*args)
    return await asyncio.to_thread(func, *args)
