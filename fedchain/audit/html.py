"""``fedchain audit --html DIR``: the audit as one self-contained web page an auditor can click through.

:func:`write_html` writes ``DIR/index.html``: the verdict; the findings, failures first, each with
its check, round, member, field, expected and actual values; every recorded round with its lineage
(previous model hash -> model hash, and whether it links to the prior round) and its members; per
member the rewards and the recomputed epsilon against its budget; charts; the list of checks.

Everything is inline: CSS, a few lines of JavaScript (a findings filter), charts as SVG generated
here. The page loads nothing from anywhere (no server, no network, no fonts), so it can be mailed,
archived with the audit, or opened offline. It reads on a laptop and a phone (fluid layout, tables
scroll sideways on narrow screens).

Example:
    >>> import tempfile
    >>> from fedchain.audit.findings import AuditFinding, AuditReport
    >>> report = AuditReport(findings=(AuditFinding("token.supply", True),), target="demo")
    >>> path = write_html(report, tempfile.mkdtemp())
    >>> "AUDIT PASSED" in path.read_text()
    True
"""

from __future__ import annotations

import html
from collections.abc import Iterable, Sequence
from pathlib import Path

from fedchain.audit.findings import CHECKS, AuditFinding, AuditReport, MemberRoundAudit, RoundAudit

__all__ = ["render_html", "write_html"]

_WEI = 10**18
_ZERO = "0x" + "00" * 32
_PALETTE = (
    "#2563eb",
    "#d97706",
    "#059669",
    "#dc2626",
    "#7c3aed",
    "#0891b2",
    "#db2777",
    "#65a30d",
    "#475569",
    "#ea580c",
)


def write_html(report: AuditReport, out_dir: str | Path) -> Path:
    """Write the report to ``out_dir/index.html`` (the folder is created); return the file's path."""
    directory = Path(out_dir)
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "index.html"
    path.write_text(render_html(report), encoding="utf-8")
    return path


def _e(value: object) -> str:
    return html.escape("" if value is None else str(value), quote=True)


def _fed(wei: int) -> str:
    return f"{wei / _WEI:,.4f}"


def _short(text: str | None) -> str:
    if not text:
        return "-"
    return f"{text[:8]}…{text[-6:]}" if len(text) > 18 else text


def _hash(text: str | None) -> str:
    """A hash shortened on screen, whole in its tooltip and when copied."""
    return f'<code class="hash" title="{_e(text)}">{_e(_short(text))}</code>'


def _status_badge(status: str) -> str:
    label = {"pass": "pass", "fail": "FAIL", "warn": "warn"}[status]
    return f'<span class="badge {status}">{label}</span>'


def _worst(findings: Iterable[AuditFinding]) -> str:
    statuses = {f.status for f in findings}
    return "fail" if "fail" in statuses else "warn" if "warn" in statuses else "pass"


# ---- charts (inline SVG) -------------------------------------------------------------------------


def _epsilon_chart(members: Sequence[MemberRoundAudit], colors: dict[str, str]) -> str:
    """Recomputed cumulative epsilon per member by round, with each budget as a dashed line."""
    series: dict[str, list[tuple[int, float]]] = {}
    budgets: set[float] = set()
    for row in sorted(members, key=lambda r: r.server_round):
        value = row.epsilon_recomputed if row.epsilon_recomputed is not None else row.epsilon_recorded
        if value is not None:
            series.setdefault(row.address, []).append((row.server_round, value))
        if row.epsilon_budget is not None:
            budgets.add(row.epsilon_budget)
    if not series:
        return '<p class="muted">No member trained with differential privacy: no epsilon to plot.</p>'
    width, height, left, right, top, bottom = 640, 280, 48, 16, 12, 32
    rounds = [r for points in series.values() for r, _ in points]
    x_min, x_max = min(rounds), max(max(rounds), min(rounds) + 1)
    y_max = max([v for points in series.values() for _, v in points] + list(budgets)) * 1.1 or 1.0

    def x(value: float) -> float:
        return left + (value - x_min) / (x_max - x_min) * (width - left - right)

    def y(value: float) -> float:
        return top + (1 - value / y_max) * (height - top - bottom)

    parts = [
        f'<svg class="chart" viewBox="0 0 {width} {height}" role="img" '
        'aria-label="cumulative epsilon per member by round, against budget">'
    ]
    for i in range(5):
        value = y_max * i / 4
        parts.append(f'<line class="grid" x1="{left}" x2="{width - right}" y1="{y(value):.1f}" y2="{y(value):.1f}"/>')
        parts.append(f'<text class="tick" x="{left - 6}" y="{y(value) + 4:.1f}" text-anchor="end">{value:.2g}</text>')
    step = max(1, (x_max - x_min) // 10)
    for r in range(x_min, x_max + 1, step):
        parts.append(f'<text class="tick" x="{x(r):.1f}" y="{height - 12}" text-anchor="middle">{r}</text>')
    parts.append(f'<text class="tick" x="{width - right}" y="{height - 1}" text-anchor="end">round</text>')
    for budget in sorted(budgets):
        parts.append(
            f'<line class="budget" x1="{left}" x2="{width - right}" y1="{y(budget):.1f}" y2="{y(budget):.1f}"/>'
            f'<text class="tick budget-label" x="{width - right}" y="{y(budget) - 4:.1f}" '
            f'text-anchor="end">budget ε={budget:g}</text>'
        )
    for address, points in series.items():
        color = colors.get(address, _PALETTE[0])
        coords = " ".join(f"{x(r):.1f},{y(v):.1f}" for r, v in points)
        parts.append(
            f'<polyline fill="none" stroke="{color}" stroke-width="2" points="{coords}"><title>{_e(address)}</title>'
            "</polyline>"
        )
        for r, v in points:
            parts.append(
                f'<circle cx="{x(r):.1f}" cy="{y(v):.1f}" r="3" fill="{color}">'
                f"<title>{_e(address)} round {r}: ε {v:.4f}</title></circle>"
            )
    parts.append("</svg>")
    return "".join(parts) + _legend(series, colors)


def _legend(addresses: Iterable[str], colors: dict[str, str]) -> str:
    items = "".join(
        f'<li><span class="swatch" style="background:{colors.get(a, _PALETTE[0])}"></span>'
        f'<code title="{_e(a)}">{_e(_short(a))}</code></li>'
        for a in addresses
    )
    return f'<ul class="legend">{items}</ul>'


def _rewards_chart(totals: dict[str, int], colors: dict[str, str]) -> str:
    """Total rewards per member as horizontal bars."""
    if not totals:
        return '<p class="muted">No member was paid.</p>'
    width, bar, gap, label = 640, 22, 8, 150
    height = len(totals) * (bar + gap) + gap
    top = max(totals.values()) or 1
    parts = [f'<svg class="chart" viewBox="0 0 {width} {height}" role="img" aria-label="rewards per member">']
    for i, (address, wei) in enumerate(sorted(totals.items(), key=lambda item: -item[1])):
        y0 = gap + i * (bar + gap)
        length = (width - label - 90) * wei / top
        parts.append(
            f'<text class="tick" x="{label - 8}" y="{y0 + bar * 0.7:.1f}" text-anchor="end">'
            f"{_e(_short(address))}</text>"
            f'<rect x="{label}" y="{y0}" width="{max(length, 1):.1f}" height="{bar}" rx="3" '
            f'fill="{colors.get(address, _PALETTE[0])}"><title>{_e(address)}: {_fed(wei)} tokens</title></rect>'
            f'<text class="tick" x="{label + length + 6:.1f}" y="{y0 + bar * 0.7:.1f}">{_fed(wei)}</text>'
        )
    parts.append("</svg>")
    return "".join(parts)


def _member_round_status(row: MemberRoundAudit) -> str:
    """The member-round's recorded status, and whether it was recorded later as a spend."""
    status = str(getattr(row, "member_status", "accepted"))
    return f"{status} (spend)" if getattr(row, "source", "round") == "spend" else status


def _round_extras(audit: RoundAudit) -> str:
    """Statuses and disputes of a round, when the ledger records them."""
    parts = []
    statuses = getattr(audit, "member_statuses", "")
    if statuses:
        parts.append(f"<dt>member-round statuses</dt><dd>{_e(statuses)}</dd>")
    disputes = int(getattr(audit, "disputes", 0) or 0)
    if disputes:
        withheld = " (filed before recording: rewards withheld)" if getattr(audit, "withheld", False) else ""
        parts.append(f'<dt>disputes</dt><dd><span class="badge fail">{disputes}</span>{_e(withheld)}</dd>')
    return "".join(parts)


# ---- sections --------------------------------------------------------------------------------------


def _finding_row(finding: AuditFinding) -> str:
    round_cell = f'<a href="#round-{finding.round}">{finding.round}</a>' if finding.round is not None else "-"
    member_cell = (
        f'<a href="#member-{_e(finding.member.lower())}">{_hash(finding.member)}</a>' if finding.member else "-"
    )
    return (
        f'<tr class="finding {finding.status}" data-status="{finding.status}">'
        f'<td data-label="status">{_status_badge(finding.status)}</td>'
        f'<td data-label="check" class="nowrap"><code>{_e(finding.check)}</code></td>'
        f'<td data-label="round">{round_cell}</td><td data-label="member">{member_cell}</td>'
        f'<td data-label="field" class="nowrap"><code>{_e(finding.field or "-")}</code></td>'
        f'<td data-label="expected" class="value">{_e("-" if finding.expected is None else finding.expected)}</td>'
        f'<td data-label="actual" class="value">{_e("-" if finding.actual is None else finding.actual)}</td>'
        f'<td data-label="message">{_e(finding.message)}</td></tr>'
    )


def _findings_section(report: AuditReport) -> str:
    order = {"fail": 0, "warn": 1, "pass": 2}
    findings = sorted(report.findings, key=lambda f: order[f.status])
    rows = "".join(_finding_row(f) for f in findings)
    failed, warned = len(report.failures), len(report.warnings)
    passed = len(report.findings) - failed - warned
    return f"""
<section id="findings">
  <h2>Findings</h2>
  <div class="filters" role="group" aria-label="filter findings">
    <button type="button" data-filter="problems" class="active">Failures and warnings ({failed + warned})</button>
    <button type="button" data-filter="all">All checks ({len(report.findings)})</button>
    <button type="button" data-filter="pass">Passed ({passed})</button>
  </div>
  <div class="scroll"><table class="findings">
    <thead><tr><th>status</th><th>check</th><th>round</th><th>member</th><th>field</th>
      <th>expected</th><th>actual</th><th>message</th></tr></thead>
    <tbody>{rows}</tbody>
  </table></div>
  <p id="no-problems" class="muted" hidden>No check failed or warned.</p>
</section>"""


def _rounds_section(report: AuditReport) -> str:
    by_round: dict[int, list[MemberRoundAudit]] = {}
    for row in report.members:
        by_round.setdefault(row.server_round, []).append(row)
    previous_model: str | None = None
    blocks = []
    for audit in report.rounds:
        about = [f for f in report.findings if f.round == audit.server_round]
        status = _worst(about)
        expected_previous = _ZERO if previous_model is None else previous_model
        linked = audit.previous_model_hash.lower() == expected_previous.lower()
        lineage = (
            '<span class="badge pass">links to the prior round</span>'
            if linked
            else '<span class="badge fail">BROKEN: not the prior round\'s model</span>'
        )
        previous_model = audit.model_hash
        member_rows = "".join(
            f"<tr><td>{_hash(m.address)}</td><td>{_e(_member_round_status(m))}</td>"
            f"<td>{m.score:g}</td><td>{_fed(m.reward_wei)}</td>"
            f"<td>{'-' if m.expected_reward_wei is None else _fed(m.expected_reward_wei)}</td>"
            f"<td>{'-' if m.epsilon_recomputed is None else f'{m.epsilon_recomputed:.4f}'}</td></tr>"
            for m in sorted(by_round.get(audit.server_round, []), key=lambda m: m.address.lower())
        )
        problems = "".join(
            f"<li>{_status_badge(f.status)} <code>{_e(f.check)}</code> "
            f"{'member ' + _hash(f.member) if f.member else ''} "
            f"{'field <code>' + _e(f.field) + '</code>' if f.field else ''}: {_e(f.message)}</li>"
            for f in about
            if not f.ok
        )
        blocks.append(
            f"""
<details class="round {status}" id="round-{audit.server_round}"{" open" if status == "fail" else ""}>
  <summary>{_status_badge(status)} <strong>round {audit.server_round}</strong>
    <span class="muted">block {audit.block_number} · {audit.member_count} members ·
    pool {_fed(audit.reward_pool_wei)}</span></summary>
  <dl class="lineage">
    <dt>previous model</dt><dd>{_hash(audit.previous_model_hash)} {lineage}</dd>
    <dt>model</dt><dd>{_hash(audit.model_hash)}</dd>
    <dt>updates Merkle root</dt><dd>{_hash(audit.update_merkle_root)}</dd>
    <dt>transaction</dt><dd>{_hash(audit.tx_hash)} by {_hash(audit.recorder)}</dd>
    <dt>paid / treasury</dt><dd>{_fed(audit.paid_wei)} / {_fed(audit.treasury_wei)}</dd>
    {_round_extras(audit)}
  </dl>
  {f'<ul class="problems">{problems}</ul>' if problems else ""}
  <div class="scroll"><table>
    <thead><tr><th>member</th><th>status</th><th>score</th><th>reward</th><th>rule says</th><th>ε recomputed</th>
    </tr></thead>
    <tbody>{member_rows}</tbody>
  </table></div>
</details>"""
        )
    body = "".join(blocks) or '<p class="muted">No round is recorded.</p>'
    return f'<section id="rounds"><h2>Rounds and lineage</h2>{body}</section>'


def _members_section(report: AuditReport, colors: dict[str, str]) -> tuple[str, dict[str, int]]:
    rows_by_member: dict[str, list[MemberRoundAudit]] = {}
    for row in report.members:
        rows_by_member.setdefault(row.address, []).append(row)
    totals = {address: sum(r.reward_wei for r in rows) for address, rows in rows_by_member.items()}
    lines = []
    for address, rows in rows_by_member.items():
        last = max(rows, key=lambda r: r.server_round)
        about = [f for f in report.findings if f.member is not None and f.member.lower() == address.lower()]
        epsilon = last.epsilon_recomputed if last.epsilon_recomputed is not None else last.epsilon_recorded
        budget = last.epsilon_budget
        if epsilon is None:
            gauge = '<span class="muted">no DP</span>'
        elif budget is None:
            gauge = f'{epsilon:.4f} <span class="muted">(no budget known)</span>'
        else:
            share = epsilon / budget if budget else 1.0
            level = "fail" if share > 1 else "warn" if share > 0.9 else "pass"
            gauge = (
                f'<div class="gauge" title="{epsilon:.4f} of {budget:g}"><div class="fill {level}" '
                f'style="width:{min(share, 1) * 100:.1f}%"></div></div>'
                f"{epsilon:.4f} / {budget:g} ({share:.0%})"
            )
        lines.append(
            f'<tr id="member-{_e(address.lower())}"><td><span class="swatch" style="background:{colors[address]}">'
            f"</span>{_hash(address)}</td><td>{sum(1 for r in rows if getattr(r, 'source', 'round') == 'round')}</td>"
            f"<td>{_fed(totals[address])}</td>"
            f"<td>{gauge}</td><td>{_status_badge(_worst(about))}</td></tr>"
        )
    body = "".join(lines)
    section = f"""
<section id="members">
  <h2>Members: rewards and privacy spent</h2>
  <div class="scroll"><table>
    <thead><tr><th>member</th><th>rounds</th><th>rewards</th><th>ε recomputed / budget</th><th>verdict</th></tr>
    </thead><tbody>{body}</tbody>
  </table></div>
</section>"""
    return section, totals


def _checks_section(report: AuditReport) -> str:
    summary = report.summary()
    rows = "".join(
        f"<tr><td><code>{_e(name)}</code></td><td>{_e(CHECKS.get(name, ''))}</td>"
        f"<td>{counts['pass']}</td><td>{counts['fail']}</td><td>{counts['warn']}</td></tr>"
        for name, counts in summary.items()
    )
    return f"""
<section id="checks">
  <h2>What was checked</h2>
  <div class="scroll"><table>
    <thead><tr><th>check</th><th>rule</th><th>passed</th><th>failed</th><th>warnings</th></tr></thead>
    <tbody>{rows}</tbody>
  </table></div>
</section>"""


def render_html(report: AuditReport) -> str:
    """The whole report as one HTML document (see the module docstring)."""
    addresses = list(dict.fromkeys(row.address for row in report.members))
    colors = {address: _PALETTE[i % len(_PALETTE)] for i, address in enumerate(addresses)}
    failed, warned = len(report.failures), len(report.warnings)
    passed = len(report.findings) - failed - warned
    verdict = "AUDIT PASSED" if report.ok else "AUDIT FAILED"
    verdict_class = "pass" if report.ok else "fail"
    failing = sorted({f.check for f in report.failures})
    why = f"failed: {', '.join(failing)}" if failing else "every check holds"
    members_html, totals = _members_section(report, colors)
    paid = sum(totals.values())
    title = f"fedchain audit of ledger {report.ledger_address or report.target}"
    chain = f"chain id {report.chain_id}" if report.chain_id is not None else "chain id unknown"
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta http-equiv="Content-Security-Policy" content="{_CSP}">
<title>{_e(title)}</title>
<style>{_CSS}</style>
</head>
<body>
<header>
  <h1>fedchain audit</h1>
  <p class="muted">ledger <code>{_e(report.ledger_address or "-")}</code> · {_e(chain)} · {_e(report.target)}</p>
</header>
<main>
<section id="verdict" class="verdict {verdict_class}" role="status">
  <h2 id="verdict-text">{verdict}</h2>
  <p>{_e(why)}{" (strict: warnings fail)" if report.strict else ""}</p>
  <div class="cards">
    <div class="card"><span class="big">{len(report.rounds)}</span>rounds</div>
    <div class="card"><span class="big">{len(addresses)}</span>members</div>
    <div class="card"><span class="big">{passed}</span>checks passed</div>
    <div class="card {"fail" if failed else ""}"><span class="big">{failed}</span>failed</div>
    <div class="card {"warn" if warned else ""}"><span class="big">{warned}</span>warnings</div>
    <div class="card"><span class="big">{_fed(paid)}</span>tokens paid to members</div>
  </div>
  <p class="muted">privacy accountant {_e(report.accountant)} · budgets from {_e(report.budget_source)}</p>
</section>
<nav><a href="#findings">findings</a><a href="#rounds">rounds</a><a href="#members">members</a>
  <a href="#charts">charts</a><a href="#checks">checks</a></nav>
{_findings_section(report)}
<section id="charts">
  <h2>Charts</h2>
  <div class="charts">
    <figure><figcaption>Cumulative ε per member (recomputed from the chain) against budget</figcaption>
      {_epsilon_chart(report.members, colors)}</figure>
    <figure><figcaption>Rewards per member (tokens)</figcaption>{_rewards_chart(totals, colors)}</figure>
  </div>
</section>
{_rounds_section(report)}
{members_html}
{_checks_section(report)}
</main>
<footer class="muted">Written by <code>fedchain audit --html</code> from chain data alone. Self-contained: this page
loads nothing from the network.</footer>
<script>{_JS}</script>
</body>
</html>
"""


#: Nothing may load from anywhere: the page is self-contained by construction, and a browser enforces it.
_CSP = "default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'; img-src data:"

_CSS = """
:root { --fg:#1f2937; --muted:#6b7280; --bg:#f8fafc; --card:#fff; --line:#e5e7eb;
  --pass:#059669; --fail:#dc2626; --warn:#d97706; }
* { box-sizing: border-box; }
body { margin:0; font:15px/1.5 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif; color:var(--fg);
  background:var(--bg); }
header, main, footer { max-width:1100px; margin:0 auto; padding:0 16px; }
header { padding-top:16px; }
h1 { margin:0; font-size:1.6rem; }
h2 { font-size:1.2rem; margin:28px 0 10px; }
code, .value { font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace; font-size:.85em;
  overflow-wrap:anywhere; }
.muted { color:var(--muted); }
a { color:#2563eb; }
.verdict { border-radius:10px; padding:14px 18px; margin-top:12px; background:var(--card);
  border:1px solid var(--line); border-left:8px solid var(--pass); }
.verdict.fail { border-left-color:var(--fail); }
.verdict h2 { margin:0; font-size:1.6rem; }
.verdict.pass h2 { color:var(--pass); }
.verdict.fail h2 { color:var(--fail); }
.cards { display:grid; grid-template-columns:repeat(auto-fit,minmax(120px,1fr)); gap:10px; margin:12px 0; }
.card { background:var(--bg); border:1px solid var(--line); border-radius:8px; padding:8px 10px;
  font-size:.85rem; color:var(--muted); }
.card .big { display:block; font-size:1.3rem; font-weight:600; color:var(--fg); }
.card.fail .big { color:var(--fail); } .card.warn .big { color:var(--warn); }
nav { position:sticky; top:0; background:var(--bg); padding:8px 0; display:flex; gap:14px;
  flex-wrap:wrap; border-bottom:1px solid var(--line); z-index:1; }
.scroll { overflow-x:auto; -webkit-overflow-scrolling:touch; }
table { border-collapse:collapse; width:100%; background:var(--card); font-size:.9rem; }
th, td { text-align:left; padding:6px 8px; border-bottom:1px solid var(--line); vertical-align:top; }
th { background:#f1f5f9; font-weight:600; white-space:nowrap; }
tr.finding.fail { background:#fef2f2; } tr.finding.warn { background:#fffbeb; }
td.nowrap, td.nowrap code { white-space:nowrap; overflow-wrap:normal; }
tr[hidden] { display:none !important; }
.badge { display:inline-block; border-radius:4px; padding:0 6px; font-size:.75rem; font-weight:700;
  color:#fff; background:var(--pass); white-space:nowrap; }
.badge.fail { background:var(--fail); } .badge.warn { background:var(--warn); }
.filters { display:flex; gap:6px; flex-wrap:wrap; margin-bottom:8px; }
.filters button { border:1px solid var(--line); background:var(--card); border-radius:6px; padding:4px 10px;
  font:inherit; font-size:.85rem; cursor:pointer; }
.filters button.active { background:var(--fg); color:#fff; }
details.round { background:var(--card); border:1px solid var(--line); border-radius:8px; margin:8px 0;
  padding:6px 12px; }
details.round.fail { border-left:6px solid var(--fail); }
details.round.warn { border-left:6px solid var(--warn); }
summary { cursor:pointer; padding:4px 0; }
dl.lineage { display:grid; grid-template-columns:max-content 1fr; gap:2px 12px; margin:8px 0; }
dl.lineage dt { color:var(--muted); } dl.lineage dd { margin:0; }
ul.problems { margin:6px 0; padding-left:18px; }
.charts { display:grid; grid-template-columns:repeat(auto-fit,minmax(300px,1fr)); gap:16px; }
figure { margin:0; background:var(--card); border:1px solid var(--line); border-radius:8px; padding:10px; }
figcaption { font-size:.9rem; color:var(--muted); margin-bottom:6px; }
svg.chart { width:100%; height:auto; display:block; }
svg .grid { stroke:var(--line); } svg .tick { font-size:11px; fill:var(--muted); }
svg .budget { stroke:var(--fail); stroke-dasharray:6 4; stroke-width:1.5; }
svg .budget-label { fill:var(--fail); }
.legend { list-style:none; padding:0; margin:6px 0 0; display:flex; flex-wrap:wrap; gap:4px 12px;
  font-size:.8rem; }
.swatch { display:inline-block; width:10px; height:10px; border-radius:2px; margin-right:5px; }
.gauge { display:inline-block; vertical-align:middle; width:90px; height:8px; background:var(--line);
  border-radius:4px; margin-right:8px; overflow:hidden; }
.gauge .fill { height:100%; background:var(--pass); } .gauge .fill.warn { background:var(--warn); }
.gauge .fill.fail { background:var(--fail); }
footer { padding:24px 16px; font-size:.8rem; }
@media (max-width: 640px) {
  body { font-size:14px; }
  h1 { font-size:1.3rem; }
  .verdict h2 { font-size:1.3rem; }
  dl.lineage { grid-template-columns:1fr; }
  th, td { padding:5px 6px; }
  /* findings become cards: one labelled line per field */
  table.findings thead { display:none; }
  table.findings, table.findings tbody, table.findings tr, table.findings td { display:block; width:100%; }
  table.findings tr { border-bottom:2px solid var(--line); padding:6px 0; }
  table.findings td { border:0; padding:1px 8px; }
  table.findings td::before { content:attr(data-label) ": "; color:var(--muted); font-size:.8em; }
  td.nowrap, td.nowrap code { white-space:normal; overflow-wrap:anywhere; }
}
"""

_JS = """
(function () {
  var buttons = document.querySelectorAll('.filters button');
  var rows = document.querySelectorAll('tr.finding');
  var empty = document.getElementById('no-problems');
  function show(filter) {
    var shown = 0;
    rows.forEach(function (row) {
      var status = row.getAttribute('data-status');
      var visible = filter === 'all' || (filter === 'pass' ? status === 'pass' : status !== 'pass');
      row.hidden = !visible;
      if (visible) { shown += 1; }
    });
    buttons.forEach(function (b) { b.classList.toggle('active', b.getAttribute('data-filter') === filter); });
    empty.hidden = !(filter === 'problems' && shown === 0);
  }
  buttons.forEach(function (b) {
    b.addEventListener('click', function () { show(b.getAttribute('data-filter')); });
  });
  show('problems');
  if (location.hash) {
    var target = document.getElementById(location.hash.slice(1));
    if (target && target.tagName === 'DETAILS') { target.open = true; }
  }
  document.querySelectorAll('a[href^="#round-"]').forEach(function (a) {
    a.addEventListener('click', function () {
      var target = document.getElementById(a.getAttribute('href').slice(1));
      if (target) { target.open = true; }
    });
  });
})();
"""
