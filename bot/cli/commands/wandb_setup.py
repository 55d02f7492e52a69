"""`wandb-setup`: the W&B automation that alerts the bot when a run fails."""

from __future__ import annotations

import argparse

from bot.app.wandb_setup import create_automation
from bot.core.settings import Settings


def run(args: argparse.Namespace, settings: Settings) -> int:
    print(create_automation(settings, entity=args.entity, project=args.project, url=args.url))
    return 0
