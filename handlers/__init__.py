"""The request side of each webhook; the composer (bot.cli's `serve`, the tests) hands them to the server.

`router`: every GitHub route, combined in one router. `wandb.handle`: the W&B alert handler.
`ACT_ONLY_IF`: for some events, bytes without which a delivery cannot concern any handler (a
comment that does not name the command): the server acknowledges those without parsing them.
"""

from gidgethub import routing

from handlers import github, wandb

router = routing.Router(github.router)
ACT_ONLY_IF = {"issue_comment": github.COMMAND_BYTES}

__all__ = ["ACT_ONLY_IF", "github", "router", "wandb"]
