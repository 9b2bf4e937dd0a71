"""The set-up the probes share: their arguments and the settings built from them."""

from __future__ import annotations

from pathlib import Path

from bench.common import LOCAL_CONF, probe_parser, probe_settings
from salesopt.config import load_settings


def test_settings_point_at_the_bench_workdir_and_fold_in_spark_conf(tmp_path: Path) -> None:
    args = probe_parser("probe").parse_args(
        [
            "--workdir", str(tmp_path), "--customers", "500", "--days", "30",
            "--spark-conf", "spark.sql.codegen.cache.maxEntries=100",
            "--spark-conf", "spark.sql.adaptive.enabled=false",
        ]
    )  # fmt: skip
    settings = probe_settings(args, tmp_path / "warehouse_probe")
    assert settings.paths.landing == str(tmp_path / "landing")
    assert settings.paths.warehouse == str(tmp_path / "warehouse_probe")
    assert (settings.generate.customers, settings.generate.products) == (500, 2_000)
    assert settings.generate.days == 30
    assert settings.demo is True
    conf = settings.spark.conf
    assert conf["spark.sql.codegen.cache.maxEntries"] == "100"
    assert conf["spark.sql.adaptive.enabled"] == "false"


def test_without_a_warehouse_or_spark_conf_the_configured_ones_stay(tmp_path: Path) -> None:
    args = probe_parser("probe").parse_args(["--workdir", str(tmp_path)])
    settings = probe_settings(args)
    configured = load_settings(LOCAL_CONF)
    assert settings.paths.warehouse == configured.paths.warehouse
    assert settings.spark.conf == configured.spark.conf
    assert settings.paths.landing == str(tmp_path / "landing")


def test_the_default_conf_is_found_from_any_working_directory(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    args = probe_parser("probe").parse_args(["--workdir", "wd"])
    assert args.conf == LOCAL_CONF
    assert args.conf.is_absolute() and args.conf.is_file()
    settings = probe_settings(args)
    assert settings.paths.landing == str(Path("wd") / "landing")
