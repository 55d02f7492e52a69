"""Commit, push, replay, the server's own clone and its credentials, against real git."""

from __future__ import annotations

import base64
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest

from bot.core.errors import BadInput, OperationFailed
from bot.repo.publish import BOT_NAME, NothingToCommit, PushRejected, clone_for_server
from bot.repo.workspace import Workspace
from tests.support.git_repos import commit_on_origin, config_py, git, make_origin, remote_refs, write_files


def _not_exp_a(refs: dict[str, str]) -> dict[str, str]:
    return {k: v for k, v in refs.items() if not k.endswith("/exp-a")}


def _others(refs: dict[str, str], branch: str) -> dict[str, str]:
    return {k: v for k, v in refs.items() if k != f"refs/heads/{branch}"}


# -- commit and push ------------------------------------------------------------------------


def test_commit_stages_only_the_given_paths(repo):
    _origin, clone = repo
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

    def do_GET(self):
        _Recorder.headers_seen.append(self.headers.get("Authorization", ""))
        self.send_response(404)
        self.end_headers()

    def log_message(self, *args):
        pass


def test_token_goes_as_a_header_and_never_into_config_or_errors(repo, tmp_path):
    _origin, clone = repo
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


# -- for the server's executor ----------------------------------------------------------------


def test_a_callable_auth_url_is_asked_for_a_fresh_token_at_each_fetch_and_push(repo, tmp_path):
    _origin, clone = repo
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


def test_discard_unpushed_resets_the_server_clone_to_the_remote(repo, tmp_path):
    origin, _clone = repo
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
