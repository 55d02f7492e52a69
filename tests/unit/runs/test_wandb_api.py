"""WandbApiRunStore through the real wandb client, against the local fake W&B server."""

from __future__ import annotations

import time

import pytest

from bot.core.errors import BadInput, OperationFailed
from bot.runs.wandb_api import WandbApiRunStore
from tests.support.fake_wandb import FakeWandb, GraphQLError
from tests.support.net import free_port

KEY = "k3y" + "0123456789abcdef" * 2 + "zzzzz"  # 40 characters, like a real key
PROJECT = "exp"


@pytest.fixture(autouse=True)
def wandb_dirs(tmp_path, monkeypatch):
    for name in ("WANDB_DIR", "WANDB_CONFIG_DIR", "WANDB_CACHE_DIR", "WANDB_DATA_DIR"):
        monkeypatch.setenv(name, str(tmp_path / name.lower()))
    monkeypatch.setenv("WANDB_SILENT", "true")


@pytest.fixture
def server():
    with FakeWandb(api_key=KEY) as fake:
        yield fake


def make_store(server: FakeWandb, **kwargs) -> WandbApiRunStore:
    options = {"api_key": KEY, "base_url": server.url, "entity": server.entity, "project": PROJECT, "timeout": 10}
    return WandbApiRunStore(**{**options, **kwargs})


def test_runs_of_a_branch_come_from_a_config_filter_newest_first(server):
    server.add_run(
        "old",
        project=PROJECT,
        name="old-run",
        state="failed",
        commit="c1",
        config={"branch": "exp-a", "lr": 0.1},
        summary={"loss": 2.0},
        history=[{"loss": 3.0}, {"loss": 2.0}],
    )
    server.add_run("other", project=PROJECT, config={"branch": "main"})
    server.add_run("new", project=PROJECT, state="running", config={"branch": "exp-a"})

    runs = make_store(server).runs("exp-a")

    assert [r.id for r in runs] == ["new", "old"]
    (listing,) = server.requests_for("Runs")
    assert listing.variables["filters"] == '{"config.branch": "exp-a"}'
    assert listing.variables["order"] == "-created_at"
    old = runs[1]
    assert (old.name, old.state, old.commit, old.branch, old.source) == ("old-run", "failed", "c1", "exp-a", "wandb")
    assert old.config == {"branch": "exp-a", "lr": 0.1}
    assert old.summary["loss"] == 2.0 and old.summary["_step"] == 1
    assert old.steps == 2
    fake_old = server.find_run(server.entity, PROJECT, "old")
    assert old.created_at == fake_old.created_at and old.updated_at == fake_old.heartbeat_at
    assert old.url == f"{server.url}/{server.entity}/{PROJECT}/runs/old"


def test_runs_fall_back_to_commits_on_the_branch(server):
    server.add_run("a", project=PROJECT, commit="c1")
    server.add_run("b", project=PROJECT, commit="c2")
    server.add_run("c", project=PROJECT, commit="c3")
    asked = []

    def on_branch(commit: str, branch: str) -> bool:
        asked.append((commit, branch))
        return commit in ("c1", "c3")

    runs = make_store(server, commits_on_branch=on_branch).runs("exp-a")

    assert [r.id for r in runs] == ["c", "a"]
    assert sorted(asked) == [("c1", "exp-a"), ("c2", "exp-a"), ("c3", "exp-a")]
    filters = [r.variables["filters"] for r in server.requests_for("Runs")]
    assert filters == ['{"config.branch": "exp-a"}', "{}"]


def test_branch_key_is_configurable(server):
    server.add_run("a", project=PROJECT, config={"git_branch": "exp-a"})

    runs = make_store(server, branch_key="git_branch").runs("exp-a")

    assert [(r.id, r.branch) for r in runs] == [("a", "exp-a")]


def test_listing_is_bounded_by_max_runs(server):
    for i in range(5):
        server.add_run(f"r{i}", project=PROJECT)

    runs = make_store(server, max_runs=2).runs()

    assert [r.id for r in runs] == ["r4", "r3"]
    (listing,) = server.requests_for("Runs")
    assert listing.variables["perPage"] == 2


def test_get_reads_fresh_state(server):
    fake = server.add_run("r1", project=PROJECT, state="running")
    store = make_store(server)
    assert store.get("r1").state == "running"

    fake.state = "crashed"

    assert store.get("r1").state == "crashed"


def test_get_unknown_run_is_bad_input(server):
    server.add_project(PROJECT)
    with pytest.raises(BadInput, match="nope") as caught:
        make_store(server).get("nope")
    assert caught.value.exit_code == 2


def test_unknown_project_is_bad_input(server):
    with pytest.raises(BadInput, match="not find project"):
        make_store(server).runs()


def test_history_asks_only_for_the_last_steps(server):
    server.add_run("r1", project=PROJECT, history=[{"loss": float(i)} for i in range(1000)])
    store = make_store(server)

    rows = store.history(store.get("r1"), rows=5)

    assert [r["_step"] for r in rows] == [995, 996, 997, 998, 999]
    assert rows[-1]["loss"] == 999.0
    pages = server.requests_for("HistoryPage")
    assert pages and all(p.variables["minStep"] >= 995 for p in pages)
    assert not server.requests_for("RunFullHistory")


def test_history_sees_steps_logged_after_the_run_was_read(server):
    fake = server.add_run("r1", project=PROJECT, state="running", history=[{"loss": 1.0}] * 3)
    store = make_store(server)
    run = store.get("r1")
    fake.history.extend({"_step": step, "loss": 0.5} for step in range(3, 8))

    assert [r["_step"] for r in store.history(run, rows=2)] == [6, 7]


def test_history_of_a_run_without_steps_is_empty(server):
    server.add_run("r1", project=PROJECT)
    store = make_store(server)

    assert store.history(store.get("r1")) == []
    assert not server.requests_for("HistoryPage")


def test_log_tail_asks_for_the_last_lines_only(server):
    server.add_run("r1", project=PROJECT, log="\n".join(f"line {i}" for i in range(5000)))
    store = make_store(server)

    tail = store.log_tail(store.get("r1"), lines=20)

    assert tail == [f"line {i}" for i in range(4980, 5000)]
    assert [r.variables["last"] for r in server.requests_for("RunConsoleLogTail")] == [20]
    assert not server.requests_for("RunConsoleLogPage")
    assert not [r for r in server.requests if r.operation.startswith("GET")]


def test_log_tail_falls_back_to_a_range_read_of_output_log(server):
    server.add_run("r1", project=PROJECT, log="\n".join(f"log line number {i}" for i in range(40_000)))

    def no_log_lines(variables: dict) -> dict:
        raise GraphQLError("Cannot query field 'logLines' on type 'Run'")

    server.extra_operations["RunConsoleLogTail"] = no_log_lines
    store = make_store(server)

    tail = store.log_tail(store.get("r1"), lines=3)

    assert tail == [f"log line number {i}" for i in range(39_997, 40_000)]
    (download,) = [r for r in server.requests if r.operation.startswith("GET")]
    assert download.variables["range"] == "bytes=-262144"  # not the ~800 kB file


def test_log_tail_fallback_keeps_only_the_tail_when_range_is_ignored(server):
    server.add_run("r1", project=PROJECT, log="\n".join(f"log line number {i}" for i in range(40_000)))
    server.extra_operations["RunConsoleLogTail"] = lambda variables: (_ for _ in ()).throw(GraphQLError("no"))
    server.honour_ranges = False
    store = make_store(server)

    assert store.log_tail(store.get("r1"), lines=2) == ["log line number 39998", "log line number 39999"]


def test_listing_follows_pages(server):
    for i in range(55):
        server.add_run(f"r{i:02d}", project=PROJECT, config={"branch": "b"})

    runs = make_store(server, max_runs=60).runs("b")

    assert [r.id for r in runs] == [f"r{i:02d}" for i in reversed(range(55))]
    assert [r.variables["cursor"] for r in server.requests_for("Runs")] == [None, "50"]


def test_fake_samples_history_like_the_client_expects(server):
    import wandb

    server.add_run("r1", project=PROJECT, history=[{"loss": float(i), "acc": i / 100} for i in range(100)])
    api = wandb.Api(api_key=KEY, overrides={"base_url": server.url, "entity": server.entity}, timeout=10)

    rows = api.run(f"{server.entity}/{PROJECT}/r1").history(keys=["loss"], samples=10, pandas=False)

    assert len(rows) == 10 and rows[0] == {"_step": 0, "loss": 0.0} and rows[-1]["_step"] == 99


def test_delete_removes_the_run(server):
    fake = server.add_run("r1", project=PROJECT, state="failed")
    store = make_store(server)

    store.delete(store.get("r1"))

    assert server.find_run(server.entity, PROJECT, "r1") is None
    (deletion,) = server.requests_for("DeleteRun")
    assert deletion.variables["id"] == fake.storage_id


def test_server_down_is_a_clean_error_without_the_key():
    store = WandbApiRunStore(
        api_key=KEY, base_url=f"http://127.0.0.1:{free_port()}", entity="e", project=PROJECT, timeout=2
    )
    started = time.monotonic()

    with pytest.raises(OperationFailed) as caught:
        store.runs()

    assert time.monotonic() - started < 10
    message = str(caught.value)
    assert "did not answer in time" in message and "\n" not in message and KEY not in message


def test_slow_server_times_out(server):
    server.add_run("r1", project=PROJECT)
    store = make_store(server, timeout=2)
    store.runs()  # answers in time, with room to spare on a loaded machine
    server.delay = 5

    with pytest.raises(OperationFailed, match="did not answer in time"):
        store.runs()


def test_rejected_key_is_bad_input_and_not_echoed(server):
    wrong = "w" * 40
    store = WandbApiRunStore(api_key=wrong, base_url=server.url, entity="e", project=PROJECT, timeout=5)

    with pytest.raises(BadInput, match="rejected") as caught:
        store.runs()

    assert wrong not in str(caught.value)


def test_api_key_is_scrubbed_from_server_errors(server):
    def leaky(variables: dict) -> dict:
        raise GraphQLError(f"internal error for token {KEY}")

    server.extra_operations["Runs"] = leaky

    with pytest.raises(OperationFailed) as caught:
        make_store(server).runs()

    message = str(caught.value)
    assert KEY not in message and "***" in message and "\n" not in message


def test_missing_key_is_bad_input():
    with pytest.raises(BadInput, match="WANDB_API_KEY"):
        WandbApiRunStore(api_key="", base_url=None, entity="e", project=PROJECT).runs()


def test_fake_rejects_queries_it_does_not_know(server):
    answer = server.execute({"query": "query Mystery { mystery }"})

    assert answer["errors"][0]["message"] == "fake wandb: unsupported operation Mystery"


def test_first_history_is_one_request_for_the_first_rows(server):
    server.add_run("r", project=PROJECT, history=[{"loss": 4.6}, {"loss": 446.0}] + [{"loss": 15.0}] * 40)
    store = make_store(server)
    run = store.get("r")
    before = len(server.requests_for("HistoryPage"))
    assert [row["loss"] for row in store.first_history(run, 2)] == [4.6, 446.0]
    assert len(server.requests_for("HistoryPage")) - before == 1
