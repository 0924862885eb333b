r"""A member's SuperNode: Flower's ``flower-supernode``, at fedchain's cadence, with its member worker.

``python -m fedchain.deployment.supernode [OPTIONS] -- FLOWER-SUPERNODE-ARGS`` runs Flower's own
SuperNode (its TLS, SuperNode authentication, node state and Runtime API unchanged) with three
changes, all about time, not about what is sent or to whom:

* **Cadence.** Flower 1.42's SuperNode loop waits a fixed 3 s after an empty pull from the
  SuperLink and polls its own state every 0.5 s for a reply; a round of fedchain is two or three
  such exchanges, so these waits alone cost several seconds a round. Here they follow a
  :class:`~fedchain.deployment.worker.Backoff`: fast right after a message, growing with idle
  time up to Flower's own values (3 s, 0.5 s), so an idle node polls as Flower's does. The waits
  are Flower's ``time.sleep`` calls in ``flwr.supernode.start_client_internal``; only that
  module's ``time`` is replaced (:func:`install_cadence`), and only if its source still holds
  those calls (otherwise Flower's cadence is kept and a warning logged). The loop's pulls of a
  message's objects retry after 10 ms instead of 1 s (:mod:`fedchain.deployment.object_pulls`).
* **Worker.** With ``--worker`` (and ``--isolation process`` among Flower's arguments), the
  SuperNode starts :mod:`fedchain.deployment.worker` as its child, on its loopback Runtime API,
  signing with the SuperNode's SuperExec secret (a fresh one in a 0600 file unless
  ``--superexec-auth-secret-file`` is given), so no other local process can take the node's
  tasks; the worker ends when the SuperNode does. ``--worker-threads N`` caps its math threads
  (members sharing one machine). The SuperNode wakes its worker through a pipe (the worker's
  stdin) each time it has stored a message (:func:`install_wake`), so the worker does not poll
  the Runtime API while idle.
* **HTTP layers.** The Runtime API's Flower layers (error and protobuf translation) run in each
  request's own task instead of Starlette's task-and-stream per layer
  (:func:`install_direct_layers`, :mod:`fedchain.deployment.asgi_layers`); their answers are Flower's.

Example::

    python -m fedchain.deployment.supernode --worker --worker-client-app clients.client_app:app -- \
        --superlink 127.0.0.1:9093 --root-certificates ca.crt --auth-supernode-private-key key \
        --isolation process --superexec-auth-secret-file secret --host 127.0.0.1 --port 9094
"""

from __future__ import annotations

import argparse
import contextlib
import inspect
import logging
import os
import secrets
import subprocess
import sys
import tempfile
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from fedchain.deployment.object_pulls import install_fast_object_pulls
from fedchain.deployment.worker import Backoff

__all__ = [
    "HELD_PULL_S",
    "FleetCadence",
    "flower_loop_known",
    "install_cadence",
    "install_direct_layers",
    "install_wake",
    "main",
    "worker_command",
]

log = logging.getLogger(__name__)

#: Flower's waits in ``start_client_internal`` (seconds): after an empty pull; for a reply.
_FLOWER_IDLE_S = 3
_FLOWER_REPLY_S = 0.5
#: An empty pull that took at least this long was held by the SuperLink
#: (:mod:`fedchain.deployment.held_pulls`); the node then asks again after ``_HELD_RETRY_S``.
HELD_PULL_S = 1.0
_HELD_RETRY_S = 0.01


class FleetCadence:
    """Stands in for the ``time`` module of Flower's SuperNode loop; only ``sleep`` differs.

    ``sleep(3)`` (nothing pulled) waits ``idle.interval()``; ``sleep(0.5)`` (a reply not ready)
    waits ``reply.interval()``, counted from the start of the message's reply wait.

    **Learned gaps.** A federation's rounds repeat: after answering a ``train`` message a member
    waits for the others and the aggregation before its next message, after ``evaluate`` only for
    the round's record. The cadence notes, per message type answered, how long the node then
    waited for its next message (the shorter of the last two waits), and after answering that
    type again it does not poll during the first :attr:`head_fraction` of that wait. With 10
    members on one SuperLink, polls were 40 % of its calls, and each costs it as much as a
    message's object. A message that comes earlier than learned waits at most
    ``head_fraction`` of the learned gap; one that comes later, as without learning.

    Example:
        >>> cadence = FleetCadence()
        >>> cadence.monotonic() > 0 and cadence.idle.interval() <= 0.06
        True
        >>> cadence.received("train"); cadence.answered(); cadence.received("evaluate")
        >>> round(cadence.learned_gap("train"), 1)
        0.0
    """

    def __init__(self, idle: Backoff | None = None, reply: Backoff | None = None, head_fraction: float = 0.5) -> None:
        self.idle = idle or Backoff(fast_s=0.05, ratio=0.05, max_s=float(_FLOWER_IDLE_S))
        self.reply = reply or Backoff(fast_s=0.01, ratio=0.05, max_s=_FLOWER_REPLY_S)
        self.head_fraction = head_fraction
        self._gaps: dict[str, deque[float]] = {}
        self._answering: str | None = None  # type of the message being (or last) answered
        self._answered_at: float | None = None  # when its reply was pushed
        self._held = False  # the last pull came back empty after being held by the SuperLink

    def sleep(self, seconds: float) -> None:
        """Flower's waits at this cadence; any other wait as asked."""
        if seconds == _FLOWER_IDLE_S:
            time.sleep(self.idle_wait())
        elif seconds == _FLOWER_REPLY_S:
            time.sleep(self.reply.interval())
        else:
            time.sleep(seconds)

    def idle_wait(self) -> float:
        """Seconds to wait before the next pull, after one that found nothing."""
        return _HELD_RETRY_S if self._held else max(self.idle.interval(), self._head_left())

    def pulled_nothing(self, seconds: float) -> None:
        """A pull that took ``seconds`` found no message (held by the SuperLink if it took long)."""
        self._held = seconds >= HELD_PULL_S

    def received(self, message_type: str) -> None:
        """A message of ``message_type`` was pulled: learn the wait that ended, start its reply wait."""
        self._held = False
        if self._answering is not None and self._answered_at is not None:
            waited = time.monotonic() - self._answered_at
            self._gaps.setdefault(self._answering, deque(maxlen=2)).append(waited)
        self._answering, self._answered_at = message_type, None
        self.reply_wait()

    def answered(self) -> None:
        """The reply was pushed (or the message handled): the node is idle from now."""
        self._answered_at = time.monotonic()
        self.idle.busy()

    def learned_gap(self, message_type: str) -> float | None:
        """The wait for the next message after answering ``message_type`` (None: not seen yet)."""
        gaps = self._gaps.get(message_type)
        return min(gaps) if gaps else None

    def reply_wait(self) -> None:
        """A message was pulled: its reply wait starts now, and the node is busy."""
        self.reply.busy()
        self.idle.busy()

    def _head_left(self) -> float:
        """Seconds left of the learned quiet head after the last answer (0: poll at the backoff's pace)."""
        if self._answering is None or self._answered_at is None:
            return 0.0
        gap = self.learned_gap(self._answering)
        if gap is None:
            return 0.0
        return max(0.0, self._answered_at + self.head_fraction * gap - time.monotonic())

    def __getattr__(self, name: str) -> Any:
        return getattr(time, name)


def flower_loop_known() -> bool:
    """Whether Flower's SuperNode loop still waits with the calls :func:`install_cadence` replaces."""
    from flwr.supernode import start_client_internal as loop

    try:
        sources = inspect.getsource(loop.start_client_internal) + inspect.getsource(loop._push_messages)
    except (OSError, AttributeError):
        return False
    return f"time.sleep({_FLOWER_IDLE_S})" in sources and f"time.sleep({_FLOWER_REPLY_S})" in sources


def install_cadence(cadence: FleetCadence | None = None) -> bool:
    """Make Flower's SuperNode loop (in this process) wait at ``cadence``; False if Flower's code differs."""
    from flwr.supernode import start_client_internal as loop

    if not flower_loop_known():
        log.warning("this Flower's SuperNode loop is not the one fedchain knows: its own cadence is kept")
        return False
    cadence = cadence or FleetCadence()
    push_messages = loop._push_messages
    pull_and_store = loop._pull_and_store_message

    def _push_messages(*args: Any, **kwargs: Any) -> None:
        cadence.reply_wait()
        try:
            push_messages(*args, **kwargs)
        finally:
            cadence.answered()

    def _pull_and_store_message(*args: Any, **kwargs: Any) -> int | None:
        receive = kwargs.get("receive")
        if receive is not None:  # Flower passes it by keyword; note each message's type as it comes

            def _receive() -> Any:
                started = time.monotonic()
                pulled = receive()
                if pulled is None:
                    cadence.pulled_nothing(time.monotonic() - started)
                else:
                    cadence.received(str(pulled[0].metadata.message_type))
                return pulled

            kwargs["receive"] = _receive
        run_id: int | None = pull_and_store(*args, **kwargs)
        return run_id

    _pull_and_store_message.__wrapped__ = pull_and_store  # type: ignore[attr-defined]
    loop.time = cadence  # type: ignore[assignment]
    loop._push_messages = _push_messages
    loop._pull_and_store_message = _pull_and_store_message
    install_fast_object_pulls(("flwr.supernode.start_client_internal",))
    return True


def install_wake(wake: Callable[[], None]) -> bool:
    """Call ``wake`` each time Flower's SuperNode loop (in this process) has stored a message.

    Flower's ``_pull_and_store_message`` creates the message's task and pulls its objects; when it
    returns a run id the task is ready for ``AcquireTask``. The same wrapper fails a task that call
    created but abandoned (:func:`_failing_abandoned_tasks`): both hang on that one Flower function,
    so it is wrapped once. False (nothing installed) if the loop is not the one fedchain knows.
    """
    from flwr.supernode import start_client_internal as loop

    pull_and_store = getattr(loop, "_pull_and_store_message", None)
    if pull_and_store is None or not _stores_a_task(pull_and_store):
        log.warning("this Flower's SuperNode loop is not the one fedchain knows: the worker polls instead")
        return False

    def _pull_and_store_message(*args: Any, **kwargs: Any) -> int | None:
        if kwargs.get("state") is None or kwargs.get("object_store") is None:  # not called as 1.42's loop does
            run_id: int | None = pull_and_store(*args, **kwargs)
        else:
            run_id = _failing_abandoned_tasks(pull_and_store, *args, **kwargs)
        if run_id is not None:
            wake()
        return run_id

    _pull_and_store_message.__wrapped__ = pull_and_store  # type: ignore[attr-defined]
    loop._pull_and_store_message = _pull_and_store_message
    return True


def _failing_abandoned_tasks(pull_and_store: Callable[..., int | None], *args: Any, **kwargs: Any) -> int | None:
    """Flower's ``_pull_and_store_message``, then fail a task it created but left behind.

    Flower 1.42 creates a message's task and stores the message before pulling its objects. If the
    SuperLink then says the run is no longer running (``RunNotRunningException``, e.g. the run
    ended or the SuperLink restarted mid-message), Flower only logs and returns None: the task
    stays pending with a message whose objects never come. ``flwr-clientapp`` runs one process per
    task, so only that process waits; the member worker answers tasks one at a time, and would
    retry the missing objects up to Flower's 2-hour limit while the next run's task waited (seen:
    the namespaces test's resumed run lost two members' replies). A task created by a call that
    returns None is failed here, and its message and objects dropped, as Flower does when an
    object pull fails for another reason (a task Flower already finished is left as it is).
    """
    from flwr.common.constant import SubStatus

    state, object_store = kwargs["state"], kwargs["object_store"]
    created: list[int] = []
    stored: list[str] = []
    create_task, store_message = state.create_task, state.store_message
    loop_thread = threading.get_ident()  # the Runtime API stores the worker's replies from other threads

    def recording_create_task(*a: Any, **kw: Any) -> int | None:
        task_id: int | None = create_task(*a, **kw)
        if task_id is not None and threading.get_ident() == loop_thread:
            created.append(task_id)
        return task_id

    def recording_store_message(message: Any) -> Any:
        if threading.get_ident() == loop_thread:
            stored.append(message.metadata.message_id)
        return store_message(message)

    state.create_task, state.store_message = recording_create_task, recording_store_message
    try:
        run_id = pull_and_store(*args, **kwargs)
    finally:
        del state.create_task, state.store_message  # the instance attributes; the class's methods again
    if run_id is None and created:
        for task_id in created:
            if state.finish_task(task_id, SubStatus.FAILED, "the message's objects never arrived: its run stopped"):
                log.warning("task %d failed: its run stopped before the message's objects arrived", task_id)
        state.delete_messages(message_ids=stored)
        for message_id in stored:
            object_store.delete(message_id)
    return run_id


def _stores_a_task(function: Callable[..., Any]) -> bool:
    """Whether ``function`` (Flower's ``_pull_and_store_message``) creates the message's task, as 1.42's does."""
    try:
        return "create_task(" in inspect.getsource(inspect.unwrap(function))
    except (OSError, TypeError):
        return False


def pipe_wake(descriptor: int) -> Callable[[], None]:
    """A wake-up that writes one byte to ``descriptor`` without ever blocking (a full pipe has wake-ups enough)."""
    os.set_blocking(descriptor, False)

    def wake() -> None:
        with contextlib.suppress(BlockingIOError, BrokenPipeError):  # pending wake-ups, or the worker is gone
            os.write(descriptor, b"\x01")

    return wake


def worker_command(
    runtime_api_address: str,
    *,
    supernode_pid: int,
    secret_file: str | None,
    client_app: str | None = None,
    app_dir: str | None = None,
    python: str = sys.executable,
    wake_stdin: bool = False,
) -> list[str]:
    """The member worker's command line (:mod:`fedchain.deployment.worker`).

    ``client_app``: the member's ClientApp reference (None: the worker's default, fedchain's);
    ``app_dir``: a local app directory of the member's own that holds it.

    Example:
        >>> worker_command("127.0.0.1:9094", supernode_pid=7, secret_file=None, python="python")[:4]
        ['python', '-m', 'fedchain.deployment.worker', '--runtime-api-address']
    """
    command = [python, "-m", "fedchain.deployment.worker", "--runtime-api-address", runtime_api_address,
               "--supernode-pid", str(supernode_pid)]  # fmt: skip
    if secret_file:
        command += ["--superexec-auth-secret-file", secret_file]
    if client_app:
        command += ["--client-app", client_app]
    if app_dir:
        command += ["--app-dir", app_dir]
    if wake_stdin:
        command.append("--wake-stdin")
    return command


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m fedchain.deployment.supernode``: Flower's SuperNode at fedchain's cadence, with its worker."""
    args = list(sys.argv[1:] if argv is None else argv)
    ours, flower_args = (args[: args.index("--")], args[args.index("--") + 1 :]) if "--" in args else ([], args)
    parser = argparse.ArgumentParser(prog="python -m fedchain.deployment.supernode")
    parser.add_argument("--worker", action="store_true", help="start the member worker (needs --isolation process)")
    parser.add_argument("--worker-client-app", help="the member's ClientApp, module:attribute (worker's --client-app)")
    parser.add_argument("--worker-app-dir", help="the member's own app directory holding it (worker's --app-dir)")
    parser.add_argument("--worker-threads", type=int, default=0, help="CPU threads of the worker's math (0: all)")
    parser.add_argument("--flower-cadence", action="store_true", help="keep Flower's own waits (3 s, 0.5 s)")
    options = parser.parse_args(ours)
    known = argparse.ArgumentParser(add_help=False)
    for flag in ("--host", "--port", "--isolation", "--superexec-auth-secret-file"):
        known.add_argument(flag)
    flower, _ = known.parse_known_args(flower_args)
    if not options.flower_cadence:
        install_cadence()
    install_direct_layers()
    child = None
    secret_file = flower.superexec_auth_secret_file
    if options.worker:
        if flower.isolation != "process":
            parser.error("--worker needs --isolation process among flower-supernode's arguments")
        if secret_file is None:  # only this node's worker may acquire its tasks
            secret_file = _secret_file()
            flower_args += ["--superexec-auth-secret-file", secret_file]
        child = subprocess.Popen(
            worker_command(
                f"{flower.host or '127.0.0.1'}:{flower.port or 9094}",
                supernode_pid=os.getpid(),
                secret_file=secret_file,
                client_app=options.worker_client_app,
                app_dir=options.worker_app_dir,
                wake_stdin=True,
            ),
            stdin=subprocess.PIPE,
            env=_thread_env(options.worker_threads),
        )
        assert child.stdin is not None
        if not install_wake(pipe_wake(child.stdin.fileno())):
            child.stdin.close()  # the worker sees EOF and polls
    from flwr.supernode.cli.flower_supernode import flower_supernode

    sys.argv = ["flower-supernode", *flower_args]
    try:
        flower_supernode()
    finally:
        if child is not None and child.poll() is None:
            child.terminate()
        if secret_file and secret_file != flower.superexec_auth_secret_file:
            Path(secret_file).unlink(missing_ok=True)
    return 0


def install_direct_layers() -> None:
    """Run the Runtime API's ``BaseHTTPMiddleware`` layers in each request's task (this process only).

    The member worker makes about ten calls per message to its SuperNode's Runtime API, each through
    Flower's error and protobuf translation layers; :mod:`fedchain.deployment.asgi_layers` runs
    the same layers without Starlette's per-layer task and stream. Installing twice changes nothing.

    Example::

        install_direct_layers()  # before flwr.supernode.cli.flower_supernode starts the Runtime API
    """
    import flwr.supernode.main as supernode_main

    from fedchain.deployment.asgi_layers import direct_middleware

    create_app = supernode_main.create_app
    if getattr(create_app, "fedchain_direct", False):
        return

    def create_direct_app(*args: Any, **kwargs: Any) -> Any:
        app = create_app(*args, **kwargs)
        app.user_middleware = direct_middleware(app.user_middleware)
        return app

    create_direct_app.fedchain_direct = True  # type: ignore[attr-defined]
    supernode_main.create_app = create_direct_app


def _thread_env(threads: int) -> dict[str, str]:
    """The environment with ``threads`` CPU threads for torch and NumPy's BLAS (0: their default, every core).

    Members sharing one machine each get their share, as Flower's simulation gives each member one
    CPU (Ray sets ``OMP_NUM_THREADS`` to an actor's CPUs); without it, N members x all cores thrash.
    """
    env = dict(os.environ)
    if threads > 0:
        for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
            env[name] = str(threads)
    return env


def _secret_file() -> str:
    """A fresh SuperExec secret in a file only this user can read (removed when the SuperNode ends)."""
    descriptor, path = tempfile.mkstemp(prefix="fedchain-superexec-", suffix=".secret")
    with os.fdopen(descriptor, "wb") as handle:  # mkstemp creates it 0600
        handle.write(secrets.token_bytes(32))
    return path


if __name__ == "__main__":
    sys.exit(main())
