"""The W&B Launch backend through the real wandb client (`launch_add`, the public API), against
the local fake W&B server; the launch queue operations are answered here (`extra_operations`)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bot.core.errors import BadInput, OperationFailed
from bot.core.settings import Settings
from bot.launchers import LaunchSpec, get_launcher, refresh_run
from bot.launchers.wandb_launch import NEEDS_KEY
from bot.repo.config import DEFAULTS
from bot.store.runs import StateStore
from tests.support.fake_wandb import FakeWandb, GraphQLError

KEY = "k3y" + "0123456789abcdef" * 2 + "zzzzz"
PROJECT = "exp"


class Queue:
    """A W&B Launch queue as the server keeps it: pushed items and their states."""

    def __init__(self, server: FakeWandb):
        self.items: dict[str, dict] = {}
        server.extra_operations.update(
            {
                "pushToRunQueueByName": self.push,
                "GetRunQueueItem": self.item,
                "fetchRunQueuesFromProject": self.queue_id,
                "DeleteFromRunQueue": self.delete,
                "StopRun": self.stop,
                "GetDefaultEntity": lambda v: {"viewer": {"id": "1", "entity": server.entity}},
                # No job artifact of that name exists on this server.
                "ArtifactMembershipByName": lambda v: {"project": {"artifactCollectionMembership": None}},
            }
        )
        self.stopped: list[str] = []

    def push(self, variables: dict) -> dict:
        item_id = f"item-{len(self.items) + 1}"
        self.items[item_id] = {"id": item_id, "state": "PENDING", "associatedRunId": None, **variables}
        return {"pushToRunQueueByName": {"runQueueItemId": item_id, "runSpec": variables["runSpec"]}}

    def item(self, variables: dict) -> dict:
        found = self.items.get(variables["itemId"])
        node = {k: found[k] for k in ("id", "state", "associatedRunId")} if found else None
        return {"project": {"runQueue": {"runQueueItem": node}}}

    def queue_id(self, variables: dict) -> dict:
        return {"project": {"runQueue": {"id": f"queue-{variables['runQueueName']}"}}}

    def delete(self, variables: dict) -> dict:
        if self.items.pop(variables["runQueueItemId"], None) is None:
            raise GraphQLError("no such item")
        return {"deleteFromRunQueue": {"success": True, "clientMutationId": None}}

    def stop(self, variables: dict) -> dict:
        self.stopped.append(variables["id"])
        return {"stopRun": {"clientMutationId": None}}


@pytest.fixture(autouse=True)
def wandb_dirs(tmp_path, monkeypatch):
    for name in ("WANDB_DIR", "WANDB_CONFIG_DIR", "WANDB_CACHE_DIR", "WANDB_DATA_DIR"):
        monkeypatch.setenv(name, str(tmp_path / name.lower()))
    monkeypatch.delenv("WANDB_MODE", raising=False)


@pytest.fixture
def server():
    with FakeWandb(api_key=KEY) as fake:
        fake.projects.add((fake.entity, PROJECT))
        yield fake


@pytest.fixture
def queue(server) -> Queue:
    return Queue(server)


@pytest.fixture
def settings(server, tmp_path) -> Settings:
    return Settings(wandb_api_key=KEY, wandb_base_url=server.url, state_dir=tmp_path / "state")


def config_with(server: FakeWandb, **wandb) -> dict:
    options = {"queue": "gpu-queue", "docker_image": "trainer:1.2", **wandb}
    return {
        **DEFAULTS,
        "launch": {**DEFAULTS["launch"], "backend": "wandb-launch", "wandb": options},
        "wandb": {**DEFAULTS["wandb"], "entity": server.entity, "project": PROJECT},
    }


def make_spec(tmp_path: Path, **fields) -> LaunchSpec:
    values = {
        "repo": "owner/exp",
        "branch": "exp-a",
        "commit": "c0ffee1234",
        "worktree": tmp_path,
        "command": "python main.py --lr 0.1",
        "log_path": tmp_path / "runs" / "r-1" / "output.log",
        "run_id": "r-1",
        **fields,
    }
    return LaunchSpec(**values)


def pushed_spec(server: FakeWandb) -> dict:
    [push] = [r for r in server.requests if r.operation == "pushToRunQueueByName"]
    return {**push.variables, "runSpec": json.loads(push.variables["runSpec"])}


def test_launch_pushes_the_run_onto_the_named_queue(server, queue, settings, tmp_path):
    handle = get_launcher("wandb-launch", settings, config_with(server)).launch(make_spec(tmp_path))

    push = pushed_spec(server)
    assert (push["queueName"], push["entityName"], push["projectName"]) == (
        "gpu-queue",
        server.entity,
        "model-registry",
    )
    spec = push["runSpec"]
    assert (spec["entity"], spec["project"], spec["run_id"]) == (server.entity, PROJECT, "r-1")
    assert spec["docker"] == {"docker_image": "trainer:1.2"}
    assert spec["overrides"]["entry_point"] == ["python", "main.py", "--lr", "0.1"]
    assert spec["git"] == {"version": "c0ffee1234"}
    assert handle == {
        **handle,
        "backend": "wandb-launch",
        "queue": "gpu-queue",
        "entity": server.entity,
        "project": PROJECT,
        "queued_run_id": "item-1",
        "run_id": "r-1",
    }


def test_setup_runs_before_the_command_in_the_entry_point(server, queue, settings, tmp_path):
    launcher = get_launcher("wandb-launch", settings, config_with(server))
    launcher.launch(make_spec(tmp_path, setup="pip install -r requirements.txt"))
    entry = pushed_spec(server)["runSpec"]["overrides"]["entry_point"]
    assert entry[:2] == ["sh", "-c"]
    assert entry[2].index("pip install -r requirements.txt") < entry[2].index("python main.py --lr 0.1")


def test_state_follows_the_queue_item_then_the_wandb_run(server, queue, settings, tmp_path):
    handle = get_launcher("wandb-launch", settings, config_with(server)).launch(make_spec(tmp_path))
    fresh = get_launcher("wandb-launch", settings)  # status and cancel need the handle only

    assert fresh.status(handle).state == "queued"
    run = server.add_run("r-1", project=PROJECT, state="running")
    queue.items["item-1"].update(state="CLAIMED", associatedRunId="r-1")
    assert fresh.status(handle).state == "running"
    for wandb_state, state in [
        ("pending", "queued"),
        ("finished", "finished"),
        ("failed", "failed"),
        ("crashed", "crashed"),
        ("killed", "killed"),
    ]:
        run.state = wandb_state
        status = fresh.status(handle)
        assert (status.state, status.ended) == (state, state not in ("queued", "running")), wandb_state
    run.state = "preempted"
    status = fresh.status(handle)
    assert status.state == "crashed" and "preempted" in status.reason


def test_a_queue_item_the_agent_could_not_start_is_a_failed_run(server, queue, settings, tmp_path):
    launcher = get_launcher("wandb-launch", settings, config_with(server))
    handle = launcher.launch(make_spec(tmp_path))
    queue.items["item-1"]["state"] = "FAILED"

    status = launcher.status(handle)

    assert status.state == "failed" and "could not start queue item item-1" in status.reason
    [read] = [r for r in server.requests if r.operation == "GetRunQueueItem"]
    assert read.variables == {
        "entityName": server.entity,
        "projectName": "model-registry",
        "runQueue": "gpu-queue",
        "itemId": "item-1",
    }


def test_cancel_stops_a_running_run_and_removes_a_queued_item(server, queue, settings, tmp_path):
    launcher = get_launcher("wandb-launch", settings, config_with(server))
    queued = launcher.launch(make_spec(tmp_path, run_id="r-1"))
    running = launcher.launch(make_spec(tmp_path, run_id="r-2"))
    run = server.add_run("r-2", project=PROJECT, state="running")

    launcher.cancel(running)
    launcher.cancel(queued)

    assert queue.stopped == [run.storage_id]
    assert list(queue.items) == ["item-2"]
    run.state = "finished"
    launcher.cancel(running)  # an ended run is left alone
    assert queue.stopped == [run.storage_id]


def test_a_run_whose_handle_was_never_stored_is_adopted_once_an_agent_starts_it(server, queue, settings, tmp_path):
    # What a bot SIGKILLed between W&B taking the item and storing the handle leaves: the run
    # recorded (queued, no handle), its item on the queue.
    store = StateStore.open(settings.state_dir)
    spec = make_spec(tmp_path)
    store.add_run(id=spec.run_id, repo="o/r", branch="exp-a", backend="wandb-launch", log_path=str(spec.log_path))
    handle = get_launcher("wandb-launch", settings, config_with(server)).launch(spec)

    waiting = refresh_run(store, settings, store.get_run(spec.run_id))
    assert (waiting.state, waiting.handle) == ("queued", {}), "no agent has started it: nothing to adopt yet"

    server.add_run("r-1", project=PROJECT, state="running")
    adopted = refresh_run(store, settings, store.get_run(spec.run_id))

    assert adopted.state == "running"
    assert {k: v for k, v in adopted.handle.items() if k not in ("started_at", "queued_run_id")} == {
        k: v for k, v in handle.items() if k not in ("started_at", "queued_run_id")
    }
    get_launcher("wandb-launch", settings).cancel(adopted.handle)
    assert queue.stopped == [server.find_run(server.entity, PROJECT, "r-1").storage_id]


def test_a_run_never_pushed_is_not_adopted(server, queue, settings, tmp_path):
    store = StateStore.open(settings.state_dir)
    record = store.add_run(
        id="r-1", repo="o/r", branch="exp-a", backend="wandb-launch", log_path=str(tmp_path / "r-1" / "output.log")
    )
    server.add_run("r-1", project=PROJECT, state="running")  # a run of that id, but the bot never asked for it

    assert refresh_run(store, settings, record).handle == {}


def test_adopting_without_a_key_says_so(server, queue, settings, tmp_path):
    store = StateStore.open(settings.state_dir)
    spec = make_spec(tmp_path)
    store.add_run(id=spec.run_id, repo="o/r", branch="exp-a", backend="wandb-launch", log_path=str(spec.log_path))
    get_launcher("wandb-launch", settings, config_with(server)).launch(spec)

    with pytest.raises(BadInput, match=NEEDS_KEY):
        refresh_run(store, Settings(state_dir=settings.state_dir), store.get_run(spec.run_id))


def test_a_job_source_is_checked_after_the_push(server, queue, settings, tmp_path):
    launcher = get_launcher(
        "wandb-launch", settings, config_with(server, docker_image=None, job=f"{server.entity}/{PROJECT}/train:latest")
    )
    with pytest.raises(OperationFailed, match="Unable to fetch job with name .*train:latest"):
        launcher.launch(make_spec(tmp_path))
    assert pushed_spec(server)["runSpec"]["job"] == f"{server.entity}/{PROJECT}/train:latest"


def test_without_a_key_or_a_source_it_is_bad_input(server, tmp_path):
    with pytest.raises(BadInput, match=NEEDS_KEY):
        get_launcher("wandb-launch", Settings(state_dir=tmp_path), config_with(server)).launch(make_spec(tmp_path))
    keyed = Settings(wandb_api_key=KEY, wandb_base_url=server.url, state_dir=tmp_path)
    with pytest.raises(BadInput, match="exactly one of launch.wandb.job"):
        get_launcher("wandb-launch", keyed, config_with(server, docker_image=None)).launch(make_spec(tmp_path))
    no_project = {**config_with(server), "wandb": DEFAULTS["wandb"]}
    with pytest.raises(BadInput, match="entity and project"):
        get_launcher("wandb-launch", keyed, no_project).launch(make_spec(tmp_path))
    assert not server.requests


def test_a_rejected_key_is_one_clean_line_without_the_key(server, tmp_path):
    wrong = "w" * 40
    settings = Settings(wandb_api_key=wrong, wandb_base_url=server.url, state_dir=tmp_path)
    with pytest.raises(OperationFailed) as caught:
        get_launcher("wandb-launch", settings, config_with(server)).launch(make_spec(tmp_path))
    assert wrong not in str(caught.value) and "\n" not in str(caught.value)
