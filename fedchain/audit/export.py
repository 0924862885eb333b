"""CSV export of an audit: member histories, rounds and every verdict.

Example:
    >>> import tempfile
    >>> from fedchain.audit.findings import AuditFinding, AuditReport
    >>> paths = write_csv(AuditReport(findings=(AuditFinding("token.supply", True),)), tempfile.mkdtemp())
    >>> sorted(p.name for p in paths)
    ['findings.csv', 'member_history.csv', 'rounds.csv']
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from fedchain._io import atomic_write_bytes
from fedchain.audit.findings import AuditFinding, AuditReport, MemberRoundAudit, RoundAudit

__all__ = ["FINDING_COLUMNS", "MEMBER_COLUMNS", "ROUND_COLUMNS", "write_csv"]

#: Columns of ``member_history.csv`` (one row per member-round, round then address order).
MEMBER_COLUMNS: tuple[str, ...] = (
    *MemberRoundAudit(0, "", 0.0, 0, None, None, None, None, None, None, 0).to_dict(),
    "status",
)
#: Columns of ``rounds.csv``.
ROUND_COLUMNS: tuple[str, ...] = (*RoundAudit(0, 0, "", "", 0, 0, 0, 0, "", "", "").to_dict(), "status")
#: Columns of ``findings.csv``.
FINDING_COLUMNS: tuple[str, ...] = tuple(AuditFinding("", True).to_dict())


def _status(findings: Iterable[AuditFinding]) -> str:
    statuses = {f.status for f in findings}
    for status in ("fail", "warn", "pass"):
        if status in statuses:
            return status
    return "pass"


def _csv_bytes(columns: Sequence[str], rows: Iterable[dict[str, Any]]) -> bytes:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(columns), lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: "" if row.get(k) is None else row.get(k) for k in columns})
    return buffer.getvalue().encode("utf-8")


def write_csv(report: AuditReport, directory: str | Path) -> list[Path]:
    """Write ``member_history.csv``, ``rounds.csv`` and ``findings.csv`` into ``directory``.

    Each member and round row carries ``status``: the worst verdict (fail > warn > pass) of the
    findings about it. Wei amounts are decimal strings, epsilon values full-precision floats.

    Returns:
        The paths written.
    """
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    by_member_round: dict[tuple[int | None, str], list[AuditFinding]] = {}
    by_round: dict[int | None, list[AuditFinding]] = {}
    for finding in report.findings:
        by_round.setdefault(finding.round, []).append(finding)
        if finding.member is not None:
            by_member_round.setdefault((finding.round, finding.member.lower()), []).append(finding)
    members = []
    for row in report.members:
        data = row.to_dict()
        related = by_member_round.get((row.server_round, row.address.lower()), []) + by_member_round.get(
            (None, row.address.lower()), []
        )
        data["status"] = _status(related)
        members.append(data)
    rounds = []
    for round_row in report.rounds:
        data = round_row.to_dict()
        data["status"] = _status(by_round.get(round_row.server_round, []))
        rounds.append(data)
    written = []
    for name, columns, rows in (
        ("member_history.csv", MEMBER_COLUMNS, members),
        ("rounds.csv", ROUND_COLUMNS, rounds),
        ("findings.csv", FINDING_COLUMNS, [f.to_dict() for f in report.findings]),
    ):
        path = out / name
        atomic_write_bytes(path, _csv_bytes(columns, rows))
        written.append(path)
    return written
