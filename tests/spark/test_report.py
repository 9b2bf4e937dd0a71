"""The HTML report: every section with real numbers from a small run, rendered in a real browser."""

from __future__ import annotations

import json
import re
import shutil
import struct
import subprocess
import tempfile
from html.parser import HTMLParser
from pathlib import Path

import pytest
from pyspark.sql import SparkSession

from salesopt.io.tables import Warehouse
from salesopt.pipeline import STAGES
from salesopt.report import SECTIONS, build_report
from tests.conftest import SMALL_AS_OF

pytestmark = [pytest.mark.spark, pytest.mark.e2e]
TABLE_FOR_SECTION = {
    "Forecast accuracy": "forecast",
    "Customer segments": "segment",
    "Strategy by segment": "strategy",
    "Recommendations": "recommend",
    "Replenishment": "optimize",
    "Price suggestions": "optimize",
}
# after the page's load event, record what the browser made of each image in the DOM
PROBE = """<script>
window.addEventListener("load", () => {
  const images = Array.from(document.images).map(i => ({ok: i.complete, width: i.naturalWidth}));
  document.body.setAttribute("data-images", JSON.stringify(images));
});
</script>"""


@pytest.fixture(scope="module")
def report(spark: SparkSession, small_refresh, tmp_path_factory) -> Path:
    settings, _, _ = small_refresh
    out = tmp_path_factory.mktemp("report")
    return build_report(spark, Warehouse.from_settings(settings), SMALL_AS_OF, out)


def _sections(text: str) -> dict[str, str]:
    parts = re.split(r"<h2>(.*?)</h2>", text)
    return {parts[i]: parts[i + 1] for i in range(1, len(parts) - 1, 2)}


def test_report_has_every_section_with_numbers(report: Path) -> None:
    text = report.read_text()
    sections = _sections(text)
    assert list(sections) == list(SECTIONS)
    assert "http://" not in text and "https://" not in text
    kpi = re.findall(r"<b>([^<]+)</b>", sections["Headline KPIs"])
    assert len(kpi) >= 4 and int(re.sub(r"\D", "", kpi[0])) > 0
    assert "USD" in kpi[0]  # the currency comes from the order lines
    for name in ("Headline KPIs", "History and forecast"):
        assert re.search(r'src="data:image/png;base64,[A-Za-z0-9+/=]{5000,}"', sections[name])
    assert {*TABLE_FOR_SECTION.values(), "monitor"} <= set(STAGES)
    for name in TABLE_FOR_SECTION:
        assert "<table" in sections[name], name
        assert re.search(r'<td class="num">-?\d[\d,.]*%?</td>', sections[name]), name
    # a first as_of has no earlier forecast: the section says what was checked instead
    anomalies = sections["Anomalies"]
    assert "<table" in anomalies or re.search(r"No anomalies: [\d,]+ products checked", anomalies)
    quality = sections["Data quality"]
    assert "malformed record" in quality and "quantity_plausible" in quality
    cut = re.search(r"Top (\d+) of ([\d,]+) products", sections["Replenishment"])
    assert cut and int(cut.group(1)) < int(cut.group(2).replace(",", ""))
    csv = report.parent / "replenishment_plan.csv"
    assert len(csv.read_text().splitlines()) == int(cut.group(2).replace(",", "")) + 1
    assert re.search(r"<td>(bought before|similar customers bought it|popular in the segment)</td>",
                     sections["Recommendations"])  # fmt: skip
    strategy = sections["Strategy by segment"]
    assert re.search(r"<td>(recommended|not recommended|insufficient evidence)</td>", strategy)
    assert "No earlier playbook to check" in strategy  # a first as_of: nothing to check yet
    assert (report.parent / "segment_playbook.csv").exists()
    churn = sections["Customers at risk"]  # the at-risk and lapsed segments, ids -4 and -3
    assert "No customer is at risk or lapsed." in churn or re.search(
        r"<td>(at risk|lapsed)</td>", churn
    )


class _Dom(HTMLParser):
    """Headings, table headers, captions and the probe's image record of a dumped DOM."""

    def __init__(self) -> None:
        super().__init__()
        self.h2: list[str] = []
        self.th: list[str] = []
        self.captions: list[str] = []
        self.images: list[dict] = []
        self._tag: str | None = None
        self._class: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        self._tag, self._class = tag, a.get("class")
        if tag == "body" and a.get("data-images"):
            self.images = json.loads(a["data-images"] or "[]")

    def handle_endtag(self, tag: str) -> None:
        self._tag = None

    def handle_data(self, data: str) -> None:
        if self._tag == "h2":
            self.h2.append(data.strip())
        elif self._tag == "th":
            self.th.append(data.strip())
        elif self._tag == "p" and self._class == "caption":
            self.captions.append(data.strip())


def _chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if not found:
        pytest.fail("chromium is not installed: `make test` installs it (Debian package chromium)")
    return found


# networking features off: a page that tried to reach the network would show missing content
FLAGS = (
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--hide-scrollbars",
)  # fmt: skip


def _browser(*args: str) -> subprocess.CompletedProcess[str]:
    with tempfile.TemporaryDirectory() as profile:
        return subprocess.run(
            [_chromium(), *FLAGS, f"--user-data-dir={profile}", *args],
            capture_output=True, text=True, timeout=120, check=True,
        )  # fmt: skip


def test_report_renders_in_a_real_browser(report: Path, tmp_path: Path) -> None:
    probed = tmp_path / "report.html"
    probed.write_text(report.read_text().replace("</body>", PROBE + "</body>"))
    dom = _Dom()
    dom.feed(_browser("--dump-dom", probed.as_uri()).stdout)
    assert dom.h2 == list(SECTIONS)
    assert dom.th and not [h for h in dom.th if "_" in h]  # no raw field names in headers
    assert any(re.match(r"Top \d+ of [\d,]+ products", c) for c in dom.captions), dom.captions
    assert len(dom.images) >= 4 and all(i["ok"] and i["width"] > 300 for i in dom.images)
    shot = tmp_path / "report.png"
    _browser("--window-size=1200,3000", f"--screenshot={shot}", report.as_uri())
    header = shot.read_bytes()[:24]
    assert header[:8] == b"\x89PNG\r\n\x1a\n"
    assert struct.unpack(">II", header[16:24]) == (1200, 3000)
    assert shot.stat().st_size > 50_000  # a rendered page, not a blank one
