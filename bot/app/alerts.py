"""What a W&B failure alert needs from W&B: the project's recently failed runs, with their code.

W&B automation payloads name no run, so on an alert the bot lists the project's failed runs
(newest first, bounded) and the handler keeps those it has not handled yet.
"""
from __future__ import annotations

import itertools
from typing import Any, Callable

from bot.core.settings import Settings
from bot.core.errors import OperationFailed
from bot.runs.model import FAILED_STATES
LOOKUP_LIMIT = 20


def runs_lookup(settings: Settings) -> Callable[[str, str], list[dict[str, Any]]]:
    """`lookup(entity, project)` for handlers.wandb.resolve_wandb_alert (blocking; run in a thread)."""
    def lookup(entity: str, project: str) -> list[dict[str, Any]]:
        return failed_runs(settings, entity, project)
    return lookup


def failed_runs(settings: Settings, entity: str, project: str, *, limit: int = LOOKUP_LIMIT) -> list[dict[str, Any]]:
    if not settings.wandb_api_key:
        raise OperationFailed("a W&B alert needs WANDB_API_KEY to look up the failed runs")
    import wandb

    overrides = {"entity": entity, **({"base_url": settings.wandb_base_url} if settings.wandb_base_url else {})}
    api = wandb.Api(api_key=settings.wandb_api_key, overrides=overrides, timeout=30)
    runs = api.runs(f"{entity}/{project}", filters={"state": {"$in": list(FAILED_STATES)}},
                    order="-created_at", per_page=limit)
    return [_describe(run) for run in itertools.islice(runs, limit)]


def _describe(run) -> dict[str, Any]:
    meta = run.metadata or {}
    git = meta.get("git") or {}
    return {
        "id": run.id, "path": "/".join(run.path), "state": run.state,
        "commit": run.commit or git.get("commit"), "remote": git.get("remote") or meta.get("remote"),
        "config": {k: v for k, v in run.config.items() if not k.startswith("_")},
    }
