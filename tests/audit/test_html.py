"""``fedchain audit --html``: a self-contained page, opened in a real headless Chromium.

The chain is a TamperLedger (equal split instead of the published rule) with real DP records, so
the page must show a failed verdict and the failing round, member and field. Chromium (Debian's
``chromium`` package; ``.ci/run`` installs it) loads the page from a file with an error collector
injected first: no script error, no console error, no blocked request (the page's own
Content-Security-Policy forbids any network load), then takes laptop and phone screenshots.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from fedchain.audit import audit_ledger
from fedchain.audit.html import write_html
from fedchain.ledger import Chain

from .helpers import DELTA, FLAW_EQUAL_SPLIT, Federation, deploy_tamper_ledger

ROOT = Path(__file__).resolve().parents[2]

# Injected before the page's own script: collects errors, console errors and CSP violations into the DOM.
COLLECTOR = """<script>
window.__problems = [];
window.addEventListener('error', function (e) { window.__problems.push('error: ' + e.message); });
window.addEventListener('unhandledrejection', function (e) { window.__problems.push('rejection: ' + e.reason); });
document.addEventListener('securitypolicyviolation', function (e) {
  window.__problems.push('csp: ' + e.violatedDirective + ' ' + e.blockedURI); });
var __consoleError = console.error;
console.error = function () { window.__problems.push('console: ' + Array.from(arguments).join(' '));
  __consoleError.apply(console, arguments); };
window.addEventListener('load', function () { setTimeout(function () {
  var verdict = document.getElementById('verdict-text');
  var failed = document.querySelector('tr.finding.fail');
  var box = function (el) { var r = el.getBoundingClientRect(); return r.width > 0 && r.height > 0 && !el.hidden; };
  document.body.setAttribute('data-probe', JSON.stringify({
    problems: window.__problems,
    verdict: verdict.textContent, verdictVisible: box(verdict),
    failedRowVisible: failed !== null && box(failed), failedRowText: failed ? failed.innerText : '',
    scrollWidth: document.documentElement.scrollWidth, innerWidth: window.innerWidth}));
}, 50); });
</script>"""


@pytest.fixture(scope="module")
def tampered_report(chain: Chain, members: list[str]):
    ledger = deploy_tamper_ledger(chain, FLAW_EQUAL_SPLIT)
    ledger.register_members(members)
    federation = Federation(ledger, members, sizes=[120, 150, 200])
    for _ in range(3):
        federation.record()
    report = audit_ledger(ledger, default_budget=(10.0, DELTA), target="tampered test chain")
    assert not report.ok
    return report


def test_the_page_is_self_contained_and_names_the_failure(tampered_report, tmp_path):
    page = write_html(tampered_report, tmp_path / "report").read_text()
    assert "AUDIT FAILED" in page and "rewards.rule" in page
    failing = next(f for f in tampered_report.failures if f.check == "rewards.rule")
    assert f'href="#round-{failing.round}"' in page and failing.member in page and failing.field in page
    # Nothing is fetched from anywhere: no external URLs in src/href, no @import, no url() beyond data:.
    assert not re.search(r"""(src|href)=["'](https?:)?//""", page)
    assert "@import" not in page and not re.search(r"url\((?!data:)", page)
    assert "default-src 'none'" in page


def _chromium() -> str:
    binary = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
    if binary is None:
        pytest.skip("Chromium is not installed (apt-get install chromium; .ci/run installs it)")
    return binary


def _run_chromium(binary: str, tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    flags = [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--no-first-run",
        "--disable-extensions",
        "--disable-background-networking",
        "--hide-scrollbars",
        f"--user-data-dir={tmp_path / 'chromium-profile'}",
        "--enable-logging=stderr",
        "--v=0",
    ]
    return subprocess.run([binary, *flags, *args], capture_output=True, text=True, timeout=120, check=False)


@pytest.mark.integration
@pytest.mark.parametrize(("device", "size"), [("laptop", "1280,900"), ("phone", "390,844")])
def test_chromium_loads_the_report_without_errors_and_shows_the_finding(tampered_report, tmp_path, device, size):
    binary = _chromium()
    report_dir = tmp_path / "report"
    page = write_html(tampered_report, report_dir)
    probed = report_dir / "probed.html"
    probed.write_text(page.read_text().replace("<head>", "<head>" + COLLECTOR, 1))

    dumped = _run_chromium(
        binary, tmp_path, f"--window-size={size}", "--virtual-time-budget=3000", "--dump-dom", probed.as_uri()
    )
    assert dumped.returncode == 0, dumped.stderr[-2000:]
    match = re.search(r"data-probe=\"([^\"]*)\"", dumped.stdout)
    assert match, dumped.stdout[-2000:]
    probe = json.loads(match.group(1).replace("&quot;", '"').replace("&amp;", "&"))
    assert probe["problems"] == []
    assert probe["verdict"] == "AUDIT FAILED" and probe["verdictVisible"]
    assert probe["failedRowVisible"] and "rewards.rule" in probe["failedRowText"]
    assert probe["scrollWidth"] <= probe["innerWidth"] + 1, "the page scrolls sideways: not responsive"
    console_errors = [line for line in dumped.stderr.splitlines() if "CONSOLE" in line and "ERROR" in line.upper()]
    assert not [line for line in console_errors if "probed.html" in line or "Uncaught" in line], console_errors

    screenshot = tmp_path / f"audit-{device}.png"
    width = size.split(",")[0]
    shot = _run_chromium(binary, tmp_path, f"--window-size={width},2400", f"--screenshot={screenshot}", page.as_uri())
    assert shot.returncode == 0, shot.stderr[-2000:]
    assert screenshot.is_file() and screenshot.stat().st_size > 10_000
    keep = os.environ.get("FEDCHAIN_SCREENSHOT_DIR")
    if keep:
        Path(keep).mkdir(parents=True, exist_ok=True)
        shutil.copyfile(screenshot, Path(keep) / screenshot.name)
