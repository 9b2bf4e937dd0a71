"""Typed, frozen settings loaded once from layered YAML, environment variables and CLI flags.

Layering (later wins): model defaults (mirrored in conf/base.yaml) <- conf/base.yaml <- the
environment file (conf/local.yaml, conf/cluster.yaml, ...) <- `SALESOPT_<SECTION>__<KEY>`
environment variables <- CLI flags. Every error names the key, where its value came from and the
expected form; it is raised before any Spark session starts. Secrets (the PII key) are read from
the environment at the point of use and never from a file.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from datetime import date
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from salesopt.errors import ConfigError

ENV_PREFIX = "SALESOPT_"
ENV_SEPARATOR = "__"


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class PathSettings(_Section):
    warehouse: str = "./warehouse"
    landing: str = "./data/landing"
    checkpoint: str | None = None  # default: <warehouse>/_checkpoints

    @property
    def checkpoint_dir(self) -> str:
        return self.checkpoint or f"{self.warehouse.rstrip('/')}/_checkpoints"


class SparkSettings(_Section):
    app_name: str = "salesopt"
    master: str = "local[*]"  # used only when salesopt starts Spark itself
    remote: str | None = None  # a Spark Connect server (sc://host:port); also $SPARK_REMOTE
    driver_memory: str = Field(default="6g", pattern=r"^\d+[kmgt]$")
    shuffle_partitions: int = Field(default=8, ge=1, le=100_000)
    ui_enabled: bool = True
    log_level: Literal["ERROR", "WARN", "INFO", "DEBUG"] = "WARN"
    jars_dir: str | None = None  # default: $SALESOPT_JARS_DIR, then ./.jars
    extra_jars_dir: str | None = None  # more jars for the embedded session (S3A: .jars-s3)
    conf: dict[str, str] = Field(default_factory=dict)  # any Spark conf key, added or overridden


class CatalogSettings(_Section):
    catalog: str | None = None  # Unity Catalog name: tables become catalog.schema_layer.name
    schema_prefix: str | None = None  # registers <schema_prefix>_<layer>.<name> when set


class GenerateSettings(_Section):
    customers: int = Field(default=2_000, ge=10)
    products: int = Field(default=200, ge=5)
    days: int = Field(default=540, ge=30)
    start_date: date = date(2024, 1, 8)
    seed: int = 42
    dirty_rate: float = Field(default=0.02, ge=0.0, le=0.5)


class IngestSettings(_Section):
    format: Literal["json", "csv"] = "json"
    max_files_per_batch: int = Field(default=10_000, ge=1)


class CleanSettings(_Section):
    late_window_days: int = Field(default=14, ge=0)
    pii_key_env: str = "SALESOPT_PII_KEY"
    # `<scope>/<key>` of a Databricks secret, read with dbutils when the variable is unset
    # (serverless jobs have no environment variables)
    pii_key_secret: str | None = Field(default=None, pattern=r"^[^/\s]+/[^/\s]+$")
    unknown_product: Literal["quarantine", "flag"] = "quarantine"
    max_future_days: int = Field(default=1, ge=0)
    # a file (or a whole batch) whose rejected share is above these is reported by name, and
    # stops the refresh before the batch is written unless rejected_share_action is `warn`;
    # files and batches with fewer than rejected_share_min_lines lines are not judged by share
    max_rejected_share_per_file: float = Field(default=0.5, ge=0.0, le=1.0)
    max_rejected_share_per_batch: float = Field(default=0.2, ge=0.0, le=1.0)
    rejected_share_min_lines: int = Field(default=10, ge=1)
    rejected_share_action: Literal["warn", "fail"] = "fail"


class QualityRule(_Section):
    table: str
    name: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    expr: str
    action: Literal["warn", "quarantine", "fail"] = "warn"


DEFAULT_RULES = (
    QualityRule(
        table="silver/order_lines",
        name="quantity_plausible",
        expr="abs(quantity) <= 10000",
        # warn, not quarantine: dropping the biggest lines drops the low-price, promotion
        # weeks and flips elasticity signs (docs/decisions/0015-elasticity-within-stores.md)
        action="warn",
    ),
    QualityRule(
        table="silver/order_lines",
        name="discount_within_gross",
        expr="abs(discount) <= abs(gross_amount) + 0.01",
        action="warn",
    ),
    QualityRule(
        table="gold/sales_daily",
        name="net_units_not_above_gross",
        expr="units <= gross_units AND returned_units >= 0",
        action="fail",
    ),
    QualityRule(
        table="gold/sales_weekly",
        name="net_units_not_above_gross",
        expr="units <= gross_units AND returned_units >= 0",
        action="fail",
    ),
    QualityRule(
        table="gold/customer_features",
        name="recency_within_tenure",
        expr="recency_days >= 0 AND tenure_days >= recency_days AND frequency > 0",
        action="fail",
    ),
    QualityRule(
        table="gold/interactions",
        name="strength_non_negative",
        expr="strength >= 0 AND n_purchases > 0",
        action="fail",
    ),
)


class QualitySettings(_Section):
    rules: tuple[QualityRule, ...] = DEFAULT_RULES


class FeatureSettings(_Section):
    recency_half_life_days: float = Field(default=90.0, gt=0)
    history_days: int = Field(default=730, ge=30)
    # customer_features / interactions: a full slice is written once the change slices since the
    # last full one hold this share of its rows (bounds what a reader resolves; docs/tables.md)


class SegmentationSettings(_Section):
    k: int | None = Field(default=None, ge=2, le=50)  # fixed k; None = sweep k_min..k_max
    k_min: int = Field(default=3, ge=2, le=50)
    k_max: int = Field(default=8, ge=2, le=50)
    k_widen: int = Field(default=4, ge=0, le=20)  # ks tried beyond k_max while the best is k_max
    max_iter: int = Field(default=50, ge=1)
    init_steps: int = Field(default=5, ge=1, le=50)  # k-means|| initialisation rounds
    init_runs: int = Field(default=3, ge=1, le=20)  # fits per k (seed, seed+1, ...): lowest cost
    seed: int = 7
    refit: bool = True
    min_orders: int = Field(default=2, ge=1)  # fewer orders -> "one-time buyers" segment
    min_tenure_days: int = Field(default=30, ge=0)  # first order more recent -> "new customers"
    at_risk_gaps: float = Field(default=2.0, gt=0)  # silent > this many expected gaps -> at risk
    lapsed_gaps: float = Field(default=4.0, gt=0)  # silent > this many expected gaps -> lapsed
    share_shift_alert: float = Field(default=0.05, gt=0, lt=1)

    @model_validator(mode="after")
    def _range(self) -> SegmentationSettings:
        if self.k_min > self.k_max:
            raise ValueError("k_min must be <= k_max")
        if self.at_risk_gaps >= self.lapsed_gaps:
            raise ValueError("at_risk_gaps must be < lapsed_gaps")
        return self


class RecommendSettings(_Section):
    rank: int = Field(default=16, ge=1, le=500)
    reg_param: float = Field(default=0.05, ge=0)
    alpha: float = Field(default=10.0, gt=0)
    max_iter: int = Field(default=10, ge=1)
    seed: int = 11
    holdout_days: int = Field(default=28, ge=1)
    k: int = Field(default=10, ge=1, le=500)
    top_n: int = Field(default=10, ge=1, le=500)
    exclude_bought: bool = True
    repurchase_categories: tuple[str, ...] = ()
    grid: bool = False
    grid_ranks: tuple[int, ...] = (8, 16, 32)
    grid_reg_params: tuple[float, ...] = (0.01, 0.1)
    grid_alphas: tuple[float, ...] = (5.0, 20.0)
    checkpoint_interval: int = Field(default=10, ge=-1)  # effective with spark.checkpoint.dir set
    block_rows: int = Field(default=1_000_000, ge=1_000)  # ratings per ALS block (user and item)
    max_blocks: int = Field(default=200, ge=1)
    max_candidates: int = Field(default=200, ge=1)  # candidate depth cap (ALS and popular)
    strength_transform: Literal["log1p", "raw"] = "log1p"
    # served method: "auto" chooses on the validation window (docs/recommendations.md)
    method: Literal[
        "auto", "popular", "own_history", "own_history_decay", "buy_again", "als", "blend"
    ] = "auto"
    # the blend weights validation chooses among
    blend_weights: tuple[Annotated[float, Field(ge=0, lt=1)], ...] = (0.25, 0.5, 0.75, 0.9)
    buy_again_weight: float = Field(default=0.5, ge=0, le=1)  # `method: blend`: w*buy_again + ...
    min_evaluated_customers: int = Field(default=200, ge=1)  # fewer: the summary warns
    # validation: methods within this share of the best precision compete on new products
    selection_tolerance: float = Field(default=0.01, ge=0, le=1)
    min_repurchase_rate: float = Field(default=0.1, ge=0, le=1)  # category repurchase detection
    new_product_days: int = Field(default=60, ge=0)  # launched within this window: "new product"


class ForecastSettings(_Section):
    frequency: Literal["daily", "weekly", "monthly"] = "weekly"
    horizon: int = Field(default=8, ge=1, le=366)
    history_periods: int = Field(default=156, ge=8)
    min_obs: int = Field(default=16, ge=4)
    interval_levels: tuple[float, ...] = (0.8, 0.95)
    order: tuple[int, int, int] | None = None  # fixed (p, d, q); None = automatic selection
    time_limit_s: float = Field(default=20.0, gt=0)
    backtest_folds: int = Field(default=3, ge=0, le=52)
    backtest_horizon: int | None = Field(default=None, ge=1)  # None: the forecast horizon
    max_failure_share: float = Field(default=0.05, ge=0, le=1)
    partitions: int | None = Field(default=None, ge=1)  # default: 4 x default parallelism
    max_models: int = Field(default=16, ge=1, le=100)  # stepwise candidates ranked per series
    max_iter: int = Field(default=100, ge=1)  # optimizer iterations of the final MLE fit
    explode_factor: float = Field(default=3.0, gt=1)  # forecast > factor x max(history): fallback
    intermittent_share: float = Field(default=0.5, ge=0, le=1)  # zero share above: TSB
    calibrate: bool = True  # scale interval widths to the backtest coverage (conformal)
    calibration_min_points: int = Field(default=200, ge=1)  # scores a group needs for a factor


OVERRIDE_KEYS = ("lead_time_days", "review_period_days", "service_level")


class OptimizeSettings(_Section):
    lead_time_days: int = Field(default=7, ge=0)
    review_period_days: int = Field(default=7, ge=1)
    # R_S: up to S at every review; s_S: up to S only at or below the reorder point s (orders
    # can go out at every refresh)
    policy: Literal["R_S", "s_S"] = "R_S"
    service_level: float = Field(default=0.95, gt=0.5, lt=1)
    category_overrides: dict[str, dict[str, float]] = Field(default_factory=dict)
    max_price_change: float = Field(default=0.10, gt=0, le=1)
    min_margin: float = Field(default=0.05, ge=0, lt=1)
    elasticity_range: tuple[float, float] = (-6.0, -0.2)
    significance: float = Field(default=0.05, gt=0, lt=1)
    min_price_cv: float = Field(default=0.02, ge=0)
    min_distinct_prices: int = Field(default=3, ge=2)
    min_obs: int = Field(default=40, ge=10)  # location-weeks with sales for a regression
    # a linear trend in the elasticity regression (products grow and decline)
    elasticity_trend: bool = True
    # a product with more of its lines in the history quarantined is refused (status censored)
    max_quarantined_share: float = Field(default=0.05, ge=0, le=1)
    history_days: int = Field(default=730, ge=60)  # days of order lines the elasticity uses
    price_window_days: int = Field(default=28, ge=1)  # current price and units: last N days
    price_grid_steps: int = Field(default=41, ge=3, le=1001)
    partitions: int | None = Field(default=None, ge=1)  # default: Spark default parallelism

    @model_validator(mode="after")
    def _check(self) -> OptimizeSettings:
        low, high = self.elasticity_range
        if low >= high:
            raise ValueError("elasticity_range must be (low, high) with low < high")
        for category, values in self.category_overrides.items():
            unknown = sorted(set(values) - set(OVERRIDE_KEYS))
            if unknown:
                raise ValueError(
                    f"category_overrides.{category}: unknown key(s) {unknown}; "
                    f"expected {list(OVERRIDE_KEYS)}"
                )
            level = values.get("service_level", self.service_level)
            if not 0.5 < level < 1:
                raise ValueError(f"category_overrides.{category}.service_level must be in (0.5, 1)")
            if values.get("lead_time_days", 0) < 0 or values.get("review_period_days", 1) < 1:
                raise ValueError(
                    f"category_overrides.{category}: lead_time_days must be >= 0 and "
                    "review_period_days >= 1"
                )
        return self


class StrategySettings(_Section):
    # strategy per segment (salesopt/strategy): response estimates, playbook, KPIs
    history_days: int = Field(default=730, ge=60)  # order lines the price response uses
    # best sellers pooled in the price response (product dummies: a dense matrix per segment)
    max_products: int = Field(default=200, ge=1, le=1000)
    min_obs: int = Field(default=100, ge=10)  # product-weeks with a purchase, per segment
    min_products: int = Field(default=5, ge=1)
    min_price_cv: float = Field(default=0.02, ge=0)
    min_promo_weeks: int = Field(default=20, ge=1)  # product-weeks on promotion for a lift
    window_days: int = Field(default=90, ge=7)  # channel mix, basket, pace, reactivation
    min_orders: int = Field(default=30, ge=2)  # orders (or customers) behind a share or mean
    kpi_weeks: int = Field(default=13, ge=4)  # weeks behind a monitored KPI's expected range
    # a refresh checks the KPIs of the latest playbook at least this many days old
    kpi_min_days: int = Field(default=7, ge=1)
    max_promo_depth: float = Field(default=0.5, gt=0, lt=1)
    promo_depth_step: float = Field(default=0.05, gt=0, lt=1)
    significance: float = Field(default=0.05, gt=0, lt=1)


class MonitorSettings(_Section):
    min_severity_z: float = Field(default=1.0, ge=0)
    zero_run_periods: int = Field(default=2, ge=1)
    interval_level: float = Field(default=0.8, gt=0, lt=1)  # forecast interval compared with
    medium_z: float = Field(default=2.0, gt=0)  # severity medium from this z beyond the bound
    high_z: float = Field(default=3.0, gt=0)  # severity high from this z
    zero_lookback_periods: int = Field(default=4, ge=1)  # all with sales before a drop to zero

    @model_validator(mode="after")
    def _check(self) -> MonitorSettings:
        if not self.min_severity_z <= self.medium_z <= self.high_z:
            raise ValueError("expected min_severity_z <= medium_z <= high_z")
        return self


class OpsSettings(_Section):
    # a second run on a local warehouse waits this long for the first (`salesopt.ops.local_guard`)
    lock_wait_s: float = Field(default=0.0, ge=0)


class TrackingSettings(_Section):
    # MLflow tracking of every refresh (salesopt/tracking.py): None = on when mlflow is installed
    enabled: bool | None = None
    # tracking server; None: $MLFLOW_TRACKING_URI, then "databricks" on Databricks, then a SQLite
    # store under a local warehouse (<warehouse>/_mlflow); elsewhere tracking stays off
    uri: str | None = None
    experiment: str = "salesopt"  # on Databricks a workspace path, e.g. /Shared/salesopt
    register_models: bool = False  # register the models, with an alias per as_of (as_of_YYYY_MM_DD)
    registry_uri: str | None = None  # default: the tracking store (Unity Catalog: "databricks-uc")
    model_prefix: str = "salesopt"  # registered names: <prefix>_segmentation, <prefix>_als


class MaintainSettings(_Section):
    vacuum_retention_hours: int = Field(default=168, ge=0)
    optimize: bool = True
    # gold snapshot slices older than this many days before a table's newest as_of are deleted
    # by `salesopt maintain`; None keeps every slice
    snapshot_retention_days: int | None = Field(default=None, ge=0)
    # with a retention: also keep the last as_of of every calendar month
    snapshot_keep_month_ends: bool = True


class Settings(_Section):
    paths: PathSettings = PathSettings()
    spark: SparkSettings = SparkSettings()
    catalog: CatalogSettings = CatalogSettings()
    generate: GenerateSettings = GenerateSettings()
    ingest: IngestSettings = IngestSettings()
    clean: CleanSettings = CleanSettings()
    quality: QualitySettings = QualitySettings()
    features: FeatureSettings = FeatureSettings()
    segmentation: SegmentationSettings = SegmentationSettings()
    recommend: RecommendSettings = RecommendSettings()
    forecast: ForecastSettings = ForecastSettings()
    optimize: OptimizeSettings = OptimizeSettings()
    strategy: StrategySettings = StrategySettings()
    monitor: MonitorSettings = MonitorSettings()
    maintain: MaintainSettings = MaintainSettings()
    ops: OpsSettings = OpsSettings()
    tracking: TrackingSettings = TrackingSettings()
    demo: bool = False  # set only by `salesopt demo`: permits the fixed demo PII key

    def with_overrides(self, **sections: Mapping[str, Any]) -> Settings:
        """Returns a copy with some section keys replaced, validated like a loaded file."""
        data = self.model_dump()
        sources: dict[tuple[str, ...], str] = {}
        _merge(data, {k: dict(v) for k, v in sections.items()}, "override", sources, ())
        return _validate(data, sources)


_ISO_DATE = re.compile(r"(\d{4})-(\d{2})-(\d{2})")


def parse_iso_date(text: str) -> date:
    """A business date given as exactly YYYY-MM-DD (`--as-of`, a notebook's `as_of`).

    Stricter than `date.fromisoformat`, which also takes `20250630` and `2025-W26-1`: a
    scheduler's template that renders another form fails here instead of passing unnoticed.
    Raises ValueError saying what is wrong: the form, or the month or day out of range.
    """
    found = _ISO_DATE.fullmatch(text)
    if not found:
        raise ValueError(f"not a date YYYY-MM-DD: {text!r}")
    try:
        return date(*(int(part) for part in found.groups()))
    except ValueError as exc:  # the date constructor's range check: month, day of month
        raise ValueError(f"not a date YYYY-MM-DD: {text!r} ({exc})") from None


def _read_yaml(path: Path) -> dict[str, Any]:
    try:
        loaded = yaml.safe_load(path.read_text())
    except FileNotFoundError as exc:
        raise ConfigError(f"config file not found: {path}") from exc
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML ({exc})".replace("\n", " ")) from exc
    if loaded is None:
        return {}
    if not isinstance(loaded, dict):
        raise ConfigError(f"{path}: expected a mapping of sections at the top level")
    return loaded


def _merge(
    base: dict[str, Any],
    new: Mapping[str, Any],
    source: str,
    sources: dict[tuple[str, ...], str],
    prefix: tuple[str, ...],
) -> None:
    for key, value in new.items():
        path = (*prefix, str(key))
        if isinstance(value, Mapping) and isinstance(base.get(key), dict) and key != "conf":
            _merge(base[key], value, source, sources, path)
        elif isinstance(value, Mapping) and isinstance(base.get(key), dict):
            base[key] = {**base[key], **value}
            sources[path] = source
        else:
            base[key] = value
            sources[path] = source


def _env_layer(environ: Mapping[str, str]) -> dict[str, Any]:
    layer: dict[str, Any] = {}
    for name, raw in sorted(environ.items()):
        if not name.startswith(ENV_PREFIX) or ENV_SEPARATOR not in name:
            continue
        keys = name[len(ENV_PREFIX) :].lower().split(ENV_SEPARATOR)
        node = layer
        for key in keys[:-1]:
            node = node.setdefault(key, {})
        node[keys[-1]] = yaml.safe_load(raw) if raw != "" else None
    return layer


def _validate(data: dict[str, Any], sources: dict[tuple[str, ...], str]) -> Settings:
    try:
        return Settings.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        loc = tuple(str(p) for p in first["loc"])
        key = ".".join(loc)
        ancestors = [sources[loc[:i]] for i in range(len(loc), 0, -1) if loc[:i] in sources]
        children = [src for path, src in sources.items() if path[: len(loc)] == loc]
        origin = (ancestors or children or ["defaults"])[0]
        given = first.get("input")
        if first["type"] == "extra_forbidden":
            message = f"unknown key '{key}' in {origin}"
        elif isinstance(given, dict):
            message = f"bad values in '{key}' from {origin}: {first['msg']}"
        else:
            message = f"bad value for '{key}' in {origin}: {first['msg']} (got {given!r})"
        more = len(exc.errors()) - 1
        raise ConfigError(message + (f" (+{more} more)" if more else "")) from None


def load_settings(
    conf: Path | str | None = None,
    *,
    environ: Mapping[str, str] | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> Settings:
    """Loads settings: base.yaml next to `conf`, then `conf`, then env vars, then overrides.

    `overrides` uses dotted keys (`{"paths.warehouse": "/lake"}`) as given by CLI flags.
    """
    data: dict[str, Any] = Settings().model_dump()
    sources: dict[tuple[str, ...], str] = {}
    if conf is not None:
        conf_path = Path(conf)
        base = conf_path.parent / "base.yaml"
        if base.exists() and base.resolve() != conf_path.resolve():
            _merge(data, _read_yaml(base), str(base), sources, ())
        _merge(data, _read_yaml(conf_path), str(conf_path), sources, ())
    env = _env_layer(os.environ if environ is None else environ)
    _merge(data, env, "environment (SALESOPT_*)", sources, ())
    flags: dict[str, Any] = {}
    for dotted, value in (overrides or {}).items():
        node = flags
        *parents, leaf = dotted.split(".")
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = value
    _merge(data, flags, "command-line flags", sources, ())
    return _validate(data, sources)


def parse_set_flags(pairs: list[str] | None) -> dict[str, Any]:
    """Turns `--set section.key=value` flags into dotted overrides, values parsed as YAML."""
    result: dict[str, Any] = {}
    for pair in pairs or []:
        key, sep, raw = pair.partition("=")
        if not sep or "." not in key:
            raise ConfigError(f"--set expects section.key=value, got {pair!r}")
        result[key.strip()] = yaml.safe_load(raw)
    return result
