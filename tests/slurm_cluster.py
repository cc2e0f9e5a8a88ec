"""A throw-away single-node SLURM cluster on localhost (munged, slurmctld, slurmd) for tests.

Everything lives under one folder: munge key/socket, slurm.conf, gres.conf, state and
spool folders, pid and log files. Clients find the cluster through `SLURM_CONF`
(see `Cluster.env`). Needs root (slurmd) and Debian's `slurm-wlm` + `munge`.

    python tests/slurm_cluster.py start /tmp/cluster   # prints the export line
    python tests/slurm_cluster.py stop /tmp/cluster
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

DAEMONS = ("slurmd", "slurmctld", "munged")


def missing_programs() -> list[str]:
    """The programs a local cluster needs that are not installed."""
    needed = ["munged", "slurmctld", "slurmd", "sbatch", "srun", "squeue", "scontrol", "scancel"]
    found = {
        p: shutil.which(p) or next((f"{d}/{p}" for d in ("/usr/sbin", "/sbin") if os.access(f"{d}/{p}", os.X_OK)), None)
        for p in needed
    }
    return [p for p, path in found.items() if path is None]


def _program(name: str) -> str:
    path = shutil.which(name)
    for folder in ("/usr/sbin", "/sbin"):
        if path is None and os.access(f"{folder}/{name}", os.X_OK):
            path = f"{folder}/{name}"
    if path is None:
        raise FileNotFoundError(name)
    return path


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def node_size() -> tuple[int, int]:
    """(CPUs, RealMemory in MB) of this machine, as slurmd -C reports them."""
    out = subprocess.run([_program("slurmd"), "-C"], capture_output=True, text=True, check=True).stdout
    fields = dict(item.split("=", 1) for item in out.split() if "=" in item)
    return int(fields["CPUs"]), int(fields["RealMemory"])


@dataclass
class Cluster:
    root: Path
    cpus: int
    memory_mb: int

    @property
    def conf(self) -> Path:
        return self.root / "slurm.conf"

    @property
    def env(self) -> dict[str, str]:
        return {"SLURM_CONF": str(self.conf), "PATH": f"{self.root / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}"}

    def pid_file(self, daemon: str) -> Path:
        return self.root / f"{daemon}.pid"

    def log(self, daemon: str) -> str:
        path = self.root / f"{daemon}.log"
        return path.read_text(errors="replace") if path.is_file() else ""


def start(
    root: str | os.PathLike[str], *, cpus: int | None = None, memory_mb: int | None = None, gpus: int = 1,
    min_job_age: int = 600, kill_wait: int = 30, timeout: float = 60,
) -> Cluster:
    """Start munged, slurmctld and slurmd under `root`; returns once the node is idle.

    `cpus`/`memory_mb` declare a node size other than this machine's (slurmd's
    `config_overrides`: jobs are scheduled against it, nothing is enforced). `gpus` (<= 6) fake
    GPUs (gres File=/dev/null) let `--gpus=N` jobs run. MinJobAge keeps finished jobs
    visible to `squeue`/`scontrol` (the squeue status command needs >= 3 x its interval).
    """
    root = Path(root).resolve()
    root.mkdir(parents=True, exist_ok=True)
    os.chmod(root, 0o700)
    for sub in ("state", "spool", "munge"):
        (root / sub).mkdir(exist_ok=True)
        os.chmod(root / sub, 0o700)
    real_cpus, real_memory = node_size()
    cpus, memory = cpus or real_cpus, memory_mb or max(1000, real_memory - 1000)
    overrides = "SlurmdParameters=config_overrides\n" if (cpus, memory) != (real_cpus, real_memory) else ""
    cluster = Cluster(root, cpus, memory)

    key, sock = root / "munge" / "munge.key", root / "munge" / "munge.socket"
    if not key.is_file():
        key.write_bytes(os.urandom(1024))
        os.chmod(key, 0o400)
    subprocess.run(
        [_program("munged"), "--force", f"--key-file={key}", f"--socket={sock}",
         f"--pid-file={cluster.pid_file('munged')}", f"--log-file={root / 'munged.log'}",
         f"--seed-file={root / 'munge' / 'munged.seed'}"],
        check=True, capture_output=True, text=True,
    )
    # The plugin's job step drops SLURM_* variables (SLURM_CONF too) before its `srun`; a real
    # cluster's srun finds /etc/slurm/slurm.conf, this one's finds the wrapper on PATH.
    (root / "bin").mkdir(exist_ok=True)
    srun = root / "bin" / "srun"
    srun.write_text(f"#!/bin/sh\nSLURM_CONF={root / 'slurm.conf'} exec {_program('srun')} \"$@\"\n")
    os.chmod(srun, 0o755)
    # fake GPUs: any existing character device will do as a gres file
    fake = ["/dev/null", "/dev/zero", "/dev/full", "/dev/urandom", "/dev/random", "/dev/tty"][:gpus]
    (root / "gres.conf").write_text("".join(f"NodeName=localhost Name=gpu File={f}\n" for f in fake))
    node = (f"NodeName=localhost NodeHostname={socket.gethostname()} NodeAddr=127.0.0.1 CPUs={cpus} "
            f"RealMemory={memory} Gres=gpu:{gpus} State=UNKNOWN")
    (root / "slurm.conf").write_text(f"""\
ClusterName=depthdif-test
SlurmctldHost=localhost
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket={sock}
SlurmctldPort={_free_port()}
SlurmdPort={_free_port()}
StateSaveLocation={root / 'state'}
SlurmdSpoolDir={root / 'spool'}
SlurmctldPidFile={cluster.pid_file('slurmctld')}
SlurmdPidFile={cluster.pid_file('slurmd')}
SlurmctldLogFile={root / 'slurmctld.log'}
SlurmdLogFile={root / 'slurmd.log'}
SlurmctldDebug=info
SlurmdDebug=info
MpiDefault=none
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
SchedulerType=sched/backfill
SchedulerParameters=sched_interval=2
ReturnToService=2
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
MinJobAge={min_job_age}
KillWait={kill_wait}
InactiveLimit=0
{overrides}GresTypes=gpu
{node}
PartitionName=cpu Nodes=localhost Default=YES MaxTime=INFINITE State=UP
PartitionName=gpu Nodes=localhost MaxTime=INFINITE State=UP
""")
    env = {**os.environ, **cluster.env}
    for daemon in ([_program("slurmctld"), "-c", "-f", str(cluster.conf)],
                   [_program("slurmd"), "-f", str(cluster.conf), "-N", "localhost"]):
        subprocess.run(daemon, check=True, env=env, capture_output=True, text=True)
    deadline = time.monotonic() + timeout
    state = ""
    while time.monotonic() < deadline:
        proc = subprocess.run(["sinfo", "-h", "-N", "-o", "%T"], capture_output=True, text=True, env=env)
        state = proc.stdout.strip()
        if proc.returncode == 0 and state.startswith("idle"):
            return cluster
        time.sleep(1)
    msg = (f"local SLURM node not idle after {timeout:.0f}s (state {state!r})\n"
           + cluster.log("slurmctld")[-3000:] + cluster.log("slurmd")[-3000:])
    stop(cluster)
    raise RuntimeError(msg)


def stop(cluster: Cluster | str | os.PathLike[str], timeout: float = 20) -> None:
    """Stop the daemons of a cluster by their pid files (slurmd, slurmctld, then munged)."""
    root = cluster.root if isinstance(cluster, Cluster) else Path(cluster)
    for daemon in DAEMONS:
        pid_file = root / f"{daemon}.pid"
        if not pid_file.is_file():
            continue
        try:
            pid = int(pid_file.read_text().split()[0])
            os.kill(pid, signal.SIGTERM)
        except (ValueError, IndexError, ProcessLookupError):
            continue
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                break
            time.sleep(0.2)
        else:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


if __name__ == "__main__":
    if len(sys.argv) != 3 or sys.argv[1] not in ("start", "stop"):
        raise SystemExit(__doc__)
    if sys.argv[1] == "start":
        c = start(sys.argv[2])
        print(f"export SLURM_CONF={c.conf}  # {c.cpus} CPUs, {c.memory_mb} MB")
    else:
        stop(sys.argv[2])
