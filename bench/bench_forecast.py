"""Forecast stage benchmark: parallel efficiency, cost per series, backtest quality.

    python -m bench forecast --series 2000 --weeks 104

Measures, in one run:
- Spark throughput: `forecast_all` (prepare + bucketed applyInPandas) over N planted weekly
  series, and the same per-product function in a plain single-process pandas loop over a
  sample; efficiency = (series/s through Spark) / (cores x series/s of the loop);
- cost of the whole per-series function (all families, selection, backtest at the delivered
  horizon) for 104-week weekly and 10-year monthly series;
- backtest median MASE of the chosen models vs. the seasonal naive on the planted series;
- on `--mixture` series of the planted mixture (trend, local level, autoregressive,
  intermittent; `synthetic.planted_mixture`), weekly (104 weeks, horizon 8) and monthly (120
  months, horizon 12): whether the served forecast's median backtest MASE is below each single
  family's and the seasonal naive's, over the same products (the non-intermittent series served
  by a combination; intermittent ones: TSB against Croston, SBA and the seasonal naive,
  reported);
- the backtest of real monthly series shipped in the pmdarima wheel (wineind, airpassengers),
  read from the wheel file (`pip download --no-deps`) without installing pmdarima.
"""

from __future__ import annotations

import argparse
import ast
import os
import sys
import time
import zipfile
from datetime import date
from typing import Any

import pandas as pd

from bench.common import Row, Timer, add_json_option, downloaded_wheel, report, status

PMDARIMA = "pmdarima==2.1.1"
EFFICIENCY_TARGET = 0.8  # Spark series/s over cores x the serial loop's series/s
COST_TARGET = 0.5  # CPU seconds per series: all families, selection, backtest at the horizon
REAL_SERIES = {"wineind": (date(1980, 1, 1), "wineind.py"),
               "airpassengers": (date(1949, 1, 1), "airpassengers.py")}  # fmt: skip


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description="Benchmark the forecasting stage")
    p.add_argument("--series", type=int, default=2000)
    p.add_argument("--weeks", type=int, default=104)
    p.add_argument("--loop-sample", type=int, default=200, help="series in the serial loop")
    p.add_argument("--folds", type=int, default=3)
    p.add_argument("--cost-sample", type=int, default=40)
    p.add_argument("--skip-real", action="store_true")
    p.add_argument(
        "--mixture",
        type=int,
        default=80,
        help="planted-mixture series per frequency for the accuracy check (0: skip)",
    )
    add_json_option(p)
    return p.parse_args(argv)


def _loop(frame: pd.DataFrame, spec: Any, origin: date) -> tuple[float, pd.DataFrame]:
    from salesopt.forecast.model import forecast_product

    start = time.perf_counter()
    out = pd.concat(forecast_product(g, spec, origin) for _, g in frame.groupby("product_id"))
    return time.perf_counter() - start, out


def _mase(out: pd.DataFrame) -> dict[str, float]:
    m = out[(out["kind"] == "metric") & (out["level"] == out["level"].min())
            & (out["horizon"] == "all")]  # fmt: skip
    mase = (m["sum_scaled_error"] / m["n_scaled"]).groupby(m["method"]).median()
    return {str(k): round(float(v), 4) for k, v in mase.items()}


def spark_run(args: argparse.Namespace, frame: pd.DataFrame, spec: Any) -> dict[str, Any]:
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    from salesopt.config import Settings
    from salesopt.forecast import stage
    from salesopt.session import get_spark

    cores = os.cpu_count() or 1
    settings = Settings().with_overrides(
        spark={"master": f"local[{cores}]", "ui_enabled": False, "driver_memory": "3g",
               "conf": {"spark.executorEnv.OPENBLAS_NUM_THREADS": "1",
                        "spark.executorEnv.OMP_NUM_THREADS": "1"}},
        forecast={"frequency": "weekly", "backtest_folds": args.folds},
    )  # fmt: skip
    spark = get_spark(settings.spark)
    sales = spark.createDataFrame(
        frame.rename(columns={"ds": "week_start", "y": "units"}).astype({"units": "int64"})
    ).cache()
    sales.count()
    as_of = frame["ds"].max() + pd.Timedelta(days=6)
    spark.conf.set(stage.COALESCE_CONF, "false")
    with Timer() as t:
        out = stage.forecast_all(spark, sales, settings.forecast, as_of).toPandas()
    spark.stop()
    status = out[out["kind"] == "status"]
    return {
        "seconds": t.seconds,
        "series_per_s": round(args.series / t.seconds, 3),
        "tasks_used": int(out["task_partition"].nunique()),
        "partitions": stage.fanout_partitions_for_cores(cores),
        "status_counts": status["status"].value_counts().to_dict(),
        "median_mase": _mase(out),
    }


def cost_per_series(frequency: str, periods: int, n: int, folds: int) -> dict[str, float]:
    """CPU seconds per series of the whole function: all families, selection and `folds`
    backtest folds at the delivered horizon (12 months, 8 weeks)."""
    from salesopt.forecast.model import ForecastSpec
    from salesopt.forecast.synthetic import planted_series

    frame = planted_series(n, periods, frequency, seed=9)
    spec = ForecastSpec(frequency=frequency, horizon=12 if frequency == "monthly" else 8,
                        backtest_folds=folds)  # fmt: skip
    cpu = time.process_time()
    _, out = _loop(frame, spec, frame["ds"].max())
    status = out[out["kind"] == "status"]
    return {
        "cpu_s_per_series": round((time.process_time() - cpu) / n, 4),
        "ok_share": round(float((status["status"] == "ok").mean()), 3),
        "series": n,
        "periods": periods,
    }


def _with_all(rows: pd.DataFrame, members: tuple[str, ...]) -> pd.DataFrame:
    """The rows of the products that have a metric row for every one of `members`, so each
    method's median is over the same products (a product served by a fallback has none)."""
    metric = rows[rows["kind"] == "metric"]
    have = metric.groupby("product_id")["method"].agg(lambda m: set(members) <= set(m))
    return rows[rows["product_id"].isin(have[have].index)]


def planted_accuracy(n: int, folds: int) -> dict[str, Any]:
    """Median backtest MASE per method on the planted mixture, per frequency and pattern group."""
    from salesopt.forecast.model import ForecastSpec
    from salesopt.forecast.synthetic import planted_mixture

    out: dict[str, Any] = {}
    for frequency, periods, horizon in (("weekly", 104, 8), ("monthly", 120, 12)):
        frame = planted_mixture(n, periods, frequency, seed=3)
        spec = ForecastSpec(frequency=frequency, horizon=horizon, backtest_folds=folds)
        _, rows = _loop(frame.drop(columns="pattern"), spec, frame["ds"].max())
        intermittent = set(frame.loc[frame["pattern"] == "intermittent", "product_id"])
        is_int = rows["product_id"].isin(intermittent)
        out[frequency] = {
            "series": n,
            "regular": _mase(_with_all(rows[~is_int], ("arima", "ets", "theta"))),
            "intermittent": _mase(_with_all(rows[is_int], ("croston", "sba", "tsb"))),
        }
    return out


def real_series() -> dict[str, pd.DataFrame]:
    """Monthly series read from the pmdarima wheel (downloaded once, not installed)."""
    frames = {}
    with zipfile.ZipFile(downloaded_wheel(PMDARIMA)) as wheel:
        for name, (start, member) in REAL_SERIES.items():
            source = wheel.read(f"pmdarima/datasets/{member}").decode()
            values = _array_literal(source)
            ds = pd.date_range(start, periods=len(values), freq="MS").date
            frames[name] = pd.DataFrame({"product_id": name, "ds": ds, "y": values})
    return frames


def _array_literal(source: str) -> list[float]:
    """The first `np.array([...])` literal with more than 100 numbers in a module's source."""
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.List):
            values = ast.literal_eval(node.args[0])
            if len(values) > 100:
                return [float(v) for v in values]
    raise ValueError("no data array found")


def real_backtest() -> dict[str, Any]:
    from salesopt.forecast import backtest
    from salesopt.forecast.model import ForecastSpec, forecast_product

    spec = ForecastSpec(frequency="monthly", horizon=12, backtest_folds=3)
    results: dict[str, Any] = {}
    for name, frame in real_series().items():
        out = forecast_product(frame, spec, frame["ds"].max())
        status = out[out["kind"] == "status"].iloc[0]
        rows = out[(out["kind"] == "metric") & (out["horizon"] == "all")]
        entry: dict[str, Any] = {"n_obs": int(status["n_obs"]), "chosen": status["model"],
                                 "order": status["model_order"]}  # fmt: skip
        for method, g in rows.groupby("method"):
            first = g.iloc[0]
            sums = {k: float(first[k]) for k in backtest.SUM_FIELDS}
            cover = {
                str(r["level"]): round(r["covered"] / r["n_points"], 3) for _, r in g.iterrows()
            }
            entry[str(method)] = {k: round(v, 4) for k, v in backtest.metrics(sums).items()}
            entry[str(method)]["coverage"] = cover
        results[name] = entry
    return results


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    from salesopt.forecast.model import ForecastSpec
    from salesopt.forecast.synthetic import planted_series

    cores = os.cpu_count() or 1
    frame = planted_series(args.series, args.weeks, "weekly", seed=1)
    spec = ForecastSpec(frequency="weekly", backtest_folds=args.folds)
    sample_ids = frame["product_id"].drop_duplicates().iloc[: args.loop_sample]
    sample = frame[frame["product_id"].isin(sample_ids)]
    loop_s, loop_out = _loop(sample, spec, frame["ds"].max())
    loop_rate = len(sample_ids) / loop_s
    spark = spark_run(args, frame, spec)
    results: dict[str, Any] = {
        "series": args.series, "weeks": args.weeks, "backtest_folds": args.folds, "cores": cores,
        "loop": {"series": len(sample_ids), "seconds": round(loop_s, 3),
                 "series_per_s": round(loop_rate, 3), "median_mase": _mase(loop_out)},
        "spark": spark,
        "parallel_efficiency": round(spark["series_per_s"] / (cores * loop_rate), 3),
        "spark_series_per_s_per_core": round(spark["series_per_s"] / cores, 3),
        "cost_weekly_104": cost_per_series("weekly", 104, args.cost_sample, args.folds),
        "cost_monthly_120": cost_per_series("monthly", 120, args.cost_sample, args.folds),
    }  # fmt: skip
    if args.mixture:
        results["planted_mixture"] = planted_accuracy(args.mixture, args.folds)
    if not args.skip_real:
        results["real_monthly_backtest"] = real_backtest()
    title = f"forecast bench: {args.series:,} weekly series of {args.weeks} weeks, {cores} cores"
    report("forecast", title, figures(results), results, args.json)
    return 0


def _methods(mase: dict[str, float]) -> str:
    return ", ".join(f"{method} {value:.3f}" for method, value in mase.items())


def figures(r: dict[str, Any]) -> list[Row]:
    """The printed table: each figure, its target and whether it is met."""
    spark, loop = r["spark"], r["loop"]
    rows: list[Row] = [
        ("Spark series/s", f"{spark['series_per_s']:.3f}", "", ""),
        ("loop series/s", f"{loop['series_per_s']:.3f}", "", ""),
        ("parallel efficiency", f"{r['parallel_efficiency']:.3f}", f">= {EFFICIENCY_TARGET}",
         status(r["parallel_efficiency"], EFFICIENCY_TARGET, higher_is_better=True)),
    ]  # fmt: skip
    for key, label in (
        ("cost_weekly_104", "104-week weekly"),
        ("cost_monthly_120", "120-month monthly"),
    ):
        cost = r[key]["cpu_s_per_series"]
        rows.append((f"CPU s per series, {label}", f"{cost:.4f}", f"<= {COST_TARGET}",
                     status(cost, COST_TARGET)))  # fmt: skip
    rows.append(("median MASE, Spark run", _methods(spark["median_mase"]), "", ""))
    for frequency, entry in r.get("planted_mixture", {}).items():
        regular = entry["regular"]
        rows.append((f"median MASE, planted mixture {frequency}", _methods(regular), "", ""))
        if entry["intermittent"]:
            rows.append((f"median MASE, planted intermittent {frequency}",
                         _methods(entry["intermittent"]), "", ""))  # fmt: skip
        others = min(v for m, v in regular.items() if m != "model")
        rows.append((f"served median below each family's and the naive's, {frequency}",
                     f"{regular['model']:.3f}", f"< {others:.3f}",
                     "met" if regular["model"] < others else "missed"))  # fmt: skip
    for name, entry in r.get("real_monthly_backtest", {}).items():
        mase = {m: v["mase"] for m, v in entry.items() if isinstance(v, dict) and "mase" in v}
        rows.append((f"MASE, {name}", _methods(mase), "", ""))
    return rows
