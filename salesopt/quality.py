"""Declarative expectations: (table, name, SQL boolean expression, action).

A row passes a rule when the expression is true; false or null fails it. Actions:
- `warn`: counted and recorded, rows kept;
- `quarantine`: failing rows leave the table for quarantine with reason `rule:<name>`
  (only where the stage has a quarantine: silver/order_lines);
- `fail`: the stage raises QualityGateFailed before writing anything.

Every evaluation is recorded in `ops/quality_results` (one row per run, table and rule).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from salesopt.config import QualityRule
from salesopt.errors import ConfigError, QualityGateFailed
from salesopt.io.tables import Warehouse

log = logging.getLogger(__name__)

RESULTS_TABLE = ("ops", "quality_results")
_RESULT_SCHEMA = (
    "run_id string, as_of date, table_name string, rule string, expr string, action string, "
    "rows_checked long, rows_failed long, passed boolean"
)


@dataclass(frozen=True)
class RuleResult:
    table: str
    rule: str
    expr: str
    action: str
    rows_checked: int
    rows_failed: int

    @property
    def passed(self) -> bool:
        return self.rows_failed == 0


def rules_for(rules: Sequence[QualityRule], table: str) -> list[QualityRule]:
    return [r for r in rules if r.table == table]


def _fails(rule: QualityRule) -> F.Column:
    return ~F.coalesce(F.expr(rule.expr).cast("boolean"), F.lit(False))


def evaluate(df: DataFrame, table: str, rules: Sequence[QualityRule]) -> list[RuleResult]:
    """Counts failing rows for every rule on `table` in one pass over `df`."""
    selected = rules_for(rules, table)
    if not selected:
        return []
    try:
        aggs = [F.count(F.lit(1)).alias("_n")] + [
            F.sum(_fails(r).cast("long")).alias(f"_r{i}") for i, r in enumerate(selected)
        ]
        row = df.agg(*aggs).first()
    except Exception as exc:
        raise ConfigError(
            f"quality rule on {table} cannot be evaluated: {exc}".split("\n")[0]
        ) from None
    checked = int(row["_n"]) if row else 0
    return [
        RuleResult(
            table, r.name, r.expr, r.action, checked, int((row[f"_r{i}"] or 0) if row else 0)
        )
        for i, r in enumerate(selected)
    ]


def _quarantining(rules: Sequence[QualityRule], table: str) -> list[QualityRule]:
    return [r for r in rules_for(rules, table) if r.action == "quarantine"]


def _code(rule: QualityRule) -> str:
    return f"rule:{rule.name}"


def quarantine_codes(table: str, rules: Sequence[QualityRule]) -> list[str]:
    """The reason codes `quarantine_reason` can give."""
    return [_code(r) for r in _quarantining(rules, table)]


def quarantine_reason(table: str, rules: Sequence[QualityRule]) -> F.Column:
    """`rule:<name>` of the first `quarantine` rule on `table` a row fails; null when it passes."""
    reason = F.lit(None).cast("string")
    for rule in reversed(_quarantining(rules, table)):
        reason = F.when(_fails(rule), F.lit(_code(rule))).otherwise(reason)
    return reason


def record(
    spark: SparkSession,
    warehouse: Warehouse,
    results: Sequence[RuleResult],
    run_id: str,
    as_of: date,
) -> None:
    """Appends results to ops/quality_results and logs every failing rule."""
    if not results:
        return
    rows = [
        (run_id, as_of, r.table, r.rule, r.expr, r.action, r.rows_checked, r.rows_failed, r.passed)
        for r in results
    ]
    warehouse.append(spark.createDataFrame(rows, _RESULT_SCHEMA), *RESULTS_TABLE)
    for r in results:
        if not r.passed:
            log.warning(
                "quality %s on %s: %d of %d rows fail '%s' (action %s)",
                r.rule, r.table, r.rows_failed, r.rows_checked, r.expr, r.action,
            )  # fmt: skip


def _failed_gates(results: Sequence[RuleResult]) -> list[RuleResult]:
    return [r for r in results if r.action == "fail" and not r.passed]


def enforce(results: Sequence[RuleResult]) -> None:
    """Raises QualityGateFailed naming every failed `fail` rule."""
    failed = _failed_gates(results)
    if failed:
        detail = "; ".join(
            f"{r.table}.{r.rule}: {r.rows_failed} rows fail '{r.expr}'" for r in failed
        )
        raise QualityGateFailed(f"quality gate failed, nothing downstream written ({detail})")


def enforce_recorded(
    spark: SparkSession,
    warehouse: Warehouse,
    results: Sequence[RuleResult],
    unrecorded: Sequence[RuleResult],
    run_id: str,
    as_of: date,
) -> None:
    """`enforce`, appending `unrecorded` to ops/quality_results first when a gate fails.

    For a stage that records its results after writing: `unrecorded` are the stage's results
    not yet recorded (`results` among them), so the row that explains the stop is recorded.
    """
    if _failed_gates(results):
        record(spark, warehouse, unrecorded, run_id, as_of)
        enforce(results)
