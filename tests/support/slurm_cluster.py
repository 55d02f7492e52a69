"""A real single-node Slurm cluster for the tests: munged, slurmctld and slurmd from Debian.

Everything lives in one temporary folder (config, key, sockets, state, spool, logs), on free
ports, so it neither needs nor touches /etc/slurm or a cluster already running here, and two
test sessions on one machine do not meet. Two partitions share the node: `low` is preempted
(cancelled, state PREEMPTED) by `high`.

    cluster = SlurmCluster.start(tmp_dir)   # about a second
    env = {"SLURM_CONF": str(cluster.conf)}
    cluster.stop()                          # every daemon, by pid

`slurm_or_skip()` says whether the binaries are here; without them the tests skip with how
to install them, except under CI (`CI=true`), where a missing scheduler fails the suite.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.support.net import free_port

DAEMONS = ("munged", "mungekey", "slurmctld", "slurmd", "sbatch", "scontrol", "scancel", "sinfo", "squeue")
SBIN_DIRS = ("/usr/sbin", "/usr/local/sbin", "/sbin")
INSTALL_HINT = "bash .ci/install-slurm.sh (installs slurmctld, slurmd, slurm-client and munge)"
START_TIMEOUT_S = 30.0

SLURM_CONF = """\
ClusterName=fartest
SlurmctldHost={host}(127.0.0.1)
SlurmctldPort={ctld_port}
SlurmdPort={slurmd_port}
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket={munge_socket}
StateSaveLocation={root}/state
SlurmdSpoolDir={root}/spool
SlurmctldPidFile={root}/run/slurmctld.pid
SlurmdPidFile={root}/run/slurmd.pid
SlurmctldLogFile={root}/log/slurmctld.log
SlurmdLogFile={root}/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/filetxt
JobCompLoc={root}/log/jobcomp.txt
MpiDefault=none
SwitchType=switch/none
ReturnToService=2
MinJobAge=3600
KillWait=2
SchedulerType=sched/builtin
SchedulerParameters=batch_sched_delay=0
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
PreemptType=preempt/partition_prio
PreemptMode=CANCEL
NodeName={host} NodeAddr=127.0.0.1 CPUs={cpus} RealMemory=200 State=UNKNOWN
PartitionName=low Nodes={host} Default=YES MaxTime=INFINITE State=UP PriorityTier=1 PreemptMode=CANCEL
PartitionName=high Nodes={host} MaxTime=INFINITE State=UP PriorityTier=10 PreemptMode=OFF
"""


def find_binary(name: str) -> str | None:
    """`name` on PATH or in an sbin folder (a non-login root shell may lack /usr/sbin)."""
    return shutil.which(name) or shutil.which(name, path=os.pathsep.join(SBIN_DIRS))


def missing_binaries() -> list[str]:
    return [name for name in DAEMONS if find_binary(name) is None]


def slurm_or_skip() -> None:
    """Skip (or, under CI, fail) when Slurm or munge is not installed."""
    missing = missing_binaries()
    if not missing:
        return
    message = f"Slurm is not installed (missing: {', '.join(missing)}); to run these tests: {INSTALL_HINT}"
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(message, pytrace=False)
    pytest.skip(message)


def usable_cpus() -> int:
    """What nproc says: more than slurmd finds would drain the node."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


@dataclass
class SlurmCluster:
    root: Path
    host: str = field(default_factory=lambda: socket.gethostname().split(".")[0])
    procs: dict[str, subprocess.Popen] = field(default_factory=dict)

    @property
    def conf(self) -> Path:
        return self.root / "slurm.conf"

    @property
    def munge_socket(self) -> Path:
        return self.root / "munge" / "munge.socket"

    @property
    def env(self) -> dict[str, str]:
        """What a Slurm client needs to talk to this cluster, added to the caller's environment."""
        return {"SLURM_CONF": str(self.conf)}

    # -- start ------------------------------------------------------------------------

    @classmethod
    def start(cls, root: Path) -> SlurmCluster:
        cluster = cls(Path(root).resolve())
        try:
            cluster._prepare()
            cluster._start_munge()
            cluster._start_slurm()
        except BaseException:
            cluster.stop()
            raise
        return cluster

    def _prepare(self) -> None:
        for sub in ("state", "spool", "run", "log", "munge", "munge-etc"):
            (self.root / sub).mkdir(parents=True, exist_ok=True)
        os.chmod(self.root, 0o755)
        # munged refuses a socket or key folder that others may write to.
        os.chmod(self.root / "munge", 0o755)
        os.chmod(self.root / "munge-etc", 0o700)
        self.conf.write_text(
            SLURM_CONF.format(
                host=self.host,
                root=self.root,
                cpus=usable_cpus(),
                munge_socket=self.munge_socket,
                ctld_port=free_port(),
                slurmd_port=free_port(),
            )
        )

    def _start_munge(self) -> None:
        key = self.root / "munge-etc" / "munge.key"
        subprocess.run(
            [find_binary("mungekey"), "--create", "--force", f"--keyfile={key}"], check=True, capture_output=True
        )
        self._spawn(
            "munged",
            [
                find_binary("munged"),
                "--foreground",
                "--force",
                f"--socket={self.munge_socket}",
                f"--key-file={key}",
                f"--pid-file={self.root / 'run' / 'munged.pid'}",
                f"--log-file={self.root / 'log' / 'munged.log'}",
                f"--seed-file={self.root / 'munge-etc' / 'munged.seed'}",
            ],
        )
        self._wait(lambda: self.munge_socket.exists(), "munged")

    def _start_slurm(self) -> None:
        conf = str(self.conf)
        self._spawn("slurmctld", [find_binary("slurmctld"), "-D", "-c", "-i", "-f", conf])
        self._wait(lambda: "UP" in self._client("scontrol", "ping"), "slurmctld")
        self._spawn("slurmd", [find_binary("slurmd"), "-D", "-f", conf, "-N", self.host])
        self._wait(lambda: self._client("sinfo", "-h", "-N", "-o", "%t").split()[:1] == ["idle"], "slurmd")

    def _spawn(self, name: str, argv: list[str | None]) -> None:
        log = open(self.root / "log" / f"{name}.out", "ab")
        with log:
            self.procs[name] = subprocess.Popen(
                [str(a) for a in argv],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env={**os.environ, **self.env},
                start_new_session=True,
            )

    def _client(self, name: str, *args: str) -> str:
        out = subprocess.run(
            [find_binary(name), *args], capture_output=True, text=True, env={**os.environ, **self.env}, timeout=10
        )
        return out.stdout

    def _wait(self, ready, name: str) -> None:
        deadline = time.monotonic() + START_TIMEOUT_S
        while not ready():
            proc = self.procs.get(name)
            if proc is not None and proc.poll() is not None:
                raise RuntimeError(f"{name} exited with {proc.returncode}; see {self.root / 'log'}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"{name} not ready after {START_TIMEOUT_S:g}s; see {self.root / 'log'}")
            time.sleep(0.05)

    # -- use and stop -----------------------------------------------------------------

    def cancel_all(self, timeout: float = 15.0) -> None:
        """Cancel every job and wait for the queue to empty, so one test's leftovers do not
        hold the node for the next, nor outlive the cluster."""
        subprocess.run(
            [find_binary("scancel"), "--user=root"], capture_output=True, env={**os.environ, **self.env}, timeout=10
        )
        deadline = time.monotonic() + timeout
        while self._client("squeue", "-h", "-o", "%i").strip() and time.monotonic() < deadline:
            time.sleep(0.1)

    def stop(self) -> None:
        """Stop the daemons (slurmd first, munged last), each by its own pid, then any job
        process of this cluster still left (a slurmstepd outlives a stopped slurmd)."""
        if "slurmctld" in self.procs and self.procs["slurmctld"].poll() is None:
            self.cancel_all(timeout=5.0)
        for name in ("slurmd", "slurmctld", "munged"):
            proc = self.procs.pop(name, None)
            if proc is None or proc.poll() is not None:
                continue
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=5)
        for pid in self._leftover_pids():
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass

    def _leftover_pids(self) -> list[int]:
        """Processes whose environment names this cluster's config: its jobs and their stepds."""
        marker = f"SLURM_CONF={self.conf}".encode()
        found = []
        for proc in Path("/proc").iterdir():
            if not proc.name.isdigit() or int(proc.name) == os.getpid():
                continue
            try:
                environ = (proc / "environ").read_bytes().split(b"\0")
            except OSError:
                continue
            if marker in environ:
                found.append(int(proc.name))
        return found


@pytest.fixture(scope="session")
def slurm_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SlurmCluster]:
    """One real single-node Slurm cluster for the whole session."""
    slurm_or_skip()
    cluster = SlurmCluster.start(tmp_path_factory.mktemp("slurm"))
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture
def slurm(slurm_cluster: SlurmCluster, monkeypatch: pytest.MonkeyPatch) -> Iterator[SlurmCluster]:
    """The cluster, with SLURM_CONF set for the bot; whatever a test left queued is cancelled."""
    for name, value in slurm_cluster.env.items():
        monkeypatch.setenv(name, value)
    yield slurm_cluster
    slurm_cluster.cancel_all()
