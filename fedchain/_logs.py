"""Keep dependencies' warnings off the console: they go to a log file unless the user asks for them.

Ray, Flower, eth-tester, Opacus and friends emit Python warnings (Ray's ``ResourceWarning`` on
files it leaves open when it starts its services; eth-tester even turns every warning category
back on with ``warnings.simplefilter("default")`` when it creates a chain) and log warnings of
their own. A newcomer's first ``make demo`` should not look like a failure, yet nothing should be
lost: :func:`route_dependency_output` sends Python warnings and the dependencies' log records to
``log_file`` (``DIR/warnings.log`` of a run), keeps their errors on the console, and with
``verbose`` leaves everything on the console as before.

Example:
    >>> import logging, tempfile
    >>> from pathlib import Path
    >>> log = Path(tempfile.mkdtemp()) / "warnings.log"
    >>> route_dependency_output(verbose=False, log_file=log)
    >>> logging.getLogger("flwr").warning("flower complains")  # printed nowhere but the file
    >>> "flower complains" in log.read_text()
    True
    >>> restore_dependency_output()
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

__all__ = ["DEPENDENCY_LOGGERS", "restore_dependency_output", "route_dependency_output"]

#: Loggers of the libraries fedchain drives (their records are dependencies' output).
DEPENDENCY_LOGGERS = ("flwr", "ray", "opacus", "web3", "urllib3", "datasets", "filelock", "eth_tester", "py.warnings")

_ROUTED: dict[str, tuple[list[logging.Handler], bool, int]] = {}
_FILE_HANDLERS: list[logging.Handler] = []


def route_dependency_output(*, verbose: bool, log_file: Path | None) -> None:
    """Python warnings and dependency log records to ``log_file`` (errors still on stderr); all on stderr if verbose.

    Args:
        verbose: leave everything on the console (INFO and up).
        log_file: where warnings go when not verbose; its folder is created. None: drop them.
    """
    if verbose:
        for name in DEPENDENCY_LOGGERS:
            logging.getLogger(name).setLevel(logging.INFO)
        return
    logging.captureWarnings(True)  # warnings.showwarning -> the "py.warnings" logger
    handlers: list[logging.Handler] = []
    if log_file is not None:
        log_file.parent.mkdir(parents=True, exist_ok=True)
        to_file = logging.FileHandler(log_file, encoding="utf-8", delay=True)
        to_file.setLevel(logging.INFO)
        to_file.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        handlers.append(to_file)
        _FILE_HANDLERS.append(to_file)
    errors = logging.StreamHandler(sys.stderr)
    errors.setLevel(logging.ERROR)
    errors.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    handlers.append(errors)
    for name in DEPENDENCY_LOGGERS:
        logger = logging.getLogger(name)
        if name not in _ROUTED:
            _ROUTED[name] = (list(logger.handlers), logger.propagate, logger.level)
        for own in list(logger.handlers):  # e.g. Flower's console handler
            logger.removeHandler(own)
        for handler in handlers:
            logger.addHandler(handler)
        logger.setLevel(logging.INFO)
        logger.propagate = False


def restore_dependency_output() -> None:
    """Undo :func:`route_dependency_output` (tests; a long-lived process changing its mind)."""
    logging.captureWarnings(False)
    for name, (handlers, propagate, level) in _ROUTED.items():
        logger = logging.getLogger(name)
        for handler in list(logger.handlers):
            logger.removeHandler(handler)
        for handler in handlers:
            logger.addHandler(handler)
        logger.propagate = propagate
        logger.setLevel(level)
    _ROUTED.clear()
    for handler in _FILE_HANDLERS:
        handler.close()
    _FILE_HANDLERS.clear()
