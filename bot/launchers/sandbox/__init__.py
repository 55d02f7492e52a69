"""The sandbox every process the bot starts from repository code runs in, on the bot's host.

Bubblewrap builds it (see tool.py for why): its own user, pid, mount, IPC and UTS namespaces
(and network, when `network: off`); a filesystem of the system, the toolchain and the worktree
only (view.py); a clean environment; limits on memory, processes, CPU time, disk and wall time
(limits.py, cgroups.py). Callers wrap an argv:

    sandbox = sandbox_for(config, settings)        # None: unsandboxed by choice
    if sandbox is not None:
        prepared = sandbox.prepare(argv, worktree=wt, env=env, name=run_id)
        env = sandbox.environment(env, keep=run_vars)
        watch = prepared.start()                   # then run prepared.argv with env, in wt
        ...                                        # Stopper(pgid, grace).tick(watch) while it runs
        reason = prepared.verdict(exit_code, stopper.reason); prepared.finish()

or, for a short command run to its end, `run_command(argv, cwd=…, env=…, timeout=…, sandbox=…)`.
"""

from __future__ import annotations

from bot.launchers.sandbox.limits import Stopper, Watch
from bot.launchers.sandbox.policy import Limits, Mode, Network, SandboxContext, SandboxPolicy, SandboxSpec, policy_for
from bot.launchers.sandbox.run import Finished, Prepared, Sandbox, SandboxRefused, run_command, sandbox_for
from bot.launchers.sandbox.startup import enforcement, serve_settings

__all__ = [
    "Finished",
    "Limits",
    "Mode",
    "Network",
    "Prepared",
    "Sandbox",
    "SandboxContext",
    "SandboxPolicy",
    "SandboxRefused",
    "SandboxSpec",
    "Stopper",
    "Watch",
    "enforcement",
    "policy_for",
    "run_command",
    "sandbox_for",
    "serve_settings",
]
