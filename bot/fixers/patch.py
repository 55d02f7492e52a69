"""Apply a fixer's search/replace edits to a worktree, and check them against the guardrails.

Edits are untrusted input (an LLM wrote them, steered by logs and PR text): the same checks
run whoever proposed them. `apply_and_validate` is the one entry point the pipeline needs;
it leaves either the validated change or the original files on disk, never half of one.
"""

from __future__ import annotations

import difflib
import os
import re
import uuid
from collections.abc import Iterable, Mapping
from functools import lru_cache
from pathlib import Path, PurePosixPath
from typing import Any

from bot.core.errors import OperationFailed
from bot.fixers.invocations import COMMAND
from bot.fixers.model import Edit
from bot.launchers.sandbox import Sandbox, SandboxContext, run_command, sandbox_for

OUTPUT_TAIL_CHARS = 2000
# The smoke check runs code an LLM just wrote, before anyone reviewed it: none of the bot's
# credentials reach it, and W&B stays offline.
_SECRET_ENV = (
    "ANTHROPIC_API_KEY",
    "GITHUB_PRIVATE_KEY",
    "GITHUB_PRIVATE_KEY_PATH",
    "GITHUB_WEBHOOK_SECRET",
    "WANDB_WEBHOOK_SECRET",
    "GITHUB_TOKEN",
    "WANDB_API_KEY",
)


class PatchError(OperationFailed):
    """An edit could not be applied, or the applied change broke a guardrail."""


# --- paths -----------------------------------------------------------------------------------


def safe_path(worktree: Path, rel: str) -> Path:
    """The absolute path of `rel` inside `worktree`; PatchError when it would land outside."""
    if not isinstance(rel, str) or not rel.strip():
        raise PatchError("an edit has an empty path")
    if "\\" in rel or "\0" in rel:
        raise PatchError(f"path {rel!r} has a backslash or NUL; use forward slashes")
    pure = PurePosixPath(rel)
    if pure.is_absolute():
        raise PatchError(f"path {rel} is absolute; paths must be relative to the repository")
    if ".." in pure.parts:
        raise PatchError(f"path {rel} escapes the repository (..)")
    if pure.parts and pure.parts[0] == ".git":
        raise PatchError(f"path {rel} is inside .git")
    root = Path(worktree).resolve()
    target = (root / pure).resolve()  # follows symlinks, so a link pointing out is caught here
    if target != root and root not in target.parents:
        raise PatchError(f"path {rel} escapes the repository through a symlink")
    # A write through a link inside the repo changes its target while git stages the link:
    # the commit would not hold the change. Refuse the link itself and any linked folder on the way.
    here = root
    for part in pure.parts:
        here = here / part
        if here.is_symlink():  # lstat
            shown = here.relative_to(root).as_posix()
            raise PatchError(
                f"path {rel} goes through the symlink {shown} (to {target.relative_to(root).as_posix()}"
                f" once resolved); edit the file itself, not a link to it"
            )
    if target.is_dir():
        raise PatchError(f"path {rel} is a directory")
    return target


def normalize(rel: str) -> str:
    """The canonical spelling of a relative path (`./a//b.py` -> `a/b.py`)."""
    return PurePosixPath(rel).as_posix().removeprefix("./")


@lru_cache(maxsize=256)
def _glob_regex(pattern: str) -> re.Pattern[str]:
    """Translate a root-anchored glob: `*` and `?` stay within one segment, `**` spans any."""
    out, i = [], 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out.append("(?:.*/)?")  # zero or more whole directories: `**/*.py` matches `main.py`
            i += 3
        elif pattern.startswith("**", i):
            out.append(".*")
            i += 2
        elif pattern[i] == "*":
            out.append("[^/]*")
            i += 1
        elif pattern[i] == "?":
            out.append("[^/]")
            i += 1
        elif pattern[i] == "[" and "]" in pattern[i + 2 :]:
            end = pattern.index("]", i + 2)
            body = pattern[i + 1 : end]
            out.append("[" + ("^" + body[1:] if body.startswith("!") else body) + "]")
            i = end + 1
        else:
            out.append(re.escape(pattern[i]))
            i += 1
    return re.compile("".join(out) + r"\Z")


def glob_match(path: str, pattern: str) -> bool:
    """Whether the relative `path` matches `pattern` (anchored at the repository root)."""
    return _glob_regex(normalize(pattern)).match(normalize(path)) is not None


def may_edit(rel: str, config: dict[str, Any]) -> bool:
    """Whether a rule may propose to edit `rel`: never the repo config's `launch.command` (where
    a flag read from it sits), else what `editable` says; a context without a `fix` section
    (a rule run on its own) may edit anything."""
    if rel == COMMAND:
        return False
    return "fix" not in config or editable(rel, config)


def editable(rel: str, config: dict[str, Any]) -> bool:
    """Whether a fix may edit `rel`, by its name alone (`check_paths` also follows symlinks)."""
    fix = config.get("fix", {})
    return any(glob_match(rel, p) for p in fix.get("allowed_paths") or []) and not any(
        glob_match(rel, p) for p in fix.get("denied_paths") or []
    )


def check_paths(worktree: Path, paths: Iterable[str], config: dict[str, Any]) -> None:
    fix = config.get("fix", {})
    allowed, denied = fix.get("allowed_paths") or [], fix.get("denied_paths") or []
    root = Path(worktree).resolve()
    for rel in paths:
        # A symlink inside the repo is judged by where it points as well as by its name.
        target = safe_path(worktree, rel).relative_to(root).as_posix()
        for name in dict.fromkeys([normalize(rel), target]):
            hit = next((p for p in denied if glob_match(name, p)), None)
            if hit:
                raise PatchError(f"path {name} is denied by fix.denied_paths ({hit})")
            if not any(glob_match(name, p) for p in allowed):
                raise PatchError(f"path {name} is not in fix.allowed_paths ({', '.join(allowed) or 'none'})")


# --- applying --------------------------------------------------------------------------------


def _read(path: Path, rel: str) -> str | None:
    if not path.exists():
        return None
    try:
        return path.read_bytes().decode("utf-8")
    except UnicodeDecodeError:
        raise PatchError(f"{rel} is not UTF-8 text") from None


def _apply_one(text: str | None, edit: Edit, rel: str) -> str:
    if edit.search == "":
        if edit.append:
            return (text or "") + edit.replace
        if text is not None:
            raise PatchError(f"{rel} already exists; an empty search creates a new file only")
        return edit.replace
    if text is None:
        raise PatchError(f"search text not found in {rel}: the file does not exist")
    count = text.count(edit.search)
    if count == 0:
        raise PatchError(f"search text not found in {rel}{_near_miss(text, edit.search)}")
    if count > 1:
        raise PatchError(f"search text is ambiguous in {rel}: it occurs {count} times; include more context")
    return text.replace(edit.search, edit.replace, 1)


def _near_miss(text: str, search: str) -> str:
    """A pointer for whoever repairs the edit: where its first line does occur, if anywhere."""
    first = next((line.strip() for line in search.splitlines() if line.strip()), "")
    if not first:
        return ""
    for number, line in enumerate(text.splitlines(), 1):
        if line.strip() == first:
            return f" (its first line matches line {number} when whitespace is ignored; copy the text exactly)"
    return ""


def plan_edits(worktree: Path, edits: list[Edit]) -> tuple[dict[str, str | None], dict[str, str]]:
    """(original text per path, None if absent; new text per path), computed in memory only."""
    if not edits:
        raise PatchError("no edits to apply")
    before: dict[str, str | None] = {}
    after: dict[str, str] = {}
    for edit in edits:
        path = safe_path(worktree, edit.path)
        rel = normalize(edit.path)
        if rel not in before:
            before[rel] = _read(path, rel)
        after[rel] = _apply_one(after.get(rel, before[rel]), edit, rel)
    if all(after[rel] == before[rel] for rel in after):
        raise PatchError("the edits change nothing")
    return before, after


def _write_all(worktree: Path, texts: Mapping[str, str | None]) -> None:
    for rel, text in texts.items():
        path = safe_path(worktree, rel)
        if text is None:
            path.unlink(missing_ok=True)
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(text.encode("utf-8"))


def _missing_dirs(worktree: Path, paths: Iterable[str]) -> list[Path]:
    """Parent directories the writes will create, deepest first, so a restore can remove them."""
    root, missing = Path(worktree).resolve(), set()
    for rel in paths:
        parent = (root / rel).parent
        while parent != root and not parent.exists():
            missing.add(parent)
            parent = parent.parent
    return sorted(missing, key=lambda p: len(p.parts), reverse=True)


def _restore(worktree: Path, before: dict[str, str | None], created_dirs: list[Path]) -> None:
    _write_all(worktree, before)
    for directory in created_dirs:
        if directory.is_dir() and not any(directory.iterdir()):
            directory.rmdir()


def apply_edits(worktree: Path, edits: list[Edit]) -> list[str]:
    """Apply all edits or none; return the relative paths whose content changed."""
    before, after = plan_edits(worktree, edits)
    changed = {rel: text for rel, text in after.items() if text != before[rel]}
    created_dirs = _missing_dirs(worktree, changed)
    try:
        _write_all(worktree, changed)
    except BaseException:
        _restore(worktree, {rel: before[rel] for rel in changed}, created_dirs)
        raise
    return list(changed)


# --- validating ------------------------------------------------------------------------------


def changed_lines(before: str | None, after: str | None) -> int:
    """Lines added plus lines removed, as a unified diff counts them."""
    diff = difflib.unified_diff((before or "").splitlines(), (after or "").splitlines(), lineterm="", n=0)
    return sum(1 for line in diff if line[:1] in "+-" and not line.startswith(("+++", "---")))


def _check_size(
    worktree: Path, paths: list[str], before: dict[str, str | None] | None, edits: list[Edit], limit: int
) -> None:
    if before is None:
        total = sum(changed_lines(e.search, e.replace) for e in edits)
    else:
        total = sum(changed_lines(before.get(rel), _read(safe_path(worktree, rel), rel)) for rel in paths)
    if total > limit:
        raise PatchError(f"the patch changes {total} lines, more than fix.max_patch_lines ({limit})")


def _check_compiles(worktree: Path, paths: list[str]) -> None:
    for rel in paths:
        if not rel.endswith(".py"):
            continue
        source = _read(safe_path(worktree, rel), rel)
        if source is None:
            continue
        try:
            compile(source, rel, "exec", dont_inherit=True)
        except SyntaxError as exc:
            raise PatchError(f"{rel} does not compile: {exc.msg} (line {exc.lineno})") from None
        except ValueError as exc:  # e.g. NUL bytes in the source
            raise PatchError(f"{rel} does not compile: {exc}") from None


def _tail(text: str) -> str:
    text = text.strip()
    return text if len(text) <= OUTPUT_TAIL_CHARS else "…" + text[-OUTPUT_TAIL_CHARS:]


def run_smoke(worktree: Path, command: str, timeout: float, *, sandbox: Sandbox | None = None) -> None:
    """Run the repo's smoke command in the worktree, in `sandbox` when given; PatchError with the
    output tail on failure."""
    env = {k: v for k, v in os.environ.items() if k not in _SECRET_ENV} | {"WANDB_MODE": "offline"}
    done = run_command(
        ["/bin/sh", "-c", command],
        cwd=worktree,
        env=env,
        timeout=timeout,
        sandbox=sandbox,
        name=f"smoke-{uuid.uuid4().hex[:12]}",
    )
    if done.timed_out:
        raise PatchError(f"smoke check `{command}` timed out after {timeout:g}s:\n{_tail(done.output)}")
    if done.reason:
        raise PatchError(f"smoke check `{command}` was stopped: {done.reason}:\n{_tail(done.output)}")
    if done.returncode != 0:
        raise PatchError(f"smoke check `{command}` failed with exit status {done.returncode}:\n{_tail(done.output)}")


def validate(
    worktree: Path,
    edits: list[Edit],
    config: dict[str, Any],
    *,
    before: dict[str, str | None] | None = None,
    settings: SandboxContext | None = None,
) -> None:
    """Check applied edits against the guardrails; PatchError names the first one broken.

    `before` maps each edited path to its original text (None: the file did not exist); without
    it the size is counted from the edits' search and replace text. `settings` decide the smoke
    check's sandbox with the repo config (bot/launchers/sandbox); without them it runs unsandboxed.
    """
    paths = list(dict.fromkeys(normalize(e.path) for e in edits))
    check_paths(worktree, paths, config)
    fix, verify = config.get("fix", {}), config.get("verify", {})
    _check_size(worktree, paths, before, edits, int(fix.get("max_patch_lines") or 200))
    _check_compiles(worktree, paths)
    if verify.get("smoke"):
        sandbox = sandbox_for(config, settings) if settings is not None else None
        run_smoke(worktree, verify["smoke"], float(verify.get("smoke_timeout") or 300), sandbox=sandbox)


def apply_and_validate(
    worktree: Path, edits: list[Edit], config: dict[str, Any], *, settings: SandboxContext | None = None
) -> list[str]:
    """Apply and validate the edits; on any failure put every original file back exactly."""
    paths = [normalize(e.path) for e in edits]
    check_paths(worktree, paths, config)  # refuse before a single byte is written
    before, _ = plan_edits(worktree, edits)
    created_dirs = _missing_dirs(worktree, before)
    changed = apply_edits(worktree, edits)
    try:
        validate(worktree, edits, config, before=before, settings=settings)
    except BaseException:
        _restore(worktree, {rel: before[rel] for rel in changed}, created_dirs)
        raise
    return changed
