"""`wandb-setup`: the W&B automation that calls the bot's /webhooks/wandb when a run fails.

Everything goes through wandb's own automations API (wandb 0.31):
event `OnRunState` on the project with `RunEvent.state.eq("failed")` (W&B's run-state
automations know RUNNING, FINISHED and FAILED; "crashed" is the same state to them), action
`SendWebhook` through the team's webhook integration for the bot's URL, with
`bot.app.alerts.WANDB_PAYLOAD_TEMPLATE` as the payload.

W&B keeps the bearer token of a webhook integration as a *team secret*, referenced by name.
The SDK can neither create team secrets nor (publicly) webhook integrations, and only team
admins may, so an integration for the URL must already exist: we reuse it, or stop with the
clicks that create it. W&B then sends `Authorization: Bearer <the secret's value>`.

Idempotent: the automation has a fixed name per project; a second run reports it unchanged,
or updates it in place when it differs (another integration, payload, filter, disabled).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from bot.app.alerts import WANDB_PAYLOAD_TEMPLATE
from bot.core.errors import BadInput, BotError, OperationFailed, first_line
from bot.core.settings import Settings

if TYPE_CHECKING:
    import wandb
    from wandb.automations import Automation, OnRunState, SendWebhook, WebhookIntegration

INTEGRATION_NAME = "fix-and-relaunch"
SECRET_NAME = "FIX_AND_RELAUNCH_WEBHOOK_SECRET"
DESCRIPTION = "Alert fix-and-relaunch when a run fails or crashes, so it can fix and relaunch it."
_TIMEOUT = 30


def automation_name(project: str) -> str:
    # W&B may reject a second automation of the same name in an entity: one name per project.
    return f"fix-and-relaunch-{project}"


def create_automation(settings: Settings, *, entity: str, project: str, url: str) -> str:
    """Create (or reuse, or update) the project's run-failed automation; one line saying which."""
    if not settings.wandb_api_key:
        raise BadInput("wandb-setup needs a W&B API key: set WANDB_API_KEY")
    if not settings.wandb_webhook_secret:
        raise BadInput("wandb-setup needs the webhook secret the bot checks: set WANDB_WEBHOOK_SECRET")
    if not url.startswith(("https://", "http://")):
        raise BadInput(f"--url must be the bot's http(s) /webhooks/wandb URL, not {url!r}")
    with _calling(settings, f"setting up the automation of {entity}/{project}"):
        api = _api(settings)
        hook = find_integration(api, entity, url)
        event, action = _wanted(api, entity, project, hook)
        name = automation_name(project)
        existing = _existing(api, entity, project, name)
        where = f"{entity}/{project}: runs that fail or crash -> webhook '{hook.name}' ({hook.url_endpoint})"
        if existing is None:
            api.create_automation(event >> action, name=name, description=DESCRIPTION, enabled=True)
            return f"created automation '{name}' in {where}"
        if _matches(existing, hook.id):
            return f"automation '{name}' already set up in {where}; unchanged"
        api.update_automation(existing, event=event, action=action, enabled=True, description=DESCRIPTION)
        return f"updated automation '{name}' in {where}"


def find_integration(api: wandb.Api, entity: str, url: str) -> WebhookIntegration:
    """The entity's webhook integration for `url` (ours by name first), else the clicks to make one."""
    wanted = _normal_url(url)
    found = [hook for hook in api.webhook_integrations(entity=entity) if _normal_url(hook.url_endpoint) == wanted]
    if found:
        return next((hook for hook in found if hook.name == INTEGRATION_NAME), found[0])
    raise BadInput(
        f"no W&B webhook points at {url} in '{entity}'; W&B only lets team admins create one: in W&B "
        f"Team Settings of '{entity}', under Team secrets click New secret, name it {SECRET_NAME} and paste "
        f"the value of WANDB_WEBHOOK_SECRET; then under Webhooks click New webhook, name {INTEGRATION_NAME}, "
        f"URL {url}, Access token {SECRET_NAME}, Create webhook; then re-run wandb-setup"
    )


# -- helpers ----------------------------------------------------------------------------------


def _api(settings: Settings) -> wandb.Api:
    import wandb  # slow to import: only when the command runs

    overrides = {"base_url": settings.wandb_base_url} if settings.wandb_base_url else {}
    return wandb.Api(api_key=settings.wandb_api_key, overrides=overrides, timeout=_TIMEOUT)


def _wanted(api: wandb.Api, entity: str, project: str, hook: WebhookIntegration) -> tuple[OnRunState, SendWebhook]:
    from wandb.automations import OnRunState, RunEvent, RunStateFilter, SendWebhook

    scope = _project(api, entity, project)
    # Wrapped as OnRunState's own validator would wrap it; spelt out, it matches the field's type.
    event = OnRunState(scope=scope, filter=RunStateFilter(state=RunEvent.state.eq("failed")))
    action = SendWebhook.from_integration(hook, payload=json.loads(WANDB_PAYLOAD_TEMPLATE))
    return event, action


def _project(api: wandb.Api, entity: str, project: str) -> Any:
    """The loaded project: the automation's scope needs its id."""
    scope = api.project(project, entity=entity)
    try:
        _ = scope.id  # reading the id is what asks W&B
    except ValueError as exc:
        if exc.__cause__ is not None:  # the request itself failed, not "no such project"
            raise
        raise BadInput(f"W&B project {entity}/{project} not found: check --entity/--project") from None
    return scope


def _existing(api: wandb.Api, entity: str, project: str, name: str) -> Automation | None:
    """The automation of this name scoped to this project, if any."""
    for automation in api.automations(entity=entity, name=name):
        if getattr(automation.scope, "name", None) == project:
            return automation
    return None


def _matches(existing: Automation, integration_id: str) -> bool:
    """Whether the saved automation already does what we would create."""
    from wandb.automations import ActionType, EventType

    event, action = existing.event, existing.action
    if not existing.enabled or event.event_type != EventType.RUN_STATE:
        return False
    if action.action_type != ActionType.GENERIC_WEBHOOK or action.integration.id != integration_id:
        return False
    wanted_payload = json.loads(WANDB_PAYLOAD_TEMPLATE)
    return _states(event.filter) == {"FAILED"} and _payload(action.request_payload) == wanted_payload


def _states(saved_filter: Any) -> set[str]:
    state = getattr(saved_filter, "state", None)
    return {str(getattr(s, "value", s)) for s in getattr(state, "states", None) or []}


def _payload(payload: Any) -> Any:
    # Saved payloads come back as a JSON string or already decoded, depending on the path.
    if isinstance(payload, str):
        try:
            return json.loads(payload)
        except ValueError:
            return payload
    return payload


def _normal_url(url: str) -> str:
    return url.strip().rstrip("/")


@contextmanager
def _calling(settings: Settings, what: str) -> Iterator[None]:
    """Any client failure leaves as one line that holds no secret."""
    try:
        yield
    except BotError:
        raise
    except Exception as exc:
        # Some client errors wrap the server's answer: show both, the wrapper alone says little.
        text = "; ".join(str(e) for e in (exc, exc.__cause__) if e is not None and str(e))
        detail = first_line(text or type(exc).__name__, settings.secrets())
        raise OperationFailed(f"W&B failed while {what}: {detail}") from None
