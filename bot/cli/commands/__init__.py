"""One module per command, each with `run(args, settings) -> exit status`.

`bot.cli.main` imports the one the user asked for, and only that one: `--help` stays fast and
nothing heavy (wandb, anthropic, aiohttp) loads for a command that does not need it.
"""
