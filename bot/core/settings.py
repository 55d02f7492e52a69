"""Process settings, read once at start-up from the environment.

Nothing here runs at import time: `Settings.from_env()` is called by the command line
and the server when they start, and the result is passed down.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from bot.core.errors import BadInput

# Every configured secret is removed verbatim from whatever the bot prints or posts, so a short
# one ("s") would garble every message; and a short webhook secret is guessable. Refused instead.
MIN_SECRET_LENGTH = 16
SECRET_NAMES = (
    "WANDB_API_KEY",
    "ANTHROPIC_API_KEY",
    "GITHUB_WEBHOOK_SECRET",
    "WANDB_WEBHOOK_SECRET",
    "FIX_AND_RELAUNCH_STATUS_TOKEN",
)
LOG_FORMATS = ("text", "json")

# Where `register-app` (bot.app.setup) keeps the App it registered, in the state directory.
REGISTERED_APP_DIR = "github-app"
REGISTERED_APP_FILES = {"app_id": "app-id", "private_key": "private-key.pem", "webhook_secret": "webhook-secret"}


def default_state_dir(env: Mapping[str, str]) -> Path:
    """XDG state dir, the place for data that outlives a process but is not the user's."""
    base = env.get("XDG_STATE_HOME") or str(Path(env.get("HOME", "~")).expanduser() / ".local" / "state")
    return Path(base) / "fix-and-relaunch"


def _read_key(path: Path) -> str:
    try:
        return path.expanduser().read_text()
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else None
        raise BadInput(
            f"cannot read the GitHub App's private key file {path} ({reason or exc}); check GITHUB_PRIVATE_KEY_PATH"
        ) from None


def github_web_url(api_url: str) -> str:
    """GitHub's web address for its API's: github.com, or an Enterprise server's `/api/v3` stripped."""
    if api_url == "https://api.github.com":
        return "https://github.com"
    return api_url.removesuffix("/api/v3")


def registered_app(state_dir: Path) -> dict[str, str]:
    """The App credentials `register-app` stored in the state directory (empty when it never ran)."""
    folder = state_dir / REGISTERED_APP_DIR
    found: dict[str, str] = {}
    for name, file in REGISTERED_APP_FILES.items():
        try:
            found[name] = (folder / file).read_text().strip()
        except FileNotFoundError:
            return {}
        except (OSError, UnicodeDecodeError) as exc:
            raise BadInput(f"cannot read the registered App's {folder / file} ({exc})") from None
    return found


def check_secret_lengths(secrets: Mapping[str, str | None]) -> None:
    """BadInput naming each configured secret shorter than MIN_SECRET_LENGTH (never its value)."""
    short = [
        f"{name} is {len(value)} character{'s' if len(value) > 1 else ''} long"
        for name, value in secrets.items()
        if value and len(value) < MIN_SECRET_LENGTH
    ]
    if not short:
        return
    raise BadInput(
        f"{'; '.join(short)}: a secret must have at least {MIN_SECRET_LENGTH} characters, or it garbles every "
        "message the bot redacts it from (make one with `python -c 'import secrets; print(secrets.token_hex(32))'`)"
    )


UNSANDBOXED_OPT_OUT = "i-understand"


def _names(text: str | None) -> tuple[str, ...]:
    """A list setting: items separated by commas or the OS path separator, blanks dropped."""
    return tuple(item.strip() for item in (text or "").replace(os.pathsep, ",").split(",") if item.strip())


@dataclass(frozen=True)
class SandboxSettings:
    """The operator's word on the sandbox that repository code runs in (bot/launchers/sandbox),
    and what this process makes of the repo config's `launch.sandbox: auto`."""

    auto: bool = False  # what `auto` means here: on under `serve`, off on the command line
    choice: bool | None = None  # --sandbox / --no-sandbox: over the repo config
    required: bool | None = None  # FIX_AND_RELAUNCH_SANDBOX=required|optional; None: required under serve
    unsandboxed_ok: bool = False  # FIX_AND_RELAUNCH_UNSANDBOXED_JOBS=i-understand: run without the tool
    limits: str | None = None  # FIX_AND_RELAUNCH_SANDBOX_LIMITS: caps, e.g. "memory=32G,processes=4096"
    paths: tuple[str, ...] = ()  # FIX_AND_RELAUNCH_SANDBOX_PATHS: host folders jobs may read (datasets)
    env: tuple[str, ...] = ()  # FIX_AND_RELAUNCH_SANDBOX_ENV: the bot's variables jobs are given
    hidden: tuple[str, ...] = ()  # never shown to a job, whatever else is: the App's key file

    @classmethod
    def from_env(cls, get: Callable[[str], str | None]) -> SandboxSettings:
        required = get("FIX_AND_RELAUNCH_SANDBOX")
        if required not in (None, "required", "optional"):
            raise BadInput(f"FIX_AND_RELAUNCH_SANDBOX must be 'required' or 'optional', got {required!r}")
        return cls(
            required=None if required is None else required == "required",
            unsandboxed_ok=get("FIX_AND_RELAUNCH_UNSANDBOXED_JOBS") == UNSANDBOXED_OPT_OUT,
            limits=get("FIX_AND_RELAUNCH_SANDBOX_LIMITS"),
            paths=_names(get("FIX_AND_RELAUNCH_SANDBOX_PATHS")),
            env=_names(get("FIX_AND_RELAUNCH_SANDBOX_ENV")),
            hidden=tuple(path for path in [get("GITHUB_PRIVATE_KEY_PATH")] if path),
        )


@dataclass(frozen=True)
class Settings:
    wandb_api_key: str | None = None
    wandb_base_url: str | None = None
    wandb_entity: str | None = None
    wandb_project: str | None = None
    anthropic_api_key: str | None = None
    anthropic_base_url: str | None = None
    anthropic_model: str = "claude-sonnet-4-6"
    github_app_id: str | None = None
    github_private_key: str | None = None
    github_webhook_secret: str | None = None
    github_api_url: str = "https://api.github.com"
    github_git_url: str | None = None  # e.g. "file:///srv/git/{repo}.git"; default: the payload's clone_url
    github_web_url: str = "https://github.com"  # where the App manifest form posts (GitHub Enterprise: its server)
    public_url: str | None = None  # the server's public address, for the App manifest (default: the request's)
    status_token: str | None = None  # protects the status page; without it, only localhost may read it
    log_format: str = "text"  # one of LOG_FORMATS
    wandb_webhook_secret: str | None = None
    state_dir: Path = field(default_factory=lambda: Path("."))
    sandbox: SandboxSettings = field(default_factory=SandboxSettings)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        """The settings named in the environment; BadInput for a secret too short to be one."""
        env = os.environ if env is None else env

        def get(name: str) -> str | None:
            value = env.get(name, "").strip()
            return value or None

        check_secret_lengths({name: get(name) for name in SECRET_NAMES})
        private_key = get("GITHUB_PRIVATE_KEY")
        key_path = get("GITHUB_PRIVATE_KEY_PATH")
        if private_key is None and key_path:
            private_key = _read_key(Path(key_path))
        log_format = get("FIX_AND_RELAUNCH_LOG_FORMAT") or cls.log_format
        if log_format not in LOG_FORMATS:
            raise BadInput(f"FIX_AND_RELAUNCH_LOG_FORMAT must be one of {', '.join(LOG_FORMATS)}, got {log_format!r}")
        state_dir = Path(get("FIX_AND_RELAUNCH_STATE_DIR") or default_state_dir(env)).expanduser()
        # The environment's App, else the one `register-app` stored (never a mix of the two).
        registered = registered_app(state_dir) if get("GITHUB_APP_ID") is None else {}
        api_url = (get("GITHUB_API_URL") or cls.github_api_url).rstrip("/")
        return cls(
            wandb_api_key=get("WANDB_API_KEY"),
            wandb_base_url=get("WANDB_BASE_URL"),
            wandb_entity=get("WANDB_ENTITY"),
            wandb_project=get("WANDB_PROJECT"),
            anthropic_api_key=get("ANTHROPIC_API_KEY"),
            anthropic_base_url=get("ANTHROPIC_BASE_URL"),
            anthropic_model=get("ANTHROPIC_MODEL") or cls.anthropic_model,
            github_app_id=get("GITHUB_APP_ID") or registered.get("app_id"),
            github_private_key=private_key if not registered else registered["private_key"],
            github_webhook_secret=get("GITHUB_WEBHOOK_SECRET") if not registered else registered["webhook_secret"],
            github_api_url=api_url,
            github_git_url=get("GITHUB_GIT_URL"),
            github_web_url=(get("GITHUB_WEB_URL") or github_web_url(api_url)).rstrip("/"),
            public_url=(get("FIX_AND_RELAUNCH_PUBLIC_URL") or "").rstrip("/") or None,
            status_token=get("FIX_AND_RELAUNCH_STATUS_TOKEN"),
            log_format=log_format,
            wandb_webhook_secret=get("WANDB_WEBHOOK_SECRET"),
            state_dir=state_dir,
            sandbox=SandboxSettings.from_env(get),
        )

    def with_sandbox(self, **changes: Any) -> Settings:
        """These settings with the sandbox's changed (serve's `auto`, a command's --sandbox)."""
        return replace(self, sandbox=replace(self.sandbox, **changes))

    @property
    def online_wandb(self) -> bool:
        return self.wandb_api_key is not None

    def secrets(self) -> list[str]:
        """Every configured secret value, so redaction can remove them verbatim too."""
        values = [
            self.wandb_api_key,
            self.anthropic_api_key,
            self.github_private_key,
            self.github_webhook_secret,
            self.wandb_webhook_secret,
            self.status_token,
        ]
        return [v for v in values if v]
