"""The human summary at the end of `make demo`: short, readable, and it explains the numbers."""

from __future__ import annotations

from pathlib import Path

from salesopt.demo import format_summary
from salesopt.summary import RunSummary, StageReport

SEGMENTS = [
    {"segment_id": i, "label": label, "size": size, "share": size / 2000, "revenue_share": rev}
    for i, (label, size, rev) in enumerate(
        [("high value, frequent", 190, 0.55), ("mid value, regular", 500, 0.25),
         ("low value, infrequent", 400, 0.05), ("at risk", 300, 0.08), ("lapsed", 250, 0.04),
         ("new customers", 140, 0.01), ("one-time buyers", 120, 0.01),
         ("mid value, frequent", 100, 0.01)]
    )
]  # fmt: skip


def _summary() -> RunSummary:
    silver = {
        "reconciliation": {"raw_lines_read": 183732, "accepted": 180708, "quarantined": 2159,
                           "superseded_duplicates": 865, "balanced": True},
        "quarantine_reasons": {"invalid_price": 476, "malformed_record": 451,
                               "unknown_product": 437, "future_timestamp": 404,
                               "missing_required": 391},
        "dimensions": {"silver/products": {"rows_read": 200, "unknown_columns": {}}},
    }  # fmt: skip
    segment = {
        "k": 4, "segments": SEGMENTS, "churn_risk":
        {"customers": 550, "share": 0.275, "yearly_revenue": 171468.3},
        "sweep": [{"k": k, "silhouette": 0.5, "cost": 1.0} for k in range(3, 13)],
        "k_at_edge": "k=12 is the largest k tried (k_max 8 + k_widen 4): more clusters may fit "
        "better; raise segmentation.k_max",
    }  # fmt: skip
    recommend = {
        "k": 10, "served_method": "blend_0.9", "served_precision_at_k": 0.3204,
        "best_baseline": "own_history", "best_baseline_precision_at_k": 0.2987,
        "served_vs_best_baseline": 1.07, "evaluated_customers": 901,
        "holdout_precision_at_k": {"als": 0.28, "popular": 0.1},
    }  # fmt: skip
    forecast = {
        "products": 200, "status_counts": {"ok": 197, "fallback": 3},
        "backtest_horizon": 8, "backtest_mase_model": 0.8575,
        "backtest_mase_seasonal_naive": 1.0455, "backtest": {"arima": {"mase": 0.78}},
    }  # fmt: skip
    optimize = {"total_suggested_order_units": 5559, "price_changes_suggested": 113,
                "products_elasticity_ok": 168, "median_elasticity": -1.33}  # fmt: skip
    monitor = {"anomalies": {"outside_interval": 0, "drop_to_zero": 2, "segment_shift": 0}}
    strategy = {"segments": 7, "actions_recommended": 9,
                "actions": {"channel": 5, "promotion": 2, "win_back": 2}}  # fmt: skip
    stages = [
        StageReport(
            "ingest", "succeeded", 8.1, summary={"lines": 183732, "files_delivered_later": 2}
        ),
        StageReport("silver", "succeeded", 28.4, summary=silver),
        StageReport("gold", "succeeded", 18.6),
        StageReport("segment", "succeeded", 40.0, summary=segment),
        StageReport("recommend", "succeeded", 62.5, summary=recommend),
        StageReport("forecast", "succeeded", 30.9, summary=forecast),
        StageReport("optimize", "succeeded", 18.0, summary=optimize),
        StageReport("strategy", "succeeded", 12.0, summary=strategy),
        StageReport("monitor", "succeeded", 1.7, summary=monitor),
    ]
    return RunSummary("2025-06-30_x", "2025-06-30", "succeeded", 211.3, stages)


def test_demo_summary_is_short_and_says_what_ran_found_and_where_to_look() -> None:
    text = format_summary(_summary(), "/w/warehouse", Path("/w/report/report.html"), 183868)
    lines = text.splitlines()
    assert len(lines) <= 40
    assert max(len(line) for line in lines) <= 120
    assert not any("{" in line for line in lines)  # no dicts dumped
    assert lines[0] == "salesopt demo, as of 2025-06-30: succeeded in 3m 31s"
    # the gap between generated and read lines is explained
    assert (
        "183,868 lines generated, 183,732 read: the other 136 are in 2 file(s) delivered "
        "after 2025-06-30" in text
    )
    assert (
        "183,732 lines read = 180,708 accepted + 2,159 quarantined + 865 superseded "
        "duplicates (balanced)" in text
    )
    assert (
        "quarantined by reason: invalid price 476, malformed record 451, unknown product 437 "
        "and 2 more reasons" in text
    )
    assert "high value, frequent" in text and "... 2 more segments in the report" in text
    assert "at risk or lapsed: 550 customers (28%), 171,468 a year of revenue at stake" in text
    assert "note: k=12 is the largest k tried" in text
    assert "served list: blend_0.9, precision@10 0.320 vs own_history 0.299 (1.07x)" in text
    assert "200 products: fallback 3, ok 197" in text
    assert "MASE 0.86 vs seasonal naive 1.05" in text
    assert "replenishment: order 5,559 units" in text and "anomalies: 2 flagged" in text
    assert (
        "  segments: 9 actions recommended (channel 5, promotion 2, win back 2) over 7 segments"
        in lines
    )
    assert "  report: /w/report/report.html" in lines


def test_a_rerun_reads_nothing_new_and_says_so() -> None:
    summary = _summary()
    silver = summary.stages[1].summary["reconciliation"]
    silver.update(raw_lines_read=0, accepted=0, quarantined=0, superseded_duplicates=0)
    text = format_summary(summary, "/w", None, 183868)
    assert "no new landing lines since the last refresh" in text
    assert "lines generated" not in text and "report:" not in text
