"""Hosts on one machine: a hub and one network namespace per member, joined by veth pairs.

A :class:`Topology` is what ``tests/deployment/test_netns.py`` and ``bench/bench_netns.py``
run a federation across: a namespace for the hub (SuperLink, coordinator, anvil) holding a
bridge at ``SUBNET.1``, and one namespace per member with a veth pair to that bridge at
``SUBNET.(10+i)``. Nothing is put on the machine's own interfaces: every link is created
inside the namespaces. :meth:`Topology.cut` and :meth:`Topology.restore` set a member's
link down and up (the member is cut off the network, its processes keep running).

The launcher's processes enter a host with a command prefix (``ip netns exec NS``,
:meth:`Topology.wrappers`); the calling thread itself enters the hub with :meth:`Topology.entered`
so the launcher's own calls (``flwr`` CLI, JSON-RPC, port checks) reach the hub's address.
Needs root (``CAP_SYS_ADMIN``, ``CAP_NET_ADMIN``) and iproute2; :func:`unavailable` says why not.

Example::

    with Topology.create(members=3) as topology, topology.entered():
        spec = DeploySpec(..., hub_host=topology.hub_ip, wrappers=topology.wrappers())
        ...
        topology.cut(2); topology.restore(2)
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import shutil
import signal
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, field

from fedchain.errors import DeploymentError

__all__ = ["Topology", "unavailable"]

_CLONE_NEWNET = 0x40000000


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(["ip", *args], capture_output=True, text=True, timeout=30, stdin=subprocess.DEVNULL)
    if check and done.returncode != 0:
        raise DeploymentError(f"`ip {' '.join(args)}` failed: {done.stderr.strip()}", component="netns")
    return done


def unavailable() -> str | None:
    """Why network namespaces cannot be made here (None: they can); tries to add and delete one."""
    if shutil.which("ip") is None:
        return "iproute2's `ip` is not installed"
    name = f"fcprobe{os.getpid()}"
    done = subprocess.run(["ip", "netns", "add", name], capture_output=True, text=True, timeout=30)
    if done.returncode != 0:
        return f"`ip netns add` failed (needs root / CAP_SYS_ADMIN): {done.stderr.strip()}"
    subprocess.run(["ip", "netns", "del", name], capture_output=True, timeout=30)
    return None


@dataclass
class Topology:
    """A hub namespace with a bridge and one namespace per member (see the module docstring).

    Attributes:
        members: number of member hosts.
        tag: unique part of every name (namespaces ``<tag>-hub``, ``<tag>-m<i>``).
        subnet: the first three octets of the private /24 used, e.g. ``"10.213.7"``.
        made: the namespaces created so far (removed by :meth:`close`).
    """

    members: int
    tag: str
    subnet: str
    made: list[str] = field(default_factory=list)

    @classmethod
    def create(cls, members: int, *, tag: str | None = None, subnet: str | None = None) -> Topology:
        """Create the namespaces and links; on any failure remove what was made and raise.

        Raises:
            DeploymentError: an ``ip`` command failed.
        """
        pid = os.getpid()
        topology = cls(members, tag or f"fc{pid % 100000}", subnet or f"10.213.{pid % 250}")
        try:
            topology._build()
        except BaseException:
            topology.close()
            raise
        return topology

    @property
    def hub(self) -> str:
        """The hub's namespace."""
        return f"{self.tag}-hub"

    def member(self, member_id: int) -> str:
        """Member ``member_id``'s namespace."""
        return f"{self.tag}-m{member_id}"

    @property
    def hub_ip(self) -> str:
        """The hub's address (its bridge)."""
        return f"{self.subnet}.1"

    def member_ip(self, member_id: int) -> str:
        """Member ``member_id``'s address."""
        return f"{self.subnet}.{10 + member_id}"

    def _build(self) -> None:
        for name in [self.hub, *map(self.member, range(self.members))]:
            _ip("netns", "add", name)
            self.made.append(name)
            _ip("-n", name, "link", "set", "lo", "up")
        _ip("-n", self.hub, "link", "add", "br0", "type", "bridge")
        _ip("-n", self.hub, "addr", "add", f"{self.hub_ip}/24", "dev", "br0")
        _ip("-n", self.hub, "link", "set", "br0", "up")
        for i in range(self.members):
            # Both ends are created inside the namespaces: nothing appears on the machine's own links.
            _ip(
                "link",
                "add",
                f"v{i}",
                "netns",
                self.hub,
                "type",
                "veth",
                "peer",
                "name",
                "eth0",
                "netns",
                self.member(i),
            )
            _ip("-n", self.hub, "link", "set", f"v{i}", "master", "br0")
            _ip("-n", self.hub, "link", "set", f"v{i}", "up")
            _ip("-n", self.member(i), "addr", "add", f"{self.member_ip(i)}/24", "dev", "eth0")
            _ip("-n", self.member(i), "link", "set", "eth0", "up")

    def wrappers(self) -> dict[str, tuple[str, ...]]:
        """``DeploySpec.wrappers``: each member's processes start inside its namespace."""
        return {f"member-{i}": ("ip", "netns", "exec", self.member(i)) for i in range(self.members)}

    def cut(self, member_id: int) -> None:
        """Set member ``member_id``'s link down: it can reach nothing, nothing reaches it."""
        _ip("-n", self.member(member_id), "link", "set", "eth0", "down")

    def restore(self, member_id: int) -> None:
        """Set member ``member_id``'s link up again."""
        _ip("-n", self.member(member_id), "link", "set", "eth0", "up")

    @contextlib.contextmanager
    def entered(self) -> Iterator[None]:
        """Run the calling thread (and the processes and threads it starts) in the hub's namespace."""
        libc = ctypes.CDLL(None, use_errno=True)
        own = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
        hub = os.open(f"/run/netns/{self.hub}", os.O_RDONLY)
        try:
            if libc.setns(hub, _CLONE_NEWNET) != 0:
                raise DeploymentError(f"setns into {self.hub}: {os.strerror(ctypes.get_errno())}", component="netns")
            try:
                yield
            finally:
                if libc.setns(own, _CLONE_NEWNET) != 0:
                    raise DeploymentError(
                        f"setns back to the machine's namespace: {os.strerror(ctypes.get_errno())}", component="netns"
                    )
        finally:
            os.close(hub)
            os.close(own)

    def pids(self) -> list[int]:
        """Processes still running in this topology's namespaces."""
        found: list[int] = []
        for name in self.made:
            done = _ip("netns", "pids", name, check=False)
            found += [int(pid) for pid in done.stdout.split() if pid.isdigit()]
        return found

    def close(self) -> None:
        """Kill what still runs inside the namespaces (only ours), then delete them and their links."""
        for pid in self.pids():
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        for name in reversed(self.made):
            _ip("netns", "del", name, check=False)
        self.made.clear()

    def __enter__(self) -> Topology:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
