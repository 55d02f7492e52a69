"""`demo`: the whole workflow on a sample repo, offline."""

from __future__ import annotations

import argparse

from bot.core.settings import Settings
from bot.demo.run import run_demo


def run(args: argparse.Namespace, settings: Settings) -> int:
    return run_demo(settings, args.dir)
