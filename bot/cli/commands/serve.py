"""`serve`: the webhook server. The composer: the server gets each webhook's request side from `handlers`.

Without any App credentials it first serves the set-up page (bot.app.setup) on the same
address, then reads its settings again (the registered App's included) and serves webhooks.
"""

from __future__ import annotations

import argparse

import handlers
from bot.app.server import run as run_server
from bot.app.setup import register, unconfigured
from bot.core.secrets import Redactor, redacted_logs
from bot.core.settings import Settings


def run(args: argparse.Namespace, settings: Settings) -> int:
    if not unconfigured(settings):
        serve(args, settings)
        return 0
    if register(settings, args.host, args.port) is None:
        return 0  # stopped (SIGTERM) before anyone registered the App
    settings = Settings.from_env()  # now with the registered App
    with redacted_logs(Redactor.from_settings(settings)):  # its new secrets too
        serve(args, settings)
    return 0


def serve(args: argparse.Namespace, settings: Settings) -> None:
    run_server(
        settings,
        args.host,
        args.port,
        router=handlers.router,
        wandb_handler=handlers.wandb.handle,
        act_only_if=handlers.ACT_ONLY_IF,
    )
