"""`serve`: the webhook server. The composer: the server gets each webhook's request side from `handlers`."""

from __future__ import annotations

import argparse

import handlers
from bot.app.server import run as run_server
from bot.core.settings import Settings


def run(args: argparse.Namespace, settings: Settings) -> int:
    run_server(
        settings,
        args.host,
        args.port,
        router=handlers.router,
        wandb_handler=handlers.wandb.handle,
        act_only_if=handlers.ACT_ONLY_IF,
    )
    return 0
