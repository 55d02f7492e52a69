"""The real `fix-and-relaunch serve` in a subprocess, as an operator runs it, for restart tests."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from typing import IO, Any

import aiohttp

from bot.core.settings import Settings
from bot.launchers.sandbox import tool as sandbox_tool


def serve(
    settings: Settings, port: int, app_pem: str, stderr: int | IO[Any] | None = subprocess.DEVNULL
) -> subprocess.Popen[str]:
    env = {
        **os.environ,
        "GITHUB_APP_ID": settings.github_app_id or "",
        "GITHUB_PRIVATE_KEY": app_pem,
        "GITHUB_WEBHOOK_SECRET": settings.github_webhook_secret or "",
        "WANDB_WEBHOOK_SECRET": settings.wandb_webhook_secret or "",
        "GITHUB_API_URL": settings.github_api_url,
        "GITHUB_GIT_URL": settings.github_git_url or "",
        "FIX_AND_RELAUNCH_STATE_DIR": str(settings.state_dir),
    }
    if sandbox_tool.check().tool is None:  # serve runs jobs in the sandbox; without bwrap, say run them anyway
        env["FIX_AND_RELAUNCH_UNSANDBOXED_JOBS"] = "i-understand"
    return subprocess.Popen(
        [sys.executable, "-m", "bot", "serve", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=stderr,
        text=True,
    )


async def healthy(session: aiohttp.ClientSession, url: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            async with session.get(f"{url}/healthz") as response:
                if response.status == 200:
                    return
        except aiohttp.ClientError:
            pass
        assert time.monotonic() < deadline, "the server never came up"
        await asyncio.sleep(0.2)
