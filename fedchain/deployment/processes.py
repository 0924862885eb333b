"""Processes the launcher starts: each in its own session, recorded by PID, stopped as a tree.

Every process is started with ``start_new_session=True`` (its PID is its process group and
session id), its output goes to a log file, and a record (name, PID, kernel start time, command,
log) is saved to a JSON state file after every start, so ``down`` in another process finds it.

Stopping is by PID only, never by name: for each recorded process the supervisor takes a
snapshot of its whole tree (children found through ``/proc``, including those that started their
own session, like the SuperExec a SuperLink spawns, and orphans still in its session), sends
SIGTERM to every process group in that snapshot, waits, then SIGKILLs what is left. A recorded
PID whose kernel start time differs is a reused PID and is left alone.

Example::

    supervisor = ProcessSupervisor(Path("runs/fed/deployment/processes.json"))
    supervisor.start("anvil", ["anvil", "--port", "8545"], log_path=Path("runs/fed/logs/anvil.log"))
    supervisor.stop_all()
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

from fedchain._io import atomic_write_json
from fedchain.errors import ProcessError

__all__ = ["ProcInfo", "ProcessRecord", "ProcessSupervisor", "process_table", "pid_alive"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ProcInfo:
    """One row of the process table (Linux ``/proc/<pid>/stat``).

    Attributes:
        pid: process id.
        ppid: parent process id.
        pgid: process group id.
        sid: session id.
        start_ticks: start time after boot in clock ticks (identifies a PID across reuse).
        zombie: the process has exited and waits to be reaped.
    """

    pid: int
    ppid: int
    pgid: int
    sid: int
    start_ticks: int
    zombie: bool


def _read_stat(pid: int) -> ProcInfo | None:
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # comm (field 2) is in parentheses and may hold spaces: split after the last ')'.
    fields = raw[raw.rfind(")") + 2 :].split()
    return ProcInfo(
        pid=pid,
        ppid=int(fields[1]),
        pgid=int(fields[2]),
        sid=int(fields[3]),
        start_ticks=int(fields[19]),
        zombie=fields[0] in ("Z", "X"),
    )


def process_table() -> dict[int, ProcInfo]:
    """Every visible process by PID (empty where ``/proc`` does not exist)."""
    table: dict[int, ProcInfo] = {}
    proc = Path("/proc")
    if not proc.is_dir():
        return table
    for entry in proc.iterdir():
        if entry.name.isdigit():
            info = _read_stat(int(entry.name))
            if info is not None:
                table[info.pid] = info
    return table


def pid_alive(pid: int, start_ticks: int | None = None) -> bool:
    """Whether ``pid`` runs (not a zombie) and, given ``start_ticks``, is the same process."""
    info = _read_stat(pid)
    if info is None:
        if not Path("/proc").is_dir():  # not Linux: fall back to signal 0
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                return False
            except PermissionError:
                return True
            return True
        return False
    if info.zombie:
        return False
    return start_ticks is None or info.start_ticks == start_ticks


@dataclass(frozen=True)
class ProcessRecord:
    """A process the supervisor started.

    Attributes:
        name: its role, e.g. ``"superlink"`` or ``"supernode-0"``.
        pid: its PID (also its process group and session id).
        start_ticks: its kernel start time, to tell it from a later process with the same PID.
        command: the command line (no secret is ever put on a command line).
        log_path: where its stdout and stderr go.
        children: ``[pid, start_ticks]`` of descendants seen so far (e.g. a SuperExec).
    """

    name: str
    pid: int
    start_ticks: int
    command: tuple[str, ...]
    log_path: str
    children: tuple[tuple[int, int], ...] = ()


@dataclass
class ProcessSupervisor:
    """Starts processes, records them, and stops them all by PID.

    Attributes:
        state_file: JSON file the records are saved to after every change (None: memory only).
        records: the processes started, in start order.
    """

    state_file: Path | None = None
    records: list[ProcessRecord] = field(default_factory=list)
    _popen: dict[int, subprocess.Popen[bytes]] = field(default_factory=dict, repr=False)

    @classmethod
    def load(cls, state_file: Path) -> ProcessSupervisor:
        """The supervisor whose records were saved in ``state_file`` (none if it is missing)."""
        supervisor = cls(state_file=state_file)
        if state_file.exists():
            data = json.loads(state_file.read_text("utf-8"))
            supervisor.records = [
                ProcessRecord(
                    name=str(item["name"]),
                    pid=int(item["pid"]),
                    start_ticks=int(item["start_ticks"]),
                    command=tuple(item["command"]),
                    log_path=str(item["log_path"]),
                    children=tuple((int(p), int(t)) for p, t in item.get("children", [])),
                )
                for item in data.get("processes", [])
            ]
        return supervisor

    def save(self) -> None:
        """Write the records to :attr:`state_file` (atomically)."""
        if self.state_file is not None:
            atomic_write_json(self.state_file, {"processes": [asdict(record) for record in self.records]})

    # ------------------------------------------------------------------------------- starting
    def start(
        self,
        name: str,
        command: Sequence[str],
        *,
        log_path: Path,
        env: Mapping[str, str] | None = None,
        cwd: Path | None = None,
    ) -> ProcessRecord:
        """Start ``command`` in a new session with output to ``log_path``; record it.

        Raises:
            ProcessError: the executable cannot be started.
        """
        log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(log_path, "ab") as log_file:
            try:
                process = subprocess.Popen(
                    list(command),
                    stdin=subprocess.DEVNULL,
                    stdout=log_file,
                    stderr=subprocess.STDOUT,
                    env=dict(env) if env is not None else None,
                    cwd=cwd,
                    start_new_session=True,
                )
            except OSError as exc:
                raise ProcessError(name, f"cannot start {name} ({command[0]}): {exc}") from exc
        info = _read_stat(process.pid)
        record = ProcessRecord(
            name=name,
            pid=process.pid,
            start_ticks=info.start_ticks if info else 0,
            command=tuple(command),
            log_path=str(log_path),
        )
        self._popen[process.pid] = process
        self.records.append(record)
        self.save()
        log.info("started %s (pid %d), log %s", name, process.pid, log_path)
        return record

    def exit_code(self, record: ProcessRecord) -> int | None:
        """The exit status of a process this supervisor started and that ended; None while it runs."""
        process = self._popen.get(record.pid)
        if process is not None:
            return process.poll()
        return None if pid_alive(record.pid, record.start_ticks) else -1

    def is_running(self, record: ProcessRecord) -> bool:
        """Whether the recorded process still runs."""
        process = self._popen.get(record.pid)
        if process is not None:
            return process.poll() is None
        return pid_alive(record.pid, record.start_ticks)

    def remember_children(self) -> None:
        """Record the current descendants of every running process (e.g. a SuperLink's SuperExec)."""
        table = process_table()
        updated = []
        for record in self.records:
            known = dict(record.children)
            for pid in _tree(record.pid, table):
                if pid != record.pid:
                    known[pid] = table[pid].start_ticks
            updated.append(ProcessRecord(**{**asdict(record), "children": tuple(sorted(known.items()))}))
        self.records = updated
        self.save()

    # ------------------------------------------------------------------------------- stopping
    def stop(self, record: ProcessRecord, *, timeout_s: float = 10.0) -> list[int]:
        """Stop one recorded process and its whole tree; return the PIDs that needed SIGKILL."""
        killed = _stop_trees([record], timeout_s)
        self._reap([record.pid])
        self.records = [r for r in self.records if r.pid != record.pid]
        self.save()
        return killed

    def stop_all(self, *, timeout_s: float = 10.0) -> list[int]:
        """Stop every recorded process tree, last started first; return the PIDs SIGKILLed.

        Idempotent: processes already gone are skipped; the records are cleared afterwards (a
        supervisor that recorded nothing leaves its state file alone).
        """
        if not self.records:
            return []
        killed = _stop_trees(list(reversed(self.records)), timeout_s)
        self._reap([record.pid for record in self.records])
        self.records = []
        self.save()
        return killed

    def leftover_pids(self) -> list[int]:
        """PIDs of recorded processes or their descendants that still run (empty after stop_all)."""
        return sorted(_targets(self.records, process_table()))

    def _reap(self, pids: Sequence[int]) -> None:
        """Collect the exit status of stopped processes this supervisor started (no zombies)."""
        for pid in pids:
            process = self._popen.get(pid)
            if process is None:
                continue
            try:
                process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                log.warning("pid %d did not exit", pid)
                continue
            del self._popen[pid]


def _tree(root: int, table: Mapping[int, ProcInfo]) -> set[int]:
    """``root`` and every descendant, plus processes still in its session or group (orphans)."""
    children: dict[int, list[int]] = {}
    for info in table.values():
        children.setdefault(info.ppid, []).append(info.pid)
    found = {root} if root in table else set()
    stack = [root]
    while stack:
        for child in children.get(stack.pop(), []):
            if child not in found:
                found.add(child)
                stack.append(child)
    for info in table.values():
        if info.sid == root or info.pgid == root:
            found.add(info.pid)
    return found


def _targets(records: Sequence[ProcessRecord], table: Mapping[int, ProcInfo]) -> set[int]:
    """Live processes belonging to ``records``: verified roots, their trees, remembered children.

    When a recorded process is gone, processes left in its session or group (orphans) are still
    ours: the kernel does not reuse a PID while it names a live session or group. If the PID
    now belongs to another process (different start time), nothing is taken for that record.
    """
    targets: set[int] = set()
    for record in records:
        root = table.get(record.pid)
        if root is None:
            targets |= {info.pid for info in table.values() if record.pid in (info.sid, info.pgid)}
        elif record.start_ticks == 0 or root.start_ticks == record.start_ticks:
            targets |= _tree(record.pid, table)
        for pid, ticks in record.children:
            child = table.get(pid)
            if child is not None and child.start_ticks == ticks:
                targets |= _tree(pid, table)
    return {pid for pid in targets if not table[pid].zombie}


def _signal_all(pids: set[int], table: Mapping[int, ProcInfo], signum: int) -> None:
    own_group = os.getpgrp()
    groups = {table[pid].pgid for pid in pids if pid in table}
    for pgid in groups:
        # Only groups led by one of our targets (never our own group, never init's).
        if pgid > 1 and pgid != own_group and pgid in pids:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pgid, signum)
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signum)


def _stop_trees(records: Sequence[ProcessRecord], timeout_s: float) -> list[int]:
    table = process_table()
    if not table:  # no /proc: signal the recorded groups only
        for record in records:
            for signum in (signal.SIGTERM, signal.SIGKILL):
                try:
                    os.killpg(record.pid, signum)
                except (ProcessLookupError, PermissionError):
                    break
                time.sleep(min(timeout_s, 2.0))
        return []
    targets = _targets(records, table)
    if not targets:
        return []
    log.info("stopping %d processes", len(targets))
    _signal_all(targets, table, signal.SIGTERM)
    remaining = _wait_gone(targets, timeout_s)
    if remaining:
        log.warning("SIGKILL to %d processes that ignored SIGTERM: %s", len(remaining), sorted(remaining))
        _signal_all(remaining, process_table(), signal.SIGKILL)
        still = _wait_gone(remaining, 5.0)
        if still:
            raise ProcessError(f"pids {sorted(still)}", f"processes {sorted(still)} survived SIGKILL")
    return sorted(remaining)


def _wait_gone(pids: set[int], timeout_s: float) -> set[int]:
    deadline = time.monotonic() + timeout_s
    remaining = set(pids)
    while remaining:
        table = process_table()
        remaining = {pid for pid in remaining if pid in table and not table[pid].zombie}
        if not remaining or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    return remaining
