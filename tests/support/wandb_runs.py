"""Make real offline W&B runs for tests, with the real `wandb` library in a subprocess.

    run_dir = make_offline_run(repo, config={"lr": 0.1, "branch": "main"},
                               steps=[{"loss": 1.0}, {"loss": 0.5}],
                               stdout="epoch 1\n", crash="raise RuntimeError('boom')")

The run is written where wandb puts it when started in `cwd` (`cwd/wandb/offline-run-…`);
when `cwd` is a git repository wandb records its HEAD commit and remote. The subprocess gets a
clean W&B environment (no API key, project or directory inherited from the caller).
Each run costs about a second, so make the runs a test module needs once, in a module-scoped
fixture.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path

# Runs in the subprocess. It reports the run folder first, so a killed run is still found.
_SCRIPT = r"""
import json, os, signal, sys, time
from pathlib import Path
import wandb

spec = json.loads(Path(sys.argv[1]).read_text())
settings = {"x_transaction_log_flush_interval": spec["flush_interval"]} if spec["flush_interval"] else {}
run = wandb.init(project=spec["project"], name=spec["name"], config=spec["config"],
                 settings=wandb.Settings(**settings))
Path(spec["report"]).write_text(str(Path(run.dir).parent))
sys.stdout.write(spec["stdout"])
sys.stdout.flush()
for row in spec["steps"]:
    run.log(row)
if spec["hard_kill"]:
    time.sleep(min(spec["flush_interval"] * 10, 1.0))  # let wandb-core flush (or not), then die unannounced
    os.kill(os.getpid(), signal.SIGKILL)
if spec["crash"]:
    exec(compile(spec["crash"], "train.py", "exec"))
sys.exit(spec["exit_code"])
"""


class OfflineRunError(AssertionError):
    """The subprocess did not produce a run folder."""


def make_offline_run(
    cwd: Path,
    *,
    config: Mapping | None = None,
    steps: Sequence[Mapping] = (),
    stdout: str = "",
    crash: str | None = None,
    exit_code: int = 0,
    hard_kill: bool = False,
    name: str | None = None,
    project: str = "tests",
    flush_interval: float | None = None,
    env: Mapping[str, str] | None = None,
    timeout: float = 120,
) -> Path:
    """Run a tiny training script under wandb offline in `cwd`; return the run folder.

    config: wandb.init's config. steps: one `run.log(row)` per row. stdout: printed after
    init, before the steps. crash: Python source run after the steps (an uncaught exception
    makes wandb record exit code 1 and the traceback in files/output.log). exit_code: the
    script's `sys.exit` status otherwise. hard_kill: SIGKILL itself after the steps, so the
    run ends with no exit record. flush_interval: seconds between wandb-core's writes of the
    .wandb log and output.log (wandb's default is 15). A hard kill waits ten of them (at most
    a second) first; it defaults to 0.05, so the steps reach the files. A hard kill with a long
    interval (say 60) dies before any flush, leaving a log with the file header only, as a
    real job killed early does.
    """
    cwd = Path(cwd)
    if flush_interval is None and hard_kill:
        flush_interval = 0.05
    with tempfile.TemporaryDirectory(prefix="wandb-run-") as tmp:
        spec_file, report, script = Path(tmp, "spec.json"), Path(tmp, "run_dir"), Path(tmp, "train.py")
        spec_file.write_text(
            json.dumps(
                {
                    "config": dict(config or {}),
                    "steps": [dict(s) for s in steps],
                    "stdout": stdout,
                    "crash": crash,
                    "exit_code": exit_code,
                    "hard_kill": hard_kill,
                    "name": name,
                    "project": project,
                    "flush_interval": flush_interval or 0,
                    "report": str(report),
                }
            )
        )
        script.write_text(_SCRIPT)
        proc = subprocess.run(
            [sys.executable, str(script), str(spec_file)],
            cwd=cwd,
            env=_env(env),
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        if not report.is_file():
            raise OfflineRunError(f"no run made (exit {proc.returncode}):\n{proc.stderr[-2000:]}")
        return cwd / report.read_text()  # wandb reports an absolute path; joining keeps it


def _env(extra: Mapping[str, str] | None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("WANDB_")}
    env.update(WANDB_MODE="offline", WANDB_SILENT="true", **(extra or {}))
    return env
