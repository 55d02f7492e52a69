"""Variables the tests never inherit from the machine: credentials and endpoints of real services."""

from __future__ import annotations

CREDENTIALS = (
    "WANDB_API_KEY",
    "WANDB_BASE_URL",
    "WANDB_ENTITY",
    "WANDB_PROJECT",
    "ANTHROPIC_API_KEY",
    "ANTHROPIC_BASE_URL",
    "GITHUB_APP_ID",
    "GITHUB_PRIVATE_KEY",
    "GITHUB_PRIVATE_KEY_PATH",
    "GITHUB_WEBHOOK_SECRET",
    "WANDB_WEBHOOK_SECRET",
    "GITHUB_API_URL",
    "GITHUB_TOKEN",
)
