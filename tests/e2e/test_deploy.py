"""The real `fix-and-relaunch serve`, started as an operator starts it (the Procfile's line, no
App credentials), against the local fake GitHub: the set-up page registers the App through
the manifest flow, the server switches to serving webhooks with the stored credentials, and
its JSON log leaves health probes out and never shows a secret."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import stat
import subprocess
import sys
import time
from html import unescape
from pathlib import Path

import aiohttp
import pytest

from tests.support.fake_github import signed
from tests.support.net import free_port
from tests.support.server_process import procfile_command, serve_unregistered

VENV_BIN = Path(sys.executable).parent


async def wait_for(session: aiohttp.ClientSession, url: str, ready, timeout: float = 60) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        try:
            async with session.get(url) as response:
                if response.status == 200:
                    body = await response.json()
                    if ready(body):
                        return body
        except aiohttp.ClientError:
            pass
        assert time.monotonic() < deadline, f"{url} never became ready"
        await asyncio.sleep(0.2)


def form_fields(page: str) -> tuple[str, dict[str, str]]:
    """The first form of a page: its action and hidden fields, as a browser would send them."""
    action = unescape(re.search(r'<form[^>]*action="([^"]+)"', page)[1])
    fields = {
        unescape(n): unescape(v) for n, v in re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)"', page)
    }
    return action, fields


def test_the_procfile_line_works_without_port(tmp_path):
    """Heroku-style platforms set PORT; others do not: then the server takes 8080."""
    recorder = tmp_path / "bin" / "fix-and-relaunch"
    recorder.parent.mkdir()
    recorder.write_text('#!/bin/sh\nprintf "%s\\n" "$@"\n')
    recorder.chmod(0o755)
    env = {"PATH": f"{recorder.parent}{os.pathsep}/usr/bin:/bin"}
    without = subprocess.run(["sh", "-c", procfile_command()], env=env, capture_output=True, text=True, check=True)
    assert without.stdout.split() == ["serve", "--host", "0.0.0.0", "--port", "8080"]
    with_port = subprocess.run(
        ["sh", "-c", procfile_command()], env={**env, "PORT": "5001"}, capture_output=True, text=True, check=True
    )
    assert with_port.stdout.split()[-1] == "5001"


@pytest.mark.slow
async def test_serve_without_credentials_registers_the_app_and_then_serves_webhooks(fake_github, tmp_path):
    port = free_port()
    state_dir = tmp_path / "state"
    log_path = tmp_path / "serve.log"
    with log_path.open("w") as log:
        server = serve_unregistered(fake_github.url, state_dir, port, log, FIX_AND_RELAUNCH_LOG_FORMAT="json")
    base = f"http://127.0.0.1:{port}"
    try:
        async with aiohttp.ClientSession() as session:
            await wait_for(session, f"{base}/healthz", lambda body: body["status"] == "setup")
            for _ in range(5):
                await wait_for(session, f"{base}/healthz", lambda body: True)  # probes: not in the log
            async with session.get(f"{base}/") as response:
                action, fields = form_fields(await response.text())
            manifest = json.loads(fields["manifest"])
            assert action.startswith(f"{fake_github.url}/settings/apps/new?state=")
            assert manifest["hook_attributes"]["url"] == f"{base}/webhooks/github"
            assert manifest["redirect_url"] == f"{base}/setup/callback"
            assert set(manifest["default_events"]) >= {"issue_comment", "pull_request"}

            async with session.post(action, data=fields) as response:  # GitHub asks to confirm
                confirm, confirm_fields = form_fields(await response.text())
            async with session.post(f"{fake_github.url}{confirm}", data=confirm_fields) as response:
                assert response.status == 200 and str(response.url).startswith(f"{base}/setup/callback?code=")
                assert "Registered fix-and-relaunch" in await response.text()

            health = await wait_for(session, f"{base}/healthz", lambda body: body["status"] == "ok", timeout=30)
            assert "queue" in health
            [app] = fake_github.registered_apps
            folder = state_dir / "github-app"
            assert (folder / "app-id").read_text() == str(app["id"])
            assert (folder / "private-key.pem").read_text() == app["pem"]
            assert (folder / "webhook-secret").read_text() == app["webhook_secret"]
            for file in folder.iterdir():
                assert stat.S_IMODE(file.stat().st_mode) == 0o600, file
            assert stat.S_IMODE(folder.stat().st_mode) == 0o700

            body = json.dumps({"action": "created", "installation": {"id": 7, "account": {"login": "octocat"}}})
            for secret, expected in ((app["webhook_secret"], 200), ("not-the-secret-at-all", 401)):
                headers = {**signed(body.encode(), "installation", "d-1", secret), "User-Agent": app["webhook_secret"]}
                async with session.post(f"{base}/webhooks/github", data=body, headers=headers) as response:
                    assert response.status == expected
    finally:
        server.send_signal(signal.SIGTERM)
        assert server.wait(timeout=30) == 0

    lines = log_path.read_text().splitlines()
    records = [json.loads(line) for line in lines]  # every line is one JSON object
    messages = [r["message"] for r in records]
    assert any("registered the GitHub App fix-and-relaunch" in m for m in messages)
    assert any("GET /setup/callback" in m for m in messages)
    assert any("POST /webhooks/github" in m for m in messages)
    assert not any("/healthz" in m for m in messages), "health probes are not access-logged"
    text = log_path.read_text()
    assert app["webhook_secret"] not in text and "PRIVATE KEY" not in text
