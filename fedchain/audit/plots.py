"""PNG plots of a run (``fedchain report DIR``): accuracy, privacy spend, tokens.

Figures are drawn with matplotlib's object API on the Agg canvas (no pyplot, no display):

* ``accuracy.png``: federated evaluation accuracy per round (from ``result.json``);
* ``epsilon.png``: each member's cumulative epsilon per round against its budget;
* ``tokens.png``: tokens (FED) each member earned.

Epsilon and tokens come from the chain record (``chain.json``) when the run has one, else from
``result.json``; the budget line is the run's configured epsilon.

Example::

    paths = write_report("runs/demo")  # runs/demo/report/{accuracy,epsilon,tokens}.png
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from fedchain.errors import ConfigError, FedChainError

__all__ = ["REPORT_DIRNAME", "write_report"]

logger = logging.getLogger(__name__)

#: Sub-directory of the run directory the PNGs are written to.
REPORT_DIRNAME = "report"
_WEI_PER_TOKEN = 10**18


def _label(address: str, ids: dict[str, Any]) -> str:
    short = f"{address[:6]}…{address[-4:]}"
    member_id = ids.get(address.lower())
    return f"member {member_id} ({short})" if member_id is not None else short


def _chain_series(run_dir: Path) -> tuple[dict[str, list[tuple[int, float]]], dict[str, int]] | None:
    path = run_dir / "chain.json"
    if not path.is_file():
        return None
    from fedchain.ledger import ExportedLedger

    try:
        ledger = ExportedLedger.load(path)
        rounds = ledger.rounds()
    except FedChainError as exc:
        logger.warning("cannot read %s (%s); plotting from result.json", path, exc)
        return None
    epsilon: dict[str, list[tuple[int, float]]] = {}
    tokens: dict[str, int] = {}
    for recorded in rounds:
        for member in recorded.members:
            tokens[member.address] = tokens.get(member.address, 0) + member.reward_wei
            if member.epsilon is not None:
                epsilon.setdefault(member.address, []).append((recorded.server_round, member.epsilon))
    return epsilon, tokens


def _result_series(result: dict[str, Any]) -> tuple[dict[str, list[tuple[int, float]]], dict[str, int]]:
    epsilon: dict[str, list[tuple[int, float]]] = {}
    tokens: dict[str, int] = {}
    for row in result.get("rounds", []):
        for member in row.get("members", []):
            address = str(member.get("address"))
            if member.get("epsilon") is not None:
                epsilon.setdefault(address, []).append((int(row["round"]), float(member["epsilon"])))
            if member.get("reward_wei") is not None:
                tokens[address] = tokens.get(address, 0) + int(member["reward_wei"])
    return epsilon, tokens


def write_report(run_dir: str | Path, *, out_dir: str | Path | None = None) -> list[Path]:
    """Draw the run's plots as PNG files.

    Args:
        run_dir: a run directory holding ``result.json`` (and ``chain.json`` on a chain).
        out_dir: where to write (default ``run_dir/report``).

    Returns:
        The PNG paths written (``accuracy.png``, ``epsilon.png``, ``tokens.png``; a plot with no
        data, e.g. epsilon without DP, shows a note instead of lines).

    Raises:
        ConfigError: ``run_dir`` holds no readable ``result.json``.
    """
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    directory = Path(run_dir)
    try:
        result = json.loads((directory / "result.json").read_text("utf-8"))
    except (OSError, ValueError) as exc:
        raise ConfigError("run", "a run directory holding a readable result.json", str(run_dir)) from exc
    if not isinstance(result, dict):
        raise ConfigError("run", "a run directory holding a result.json object", str(run_dir))
    target = Path(out_dir) if out_dir is not None else directory / REPORT_DIRNAME
    target.mkdir(parents=True, exist_ok=True)
    ids = {
        str(m.get("address", "")).lower(): m.get("member_id")
        for row in result.get("rounds", [])
        for m in row.get("members", [])
    }
    from_chain = _chain_series(directory)
    epsilon, tokens = from_chain if from_chain is not None else _result_series(result)
    source = "chain.json" if from_chain is not None else "result.json"
    config = result.get("config", {}) if isinstance(result.get("config"), dict) else {}
    written: list[Path] = []

    fig = Figure(figsize=(7, 4.2), layout="constrained")
    ax = fig.add_subplot()
    points = [
        (int(r["round"]), float(r["accuracy"])) for r in result.get("rounds", []) if r.get("accuracy") is not None
    ]
    if points:
        ax.plot([p[0] for p in points], [p[1] for p in points], marker="o", color="tab:blue")
        ax.set_ylim(0, 1)
    else:
        ax.text(0.5, 0.5, "no evaluated round", ha="center", va="center", transform=ax.transAxes)
    ax.set(title="Global model accuracy per round", xlabel="round", ylabel="accuracy (federated evaluation)")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.grid(alpha=0.3)
    written.append(target / "accuracy.png")
    fig.savefig(written[-1], dpi=120)

    fig = Figure(figsize=(7, 4.2), layout="constrained")
    ax = fig.add_subplot()
    for address, series in sorted(epsilon.items(), key=lambda item: (str(ids.get(item[0].lower(), "")), item[0])):
        ax.plot([p[0] for p in series], [p[1] for p in series], marker="o", label=_label(address, ids))
    budget = config.get("epsilon") if config.get("dp") else None
    if budget is not None:
        ax.axhline(float(budget), color="red", linestyle="--", label=f"budget ε = {float(budget):g}")
    if not epsilon:
        ax.text(0.5, 0.5, "no differential privacy recorded", ha="center", va="center", transform=ax.transAxes)
    else:
        ax.set_ylim(bottom=0)
        ax.legend(fontsize="small", loc="lower right")
    ax.set(title=f"Cumulative ε per member against the budget (from {source})", xlabel="round", ylabel="cumulative ε")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.grid(alpha=0.3)
    written.append(target / "epsilon.png")
    fig.savefig(written[-1], dpi=120)

    fig = Figure(figsize=(7, 4.2), layout="constrained")
    ax = fig.add_subplot()
    if tokens:
        ordered = sorted(tokens.items(), key=lambda item: -item[1])
        labels = [_label(a, ids) for a, _ in ordered]
        values = [wei / _WEI_PER_TOKEN for _, wei in ordered]
        bars = ax.barh(labels, values, color="tab:green")
        ax.bar_label(bars, labels=[f"{v:,.2f}" for v in values], padding=3, fontsize="small")
        ax.invert_yaxis()
        ax.margins(x=0.15)
    else:
        ax.text(0.5, 0.5, "no rewards recorded", ha="center", va="center", transform=ax.transAxes)
    ax.set(title=f"Tokens earned per member (from {source})", xlabel="FED (1 FED = 1e18 wei)")
    ax.grid(alpha=0.3, axis="x")
    written.append(target / "tokens.png")
    fig.savefig(written[-1], dpi=120)
    logger.info("wrote %d plots to %s", len(written), target)
    return written
