"""The real `fix-and-relaunch serve` in a subprocess, as an operator runs it, for restart tests."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import IO, Any

import aiohttp

from bot.core.settings import Settings
from bot.launchers.sandbox import tool as sandbox_tool
from tests.support.paths import REPO_ROOT


def serve_unregistered(
    api_url: str, state_dir: Path, port: int, stderr: int | IO[Any] | None = subprocess.DEVNULL, **env: str
) -> subprocess.Popen[bytes]:
    """The Procfile's line with no App credentials, as a new operator starts it (PORT set): it
    serves the set-up page. This checkout's code first on the path."""
    environ = {name: value for name, value in os.environ.items() if not name.startswith("GITHUB_")}
    environ.update(
        PATH=f"{Path(sys.executable).parent}{os.pathsep}{environ.get('PATH', '')}",
        PYTHONPATH=str(REPO_ROOT),
        GITHUB_API_URL=api_url,
        FIX_AND_RELAUNCH_STATE_DIR=str(state_dir),
        PORT=str(port),
        **env,
    )
    if sandbox_tool.check().tool is None:
        environ["FIX_AND_RELAUNCH_UNSANDBOXED_JOBS"] = "i-understand"
    return subprocess.Popen(
        ["sh", "-c", f"exec {procfile_command()}"], env=environ, stderr=stderr, cwd=state_dir.parent
    )


def procfile_command() -> str:
    """The Procfile's `web:` command line."""
    [line] = [line for line in (REPO_ROOT / "Procfile").read_text().splitlines() if line.startswith("web:")]
    return line.removeprefix("web:").strip()


def serve(
    settings: Settings,
    port: int,
    app_pem: str,
    stderr: int | IO[Any] | None = subprocess.DEVNULL,
    *,
    code: Path | None = None,
    **extra_env: str,
) -> subprocess.Popen[str]:
    """`serve` for the App of `settings`; the `bot` of checkout `code` when given (a benchmark
    comparing releases), else whatever this interpreter imports."""
    env = {
        **os.environ,
        **({"PYTHONPATH": str(code)} if code else {}),
        "GITHUB_APP_ID": settings.github_app_id or "",
        "GITHUB_PRIVATE_KEY": app_pem,
        "GITHUB_WEBHOOK_SECRET": settings.github_webhook_secret or "",
        "WANDB_WEBHOOK_SECRET": settings.wandb_webhook_secret or "",
        "GITHUB_API_URL": settings.github_api_url,
        "GITHUB_GIT_URL": settings.github_git_url or "",
        "FIX_AND_RELAUNCH_STATE_DIR": str(settings.state_dir),
        **extra_env,
    }
    if sandbox_tool.check().tool is None:  # serve runs jobs in the sandbox; without bwrap, say run them anyway
        env["FIX_AND_RELAUNCH_UNSANDBOXED_JOBS"] = "i-understand"
    return subprocess.Popen(
        [sys.executable, "-m", "bot", "serve", "--port", str(port)],
        cwd=code,
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
