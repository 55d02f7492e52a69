"""HTTP/1.1 requests written byte by byte, for what a well-behaved client library refuses to send:
non-ASCII or non-UTF-8 header values, a body that never comes, a client that stops halfway."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass


@dataclass
class Answer:
    status: int | None  # None: the server closed the connection without an answer
    elapsed: float
    closed: bool  # the server closed the connection after answering


def request_head(method: str, path: str, headers: list[tuple[bytes, bytes]], content_length: int | None) -> bytes:
    lines = [f"{method} {path} HTTP/1.1".encode(), b"Host: 127.0.0.1", b"Connection: close"]
    lines += [name + b": " + value for name, value in headers]
    if content_length is not None:
        lines.append(f"Content-Length: {content_length}".encode())
    return b"\r\n".join(lines) + b"\r\n\r\n"


async def send(
    port: int,
    head: bytes,
    body: bytes = b"",
    *,
    stall_after: int | None = None,
    timeout: float = 30.0,
) -> Answer:
    """Send `head` and `body` (or only its first `stall_after` bytes, then nothing) and read the
    status line; `closed` says whether the server then closed the connection."""
    start = time.monotonic()
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(head + (body if stall_after is None else body[:stall_after]))
        try:
            await writer.drain()
        except ConnectionError:
            pass
        try:
            line = await asyncio.wait_for(reader.readline(), timeout)
        except ConnectionError:
            line = b""
        status = int(line.split()[1]) if line.startswith(b"HTTP/1.1 ") else None
        elapsed = time.monotonic() - start
        closed = await _closed(reader, timeout)
        return Answer(status, elapsed, closed)
    finally:
        writer.close()


async def _closed(reader: asyncio.StreamReader, timeout: float) -> bool:
    try:
        while await asyncio.wait_for(reader.read(65536), timeout):
            pass
    except (asyncio.TimeoutError, ConnectionError):
        return False
    return True
