"""The GitHub App: the webhook server and everything its workers do around the fix loop.

server (HTTP endpoints; composed with handlers/ by the `serve` command), github_auth (App
tokens), jobs (typed job payloads), queue (the persistent job queue), workers, executor (a
fix job: clone, run the loop, report), alerts (W&B alerts into fix jobs), permissions,
forge (comments and check runs), messages (PR message templates), wandb_setup, hooks.
"""
