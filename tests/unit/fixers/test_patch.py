"""Applying search/replace edits and the guardrails around them, on real files."""

from __future__ import annotations

import copy
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bot.core.errors import OperationFailed
from bot.fixers.model import Edit
from bot.fixers.patch import (
    PatchError,
    apply_and_validate,
    apply_edits,
    changed_lines,
    editable,
    glob_match,
    validate,
)
from bot.repo.config import DEFAULTS

TRAIN = 'import math\n\n\ndef train(config):\n    lr = config["lr"]\n    return lr * 2\n'
CONFIG = 'DEFAULTS = {\n    "lr": 25.0,\n    "steps": 150,\n}\n'


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    root = tmp_path / "repo"
    (root / "src").mkdir(parents=True)
    (root / "src" / "train.py").write_text(TRAIN)
    (root / "src" / "config.py").write_text(CONFIG)
    (root / "main.py").write_text("print('hi')\n")
    (root / ".github" / "workflows").mkdir(parents=True)
    (root / ".github" / "workflows" / "ci.yml").write_text("on: push\n")
    return root


def config(**overrides) -> dict:
    cfg = copy.deepcopy(DEFAULTS)
    for key, value in overrides.items():
        section, name = key.split("__")
        cfg[section][name] = value
    return cfg


def snapshot(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


LOWER_LR = Edit("src/config.py", '"lr": 25.0,', '"lr": 0.25,')


# --- glob semantics ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "path, pattern, expected",
    [
        ("main.py", "**/*.py", True),
        ("src/train.py", "**/*.py", True),
        ("a/b/c/d.py", "**/*.py", True),
        ("src/train.pyc", "**/*.py", False),
        ("requirements.txt", "requirements*.txt", True),
        ("requirements-dev.txt", "requirements*.txt", True),
        ("sub/requirements.txt", "requirements*.txt", False),
        ("configs/a.yaml", "configs/**", True),
        ("configs/x/y/z.yaml", "configs/**", True),
        ("myconfigs/a.yaml", "configs/**", False),
        (".github/workflows/x.yml", ".github/**", True),
        (".github/fix-and-relaunch.yml", ".github/**", True),
        ("src/.github/x", ".github/**", False),
        ("src/train.py", "src/*.py", True),
        ("src/deep/train.py", "src/*.py", False),
        ("docs/exp-a.md", "docs/*.md", True),
        ("data/a1.csv", "data/a?.csv", True),
        ("data/a1.csv", "data/a[0-9].csv", True),
        ("data/ab.csv", "data/a[!0-9].csv", True),
        ("./src/train.py", "src/*.py", True),
        ("src/a+b.py", "src/a+b.py", True),
    ],
)
def test_glob_match(path, pattern, expected):
    assert glob_match(path, pattern) is expected


# --- apply_edits -------------------------------------------------------------------------------


def test_apply_replaces_exactly_once_and_returns_changed_paths(tree):
    changed = apply_edits(tree, [LOWER_LR])
    assert changed == ["src/config.py"]
    assert (tree / "src/config.py").read_text() == CONFIG.replace("25.0", "0.25")


def test_search_not_found_names_the_file_and_changes_nothing(tree):
    before = snapshot(tree)
    with pytest.raises(PatchError, match=r"search text not found in src/config.py"):
        apply_edits(tree, [LOWER_LR, Edit("src/config.py", '"lr": 99,', '"lr": 1,')])
    assert snapshot(tree) == before


def test_whitespace_near_miss_points_at_the_line(tree):
    with pytest.raises(PatchError, match=r"matches line 5 when whitespace is ignored"):
        apply_edits(tree, [Edit("src/train.py", '\tlr = config["lr"]\n', "\tlr = 0.1\n")])


def test_ambiguous_search_is_refused(tree):
    (tree / "src/dup.py").write_text("x = 1\nx = 1\n")
    with pytest.raises(PatchError, match=r"ambiguous in src/dup.py: it occurs 2 times"):
        apply_edits(tree, [Edit("src/dup.py", "x = 1\n", "x = 2\n")])


def test_all_or_nothing_across_files(tree):
    before = snapshot(tree)
    edits = [LOWER_LR, Edit("src/new.py", "", "y = 1\n"), Edit("src/train.py", "nope", "x")]
    with pytest.raises(PatchError):
        apply_edits(tree, edits)
    assert snapshot(tree) == before
    assert not (tree / "src/new.py").exists()


def test_empty_search_creates_a_file_but_never_overwrites(tree):
    assert apply_edits(tree, [Edit("docs/notes/new.md", "", "# notes\n")]) == ["docs/notes/new.md"]
    assert (tree / "docs/notes/new.md").read_text() == "# notes\n"
    with pytest.raises(PatchError, match="already exists"):
        apply_edits(tree, [Edit("main.py", "", "print('overwritten')\n")])
    assert (tree / "main.py").read_text() == "print('hi')\n"


def test_append(tree):
    apply_edits(tree, [Edit("main.py", "", "print('bye')\n", append=True)])
    assert (tree / "main.py").read_text() == "print('hi')\nprint('bye')\n"


def test_successive_edits_to_one_file_apply_in_order(tree):
    edits = [LOWER_LR, Edit("src/config.py", '"lr": 0.25,', '"lr": 0.3,')]
    assert apply_edits(tree, edits) == ["src/config.py"]
    assert '"lr": 0.3,' in (tree / "src/config.py").read_text()


def test_edits_that_change_nothing_are_refused(tree):
    with pytest.raises(PatchError, match="change nothing"):
        apply_edits(tree, [Edit("src/config.py", '"lr": 25.0,', '"lr": 25.0,')])


def test_crlf_and_bytes_preserved(tree):
    (tree / "win.py").write_bytes(b"a = 1\r\nb = 2\r\n")
    apply_edits(tree, [Edit("win.py", "a = 1", "a = 3")])
    assert (tree / "win.py").read_bytes() == b"a = 3\r\nb = 2\r\n"


@pytest.mark.parametrize(
    "path, message",
    [
        ("../outside.py", r"escapes the repository \(\.\.\)"),
        ("src/../../outside.py", r"escapes the repository"),
        ("/etc/passwd", "is absolute"),
        (".git/config", "inside .git"),
        ("", "empty path"),
        ("src", "is a directory"),
    ],
)
def test_paths_outside_the_worktree_are_refused(tree, path, message):
    with pytest.raises(PatchError, match=message):
        apply_edits(tree, [Edit(path, "", "x = 1\n")])


def test_symlink_pointing_out_is_refused(tree, tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "victim.py").write_text("v = 1\n")
    os.symlink(outside, tree / "src" / "link")
    with pytest.raises(PatchError, match="through a symlink"):
        apply_edits(tree, [Edit("src/link/victim.py", "v = 1", "v = 2")])
    assert (outside / "victim.py").read_text() == "v = 1\n"


def test_symlink_inside_to_a_denied_file_is_refused(tree):
    os.symlink("../.github/workflows/ci.yml", tree / "src" / "ci_link.py")
    with pytest.raises(PatchError, match=r"symlink src/ci_link\.py \(to \.github/workflows/ci\.yml"):
        apply_and_validate(tree, [Edit("src/ci_link.py", "on: push", "on: pull_request")], config())
    assert (tree / ".github/workflows/ci.yml").read_text() == "on: push\n"


@pytest.mark.parametrize(
    "link, target, edit_path",
    [
        ("src/config_link.py", "config.py", "src/config_link.py"),  # a link to an allowed file
        ("lib", "src", "lib/config.py"),  # a linked folder on the way
    ],
)
def test_an_edit_through_a_symlink_inside_the_repo_is_refused(tree, link, target, edit_path):
    os.symlink(target, tree / link)
    subprocess.run(["git", "init", "-q"], cwd=tree, check=True)
    subprocess.run(["git", "add", "-A"], cwd=tree, check=True)
    subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "init"], cwd=tree, check=True)
    with pytest.raises(PatchError, match="symlink"):
        apply_and_validate(tree, [Edit(edit_path, '"lr": 25.0,', '"lr": 0.25,')], config())
    assert (tree / "src/config.py").read_text() == CONFIG
    status = subprocess.run(["git", "status", "--porcelain"], cwd=tree, capture_output=True, text=True, check=True)
    assert status.stdout == ""


# --- validate ----------------------------------------------------------------------------------


def test_patch_error_is_an_operation_failure():
    assert issubclass(PatchError, OperationFailed)


def test_denied_path_is_refused_even_if_allowed(tree):
    cfg = config(fix__allowed_paths=["**"])
    edit = Edit(".github/workflows/ci.yml", "on: push", "on: [push, pull_request]")
    with pytest.raises(
        PatchError, match=r"\.github/workflows/ci\.yml is denied by fix\.denied_paths \(\.github/\*\*\)"
    ):
        validate(tree, [edit], cfg)


def test_path_outside_allowed_paths_is_refused(tree):
    edit = Edit("Makefile", "", "all:\n")
    with pytest.raises(PatchError, match=r"Makefile is not in fix\.allowed_paths"):
        validate(tree, [edit], config())


def test_top_level_python_file_is_allowed_by_default(tree):
    apply_and_validate(tree, [Edit("main.py", "'hi'", "'hello'")], config())
    assert "hello" in (tree / "main.py").read_text()


def test_too_many_changed_lines(tree):
    big = "".join(f"x{i} = {i}\n" for i in range(30))
    edit = Edit("src/big.py", "", big)
    apply_edits(tree, [edit])
    with pytest.raises(PatchError, match=r"changes 30 lines, more than fix\.max_patch_lines \(10\)"):
        validate(tree, [edit], config(fix__max_patch_lines=10), before={"src/big.py": None})
    # counted from the edits themselves when the originals are unknown
    with pytest.raises(PatchError, match=r"changes 30 lines"):
        validate(tree, [edit], config(fix__max_patch_lines=10))


def test_changed_lines_counts_additions_and_removals():
    assert changed_lines("a\nb\nc\n", "a\nB\nc\n") == 2
    assert changed_lines(None, "a\nb\n") == 2
    assert changed_lines("a\n", "a\n") == 0


def test_python_that_does_not_compile_is_refused_and_rolled_back(tree):
    before = snapshot(tree)
    edit = Edit("src/train.py", "    return lr * 2\n", "    return lr *\n")
    with pytest.raises(PatchError, match=r"src/train.py does not compile: .* \(line 6\)"):
        apply_and_validate(tree, [edit], config())
    assert snapshot(tree) == before


def test_smoke_failure_reports_output_tail_and_rolls_back(tree):
    before = snapshot(tree)
    smoke = f"{sys.executable} -c \"import src.config as c; assert c.DEFAULTS['lr'] < 1, 'lr still ' + str(c.DEFAULTS['lr'])\""
    edit = Edit("src/config.py", '"lr": 25.0,', '"lr": 5.0,')
    with pytest.raises(PatchError, match=r"(?s)smoke check .* failed with exit status 1:.*lr still 5\.0"):
        apply_and_validate(tree, [edit], config(verify__smoke=smoke))
    assert snapshot(tree) == before
    # the same smoke passes once the fix is right
    assert apply_and_validate(tree, [LOWER_LR], config(verify__smoke=smoke)) == ["src/config.py"]


def test_smoke_runs_in_the_worktree_without_the_bots_secrets(tree, monkeypatch):
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-should-not-leak")
    monkeypatch.setenv("WANDB_API_KEY", "0123456789abcdef0123456789abcdef01234567")
    smoke = 'pwd > where.txt; test -z "$ANTHROPIC_API_KEY$WANDB_API_KEY" && test "$WANDB_MODE" = offline'
    apply_and_validate(tree, [LOWER_LR], config(verify__smoke=smoke))
    assert Path((tree / "where.txt").read_text().strip()).resolve() == tree.resolve()


def test_smoke_timeout_kills_the_command_and_rolls_back(tree):
    before = snapshot(tree)
    started = time.monotonic()
    with pytest.raises(PatchError, match=r"(?s)timed out after 0\.5s:.*started"):
        apply_and_validate(
            tree, [LOWER_LR], config(verify__smoke="echo started; sleep 30 & sleep 30", verify__smoke_timeout=0.5)
        )
    assert time.monotonic() - started < 10  # the background child does not hold us
    assert snapshot(tree) == before


def test_denied_edit_writes_nothing(tree):
    before = snapshot(tree)
    edits = [LOWER_LR, Edit(".github/workflows/ci.yml", "on: push", "on: pull_request")]
    with pytest.raises(PatchError, match="denied"):
        apply_and_validate(tree, edits, config())
    assert snapshot(tree) == before


def test_created_files_and_directories_are_removed_on_rollback(tree):
    before = snapshot(tree)
    edits = [Edit("docs/new/deep/x.md", "", "# x\n"), Edit("src/new.py", "", "def broken(:\n")]
    with pytest.raises(PatchError, match="does not compile"):
        apply_and_validate(tree, edits, config())
    assert snapshot(tree) == before
    assert not (tree / "docs").exists()


def test_apply_and_validate_returns_changed_paths(tree):
    edits = [LOWER_LR, Edit("docs/exp.md", "", "Lowered lr.\n")]
    assert apply_and_validate(tree, edits, config()) == ["src/config.py", "docs/exp.md"]


def test_editable_follows_the_allowed_and_denied_globs():
    from bot.repo.config import parse

    config = parse("fix:\n  allowed_paths: ['**/*.py', 'configs/**']\n  denied_paths: ['src/secret/**']\n")
    assert editable("src/train.py", config) and editable("configs/a.yaml", config)
    assert not editable("NOTES.md", config)
    assert not editable("src/secret/keys.py", config)
    assert not editable(".github/ci.py", config), "the floor of the deny list holds"
