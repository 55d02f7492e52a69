"""Registering the GitHub App from its manifest (app.yml), Probot-style, through GitHub's App
manifest flow (https://docs.github.com/apps/sharing-github-apps/registering-a-github-app-from-a-manifest):

1. `GET /` serves the set-up page: a form that posts the manifest (its webhook and redirect
   URLs pointed at this server) to `{GITHUB_WEB_URL}/settings/apps/new?state=…` (or an
   organisation's `/organizations/{org}/settings/apps/new`);
2. the operator confirms on GitHub, which redirects to `/setup/callback?code=…&state=…`;
3. the callback exchanges the code at `POST {GITHUB_API_URL}/app-manifests/{code}/conversions`
   (no authentication: the one-hour, single-use code is the credential) and stores the App's
   id, private key and webhook secret in the state directory (`github-app/`, files mode 0600),
   where `Settings.from_env` finds them at the next start-up.

`register` serves the page until that is done. `serve` without App credentials calls it, then
reads its settings again and serves webhooks.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import secrets
import signal
from dataclasses import dataclass
from html import escape
from importlib import resources
from pathlib import Path
from typing import Any
from urllib.parse import quote

import aiohttp
import yaml
from aiohttp import web

from bot.app.github_api import REQUEST_TIMEOUT
from bot.app.logs import QuietProbesAccessLogger
from bot.app.logs import configure as configure_logging
from bot.app.status import html_page
from bot.core.errors import OperationFailed
from bot.core.settings import REGISTERED_APP_DIR, REGISTERED_APP_FILES, Settings

log = logging.getLogger(__name__)

CALLBACK = "/setup/callback"
WEBHOOK_PATH = "/webhooks/github"
CLOSE_DELAY_S = 0.5  # the success page goes out before the set-up server stops


@dataclass(frozen=True)
class Registered:
    app_id: str
    slug: str
    html_url: str
    folder: Path


def manifest(base_url: str, text: str | None = None) -> dict[str, Any]:
    """app.yml as the manifest GitHub takes, its webhook and redirect URLs on `base_url`."""
    data = yaml.safe_load(text if text is not None else app_yml())
    if not isinstance(data, dict):
        raise OperationFailed("app.yml is not a mapping")
    data["hook_attributes"] = {**(data.get("hook_attributes") or {}), "url": f"{base_url}{WEBHOOK_PATH}"}
    data["redirect_url"] = f"{base_url}{CALLBACK}"
    return data


def unconfigured(settings: Settings) -> bool:
    """No App at all (neither in the environment nor registered): `serve` offers the set-up page."""
    return not (settings.github_app_id or settings.github_private_key or settings.github_webhook_secret)


def app_yml() -> str:
    return resources.files("bot.app").joinpath("app.yml").read_text()


def form_action(settings: Settings, org: str | None, state: str) -> str:
    where = f"/organizations/{quote(org, safe='')}" if org else ""
    return f"{settings.github_web_url}{where}/settings/apps/new?state={state}"


def store_credentials(state_dir: Path, conversion: dict[str, Any]) -> Path:
    """The App's id, key and webhook secret in `state_dir/github-app/`, each file mode 0600 (the
    folder 0700), the id last: a half-written set is never read as an App."""
    folder = state_dir / REGISTERED_APP_DIR
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.chmod(folder, 0o700)
    values = {"private_key": conversion["pem"], "webhook_secret": conversion["webhook_secret"]}
    values["app_id"] = str(conversion["id"])
    for name, value in values.items():
        write_private(folder / REGISTERED_APP_FILES[name], str(value))
    details = {key: conversion.get(key) for key in ("id", "slug", "name", "html_url", "client_id")}
    write_private(folder / "app.json", json.dumps(details, indent=2))
    return folder


def write_private(path: Path, text: str) -> None:
    """`text` in `path`, readable by this user only, replaced atomically."""
    partial = path.with_name(f".{path.name}.partial")
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as file:
        file.write(text)
    os.chmod(partial, 0o600)
    os.replace(partial, path)


class SetupFlow:
    """The set-up server's state: the one `state` value the callback must bring back."""

    def __init__(self, settings: Settings, org: str | None = None) -> None:
        self.settings = settings
        self.org = org
        self.state = secrets.token_urlsafe(24)
        self.done: asyncio.Future[Registered] | None = None

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/", self.page)
        app.router.add_get(CALLBACK, self.callback)
        app.router.add_get("/healthz", self.healthz)
        return app

    def base_url(self, request: web.Request) -> str:
        return self.settings.public_url or f"{request.scheme}://{request.host}"

    async def page(self, request: web.Request) -> web.Response:
        data = json.dumps(manifest(self.base_url(request)))
        action = form_action(self.settings, self.org, self.state)
        body = (
            "<h1>Set up fix-and-relaunch</h1>"
            "<p>This server has no GitHub App yet. Register one from the bot's manifest: GitHub asks you "
            "to confirm, then sends you back here, and the server stores the App's credentials in "
            f"<code>{escape(str(self.settings.state_dir / REGISTERED_APP_DIR))}</code> and starts serving.</p>"
            f"<p>Webhooks will go to <code>{escape(self.base_url(request) + WEBHOOK_PATH)}</code>.</p>"
            f'<form id="register" method="post" action="{escape(action)}">'
            f'<input type="hidden" name="manifest" value="{escape(data)}">'
            '<button type="submit">Register the GitHub App</button></form>'
        )
        return html_page("Set up fix-and-relaunch", body)

    async def callback(self, request: web.Request) -> web.Response:
        code, state = request.query.get("code", ""), request.query.get("state", "")
        if not secrets.compare_digest(state.encode(), self.state.encode()):
            return html_page("Set-up failed", "<h1>Set-up failed</h1><p>The state does not match.</p>", status=400)
        if not code or self.done is None or self.done.done():
            return html_page("Set-up failed", "<h1>Set-up failed</h1><p>No code, or already done.</p>", status=400)
        try:
            conversion = await self.convert(code)
        except OperationFailed as exc:
            return html_page("Set-up failed", f"<h1>Set-up failed</h1><p>{escape(str(exc))}</p>", status=502)
        folder = store_credentials(self.settings.state_dir, conversion)
        registered = Registered(str(conversion["id"]), str(conversion.get("slug", "")), conversion["html_url"], folder)
        log.info("registered the GitHub App %s (id %s); credentials in %s", registered.slug, registered.app_id, folder)
        asyncio.get_running_loop().call_later(CLOSE_DELAY_S, self._finish, registered)
        install = f"{registered.html_url}/installations/new"
        body = (
            f"<h1>Registered {escape(registered.slug)}</h1>"
            f"<p>The App's credentials are stored; the server now starts serving webhooks.</p>"
            f'<p>Next: <a id="install" href="{escape(install)}">install the App</a> on your repositories.</p>'
        )
        return html_page("Registered", body)

    async def convert(self, code: str) -> dict[str, Any]:
        url = f"{self.settings.github_api_url}/app-manifests/{quote(code, safe='')}/conversions"
        headers = {"Accept": "application/vnd.github+json", "User-Agent": "fix-and-relaunch"}
        try:
            async with aiohttp.ClientSession(timeout=REQUEST_TIMEOUT) as session:
                async with session.post(url, headers=headers) as response:
                    data = await response.json(content_type=None)
        except (aiohttp.ClientError, asyncio.TimeoutError, ValueError) as exc:
            raise OperationFailed(f"GitHub did not convert the manifest code ({type(exc).__name__})") from None
        if response.status != 201 or not isinstance(data, dict):
            message = data.get("message") if isinstance(data, dict) else None
            raise OperationFailed(f"GitHub refused the manifest code ({response.status}: {message})")
        missing = [key for key in ("id", "pem", "webhook_secret", "html_url") if not data.get(key)]
        if missing:
            raise OperationFailed(f"GitHub's answer lacks {', '.join(missing)}")
        return data

    async def healthz(self, request: web.Request) -> web.Response:
        return web.json_response({"status": "setup"})

    async def serve(self, host: str, port: int) -> Registered | None:
        """Serve until the App is registered; None when SIGTERM or SIGINT came first."""
        loop = asyncio.get_running_loop()
        self.done = loop.create_future()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, self._stop)
        runner = web.AppRunner(self.app(), access_log_class=QuietProbesAccessLogger)
        await runner.setup()
        await web.TCPSite(runner, host, port).start()
        log.info("no GitHub App configured: open http://%s:%d/ to register one", host, port)
        try:
            return await self.done
        except asyncio.CancelledError:
            log.info("stopped before a GitHub App was registered")
            return None
        finally:
            for signum in (signal.SIGTERM, signal.SIGINT):
                loop.remove_signal_handler(signum)
            await runner.cleanup()

    def _finish(self, registered: Registered) -> None:
        if self.done is not None and not self.done.done():  # not stopped in the meantime
            self.done.set_result(registered)

    def _stop(self) -> None:
        if self.done is not None and not self.done.done():
            self.done.cancel()


def register(settings: Settings, host: str, port: int, *, org: str | None = None) -> Registered | None:
    """Serve the set-up page on host:port until the App is registered (blocking); None when the
    process was asked to stop first."""
    configure_logging(settings.log_format)
    return asyncio.run(SetupFlow(settings, org).serve(host, port))
