"""How big the LLM fixer's prompt is, per section, for the sample repo and a realistic failure.

Usage: python benchmarks/llm_prompt_size.py [--steps N] [--budget TOKENS]

Builds the sample experiment repo (bot/sample_repo.py) in a temporary directory, fakes the log of
its diverging run (N logged steps of W&B output, then the traceback), builds the context the LLM
fixer would send, and prints characters and estimated tokens (4 characters a token) per section,
for the fixed, cached part (system prompt and tool) and the whole. Nothing is sent anywhere.
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bot.core.settings import Settings  # noqa: E402
from bot.demo import sample_repo  # noqa: E402
from bot.diagnosis.model import Diagnosis  # noqa: E402
from bot.fixers.llm.client import Conversation, system_blocks, tool_definitions  # noqa: E402
from bot.fixers.llm.prompt import DEFAULT_BUDGET_TOKENS, estimate_tokens  # noqa: E402
from bot.fixers.model import FixContext  # noqa: E402
from bot.repo.config import DEFAULTS  # noqa: E402
from bot.repo.git import git  # noqa: E402


def failure_log(workdir: str, steps: int) -> list[str]:
    lines = [
        "wandb: Currently logged in as: researcher (my-team)",
        "wandb: Tracking run with wandb version 0.31.0",
        f"wandb: Run data is saved locally in {workdir}/wandb/run-20250101_120000-abc123",
        "wandb: Syncing run exp-high-lr-1",
    ]
    w, lr = 0.0, 25.0
    for step in range(steps):
        error = w - 3.0
        lines.append(f"step {step:5d} | loss {error * error:.6g} | lr {lr} | 0.02 s/step")
        w -= lr * 2 * error
        if not abs(w) < 1e150:
            break
    lines += [
        "Traceback (most recent call last):",
        f'  File "{workdir}/main.py", line 19, in <module>',
        "    train(run, config)",
        f'  File "{workdir}/src/train.py", line 12, in train',
        '    raise FloatingPointError(f"Loss is {loss} at step {step}")',
        "FloatingPointError: Loss is inf at step 131",
        "wandb: 🚀 View run exp-high-lr-1 at: https://wandb.ai/my-team/demo/runs/abc123",
    ]
    return lines


def build(root: Path, steps: int) -> FixContext:
    work = sample_repo.build(root)
    git(work, "checkout", "-q", sample_repo.BRANCH)
    workdir = "/scratch/researcher/jobs/12345/fix-and-relaunch-demo"
    diagnosis = Diagnosis(
        category="nan_loss",
        retryable=False,
        exception={"type": "FloatingPointError", "message": "Loss is inf at step 131"},
        location={"file": "src/train.py", "line": 12, "function": "train"},
        evidence=["FloatingPointError: Loss is inf at step 131"],
        summary="the loss diverged at step 131",
    )
    return FixContext(
        worktree=work,
        branch=sample_repo.BRANCH,
        diagnosis=diagnosis,
        config=copy.deepcopy(DEFAULTS),
        log_tail=failure_log(workdir, steps),
        base_branch="main",
        run_config={"lr": 25.0, "steps": 150, "batch_size": 32, "branch": sample_repo.BRANCH},
        hint="probably the learning rate change",
        pr_text="Exp: does a 100x learning rate train faster?",
    )


def report(ctx: FixContext, budget: int) -> None:
    conversation = Conversation(ctx, Settings(), client=None, budget_tokens=budget)
    prompt = conversation.context
    fixed = {
        "system": sum(len(b["text"]) for b in system_blocks(ctx.config)),
        "tools": len(json.dumps(tool_definitions())),
    }
    user = len(conversation.messages[0]["content"][0]["text"])
    print(f"log lines: {len(ctx.log_tail)}   budget: {budget} tokens")
    print(f"{'section':40} {'chars':>8} {'~tokens':>8}")
    for name, chars, tokens in prompt.sizes():
        print(f"{name:40} {chars:8d} {tokens:8d}")
    if prompt.omitted:
        print(f"omitted: {', '.join(prompt.omitted)}")
    print(f"{'user message (with framing)':40} {user:8d} {-(-user // 4):8d}")
    for name, chars in fixed.items():
        print(f"{name + ' (cached)':40} {chars:8d} {estimate_tokens('x' * chars):8d}")
    total = user + sum(fixed.values())
    print(f"{'total':40} {total:8d} {-(-total // 4):8d}\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=None, help="logged steps before the crash")
    parser.add_argument("--budget", type=int, default=DEFAULT_BUDGET_TOKENS)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        ctx = build(Path(tmp), 200)
        if args.steps is not None:
            ctx.log_tail = failure_log("/scratch/job", args.steps)
            report(ctx, args.budget)
            return
        report(ctx, args.budget)  # the real divergence: a short log
        ctx.log_tail = [
            f"step {i:6d} | loss 0.{i:06d} | lr 25.0 | grad_norm 1.{i % 97:02d} | 0.02 s/step" for i in range(100_000)
        ] + ctx.log_tail[-7:]
        report(ctx, args.budget)  # a long, chatty run: the log is cut to its end


if __name__ == "__main__":
    main()
