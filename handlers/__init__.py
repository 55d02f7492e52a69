"""All GitHub webhook routes in one router; W&B webhooks have their own table in handlers.wandb."""
from gidgethub import routing

from handlers import github

router = routing.Router(github.router)
