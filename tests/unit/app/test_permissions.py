"""Which pull request branches the bot may push to (who may ask is tested through the handler)."""

from __future__ import annotations

import pytest

from bot.app.permissions import can_push


def pull(head_repo: str | None, **more) -> dict:
    head = {"repo": {"full_name": head_repo, **more.pop("repo", {})} if head_repo else None}
    return {"head": head, "base": {"repo": {"full_name": "team/exp"}}, **more}


@pytest.mark.parametrize(
    "pr, allowed",
    [
        (pull("team/exp"), True),
        (pull("alice/exp"), False),
        (pull("alice/exp", maintainer_can_modify=True), True),
        (pull("alice/exp", repo={"permissions": {"push": True}}), True),
        (pull(None, maintainer_can_modify=True), False),  # the fork was deleted
    ],
)
def test_can_push(pr, allowed):
    assert can_push(pr) is allowed
