"""Workspace and branch docs against real git: a bare origin in tmp and a clone of it."""
from __future__ import annotations

import base64
import shutil
import threading
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest

from bot.repo.branch_doc import FixEntry, add_fix_entry, doc_path
from bot.core.errors import BadInput, OperationFailed
from bot.repo.workspace import (BOT_NAME, NothingToCommit, PushRejected, Workspace, clone_for_server, fix_message,
                           strip_credentials)
from tests.support.git_repos import (commit_on_origin, config_py, experiment_branch, git, isolate_git_config,
                             make_origin, remote_refs, write_files)


@pytest.fixture(autouse=True)
def _no_machine_git_config(monkeypatch, tmp_path):
    isolate_git_config(monkeypatch, tmp_path)


@pytest.fixture
def repo(tmp_path):
    """(origin, clone) with two experiment branches: exp-a (lr too high) and team/exp-b."""
    return make_origin(tmp_path, branches={
        "exp-a": experiment_branch("exp-a", lr=10.0),
        "team/exp-b": experiment_branch("team/exp-b", lr=0.05),
    })


def _not_exp_a(refs: dict[str, str]) -> dict[str, str]:
    return {k: v for k, v in refs.items() if not k.endswith("/exp-a")}


def _others(refs: dict[str, str], branch: str) -> dict[str, str]:
    return {k: v for k, v in refs.items() if k != f"refs/heads/{branch}"}


# -- worktrees ------------------------------------------------------------------------------

def test_worktree_is_created_from_the_remote_branch_and_tracks_it(repo):
    origin, clone = repo
    path = Workspace(clone).worktree("team/exp-b")
    assert path == (clone / ".worktrees" / "team" / "exp-b").resolve()
    assert "'lr': 0.05" in (path / "src/config.py").read_text()
    assert git(path, "rev-parse", "--abbrev-ref", "HEAD@{upstream}") == "origin/team/exp-b"
    assert git(clone, "status", "--porcelain") == ""  # .worktrees/ is excluded


def test_worktree_is_recreated_after_rm_rf_and_after_worktree_remove(repo):
    _, clone = repo
    ws = Workspace(clone)
    path = ws.worktree("exp-a")
    shutil.rmtree(clone / ".worktrees")
    assert ws.worktree("exp-a") == path and (path / "main.py").exists()
    git(clone, "worktree", "remove", str(path))
    assert ws.worktree("exp-a") == path and (path / "main.py").exists()


def test_worktree_pulls_new_origin_commits(repo):
    origin, clone = repo
    ws = Workspace(clone)
    path = ws.worktree("exp-a")
    sha = commit_on_origin(origin, "exp-a", {"notes.txt": "hello\n"}, "Add notes")
    assert ws.worktree("exp-a", pull=False) == path and not (path / "notes.txt").exists()
    ws.worktree("exp-a")
    assert ws.head("exp-a") == sha and (path / "notes.txt").read_text() == "hello\n"


def test_dirty_worktree_is_refused_and_left_untouched(repo):
    origin, clone = repo
    ws = Workspace(clone)
    path = ws.worktree("exp-a")
    (path / "src/config.py").write_text("edited by a human\n")
    commit_on_origin(origin, "exp-a", {"notes.txt": "x\n"}, "Moved on")
    with pytest.raises(OperationFailed, match=r"dirty.*src/config.py"):
        ws.worktree("exp-a")
    assert (path / "src/config.py").read_text() == "edited by a human\n"
    assert not (path / "notes.txt").exists()


def test_untracked_files_are_not_dirt(repo):
    _, clone = repo
    ws = Workspace(clone)
    path = ws.worktree("exp-a")
    write_files(path, {"wandb/run-1/output.log": "run output\n"})
    assert ws.worktree("exp-a") == path


def test_diverged_worktree_is_refused_and_left_untouched(repo):
    origin, clone = repo
    ws = Workspace(clone)
    path = ws.worktree("exp-a")
    write_files(path, {"local.txt": "mine\n"})
    local = ws.commit("exp-a", ["local.txt"], "Local work")
    commit_on_origin(origin, "exp-a", {"remote.txt": "theirs\n"}, "Remote work")
    with pytest.raises(OperationFailed, match=r"diverged.*1 local commit.*1 remote commit"):
        ws.worktree("exp-a")
    assert ws.head("exp-a") == local and not (path / "remote.txt").exists()


def test_local_commits_ahead_of_origin_are_kept(repo):
    _, clone = repo
    ws = Workspace(clone)
    path = ws.worktree("exp-a")
    write_files(path, {"local.txt": "mine\n"})
    local = ws.commit("exp-a", ["local.txt"], "Local work")
    ws.worktree("exp-a")
    assert ws.head("exp-a") == local


def test_exclude_entry_is_added_once(repo):
    _, clone = repo
    ws = Workspace(clone)
    ws.worktree("exp-a")
    ws.worktree("team/exp-b")
    Workspace(clone / "src").exclude_worktrees()  # any folder of the checkout finds the same repo
    lines = (clone / ".git/info/exclude").read_text().splitlines()
    assert lines.count("/.worktrees/") == 1


@pytest.mark.parametrize("name", [
    "../escape", "a/../../b", "-rf", "a..b", "has space", "HEAD", "x@{1}", "a/./b", "", ".hidden",
    "ends.lock", "a\\b", "tab\tname", "/abs", "trailing/",
])
def test_hostile_branch_names_are_rejected(repo, name):
    _, clone = repo
    with pytest.raises(BadInput):
        Workspace(clone).worktree(name)
    assert not (clone.parent / "escape").exists()


def test_unknown_branch_is_bad_input(repo):
    _, clone = repo
    with pytest.raises(BadInput, match="no branch 'nope'"):
        Workspace(clone).worktree("nope")


def test_branch_checked_out_in_the_main_checkout_is_reported(repo):
    _, clone = repo
    git(clone, "checkout", "-q", "exp-a")
    with pytest.raises(OperationFailed, match="exp-a is checked out at"):
        Workspace(clone).worktree("exp-a")


def test_remove_worktree_keeps_the_branch(repo):
    _, clone = repo
    ws = Workspace(clone)
    path = ws.worktree("exp-a")
    (path / "main.py").write_text("changed\n")
    with pytest.raises(OperationFailed, match="dirty"):
        ws.remove_worktree("exp-a")
    git(path, "checkout", "main.py")
    write_files(path, {"wandb/out.log": "x"})
    ws.remove_worktree("exp-a")
    assert not path.exists()
    assert git(clone, "rev-parse", "--verify", "refs/heads/exp-a")
    ws.remove_worktree("exp-a")  # already gone: nothing to do


# -- reading --------------------------------------------------------------------------------

def test_reading_helpers(repo):
    _, clone = repo
    ws = Workspace(clone)
    ws.worktree("exp-a")
    main_sha = git(clone, "rev-parse", "origin/main")
    assert ws.base_branch("exp-a") == "main"
    assert ws.base_branch("main") is None
    assert ws.is_ancestor(main_sha, "exp-a")
    assert not ws.is_ancestor(ws.head("exp-a"), "team/exp-b")
    assert not ws.is_ancestor("0" * 40, "exp-a") and not ws.is_ancestor("not-a-commit", "exp-a")
    assert ws.file_at("main", "src/config.py") == config_py()
    assert ws.file_at("team/exp-b", "src/config.py") == config_py(lr=0.05)  # only on origin
    assert ws.file_at("main", "missing.py") is None


def test_base_branch_follows_origin_head(tmp_path):
    origin, clone = make_origin(tmp_path, branches={"develop": {"x.txt": "1\n"}, "exp": {"y.txt": "2\n"}})
    git(clone, "remote", "set-head", "origin", "develop")
    assert Workspace(clone).base_branch("exp") == "develop"


# -- commit and push ------------------------------------------------------------------------

def test_commit_stages_only_the_given_paths(repo):
    origin, clone = repo
    ws = Workspace(clone)
    path = ws.worktree("exp-a")
    write_files(path, {"src/config.py": config_py(lr=0.01), "junk.txt": "junk\n", "new/file.py": "x = 1\n"})
    (path / "requirements.txt").unlink()
    sha = ws.commit("exp-a", ["src/config.py", "new/file.py", "requirements.txt"], "Fix: lower lr")
    changed = git(path, "show", "--name-status", "--format=", sha).splitlines()
    assert sorted(changed) == ["A\tnew/file.py", "D\trequirements.txt", "M\tsrc/config.py"]
    assert git(path, "status", "--porcelain") == "?? junk.txt"
    assert git(path, "log", "-1", "--format=%an|%cn|%s") == f"{BOT_NAME}|{BOT_NAME}|Fix: lower lr"


def test_commit_with_author_and_nothing_to_commit(repo):
    _, clone = repo
    ws = Workspace(clone)
    path = ws.worktree("exp-a")
    with pytest.raises(NothingToCommit):
        ws.commit("exp-a", ["src/config.py"], "Fix: nothing")
    with pytest.raises(BadInput):
        ws.commit("exp-a", ["../outside.txt"], "Fix: escape")
    write_files(path, {"a.txt": "a\n"})
    ws.commit("exp-a", ["a.txt"], "Fix: a", author="Ada <ada@example.com>")
    assert git(path, "log", "-1", "--format=%an <%ae>") == "Ada <ada@example.com>"


def test_commit_ignores_changes_staged_by_someone_else(repo):
    _, clone = repo
    ws = Workspace(clone)
    path = ws.worktree("exp-a")
    write_files(path, {"src/config.py": config_py(lr=0.01), "main.py": "print('staged')\n"})
    git(path, "add", "main.py")
    sha = ws.commit("exp-a", ["src/config.py"], "Fix: lower lr")
    assert git(path, "show", "--name-only", "--format=", sha) == "src/config.py"


def test_push_fast_forwards_and_touches_no_other_branch(repo):
    origin, clone = repo
    before = remote_refs(origin)
    ws = Workspace(clone)
    ws.worktree("team/exp-b")
    local_before = remote_refs(clone)
    path = ws.worktree("exp-a")
    write_files(path, {"src/config.py": config_py(lr=0.01)})
    sha = ws.commit("exp-a", ["src/config.py"], "Fix: lower lr")
    ws.push("exp-a")
    after = remote_refs(origin)
    assert after["refs/heads/exp-a"] == sha
    assert _others(after, "exp-a") == _others(before, "exp-a")
    assert git(clone, "rev-parse", "origin/exp-a") == sha
    assert _not_exp_a(remote_refs(clone)) == _not_exp_a(local_before)


def _rejected_push(origin, clone, moved_files):
    """A fix committed locally while someone else pushed `moved_files` to origin/exp-a."""
    ws = Workspace(clone)
    path = ws.worktree("exp-a")
    write_files(path, {"src/config.py": config_py(lr=0.01)})
    ours = ws.commit("exp-a", ["src/config.py"], "Fix: lower lr")
    theirs = commit_on_origin(origin, "exp-a", moved_files, "Human change")
    before = remote_refs(origin)
    with pytest.raises(PushRejected, match="rejected"):
        ws.push("exp-a")
    assert remote_refs(origin) == before
    return ws, path, ours, theirs


def test_rebase_onto_remote_replays_the_fix_when_other_files_moved(repo):
    origin, clone = repo
    ws, path, ours, theirs = _rejected_push(origin, clone, {"README.md": "notes\n"})
    before = remote_refs(origin)
    assert ws.rebase_onto_remote("exp-a", ["src/config.py"]) is True
    new = ws.head("exp-a")
    assert git(path, "rev-parse", "HEAD~1") == theirs
    assert git(path, "log", "-1", "--format=%s") == "Fix: lower lr" and new != ours
    assert git(path, "symbolic-ref", "HEAD") == "refs/heads/exp-a"
    ws.push("exp-a")
    after = remote_refs(origin)
    assert after["refs/heads/exp-a"] == new and _others(after, "exp-a") == _others(before, "exp-a")


def test_rebase_onto_remote_refuses_when_the_fixed_file_moved(repo):
    origin, clone = repo
    ws, path, ours, _ = _rejected_push(origin, clone, {"src/config.py": config_py(lr=3.0)})
    assert ws.rebase_onto_remote("exp-a", ["src/config.py"]) is False
    assert ws.head("exp-a") == ours == git(clone, "rev-parse", "refs/heads/exp-a")
    assert git(path, "symbolic-ref", "HEAD") == "refs/heads/exp-a"
    assert git(path, "status", "--porcelain") == ""
    assert "'lr': 0.01" in (path / "src/config.py").read_text()


def test_rebase_onto_remote_leaves_the_branch_as_it_was_on_conflict(repo):
    origin, clone = repo
    ws, path, ours, _ = _rejected_push(origin, clone, {"src/config.py": config_py(lr=3.0)})
    assert ws.rebase_onto_remote("exp-a", ["docs/exp-a.md"]) is False  # config.py conflicts
    assert ws.head("exp-a") == ours
    assert git(path, "symbolic-ref", "HEAD") == "refs/heads/exp-a"
    assert git(path, "status", "--porcelain") == ""


# -- server clone and credentials -----------------------------------------------------------

def test_clone_for_server_clones_then_fetches(repo, tmp_path):
    origin, _ = repo
    state = tmp_path / "state"
    url = origin.as_uri()
    dest = clone_for_server(state, "acme/exp", url)
    assert dest == state / "repos" / "acme" / "exp"
    ws = Workspace(dest)
    path = ws.worktree("main")  # no local branch is kept in the clone, so even main gets a worktree
    assert path == (dest / ".worktrees/main").resolve() and (path / "main.py").exists()
    sha = commit_on_origin(origin, "exp-a", {"n.txt": "1\n"}, "New")
    assert clone_for_server(state, "acme/exp", url) == dest
    assert git(dest, "rev-parse", "origin/exp-a") == sha
    with pytest.raises(BadInput):
        clone_for_server(state, "../evil", url)


def test_jobs_on_several_branches_of_one_server_clone_run_side_by_side(tmp_path):
    branches = {f"exp-{i}": {f"f{i}.txt": f"{i}\n"} for i in range(6)}
    origin, _ = make_origin(tmp_path, branches=branches)
    dest = clone_for_server(tmp_path / "state", "acme/exp", origin.as_uri())
    errors: list[BaseException] = []

    def job(branch: str) -> None:
        try:
            clone_for_server(tmp_path / "state", "acme/exp", origin.as_uri())
            Workspace(dest).worktree(branch)
        except BaseException as exc:  # collected for the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=job, args=(b,)) for b in branches]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    for i, branch in enumerate(branches):
        assert (dest / ".worktrees" / branch / f"f{i}.txt").exists()


class _Recorder(BaseHTTPRequestHandler):
    headers_seen: list[str] = []

    def do_GET(self):  # noqa: N802 - http.server's naming
        _Recorder.headers_seen.append(self.headers.get("Authorization", ""))
        self.send_response(404)
        self.end_headers()

    def log_message(self, *args):
        pass


def test_token_goes_as_a_header_and_never_into_config_or_errors(repo, tmp_path):
    origin, clone = repo
    server = HTTPServer(("127.0.0.1", 0), _Recorder)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    token = "ghs_SECRETTOKEN123"
    url = f"http://x-access-token:{token}@127.0.0.1:{server.server_port}/acme/exp.git"
    try:
        with pytest.raises(OperationFailed) as err:
            clone_for_server(tmp_path / "state", "acme/exp", url)
        with pytest.raises(OperationFailed) as err2:
            Workspace(clone, auth_url=url).fetch("exp-a")
    finally:
        server.shutdown()
    expected = "basic " + base64.b64encode(f"x-access-token:{token}".encode()).decode()
    assert _Recorder.headers_seen and _Recorder.headers_seen[0].lower() == expected.lower()
    for message in (str(err.value), str(err2.value)):
        assert token not in message and "x-access-token" not in message
    assert token not in (clone / ".git/config").read_text()


def test_strip_credentials():
    text = "fatal: unable to access 'https://x-access-token:abc@github.com/o/r.git/': 403"
    assert strip_credentials(text) == "fatal: unable to access 'https://github.com/o/r.git/': 403"
    assert strip_credentials("https://ghp_abc@github.com/o/r and ghp_abc", ("ghp_abc",)) == \
        "https://github.com/o/r and ***"


# -- history of bot fixes -------------------------------------------------------------------

def test_reverted_bot_fixes(repo):
    _, clone = repo
    ws = Workspace(clone)
    path = ws.worktree("exp-a")
    write_files(path, {"src/config.py": config_py(lr=0.01)})
    ws.commit("exp-a", ["src/config.py"], fix_message("lower lr", "r1"))
    write_files(path, {"src/train.py": "# fixed\n"})
    second = ws.commit("exp-a", ["src/train.py"], fix_message("train loop", "r2"))
    assert ws.reverted_bot_fixes("exp-a") == []
    git(path, "revert", "--no-edit", second)
    assert ws.reverted_bot_fixes("exp-a") == [second]
    write_files(path, {"src/train.py": "# the human's own version\n"})
    git(path, "commit", "-qam", "Rewrite train.py")
    assert ws.reverted_bot_fixes("exp-a") == [second]  # still known from the revert commit
    write_files(path, {"README.md": "typo fixed\n"})
    human = ws.commit("exp-a", ["README.md"], "Fix: typo")   # titled like the bot's, but a human's
    git(path, "revert", "--no-edit", human)
    assert ws.reverted_bot_fixes("exp-a") == [second]


def test_fix_undone_by_hand_counts_as_reverted(repo):
    _, clone = repo
    ws = Workspace(clone)
    path = ws.worktree("exp-a")
    write_files(path, {"src/config.py": config_py(lr=0.01)})
    entry = FixEntry(1, "nan_loss", "Loss is NaN", "lr too high", "rule:lower-lr", ["src/config.py"], "r1")
    doc = add_fix_entry(path, "exp-a", entry)
    fix = ws.commit("exp-a", ["src/config.py", doc], fix_message("lower lr", "r1"))
    write_files(path, {"src/config.py": config_py(lr=10.0)})  # a human puts the old lr back
    git(path, "commit", "-qam", "I want lr 10")
    assert ws.reverted_bot_fixes("exp-a") == [fix]


# -- branch docs ----------------------------------------------------------------------------

ENTRY = FixEntry(attempt=2, category="nan_loss", summary="Loss is NaN\nat step 131",
                 root_cause="learning rate 10 is too high", fixer="rule:lower-lr",
                 files=["src/config.py"], run_id="abc123",
                 when=datetime(2025, 3, 4, 5, 6, tzinfo=timezone.utc))


def test_branch_doc_is_created_with_title_and_section(tmp_path):
    rel = add_fix_entry(tmp_path, "team/exp-b", ENTRY)
    assert rel == doc_path("team/exp-b") == "docs/team-exp-b.md"
    text = (tmp_path / rel).read_text()
    assert text.startswith("# team/exp-b\n\n## Fixes\n\n### 2025-03-04 05:06 UTC — attempt 2\n")
    assert "- **Failed:** `nan_loss` — Loss is NaN at step 131\n" in text
    assert "- **Root cause:** learning rate 10 is too high\n" in text
    assert "- **Changed:** `src/config.py` (rule:lower-lr)\n" in text
    assert text.endswith("- **Failed run:** `abc123`\n")


def test_branch_doc_entry_keeps_the_rest_of_the_file(tmp_path):
    original = ("# exp-a\r\n\r\nWhy: test a high lr.\r\n\r\n## Fixes\r\n\r\n### old entry\r\n\r\n"
                "## Results\r\n\r\n```\r\n## Fixes\r\n```\r\nno trailing newline")
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs/exp-a.md").write_bytes(original.encode())
    add_fix_entry(tmp_path, "exp-a", ENTRY)
    add_fix_entry(tmp_path, "exp-a", ENTRY)
    text = (tmp_path / "docs/exp-a.md").read_bytes().decode()
    head, rest = text.split("### old entry\r\n\r\n", 1)
    assert head == "# exp-a\r\n\r\nWhy: test a high lr.\r\n\r\n## Fixes\r\n\r\n"
    assert rest.count("### 2025-03-04 05:06 UTC — attempt 2\r\n") == 2 and "\n" not in rest.replace("\r\n", "")
    assert rest.endswith("\r\n## Results\r\n\r\n```\r\n## Fixes\r\n```\r\nno trailing newline")
    assert rest.index("attempt 2") < rest.index("## Results")


def test_branch_doc_refuses_a_page_that_links_out_of_the_worktree(tmp_path):
    outside = tmp_path / "outside.md"
    outside.write_text("secret\n")
    (tmp_path / "wt/docs").mkdir(parents=True)
    (tmp_path / "wt/docs/exp-a.md").symlink_to(outside)
    with pytest.raises(BadInput):
        add_fix_entry(tmp_path / "wt", "exp-a", ENTRY)
    assert outside.read_text() == "secret\n"


def test_branch_doc_section_added_at_the_end_when_missing(tmp_path):
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs/exp-a.md").write_text("# exp-a\n\nNotes without newline")
    add_fix_entry(tmp_path, "exp-a", ENTRY)
    text = (tmp_path / "docs/exp-a.md").read_text()
    assert text.startswith("# exp-a\n\nNotes without newline\n\n## Fixes\n\n### 2025")


# -- for the server's executor ----------------------------------------------------------------

def test_a_callable_auth_url_is_asked_for_a_fresh_token_at_each_fetch_and_push(repo, tmp_path):
    origin, clone = repo
    server = HTTPServer(("127.0.0.1", 0), _Recorder)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    _Recorder.headers_seen = []
    tokens = iter(f"ghs_TOKEN{i}" for i in range(1, 10))
    issued: list[str] = []

    def auth_url() -> str:
        issued.append(next(tokens))
        return f"http://x-access-token:{issued[-1]}@127.0.0.1:{server.server_port}/acme/exp.git"

    ws = Workspace(clone, auth_url=auth_url)
    errors = []
    try:
        for _ in range(2):
            with pytest.raises(OperationFailed) as err:
                ws.fetch("exp-a")
            errors.append(str(err.value))
        git(clone, "branch", "exp-a", "origin/exp-a")
        with pytest.raises(OperationFailed) as err:
            ws.push("exp-a")
        errors.append(str(err.value))
    finally:
        server.shutdown()
    assert issued == ["ghs_TOKEN1", "ghs_TOKEN2", "ghs_TOKEN3"]
    sent = [base64.b64decode(h.split()[1]).decode() for h in _Recorder.headers_seen if h]
    assert [s for s in dict.fromkeys(sent)] == [f"x-access-token:{t}" for t in issued]
    for message in errors:
        assert "ghs_TOKEN" not in message and "x-access-token" not in message
    assert "ghs_TOKEN" not in (clone / ".git/config").read_text()


def test_commits_since_lists_the_branchs_new_commits_oldest_first(repo):
    _, clone = repo
    ws = Workspace(clone)
    path = ws.worktree("exp-a")
    base = ws.head("exp-a")
    assert ws.commits_since(base, "exp-a") == []
    shas = []
    for i in (1, 2):
        write_files(path, {f"n{i}.txt": f"{i}\n"})
        shas.append(ws.commit("exp-a", [f"n{i}.txt"], fix_message(f"note {i}", "r1")))
    write_files(path, {"n3.txt": "3\n"})
    # A human's, though titled like ours and quoting our trailer (not in its closing block),
    # with a record separator in the text that must not split the listing.
    shas.append(ws.commit("exp-a", ["n3.txt"], "Fix: typo\n\nAs the bot says:\nFix-and-relaunch: fixes run r1\n\n"
                                               "odd \x1e bytes"))
    listed = [(c.sha, c.subject, c.by_bot) for c in ws.commits_since(base, "exp-a")]
    assert listed == [(shas[0], "Fix: note 1", True), (shas[1], "Fix: note 2", True), (shas[2], "Fix: typo", False)]
    assert [c.sha for c in ws.commits_since(shas[1], "exp-a")] == [shas[2]]
    for unknown in ("0" * 40, "no-such-ref", "--all"):
        with pytest.raises(BadInput):
            ws.commits_since(unknown, "exp-a")


def test_discard_unpushed_resets_the_server_clone_to_the_remote(repo, tmp_path):
    origin, clone = repo
    dest = clone_for_server(tmp_path / "state", "acme/exp", origin.as_uri())
    ws = Workspace(dest)
    path = ws.worktree("exp-a")
    pushed = ws.head("exp-a")
    remote_before = remote_refs(origin)
    write_files(path, {"n.txt": "1\n"})
    unpushed = [ws.commit("exp-a", ["n.txt"], "Fix: never pushed")]
    write_files(path, {"n2.txt": "2\n"})
    unpushed.append(ws.commit("exp-a", ["n2.txt"], "Fix: never pushed either"))
    (path / "src/config.py").write_text("half an edit\n")
    (path / "run-output.log").write_text("untracked\n")
    moved = commit_on_origin(origin, "exp-a", {"human.txt": "h\n"}, "A human pushed meanwhile")

    assert ws.discard_unpushed("exp-a") == unpushed
    assert ws.head("exp-a") == moved and git(path, "status", "--porcelain", "--untracked-files=no") == ""
    assert (path / "src/config.py").read_text() == git(origin, "show", f"{moved}:src/config.py") + "\n"
    assert (path / "run-output.log").exists() and not (path / "n.txt").exists()
    assert remote_refs(origin) == {**remote_before, "refs/heads/exp-a": moved}
    assert pushed != moved and ws.discard_unpushed("exp-a") == []


def test_discard_unpushed_refuses_a_users_checkout(repo):
    _, clone = repo
    ws = Workspace(clone)
    path = ws.worktree("exp-a")
    write_files(path, {"n.txt": "1\n"})
    sha = ws.commit("exp-a", ["n.txt"], "My own work")
    with pytest.raises(OperationFailed, match="not the bot's own server clone"):
        ws.discard_unpushed("exp-a")
    assert ws.head("exp-a") == sha
