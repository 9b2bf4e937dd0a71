"""Price elasticity on real multi-store scanner data: Dominick's orange juice (83 stores).

    python -m bench elasticity-real
    python -m bench elasticity-real --json /tmp/elasticity-real.json

Data: `orangeJuice` of the R package bayesm 3.1-5, as Debian bookworm ships it: the package
r-cran-bayesm 3.1-5+dfsg-1 (amd64, 1,907,776 bytes, sha256
57252e899b2e9913aa2c22938050d4b6c7a8c68ae54b909baaeb5f8130d4b75a), from
http://deb.debian.org/debian/pool/main/r/r-cran-bayesm/ (snapshot.debian.org as a second
mirror), downloaded once into ~/.cache/salesopt-bench and checked against that sha256. The
data frame `yx` (106,139 store-weeks: 11 brands in 83 stores, Dominick's weeks 40 to 160) is
read from the package's usr/lib/R/site-library/bayesm/data/orangeJuice.rda with the `rdata`
package (the `bench` extra), unpacked in Python (ar, tar.xz): R is not needed.

Reading the data:

- `logmove` is documented as the log of units sold, but it is the log of ounces: each brand's
  `exp(logmove)` is a multiple of its pack size (64 oz; brands 2 and 6: 96 oz; brand 11:
  128 oz), and `price1..price11` are prices per ounce. salesopt gets packs: units =
  exp(logmove) / size, price = price per ounce * size (the elasticity is the same; only the
  estimator's count of distinct prices, rounded to cents, depends on the unit).
- Dominick's week 1 is Thursday 14 September 1989 to Wednesday 20 September (the Kilts Center's
  week table); week w maps to the Monday 11 September 1989 + 7 (w - 1), the Monday of the
  calendar week that holds the Thursday-to-Sunday part of the Dominick's week, so the
  estimator's month dummies (month of week_start + 3 days) take the month of the week's first
  day. The data runs from 14 June 1990 (week 40) to 7 October 1992 (week 160).
- promo = max(deal, feat): `deal` flags in-store coupon activity (0/1), `feat` is the share of
  feature advertising (0..1); salesopt has one promotion share per location-week.

Per brand (11 rows), with ElasticityParams(min_obs=40, min_price_cv=0.02, min_distinct_prices=3):

1. reference: OLS of logmove on log(own price) + deal + feat + store dummies (statsmodels);
2. salesopt: `fit_elasticity` (within-store, month dummies, cluster-robust by store), raw and
   after `shrink` with the 11 brands as one category (--level, 0.95);
3. ablations with the same function: promo set to 0; the pooled form (units summed over stores
   per brand-week, unit-weighted price and promo share, location "(all)");
4. censoring: the old default quality rule quarantined lines with quantity > 10000
   (--quarantine-above; one line is one store-week here, its quantity `exp(logmove)` as stored,
   the number bayesm calls units: counted in packs, 1 store-week exceeds 10000), the estimate
   on the surviving store-weeks, and whether the guardrail (status censored above
   optimize.max_quarantined_share, 5 % of the lines or of the units) refuses it.

Then the medians of |salesopt - reference| per variant, the negative signs, the share of
reference values inside salesopt's interval and the brands censored under the old rule. The
reference is a specification, not the truth: it separates deal and feature where salesopt has
one promotion share, and has no month dummies; the JSON holds both variants of the reference
(`reference_promo_max`, `reference_months`) to attribute the difference. About 10 seconds,
most of it reading the data.
"""

from __future__ import annotations

import argparse
import io
import sys
import tarfile
import time
from collections.abc import Callable, Mapping
from dataclasses import replace
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import statsmodels.api as sm
from threadpoolctl import threadpool_limits

from bench.common import DownloadError, Row, add_json_option, downloaded_deb, report
from salesopt.config import OptimizeSettings
from salesopt.optimize.elasticity import (
    ALL_LOCATIONS,
    OBS_COLUMNS,
    ElasticityParams,
    fit_elasticity,
    merge_sparse,
    shrink,
)

DEB_VERSION = "3.1-5+dfsg-1"
DEB_FILE = "r-cran-bayesm_3.1-5%2Bdfsg-1_amd64.deb"
DEB_URLS = (
    f"http://deb.debian.org/debian/pool/main/r/r-cran-bayesm/{DEB_FILE}",
    f"https://snapshot.debian.org/archive/debian/20250520T000000Z/pool/main/r/r-cran-bayesm/{DEB_FILE}",
)
DEB_SHA256 = "57252e899b2e9913aa2c22938050d4b6c7a8c68ae54b909baaeb5f8130d4b75a"
RDA_MEMBER = "usr/lib/R/site-library/bayesm/data/orangeJuice.rda"
# the brands of price1..price11 (bayesm's help page) and their pack sizes in ounces
BRANDS = {
    1: ("Tropicana Premium", 64), 2: ("Tropicana Premium", 96), 3: ("Florida's Natural", 64),
    4: ("Tropicana", 64), 5: ("Minute Maid", 64), 6: ("Minute Maid", 96),
    7: ("Citrus Hill", 64), 8: ("Tree Fresh", 64), 9: ("Florida Gold", 64),
    10: ("Dominicks", 64), 11: ("Dominicks", 128),
}  # fmt: skip
WEEK_1_MONDAY = date(1989, 9, 11)  # Dominick's week 1: Thursday 14 Sep 1989 to Wednesday 20 Sep
PARAMS = ElasticityParams(min_obs=40, min_price_cv=0.02, min_distinct_prices=3)
CATEGORY = "refrigerated orange juice"
# salesopt's estimates compared with the reference, in the printed order
VARIANTS = {
    "raw": "salesopt raw",
    "shrunk": "salesopt shrunk",
    "no_promo": "ablation promo = 0",
    "pooled": "ablation pooled",
    "no_trend": "ablation no trend",
    "survivors": "old rule: surviving weeks",
}


class DataError(RuntimeError):
    """The package does not hold the data frame this bench reads."""


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description="Elasticity on real scanner data (orange juice)")
    p.add_argument("--level", type=float, default=0.95, help="interval level after shrinkage")
    p.add_argument(
        "--quarantine-above", type=float, default=10_000.0, metavar="Q",
        help="the old quality rule: quarantine store-weeks with quantity > Q (default 10000)",
    )  # fmt: skip
    add_json_option(p)
    return p.parse_args(argv)


def ar_member(archive: bytes, prefix: str) -> bytes:
    """The first member of an ar archive (a .deb) whose name starts with `prefix`."""
    if not archive.startswith(b"!<arch>\n"):
        raise DataError("the downloaded file is not a Debian package (no ar header)")
    pos = 8
    while pos + 60 <= len(archive):
        header = archive[pos : pos + 60]
        name, size = header[:16].decode().strip().rstrip("/"), int(header[48:58])
        pos += 60
        if name.startswith(prefix):
            return archive[pos : pos + size]
        pos += size + size % 2  # members start on even offsets
    raise DataError(f"the Debian package has no {prefix}* member")


def orange_juice(deb: Path) -> pd.DataFrame:
    """bayesm's orangeJuice$yx from the package, every column as float."""
    try:
        import rdata
    except ImportError as exc:
        raise DataError(
            "the rdata package is missing: install the bench extra (make setup, or "
            ".venv/bin/pip install rdata==1.1.0)"
        ) from exc
    data_tar = ar_member(deb.read_bytes(), "data.tar")
    with tarfile.open(fileobj=io.BytesIO(data_tar), mode="r:*") as tar:
        names = [n for n in tar.getnames() if n.lstrip("./") == RDA_MEMBER]
        member = tar.extractfile(names[0]) if names else None
        if member is None:
            raise DataError(f"the Debian package has no {RDA_MEMBER}")
        raw = member.read()
    converted = rdata.conversion.convert(rdata.parser.parse_data(raw))
    yx = converted["orangeJuice"]["yx"]
    frame = pd.DataFrame({str(c): yx[c].to_numpy(dtype=float) for c in yx.columns})
    shape = (len(frame), frame["store"].nunique(), frame["brand"].nunique())
    if shape != (106_139, 83, 11):
        raise DataError(f"orangeJuice$yx has {shape} (rows, stores, brands), not (106139, 83, 11)")
    return frame


def observations(yx: pd.DataFrame, brand: int) -> pd.DataFrame:
    """One brand's store-weeks as salesopt's OBS_COLUMNS (packs, price per pack), plus the
    reference's columns (logmove, log_price per ounce, deal, feat, store, move in ounces)."""
    d = yx[yx["brand"] == brand]
    size = BRANDS[brand][1]
    weeks = d["week"].astype(int)
    move = np.exp(d["logmove"].to_numpy())
    return pd.DataFrame(
        {
            "product_id": str(brand),
            "location": d["store"].astype(int).astype(str),
            "week_start": [WEEK_1_MONDAY + timedelta(days=7 * (w - 1)) for w in weeks],
            "units": move / size,
            "price": d[f"price{brand}"].to_numpy() * size,
            "promo": np.maximum(d["deal"].to_numpy(), d["feat"].to_numpy()),
            "week": weeks,
            "move": move,
            "logmove": d["logmove"],
            "log_price": np.log(d[f"price{brand}"].to_numpy()),
            "deal": d["deal"],
            "feat": d["feat"],
        },
        index=d.index,
    )


def reference(obs: pd.DataFrame, regressors: tuple[str, ...], months: bool = False) -> float:
    """OLS of logmove on log_price + `regressors` + store dummies (+ month dummies)."""
    parts = [obs[["log_price", *regressors]],
             pd.get_dummies(obs["location"], prefix="s", drop_first=True, dtype=float)]  # fmt: skip
    if months:
        month = (pd.to_datetime(obs["week_start"]) + pd.Timedelta(days=3)).dt.month
        parts.append(pd.get_dummies(month, prefix="m", drop_first=True, dtype=float))
    design = sm.add_constant(pd.concat(parts, axis=1))
    return float(sm.OLS(obs["logmove"].to_numpy(), design).fit().params["log_price"])


def pooled(obs: pd.DataFrame) -> pd.DataFrame:
    """Units summed over stores per week; price and promo weighted by units; location (all)."""
    stores = [str(v) for v in obs["location"].unique()]
    return merge_sparse(obs[list(OBS_COLUMNS)], stores, ALL_LOCATIONS)


def plain(row: Mapping[Any, Any]) -> dict[str, Any]:
    """A result row with Python scalars and None for missing values (as JSON writes them)."""
    return {str(k): None if pd.isna(v) else v.item() if isinstance(v, np.generic) else v
            for k, v in row.items()}  # fmt: skip


def fit(obs: pd.DataFrame, params: ElasticityParams = PARAMS) -> dict[str, Any]:
    row = fit_elasticity(obs[["product_id", "location", "week_start", "units", "price", "promo"]],
                         params).iloc[0]  # fmt: skip
    return plain(row.to_dict())


def evaluate(yx: pd.DataFrame, level: float, threshold: float, max_share: float) -> dict[str, Any]:
    brands: dict[int, dict[str, Any]] = {}
    fits = []
    for brand in BRANDS:
        obs = observations(yx, brand)
        main = fit(obs)
        fits.append(main)
        quarantined = obs["move"] > threshold
        # the stage's guardrail: the larger of the lines' and the units' quarantined share
        unit_share = float(obs["units"][quarantined].sum() / obs["units"].sum())
        share = max(float(quarantined.mean()), unit_share)
        survivors = fit(obs[~quarantined])
        brands[brand] = {
            "name": f"{BRANDS[brand][0]} {BRANDS[brand][1]} oz",
            "store_weeks": len(obs),
            "reference": reference(obs, ("deal", "feat")),
            "reference_promo_max": reference(obs, ("promo",)),
            "reference_months": reference(obs, ("deal", "feat"), months=True),
            "salesopt": main,
            "no_promo": fit(obs.assign(promo=0.0)),
            "pooled": fit(pooled(obs)),
            "no_trend": fit(obs, replace(PARAMS, trend=False)),
            "quarantined_share": share,
            "quarantined_unit_share": unit_share,
            "packs_above_threshold": int((obs["units"] > threshold).sum()),
            "survivors": survivors,
            "survivors_guardrail": "censored" if share > max_share else survivors["status"],
        }
    frame = pd.DataFrame(fits).assign(category=CATEGORY, quarantined_share=0.0)
    shrunk = shrink(frame, level)
    for brand, row in zip(BRANDS, shrunk.to_dict("records"), strict=True):
        brands[brand]["shrunk"] = plain(row)
    data = {
        "package": f"r-cran-bayesm {DEB_VERSION}",
        "url": DEB_URLS[0],
        "sha256": DEB_SHA256,
        "member": RDA_MEMBER,
        "store_weeks": len(yx),
        "stores": int(yx["store"].nunique()),
        "weeks": [int(yx["week"].min()), int(yx["week"].max())],
    }
    params = {
        "min_obs": PARAMS.min_obs,
        "min_price_cv": PARAMS.min_price_cv,
        "min_distinct_prices": PARAMS.min_distinct_prices,
        "trend": PARAMS.trend,
        "level": level,
        "quarantine_above": threshold,
        "max_quarantined_share": max_share,
    }
    return {"data": data, "params": params, "brands": brands, "summary": summary(brands)}


ESTIMATE: dict[str, Callable[[dict[str, Any]], float | None]] = {
    "raw": lambda b: b["salesopt"]["elasticity_raw"],
    "shrunk": lambda b: b["shrunk"]["elasticity"],
    "no_promo": lambda b: b["no_promo"]["elasticity_raw"],
    "pooled": lambda b: b["pooled"]["elasticity_raw"],
    "no_trend": lambda b: b["no_trend"]["elasticity_raw"],
    "survivors": lambda b: b["survivors"]["elasticity_raw"],
}


def summary(brands: dict[int, dict[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {"brands": len(brands)}
    ref = {k: b["reference"] for k, b in brands.items()}
    out["reference_negative"] = sum(v < 0 for v in ref.values())
    for variant, get in ESTIMATE.items():
        pairs = [(e, ref[k]) for k, b in brands.items() if (e := get(b)) is not None]
        out[variant] = {
            "estimates": len(pairs),
            "median_abs_diff": float(np.median([abs(e - r) for e, r in pairs])) if pairs else None,
            "negative": sum(e < 0 for e, _ in pairs),
        }
    diffs = [abs(b["salesopt"]["elasticity_raw"] - b["reference_promo_max"])
             for b in brands.values() if b["salesopt"]["elasticity_raw"] is not None]  # fmt: skip
    out["raw_vs_reference_promo_max"] = float(np.median(diffs)) if diffs else None
    inside = [b["shrunk"]["ci_low"] <= b["reference"] <= b["shrunk"]["ci_high"]
              for b in brands.values() if b["shrunk"]["ci_low"] is not None]  # fmt: skip
    out["reference_inside_ci"] = sum(inside)
    out["with_ci"] = len(inside)
    out["censored_old_rule"] = sum(b["survivors_guardrail"] == "censored" for b in brands.values())
    out["survivor_shift"] = {
        k: b["survivors"]["elasticity_raw"] - b["salesopt"]["elasticity_raw"]
        for k, b in brands.items()
        if b["survivors"]["elasticity_raw"] is not None
        and b["salesopt"]["elasticity_raw"] is not None
    }
    return out


def _num(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.2f}"


def figures(r: dict[str, Any]) -> list[Row]:
    p = r["params"]
    rows: list[Row] = []
    for brand, b in r["brands"].items():
        s, sh = b["salesopt"], b["shrunk"]
        ci = (f"[{_num(sh['ci_low'])}, {_num(sh['ci_high'])}] w {_num(sh['shrinkage_weight'])}"
              if sh["ci_low"] is not None else "")  # fmt: skip
        value = (
            f"ref {_num(b['reference'])} · raw {_num(s['elasticity_raw'])} ({s['status']}) · "
            f"shrunk {_num(sh['elasticity'])} {ci} · no promo "
            f"{_num(b['no_promo']['elasticity_raw'])} · pooled "
            f"{_num(b['pooled']['elasticity_raw'])} · no trend "
            f"{_num(b['no_trend']['elasticity_raw'])} · old rule {b['quarantined_share']:.1%} "
            f"quarantined: {_num(b['survivors']['elasticity_raw'])} "
            f"({b['survivors_guardrail']})"
        )
        rows.append((f"brand {brand} {b['name']}", value, "", ""))
    m = r["summary"]
    n = m["brands"]
    for variant, label in VARIANTS.items():
        v = m[variant]
        rows.append((f"{label}: median abs(estimate - reference); negative signs",
                     f"{_num(v['median_abs_diff'])}; {v['negative']} of {v['estimates']}",
                     f"{n} of {n} negative",
                     "met" if v["negative"] == n else "missed"))  # fmt: skip
    rows.append(("reference: negative signs", f"{m['reference_negative']} of {n}", "", ""))
    rows.append(("salesopt raw vs reference with promo = max(deal, feat): median abs diff",
                 _num(m["raw_vs_reference_promo_max"]), "", ""))  # fmt: skip
    rows.append((f"reference inside salesopt's {p['level']:.0%} interval (shrunk)",
                 f"{m['reference_inside_ci']} of {m['with_ci']}", "", ""))  # fmt: skip
    packs_above = sum(b["packs_above_threshold"] for b in r["brands"].values())
    rows.append((f"old rule (quantity > {p['quarantine_above']:g}): brands censored "
                 f"(quarantined share > {p['max_quarantined_share']:.0%})",
                 f"{m['censored_old_rule']} of {n}", "", ""))  # fmt: skip
    passed = {k: v for k, v in m["survivor_shift"].items()
              if r["brands"][k]["survivors_guardrail"] != "censored"}  # fmt: skip
    if passed:
        k = max(passed, key=lambda x: abs(passed[x]))
        b = r["brands"][k]
        rows.append(("old rule: largest shift of an estimate the guardrail lets through",
                     f"brand {k}: {_num(b['salesopt']['elasticity_raw'])} to "
                     f"{_num(b['survivors']['elasticity_raw'])} with "
                     f"{b['quarantined_share']:.1%} quarantined", "", ""))  # fmt: skip
    rows.append((f"store-weeks above {p['quarantine_above']:g} counted in packs, not ounces",
                 str(packs_above), "", ""))  # fmt: skip
    rows.append(("fit seconds (55 fits, 33 reference regressions, shrinkage)",
                 f"{r['seconds']:.1f}", "", ""))  # fmt: skip
    return rows


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        deb = downloaded_deb(DEB_URLS, DEB_SHA256)
        yx = orange_juice(deb)
    except (DownloadError, DataError) as exc:
        print(f"elasticity-real: {exc}", file=sys.stderr, flush=True)
        return 1
    print(f"elasticity-real: r-cran-bayesm {DEB_VERSION}, orangeJuice$yx: {len(yx)} store-weeks",
          flush=True)  # fmt: skip
    started = time.perf_counter()
    max_share = OptimizeSettings().max_quarantined_share
    with threadpool_limits(limits=1):  # small least squares: threads only add contention
        results = evaluate(yx, args.level, args.quarantine_above, max_share)
    results["seconds"] = round(time.perf_counter() - started, 2)
    legend = (
        "per brand: reference (OLS, deal + feat + store dummies) · salesopt raw (status) · "
        "shrunk [interval] shrinkage weight · promo = 0 · pooled · old rule: quarantined "
        "share, estimate on the surviving weeks (status with the guardrail)\n"
    )
    print(legend, flush=True)
    title = (f"elasticity on real scanner data: Dominick's orange juice, {len(BRANDS)} brands, "
             f"{results['data']['stores']} stores, {len(yx)} store-weeks")  # fmt: skip
    report("elasticity-real", title, figures(results), results, args.json)
    return 0
