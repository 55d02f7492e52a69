"""`register-app`: serve the set-up page until the App is registered, then exit."""

from __future__ import annotations

import argparse

from bot.app.setup import register
from bot.core.errors import OperationFailed
from bot.core.settings import Settings


def run(args: argparse.Namespace, settings: Settings) -> int:
    registered = register(settings, args.host, args.port, org=args.org)
    if registered is None:
        raise OperationFailed("stopped before a GitHub App was registered")
    print(
        f"registered the GitHub App {registered.slug} (id {registered.app_id}); its credentials are in "
        f"{registered.folder}. Install it: {registered.html_url}/installations/new"
    )
    return 0
