"""What a command needs about one repository, built once: settings, git, state, config, runs."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

from bot.core.errors import BadInput
from bot.core.settings import Settings
from bot.loop.baseline import Baseline, find_baseline
from bot.loop.branch_runs import BranchRuns
from bot.repo import config as repo_config
from bot.repo.local import LocalRepo
from bot.repo.private_clone import user_repo_of
from bot.repo.publish import is_server_clone
from bot.repo.workspace import Workspace
from bot.repo.worktrees import USER_REMOTE
from bot.runs.locate import WandbFolders
from bot.store.runs import StateStore


@dataclass
class RepoContext:
    settings: Settings
    repo: Path
    # Server mode: the clone URL carrying an installation token, or a function giving a fresh one.
    auth_url: str | Callable[[], str] | None = None
    # The organisation defaults the repo config extends (`_extends`), fetched by the server's worker.
    config_base: repo_config.Base | None = None
    _configs: dict[str, dict] = field(default_factory=dict)
    _bases: dict[str, str | None] = field(default_factory=dict)
    _baselines: dict[str, Baseline | None] = field(default_factory=dict)

    @classmethod
    def open(cls, settings: Settings, repo: Path, *, auth_url: str | Callable[[], str] | None = None) -> RepoContext:
        """The repository that `repo` (its checkout, any folder in it, or one of the bot's
        `.worktrees/`) belongs to, named by its main checkout."""
        root = LocalRepo(Path(repo).expanduser().resolve()).root
        if (user := user_repo_of(root)) is not None:
            root = LocalRepo(user).root
        return cls(settings, root, auth_url)

    @property
    def key(self) -> str:
        """How the state store names this repository."""
        return str(self.repo)

    @cached_property
    def state(self) -> StateStore:
        return StateStore.open(self.settings.state_dir)

    @cached_property
    def _wandb_folders(self) -> WandbFolders:
        return WandbFolders()

    @cached_property
    def workspace(self) -> Workspace:
        """The server's own clone is worked in directly; a user's clone through the bot's
        private clone of it, so the user's branches, checkout and index stay theirs."""
        if self.auth_url is not None or is_server_clone(self.repo):
            return Workspace(self.repo, auth_url=self.auth_url)
        return Workspace.for_checkout(self.repo)

    def config(self, branch: str) -> dict:
        """The branch's repo config, read from the branch itself (its worktree when it has one)."""
        if branch not in self._configs:
            worktree = self.workspace.worktree_path(branch)
            if (worktree / ".git").exists():
                self._configs[branch] = repo_config.load(worktree, base=self.config_base)
            else:
                refs = (branch, f"{USER_REMOTE}/{branch}", f"origin/{branch}")  # the user's own may be newest
                found = (self.workspace.file_at(ref, repo_config.CONFIG_PATH) for ref in refs)
                text = next((t for t in found if t is not None), "")
                self._configs[branch] = repo_config.parse(text, base=self.config_base)
        return self._configs[branch]

    def reload_config(self, branch: str) -> dict:
        self._configs.pop(branch, None)
        return self.config(branch)

    def launcher(self, backend: str, config: dict):
        from bot.launchers import get_launcher

        return get_launcher(backend, self.settings, config)

    def runs(self, branch: str | None) -> BranchRuns:
        """The branch's runs (all runs of the repo when `branch` is None)."""
        config = self.config(branch) if branch else repo_config.parse("")
        baseline = (lambda: self.baseline(branch)) if branch else None
        return BranchRuns(
            repo=self.key, store=self._store(config), state=self.state, settings=self.settings, baseline=baseline
        )

    def baseline(self, branch: str) -> Baseline | None:
        """The run the branch's runs are compared with (bot.loop.baseline): looked up once per
        command or job, the first time a run of the branch is compared."""
        if branch not in self._baselines:
            base = self.workspace.base_branch(branch)
            self._baselines[branch] = find_baseline(self.runs(base), base) if base else None
        return self._baselines[branch]

    def _store(self, config: dict):
        branch_key = config["wandb"]["branch_key"]
        if self.settings.online_wandb:
            return self._wandb_store(config, branch_key)
        from bot.runs.offline import OfflineRunStore

        return OfflineRunStore(self._offline_roots, branch_key=branch_key, commits_on_branch=self.commit_on_branch)

    def _wandb_store(self, config: dict, branch_key: str):
        from bot.runs.wandb_api import WandbApiRunStore

        api_key = self.settings.wandb_api_key
        if api_key is None:  # not reached: only online_wandb settings, which have a key, come here
            raise BadInput("reading runs from W&B needs WANDB_API_KEY")
        entity = config["wandb"]["entity"] or self.settings.wandb_entity
        project = config["wandb"]["project"] or self.settings.wandb_project
        if not entity or not project:
            raise BadInput(
                "WANDB_API_KEY is set but no W&B project is known: set wandb.entity and "
                "wandb.project in .github/fix-and-relaunch.yml (or WANDB_ENTITY/WANDB_PROJECT)"
            )
        return WandbApiRunStore(
            api_key=api_key,
            base_url=self.settings.wandb_base_url,
            entity=entity,
            project=project,
            branch_key=branch_key,
            commits_on_branch=self.commit_on_branch,
        )

    def commit_on_branch(self, commit: str, branch: str) -> bool:
        """A run made at `commit` is the branch's: on the branch, and not already on its base
        (a run of `main` at the fork point is main's, not every experiment's)."""
        ws = self.workspace
        if not ws.is_ancestor(commit, branch):
            return False
        if branch not in self._bases:
            self._bases[branch] = ws.base_branch(branch)
        base = self._bases[branch]
        return base is None or base == branch or not ws.is_ancestor(commit, base)

    def _offline_roots(self, branch: str | None) -> list[Path]:
        """Where offline runs of a branch live: its worktree, the repo itself (each searched
        for `wandb` folders in sub-folders too: see bot.runs.locate), and the folders the
        launcher recorded."""
        worktrees = self.repo / ".worktrees"
        roots = [self.repo / "wandb", *self._wandb_folders.under(self.repo)]
        if branch is None:
            # Branch names may hold one or two slashes; a deeper glob would walk data folders.
            roots += [*worktrees.glob("*/wandb"), *worktrees.glob("*/*/wandb"), *worktrees.glob("*/*/*/wandb")]
        else:
            worktree = self.workspace.worktree_path(branch)
            roots += [worktree / "wandb", *self._wandb_folders.under(worktree)]
        for record in self.state.list_runs(repo=self.key, branch=branch):
            if record.wandb_run_path:
                roots.append(Path(record.wandb_run_path).parent)
        unique = dict.fromkeys(p for p in roots if p.is_dir())
        return list(unique)
