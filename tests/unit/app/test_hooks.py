"""call_hook: an async hook is awaited on the loop, a blocking one runs in a thread."""

from __future__ import annotations

import threading

from bot.app.hooks import call_hook


async def test_async_hooks_run_on_the_loop_and_blocking_ones_in_a_thread():
    loop_thread = threading.get_ident()

    async def quick(x: int) -> tuple[int, int]:
        return x, threading.get_ident()

    def blocking(x: int, y: int) -> tuple[int, int]:
        return x + y, threading.get_ident()

    assert await call_hook(quick, 1) == (1, loop_thread)
    total, thread = await call_hook(blocking, 1, 2)
    assert total == 3 and thread != loop_thread
