"""The request side of each webhook; the composer (bot.cli's `serve`, the tests) hands them to the server.

`router`: every GitHub route, combined in one router. `wandb.handle`: the W&B alert handler.
"""

from gidgethub import routing

from handlers import github, wandb

router = routing.Router(github.router)

__all__ = ["github", "router", "wandb"]
