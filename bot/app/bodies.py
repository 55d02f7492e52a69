"""Reading a webhook's body without letting a client hold the server: a size cap, a deadline, and
a budget of bytes held in memory by all the bodies being read at once.

The server checks the headers first (a missing or malformed signature or bearer token is answered
401 before a byte of the body is read); only then is the body read, here. A body over the cap is
refused from its Content-Length, or as soon as it passes the cap; a client that sends it too
slowly is cut off at the deadline; when the budget is spent, a body waits for room up to half
its deadline, then gets a 429. Each refusal closes the connection, so nothing more is read from it
than `discard_rest` drops: closing a socket with bytes unread resets it, and a client still
sending its refused body would lose the answer with the connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass

from aiohttp import web

MAX_BODY = 25 * 1024 * 1024  # GitHub caps webhook payloads at 25 MB
READ_TIMEOUT_S = 10.0  # GitHub itself gives up on a delivery after 10 s
BUDGET_BYTES = 64 * 1024 * 1024
CHUNK = 64 * 1024
LINGER_S = 2.0  # how long a refused body is read and dropped, so that its sender reads the answer
LINGER_IDLE_S = 0.25  # a pause that ends it: a client that sends nothing more is not waited for
_SCRATCH = bytearray(CHUNK)  # what discard_rest reads into; never read back, so shared by all


@dataclass(frozen=True)
class BodyLimits:
    max_bytes: int = MAX_BODY
    timeout_s: float = READ_TIMEOUT_S
    budget_bytes: int = BUDGET_BYTES


class Refused(Exception):
    """The body was not read: `status` and `reason` are the answer."""

    def __init__(self, status: int, reason: str):
        super().__init__(reason)
        self.status = status
        self.reason = reason


class BodyBudget:
    """Bytes of request bodies held at once, across requests: an async byte semaphore whose usual
    case (room left) costs no await."""

    def __init__(self, capacity: int):
        self.capacity = capacity
        self.used = 0
        self._waiters: list[asyncio.Future[None]] = []

    async def acquire(self, size: int) -> None:
        while self.used + size > self.capacity:
            waiter = asyncio.get_running_loop().create_future()
            self._waiters.append(waiter)
            try:
                await waiter
            finally:
                if waiter in self._waiters:
                    self._waiters.remove(waiter)
        self.used += size

    def release(self, size: int) -> None:
        self.used -= size
        for waiter in self._waiters:  # each looks again whether its body fits now
            if not waiter.done():
                waiter.set_result(None)
        self._waiters.clear()


async def read_body(request: web.Request, limits: BodyLimits, budget: BodyBudget) -> bytes:
    """The whole body, or Refused: 413 over the cap, 408 past the deadline, 429 no room in time."""
    declared = request.content_length
    if declared is not None and declared > limits.max_bytes:
        raise Refused(413, f"body of {declared} bytes is over the {limits.max_bytes}-byte cap")
    size = declared if declared is not None else limits.max_bytes
    if budget.used + size > budget.capacity:
        try:  # half the deadline at most: a body that got room must still have time to arrive
            await asyncio.wait_for(budget.acquire(size), limits.timeout_s / 2)
        except asyncio.TimeoutError:
            raise Refused(429, "too many request bodies in flight") from None
    else:
        await budget.acquire(size)  # room left: returns at once
    try:
        async with deadline(limits.timeout_s):
            return await _read(request, limits.max_bytes)
    except asyncio.TimeoutError:
        raise Refused(408, f"body not received within {limits.timeout_s:g} s") from None
    finally:
        budget.release(size)


if sys.version_info >= (3, 11):
    deadline = asyncio.timeout  # no task per read, unlike asyncio.wait_for
else:

    @contextlib.asynccontextmanager
    async def deadline(seconds: float) -> AsyncIterator[None]:
        """asyncio.timeout for Python 3.10: cancel the reading task at the deadline."""
        task = asyncio.current_task()
        assert task is not None
        handle = asyncio.get_running_loop().call_later(seconds, task.cancel)
        try:
            yield
        except asyncio.CancelledError:
            raise asyncio.TimeoutError from None
        finally:
            handle.cancel()


async def discard_rest(
    request: web.Request, *, seconds: float = LINGER_S, idle: float = LINGER_IDLE_S, most: int = MAX_BODY
) -> None:
    """Read and drop what the client still sends of a refused request (a lingering close), until
    it stops or pauses for `idle`, or `seconds` or `most` bytes are spent.

    Read from the socket into one scratch buffer, not through aiohttp's parser: each chunk it
    reads is a new buffer, and glibc kept the RSS they took (1.4 MB a connection)."""
    transport = request.transport
    raw = transport.get_extra_info("socket") if transport is not None else None
    if transport is None or raw is None:
        return
    transport.pause_reading()
    loop = asyncio.get_running_loop()
    dropped = 0  # whatever ends the reading (no fd left, a reset), the connection closes next
    with contextlib.suppress(Exception), socket.socket(fileno=os.dup(raw.fileno())) as sock:
        sock.setblocking(False)
        async with deadline(seconds):
            while dropped <= most and (n := await asyncio.wait_for(loop.sock_recv_into(sock, _SCRATCH), idle)):
                dropped += n


async def _read(request: web.Request, cap: int) -> bytes:
    body = bytearray()
    async for chunk in request.content.iter_chunked(CHUNK):
        body += chunk
        if len(body) > cap:
            raise Refused(413, f"body over the {cap}-byte cap")
    return bytes(body)
