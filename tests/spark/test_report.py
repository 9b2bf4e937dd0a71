"""The HTML report renders every section with real numbers from a small run."""

from __future__ import annotations

import re
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
    "Recommendations": "recommend",
    "Replenishment": "optimize",
    "Price suggestions": "optimize",
}


def _sections(text: str) -> dict[str, str]:
    parts = re.split(r"<h2>(.*?)</h2>", text)
    return {parts[i]: parts[i + 1] for i in range(1, len(parts) - 1, 2)}


def test_report_has_every_section_with_numbers(
    spark: SparkSession, small_refresh, tmp_path: Path
) -> None:
    settings, _, _ = small_refresh
    path = build_report(spark, Warehouse.from_settings(settings), SMALL_AS_OF, tmp_path / "report")
    text = path.read_text()
    sections = _sections(text)
    assert list(sections) == list(SECTIONS)
    assert "http://" not in text and "https://" not in text
    kpi = re.findall(r"<b>([\d,]+)</b>", sections["Headline KPIs"])
    assert len(kpi) == 4 and int(kpi[0].replace(",", "")) > 0
    for name in ("Headline KPIs", "History and forecast"):
        image = re.search(r'src="([^"]+\.png)"', sections[name])
        assert image and (path.parent / image.group(1)).stat().st_size > 5_000
    assert {*TABLE_FOR_SECTION.values(), "monitor"} <= set(STAGES)
    for name in TABLE_FOR_SECTION:
        assert "<table" in sections[name], name
        assert re.search(r"<td>-?\d[\d,.]*</td>", sections[name]), name
    # A first as_of has no earlier forecast to compare actuals with: the monitor writes its table
    # and the section must say it has no rows, not that the table is missing.
    assert "Not available" not in sections["Anomalies"]
    assert "<table" in sections["Anomalies"] or "No rows." in sections["Anomalies"]
    quality = sections["Data quality"]
    assert "malformed_record" in quality and "quantity_plausible" in quality
