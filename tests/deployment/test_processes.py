"""The PID supervisor: whole trees stopped by PID (even children in their own session), records on disk."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from fedchain.deployment.processes import ProcessRecord, ProcessSupervisor, pid_alive, process_table

# A parent that starts a child in its own session (as a SuperLink starts its SuperExec) and one in
# its own group, writes their PIDs, then waits; every one of them ignores nothing.
TREE = """
import os, subprocess, sys, time
a = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"], start_new_session=True)
b = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
open(sys.argv[1], "w").write(f"{a.pid} {b.pid}")
time.sleep(600)
"""

# A process that ignores SIGTERM: only SIGKILL ends it.
STUBBORN = """
import signal, sys, time
signal.signal(signal.SIGTERM, signal.SIG_IGN)
open(sys.argv[1], "w").write("ready")
time.sleep(600)
"""


def _wait_for(path: Path, timeout_s: float = 30.0) -> str:
    deadline = time.monotonic() + timeout_s
    while not path.exists() or not path.read_text():
        assert time.monotonic() < deadline, f"{path} never written"
        time.sleep(0.05)
    return path.read_text()


def test_stop_all_ends_the_whole_tree_including_own_session_children(tmp_path: Path) -> None:
    supervisor = ProcessSupervisor(tmp_path / "processes.json")
    record = supervisor.start(
        "tree", [sys.executable, "-c", TREE, str(tmp_path / "pids")], log_path=tmp_path / "tree.log"
    )
    child_session, child_group = (int(p) for p in _wait_for(tmp_path / "pids").split())
    table = process_table()
    assert table[record.pid].sid == record.pid  # its own session: Ctrl-C to the launcher cannot reach it first
    assert table[child_session].sid == child_session  # escaped the group, still found as a descendant
    assert set(supervisor.leftover_pids()) == {record.pid, child_session, child_group}
    killed = supervisor.stop_all(timeout_s=10)
    assert killed == []  # SIGTERM sufficed
    for pid in (record.pid, child_session, child_group):
        assert not pid_alive(pid)
    assert supervisor.records == [] and supervisor.leftover_pids() == []


def test_down_from_another_process_reads_the_records(tmp_path: Path) -> None:
    state = tmp_path / "processes.json"
    supervisor = ProcessSupervisor(state)
    record = supervisor.start(
        "tree", [sys.executable, "-c", TREE, str(tmp_path / "pids")], log_path=tmp_path / "tree.log"
    )
    child_session, _ = (int(p) for p in _wait_for(tmp_path / "pids").split())
    supervisor.remember_children()
    done = subprocess.run(
        [sys.executable, "-c", f"from fedchain.deployment.processes import *; from pathlib import Path; "
         f"ProcessSupervisor.load(Path({str(state)!r})).stop_all()"],
        timeout=60,
    )  # fmt: skip
    assert done.returncode == 0
    supervisor._reap([record.pid])
    assert not pid_alive(record.pid) and not pid_alive(child_session)
    assert ProcessSupervisor.load(state).records == []


def test_sigterm_ignored_means_sigkill(tmp_path: Path) -> None:
    supervisor = ProcessSupervisor()
    record = supervisor.start(
        "stubborn", [sys.executable, "-c", STUBBORN, str(tmp_path / "ready")], log_path=tmp_path / "s.log"
    )
    _wait_for(tmp_path / "ready")
    assert supervisor.stop_all(timeout_s=1.0) == [record.pid]
    assert not pid_alive(record.pid)


def test_a_reused_pid_is_left_alone(tmp_path: Path) -> None:
    bystander = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"], start_new_session=True)
    try:
        ticks = process_table()[bystander.pid].start_ticks
        # A record naming the bystander's PID but another start time: a process that died long ago.
        stale = ProcessRecord(name="old", pid=bystander.pid, start_ticks=ticks - 1, command=("x",), log_path="x")
        supervisor = ProcessSupervisor(records=[stale])
        supervisor.stop_all(timeout_s=1.0)
        assert pid_alive(bystander.pid, ticks)
    finally:
        bystander.kill()
        bystander.wait(timeout=10)


def test_a_missing_executable_is_a_clear_error(tmp_path: Path) -> None:
    from fedchain.errors import FedChainError

    with pytest.raises(FedChainError, match="cannot start ghost"):
        ProcessSupervisor().start("ghost", [str(tmp_path / "no-such-binary")], log_path=tmp_path / "g.log")
