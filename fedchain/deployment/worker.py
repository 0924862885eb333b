r"""The member worker: one long-lived process answering every ClientApp message of its SuperNode.

Flower 1.42's deployment runtime answers each message in a fresh ``flwr-clientapp`` process
(its SuperExec acquires the task, starts the process; the process pulls one message, installs
the app bundle, imports the ClientApp, answers, exits). For fedchain that is about 5 s of
start-up per message (torch, Opacus, TenSEAL, web3, the member's wallet, data and CKKS context).
The worker does the same work with Flower's own building blocks, in one process started with
the SuperNode (``flower-supernode --isolation process``), so imports and the member's state
(:class:`clients.node.MemberNode`: keys, CKKS context, data, model template) stay warm:

1. poll the SuperNode's Runtime API (loopback) with ``AcquireTask`` for ClientApp tasks, signed
   with the SuperNode's SuperExec secret (``--superexec-auth-secret-file``) when it has one;
2. per task, with the task's token (as ``flwr-clientapp`` does): send task heartbeats,
   ``pull_task_input`` (message, context, run, bundle), run the ClientApp, push the reply
   (``push_message``) and the final context and status (``push_task_output``);
3. run the member's own ClientApp, never the app bundle's code. The coordinator builds the
   bundle every task input carries; ``flwr-clientapp`` installs it and imports the module its
   ``[tool.flwr.app.components] clientapp`` names, so whoever builds it runs code next to the
   member's data, wallet and CKKS secret key. The worker reads that reference from the bundle
   without installing it, refuses a task whose bundle names another ClientApp than the member's
   (``--client-app``, default ``clients.client_app:app``: :class:`BundleRefusedError`, answered with
   Flower's ``LOAD_CLIENT_APP_EXCEPTION``), and imports the member's ClientApp from the member's
   installed code (``--app-dir``: a local app directory of the member's own, put on ``sys.path``
   at start). No bundle file is written or imported.

An exception in a message is answered with a Flower error reply (the code and reason
``flwr-clientapp`` would send) and the worker goes on. It exits when its SuperNode's process
ends (``--supernode-pid``), when the Runtime API stays unreachable (``--give-up-s``), or on
SIGTERM / SIGINT. Polling backs off with idle time (:class:`Backoff`): fast while a run goes on,
at most ``--max-poll-s`` when idle. With ``--wake-stdin`` (how
:mod:`fedchain.deployment.supernode` starts it) the worker does not poll while idle: its SuperNode
writes a byte to the worker's stdin each time it has stored a message, and the worker asks for
the task at once; it still asks every ``--max-poll-s`` in case a wake-up is lost. Each poll is an
HTTP call that costs both processes CPU: on 2 cores, 3 workers polling every 20-50 ms took
about a tenth of the machine from the round's own work (docs/architecture.md).

Example (one member; the launcher does this for each SuperNode)::

    flower-supernode --isolation process --superexec-auth-secret-file secret ... --port 9094 &
    python -m fedchain.deployment.worker --runtime-api-address 127.0.0.1:9094 \
        --superexec-auth-secret-file secret --supernode-pid $! --client-app clients.client_app:app
"""

from __future__ import annotations

import argparse
import ipaddress
import logging
import os
import select
import signal
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any

from fedchain.deployment.object_pulls import PULL_CAP_S, PULL_FIRST_S
from fedchain.errors import ConfigError

__all__ = [
    "DEFAULT_CLIENT_APP",
    "Backoff",
    "BundleRefusedError",
    "MemberWorker",
    "WorkerStats",
    "bundle_clientapp",
    "load_installed_client_app",
    "main",
    "pull_task_input",
]

log = logging.getLogger(__name__)

#: The ClientApp a member runs unless its operator names another: fedchain's member node, as installed.
DEFAULT_CLIENT_APP = "clients.client_app:app"
#: The Runtime API method a SuperNode with a SuperExec secret only answers when signed.
_ACQUIRE_METHOD = "/flwr.proto.Runtime/AcquireTask"


@dataclass
class Backoff:
    """A poll interval that grows with idle time: ``fast_s + ratio * idle``, at most ``max_s``.

    Right after work (:meth:`busy`) it polls every ``fast_s``; the wait it adds to a message that
    arrives after ``t`` idle seconds is at most ``fast_s + ratio * t`` (5 % of the wait by default).

    Example:
        >>> backoff = Backoff(fast_s=0.02, ratio=0.05, max_s=1.0)
        >>> backoff.interval() < 0.03
        True
        >>> backoff.interval(idle_s=100.0)
        1.0
    """

    fast_s: float = 0.02
    ratio: float = 0.05
    max_s: float = 1.0
    _since: float = field(default_factory=time.monotonic, repr=False)

    def busy(self) -> None:
        """Note activity now: the next polls are fast."""
        self._since = time.monotonic()

    def interval(self, idle_s: float | None = None) -> float:
        """Seconds to wait before the next poll (``idle_s``: override the time since :meth:`busy`)."""
        idle = time.monotonic() - self._since if idle_s is None else idle_s
        return min(self.max_s, self.fast_s + self.ratio * max(0.0, idle))


@dataclass
class WorkerStats:
    """What a worker did (logged when it exits; ``tasks`` also in each reply's log line)."""

    tasks: int = 0
    failed: int = 0
    loads: int = 0
    #: Seconds from acquiring each task to calling the ClientApp (the worker's per-message overhead).
    overhead_s: list[float] = field(default_factory=list)


class MemberWorker:
    """Answer a SuperNode's ClientApp tasks in this process (see the module docstring).

    Args:
        runtime_api_address: ``host:port`` of the SuperNode's Runtime API (loopback, unless
            ``root_certificates`` is given: the API then runs with TLS).
        auth_secret: the SuperNode's SuperExec secret (signs ``AcquireTask``); None if it has none.
        supernode_pid: exit when this process ends (None: do not watch one).
        backoff: the ``AcquireTask`` polling schedule.
        give_up_s: exit after the Runtime API was unreachable this long.
        root_certificates: PEM CA of a Runtime API served with TLS.
        client_app: the member's ClientApp (``module:attribute``, importable from its installed
            code); a task whose app bundle names another is refused.
        wake_fd: a readable file descriptor the SuperNode writes a byte to when a task is ready
            (None: poll at ``backoff``'s pace); the worker then polls only every ``backoff.max_s``.
    """

    def __init__(
        self,
        runtime_api_address: str,
        *,
        auth_secret: bytes | None = None,
        supernode_pid: int | None = None,
        backoff: Backoff | None = None,
        give_up_s: float = 30.0,
        root_certificates: bytes | None = None,
        client_app: str = DEFAULT_CLIENT_APP,
        wake_fd: int | None = None,
    ) -> None:
        if root_certificates is None:
            _require_loopback(runtime_api_address)
        self.address = runtime_api_address
        self.auth_secret = auth_secret
        self.supernode_pid = supernode_pid
        self.backoff = backoff or Backoff()
        self.give_up_s = give_up_s
        self.root_certificates = root_certificates
        self.client_app = client_app
        self.wake_fd = wake_fd
        self.stats = WorkerStats()
        self._stop = threading.Event()
        self._app: Any = None  # the member's ClientApp, once loaded
        self._acquire_client: Any = None

    # ------------------------------------------------------------------------------ loop
    def stop(self) -> None:
        """Ask the loop to end (after the task in progress)."""
        self._stop.set()

    def run(self) -> int:
        """Acquire and answer tasks until stopped; return the exit status (0: stopped, 1: SuperNode gone)."""
        if self.supernode_pid is not None:
            threading.Thread(target=self._watch_supernode, name="watch-supernode", daemon=True).start()
        unreachable_since: float | None = None
        while not self._stop.is_set():
            try:
                _, token = self._acquire()
            except Exception as exc:  # the SuperNode is restarting or gone
                now = time.monotonic()
                unreachable_since = unreachable_since or now
                if now - unreachable_since > self.give_up_s:
                    log.error("the SuperNode's Runtime API at %s is unreachable: %s", self.address, exc)
                    return 1
                self._stop.wait(0.5)
                continue
            unreachable_since = None
            if token:
                self.backoff.busy()
                self.run_task(token, acquired=time.perf_counter())
                self.backoff.busy()
            else:
                self._idle()
        self._close()
        return 1 if self.supernode_pid is not None and not _pid_alive(self.supernode_pid) else 0

    def _idle(self) -> None:
        """Wait before the next poll: for a wake-up byte (at most ``backoff.max_s``), or the backoff interval."""
        if self.wake_fd is None:
            self._stop.wait(self.backoff.interval())
            return
        try:
            ready, _, _ = select.select([self.wake_fd], [], [], self.backoff.max_s)
            if ready and not os.read(self.wake_fd, 4096):  # all pending wake-ups at once
                raise OSError("the SuperNode closed the wake-up pipe")
        except OSError as exc:  # no more wake-ups: poll at the backoff's pace from now on
            log.info("wake-ups stopped (%s): polling instead", exc)
            self.wake_fd = None

    def _acquire(self) -> tuple[Any, str]:
        from flwr.proto.runtime_pb2 import AcquireTaskRequest
        from flwr.supercore.constant import TaskType

        if self._acquire_client is None:
            from flwr.supercore.interceptors import RuntimeVersionHttpInterceptor, SuperExecAuthHttpInterceptor

            interceptors: list[Any] = [RuntimeVersionHttpInterceptor(component_name="SuperExec")]
            if self.auth_secret:
                interceptors.append(
                    SuperExecAuthHttpInterceptor(master_secret=self.auth_secret, protected_methods={_ACQUIRE_METHOD})
                )
            self._acquire_client = self._client(interceptors)
        res = self._acquire_client.AcquireTask(AcquireTaskRequest(supported_task_types=[TaskType.CLIENT_APP.value]))
        if res.HasField("task") and res.token:
            return res.task, str(res.token)
        return None, ""

    def _client(self, interceptors: list[Any]) -> Any:
        from flwr.supercore.runtime import RuntimeHttpClient

        # No retry invoker: Flower's signals SIGINT to its own process on a 401 (an expired
        # token), which would end the worker; here a failed call fails only its task.
        return RuntimeHttpClient.from_server_address(
            server_address=self.address,
            insecure=self.root_certificates is None,
            root_certificates=self.root_certificates,
            interceptors=interceptors,
        )

    def _watch_supernode(self) -> None:
        assert self.supernode_pid is not None
        while not self._stop.wait(0.2):
            if not _pid_alive(self.supernode_pid):
                log.warning("SuperNode process %d ended: the worker stops", self.supernode_pid)
                self._stop.set()
                os.kill(os.getpid(), signal.SIGTERM)  # also ends a task in progress
                return

    def _close(self) -> None:
        if self._acquire_client is not None:
            self._acquire_client.close()
            self._acquire_client = None
        log.info(
            "worker %d: %d task(s), %d failed, %d app load(s)",
            os.getpid(),
            self.stats.tasks,
            self.stats.failed,
            self.stats.loads,
        )

    # ------------------------------------------------------------------------------ a task
    def run_task(self, token: str, *, acquired: float | None = None) -> str:
        """Answer the task ``token`` stands for, as ``flwr-clientapp`` would; return its sub-status.

        A ClientApp that raises is answered with Flower's error reply (``CLIENT_APP_RAISED_EXCEPTION``,
        or ``LOAD_CLIENT_APP_EXCEPTION`` when it cannot be loaded); the worker goes on.
        """
        from flwr.app import Message
        from flwr.app.error import Error
        from flwr.clientapp.client_app import LoadClientAppError
        from flwr.common.constant import ErrorCode, SubStatus
        from flwr.supercore.heartbeat import HeartbeatSender
        from flwr.supercore.interceptors import RuntimeTokenHttpInterceptor, RuntimeVersionHttpInterceptor
        from flwr.supernode.runtime.run_clientapp import push_message, push_task_output

        acquired = time.perf_counter() if acquired is None else acquired
        client = self._client(
            [RuntimeVersionHttpInterceptor(component_name="flwr-clientapp"), RuntimeTokenHttpInterceptor(token)]
        )
        heartbeat = HeartbeatSender(_heartbeat_fn(client))
        heartbeat.start()
        message = reply = context = None
        sub_status, details = SubStatus.FAILED, "ClientApp task failed due to unknown reason"
        self.stats.tasks += 1
        try:
            pulled = time.perf_counter()
            message, context, run, fab = pull_task_input(client)
            pulled = time.perf_counter() - pulled
            app = self._client_app(run, fab)
            self.stats.overhead_s.append(time.perf_counter() - acquired)
            reply = app(message=message, context=context)
            sub_status, details = SubStatus.COMPLETED, ""
            log.info(
                "task %d (%s): answered in %.3f s, %.3f s of it before the ClientApp (%.3f s pulling its input)",
                self.stats.tasks,
                message.metadata.message_type,
                time.perf_counter() - acquired,
                self.stats.overhead_s[-1],
                pulled,
            )
        except Exception as exc:
            self.stats.failed += 1
            code, reason = ErrorCode.CLIENT_APP_RAISED_EXCEPTION, f"{type(exc)}:<'{exc}'>"
            if isinstance(exc, LoadClientAppError | BundleRefusedError):
                code = ErrorCode.LOAD_CLIENT_APP_EXCEPTION
                reason = "An exception was raised when attempting to load `ClientApp`"
            log.error("ClientApp raised an exception (task %d): %s", self.stats.tasks, exc, exc_info=exc)
            details = reason
            if message is not None:
                reply = Message(Error(code=code, reason=reason), reply_to=message)
        finally:
            try:
                if reply is not None and context is not None:
                    push_message(client, reply, context)
            except Exception as exc:
                log.error("the reply could not be pushed to the SuperNode: %s", exc)
            try:
                push_task_output(client=client, context=context, sub_status=sub_status, details=details)
            except Exception as exc:  # e.g. the SuperNode failed the task meanwhile (its run stopped)
                log.error("the task's end could not be reported to the SuperNode: %s", exc)
            heartbeat.stop()
            client.close()
        return str(sub_status)

    def _client_app(self, run: Any, fab: Any) -> Any:
        """The member's ClientApp if the task's bundle names it (else :class:`BundleRefusedError`); no bundle code."""
        declared = bundle_clientapp(fab.content)
        if declared != self.client_app:
            raise BundleRefusedError(
                f"the app bundle of run {run.run_id} ({fab.hash_str[:12]}...) asks for ClientApp {declared!r}; "
                f"this node runs only its own {self.client_app!r} from its installed code. The coordinator must "
                "run the federation's app; a member that agreed to another app sets the worker's --client-app"
            )
        if self._app is None:
            self._app = load_installed_client_app(self.client_app)
            self.stats.loads += 1
        return self._app


class BundleRefusedError(Exception):
    """A task's app bundle names another ClientApp than the member runs, or cannot be read."""


def bundle_clientapp(content: bytes) -> str:
    r"""The ClientApp reference an app bundle declares (``[tool.flwr.app.components] clientapp``), read in memory.

    Nothing of the bundle is written to disk or imported.

    Example:
        >>> import io, zipfile
        >>> buffer = io.BytesIO()
        >>> with zipfile.ZipFile(buffer, "w") as archive:
        ...     archive.writestr("pyproject.toml", '[tool.flwr.app.components]\nclientapp = "a.b:app"\n')
        >>> bundle_clientapp(buffer.getvalue())
        'a.b:app'
    """
    import io
    import tomllib
    import zipfile

    from fedchain.deployment.flower import declared_clientapp

    try:
        with zipfile.ZipFile(io.BytesIO(content)) as archive:
            reference = declared_clientapp(tomllib.loads(archive.read("pyproject.toml").decode("utf-8")))
    except (zipfile.BadZipFile, KeyError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise BundleRefusedError(f"the app bundle declares no ClientApp this node can read ({exc!r})") from None
    if reference is None:
        raise BundleRefusedError("the app bundle declares no ClientApp ([tool.flwr.app.components] clientapp)")
    if not isinstance(reference, str):
        raise BundleRefusedError(f"the app bundle's clientapp reference is not a string: {reference!r}")
    return reference


def load_installed_client_app(reference: str) -> Any:
    """Import the ClientApp ``module:attribute`` from this process's installed code (``sys.path`` as it is).

    Example:
        >>> type(load_installed_client_app("clients.client_app:app")).__name__
        'ClientApp'
    """
    import importlib

    from flwr.clientapp import ClientApp

    module_name, _, attribute = reference.partition(":")
    if not module_name or not attribute:
        raise ConfigError("client-app", "a ClientApp reference 'module:attribute'", reference)
    app = getattr(importlib.import_module(module_name), attribute, None)
    if not isinstance(app, ClientApp):
        raise ConfigError("client-app", f"{module_name}.{attribute} to be a flwr ClientApp", type(app).__name__)
    return app


def pull_task_input(client: Any) -> tuple[Any, Any, Any, Any]:
    """Flower's ``pull_task_input`` (message, context, run, bundle), polling for the message's objects faster.

    The SuperNode creates the task before it has pulled the message's objects from the SuperLink;
    a ``flwr-clientapp`` process starts too slowly to notice, but a warm worker asks at once, and
    Flower retries an object not there yet after 1 s (``PULL_INITIAL_BACKOFF``), then 2, 4... Here
    it retries after 10 ms, doubling up to 0.5 s (:mod:`fedchain.deployment.object_pulls`).
    Everything else is Flower's code path.
    """
    from flwr.app import Message
    from flwr.common.serde import context_from_proto, fab_from_proto, run_from_proto
    from flwr.proto.node_pb2 import Node
    from flwr.proto.runtime_pb2 import PullAppMessagesRequest, PullTaskInputRequest
    from flwr.supercore.inflatable.inflatable_protobuf_utils import (
        make_confirm_message_received_fn_protobuf,
        make_pull_object_fn_protobuf,
    )
    from flwr.supercore.inflatable.inflatable_utils import pull_and_inflate_object_from_tree
    from flwr.supercore.task_identity import TaskIdentity

    res = client.PullTaskInput(PullTaskInputRequest())
    TaskIdentity.task_id = res.task_id
    TaskIdentity.run_id = res.run.run_id
    TaskIdentity.node_id = res.context.node_id
    context = context_from_proto(res.context)
    run = run_from_proto(res.run)
    fab = fab_from_proto(res.fab)
    pulled = client.PullMessages(PullAppMessagesRequest())
    if not pulled.messages_list:
        raise RuntimeError("No messages received from Runtime API")
    node = Node(node_id=context.node_id)
    tree = pulled.message_object_trees[0]
    message = pull_and_inflate_object_from_tree(
        tree,
        make_pull_object_fn_protobuf(client.PullObject, node, context.run_id),
        make_confirm_message_received_fn_protobuf(client.ConfirmMessageReceived, node, context.run_id),
        return_type=Message,
        initial_backoff=PULL_FIRST_S,
        backoff_cap=PULL_CAP_S,
        max_tries_per_object=None,  # bounded by Flower's PULL_MAX_TIME (2 h), as object_pulls does
    )
    message.metadata.__dict__["_message_id"] = tree.object_id  # as Flower sets it
    return message, context, run, fab


def _heartbeat_fn(client: Any) -> Callable[[], bool]:
    """Task heartbeats; unlike Flower's, a refused one does not signal this process (the task fails alone)."""
    import httpx
    from flwr.proto.runtime_pb2 import SendTaskHeartbeatRequest

    request = SendTaskHeartbeatRequest()

    def beat() -> bool:
        try:
            client.SendTaskHeartbeat(request)
        except httpx.HTTPError:
            return False
        return True

    return beat


def _pid_alive(pid: int) -> bool:
    """Whether ``pid`` runs: a zombie (killed, not yet reaped) does not; nor does a parent we were orphaned by."""
    if pid == _PARENT and os.getppid() != pid:
        return False
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return fields[0] not in ("Z", "X")
    except FileNotFoundError:
        return False
    except (OSError, IndexError):  # no /proc: ask the kernel
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True


#: This process's parent when it started (a SuperNode that started its worker).
_PARENT = os.getppid()


def _require_loopback(address: str) -> None:
    host = address.rsplit(":", 1)[0].strip("[]")
    try:
        loopback = host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    if not loopback:
        raise ConfigError(
            "runtime_api_address",
            "a loopback address (the SuperNode's Runtime API is plain HTTP)",
            address,
            hint="Run the worker on the SuperNode's host, or serve the Runtime API with TLS (--root-certificates).",
        )


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m fedchain.deployment.worker",
        description="Answer a SuperNode's ClientApp messages in one long-lived process (flower-supernode "
        "--isolation process).",
    )
    parser.add_argument("--runtime-api-address", required=True, help="host:port of the SuperNode's Runtime API")
    parser.add_argument("--superexec-auth-secret-file", help="the SuperNode's SuperExec secret (raw bytes)")
    parser.add_argument("--supernode-pid", type=int, help="exit when this process ends")
    parser.add_argument("--root-certificates", help="PEM CA of a Runtime API served with TLS")
    parser.add_argument(
        "--client-app",
        default=DEFAULT_CLIENT_APP,
        help="the member's ClientApp, module:attribute, from its installed code (imported at start); a task whose "
        f"app bundle names another is refused (default {DEFAULT_CLIENT_APP})",
    )
    parser.add_argument("--app-dir", help="a local app directory of the member's own, put on sys.path at start")
    parser.add_argument("--fast-poll-s", type=float, default=0.02, help="poll interval right after a task")
    parser.add_argument("--max-poll-s", type=float, default=1.0, help="poll interval when idle long")
    parser.add_argument("--give-up-s", type=float, default=30.0, help="exit after the Runtime API is down this long")
    parser.add_argument(
        "--wake-stdin",
        action="store_true",
        help="the SuperNode writes a byte to stdin when a task is ready: wait for it instead of polling",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m fedchain.deployment.worker``: run a worker until its SuperNode ends."""
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(asctime)s %(name)s: %(message)s")
    secret = Path(args.superexec_auth_secret_file).read_bytes() if args.superexec_auth_secret_file else None
    certificates = Path(args.root_certificates).read_bytes() if args.root_certificates else None
    started = time.perf_counter()
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per Runtime API call otherwise
    if args.app_dir:
        sys.path.insert(0, str(Path(args.app_dir).resolve()))
    try:  # the ClientApp's imports, before the first message; a worker that cannot load it answers nothing
        load_installed_client_app(args.client_app)
    except (ImportError, ConfigError) as exc:
        log.error("the member's ClientApp %s cannot be loaded: %s", args.client_app, exc)
        return 2
    log.info("loaded the member's ClientApp %s in %.2f s", args.client_app, time.perf_counter() - started)
    worker = MemberWorker(
        args.runtime_api_address,
        auth_secret=secret,
        supernode_pid=args.supernode_pid,
        backoff=Backoff(fast_s=args.fast_poll_s, max_s=args.max_poll_s),
        give_up_s=args.give_up_s,
        root_certificates=certificates,
        client_app=args.client_app,
        wake_fd=sys.stdin.fileno() if args.wake_stdin else None,
    )

    def _terminate(signum: int, frame: FrameType | None) -> None:
        worker.stop()
        gone = args.supernode_pid is not None and not _pid_alive(args.supernode_pid)
        raise SystemExit(1 if gone else 0)

    signal.signal(signal.SIGTERM, _terminate)
    signal.signal(signal.SIGINT, _terminate)
    log.info("worker %d answers ClientApp tasks of %s", os.getpid(), args.runtime_api_address)
    return worker.run()


if __name__ == "__main__":
    sys.exit(main())
