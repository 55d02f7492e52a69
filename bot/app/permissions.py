"""Who may ask the bot to act, and which pull request branches it may push to."""

from __future__ import annotations

from typing import Any

import gidgethub
from gidgethub.abc import GitHubAPI

# OWNER is the account that owns the repository. MEMBER (any org member) and COLLABORATOR
# (read and triage included) say nothing about write access: those ask the permission endpoint.
TRUSTED_ASSOCIATIONS = frozenset({"OWNER"})
WRITE_PERMISSIONS = frozenset({"admin", "maintain", "write"})


async def has_write_access(gh: GitHubAPI, collaborators_url: str, login: str, association: str) -> bool:
    """Whether `login` (a comment's author, with its `author_association`) may write to the repo
    whose `collaborators_url` (a URL template, as payloads give it) is given."""
    if association in TRUSTED_ASSOCIATIONS:
        return True
    try:
        answer = await gh.getitem(collaborators_url + "/permission", {"collaborator": login})
    except gidgethub.BadRequest:  # 404: not a collaborator at all
        return False
    return answer.get("permission") in WRITE_PERMISSIONS


def can_push(pr: dict[str, Any]) -> bool:
    """Same-repo branches, or forks the installation may push to."""
    head_repo = pr["head"].get("repo")
    if head_repo is None:  # the fork was deleted
        return False
    if head_repo["full_name"] == pr["base"]["repo"]["full_name"]:
        return True
    return bool(pr.get("maintainer_can_modify") or (head_repo.get("permissions") or {}).get("push"))
