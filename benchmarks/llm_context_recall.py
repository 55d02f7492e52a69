"""Does the LLM fixer's prompt show the lines a fix must change? Measured on the real-repo suite.

Usage: python benchmarks/llm_context_recall.py [--dir DIR] [--model MODEL] [--case ID ...]

For every case of tests/realrepos/cases.yaml (each carries the reference fix a careful human
makes), on a checkout of the broken branch and the failed run's diagnosis and log (collected
once by benchmarks/llm_realrepo_failures.py, which runs each broken job through the bot's CLI):

- recall@first: whether every line the reference fix changes (each non-blank line of each
  edit's search text) appears, in the part of the prompt about that file, in the first request
  the bot would send (the rules left aside: every case is treated as one the LLM must fix);
- recall after the look-up loop, with a scripted model that asks what a careful reader would
  ask, knowing the failure but not the fix: grep the names in the failure, read the files the
  run used and the code around each frame, then look for where names are declared (the end of an add_argument block, a Hydra primary
  config) and read around the best hits (3 rounds);
- the same two without the sections that follow the failure to its source (launch command,
  the files the run used, declaration sites), as an ablation: what they and the look-ups add;
- prompt tokens (tools + system + user message, 4 characters a token) median and max;
- cost per fix at list prices: the first fix of a repository writes the fixed prefix to the
  cache, later ones read it; the answer is the reference fix as a propose_fix call; look-up
  rounds pay for their conversation as the client sends it (marked for the cache from the
  second request on).

Nothing is sent anywhere.
"""

from __future__ import annotations

import argparse
import copy
import json
import re
import statistics
import sys
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.llm_realrepo_failures import DEFAULT_DIR, broken_checkout, collect, failure_path  # noqa: E402
from bot.core.settings import Settings  # noqa: E402
from bot.diagnosis.model import ConfigKey, Diagnosis, KeyProblem  # noqa: E402
from bot.fixers.llm import sources  # noqa: E402
from bot.fixers.llm.client import fixed_prompt_chars  # noqa: E402
from bot.fixers.llm.costs import CACHE_READ_FACTOR, CACHE_WRITE_FACTOR, price  # noqa: E402
from bot.fixers.llm.prompt import (  # noqa: E402
    CHARS_PER_TOKEN,
    DEFAULT_BUDGET_TOKENS,
    PromptContext,
    build_context,
    estimate_tokens,
    frames_in_repo,
)
from bot.fixers.llm.tools import Lookups  # noqa: E402
from bot.fixers.model import FixContext  # noqa: E402
from bot.repo import config as repo_config  # noqa: E402
from bot.runs.model import RunInfo  # noqa: E402
from tests.support.realrepos import Case, job_python, load_cases  # noqa: E402

SOURCE_KINDS = ("source", "run_file", "launch")  # the sections that follow the failure to its source
READ_AROUND = 30
DECLARED = r"add_argument\(|config_name\s*="  # where a careful reader looks for declarations  # lines either side of a grep hit the scripted reader reads
_DIFF_FILE = re.compile(r"^diff --git a/(\S+) b/", re.M)
_NUMBERED = re.compile(r"^\s*\d+\t", re.M)


@dataclass
class Measured:
    case: str
    prompt_tokens: int
    first: bool
    after: bool
    missing_first: list[str] = field(default_factory=list)
    missing_after: list[str] = field(default_factory=list)
    rounds: int = 0
    first_without_sources: bool = False  # ablation: the prompt without what follows the failure to its source
    after_without_sources: bool = False  # … and after the scripted look-ups
    cost_first_fix: float = 0.0
    cost_later_fix: float = 0.0
    cost_with_lookups: float = 0.0  # a fix that makes the scripted reader's look-up rounds (prefix cached)


# -- the context the bot builds ---------------------------------------------------------------


def fix_context(case: Case, folder: Path) -> FixContext:
    found = json.loads(failure_path(folder, case).read_text())
    root = broken_checkout(folder, case)
    key = found.get("config_key")
    diagnosis = Diagnosis(
        category=found["category"],
        retryable=found["retryable"],
        exception=found.get("exception"),
        location=found.get("location"),
        evidence=found.get("evidence") or [],
        summary=found.get("summary") or "",
        config_key=ConfigKey(key["name"], KeyProblem(key["problem"]), key.get("flag"), key.get("suggestion"))
        if key
        else None,
    )
    run = found["run"]
    return FixContext(
        worktree=root,
        branch=case.branch,
        diagnosis=diagnosis,
        config=repo_config.load(root),
        log_tail=found.get("log_tail") or [],
        run_config=found.get("config") or {},
        base_branch="main",
        run=RunInfo(
            id=run["id"],
            state=run["state"],
            exit_code=run.get("exit_code"),
            steps=run.get("steps") or 0,
            loss_problem=run.get("loss_problem"),
        ),
    )


def first_prompt(ctx: FixContext, settings: Settings) -> PromptContext:
    budget = DEFAULT_BUDGET_TOKENS - estimate_tokens("x" * fixed_prompt_chars(ctx.config))
    return build_context(ctx, settings, budget_tokens=max(budget, 1_000))


# -- what was shown, by file -----------------------------------------------------------------


def shown_by_path(prompt: PromptContext, leave_out: tuple[str, ...] = ()) -> dict[str, str]:
    shown: dict[str, str] = {}
    for section in prompt.sections:
        kind, _, rest = section.name.partition(":")
        if kind in leave_out:
            continue
        if kind in ("code", "source"):
            _add(shown, rest.rsplit(":", 1)[0], section.text)
        elif kind in ("run_file", "config_file"):
            _add(shown, rest, section.text)
        elif kind == "requirements":
            _add(shown, "requirements.txt", section.text)
        elif kind == "branch_diff":
            for path, text in _diff_files(section.text):
                _add(shown, path, text)
    return shown


def lookup_shown(results: list[tuple[str, str]]) -> dict[str, str]:
    """(path, tool output) pairs as text by path, without read_file's line numbers."""
    shown: dict[str, str] = {}
    for path, text in results:
        _add(shown, path, _NUMBERED.sub("", text))
    return shown


def _diff_files(diff: str) -> list[tuple[str, str]]:
    starts = [(m.start(), m[1]) for m in _DIFF_FILE.finditer(diff)]
    return [
        (path, diff[pos : starts[i + 1][0] if i + 1 < len(starts) else len(diff)])
        for i, (pos, path) in enumerate(starts)
    ]


def _add(shown: dict[str, str], path: str, text: str) -> None:
    shown[path] = shown.get(path, "") + "\n" + text


def missing_lines(case: Case, shown: dict[str, str]) -> list[str]:
    """`path: line` for each line of the reference fix's search text not shown for its file."""
    missing = []
    for edit in case.reference:
        text = shown.get(edit.path, "")
        for line in edit.search.splitlines():
            if line.strip() and line.strip() not in text:
                missing.append(f"{edit.path}: {line.strip()}")
    return missing


# -- the scripted careful reader --------------------------------------------------------------


def careful_reader(ctx: FixContext, prompt: PromptContext, lookups: Lookups) -> list[list[tuple[str, dict]]]:
    """The look-up rounds a careful reader makes, knowing the failure but not the fix."""
    root = Path(ctx.worktree)
    names = sources.failure_names(ctx)[:3]
    launch = ctx.config.get("launch") or {}
    command = " ; ".join(str(launch[k]) for k in ("setup", "command") if launch.get(k))
    run_files = sources.launch_files(root, command)
    rounds: list[list[tuple[str, dict]]] = []
    first = [("grep", {"pattern": re.escape(n)}) for n in names]
    first += [("read_file", {"path": f, "start": 1, "end": 200}) for f in run_files]
    for path, line in frames_in_repo(root, ctx)[:3]:
        first.append(("read_file", {"path": path, "start": max(1, line - 40), "end": line + 40}))
    rounds.append(first or [("list_dir", {"path": "."})])
    hits = [lookups.grep(re.escape(n)) for n in names]
    best: list[tuple[str, int]] = []
    for text in hits:
        for line in text.splitlines():
            match = re.match(r"([^:]+):(\d+): ", line)
            if match and all(match[1] != p for p, _ in best):
                best.append((match[1], int(match[2])))
    # A name the code reads and nothing declares: where are names declared here? The end of an
    # add_argument block, a Hydra primary config.
    declared = lookups.grep(DECLARED, "**/*.py")
    rounds.append([("grep", {"pattern": DECLARED, "glob": "**/*.py"})])
    third = [("read_file", {"path": p, "start": max(1, n - READ_AROUND), "end": n + READ_AROUND}) for p, n in best[:3]]
    third += [("read_file", {"path": p, "start": max(1, n - 10), "end": n + 10}) for p, n in _last_hits(declared)]
    third += [
        ("read_file", {"path": p, "start": 1, "end": 200}) for p in sources.hydra_configs(root, run_files, command)
    ]
    if third:
        rounds.append(third)
    return rounds


def _last_hits(grep_text: str) -> list[tuple[str, int]]:
    """The last hit of each file in a grep answer."""
    last: dict[str, int] = {}
    for line in grep_text.splitlines():
        match = re.match(r"([^:]+):(\d+): ", line)
        if match:
            last[match[1]] = int(match[2])
    return list(last.items())[:3]


def run_rounds(lookups: Lookups, rounds: list[list[tuple[str, dict]]]) -> tuple[list[tuple[str, str]], list[int]]:
    """Each call's (path, answer) and each round's answer size in characters."""
    results, sizes = [], []
    for calls in rounds:
        size = 0
        for name, args in calls:
            answer = lookups.call(name, args)
            size += len(answer.text) + 200  # the call and the result's framing
            if name == "read_file" and not answer.is_error:
                results.append((args["path"], answer.text))
            elif name == "grep" and not answer.is_error:
                for line in answer.text.splitlines():
                    path, _, rest = line.partition(":")
                    results.append((path, rest.partition(": ")[2]))
        sizes.append(size)
    return results, sizes


# -- cost ---------------------------------------------------------------------------------------


def fix_cost(model: str, fixed: int, user: int, rounds: list[int], answer: int, *, first_fix: bool) -> float:
    """USD for one fix: the fixed prefix written (first fix of a repo) or read; the user
    message; each look-up round (call ~60 tokens out, answer in); the answer out. From the
    second request on, the client marks the conversation, so each request reads the previous
    mark and writes what came after it."""
    per_in, per_out = price(model)
    prefix = fixed * per_in * (CACHE_WRITE_FACTOR if first_fix else CACHE_READ_FACTOR)
    later_prefix = fixed * per_in * CACHE_READ_FACTOR
    total = prefix + user * per_in
    cached = 0  # conversation tokens read from the cache from here on
    conversation = user
    for size in rounds:
        total += 60 * per_out
        grown = 60 + size // CHARS_PER_TOKEN
        conversation += grown
        total += later_prefix + cached * per_in * CACHE_READ_FACTOR
        total += (conversation - cached) * per_in * CACHE_WRITE_FACTOR
        cached = conversation
    total += answer * per_out
    return total / 1_000_000


def answer_tokens(case: Case) -> int:
    edits = [{"path": e.path, "search": e.search, "replace": e.replace} for e in case.reference]
    body = {"root_cause": "x" * 200, "explanation": "x" * 300, "description": "x" * 50, "edits": edits}
    return estimate_tokens(json.dumps(body))


# -- the run ------------------------------------------------------------------------------------


def measure(case: Case, folder: Path, settings: Settings, model: str) -> Measured:
    ctx = fix_context(case, folder)
    prompt = first_prompt(ctx, settings)
    fixed = estimate_tokens("x" * fixed_prompt_chars(ctx.config))
    user = estimate_tokens(prompt.render())
    shown = shown_by_path(prompt)
    missing_first = missing_lines(case, shown)
    lookups = Lookups(ctx.worktree, tuple(ctx.config["fix"].get("denied_paths") or ()))
    rounds = careful_reader(ctx, prompt, lookups)
    results, sizes = run_rounds(lookups, rounds)
    after = copy.deepcopy(shown)
    for path, text in lookup_shown(results).items():
        _add(after, path, text)
    missing_after = missing_lines(case, after)
    ablated = shown_by_path(prompt, leave_out=SOURCE_KINDS)
    ablated_after = copy.deepcopy(ablated)
    for path, text in lookup_shown(results).items():
        _add(ablated_after, path, text)
    answer = answer_tokens(case)
    asked = sizes if missing_first else []  # a reader shown everything answers at once
    return Measured(
        case=case.id,
        prompt_tokens=fixed + user,
        first=not missing_first,
        after=not missing_after,
        missing_first=missing_first,
        missing_after=missing_after,
        rounds=len(asked),
        first_without_sources=not missing_lines(case, ablated),
        after_without_sources=not missing_lines(case, ablated_after),
        cost_first_fix=fix_cost(model, fixed, user, asked, answer, first_fix=True),
        cost_later_fix=fix_cost(model, fixed, user, asked, answer, first_fix=False),
        cost_with_lookups=fix_cost(model, fixed, user, sizes, answer, first_fix=False),
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dir", type=Path, default=DEFAULT_DIR)
    parser.add_argument("--model", default=Settings.anthropic_model)
    parser.add_argument("--case", action="append", default=[])
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    cases = [c for c in load_cases() if not args.case or c.id in args.case]
    python = job_python()
    settings = Settings()
    measured: list[Measured] = []
    skipped: list[str] = []
    for case in cases:
        if not failure_path(args.dir, case).exists():
            if python is None:
                raise SystemExit("no job environment to run the broken jobs: run bash .ci/install-jobenv.sh")
            collect(case, args.dir, python)
        found = json.loads(failure_path(args.dir, case).read_text())
        if not found.get("category"):  # the bot did not judge the run failed: nothing to fix
            skipped.append(f"{case.id}: {found.get('summary')}")
            continue
        measured.append(measure(case, args.dir, settings, args.model))
    report(measured, args.model, as_json=args.json)
    for line in skipped:
        print(f"left out, not a failed run here: {line[:150]}")
    return 0


def report(measured: list[Measured], model: str, *, as_json: bool) -> None:
    if as_json:
        print(json.dumps([m.__dict__ for m in measured], indent=1))
        return
    print(f"{'case':36} {'tokens':>7} {'first':>6} {'after':>6} {'rounds':>6} {'$ first':>8} {'$ later':>8}")
    for m in measured:
        print(
            f"{m.case:36} {m.prompt_tokens:7} {_yes(m.first):>6} {_yes(m.after):>6} {m.rounds:6} "
            f"{m.cost_first_fix:8.4f} {m.cost_later_fix:8.4f}"
        )
        for line in m.missing_first:
            print(f"    not in the first prompt: {line[:110]}")
        for line in m.missing_after:
            print(f"    not shown after look-ups: {line[:110]}")
    n = len(measured)
    tokens = [m.prompt_tokens for m in measured]
    print()
    print(f"cases: {n}  model: {model} (list prices)")
    print(f"recall@first: {sum(m.first for m in measured)}/{n} = {100 * sum(m.first for m in measured) / n:.0f}%")
    print(
        f"recall after look-ups: {sum(m.after for m in measured)}/{n} = {100 * sum(m.after for m in measured) / n:.0f}%"
    )
    ablation = sum(m.first_without_sources for m in measured)
    ablation_after = sum(m.after_without_sources for m in measured)
    print(
        f"ablation, without the source-following sections: recall@first {ablation}/{n} = {100 * ablation / n:.0f}%, "
        f"after look-ups {ablation_after}/{n} = {100 * ablation_after / n:.0f}%"
    )
    print(f"first-request tokens: median {statistics.median(tokens):.0f}, max {max(tokens)}")
    first = [m.cost_first_fix for m in measured]
    later = [m.cost_later_fix for m in measured]
    print(
        f"cost per fix: median ${statistics.median(first):.4f} (first fix of a repo), "
        f"${statistics.median(later):.4f} (prefix cached); max ${max(first):.4f}"
    )
    looked = [m.cost_with_lookups for m in measured]
    print(
        f"cost per fix with the scripted reader's look-up rounds: median ${statistics.median(looked):.4f}, max ${max(looked):.4f}"
    )


def _yes(value: bool) -> str:
    return "yes" if value else "NO"


if __name__ == "__main__":
    sys.exit(main())
