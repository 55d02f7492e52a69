"""`wandb-setup` through the real wandb client against the fake W&B, with W&B's automations API.

The operations wandb 0.31 sends for this (logged from the fake): GetProject (the scope's id),
IntegrationsByEntity (webhook integrations), ServerFeaturesQuery, GetEntityAutomationsLegacy
(automations by name; GetEntityAutomations on servers with QUERY_AUTOMATIONS_ON_ENTITY),
then CreateAutomation or UpdateAutomation. `FakeAutomations` answers them as W&B does.
"""

from __future__ import annotations

import base64
import json

import pytest

from bot.app.alerts import WANDB_PAYLOAD_TEMPLATE
from bot.app.wandb_setup import INTEGRATION_NAME, SECRET_NAME, automation_name, create_automation
from bot.cli import main as cli
from bot.core.errors import BadInput, OperationFailed
from bot.core.settings import Settings
from tests.support.fake_wandb import FakeWandb, GraphQLError

KEY = "k3y" + "0123456789abcdef" * 2 + "zzzzz"  # 40 characters, like a real key
SECRET = "webhook-s3cret-value"
PROJECT = "vision"
URL = "https://bot.example.com/webhooks/wandb"
_PAGE = {"endCursor": None, "hasNextPage": False}


def _gid(kind: str, number: int) -> str:
    return base64.b64encode(f"{kind}:{number}".encode()).decode()


class FakeAutomations:
    """W&B's webhook integrations and automations (triggers) of one entity, as GraphQL answers."""

    def __init__(self, server: FakeWandb) -> None:
        self.server = server
        self.integrations: list[dict] = []
        self.triggers: list[dict] = []
        server.extra_operations.update(
            {
                "GetProject": self._project,
                "IntegrationsByEntity": self._integrations,
                "GetEntityAutomationsLegacy": self._automations,
                "CreateAutomation": self._create,
                "UpdateAutomation": self._update,
            }
        )

    def add_integration(self, name: str, url: str) -> dict:
        node = {
            "__typename": "GenericWebhookIntegration",
            "id": _gid("Integration", len(self.integrations) + 1),
            "name": name,
            "urlEndpoint": url,
        }
        self.integrations.append(node)
        return node

    def project_id(self, project: str) -> str:
        names = sorted(p for e, p in self.server.projects if e == self.server.entity)
        return _gid("Project", names.index(project) + 1)

    def _project(self, variables: dict) -> dict:
        if (variables["entity"], variables["name"]) not in self.server.projects:
            return {"project": None}
        return {
            "project": {
                "__typename": "Project",
                "id": self.project_id(variables["name"]),
                "name": variables["name"],
                "entityName": variables["entity"],
                "createdAt": "2024-01-01T00:00:00",
                "isBenchmark": False,
                "user": None,
            }
        }

    def _integrations(self, variables: dict) -> dict:
        edges = [{"node": node} for node in self.integrations] if variables["entity"] == self.server.entity else []
        return {"entity": {"integrations": {"pageInfo": _PAGE, "edges": edges}}}

    def _automations(self, variables: dict) -> dict:
        projects = sorted(p for e, p in self.server.projects if e == variables["entity"])
        nodes = [
            {"__typename": "Project", "triggers": [t for t in self.triggers if t["scope"]["name"] == p]}
            for p in projects
        ]
        return {"scope": {"projects": {"pageInfo": _PAGE, "edges": [{"node": n} for n in nodes]}}}

    def _create(self, variables: dict) -> dict:
        given = variables["input"]
        if any(t["name"] == given["name"] for t in self.triggers):
            raise GraphQLError(f"trigger {given['name']} already exists")
        trigger = {
            "__typename": "Trigger",
            "id": _gid("Trigger", len(self.triggers) + 1),
            "createdAt": "2024-01-01T00:00:00",
            "updatedAt": None,
        }
        self.triggers.append(self._apply(trigger, given))
        return {"result": {"trigger": trigger}}

    def _update(self, variables: dict) -> dict:
        given = variables["input"]
        trigger = next((t for t in self.triggers if t["id"] == given["id"]), None)
        if trigger is None:
            raise GraphQLError("trigger not found")
        return {"result": {"trigger": self._apply(trigger, {**given, "updatedAt": "2024-01-02T00:00:00"})}}

    def _apply(self, trigger: dict, given: dict) -> dict:
        """Store the input as W&B answers it back: the event filter and payload as JSON strings."""
        scope_name = next(p for e, p in self.server.projects if self.project_id(p) == given["scopeID"])
        hook_input = given["triggeredActionConfig"]["genericWebhookActionInput"]
        hook = next(h for h in self.integrations if h["id"] == hook_input["integrationID"])
        trigger.update(
            {
                "name": given.get("name") or trigger["name"],
                "description": given.get("description"),
                "enabled": given.get("enabled", True),
                "updatedAt": given.get("updatedAt"),
                "scope": {"__typename": "Project", "id": given["scopeID"], "name": scope_name},
                "event": {
                    "__typename": "FilterEventTriggeringCondition",
                    "eventType": given["triggeringEventType"],
                    "filter": given["eventFilter"],
                },
                "action": {
                    "__typename": "GenericWebhookTriggeredAction",
                    "integration": hook,
                    "requestPayload": hook_input["requestPayload"],
                },
            }
        )
        return trigger


@pytest.fixture(autouse=True)
def wandb_dirs(tmp_path, monkeypatch):
    for name in ("WANDB_DIR", "WANDB_CONFIG_DIR", "WANDB_CACHE_DIR", "WANDB_DATA_DIR"):
        monkeypatch.setenv(name, str(tmp_path / name.lower()))


@pytest.fixture
def server():
    with FakeWandb(api_key=KEY) as fake:
        fake.add_project(PROJECT)
        fake.add_project("other")
        yield fake


@pytest.fixture
def automations(server) -> FakeAutomations:
    return FakeAutomations(server)


def settings_for(server: FakeWandb, **overrides) -> Settings:
    return Settings(**{"wandb_api_key": KEY, "wandb_base_url": server.url, "wandb_webhook_secret": SECRET, **overrides})


def setup(server: FakeWandb, url: str = URL) -> str:
    return create_automation(settings_for(server), entity=server.entity, project=PROJECT, url=url)


def test_creates_a_failed_run_automation_that_sends_the_payload_template(server, automations):
    automations.add_integration("slack-relay", "https://elsewhere.example.com/hook")
    hook = automations.add_integration(INTEGRATION_NAME, URL)

    summary = setup(server)

    assert summary.startswith(f"created automation '{automation_name(PROJECT)}' in {server.entity}/{PROJECT}")
    assert "\n" not in summary and SECRET not in summary
    [create] = server.requests_for("CreateAutomation")
    given = create.variables["input"]
    assert given["scopeType"] == "PROJECT" and given["scopeID"] == automations.project_id(PROJECT)
    assert given["triggeringEventType"] == "RUN_STATE"
    assert json.loads(given["eventFilter"])["run_state_filter"]["states"] == ["FAILED"]
    assert given["triggeredActionType"] == "GENERIC_WEBHOOK"
    action = given["triggeredActionConfig"]["genericWebhookActionInput"]
    assert action["integrationID"] == hook["id"]
    assert json.loads(action["requestPayload"]) == json.loads(WANDB_PAYLOAD_TEMPLATE)
    assert given["enabled"] is True and given["name"] == automation_name(PROJECT)
    assert not any(SECRET in json.dumps(r.variables) for r in server.requests)


def test_a_second_run_reuses_the_integration_and_creates_no_duplicate(server, automations):
    automations.add_integration(INTEGRATION_NAME, URL + "/")  # the same endpoint, written with a slash

    setup(server)
    again = setup(server)

    assert "unchanged" in again
    assert len(server.requests_for("CreateAutomation")) == 1
    assert not server.requests_for("UpdateAutomation")
    assert len(automations.triggers) == 1 and len(automations.integrations) == 1
    assert automations.triggers[0]["action"]["integration"]["urlEndpoint"] == URL + "/"


def test_an_automation_that_drifted_is_updated_in_place(server, automations):
    automations.add_integration("old-bot", "https://old.example.com/webhooks/wandb")
    setup(server, url="https://old.example.com/webhooks/wandb")
    new_hook = automations.add_integration(INTEGRATION_NAME, URL)

    summary = setup(server)

    assert summary.startswith("updated automation")
    [update] = server.requests_for("UpdateAutomation")
    given = update.variables["input"]
    assert given["id"] == automations.triggers[0]["id"]
    assert given["triggeredActionConfig"]["genericWebhookActionInput"]["integrationID"] == new_hook["id"]
    assert json.loads(given["eventFilter"])["run_state_filter"]["states"] == ["FAILED"]
    assert len(automations.triggers) == 1


def test_without_an_integration_for_the_url_it_says_what_to_click(server, automations):
    automations.add_integration("something-else", "https://elsewhere.example.com/hook")

    with pytest.raises(BadInput) as raised:
        setup(server)

    message = str(raised.value)
    assert "\n" not in message and SECRET not in message
    for words in ("Team Settings", "New secret", SECRET_NAME, "New webhook", INTEGRATION_NAME, URL, "re-run"):
        assert words in message
    assert not server.requests_for("CreateAutomation")


def test_an_unknown_project_is_bad_input(server, automations):
    automations.add_integration(INTEGRATION_NAME, URL)
    with pytest.raises(BadInput, match="test-entity/nope not found"):
        create_automation(settings_for(server), entity=server.entity, project="nope", url=URL)


@pytest.mark.parametrize(
    "missing, variable", [("wandb_api_key", "WANDB_API_KEY"), ("wandb_webhook_secret", "WANDB_WEBHOOK_SECRET")]
)
def test_the_command_needs_the_key_and_the_secret(server, monkeypatch, capsys, missing, variable):
    env = {"WANDB_API_KEY": KEY, "WANDB_BASE_URL": server.url, "WANDB_WEBHOOK_SECRET": SECRET}
    for name, value in env.items():
        if name != variable:
            monkeypatch.setenv(name, value)

    code = cli.main(["wandb-setup", "--entity", server.entity, "--project", PROJECT, "--url", URL])

    err = capsys.readouterr().err
    assert code == 2
    assert err.count("\n") == 1 and variable in err
    assert KEY not in err and SECRET not in err
    assert not server.requests


def test_a_graphql_error_is_one_clean_line(server, automations, monkeypatch, capsys):
    automations.add_integration(INTEGRATION_NAME, URL)

    def refuse(variables: dict) -> dict:
        raise GraphQLError(f"permission denied: only team admins may create automations\n  at {KEY}")

    server.extra_operations["CreateAutomation"] = refuse
    monkeypatch.setenv("WANDB_API_KEY", KEY)
    monkeypatch.setenv("WANDB_BASE_URL", server.url)
    monkeypatch.setenv("WANDB_WEBHOOK_SECRET", SECRET)

    code = cli.main(["wandb-setup", "--entity", server.entity, "--project", PROJECT, "--url", URL])

    err = capsys.readouterr().err
    assert code == 1
    assert err.count("\n") == 1 and "permission denied" in err
    assert KEY not in err and SECRET not in err


def test_a_failure_is_operation_failed_through_the_function_too(server, automations):
    def locked(variables: dict) -> dict:
        raise GraphQLError("entity test-entity is locked")

    server.extra_operations["IntegrationsByEntity"] = locked
    with pytest.raises(OperationFailed, match="locked"):
        setup(server)
