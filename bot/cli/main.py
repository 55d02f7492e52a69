"""The command line: `fix-and-relaunch …` and `python -m bot …`.

Parse, read the settings once, run the one command asked for, and turn a BotError into its
exit status and one line on stderr (a config error: one line per problem). Exit status (docs/contracts.md): 0 success, 1 the operation
ran and failed, 2 bad usage or input.
"""

from __future__ import annotations

import importlib
import os
import sys

from bot.cli.parser import build_parser
from bot.core.errors import BotError
from bot.core.secrets import Redactor, redacted_logs
from bot.core.settings import Settings

# command -> its module under bot.cli.commands; imported only when it runs.
COMMANDS = {
    "diagnose": "diagnose",
    "history": "history",
    "runs": "runs",
    "delete-run": "delete_run",
    "launch": "launch",
    "fix": "fix",
    "demo": "demo",
    "serve": "serve",
    "wandb-setup": "wandb_setup",
    "check-config": "check_config",
    "jobs": "jobs",
    "register-app": "register_app",
}


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    redactor = Redactor()
    try:
        settings = Settings.from_env()
        redactor = Redactor.from_settings(settings)
        command = importlib.import_module(f"bot.cli.commands.{COMMANDS[args.command]}")
        with redacted_logs(redactor):  # every log record of the command, `serve`'s included
            status: int = command.run(args, settings)
        return status
    except BotError as exc:
        print(error_text(redactor.text(str(exc))), file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # The reader went away (`… | head`): say nothing more, as the Python docs advise.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1


def error_text(message: str) -> str:
    """One line; a config error with several problems puts each on a line of its own."""
    first, *more = message.splitlines() or [""]
    if not more:
        return f"fix-and-relaunch: {first}"
    return "\n".join([f"fix-and-relaunch: {len(more) + 1} problems:", first, *more])


if __name__ == "__main__":
    sys.exit(main())
