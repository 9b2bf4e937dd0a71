"""Probe: what parsing the landing JSON costs, current map parse vs. a struct parse.

Not a registered bench (no result file): a measurement aid for the silver pass. Reads the first
`--files` landing files of a generated landing (e.g. the 10 M bench's), caches the text, and
times each variant twice with a no-op sink:

    .venv/bin/python -m bench.probe_parse --landing /tmp/b10m/landing --files 220
"""

from __future__ import annotations

import argparse
import glob
from collections.abc import Sequence
from pathlib import Path

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from bench.common import LOCAL_CONF, Timer
from salesopt import clean
from salesopt.config import load_settings
from salesopt.session import get_spark


def _time(name: str, df: DataFrame) -> None:
    with Timer() as t:
        df.write.format("noop").mode("overwrite").save()
    print(f"{name}: {t.seconds:.1f} s", flush=True)


def main(argv: Sequence[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--landing", type=Path, required=True)
    p.add_argument("--files", type=int, default=220)
    p.add_argument("--conf", type=Path, default=LOCAL_CONF)
    args = p.parse_args(argv)
    spark = get_spark(load_settings(args.conf).spark)
    files = sorted(glob.glob(str(args.landing / "orders" / "batch_date=*" / "*.txt")))
    raw = spark.read.text(files[: args.files]).cache()
    print(f"lines: {raw.count()}")
    fields = clean.FIELD_TYPES
    struct = "struct<" + ",".join(f"{k}:string" for k in fields) + ">"
    known = F.array(*map(F.lit, fields))
    variants = {
        "map parse + typed fields (current)": clean.with_typed_fields(clean.parse_records(raw)),
        "map parse + field lookups (current, untyped)": clean.parse_records(raw).select(
            "*", *[F.trim(F.col("_fields")[k]).alias(k) for k in fields]
        ),
        "struct parse + unknown-key check (json_object_keys)": raw.withColumn(
            "_s", F.from_json("value", struct)
        )
        .select("*", *[F.trim(F.col("_s")[k]).alias(k) for k in fields])
        .withColumn("_unknown", F.size(F.array_except(F.json_object_keys("value"), known)) > 0),
        "struct parse, no unknown-key check": raw.withColumn(
            "_s", F.from_json("value", struct)
        ).select("*", *[F.trim(F.col("_s")[k]).alias(k) for k in fields]),
    }
    for _ in range(2):
        for name, df in variants.items():
            _time(name, df)


if __name__ == "__main__":
    main()
