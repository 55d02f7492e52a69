"""GitHub App authentication: a JWT for the App, installation tokens cached until near expiry.

The private key is parsed once, at start-up: parsing a PEM key (which PyJWT does at each
`encode` given the text) costs ~50 ms of CPU, a stall of every request on the event loop. The
JWT itself is signed again only when the one in hand is a few minutes old.

One `GitHubApp` lives as long as the server, with the server's one `ClientSession`. Workers
get the installation id with their job, never a stored token, and ask this object for a
`GitHubAPI` (one that retries GitHub's hiccups: bot.app.github_api) when they need one; the
request side never does, so a token is fetched only when a job needs one.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from datetime import datetime

import aiohttp
import jwt
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey
from cryptography.hazmat.primitives.serialization import load_pem_private_key

from bot.app.github_api import RetryingGitHubAPI, RetryPolicy
from bot.core.errors import BadInput
from bot.core.settings import Settings

log = logging.getLogger(__name__)

USER_AGENT = "fix-and-relaunch"
REFRESH_MARGIN = 5 * 60  # seconds before `expires_at` at which a cached token is replaced
JWT_TTL = 10 * 60  # GitHub's longest App JWT
JWT_REUSE = 5 * 60  # seconds a signed JWT is reused: it still has 4 minutes left at the end
CLOCK_SKEW = 60  # the JWT's issue time is backdated for drift between our clock and GitHub's (as gidgethub does)


def check_app_settings(settings: Settings) -> tuple[str, str]:
    """The App's id and private key, or BadInput naming each of them and the webhook secret
    that is missing: a GitHub App does not run without all three."""
    app_id, private_key = settings.github_app_id, settings.github_private_key
    if app_id and private_key and settings.github_webhook_secret:
        return app_id, private_key
    missing = [
        name
        for name, value in (
            ("GITHUB_APP_ID", settings.github_app_id),
            ("GITHUB_PRIVATE_KEY (or GITHUB_PRIVATE_KEY_PATH)", settings.github_private_key),
            ("GITHUB_WEBHOOK_SECRET", settings.github_webhook_secret),
        )
        if not value
    ]
    raise BadInput(f"the webhook server needs {', '.join(missing)}; refusing to start without them")


def check_app_credentials(settings: Settings) -> None:
    """BadInput, at start-up, for an App id that is not a number or a private key that cannot sign
    the App's JWT: found then, not at the first webhook. The key itself is never quoted."""
    app_id, private_key = check_app_settings(settings)
    if not app_id.isdigit():
        raise BadInput(f"GITHUB_APP_ID must be the App's numeric id (its settings page shows it), got {app_id!r}")
    signing_key(private_key)


def signing_key(private_key: str) -> RSAPrivateKey:
    """The App's PEM private key, parsed; BadInput when it is not an RSA private key."""
    try:
        key = load_pem_private_key(private_key.encode(), password=None)
    except (ValueError, TypeError) as exc:
        raise BadInput(
            "GITHUB_PRIVATE_KEY (or the file GITHUB_PRIVATE_KEY_PATH names) is not a usable RSA private key in PEM "
            f"form ({type(exc).__name__}); download a new one from the App's settings page"
        ) from None
    if not isinstance(key, RSAPrivateKey):
        raise BadInput(f"GITHUB_PRIVATE_KEY is a {type(key).__name__}, not the RSA private key GitHub Apps sign with")
    return key


def parse_expiry(expires_at: str) -> float:
    """GitHub's `2016-07-11T22:14:10Z` as epoch seconds."""
    return datetime.fromisoformat(expires_at.replace("Z", "+00:00")).timestamp()


INSTALLATION_TTL = 15 * 60  # seconds a repo's installation id is trusted without asking again


class GitHubApp:
    def __init__(
        self,
        settings: Settings,
        session: aiohttp.ClientSession,
        *,
        clock: Callable[[], float] = time.time,
        retry: RetryPolicy = RetryPolicy(),
    ):
        self._app_id, private_key = check_app_settings(settings)
        self._key = signing_key(private_key)
        self._jwt: tuple[str, float] | None = None  # (JWT, issued at)
        self.settings = settings
        self.session = session
        self.clock = clock
        self.retry = retry
        self._tokens: dict[int, tuple[str, float]] = {}
        self._locks: dict[int, asyncio.Lock] = {}
        self._installations: dict[str, tuple[int, float]] = {}  # repo -> (installation id, fetched at)
        self._loop: asyncio.AbstractEventLoop | None = None

    def _gh(self, token: str | None = None) -> RetryingGitHubAPI:
        return RetryingGitHubAPI(
            self.session, USER_AGENT, oauth_token=token, base_url=self.settings.github_api_url, retry=self.retry
        )

    def anonymous(self) -> RetryingGitHubAPI:
        """A GitHubAPI without a token (pass `jwt=self.jwt()` per call to act as the App)."""
        return self._gh()

    def jwt(self) -> str:
        """The App's JWT, signed again once the one in hand is JWT_REUSE old. Its claims use the
        real time, which GitHub checks them against; `clock` only says when to sign again."""
        now = self.clock()
        if self._jwt is None or now - self._jwt[1] > JWT_REUSE:
            issued = int(time.time()) - CLOCK_SKEW
            claims = {"iat": issued, "exp": issued + JWT_TTL, "iss": self._app_id}
            self._jwt = (jwt.encode(claims, self._key, algorithm="RS256"), now)
        return self._jwt[0]

    async def installation_token(self, installation_id: int) -> str:
        """A token for the installation, from the cache while it has over 5 minutes left."""
        self._loop = asyncio.get_running_loop()
        installation_id = int(installation_id)
        lock = self._locks.setdefault(installation_id, asyncio.Lock())
        async with lock:
            cached = self._tokens.get(installation_id)
            if cached and self.clock() < cached[1] - REFRESH_MARGIN:
                return cached[0]
            # What gidgethub's apps.get_installation_access_token does, with the cached JWT.
            data = await self.anonymous().post(
                "/app/installations/{installation_id}/access_tokens",
                {"installation_id": installation_id},
                data=b"",
                jwt=self.jwt(),
            )
            self._tokens[installation_id] = (data["token"], parse_expiry(data["expires_at"]))
            log.info("new access token for installation %s, expires %s", installation_id, data["expires_at"])
            return data["token"]

    async def gh_for_installation(self, installation_id: int) -> RetryingGitHubAPI:
        return self._gh(await self.installation_token(installation_id))

    def token_from_thread(self, installation_id: int, timeout: float = 30) -> str:
        """`installation_token` for code running in a worker thread (e.g. a git push URL)."""
        if self._loop is None:
            raise RuntimeError("the GitHub App has not been used from its event loop yet")
        future = asyncio.run_coroutine_threadsafe(self.installation_token(installation_id), self._loop)
        return future.result(timeout)

    async def installation_for_repo(self, full_name: str) -> int:
        """The id of this App's installation on `owner/repo` (GET /repos/{owner}/{repo}/installation),
        cached for a while: an App reinstalled or a repo transferred gets a new id."""
        cached = self._installations.get(full_name)
        if cached and self.clock() < cached[1] + INSTALLATION_TTL:
            return cached[0]
        owner, repo = full_name.split("/", 1)
        data = await self.anonymous().getitem(
            "/repos/{owner}/{repo}/installation", {"owner": owner, "repo": repo}, jwt=self.jwt()
        )
        self._installations[full_name] = (int(data["id"]), self.clock())
        return int(data["id"])

    async def for_repo(self, full_name: str) -> tuple[RetryingGitHubAPI, int]:
        """A `gh_factory` for `resolve_wandb_alert`: the repo's GitHubAPI and installation id."""
        installation_id = await self.installation_for_repo(full_name)
        return await self.gh_for_installation(installation_id), installation_id
