"""The environment variables each command reads, for its `--help`.

`bot.core.settings.Settings.from_env` reads them all once at start-up; this says which matter
to which command. A test checks that every variable Settings reads is listed here.
"""

from __future__ import annotations

VARIABLES = {
    "FIX_AND_RELAUNCH_STATE_DIR": "the bot's state: runs, jobs, logs (default $XDG_STATE_HOME/fix-and-relaunch, "
    "else ~/.local/state/fix-and-relaunch)",
    "XDG_STATE_HOME": "where the default state folder goes",
    "HOME": "where the default state folder goes without XDG_STATE_HOME",
    "WANDB_API_KEY": "read runs through the W&B API (without it: offline runs)",
    "WANDB_BASE_URL": "the W&B server (default: W&B's cloud)",
    "WANDB_ENTITY": "the W&B entity when the repo config names none",
    "WANDB_PROJECT": "the W&B project when the repo config names none",
    "ANTHROPIC_API_KEY": "the LLM fixer (without it only rules fix)",
    "ANTHROPIC_BASE_URL": "the Anthropic API server",
    "ANTHROPIC_MODEL": "the LLM fixer's model (default claude-sonnet-4-6)",
    "GITHUB_APP_ID": "the GitHub App's id",
    "GITHUB_PRIVATE_KEY": "the GitHub App's private key (PEM)",
    "GITHUB_PRIVATE_KEY_PATH": "a file holding it instead",
    "GITHUB_WEBHOOK_SECRET": "the GitHub App's webhook secret",
    "GITHUB_API_URL": "the GitHub API (GitHub Enterprise; default https://api.github.com)",
    "GITHUB_GIT_URL": "a clone URL template, e.g. https://ghe.example.com/{repo}.git",
    "WANDB_WEBHOOK_SECRET": "the bearer secret of W&B alerts",
    "GITHUB_WEB_URL": "GitHub's web address, where the App manifest form posts (default: from GITHUB_API_URL)",
    "FIX_AND_RELAUNCH_PUBLIC_URL": "the server's public address, put in the App manifest (default: the request's)",
    "FIX_AND_RELAUNCH_STATUS_TOKEN": "the status page's token (without it the page answers localhost only)",
    "FIX_AND_RELAUNCH_LOG_FORMAT": "text (default) or json: one JSON object a line",
    "NO_COLOR": "no colour in the progress line",
    "FIX_AND_RELAUNCH_SANDBOX": "required (default under serve: launch.sandbox off is refused) or optional",
    "FIX_AND_RELAUNCH_SANDBOX_LIMITS": "sandbox limits for every job, e.g. memory=32G,processes=4096",
    "FIX_AND_RELAUNCH_SANDBOX_PATHS": "host folders sandboxed jobs may read (datasets)",
    "FIX_AND_RELAUNCH_SANDBOX_ENV": "the bot's variables sandboxed jobs are given",
    "FIX_AND_RELAUNCH_UNSANDBOXED_JOBS": "i-understand: run repository code without bubblewrap where it is missing",
}

STATE = ("FIX_AND_RELAUNCH_STATE_DIR", "XDG_STATE_HOME", "HOME")
RUNS = (*STATE, "WANDB_API_KEY", "WANDB_BASE_URL", "WANDB_ENTITY", "WANDB_PROJECT")
LLM = ("ANTHROPIC_API_KEY", "ANTHROPIC_BASE_URL", "ANTHROPIC_MODEL")
GITHUB = (
    "GITHUB_APP_ID",
    "GITHUB_PRIVATE_KEY",
    "GITHUB_PRIVATE_KEY_PATH",
    "GITHUB_WEBHOOK_SECRET",
    "GITHUB_API_URL",
    "GITHUB_GIT_URL",
)
SANDBOX = (
    "FIX_AND_RELAUNCH_SANDBOX",
    "FIX_AND_RELAUNCH_SANDBOX_LIMITS",
    "FIX_AND_RELAUNCH_SANDBOX_PATHS",
    "FIX_AND_RELAUNCH_SANDBOX_ENV",
    "FIX_AND_RELAUNCH_UNSANDBOXED_JOBS",
)
# Read by every command, to redact them from what it prints (and the key file must be readable).
SECRETS = ("WANDB_API_KEY", "ANTHROPIC_API_KEY", "GITHUB_PRIVATE_KEY", "GITHUB_PRIVATE_KEY_PATH",
           "GITHUB_WEBHOOK_SECRET", "WANDB_WEBHOOK_SECRET", "FIX_AND_RELAUNCH_STATUS_TOKEN")  # fmt: skip
OPERATE = ("GITHUB_WEB_URL", "FIX_AND_RELAUNCH_PUBLIC_URL", "FIX_AND_RELAUNCH_LOG_FORMAT")

COMMANDS: dict[str, tuple[str, ...]] = {
    "serve": (*RUNS, *LLM, *GITHUB, "WANDB_WEBHOOK_SECRET", *SANDBOX, *OPERATE, "FIX_AND_RELAUNCH_STATUS_TOKEN"),
    "register-app": (*STATE, "GITHUB_API_URL", *OPERATE),
    "jobs": STATE,
    "launch": (*RUNS, *SANDBOX, "NO_COLOR"),
    "diagnose": RUNS,
    "history": RUNS,
    "runs": RUNS,
    "delete-run": RUNS,
    "fix": (*RUNS, *LLM, *SANDBOX, "NO_COLOR"),
    "demo": (*LLM, "NO_COLOR"),
    "check-config": (),
    "wandb-setup": ("WANDB_API_KEY", "WANDB_BASE_URL", "WANDB_WEBHOOK_SECRET"),
}


def epilog(command: str) -> str:
    """The `--help` text that lists what `command` reads from the environment."""
    names = COMMANDS[command]
    width = max((len(n) for n in names), default=0)
    lines = ["environment:"]
    lines += [f"  {name.ljust(width)}  {VARIABLES[name]}" for name in names]
    if not names:
        lines.append("  (none of its own)")
    lines.append(f"  and, to redact them from what it prints: {', '.join(SECRETS)}")
    return "\n".join(lines)
